"""The loaders' former home, kept so that older imports still work; the formats live in `neuronscope.data.formats`
(one file each) and new code imports from there."""

from neuronscope.data.formats import FORMATS, detect_format
from neuronscope.data.formats import load_dataset as load_any
from neuronscope.data.formats.alpaca import load_alpaca
from neuronscope.data.formats.faithun import load_faithun, read_faithun_clusters
from neuronscope.data.formats.records import read_records
from neuronscope.data.formats.tofu import TOFU_PER_AUTHOR, load_tofu, load_tofu_items
from neuronscope.data.formats.world import load_world_dataset

__all__ = ["FORMATS", "TOFU_PER_AUTHOR", "detect_format", "load_alpaca", "load_any", "load_faithun", "load_tofu",
           "load_tofu_items", "load_world_dataset", "read_faithun_clusters", "read_records"]

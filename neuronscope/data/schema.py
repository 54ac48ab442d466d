"""The data layer's public face: the QA schema (`neuronscope.data.items`), `load_dataset`, which reads any
registered format (`neuronscope.data.formats`; docs/data.md), and `save_dataset`, which writes the world format."""

from neuronscope.data.formats import load_dataset
from neuronscope.data.formats.world import load_items, save_dataset
from neuronscope.data.items import KINDS, SPLITS, InstructionItem, Kind, QADataset, QAItem

__all__ = ["KINDS", "SPLITS", "InstructionItem", "Kind", "QADataset", "QAItem", "load_dataset", "load_items",
           "save_dataset"]

"""Dataset formats, one file each, in one registry: detection (`detect_format`) and loading (`load_dataset`).

Importing a format's module registers it; the order below is the order `--format` lists them.
"""

from neuronscope.data.formats import world, faithun, tofu, alpaca  # noqa: F401, I001  (register, in this order)
from neuronscope.data.formats.registry import DataFormat, detect_format, formats, get_format, load_dataset, register

FORMATS: tuple[str, ...] = formats()

__all__ = ["FORMATS", "DataFormat", "detect_format", "formats", "get_format", "load_dataset", "register"]

"""The data layer's public face: the QA schema (`neuronscope.data.items`) and `load_dataset`, which reads any
registered format (`neuronscope.data.formats`; docs/data.md)."""

from neuronscope.data.formats import load_dataset
from neuronscope.data.items import KINDS, SPLITS, InstructionItem, Kind, QADataset, QAItem, load_items, save_dataset

__all__ = ["KINDS", "SPLITS", "InstructionItem", "Kind", "QADataset", "QAItem", "load_dataset", "load_items",
           "save_dataset"]

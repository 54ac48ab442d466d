"""Datasets: the QA schema, the synthetic knowledge world, and loaders for real files."""

from neuronscope.data.schema import InstructionItem, QADataset, QAItem, load_dataset, save_dataset

__all__ = ["InstructionItem", "QADataset", "QAItem", "load_dataset", "save_dataset"]

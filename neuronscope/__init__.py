"""neuronscope: was the knowledge erased, or only hidden?

The public API re-exports the pieces a notebook needs; the CLI calls the same functions. The names load on first
use (PEP 562), so `import neuronscope.cli` (and `neuronscope --help`) does not import torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:
    from neuronscope.data.schema import InstructionItem, QADataset, QAItem, load_dataset
    from neuronscope.models.handle import Model, load_model
    from neuronscope.scoring import EvalReport, answer_probabilities, evaluate, multiple_choice_accuracy

_LAZY = {
    "InstructionItem": "neuronscope.data.schema", "QADataset": "neuronscope.data.schema",
    "QAItem": "neuronscope.data.schema", "load_dataset": "neuronscope.data.schema",
    "Model": "neuronscope.models.handle", "load_model": "neuronscope.models.handle",
    "EvalReport": "neuronscope.scoring", "answer_probabilities": "neuronscope.scoring",
    "evaluate": "neuronscope.scoring", "multiple_choice_accuracy": "neuronscope.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuronscope' has no attribute {name!r}")


__all__ = [
    "EvalReport",
    "InstructionItem",
    "Model",
    "NeuronscopeError",
    "QADataset",
    "QAItem",
    "answer_probabilities",
    "evaluate",
    "load_dataset",
    "load_model",
    "multiple_choice_accuracy",
]
__version__ = "0.1.0"

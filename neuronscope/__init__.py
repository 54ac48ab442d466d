"""neuronscope: was the knowledge erased, or only hidden?

The public API re-exports the pieces a notebook needs; the CLI calls the same functions.
"""

from neuronscope.data.schema import InstructionItem, QADataset, QAItem, load_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model, load_model
from neuronscope.scoring import EvalReport, answer_probabilities, evaluate, multiple_choice_accuracy

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

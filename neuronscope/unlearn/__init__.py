"""Unlearning trainers: one shared loop (`loop.py`), one small file per method, found by name in `METHODS`."""

from neuronscope.unlearn import (  # noqa: F401 (register)
    dpo,
    ga,
    gd,
    klue,
    npo,
    rmu,
    simnpo,
    ssiuu,
    ssiuu_anchor,
    ssiuu_neuron,
)
from neuronscope.unlearn.base import Method, StepBatch, UnlearnConfig
from neuronscope.unlearn.loop import UnlearnResult, lr_search, unlearn
from neuronscope.unlearn.registry import METHODS, get_method, register

__all__ = ["METHODS", "Method", "StepBatch", "UnlearnConfig", "UnlearnResult", "get_method", "lr_search",
           "register", "unlearn"]

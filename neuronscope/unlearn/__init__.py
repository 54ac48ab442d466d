"""Unlearning trainers: one shared loop (`loop.py`), one small file per method, found by name in `METHODS`.

The names load on first use (PEP 562): the catalog of methods (`catalog.py`: names, summaries, settings) reads no
torch, so `neuronscope methods` and a wrong method name answer at once; `METHODS` imports every method's module."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuronscope.unlearn.base import Method, StepBatch, UnlearnConfig
    from neuronscope.unlearn.loop import UnlearnResult, lr_search, unlearn
    from neuronscope.unlearn.registry import METHODS, get_method, register

_LAZY = {"Method": "base", "StepBatch": "base", "UnlearnConfig": "base", "UnlearnResult": "loop",
         "lr_search": "loop", "unlearn": "loop", "get_method": "registry", "register": "registry"}


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # complete: every method's module imported, in the catalog's order
        from neuronscope.unlearn.registry import all_methods

        return all_methods()
    if name in _LAZY:
        return getattr(importlib.import_module(f"neuronscope.unlearn.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'neuronscope.unlearn' has no attribute {name!r}")


__all__ = ["METHODS", "Method", "StepBatch", "UnlearnConfig", "UnlearnResult", "get_method", "lr_search",
           "register", "unlearn"]

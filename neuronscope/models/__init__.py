"""Model handles, the toy model and tokenizer, and the map of hooked projections.

The names load on first use (PEP 562): importing `neuronscope.models.toy` for its config reads no torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuronscope.models.handle import Model, load_model
    from neuronscope.models.projections import Projection, projections

_LAZY = {"Model": "neuronscope.models.handle", "load_model": "neuronscope.models.handle",
         "Projection": "neuronscope.models.projections", "projections": "neuronscope.models.projections"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuronscope.models' has no attribute {name!r}")


__all__ = ["Model", "Projection", "load_model", "projections"]

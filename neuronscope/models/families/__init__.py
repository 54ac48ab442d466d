"""One architecture spec per model family: the one place a new family is added (docs/architecture.md).

Each module here describes one HF `model_type` (`FamilySpec`) and registers it; `spec_for(model)` returns it,
or a guessing fallback for types no spec describes. Everything that asks "where is X in this model?" (the
projection hooks, the fused-q/k/v fix, the logit lens's final norm and soft-cap, RMU's blocks and MLP parameters,
the planner's per-layer MLP size, attribution's embedding hook) asks the spec.
"""

from __future__ import annotations

import importlib

from neuronscope.models.families.registry import SPECS, register, spec_for
from neuronscope.models.families.spec import FamilySpec, Projection

FAMILY_MODULES: tuple[str, ...] = ("llama", "qwen2", "gemma2", "gpt2", "gpt_neox")
_loaded = False


def load_families() -> None:
    """Import every family module once (each registers its spec)."""
    global _loaded
    if not _loaded:
        for name in FAMILY_MODULES:
            importlib.import_module(f"neuronscope.models.families.{name}")
        _loaded = True


__all__ = ["FAMILY_MODULES", "SPECS", "FamilySpec", "Projection", "load_families", "register", "spec_for"]

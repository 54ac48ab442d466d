"""The family specs, keyed by HF `model_type`; `spec_for` answers every "where is X in this model?" question."""

from __future__ import annotations

from typing import Any

from neuronscope.models.families.spec import FamilySpec

SPECS: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    """Add a family (called once, at import, by each family module)."""
    if spec.model_type in SPECS:
        raise ValueError(f"family {spec.model_type!r} is registered twice")
    SPECS[spec.model_type] = spec
    return spec


def spec_for(obj: Any) -> FamilySpec:
    """The spec of an HF config, an HF model, a `Model` handle or a TransformerBridge (its HF model's config).

    A model type without a spec gets the guessing fallback (`neuronscope.models.families.generic`)."""
    from neuronscope.models.families import load_families
    from neuronscope.models.families.generic import generic_spec

    load_families()
    config = _config_of(obj)
    model_type = getattr(config, "model_type", None) or type(config).__name__
    return SPECS.get(model_type) or generic_spec(model_type)


def _config_of(obj: Any) -> Any:
    if hasattr(obj, "model_type") and not hasattr(obj, "config"):  # already a config
        return obj
    for attr in ("hf", "original_model"):  # a Model handle, a TransformerBridge
        inner = getattr(obj, attr, None)
        if inner is not None and hasattr(inner, "config"):
            return inner.config
    return getattr(obj, "config", obj)

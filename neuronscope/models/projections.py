"""Where the attributed projections live in a TransformerBridge: asked of the model's family spec.

Attention q, k, v, o and MLP gate, up, down (a GPT-2-style MLP without a gate exposes in and out instead); each
family's spec (`neuronscope.models.families`) names their hooks.
"""

from __future__ import annotations

from typing import Any

from neuronscope.models.families.spec import ATTN_MODULES, Projection


def projections(bridge: Any) -> list[Projection]:
    """All hooked projection outputs of a bridge, in layer order."""
    from neuronscope.models.families import spec_for

    return spec_for(bridge).projections(bridge)


__all__ = ["ATTN_MODULES", "Projection", "projections"]

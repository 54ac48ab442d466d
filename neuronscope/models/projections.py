"""Where the seven attributed projections live in a TransformerBridge, for every architecture.

This is the one place that maps TransformerBridge hook names to the paper's module names: attention q, k, v, o
and MLP gate, up, down (a GPT-2-style MLP without a gate exposes in and out instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ATTN_MODULES = ("q", "k", "v", "o")


@dataclass(frozen=True)
class Projection:
    layer: int
    module: str  # q | k | v | o | gate | up | down | in | out
    hook: str  # TransformerBridge hook name, e.g. blocks.0.attn.q.hook_out


def projections(bridge: Any) -> list[Projection]:
    """All hooked projection outputs of a bridge, in layer order."""
    names = set(bridge.hook_dict)
    out: list[Projection] = []
    for layer in range(bridge.cfg.n_layers):
        for m in ATTN_MODULES:
            hook = f"blocks.{layer}.attn.{m}.hook_out"
            if hook in names:
                out.append(Projection(layer, m, hook))
        gated = f"blocks.{layer}.mlp.gate.hook_out" in names
        mlp = [("gate", "gate"), ("in", "up"), ("out", "down")] if gated else [("in", "in"), ("out", "out")]
        for bridge_name, module in mlp:
            hook = f"blocks.{layer}.mlp.{bridge_name}.hook_out"
            if hook in names:
                out.append(Projection(layer, module, hook))
    return out

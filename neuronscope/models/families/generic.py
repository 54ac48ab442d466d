"""The fallback for a model type no family spec describes: each answer guessed from module and hook names.

These are the rules neuronscope used before family specs existed; they hold for most HF decoder-only models that
TransformerBridge supports (a remote-code model, a Mistral, a Phi). A family worth relying on gets its own spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.models.families.spec import ATTN_MODULES, FamilySpec, Projection

# Attribute names of the final norm on a model's base module, across HF architectures (Llama, Qwen2, Gemma,
# Mistral: norm; GPT-2: ln_f; GPT-NeoX, OPT (under .decoder): final_layer_norm; Phi: final_layernorm).
NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm", "ln_final")
_MLP_PARAM = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.mlp\.")


@dataclass(frozen=True)
class GenericSpec(FamilySpec):
    """Guesses instead of paths: blocks, final norm, MLP parameters and projections found by name."""

    def decoder_blocks(self, hf: Any) -> Any:
        from torch import nn

        n = hf.config.num_hidden_layers
        for module in hf.modules():
            if isinstance(module, nn.ModuleList) and len(module) == n:
                return module
        raise NeuronscopeError(f"cannot find the {n} transformer blocks of this {type(hf).__name__}")

    def final_norm_module(self, hf: Any) -> Any:
        from torch import nn

        base = hf.base_model
        for root in (base, getattr(base, "decoder", None)):
            for name in NORM_NAMES:
                module = getattr(root, name, None) if root is not None else None
                if isinstance(module, nn.Module):
                    return module
        return None

    def mlp_layer(self, param_name: str) -> int | None:
        m = _MLP_PARAM.search(param_name)
        return int(m.group(1)) if m else None

    def projections(self, bridge: Any) -> list[Projection]:
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

    def embed_hook_name(self, bridge: Any) -> str:
        for name in ("embed.hook_out", "hook_embed"):
            if name in bridge.hook_dict:
                return name
        raise NeuronscopeError("the TransformerBridge exposes no token-embedding hook (embed.hook_out)")


def generic_spec(model_type: str) -> GenericSpec:
    """The guessing spec for `model_type`; fused q/k/v are re-sliced wherever the bridge fuses them."""
    return GenericSpec(model_type=model_type, blocks="", final_norm="", hf_projections={}, fused_qkv=True,
                       softcap="final_logit_softcapping",
                       notes="no family spec: blocks, norm, MLP and projections guessed by name")

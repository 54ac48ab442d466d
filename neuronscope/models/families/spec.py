"""What neuronscope needs to know about one model family, in one object.

A `FamilySpec` names, for one HF `model_type`, where everything the analyses touch lives:

- in the HF model: the list of decoder blocks, the final norm, the MLP submodule of a block (whose parameters RMU
  trains), the module of each attributed projection inside a block, and the config attribute of a final logit
  soft-cap;
- in the TransformerBridge over it: the hook of each projection's output, the token-embedding hook (where
  attribution's backward pass starts), the unembedding's input hook (attribution applies the head only where an
  answer token is predicted), the residual-stream hook after each block (the logit lens), and whether a
  fused q/k/v projection must be re-sliced live (`neuronscope.models.families.fused_qkv`).

Families register themselves (`neuronscope.models.families.registry`); a model type without a spec gets
`GenericSpec`, which guesses each of these from module and hook names, as a fallback for architectures that
TransformerBridge supports but no spec describes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:
    from torch import nn

ATTN_MODULES: tuple[str, ...] = ("q", "k", "v", "o")
GATED_MLP: tuple[str, ...] = ("gate", "up", "down")
UNGATED_MLP: tuple[str, ...] = ("in", "out")
# TransformerBridge's name of each MLP projection: a gated MLP's up / down are its "in" / "out" linear maps.
BRIDGE_MLP_NAMES: dict[str, str] = {"gate": "gate", "up": "in", "down": "out", "in": "in", "out": "out"}


@dataclass(frozen=True)
class Projection:
    """One hooked projection output: a neuron is one scalar coordinate of it."""

    layer: int
    module: str  # q | k | v | o | gate | up | down | in | out
    hook: str  # TransformerBridge hook name, e.g. blocks.0.attn.q.hook_out


@dataclass(frozen=True)
class FamilySpec:
    """One family's architecture: HF module paths, TransformerBridge hook names, logit post-processing.

    `hf_projections` maps each attributed projection to its module inside a block; q, k and v of a fused family
    share one module (`fused_qkv`), whose output the bridge splits (and `fused_qkv.live_fused_qkv` keeps live).
    """

    model_type: str
    blocks: str  # the ModuleList of decoder blocks, e.g. "model.layers"
    final_norm: str  # the norm before the unembedding, e.g. "model.norm"
    hf_projections: dict[str, str]  # projection -> module path inside a block, in attribution order
    mlp: str = "mlp"  # the block's MLP submodule
    fused_qkv: bool = False
    softcap: str | None = None  # config attribute of a final logit soft-cap c: logits -> c tanh(logits / c)
    embed_hook: str = "embed.hook_out"
    resid_hook: str = "blocks.{layer}.hook_resid_post"
    unembed_hook: str = "unembed.hook_in"  # the unembedding's input (after the final norm)
    notes: str = field(default="", compare=False)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.hf_projections)

    @property
    def gated(self) -> bool:
        return "gate" in self.hf_projections

    # -- the HF model ---------------------------------------------------------------------------------------

    def decoder_blocks(self, hf: Any) -> nn.ModuleList:
        """The model's list of decoder blocks."""
        return _submodule(hf, self.blocks, "decoder blocks")

    def final_norm_module(self, hf: Any) -> nn.Module | None:
        """The final norm applied before the unembedding."""
        return _submodule(hf, self.final_norm, "final norm")

    def mlp_layer(self, param_name: str) -> int | None:
        """The block whose MLP holds parameter `param_name` (a name from `hf.named_parameters()`), else None."""
        m = re.fullmatch(rf"{re.escape(self.blocks)}\.(\d+)\.{re.escape(self.mlp)}\..+", param_name)
        return int(m.group(1)) if m else None

    def softcap_value(self, config: Any) -> float | None:
        """The final logit soft-cap of this config (None or 0: no cap)."""
        return getattr(config, self.softcap, None) if self.softcap else None

    # -- the TransformerBridge ------------------------------------------------------------------------------

    def projection_hook(self, layer: int, module: str) -> str:
        part = "attn" if module in ATTN_MODULES else "mlp"
        name = module if part == "attn" else BRIDGE_MLP_NAMES[module]
        return f"blocks.{layer}.{part}.{name}.hook_out"

    def projections(self, bridge: Any) -> list[Projection]:
        """Every hooked projection output of `bridge`, in layer order, then `hf_projections` order."""
        names = set(bridge.hook_dict)
        out = [Projection(layer, m, self.projection_hook(layer, m))
               for layer in range(bridge.cfg.n_layers) for m in self.modules]
        missing = [p.hook for p in out if p.hook not in names]
        if missing:
            raise NeuronscopeError(f"the {self.model_type} TransformerBridge lacks the hooks its family spec names "
                                   f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
        return out

    def embed_hook_name(self, bridge: Any) -> str:
        if self.embed_hook not in bridge.hook_dict:
            raise NeuronscopeError(f"the {self.model_type} TransformerBridge has no token-embedding hook "
                                   f"{self.embed_hook}")
        return self.embed_hook

    def resid_hook_name(self, layer: int) -> str:
        return self.resid_hook.format(layer=layer)


def _submodule(hf: Any, path: str, what: str) -> Any:
    try:
        return hf.get_submodule(path)
    except AttributeError:
        raise NeuronscopeError(f"{type(hf).__name__} has no {what} at {path!r} (its family spec says it is "
                               "there)") from None

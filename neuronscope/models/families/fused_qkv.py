"""The fused-q/k/v fix: GPT-2's c_attn and GPT-NeoX's query_key_value, sliced live from the trained weights.

Families whose spec sets `fused_qkv` get this applied to their TransformerBridge at boot
(`neuronscope.models.handle.boot_bridge`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FusedQKVSlice(nn.Module):
    """q, k or v of a fused qkv projection (GPT-2 c_attn, GPT-NeoX query_key_value), read live from its weights.

    At boot TransformerBridge splits a fused qkv weight into three new nn.Linear parameters, once: copies for
    GPT-NeoX (stale as soon as the model trains), storage-sharing views for GPT-2 (no gradient reaches the fused
    parameter). This module slices the fused parameter on every call instead, so hooks always see the weights
    being trained and gradients through the bridge land on the HF model's own parameters.
    """

    def __init__(self, fused: nn.Module, index: torch.Tensor, rows_are_outputs: bool):
        super().__init__()
        self.fused = fused
        self.rows_are_outputs = rows_are_outputs  # nn.Linear stores (out, in); transformers' Conv1D (in, out)
        self.register_buffer("index", index, persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        w = self.fused.weight if self.rows_are_outputs else self.fused.weight.t()
        return w.index_select(0, self.index)

    @property
    def bias(self) -> torch.Tensor | None:
        b = self.fused.bias
        return None if b is None else b.index_select(0, self.index)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.index.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def live_fused_qkv(bridge: Any) -> None:
    """Replace the bridge's boot-time q/k/v split of every fused qkv projection by live slices (`FusedQKVSlice`).

    Which fused output feeds which q/k/v coordinate is asked of the bridge's own split function, run on a stand-in
    whose bias is 0, 1, 2, ...: the split biases are then the index maps, whatever the layout (GPT-2 [q|k|v],
    GPT-NeoX per-head interleaved). A slice replaces the split only if it reproduces the split's weights exactly.
    """
    from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import JointQKVAttentionBridge

    for attn in bridge.modules():
        if not isinstance(attn, JointQKVAttentionBridge) or getattr(attn, "qkv", None) is None:
            continue
        fused = attn.qkv.original_component
        weight = getattr(fused, "weight", None)
        if weight is None:
            continue
        n_out = sum(getattr(attn, n).original_component.weight.shape[0] for n in ("q", "k", "v"))
        if weight.shape[0] == n_out and weight.shape[1] != n_out:
            rows_are_outputs = True
        elif weight.shape[1] == n_out and weight.shape[0] != n_out:
            rows_are_outputs = False
        else:
            continue
        probe = nn.Module()
        probe_fused = nn.Module()
        probe_fused.weight = nn.Parameter(torch.zeros(weight.shape), requires_grad=False)
        probe_fused.bias = nn.Parameter(torch.arange(n_out, dtype=torch.float32), requires_grad=False)
        setattr(probe, attn.submodules["qkv"].name, probe_fused)
        try:
            split = attn.split_qkv_matrix(probe)
        except Exception:  # a split function that needs more of the real module: keep the bridge's own split
            continue
        for name, part in zip(("q", "k", "v"), split, strict=True):
            index = part.bias.detach().round().long().to(weight.device)
            live = FusedQKVSlice(fused, index, rows_are_outputs)
            old = getattr(attn, name).original_component
            with torch.no_grad():
                same = live.weight.shape == old.weight.shape and torch.equal(live.weight, old.weight) and (
                    (live.bias is None and old.bias is None)
                    or (live.bias is not None and old.bias is not None and torch.equal(live.bias, old.bias)))
            if same:
                getattr(attn, name).set_original_component(live)

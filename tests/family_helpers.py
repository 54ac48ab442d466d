"""Tiny random checkpoints of five HF model families, and where each family keeps its seven projections.

The module-name table below is an *independent* check of `neuronscope.models.projections` (which maps
TransformerBridge hook names): tests capture these HF modules with plain torch forward hooks and compare. It must
never be imported by neuronscope itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

FAMILIES: tuple[str, ...] = ("llama", "qwen2", "gemma2", "gpt2", "gpt_neox")
GATED: tuple[str, ...] = ("llama", "qwen2", "gemma2")  # gate, up, down; the others have an ungated in, out MLP
GATED_MODULES: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
UNGATED_MODULES: tuple[str, ...] = ("q", "k", "v", "o", "in", "out")

D_MODEL, N_LAYERS, N_HEADS, N_KV_HEADS, D_MLP, MAX_LEN = 32, 2, 4, 2, 64, 64
HEAD_DIM = D_MODEL // N_HEADS
# Gemma 2 caps its final logits at c * tanh(logits / c). The HF default (30) never bites on a random model whose
# logits are ~0.1, so a lens that forgot the cap would still pass; at 1.0 the cap changes every logit.
GEMMA2_FINAL_SOFTCAP = 1.0


@dataclass(frozen=True)
class HFModule:
    """Where one projection's output is produced in an HF block.

    `path` is relative to the block. `part` selects q (0), k (1) or v (2) from a fused qkv output; `fused` says how
    the fused output is laid out: "blocks" (GPT-2 c_attn: [q | k | v], each n_heads * head_dim wide) or
    "per_head" (GPT-NeoX query_key_value: per head [q_h | k_h | v_h], each head_dim wide).
    """

    path: str
    part: int | None = None
    fused: str | None = None


_LLAMA_LIKE = {
    "q": HFModule("self_attn.q_proj"), "k": HFModule("self_attn.k_proj"), "v": HFModule("self_attn.v_proj"),
    "o": HFModule("self_attn.o_proj"), "gate": HFModule("mlp.gate_proj"), "up": HFModule("mlp.up_proj"),
    "down": HFModule("mlp.down_proj"),
}
HF_BLOCKS: dict[str, str] = {"llama": "model.layers", "qwen2": "model.layers", "gemma2": "model.layers",
                             "gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers"}
HF_FINAL_NORM: dict[str, str] = {"llama": "model.norm", "qwen2": "model.norm", "gemma2": "model.norm",
                                 "gpt2": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm"}
HF_MODULES: dict[str, dict[str, HFModule]] = {
    "llama": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gpt2": {"q": HFModule("attn.c_attn", 0, "blocks"), "k": HFModule("attn.c_attn", 1, "blocks"),
             "v": HFModule("attn.c_attn", 2, "blocks"), "o": HFModule("attn.c_proj"),
             "in": HFModule("mlp.c_fc"), "out": HFModule("mlp.c_proj")},
    "gpt_neox": {"q": HFModule("attention.query_key_value", 0, "per_head"),
                 "k": HFModule("attention.query_key_value", 1, "per_head"),
                 "v": HFModule("attention.query_key_value", 2, "per_head"),
                 "o": HFModule("attention.dense"), "in": HFModule("mlp.dense_h_to_4h"),
                 "out": HFModule("mlp.dense_4h_to_h")},
}


def expected_modules(family: str) -> tuple[str, ...]:
    return GATED_MODULES if family in GATED else UNGATED_MODULES


def hf_slice(spec: HFModule, out: Tensor, n_heads: int = N_HEADS) -> Tensor:
    """The projection's own output (batch, pos, width) from its HF module's output, un-fusing q/k/v if needed.

    Per-head outputs come back head-major (head 0's coordinates first), the order in which the bridge's
    (batch, pos, head, head_dim) hooks flatten.
    """
    if spec.part is None:
        return out
    if spec.fused == "blocks":
        return out.chunk(3, dim=-1)[spec.part]
    if spec.fused == "per_head":
        per_head = out.reshape(*out.shape[:-1], n_heads, -1)  # (..., head, 3 * head_dim)
        return per_head.chunk(3, dim=-1)[spec.part].flatten(-2)
    raise ValueError(f"unknown fused layout {spec.fused!r}")


def hf_block_module(hf: PreTrainedModel, family: str, layer: int, module: str) -> torch.nn.Module:
    return hf.get_submodule(f"{HF_BLOCKS[family]}.{layer}.{HF_MODULES[family][module].path}")


def _config(family: str, tok: PreTrainedTokenizerFast) -> PretrainedConfig:
    ids = {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    llama_like = {"hidden_size": D_MODEL, "intermediate_size": D_MLP, "num_hidden_layers": N_LAYERS,
                  "num_attention_heads": N_HEADS, "num_key_value_heads": N_KV_HEADS,
                  "max_position_embeddings": MAX_LEN, **ids}
    if family == "llama":
        return LlamaConfig(**llama_like)
    if family == "qwen2":  # q, k, v carry biases in Qwen2: the hook check covers them
        return Qwen2Config(**llama_like)
    if family == "gemma2":
        # sliding_window below typical prompt lengths so the local/global alternation is exercised;
        # query_pre_attn_scalar (256) != head_dim (8), as in the released models, and a small attention softcap.
        return Gemma2Config(**llama_like, head_dim=HEAD_DIM, sliding_window=4, query_pre_attn_scalar=256,
                            attn_logit_softcapping=1.0, final_logit_softcapping=GEMMA2_FINAL_SOFTCAP)
    if family == "gpt2":  # d_mlp = 4 * d_model, fixed by the family
        return GPT2Config(n_positions=MAX_LEN, n_embd=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS, **ids)
    if family == "gpt_neox":
        return GPTNeoXConfig(hidden_size=D_MODEL, intermediate_size=D_MLP, num_hidden_layers=N_LAYERS,
                             num_attention_heads=N_HEADS, max_position_embeddings=MAX_LEN, rotary_pct=0.5,
                             use_parallel_residual=True, **ids)
    raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")


_CLASSES: dict[str, Callable[[PretrainedConfig], PreTrainedModel]] = {
    "llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM, "gemma2": Gemma2ForCausalLM, "gpt2": GPT2LMHeadModel,
    "gpt_neox": GPTNeoXForCausalLM,
}


def build_family_checkpoint(family: str, tok: PreTrainedTokenizerFast, out: Path, seed: int = 0,
                            **config: object) -> Path:
    """Save a tiny randomly initialised `family` model with `tok` as a safetensors checkpoint directory; `config`
    overrides fields of the family's tiny config (e.g. max_position_embeddings).

    Weights are scaled up from HF's initialisation (std 0.02) to std 0.3 so activations, gradients and the
    answer probabilities actually vary between tokens: with the default init every logit is ~0 and attribution
    differences vanish below float32 noise.
    """
    cfg = _config(family, tok)
    for key, value in config.items():
        setattr(cfg, key, value)
    torch.manual_seed(seed)
    hf = _CLASSES[family](cfg)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.3)
            elif "bias" in name:
                p.normal_(0.0, 0.1)
    hf.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def hf_block_outputs(hf: PreTrainedModel, family: str, ids: Tensor) -> list[Tensor]:
    """The residual stream after every decoder layer, from forward hooks on the plain HF blocks."""
    kept: list[Tensor] = []
    blocks = hf.get_submodule(HF_BLOCKS[family])
    handles = [b.register_forward_hook(lambda m, a, out: kept.append(out[0] if isinstance(out, tuple) else out))
               for b in blocks]
    try:
        with torch.no_grad():
            hf(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return kept

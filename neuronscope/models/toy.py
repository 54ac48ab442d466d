"""The embedded default model: a small Llama-architecture causal LM trained from scratch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from neuronscope.models.handle import ATTN_IMPLEMENTATION


@dataclass(frozen=True)
class ToyConfig:
    """Sizes of the toy model; the defaults give about 2.4M parameters with a ~1k-word vocabulary."""

    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    max_len: int = 64


def build_toy_model(tokenizer: PreTrainedTokenizerFast, cfg: ToyConfig = ToyConfig(), seed: int = 0
                    ) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_len,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        attn_implementation=ATTN_IMPLEMENTATION,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model

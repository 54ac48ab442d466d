"""The embedded default model: a small Llama-architecture causal LM trained from scratch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuronscope.checks import Namer, at_least, flag_name
from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:  # torch and transformers load when a model is built, not when the config is read
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast


@dataclass(frozen=True)
class ToyConfig:
    """Sizes of the toy model; the defaults give about 2.4M parameters with a ~1k-word vocabulary."""

    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    max_len: int = 64  # the model's context: max_position_embeddings

    def check(self, name: Namer = flag_name) -> None:
        """Sizes a Llama can be built with: positive, whole heads, an even head width (rotary embeddings pair up
        dimensions), room for a prompt and an answer."""
        for f in ("d_model", "n_layers", "n_heads", "d_mlp"):
            at_least(getattr(self, f), 1, name(f))
        at_least(self.max_len, 2, name("max_len"))
        if self.d_model % self.n_heads:
            raise NeuronscopeError(f"{name('d_model')} {self.d_model} must be a multiple of {name('n_heads')} "
                                   f"{self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise NeuronscopeError(f"head width {self.d_model // self.n_heads} ({name('d_model')} / "
                                   f"{name('n_heads')}) must be even for rotary position embeddings")


def build_toy_model(tokenizer: PreTrainedTokenizerFast, cfg: ToyConfig = ToyConfig(), seed: int = 0
                    ) -> LlamaForCausalLM:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from neuronscope.models.handle import ATTN_IMPLEMENTATION

    cfg.check()
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

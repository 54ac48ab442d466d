"""Greedy answers: what a model says after each prompt (TOFU's ROUGE-L score reads them)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuronscope.batching import carries_bos
from neuronscope.budget import Sizes, forward_bytes, memory_budget, plan_batches
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model


@torch.no_grad()
def greedy_answers(model: Model, prompts: Sequence[str], max_new_tokens: int = 64, batch_size: int = 32
                   ) -> list[str]:
    """Greedy continuations of each prompt, decoded without special tokens and stripped.

    Batches are left-padded with an attention mask (generation appends on the right); each prompt is tokenised
    exactly as `neuronscope.batching.encode` does (BOS added unless the text already carries it), so the answer
    follows the same context it is scored and trained on.
    """
    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[str] = []
    was_training = model.hf.training
    model.hf.eval()
    try:
        encoded = [tok(p, add_special_tokens=not carries_bos(tok, p))["input_ids"] for p in prompts]
        sizes, budget = Sizes.of(model), memory_budget(model.device)
        # a batch over the memory budget (prompt plus the tokens to generate) is split in order, each piece padded
        # to the whole batch's width; one that fits is generated exactly as before
        parts = plan_batches([len(r) + max_new_tokens for r in encoded], batch_size,
                             lambda n, w: forward_bytes(sizes, n, w) <= budget)
        for part, padded in parts:
            rows = encoded[part.start:part.stop]
            width = padded - max_new_tokens
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                input_ids[i, width - len(r):] = torch.tensor(r)
                mask[i, width - len(r):] = 1
            # never past the model's positions (learned position embeddings, e.g. GPT-2, have no more rows)
            room = getattr(model.hf.config, "max_position_embeddings", None)
            new = max_new_tokens if room is None else min(max_new_tokens, room - width)
            if new < 1:
                raise NeuronscopeError(f"a prompt of {width} tokens leaves no room to generate within the model's "
                                       f"{room} positions")
            generated = model.hf.generate(
                input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
                max_new_tokens=new, do_sample=False, pad_token_id=pad, eos_token_id=tok.eos_token_id,
            )
            for row in generated[:, width:]:
                out.append(tok.decode(row, skip_special_tokens=True).strip())
    finally:
        model.hf.train(was_training)
    return out

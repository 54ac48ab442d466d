"""Shared by the attribution tests: a quick block-only gradient-ascent "unlearning" of the tiny model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuronscope.batching import encode
from neuronscope.data.schema import QAItem
from neuronscope.models.handle import Model
from neuronscope.training import answer_nll


def unlearn_blocks(model: Model, items: Sequence[QAItem], steps: int = 8, lr: float = 5e-2) -> None:
    """Gradient ascent on the forget answers, updating only parameters inside the blocks, in place.

    Embeddings, final norm and unembedding stay equal to the base, which is what makes patching every neuron
    reproduce the base model exactly.
    """
    params = [p for name, p in model.hf.named_parameters() if ".layers." in name]
    opt = torch.optim.SGD(params, lr=lr)
    batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items])
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        (-answer_nll(model.hf(input_ids=batch.input_ids).logits, batch)).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.hf.eval()

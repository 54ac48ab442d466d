"""Independent hand computations for the unlearning tests (explicit loops, no library loss code)."""

from __future__ import annotations

import torch
from torch import Tensor

from neuronscope.batching import Batch


def hand_answer_logps(logits: Tensor, batch: Batch) -> list[list[Tensor]]:
    """Per row, the log-probability of each answer token, from logits - logsumexp at the preceding position."""
    rows = []
    for b in range(batch.input_ids.shape[0]):
        toks = []
        for j in range(1, batch.input_ids.shape[1]):
            if batch.answer_mask[b, j]:
                z = logits[b, j - 1].double()
                toks.append(z[batch.input_ids[b, j]] - torch.logsumexp(z, 0))
        rows.append(toks)
    return rows


def hand_mean_nll(logits: Tensor, batch: Batch) -> Tensor:
    toks = [t for row in hand_answer_logps(logits, batch) for t in row]
    return -torch.stack(toks).sum() / len(toks)


def hand_seq_logp(logits: Tensor, batch: Batch) -> Tensor:
    return torch.stack([torch.stack(row).sum() for row in hand_answer_logps(logits, batch)])


def hand_prob_grads(hf, batch: Batch, params: list[Tensor]) -> list[Tensor]:
    """d(sum_b prod_tokens p)/d params, with P built as a product of token probabilities."""
    logits = hf(input_ids=batch.input_ids).logits
    total = sum(torch.stack([t.exp() for t in row]).prod() for row in hand_answer_logps(logits, batch))
    return [g.float() for g in torch.autograd.grad(total, params)]

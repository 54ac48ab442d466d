"""Plain fine-tuning on (prompt, answer) pairs with an answer-only loss.

Used to train the toy base model from scratch, and later by the relearning attacks. The loss is the mean
negative log-likelihood of the answer tokens; prompt tokens are context only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from neuronscope.batching import Batch, encode, encode_rows
from neuronscope.budget import check_training
from neuronscope.checks import at_least, positive
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.models.precision import precision_note
from neuronscope.scoring import answer_token_logprobs


def answer_nll(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> Float[Tensor, ""]:
    """Mean NLL over all answer tokens of the batch."""
    return -answer_token_logprobs(logits, batch).sum() / batch.answer_mask[:, 1:].sum().clamp(min=1)


def model_answer_nll(model: Model, batch: Batch, sparse: bool) -> Float[Tensor, ""]:
    """`answer_nll` of the model on `batch`; `sparse` (neuronscope.sparse_logits.sparse_ok) applies the head only
    at positions that predict an answer token, the same loss at a fraction of a large vocabulary's cost."""
    if not sparse:
        return answer_nll(model.hf(input_ids=batch.input_ids).logits, batch)
    from neuronscope.sparse_logits import answer_token_logprobs_sparse

    logp, _ = answer_token_logprobs_sparse(model.hf, batch)
    return -logp.sum() / batch.answer_mask[:, 1:].sum().clamp(min=1)


@dataclass
class FitResult:
    steps: int
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. half-precision weights this lr cannot move


def fit(
    model: Model,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    lr: float = 1e-3,
    batch_size: int = 32,
    max_epochs: int = 100,
    seed: int = 0,
    weight_decay: float = 0.0,
    max_steps: int | None = None,
    on_epoch: Callable[[int], bool] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> FitResult:
    """AdamW over shuffled mini-batches; `on_epoch(epoch)` returning True stops training.

    `max_steps` stops after that many optimiser steps in total (mid-epoch if need be), for step-budgeted runs
    such as the relearning attacks.
    """
    if not prompts:
        raise NeuronscopeError("nothing to train on: the training set is empty")
    positive(lr, "learning rate")
    at_least(batch_size, 1, "batch size")
    at_least(max_epochs, 1, "max epochs")
    widths = [len(ids) for ids, _ in encode_rows(model.tokenizer, prompts, answers)]
    check_training(model, widths, batch_size)  # a batch is never split: refuse one that cannot fit, now
    from neuronscope.sparse_logits import sparse_ok

    sparse = sparse_ok(model.hf)  # a large vocabulary: logits only where an answer token is predicted
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.hf.parameters(), lr=lr, weight_decay=weight_decay)
    notes = [n for n in [precision_note(model.hf.parameters(), lr)] if n]
    model.hf.train()
    t0, step, losses = time.perf_counter(), 0, []
    epoch = 0
    try:
        for epoch in range(1, max_epochs + 1):
            order = torch.randperm(len(prompts), generator=gen).tolist()
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = encode(model.tokenizer, [prompts[i] for i in idx], [answers[i] for i in idx])
                batch = batch.to(model.device)
                loss = model_answer_nll(model, batch, sparse)
                if not math.isfinite(loss.item()):
                    raise NeuronscopeError(f"training diverged: loss is {loss.item()} at step {step + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                losses.append(loss.item())
                if progress:
                    progress(step, loss.item())
                if max_steps is not None and step >= max_steps:
                    return FitResult(step, epoch, time.perf_counter() - t0, losses, stopped_early=True, notes=notes)
            if on_epoch is not None:
                model.hf.eval()
                stop = on_epoch(epoch)
                model.hf.train()
                if stop:
                    return FitResult(step, epoch, time.perf_counter() - t0, losses, stopped_early=True, notes=notes)
    finally:
        model.hf.eval()
    return FitResult(step, epoch, time.perf_counter() - t0, losses, notes=notes)

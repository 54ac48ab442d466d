"""Parameter attribution: A = phi * d(sum over a batch of P(y|x)) / d phi, for every trainable scalar.

This is the quantity Ssiuu's regulariser (docs/method.md section 4) acts on. P(y|x) is the probability of
the whole answer (the product over answer tokens), not its log, so examples the model already doubts weigh little.

Two forms are offered:
- `parameter_attribution` returns detached tensors, for analysis (one forward + one backward).
- `attribution_with_grad` returns A = phi * g.detach() still attached to phi, so a loss built from A differentiates
  as dA/dphi = g: the paper's "g treated as a constant" rule, which needs no second derivative.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from neuronscope.batching import Batch
from neuronscope.models.handle import Model
from neuronscope.scoring import answer_logprobs
from neuronscope.sparse_logits import answer_logits


def answer_probability_sum(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> Float[Tensor, ""]:
    """sum over the batch of P(y|x), P the product of answer-token probabilities."""
    return answer_logprobs(logits, batch).exp().sum()


def answer_probability_grads(model: Model, batch: Batch, params: Sequence[nn.Parameter] | None = None,
                             logits: Tensor | None = None, retain_graph: bool = False) -> list[Tensor]:
    """g = d(sum_b P(y|x))/d phi for each parameter in `params` (default: all trainable ones).

    Pass `logits` from a forward already done on `batch` (with `retain_graph=True` if that graph is used again)
    to share the forward pass with a training loss, with the batch they pair with; without them the logits are
    computed from the first answer-predicting position on for a large vocabulary (`answer_logits`).
    """
    params = list(params) if params is not None else [p for p in model.hf.parameters() if p.requires_grad]
    if logits is None:
        logits, batch = answer_logits(model.hf, batch.to(model.device))
    target = answer_probability_sum(logits, batch.to(logits.device))
    grads = torch.autograd.grad(target, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def attribution_with_grad(params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """A = phi * g.detach(): differentiable in phi with dA/dphi = g (no second derivative)."""
    return [p * g.detach() for p, g in zip(params, grads, strict=True)]


def parameter_attribution(model: Model, batch: Batch, params: Sequence[nn.Parameter] | None = None
                          ) -> dict[str, Tensor]:
    """Detached A = phi * dP/dphi per named parameter (default: every trainable parameter of `model.hf`)."""
    named = [(n, p) for n, p in model.hf.named_parameters() if p.requires_grad]
    if params is not None:
        wanted = {id(p) for p in params}
        named = [(n, p) for n, p in named if id(p) in wanted]
    grads = answer_probability_grads(model, batch, [p for _, p in named])
    return {n: (p.detach() * g).detach() for (n, p), g in zip(named, grads, strict=True)}

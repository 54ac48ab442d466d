"""Logits only where an answer token is predicted, instead of at every position of the batch.

SmolLM2-135M's unembedding (49,152 words x 576) is 28M multiply-adds per position against 106M for its 30 layers,
and the full (batch, pos, vocab) logits of a 64-row batch take ~150 MB. Scoring and the answer-only training loss
need the logits of the positions that predict an answer token only (a few per row, against every prompt position),
so the decoder runs once and the head is applied to those rows alone. The saving is that share of the work (about
a fifth of a forward pass on prompt positions) and the memory of the full logits, not more.

Used for models whose vocabulary is at least `SPARSE_MIN_VOCAB` and whose head is a plain linear map of the
final hidden state (no logit soft-capping or scaling).

Attribution, which runs through the TransformerBridge, applies the head from the first answer-predicting position
of the batch on (`first_answer_position`, `answer_logprobs_after`) above the same size. So do the unlearning
methods' losses (`answer_logits`: the forget and retain terms, the frozen references of NPO and DPO, Ssiuu's and
the anchor's attribution gradients, KLUE's localisation), which keep the (batch, pos, vocab) shape their loss
functions read: the logits from that position on with the batch cut there too, so every answer token keeps its
predicting logits and the losses are the same sums without the prompt positions' zero terms (slicing the hidden
states, made contiguous, before the head: transformers' `logits_to_keep` was measured slower). On SmolLM2 a GA step
took ~0.9 and an NPO step ~0.85 of its full-logits time; Ssiuu's was not resolved from the noise (docs/real-model.md).
RMU, which reads one block's output, runs the decoder without the head. ssiuu-neuron, which reads activations
through the bridge's hooks, keeps the bridge's full logits.

Below it (the toy models) every path keeps the full logits, so every number computed on them stays bit for bit
what it was. Measured on the toy: logits sliced from the first answer-predicting position gave bit-identical
scores on every scoring batch of the demos' checkpoints, but a training step's loss and lm_head gradient moved
(~4e-8: the head's weight gradient sums over a different number of rows) and attribution at batches of 1-3 moved
by up to 6e-8 (the head's products on few rows round differently), so neither is applied there.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformers import PreTrainedModel

from neuronscope.batching import Batch

SPARSE_MIN_VOCAB = 8192
_LOGIT_SCALES = ("logit_scale", "output_multiplier_scale", "logits_scaling")  # 1 leaves the logits as they are
_LOGIT_CAPS = ("final_logit_softcapping",)  # any value caps them (cap * tanh(logits / cap)); only None does not


def plain_head(hf: PreTrainedModel) -> bool:
    """Whether the logits are the output embedding applied to the base model's last hidden state, nothing more."""
    cfg = hf.config
    if hf.get_output_embeddings() is None:
        return False
    if any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _LOGIT_SCALES):
        return False
    if any(getattr(cfg, k, None) is not None for k in _LOGIT_CAPS):
        return False
    return getattr(hf, "base_model", None) is not None and hf.base_model is not hf


def sparse_ok(hf: PreTrainedModel) -> bool:
    """Whether `answer_logprobs_sparse` equals the model's own logits path (a plain head, a large vocabulary)."""
    return getattr(hf.config, "vocab_size", 0) >= SPARSE_MIN_VOCAB and plain_head(hf)


def first_answer_position(batch: Batch) -> int:
    """The first position of the batch whose logits predict an answer token (position j - 1 predicts token j)."""
    answer = batch.answer_mask
    return max(int(answer.any(0).nonzero()[0]) - 1, 0) if bool(answer.any()) else batch.input_ids.shape[1] - 1


def answer_logprobs_after(logits: Float[Tensor, "batch kept vocab"], batch: Batch, first: int
                          ) -> Float[Tensor, " batch"]:
    """log P(y|x) per row from the logits of positions first .. pos - 2 only (`scoring.answer_logprobs` of the
    full logits, without the rows that predict no answer token)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    token_logp = logp.gather(-1, batch.input_ids[:, first + 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logp * batch.answer_mask[:, first + 1:]).sum(-1)


def answer_logits(hf: PreTrainedModel, batch: Batch) -> tuple[Float[Tensor, "batch kept vocab"], Batch]:
    """The model's logits and the batch, both from `first_answer_position` on (`sparse_ok` models; else the full
    logits and `batch` itself), for the loss functions that pair logits[:, :-1] with input_ids[:, 1:].

    The decoder runs over every position; the head only over the kept ones (sliced hidden states made contiguous,
    measured faster than transformers' `logits_to_keep`). No answer token loses its logits: the positions cut
    predict prompt tokens in every row, terms the losses mask out."""
    if not sparse_ok(hf):
        return hf(input_ids=batch.input_ids).logits, batch
    first = first_answer_position(batch)
    hidden = hf.base_model(input_ids=batch.input_ids).last_hidden_state[:, first:].contiguous()
    kept = Batch(batch.input_ids[:, first:], batch.answer_mask[:, first:], batch.prompt_mask[:, first:])
    return hf.get_output_embeddings()(hidden), kept


def head_logprobs(hf: PreTrainedModel, hidden: Float[Tensor, "n d"], targets: Int[Tensor, " n"]) -> Float[Tensor, " n"]:
    """log p(target) of each final hidden state, the head applied to these rows only."""
    logits = hf.get_output_embeddings()(hidden)
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def answer_token_logprobs_sparse(hf: PreTrainedModel, batch: Batch
                                 ) -> tuple[Float[Tensor, " n"], Tensor]:
    """log p of every answer token (flattened, row-major) and the row each belongs to."""
    ids, answer = batch.input_ids, batch.answer_mask
    predicts = torch.zeros_like(answer)
    predicts[:, :-1] = answer[:, 1:]  # the hidden state at j-1 predicts the token at j
    hidden = hf.base_model(input_ids=ids).last_hidden_state
    logp = head_logprobs(hf, hidden[predicts], ids[:, 1:][answer[:, 1:]])
    rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1).expand_as(predicts)[predicts]
    return logp, rows


def answer_logprobs_sparse(hf: PreTrainedModel, batch: Batch) -> Float[Tensor, " batch"]:
    """log P(y|x) per row, as `scoring.answer_logprobs` computes it from full logits."""
    logp, rows = answer_token_logprobs_sparse(hf, batch)
    return torch.zeros(batch.input_ids.shape[0], dtype=logp.dtype, device=logp.device).index_add_(0, rows, logp)


__all__ = ["SPARSE_MIN_VOCAB", "answer_logits", "answer_logprobs_after", "answer_logprobs_sparse",
           "answer_token_logprobs_sparse", "first_answer_position", "head_logprobs", "plain_head", "sparse_ok"]

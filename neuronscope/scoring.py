"""Answer probabilities, multiple-choice accuracy and ROUGE-L recall; FS, RS and US.

A dataset says how it is scored (`dataset_metric`): ``mc`` (multiple choice, the world and FaithUn) or ``rouge``
(TOFU: ROUGE-L recall of the greedy answer against the gold answer). FS, RS and US are then the mean item score
of the forget, retain + test and utility base questions, and `stop_threshold` is where unlearning stops.

P(y|x) is the product over answer tokens of the next-token probabilities (the paper's attribution target).
Multiple choice picks the option with the highest log P(option|x), summed over the option's tokens: the
unnormalised likelihood, which is what `normalize="sum"` means. `normalize="mean"` divides by the option's
token count, for answers of unequal length. On the embedded world every option is one token, so both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from neuronscope.batching import Batch, encode_rows, pad_rows
from neuronscope.budget import check_dataset, scoring_batches
from neuronscope.data.schema import KINDS, QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model

Normalize = Literal["sum", "mean"]
Metric = Literal["mc", "rouge"]
METRICS: tuple[str, ...] = ("mc", "rouge")


def answer_token_logprobs(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> Float[Tensor, "batch pos_1"]:
    """log p of each next token, zeroed outside the answer (the logit at j-1 predicts token j)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logp = logp.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return token_logp * batch.answer_mask[:, 1:]


def answer_logprobs(logits: Float[Tensor, "batch pos vocab"], batch: Batch) -> Float[Tensor, " batch"]:
    """log P(y|x) per row: the sum of answer-token log-probabilities."""
    return answer_token_logprobs(logits, batch).sum(-1)


@torch.no_grad()
def _logprobs(model: Model, prompts: Sequence[str], answers: Sequence[str], batch_size: int
              ) -> tuple[Tensor, Tensor]:
    """log P(answer | prompt) and answer token counts, in batches of `batch_size` (a batch over the memory budget
    is split in order; one that fits is the same batch as ever: neuronscope.budget)."""
    from neuronscope.sparse_logits import answer_logprobs_sparse, sparse_ok

    if batch_size < 1:
        raise NeuronscopeError(f"batch size must be at least 1, got {batch_size}")
    sparse = sparse_ok(model.hf)  # a large vocabulary: logits only where an answer token is predicted
    rows = encode_rows(model.tokenizer, prompts, answers)
    out, lengths = [], []
    for part, width in scoring_batches(model, rows, batch_size):
        batch = pad_rows(model.tokenizer, rows[part.start:part.stop], width).to(model.device)
        if sparse:
            out.append(answer_logprobs_sparse(model.hf, batch).cpu())
        else:
            out.append(answer_logprobs(model.hf(input_ids=batch.input_ids).logits, batch).cpu())
        lengths.append(batch.answer_mask.sum(-1).cpu())
    if not out:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(out), torch.cat(lengths)


def answer_probabilities(model: Model, items: Sequence[QAItem], batch_size: int = 256) -> Float[Tensor, " n"]:
    """P(y|x) of each item's gold answer."""
    logp, _ = _logprobs(model, [it.question for it in items], [it.answer for it in items], batch_size)
    return logp.exp()


def option_scores(model: Model, items: Sequence[QAItem], normalize: Normalize = "sum", batch_size: int = 256
                  ) -> list[Tensor]:
    """Per item, the score of each option (log-likelihood, summed or averaged over tokens).

    Above `sparse_logits.SPARSE_MIN_VOCAB` the question runs once and its options share its cache
    (`prefix_scoring`): the same scores up to float rounding in ~40% of the time on SmolLM2's 3-option facts; the toy
    models keep the one-sequence-per-option path bit for bit."""
    for it in items:
        if len(it.options) < 2:
            raise NeuronscopeError(f"item {it.id!r} has fewer than 2 options; multiple choice needs them")
    from neuronscope.prefix_scoring import shared_prefix_logprobs, shared_prefix_ok

    if shared_prefix_ok(model.hf):  # a large vocabulary: each question runs once, its options share its cache
        logp, lengths = shared_prefix_logprobs(model, [it.question for it in items], [it.options for it in items],
                                               batch_size)
    else:
        prompts = [it.question for it in items for _ in it.options]
        answers = [o for it in items for o in it.options]
        logp, lengths = _logprobs(model, prompts, answers, batch_size)
    if normalize == "mean":
        logp = logp / lengths.clamp(min=1)
    scores, start = [], 0
    for it in items:
        scores.append(logp[start:start + len(it.options)])
        start += len(it.options)
    return scores


def gold_wins(flat_scores: Float[Tensor, " options"], items: Sequence[QAItem]) -> Tensor:
    """Boolean per item from its options' scores laid end to end: does gold beat every other option? Ties lose."""
    correct, start = [], 0
    for it in items:
        s = flat_scores[start:start + len(it.options)]
        gold = it.options.index(it.answer)
        correct.append(bool((s[gold] > torch.cat([s[:gold], s[gold + 1:]])).all()))
        start += len(it.options)
    return torch.tensor(correct, dtype=torch.bool)


def multiple_choice_correct(model: Model, items: Sequence[QAItem], normalize: Normalize = "sum",
                            batch_size: int = 256) -> Tensor:
    """Boolean per item: does the gold answer get the highest option score? Ties count as wrong."""
    scores = option_scores(model, items, normalize, batch_size)
    return gold_wins(torch.cat(scores) if scores else torch.zeros(0), items)


def fraction(scores: Tensor) -> float:
    """Mean of per-item scores as a Python float, nan when empty. Exact for booleans and 0/1 scores (8/24 must
    compare equal to 1/3, which float32 does not): their float64 sum is an exact integer."""
    return float(scores.double().sum().item()) / scores.numel() if scores.numel() else float("nan")


def multiple_choice_accuracy(model: Model, items: Sequence[QAItem], normalize: Normalize = "sum",
                             batch_size: int = 256) -> float:
    return split_score(model, items, "mc", normalize, batch_size)


def dataset_metric(ds: QADataset) -> str:
    """How `ds` is scored: its meta 'metric' (set by the TOFU loader), else multiple choice."""
    metric = ds.meta.get("metric", "mc")
    if metric not in METRICS:
        raise NeuronscopeError(f"dataset metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return metric


def stop_threshold(ds: QADataset) -> float:
    """Where unlearning stops: chance for multiple choice (mean 1/#options over the forget base items, 1/3 for
    3 options), TOFU's 0.1971 (or meta 'threshold') for ROUGE-L recall."""
    if "threshold" in ds.meta:
        return float(ds.meta["threshold"])
    if dataset_metric(ds) == "rouge":
        from neuronscope.rouge import TOFU_ROUGE_THRESHOLD

        return TOFU_ROUGE_THRESHOLD
    items = [it for it in ds.items("forget") if it.options]
    if not items:
        raise NeuronscopeError("the forget questions have no options: multiple choice has no chance level")
    return float(sum(Fraction(1, len(it.options)) for it in items) / len(items))  # exact: 1/3, not 0.33..32


def rouge_recalls(model: Model, items: Sequence[QAItem], max_new_tokens: int = 64, batch_size: int = 32
                  ) -> Float[Tensor, " n"]:
    """ROUGE-L recall of each item's greedy answer against its gold answer."""
    from neuronscope.generation import greedy_answers
    from neuronscope.rouge import rouge_l_recalls

    answers = greedy_answers(model, [it.question for it in items], max_new_tokens, batch_size)
    return torch.tensor(rouge_l_recalls(answers, [it.answer for it in items]), dtype=torch.float64)


def item_scores(model: Model, items: Sequence[QAItem], metric: str = "mc", normalize: Normalize = "sum",
                batch_size: int = 256) -> Float[Tensor, " n"]:
    """Per item, 1/0 (gold wins the multiple choice) or the ROUGE-L recall, as float64."""
    if metric == "rouge":
        return rouge_recalls(model, items)
    return multiple_choice_correct(model, items, normalize, batch_size).to(torch.float64)


def split_score(model: Model, items: Sequence[QAItem], metric: str = "mc", normalize: Normalize = "sum",
                batch_size: int = 256) -> float:
    """Mean item score: accuracy for multiple choice, mean ROUGE-L recall for TOFU."""
    if not items:
        return float("nan")
    return fraction(item_scores(model, items, metric, normalize, batch_size))


def items_known(model: Model, items: Sequence[QAItem], metric: str = "mc", threshold: float = 0.0
                ) -> Tensor:
    """Boolean per item: does the model still give the answer? (mc: gold wins; rouge: recall > threshold)."""
    if metric == "rouge":
        return rouge_recalls(model, items) > threshold
    return multiple_choice_correct(model, items)


@dataclass
class EvalReport:
    """FS, RS, US and the per-split, per-kind accuracies behind them."""

    fs: float  # forget-set score on base questions (lower = more forgotten)
    rs: float  # score on base questions of retain + test clusters
    us: float  # score on the utility set
    detail: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> kind -> accuracy
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    metric: str = "mc"  # mc: accuracies; rouge: mean ROUGE-L recalls

    def to_json(self) -> dict:
        return asdict(self)


def evaluate(model: Model, ds: QADataset, kinds: Sequence[str] = KINDS, normalize: Normalize = "sum",
             batch_size: int = 256, progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Score every split and kind once with the dataset's metric; FS/RS/US are read off the same item scores.

    `progress(items done, items in all)` after each split and kind (the CLI's bar and ETA)."""
    metric = dataset_metric(ds)
    check_dataset(model, ds)  # an item past the model's context or the memory budget: one error, before scoring
    detail: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    scores_by: dict[tuple[str, str], Tensor] = {}
    groups = [(split, kind) for split in [*ds.splits, "utility"] if split != "other" for kind in kinds]
    total, done = sum(len(ds.items(s, k)) for s, k in groups), 0
    for split, kind in groups:  # the order of splits, then kinds
        items = ds.items(split, kind)
        if not items:
            continue
        sc = item_scores(model, items, metric, normalize, batch_size)
        scores_by[split, kind] = sc
        detail.setdefault(split, {})[kind] = fraction(sc)
        counts.setdefault(split, {})[kind] = len(items)
        done += len(items)
        if progress is not None:
            progress(done, total)

    def pooled(*keys: tuple[str, str]) -> float:
        parts = [scores_by[k] for k in keys if k in scores_by]
        return fraction(torch.cat(parts)) if parts else float("nan")

    return EvalReport(
        fs=pooled(("forget", "base")),
        rs=pooled(("retain", "base"), ("test", "base")),
        us=pooled(("utility", "base")),
        detail=detail,
        counts=counts,
        metric=metric,
    )

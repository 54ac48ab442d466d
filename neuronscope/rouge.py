"""ROUGE-L recall, TOFU's forgetting score: the longest common subsequence of words over the reference length.

Computed with the `rouge-score` package (the implementation TOFU reports with: lower-cased alphanumeric words,
Porter stemming), so the 0.1971 stopping threshold means what it means in the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

# TOFU's stopping threshold on the forget set's mean ROUGE-L recall (docs/method.md section 5)
TOFU_ROUGE_THRESHOLD = 0.1971


@lru_cache(maxsize=1)
def _scorer():  # noqa: ANN202 - rouge_score has no type hints
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(prediction: str, reference: str) -> float:
    """LCS(prediction, reference) / len(reference), over stemmed lower-case words (0 for an empty reference)."""
    return float(_scorer().score(reference, prediction)["rougeL"].recall)


def rouge_l_recalls(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    return [rouge_l_recall(p, r) for p, r in zip(predictions, references, strict=True)]

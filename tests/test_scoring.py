"""P(y|x) and multiple-choice accuracy against hand computations from logits."""

from __future__ import annotations

import math

import torch

from neuronscope.base_model import BaseTrainResult
from neuronscope.batching import encode
from neuronscope.data.schema import QAItem
from neuronscope.scoring import answer_logprobs, answer_probabilities, evaluate, option_scores


def test_answer_probability_by_hand(tiny_trained: BaseTrainResult) -> None:
    model = tiny_trained.model
    tok = model.tokenizer
    item = tiny_trained.model and QAItem("x", "where was someone born ?", "food nine", ("food nine", "a", "b"))
    # by hand: one unbatched forward, softmax at the positions before each answer token, product
    prompt_ids = tok(item.question)["input_ids"]
    answer_ids = tok(" " + item.answer, add_special_tokens=False)["input_ids"]
    assert len(answer_ids) == 2
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        probs = torch.softmax(model.hf(input_ids=ids).logits[0].double(), -1)
    n = len(prompt_ids)
    expected = probs[n - 1, answer_ids[0]] * probs[n, answer_ids[1]]
    got = answer_probabilities(model, [item])
    assert math.isclose(got.item(), expected.item(), rel_tol=1e-4)


def test_padding_does_not_change_probabilities(tiny_trained: BaseTrainResult) -> None:
    """Right padding: a short item scored beside a long one gets the same P(y|x) as alone."""
    model = tiny_trained.model
    short = QAItem("s", "where was x born ?", "nine")
    long = QAItem("l", "in which country is the employer of a b based ? yes yes yes", "food nine food")
    alone = answer_probabilities(model, [short])
    together = answer_probabilities(model, [short, long])
    assert torch.allclose(alone, together[:1], rtol=1e-5)


def test_answer_logprobs_masks_prompt_and_padding() -> None:
    """A hand-built batch: uniform logits except one boosted answer logit."""
    batch = encode(_FakeTok(), ["a b", "a"], ["c", "c d"])
    vocab = 6
    logits = torch.zeros(2, batch.input_ids.shape[1], vocab)
    logits[0, 2, 4] = math.log(4.0)  # position 2 predicts token 4 ('c') of row 0 with p = 4/9
    got = answer_logprobs(logits, batch)
    assert math.isclose(got[0].item(), math.log(4 / 9), rel_tol=1e-6)
    assert math.isclose(got[1].item(), 2 * math.log(1 / 6), rel_tol=1e-6)


class _FakeTok:
    """Maps single letters to ids: bos=1, a=2..; enough to build a Batch by hand."""

    pad_token_id = 0

    def __call__(self, text: str | list[str], add_special_tokens: bool = True) -> dict:
        if isinstance(text, list):  # a batch, as HF tokenizers take one
            return {"input_ids": [self(t, add_special_tokens)["input_ids"] for t in text]}
        ids = [ord(w) - ord("a") + 2 for w in text.split()]
        return {"input_ids": ([1] if add_special_tokens else []) + ids}


def test_multiple_choice_and_normalisation(tiny_trained: BaseTrainResult) -> None:
    model = tiny_trained.model
    item = QAItem("x", "where was someone born ?", "nine", ("nine", "food nine", "eight"))
    s_sum = option_scores(model, [item], "sum")[0]
    s_mean = option_scores(model, [item], "mean")[0]
    assert torch.allclose(s_mean, s_sum / torch.tensor([1.0, 2.0, 1.0]))


def test_evaluate_on_the_trained_world(tiny_trained: BaseTrainResult) -> None:
    report = tiny_trained.report
    assert report.fs >= 0.95 and report.detail["retain"]["base"] >= 0.95
    again = evaluate(tiny_trained.model, _world(tiny_trained))
    assert again.fs == report.fs and again.rs == report.rs and again.us == report.us
    assert set(report.detail) == {"forget", "retain", "test", "utility"}


def _world(result: BaseTrainResult):
    from conftest import TINY_WORLD

    from neuronscope.data.world import build_world

    return build_world(TINY_WORLD)

"""ROUGE-L recall against a hand-written LCS, greedy answers against a token-by-token argmax loop, and the TOFU
metric end to end: FS = mean recall of greedy answers, unlearning stops at TOFU's 0.1971."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from neuronscope.data.schema import QADataset, QAItem
from neuronscope.generation import greedy_answers
from neuronscope.models.handle import load_model
from neuronscope.rouge import TOFU_ROUGE_THRESHOLD, rouge_l_recall
from neuronscope.scoring import evaluate, stop_threshold
from neuronscope.unlearn import UnlearnConfig, unlearn


def _lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_rouge_l_recall_hand_cases() -> None:
    assert rouge_l_recall("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l_recall("nothing in common", "the cat sat") == 0.0
    assert rouge_l_recall("anything", "") == 0.0
    # LCS "cat on mat" over 6 reference words; "sitting"/"sat" and "mats"/"mat" meet only through stemming
    assert rouge_l_recall("a cat was sitting on mats", "the cat sat on the mat") == pytest.approx(3 / 6)
    assert rouge_l_recall("Paris, France!", "paris") == 1.0  # case and punctuation do not count


def test_rouge_l_recall_matches_an_independent_lcs() -> None:
    words = ["alpha", "beta", "gamma", "delta", "zeta", "kappa", "omega"]  # the stemmer leaves these alone
    rng = random.Random(0)
    for _ in range(50):
        ref = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        pred = [rng.choice(words) for _ in range(rng.randint(0, 9))]
        assert rouge_l_recall(" ".join(pred), " ".join(ref)) == pytest.approx(_lcs(pred, ref) / len(ref))


def _argmax_loop(model, prompt: str, n: int) -> str:
    tok = model.tokenizer
    ids = tok(prompt)["input_ids"]
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model.hf(input_ids=torch.tensor([ids + out])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return tok.decode(out, skip_special_tokens=True).strip()


def test_greedy_answers_equal_an_argmax_loop_even_left_padded(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    items = tiny_world.items("forget")[:3] + [QAItem("long", "where was da leifex born ? and what is the "
                                                     "birthplace of da leifex ?", "x")]
    prompts = [it.question for it in items]
    batched = greedy_answers(model, prompts, max_new_tokens=4, batch_size=8)  # unequal lengths: left padding
    assert batched == [_argmax_loop(model, p, 4) for p in prompts]
    assert batched[0].split()[0] == items[0].answer  # the trained model says the fact


def _tofu_like(ds: QADataset) -> QADataset:
    """The world's base QA without options, scored like TOFU."""
    strip = {s: [replace(it, options=()) for it in ds.items(s)] for s in ("forget", "retain")}
    return QADataset(splits=strip, meta={"name": "tofu-like", "metric": "rouge"})


def test_tofu_metric_is_mean_recall_of_greedy_answers(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    ds = _tofu_like(tiny_world)
    model = load_model(tiny_ckpt, bridge=False)
    report = evaluate(model, ds)
    forget = ds.items("forget")
    said = greedy_answers(model, [it.question for it in forget])
    by_hand = sum(rouge_l_recall(a, it.answer) for a, it in zip(said, forget, strict=True)) / len(forget)
    assert report.metric == "rouge" and report.fs == pytest.approx(by_hand)
    assert report.fs > 0.5  # the trained model recalls its facts


def test_unlearning_stops_at_tofu_threshold(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    ds = _tofu_like(tiny_world)
    assert stop_threshold(ds) == TOFU_ROUGE_THRESHOLD
    result = unlearn(load_model(tiny_ckpt, bridge=False), ds, "ga", UnlearnConfig(lr=3e-3, max_steps=60))
    assert result.config["threshold"] == TOFU_ROUGE_THRESHOLD
    assert result.reached and result.fs <= TOFU_ROUGE_THRESHOLD
    fs_curve = [row["fs"] for row in result.curve if "fs" in row]
    assert fs_curve[0] > TOFU_ROUGE_THRESHOLD  # it started above and stopped at the first check below
    assert all(f > TOFU_ROUGE_THRESHOLD for f in fs_curve[:-1])


def test_generation_stays_within_the_model_positions(tiny_world: QADataset, tmp_path: Path) -> None:
    """GPT-2's learned positions end at n_positions: answers are cut there, and a prompt that fills them is an
    error rather than an index error deep in the model."""
    from family_helpers import build_family_checkpoint

    from neuronscope.errors import NeuronscopeError
    from neuronscope.models.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(tiny_world.all_text())
    model = load_model(build_family_checkpoint("gpt2", tok, tmp_path, max_position_embeddings=12), bridge=False)
    prompt = "where was da leifex born ?"  # 7 tokens with BOS: room for 5 more
    (answer,) = greedy_answers(model, [prompt], max_new_tokens=64)
    assert 0 < len(model.tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 5
    with pytest.raises(NeuronscopeError, match="no room to generate within the model's 12 positions"):
        greedy_answers(model, [" ".join(["born"] * 12)])

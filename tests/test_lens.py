"""The logit lens against a hand computation through plain HF forward hooks, norm and lm_head."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from family_helpers import hf_block_outputs  # the toy model is a Llama
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from neuronscope.base_model import BaseTrainResult
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.lens import lens_logits, logit_lens, pick_distractors, summarize_lens
from neuronscope.models.handle import Model, load_model
from neuronscope.models.tokenizer import build_word_tokenizer


def hand_logp(hf: PreTrainedModel, resid: torch.Tensor, final_norm: bool) -> torch.Tensor:
    with torch.no_grad():
        x = hf.model.norm(resid) if final_norm else resid
        return torch.log_softmax(hf.lm_head(x).float(), dim=-1)


def hand_first_token(hf: PreTrainedModel, tok, item: QAItem, distractor: str, final_norm: bool
                     ) -> list[tuple[float, float]]:
    """(log p gold, log p distractor) of the answers' first tokens at the last prompt token, per layer."""
    ids = torch.tensor([tok(item.question)["input_ids"]])
    gold = tok(" " + item.answer, add_special_tokens=False)["input_ids"][0]
    dist = tok(" " + distractor, add_special_tokens=False)["input_ids"][0]
    out = []
    for resid in hf_block_outputs(hf, "llama", ids):
        logp = hand_logp(hf, resid[0, -1], final_norm)
        out.append((logp[gold].item(), logp[dist].item()))
    return out


def hand_teacher_forced(hf: PreTrainedModel, tok, question: str, answer: str) -> list[float]:
    """Summed lens log-probability of every answer token, each read where it is predicted, per layer."""
    p_ids = tok(question)["input_ids"]
    a_ids = tok(" " + answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + a_ids])
    out = []
    for resid in hf_block_outputs(hf, "llama", ids):
        total = 0.0
        for k, target in enumerate(a_ids):
            total += hand_logp(hf, resid[0, len(p_ids) - 1 + k], True)[target].item()
        out.append(total)
    return out


@pytest.fixture(scope="module")
def plain(tiny_ckpt: Path) -> PreTrainedModel:
    """The trained checkpoint through plain transformers: no bridge, no neuronscope code on the path."""
    return AutoModelForCausalLM.from_pretrained(tiny_ckpt, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def lens_model(tiny_ckpt: Path) -> Model:
    return load_model(tiny_ckpt)


@pytest.mark.parametrize("final_norm", [True, False])
def test_lens_matches_hand_computation(lens_model: Model, plain: PreTrainedModel, tiny_world: QADataset,
                                       final_norm: bool) -> None:
    items = tiny_world.forget[:6] + tiny_world.utility[:3]
    rows = logit_lens(lens_model, items, seed=3, final_norm=final_norm, batch_size=4, per_item=True)
    assert sorted(rows["layer"].unique()) == [0, 1]
    for it in items:
        mine = rows[rows["item"] == it.id].sort_values("layer")
        distractor = mine["distractor"].iloc[0]
        assert distractor in it.options and distractor != it.answer
        for layer, (g, d) in enumerate(hand_first_token(plain, lens_model.tokenizer, it, distractor, final_norm)):
            row = mine[mine["layer"] == layer].iloc[0]
            assert row["logp_gold"] == pytest.approx(g, abs=1e-4)
            assert row["logp_distractor"] == pytest.approx(d, abs=1e-4)
            assert row["win"] == (1.0 if g > d else 0.0 if g < d else 0.5)
    summary = summarize_lens(rows)
    by_hand = rows.groupby("layer")["win"].mean()
    assert summary["accuracy"].tolist() == pytest.approx(by_hand.tolist())
    assert summary["n"].tolist() == [len(items)] * 2


def test_trained_model_knows_facts_at_last_layer(lens_model: Model, tiny_world: QADataset) -> None:
    table = logit_lens(lens_model, tiny_world.items("forget", "base"))
    assert list(table.columns) == ["layer", "accuracy", "n", "ties", "p_gold", "p_distractor"]
    assert table["accuracy"].iloc[-1] >= 0.9  # the base model answers its forget facts


def test_model_that_prefers_the_distractor_scores_below_chance(tiny_ckpt: Path, lens_model: Model,
                                                              tiny_world: QADataset) -> None:
    """Negating the unembedding reverses every lens comparison: accuracy becomes 1 - accuracy, late layers < 0.5."""
    flipped = load_model(tiny_ckpt, bridge=False)  # an own copy from disk: the fixture model stays untouched
    with torch.no_grad():
        head = flipped.hf.get_output_embeddings()
        head.weight.neg_()
        if head.bias is not None:
            head.bias.neg_()
    items = tiny_world.items("forget", "base") + tiny_world.items("retain", "base")
    before = logit_lens(lens_model, items, per_item=True)
    after = logit_lens(flipped, items, per_item=True)
    assert (after["distractor"] == before["distractor"]).all()  # the same seeded pairs
    assert after["win"].tolist() == pytest.approx((1 - before["win"]).tolist())
    accuracy = summarize_lens(after)["accuracy"]
    assert accuracy.iloc[-1] < 0.5
    assert accuracy.iloc[-1] <= 0.1


def test_last_layer_with_final_norm_is_the_model_logits(lens_model: Model, tiny_world: QADataset) -> None:
    ids = torch.tensor([lens_model.tokenizer(tiny_world.forget[0].question)["input_ids"]])
    lens = lens_logits(lens_model, ids)
    with torch.no_grad():
        logits = lens_model.hf(input_ids=ids).logits
    assert lens.shape == (2, *logits.shape)
    torch.testing.assert_close(lens[-1], logits, atol=1e-5, rtol=1e-5)
    raw = lens_logits(lens_model, ids, final_norm=False)
    assert not torch.allclose(raw[-1], logits, atol=1e-3)  # the norm matters, so the check above means something


def test_last_layer_is_the_model_logits_on_gpt2(tiny_world: QADataset, tmp_path: Path) -> None:
    """Architecture-agnostic: GPT-2's ln_f and its tied output embedding are found without naming them."""
    tok = build_word_tokenizer(tiny_world.all_text())
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    model = load_model(tmp_path)
    ids = torch.tensor([tok(tiny_world.forget[0].question)["input_ids"]])
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits
    torch.testing.assert_close(lens_logits(model, ids)[-1], logits, atol=1e-5, rtol=1e-5)
    assert len(logit_lens(model, tiny_world.forget[:3])) == 2


def test_teacher_forced_multi_token_answers(lens_model: Model, plain: PreTrainedModel) -> None:
    """Two-word answers: 'sum' adds each token's lens log-prob where it is predicted; 'mean' halves it."""
    item = QAItem("multi", "what is the job of someone ?", "baker pilot", ("baker pilot", "surgeon lawyer"))
    rows = logit_lens(lens_model, [item], answer_tokens="sum", per_item=True)
    gold = hand_teacher_forced(plain, lens_model.tokenizer, item.question, "baker pilot")
    dist = hand_teacher_forced(plain, lens_model.tokenizer, item.question, "surgeon lawyer")
    assert rows["logp_gold"].tolist() == pytest.approx(gold, abs=1e-4)
    assert rows["logp_distractor"].tolist() == pytest.approx(dist, abs=1e-4)
    mean = logit_lens(lens_model, [item], answer_tokens="mean", per_item=True)
    assert mean["logp_gold"].tolist() == pytest.approx([g / 2 for g in gold], abs=1e-4)
    # 'first' reads only the first token: a shared first word is a tie, counted as one half
    shared = QAItem("tie", "what is the job of someone ?", "baker pilot", ("baker pilot", "baker lawyer"))
    first = logit_lens(lens_model, [shared])
    assert first["accuracy"].tolist() == [0.5, 0.5] and first["ties"].tolist() == [1, 1]


def test_single_token_answers_agree_across_modes(lens_model: Model, tiny_world: QADataset) -> None:
    items = tiny_world.forget[:8]
    first = logit_lens(lens_model, items, per_item=True)
    summed = logit_lens(lens_model, items, answer_tokens="sum", per_item=True)
    pd.testing.assert_series_equal(first["win"], summed["win"])
    assert summed["logp_gold"].tolist() == pytest.approx(first["logp_gold"].tolist(), abs=1e-5)


def test_position_parameter(lens_model: Model, plain: PreTrainedModel, tiny_world: QADataset) -> None:
    item = tiny_world.forget[0]
    rows = logit_lens(lens_model, [item], position=0, per_item=True)  # the <bos> position
    ids = torch.tensor([lens_model.tokenizer(item.question)["input_ids"]])
    gold = lens_model.tokenizer(" " + item.answer, add_special_tokens=False)["input_ids"][0]
    for layer, resid in enumerate(hf_block_outputs(plain, "llama", ids)):
        assert rows["logp_gold"].iloc[layer] == pytest.approx(hand_logp(plain, resid[0, 0], True)[gold].item(),
                                                              abs=1e-4)


def test_distractors_are_seeded_per_item(tiny_world: QADataset) -> None:
    items = tiny_world.forget
    a = pick_distractors(items, seed=0)
    assert a == pick_distractors(items, seed=0)
    assert pick_distractors(items[5:], seed=0) == a[5:]  # independent of which subset is scored
    assert a != pick_distractors(items, seed=1)
    assert all(d in it.options and d != it.answer for d, it in zip(a, items, strict=True))


def test_bad_inputs(lens_model: Model, tiny_world: QADataset, tiny_trained: BaseTrainResult) -> None:
    item = tiny_world.forget[0]
    with pytest.raises(NeuronscopeError, match="item 'x' has no false option"):
        logit_lens(lens_model, [QAItem("x", "where ?", "paris")])
    with pytest.raises(NeuronscopeError, match="no items"):
        logit_lens(lens_model, [])
    with pytest.raises(NeuronscopeError, match="answer_tokens must be one of"):
        logit_lens(lens_model, [item], answer_tokens="last")
    with pytest.raises(NeuronscopeError, match="position -99 lies outside"):
        logit_lens(lens_model, [item], position=-99)
    with pytest.raises(NeuronscopeError, match="applies to answer_tokens='first' only"):
        logit_lens(lens_model, [item], position=0, answer_tokens="sum")

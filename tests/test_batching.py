"""Batches: tokenising a whole list at once gives the ids of one call per string; masks built by hand agree."""

from __future__ import annotations

import pytest

from neuronscope.batching import encode, encode_row, encode_rows
from neuronscope.data.schema import QADataset
from neuronscope.models.tokenizer import build_word_tokenizer


def test_encode_rows_equals_one_call_per_string(tiny_world: QADataset) -> None:
    tok = build_word_tokenizer(tiny_world.all_text())
    items = tiny_world.items("forget", "base")[:6] + tiny_world.items("retain", "base")[:5]
    prompts = [it.question for it in items]
    prompts[2] = tok.bos_token + prompts[2]  # a rendered chat prompt that already carries BOS: none is added
    answers = [it.answer for it in items]
    rows = encode_rows(tok, prompts, answers)
    assert rows == [encode_row(tok, p, a) for p, a in zip(prompts, answers, strict=True)]
    assert rows[2][0].count(tok.bos_token_id) == 1
    batch = encode(tok, prompts, answers)
    width = max(len(ids) for ids, _ in rows)
    assert batch.input_ids.shape == (len(items), width)
    for i, (ids, n_prompt) in enumerate(rows):  # masks, by hand, row by row
        assert batch.input_ids[i, :len(ids)].tolist() == ids
        assert (batch.input_ids[i, len(ids):] == tok.pad_token_id).all()
        assert batch.prompt_mask[i].tolist() == [j < n_prompt for j in range(width)]
        assert batch.answer_mask[i].tolist() == [n_prompt <= j < len(ids) for j in range(width)]


def test_encode_rows_rejects_an_empty_answer_and_mismatched_lengths(tiny_world: QADataset) -> None:
    tok = build_word_tokenizer(tiny_world.all_text())
    q = tiny_world.forget[0].question
    with pytest.raises(ValueError, match="encodes to no tokens"):
        encode_rows(tok, [q], [""])
    with pytest.raises(ValueError, match="differ in length"):
        encode_rows(tok, [q, q], ["a"])
    assert encode_rows(tok, [], []) == []


def test_pairs_are_tokenised_once_per_tokenizer(tiny_world: QADataset) -> None:
    """A second call reads the remembered ids (no tokenizer call) and returns rows equal to tokenising afresh,
    which a caller may change without touching the memo; a token added to the tokenizer is seen."""
    tok = build_word_tokenizer(tiny_world.all_text())
    items = tiny_world.items("forget", "base")[:5]
    prompts, answers = [it.question for it in items], [it.answer for it in items]
    first = encode_rows(tok, prompts, answers)
    assert first == [encode_row(tok, p, a) for p, a in zip(prompts, answers, strict=True)]
    calls: list[int] = []
    real_call = type(tok).__call__

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(1)
        return real_call(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(tok), "__call__", counting)
        again = encode_rows(tok, prompts, answers)
        assert calls == [] and again == first
        again[0][0].append(-1)  # the caller's copy, not the memo's
        assert encode_rows(tok, prompts[:1], answers[:1]) == first[:1] and calls == []
        encode_rows(tok, prompts[:1], ["an unseen answer"])  # a new pair is tokenised
        assert calls
    tok.add_tokens([answers[0] + "xyz"])
    calls.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(tok), "__call__", counting)
        encode_rows(tok, prompts, answers)
        assert calls  # the tokenizer changed size: tokenised afresh

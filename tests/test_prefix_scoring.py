"""Option scores with the question's cache shared by its options, against one (question + option) sequence per
option through the model's own full logits, on every family with a vocabulary on the shared path; the toy keeps
the one-sequence path."""

from __future__ import annotations

import pytest
import torch

from neuronscope import scoring, sparse_logits
from neuronscope.batching import encode_rows, pad_rows
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.models.handle import Model, load_model
from neuronscope.prefix_scoring import shared_prefix_logprobs, shared_prefix_ok

FAMILIES = ("llama", "qwen2", "gemma2", "gpt2", "gpt_neox")


def full_logits_scores(model: Model, prompts: list[str], answers: list[str]) -> torch.Tensor:
    """log P(answer | prompt) one pair at a time from the full logits: no batch, no padding, no cache."""
    out = []
    with torch.no_grad():
        for row in encode_rows(model.tokenizer, prompts, answers):
            batch = pad_rows(model.tokenizer, [row])
            logits = model.hf(input_ids=batch.input_ids).logits
            out.append(scoring.answer_logprobs(logits, batch)[0])
    return torch.stack(out)


def _items(ds: QADataset) -> list[QAItem]:
    """Questions of several token counts, with options of one to three words and two to four options each."""
    base = ds.items("forget", "base") + ds.items("retain", "base")
    words = sorted({it.answer for it in base})
    items = []
    for i, it in enumerate(base[:9]):
        others = [w for w in words if w != it.answer]
        k = 2 + i % 3
        options = [it.answer, f"{others[i % len(others)]} {others[(i + 1) % len(others)]}",
                   f"{others[i % len(others)]} {it.answer} {others[(i + 2) % len(others)]}", others[i % len(others)]]
        question = it.question + " really" * (i % 4)  # several prompt lengths, several items per length
        items.append(QAItem(id=f"q{i}", question=question, answer=it.answer, options=tuple(options[:k]),
                            cluster=it.cluster, kind="base", fact=it.fact))
    return items


@pytest.fixture(scope="module", params=FAMILIES)
def big(request: pytest.FixtureRequest, tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Model:
    from family_helpers import build_family_checkpoint

    from neuronscope.models.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(tiny_world.all_text())
    path = build_family_checkpoint(request.param, tok, tmp_path_factory.mktemp(f"big-{request.param}") / "ckpt",
                                   vocab_size=sparse_logits.SPARSE_MIN_VOCAB)
    return load_model(path, bridge=False)


@pytest.mark.parametrize("batch_size", [256, 3, 1])
def test_shared_prefix_scores_equal_one_sequence_per_option(big: Model, tiny_world: QADataset,
                                                            batch_size: int) -> None:
    items = _items(tiny_world)
    prompts = [it.question for it in items for _ in it.options]
    answers = [o for it in items for o in it.options]
    lengths = [len(ids) - n for ids, n in encode_rows(big.tokenizer, prompts, answers)]
    assert {1, 2, 3} <= set(lengths)
    assert len({n for _, n in encode_rows(big.tokenizer, [it.question for it in items], ["x"] * len(items))}) > 2
    expected = full_logits_scores(big, prompts, answers)
    if not shared_prefix_ok(big.hf):  # Gemma2's soft-capped head: the one-sequence path, full logits
        torch.testing.assert_close(torch.cat(scoring.option_scores(big, items, batch_size=batch_size)), expected,
                                   rtol=1e-5, atol=2e-5)
        return
    logp, n_tokens = shared_prefix_logprobs(big, [it.question for it in items], [it.options for it in items],
                                            batch_size)
    assert n_tokens.tolist() == lengths
    torch.testing.assert_close(logp, expected, rtol=1e-5, atol=2e-5)
    assert torch.equal(torch.cat(scoring.option_scores(big, items, batch_size=batch_size)), logp)


def test_every_family_with_a_plain_head_takes_the_shared_path(big: Model) -> None:
    # the tiny Gemma2 caps its logits at 1.0 (cap * tanh(logits / cap), not the identity a scale of 1 is), so
    # neither the sparse head nor the shared path may be used on it
    gemma2 = big.hf.config.model_type == "gemma2"
    assert shared_prefix_ok(big.hf) == sparse_logits.sparse_ok(big.hf) == (not gemma2)


def test_the_toy_keeps_one_sequence_per_option_bit_for_bit(tiny_trained, tiny_world: QADataset) -> None:
    toy = tiny_trained.model
    assert not shared_prefix_ok(toy.hf)
    items = tiny_world.items("forget", "base")
    prompts = [it.question for it in items for _ in it.options]
    answers = [o for it in items for o in it.options]
    expected, _ = scoring._logprobs(toy, prompts, answers, 256)
    assert torch.equal(torch.cat(scoring.option_scores(toy, items)), expected)


def test_no_items_and_a_bad_batch_size(big: Model) -> None:
    logp, n = shared_prefix_logprobs(big, [], [], 8)
    assert logp.numel() == 0 and n.numel() == 0
    from neuronscope.errors import NeuronscopeError

    with pytest.raises(NeuronscopeError, match="batch size"):
        shared_prefix_logprobs(big, ["a"], [["b", "c"]], 0)

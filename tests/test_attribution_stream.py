"""Streaming attribution: per-neuron sums instead of per-example rows, parameters frozen during the pass."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch

from neuronscope.attribution import neurons
from neuronscope.attribution.influence import influence_from_scores
from neuronscope.attribution.neurons import attribution_scores
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import load_model


def test_streamed_sums_equal_per_example_means(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt)
    items = tiny_world.forget[:7]
    kept = attribution_scores(model, items, batch_size=3, keep_examples=True)
    streamed = attribution_scores(model, items, batch_size=2, keep_examples=False)
    assert streamed.max == {} and not streamed.has_examples
    with pytest.raises(NeuronscopeError, match="not kept"):
        streamed.stacked()
    a_max, a_min = kept.stacked()  # independent: plain means of the kept per-example rows
    mean_max, mean_max_pos, mean_min = streamed.means()
    torch.testing.assert_close(mean_max, a_max.double().mean(0), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(mean_max_pos, a_max.double().clamp(min=0).mean(0), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(mean_min, a_min.double().mean(0), rtol=1e-5, atol=1e-9)
    assert streamed.n_neurons == kept.n_neurons == a_max.shape[1]
    other = attribution_scores(load_model(tiny_ckpt, dtype=torch.float64), items, keep_examples=True)
    exact, fast = influence_from_scores(other, kept), influence_from_scores(other, streamed)
    np.testing.assert_allclose(fast["d_plus_raw"], exact["d_plus_raw"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(fast["d_minus_raw"], exact["d_minus_raw"], rtol=1e-5, atol=1e-9)


def test_parameters_frozen_for_the_pass_and_restored(tiny_ckpt: Path, tiny_world: QADataset,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(tiny_ckpt)
    params = list(model.hf.parameters())
    params[0].requires_grad_(False)  # a mix of flags, to see each one restored
    flags = [p.requires_grad for p in params]
    seen: list[bool] = []
    original = neurons._Pass.run  # one forward + backward per batch

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(any(p.requires_grad for p in model.bridge.parameters()))
        return original(*args, **kwargs)

    monkeypatch.setattr(neurons._Pass, "run", spy)
    items = tiny_world.forget[:4]
    frozen = attribution_scores(model, items, batch_size=2)
    assert seen == [False, False]  # no parameter of the bridge (shared with the HF model) needed a gradient
    assert [p.requires_grad for p in params] == flags and all(p.grad is None for p in params)
    # the gradient still reaches every hooked activation: same values as with parameters left requiring grad
    monkeypatch.setattr(neurons, "frozen_parameters", lambda m: contextlib.nullcontext())
    for p in params:
        p.requires_grad_(True)
    unfrozen = attribution_scores(model, items, batch_size=2)
    for hook in frozen.max:
        assert frozen.max[hook].abs().max() > 0
        torch.testing.assert_close(frozen.max[hook], unfrozen.max[hook], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(frozen.min[hook], unfrozen.min[hook], rtol=1e-6, atol=1e-9)


def test_large_vocabulary_head_only_from_the_first_answer_position(tiny_world: QADataset, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Above SPARSE_MIN_VOCAB the bridge's head runs on the answer-predicting positions only; the attributions
    equal those of the full logits (the same model with the threshold raised past its vocabulary)."""
    from family_helpers import build_family_checkpoint

    from neuronscope import sparse_logits
    from neuronscope.models.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(tiny_world.all_text())
    vocab = sparse_logits.SPARSE_MIN_VOCAB
    model = load_model(build_family_checkpoint("llama", tok, tmp_path / "big", vocab_size=vocab))
    items = tiny_world.forget[:6]
    rows: list[tuple[int, int]] = []  # (positions into the head's hook, positions the head computes)
    original = neurons._Pass._from_first

    def spy(self, module, args):  # noqa: ANN001, ANN202
        out = original(self, module, args)
        rows.append((args[0].shape[1], out[0].shape[1]))
        return out

    monkeypatch.setattr(neurons._Pass, "_from_first", spy)
    sliced = attribution_scores(model, items, batch_size=3)
    assert rows and all(0 < n < width - 1 for width, n in rows)  # prompt positions before the first are cut
    monkeypatch.setattr(neurons, "SPARSE_MIN_VOCAB", vocab + 1)
    rows.clear()
    full = attribution_scores(model, items, batch_size=3)
    assert rows == []
    for hook in full.max:
        assert full.max[hook].abs().max() > 0
        torch.testing.assert_close(sliced.max[hook], full.max[hook], rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(sliced.min[hook], full.min[hook], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("vocab", ["toy", "large"])
def test_hf_modules_and_bridge_hook_points_give_the_same_attributions(vocab: str, tiny_ckpt: Path,
                                                                      tiny_world: QADataset, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass hooks the HF model's own projection modules where the family names them; the bridge's hook points
    see the same tensors, so every attribution is the same bit for bit (toy vocabulary: full logits; a large one:
    the head cut to the answer-predicting positions, on the HF lm_head or on the bridge's unembedding input)."""
    import functools

    from family_helpers import build_family_checkpoint

    from neuronscope import sparse_logits
    from neuronscope.models.tokenizer import build_word_tokenizer

    if vocab == "toy":
        model = load_model(tiny_ckpt)
    else:
        tok = build_word_tokenizer(tiny_world.all_text())
        model = load_model(build_family_checkpoint("llama", tok, tmp_path / "big",
                                                   vocab_size=sparse_logits.SPARSE_MIN_VOCAB))
    projs = neurons.projections(model.bridge)
    hf_sites, bridge_sites = neurons.pass_sites(model, projs), neurons.pass_sites(model, projs, tree="bridge")
    assert (hf_sites.on, bridge_sites.on) == ("hf", "bridge")
    assert (hf_sites.head is None) == (bridge_sites.head is None) == (vocab == "toy")
    items = tiny_world.forget[:7]
    via_hf = attribution_scores(model, items, batch_size=3)
    monkeypatch.setattr(neurons, "pass_sites", functools.partial(neurons.pass_sites, tree="bridge"))
    via_bridge = attribution_scores(model, items, batch_size=3)
    for hook in via_bridge.max:
        assert via_bridge.max[hook].abs().max() > 0
        assert torch.equal(via_hf.max[hook], via_bridge.max[hook]) and torch.equal(via_hf.min[hook],
                                                                                   via_bridge.min[hook])
        assert torch.equal(via_hf.sum_max[hook], via_bridge.sum_max[hook])


def test_a_fused_qkv_family_attributes_through_the_bridge(tiny_world: QADataset, tmp_path: Path) -> None:
    from family_helpers import build_family_checkpoint

    from neuronscope.models.tokenizer import build_word_tokenizer

    model = load_model(build_family_checkpoint("gpt2", build_word_tokenizer(tiny_world.all_text()), tmp_path / "g"))
    assert neurons.pass_sites(model, neurons.projections(model.bridge)).on == "bridge"


def test_a_pass_on_the_hf_modules_switches_their_dropout_off(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt)
    items = tiny_world.forget[:4]
    want = attribution_scores(model, items)
    for block in model.hf.model.layers:
        block.self_attn.attention_dropout = 0.5  # Llama's attention dropout, live in train mode only
    model.hf.train()
    got = attribution_scores(model, items)
    assert model.hf.training  # the flag is put back
    for hook in want.max:
        assert torch.equal(got.max[hook], want.max[hook]) and torch.equal(got.min[hook], want.min[hook])

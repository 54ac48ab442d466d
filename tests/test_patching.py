"""The causal patching test: patching every neuron gives the base model back, patching none changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from attribution_helpers import unlearn_blocks

from neuronscope.attribution.influence import influence_variation
from neuronscope.attribution.neurons import attribute_neurons
from neuronscope.attribution.patching import default_ms, outside_blocks_equal, patching_curves
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models import load_model
from neuronscope.models.handle import Model
from neuronscope.scoring import fraction, multiple_choice_correct


@pytest.fixture(scope="module")
def pair(tiny_ckpt: Path, tiny_world: QADataset) -> tuple[Model, Model]:
    base = load_model(tiny_ckpt)
    unlearned = load_model(tiny_ckpt, bridge=False)  # a fresh copy: the checkpoint directory is never touched
    unlearn_blocks(unlearned, tiny_world.items("forget"))
    _ = unlearned.bridge
    return base, unlearned


def test_default_ms() -> None:
    assert default_ms(1234) == [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1234]
    assert default_ms(10) == [0, 1, 2, 5, 10]


def test_patch_all_is_base_and_patch_none_is_unlearned(pair: tuple[Model, Model], tiny_world: QADataset) -> None:
    base, unlearned = pair
    items = tiny_world.items("forget")
    base_acc = fraction(multiple_choice_correct(base, items))
    unl_acc = fraction(multiple_choice_correct(unlearned, items))
    assert base_acc - unl_acc > 0.2, "unlearning must hurt, or the test proves nothing"
    influence = influence_variation(attribute_neurons(base, items), attribute_neurons(unlearned, items))
    n = len(influence)
    result = patching_curves(base, unlearned, items, influence, ms=[0, 5, 100, n], batch_size=40)
    assert result.outside_blocks_equal
    assert result.base_accuracy == base_acc
    assert result.unlearned_accuracy == unl_acc
    assert result.all_neurons_accuracy == base_acc
    c = result.curves.set_index(["selection", "m"])["forget_accuracy"]
    for sel in ("d_minus", "d_plus", "random"):
        assert c[sel, 0] == unl_acc
        assert c[sel, n] == base_acc
    assert set(result.curves["m"]) == {0, 5, 100, n}
    # the random control is seeded: the same seed gives the same curve
    again = patching_curves(base, unlearned, items, influence, ms=[100], seed=0, batch_size=40)
    assert again.curves.set_index(["selection", "m"])["forget_accuracy"]["random", 100] == c["random", 100]
    s = result.summary(100)
    assert s["m"] == 100 and set(s) >= {"d_minus_accuracy", "d_plus_accuracy", "random_accuracy"}


def test_outside_blocks_and_bad_inputs(pair: tuple[Model, Model], tiny_ckpt: Path, tiny_world: QADataset) -> None:
    base, unlearned = pair
    assert outside_blocks_equal(base, unlearned)
    other = load_model(tiny_ckpt, bridge=False)
    with torch.no_grad():
        other.hf.get_input_embeddings().weight.add_(0.01)
    assert not outside_blocks_equal(base, other)
    influence = influence_variation(attribute_neurons(base, tiny_world.forget[:2]),
                                    attribute_neurons(base, tiny_world.forget[:2]))
    with pytest.raises(NeuronscopeError):
        patching_curves(base, unlearned, [], influence)
    with pytest.raises(NeuronscopeError):
        patching_curves(base, unlearned, tiny_world.forget[:2], influence.iloc[:10])


def test_hf_modules_and_bridge_hook_points_patch_alike(pair: tuple[Model, Model], tiny_world: QADataset,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Patching hooks the HF modules behind the bridge's hook points (attribution's `pass_sites`); forced onto
    the hook points themselves it gives the same curves, bit for bit."""
    import functools

    from neuronscope.attribution import patching

    base, unlearned = pair
    items = tiny_world.items("forget")[:12]
    influence = influence_variation(attribute_neurons(base, items), attribute_neurons(unlearned, items))
    n = len(influence)
    via_hf = patching_curves(base, unlearned, items, influence, ms=[0, 5, 100, n], batch_size=16)
    monkeypatch.setattr(patching, "pass_sites", functools.partial(patching.pass_sites, tree="bridge"))
    via_bridge = patching_curves(base, unlearned, items, influence, ms=[0, 5, 100, n], batch_size=16)
    assert via_hf.curves.equals(via_bridge.curves)
    assert (via_hf.base_accuracy, via_hf.all_neurons_accuracy) == (via_bridge.base_accuracy,
                                                                   via_bridge.all_neurons_accuracy)
    assert via_hf.curves["forget_accuracy"].nunique() > 1  # the patched sets changed something


@pytest.fixture(scope="module")
def big_pair(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, Model]:
    """A random Llama over 8,192 words (the shared-prefix path) and a copy changed inside its blocks only."""
    from family_helpers import build_family_checkpoint

    from neuronscope import sparse_logits
    from neuronscope.models.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(tiny_world.all_text())
    path = build_family_checkpoint("llama", tok, tmp_path_factory.mktemp("big-patch") / "ckpt",
                                   vocab_size=sparse_logits.SPARSE_MIN_VOCAB)
    base, unlearned = load_model(path, bridge=False), load_model(path, bridge=False)
    unlearn_blocks(unlearned, tiny_world.items("forget")[:12], steps=4, lr=1e-2)
    return base, unlearned


def test_shared_prefix_patching_equals_one_sequence_per_option(big_pair: tuple[Model, Model],
                                                              tiny_world: QADataset,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On a large vocabulary each question runs once and the patch is applied in both of its passes (question,
    then options on its cache); every option's log-likelihood, unpatched and under every patch, equals the
    one-sequence-per-option path's up to float rounding, and patching every neuron gives the base's."""
    from neuronscope.attribution import patching
    from neuronscope.prefix_scoring import shared_prefix_ok

    base, unlearned = big_pair
    assert shared_prefix_ok(unlearned.hf)
    items = tiny_world.items("forget")[:12]
    lengths = {len(unlearned.tokenizer(" " + o, add_special_tokens=False)["input_ids"])
               for it in items for o in it.options}
    assert lengths == {1} or len(lengths) > 1  # options of one word each: the options' pass is then empty
    items = [type(it)(**{**it.__dict__, "options": (*it.options, f"{next(o for o in it.options if o != it.answer)} "
                                                                f"{it.answer}")})
             for it in items]  # a fourth option of two words in every item: the options' pass runs
    influence = influence_variation(attribute_neurons(base, items), attribute_neurons(unlearned, items))
    n = len(influence)
    seen: dict[str, tuple[torch.Tensor, dict]] = {}

    def recording(path: str):  # noqa: ANN202
        def record(base_m, unl_m, its, keys, ms, n_, base_logp, patched_logp):  # noqa: ANN001, ANN202
            seen[path] = (base_logp, patched_logp)
            return result_of(base_m, unl_m, its, keys, ms, n_, base_logp, patched_logp)
        return record

    result_of = patching._result
    monkeypatch.setattr(patching, "_result", recording("shared"))
    shared = patching_curves(base, unlearned, items, influence, ms=[0, 5, 100, n], batch_size=7)
    monkeypatch.setattr(patching, "shared_prefix_ok", lambda hf: False)
    monkeypatch.setattr(patching, "_result", recording("one sequence"))
    one = patching_curves(base, unlearned, items, influence, ms=[0, 5, 100, n], batch_size=7)
    (b_shared, p_shared), (b_one, p_one) = seen["shared"], seen["one sequence"]
    assert b_shared.shape == (4 * len(items),)
    torch.testing.assert_close(b_shared, b_one, rtol=1e-5, atol=2e-5)
    assert set(p_shared) == set(p_one)
    for key in p_one:
        torch.testing.assert_close(p_shared[key], p_one[key], rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(p_shared["all", n], b_shared, rtol=1e-5, atol=2e-5)  # every neuron: the base
    assert not torch.allclose(p_shared["none", 0], b_shared, atol=1e-3)  # the unlearning changed the scores
    assert shared.curves.equals(one.curves)

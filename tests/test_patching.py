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

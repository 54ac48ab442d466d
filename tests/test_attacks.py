"""Relearning attacks: what they train on, what they measure, and the max-over-trajectory rule."""

from __future__ import annotations

import pytest
from conftest import TINY_TOY

import neuronscope.attacks as attacks_mod
from neuronscope.attacks import AttackConfig, attack, harmful_split, max_over_trajectory
from neuronscope.base_model import new_toy_model
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model, load_model
from neuronscope.scoring import multiple_choice_correct

FAST = {"steps": 4, "eval_every": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def untrained(tiny_world: QADataset) -> Model:
    """A model that answers about 2/3 of the forget items wrongly: room for the harmful attack to draw from."""
    return new_toy_model(tiny_world, TINY_TOY, seed=3)


def test_max_over_trajectory_excludes_the_unattacked_start() -> None:
    traj = [{"step": 0, "fs": 0.9}, {"step": 2, "fs": 0.4}, {"step": 4, "fs": 0.6}, {"step": 6, "fs": 0.5}]
    assert max_over_trajectory(traj) == 0.6
    with pytest.raises(ValueError):
        max_over_trajectory([{"step": 0, "fs": 0.5}])


def test_harmful_trains_only_on_wrong_items_and_never_on_measured_ones(
        untrained: Model, tiny_world: QADataset, monkeypatch: pytest.MonkeyPatch) -> None:
    forget = tiny_world.items("forget")
    wrong = {it.id for it, ok in zip(forget, multiple_choice_correct(untrained, forget).tolist(), strict=True)
             if not ok}
    assert 3 <= len(wrong) < len(forget)
    seen: list[str] = []
    real_fit = attacks_mod.fit

    def spy(model, prompts, answers, **kw):  # noqa: ANN001, ANN202
        seen.extend(prompts)
        return real_fit(model, prompts, answers, **kw)

    monkeypatch.setattr(attacks_mod, "fit", spy)
    result = attack(untrained.clone(), tiny_world, AttackConfig(kind="harmful", p=0.3, seed=1, **FAST))
    assert len(result.train_ids) == round(0.3 * len(forget))
    assert set(result.train_ids) <= wrong
    assert not set(result.train_ids) & set(result.eval_ids)
    assert set(result.train_ids) | set(result.eval_ids) == {it.id for it in forget}
    by_id = {it.id: it for it in forget}
    measured_questions = {by_id[i].question for i in result.eval_ids}
    assert seen and set(seen) == {by_id[i].question for i in result.train_ids}
    assert not set(seen) & measured_questions
    assert result.n_wrong == len(wrong)


def test_attack_trajectory_max_and_determinism(untrained: Model, tiny_world: QADataset) -> None:
    cfg = AttackConfig(kind="harmful", p=0.3, lr=3e-3, seed=0, **FAST)
    a = attack(untrained.clone(), tiny_world, cfg)
    b = attack(untrained.clone(), tiny_world, cfg)
    assert [pt["step"] for pt in a.trajectory] == [0, 2, 4]
    assert a.max_fs == max(pt["fs"] for pt in a.trajectory[1:])
    assert a.start_fs == a.trajectory[0]["fs"] and a.final_fs == a.trajectory[-1]["fs"]
    assert a.to_json() | {"seconds": 0} == b.to_json() | {"seconds": 0}
    other = attack(untrained.clone(), tiny_world, AttackConfig(kind="harmful", p=0.3, seed=5, **FAST))
    assert other.train_ids != a.train_ids  # the seed draws a different subset (6 of 16 wrong items here)


def test_attack_changes_the_model_in_place_and_the_clone_protects_the_original(
        untrained: Model, tiny_world: QADataset) -> None:
    before = {k: v.clone() for k, v in untrained.hf.state_dict().items()}
    attacked = untrained.clone()
    attack(attacked, tiny_world, AttackConfig(kind="benign", seed=0, **FAST))
    after = untrained.hf.state_dict()
    assert all((before[k] == after[k]).all() for k in before)
    assert any((before[k] != v).any() for k, v in attacked.hf.state_dict().items())


def test_benign_trains_on_the_benign_corpus_and_measures_all_forget_items(
        untrained: Model, tiny_world: QADataset, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_fit = attacks_mod.fit
    monkeypatch.setattr(attacks_mod, "fit", lambda m, p, a, **kw: (seen.extend(p), real_fit(m, p, a, **kw))[1])
    result = attack(untrained.clone(), tiny_world, AttackConfig(kind="benign", seed=0, benign_n=10, **FAST))
    assert set(seen) <= {b.prompt for b in tiny_world.benign} and len(set(result.train_ids)) == 10
    assert result.eval_ids == [it.id for it in tiny_world.items("forget")]
    assert not set(seen) & {it.question for it in tiny_world.items("forget", None)}


def test_harmful_refuses_a_model_that_answers_everything(tiny_ckpt, tiny_world: QADataset) -> None:  # noqa: ANN001
    model = load_model(tiny_ckpt, bridge=False)
    with pytest.raises(NeuronscopeError, match="answers wrongly"):
        harmful_split(model, tiny_world, 0.1, 0)


@pytest.mark.parametrize(("cfg", "msg"), [
    (AttackConfig(kind="evil"), "attack kind"),
    (AttackConfig(p=0.0), r"\(0, 1\]"),
    (AttackConfig(p=1.5), r"\(0, 1\]"),
    (AttackConfig(lr=0), "learning rate"),
    (AttackConfig(steps=0), "steps"),
])
def test_bad_attack_config(cfg: AttackConfig, msg: str) -> None:
    with pytest.raises(NeuronscopeError, match=msg):
        cfg.check()

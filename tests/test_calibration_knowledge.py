"""The knowledge calibration (`neuronscope calibrate --ckpt ... --protocol knowledge`) on a constructed case: a toy
model trained without the test split, saved as a checkpoint, and the world filtered to what it knows by the real
facts' own filter (`keep_known`), so the test facts it gets wrong become meta["never_known"] as on a real model.
The builder must give the two planted hidings and the no-change model, the never-known floor as the grid records
it, and a result whose never-known evidence is present in every verdict."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN
from typer.testing import CliRunner

from neuronscope.attacks import AttackConfig, attack
from neuronscope.base_model import train_base
from neuronscope.cli import app
from neuronscope.data.real_facts import NEVER_KNOWN, RealFactsConfig, keep_known, never_known_dataset
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config import dataclass_from
from neuronscope.models.handle import load_model
from neuronscope.scoring import multiple_choice_correct
from neuronscope.unlearn.base import UnlearnConfig
from neuronscope.verdict.calibration import CalibrationResult, attribution_pair, base_attribution
from neuronscope.verdict.calibration_knowledge import KnowledgeCalibrationConfig, calibrate_knowledge

pytestmark = pytest.mark.slow

HARMFUL, BENIGN = "harmful p=0.25", "benign"


Case = tuple[QADataset, KnowledgeCalibrationConfig]


@pytest.fixture(scope="module")
def case(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Case:
    trained = train_base(tiny_world, replace(TINY_TRAIN, exclude_splits=("test",)))
    ckpt = trained.model.save(tmp_path_factory.mktemp("knowledge") / "ckpt")
    ds = keep_known(tiny_world, lambda items: multiple_choice_correct(trained.model, items).tolist())
    cfg = KnowledgeCalibrationConfig(ckpt=str(ckpt), planted_lr=1e-2, no_change_lr=1e-3,
                                     attack=AttackConfig(kind="harmful", p=0.25, lr=1e-3, steps=10, eval_every=5,
                                                         batch_size=16), seeds=(0, 1))
    return ds, cfg


@pytest.fixture(scope="module")
def result(case: Case) -> CalibrationResult:
    return calibrate_knowledge(*case)


def test_ground_truths_are_what_they_claim(case: Case, result: CalibrationResult) -> None:
    ds, cfg = case
    assert result.truths == {"planted hiding (last MLP down)": "hide", "planted hiding (last attention)": "hide",
                             "no change": "not unlearned"}
    checks = result.checks
    assert checks["planted hiding (last MLP down)"]["changed_tensors"] == 1
    assert checks["planted hiding (last attention)"]["changed_tensors"] == 4
    for name in ("planted hiding (last MLP down)", "planted hiding (last attention)"):
        assert checks[name]["forget_accuracy"] <= 1 / 3 + 1e-6 < checks["base"]["forget_accuracy"]
        assert "option_suppression" in checks[name]["how"]  # the knowledge protocol's objective
    assert checks["no change"]["forget_accuracy"] > 0.8 and checks["base"]["forget_accuracy"] == 1.0
    # the never-known facts were kept out of the forget set because the base answers them wrongly
    assert checks["never-known floor"]["n_items"] == len(ds.meta[NEVER_KNOWN]) >= 10
    assert checks["never-known floor"]["base_accuracy"] == 0.0 and checks["not built"] == {}
    assert result.config["protocol"] == "knowledge" and result.config["attack"]["lr"] == cfg.attack.lr


def test_the_floor_is_the_same_attacks_on_the_base_on_never_known_facts(case: Case, result: CalibrationResult
                                                                        ) -> None:
    ds, cfg = case
    floor = result.results["floor"]
    assert list(floor) == result.results["attack_labels"] == [HARMFUL, BENIGN]
    for runs in floor.values():
        assert [r["seed"] for r in runs] == list(cfg.seeds)
        assert all(set(r) == {"lr", "seed", "max_fs", "start_fs"} and r["lr"] == cfg.attack.lr for r in runs)
    # recomputed by hand: the harmful attack with seed 1 on the base, measured on the never-known facts
    base, fds = load_model(cfg.ckpt), never_known_dataset(ds)
    torch.manual_seed(1)
    res = attack(base, fds, replace(cfg.attack, seed=1))
    assert (floor[HARMFUL][1]["max_fs"], floor[HARMFUL][1]["start_fs"]) == (res.max_fs, res.start_fs)
    assert res.start_fs < 0.1  # never known: the attack starts from (almost) nothing


def test_each_verdict_shows_the_never_known_comparison(result: CalibrationResult) -> None:
    for name in result.truths:
        verdict = result.verdicts[name]
        assert verdict["label"] == "undetermined"  # no floor model: no calibrated analysis can run
        shown = {e["analysis"]: e for e in verdict["evidence"] if "never-known" in e["analysis"]}
        assert set(shown) == {f"relearning ({HARMFUL}) vs never-known facts",
                              f"relearning ({BENIGN}) vs never-known facts"}
        for label in (HARMFUL, BENIGN):
            e = shown[f"relearning ({label}) vs never-known facts"]
            assert e["says"] in ("present", "absent", "undetermined") and not e["calibrated"]
            runs, floor = result.results["attacks"][name][label], result.results["floor"][label]
            gain = sum(r["max_fs"] - r["start_fs"] for r in runs) / len(runs)
            floor_gain = sum(r["max_fs"] - r["start_fs"] for r in floor) / len(floor)
            assert e["value"] == pytest.approx(gain) and e["reference"] == pytest.approx(floor_gain)
    rows = {r["model"]: r for r in result.confusion()}
    acc = result.analysis_accuracy()
    for label in (HARMFUL, BENIGN):
        analysis = f"relearning ({label}) vs never-known facts"
        assert acc[analysis]["right"] == sum(r[analysis] == "present" for r in rows.values())
        assert not acc[analysis]["calibrated"]
    assert acc["headline verdict"]["unsure"] == list(result.truths)


def test_the_base_scores_computed_once_give_the_same_pair_summary(case: Case, tiny_ckpt: Path) -> None:
    ds, cfg = case
    base, other = load_model(cfg.ckpt), load_model(tiny_ckpt)
    assert attribution_pair(base, other, ds, False, base_attribution(base, ds)) == attribution_pair(base, other, ds,
                                                                                                    False)


def test_a_planted_hiding_that_cannot_reach_the_threshold_is_recorded_and_left_out(case: Case) -> None:
    ds, cfg = case
    result = calibrate_knowledge(ds, replace(cfg, planted_lr=1e-9, planted_max_steps=5, attribution=False))
    assert result.truths == {"no change": "not unlearned"}
    failed = result.checks["not built"]
    assert set(failed) == {"planted hiding (last MLP down)", "planted hiding (last attention)"}
    assert all(not f["reached"] and f["steps"] == 5 and f["forget_fs"] > 1 / 3 for f in failed.values())


def test_a_dataset_without_never_known_facts_is_refused(case: Case) -> None:
    ds, cfg = case
    with pytest.raises(NeuronscopeError, match="never knew"):
        calibrate_knowledge(replace(ds, meta={k: v for k, v in ds.meta.items() if k != NEVER_KNOWN}), cfg)


def test_the_recipe_and_bad_input(tmp_path: Path) -> None:
    cfg = KnowledgeCalibrationConfig(ckpt="x")
    # the table the CLI builds the dataset from is the dataset the config records
    assert dataclass_from(RealFactsConfig, cfg.data_table(), "t") == cfg.data
    assert (cfg.attack.lr, cfg.attack.steps, cfg.attack.p, cfg.seeds) == (1e-4, 15, 0.25, (0, 1, 2))
    for args, message in ((["--protocol", "knowledge"], "give --ckpt"),
                          (["--ckpt", "pretrained:smollm2-135m", "--protocol", "nope"],
                           "--protocol must be one of finetune, knowledge"),
                          (["--ckpt", str(tmp_path / "missing"), "--protocol", "knowledge"],
                           "checkpoint directory not found")):
        r = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path / "out"), *args])
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "out").exists()


def test_option_suppression_is_the_gold_options_share_scoring_computes(tiny_world: QADataset, tiny_ckpt: Path
                                                                        ) -> None:
    """The planted hiding's options objective against the no-grad scoring path: -log(1 - softmax(option scores)[gold])
    averaged by hand; the planted method optimises the named site only and the objective's gradient reaches it."""
    from neuronscope.scoring import option_scores
    from neuronscope.verdict.calibration import _planted, option_suppression

    model = load_model(tiny_ckpt)
    items = tiny_world.items("forget")[:6]
    by_hand = []
    for it, scores in zip(items, option_scores(model, items), strict=True):
        p_gold = torch.softmax(scores.double(), 0)[it.options.index(it.answer)]
        by_hand.append(-torch.log1p(-p_gold))
    value = option_suppression(model, items)
    assert value.item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-5)
    site = next(name for name, _ in model.hf.named_parameters() if name.endswith("mlp.down_proj.weight"))
    method = _planted((site,), "options")(model, tiny_world, UnlearnConfig())
    assert [p.data_ptr() for p in method.parameters()] == [dict(model.hf.named_parameters())[site].data_ptr()]
    value.backward()
    assert dict(model.hf.named_parameters())[site].grad.abs().sum() > 0
    with pytest.raises(NeuronscopeError, match="objective must be one of"):
        _planted((site,), "nope")

"""Calibration on a given checkpoint (the path `neuronscope calibrate --ckpt` takes): the oracle and the floor are
fine-tunes of that checkpoint, nothing is fine-tuned on the utility questions, and the ground truths are still what
they claim. The checkpoint is an untrained toy of another shape than the toy recipe's, so where each model came
from is visible in its config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.base_model import new_toy_model
from neuronscope.cli import app
from neuronscope.data.world import build_world
from neuronscope.models.toy import ToyConfig
from neuronscope.scoring import multiple_choice_accuracy
from neuronscope.verdict.calibration import _training_items, build_ground_truths, pretrained_config, small_config

pytestmark = pytest.mark.slow

CKPT_MLP = 96  # the recipe's toy has d_mlp 128: a model with 96 came from the checkpoint


def test_ground_truths_start_from_the_checkpoint(tmp_path: Path) -> None:
    cfg = small_config()
    ds = build_world(cfg.world)
    new_toy_model(ds, ToyConfig(d_model=64, n_layers=3, n_heads=4, d_mlp=CKPT_MLP), seed=7).save(tmp_path / "ckpt")
    cfg = replace(cfg, ckpt=str(tmp_path / "ckpt"))

    base, floor, truths, checks, _ = build_ground_truths(ds, cfg)

    models = {"base": base, "floor": floor, **{gt.name: gt.model for gt in truths}}
    assert {m.hf.config.intermediate_size for m in models.values()} == {CKPT_MLP}
    forget, retain = ds.items("forget"), ds.items("retain")
    assert checks["calibration base"]["forget_accuracy"] >= cfg.base.target
    assert multiple_choice_accuracy(floor, retain) >= cfg.base.target  # fine-tuned until it knew the retain facts
    assert checks["exact erasure"]["forget_accuracy"] < checks["calibration base"]["forget_accuracy"] - 0.4
    assert checks["floor"]["forget_accuracy"] < checks["calibration base"]["forget_accuracy"] - 0.4
    assert checks["planted hiding (last MLP down)"]["changed_tensors"] == 1
    assert multiple_choice_accuracy(models["planted hiding (last MLP down)"], forget) <= 1 / 3 + 1e-6


def test_a_checkpoint_is_never_fine_tuned_on_the_utility_questions() -> None:
    cfg = small_config()
    ds = build_world(cfg.world)
    utility = {it.question for it in ds.utility}
    assert utility & {it.question for it in _training_items(ds, cfg, ())}  # the toy trains on them
    with_ckpt = _training_items(ds, replace(cfg, ckpt="somewhere"), ())
    assert with_ckpt and not utility & {it.question for it in with_ckpt}
    assert {it.question for it in _training_items(ds, replace(cfg, ckpt="x"), ("forget",))}.isdisjoint(
        it.question for it in ds.items("forget"))


def test_pretrained_recipe_and_bad_input(tmp_path: Path) -> None:
    cfg = pretrained_config("ckpt-dir")
    assert cfg.ckpt == "ckpt-dir" and cfg.attack.lr == cfg.base.lr  # the attack relearns at the fine-tune's rate
    for args, message in ((["--ckpt", "pretrained:nope"], "unknown pretrained model"),
                          (["--ckpt", str(tmp_path / "missing")], "checkpoint directory not found"),
                          (["--ckpt", "pretrained:smollm2-135m", "--size", "small"], "give one")):
        r = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path / "out"), *args])
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "out").exists()


def test_the_attack_flags_reach_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--attack-lr / --attack-steps set the attack every ground truth and the floor are attacked with (both kinds),
    --attack-p the harmful attack's leaked fraction; the rest of the recipe is untouched."""
    from neuronscope.verdict import calibration

    seen = []

    def stop(cfg, log):  # noqa: ANN001, ANN202  (the CLI's call, captured before any training)
        seen.append(cfg)
        raise SystemExit(0)

    monkeypatch.setattr(calibration, "calibrate", stop)
    r = CliRunner().invoke(app, ["calibrate", "--size", "small", "--attack-lr", "3e-4", "--attack-steps", "30",
                                 "--attack-p", "0.3", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    (cfg,) = seen
    assert (cfg.attack.lr, cfg.attack.steps, cfg.attack.p) == (3e-4, 30, 0.3)
    assert replace(cfg, attack=small_config().attack) == small_config()
    benign = calibration.attack_set(cfg.attack, cfg.benign_attack)[1]
    assert (benign.kind, benign.lr, benign.steps) == ("benign", 3e-4, 30)

"""The calibration suite at a small size: ground-truth models are what they claim to be, and the headline verdict
is right on each (with its margin); the paper's P-target rule's known failure is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.verdict.calibration import CalibrationResult, confusion_markdown, small_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`neuronscope calibrate --size small` once: the CLI and the library in one run."""
    out = tmp_path_factory.mktemp("calibration") / "out"
    result = CliRunner().invoke(app, ["calibrate", "--size", "small", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "verdict for exact erasure (truth: erase)" in result.output
    assert "calibrating: analysing floor" in result.output  # not a terminal: a line per stage, not a spinner
    return out


@pytest.fixture(scope="module")
def calibration(calibration_dir: Path) -> CalibrationResult:
    j = json.loads((calibration_dir / "calibration.json").read_text())
    return CalibrationResult(j["config"], j["checks"], j["results"], j["truths"], j["verdicts"], j["seconds"])


def test_written_files_and_bad_input(calibration_dir: Path, calibration: CalibrationResult, tmp_path: Path) -> None:
    assert (calibration_dir / "confusion.md").read_text() == confusion_markdown(calibration)
    assert calibration.config["seeds"] == list(small_config().seeds)
    assert calibration.config["world"]["people"] == small_config().world.people
    for args, message in ((["--size", "huge"], "--size"), (["--seeds", "1"], "--seeds"),
                          (["--threads", "0"], "--threads")):
        r = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path / "x"), *args])
        assert r.exit_code == 2 and message in r.output, r.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    r = CliRunner().invoke(app, ["calibrate", "--out", str(tmp_path / "mine"), "--size", "small"])
    assert r.exit_code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_constructions_are_what_they_claim(calibration: CalibrationResult) -> None:
    checks = calibration.checks
    base = checks["calibration base"]
    assert base["forget_accuracy"] >= 0.95 and base["retain_accuracy"] >= 0.95
    # the exact erasure never saw the forget facts: below the base on them, like the independent floor
    assert checks["exact erasure"]["forget_accuracy"] < base["forget_accuracy"] - 0.4
    assert checks["planted hiding (last MLP down)"]["changed_tensors"] == 1  # the rest bit-identical to the base
    assert checks["planted hiding (last attention)"]["changed_tensors"] == 4  # q, k, v, o of the last layer
    for name in ("planted hiding (last MLP down)", "planted hiding (last attention)"):
        assert checks[name]["forget_accuracy"] <= 1 / 3 + 1e-6  # unlearned to the stop threshold
    assert checks["no change"]["forget_accuracy"] >= 0.9
    assert calibration.truths == {"exact erasure": "erase", "planted hiding (last MLP down)": "hide",
                                  "planted hiding (last attention)": "hide", "no change": "not unlearned"}


def _evidence(calibration: CalibrationResult, model: str, analysis: str) -> dict:
    return next(e for e in calibration.verdicts[model]["evidence"] if e["analysis"] == analysis)


def test_headline_verdict_is_right_on_every_ground_truth(calibration: CalibrationResult) -> None:
    for name, truth in calibration.truths.items():
        assert calibration.verdicts[name]["label"] == truth, (name, calibration.verdicts[name])
    # with a margin: the deciding evidence clears its bar, not just the sign
    for name in ("planted hiding (last MLP down)", "planted hiding (last attention)"):
        lens = _evidence(calibration, name, "logit lens (intermediate layers)")
        assert lens["says"] == "present" and lens["interval"][0] > 0.2, lens
    for e in calibration.verdicts["exact erasure"]["evidence"]:
        if e["calibrated"] and e["says"] != "not run":
            assert e["says"] == "absent", e
    fs = _evidence(calibration, "no change", "forget answers (FS)")
    assert fs["says"] == "present" and fs["interval"][0] > 0.4


def test_paper_rule_calls_planted_hiding_erase(calibration: CalibrationResult) -> None:
    """A documented limitation (docs/verdict.md): with the P target, every attribution shrinks with P, so the
    paper's top-100 D+ vs D- reads a model that hides by construction as erased. A silent change is caught here."""
    e = _evidence(calibration, "planted hiding (last MLP down)", "top-100 D+ vs D- (P target)")
    assert e["says"] == "absent" and not e["calibrated"]
    assert calibration.verdicts["planted hiding (last MLP down)"]["paper_rule"]["label"] == "erase"


def test_confusion_table_lists_every_analysis(calibration: CalibrationResult) -> None:
    md = confusion_markdown(calibration)
    for name in calibration.truths:
        assert name in md
    acc = calibration.analysis_accuracy()
    assert acc["headline verdict"]["right"] == len(calibration.truths)
    assert acc["top-100 D+ vs D- (P target)"]["calibrated"] is False


def test_models_are_analysed_one_at_a_time_and_unchanged(tmp_path: Path) -> None:
    """`one_at_a_time` keeps only the model being analysed in memory, and what it hands back scores exactly as the
    model it saved (the calibration's numbers are the in-memory models')."""
    import gc
    import weakref

    import torch

    from neuronscope.base_model import new_toy_model
    from neuronscope.data.world import build_world
    from neuronscope.models.toy import ToyConfig
    from neuronscope.scoring import option_scores
    from neuronscope.verdict.calibration import one_at_a_time

    ds = build_world(small_config().world)
    models = [new_toy_model(ds, ToyConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64), seed=s) for s in (1, 2)]
    items = ds.items("forget")[:8]
    expected = [torch.cat(option_scores(m, items)) for m in models]
    originals = [weakref.ref(m) for m in models]
    named = [("a", models[0]), ("b", models[1])]
    del models
    seen = []
    for name, model in one_at_a_time(named, str(tmp_path)):
        gc.collect()
        assert not named and all(ref() is None for ref in originals)  # on disk only, the one being analysed aside
        assert torch.equal(torch.cat(option_scores(model, items)), expected[len(seen)])
        seen.append(name)
        del model
    assert seen == ["a", "b"]

"""The `run`, `demo` and `attack` commands: config errors before any work, and the small profile end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.experiment.config import PROFILES, load_config, profile, profile_text

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[data]
dir = "{data}"
[unlearn]
methods = ["ga"]
[attacks]
harmful_p = [0.1]
"""


@pytest.mark.parametrize(("edit", "msg"), [
    (('methods = ["ga"]', 'methods = ["ga", "forgetall"]'), "unknown method 'forgetall'"),
    (("harmful_p = [0.1]", "harmful_p = [0.0]"), r"harmful_p: fraction p must lie in \(0, 1\]"),
    (("harmful_p = [0.1]", "harmful_p = [1.2]"), r"fraction p must lie in \(0, 1\]"),
    (('dir = "{data}"', 'dir = "{data}/nowhere"'), "data.dir: .*nowhere: file or directory not found"),
    (('dir = "{data}"', 'dir = "{data}"\nprompt = "quiz"'), "data.prompt: unknown prompt format 'quiz'"),
    (('dir = "{data}"', 'dir = "{data}"\nformat = "csv"'), "data.format: must be one of auto, world"),
    (("[unlearn]", "[run]\ndtype = \"int8\"\n[unlearn]"), "run.dtype: must be auto or one of"),
    (("[unlearn]", "[base.finetune]\nlr = 1e-5\n[unlearn]"), "base.finetune: fine-tunes a given checkpoint"),
    (("[attacks]", "[attacks]\nsteps = 0"), "attack steps must be at least 1"),
    (("[attacks]", "[attacks]\nlearning_rate = 1"), "unknown key learning_rate"),
    (('methods = ["ga"]', 'methods = ["ga"]\nlr = "fast"'), "unlearn.lr: must be a number"),
    (("[attacks]", "[attacks]\nseeds = [1, 1]"), "seeds must be distinct"),
])
def test_bad_config_fails_before_any_work(tiny_world_dir: Path, tmp_path: Path, edit: tuple[str, str],
                                          msg: str) -> None:
    text = GOOD.replace(*edit).format(data=tiny_world_dir)
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert re.search(msg, result.output.replace("\n", "")), result.output
    assert not out.exists()  # nothing was started


def test_good_config_parses(tiny_world_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(GOOD.format(data=tiny_world_dir))
    c = load_config(cfg)
    assert c.unlearn.methods == ("ga",) and c.data_dir == str(tiny_world_dir.resolve())
    assert [a.kind for a in c.attacks.configs()] == ["harmful"] * 3 + ["benign"] * 3


def test_missing_config_and_bad_profile() -> None:
    r = runner.invoke(app, ["run", "nowhere.toml", "--out", "x"])
    assert r.exit_code == 2 and "config file not found" in r.output
    r = runner.invoke(app, ["demo", "--profile", "huge"])
    assert r.exit_code == 2 and "--profile must be one of full, small" in r.output


def test_profiles_match_the_shipped_config_files() -> None:
    for name, path in zip(PROFILES[:2], ("configs/demo.toml", "configs/small.toml"), strict=True):
        assert (ROOT / path).read_text() == profile_text(name)
        assert load_config(ROOT / path).to_json() == profile(name).to_json()


@pytest.mark.slow
def test_demo_small_profile_end_to_end(small_run: tuple[Path, str]) -> None:
    out, output = small_run
    assert f"run directory: {out}" in output.replace("\n", "")
    for name in ("table.md", "table.csv", "results.json", "run.log", "config.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    md = (out / "table.md").read_text()
    for row in ("| base |", "| oracle |", "| ga |", "| gd |"):
        assert row in md
    for col in ("harmful p=0.1", "harmful p=0.3", "benign", "gap benign"):
        assert col in md
    for method in ("oracle", "ga", "gd"):
        for runs in results["attacks"][method].values():
            assert len(runs) == 2
            for r in runs:  # the recovery is the max over the trajectory during retraining
                assert r["max_fs"] == max(pt["fs"] for pt in r["trajectory"] if pt["step"] >= 1)
    assert results["analyses"]["lens"]["available"] and results["analyses"]["attribution"]["available"]
    assert "base vs ga" in results["analyses"]["attribution"]["pairs"]
    assert "ga vs ga+benign" in results["analyses"]["attribution"]["pairs"]
    # every method has a calibrated verdict, Table 1 shows it, and it is a function of what the run measured
    from neuronscope.verdict import run_verdicts

    assert set(results["verdicts"]) == {"ga", "gd"}
    assert run_verdicts(results) == results["verdicts"]
    for v in results["verdicts"].values():
        assert v["label"] in ("erase", "hide", "not unlearned", "undetermined")
        assert {e["analysis"] for e in v["evidence"] if e["calibrated"]} >= {
            "forget answers (FS)", "relearning (harmful p=0.1)", "logit lens (intermediate layers)"}
        assert v["paper_rule"]["label"] in ("erase", "hide", "tie")
    header = md.splitlines()[0]
    assert "verdict" in header and f"| {results['verdicts']['ga']['label']} |" in md


@pytest.mark.slow
def test_demo_rerun_is_all_cached(small_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = small_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = json.loads((copy / "results.json").read_text())
    result = runner.invoke(app, ["demo", "--profile", "small", "--out", str(copy)])
    assert result.exit_code == 0, result.output
    after = json.loads((copy / "results.json").read_text())
    assert after["computed"] == 0 and after["skipped"] == before["computed"] + before["skipped"]
    assert after["attacks"] == before["attacks"] and after["evals"] == before["evals"]
    assert "0 artifacts computed" in result.output


@pytest.mark.slow
def test_attack_command_on_an_unlearned_checkpoint(small_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = small_run
    ckpt = next((out / "artifacts").glob("unlearn-ga-*")) / "model"
    data = next((out / "artifacts").glob("data-*")) / "data"
    res = runner.invoke(app, ["attack", "--kind", "harmful", "--ckpt", str(ckpt), "--data", str(data), "--p", "0.3",
                              "--out", str(tmp_path / "a"), "--seeds", "2", "--steps", "4", "--eval-every", "2"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    runs = summary["runs"]["lr 0.001"]
    assert len(runs["max_fs"]) == 2 and runs["summary"]["n"] == 2
    one = json.loads((tmp_path / "a" / "attack-harmful-p0.3-lr0.001-seed0.json").read_text())
    assert not set(one["train_ids"]) & set(one["eval_ids"])
    bad = runner.invoke(app, ["attack", "--kind", "harmful", "--ckpt", str(ckpt), "--data", str(data), "--p", "2",
                              "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "(0, 1]" in bad.output

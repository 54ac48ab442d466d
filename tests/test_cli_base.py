"""The foundation commands: world, train-base, eval, and their one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.data.schema import load_dataset

runner = CliRunner()


def test_world_command_writes_a_loadable_world(tmp_path: Path) -> None:
    result = runner.invoke(app, ["world", "--out", str(tmp_path / "w"), "--people", "40", "--seed", "2"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(tmp_path / "w")
    assert len({it.cluster for it in ds.forget}) == 2 and ds.meta["seed"] == 2


def test_eval_prints_scores_as_json(tiny_ckpt: Path, tiny_world_dir: Path, tiny_trained) -> None:
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["fs"] == pytest.approx(tiny_trained.report.fs)
    assert scores["rs"] == pytest.approx(tiny_trained.report.rs)
    assert scores["us"] == pytest.approx(tiny_trained.report.us)


def test_train_base_on_a_small_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train-base end to end on a 16-person world: it must reach the target and save a checkpoint. Its progress
    has a total (it showed `165/?`): at most max_epochs passes, here one plain line per update (not a terminal)."""
    monkeypatch.setenv("NEURONSCOPE_PROGRESS_SECONDS", "0")
    world = tmp_path / "w"
    assert runner.invoke(app, ["world", "--out", str(world), "--people", "16", "--forget", "0.25",
                               "--retain", "0.25", "--test", "0.5"]).exit_code == 0
    out = tmp_path / "ckpt"
    result = runner.invoke(app, ["train-base", "--out", str(out), "--data", str(world), "--json",
                                 "--d-model", "64", "--n-layers", "2", "--d-mlp", "128", "--lr", "3e-3"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "neuronscope_train.json").read_text())
    assert summary["reached_target"] is True
    n_items = len(load_dataset(world).training_items())
    most = 150 * -(-n_items // 32)  # 150 epochs (the default) of batches of 32
    lines = [line for line in result.stderr.splitlines() if "training base model" in line]
    assert lines and all(re.search(rf"training base model: \d+/{most} steps \(\d+%\), ETA .* \(at most\)", line)
                         for line in lines), lines[:3]
    assert summary["detail"]["forget"]["base"] >= 0.95 and summary["detail"]["retain"]["base"] >= 0.95
    # --oracle: the same recipe without the forget facts (the floor of the calibrated verdict)
    oracle = tmp_path / "oracle"
    result = runner.invoke(app, ["train-base", "--out", str(oracle), "--data", str(world), "--json", "--oracle",
                                 "--d-model", "64", "--n-layers", "2", "--d-mlp", "128", "--lr", "3e-3"])
    assert result.exit_code == 0, result.output
    summary = json.loads((oracle / "neuronscope_train.json").read_text())
    assert summary["reached_target"] is True and summary["detail"]["retain"]["base"] >= 0.95
    assert summary["detail"]["forget"]["base"] < 0.7  # never trained on: near chance (1/3), far from the base


@pytest.mark.parametrize("args, message", [
    (["eval", "--ckpt", "{tmp}/missing", "--data", "{world}"], "checkpoint directory not found"),
    (["eval", "--ckpt", "{ckpt}", "--data", "{tmp}/missing"], "file or directory not found"),
    (["eval", "--ckpt", "{ckpt}", "--data", "{world}", "--normalize", "max"], "--normalize"),
    (["world", "--out", "{tmp}/w", "--people", "1"], "--people"),
])
def test_bad_input_is_one_line_and_nonzero(args: list[str], message: str, tmp_path: Path, tiny_ckpt: Path,
                                           tiny_world_dir: Path) -> None:
    args = [a.format(tmp=tmp_path, ckpt=tiny_ckpt, world=tiny_world_dir) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr


def test_malformed_dataset_line_names_file_and_line(tmp_path: Path, tiny_ckpt: Path) -> None:
    bad = tmp_path / "w"
    bad.mkdir()
    (bad / "forget.jsonl").write_text('{"id": "a", "question": "q ?", "answer": "x"}\n{"id": "b", "question": "q"}\n')
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(bad)])
    assert result.exit_code == 2
    assert "forget.jsonl: line 2: missing field 'answer'" in result.stderr


def test_eval_refuses_an_empty_forget_split(tmp_path: Path, tiny_ckpt: Path, tiny_world_dir: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_world_dir, data)
    (data / "forget.jsonl").write_text("")
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(data)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the forget split has no base questions" in lines[0] and not result.stdout.strip()


def test_eval_says_when_the_retain_split_is_missing(tmp_path: Path, tiny_ckpt: Path, tiny_world_dir: Path,
                                                    tiny_trained) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    shutil.copytree(tiny_world_dir, data)
    (data / "retain.jsonl").unlink()
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "RS is scored on the test split alone" in result.stderr
    scores = json.loads(result.stdout)  # the warning stays off stdout: --json is still JSON
    assert scores["rs"] == pytest.approx(tiny_trained.report.detail["test"]["base"])
    (data / "test.jsonl").unlink()
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(data), "--json"])
    assert result.exit_code == 0 and "RS cannot be scored" in result.stderr

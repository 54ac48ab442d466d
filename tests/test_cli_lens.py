"""`neuronscope lens`: the files it writes agree with the library, and bad inputs get one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.data.schema import QADataset
from neuronscope.lens import logit_lens
from neuronscope.models.handle import load_model

runner = CliRunner()


def test_lens_command_writes_tables_and_summary(tiny_ckpt: Path, tiny_world_dir: Path, tiny_world: QADataset,
                                                tmp_path: Path) -> None:
    out = tmp_path / "lens"
    result = runner.invoke(app, ["lens", "--ckpt", str(tiny_ckpt), "--base", str(tiny_ckpt), "--data",
                                 str(tiny_world_dir), "--out", str(out), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "logit-lens accuracy" in result.stdout and "layer 1" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    expected = logit_lens(load_model(tiny_ckpt), tiny_world.items("forget", "base"), seed=2)
    assert summary["accuracy"]["ckpt"] == pytest.approx(expected["accuracy"].tolist())
    assert summary["accuracy"]["base"] == summary["accuracy"]["ckpt"]  # the same checkpoint twice
    assert summary["layers"] == [0, 1] and summary["chance"] == 0.5 and summary["final_norm"] is True
    table = pd.read_csv(out / "lens.csv")
    assert list(table.columns) == ["model", "layer", "accuracy", "n", "ties", "p_gold", "p_distractor"]
    assert set(table["model"]) == {"ckpt", "base"} and len(table) == 4
    items = pd.read_csv(out / "lens_items.csv")
    assert len(items) == 2 * 2 * len(tiny_world.items("forget", "base"))


def test_lens_command_options(tiny_ckpt: Path, tiny_world_dir: Path, tiny_world: QADataset, tmp_path: Path) -> None:
    result = runner.invoke(app, ["lens", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir / "retain.jsonl"),
                                 "--out", str(tmp_path), "--no-final-norm", "--kind", "all"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["accuracy"]) == ["ckpt"] and summary["final_norm"] is False
    assert summary["n_items"] == len(tiny_world.retain)  # a single JSONL file is read as the forget split
    expected = logit_lens(load_model(tiny_ckpt), tiny_world.retain, final_norm=False)
    assert summary["accuracy"]["ckpt"] == pytest.approx(expected["accuracy"].tolist())


@pytest.mark.parametrize(("args", "message"), [
    (["--ckpt", "{tmp}/nope"], "checkpoint directory not found"),
    (["--data", "{tmp}/missing"], "missing: file or directory not found"),
    (["--split", "holdout"], "no split 'holdout' (available: forget, retain, test"),
    (["--kind", "riddle"], "--kind must be one of"),
    (["--answer-tokens", "last"], "--answer-tokens must be one of"),
    (["--position", "-50"], "position -50 lies outside"),
])
def test_lens_command_bad_inputs(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path, args: list[str],
                                 message: str) -> None:
    base = {"--ckpt": str(tiny_ckpt), "--data": str(tiny_world_dir), "--out": str(tmp_path / "out")}
    extra = [a.replace("{tmp}", str(tmp_path)) for a in args]
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        base[flag] = value
    result = runner.invoke(app, ["lens", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output

"""`neuronscope unlearn`: what it writes, and one clear line with no checkpoint on bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.models.handle import load_model
from neuronscope.unlearn import METHODS
from neuronscope.unlearn.gd import GD

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["unlearn", *args])


def test_unlearn_writes_checkpoint_metrics_and_curve(tiny_ckpt, tiny_world_dir, tmp_path):
    out = tmp_path / "unlearned"
    res = _run("--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out),
               "--lr", "3e-3", "--max-steps", "40", "--batch-size", "8", "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "neuronscope_unlearn.json").read_text())
    assert metrics["reached"] is True and metrics["fs"] <= 1 / 3 + 1e-6 and metrics["steps"] > 0
    assert {"rs", "us", "lr", "curve", "config"} <= set(metrics)
    lines = (out / "unlearn_curve.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and len(lines) == metrics["steps"] + 2
    assert load_model(out, bridge=False).hf.config.neuronscope["unlearn"]["method"] == "gd"
    assert [p.name for p in tmp_path.iterdir()] == ["unlearned"]  # no temporary leftovers



def test_unlearn_lr_search_equals_the_python_search(tiny_ckpt, tiny_world_dir, tmp_path):
    """--lr-search loads the checkpoint for each trial; its trials and weights are those of `lr_search`."""
    import torch

    from neuronscope.data.schema import load_dataset
    from neuronscope.unlearn import UnlearnConfig, lr_search

    out = tmp_path / "searched"
    res = _run("--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out),
               "--lr-search", "--lr-grid", "1e-7,3e-3", "--max-steps", "8", "--batch-size", "8", "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "neuronscope_unlearn.json").read_text())
    cfg = UnlearnConfig(max_steps=8, batch_size=8)
    direct = lr_search(load_model(tiny_ckpt, bridge=False), load_dataset(tiny_world_dir), "gd", cfg, [1e-7, 3e-3])
    assert [t["lr"] for t in metrics["trials"]] == [1e-7, 3e-3] and metrics["reached"] and direct.reached
    assert (metrics["lr"], metrics["steps"], metrics["fs"]) == (direct.lr, direct.steps, direct.fs)
    for a, b in zip(load_model(out, bridge=False).hf.parameters(), direct.model.hf.parameters(), strict=True):
        assert torch.equal(a, b)

@pytest.mark.parametrize("args,message", [
    (["--method", "nope"], "unknown method 'nope'"),
    (["--method", "gd", "--lr", "-0.1"], "--lr must be a positive number"),
])
def test_bad_flags_one_line_no_checkpoint(tiny_ckpt, tiny_world_dir, tmp_path, args, message):
    out = tmp_path / "out"
    res = _run(*args, "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out))
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_empty_forget_set(tiny_ckpt, tiny_world_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_world_dir, data)
    (data / "forget.jsonl").write_text("")
    out = tmp_path / "out"
    res = _run("--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(data), "--out", str(out))
    assert res.exit_code == 2 and "nothing to unlearn" in res.output and not out.exists()


def test_nan_loss_leaves_nothing(tiny_ckpt, tiny_world_dir, tmp_path, monkeypatch):
    gd_loss = GD.loss

    def nan_loss(self, sb, step):
        loss, terms = gd_loss(self, sb, step)
        return loss * float("nan"), terms

    monkeypatch.setattr(METHODS["gd"], "loss", nan_loss)
    out = tmp_path / "out"
    res = _run("--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out))
    assert res.exit_code == 2 and "loss is nan at step 1" in res.output
    assert list(tmp_path.iterdir()) == []


def test_ga_without_a_retain_split_says_so(tiny_ckpt, tiny_world_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_world_dir, data)
    (data / "retain.jsonl").unlink()
    out = tmp_path / "out"
    res = _run("--method", "ga", "--max-steps", "1", "--ckpt", str(tiny_ckpt), "--data", str(data), "--out", str(out),
               "--json")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.stderr and "no retain questions" in res.stderr
    assert json.loads(res.stdout)["checkpoint"] == str(out)


def test_methods_lists_the_registry_with_each_settings_default() -> None:
    """`neuronscope methods` is where --method's and --setting's choices are listed: read from the registry."""
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(METHODS) >= {"ga", "gd", "npo", "dpo", "rmu", "ssiuu", "klue", "simnpo"}
    for name, cls in METHODS.items():
        settings = cls.settings_cls
        assert set(rows[name]["settings"]) == set(settings.keys)
        for key, field in settings.keys.items():
            assert rows[name]["settings"][key]["default"] == getattr(settings(), field)
    assert rows["rmu"]["settings"]["rmu_c"]["default"] == 20.0 and rows["npo"]["settings"]["beta"]["default"] == 0.1

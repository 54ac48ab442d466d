"""The bad-input sweep: every mistake below, given through the CLI, is one `error:` line and exit 2, caught before
any training, with no traceback, no output directory and no input file changed.

Flag mistakes run against the tiny checkpoint and world of conftest.py; config mistakes edit one value of the small
profile (the same TOML as configs/small.toml) and run `neuronscope run` on it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.experiment.config import profile_text

runner = CliRunner()

# (flags, a regex the error line must match); {ckpt}, {world}, {out}, {tmp} are filled in per test
FLAG_CASES: list[tuple[list[str], str]] = [
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr", "nan"],
     "learning rate must be a positive number, got nan"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr", "inf"],
     "learning rate must be a positive number, got inf"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr", "-0.1"],
     "learning rate must be a positive number"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--steps", "0"],
     "steps must be at least 1"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--eval-every", "0"], "eval_every must be at least 1"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--batch-size", "0"], "batch_size must be at least 1"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--p", "1.5"],
     r"p must lie in \(0, 1\]"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--p", "nan"],
     r"p must lie in \(0, 1\]"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--seeds", "0"],
     "--seeds must be at least 1"),
    (["attack", "--kind", "sneaky", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}"],
     "attack kind must be one of harmful, benign"),
    (["attack", "--kind", "benign", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--benign-n", "-1"], "benign_n must be >= 0"),
    (["attack", "--kind", "harmful", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--device", "tpu"], "--device must be"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--lr", "nan"], "--lr must be a positive number"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--lr", "-1e-3"], "--lr must be a positive number"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--n-heads", "5"],
     "--d-model 192 must be a multiple of --n-heads 5"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--n-heads", "3", "--d-model", "64"],
     "--d-model 64 must be a multiple of --n-heads 3"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--n-heads", "12", "--d-model", "36"],
     "head width 3 .* must be even"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--d-model", "0"], "--d-model must be at least 1"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--n-layers", "0"], "--n-layers must be at least 1"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--d-mlp", "-4"], "--d-mlp must be at least 1"),
    (["train-base", "--out", "{out}", "--data", "{world}", "--max-epochs", "0"],
     "--max-epochs must be at least 1"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr", "nan"],
     "--lr must be a positive number"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--max-steps", "0"],
     "--max-steps must be at least 1"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--check-every", "0"], "--check-every must be at least 1"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--batch-size", "0"], "--batch-size must be at least 1"),
    (["unlearn", "--method", "npo", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--beta", "inf"],
     "--beta must be a positive number"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--threshold", "nan"], r"--threshold must lie in \[0, 1\]"),
    (["unlearn", "--method", "ssiuu", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--lambda", "-1"], "--lambda must be a non-negative number"),
    (["unlearn", "--method", "forgetall", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}"],
     "unknown .*method"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr-search",
      "--lr-grid", "1e-4,nan"], "--lr-grid: learning rates must be positive numbers"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr-search",
      "--lr-grid", "fast"], "--lr-grid must be comma-separated numbers"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--dtype", "int8"],
     "--dtype must be"),
    (["unlearn", "--method", "ga", "--ckpt", "{tmp}/missing", "--data", "{world}", "--out", "{out}"],
     "not found"),
    (["eval", "--ckpt", "{ckpt}", "--data", "{world}", "--normalize", "max"], "--normalize"),
    (["eval", "--ckpt", "{ckpt}", "--data", "{world}", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["world", "--out", "{out}", "--people", "1"], "--people"),
    (["world", "--out", "{out}", "--forget", "1.5"], "must lie in"),
    (["world", "--out", "{out}", "--test", "nan"], "must lie in"),
    (["finetune", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--lr", "inf"],
     "fine-tune lr must be a positive number"),
    (["finetune", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--epochs", "0"],
     "epochs and batch_size must be at least 1"),
    (["lens", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--batch-size", "0"],
     "--batch-size must be at least 1"),
    (["attribute", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--batch-size", "0"],
     "--batch-size must be at least 1"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}", "--dry-run",
      "--seq-len", "0"], "--seq-len must be at least 1"),
    (["unlearn", "--method", "ga", "--ckpt", "{ckpt}", "--data", "{world}", "--out", "{out}",
      "--track", "neptune"], "--track must be one of tensorboard, wandb, mlflow"),
]

# (dotted key in the small profile's TOML, bad value, a regex the error line must match)
CONFIG_CASES: list[tuple[str, Any, str]] = [
    ("base.check_every", 0, "base.check_every must be at least 1"),
    ("base.batch_size", 0, "base.batch_size must be at least 1"),
    ("base.max_epochs", 0, "base.max_epochs must be at least 1"),
    ("base.target", 2.0, r"base.target must lie in \(0, 1\]"),
    ("base.target", 0.0, r"base.target must lie in \(0, 1\]"),
    ("base.lr", -1e-3, "base.lr must be a positive number"),
    ("base.lr", math.nan, "base.lr must be a positive number"),
    ("base.toy.d_model", 0, "base.toy.d_model must be at least 1"),
    ("base.toy.n_heads", 3, "base.toy.d_model 64 must be a multiple of base.toy.n_heads 3"),
    ("base.toy.max_len", 1, "base.toy.max_len must be at least 2"),
    ("run.device", "tpu", "run.device must be auto, cpu, cuda, cuda:N or mps"),
    ("run.threads", 0, "run.threads: must be at least 1"),
    ("run.dtype", "int8", "run.dtype: must be auto or one of"),
    ("attacks.harmful_lr", [math.nan], "attacks.harmful_lr: learning rates must be positive numbers, got nan"),
    ("attacks.harmful_lr", [math.inf], "attacks.harmful_lr: learning rates must be positive numbers, got inf"),
    ("attacks.benign_lr", [1e-3, -1.0], "attacks.benign_lr: learning rates must be positive numbers"),
    ("attacks.steps", 0, "attack steps must be at least 1"),
    ("attacks.harmful_p", [0.0], r"fraction p must lie in \(0, 1\]"),
    ("unlearn.lr", math.nan, "unlearn.lr must be a positive number"),
    ("unlearn.lr_grid", [1e-3, math.inf], "unlearn.lr_grid: learning rates must be positive numbers"),
    ("unlearn.max_steps", 0, "unlearn.max_steps must be at least 1"),
    ("unlearn.stride", 0, "unlearn.stride: must be at least 1"),
    ("unlearn.beta", math.inf, "unlearn.beta must be a positive number"),
    ("unlearn.weight_decay", -0.1, "weight_decay must be a non-negative number"),
    ("unlearn.grad_clip", 0.0, "grad_clip must be a positive number"),
    ("unlearn.retain_weight", math.nan, "retain_weight must be a non-negative number"),
    ("unlearn.methods", ["ga", "forgetall"], "unknown method 'forgetall'"),
    ("data.world.people", 2, "data.world.people must be at least 4"),
    ("data.world.forget", math.nan, r"data.world.forget must lie in \[0, 1\], got nan"),
    ("oracle.enabled", "yes", "oracle.enabled: must be true or false"),
    ("lens.depth", 3, "unknown key depth"),
]


def _fill(args: list[str], **paths: Path) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]


def _snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under the roots: what the run must leave exactly as it was."""
    out: dict[str, tuple[str, int]] = {}
    for root in roots:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    return out


def _assert_one_error_line(result: Any, pattern: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(("args", "pattern"), FLAG_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in FLAG_CASES])
def test_bad_flag_is_one_error_line(args: list[str], pattern: str, tiny_ckpt: Path, tiny_world_dir: Path,
                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = _snapshot(tiny_ckpt, tiny_world_dir, tmp_path)
    result = runner.invoke(app, _fill(args, ckpt=tiny_ckpt, world=tiny_world_dir, out=out, tmp=tmp_path))
    _assert_one_error_line(result, pattern)
    assert not out.exists()
    assert _snapshot(tiny_ckpt, tiny_world_dir, tmp_path) == before


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v)))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _toml(doc: dict[str, Any], prefix: str = "") -> str:
    """A TOML text of nested tables of scalars and lists (all the profiles use)."""
    scalars = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix else "") + "".join(s + "\n" for s in scalars)
    for k, v in doc.items():
        if isinstance(v, dict):
            text += "\n" + _toml(v, f"{prefix}.{k}" if prefix else k)
    return text


def edited_profile(key: str, value: Any) -> str:
    doc = tomllib.loads(profile_text("small"))
    *tables, leaf = key.split(".")
    node = doc
    for t in tables:
        node = node.setdefault(t, {})
    node[leaf] = value
    return _toml(doc)


@pytest.mark.parametrize(("key", "value", "pattern"), CONFIG_CASES, ids=[f"{k}={v}" for k, v, _ in CONFIG_CASES])
def test_bad_config_value_is_one_error_line(key: str, value: Any, pattern: str, tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(edited_profile(key, value))
    out = tmp_path / "run"
    before = _snapshot(tmp_path)
    result = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    _assert_one_error_line(result, pattern)
    assert not out.exists()
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU: cuda is a valid device here")
def test_config_device_cuda_on_a_cpu_machine_fails_before_any_work(tmp_path: Path) -> None:
    """`[run] device = "cuda"` without a GPU: one line naming run.device (not a --device flag `run` lacks)."""
    cfg = tmp_path / "exp.toml"
    cfg.write_text(edited_profile("run.device", "cuda"))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    _assert_one_error_line(result, r"run.device cuda: CUDA is not available")
    assert "--device" not in result.stderr
    assert not out.exists()


def test_toy_d_model_zero_is_caught_by_the_dry_run_too(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(edited_profile("base.toy.d_model", 0))
    result = runner.invoke(app, ["run", str(cfg), "--dry-run"])
    _assert_one_error_line(result, "base.toy.d_model must be at least 1")


def test_the_sweep_covers_at_least_40_mistakes() -> None:
    assert len(FLAG_CASES) + len(CONFIG_CASES) >= 40

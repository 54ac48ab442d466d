"""A wrong path, config file, profile, model or method name is one `error:` line and exit 2 before torch is imported;
`neuronscope methods` lists the methods without importing it.

Every command used to import torch and transformers (3-10 s) before it looked at its inputs. Each case runs the
real CLI in a fresh interpreter and reads `sys.modules` afterwards: the check is what was imported, not a
wall-clock time (benchmarks/bench_startup.py measures the seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# the CLI as `neuronscope ARGS...`, then which heavy modules it imported (the exit status is passed on)
DRIVER = """
import sys
from neuronscope.cli import main
sys.argv = ["neuronscope", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code
print("HEAVY", sorted(m for m in ("torch", "transformers", "transformer_lens") if m in sys.modules))
sys.exit(code)
"""

# (argv, the message the error line must hold); {world} a valid world directory, {tmp} the test's directory:
# {tmp}/nope does not exist, {tmp}/file is a file, {tmp}/empty an empty directory, {tmp}/bad.toml malformed TOML
CASES: list[tuple[list[str], str]] = [
    (["eval", "--ckpt", "{tmp}/nope", "--data", "{tmp}/nope"], "nope: file or directory not found"),
    (["eval", "--ckpt", "{tmp}/nope", "--data", "{world}"], "nope: checkpoint directory not found"),
    (["eval", "--ckpt", "{tmp}/file", "--data", "{world}"], "file: a checkpoint must be a directory, not a file"),
    (["eval", "--ckpt", "{tmp}/empty", "--data", "{world}"], "empty: not an HF checkpoint (no config.json)"),
    (["attribute", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out", "--base", "{tmp}/empty",
      "--calibration", "shipped:smollm2-135m-finetune"], "--calibration changes what the verdict reads: it needs"),
    (["attribute", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out", "--base", "{tmp}/empty",
      "--oracle", "{tmp}/empty", "--calibration", "{tmp}/nope.json"], "nope.json: calibration file not found"),
    (["attribute", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out", "--base", "{tmp}/empty",
      "--oracle", "{tmp}/empty", "--calibration", "shipped:nope"], "unknown shipped calibration 'nope'"),
    (["attribute", "--ckpt", "{tmp}/nope", "--data", "{world}", "--out", "{tmp}/out"],
     "--ckpt {tmp}/nope: checkpoint directory not found"),
    (["attribute", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out", "--base", "{tmp}/nope"],
     "--ckpt {tmp}/empty: not an HF checkpoint (no config.json)"),
    (["lens", "--ckpt", "{tmp}/nope", "--data", "{tmp}/nope", "--out", "{tmp}/out"],
     "nope: file or directory not found"),
    (["lens", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out"],
     "empty: not an HF checkpoint (no config.json)"),
    (["run", "{tmp}/nope.toml"], "nope.toml: config file not found"),
    (["run", "{tmp}/bad.toml", "--dry-run"], "bad.toml: invalid TOML"),
    (["demo", "--profile", "nope", "--out", "{tmp}/out"],
     "--profile must be one of full, small, smollm2-faithun, smollm2-tofu, got 'nope'"),
    (["finetune", "--ckpt", "{tmp}/nope", "--data", "{tmp}/nope", "--out", "{tmp}/out"],
     "nope: file or directory not found"),
    (["finetune", "--ckpt", "{tmp}/file", "--data", "{world}", "--out", "{tmp}/out"],
     "a checkpoint must be a directory, not a file"),
    (["train-base", "--data", "{tmp}/nope", "--out", "{tmp}/out"], "nope: file or directory not found"),
    (["real-facts", "--ckpt", "{tmp}/nope", "--out", "{tmp}/out"], "nope: checkpoint directory not found"),
    (["pull", "nope", "--out", "{tmp}/out"], "unknown pretrained model 'nope' (known: smollm2-135m)"),
    (["calibrate", "--ckpt", "pretrained:nope", "--out", "{tmp}/out"], "unknown pretrained model 'nope'"),
    (["calibrate", "--attack-lr", "0", "--out", "{tmp}/out"], "--attack-lr must be positive, got 0.0"),
    (["calibrate", "--attack-steps", "0", "--out", "{tmp}/out"], "--attack-steps must be at least 1, got 0"),
    (["calibrate", "--attack-p", "0", "--out", "{tmp}/out"], "--attack-p must lie in (0, 1], got 0.0"),
    (["calibrate", "--attack-p", "1.5", "--out", "{tmp}/out"], "--attack-p must lie in (0, 1], got 1.5"),
    (["calibrate", "--ckpt", "{tmp}/empty", "--out", "{tmp}/out"], "empty: not an HF checkpoint (no config.json)"),
    (["calibrate", "--protocol", "knowledge", "--out", "{tmp}/out"],
     "--protocol chooses the recipe on a pretrained checkpoint: give --ckpt"),
    (["calibrate", "--ckpt", "pretrained:smollm2-135m", "--protocol", "faithun", "--out", "{tmp}/out"],
     "--protocol must be one of finetune, knowledge, got 'faithun'"),
    (["calibrate", "--ckpt", "{tmp}/empty", "--protocol", "knowledge", "--out", "{tmp}/out"],
     "empty: not an HF checkpoint (no config.json)"),
    (["unlearn", "--method", "ga", "--ckpt", "{tmp}/nope", "--data", "{tmp}/nope", "--out", "{tmp}/out"],
     "nope: file or directory not found"),
    (["unlearn", "--method", "ga", "--ckpt", "{tmp}/nope", "--data", "{world}", "--out", "{tmp}/out"],
     "nope: checkpoint directory not found"),
    (["unlearn", "--method", "nope", "--ckpt", "{tmp}/nope", "--data", "{world}", "--out", "{tmp}/out"],
     "unknown method 'nope'; choose one of dpo, ga, gd, rmu, klue, npo, simnpo, ssiuu, ssiuu-anchor, ssiuu-neuron"),
    (["attack", "--kind", "benign", "--ckpt", "{tmp}/empty", "--data", "{world}", "--out", "{tmp}/out"],
     "not an HF checkpoint (no config.json)"),
    (["prepare", "--data", "{tmp}/nope", "--out", "{tmp}/out"], "nope: file or directory not found"),
]


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200",
           "NEURONSCOPE_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env=env)


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[f"{a[0]}: {m[:40]}" for a, m in CASES])
def test_bad_input_is_one_line_before_torch(argv: list[str], message: str, tiny_world_dir: Path,
                                            tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a checkpoint")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.toml").write_text("[run\nname = 1\n")
    fill = {"world": str(tiny_world_dir), "tmp": str(tmp_path)}
    out = _cli([a.format(**fill) for a in argv], tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert message.format(**fill) in lines[0], lines[0]
    assert "HEAVY []" in out.stdout, out.stdout  # neither torch nor transformers (nor TransformerLens) was imported
    assert not (tmp_path / "out").exists()


def test_methods_lists_every_method_before_torch(tmp_path: Path) -> None:
    """The listing comes from the catalog (tests/test_unlearn_catalog.py checks it against the method classes)."""
    from neuronscope.unlearn.catalog import CATALOG

    out = _cli(["methods", "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    listing, _, heavy = out.stdout.rpartition("HEAVY ")
    assert heavy.strip() == "[]", out.stdout
    rows = json.loads(listing)
    assert [r["method"] for r in rows] == list(CATALOG) and rows[3]["settings"]["rmu_c"]["default"] == 20.0
    table = _cli(["methods"], tmp_path)
    assert table.returncode == 0 and "HEAVY []" in table.stdout
    assert all(name in table.stdout for name in CATALOG) and "anchor_cache_gib = 1.0" in table.stdout

"""How fast each command answers bad input and `--help`, against a bare `import neuronscope` and the 1.5 s target.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 3] [--commands eval,run,...]

Each case runs the CLI in a fresh interpreter (as the console script does) and times it to the `error:` line on
stderr (bad input: a path that does not exist, an unknown profile, model or method name) or to its exit (`--help`,
`methods`, `neuronscope --help`, `run configs/demo.toml --dry-run`, which builds the toy model to measure it and
so imports torch); the median of `--repeats` runs is printed with its ratio to a bare `python -c "import neuronscope"`
start and to the 1.5 s target, and whether torch was imported. The starts of `import neuronscope.cli` (the floor of
every command) and of `import torch, transformers` (what a lazy import saves) are printed too; the machine's load
varies all of them several-fold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5

# the CLI as `neuronscope ARGS...`, then whether it imported torch (on stdout, after everything else)
DRIVER = """
import sys
from neuronscope.cli import main
sys.argv = ["neuronscope", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code
print("TORCH", "torch" in sys.modules, flush=True)
sys.exit(code)
"""


def bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """One bad input per command; {tmp}/nope does not exist."""
    nope, out = str(tmp / "nope"), str(tmp / "out")
    return {
        "eval": ["--ckpt", nope, "--data", nope],
        "attribute": ["--ckpt", nope, "--data", nope, "--out", out],
        "lens": ["--ckpt", nope, "--data", nope, "--out", out],
        "run": [str(tmp / "nope.toml")],
        "demo": ["--profile", "nope", "--out", out],
        "finetune": ["--ckpt", nope, "--data", nope, "--out", out],
        "train-base": ["--data", nope, "--out", out],
        "real-facts": ["--ckpt", nope, "--out", out],
        "pull": ["nope", "--out", out],
        "unlearn": ["--method", "ga", "--ckpt", nope, "--data", nope, "--out", out],
        "attack": ["--kind", "benign", "--ckpt", nope, "--data", nope, "--out", out],
        "prepare": ["--data", nope, "--out", out],
        "world": ["--out", out, "--people", "1"],
        "calibrate": ["--out", out, "--size", "nope"],
        "figures": ["--run", nope, "--out", out],
        "methods": [],  # no bad input: it lists the catalog of methods
    }


def other_cases() -> list[tuple[str, str, list[str]]]:
    """(command, case, argv) beyond one bad input and `--help` per command."""
    return [("neuronscope", "--help", ["--help"]),
            ("unlearn", "bad method", ["unlearn", "--method", "nope", "--ckpt", "x", "--data", "x", "--out", "y"]),
            ("run", "--dry-run", ["run", str(ROOT / "configs" / "demo.toml"), "--dry-run"])]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NEURONSCOPE_CACHE": str(tmp / "cache"), "COLUMNS": "200"}


def time_command(args: list[str], tmp: Path) -> tuple[float, bool, str]:
    """Seconds to the first `error:` line on stderr (or to the exit when none comes), whether torch was imported,
    and the error line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp, env=_env(tmp))
    assert proc.stderr is not None and proc.stdout is not None
    seconds, error = None, ""
    for line in proc.stderr:
        if line.startswith("error:") and seconds is None:
            seconds, error = time.perf_counter() - t0, line.strip()
    stdout = proc.stdout.read()
    proc.wait()
    if seconds is None:
        seconds = time.perf_counter() - t0
    return seconds, "TORCH True" in stdout, error


def time_python(code: str, tmp: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp, env=_env(tmp), capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--commands", default="", help="Comma-separated subset (default: all; 'neuronscope': the "
                                                   "top-level --help).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cases = bad_inputs(tmp)
        wanted = [c for c in args.commands.split(",") if c] or list(cases)
        bare = statistics.median(time_python("import neuronscope", tmp) for _ in range(args.repeats))
        cli = statistics.median(time_python("import neuronscope.cli", tmp) for _ in range(args.repeats))
        heavy = statistics.median(time_python("import torch, transformers", tmp) for _ in range(args.repeats))
        print(f"python -c 'import neuronscope'             {bare:6.2f} s  (the unit of the ratios below)")
        print(f"python -c 'import neuronscope.cli'         {cli:6.2f} s  (typer, rich and every command module)")
        print(f"python -c 'import torch, transformers'     {heavy:6.2f} s  (what a command saves by not importing "
              "them)")
        print(f"target: {TARGET_S} s; median of {args.repeats} runs each\n")
        print(f"{'command':12} {'case':10} {'seconds':>8} {'x bare':>7} {'x target':>9}  torch  error line")
        todo = [row for name in wanted if name in cases
                for row in ((name, "list" if name == "methods" else "bad input", [name, *cases[name]]),
                            (name, "--help", [name, "--help"]))]
        todo += [row for row in other_cases() if not args.commands or row[0] in wanted]
        for name, case, argv in todo:
            runs = [time_command(argv, tmp) for _ in range(args.repeats)]
            seconds = statistics.median(r[0] for r in runs)
            torch_imported = any(r[1] for r in runs)
            print(f"{name:12} {case:10} {seconds:8.2f} {seconds / bare:7.1f} {seconds / TARGET_S:9.2f}  "
                  f"{'yes' if torch_imported else 'no':5}  {runs[-1][2][:70]}")

if __name__ == "__main__":
    main()

"""The scripts in figures/ regenerate each paper figure from a run directory with one command each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIGURES = Path(__file__).resolve().parents[1] / "figures"


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_each_script_writes_its_figure(n: int, small_run: tuple[Path, str], tmp_path: Path) -> None:
    run_dir = small_run[0]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(FIGURES / f"figure{n}.py"), str(run_dir), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in out.iterdir())
    assert "plotly.min.js" in written  # plotly.js once per directory, loaded by every figure
    figures = [name for name in written if name != "plotly.min.js"]
    assert figures and all(name.startswith(f"figure{n}") and name.endswith(".html") for name in figures)


def test_bad_run_directory(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(FIGURES / "figure2.py"), str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr.startswith("error:")

"""report.html in a real headless browser (Debian's chromium): it loads with no console errors and every figure
renders. Skipped only where chromium is not installed (`make test` installs it where apt-get is available)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def render(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages of level error."""
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r":ERROR:|Uncaught|console\.error|\"error\"", line)]
    return proc.stdout, errors


def test_the_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The harness must catch a script error, or a clean report proves nothing."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><div id=x></div><script>undefinedFunction();</script></body></html>")
    _, errors = render(page, tmp_path)
    assert errors, "a thrown script error must show up as a console error"


def test_report_loads_cleanly_with_every_figure(small_run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "figs"
    result = CliRunner().invoke(app, ["figures", "--run", str(small_run[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    n_figures = len([p for p in out.glob("figure*.html")])
    dom, errors = render(out / "report.html", tmp_path)
    assert errors == []
    # plotly marks every div it has drawn a plot into with the class js-plotly-plot
    assert dom.count("js-plotly-plot") >= n_figures > 0
    assert "<svg" in dom

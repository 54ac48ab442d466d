"""report.html in a real headless browser (Debian's chromium): it loads with no console errors, every figure
renders, nothing runs off the right edge and no figure in it has overlapping or clipped labels. Skipped only where
chromium is not installed (`make test` installs it where apt-get runs as root)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from browser_helpers import CHROMIUM, FLAGS, MEASURE_JS
from test_plots_report import VERDICTS
from typer.testing import CliRunner

from neuronscope.cli import app

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PAGE_JS = """
window.addEventListener('load', () => setTimeout(() => {
  const body = document.body.getBoundingClientRect();
  const wide = [...document.querySelectorAll('table, .js-plotly-plot')]
    .filter(e => e.getBoundingClientRect().right > body.right + 1).map(e => e.tagName + ' ' + e.className);
  const pre = document.createElement('pre'); pre.id = 'page-result'; pre.style.display = 'none';
  pre.textContent = JSON.stringify({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                                    wide: wide});
  document.body.appendChild(pre);
}, 1600));
"""


def render(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages of level error."""
    proc = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,900", "--virtual-time-budget=30000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r":ERROR:|Uncaught|console\.error|\"error\"", line)]
    return proc.stdout, errors


def _json(dom: str, element_id: str) -> dict:
    m = re.search(f'<pre id="{element_id}"[^>]*>(.*?)</pre>', dom, re.S)
    assert m, f"no {element_id} in the page"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


def test_the_check_sees_a_broken_page(tmp_path: Path) -> None:
    """The harness must catch a script error, or a clean report proves nothing."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><div id=x></div><script>undefinedFunction();</script></body></html>")
    _, errors = render(page, tmp_path)
    assert errors, "a thrown script error must show up as a console error"


def test_report_loads_cleanly_and_reads_well(small_run: tuple[Path, str], tmp_path: Path) -> None:
    run = tmp_path / "run"  # the small run with a calibrated verdict added, artifacts shared read-only
    run.mkdir()
    for name in ("config.json", "table.csv"):
        shutil.copy(small_run[0] / name, run / name)
    (run / "artifacts").symlink_to(small_run[0] / "artifacts")
    results = json.loads((small_run[0] / "results.json").read_text())
    results["verdicts"] = {"ga": VERDICTS["ga"], "gd": VERDICTS["ssiuu"]}
    (run / "results.json").write_text(json.dumps(results))
    out = tmp_path / "figs"
    result = CliRunner().invoke(app, ["figures", "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    n_figures = len(list(out.glob("*.html"))) - 1
    text = (out / "report.html").read_text()
    assert "<span class='badge hide'>hide</span>" in text and "No verdict computed" not in text
    probe = out / "report-probe.html"  # beside report.html, so it loads the same plotly.min.js
    probe.write_text(text.replace("</body>", f"<script>{MEASURE_JS}</script><script>{PAGE_JS}</script></body>"))
    dom, errors = render(probe, tmp_path)
    assert errors == []
    # plotly marks every div it has drawn a plot into with the class js-plotly-plot
    assert dom.count("js-plotly-plot") >= n_figures > 0
    page = _json(dom, "page-result")
    assert page["scroll"] <= page["inner"] and page["wide"] == []  # nothing runs off the right edge
    layout = _json(dom, "layout-result")
    assert len(layout) == n_figures
    assert {k: v["problems"] for k, v in layout.items() if v["problems"]} == {}

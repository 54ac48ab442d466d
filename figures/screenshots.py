"""Screenshots of a run's report and figures for the docs: `python figures/screenshots.py RUNDIR OUTDIR`.

Figures are exported as PNG through kaleido (what `neuronscope figures --format png` writes); the report's first
screen (verdict and Table 1) is photographed in headless Chromium. Needs the [export] extra and Chromium.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from neuronscope.errors import NeuronscopeError
from neuronscope.plots.catalog import build_run_figures
from neuronscope.plots.export import check_static_export, export_static, package_versions
from neuronscope.plots.rundir import load_run
from neuronscope.plots.runreport import render_run_report


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit("usage: python figures/screenshots.py RUNDIR OUTDIR")
    run_dir, out = Path(argv[0]), Path(argv[1])
    try:
        browser = check_static_export()
        run = load_run(run_dir)
        figs = build_run_figures(run)
    except NeuronscopeError as e:
        sys.exit(f"error: {e}")
    for path in export_static({s: f.figure for s, f in figs.items()}, out, ["png"], width=1000):
        print(path)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_run_report(run, figs, package_versions(), "inline"))
        shot = (out / "report.png").resolve()
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={Path(tmp) / 'profile'}", "--window-size=1200,1500",
                        "--virtual-time-budget=20000", f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=240)
        print(shot)


if __name__ == "__main__":
    main(sys.argv[1:])

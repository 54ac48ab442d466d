"""Shared by the figure scripts: build the figures of a run directory and write those of one paper figure."""

from __future__ import annotations

import sys
from pathlib import Path

from neuronscope.errors import NeuronscopeError
from neuronscope.plots.catalog import build_run_figures
from neuronscope.plots.export import write_html_figures


def write_figure(prefix: str, argv: list[str] | None = None) -> None:
    """`python figures/figureN.py RUNDIR [OUTDIR]`: write RUNDIR's `figureN*` plots as HTML (and plotly.min.js)."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        sys.exit(f"usage: python {Path(sys.argv[0]).name} RUNDIR [OUTDIR]")
    run = Path(args[0])
    out = Path(args[1]) if len(args) == 2 else run / "figures"
    try:
        figs = {stem: f.figure for stem, f in build_run_figures(run).items() if stem.startswith(prefix)}
    except NeuronscopeError as e:
        sys.exit(f"error: {e}")
    if not figs:
        sys.exit(f"error: {run}: the run has no artifacts for {prefix} (was its stage disabled?)")
    for path in write_html_figures(figs, out):
        print(path)

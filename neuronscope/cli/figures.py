"""`neuronscope figures --run RUNDIR --out DIR`: every paper figure of a run and report.html; HTML by default,
PNG/SVG/PDF through kaleido with `--format`."""

from pathlib import Path
from typing import Annotated, Any

import typer

from neuronscope.cli.app import app, console, user_errors


def build_figures(run_dir: Path, shift_attack: str | None = None) -> dict[str, Any]:
    """{file stem: go.Figure} for every figure the run's artifacts support (missing stages are skipped)."""
    from neuronscope.plots.catalog import build_run_figures

    return {stem: f.figure for stem, f in build_run_figures(run_dir, shift_attack).items()}


@app.command("figures")
@user_errors
def figures_cmd(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by `neuronscope run` or `demo`.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the figures and report.html.")],
    format: Annotated[str, typer.Option("--format", help="Comma-separated: html, png, svg, pdf (static formats "
                                                         "need the [export] extra and Chromium).")] = "html",
    width: Annotated[int, typer.Option(help="Width in px of static figures (height follows each figure).")] = 1000,
    scale: Annotated[float, typer.Option(help="PNG pixel density: 2 doubles both dimensions.")] = 1.0,
    shift_attack: Annotated[str | None, typer.Option(
        "--shift-attack", help="Attack of Figure 6: harmful or benign (default: harmful where the run "
                               "attributed one, as in the paper).")] = None,
    self_contained: Annotated[bool, typer.Option(
        "--self-contained", help="Inline plotly.js into report.html (one file that travels alone) instead of "
                                 "loading the directory's plotly.min.js.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing --out that neuronscope wrote earlier (never a directory without "
                            "its .neuronscope marker).")] = False,
) -> None:
    """Write the paper's figures of a run (HTML loading one plotly.min.js, offline) and report.html."""
    from neuronscope.errors import NeuronscopeError
    from neuronscope.io import write_text
    from neuronscope.outdir import check_output, open_output
    from neuronscope.plots.catalog import build_run_figures
    from neuronscope.plots.export import (
        STATIC,
        check_static_export,
        export_static,
        package_versions,
        parse_formats,
        write_html_figures,
    )
    from neuronscope.plots.report import PLOTLY_JS
    from neuronscope.plots.rundir import load_run
    from neuronscope.plots.runreport import render_run_report

    formats = parse_formats(format)
    if width < 100 or scale <= 0:
        raise NeuronscopeError(f"--width must be >= 100 and --scale > 0, got {width} and {scale}")
    if shift_attack is not None and shift_attack not in ("harmful", "benign"):
        raise NeuronscopeError(f"--shift-attack must be harmful or benign, got {shift_attack!r}")
    if any(f in STATIC for f in formats):
        check_static_export()  # before any work
    check_output(out, overwrite=overwrite, inputs=[run])
    run_data = load_run(run)
    figs = build_run_figures(run_data, shift_attack)
    open_output(out, "figures", replace=overwrite)
    plain = {stem: f.figure for stem, f in figs.items()}
    written: list[Path] = []
    if "html" in formats:
        written += write_html_figures(plain, out)
    written += export_static(plain, out, formats, width, scale)
    report = render_run_report(run_data, figs, package_versions(), "inline" if self_contained else PLOTLY_JS)
    if not self_contained and "html" not in formats:
        from plotly.offline import get_plotlyjs

        written.append(write_text(out / PLOTLY_JS, get_plotlyjs()))
    written.append(write_text(out / "report.html", report))
    console.print(f"{len(figs)} figures ({', '.join(formats)}) and report.html written to {out}")

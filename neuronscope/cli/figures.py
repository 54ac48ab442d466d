"""`neuronscope figures --run RUNDIR --out DIR`: every paper figure of a run as offline HTML, plus report.html."""

import platform
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from neuronscope.cli.app import app, console, user_errors

PACKAGES = ("neuronscope", "torch", "transformers", "transformer-lens", "plotly", "pandas", "numpy")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shaped the numbers (Python first); 'not installed' where absent."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_figures(run_dir: Path) -> dict[str, Any]:
    """{file stem: go.Figure} for every figure the run's artifacts support (missing stages are skipped)."""
    from neuronscope.plots.attacks import figure2_recovery, figure2_trajectories
    from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps
    from neuronscope.plots.lens import figure4_lens
    from neuronscope.plots.rundir import (
        forget_score,
        influence_frames,
        lens_frame,
        load_run,
        recovery_frame,
        shift_frames,
        trajectory_frame,
    )
    from neuronscope.plots.shift import figure6_shift

    run = load_run(run_dir)
    figs: dict[str, Any] = {}
    rec = recovery_frame(run)
    if not rec.empty:
        fs = forget_score(run)
        figs["figure2_recovery"] = figure2_recovery(
            rec, fs["chance"], f"Relearning attacks: {fs['score']} recovered (max FS during retraining)",
            fs["score"], fs["line_label"])
        figs["figure2_trajectories"] = figure2_trajectories(
            trajectory_frame(run), rec, fs["chance"], f"Attack trajectories: {fs['score']} during retraining",
            fs["score"])
    names = (["oracle"] if run.results.get("oracle") else []) + list(run.results.get("methods", []))
    frames = {n: influence_frames(run, n) for n in names}
    curves = {n: f["curves"] for n, f in frames.items() if "curves" in f}
    if curves:
        figs["figure3_cumulative"] = figure3_cumulative(curves)
    lens = lens_frame(run)
    if not lens.empty:
        figs["figure4_lens"] = figure4_lens(lens)
    for n, f in frames.items():
        if "module_layer" in f:
            figs[f"figure5_heatmaps_{n}"] = figure5_heatmaps(
                f["module_layer"], title=f"{n}: mean of the top-100 D per module and layer")
    dist, corr, scatter = shift_frames(run)
    if not corr.empty:
        figs["figure6_shift"] = figure6_shift(dist, corr, scatter)
    return figs


@app.command("figures")
@user_errors
def figures_cmd(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by `neuronscope run` or `demo`.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML figures and report.html.")],
) -> None:
    """Write the paper's figures of a run as standalone HTML (plotly.js inline, works offline) and report.html."""
    from neuronscope.io import write_text
    from neuronscope.plots.report import write_report
    from neuronscope.plots.rundir import load_run, results_table

    run_data = load_run(run)
    figs = build_figures(run)
    out.mkdir(parents=True, exist_ok=True)
    for stem, fig in figs.items():
        write_text(out / f"{stem}.html", fig.to_html(full_html=True, include_plotlyjs=True))
    versions = package_versions()
    sections: list[tuple[str, Any]] = [("Table 1: erased or hidden?", results_table(run_data))]
    sections += [(stem.replace("_", " "), fig) for stem, fig in figs.items()]
    import json

    sections += [("Configuration", json.dumps(run_data.config, indent=1, sort_keys=True, default=str)),
                 ("Versions", ", ".join(f"{k} {v}" for k, v in versions.items()))]
    report = write_report(out / "report.html", f"neuronscope run {run_data.results.get('name', run.name)}",
                          sections, intro=f"Run directory: {run}")
    console.print(f"{len(figs)} figures and {report.name} written to {out}")

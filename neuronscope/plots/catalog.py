"""Every figure of a run directory, each with the heading and one-line caption the report and docs show.

Figures are built only from the run's saved artifacts; a stage the run skipped (attribution, lens) leaves its
figures out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from neuronscope.plots.attacks import figure2_recovery, figure2_trajectories
from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_facets
from neuronscope.plots.lens import figure4_lens
from neuronscope.plots.rundir import (
    RunDir,
    forget_score,
    influence_frames,
    lens_frame,
    load_run,
    patching_frames,
    recovery_frame,
    shift_frames,
    trajectory_frame,
)
from neuronscope.plots.shift import figure6_correlations, figure6_distributions, figure6_scatter


@dataclass
class RunFigure:
    """One figure of a run: the plotly figure, a heading naming the paper figure, and how to read it."""

    figure: go.Figure
    heading: str
    caption: str


def run_models(run: RunDir) -> list[str]:
    """Oracle first (the reference), then the run's methods."""
    return (["oracle"] if run.results.get("oracle") else []) + list(run.results.get("methods", []))


def build_run_figures(run: RunDir | str | Path, shift_attack: str | None = None) -> dict[str, RunFigure]:
    """{file stem: RunFigure} for every figure the run's artifacts support, in reading order."""
    run = run if isinstance(run, RunDir) else load_run(run)
    out: dict[str, RunFigure] = {}
    rec = recovery_frame(run)
    if not rec.empty:
        fs = forget_score(run)
        line = (f"the dotted line is {fs['line_label']} ({fs['chance']:.4g})" if fs["chance"] is not None
                else "no reference line")
        if run.results.get("oracle") or not run.results.get("floor"):
            reference = ("the hatched oracle never learned the facts, so a method clearly above it recovered hidden "
                         "knowledge")
            rises = "a curve that rises faster than the oracle's marks hiding"
        else:  # a pretrained model: no oracle can exist
            reference = ("no oracle can exist for this model; the floor bar is the same attack on facts the base "
                         "never knew, which start near 0 where unlearned facts start near chance, so compare what "
                         "each attack added, not the bars' heights")
            rises = ("no oracle can exist for this model, so no curve here is a floor (Figure 2a's floor bar is the "
                     "attack on never-known facts)")
        out["figure2_recovery"] = RunFigure(
            figure2_recovery(rec, fs["chance"], f"Relearning attacks: {fs['score']} recovered", fs["score"],
                             fs["line_label"]),
            "Figure 2a: how much a relearning attack brings back",
            f"Bars: per attack, the highest {fs['score']} reached while retraining (mean over seeds, error bar = sd, "
            f"strongest learning rate); {reference}; {line}.")
        out["figure2_trajectories"] = RunFigure(
            figure2_trajectories(trajectory_frame(run), rec, fs["chance"],
                                 f"Attack trajectories: {fs['score']} during retraining", fs["score"],
                                 fs["line_label"]),
            "Figure 2b: how fast it comes back",
            f"One panel per attack: {fs['score']} on held-out forget items after each attack step (mean ± sd over "
            f"seeds, at Table 1's learning rate); {rises}.")
    names = run_models(run)
    frames = {n: influence_frames(run, n) for n in names}
    curves = {n: f["curves"] for n, f in frames.items() if "curves" in f}
    if curves:
        out["figure3_cumulative"] = RunFigure(
            figure3_cumulative(curves), "Figure 3: lost vs gained influence (D+ vs D-)",
            "Top: cumulative influence variation over the m most-changed neurons, D+ (positive influence lost: "
            "erased) dotted and D- (negative influence gained: hidden) solid, one colour per model; bottom: the "
            "sums at m = 100. D- above D+ is the paper's sign of hiding.")
    lens = lens_frame(run)
    if not lens.empty:
        out["figure4_lens"] = RunFigure(
            figure4_lens(lens), "Figure 4: what each layer still knows (logit lens)",
            "Accuracy of each layer's residual stream, read through the final norm and unembedding, at preferring "
            "the gold answer over a distractor; base dashed grey (before). At chance 0.5: the layer no longer "
            "carries the fact; below chance: it still tells them apart and steers away (hidden).")
    ml = {n: f["module_layer"] for n, f in frames.items() if "module_layer" in f}
    if ml:
        out["figure5_heatmaps"] = RunFigure(
            figure5_heatmaps(ml), "Figure 5: where influence changed",
            "Per model (rows) and direction (D+ left, D- right), the mean of the 100 largest changes per module "
            "(rows) and layer (columns); one colour scale for every panel, so darker means more change anywhere.")
    patch, acc = patching_frames(run, names)
    if patch:
        out["patching_curves"] = RunFigure(
            patching_facets(patch, acc), "Causal test: patch the most-changed neurons back",
            "Per model: forget accuracy after restoring the top-m neurons by D- (hidden), by D+ (erased) or m "
            "random neurons to their base activations; if a few D- neurons bring the answers back, the knowledge "
            "was hidden behind them.")
    dist, corr, scatter = shift_frames(run, attack=shift_attack)
    if not corr.empty:
        kind = str(corr["attack"].iloc[0])
        note = "" if kind == "harmful" else " The paper's Figure 6 uses a harmful attack; this run attributed "\
            f"its models after the {kind} attack ([attribution] attack)."
        out["figure6_correlations"] = RunFigure(
            figure6_correlations(corr), "Figure 6a: did the attack rewire the attributions?",
            f"Per model, the Pearson correlation over neurons between attributions before and after the {kind} "
            f"attack (max and min over positions stacked); near 1: left in place, lower: rewired (hidden).{note}")
        out["figure6_distributions"] = RunFigure(
            figure6_distributions(dist), "Figure 6b: attribution distributions",
            "Per model, the density of per-neuron attributions for the original (base, grey), unlearned (solid) "
            f"and {kind}-attacked (dotted) model, log density; a shift after the attack means the attack moved "
            "the attributions.")
        out["figure6_scatter"] = RunFigure(
            figure6_scatter(scatter), "Figure 6c: per-neuron attribution before and after the attack",
            "Per model, each point a neuron: attribution unlearned (x) vs attacked (y); points on the dotted y = x "
            "line did not move.")
    return out


__all__ = ["RunFigure", "build_run_figures", "run_models"]

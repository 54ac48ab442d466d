"""Figures of erase-vs-hide: Figure 3 (cumulative D+/D-), Figure 5 (module x layer heatmaps), patching curves.

Each function takes the tables `neuronscope attribute` writes (curves.parquet, module_layer.parquet,
patching.parquet), so a figure can be redrawn from a run directory without a model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronscope.plots.colors import method_color

D_PLUS_COLOR = "#1f77b4"  # erase
D_MINUS_COLOR = "#d62728"  # hide
MODULE_ORDER = ["q", "k", "v", "o", "gate", "up", "down", "in", "out"]
MAX_POINTS = 2000


def _as_runs(data: pd.DataFrame | Mapping[str, pd.DataFrame], name: str = "model") -> dict[str, pd.DataFrame]:
    return {name: data} if isinstance(data, pd.DataFrame) else dict(data)


def _thin(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Row positions to draw of a curve of n points: every one of the first few hundred, then log-spaced."""
    if n <= max_points:
        return np.arange(n)
    head = np.arange(min(n, max_points // 4))
    tail = np.unique(np.geomspace(1, n, max_points - len(head)).astype(np.int64) - 1)
    return np.unique(np.concatenate([head, tail, [n - 1]]))


def figure3_cumulative(curves: pd.DataFrame | Mapping[str, pd.DataFrame], m: int = 100,
                       title: str = "Influence variation: erase (D+) vs hide (D-)") -> go.Figure:
    """Figure 3: (b) cumulative D~+ (dotted) and D~- (solid) over the top-m neurons; (c) their values at `m`.

    `curves` is one `cumulative_curves` table or {run label: table} to compare runs (e.g. methods).
    """
    runs = _as_runs(curves)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                        subplot_titles=("cumulative influence over the top-m neurons", f"sum over the top {m}"))
    several = len(runs) > 1
    labels, plus_at, minus_at = [], [], []
    for label, c in runs.items():
        for kind, dash, base_color in (("d_plus", "dot", D_PLUS_COLOR), ("d_minus", "solid", D_MINUS_COLOR)):
            part = c[c["kind"] == kind].sort_values("m")
            rows = part.iloc[_thin(len(part))]
            color = method_color(str(label)) if several else base_color
            sign = "D+" if kind == "d_plus" else "D-"
            name = f"{label} {sign}" if several else f"{sign} ({'erased' if kind == 'd_plus' else 'hidden'})"
            hover = [f"{label}<br>rank {r.m}: layer {r.layer} {r.module} neuron {r.neuron}<br>"
                     f"{sign} {r.value:.3g}, cumulative {r.cumulative:.3g}" for r in rows.itertuples()]
            fig.add_trace(go.Scatter(x=rows["m"], y=rows["cumulative"], mode="lines",
                                     name=name,
                                     line={"dash": dash, "color": color}, hovertext=hover, hoverinfo="text",
                                     legendgroup=label), row=1, col=1)
            at = part[part["m"] <= m]["cumulative"]
            (plus_at if kind == "d_plus" else minus_at).append(float(at.iloc[-1]) if len(at) else 0.0)
        labels.append(label)
    fig.add_trace(go.Bar(x=labels, y=plus_at, name=f"D+ top {m}", marker_color=D_PLUS_COLOR,
                         hovertemplate="%{x}: D+ top-" + str(m) + " sum %{y:.4g}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Bar(x=labels, y=minus_at, name=f"D- top {m}", marker_color=D_MINUS_COLOR,
                         hovertemplate="%{x}: D- top-" + str(m) + " sum %{y:.4g}<extra></extra>"), row=1, col=2)
    fig.add_vline(x=m, line={"dash": "dash", "color": "grey", "width": 1}, row=1, col=1)
    fig.update_xaxes(type="log", title_text="top-m neurons (sorted by D, descending)", row=1, col=1)
    fig.update_yaxes(title_text="cumulative D", row=1, col=1)
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=420)
    return fig


def figure5_heatmaps(module_layer: pd.DataFrame, top: int = 100,
                     title: str = "Where influence changed: mean of the top-100 D per module and layer") -> go.Figure:
    """Figure 5: heatmaps (module x layer) of the mean of each cell's top-`top` D~+ and D~- (shared colour scale)."""
    modules = [m for m in MODULE_ORDER if m in set(module_layer["module"])]
    modules += sorted(set(module_layer["module"]) - set(modules))
    layers = sorted(module_layer["layer"].unique())
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"D+ (erased), top-{top} mean", f"D- (hidden), top-{top} mean"),
                        horizontal_spacing=0.12)
    vmax = float(np.nanmax(module_layer[["d_plus_top_mean", "d_minus_top_mean"]].to_numpy())) if len(
        module_layer) else 0.0
    cell = module_layer.set_index(["module", "layer"])
    for col, kind, scale in ((1, "d_plus", "Blues"), (2, "d_minus", "Reds")):
        z, text = [], []
        for mod in modules:
            zr, tr = [], []
            for layer in layers:
                if (mod, layer) in cell.index:
                    r = cell.loc[(mod, layer)]
                    zr.append(float(r[f"{kind}_top_mean"]))
                    tr.append(f"layer {layer} {mod}<br>top-{top} mean {r[f'{kind}_top_mean']:.3g}<br>"
                              f"strongest: neuron {int(r[f'{kind}_top_neuron'])} ({r[f'{kind}_max']:.3g})<br>"
                              f"{int(r['n_neurons'])} neurons")
                else:
                    zr.append(None)
                    tr.append(f"layer {layer} {mod}: not present")
            z.append(zr)
            text.append(tr)
        fig.add_trace(go.Heatmap(z=z, x=[str(v) for v in layers], y=modules, text=text, hoverinfo="text",
                                 colorscale=scale, zmin=0, zmax=vmax if vmax > 0 else 1,
                                 colorbar={"x": 0.44 if col == 1 else 1.0, "len": 0.9}), row=1, col=col)
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, template="plotly_white", height=380)
    return fig


def patching_figure(curves: pd.DataFrame, base_accuracy: float | None = None,
                    unlearned_accuracy: float | None = None, chance: float | None = 1 / 3,
                    title: str = "Causal test: patch the top-m neurons back to base activations") -> go.Figure:
    """Recovery curves: forget accuracy of the patched unlearned model vs m, per selection (D-, D+, random)."""
    names = {"d_minus": ("top-m by D- (hidden)", D_MINUS_COLOR, "solid"),
             "d_plus": ("top-m by D+ (erased)", D_PLUS_COLOR, "dot"),
             "random": ("m random neurons", "grey", "dash")}
    fig = go.Figure()
    for sel, part in curves.groupby("selection", sort=False):
        part = part[part["m"] > 0].sort_values("m")
        label, color, dash = names.get(str(sel), (str(sel), None, "solid"))
        fig.add_trace(go.Scatter(x=part["m"], y=part["forget_accuracy"], mode="lines+markers", name=label,
                                 line={"color": color, "dash": dash},
                                 hovertemplate=label + "<br>m %{x}: forget accuracy %{y:.3f}<extra></extra>"))
    for y, label in ((base_accuracy, "base model"), (unlearned_accuracy, "unlearned, unpatched"),
                     (chance, "chance")):
        if y is not None:
            fig.add_hline(y=y, line={"dash": "dot", "color": "black", "width": 1}, annotation_text=label,
                          annotation_position="top left")
    fig.update_xaxes(type="log", title_text="patched neurons m")
    fig.update_yaxes(title_text="forget accuracy (3-option MC)", range=[-0.02, 1.02])
    fig.update_layout(title=title, template="plotly_white", height=420)
    return fig

"""Figures of erase-vs-hide: Figure 3 (cumulative D+/D-), Figure 5 (module x layer heatmaps), patching curves.

Each function takes the tables `neuronscope attribute` writes (curves.parquet, module_layer.parquet,
patching.parquet), so a figure can be redrawn from a run directory without a model. Several runs (methods) are
passed as {label: table} and share one figure, one colour per method and one colour scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronscope.plots.colors import D_MINUS_KEY, D_PLUS_KEY, method_colors
from neuronscope.plots.layout import MARGIN, WIDTH, facet_grid, finish, margin_labels

D_PLUS_COLOR = "#1f77b4"  # erase, when one run is drawn alone
D_MINUS_COLOR = "#d62728"  # hide, when one run is drawn alone
MODULE_ORDER = ["q", "k", "v", "o", "gate", "up", "down", "in", "out"]
MAX_POINTS = 2000
SELECTIONS = {"d_minus": ("top-m by D- (hidden)", D_MINUS_COLOR, "solid", "circle"),
              "d_plus": ("top-m by D+ (erased)", D_PLUS_COLOR, "dot", "square"),
              "random": ("m random neurons", "grey", "dash", "x")}


def _as_runs(data: pd.DataFrame | Mapping[str, pd.DataFrame], name: str = "model") -> dict[str, pd.DataFrame]:
    return {name: data} if isinstance(data, pd.DataFrame) else dict(data)


def _thin(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Row positions to draw of a curve of n points: every one of the first few hundred, then log-spaced."""
    if n <= max_points:
        return np.arange(n)
    head = np.arange(min(n, max_points // 4))
    tail = np.unique(np.geomspace(1, n, max_points - len(head)).astype(np.int64) - 1)
    return np.unique(np.concatenate([head, tail, [n - 1]]))


def _key_trace(name: str, dash: str, color: str = "#333") -> go.Scatter:
    """A legend-only entry that explains a line style."""
    return go.Scatter(x=[None], y=[None], mode="lines", name=name, line={"dash": dash, "color": color},
                      hoverinfo="skip")


def figure3_cumulative(curves: pd.DataFrame | Mapping[str, pd.DataFrame], m: int = 100,
                       title: str = "Influence variation: erase (D+) vs hide (D-)") -> go.Figure:
    """Figure 3: (top) cumulative D~+ (dotted) and D~- (solid) over the top-m neurons; (bottom) their sums at `m`.

    `curves` is one `cumulative_curves` table or {run label: table} to compare runs (e.g. methods). With several
    runs each has one colour and one legend entry, and the bars
    use neutral D+ (hatched) / D- (solid) fills, never a method's colour; the panel title says which line style is
    which.
    """
    runs = _as_runs(curves)
    several = len(runs) > 1
    colors = method_colors(runs)
    top_px, bar_px, gap = 280, 170, 95
    plot_px = top_px + bar_px + gap
    fig = make_subplots(rows=2, cols=1, row_heights=[top_px / (top_px + bar_px), bar_px / (top_px + bar_px)],
                        vertical_spacing=gap / plot_px,
                        subplot_titles=("cumulative influence over the top-m neurons: D+ (erased) dotted, "
                                        "D- (hidden) solid", f"sum over the top {m}"))
    labels, plus_at, minus_at, legend = [], [], [], []
    for label, c in runs.items():
        for kind, dash, base_color in (("d_plus", "dot", D_PLUS_COLOR), ("d_minus", "solid", D_MINUS_COLOR)):
            part = c[c["kind"] == kind].sort_values("m")
            rows = part.iloc[_thin(len(part))]
            color = colors[label] if several else base_color
            sign = "D+" if kind == "d_plus" else "D-"
            name = str(label) if several else f"{sign} ({'erased' if kind == 'd_plus' else 'hidden'})"
            show = not several or kind == "d_minus"
            hover = [f"{label}<br>rank {r.m}: layer {r.layer} {r.module} neuron {r.neuron}<br>"
                     f"{sign} {r.value:.3g}, cumulative {r.cumulative:.3g}" for r in rows.itertuples()]
            fig.add_trace(go.Scatter(x=rows["m"], y=rows["cumulative"], mode="lines", name=name,
                                     line={"dash": dash, "color": color}, hovertext=hover, hoverinfo="text",
                                     legendgroup=str(label), showlegend=show), row=1, col=1)
            if show:
                legend.append(name)
            at = part[part["m"] <= m]["cumulative"]
            (plus_at if kind == "d_plus" else minus_at).append(float(at.iloc[-1]) if len(at) else 0.0)
        labels.append(label)
    plus_name, minus_name = f"D+ top-{m} sum (erased)", f"D- top-{m} sum (hidden)"
    fig.add_trace(go.Bar(x=labels, y=plus_at, name=plus_name,
                         marker={"color": "white", "pattern": {"shape": "/", "fgcolor": D_PLUS_KEY},
                                 "line": {"color": D_PLUS_KEY, "width": 1}},
                         hovertemplate="%{x}: D+ top-" + str(m) + " sum %{y:.4g}<extra></extra>"), row=2, col=1)
    fig.add_trace(go.Bar(x=labels, y=minus_at, name=minus_name, marker_color=D_MINUS_KEY,
                         hovertemplate="%{x}: D- top-" + str(m) + " sum %{y:.4g}<extra></extra>"), row=2, col=1)
    legend += [plus_name, minus_name]
    per_bar = (WIDTH - MARGIN["l"] - MARGIN["r"]) / max(len(labels), 1)
    if max((len(str(v)) for v in labels), default=0) * 7.2 > per_bar - 8:  # long names: break them at '_'
        fig.update_xaxes(tickmode="array", tickvals=labels,
                         ticktext=[str(v).replace("_", "_<br>") for v in labels], row=2, col=1)
    fig.add_vline(x=m, line={"dash": "dash", "color": "grey", "width": 1}, row=1, col=1)
    fig.update_xaxes(type="log", dtick=1, title_text="top-m neurons (sorted by D, descending)", row=1, col=1)
    fig.update_yaxes(title_text="cumulative D", row=1, col=1)
    fig.update_yaxes(title_text=f"sum of top {m}", row=2, col=1)
    fig.update_layout(barmode="group")
    return finish(fig, title, plot_px, legend=legend)


def _heat(ml: pd.DataFrame, kind: str, modules: list[str], layers: list, top: int) -> tuple[list, list]:
    cell = ml.set_index(["module", "layer"])
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
    return z, text


def figure5_heatmaps(module_layer: pd.DataFrame | Mapping[str, pd.DataFrame], top: int = 100,
                     title: str = "Where influence changed: mean of the top-100 D per module and layer") -> go.Figure:
    """Figure 5: one row per model, heatmaps (module x layer) of the mean of each cell's top-`top` D~+ and D~-.

    One colour scale for every panel (0 to the largest value of any model, D+ and D- alike), so models and
    the two directions compare by colour. `module_layer` is one `module_layer_table` or {label: table}.
    """
    runs = _as_runs(module_layer)
    every = pd.concat(list(runs.values()), ignore_index=True) if runs else pd.DataFrame()
    modules = [m for m in MODULE_ORDER if len(every) and m in set(every["module"])]
    modules += sorted(set(every["module"]) - set(modules)) if len(every) else []
    layers = sorted(every["layer"].unique()) if len(every) else []
    vals = every[["d_plus_top_mean", "d_minus_top_mean"]].to_numpy(dtype=float) if len(every) else np.zeros(0)
    vmax = float(np.nanmax(vals)) if vals.size and np.isfinite(vals).any() else 0.0
    several = len(runs) > 1
    titles = [f"{lab}: {s}" if several else s for lab in runs
              for s in (f"D+ (erased), top-{top} mean", f"D- (hidden), top-{top} mean")]
    panel_px = max(90, 20 * len(modules) + 10)
    fig, n_rows, _, plot_px = facet_grid(2 * len(runs), 2, panel_px, titles, gap_px=60 if several else 40,
                                         hgap_px=90, shared_xaxes=False)
    for i, (_label, ml) in enumerate(runs.items()):
        for col, kind, axis in ((1, "d_plus", "coloraxis"), (2, "d_minus", "coloraxis2")):
            z, text = _heat(ml, kind, modules, layers, top)
            fig.add_trace(go.Heatmap(z=z, x=[str(v) for v in layers], y=modules, text=text, hoverinfo="text",
                                     coloraxis=axis, xgap=1, ygap=1), row=i + 1, col=col)
    zmax = vmax if vmax > 0 else 1.0
    bar_len = 0.45 if plot_px >= 300 else 0.5
    fig.update_layout(
        coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": zmax,
                   "colorbar": {"title": {"text": "D+", "side": "top"}, "x": 1.01, "y": 1.0, "yanchor": "top",
                                "len": bar_len, "thickness": 14}},
        coloraxis2={"colorscale": "Reds", "cmin": 0, "cmax": zmax,
                    "colorbar": {"title": {"text": "D-", "side": "top"}, "x": 1.01, "y": 0.0, "yanchor": "bottom",
                                 "len": bar_len, "thickness": 14}})
    fig.update_xaxes(title_text="layer", row=n_rows)
    fig.update_xaxes(type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    finish(fig, title, max(plot_px, 230), right=110)
    fig.update_layout(height=int(max(plot_px, 230) + MARGIN["t"] + MARGIN["b"]))
    return fig


def patching_figure(curves: pd.DataFrame, base_accuracy: float | None = None,
                    unlearned_accuracy: float | None = None, chance: float | None = 1 / 3,
                    title: str = "Causal test: patch the top-m neurons back to base activations") -> go.Figure:
    """Recovery curves: forget accuracy of the patched unlearned model vs m, per selection (D-, D+, random).

    The reference lines (base, unpatched, chance) are labelled in the right margin, pushed apart when close.
    """
    fig = go.Figure()
    legend = []
    for sel, part in curves.groupby("selection", sort=False):
        part = part[part["m"] > 0].sort_values("m")
        label, color, dash, symbol = SELECTIONS.get(str(sel), (str(sel), None, "solid", "circle"))
        fig.add_trace(go.Scatter(x=part["m"], y=part["forget_accuracy"], mode="lines+markers", name=label,
                                 line={"color": color, "dash": dash}, marker={"symbol": symbol, "size": 7},
                                 hovertemplate=label + "<br>m %{x}: forget accuracy %{y:.3f}<extra></extra>"))
        legend.append(label)
    y_range = (-0.02, 1.02)
    plot_px = 300
    lines = [(y, f"{label} {y:.2f}") for y, label in ((base_accuracy, "base model"),
                                                       (unlearned_accuracy, "unpatched"), (chance, "chance"))
             if y is not None]
    for y, _ in lines:
        fig.add_hline(y=y, line={"dash": "dot", "color": "black", "width": 1})
    margin_labels(fig, lines, y_range, plot_px)
    fig.update_xaxes(type="log", title_text="patched neurons m")
    fig.update_yaxes(title_text="forget accuracy (3-option MC)", range=list(y_range))
    return finish(fig, title, plot_px, legend=legend, right=130)


def patching_facets(curves: Mapping[str, pd.DataFrame], accuracy: Mapping[str, Mapping[str, float]],
                    chance: float | None = 1 / 3, width: int = WIDTH,
                    title: str = "Causal test per model: patch the top-m neurons back to base activations"
                    ) -> go.Figure:
    """One panel per model of `patching_figure`'s curves; reference lines are legend entries (base solid grey,
    unpatched dashed, chance dotted). `accuracy`: {label: {"base": ..., "unlearned": ...}}."""
    labels = list(curves)
    fig, _, cols, plot_px = facet_grid(len(labels), 3, 230, labels, width=width)
    legend: list[str] = []
    refs = {"base model": ("solid", "#999"), "unpatched": ("dash", "#555"), "chance": ("dot", "#222")}
    for i, label in enumerate(labels):
        row, col = i // cols + 1, i % cols + 1
        for sel, part in curves[label].groupby("selection", sort=False):
            part = part[part["m"] > 0].sort_values("m")
            name, color, dash, symbol = SELECTIONS.get(str(sel), (str(sel), None, "solid", "circle"))
            fig.add_trace(go.Scatter(x=part["m"], y=part["forget_accuracy"], mode="lines+markers", name=name,
                                     line={"color": color, "dash": dash}, marker={"symbol": symbol, "size": 6},
                                     legendgroup=name, showlegend=name not in legend,
                                     hovertemplate=f"{label} · {name}<br>m %{{x}}: forget accuracy %{{y:.3f}}"
                                                   "<extra></extra>"), row=row, col=col)
            if name not in legend:
                legend.append(name)
        acc = accuracy.get(label, {})
        for ref, y in (("base model", acc.get("base")), ("unpatched", acc.get("unlearned")), ("chance", chance)):
            if y is not None:
                fig.add_hline(y=y, line={"dash": refs[ref][0], "color": refs[ref][1], "width": 1}, row=row, col=col)
    for ref, (dash, color) in refs.items():
        fig.add_trace(_key_trace(ref, dash, color))
        legend.append(ref)
    fig.update_xaxes(type="log", title_text="patched neurons m")
    fig.update_yaxes(range=[-0.02, 1.02])
    fig.update_yaxes(title_text="forget accuracy", col=1)
    return finish(fig, title, plot_px, legend=legend, width=width)


__all__ = ["figure3_cumulative", "figure5_heatmaps", "patching_facets", "patching_figure"]

"""Figure 6: attribution of the original, unlearned and attacked models, and how much an attack moved it.

Hidden knowledge is rewired by a few relearning steps, so its attributions move more: a low before/after-attack
correlation (paper, after a harmful attack: GA 0.73, NPO 0.87, Ssiuu 0.99) marks hiding. Inputs come from
`neuronscope.plots.rundir` (shift_frames), which reads the attribution tables the grid saved. Three figures, each
laid out for 1 to 12 methods: densities and per-neuron scatters are panels wrapped three to a row, the
correlations one horizontal bar per method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from neuronscope.plots.colors import METHOD_COLORS, method_colors
from neuronscope.plots.layout import facet_grid, finish, si_scale

ROLES = ("original", "unlearned", "attacked")
MAX_SCATTER = 3000
COLS = 3


def _methods(*frames: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(m for f in frames for m in f["method"]))


def _attack_note(frame: pd.DataFrame) -> str:
    attacks = sorted(set(frame["attack"])) if "attack" in frame and len(frame) else []
    return f" (after the {', '.join(attacks)} attack)" if attacks else ""


def figure6_distributions(distributions: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per method a panel of attribution densities: original (base, grey), unlearned (solid), attacked (dotted).

    distributions: method, role (original/unlearned/attacked), bin_left, bin_right, density (optionally attack).
    The x axes share one power-of-ten scale, so every tick reads as a plain number of the same unit.
    """
    methods = _methods(distributions)
    colors = method_colors(methods)
    scale, unit = si_scale(distributions[["bin_left", "bin_right"]].to_numpy()) if len(distributions) else (1, "")
    fig, rows, cols, plot_px = facet_grid(max(len(methods), 1), COLS, 210, methods)
    styles = {"original": "solid", "unlearned": "solid", "attacked": "dot"}
    for i, method in enumerate(methods):
        row, col = i // cols + 1, i % cols + 1
        part = distributions[distributions["method"] == method]
        for role in ROLES:
            d = part[part["role"] == role].sort_values("bin_left")
            if d.empty:
                continue
            color = METHOD_COLORS["base"] if role == "original" else colors[method]
            centre = (d["bin_left"] + d["bin_right"]) / 2 * scale
            hover = [f"{method} · {role}<br>attribution [{a:.3g}, {b:.3g}): density {v:.3g}"
                     for a, b, v in zip(d["bin_left"], d["bin_right"], d["density"], strict=True)]
            fig.add_trace(go.Scatter(x=centre, y=d["density"], mode="lines", line_shape="hvh",
                                     name=f"{method} {role}", legendgroup=role, showlegend=False,
                                     line={"dash": styles[role], "color": color, "width": 1.5},
                                     hovertext=hover, hoverinfo="text"), row=row, col=col)
    for role, color in (("original (base)", METHOD_COLORS["base"]), ("unlearned: solid", "#333"),
                        ("attacked: dotted", "#333")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=role, hoverinfo="skip",
                                 line={"dash": "dot" if "dotted" in role else "solid", "color": color}))
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", showexponent="all")
    fig.update_yaxes(title_text="density", col=1)
    fig.update_xaxes(title_text=f"attribution{unit}")
    fig.update_xaxes(nticks=6)
    text = title or f"Attribution distributions: original, unlearned, attacked{_attack_note(distributions)}"
    return finish(fig, text, plot_px, legend=["original (base)", "unlearned: solid", "attacked: dotted"])


def figure6_correlations(correlations: pd.DataFrame, measure: str = "pearson",
                         title: str | None = None) -> go.Figure:
    """One horizontal bar per method: the before/after-attack correlation of its neurons' attributions.

    correlations: method, pearson, spearman (optionally attack, mean_abs_change, n). Close to 1: the attack left
    the attributions in place (erased); lower: the attack rewired them (hidden).
    """
    corr = correlations.drop_duplicates("method").set_index("method")
    methods = list(corr.index)
    colors = method_colors(methods)
    hover = [f"{m}: {measure} {r[measure]:.3f}" + (f", spearman {r['spearman']:.3f}" if "spearman" in r else "")
             + (f"<br>mean |change| {r['mean_abs_change']:.3g}" if "mean_abs_change" in r else "")
             for m, r in corr.iterrows()]
    fig = go.Figure(go.Bar(y=methods, x=corr[measure], orientation="h", name=f"correlation ({measure})",
                           marker_color=[colors[m] for m in methods], hovertext=hover, hoverinfo="text",
                           showlegend=False))
    low = float(np.nanmin(corr[measure])) if len(corr) else 0.0
    fig.update_xaxes(range=[min(0.0, low), 1.02], title_text=f"{measure} correlation, unlearned vs attacked")
    fig.update_yaxes(autorange="reversed", title_text="")
    # the values as tick labels beside the names: readable without hovering, never on a bar
    fig.update_yaxes(tickmode="array", tickvals=methods,
                     ticktext=[f"{m}  {v:.3f}" for m, v in zip(methods, corr[measure], strict=True)])
    text = title or f"Before/after-attack correlation of attributions{_attack_note(correlations)}"
    return finish(fig, text, max(120, 28 * len(methods)), right=60)


def figure6_scatter(scatter: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per method, per neuron: attribution (max over positions) unlearned vs attacked, with the y = x line.

    scatter: method, layer, module, neuron, before, after. Past MAX_SCATTER neurons a panel keeps the ones that
    moved most and a seeded sample of the rest.
    """
    methods = _methods(scatter)
    colors = method_colors(methods)
    scale, unit = si_scale(scatter[["before", "after"]].to_numpy()) if len(scatter) else (1.0, "")
    fig, rows, cols, plot_px = facet_grid(max(len(methods), 1), COLS, 230, methods)
    for i, method in enumerate(methods):
        row, col = i // cols + 1, i % cols + 1
        s = scatter[scatter["method"] == method]
        if len(s) > MAX_SCATTER:  # keep the neurons that moved most, plus a seeded sample of the rest
            moved = (s["after"] - s["before"]).abs()
            top = s.loc[moved.nlargest(MAX_SCATTER // 2).index]
            rest = s.drop(top.index).sample(MAX_SCATTER - len(top), random_state=0)
            s = pd.concat([top, rest])
        if s.empty:
            continue
        hover = [f"layer {r.layer} {r.module} neuron {r.neuron}<br>unlearned {r.before:.3g}, "
                 f"attacked {r.after:.3g}" for r in s.itertuples()]
        fig.add_trace(go.Scattergl(x=s["before"] * scale, y=s["after"] * scale, mode="markers",
                                   name=f"{method} neurons", showlegend=False,
                                   marker={"color": colors[method], "size": 4, "opacity": 0.5},
                                   hovertext=hover, hoverinfo="text"), row=row, col=col)
        lo = float(min(s["before"].min(), s["after"].min())) * scale
        hi = float(max(s["before"].max(), s["after"].max())) * scale
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x (unchanged)",
                                 line={"color": "#999", "dash": "dot", "width": 1}, hoverinfo="skip",
                                 legendgroup="diag", showlegend=i == 0), row=row, col=col)
    fig.update_xaxes(title_text=f"unlearned{unit}")
    fig.update_yaxes(title_text=f"attacked{unit}", col=1)
    fig.update_xaxes(nticks=6)
    fig.update_yaxes(nticks=6)
    text = title or f"Per-neuron attribution, unlearned vs attacked{_attack_note(scatter)}"
    return finish(fig, text, plot_px, legend=["y = x (unchanged)"])


__all__ = ["figure6_correlations", "figure6_distributions", "figure6_scatter"]

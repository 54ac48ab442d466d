"""Figure 6: attribution of the original, unlearned and attacked models, and how much an attack moved it.

Hidden knowledge is rewired by a few relearning steps, so its attributions move more: a low before/after-attack
correlation (paper: GA 0.73, NPO 0.87, Ssiuu 0.99) marks hiding. Inputs come from `neuronscope.plots.rundir`
(shift_frames), which reads the attribution tables the grid saved.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronscope.plots.colors import METHOD_COLORS, method_color

ROLES = ("original", "unlearned", "attacked")
MAX_SCATTER = 3000


def figure6_shift(distributions: pd.DataFrame, correlations: pd.DataFrame, scatter: pd.DataFrame | None = None,
                  measure: str = "pearson",
                  title: str = "Attribution under attack: distributions and before/after-attack correlation"
                  ) -> go.Figure:
    """Per method a panel of attribution densities (original grey, unlearned solid, attacked dotted), a bar panel
    of the before/after-attack correlation per method, and with `scatter` a per-neuron before-vs-after panel.

    distributions: method, role (original/unlearned/attacked), bin_left, bin_right, density.
    correlations: method, pearson, spearman (optionally mean_abs_change, n). scatter: method, layer, module,
    neuron, before, after.
    """
    methods = list(dict.fromkeys([*distributions["method"], *correlations["method"]]))
    cols = len(methods) + 1
    rows = 2 if scatter is not None and not scatter.empty else 1
    titles = [f"{m}: attribution distribution" for m in methods] + [f"before/after-attack correlation ({measure})"]
    if rows == 2:
        titles += [f"{m}: per neuron, unlearned vs attacked" for m in methods] + [""]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.18)
    styles = {"original": ("solid", METHOD_COLORS["base"]), "unlearned": ("solid", None), "attacked": ("dot", None)}
    for col, method in enumerate(methods, start=1):
        part = distributions[distributions["method"] == method]
        for role in ROLES:
            d = part[part["role"] == role].sort_values("bin_left")
            if d.empty:
                continue
            dash, color = styles[role]
            centre = (d["bin_left"] + d["bin_right"]) / 2
            hover = [f"{method} · {role}<br>attribution [{a:.3g}, {b:.3g}): density {v:.3g}"
                     for a, b, v in zip(d["bin_left"], d["bin_right"], d["density"], strict=True)]
            fig.add_trace(go.Scatter(x=centre, y=d["density"], mode="lines", line_shape="hvh",
                                     name=f"{method} {role}", legendgroup=method,
                                     line={"dash": dash, "color": color or method_color(method)},
                                     hovertext=hover, hoverinfo="text"), row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
        fig.update_xaxes(title_text="per-neuron attribution", row=1, col=col)
    corr = correlations.set_index("method").reindex([m for m in methods if m in set(correlations["method"])])
    hover = [f"{m}: {measure} {r[measure]:.3f}" + (f", spearman {r['spearman']:.3f}" if "spearman" in r else "")
             + (f"<br>mean |change| {r['mean_abs_change']:.3g}" if "mean_abs_change" in r else "")
             for m, r in corr.iterrows()]
    fig.add_trace(go.Bar(x=list(corr.index), y=corr[measure], name=f"correlation ({measure})",
                         marker_color=[method_color(m) for m in corr.index], hovertext=hover, hoverinfo="text",
                         showlegend=False), row=1, col=cols)
    fig.update_yaxes(range=[min(0.0, float(corr[measure].min()) if len(corr) else 0.0), 1.02], row=1, col=cols)
    if rows == 2:
        assert scatter is not None
        for col, method in enumerate(methods, start=1):
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
            fig.add_trace(go.Scattergl(x=s["before"], y=s["after"], mode="markers", name=f"{method} neurons",
                                       marker={"color": method_color(method), "size": 4, "opacity": 0.5},
                                       legendgroup=method, showlegend=False, hovertext=hover, hoverinfo="text"),
                          row=2, col=col)
            fig.update_xaxes(title_text="unlearned", row=2, col=col)
            fig.update_yaxes(title_text="attacked", row=2, col=col)
    fig.update_layout(title=title, template="plotly_white", height=420 * rows)
    return fig


__all__ = ["figure6_shift"]

"""Figure 4: logit-lens accuracy per layer (gold vs one distractor, chance 0.5), base vs each unlearned model.

Below chance in deep layers means the model still separates gold from distractor but steers away from the gold:
the knowledge is hidden, not erased. At chance means the layers no longer carry it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from neuronscope.plots.colors import method_colors
from neuronscope.plots.layout import finish, margin_labels, marker_style

Y_RANGE = (-0.02, 1.02)


def figure4_lens(lens: pd.DataFrame, chance: float = 0.5,
                 title: str = "Logit lens: gold-vs-distractor accuracy per layer") -> go.Figure:
    """One line per model (`base` grey = before, every other model = after unlearning).

    Each model has its own marker and dash, markers shrink along the list and models are nudged apart along x
    by a few hundredths of a layer, so identical values (e.g. GD and NPO on a 2-layer run) show as both.
    `lens` columns: model, layer, accuracy, n (optional ties, p_gold, p_distractor), one row per model and layer.
    """
    fig = go.Figure()
    models = list(dict.fromkeys(lens["model"]))
    models = (["base"] if "base" in models else []) + [m for m in models if m != "base"]
    colors = method_colors(models)
    names = []
    for i, model in enumerate(models):
        part = lens[lens["model"] == model].sort_values("layer")
        hover = []
        for r in part.itertuples():
            extra = (f"<br>p(gold) {r.p_gold:.3g}, p(distractor) {r.p_distractor:.3g}"
                     if hasattr(r, "p_gold") and hasattr(r, "p_distractor") else "")
            hover.append(f"{model} · layer {int(r.layer)}<br>accuracy {r.accuracy:.3f} (n={int(r.n)}){extra}")
        style = marker_style(i)
        offset = (i - (len(models) - 1) / 2) * min(0.03, 0.3 / max(len(models), 1))
        name = "base (before)" if model == "base" else model
        names.append(name)
        fig.add_trace(go.Scatter(x=part["layer"] + offset, y=part["accuracy"], mode="lines+markers", name=name,
                                 line={"color": colors[model], "dash": style["dash"], "width": 1.5},
                                 marker={"symbol": style["symbol"], "size": max(6, 14 - i),
                                         "line": {"width": 1, "color": "white"}},
                                 customdata=part["layer"], hovertext=hover, hoverinfo="text"))
    fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1})
    plot_px = 300
    margin_labels(fig, [(chance, f"chance {chance:g}")], Y_RANGE, plot_px)
    fig.update_xaxes(title_text="layer", dtick=1)
    fig.update_yaxes(title_text="lens accuracy<br>(gold beats distractor)", range=list(Y_RANGE))
    return finish(fig, title, plot_px, legend=names)


__all__ = ["figure4_lens"]

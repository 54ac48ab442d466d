"""Figure 4: logit-lens accuracy per layer (gold vs one distractor, chance 0.5), base vs each unlearned model.

Below chance in deep layers means the model still separates gold from distractor but steers away from the gold:
the knowledge is hidden, not erased. At chance means the layers no longer carry it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from neuronscope.plots.colors import method_color


def figure4_lens(lens: pd.DataFrame, chance: float = 0.5,
                 title: str = "Logit lens: gold-vs-distractor accuracy per layer") -> go.Figure:
    """One line per model (`base` dashed grey = before, every other model = after unlearning).

    `lens` columns: model, layer, accuracy, n (optional ties, p_gold, p_distractor), one row per model and layer.
    """
    fig = go.Figure()
    models = list(dict.fromkeys(lens["model"]))
    models = (["base"] if "base" in models else []) + [m for m in models if m != "base"]
    for model in models:
        part = lens[lens["model"] == model].sort_values("layer")
        hover = []
        for r in part.itertuples():
            extra = (f"<br>p(gold) {r.p_gold:.3g}, p(distractor) {r.p_distractor:.3g}"
                     if hasattr(r, "p_gold") and hasattr(r, "p_distractor") else "")
            hover.append(f"{model} · layer {int(r.layer)}<br>accuracy {r.accuracy:.3f} (n={int(r.n)}){extra}")
        fig.add_trace(go.Scatter(x=part["layer"], y=part["accuracy"], mode="lines+markers",
                                 name="base (before)" if model == "base" else model,
                                 line={"color": method_color(model), "dash": "dash" if model == "base" else "solid"},
                                 hovertext=hover, hoverinfo="text"))
    fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1}, annotation_text="chance",
                  annotation_position="bottom right")
    fig.update_xaxes(title_text="layer", dtick=1)
    fig.update_yaxes(title_text="lens accuracy (gold beats distractor)", range=[-0.02, 1.02])
    fig.update_layout(title=title, template="plotly_white", height=400)
    return fig


__all__ = ["figure4_lens"]

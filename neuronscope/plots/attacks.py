"""Figure 2: how much forget accuracy a relearning attack brings back, per method, next to the oracle's.

A method that only hid the facts recovers well above the oracle (a model that never learned them); the bars show
the mean over seeds of the per-run maximum FS with the sd as error bars, the trajectories show how fast it comes.
Inputs are the long tables of `neuronscope.plots.rundir` (recovery_frame, trajectory_frame).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from neuronscope.plots.colors import method_color

CHANCE = 1 / 3  # 3-option multiple choice


def _order(names: list[str]) -> list[str]:
    """Oracle first (the reference), then methods in their given order."""
    return (["oracle"] if "oracle" in names else []) + [n for n in names if n != "oracle"]


def figure2_recovery(recovery: pd.DataFrame, chance: float | None = CHANCE,
                     title: str = "Relearning attacks: forget accuracy recovered (max FS during retraining)",
                     score: str = "forget accuracy", line_label: str = "chance") -> go.Figure:
    """Grouped bars: x = attack, one bar per model (oracle included, drawn hatched), error bar = sd over seeds.

    `recovery` columns: method, attack, mean, sd, n, lr (one row per method and attack, as in Table 1).
    """
    fig = go.Figure()
    attacks = list(dict.fromkeys(recovery["attack"]))
    for method in _order(list(dict.fromkeys(recovery["method"]))):
        part = recovery[recovery["method"] == method].set_index("attack").reindex(attacks)
        sd = part["sd"].fillna(0.0)
        hover = [f"{method} · {a}<br>max FS {r.mean:.3f} ± {r.sd:.3f} (sd, n={r.n})<br>lr {r.lr:g}"
                 if pd.notna(r.mean) else f"{method} · {a}: not run" for a, r in zip(attacks, part.itertuples(),
                                                                                 strict=True)]
        fig.add_trace(go.Bar(x=attacks, y=part["mean"], name=method, marker_color=method_color(method),
                             marker_pattern_shape="/" if method == "oracle" else "",
                             error_y={"type": "data", "array": sd.tolist(), "visible": True},
                             hovertext=hover, hoverinfo="text"))
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1}, annotation_text=line_label,
                      annotation_position="top left")
    fig.update_yaxes(title_text=f"{score} recovered (mean ± sd over seeds)", range=[0, 1.05])
    fig.update_xaxes(title_text="attack")
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=420)
    return fig


def figure2_trajectories(trajectories: pd.DataFrame, recovery: pd.DataFrame | None = None,
                         chance: float | None = CHANCE,
                         title: str = "Attack trajectories: forget accuracy during retraining",
                         score: str = "forget accuracy") -> go.Figure:
    """One panel per attack: FS vs step per model, mean over seeds with sd error bars.

    `trajectories` columns: method, attack, lr, seed, step, fs. With `recovery`, only the learning rate Table 1
    used for each (method, attack) is drawn; otherwise all runs of a (method, attack) are averaged.
    """
    traj = trajectories
    if recovery is not None:
        keep = recovery[["method", "attack", "lr"]]
        traj = traj.merge(keep, on=["method", "attack", "lr"], how="inner")
    attacks = list(dict.fromkeys(traj["attack"]))
    fig = make_subplots(rows=1, cols=max(len(attacks), 1), subplot_titles=attacks, shared_yaxes=True)
    for col, attack in enumerate(attacks, start=1):
        for method in _order(list(dict.fromkeys(traj["method"]))):
            part = traj[(traj["attack"] == attack) & (traj["method"] == method)]
            if part.empty:
                continue
            g = part.groupby("step")["fs"].agg(["mean", "std", "size"]).reset_index()
            hover = [f"{method} · {attack}<br>step {int(r.step)}: FS {r.mean:.3f}"
                     + (f" ± {r.std:.3f}" if pd.notna(r.std) else "") + f" ({int(r.size)} seeds)"
                     for r in g.itertuples()]
            fig.add_trace(go.Scatter(x=g["step"], y=g["mean"], mode="lines+markers", name=method,
                                     line={"color": method_color(method), "dash": "dash" if method == "oracle"
                                           else "solid"},
                                     error_y={"type": "data", "array": g["std"].fillna(0.0).tolist(),
                                              "visible": True, "thickness": 1},
                                     legendgroup=method, showlegend=col == 1, hovertext=hover, hoverinfo="text"),
                          row=1, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1}, row=1, col=col)
    fig.update_xaxes(title_text="attack step")
    fig.update_yaxes(title_text=f"{score} (held-out forget items)", range=[0, 1.05], row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=400)
    return fig


__all__ = ["figure2_recovery", "figure2_trajectories"]

"""Figure 2: how much forget accuracy a relearning attack brings back, per method, next to the oracle's.

A method that only hid the facts recovers well above the oracle (a model that never learned them); the bars show
the mean over seeds of the per-run maximum FS with the sd as error bars, the trajectories show how fast it comes.
Inputs are the long tables of `neuronscope.plots.rundir` (recovery_frame, trajectory_frame).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from neuronscope.plots.colors import method_colors
from neuronscope.plots.layout import facet_grid, finish, margin_labels, marker_style

CHANCE = 1 / 3  # 3-option multiple choice
Y_RANGE = (0.0, 1.05)


def _order(names: list[str]) -> list[str]:
    """Oracle first (the reference), then methods in their given order."""
    return (["oracle"] if "oracle" in names else []) + [n for n in names if n != "oracle"]


def _line_label(label: str, value: float) -> str:
    """The margin label names the line only; its value is on the y axis (and in the report's caption)."""
    return label


def figure2_recovery(recovery: pd.DataFrame, chance: float | None = CHANCE,
                     title: str = "Relearning attacks: forget accuracy recovered (max FS during retraining)",
                     score: str = "forget accuracy", line_label: str = "chance") -> go.Figure:
    """Grouped bars: x = attack, one bar per model (oracle included, drawn hatched), error bar = sd over seeds.

    `recovery` columns: method, attack, mean, sd, n, lr (one row per method and attack, as in Table 1). The
    reference line (chance, or TOFU's stop threshold) is labelled in the right margin, off the bars.
    """
    fig = go.Figure()
    attacks = list(dict.fromkeys(recovery["attack"]))
    methods = _order(list(dict.fromkeys(recovery["method"])))
    colors = method_colors(methods)
    for method in methods:
        part = recovery[recovery["method"] == method].set_index("attack").reindex(attacks)
        sd = part["sd"].fillna(0.0)
        hover = [f"{method} · {a}<br>max FS {r.mean:.3f} ± {r.sd:.3f} (sd, n={r.n})<br>lr {r.lr:g}"
                 if pd.notna(r.mean) else f"{method} · {a}: not run" for a, r in zip(attacks, part.itertuples(),
                                                                                 strict=True)]
        fig.add_trace(go.Bar(x=attacks, y=part["mean"], name=method, marker_color=colors[method],
                             marker_pattern_shape="/" if method == "oracle" else "",
                             marker_line={"color": "#333", "width": 0.5},
                             error_y={"type": "data", "array": sd.tolist(), "visible": True},
                             hovertext=hover, hoverinfo="text"))
    plot_px = 300
    if chance is not None:
        fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1})
        margin_labels(fig, [(chance, _line_label(line_label, chance))], Y_RANGE, plot_px)
    fig.update_yaxes(title_text=f"{score} recovered<br>(mean ± sd over seeds)", range=list(Y_RANGE))
    fig.update_xaxes(title_text="attack")
    fig.update_layout(barmode="group", bargroupgap=0.05)
    return finish(fig, title, plot_px, legend=methods)


def figure2_trajectories(trajectories: pd.DataFrame, recovery: pd.DataFrame | None = None,
                         chance: float | None = CHANCE,
                         title: str = "Attack trajectories: forget accuracy during retraining",
                         score: str = "forget accuracy", line_label: str = "chance") -> go.Figure:
    """One panel per attack: FS vs step per model, mean over seeds with sd error bars.

    `trajectories` columns: method, attack, lr, seed, step, fs. With `recovery`, only the learning rate Table 1
    used for each (method, attack) is drawn; otherwise all runs of a (method, attack) are averaged. Every model
    has its own marker and dash, so lines with equal values stay visible.
    """
    traj = trajectories
    if recovery is not None:
        keep = recovery[["method", "attack", "lr"]]
        traj = traj.merge(keep, on=["method", "attack", "lr"], how="inner")
    attacks = list(dict.fromkeys(traj["attack"]))
    methods = _order(list(dict.fromkeys(traj["method"])))
    colors = method_colors(methods)
    panel_px = 280
    fig, _, _, plot_px = facet_grid(max(len(attacks), 1), 3, panel_px, attacks, shared_yaxes=True)
    for i, attack in enumerate(attacks):
        row, col = i // 3 + 1, i % 3 + 1
        for j, method in enumerate(methods):
            part = traj[(traj["attack"] == attack) & (traj["method"] == method)]
            if part.empty:
                continue
            g = part.groupby("step")["fs"].agg(["mean", "std", "size"]).reset_index()
            hover = [f"{method} · {attack}<br>step {int(r.step)}: FS {r.mean:.3f}"
                     + (f" ± {r.std:.3f}" if pd.notna(r.std) else "") + f" ({int(r.size)} seeds)"
                     for r in g.itertuples()]
            style = marker_style(j)
            fig.add_trace(go.Scatter(x=g["step"], y=g["mean"], mode="lines+markers", name=method,
                                     line={"color": colors[method], "dash": style["dash"], "width": 1.5},
                                     marker={"symbol": style["symbol"], "size": 7},
                                     error_y={"type": "data", "array": g["std"].fillna(0.0).tolist(),
                                              "visible": True, "thickness": 1},
                                     legendgroup=method, showlegend=i == 0, hovertext=hover, hoverinfo="text"),
                          row=row, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line={"dash": "dot", "color": "grey", "width": 1}, row=row, col=col)
    if chance is not None and attacks:
        last = min(len(attacks), 3)
        yref = "y" if last == 1 else f"y{last}"
        margin_labels(fig, [(chance, _line_label(line_label, chance))], Y_RANGE, panel_px, yref=yref)
    fig.update_xaxes(title_text="attack step")
    fig.update_yaxes(range=list(Y_RANGE))
    fig.update_yaxes(title_text=f"{score}<br>(held-out forget items)", col=1)
    return finish(fig, title, plot_px, legend=methods)


__all__ = ["figure2_recovery", "figure2_trajectories"]

"""Layout shared by every figure: legends below the plot that wrap instead of scrolling, reference-line labels in
the right margin (never on the data), facet grids whose gaps are set in pixels, and one tick scale per axis.

Sizes are computed from the number of legend entries and panels so a figure stays legible from 1 to 12 methods;
`WIDTH` is the width they are planned for (the report's column; static export uses it unless told otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

WIDTH = 1000
MARGIN = {"l": 70, "r": 110, "t": 70, "b": 60}
LEGEND_ROW = 24  # px per row of a horizontal legend
_CHAR = 7.2  # px per character of 12 px text (a safe over-estimate)
MARKERS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star", "hexagon",
           "pentagon", "triangle-left", "triangle-right", "hourglass", "bowtie"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def marker_style(i: int) -> dict[str, object]:
    """The i-th series' marker symbol and line dash: lines with equal values stay tellable apart."""
    return {"symbol": MARKERS[i % len(MARKERS)], "dash": DASHES[i % len(DASHES)]}


def legend_rows(names: Sequence[str], width: int = WIDTH) -> int:
    """Rows a horizontal legend of these entries needs at `width` (entry = symbol + text + gap)."""
    avail = width - MARGIN["l"] - 20
    rows, used = 1, 0.0
    for n in names:
        w = 50 + _CHAR * len(n)
        if used and used + w > avail:
            rows, used = rows + 1, 0.0
        used += w
    return rows if names else 0


def finish(fig: go.Figure, title: str, plot_height: int, legend: Sequence[str] = (), width: int = WIDTH,
           right: int | None = None, bottom: int | None = None) -> go.Figure:
    """Title top-left, a horizontal legend under everything (wrapping, never scrolling), height = plot + legend.

    `legend` lists the entry names the figure shows, to size the legend's rows; `plot_height` is the height the
    plot area(s) and axis labels need.
    """
    rows = legend_rows(list(legend), width)
    b = (bottom if bottom is not None else MARGIN["b"]) + (rows * LEGEND_ROW + 16 if rows else 0)
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "y": 0.99, "yref": "container", "yanchor": "top",
               "font": {"size": 16}},
        template="plotly_white", height=int(plot_height + MARGIN["t"] + b),
        margin={**MARGIN, "r": MARGIN["r"] if right is None else right, "b": b},
        legend={"orientation": "h", "yref": "container", "y": 0.005, "yanchor": "bottom", "x": 0.0,
                "xanchor": "left", "traceorder": "normal", "font": {"size": 12}},
        showlegend=bool(rows),
    )
    return fig


def margin_labels(fig: go.Figure, lines: Sequence[tuple[float, str]], y_range: tuple[float, float],
                  plot_px: float, yref: str = "y", min_px: float = 16) -> None:
    """Label horizontal reference lines in the right margin, pushed apart where values are close."""
    if not lines:
        return
    span = (y_range[1] - y_range[0]) or 1.0
    gap = min_px / max(plot_px, 1) * span
    placed: list[float] = []
    for y, _ in sorted(lines):
        pos = y if not placed else max(y, placed[-1] + gap)
        placed.append(pos)
    for (_, text), pos in zip(sorted(lines), placed, strict=True):
        fig.add_annotation(text=text, xref="paper", x=1.0, xanchor="left", xshift=6, yref=yref, y=pos,
                           yanchor="middle", showarrow=False, font={"size": 11, "color": "#444"}, align="left")


def facet_grid(n: int, max_cols: int, panel_px: int, titles: Sequence[str], width: int = WIDTH,
               gap_px: int = 95, hgap_px: int = 80, **kwargs: object) -> tuple[go.Figure, int, int, int]:
    """make_subplots for n panels wrapped into rows of at most `max_cols`, gaps fixed in pixels.

    Returns (figure, rows, cols, plot height in px). The vertical gap holds a panel's tick labels, its x title
    and the next panel's title.
    """
    cols = max(1, min(n, max_cols))
    rows = max(1, math.ceil(n / cols))
    plot_px = rows * panel_px + (rows - 1) * gap_px
    plot_w = width - MARGIN["l"] - MARGIN["r"]
    hspace = min(hgap_px / plot_w, 0.9 / cols) if cols > 1 else 0.0
    vspace = gap_px / plot_px if rows > 1 else 0.0
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), vertical_spacing=vspace,
                        horizontal_spacing=hspace, **kwargs)  # type: ignore[arg-type]
    return fig, rows, cols, plot_px


def si_scale(values: np.ndarray | Sequence[float]) -> tuple[float, str]:
    """(factor, unit label) so values * factor fit 0.1-1000 with plain ticks: one scale, never '400µ' next to
    '0.005' on the same axis."""
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return 1.0, ""
    exp = int(math.floor(math.log10(float(v.max()))))
    k = 3 * math.floor(exp / 3) if exp < 0 or exp >= 3 else 0
    return (10.0 ** -k, f" (×10<sup>{k}</sup>)") if k else (1.0, "")


__all__ = ["DASHES", "MARKERS", "WIDTH", "facet_grid", "finish", "legend_rows", "margin_labels", "marker_style",
           "si_scale"]

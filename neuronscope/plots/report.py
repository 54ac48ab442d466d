"""HTML reports: each figure and table as a section, plotly.js either inlined once per file (a report that travels
alone) or loaded from `plotly.min.js` beside it (one copy per report directory).

Reports must open offline (no CDN), so each figure is written with `include_plotlyjs=False` after the one script.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from neuronscope.io import write_text

Section = tuple[str, "go.Figure | pd.DataFrame | str"]
PLOTLY_JS = "plotly.min.js"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222;
       line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; } td:not(.l) { white-space: nowrap; }
td small { color: #555; }
.wrap { overflow-x: auto; max-width: 100%; }
.note, .caption { color: #555; } .caption { margin: 0.2em 0 0.6em; max-width: 60em; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 3px; color: white; font-weight: 600; }
.erase { background: #2c7a3f; } .hide { background: #b03a2e; } .not-unlearned { background: #7a5c00; }
.undetermined { background: #666; }
tr.floor td { background: #f7f7f7; font-weight: 600; }
"""


def plotly_script(plotlyjs: str = "inline") -> str:
    """The one <script> a report loads plotly.js with: 'inline', or a path relative to the report."""
    if plotlyjs == "inline":
        return f"<script type='text/javascript'>{get_plotlyjs()}</script>"
    return f"<script type='text/javascript' src='{html.escape(plotlyjs)}'></script>"


def figure_html(fig: go.Figure) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _section_html(body: go.Figure | pd.DataFrame | str) -> str:
    if isinstance(body, go.Figure):
        return figure_html(body)
    if isinstance(body, pd.DataFrame):
        return body.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="–")
    return f"<p class='note'>{html.escape(body)}</p>"


def page(title: str, body: str, plotlyjs: str = "inline") -> str:
    """A whole HTML page around `body` with the report style and plotly.js loaded once."""
    return "\n".join([f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                      f"<style>{STYLE}</style>", plotly_script(plotlyjs), "</head><body>", body,
                      "</body></html>\n"])


def render_report(title: str, sections: Sequence[Section], intro: str = "", plotlyjs: str = "inline") -> str:
    """The HTML text of a report; a section body is a Figure, a DataFrame or plain text."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(_section_html(body))
    return page(title, "\n".join(parts), plotlyjs)


def write_report(path: str | Path, title: str, sections: Sequence[Section], intro: str = "",
                 plotlyjs: str = "inline") -> Path:
    """Write the report atomically."""
    return write_text(path, render_report(title, sections, intro, plotlyjs))

"""A self-contained HTML report: plotly.js embedded once, then each figure and table as a section.

Reports must open offline (no CDN), so the plotly.js bundle is inlined a single time per file and each figure
is written with `include_plotlyjs=False`.
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

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
.note { color: #555; }
"""


def _section_html(body: go.Figure | pd.DataFrame | str) -> str:
    if isinstance(body, go.Figure):
        return body.to_html(full_html=False, include_plotlyjs=False)
    if isinstance(body, pd.DataFrame):
        return body.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
    return f"<p class='note'>{html.escape(body)}</p>"


def render_report(title: str, sections: Sequence[Section], intro: str = "") -> str:
    """The HTML text of a report; a section body is a Figure, a DataFrame or plain text."""
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style>",
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(_section_html(body))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | Path, title: str, sections: Sequence[Section], intro: str = "") -> Path:
    """Write the report atomically."""
    return write_text(path, render_report(title, sections, intro))

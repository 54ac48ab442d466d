"""Figures in Jupyter that survive export: one output holding the interactive plotly figure and a static PNG.

Front ends that run plotly (JupyterLab, VS Code) show the interactive one; nbconvert's HTML, GitHub and other
static viewers fall back to the PNG. The PNG comes from kaleido and the local Chromium (the [export] extra); one
browser is started for the whole session. Without them only the interactive figure is stored, and a text note
says why.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from neuronscope.plots.layout import WIDTH

_server: dict[str, bool] = {"started": False}


def static_png(fig: go.Figure, width: int = WIDTH, scale: float = 1.0) -> bytes | None:
    """PNG bytes of `fig` laid out for `width`, or None where kaleido or Chromium is missing."""
    try:
        import kaleido

        from neuronscope.plots.export import check_static_export, for_print
        browser = check_static_export()
    except Exception:  # noqa: BLE001 - no static fallback is a note, not an error, in a notebook
        return None
    if not _server["started"]:
        kaleido.start_sync_server(path=browser, mathjax=False, silence_warnings=True)
        _server["started"] = True
    f = for_print(fig, width)
    return kaleido.calc_fig_sync(f.to_plotly_json(), opts={"format": "png", "width": width,
                                                          "height": int(f.layout.height), "scale": scale})


class Shown:
    """What `show` returns: Jupyter displays its mime bundle (interactive plotly + static PNG + text)."""

    def __init__(self, fig: go.Figure, width: int = WIDTH) -> None:
        self.fig, self.width = fig, width

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"application/vnd.plotly.v1+json": {
            **json.loads(pio.to_json(self.fig, validate=False)), "config": {"displaylogo": False}}}
        png = static_png(self.fig, self.width)
        title = self.fig.layout.title.text or "figure"
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
            bundle["text/plain"] = f"<{title}: interactive plotly figure with a static PNG>"
        else:
            bundle["text/plain"] = (f"<{title}: interactive plotly figure; no static copy (install "
                                    "'neuronscope[export]' and Chromium for one that survives export)>")
        return bundle


def show(fig: go.Figure, width: int = WIDTH) -> Shown:
    """Display `fig` so it survives nbconvert and GitHub: end a cell with `show(fig)`."""
    return Shown(fig, width)


__all__ = ["Shown", "show", "static_png"]

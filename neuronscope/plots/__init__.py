"""Interactive plotly figures of the paper, each a function of saved-artifact tables (never of models).

The names load on first use (PEP 562): a command that only checks its inputs here (`plots.attribute_inputs`)
imports neither pandas nor plotly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_figure
    from neuronscope.plots.report import write_report

_LAZY = {"figure3_cumulative": "influence", "figure5_heatmaps": "influence", "patching_figure": "influence",
         "write_report": "report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"neuronscope.plots.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'neuronscope.plots' has no attribute {name!r}")


__all__ = ["figure3_cumulative", "figure5_heatmaps", "patching_figure", "write_report"]

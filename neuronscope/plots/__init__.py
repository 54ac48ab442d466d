"""Interactive plotly figures of the paper, each a function of saved-artifact tables (never of models)."""

from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_figure
from neuronscope.plots.report import write_report

__all__ = ["figure3_cumulative", "figure5_heatmaps", "patching_figure", "write_report"]

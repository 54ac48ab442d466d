"""The experiment grid (Table 1): config, cached artifacts, the grid runner; re-exported for convenience, its
typed results (neuronscope.run_results: the schema writer and readers share) and Table 1 (neuronscope.plots.table).

The names load on first use (PEP 562): reading a run's results (the table, the figures, the report) does not
import torch and transformers, which only the grid runner needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from neuronscope.experiment.cache import ArtifactCache, input_key
    from neuronscope.experiment.config import ExperimentConfig, load_config, parse_config, profile
    from neuronscope.experiment.grid import GridResult, run_grid
    from neuronscope.plots.table import build_table, to_markdown, to_rich
    from neuronscope.run_results import Results

_LAZY = {
    "ArtifactCache": "cache", "input_key": "cache",
    "ExperimentConfig": "config", "load_config": "config", "parse_config": "config", "profile": "config",
    "GridResult": "grid", "run_grid": "grid", "Results": "neuronscope.run_results",
    "build_table": "neuronscope.plots.table", "to_markdown": "neuronscope.plots.table",
    "to_rich": "neuronscope.plots.table",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        return getattr(importlib.import_module(where if "." in where else f"neuronscope.experiment.{where}"), name)
    raise AttributeError(f"module 'neuronscope.experiment' has no attribute {name!r}")


__all__ = ["ArtifactCache", "ExperimentConfig", "GridResult", "Results", "build_table", "input_key", "load_config",
           "parse_config", "profile", "run_grid", "to_markdown", "to_rich"]

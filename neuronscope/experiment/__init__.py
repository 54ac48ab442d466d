"""The experiment grid (Table 1): config, cached artifacts, the grid runner, its typed results and the table.

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
    from neuronscope.experiment.results import Results
    from neuronscope.experiment.table import build_table, to_markdown, to_rich

_LAZY = {
    "ArtifactCache": "cache", "input_key": "cache",
    "ExperimentConfig": "config", "load_config": "config", "parse_config": "config", "profile": "config",
    "GridResult": "grid", "run_grid": "grid", "Results": "results",
    "build_table": "table", "to_markdown": "table", "to_rich": "table",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"neuronscope.experiment.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'neuronscope.experiment' has no attribute {name!r}")


__all__ = ["ArtifactCache", "ExperimentConfig", "GridResult", "Results", "build_table", "input_key", "load_config",
           "parse_config", "profile", "run_grid", "to_markdown", "to_rich"]

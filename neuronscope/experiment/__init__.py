"""The experiment grid (Table 1): config, cached artifacts, the grid runner and the results table."""

from neuronscope.experiment.cache import ArtifactCache, input_key
from neuronscope.experiment.config import ExperimentConfig, load_config, parse_config, profile
from neuronscope.experiment.grid import GridResult, run_grid
from neuronscope.experiment.table import build_table, to_markdown, to_rich

__all__ = ["ArtifactCache", "ExperimentConfig", "GridResult", "build_table", "input_key", "load_config",
           "parse_config", "profile", "run_grid", "to_markdown", "to_rich"]

"""`neuronscope run CONFIG` (the experiment grid) and `neuronscope demo` (the grid on the embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli import attack as _attack  # noqa: F401  (registers `attack` with this module)
from neuronscope.cli.app import app, console, user_errors


def _finish(result) -> None:  # noqa: ANN001  (a GridResult; imported lazily to keep `--help` fast)
    from neuronscope.experiment.table import build_table, to_rich

    console.print(to_rich(build_table(result.results)))
    console.print(f"{len(result.computed)} artifacts computed, {len(result.skipped)} reused from cache, "
                  f"{result.results['seconds']}s")
    console.print(f"run directory: {result.out}  (table.md, table.csv, results.json, run.log)")


@app.command("run")
@user_errors
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML); see docs/experiments.md.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory: artifacts, tables and the log.")],
) -> None:
    """Run (or resume) an experiment grid: base, oracle, unlearning, attacks, attribution, lens, Table 1."""
    from neuronscope.experiment.config import load_config
    from neuronscope.experiment.grid import run_grid

    cfg = load_config(config)
    _finish(run_grid(cfg, out, console=console))


@app.command("demo")
@user_errors
def demo_cmd(
    profile: Annotated[str, typer.Option(help="full (the paper-style grid, ~10 min on 2 cores) or small (a tiny "
                                              "world and model, for tests).")] = "full",
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/demo"),
) -> None:
    """The whole grid on the embedded default world and toy model, ending with Table 1."""
    from neuronscope.experiment.config import profile as load_profile
    from neuronscope.experiment.grid import run_grid

    cfg = load_profile(profile)
    _finish(run_grid(cfg, out, console=console))

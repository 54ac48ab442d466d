"""`neuronscope run CONFIG` (the experiment grid) and `neuronscope demo` (the grid on the embedded default)."""

from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli import attack as _attack  # noqa: F401  (registers `attack` with this module)
from neuronscope.cli.app import app, console, user_errors
from neuronscope.cli.options import DryRunOpt, SeqLenOpt, TrackOpt


def _dry_run(cfg, seq_len: int | None, dtype: str | None) -> None:  # noqa: ANN001  (an ExperimentConfig)
    """Print plan_grid's tables: the base checkpoint's config.json (or the toy recipe) and the data's counts."""
    from neuronscope.cli.options import plan_inputs, print_plan
    from neuronscope.experiment.stages import load_experiment_data
    from neuronscope.plan import DataCounts, plan_grid, planned_dtype, shape_from_config

    ds = load_experiment_data(cfg)  # exactly what the run would prepare (no weights are read)
    if cfg.base_ckpt is not None:
        shape, counts = plan_inputs(Path(cfg.base_ckpt), ds, seq_len)
    else:  # the toy base the grid would train: its (tiny) architecture is built to be measured
        from neuronscope.base_model import new_toy_model

        toy = new_toy_model(ds, cfg.base.toy)
        shape, counts = shape_from_config(toy.hf.config, "toy"), DataCounts.from_dataset(ds, toy.tokenizer, seq_len)
    assert counts is not None
    wdtype = planned_dtype(dtype or cfg.dtype, cfg.device, cfg.device_map or None)
    print_plan(plan_grid(cfg, shape, wdtype, counts), shape, counts, wdtype)


def _finish(result, track: str | None = None) -> None:  # noqa: ANN001  (a GridResult; imported lazily)
    from neuronscope.plots.table import build_table, to_rich

    rows = build_table(result.results)
    if track is not None:  # the whole grid, read back from its artifacts (a resumed run logs everything)
        from neuronscope.tracking import log_grid, open_tracker

        with open_tracker(track, result.out, result.results.get("name", "grid"), result.results["config"]) as t:
            log_grid(t, result.out, result.results, rows)
    console.print(to_rich(rows))
    for name, verdict in result.results.get("verdicts", {}).items():
        console.print(f"[bold]{name}[/]: {verdict['label']}: {verdict['reason']}", highlight=False)
    console.print(f"{len(result.computed)} artifacts computed, {len(result.skipped)} reused from cache, "
                  f"{result.results['seconds']}s")
    console.print(f"run directory: {result.out}  (table.md, table.csv, results.json, run.log)")


WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="Local processes for the chains (unlearning, attacks, attribution, lens of each method "
                      "and the oracle; each attack of the never-known floor), after the shared base training; the "
                      "numbers are those of one process. Default: 2 on the cpu when 2 cores are free, else 1.")]


@app.command("run")
@user_errors
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML); see docs/experiments.md.")],
    out: Annotated[Path | None, typer.Option("--out", help="Run directory: artifacts, tables and the log.")] = None,
    dry_run: DryRunOpt = False,
    seq_len: SeqLenOpt = None,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", help="Dry run: plan for this weight dtype instead of the config's run.dtype (auto: bfloat16 if "
                        "run.device is cuda).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start afresh in a run directory neuronscope wrote earlier (without it, that run is "
                            "resumed); a directory without the .neuronscope marker is never touched.")] = False,
    track: TrackOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Run (or resume) an experiment grid: base, oracle, unlearning, attacks, attribution, lens, Table 1."""
    from neuronscope.experiment.config_file import read_config
    from neuronscope.tracking import check_tracker

    check_tracker(track)
    doc = read_config(config)  # a missing or malformed file: one line before torch is imported
    from neuronscope.experiment.config import parse_config

    cfg = parse_config(doc, str(config), config.parent)  # = experiment.config.load_config, on the file read once
    if dry_run:
        _dry_run(cfg, seq_len, dtype)
        return
    if out is None:
        from neuronscope.errors import NeuronscopeError

        raise NeuronscopeError("--out is required (except with --dry-run)")
    from neuronscope.experiment.distributed import is_launched, run_grid_distributed
    from neuronscope.outdir import check_output

    check_output(out, overwrite=overwrite, resume=True,
                 inputs=[config, cfg.data_dir, cfg.base_ckpt, cfg.data.benign or None])
    if is_launched():  # one of several processes (accelerate launch / torchrun): docs/experiments.md
        result = run_grid_distributed(cfg, out, console=console, fresh=overwrite)
        if result is not None:  # rank 0 assembled the results; the others only computed their chains
            _finish(result, track)
        return
    _finish(_grid(cfg, out, overwrite, workers), track)


@app.command("demo")
@user_errors
def demo_cmd(
    profile: Annotated[str, typer.Option(help="full (the paper-style grid, ~6 min on 2 idle cores), small (a tiny "
                                              "world and model, for tests), smollm2-faithun or smollm2-tofu (a "
                                              "real pretrained model: docs/real-model.md).")] = "full",
    out: Annotated[Path, typer.Option("--out", help="Run directory.")] = Path("runs/demo"),
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start afresh in a run directory neuronscope wrote earlier (without it, that run is "
                            "resumed).")] = False,
    track: TrackOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """The whole grid on the embedded default world and toy model, ending with Table 1."""
    from neuronscope.experiment.config_file import check_profile
    from neuronscope.tracking import check_tracker

    check_tracker(track)
    check_profile(profile)  # an unknown name: one line before torch is imported
    from neuronscope.experiment.config import profile as load_profile

    cfg = load_profile(profile)
    _finish(_grid(cfg, out, overwrite, workers), track)


def _grid(cfg, out: Path, overwrite: bool, workers: int | None):  # noqa: ANN001, ANN202  (imported lazily)
    """The grid in this process, or its per-model chains on `workers` local processes (experiment.parallel)."""
    from neuronscope.experiment.parallel import default_workers, run_grid_parallel

    n = default_workers(cfg) if workers is None else workers
    if n < 1:
        from neuronscope.errors import NeuronscopeError

        raise NeuronscopeError(f"--workers must be at least 1, got {n}")
    return run_grid_parallel(cfg, out, console=console, workers=n, fresh=overwrite)

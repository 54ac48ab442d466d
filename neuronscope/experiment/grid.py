"""The experiment grid: base -> oracle -> every method -> every attack -> attribution -> logit lens -> Table 1.

Every step is an artifact of `ArtifactCache` keyed by its inputs (upstream artifacts by their keys), so re-running
skips what is done and a run killed anywhere resumes where it stopped. Each step loads its inputs from disk and
seeds torch itself, so a resumed run computes exactly what an uninterrupted one would (deterministic torch on
CPU, same machine and torch build): the resume and 2-process tests check every number bit for bit. The run uses
`threads` torch threads, 1 by default, the setting those tests check; with several threads the BLAS may split
reductions differently from run to run (MKL's dynamic threading), and the toy model gains little from threads.

The stages are functions of experiment.stages; `grid_results` calls them in order and assembles the typed
`Results` (experiment.results) that results.json, the table, the figures and the report share.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from neuronscope.experiment import methods_api
from neuronscope.experiment.cache import Artifact
from neuronscope.experiment.config import ExperimentConfig
from neuronscope.experiment.lock import LOCK_FILE, run_lock
from neuronscope.experiment.methods_api import UnlearnAPI
from neuronscope.experiment.runstate import GridRun, deterministic, log_line, numerics
from neuronscope.experiment.stages import (
    attack_label,
    attacks_stage,
    attribution_stage,
    base_stage,
    calibration_stage,
    data_stage,
    kept_attack,
    lens_stage,
    oracle_stage,
    read_eval,
    unlearn_stage,
    utility_stage,
)
from neuronscope.io import write_json
from neuronscope.outdir import MARKER, check_output, open_output
from neuronscope.run_results import Analyses, AttacksByLabel, Results, Scores, UnlearnRun

# --- the unlearning methods: one seam (tests pass a fake) ---------------------------------------------------------


@dataclass
class GridResult:
    """A finished (or partial, for one process of several) grid run: the typed results and what was computed."""

    out: Path
    typed: Results | None
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_peak_gib: dict[str, float] = field(default_factory=dict)

    @property
    def results(self) -> dict[str, Any]:
        """results.json's content ({} for one process's part of a distributed run)."""
        return self.typed.to_json() if self.typed is not None else {}


def _n_artifacts(cfg: ExperimentConfig) -> int:
    n_models = len(cfg.unlearn.methods) + int(cfg.oracle)
    n = 2 + int(cfg.oracle) + len(cfg.unlearn.methods) + n_models * len(cfg.attacks.configs())
    if cfg.attribution:
        n += n_models + (n_models if kept_attack(cfg, cfg.attacks.configs()) else 0)
    if cfg.lens:
        n += 1 + n_models
    if cfg.utility.lm_eval:
        n += 1 + n_models
    return n + int(bool(cfg.calibration))


def run_grid(cfg: ExperimentConfig, out: str | Path, console: Console | None = None,
             api: UnlearnAPI | None = None, *, chains: Collection[str] | None = None, tag: str = "",
             fresh: bool = False, earlier: Sequence[GridResult] = (), started: float | None = None,
             claimed: bool = False) -> GridResult:
    """Run (or resume) the whole grid in `out`; returns results.json's content and what was computed/skipped.

    `out` must be new, empty or an earlier run directory (`neuronscope.outdir`); the run holds its lock
    (`experiment.lock`) throughout. `fresh`: clear an earlier run there first (`run --overwrite`).

    `chains` (experiment.distributed) makes this one process of several sharing `out`: after the shared stages
    (data, base) it computes only the named chains ('oracle': its training, attacks, attribution, lens; a method:
    unlearning, attacks, attribution, lens; 'floor-<i>': one attack of the never-known floor; 'base': the base
    model's lens), leaves partial files alone
    (another process may be writing them) and writes no results.json or tables. Processes that need the same
    artifact compute it once: the cache's per-artifact lock makes the others wait and read it. Such a process takes
    no run lock: the launch's rank 0 holds it and has prepared `out`. `tag` prefixes this process's lines in
    run.log.

    The final, cached pass of a run whose chains were computed by other processes (experiment.parallel) passes
    `claimed` (the caller holds the run directory), `earlier` (those passes: what they computed counts as
    computed, not as reused, and their stage times add up) and `started` (the run's start, perf_counter clock).
    """
    from neuronscope.experiment.config import check_placement

    check_placement(cfg)  # an unavailable [run] device: one line now, before the run directory exists
    out = Path(out)
    if chains is not None or claimed:
        return _run_grid(cfg, out, console, api, chains, tag, earlier, started)
    with claimed_run_dir(out, fresh=fresh):
        return _run_grid(cfg, out, console, api, None, tag)


@contextmanager
def claimed_run_dir(out: Path, fresh: bool = False) -> Iterator[None]:
    """Check and mark `out` as a run directory and hold its lock for the block; `fresh` clears an earlier run
    there (a marked directory only, and only under the lock, so never under a live run)."""
    check_output(out, overwrite=fresh, resume=True)
    open_output(out, "run")
    with run_lock(out):
        if fresh:
            for entry in sorted(out.iterdir()):
                if entry.name not in (MARKER, LOCK_FILE):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        yield


def _run_grid(cfg: ExperimentConfig, out: Path, console: Console | None, api: UnlearnAPI | None,
              chains: Collection[str] | None, tag: str, earlier: Sequence[GridResult] = (),
              started: float | None = None) -> GridResult:
    api = api or methods_api.unlearn_api()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening; HF's per-load bars are noise here
    run = GridRun(cfg, out, console or Console(stderr=True), chains, tag)
    write_json(out / "config.json", cfg.to_json())
    run.log(f"[bold]run[/] {cfg.name} in {out}")
    if chains is None:
        remove_partial(out, run.log)
    if cfg.utility.lm_eval:  # unknown task or benchmark data missing offline: fail now, not after training
        from neuronscope.lm_eval_utility import check_tasks

        check_tasks(cfg.utility.lm_eval, cfg.utility.include or None, cfg.utility.defaults)
    t0 = time.perf_counter() if started is None else started
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with deterministic(), run.progress:
            run.progress.update(run.overall, total=_n_artifacts(cfg))
            results = grid_results(run, api)
    finally:
        torch.set_num_threads(threads)
    if chains is not None:  # one part of a distributed run: the final, cached pass assembles the results
        run.log(f"[bold]finished[/] chains {', '.join(chains) or '(shared stages)'}: {len(run.computed)} "
                f"computed, {len(run.skipped)} skipped (cached), {time.perf_counter() - t0:.1f}s")
        return GridResult(out, None, run.computed, run.skipped, run.stage_seconds, run.stage_peak_gib)
    from neuronscope.verdict import run_verdicts
    from neuronscope.verdict.trust import distrusted_by

    results.verdicts = run_verdicts(results.to_json(), distrusted_by(cfg.verdict_calibration))
    results.seconds = round(time.perf_counter() - t0, 1)
    computed = [name for part in earlier for name in part.computed] + run.computed
    skipped = [name for name in run.skipped if name not in set(computed)]
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for part in [*earlier, run]:
        for kind, t in part.stage_seconds.items():
            seconds[kind] = seconds.get(kind, 0.0) + t
        for kind, gib in part.stage_peak_gib.items():
            peaks[kind] = max(peaks.get(kind, 0.0), gib)
    results.computed, results.skipped = len(computed), len(skipped)
    results.stage_seconds = {k: round(v, 2) for k, v in seconds.items()}
    results.stage_peak_gib = peaks or None
    write_json(out / "results.json", results.to_json())
    from neuronscope.plots.table import build_table, threshold_note, write_tables

    write_tables(build_table(results), out, threshold_note(results))
    run.log(f"[bold]finished[/] {len(computed)} computed, {len(skipped)} skipped (cached), {results.seconds}s")
    return GridResult(out, results, computed, skipped, seconds, peaks)


def remove_partial(out: Path, log: Callable[[str], None]) -> None:
    """Delete temporary files left by a run killed mid-write: in the run directory itself (config, results,
    tables), its artifacts and its per-rank records. Only the holder of the run's lock calls this, so no live
    process's files are touched (`neuronscope figures` writing into a subdirectory is not either)."""
    stale_files = [*out.glob(".*.tmp"), *(out / "artifacts").glob(".*.tmp"), *(out / "distributed").glob(".*.tmp")]
    for stale in sorted(stale_files):
        log(f"[yellow]remove[/] partial {stale.relative_to(out)}")
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def grid_results(run: GridRun, api: UnlearnAPI) -> Results:
    """Every stage in order (this process's chains only, see run_grid); the typed results of the whole run."""
    cfg = run.cfg
    data, ds = data_stage(run)
    # the oracle is trained in its own chain and before the base, which it does not need: with several processes
    # it trains while the shared stages train the base
    oracle = oracle_stage(run, data, ds) if cfg.oracle and run.mine("oracle") else None
    m = base_stage(run, data, ds)
    evals: dict[str, Scores] = {"base": read_eval(m.base)}
    models: dict[str, tuple[Artifact, Path]] = {}  # attacked models: name -> (artifact, checkpoint dir)
    if oracle is not None:
        models["oracle"] = (oracle, oracle.path / "model")
        evals["oracle"] = read_eval(oracle)

    unlearn: dict[str, UnlearnRun] = {}
    for method in cfg.unlearn.methods:
        if run.mine(method):
            art, evals[method], unlearn[method] = unlearn_stage(run, m, method, api)
            models[method] = (art, art.path / "model")

    attack_cfgs = cfg.attacks.configs()
    attacks: dict[str, AttacksByLabel] = {}
    attacked_dirs: dict[str, Path] = {}
    for name, (art, ckpt) in models.items():
        runs, kept_dir = attacks_stage(run, m, name, art, ckpt, attack_cfgs)
        if runs:
            attacks[name] = runs
        if kept_dir is not None:
            attacked_dirs[name] = kept_dir

    floor = None  # no oracle (a pretrained model's own facts): the same attacks on facts it never knew
    if not cfg.oracle:  # each attack is a chain of its own (experiment.floor.floor_chains)
        from neuronscope.experiment.floor import floor_stage

        floor = floor_stage(run, m, attack_cfgs)

    analyses = Analyses()
    if cfg.attribution:
        analyses.attribution = attribution_stage(run, m, {n: ckpt for n, (_, ckpt) in models.items()},
                                                 attacked_dirs)
    own_models = {**({"base": m.base_dir} if run.mine("base") else {}),
                  **{n: ckpt for n, (_, ckpt) in models.items()}}
    if cfg.lens:
        analyses.lens = lens_stage(run, m, own_models)
    if cfg.utility.lm_eval:
        analyses.utility = utility_stage(run, own_models)
    if cfg.calibration and run.chains is None:
        analyses.calibration = calibration_stage(run, cfg.calibration)

    return Results(name=cfg.name, config=cfg.to_json(), methods=list(cfg.unlearn.methods), oracle=cfg.oracle,
                   attack_labels=list(dict.fromkeys(attack_label(a) for a in attack_cfgs)), evals=evals,
                   unlearn=unlearn, attacks=attacks, analyses=analyses, floor=floor or None)


__all__ = ["GridResult", "UnlearnAPI", "claimed_run_dir", "grid_results", "log_line", "numerics", "remove_partial",
           "run_grid"]

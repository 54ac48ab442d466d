"""One experiment grid spread over several processes (GPUs, machines) started by `accelerate launch` or torchrun.

The grid is a chain of artifacts keyed by their inputs, so it needs no scheduler of its own, only a rule saying
which process computes which artifact:

1. rank 0 takes the run directory's lock (experiment.lock) for the whole launch, so no other run can use the
   directory meanwhile, removes partial files of a killed run and computes the shared stages (data, base, oracle
   training); the other processes wait at a barrier and take no lock: they share the directory on purpose;
2. the chains ('oracle' and each method: unlearning, attacks, attribution, lens; without an oracle, each attack
   of the never-known floor, 'floor-<i>'; 'base': its lens) are dealt round-robin, and every process computes
   its own chains on its own device, reading the shared stages from the cache; no two processes ever compute the
   same artifact;
3. after a barrier, rank 0 runs the whole grid once more, now entirely cached, and writes results.json and the
   tables through exactly the code a single process uses, so the results are those of a single-process run.

The run directory must be one filesystem that every process sees (one machine, or NFS and the like across
machines). The launcher supplies rank, world size, local rank and its rendezvous store (torch.distributed's
env:// rendezvous, which accelerate launch and torchrun both set up); the barriers are counters in that store.
No process group is created, on purpose: while one exists, transformers' save_pretrained silently writes
nothing on ranks other than 0 (found by trying), and every process here saves its own checkpoints.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config import ExperimentConfig
from neuronscope.experiment.grid import GridResult, UnlearnAPI, claimed_run_dir, log_line, remove_partial, run_grid
from neuronscope.io import read_json, write_json

# Processes wait at a barrier while others train (rank 0 the base and oracle, the rest their longest chain); a
# crashed process ends the whole group through the launcher, so the timeout only has to outlast honest work.
BARRIER_TIMEOUT = timedelta(days=7)
RANKS_DIR = "distributed"  # RUNDIR/distributed/rank-<r>.json: what each process computed


def world_size() -> int:
    """The number of processes the launcher started (WORLD_SIZE, set by accelerate launch and torchrun), else 1."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise NeuronscopeError(f"environment variable WORLD_SIZE must be an integer, got {value!r}") from None


def is_launched() -> bool:
    """True inside a multi-process launch: `neuronscope run` then takes its share of the grid."""
    return world_size() > 1


def grid_chains(cfg: ExperimentConfig) -> list[str]:
    """The chains of `cfg`, in the order they are dealt out: the oracle's, the methods', without an oracle one per
    attack of the never-known floor (experiment.floor), the cheap base lens last."""
    from neuronscope.experiment.floor import floor_chains

    base_work = cfg.lens or bool(cfg.utility.lm_eval)  # the base model's own lens / lm-eval utility
    return ((["oracle"] if cfg.oracle else []) + list(cfg.unlearn.methods) + floor_chains(cfg)
            + (["base"] if base_work else []))


def assign(chains: list[str], rank: int, n: int) -> list[str]:
    """Round-robin: rank r gets chains r, r + n, r + 2n, ... (deterministic, so every process agrees)."""
    return chains[rank::n]


def _device_for(cfg: ExperimentConfig, local_rank: int) -> str:
    """'cuda'/'auto' become this process's own GPU (cuda:<local rank>); an explicit device is kept as given."""
    import torch

    if cfg.device in ("cuda", "auto") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return cfg.device


class _Barrier:
    """Barriers over the launcher's rendezvous store: every process adds 1, the last one opens the gate."""

    def __init__(self) -> None:
        import torch.distributed as dist

        try:
            self.store, self.rank, self.n = next(dist.rendezvous("env://", timeout=BARRIER_TIMEOUT))
        except (ValueError, RuntimeError) as e:
            raise NeuronscopeError(f"WORLD_SIZE is {world_size()} but the launcher's rendezvous failed ({e}); start "
                                   "the run with accelerate launch or torchrun (docs/experiments.md)") from None
        # a launcher that restarts its workers keeps its store: keys of an earlier attempt must not count
        self.prefix = f"neuronscope/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"

    def wait(self, name: str) -> None:
        if self.store.add(f"{self.prefix}/{name}/arrived", 1) == self.n:
            self.store.set(f"{self.prefix}/{name}/open", "1")
        self.store.wait([f"{self.prefix}/{name}/open"], BARRIER_TIMEOUT)


def run_grid_distributed(cfg: ExperimentConfig, out: str | Path, console: Console | None = None,
                         api: UnlearnAPI | None = None, fresh: bool = False) -> GridResult | None:
    """This process's share of the grid; rank 0 returns the assembled GridResult, the others None.

    Rank 0 holds the run directory's lock throughout (`fresh`: it first clears an earlier run there)."""
    out = Path(out)
    if cfg.device_map:
        raise NeuronscopeError("run.device_map spreads each model over every visible GPU, which several processes "
                               "would share; launch one process per model (no launcher) or drop run.device_map")
    barrier = _Barrier()
    if barrier.rank != 0:
        return _share(cfg, out, console, api, barrier)
    with claimed_run_dir(out, fresh=fresh):
        return _share(cfg, out, console, api, barrier)


def _share(cfg: ExperimentConfig, out: Path, console: Console | None, api: UnlearnAPI | None,
           barrier: _Barrier) -> GridResult | None:
    rank, n = barrier.rank, barrier.n
    tag = f"rank {rank}/{n}: "
    local = replace(cfg, device=_device_for(cfg, int(os.environ.get("LOCAL_RANK", "0"))))
    mine = assign(grid_chains(cfg), rank, n)
    t0 = time.perf_counter()
    shared: list[str] = []
    if rank == 0:
        remove_partial(out, lambda msg: log_line(out / "run.log", tag, msg, console or Console(stderr=True)))
        shared = run_grid(local, out, console, api, chains=(), tag=tag).computed
    barrier.wait("shared")
    part = run_grid(local, out, console, api, chains=mine, tag=tag)
    write_json(out / RANKS_DIR / f"rank-{rank}.json",
               {"rank": rank, "world_size": n, "host": socket.gethostname(), "device": local.device,
                "chains": mine, "computed": shared + part.computed, "seconds": round(time.perf_counter() - t0, 1)})
    barrier.wait("chains")
    if rank != 0:
        return None
    result = run_grid(cfg, out, console, api, tag=tag)  # everything cached: assembles results.json and the tables
    ranks = [read_json(out / RANKS_DIR / f"rank-{r}.json") for r in range(n)]
    write_json(out / RANKS_DIR / "summary.json", {"world_size": n, "ranks": ranks,
                                                  "final_pass_computed": result.computed})
    return result


__all__ = ["assign", "grid_chains", "is_launched", "run_grid_distributed", "world_size"]

"""The grid on several local processes: the chains (the oracle's training, then unlearning, attacks, attribution,
lens of one method or the oracle; each attack of the never-known floor) are independent, so they run side by side
on the machine's cores.

This process holds the run directory's lock and computes the shared stages (data, base) while the other
processes start on the chains; each chain is taken by the first free process (a claim file per chain, created
exclusively), the oracle's first, since it trains without the base model, then the methods' longest expected first
(`chain_order`: a long chain taken last leaves the other processes idle until it ends), then the floor's short
attacks, which fill the time the methods' chains leave. Two processes that need the same
artifact compute it once (the cache's per-artifact lock: a chain waits for the base another process is still
training). Then this process runs the whole grid once more, entirely cached, and writes results.json and the
tables through exactly the code a serial run uses. Every artifact seeds torch itself and reads its inputs from
disk, and each process uses the configured thread count, so every number equals the serial run's whichever
process computed it (the demos compared number by number, and tests/test_experiment_grid.py).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config import ExperimentConfig
from neuronscope.experiment.distributed import grid_chains
from neuronscope.experiment.grid import GridResult, UnlearnAPI, claimed_run_dir, remove_partial, run_grid
from neuronscope.experiment.runstate import log_line
from neuronscope.unlearn.catalog import CATALOG


def busy_cores(window: float = 0.3, stat: Path = Path("/proc/stat")) -> float:
    """How many cores are busy now: the non-idle share of /proc/stat's cpu time over `window` seconds, times the
    core count. The 1-minute load average lags: right after `make demo`'s install step it still reads about 1 on
    an idle machine, which halved the demo's workers. Where /proc/stat is absent, the load average."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    cores = os.cpu_count() or 1
    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:  # no load average on this platform
            return 0.0
    elapsed = total1 - total0
    return cores * (1 - (idle1 - idle0) / elapsed) if elapsed > 0 else 0.0


def default_workers(cfg: ExperimentConfig) -> int:
    """2 processes where the grid computes on the cpu, has at least 2 chains and 2 cores are free (the cores less
    those busy now, `busy_cores`), else 1: on a busy machine a second process only competes for the same core (the
    small demo under a load of 10 on 2 cores: 110 s with 2 processes, 81 s with 1), a GPU (or a device map) is
    shared by every process on it, and a launched run spreads over GPUs (experiment.distributed). The numbers are
    the same either way; only the wall time differs."""
    if cfg.device != "cpu" or cfg.device_map:
        return 1
    cores = os.cpu_count() or 1
    if len(grid_chains(cfg)) < 2 or cores < 2:
        return 1
    return 2 if cores - busy_cores() >= 1.5 else 1


def chain_cost(cfg: ExperimentConfig, method: str) -> float:
    """The expected cost of `method`'s unlearning, known before anything runs: the catalog's relative cost (its
    unlearning seconds on the full demo over GD's) times the learning rates its lr search may try (each trial is
    a run). A method the catalog does not know costs what GD does. The rest of a chain (attacks, attribution,
    lens) is the same for every method, so this orders the chains as their whole cost would."""
    from neuronscope.plan import lr_trials

    info = CATALOG.get(method)
    return (info.cost if info else 1.0) * lr_trials(cfg.unlearn.params_for(method).get("lr_grid"))


def chain_order(cfg: ExperimentConfig) -> list[str]:
    """The order the chains are taken in: the oracle's first (it trains while this process trains the base, which
    every other chain needs), then the methods' by `chain_cost`, longest first (ties: the config's order), then,
    without an oracle, the never-known floor's attacks one by one (~30 s each on SmolLM2, the shortest work there
    is), the base's lens (a fraction of a second) last. The full demo took RMU's (the longest) last in the
    config's order, and ended 44 s after the other process's last chain; the FaithUn-style study on SmolLM2 ran
    the floor's nine attacks as one chain, last, alone for its final ~4 minutes."""
    from neuronscope.experiment.floor import floor_chains

    chains = grid_chains(cfg)
    floor = floor_chains(cfg)
    methods = [c for c in chains if c not in ("oracle", "base", *floor)]
    return ([c for c in chains if c == "oracle"] + sorted(methods, key=lambda m: -chain_cost(cfg, m)) + floor
            + [c for c in chains if c == "base"])


def take_chains(cfg: ExperimentConfig, out: Path, console: Console, api: UnlearnAPI, chains: list[str],
                claims: Path) -> list[GridResult]:
    """Run the next chain no process has claimed, until none is left. A chain is claimed by creating its file in
    `claims` (an exclusive create: exactly one process succeeds), so each chain runs once, on whichever process
    is free first; which process runs it changes nothing in its numbers."""
    done: list[GridResult] = []
    for c in chains:
        try:
            (claims / c).touch(exist_ok=False)
        except FileExistsError:
            continue
        done.append(run_grid(cfg, out, console, api, chains=(c,), tag=f"{c}: "))
    return done


def _die_with_parent(parent: int) -> None:
    """Ask the kernel (Linux) to send this worker SIGTERM when the process that started it dies, even by SIGKILL,
    which nothing in that process can see: a worker left alone would go on computing into a run directory whose
    lock is gone. Where prctl does not exist, the parent's own SIGTERM handling (`_stop_workers_on_sigterm`) is
    what remains."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(128 + int(signal.SIGTERM))


def _worker_main() -> None:
    """A worker process: take chains from the job's queue (argv[1]) and pickle what they computed, or the error
    that stopped them, into the answer file (argv[2]); it ends with the process that started it (argv[3])."""
    _die_with_parent(int(sys.argv[3]))
    job, answer = Path(sys.argv[1]), Path(sys.argv[2])
    cfg, out, chains, api, claims = pickle.loads(job.read_bytes())
    console = Console(stderr=True, force_terminal=False)  # plain progress lines; run.log has every stage
    try:
        parts: Any = take_chains(cfg, out, console, api, chains, claims)
    except Exception as e:  # noqa: BLE001  (handed to the parent, which raises it)
        parts = e
    answer.write_bytes(pickle.dumps(parts))


@contextmanager
def _stop_workers_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, `timeout`, a job scheduler's stop) raises SystemExit in this process for the block instead
    of ending it on the spot, so `_run_chains`' cleanup stops the workers it started before the run directory's
    lock is released. Only the main thread can set a handler; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_chains(cfg: ExperimentConfig, out: Path, console: Console, api: UnlearnAPI, chains: list[str],
                workers: int) -> list[GridResult]:
    """The shared stages (data, base) here while `workers` - 1 fresh interpreters (not multiprocessing: a spawned
    child re-runs the parent's script, a forked one inherits torch's threads) that see this process's import path
    start on the chains (the oracle's first: it trains without the base); then this process takes chains too."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    code = "from neuronscope.experiment.parallel import _worker_main; _worker_main()"
    with tempfile.TemporaryDirectory(prefix="neuronscope-workers-") as tmp, _stop_workers_on_sigterm():
        claims = Path(tmp) / "claims"
        claims.mkdir()
        procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        try:
            for i in range(workers - 1):
                job, answer = Path(tmp) / f"job-{i}.pkl", Path(tmp) / f"answer-{i}.pkl"
                job.write_bytes(pickle.dumps((cfg, out, chains, api, claims)))
                argv = [sys.executable, "-c", code, str(job), str(answer), str(os.getpid())]
                procs.append((subprocess.Popen(argv, env=env), answer))
            results = [run_grid(cfg, out, console, api, chains=())]
            results += take_chains(cfg, out, console, api, chains, claims)
            codes = [proc.wait() for proc, _ in procs]
        finally:  # this process failed, was interrupted or was sent SIGTERM: stop the workers it started
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait()
        for rc, (_, answer) in zip(codes, procs, strict=True):
            parts = pickle.loads(answer.read_bytes()) if answer.is_file() else None
            if isinstance(parts, BaseException):
                raise parts
            if rc != 0 or parts is None:
                raise NeuronscopeError(f"a grid worker process ended with exit code {rc}; see {out / 'run.log'}")
            results += parts
    return results


def _importable(api: UnlearnAPI) -> bool:
    """Whether a spawned worker can receive `api` (its functions importable by name, not defined in a script)."""
    try:
        pickle.dumps(api)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def run_grid_parallel(cfg: ExperimentConfig, out: str | Path, console: Console | None = None,
                      api: UnlearnAPI | None = None, *, workers: int = 2, fresh: bool = False) -> GridResult:
    """`run_grid` with the chains on `workers` processes (1: exactly run_grid)."""
    if workers <= 1 or len(grid_chains(cfg)) <= 1:
        return run_grid(cfg, out, console, api, fresh=fresh)
    from neuronscope.experiment.config import check_placement

    check_placement(cfg)
    from neuronscope.experiment import methods_api

    api = api or methods_api.unlearn_api()  # resolved here, so the workers use the very methods this process would
    if not _importable(api):  # methods a worker cannot import (defined in a script): one process
        return run_grid(cfg, out, console, api, fresh=fresh)
    out = Path(out)
    console = console or Console(stderr=True)
    t0 = time.perf_counter()
    with claimed_run_dir(out, fresh=fresh):
        remove_partial(out, lambda msg: log_line(out / "run.log", "", msg, console))
        chains = chain_order(cfg)
        n = min(workers, len(chains))
        log_line(out / "run.log", "", f"[bold]chains[/] {', '.join(chains)} on {n} processes, each taken in this "
                 "order by the first free one", console)
        earlier = _run_chains(cfg, out, console, api, chains, n)
        return run_grid(cfg, out, console, api, chains=None, earlier=earlier, started=t0, claimed=True)


__all__ = ["busy_cores", "chain_cost", "chain_order", "default_workers", "run_grid_parallel"]

"""One live run per run directory: an advisory lock on `RUNDIR/.neuronscope.lock`.

Two `neuronscope run` on one directory would compute the same artifacts twice and delete each other's temporary
files (a run removes the partial files of a killed run when it starts), so the second one is refused with one
line naming the holder. The lock is the operating system's (flock; msvcrt on Windows): it dies with its process,
so a killed run never leaves a stale lock, and nothing ever deletes the lock file (deleting a lock file races with
a process about to lock it). Within one process the lock is re-entrant: a distributed run's rank 0 holds it for
the whole launch and runs the grid several times under it; the other ranks share the directory on purpose and
never take it (experiment.distributed).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from neuronscope.errors import NeuronscopeError

LOCK_FILE = ".neuronscope.lock"

_held: dict[Path, int] = {}  # run directories this process holds -> nesting depth


def _try_lock(f: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory's lock for the block, or raise a NeuronscopeError at once if another process has it."""
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    f = path.open("a+", encoding="utf-8")
    try:
        f.seek(0)
        if not _try_lock(f):
            raise NeuronscopeError(f"{run_dir} is in use by another neuronscope run ({_holder(path)}); wait for it "
                                   "to finish or give another --out")
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        f.flush()
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        f.close()  # closing the file releases the lock


@contextmanager
def artifact_lock(path: Path, poll: float = 0.2) -> Iterator[None]:
    """Hold the lock file `path` for the block, waiting while another process holds it: two processes of one run
    that need the same artifact (the data, or the base model a chain needs while another process trains it) compute
    it once, and the second reads what the first wrote. The file stays (see the module's note on deleting locks)."""
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as f:
        while not _try_lock(f):
            time.sleep(poll)
        yield  # closing the file releases the lock


def is_held(run_dir: str | Path) -> bool:
    """Whether this process holds `run_dir`'s lock."""
    return Path(run_dir).resolve() in _held


__all__ = ["LOCK_FILE", "artifact_lock", "is_held", "run_lock"]

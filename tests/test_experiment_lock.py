"""One live run per run directory: a second `neuronscope run` on the same --out is refused with one line.

Two real processes: the first is held inside its unlearning step (a fake method that waits for a gate file), the
second is started on the same directory meanwhile; then the first is let go and must finish as if alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_experiment_grid import TINY_TOML

from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.lock import LOCK_FILE, is_held, run_lock

# the tiny grid, smaller still: no oracle, one seed, the harmful attack only (4 artifacts)
TOML = (TINY_TOML.replace("seeds = [0, 1]", "seeds = [0]\nbenign = false") + "[oracle]\nenabled = false\n")

DRIVER = """
import pathlib, sys, time
sys.path.insert(0, {tests!r})
from test_experiment_grid import FAKE_API, fake_unlearn
from neuronscope.experiment import grid
from neuronscope.experiment import methods_api

def gated(model, ds, method, cfg, progress=None):
    gate = pathlib.Path({gate!r})
    while not gate.exists():
        time.sleep(0.05)
    return fake_unlearn(model, ds, method, cfg, progress)

api = grid.UnlearnAPI(gated, FAKE_API.config_cls, FAKE_API.methods)
methods_api.unlearn_api = lambda: api
from neuronscope.cli import main
sys.argv = ["neuronscope", "run", {config!r}, "--out", sys.argv[1]]
main()
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _lock_pid(out: Path) -> int | None:
    try:
        return json.loads((out / LOCK_FILE).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_second_run_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(TOML)
    gate = tmp_path / "gate"
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER).format(tests=str(Path(__file__).parent), gate=str(gate),
                                                     config=str(tmp_path / "grid.toml")))
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, str(driver), str(out)], env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None:  # wait until it is inside its unlearning step
            if _lock_pid(out) == first.pid and list((out / "artifacts").glob(".unlearn-fake-*.tmp")):
                break
            time.sleep(0.1)
        assert first.poll() is None, first.stderr.read()[-3000:] if first.stderr else ""
        partial = sorted(p.name for p in (out / "artifacts").iterdir())
        second = subprocess.run([sys.executable, str(driver), str(out)], env=_env(), capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "in use by another neuronscope run" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        assert sorted(p.name for p in (out / "artifacts").iterdir()) == partial  # it touched nothing
        assert first.poll() is None
        gate.touch()
        assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:] if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    results = json.loads((out / "results.json").read_text())
    assert results["skipped"] == 0  # the first run computed everything itself, once
    log = (out / "run.log").read_text()
    assert log.count(" run tiny in ") == 1  # the second run never started


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """A live holder excludes this process; a killed one leaves no stale lock (the OS releases it). The holder
    takes the very lock run_lock takes (flock on the lock file) without importing neuronscope, to start fast."""
    fcntl = pytest.importorskip("fcntl")
    assert fcntl is not None
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, json, os, time
        f = open({str(tmp_path / LOCK_FILE)!r}, "a+")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.write(json.dumps({{"pid": os.getpid(), "host": "elsewhere"}}) + "\\n")
        f.flush()
        print("held", flush=True)
        time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(NeuronscopeError, match=f"in use by another neuronscope run \\(pid {holder.pid} on "
                                                   "elsewhere\\)"), run_lock(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(tmp_path):
        assert is_held(tmp_path)
        with run_lock(tmp_path):  # re-entrant within one process (a distributed run's rank 0)
            assert is_held(tmp_path)
        assert is_held(tmp_path)
    assert not is_held(tmp_path)

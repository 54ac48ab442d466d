"""`neuronscope run` under torchrun with 2 CPU processes (gloo): who computes what, and the same results.

A tiny grid (the fake unlearning method of test_experiment_grid, 2 methods, 1 seed, attribution and lens off) is
run once by a single process and once by 2 processes sharing one run directory. Real GPUs and several machines
are not tested here (docs/experiments.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_experiment_grid import TINY_TOML, _numbers

from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.distributed import assign, grid_chains, is_launched, world_size

# test_experiment_grid's tiny grid with two fake methods (two chains to deal out) and one attack seed
TOML = (TINY_TOML.replace('name = "tiny"', 'name = "tiny-dist"')
        .replace('methods = ["fake"]', 'methods = ["fake", "fake2"]').replace("seeds = [0, 1]", "seeds = [0]"))

# The CLI itself (`neuronscope run CONFIG --out DIR`), with the fake unlearning methods swapped in.
DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_experiment_grid import FAKE_API
from neuronscope.experiment import grid
from neuronscope.experiment import methods_api
methods_api.unlearn_api = lambda: FAKE_API
from neuronscope.cli import main
sys.argv = ["neuronscope", "run", {config!r}, "--out", sys.argv[1]]
main()
"""

SHARED = ("data-", "base-", "oracle-")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """(single-process run dir, 2-process run dir, seconds of the 2-process run)."""
    tmp = tmp_path_factory.mktemp("dist")
    (tmp / "grid.toml").write_text(TOML)
    driver = tmp / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER).format(tests=str(Path(__file__).parent),
                                                     config=str(tmp / "grid.toml")))
    single = subprocess.run([sys.executable, str(driver), str(tmp / "single")], env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    t0 = time.perf_counter()
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                               "2", str(driver), str(tmp / "multi")], env=_env(), capture_output=True, text=True,
                              timeout=300)
    seconds = time.perf_counter() - t0
    assert launched.returncode == 0, (launched.stdout[-2000:], launched.stderr[-3000:])
    return tmp / "single", tmp / "multi", seconds


def test_each_artifact_is_computed_by_exactly_one_rank(runs: tuple[Path, Path, float]) -> None:
    _, multi, _ = runs
    summary = json.loads((multi / "distributed" / "summary.json").read_text())
    assert summary["world_size"] == 2 and [r["rank"] for r in summary["ranks"]] == [0, 1]
    assert summary["final_pass_computed"] == []  # rank 0's assembling pass found everything cached
    computed = [set(r["computed"]) for r in summary["ranks"]]
    assert not computed[0] & computed[1]
    sealed = {p.parent.name for p in (multi / "artifacts").glob("[!.]*/_complete.json")}
    assert computed[0] | computed[1] == sealed and len(sealed) == 11  # data, base, oracle, 2 unlearn, 6 attacks
    assert {n for n in sealed if n.startswith(SHARED)} <= computed[0]  # the shared stages: rank 0 only
    chains = {r["rank"]: r["chains"] for r in summary["ranks"]}
    assert chains == {0: ["oracle", "fake2"], 1: ["fake"]}
    for rank, names in chains.items():  # every artifact of a chain on the rank that owns the chain
        for chain in names:
            own = {n for n in sealed if n.startswith((f"unlearn-{chain}-", f"attack-{chain}-"))}
            assert own and own <= computed[rank], (chain, rank)
    log = (multi / "run.log").read_text().splitlines()
    done = [line.split(" done ")[1].split()[0] for line in log if " done " in line]
    assert sorted(done) == sorted(sealed)  # each artifact computed once in the whole run
    assert any("rank 1/2: done unlearn-fake-" in line for line in log)
    assert not any(line.endswith(".tmp") for line in os.listdir(multi / "artifacts"))


def test_results_equal_a_single_process_run(runs: tuple[Path, Path, float]) -> None:
    single, multi, seconds = runs
    assert not (single / "distributed").exists()  # no launcher: the plain single-process grid
    ref = json.loads((single / "results.json").read_text())
    got = json.loads((multi / "results.json").read_text())
    assert (multi / "table.md").read_text().count("\n") == (single / "table.md").read_text().count("\n")
    # every number, the final evaluations included, bit for bit: the split changes who computes, not what
    assert got["evals"].keys() == {"base", "oracle", "fake", "fake2"}
    assert _numbers(got) == _numbers(ref)
    assert seconds < 90, f"the 2-process run took {seconds:.0f}s"


def test_round_robin_deals_every_chain_once() -> None:
    cfg_chains = ["oracle", "a", "b", "c", "base"]
    for n in range(1, 7):
        dealt = [c for r in range(n) for c in assign(cfg_chains, r, n)]
        assert sorted(dealt) == sorted(cfg_chains)
    assert assign(cfg_chains, 1, 2) == ["a", "c"]


def test_chains_follow_the_config() -> None:
    from test_experiment_grid import FAKE_API, tiny_config

    from neuronscope.experiment import methods_api

    mp = pytest.MonkeyPatch()
    mp.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    try:
        assert grid_chains(tiny_config()) == ["oracle", "fake"]
        # no oracle: each of the never-known floor's 4 attacks (2 seeds x harmful p=0.3 and benign) is a chain
        assert grid_chains(tiny_config(**{"lens.enabled": True, "oracle.enabled": False})) == [
            "fake", "floor-1", "floor-2", "floor-3", "floor-4", "base"]
    finally:
        mp.undo()


def test_world_size_from_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert world_size() == 1 and not is_launched()
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert is_launched()
    monkeypatch.setenv("WORLD_SIZE", "four")
    with pytest.raises(NeuronscopeError, match="WORLD_SIZE"):
        world_size()


def test_a_device_map_is_refused_under_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from test_experiment_grid import FAKE_API, tiny_config

    from neuronscope.experiment import methods_api
    from neuronscope.experiment.distributed import run_grid_distributed

    monkeypatch.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    cfg = replace(tiny_config(), device_map="auto")
    with pytest.raises(NeuronscopeError, match="run.device_map spreads each model"):
        run_grid_distributed(cfg, Path("never-written"))
    assert not Path("never-written").exists()

"""The order the grid's chains are taken in on several processes: the oracle's first, then the methods' longest
expected first (catalog cost x lr trials), the base's lens last. That each process's numbers equal the serial
run's is test_experiment_grid.test_parallel_chains_equal_the_serial_run."""

from __future__ import annotations

import tomllib

from neuronscope.experiment.config import parse_config, profile
from neuronscope.experiment.distributed import grid_chains
from neuronscope.experiment.parallel import chain_cost, chain_order
from neuronscope.unlearn.catalog import CATALOG

GRID = """
[run]
name = "order"
[unlearn]
methods = ["ga", "npo", "rmu", "gd"]
[unlearn.method.gd]
lr_grid = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3]
[attribution]
enabled = false
[lens]
enabled = true
"""


def _makespan(order: list[str], seconds: dict[str, float], base_s: float) -> float:
    """When the last chain ends on 2 processes: the first trains the base (`base_s`) while the second takes the
    first chain; then each chain of `order` goes to the first free process and, except the oracle's, starts no
    earlier than the base is trained (what experiment.parallel does)."""
    free = [base_s, 0.0]
    for chain in order:
        i = free.index(min(free))
        free[i] = max(free[i], 0.0 if chain == "oracle" else base_s) + seconds[chain]
    return max(free)


def test_a_constructed_grid_is_taken_longest_first() -> None:
    cfg = parse_config(tomllib.loads(GRID), "order")
    assert grid_chains(cfg) == ["oracle", "ga", "npo", "rmu", "gd", "base"]  # the config's order
    # GD searches 6 learning rates: 6 x its cost; RMU 4 x GD's; NPO and GA under GD's (the catalog's costs)
    assert chain_cost(cfg, "gd") == 6 * CATALOG["gd"].cost and chain_cost(cfg, "ga") == CATALOG["ga"].cost
    assert chain_order(cfg) == ["oracle", "gd", "rmu", "npo", "ga", "base"]


def test_the_full_demo_takes_its_longest_chain_early() -> None:
    cfg = profile("full")
    order = chain_order(cfg)
    assert sorted(order) == sorted(grid_chains(cfg)) and order[0] == "oracle" and order[-1] == "base"
    costs = [chain_cost(cfg, m) for m in order[1:-1]]
    assert costs == sorted(costs, reverse=True)
    assert order[1:3] == ["rmu", "dpo"]
    # the chains' seconds of a measured full demo on 2 processes (base 53 s; the oracle's chain includes its
    # training): in this order the last chain ends sooner than in the config's, which took RMU's last
    seconds = {"oracle": 82.4, "ga": 56.6, "gd": 56.7, "dpo": 119.0, "npo": 59.6, "rmu": 130.8, "ssiuu": 64.0,
               "base": 0.5}
    before, after = _makespan(grid_chains(cfg), seconds, 53.0), _makespan(order, seconds, 53.0)
    assert round(before, 1) == 329.5 and round(after, 1) == 314.7  # the floor: (53 + 569.6) / 2 = 311.3 s


FAITHUN_LIKE = """
[run]
name = "floor-order"
[oracle]
enabled = false
[unlearn]
methods = ["ga", "gd", "dpo", "npo", "rmu", "ssiuu"]
lr_grid = [3e-6, 1e-5, 3e-5]
[unlearn.method.rmu]
lr_grid = [3e-4, 1e-3, 3e-3]
[attacks]
seeds = [0, 1, 2]
harmful_p = [0.1, 0.3]
benign = true
[lens]
enabled = true
"""


def test_the_floor_s_attacks_fill_the_tail_of_a_run_without_an_oracle() -> None:
    """Without an oracle the never-known floor's nine attacks are nine chains after the methods': on the chain
    seconds of the FaithUn-style study on SmolLM2 (2 processes, idle machine) the run ends 89 s sooner than with
    the floor as one chain taken last, as it ran then (the other process idle for its last ~4 minutes)."""
    cfg = parse_config(tomllib.loads(FAITHUN_LIKE), "floor-order")
    order = chain_order(cfg)
    floor = [f"floor-{i}" for i in range(1, 10)]
    assert order == ["rmu", "dpo", "ssiuu", "gd", "npo", "ga", *floor, "base"]
    # measured (run.log of that study): each method's chain; each floor attack; the base's lens; the base 59.2 s
    seconds = {"rmu": 730.1, "dpo": 955.5, "ssiuu": 909.9, "gd": 778.2, "npo": 899.2, "ga": 695.4, "base": 3.6,
               **dict(zip(floor, [31.5, 35.0, 36.7, 34.3, 30.7, 30.6, 27.7, 27.8, 30.4], strict=True))}
    as_one_chain = {**{m: seconds[m] for m in order[:6]}, "base": sum(seconds[c] for c in [*floor, "base"])}
    before = _makespan([*order[:6], "base"], as_one_chain, 59.2)
    after = _makespan(order, seconds, 59.2)
    assert round(before, 1) == 2776.6  # the run's chains ended 2,777 s after it started
    assert round(after, 1) == 2687.8  # both processes end together: (59.2 x 2 + every chain) / 2


def _cpu_line(busy: int, idle: int, iowait: int) -> str:
    """A /proc/stat whose first line is `cpu user nice system idle iowait irq softirq` in clock ticks."""
    return f"cpu  {busy} 0 0 {idle} {iowait} 0 0\ncpu0 0 0 0 0 0 0 0\n"


def test_busy_cores_is_the_non_idle_share_of_the_window(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from neuronscope.experiment import parallel

    stat = tmp_path / "stat"
    stat.write_text(_cpu_line(1000, 5000, 100))
    # between the two samples: 60 ticks busy, 30 idle, 10 iowait (waiting is not work) -> 60% of the cores busy
    monkeypatch.setattr(parallel.time, "sleep", lambda s: stat.write_text(_cpu_line(1060, 5030, 110)))
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    assert abs(parallel.busy_cores(stat=stat) - 2 * 0.6) < 1e-12


def test_two_workers_only_where_two_cores_are_free_now(monkeypatch) -> None:  # noqa: ANN001
    from neuronscope.experiment import parallel

    cfg = profile("small")
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel, "busy_cores", lambda: 0.1)  # e.g. just after an install: load average ~1
    assert parallel.default_workers(cfg) == 2
    monkeypatch.setattr(parallel, "busy_cores", lambda: 0.9)  # another process holds a core
    assert parallel.default_workers(cfg) == 1

"""ssiuu-anchor's A_0 cache: with fixed forget batches it hits on every step after the first pass, and a cached
run equals an uncached one bit for bit; the loop's fixed batch cycle reuses the first pass's batches."""

from __future__ import annotations

import math

import torch

from neuronscope.unlearn import UnlearnConfig, unlearn
from neuronscope.unlearn.loop import BatchCycle
from neuronscope.unlearn.ssiuu_anchor import SsiuuAnchor


def _passes(cycle: BatchCycle, n: int, batch_size: int, passes: int) -> list[list[tuple[int, ...]]]:
    per = math.ceil(n / batch_size)
    return [[cycle.next() for _ in range(per)] for _ in range(passes)]


def test_fixed_cycle_reuses_first_pass_batches_in_new_orders():
    n, bs = 10, 4
    fixed = _passes(BatchCycle(n, bs, torch.Generator().manual_seed(3), fixed=True), n, bs, 6)
    free = _passes(BatchCycle(n, bs, torch.Generator().manual_seed(3)), n, bs, 6)
    # first pass: the reshuffling cycle's, i.e. sorted slices of one permutation
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3)).tolist()
    assert fixed[0] == free[0] == [tuple(sorted(perm[i:i + bs])) for i in range(0, n, bs)]
    for p in fixed[1:]:
        assert sorted(p) == sorted(fixed[0])  # the same batches ...
    assert len({tuple(p) for p in fixed}) > 1  # ... in changing orders
    assert any(sorted(p) != sorted(free[0]) for p in free[1:])  # the default reshuffles the items


def test_fixed_cycle_state_restores_exactly():
    cycle = BatchCycle(10, 4, torch.Generator().manual_seed(1), fixed=True)
    for _ in range(4):  # into the second pass
        cycle.next()
    state = cycle.state()
    ahead = [cycle.next() for _ in range(7)]
    cycle.restore(state)
    assert [cycle.next() for _ in range(7)] == ahead


class CountingAnchor(SsiuuAnchor):
    hits_seen: list[int] = []

    def finish(self) -> None:
        CountingAnchor.hits_seen.append(self.hits)
        super().finish()


def test_anchor_cache_hits_after_first_pass_and_changes_nothing(tiny_trained, tiny_world):
    bs, steps = 4, 9
    n = len(tiny_world.items("forget", "base"))
    per_pass = math.ceil(n / bs)
    assert steps > per_pass
    runs = []
    for gib in (1.0, 0.0):  # 0: no room, every step recomputes A_0
        cfg = UnlearnConfig(lr=3e-3, max_steps=steps, threshold=0.0, batch_size=bs, rs_every=0, eval_kinds=("base",),
                            lambda_=50.0, anchor_fixed_batches=True, anchor_cache_gib=gib)
        runs.append(unlearn(tiny_trained.model.clone(), tiny_world, CountingAnchor, cfg))
    assert CountingAnchor.hits_seen[-2:] == [steps - per_pass, 0]
    cached, uncached = runs
    assert cached.steps == uncached.steps == steps
    assert cached.curve == uncached.curve
    assert any(row.get("reg", 0) > 0 for row in cached.curve)  # the regulariser was active
    for (name, a), (_, b) in zip(cached.model.hf.named_parameters(), uncached.model.hf.named_parameters(),
                                 strict=True):
        assert torch.equal(a, b), name

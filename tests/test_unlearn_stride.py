"""The cheaper stop check: scoring FS every `stride` check points, with the exact back-off, gives the same steps,
final scores, weights and loss curve as scoring at every check point."""

from __future__ import annotations

import pytest
import torch

from neuronscope.errors import NeuronscopeError
from neuronscope.unlearn import UnlearnConfig, unlearn

CFG = UnlearnConfig(lr=3e-3, max_steps=60, batch_size=8, rs_every=3, eval_kinds=("base",))


def _run(tiny_trained, tiny_world, method: str, stride: int, cfg: UnlearnConfig = CFG):
    return unlearn(tiny_trained.model.clone(), tiny_world, method, cfg, stride=stride)


def _losses(curve):
    return [{k: v for k, v in row.items() if k != "fs"} for row in curve]


@pytest.mark.parametrize("method", ["gd", "ssiuu"])  # ssiuu: the method's own per-step state (A_{t-1})
def test_stride_equals_checking_every_step(tiny_trained, tiny_world, method):
    every = _run(tiny_trained, tiny_world, method, 1)
    assert every.reached and every.steps > 2
    # a stride past the first step that meets the threshold, and one that does not divide it: both must back off
    t = every.steps
    for stride, replayed in ((t + 2, list(range(t + 1))), (t - 1, [0, t - 1, t])):
        cheap = _run(tiny_trained, tiny_world, method, stride)
        assert cheap.steps == every.steps and cheap.reached
        assert (cheap.fs, cheap.rs, cheap.us) == (every.fs, every.rs, every.us)
        for (name, a), (_, b) in zip(every.model.hf.named_parameters(), cheap.model.hf.named_parameters(),
                                     strict=True):
            assert torch.equal(a, b), name
        assert _losses(cheap.curve) == _losses(every.curve)  # loss terms and RS logs of every step
        # FS was scored at the strided checks kept before the crossing, then at every step of the replay
        assert [row["step"] for row in cheap.curve if "fs" in row] == replayed


def test_stride_with_check_every_and_max_steps(tiny_trained, tiny_world):
    """check_every 2: stride counts check points; a run that never reaches the threshold stops at max_steps."""
    cfg = UnlearnConfig(lr=1e-5, max_steps=7, check_every=2, batch_size=8, rs_every=0, eval_kinds=("base",))
    every, cheap = _run(tiny_trained, tiny_world, "gd", 1, cfg), _run(tiny_trained, tiny_world, "gd", 3, cfg)
    assert not every.reached and every.steps == cheap.steps == 7
    assert [r["step"] for r in every.curve if "fs" in r] == [0, 2, 4, 6, 7]
    assert [r["step"] for r in cheap.curve if "fs" in r] == [0, 6, 7]
    for a, b in zip(every.model.hf.parameters(), cheap.model.hf.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_stride(tiny_trained, tiny_world):
    with pytest.raises(NeuronscopeError, match="stride must be at least 1"):
        _run(tiny_trained, tiny_world, "gd", 0)


def test_one_snapshot_is_alive_at_a_time(tiny_trained, tiny_world, monkeypatch):
    """The kept state is one copy at the peak: the previous snapshot is released before the next is taken, and
    the one a back-off restores from is used up (AdamW takes over its tensors), never copied again."""
    import gc
    import weakref

    from neuronscope.unlearn import loop

    taken: list[weakref.ref] = []
    real = loop._snapshot

    def tracked(*args, **kwargs):
        gc.collect()
        assert not [r for r in taken if r() is not None], "an earlier snapshot is still alive"
        snap = real(*args, **kwargs)
        taken.append(weakref.ref(snap))
        return snap

    monkeypatch.setattr(loop, "_snapshot", tracked)
    every = _run(tiny_trained, tiny_world, "gd", 1)
    cheap = _run(tiny_trained, tiny_world, "gd", every.steps - 1)  # snapshots at 0 and t-1, back-off after 2(t-1)
    assert len(taken) == 2 and cheap.steps == every.steps
    gc.collect()
    assert all(r() is None for r in taken)

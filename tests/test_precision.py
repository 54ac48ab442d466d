"""The half-precision stall estimate against what one real AdamW step does to bfloat16 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neuronscope.models.handle import load_model
from neuronscope.models.precision import precision_note, stalled_fraction


def test_hand_built_bfloat16_values() -> None:
    # 1.0 in bfloat16: rounding step 2^-7, half 2^-8 = 0.0039; 0.01: exponent -6 (0.0078 <= 0.01 < 0.0156)
    w = torch.tensor([1.0, 0.01, 0.0, 1e-6], dtype=torch.bfloat16)
    assert stalled_fraction([w], 1e-3) == pytest.approx(1 / 4)  # only 1.0 (half step 0.0039 >= 1e-3)
    assert stalled_fraction([w], 1e-5) == pytest.approx(2 / 4)  # 1.0 and 0.01 (half step 2^-7 * 2^-7 / 2 = 3e-5)
    assert stalled_fraction([w.float()], 1e-9) == 0.0  # float32 weights always count as movable


@pytest.mark.parametrize("lr", [1e-6, 1e-5, 1e-4])
def test_matches_one_adamw_step_on_a_trained_model(tiny_ckpt: Path, tiny_world, lr: float) -> None:  # noqa: ANN001
    model = load_model(tiny_ckpt, dtype=torch.bfloat16, bridge=False)
    params = [p for p in model.hf.parameters()]
    before = [p.detach().clone() for p in params]
    from neuronscope.batching import encode
    from neuronscope.training import answer_nll

    items = tiny_world.items("forget")
    batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items])
    answer_nll(model.hf(input_ids=batch.input_ids).logits, batch).backward()
    torch.optim.AdamW(params, lr=lr, weight_decay=0.0).step()
    # weights whose gradient is clearly non-zero take a full step of lr (|g| >> AdamW's eps); the others cannot move
    stepped = [p.grad.float().abs() > 1e-6 for p in params]
    unchanged = sum(int(((p.detach() == b) & m).sum()) for p, b, m in zip(params, before, stepped, strict=True))
    predicted = stalled_fraction([b[m] for b, m in zip(before, stepped, strict=True)], lr)
    assert unchanged / sum(int(m.sum()) for m in stepped) == pytest.approx(predicted, abs=0.01)
    note = precision_note(before, lr)
    assert (note is not None) == (stalled_fraction(before, lr) > 0.05)


def test_float32_training_is_never_flagged(tiny_ckpt: Path) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    assert precision_note(model.hf.parameters(), 1e-7) is None


def test_unlearning_and_attacks_report_stalled_half_precision_weights(tiny_ckpt: Path, tiny_world) -> None:  # noqa: ANN001
    from neuronscope.attacks import AttackConfig, attack
    from neuronscope.unlearn import UnlearnConfig, unlearn

    cfg = UnlearnConfig(lr=1e-6, max_steps=1, threshold=0.0, check_every=1, rs_every=0, eval_kinds=("base",))
    half = unlearn(load_model(tiny_ckpt, dtype=torch.bfloat16, bridge=False), tiny_world, "gd", cfg)
    assert any("use --dtype float32" in n for n in half.notes)
    full = unlearn(load_model(tiny_ckpt, bridge=False), tiny_world, "gd", cfg)
    assert not any("dtype" in n for n in full.notes)
    res = attack(load_model(tiny_ckpt, dtype=torch.bfloat16, bridge=False), tiny_world,
                 AttackConfig(kind="benign", lr=1e-6, steps=1, eval_every=1))
    assert res.notes and "bfloat16" in res.notes[0]

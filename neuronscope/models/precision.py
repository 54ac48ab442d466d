"""Can an optimiser step of size lr change half-precision weights at all?

AdamW moves each weight by about lr per step (exactly lr * sign(g) on its first step). A bfloat16 weight keeps 8
significant bits: a weight w only changes when the step exceeds half its rounding step, eps * 2^floor(log2|w|) / 2
(eps = 2^-7 for bfloat16, 2^-10 for float16). At the paper's rates (1e-5 to 1e-7) most bfloat16 weights of a
trained model (|w| ~ 1e-2) cannot move: training silently does (almost) nothing. Train in float32 instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def stalled_fraction(params: Iterable[Tensor], lr: float) -> float:
    """Share of the weights (float32 ones count as movable) that a step of `lr` cannot change after rounding."""
    stalled = total = 0
    for p in params:
        total += p.numel()
        if p.dtype not in (torch.bfloat16, torch.float16):
            continue
        w = p.detach().float().abs()
        _, exponent = torch.frexp(w)  # |w| = m * 2^exponent, m in [0.5, 1): floor(log2|w|) = exponent - 1
        half_ulp = torch.finfo(p.dtype).eps * torch.ldexp(torch.ones_like(w), exponent - 1) / 2
        stalled += int(((w > 0) & (half_ulp >= lr)).sum())
    return stalled / total if total else 0.0


def precision_note(params: Iterable[Tensor], lr: float, threshold: float = 0.05) -> str | None:
    """A one-line warning when more than `threshold` of the trainable weights cannot move at this rate."""
    params = list(params)
    frac = stalled_fraction(params, lr)
    if frac <= threshold:
        return None
    dtype = next((p.dtype for p in params if p.dtype in (torch.bfloat16, torch.float16)), None)
    return (f"{frac:.0%} of the trainable weights are {str(dtype).removeprefix('torch.')} values too large for a "
            f"step of lr {lr:g} to change after rounding: training barely moves them; use --dtype float32")

"""Ssiuu (docs/method.md section 4): GD plus a parameter-attribution regulariser.

At step t, on the forget batch b: g_t = d(sum_b P(y|x))/d phi, A_t = phi * g_t (g_t held constant), and

    L = L_GD + lambda * sum_{i : A_t[i] < 0} (A_{t-1}[i] - A_t[i])^2,       L_reg = 0 at t = 1,

so d L_reg / d phi_i = 2 (A_t[i] - A_{t-1}[i]) g_t[i] on the selected parameters and 0 elsewhere: the method may
not buy forgetting by growing new negative influence. A_{t-1} is the previous step's (detached) attribution, on
the previous batch, as in the paper. `lambda_relative` makes lambda scale-free: the weight becomes
lambda_ / L_reg(t*), t* the first step with L_reg > 0, so lambda_ = 1 means the weighted regulariser equals 1
(nat) at that step. The cost is one extra backward pass (for g_t) over GD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from neuronscope.attribution.parameters import answer_probability_sum
from neuronscope.checks import non_negative
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.training import answer_nll
from neuronscope.unlearn.base import Method, MethodSettings, StepBatch, UnlearnConfig
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

if TYPE_CHECKING:
    from neuronscope.plan import Shape

INFO = CATALOG["ssiuu"]  # summary, setting keys, defaults and help (the settings ssiuu-neuron shares)


@dataclass(frozen=True)
class SsiuuSettings(MethodSettings):
    lambda_: float | None = INFO.default("lambda_")  # None: the variant's toy default (docs/unlearning.md)
    lambda_relative: bool = INFO.default("lambda_relative")  # lambda_ / L_reg(first active step) (scale-free)

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        if self.lambda_ is not None:
            non_negative(self.lambda_, "lambda_")


def negative_attribution_regulariser(a_t: Sequence[Tensor], a_ref: Sequence[Tensor]) -> Float[Tensor, ""]:
    """sum over entries with A_t < 0 of (A_ref - A_t)^2; the selection I- is a constant (no gradient)."""
    total = a_t[0].new_zeros((), dtype=torch.float32)  # summed in float32 under bfloat16 weights
    for a, ref in zip(a_t, a_ref, strict=True):
        total = total + ((ref - a).square() * (a.detach() < 0)).sum(dtype=torch.float32)
    return total


class _FusedNegativeAttributionRegulariser(torch.autograd.Function):
    """The regulariser without autograd's graph of per-parameter temporaries: the forward keeps only
    d = A_ref - A_t, the backward turns d into d L_reg / d phi in place. Each rounding is autograd's own on the
    unfused form (-(((grad * mask) * (2 d)) * g); -2 d is exact and products commute exactly), so value and
    gradient are bit-identical to `negative_attribution_regulariser(attribution_with_grad(params, g), ref)`."""

    @staticmethod
    def forward(ctx, n: int, *tensors: Tensor) -> Tensor:  # params, A_t, masks, g, refs: n of each
        a_t, masks, grads, refs = (tensors[k * n:(k + 1) * n] for k in range(1, 5))
        total = a_t[0].new_zeros((), dtype=torch.float32)
        ctx.d, ctx.masks, ctx.grads = [], masks, grads
        for a, mask, ref in zip(a_t, masks, refs, strict=True):
            d = ref - a
            total = total + d.square().mul_(mask).sum(dtype=torch.float32)
            ctx.d.append(d)
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        out = [d.mul_(-2.0).mul_(grad_out.to(d.dtype)).mul_(mask).mul_(g)
               for d, mask, g in zip(ctx.d, ctx.masks, ctx.grads, strict=True)]
        ctx.d = ctx.masks = ctx.grads = None
        return (None, *out, *[None] * (4 * len(out)))


def fused_negative_attribution_regulariser(params: Sequence[Tensor], grads: Sequence[Tensor],
                                           a_ref: Sequence[Tensor]) -> tuple[Float[Tensor, ""], list[Tensor], int]:
    """(L_reg, A_t detached, |I-|) for A_t = phi * g (g constant): the value and gradient w.r.t. phi of
    `negative_attribution_regulariser(attribution_with_grad(params, grads), a_ref)`, bit for bit, in a fraction
    of its passes over the parameters (what dominates its cost on a large model)."""
    with torch.no_grad():
        grads = [g.detach() for g in grads]
        a_t = [p.detach() * g for p, g in zip(params, grads, strict=True)]
        masks = [a < 0 for a in a_t]
    reg = _FusedNegativeAttributionRegulariser.apply(len(params), *params, *a_t, *masks, *grads, *a_ref)
    return reg, a_t, sum(int(m.sum()) for m in masks)


class RegularisedGD(Method):
    """GD plus lambda * L_reg; subclasses say how the attribution and its comparison point are computed."""

    default_lambda: float = 1e3  # used when UnlearnConfig.lambda_ is None; from the sweep in docs/unlearning.md
    default_relative_lambda: float = 100.0
    step_state_names = ("prev", "lam")  # A_{t-1} (or a_{t-1}) and lambda once fixed in relative mode
    settings_cls = SsiuuSettings
    settings: SsiuuSettings

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        st = self.settings
        default = self.default_relative_lambda if st.lambda_relative else self.default_lambda
        self.lambda_ = default if st.lambda_ is None else st.lambda_
        self.lam: float | None = None if st.lambda_relative else self.lambda_

    def weight(self, reg: Tensor) -> float:
        """lambda, fixed on the first active step in relative mode (0 until then: L_reg is 0 anyway)."""
        if self.lam is None and reg.item() > 0:
            self.lam = self.lambda_ / reg.item()
        return self.lam or 0.0

    def combine(self, nll_f: Tensor, nll_r: Tensor, reg: Tensor, extra: dict[str, float]):
        lam = self.weight(reg)
        total = -nll_f + self.cfg.retain_weight * nll_r + lam * reg
        return total, {"loss": total.item(), "forget_nll": nll_f.item(), "retain_nll": nll_r.item(),
                       "reg": reg.item(), "lambda": lam, **extra}


@register
class Ssiuu(RegularisedGD):
    name = INFO.name
    summary = INFO.summary

    @classmethod
    def extra_state(cls, shape: Shape, settings: MethodSettings, trainable: int, nbytes: int, max_steps: int
                    ) -> list[tuple[str, int, str]]:
        return [("A_(t-1)", trainable * nbytes, "the previous step's attribution, kept between steps"),
                ("in the loss: g_t, A_t, A_(t-1) - A_t, mask", 3 * trainable * nbytes + trainable,
                 "this step's gradient of P, its attribution and the difference (held for the backward), and the "
                 "bool mask of A_t < 0")]

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.prev: list[Tensor] | None = None

    def comparison(self, sb: StepBatch, params: list[Tensor]) -> list[Tensor] | None:
        """What A_t is held to: the previous step's attribution (None on the first step: no regulariser)."""
        return self.prev

    def remember(self, a_t: list[Tensor]) -> None:
        self.prev = [a.detach() for a in a_t]

    def loss(self, sb: StepBatch, step: int):
        params = [p for p in self.parameters() if p.requires_grad]
        logits_f, forget = self.answer_logits(sb.forget)
        nll_f = answer_nll(logits_f, forget)
        nll_r = self.retain_nll(sb)
        g = torch.autograd.grad(answer_probability_sum(logits_f, forget), params, retain_graph=True)
        ref = self.comparison(sb, params)
        if ref is None:  # first step: no regulariser
            with torch.no_grad():
                a_t = [p.detach() * gi for p, gi in zip(params, g, strict=True)]
            reg, n_neg = logits_f.new_zeros(()), sum(int((a < 0).sum()) for a in a_t)
        else:
            reg, a_t, n_neg = fused_negative_attribution_regulariser(params, g, ref)
        self.remember(a_t)
        return self.combine(nll_f, nll_r, reg, {"neg_frac": n_neg / sum(a.numel() for a in a_t)})

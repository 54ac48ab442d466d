"""GD (gradient difference): GA on the forget batch plus the ordinary NLL on a retain batch."""

from __future__ import annotations

from neuronscope.training import answer_nll
from neuronscope.unlearn.base import Method, StepBatch
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["gd"]  # summary


@register
class GD(Method):
    name = INFO.name
    summary = INFO.summary

    def loss(self, sb: StepBatch, step: int):
        nll_f = answer_nll(*self.answer_logits(sb.forget))
        nll_r = self.retain_nll(sb)
        total = -nll_f + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "forget_nll": nll_f.item(), "retain_nll": nll_r.item()}

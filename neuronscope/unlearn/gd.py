"""GD (gradient difference): GA on the forget batch plus the ordinary NLL on a retain batch."""

from __future__ import annotations

from neuronscope.training import answer_nll
from neuronscope.unlearn.base import Method, StepBatch
from neuronscope.unlearn.registry import register


@register
class GD(Method):
    name = "gd"
    summary = "gradient ascent on forget + NLL on retain"

    def loss(self, sb: StepBatch, step: int):
        nll_f = answer_nll(*self.answer_logits(sb.forget))
        nll_r = self.retain_nll(sb)
        total = -nll_f + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "forget_nll": nll_f.item(), "retain_nll": nll_r.item()}

"""GA: gradient ascent on the forget answers, i.e. minimise minus their mean token NLL."""

from __future__ import annotations

from neuronscope.training import answer_nll
from neuronscope.unlearn.base import Method, StepBatch
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["ga"]  # summary


@register
class GA(Method):
    name = INFO.name
    summary = INFO.summary
    sequences_per_step = 1
    needs_retain = False

    def loss(self, sb: StepBatch, step: int):
        nll_f = answer_nll(*self.answer_logits(sb.forget))
        return -nll_f, {"loss": -nll_f.item(), "forget_nll": nll_f.item()}

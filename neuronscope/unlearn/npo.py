"""NPO: DPO without the preferred answer, plus a retain NLL.

    L = (2 / beta) * mean_b log(1 + (pi(y|x) / ref(y|x))^beta) + w * NLL_retain
      = -(2 / beta) * mean_b log sigmoid(-beta * (log pi(y|x) - log ref(y|x))) + w * NLL_retain

(Zhang et al. 2024's form, whose 2/beta keeps the gradient at step 1 equal to GA's whatever beta is.)
"""

from __future__ import annotations

import torch.nn.functional as F

from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.scoring import answer_logprobs
from neuronscope.unlearn.base import Method, StepBatch, UnlearnConfig, frozen_copy
from neuronscope.unlearn.registry import register


@register
class NPO(Method):
    name = "npo"

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = frozen_copy(model)

    def loss(self, sb: StepBatch, step: int):
        beta = self.cfg.beta
        lp = answer_logprobs(self.logits(sb.forget), sb.forget)
        ref = answer_logprobs(self.ref.hf(input_ids=sb.forget.input_ids).logits, sb.forget).detach()
        npo = -(2 / beta) * F.logsigmoid(-beta * (lp - ref)).mean()
        nll_r = self.retain_nll(sb)
        total = npo + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "npo": npo.item(), "retain_nll": nll_r.item(),
                       "forget_logp": lp.mean().item()}

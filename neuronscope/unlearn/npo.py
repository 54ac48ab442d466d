"""NPO: DPO without the preferred answer, plus a retain NLL.

    L = (2 / beta) * mean_b log(1 + (pi(y|x) / ref(y|x))^beta) + w * NLL_retain
      = -(2 / beta) * mean_b log sigmoid(-beta * (log pi(y|x) - log ref(y|x))) + w * NLL_retain

(Zhang et al. 2024's form, whose 2/beta keeps the gradient at step 1 equal to GA's whatever beta is.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from neuronscope.checks import positive
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.scoring import answer_logprobs
from neuronscope.unlearn.base import Method, MethodSettings, StepBatch, UnlearnConfig, frozen_copy
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["npo"]  # summary, setting keys, defaults and help


@dataclass(frozen=True)
class NPOSettings(MethodSettings):
    beta: float = INFO.default("beta")  # inverse temperature

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        positive(self.beta, "beta")


@register
class NPO(Method):
    name = INFO.name
    summary = INFO.summary
    needs_reference = True
    settings_cls = NPOSettings
    settings: NPOSettings

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = frozen_copy(model)

    def loss(self, sb: StepBatch, step: int):
        beta = self.settings.beta
        lp = answer_logprobs(*self.answer_logits(sb.forget))
        ref = answer_logprobs(*self.answer_logits(sb.forget, self.ref)).detach()
        npo = -(2 / beta) * F.logsigmoid(-beta * (lp - ref)).mean()
        nll_r = self.retain_nll(sb)
        total = npo + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "npo": npo.item(), "retain_nll": nll_r.item(),
                       "forget_logp": lp.mean().item()}

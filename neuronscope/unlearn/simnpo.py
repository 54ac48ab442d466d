"""SimNPO (Fan et al. 2024): NPO without a reference model, on the length-normalised log-likelihood, plus a retain NLL.

    L = -(2 / beta) * mean_b log sigmoid(-(beta / |y|) log pi(y|x) - gamma) + w * NLL_retain

|y| is the number of answer tokens and log pi(y|x) their summed log-probability, so (1/|y|) log pi(y|x) is the mean
token log-likelihood: long answers are not pushed harder than short ones, and no frozen copy is held. gamma is a
reward margin (0 by default). beta = 0.5 by default: with 2.5 the forget gradient, (2/|y|)(1 - sigmoid(u)), vanished
before the toy's forget accuracy reached chance (measured in docs/unlearning.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from neuronscope.batching import Batch
from neuronscope.checks import SettingError, positive
from neuronscope.scoring import answer_logprobs
from neuronscope.unlearn.base import Method, MethodSettings, StepBatch
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["simnpo"]  # summary, setting keys, defaults and help


@dataclass(frozen=True)
class SimNPOSettings(MethodSettings):
    beta: float = INFO.default("simnpo_beta")  # inverse temperature of the length-normalised log-likelihood
    gamma: float = INFO.default("simnpo_gamma")  # reward margin

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        positive(self.beta, "simnpo_beta")
        if not math.isfinite(self.gamma):
            raise SettingError("simnpo_gamma", f"must be a finite number, got {self.gamma}")


def simnpo_term(logp: Float[Tensor, " batch"], lengths: Float[Tensor, " batch"], beta: float,
                gamma: float) -> Float[Tensor, ""]:
    """-(2/beta) mean_b log sigmoid(-(beta/|y|) log pi(y|x) - gamma)."""
    return -(2 / beta) * F.logsigmoid(-(beta / lengths) * logp - gamma).mean()


def answer_lengths(batch: Batch) -> Float[Tensor, " batch"]:
    return batch.answer_mask.sum(-1).clamp(min=1).float()


@register
class SimNPO(Method):
    name = INFO.name
    summary = INFO.summary
    settings_cls = SimNPOSettings
    settings: SimNPOSettings

    def loss(self, sb: StepBatch, step: int):
        lp = answer_logprobs(*self.answer_logits(sb.forget))
        lengths = answer_lengths(sb.forget).to(lp.device)
        term = simnpo_term(lp, lengths, self.settings.beta, self.settings.gamma)
        nll_r = self.retain_nll(sb)
        total = term + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "simnpo": term.item(), "retain_nll": nll_r.item(),
                       "forget_logp": lp.mean().item()}

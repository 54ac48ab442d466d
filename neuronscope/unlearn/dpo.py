"""DPO with a refusal as the preferred answer and the true answer as the rejected one, plus a retain NLL.

    L = -mean_b log sigmoid(beta * [(log pi(r|x) - log ref(r|x)) - (log pi(y|x) - log ref(y|x))]) + w * NLL_retain

log pi(.|x) sums the answer tokens' log-probabilities; `ref` is a frozen copy of the model before unlearning.
The paper's refusal ("I can't answer the question.") needs words a real LLM knows. The toy model's word-level
vocabulary is built from the world's text and lacks "i", "can", "not", "answer", "question", so that phrase
would become <unk> tokens. When the refusal has an unknown word we use the tokenizer's eos token instead: the
model is taught to end its answer at once, the nearest thing to declining that the vocabulary can say. The
choice is recorded in the run's notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from neuronscope.checks import SettingError, positive
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.scoring import answer_logprobs
from neuronscope.unlearn.base import (
    Method,
    MethodSettings,
    StepBatch,
    UnlearnConfig,
    encode_items,
    frozen_copy,
    tokenises_cleanly,
)
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["dpo"]  # summary, setting keys, defaults and help


@dataclass(frozen=True)
class DPOSettings(MethodSettings):
    beta: float = INFO.default("beta")  # inverse temperature
    refusal: str = INFO.default("refusal")  # the preferred answer; the eos token if it has unknown words

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        positive(self.beta, "beta")
        if not self.refusal.strip():
            raise SettingError("refusal", "must be a non-empty answer")


def resolve_refusal(model: Model, refusal: str) -> str:
    """`refusal` if every word is in the vocabulary, else the eos token."""
    if tokenises_cleanly(model, refusal):
        return refusal
    return str(model.tokenizer.eos_token)


@register
class DPO(Method):
    name = INFO.name
    summary = INFO.summary
    needs_reference = True
    sequences_per_step = 3  # refusal, true answer, retain
    settings_cls = DPOSettings
    settings: DPOSettings

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = frozen_copy(model)
        wanted = self.settings.refusal
        self.refusal = resolve_refusal(model, wanted)
        if self.refusal != wanted:
            self.notes.append(f"dpo: refusal {wanted!r} has words outside the vocabulary; "
                              f"preferred answer is the eos token {self.refusal!r}")

    def loss(self, sb: StepBatch, step: int):
        win = encode_items(self.model, sb.forget_items, [self.refusal] * len(sb.forget_items))
        lose = sb.forget
        lp_w, lp_l = answer_logprobs(*self.answer_logits(win)), answer_logprobs(*self.answer_logits(lose))
        ref_w = answer_logprobs(*self.answer_logits(win, self.ref)).detach()
        ref_l = answer_logprobs(*self.answer_logits(lose, self.ref)).detach()
        margin = (lp_w - ref_w) - (lp_l - ref_l)
        dpo = -F.logsigmoid(self.settings.beta * margin).mean()
        nll_r = self.retain_nll(sb)
        total = dpo + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "dpo": dpo.item(), "retain_nll": nll_r.item(),
                       "forget_logp": lp_l.mean().item()}

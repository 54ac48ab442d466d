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

import torch.nn.functional as F

from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.scoring import answer_logprobs
from neuronscope.unlearn.base import Method, StepBatch, UnlearnConfig, encode_items, frozen_copy, tokenises_cleanly
from neuronscope.unlearn.registry import register


def resolve_refusal(model: Model, refusal: str) -> str:
    """`refusal` if every word is in the vocabulary, else the eos token."""
    if tokenises_cleanly(model, refusal):
        return refusal
    return str(model.tokenizer.eos_token)


@register
class DPO(Method):
    name = "dpo"

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = frozen_copy(model)
        self.refusal = resolve_refusal(model, cfg.refusal)
        if self.refusal != cfg.refusal:
            self.notes.append(f"dpo: refusal {cfg.refusal!r} has words outside the vocabulary; "
                              f"preferred answer is the eos token {self.refusal!r}")

    def loss(self, sb: StepBatch, step: int):
        win = encode_items(self.model, sb.forget_items, [self.refusal] * len(sb.forget_items))
        lose = sb.forget
        lp_w, lp_l = answer_logprobs(self.logits(win), win), answer_logprobs(self.logits(lose), lose)
        with_ref = self.ref.hf
        ref_w = answer_logprobs(with_ref(input_ids=win.input_ids).logits, win).detach()
        ref_l = answer_logprobs(with_ref(input_ids=lose.input_ids).logits, lose).detach()
        margin = (lp_w - ref_w) - (lp_l - ref_l)
        dpo = -F.logsigmoid(self.cfg.beta * margin).mean()
        nll_r = self.retain_nll(sb)
        total = dpo + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "dpo": dpo.item(), "retain_nll": nll_r.item(),
                       "forget_logp": lp_l.mean().item()}

"""ssiuu-neuron: the main-text form (Eq. 3) of Ssiuu, on hook-point neurons instead of parameters.

A neuron is one coordinate of a projection output (attention q, k, v, o; MLP gate, up, down), the same units the
diagnosis (D+/D-) measures. On the forget batch b, with h the activations and g = dP/dh held constant,

    a_t[i] = (1/|b|) sum_{x in b} sum_k h_{i,k}(x) g_{i,k}(x)      (k: every real token, prompt and answer)
    L = L_GD + lambda * || (a_{t-1} - a_t)[I-] ||_2,   I- = { i : a_t[i] < 0 },   L_reg = 0 at t = 1.

The sum over positions is the neuron's first-order contribution to P(y|x); the mean over examples makes a_t
comparable between batches of different size. The paper uses a norm here (not a square), so we do too. The forget
batch runs through the TransformerBridge (same parameters as the HF model) so the hooks see it.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from neuronscope.attribution.parameters import answer_probability_sum
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.models.projections import projections
from neuronscope.training import answer_nll
from neuronscope.unlearn.base import StepBatch, UnlearnConfig
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register
from neuronscope.unlearn.ssiuu import RegularisedGD


def pooled_neuron_attribution(acts: list[Tensor], grads: list[Tensor], mask: Bool[Tensor, "batch pos"]
                              ) -> Float[Tensor, " neurons"]:
    """a[i] = mean over examples of sum over masked positions of h * g.detach(), all hooks concatenated."""
    out = []
    for h, g in zip(acts, grads, strict=True):
        # float32 whatever the weights' dtype (sums over positions and examples); per-head outputs flattened
        a = (h.float() * g.detach().float()).flatten(2)
        m = mask.unsqueeze(-1).to(a.device, torch.float32)
        out.append((a * m).sum(1).mean(0).to(acts[0].device))  # one device: layers may sit on several
    return torch.cat(out)


def neuron_regulariser(a_t: Float[Tensor, " n"], a_prev: Float[Tensor, " n"]) -> Float[Tensor, ""]:
    """|| (a_prev - a_t) on {a_t < 0} ||_2, with a zero (not NaN) gradient when nothing differs."""
    diff = (a_prev - a_t) * (a_t.detach() < 0)
    sq = diff.square().sum()
    return torch.sqrt(sq) if sq.item() > 0 else sq


@register
class SsiuuNeuron(RegularisedGD):
    name = CATALOG["ssiuu-neuron"].name
    summary = CATALOG["ssiuu-neuron"].summary  # its settings: Ssiuu's (SsiuuSettings)
    default_lambda = 1e2  # from the sweep in docs/unlearning.md

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.hooks = [p.hook for p in projections(model.bridge)]
        self.prev: Tensor | None = None

    def forward_with_acts(self, sb: StepBatch) -> tuple[Tensor, list[Tensor]]:
        acts: dict[str, Tensor] = {}

        def keep(t: Tensor, hook) -> Tensor:
            acts[hook.name] = t
            return t  # returned so the kept tensor is the one used downstream (per-head views otherwise aren't)

        with self.model.bridge.hooks(fwd_hooks=[(h, keep) for h in self.hooks]):
            logits = self.model.bridge(sb.forget.input_ids)
        return logits, [acts[h] for h in self.hooks]

    def loss(self, sb: StepBatch, step: int):
        logits_f, acts = self.forward_with_acts(sb)
        nll_f = answer_nll(logits_f, sb.forget)
        nll_r = self.retain_nll(sb)
        g = torch.autograd.grad(answer_probability_sum(logits_f, sb.forget), acts, retain_graph=True)
        a_t = pooled_neuron_attribution(acts, list(g), sb.forget.token_mask)
        reg = neuron_regulariser(a_t, self.prev) if self.prev is not None else logits_f.new_zeros(())
        self.prev = a_t.detach()
        return self.combine(nll_f, nll_r, reg, {"neg_frac": (a_t.detach() < 0).float().mean().item()})

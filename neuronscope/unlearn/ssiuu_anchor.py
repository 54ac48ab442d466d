"""ssiuu-anchor: Ssiuu with A_t held to the *original* model's attribution on the same batch.

    L = L_GD + lambda * sum_{i : A_t[i] < 0} (A_0[i] - A_t[i])^2,   A_0 = phi_0 * g_0(b), phi_0 frozen at start.

This answers a reviewer's question (docs/method.md section 4): the paper compares A_t with A_{t-1} from a different
batch; here both sides see the same batch b. At t = 1, phi = phi_0, so L_reg = 0 without a special case.
A_0 is computed on a frozen copy (one more forward + backward per step), cached per forget batch within a
memory budget: one entry is a full copy of the trainable parameters, so a 3B model caches none and recomputes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from neuronscope.attribution.parameters import answer_probability_grads
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.unlearn.base import MethodSettings, StepBatch, UnlearnConfig
from neuronscope.unlearn.registry import register
from neuronscope.unlearn.ssiuu import Ssiuu

if TYPE_CHECKING:
    from neuronscope.plan import Shape


@register
class SsiuuAnchor(Ssiuu):
    name = "ssiuu-anchor"
    summary = "Ssiuu with the attribution held to the original model's on the same batch"
    needs_reference = True  # an unfrozen copy: g_0 is a gradient w.r.t. its parameters
    default_lambda = 1e2  # from the sweep in docs/unlearning.md
    cache_size = 64  # at most this many forget batches ...
    cache_bytes = 1 << 30  # ... and at most 1 GiB of cached attributions

    @classmethod
    def extra_state(cls, shape: Shape, settings: MethodSettings, trainable: int, nbytes: int, max_steps: int
                    ) -> list[tuple[str, int, str]]:
        cached = min(cls.cache_size, max_steps, cls.cache_bytes // max(1, trainable * nbytes))
        return [("g_0 + A_0 cache", (1 + cached) * trainable * nbytes,
                 f"reference gradient + A_0 cached per forget batch (up to {cached})")]

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = model.clone()  # parameters keep requires_grad: g_0 is a gradient w.r.t. them
        self.ref.hf.eval()
        self.ref_params = dict(self.ref.hf.named_parameters())
        self.cache: dict[tuple[int, ...], list[Tensor]] = {}

    def comparison(self, sb: StepBatch, params: list[Tensor]) -> list[Tensor]:
        key = sb.forget_index
        if key and key in self.cache:
            return self.cache[key]
        names = {id(p): n for n, p in self.model.hf.named_parameters()}
        ref_params = [self.ref_params[names[id(p)]] for p in params]
        g0 = answer_probability_grads(self.ref, sb.forget, ref_params)
        a0 = [(p.detach() * g).detach() for p, g in zip(ref_params, g0, strict=True)]
        entry = sum(a.numel() * a.element_size() for a in a0)
        if key and len(self.cache) < self.cache_size and (len(self.cache) + 1) * entry <= self.cache_bytes:
            self.cache[key] = a0
        return a0

    def remember(self, a_t: list[Tensor]) -> None:
        pass

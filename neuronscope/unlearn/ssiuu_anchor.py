"""ssiuu-anchor: Ssiuu with A_t held to the *original* model's attribution on the same batch.

    L = L_GD + lambda * sum_{i : A_t[i] < 0} (A_0[i] - A_t[i])^2,   A_0 = phi_0 * g_0(b), phi_0 frozen at start.

This answers a reviewer's question (docs/method.md section 4): the paper compares A_t with A_{t-1} from a different
batch; here both sides see the same batch b. At t = 1, phi = phi_0, so L_reg = 0 without a special case.
A_0 is computed on a frozen copy (one more forward + backward per step), cached per forget batch within a
memory budget (`anchor_cache_gib`, 1 GiB): one entry is a full copy of the trainable parameters, so a 3B model
caches none and recomputes. The loop reshuffles the forget items every pass, so a batch almost never recurs and the
cache almost never hits; `anchor_fixed_batches` makes every pass reuse the first pass's batches (in a new order),
so from the second pass on each step hits (given room for ceil(forget / batch_size) entries) and costs what a
Ssiuu step costs. It changes which items share a batch, hence the run: off by default, so results stay as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from torch import Tensor

from neuronscope.attribution.parameters import answer_probability_grads
from neuronscope.checks import non_negative
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model
from neuronscope.unlearn.base import MethodSettings, StepBatch, UnlearnConfig
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register
from neuronscope.unlearn.ssiuu import Ssiuu, SsiuuSettings

if TYPE_CHECKING:
    from neuronscope.plan import Shape

INFO = CATALOG["ssiuu-anchor"]  # summary, setting keys (Ssiuu's and its own), defaults and help


@dataclass(frozen=True)
class AnchorSettings(SsiuuSettings):
    fixed_batches: bool = INFO.default("anchor_fixed_batches")  # every pass reuses the first pass's forget batches
    cache_gib: float = INFO.default("anchor_cache_gib")  # for cached A_0 (an entry: a copy of the trainable params)

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        super().check()
        non_negative(self.cache_gib, "anchor_cache_gib")


@register
class SsiuuAnchor(Ssiuu):
    name = INFO.name
    summary = INFO.summary
    needs_reference = True  # an unfrozen copy: g_0 is a gradient w.r.t. its parameters
    default_lambda = 1e2  # from the sweep in docs/unlearning.md
    cache_size = 64  # at most this many forget batches, and at most `anchor_cache_gib` of cached attributions
    settings_cls = AnchorSettings
    settings: AnchorSettings

    @classmethod
    def extra_state(cls, shape: Shape, settings: MethodSettings, trainable: int, nbytes: int, max_steps: int
                    ) -> list[tuple[str, int, str]]:
        cached = min(cls.cache_size, max_steps, cache_bytes(settings) // max(1, trainable * nbytes))
        return [("g_0 + A_0 cache", (1 + cached) * trainable * nbytes,
                 f"reference gradient + A_0 cached per forget batch (up to {cached})")]

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        self.ref = model.clone()  # parameters keep requires_grad: g_0 is a gradient w.r.t. them
        self.ref.hf.eval()
        self.ref_params = dict(self.ref.hf.named_parameters())
        self.cache: dict[tuple[int, ...], list[Tensor]] = {}
        self.cache_bytes = cache_bytes(self.settings)
        self.fixed_forget_batches = self.settings.fixed_batches  # read by the loop
        self.hits = 0
        self.names = {id(p): n for n, p in self.model.hf.named_parameters()}

    def comparison(self, sb: StepBatch, params: list[Tensor]) -> list[Tensor]:
        key = sb.forget_index
        if key and key in self.cache:
            self.hits += 1
            return self.cache[key]
        ref_params = [self.ref_params[self.names[id(p)]] for p in params]
        g0 = answer_probability_grads(self.ref, sb.forget, ref_params)
        a0 = [(p.detach() * g).detach() for p, g in zip(ref_params, g0, strict=True)]
        entry = sum(a.numel() * a.element_size() for a in a0)
        if key and len(self.cache) < self.cache_size and (len(self.cache) + 1) * entry <= self.cache_bytes:
            self.cache[key] = a0
        return a0

    def remember(self, a_t: list[Tensor]) -> None:
        pass


def cache_bytes(settings: MethodSettings) -> int:
    """The A_0 cache's budget in bytes (settings of another Ssiuu variant: the default 1 GiB)."""
    return math.floor(getattr(settings, "cache_gib", AnchorSettings.cache_gib) * (1 << 30))

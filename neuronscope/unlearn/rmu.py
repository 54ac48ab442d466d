"""RMU (Li et al. 2024): scramble one layer's hidden state on forget inputs, hold it fixed on retain inputs.

    L = mean_{forget tokens} |h_l(x) - c u|^2 / d + alpha * mean_{retain tokens} |h_l(x') - h_l^ref(x')|^2 / d

h_l is the output of block l (the residual stream after it), u a fixed random unit vector (uniform entries, then
normalised; seeded), `ref` the frozen model before unlearning. Tokens are all real tokens (prompt and answer).
Only the MLP parameters of `rmu_trainable` blocks ending at block l are trained, as in the original RMU.
Defaults for the toy model (see docs/unlearning.md): l = n_layers // 2; c, alpha and the trainable count in
`RMUSettings` (public keys rmu_layer, rmu_c, rmu_alpha, rmu_trainable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from neuronscope.batching import Batch
from neuronscope.checks import SettingError, at_least, non_negative, positive
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.families import spec_for
from neuronscope.models.handle import Model
from neuronscope.sparse_logits import sparse_ok
from neuronscope.unlearn.base import Method, MethodSettings, StepBatch, UnlearnConfig, frozen_copy, seeded_generator
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register

INFO = CATALOG["rmu"]  # summary, setting keys, defaults and help

if TYPE_CHECKING:
    from neuronscope.plan import Shape


def decoder_layers(model: Model) -> nn.ModuleList:
    """The model's list of transformer blocks, where its family spec says they are."""
    return spec_for(model).decoder_blocks(model.hf)


def hidden_at(model: Model, batch: Batch, layer: int) -> Float[Tensor, "batch pos d_model"]:
    """Output of block `layer` (the residual stream after it), read by a forward hook.

    A hook rather than `hidden_states[layer + 1]`, which HF gives after the final norm for the last block. A large
    vocabulary's head, whose logits the loss never reads, is not run (`sparse_ok`: the decoder alone).
    """
    kept: list[Tensor] = []

    def keep(module: nn.Module, inputs: object, output: object) -> None:
        kept.append(output[0] if isinstance(output, tuple) else output)  # type: ignore[arg-type]

    handle = decoder_layers(model)[layer].register_forward_hook(keep)
    try:
        (model.hf.base_model if sparse_ok(model.hf) else model.hf)(input_ids=batch.input_ids)
    finally:
        handle.remove()
    return kept[0]


def masked_mse(h: Float[Tensor, "batch pos d"], target: Tensor, mask: Bool[Tensor, "batch pos"]) -> Tensor:
    """Mean over masked tokens and the d coordinates of the squared difference."""
    # h is on its block's device (models split over GPUs): bring target and mask there; reduce in float32 (bf16)
    sq = ((h.float() - target.to(h.device, torch.float32)) ** 2).mean(-1)
    mask = mask.to(h.device)
    return (sq * mask).sum() / mask.sum().clamp(min=1)


@dataclass(frozen=True)
class RMUSettings(MethodSettings):
    layer: int | None = INFO.default("rmu_layer")  # None: n_layers // 2
    c: float = INFO.default("rmu_c")  # norm of the random control vector
    alpha: float = INFO.default("rmu_alpha")  # weight of the retain activation loss
    trainable: int = INFO.default("rmu_trainable")  # MLPs of this many blocks up to and including `layer` are trained

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        if self.layer is not None:
            at_least(self.layer, 0, "rmu_layer")
        positive(self.c, "rmu_c")
        non_negative(self.alpha, "rmu_alpha")
        at_least(self.trainable, 1, "rmu_trainable")


@register
class RMU(Method):
    name = INFO.name
    summary = INFO.summary
    needs_reference = True
    settings_cls = RMUSettings
    settings: RMUSettings

    @classmethod
    def trainable_count(cls, shape: Shape, settings: MethodSettings) -> int:
        assert isinstance(settings, RMUSettings)
        return min(settings.trainable, shape.layers) * shape.mlp_params_per_layer

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        st = self.settings
        n_layers = model.hf.config.num_hidden_layers
        self.layer = n_layers // 2 if st.layer is None else st.layer
        if not 0 <= self.layer < n_layers:
            raise SettingError("rmu_layer", f"must lie in [0, {n_layers - 1}], got {self.layer}")
        self.ref = frozen_copy(model)
        d = model.hf.config.hidden_size
        u = torch.rand(d, generator=seeded_generator(cfg.seed, 17))
        self.control = (st.c * u / u.norm()).to(model.device)
        lo = max(0, self.layer - st.trainable + 1)
        self._params = [p for n, p in model.hf.named_parameters()
                        if (k := spec_for(model).mlp_layer(n)) is not None and lo <= k <= self.layer]
        if not self._params:
            raise NeuronscopeError(f"rmu: found no MLP parameters in blocks {lo}..{self.layer} of this model")

    def parameters(self) -> list[nn.Parameter]:
        return self._params

    def loss(self, sb: StepBatch, step: int):
        if sb.retain is None:
            raise NeuronscopeError("method rmu needs retain items, but the dataset has none")
        h_f = hidden_at(self.model, sb.forget, self.layer)
        forget = masked_mse(h_f, self.control, sb.forget.token_mask)
        h_r = hidden_at(self.model, sb.retain, self.layer)
        with torch.no_grad():
            h_ref = hidden_at(self.ref, sb.retain, self.layer)
        retain = masked_mse(h_r, h_ref, sb.retain.token_mask)
        total = forget + self.settings.alpha * retain
        return total, {"loss": total.item(), "forget_mse": forget.item(), "retain_mse": retain.item()}

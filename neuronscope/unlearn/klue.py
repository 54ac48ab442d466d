"""KLUE (the FaithUn authors' method): GD that updates only the FFN neurons localised as holding the forget facts.

The published description fixes the shape (an attribution-based localisation of knowledge neurons, regularised
against superficial knowledge; about 10% of FFN neurons updated; GD) but not the formula, so this is our choice:

- An FFN neuron is one hidden unit i of a block's MLP: the i-th input of its output projection (down_proj in
  Llama, c_proj in GPT-2), h_i = act(gate_i) * up_i or act(fc_i). Updating it means the i-th row of every input
  projection (gate, up / fc, and their biases) and the i-th column of the output projection.
- Its attribution on an item is a_i(x) = sum over real tokens k of h_ik * dP(y|x)/dh_ik (gradient x activation,
  the first-order contribution to the answer's probability, as everywhere in neuronscope), before training.
- Superficial-knowledge regularisation: a neuron that raises the probability of retain answers as much as forget
  ones carries the question format, not the forget facts. The score is
      s_i = mean_{forget x} a_i(x) - superficial * mean_{retain x} a_i(x)        (superficial = 1 by default)
  and the top `fraction` (10%) of all FFN neurons by s are updated.
- The loss is GD's, -NLL_forget + w * NLL_retain; gradients outside the selected rows and columns are zeroed (with
  AdamW and weight_decay 0 those entries do not move at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D

from neuronscope.attribution.parameters import answer_probability_sum
from neuronscope.checks import SettingError, fraction, non_negative
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.sparse_logits import answer_logits
from neuronscope.training import answer_nll
from neuronscope.unlearn.base import Method, MethodSettings, StepBatch, UnlearnConfig, encode_items
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.registry import register
from neuronscope.unlearn.rmu import decoder_layers

if TYPE_CHECKING:
    from neuronscope.plan import Shape

INFO = CATALOG["klue"]  # summary, setting keys, defaults and help


@dataclass(frozen=True)
class KLUESettings(MethodSettings):
    fraction: float = INFO.default("klue_fraction")  # share of all FFN neurons updated
    superficial: float = INFO.default("klue_superficial")  # weight of the retain attribution subtracted from forget's

    keys: ClassVar[dict[str, str]] = INFO.keys()
    help: ClassVar[dict[str, str]] = INFO.help()

    def check(self) -> None:
        fraction(self.fraction, "klue_fraction", open_low=True)
        non_negative(self.superficial, "klue_superficial")


@dataclass
class FFN:
    """One block's MLP: the projections into its hidden units and the one out of them."""

    inputs: list[nn.Module]
    output: nn.Module

    @property
    def width(self) -> int:
        w = self.output.weight
        return int(w.shape[0] if isinstance(self.output, Conv1D) else w.shape[1])


def ffn_blocks(model: Model) -> list[FFN]:
    """Each block's MLP projections, in registration order (gate, up, down; fc, proj): the last one is the output."""
    out = []
    for block in decoder_layers(model):
        mlp = getattr(block, "mlp", None)
        linears = [m for m in mlp.modules() if isinstance(m, nn.Linear | Conv1D)] if mlp is not None else []
        if len(linears) < 2:
            raise NeuronscopeError(f"klue: cannot find the MLP projections of a block of {model.source}")
        out.append(FFN(linears[:-1], linears[-1]))
    return out


def ffn_attribution(model: Model, blocks: list[FFN], items: list[QAItem], batch_size: int
                    ) -> Float[Tensor, "layer neuron"]:
    """mean over items of a_i(x) = sum over real tokens of h_i * dP(y|x)/dh_i, per block and hidden unit."""
    total = torch.zeros(len(blocks), blocks[0].width, dtype=torch.float64)
    for start in range(0, len(items), batch_size):
        batch = encode_items(model, items[start:start + batch_size])
        kept: list[Tensor] = []
        handles = [b.output.register_forward_pre_hook(lambda _m, args, kept=kept: kept.append(args[0])) for b in blocks]
        try:
            logits, paired = answer_logits(model.hf, batch)  # the activations keep every position
        finally:
            for h in handles:
                h.remove()
        grads = torch.autograd.grad(answer_probability_sum(logits, paired), kept)
        for layer, (h, g) in enumerate(zip(kept, grads, strict=True)):
            mask = batch.token_mask.to(h.device).unsqueeze(-1)
            a = (h.detach().float() * g.float() * mask).sum(1)  # [batch, neuron]
            total[layer] += a.sum(0).double().cpu()
    return total / max(1, len(items))


def select_neurons(score: Float[Tensor, "layer neuron"], share: float) -> torch.Tensor:
    """A boolean [layer, neuron] mask of the top `share` of all neurons by score (at least one; ties by index)."""
    k = max(1, round(share * score.numel()))
    top = torch.topk(score.flatten(), k, sorted=True).indices
    mask = torch.zeros(score.numel(), dtype=torch.bool)
    mask[top] = True
    return mask.view_as(score)


def neuron_masks(block: FFN, chosen: torch.Tensor) -> list[tuple[nn.Parameter, Tensor]]:
    """(parameter, gradient mask) for the rows/columns of the chosen hidden units; the output bias is not a unit's."""
    out = []
    for m in block.inputs:  # hidden units are outputs: Linear rows, Conv1D columns, bias entries
        w = m.weight
        c = chosen.to(w.device, w.dtype)
        out.append((w, c.view(1, -1) if isinstance(m, Conv1D) else c.view(-1, 1)))
        if getattr(m, "bias", None) is not None:
            out.append((m.bias, c))
    w = block.output.weight  # hidden units are inputs: Linear columns, Conv1D rows
    c = chosen.to(w.device, w.dtype)
    out.append((w, c.view(-1, 1) if isinstance(block.output, Conv1D) else c.view(1, -1)))
    return out


@register
class KLUE(Method):
    name = INFO.name
    summary = INFO.summary
    settings_cls = KLUESettings
    settings: KLUESettings

    @classmethod
    def trainable_count(cls, shape: Shape, settings: MethodSettings) -> int:
        """The optimiser holds every MLP parameter (state for all of them), but only the selected units move."""
        return shape.layers * shape.mlp_params_per_layer

    @classmethod
    def setup_passes(cls, forget: int, retain: int, batch_size: int) -> int:
        """The localisation: one pass per batch of forget and of retain base questions."""
        return -(-forget // batch_size) + -(-retain // batch_size)

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        super().__init__(model, ds, cfg)
        if cfg.weight_decay:
            raise SettingError("weight_decay", "must be 0 for klue (decay would move the neurons it keeps fixed)")
        forget, retain = ds.items("forget", "base"), ds.items("retain", "base")
        if not forget or not retain:
            raise NeuronscopeError("klue localises on forget and retain base questions; the dataset lacks one")
        blocks = ffn_blocks(model)
        was_training = model.hf.training
        model.hf.eval()
        try:
            a_f = ffn_attribution(model, blocks, forget, cfg.batch_size)
            a_r = ffn_attribution(model, blocks, retain, cfg.batch_size)
        finally:
            model.hf.train(was_training)
        self.score = a_f - self.settings.superficial * a_r
        self.chosen = select_neurons(self.score, self.settings.fraction)
        self._masks = [pm for b, c in zip(blocks, self.chosen, strict=True) for pm in neuron_masks(b, c)]
        self._params = list({id(p): p for p, _ in self._masks}.values())
        self._handles: list[torch.utils.hooks.RemovableHandle] = []  # attached at the first step, removed by finish
        self.notes.append(f"klue: {int(self.chosen.sum())} of {self.chosen.numel()} FFN neurons updated "
                          f"(per block: {', '.join(str(int(n)) for n in self.chosen.sum(1))})")

    def parameters(self) -> list[nn.Parameter]:
        return self._params

    def finish(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def loss(self, sb: StepBatch, step: int):
        if not self._handles:  # zero the gradient outside the chosen units
            self._handles = [p.register_hook(lambda g, m=m: g * m) for p, m in self._masks]
        nll_f = answer_nll(*self.answer_logits(sb.forget))
        nll_r = self.retain_nll(sb)
        total = -nll_f + self.cfg.retain_weight * nll_r
        return total, {"loss": total.item(), "forget_nll": nll_f.item(), "retain_nll": nll_r.item()}

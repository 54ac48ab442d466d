"""What every unlearning method shares: its configuration, the batch it sees per step, and the Method interface.

A method only defines its loss (and, where needed, a frozen reference model or a trainable-parameter subset);
the loop in `loop.py` owns batching, the optimiser, the stopping rule and logging, so methods stay comparable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from neuronscope.batching import Batch, encode
from neuronscope.checks import at_least, fraction, non_negative, positive
from neuronscope.data.schema import KINDS, QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.training import answer_nll

PAPER_REFUSAL = "i can not answer the question"


@dataclass(frozen=True)
class UnlearnConfig:
    """Every knob of an unlearning run. Method-specific fields are ignored by the other methods."""

    lr: float = 1e-4
    max_steps: int = 500
    threshold: float | None = None  # stop once FS <= this; None: the dataset's own (chance, TOFU's 0.1971)
    check_every: int = 1  # steps between forget-accuracy checks (the stopping rule)
    rs_every: int = 10  # steps between retain/test accuracy logs in the curve (0: only at the end)
    batch_size: int = 16  # forget and retain batch size
    seed: int = 0
    eval_kinds: tuple[str, ...] = KINDS  # question kinds scored at the end (FS/RS/US use only "base")
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max global grad norm; None: no clipping
    retain_weight: float = 1.0  # weight of the retain NLL (gd, dpo, npo, ssiuu*)
    # ssiuu, ssiuu-neuron, ssiuu-anchor
    lambda_: float | None = None  # None: the variant's toy default (docs/unlearning.md)
    lambda_relative: bool = False  # lambda_ / L_reg(first active step) instead of lambda_ (scale-free)
    # dpo, npo
    beta: float = 0.1
    refusal: str = PAPER_REFUSAL  # dpo's preferred answer; falls back to the eos token if it has unknown words
    # rmu
    rmu_layer: int | None = None  # None: n_layers // 2
    rmu_c: float = 20.0  # norm of the random control vector
    rmu_alpha: float = 100.0  # weight of the retain activation loss
    rmu_trainable: int = 3  # MLPs of this many layers up to and including rmu_layer are trained

    def check(self) -> None:
        """Reject values that would silently give a meaningless run; messages name the CLI flag."""
        positive(self.lr, "--lr")
        at_least(self.max_steps, 1, "--max-steps")
        if self.threshold is not None:
            fraction(self.threshold, "--threshold")
        at_least(self.check_every, 1, "--check-every")
        at_least(self.rs_every, 0, "--rs-every")
        at_least(self.batch_size, 1, "--batch-size")
        if self.lambda_ is not None:
            non_negative(self.lambda_, "--lambda")
        positive(self.beta, "--beta")
        non_negative(self.retain_weight, "retain_weight")
        non_negative(self.weight_decay, "weight_decay")
        if self.grad_clip is not None:
            positive(self.grad_clip, "grad_clip")
        if "base" not in self.eval_kinds:
            raise NeuronscopeError("eval_kinds must include 'base' (FS, RS and US are read from it)")
        if not (self.rmu_c > 0 and math.isfinite(self.rmu_c) and self.rmu_alpha >= 0
                and math.isfinite(self.rmu_alpha) and self.rmu_trainable >= 1):
            raise NeuronscopeError("rmu needs --rmu-c > 0, --rmu-alpha >= 0 (finite) and --rmu-trainable >= 1")
        if self.rmu_layer is not None:
            at_least(self.rmu_layer, 0, "rmu_layer")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class StepBatch:
    """One step's data: a forget batch (gold answers) and, when the method uses one, a retain batch."""

    forget: Batch
    forget_items: list[QAItem]
    retain: Batch | None
    retain_items: list[QAItem]
    forget_index: tuple[int, ...] = ()  # positions in the forget list (a cache key for per-batch constants)


class Method:
    """Base class: subclasses set `name` and define `loss`; they may narrow `parameters` or hold a reference."""

    name: ClassVar[str] = ""
    needs_retain: ClassVar[bool] = True

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        self.model, self.ds, self.cfg = model, ds, cfg
        self.notes: list[str] = []  # choices made at run time (e.g. a refusal fallback), copied into the result

    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates (default: all of them)."""
        return list(self.model.hf.parameters())

    def loss(self, sb: StepBatch, step: int) -> tuple[Float[Tensor, ""], dict[str, float]]:
        """The scalar to minimise at `step` (1-based) and the named terms to log."""
        raise NotImplementedError

    # -- helpers shared by several methods -------------------------------------------------------------
    def logits(self, batch: Batch) -> Float[Tensor, "batch pos vocab"]:
        return self.model.hf(input_ids=batch.input_ids).logits

    def retain_nll(self, sb: StepBatch) -> Float[Tensor, ""]:
        if sb.retain is None:
            raise NeuronscopeError(f"method {self.name} needs retain items, but the dataset has none")
        return answer_nll(self.logits(sb.retain), sb.retain)


def frozen_copy(model: Model) -> Model:
    """An independent, frozen copy of `model` in eval mode: the reference of DPO, NPO, RMU and ssiuu-anchor."""
    ref = model.clone()
    ref.hf.eval()
    for p in ref.hf.parameters():
        p.requires_grad_(False)
    return ref


def encode_items(model: Model, items: list[QAItem], answers: list[str] | None = None) -> Batch:
    answers = answers if answers is not None else [it.answer for it in items]
    return encode(model.tokenizer, [it.question for it in items], answers).to(model.device)


def tokenises_cleanly(model: Model, text: str) -> bool:
    """True when no word of `text` becomes the unknown token (word-level toy tokenizers lack most words)."""
    unk = model.tokenizer.unk_token_id
    ids = model.tokenizer(" " + text, add_special_tokens=False)["input_ids"]
    return bool(ids) and (unk is None or unk not in ids)


def seeded_generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)

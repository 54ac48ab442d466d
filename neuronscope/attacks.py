"""Relearning attacks: does a little fine-tuning bring the forgotten facts back?

An unlearned model that only *hides* a fact recovers it quickly when fine-tuned on related data (harmful: some of
the forget facts themselves) or even unrelated data (benign: an instruction corpus). A model that *erased* the
fact behaves like the oracle that never saw it. Both attacks fine-tune with the plain answer-only loss of
`neuronscope.training.fit` and measure forget-set accuracy (FS, 3-option multiple choice) on forget base items the
attack never trains on, every `eval_every` steps. The reported recovery is the maximum FS over the points measured
*during* retraining (step 0, the unattacked model, is kept in the trajectory but excluded from the maximum).

The maximum of a noisy accuracy is biased upwards even for a model that never knew the facts, so a raw recovery
only means something next to the oracle's (see neuronscope.plots.table).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from neuronscope.budget import check_dataset
from neuronscope.checks import fraction, positive
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.scoring import dataset_metric, items_known, split_score, stop_threshold
from neuronscope.training import fit

AttackKind = Literal["harmful", "benign"]
ATTACK_KINDS: tuple[str, ...] = ("harmful", "benign")


class NothingToRelearn(NeuronscopeError):
    """The harmful attack cannot be drawn: the model answers every forget item correctly, so there is nothing
    wrong to train on (its unlearning did not move a single answer). A grid skips such a model's harmful attacks."""


@dataclass(frozen=True)
class AttackConfig:
    """One relearning attack. Defaults suit the toy model (the paper's 1e-5..1e-7 are for 7B models).

    lr, steps and batch size are not given by the paper; 30 AdamW steps at 1e-3, batch 16, measuring every 5
    steps, is what separated hiding from erasing in a trial on the toy world.
    """

    kind: str = "harmful"
    p: float = 0.1  # harmful only: fraction of the forget base items to train on (drawn from wrong answers)
    lr: float = 1e-3
    steps: int = 30
    eval_every: int = 5
    batch_size: int = 16
    seed: int = 0
    benign_n: int = 0  # benign only: 0 = the whole benign corpus, else a seeded sample of this many items

    def check(self) -> None:
        if self.kind not in ATTACK_KINDS:
            raise NeuronscopeError(f"attack kind must be one of {', '.join(ATTACK_KINDS)}, got {self.kind!r}")
        fraction(self.p, "attack fraction p", open_low=True)
        positive(self.lr, "attack learning rate")
        if self.steps < 1:
            raise NeuronscopeError(f"attack steps must be at least 1, got {self.steps}")
        if self.eval_every < 1:
            raise NeuronscopeError(f"attack eval_every must be at least 1, got {self.eval_every}")
        if self.batch_size < 1:
            raise NeuronscopeError(f"attack batch_size must be at least 1, got {self.batch_size}")
        if self.benign_n < 0:
            raise NeuronscopeError(f"attack benign_n must be >= 0, got {self.benign_n}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.kind == "benign":
            d.pop("p")
        else:
            d.pop("benign_n")
        return d


@dataclass
class AttackResult:
    """The FS trajectory of one attack run and the items it trained on and measured."""

    config: dict[str, Any]
    trajectory: list[dict[str, float]]  # [{"step": s, "fs": accuracy on eval items}], step 0 first
    max_fs: float  # maximum FS over the points measured during retraining (step >= 1)
    start_fs: float  # FS of the eval items before the attack
    final_fs: float
    train_ids: list[str]  # ids of what the attack trained on (QA ids or benign ids)
    eval_ids: list[str]  # forget base items FS is measured on; disjoint from train_ids
    n_wrong: int  # harmful: forget base items the model answered wrongly before the attack
    seconds: float
    losses: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. half-precision weights this lr cannot move

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: dict[str, Any]) -> AttackResult:
        return AttackResult(**d)


def max_over_trajectory(trajectory: Sequence[dict[str, float]]) -> float:
    """The recovery rule: the highest FS measured after at least one attack step."""
    during = [pt["fs"] for pt in trajectory if pt["step"] >= 1]
    if not during:
        raise ValueError("trajectory has no point measured during retraining")
    return max(during)


def harmful_split(model: Model, ds: QADataset, p: float, seed: int) -> tuple[list[QAItem], list[QAItem], int]:
    """Draw round(p * |forget base|) items among those the model answers wrongly; the rest are measured.

    Returns (train items, eval items, number of wrong items). At least one item is always left to measure; when
    fewer wrong items exist than the fraction asks for, all wrong ones are used (recorded by the caller).
    """
    forget = ds.items("forget")
    if len(forget) < 2:
        raise NeuronscopeError("the harmful attack needs at least 2 forget base items (1 to train, 1 to measure)")
    # "answers wrongly": loses the multiple choice, or (TOFU) recalls no more than the stopping threshold
    correct = items_known(model, forget, dataset_metric(ds), stop_threshold(ds)).tolist()
    wrong = [it for it, ok in zip(forget, correct, strict=True) if not ok]
    if not wrong:
        raise NothingToRelearn("the harmful attack draws from forget items the model answers wrongly; it answers "
                               "every forget item correctly (was it unlearned?)")
    n = min(max(1, round(p * len(forget))), len(wrong), len(forget) - 1)
    rng = random.Random(seed)
    chosen = {it.id for it in rng.sample(wrong, n)}
    train = [it for it in forget if it.id in chosen]
    held_out = [it for it in forget if it.id not in chosen]
    return train, held_out, len(wrong)


def attack(model: Model, ds: QADataset, cfg: AttackConfig,
           progress: Callable[[int, float], None] | None = None) -> AttackResult:
    """Run one attack on `model` IN PLACE (clone first to keep the original); see the module docstring."""
    cfg.check()
    check_dataset(model, ds)  # every item within the model's context and the memory budget, before training
    t0 = time.perf_counter()
    n_wrong = 0
    if cfg.kind == "harmful":
        train_items, eval_items, n_wrong = harmful_split(model, ds, cfg.p, cfg.seed)
        prompts, answers = [it.question for it in train_items], [it.answer for it in train_items]
        train_ids = [it.id for it in train_items]
    else:
        eval_items = ds.items("forget")
        if not eval_items:
            raise NeuronscopeError("the dataset has no forget base items to measure the benign attack on")
        benign = list(ds.benign)
        if not benign:
            raise NeuronscopeError("the benign attack needs the dataset's benign corpus (benign.jsonl), which is "
                                   "empty")
        if cfg.benign_n and cfg.benign_n < len(benign):
            benign = random.Random(cfg.seed).sample(benign, cfg.benign_n)
        prompts, answers = [b.prompt for b in benign], [b.output for b in benign]
        train_ids = [b.id for b in benign]

    metric = dataset_metric(ds)

    def fs() -> float:
        return split_score(model, eval_items, metric)

    trajectory = [{"step": 0, "fs": fs()}]

    def on_step(step: int, loss: float) -> None:
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.hf.eval()
            trajectory.append({"step": step, "fs": fs()})
            model.hf.train()
        if progress is not None:
            progress(step, loss)

    result = fit(model, prompts, answers, lr=cfg.lr, batch_size=cfg.batch_size, max_epochs=cfg.steps,
                 seed=cfg.seed, max_steps=cfg.steps, progress=on_step)
    return AttackResult(
        config=cfg.to_json(), trajectory=trajectory, max_fs=max_over_trajectory(trajectory),
        start_fs=trajectory[0]["fs"], final_fs=trajectory[-1]["fs"], train_ids=train_ids,
        eval_ids=[it.id for it in eval_items], n_wrong=n_wrong, seconds=time.perf_counter() - t0,
        losses=[round(x, 6) for x in result.losses], notes=result.notes,
    )

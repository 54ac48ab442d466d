"""The one loop every method shares: batches, AdamW, the paper's stopping rule, logging; and the lr search.

Stopping rule (docs/method.md section 5): stop as soon as the forget-set score (FS: multiple-choice accuracy, or mean
ROUGE-L recall on TOFU) of the forget base questions is <= `threshold` (default: the dataset's own,
`neuronscope.scoring.stop_threshold`: chance, 1/3 for 3 options, or TOFU's 0.1971), checked before training and
every `check_every` steps, or at `max_steps`. The learning rate is the lowest of a grid that reaches the threshold
(`lr_search`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from neuronscope.batching import encode_row
from neuronscope.budget import check_dataset, check_training
from neuronscope.checks import at_least
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.models.precision import precision_note
from neuronscope.scoring import EvalReport, dataset_metric, evaluate, split_score, stop_threshold
from neuronscope.unlearn.base import Method, StepBatch, UnlearnConfig, encode_items, seeded_generator
from neuronscope.unlearn.registry import get_method

Progress = Callable[[int, dict[str, Any]], None]


@dataclass
class UnlearnResult:
    """The trained model and what happened: final FS/RS/US, steps, whether the threshold was reached, the curve."""

    model: Model
    method: str
    lr: float
    steps: int
    reached: bool
    fs: float
    rs: float
    us: float
    seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    report: EvalReport | None = None
    notes: list[str] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)  # lr_search: one row per learning rate tried

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "lr": self.lr, "steps": self.steps, "reached": self.reached,
                "fs": self.fs, "rs": self.rs, "us": self.us, "seconds": round(self.seconds, 2)}

    def to_json(self) -> dict[str, Any]:
        return self.summary() | {"threshold": self.config.get("threshold"), "config": self.config,
                                 "report": self.report.to_json() if self.report else None,
                                 "notes": self.notes, "trials": self.trials, "curve": self.curve}


def _cycle(n: int, batch_size: int, gen: torch.Generator) -> Iterator[tuple[int, ...]]:
    """Index batches over shuffled passes; a batch never spans two passes (no item twice in a batch)."""
    cycle = BatchCycle(n, batch_size, gen)
    while True:
        yield cycle.next()


class BatchCycle:
    """`_cycle` as an object whose position can be saved and restored (the stop check's back-off replays steps).

    `fixed`: the first pass's batches are the batches of every later pass (each pass in a new order), so a method
    may cache a per-batch constant (ssiuu-anchor's A_0); off, every pass reshuffles the items."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator, fixed: bool = False):
        self.n, self.batch_size, self.gen, self.fixed = n, batch_size, gen, fixed
        self.order: list[int] = []
        self.pos = 0
        self.batches: list[tuple[int, ...]] = []  # fixed: the first pass's batches
        self.reuse = False  # fixed, after the first pass: `order` indexes `batches`

    def next(self) -> tuple[int, ...]:
        if self.pos >= len(self.order):
            self.reuse = self.fixed and bool(self.batches)
            self.order = torch.randperm(len(self.batches) if self.reuse else self.n, generator=self.gen).tolist()
            self.pos = 0
        if self.reuse:
            self.pos += 1
            return self.batches[self.order[self.pos - 1]]
        batch = tuple(sorted(self.order[self.pos:self.pos + self.batch_size]))
        self.pos += self.batch_size
        if self.fixed:
            self.batches.append(batch)
        return batch

    def state(self) -> tuple[Any, ...]:
        return self.gen.get_state(), list(self.order), self.pos, list(self.batches), self.reuse

    def restore(self, state: tuple[Any, ...]) -> None:
        gen_state, order, self.pos, batches, self.reuse = state
        self.gen.set_state(gen_state)
        self.order, self.batches = list(order), list(batches)


@dataclass
class Snapshot:
    """Everything a training step reads and changes, taken at a scored check: trainable weights, AdamW's state,
    the method's per-step state, the batch positions, torch's RNG, and the curve's length."""

    step: int
    weights: list[Tensor]
    optimizer: dict[str, Any]
    method: dict[str, Any]
    batches: list[Any]
    rng: Tensor
    curve_len: int


def _snapshot(step: int, params: list[nn.Parameter], opt: torch.optim.Optimizer, m: Method,
              cycles: list[BatchCycle], curve: list[dict[str, Any]]) -> Snapshot:
    return Snapshot(step, [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict()), m.step_state(),
                    [c.state() for c in cycles], torch.get_rng_state(), len(curve))


def _restore(snap: Snapshot, params: list[nn.Parameter], opt: torch.optim.Optimizer, m: Method,
             cycles: list[BatchCycle], curve: list[dict[str, Any]]) -> None:
    """Put the run back where `snap` was taken. The snapshot is used up: AdamW takes its state tensors as they are
    (same dtype and device, so no copy) and updates them in place, which saves a copy of AdamW's state at the peak.
    A run restores at most once (the replay that follows takes no snapshot), so nothing reads it again."""
    with torch.no_grad():
        for p, w in zip(params, snap.weights, strict=True):
            p.copy_(w)
    snap.weights.clear()
    opt.load_state_dict(snap.optimizer)
    snap.optimizer = {}
    m.restore_step_state(snap.method)
    for c, st in zip(cycles, snap.batches, strict=True):
        c.restore(st)
    torch.set_rng_state(snap.rng)
    del curve[snap.curve_len:]


def at_or_below(fs: float, threshold: float) -> bool:
    """fs <= threshold, with room for rounding in a threshold computed elsewhere (1/3 as 0.33333334)."""
    return fs <= threshold + 1e-6


def unlearn(model: Model, ds: QADataset, method: str | type[Method], cfg: UnlearnConfig = UnlearnConfig(),
            progress: Progress | None = None, stride: int = 1,
            final_kinds: Sequence[str] | None = None) -> UnlearnResult:
    """Unlearn the forget split's base questions from `model` IN PLACE (clone first to keep the original).

    `method` is a registered name or, for constructions outside the registry (the calibration's planted hiding),
    a `Method` subclass. `stride` > 1 makes the stop check cheaper without changing the result: FS is scored at
    every `stride`-th check point only, and when it has reached the threshold the run goes back to the previous
    scored check (weights, AdamW state, the method's state, batch order and RNG were kept there) and replays the
    steps, scoring each check point, up to the first that meets the threshold. Steps, final scores and weights
    equal those of `stride` = 1; the curve has `fs` only at the check points that were scored. The kept state
    costs a copy of the trainable weights and AdamW's state.

    `final_kinds` (default `cfg.eval_kinds`): the question kinds of the final evaluation; `lr_search` scores only
    "base" for a trial and completes the evaluation of the one it keeps (`complete_report`).
    """
    cfg.check()
    at_least(stride, 1, "stride")
    method_cls = get_method(method) if isinstance(method, str) else method
    cfg.settings(method_cls)  # its own settings checked now, before any work
    method = method_cls.name
    forget = ds.items("forget", "base")
    if not forget:
        raise NeuronscopeError("the dataset has no forget base questions: nothing to unlearn")
    retain = ds.items("retain", "base")
    if method_cls.needs_retain and not retain:
        raise NeuronscopeError(f"method {method} needs retain base questions, but the dataset has none")
    rs_items = ds.items("retain", "base") + ds.items("test", "base")
    check_dataset(model, ds)  # context and memory: now, not in the final evaluation after training
    check_training(model, [len(encode_row(model.tokenizer, it.question, it.answer)[0]) for it in forget + retain],
                   cfg.batch_size)
    metric = dataset_metric(ds)
    threshold = cfg.threshold if cfg.threshold is not None else stop_threshold(ds)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    m = method_cls(model, ds, cfg)
    params = m.parameters()
    trainable = {id(p) for p in params}
    saved_flags = [(p, p.requires_grad) for p in model.hf.parameters()]
    for p in model.hf.parameters():
        p.requires_grad_(id(p) in trainable)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if note := precision_note(params, cfg.lr):
        m.notes.append(note)
    forget_batches = BatchCycle(len(forget), cfg.batch_size, seeded_generator(cfg.seed, 1),
                                fixed=getattr(m, "fixed_forget_batches", False))  # a method may ask (anchor)
    retain_batches = BatchCycle(len(retain), cfg.batch_size, seeded_generator(cfg.seed, 2)) if retain else None
    cycles = [c for c in (forget_batches, retain_batches) if c is not None]

    # Eval mode throughout, training included: dropout (GPT-2's default 0.1) would make the model differ from its
    # frozen reference (NPO, DPO, RMU start away from their reference values) and from the bridge ssiuu-neuron hooks.
    model.hf.eval()
    fs = split_score(model, forget, metric)
    curve: list[dict[str, Any]] = [{"step": 0, "fs": fs,
                                    "rs": split_score(model, rs_items, metric) if rs_items else None}]
    reached, step = at_or_below(fs, threshold), 0
    snap = _snapshot(0, params, opt, m, cycles, curve) if stride > 1 and not reached else None
    replaying = False  # after a back-off: every check point is scored until the threshold is met

    def train_step(step: int) -> dict[str, Any]:
        f_idx = forget_batches.next()
        r_idx = retain_batches.next() if retain_batches is not None else ()
        f_items, r_items = [forget[i] for i in f_idx], [retain[i] for i in r_idx]
        sb = StepBatch(encode_items(model, f_items), f_items,
                       encode_items(model, r_items) if r_items else None, r_items, f_idx)
        loss, terms = m.loss(sb, step)
        if not math.isfinite(loss.item()):
            raise NeuronscopeError(f"unlearning diverged: {method} loss is {loss.item()} at step {step} "
                                   f"(lr {cfg.lr:g}); try a lower learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        return {"step": step, **terms}

    try:
        while not reached and step < cfg.max_steps:
            step += 1
            row = train_step(step)
            check_point = step % cfg.check_every == 0 or step == cfg.max_steps
            scored = check_point and (replaying or snap is None or step == cfg.max_steps
                                      or (step // cfg.check_every) % stride == 0)
            if scored:
                row["fs"] = fs = split_score(model, forget, metric)
                reached = at_or_below(fs, threshold)
            if rs_items and cfg.rs_every and step % cfg.rs_every == 0:
                row["rs"] = split_score(model, rs_items, metric)
            curve.append(row)
            if reached and snap is not None and not replaying and (step - 1) // cfg.check_every > \
                    snap.step // cfg.check_every:
                # met at this check, and check points since the last scored one were skipped: the first one that
                # met the threshold may be earlier, so replay from the last scored check, scoring each
                _restore(snap, params, opt, m, cycles, curve)
                step, reached, replaying, snap = snap.step, False, True, None
                continue
            if scored and not reached and snap is not None and not replaying:
                snap = None  # the old copy goes before the new one is taken: one copy at the peak, not two
                snap = _snapshot(step, params, opt, m, cycles, curve)
            if progress is not None and not replaying:
                progress(step, row)
    finally:
        m.finish()
        for p, flag in saved_flags:
            p.requires_grad_(flag)
    report = evaluate(model, ds, kinds=cfg.eval_kinds if final_kinds is None else tuple(final_kinds))
    curve[-1]["fs"], curve[-1]["rs"] = report.fs, report.rs
    reached = at_or_below(report.fs, threshold)
    return UnlearnResult(model=model, method=method, lr=cfg.lr, steps=step, reached=reached,
                         fs=report.fs, rs=report.rs, us=report.us, seconds=time.perf_counter() - t0, curve=curve,
                         config=cfg.to_json(method_cls) | {"method": method, "threshold": threshold}, report=report,
                         notes=m.notes)


def lr_search(model: Model | Callable[[], Model], ds: QADataset, method: str, cfg: UnlearnConfig,
              grid: Sequence[float], progress: Progress | None = None, stride: int = 1) -> UnlearnResult:
    """The lowest learning rate of `grid` that reaches the threshold (the paper's rule), each on a fresh copy.

    `model`: a Model, left untouched (each trial trains a clone, so the original is held for the whole search), or
    a function that loads a fresh one (each trial trains what it returns; nothing is held between trials, one
    model less at the peak; the CLI and the grid reload from the checkpoint). If no rate reaches the threshold,
    the largest rate's run is returned with reached=False. Every trial is listed in `result.trials`.
    """
    if not grid:
        raise NeuronscopeError("lr_grid is empty")
    for lr in grid:
        replace(cfg, lr=lr).check()
    get_method(method)
    trials: list[dict[str, Any]] = []
    result: UnlearnResult | None = None
    for lr in sorted(set(grid)):  # a trial needs only FS and RS ("base"): the other kinds are scored once, below
        result = None  # the last trial's model goes before the next clone: one model less at the peak
        result = unlearn(model.clone() if isinstance(model, Model) else model(), ds, method, replace(cfg, lr=lr),
                         progress, stride, final_kinds=("base",))
        trials.append({"lr": lr, "reached": result.reached, "steps": result.steps, "fs": result.fs,
                       "rs": result.rs, "seconds": round(result.seconds, 2)})
        if result.reached:
            break
    assert result is not None
    result.trials = trials
    return result if tuple(cfg.eval_kinds) == ("base",) else complete_report(result, ds, cfg.eval_kinds)


def complete_report(result: UnlearnResult, ds: QADataset, kinds: Sequence[str]) -> UnlearnResult:
    """`result` with its final evaluation over `kinds`: the same model scored again, so FS/RS/US (read from
    "base", scored item by item in the same batches) are unchanged and the other kinds are added."""
    t0 = time.perf_counter()
    report = evaluate(result.model, ds, kinds=tuple(kinds))
    result.report, result.fs, result.rs, result.us = report, report.fs, report.rs, report.us
    result.curve[-1]["fs"], result.curve[-1]["rs"] = report.fs, report.rs
    result.seconds += time.perf_counter() - t0
    return result

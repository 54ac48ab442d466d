"""Dry run: memory per stage and optimiser-step counts, from an HF config.json alone (no weights are read).

The parameter count is exact: the architecture is instantiated on the meta device (shapes only, no storage) and
its parameters counted, tied ones once. Everything else is an estimate written out as a formula, per sequence of
`seq_len` tokens with d = hidden, q = heads x head_dim, kv = kv_heads x head_dim, I = intermediate, H = heads,
L = layers, V = vocab, b = bytes per weight element:

- weights: P x b. Training adds gradients (trainable x b) and AdamW's exp_avg and exp_avg_sq, which torch keeps in
  the parameter's dtype (2 x trainable x b). What a method adds is asked of the method (`neuronscope.unlearn`):
  a reference copy (P x b) where it `needs_reference` (DPO, NPO, RMU, ssiuu-anchor), its trainable count (RMU: the
  MLPs of its trainable blocks), its `sequences_per_step` and its `extra_state` rows (ssiuu: A_{t-1} kept,
  trainable x b, and in its loss g_t, A_t and their difference, 3 x trainable x b, plus a bool mask; ssiuu-anchor:
  its gradient and A_0 cache, up to 64 entries of trainable x b within 1 GiB).
- training activations per sequence: L x T x (4d + 3q + 3kv + 4I) x b (norm inputs/outputs, q/k/v and their rotated
  copies, attention output, gate, up, act(gate), act(gate) x up) + L x H x T^2 x b (eager attention probabilities)
  + T x V x (b + 8) (logits, their float32 copy and log-softmax).
- attribution (parameters frozen, so projection inputs are not saved): per sequence L x T x (N_layer + 2d + I) x b
  (the hooked outputs, norm inputs, act(gate)) + the same attention and logits terms; transient: one projection's
  gradient and its float32 product, batch x T x max_width x (b + 12); accumulators: 3 sums x neurons x 8 bytes
  (float64) + batch x neurons x 2 x 4; --per-example adds items x neurons x 2 x 4 on the CPU.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:
    from rich.table import Table

    from neuronscope.data.schema import QADataset
    from neuronscope.experiment.config import ExperimentConfig

BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
SCORING_BATCH = 256  # scoring.option_scores' default batch of sequences
GiB = 2**30


@dataclass(frozen=True)
class Shape:
    """What the estimates need from a config; `n_params` is exact (counted on the meta device)."""

    n_params: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    gated: bool  # gate/up/down MLP (Llama) rather than in/out (GPT-2)
    mlp_params_per_layer: int
    architecture: str = ""

    @property
    def neurons_per_layer(self) -> int:
        """Hooked coordinates per block: q, k, v, o and gate, up, down (or in, out)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        mlp = 2 * self.intermediate + self.hidden if self.gated else self.intermediate + self.hidden
        return q + 2 * kv + self.hidden + mlp

    @property
    def n_neurons(self) -> int:
        return self.layers * self.neurons_per_layer

    @property
    def max_width(self) -> int:
        return max(self.intermediate, self.heads * self.head_dim, self.hidden)


def model_shape(ckpt: str | Path) -> Shape:
    """The Shape of a checkpoint directory (or a config.json path), from the config only."""
    from transformers import AutoConfig

    path = Path(ckpt)
    cfg_file = path if path.is_file() else path / "config.json"
    if not cfg_file.is_file():
        raise NeuronscopeError(f"{path}: no config.json to plan from")
    try:
        config = AutoConfig.from_pretrained(cfg_file.parent, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise NeuronscopeError(f"{cfg_file}: cannot read as an HF config ({str(e).splitlines()[0]})") from None
    return shape_from_config(config, str(cfg_file))


def shape_from_config(config: Any, where: str = "config") -> Shape:
    """The Shape of an HF config object: the architecture built on the meta device, so no memory is allocated."""
    from transformers import AutoModelForCausalLM

    from neuronscope.models.families import spec_for

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError) as e:
        raise NeuronscopeError(f"{where}: not a causal-LM config ({str(e).splitlines()[0]})") from None
    n_params = sum(p.numel() for p in model.parameters())  # parameters() lists a tied tensor once
    spec = spec_for(config)
    names = [n for n, _ in model.named_parameters()]
    layer0 = [n for n in names if spec.mlp_layer(n) == 0]
    params = dict(model.named_parameters())
    heads = config.num_attention_heads
    hidden = config.hidden_size
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    return Shape(
        n_params=n_params, hidden=hidden, layers=config.num_hidden_layers, intermediate=intermediate,
        heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or hidden // heads, vocab=config.vocab_size,
        gated=any("gate" in n for n in names), mlp_params_per_layer=sum(params[n].numel() for n in layer0),
        architecture=(config.architectures or [type(model).__name__])[0],
    )


def planned_dtype(dtype: str, device: str = "cpu", device_map: str | None = None) -> torch.dtype:
    """The dtype a run would use, without needing its device here: "auto" means bfloat16 when the run targets
    CUDA (--device cuda[:N], or auto / --device-map on a machine with a GPU), float32 otherwise."""
    from neuronscope.models.device import DTYPES

    text = dtype.strip().lower()
    if text != "auto":
        if text not in DTYPES:
            raise NeuronscopeError(f"--dtype must be auto, float32, bfloat16 or float16, got {dtype!r}")
        return DTYPES[text]
    gpu = device.startswith("cuda") or ((device == "auto" or device_map is not None) and torch.cuda.is_available())
    return torch.bfloat16 if gpu else torch.float32


@dataclass(frozen=True)
class DataCounts:
    """Item counts a plan needs, and the longest sequence (tokens) of any prompt + option."""

    forget: int  # forget base questions (unlearned; FS)
    retain: int  # retain base questions (GD-style retain loss)
    rs: int  # retain + test base questions (RS)
    evaluated: int  # questions scored by the final evaluation (all kinds, all splits, utility)
    options: int  # options per question (3 in the embedded world)
    seq_len: int

    @classmethod
    def from_dataset(cls, ds: QADataset, tokenizer: Any | None = None, seq_len: int | None = None) -> DataCounts:
        from neuronscope.batching import encode

        everything = [it for s in ds.splits for it in ds.items(s, None)] + list(ds.utility)
        if seq_len is None:
            if tokenizer is None:
                raise NeuronscopeError("give --seq-len (no tokenizer to measure the data with)")
            longest = max((o for it in everything for o in (it.options or [it.answer])), key=len, default="")
            prompt = max((it.question for it in everything), key=len, default="")
            seq_len = encode(tokenizer, [prompt], [longest or " "]).input_ids.shape[1]
        options = max((len(it.options) for it in everything), default=3) or 3
        return cls(forget=len(ds.items("forget", "base")), retain=len(ds.items("retain", "base")),
                   rs=len(ds.items("retain", "base")) + len(ds.items("test", "base")), evaluated=len(everything),
                   options=options, seq_len=seq_len)


@dataclass
class Plan:
    """Memory rows (stage, item, bytes, how) and count rows (what, number, how) of one command or grid."""

    title: str
    memory: list[tuple[str, str, int, str]] = field(default_factory=list)
    counts: list[tuple[str, int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, stage: str, item: str, nbytes: float, how: str) -> None:
        self.memory.append((stage, item, int(nbytes), how))

    def count(self, what: str, n: float, how: str) -> None:
        self.counts.append((what, int(n), how))

    def stage_total(self, stage: str) -> int:
        return sum(b for s, _, b, _ in self.memory if s == stage)

    def peak(self) -> int:
        """The largest stage total (stages run one after another)."""
        return max((self.stage_total(s) for s in dict.fromkeys(s for s, *_ in self.memory)), default=0)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "peak_bytes": self.peak(),
                "memory": [{"stage": s, "item": i, "bytes": b, "how": h} for s, i, b, h in self.memory],
                "counts": [{"what": w, "n": n, "how": h} for w, n, h in self.counts], "notes": self.notes}

    def tables(self) -> list[Table]:
        from rich.table import Table

        mem = Table(title=f"{self.title}: estimated memory per stage (peak {self.peak() / GiB:.2f} GiB)")
        for col, just in (("stage", "left"), ("item", "left"), ("GiB", "right"), ("how", "left")):
            mem.add_column(col, justify=just)  # type: ignore[arg-type]
        last = None
        for stage, item, nbytes, how in self.memory:
            if last is not None and stage != last:
                mem.add_row(f"[bold]{last} total[/]", "", f"[bold]{self.stage_total(last) / GiB:.2f}[/]", "")
            mem.add_row(stage, item, f"{nbytes / GiB:.3f}", how)
            last = stage
        if last is not None:
            mem.add_row(f"[bold]{last} total[/]", "", f"[bold]{self.stage_total(last) / GiB:.2f}[/]", "")
        counts = Table(title=f"{self.title}: counts")
        for col, just in (("what", "left"), ("n", "right"), ("how", "left")):
            counts.add_column(col, justify=just)  # type: ignore[arg-type]
        for what, n, how in self.counts:
            counts.add_row(what, f"{n:,}", how)
        return [mem, counts]


# --- per-sequence activation estimates (see the module docstring) ------------------------------------------------
def _attention_and_logits(s: Shape, t: int, b: int) -> tuple[int, int]:
    return s.layers * s.heads * t * t * b, t * s.vocab * (b + 8)


def training_activations(s: Shape, t: int, b: int) -> int:
    """Saved-for-backward bytes of one sequence of t tokens in a training forward (parameters need gradients)."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    attn, logits = _attention_and_logits(s, t, b)
    return s.layers * t * (4 * s.hidden + 3 * q + 3 * kv + 4 * s.intermediate) * b + attn + logits


def attribution_activations(s: Shape, t: int, b: int) -> int:
    """Bytes of one sequence in the attribution pass (parameters frozen): hooked outputs and what backward needs."""
    attn, logits = _attention_and_logits(s, t, b)
    return s.layers * t * (s.neurons_per_layer + 2 * s.hidden + s.intermediate) * b + attn + logits


def __getattr__(name: str) -> object:
    if name == "REFERENCE_METHODS":  # asked of the registry when read: a new method is counted without an edit here
        from neuronscope.unlearn import METHODS

        return tuple(n for n, cls in METHODS.items() if cls.needs_reference)
    raise AttributeError(name)


def _method(method: str) -> Any:
    """The registered method class (an unknown name is an error, never planned with defaults)."""
    from neuronscope.unlearn import get_method

    return get_method(method)


def trainable_params(s: Shape, method: str, rmu_trainable: int | None = None,
                     settings: Mapping[str, Any] | None = None) -> int:
    """Parameters the optimiser updates, as the method counts them (RMU: the MLPs of its trainable blocks).

    `settings` are the method's settings by public key; `rmu_trainable` is the older way to give that one."""
    from neuronscope.unlearn.base import settings_for

    cls = _method(method)
    args = dict(settings or {}) | ({"rmu_trainable": rmu_trainable} if rmu_trainable is not None else {})
    st = settings_for(cls.settings_cls, args)
    st.check()
    return int(cls.trainable_count(s, st))


def replayed_steps(stride: int, check_every: int) -> int:
    """The most steps a stride back-off replays: those since the last scored check (none when every check is)."""
    return stride * check_every if stride > 1 else 0


def plan_unlearn(s: Shape, dtype: torch.dtype, method: str, batch_size: int, counts: DataCounts, max_steps: int,
                 lr_trials: int = 1, check_every: int = 1, rs_every: int = 10,
                 settings: Mapping[str, Any] | None = None, plan: Plan | None = None, stage: str = "unlearn",
                 stride: int = 1) -> Plan:
    """Memory of one unlearning run and its step / scoring counts (max_steps is an upper bound: it stops at FS).
    `stride` > 1: the stop check's kept state, fewer scored checks and at most stride - 1 replayed steps.

    Everything method-specific is asked of the registered method: its trainable count, whether it holds a reference
    copy, its sequences per step and its extra state. `settings`: the method's settings by public key."""
    from neuronscope.unlearn.base import settings_for

    cls = _method(method)
    st = settings_for(cls.settings_cls, dict(settings or {}))
    st.check()
    plan = plan or Plan(f"unlearn {method}")
    b = BYTES[dtype]
    train = int(cls.trainable_count(s, st))
    plan.add(stage, "weights", s.n_params * b, f"{s.n_params:,} parameters x {b} B")
    plan.add(stage, "gradients", train * b, f"{train:,} trainable x {b} B")
    plan.add(stage, "AdamW states", 2 * train * b, f"exp_avg + exp_avg_sq in {str(dtype).removeprefix('torch.')}")
    if cls.needs_reference:
        plan.add(stage, "reference copy", s.n_params * b, f"{method} clones the model before training")
    for item, nbytes, how in cls.extra_state(s, st, train, b, max_steps):
        plan.add(stage, item, nbytes, how)
    if stride > 1:
        plan.add(stage, "stop-check state (stride)", 3 * train * b,
                 f"trainable weights + AdamW states kept at the last scored check (stride {stride})")
    seqs = cls.sequences_per_step * batch_size
    plan.add(stage, "activations", seqs * training_activations(s, counts.seq_len, b),
             f"{seqs} sequences x {counts.seq_len} tokens (estimate)")
    replay = replayed_steps(stride, check_every)
    steps = (max_steps + replay) * lr_trials
    if setup := cls.setup_passes(counts.forget, counts.retain, batch_size):
        plan.count(f"{stage}: forward + backward passes before training", setup * lr_trials,
                   f"{method}'s set-up over {counts.forget} forget + {counts.retain} retain questions")
    replayed = f" + {replay} replayed" if replay else ""
    plan.count(f"{stage}: optimiser steps (at most)", steps,
               f"{max_steps} max_steps{replayed} x {lr_trials} lr trial(s)")
    checks = max_steps // check_every
    if stride > 1:  # every stride-th check point, then each one of the replay
        checks = -(-checks // stride) + stride
    checks *= lr_trials
    fs = checks * counts.forget * counts.options
    rs = (max_steps // rs_every if rs_every else 0) * lr_trials * counts.rs * counts.options
    final = lr_trials * counts.evaluated * counts.options
    plan.count(f"{stage}: sequences scored (at most)", fs + rs + final,
               f"FS checks {fs:,} + RS logs {rs:,} + final evaluation {final:,}")
    plan.count(f"{stage}: scoring forward passes (at most)", math.ceil((fs + rs + final) / SCORING_BATCH),
               f"batches of {SCORING_BATCH}")
    return plan


def plan_attack(s: Shape, dtype: torch.dtype, batch_size: int, counts: DataCounts, steps: int, runs: int,
                eval_every: int, plan: Plan | None = None, stage: str = "attack", keep_original: bool = True) -> Plan:
    """Memory of one attack (full fine-tuning) and the counts over `runs` (seeds x configs [x models]).

    `keep_original`: the CLI keeps the loaded checkpoint and trains a clone per run; the grid loads each afresh.
    """
    plan = plan or Plan("attack")
    b = BYTES[dtype]
    if keep_original:
        plan.add(stage, "original (kept for the next run)", s.n_params * b, "the attacked checkpoint")
    plan.add(stage, "model being trained", s.n_params * b, "a fresh copy per run")
    plan.add(stage, "gradients + AdamW states", 3 * s.n_params * b, "grad, exp_avg, exp_avg_sq")
    plan.add(stage, "activations", batch_size * training_activations(s, counts.seq_len, b),
             f"{batch_size} sequences x {counts.seq_len} tokens (estimate)")
    plan.count(f"{stage}: optimiser steps", steps * runs, f"{steps} steps x {runs} run(s)")
    evals = (steps // eval_every + 1) * runs * counts.forget * counts.options
    plan.count(f"{stage}: sequences scored", evals, f"FS every {eval_every} steps on {counts.forget} forget questions")
    return plan


def plan_attribute(s: Shape, dtype: torch.dtype, batch_size: int, n_items: int, seq_len: int,
                   per_example: bool = False, with_base: bool = False, patching: bool = False,
                   plan: Plan | None = None, stage: str = "attribute") -> Plan:
    """Memory of `neuronscope attribute`: the bound of docs/attribution.md, and its pass counts."""
    plan = plan or Plan("attribute")
    b = BYTES[dtype]
    n_models = 2 if with_base else 1
    plan.add(stage, "weights", n_models * s.n_params * b, f"{n_models} model(s) x {s.n_params:,} x {b} B")
    plan.add(stage, "one batch's pass", batch_size * attribution_activations(s, seq_len, b),
             f"{batch_size} sequences x {seq_len} tokens: hooked outputs, attention, logits (estimate)")
    plan.add(stage, "one projection's gradient", batch_size * seq_len * s.max_width * (b + 12),
             "g, h and g in float32, their product (transient)")
    plan.add(stage, "accumulators", 3 * s.n_neurons * 8 + batch_size * s.n_neurons * 2 * 4,
             f"3 float64 sums x {s.n_neurons:,} neurons + the batch's max/min")
    if per_example:
        plan.add(stage, "per-example max/min (CPU)", n_models * n_items * s.n_neurons * 2 * 4,
                 f"{n_items} items x {s.n_neurons:,} neurons x 2 x 4 B: grows with items")
    batches = math.ceil(n_items / batch_size)
    plan.count(f"{stage}: forward + backward passes", n_models * batches, f"{batches} batch(es) x {n_models} model(s)")
    if patching:
        pb = max(batch_size, 3) * 3
        plan.add(f"{stage}: patching", "weights", 2 * s.n_params * b, "base and unlearned")
        plan.add(f"{stage}: patching", "base activation cache", pb * seq_len * s.n_neurons * b,
                 f"{pb} sequences x {seq_len} tokens x every neuron")
    return plan


def plan_grid(cfg: ExperimentConfig, s: Shape, dtype: torch.dtype, counts: DataCounts) -> Plan:
    """Counts and memory of `neuronscope run CONFIG`: every method (its max_steps and lr grid), every attack config
    on every unlearned model, attribution and lens, from the ExperimentConfig fields alone."""
    from neuronscope.unlearn.base import LOOP_FIELDS, RUN_ARGS, UnlearnConfig

    plan = Plan(f"grid {cfg.name}")
    default = UnlearnConfig()
    attacks = cfg.attacks.configs()
    total_steps = 0
    for method in cfg.unlearn.methods:
        p = cfg.unlearn.params_for(method)
        trials = len(p.get("lr_grid", ())) or 1
        max_steps = int(p.get("max_steps", default.max_steps))
        settings = {k: v for k, v in p.items() if k not in LOOP_FIELDS and k not in RUN_ARGS}
        stride, check_every = int(p.get("stride", 1)), int(p.get("check_every", default.check_every))
        plan_unlearn(s, dtype, method, int(p.get("batch_size", default.batch_size)), counts, max_steps, trials,
                     check_every, int(p.get("rs_every", default.rs_every)), settings, plan=plan,
                     stage=f"unlearn {method}", stride=stride)
        total_steps += (max_steps + replayed_steps(stride, check_every)) * trials
    models = len(cfg.unlearn.methods) + int(cfg.oracle)  # attacked and attributed: the unlearned ones, the oracle
    if attacks:
        a = attacks[0]
        plan_attack(s, dtype, a.batch_size, counts, a.steps, len(attacks) * models, a.eval_every, plan=plan,
                    stage="attacks", keep_original=False)
        total_steps += a.steps * len(attacks) * models
    if cfg.attribution:
        kept = any(a.kind == cfg.attribution_attack for a in attacks)
        pairs = models * (2 if kept else 1)  # each model against the base, and against its attacked self
        plan_attribute(s, dtype, 16, counts.forget, counts.seq_len, with_base=True, patching=cfg.patching,
                       plan=plan, stage="attribution")
        plan.count("attribution: runs", pairs, f"{models} model(s) x (vs base{' + vs attacked' if kept else ''})")
        if cfg.patching:
            also_attacked = kept and cfg.patch_attacked
            plan.count("attribution: patching tests", models * (2 if also_attacked else 1),
                       f"{models} model(s) x (vs base{' + vs attacked' if also_attacked else ''})")
    if cfg.lens:
        plan.count("lens: models probed", models + 1, "the unlearned ones, the oracle, the base")
    plan.count("grid: optimiser steps (at most)", total_steps,
               f"unlearning + {len(attacks)} attack configs x {models} models")
    if cfg.base_ckpt is None:
        plan.notes.append("the toy base (and oracle) are trained by the grid: not counted")
    return plan


def shape_rows(s: Shape) -> dict[str, dict[str, Any]]:
    """The model facts a plan rests on, for a metrics table."""
    return {s.architecture or "model": {"parameters": f"{s.n_params:,}", "layers": s.layers, "hidden": s.hidden,
                                        "neurons": f"{s.n_neurons:,}", "vocab": s.vocab}}


def lr_trials(grid: Sequence[float] | None) -> int:
    return len(set(grid)) if grid else 1

"""Neuron attribution A = h * dP(y|x)/dh at TransformerBridge's projection hook points (docs/method.md section 2).

A neuron is one scalar coordinate of a hooked projection output (attention q, k, v, o; MLP gate, up, down, or in,
out without a gate; see `neuronscope.models.projections`), named by its bridge hook; the hooks sit on the HF modules
behind those hook points where the family spec names one module per projection (`pass_sites`: the same tensors,
without the bridge's wrappers). Per batch there is exactly one forward pass (with hooks
that keep a reference to each projection output and register a gradient hook on it) and one backward pass. Each
gradient hook forms A = h * dP/dh for its projection and immediately reduces it over the chosen token positions to
the per-example max (positive influence) and min (negative influence), so what survives the pass is O(batch x
neurons), never O(batch x positions x neurons).

The backward pass differentiates sum over the batch of P(y|x): examples do not interact (right padding, causal
attention, per-token norms), so each example's gradient is its own. It runs with respect to a fresh leaf at the
token embedding only, so no parameter gradient is ever computed or accumulated: `.grad` of the model is untouched
and parameters may be frozen.

Positions (which k the max/min run over; padding never counts):
- "prompt" (default): the prompt tokens, <bos> included. The question is where the model must retrieve the fact;
  answer positions see the gold answer itself (teacher forcing).
- "all": prompt tokens plus every answer token except the last. The last answer token's activations cannot reach
  any logit that scores the answer under causal attention, so its A is identically 0; counting it would only
  clip max at 0 and min at 0.
- "last": the last prompt token only (the position that predicts the first answer token).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from neuronscope.batching import Batch, encode
from neuronscope.data.schema import QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path
from neuronscope.models.families import spec_for
from neuronscope.models.handle import Model
from neuronscope.models.projections import Projection, projections
from neuronscope.scoring import answer_logprobs
from neuronscope.sparse_logits import SPARSE_MIN_VOCAB, answer_logprobs_after, first_answer_position

Positions = Literal["prompt", "all", "last"]
POSITIONS: tuple[str, ...] = ("prompt", "all", "last")
Target = Literal["p", "logp"]
TARGETS: tuple[str, ...] = ("p", "logp")
Progress = Callable[[int, int], None]  # (items done, items total)


def position_mask(batch: Batch, positions: str = "prompt") -> Bool[Tensor, "batch pos"]:
    """Which token positions the max/min over k runs over (see the module docstring)."""
    if positions == "prompt":
        return batch.prompt_mask.clone()
    if positions == "all":
        mask = batch.prompt_mask | batch.answer_mask
        last = batch.token_mask.long().cumsum(-1).argmax(-1)  # index of each row's last real token
        mask[torch.arange(len(batch)), last] = False
        return mask | batch.prompt_mask
    if positions == "last":
        mask = torch.zeros_like(batch.prompt_mask)
        last_prompt = batch.prompt_mask.long().sum(-1) - 1
        mask[torch.arange(len(batch)), last_prompt] = True
        return mask
    raise NeuronscopeError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")


def reduce_positions(
    a: Float[Tensor, "batch pos neuron"], mask: Bool[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch neuron"], Float[Tensor, "batch neuron"]]:
    """Per-example max_k and min_k of A over the positions in `mask` (every row needs at least one)."""
    if not bool(mask.any(-1).all()):
        raise ValueError("every example needs at least one attributed position")
    m = mask.unsqueeze(-1)
    a_max = a.masked_fill(~m, float("-inf")).amax(1)
    a_min = a.masked_fill(~m, float("inf")).amin(1)
    return a_max, a_min


@dataclass
class NeuronScores:
    """Per-neuron sums over items of max_k A, max(max_k A, 0) and min_k A (float64, on the CPU), and, only when
    kept (`keep_examples`), the per-example max_k A and min_k A: O(items x neurons), the one part that grows."""

    projections: list[Projection]
    max: dict[str, Float[Tensor, "example neuron"]]  # keyed by hook name; empty when examples were not kept
    min: dict[str, Float[Tensor, "example neuron"]]
    item_ids: list[str]
    positions: str
    meta: dict = field(default_factory=dict)
    sum_max: dict[str, Float[Tensor, " neuron"]] | None = None  # None: summed from the per-example tensors
    sum_max_pos: dict[str, Float[Tensor, " neuron"]] | None = None
    sum_min: dict[str, Float[Tensor, " neuron"]] | None = None

    def __post_init__(self) -> None:
        if self.sum_max is None:
            self.sum_max = {h: v.double().sum(0) for h, v in self.max.items()}
            self.sum_max_pos = {h: v.double().clamp(min=0).sum(0) for h, v in self.max.items()}
            self.sum_min = {h: v.double().sum(0) for h, v in self.min.items()}

    @property
    def n_neurons(self) -> int:
        return sum(self.sum_max[p.hook].shape[0] for p in self.projections)  # type: ignore[index]

    @property
    def has_examples(self) -> bool:
        return all(p.hook in self.max for p in self.projections)

    def stacked(self) -> tuple[Float[Tensor, "example neuron"], Float[Tensor, "example neuron"]]:
        """All neurons side by side, in `neuron_index` order (per example: needs keep_examples)."""
        if not self.has_examples:
            raise NeuronscopeError("per-example attributions were not kept (attribution_scores(keep_examples=True))")
        return (torch.cat([self.max[p.hook] for p in self.projections], 1),
                torch.cat([self.min[p.hook] for p in self.projections], 1))

    def means(self) -> tuple[Float[Tensor, " neuron"], Float[Tensor, " neuron"], Float[Tensor, " neuron"]]:
        """Means over items of max_k A, max(max_k A, 0) and min_k A, all neurons in `neuron_index` order."""
        n = max(len(self.item_ids), 1)
        return tuple(torch.cat([acc[p.hook] for p in self.projections]) / n  # type: ignore[return-value]
                     for acc in (self.sum_max, self.sum_max_pos, self.sum_min))  # type: ignore[union-attr]

    def neuron_index(self) -> pd.DataFrame:
        """layer, module, neuron for each column of `stacked()`."""
        widths = {p.hook: self.sum_max[p.hook].shape[0] for p in self.projections}  # type: ignore[index]
        return neuron_index(self.projections, widths)

    def table(self, per_example: bool = False) -> pd.DataFrame:
        """The tidy table (see `attribute_neurons`)."""
        index = self.neuron_index()
        if per_example:
            a_max, a_min = self.stacked()
            n, k = a_max.shape
            out = pd.DataFrame({
                "item": pd.Categorical(np.repeat(np.asarray(self.item_ids, dtype=object), k)),
                "layer": np.tile(index["layer"].to_numpy(), n),
                "module": pd.Categorical(np.tile(index["module"].to_numpy(), n)),
                "neuron": np.tile(index["neuron"].to_numpy(), n),
                "max": a_max.reshape(-1).numpy(),
                "min": a_min.reshape(-1).numpy(),
            })
        else:
            mean_max, mean_max_pos, mean_min = self.means()
            out = index.copy()
            out["max"] = mean_max.float().numpy()
            out["max_pos"] = mean_max_pos.float().numpy()
            out["min"] = mean_min.float().numpy()
            out["n"] = len(self.item_ids)
        out.attrs = {"positions": self.positions, "n_items": len(self.item_ids), **self.meta}
        return out


def neuron_index(projs: Sequence[Projection], widths: dict[str, int]) -> pd.DataFrame:
    layers, modules, neurons = [], [], []
    for p in projs:
        w = widths[p.hook]
        layers.append(np.full(w, p.layer, dtype=np.int32))
        modules.append(np.full(w, p.module, dtype=object))
        neurons.append(np.arange(w, dtype=np.int32))
    return pd.DataFrame({
        "layer": np.concatenate(layers) if layers else np.zeros(0, np.int32),
        "module": pd.Categorical(np.concatenate(modules) if modules else np.zeros(0, object)),
        "neuron": np.concatenate(neurons) if neurons else np.zeros(0, np.int32),
    })


@contextlib.contextmanager
def frozen_parameters(model: Model) -> Iterator[None]:
    """Every parameter requires_grad=False for the duration; the previous flags are restored.

    The backward pass starts at a leaf at the token embedding, so no parameter gradient is needed; with parameters
    still requiring grad, autograd would also save each projection's *input* for a weight gradient never computed
    (about as much memory again as the hooked outputs). The bridge shares the HF model's Parameter objects, so
    freezing `model.hf` freezes both.
    """
    flags = [(p, p.requires_grad) for p in model.hf.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(model: Model, bridge: bool = True) -> Iterator[None]:
    """Dropout off for the duration (GPT-2 has dropout); the modules that were training are set back.

    Only modules in training mode are touched: `nn.Module.eval()` sets a flag on every module of both trees,
    which on a small model costs more than the attribution pass itself. `bridge=False` leaves the bridge's tree
    alone, for a pass that runs the HF model only (walking it cost ~3% of the toy's pass)."""
    training = [m for mod in ((model.hf, model.bridge) if bridge else (model.hf,)) for m in mod.modules()
                if m.training]
    for m in training:
        m.training = False
    try:
        yield
    finally:
        for m in training:
            m.training = True


def attribution_scores(
    model: Model,
    items: Sequence[QAItem],
    positions: str = "prompt",
    batch_size: int = 16,
    progress: Progress | None = None,
    keep_examples: bool = True,
    target: str = "p",
) -> NeuronScores:
    """max_k / min_k of A = h * dP(y|x)/dh for every neuron; one forward + one backward per batch.

    `target="logp"` differentiates log P(y|x) instead: A / P per item. The P target (the paper's) shrinks every
    attribution with P itself, so after unlearning it mostly measures how far P fell (docs/verdict.md).

    Streams: each batch is reduced into per-neuron sums on the model's device (float64; float32 on mps, which has
    no float64) and freed, so memory is weights + one batch's pass + O(neurons), whatever the number of items.
    `keep_examples` also keeps every example's max and min on the CPU (O(items x neurons): needed for
    `per_example` tables and `stacked()`).
    """
    if not items:
        raise NeuronscopeError("no items to attribute (the selected split is empty)")
    if positions not in POSITIONS:
        raise NeuronscopeError(f"positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    if target not in TARGETS:
        raise NeuronscopeError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    bridge = model.bridge
    projs = projections(bridge)
    if not projs:
        raise NeuronscopeError(f"{model.source}: the bridge exposes no projection hooks to attribute")
    acc_dtype = torch.float32 if model.device.type == "mps" else torch.float64
    maxes: dict[str, list[Tensor]] = {p.hook: [] for p in projs}
    mins: dict[str, list[Tensor]] = {p.hook: [] for p in projs}
    sums: dict[torch.device, Tensor] = {}  # per device (a device map spreads layers): [max, max_pos, min] x neuron
    layout: dict[torch.device, list[tuple[str, int]]] = {}  # which hook's neurons each device's columns hold
    sites = pass_sites(model, projs)
    pass_ = _Pass(sites)
    with eval_mode(model, bridge=sites.on == "bridge"), frozen_parameters(model), torch.enable_grad(), pass_:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = encode(model.tokenizer, [it.question for it in chunk], [it.answer for it in chunk])
            out = pass_.run(batch.to(model.device), positions, target)
            if not layout:
                layout = {d: [(h, out[h][0].shape[1]) for h in hooks] for d, hooks in _by_device(out).items()}
            for device, hooks in _by_device(out).items():
                # every projection of a device reduced at once: the same per-column sums, one kernel each
                a_max = torch.cat([out[h][0] for h in hooks], 1)
                a_min = torch.cat([out[h][1] for h in hooks], 1)
                part = torch.stack([a_max.to(acc_dtype).sum(0), a_max.clamp(min=0).to(acc_dtype).sum(0),
                                    a_min.to(acc_dtype).sum(0)])
                if device in sums:
                    sums[device] += part
                else:
                    sums[device] = part
            if keep_examples:
                for hook, (a_max, a_min) in out.items():
                    maxes[hook].append(a_max.cpu())
                    mins[hook].append(a_min.cpu())
            if progress is not None:
                progress(min(start + batch_size, len(items)), len(items))
    per_hook = _split_sums(sums, layout)
    return NeuronScores(
        projections=projs,
        max={h: torch.cat(v) for h, v in maxes.items()} if keep_examples else {},
        min={h: torch.cat(v) for h, v in mins.items()} if keep_examples else {},
        item_ids=[it.id for it in items],
        positions=positions,
        meta={"target": target},
        sum_max={h: v[0].double().cpu() for h, v in per_hook.items()},
        sum_max_pos={h: v[1].double().cpu() for h, v in per_hook.items()},
        sum_min={h: v[2].double().cpu() for h, v in per_hook.items()},
    )


def _by_device(out: dict[str, tuple[Tensor, Tensor]]) -> dict[torch.device, list[str]]:
    groups: dict[torch.device, list[str]] = {}
    for hook, (a_max, _) in out.items():
        groups.setdefault(a_max.device, []).append(hook)
    return groups


def _split_sums(sums: dict[torch.device, Tensor], widths: dict[torch.device, list[tuple[str, int]]]
                ) -> dict[str, Tensor]:
    """Per-device (3, neuron) sums cut back into one (3, width) block per hook."""
    out: dict[str, Tensor] = {}
    for device, total in sums.items():
        start = 0
        for hook, width in widths[device]:
            out[hook] = total[:, start:start + width]
            start += width
    return out


@dataclass(frozen=True)
class PassSites:
    """Where one attribution pass hooks, and how it runs the model: `outputs` maps each projection's bridge hook
    name to the module whose output it is; the token embedding's output is swapped for a leaf (where the backward
    pass stops); `head` (a large vocabulary only) is the module whose input is the final hidden state, cut to the
    answer-predicting positions; `forward` maps input ids to logits."""

    outputs: dict[str, torch.nn.Module]
    embed: torch.nn.Module
    head: torch.nn.Module | None
    forward: Callable[[Tensor], Tensor]
    on: str  # "hf" or "bridge": which tree the modules belong to


def pass_sites(model: Model, projs: Sequence[Projection], tree: str | None = None, full_logits: bool = False
               ) -> PassSites:
    """The HF model's own linear modules where the family spec names one module per projection, else the
    bridge's hook points (a fused q/k/v, which the bridge splits; a family without a spec).

    A bridge hook point returns its input unchanged, and the input is the HF module's output, so both see the
    same tensors and give the same attributions bit for bit (tests/test_attribution_stream.py); the HF modules
    skip the bridge's per-module wrappers, which on the toy cost ~15% of the pass (benchmarks/bench_attribution.py).
    The head only from the first answer-predicting position on, for a large vocabulary (where the head is a
    large share of the pass). Below it the full logits are kept: with fewer rows the head's matrix products may
    round differently (measured on the toy at batches of 1-3: up to 6e-8), and toy numbers stay bit-exact.
    `tree="bridge"` forces the bridge's hook points (the tests compare the two); `full_logits` leaves the head
    whole (patching scores every position it compares)."""
    spec = spec_for(model)
    large = not full_logits and getattr(model.hf.config, "vocab_size", 0) >= SPARSE_MIN_VOCAB
    unfused = spec.hf_projections and not spec.fused_qkv and all(p.module in spec.hf_projections for p in projs)
    if unfused and tree != "bridge":
        hf = model.hf
        blocks = spec.decoder_blocks(hf)
        outputs = {p.hook: blocks[p.layer].get_submodule(spec.hf_projections[p.module]) for p in projs}
        return PassSites(outputs, hf.get_input_embeddings(), hf.get_output_embeddings() if large else None,
                         lambda ids: hf(input_ids=ids, use_cache=False).logits, "hf")
    bridge = model.bridge
    points = bridge.hook_dict
    head = points[spec.unembed_hook] if large and spec.unembed_hook in points else None
    return PassSites({p.hook: points[p.hook] for p in projs}, points[spec.embed_hook_name(bridge)], head,
                     bridge, "bridge")


class _Pass:
    """One forward + one backward per batch, with torch hooks straight on the modules of `PassSites`.

    The hooks are registered once per `attribution_scores` call (not per batch through `run_with_hooks`, whose
    bookkeeping costs more than the toy model's whole pass). What the output hooks see is the projection's output
    (TransformerBridge's hook before its per-head reshape, flattened back anyway: a neuron is one coordinate). The
    token-embedding hook swaps in a fresh leaf, where the backward pass stops: no parameter gradient is computed.
    """

    def __init__(self, sites: PassSites):
        self.sites = sites
        self.first = 0  # the first answer-predicting position of this batch
        self.out: dict[str, tuple[Tensor, Tensor]] = {}
        self.leaf: list[Tensor] = []
        self.bias: Tensor | None = None  # -0.0 where A is reduced over, -inf elsewhere, this batch
        self.sign: Tensor | None = None  # 1 where A is reduced over, -1 elsewhere
        self.span = (0, 0)  # [first, last + 1) of the positions any row of this batch attributes
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _Pass:
        sites = self.sites
        self._handles = [sites.embed.register_forward_hook(self._make_leaf)]
        self._handles += [module.register_forward_hook(self._capture(hook)) for hook, module in sites.outputs.items()]
        if sites.head is not None:
            self._handles.append(sites.head.register_forward_pre_hook(self._from_first))
        return self

    def _from_first(self, module: object, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        # the head only where an answer token is predicted: the other positions' logits never reach P(y|x)
        return (args[0][:, self.first:-1].contiguous(), *args[1:])

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _make_leaf(self, module: object, args: object, x: Tensor) -> Tensor:
        x = x.detach().requires_grad_(True)
        self.leaf.append(x)
        return x

    def _capture(self, name: str) -> Callable[[object, object, Tensor], None]:
        out = self.out

        def hook(module: object, args: object, x: Tensor) -> None:
            h = [x.detach()]  # not `x`: a hook on x that referred to x would be a reference cycle

            def on_grad(g: Tensor) -> None:
                # A = h * dP/dh over the attributed positions only (a slice: every other position is masked out
                # anyway), in float32 whatever the weights' dtype; a neuron is one coordinate. The product is
                # formed in h's own memory when h is float32: autograd has finished with h once its gradient is
                # complete (an op still needing it would fail the version check, not read a wrong value), so no
                # (batch, pos, neuron) temporary is allocated, and h is released here. Kept on the layer's device
                # (a device map spreads layers over GPUs): no synchronising copy inside the backward pass.
                lo, hi = self.span
                act = h.pop()[:, lo:hi]
                a = (act.mul_(g[:, lo:hi]) if act.dtype == torch.float32 else act.float() * g[:, lo:hi].float()
                     ).flatten(2)
                # Masked positions to -inf for the max, then to +inf for the min, by broadcast arithmetic (several
                # times faster than masked_fill): + (-0.0) and * 1 leave every attributed value exactly as it is.
                bias, sign = self.bias.to(a.device), self.sign.to(a.device)  # type: ignore[union-attr]
                a_max = a.add_(bias).amax(1)
                a_min = a.mul_(sign).amin(1)
                out[name] = (a_max, a_min)

            x.register_hook(on_grad)

        return hook

    def run(self, batch: Batch, positions: str, target: str) -> dict[str, tuple[Tensor, Tensor]]:
        mask = position_mask(batch, positions)
        if not bool(mask.any(-1).all()):
            raise ValueError("every example needs at least one attributed position")
        cols = mask.any(0).nonzero()
        self.span = (int(cols[0]), int(cols[-1]) + 1)  # the positions any row attributes
        attributed = mask[:, self.span[0]:self.span[1]].unsqueeze(-1)
        self.bias = torch.where(attributed, -0.0, float("-inf"))  # -0.0: x + (-0.0) == x, signed zeros too
        self.sign = torch.where(attributed, 1.0, -1.0)  # -inf -> +inf at masked positions
        self.out.clear()
        self.leaf.clear()
        self.first = first_answer_position(batch)
        logits = self.sites.forward(batch.input_ids)
        on = batch.to(logits.device)  # logits sit on the last layer's device
        logp = (answer_logprobs(logits, on) if self.sites.head is None
                else answer_logprobs_after(logits, on, self.first))
        total = logp.sum() if target == "logp" else logp.exp().sum()
        torch.autograd.grad(total, self.leaf)
        missing = [hook for hook in self.sites.outputs if hook not in self.out]
        if missing:  # a projection with no path to the answer (never expected in a causal LM)
            raise RuntimeError(f"no gradient reached {', '.join(missing)}")
        result = {hook: self.out[hook] for hook in self.sites.outputs}
        self.out.clear()
        return result


def attribute_neurons(
    model: Model,
    items: Sequence[QAItem],
    positions: str = "prompt",
    batch_size: int = 16,
    per_example: bool = False,
    progress: Progress | None = None,
    target: str = "p",
) -> pd.DataFrame:
    """The attribution table of one model on `items`.

    Aggregated (default), one row per neuron: layer, module, neuron, `max` = mean over items of max_k A,
    `max_pos` = mean over items of max(max_k A, 0) (what D+ needs), `min` = mean over items of min_k A, n.
    Per example: one row per (item, neuron) with `max` and `min`.
    """
    scores = attribution_scores(model, items, positions, batch_size, progress, keep_examples=per_example,
                                target=target)
    return scores.table(per_example=per_example)


def aggregate(per_example: pd.DataFrame) -> pd.DataFrame:
    """A per-example table reduced to the aggregated schema (means over items)."""
    g = per_example.assign(max_pos=per_example["max"].clip(lower=0)).groupby(
        ["layer", "module", "neuron"], sort=False, observed=True)
    out = g.agg(max=("max", "mean"), max_pos=("max_pos", "mean"), min=("min", "mean"), n=("max", "size"))
    out = out.reset_index()
    out.attrs = dict(per_example.attrs)
    return out


def save_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Atomically write a table as parquet (.parquet) or CSV (.csv)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            raise NeuronscopeError(f"{path}: tables are written as .parquet or .csv")
    return path


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by `save_table`."""
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: table not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise NeuronscopeError(f"{path}: tables are read from .parquet or .csv")

"""A causal test of hiding: patch the unlearned model's top neurons back to the base model's values.

If unlearning hid the knowledge behind spurious neurons with new negative influence, restoring just those neurons
(the top-m by D-) to their pre-unlearning activations should bring forget accuracy back; if it erased the
knowledge, restoring them should not. The top-m by D+ (neurons that lost positive influence) and m random neurons
(seeded) are the comparisons. Recovery curves give forget accuracy (3-option multiple choice, as
`neuronscope.scoring.multiple_choice_correct`: sum of answer-token log-probabilities, ties count as wrong) as m
grows.

Patching hooks the same projection outputs attribution reads (`pass_sites`: the HF modules behind the
TransformerBridge hook points where the family names them, else the hook points). Base activations are taken on the
very sequences scored (question + each option, batch by batch), at every token position. On a large vocabulary
(`prefix_scoring.shared_prefix_ok`, with the HF modules hooked) each question runs once and its options on its cache,
as scoring does there: the base's activations are read in both passes and patched into the same passes of the
unlearned model, every token still patched; the log-likelihoods equal the one-sequence path's up to float rounding
(tests/test_patching.py), about twice as fast on SmolLM2 (benchmarks/bench_patching.py). The toy keeps the
one-sequence path bit for bit. Patching *all* neurons
of every projection reproduces the base model exactly when the parameters outside the blocks (token and position
embeddings, final norm, unembedding) are equal: the residual stream is the embedding plus the attention o and MLP
down outputs, all of which are then the base's. `PatchingResult.outside_blocks_equal` says whether that held.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from neuronscope.attribution.neurons import eval_mode, neuron_index, pass_sites
from neuronscope.batching import encode
from neuronscope.data.schema import QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.models.projections import Projection, projections
from neuronscope.prefix_scoring import PrefixChunk, chunk_logprobs, prefix_chunks, shared_prefix_ok
from neuronscope.scoring import answer_logprobs, fraction, gold_wins

SELECTIONS = ("d_minus", "d_plus", "random")
_BLOCK_PARAM = re.compile(r"\.(layers|h|blocks|layer)\.\d+\.")
Progress = Callable[[int, int], None]


@dataclass
class PatchingResult:
    """Recovery curves and the reference accuracies they are read against."""

    curves: pd.DataFrame  # selection, m, forget_accuracy, n_items
    base_accuracy: float  # the base model, unpatched
    unlearned_accuracy: float  # the unlearned model, unpatched (m = 0)
    all_neurons_accuracy: float  # every neuron patched
    outside_blocks_equal: bool  # embeddings, final norm, unembedding identical in both models
    n_neurons: int

    def summary(self, m: int = 100) -> dict[str, object]:
        """Accuracy at the largest grid m <= `m` per selection, next to the references."""
        c = self.curves
        at = int(c.loc[c["m"] <= m, "m"].max()) if (c["m"] <= m).any() else 0
        row = c[c["m"] == at].set_index("selection")["forget_accuracy"]
        return {"m": at, **{f"{s}_accuracy": float(row[s]) for s in row.index},
                "base_accuracy": self.base_accuracy, "unlearned_accuracy": self.unlearned_accuracy,
                "all_neurons_accuracy": self.all_neurons_accuracy,
                "outside_blocks_equal": self.outside_blocks_equal}


def default_ms(n_neurons: int) -> list[int]:
    """0, 1, 2, 5, 10, 20, 50, ... up to and including every neuron."""
    ms, scale = [0], 1
    while scale < n_neurons:
        ms += [v * scale for v in (1, 2, 5) if v * scale < n_neurons]
        scale *= 10
    return [*ms, n_neurons]


def outside_blocks_equal(a: Model, b: Model) -> bool:
    """Are all parameters outside the transformer blocks (embeddings, final norm, unembedding) identical?"""
    sa, sb = a.hf.state_dict(), b.hf.state_dict()
    outside = [k for k in sa if not _BLOCK_PARAM.search(k)]
    return all(k in sb and sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k].to(sa[k].device))
               for k in outside)


def _selection_orders(influence: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    n = len(influence)
    orders = {kind: np.argsort(-influence[kind].to_numpy(np.float64), kind="stable") for kind in ("d_minus", "d_plus")}
    orders["random"] = np.random.default_rng(seed).permutation(n)
    return orders


def _split(global_idx: np.ndarray, projs: list[Projection], widths: dict[str, int], device: torch.device
           ) -> dict[str, Tensor]:
    """Global neuron indices (table order) -> per-hook local index tensors (only hooks with any)."""
    out: dict[str, Tensor] = {}
    offset = 0
    for p in projs:
        w = widths[p.hook]
        local = global_idx[(global_idx >= offset) & (global_idx < offset + w)] - offset
        if len(local):
            out[p.hook] = torch.as_tensor(np.sort(local), dtype=torch.long, device=device)
        offset += w
    return out


@contextlib.contextmanager
def _hooked(modules: dict[str, torch.nn.Module], fn: Callable[[str, Tensor], Tensor | None]) -> Iterator[None]:
    """Forward hooks calling fn(hook name, output) on each module for the duration; a returned tensor replaces
    the output."""
    handles = [module.register_forward_hook(lambda _m, _a, x, name=name: fn(name, x))
               for name, module in modules.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def patching_curves(
    base: Model,
    unlearned: Model,
    items: Sequence[QAItem],
    influence: pd.DataFrame,
    ms: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> PatchingResult:
    """Forget accuracy of `unlearned` with its top-m neurons (by D-, by D+, random) patched to `base` values.

    `influence` is the table from `influence_variation` (neurons in projection order). `batch_size` counts option
    sequences (question + one option).
    """
    if not items:
        raise NeuronscopeError("no items for the patching test (the selected split is empty)")
    for it in items:
        if len(it.options) < 2:
            raise NeuronscopeError(f"item {it.id!r} has fewer than 2 options; multiple choice needs them")
    projs = projections(unlearned.bridge)
    if [(p.layer, p.module, p.hook) for p in projs] != [(p.layer, p.module, p.hook) for p in projections(base.bridge)]:
        raise NeuronscopeError("base and unlearned models hook different projections (not the same architecture)")
    if base.tokenizer.get_vocab() != unlearned.tokenizer.get_vocab():
        raise NeuronscopeError("base and unlearned models have different tokenizers; patching needs the same tokens")
    n = len(influence)
    ms = sorted({int(m) for m in (default_ms(n) if ms is None else ms) if 0 <= int(m) <= n})
    orders = _selection_orders(influence, seed)
    device = unlearned.device

    # one entry per distinct set of patched neurons: m = 0 and m = n are the same for every selection
    keys: dict[tuple[str, int], tuple[str, int]] = {}
    for sel in SELECTIONS:
        for m in ms:
            keys[sel, m] = ("none", 0) if m == 0 else ("all", n) if m == n else (sel, m)
    distinct = sorted(set(keys.values()), key=lambda k: (k[1], k[0]))
    if ("all", n) not in distinct:
        distinct.append(("all", n))
    if ("none", 0) not in distinct:
        distinct.insert(0, ("none", 0))

    # the projections' own modules (the HF model's where the family names them, else the bridge's hook points:
    # attribution's `pass_sites`), hooked with plain torch hooks per forward pass
    base_sites, unlearned_sites = pass_sites(base, projs, full_logits=True), pass_sites(unlearned, projs,
                                                                                      full_logits=True)
    if shared_prefix_ok(unlearned.hf) and base_sites.on == unlearned_sites.on == "hf":
        with eval_mode(base, bridge=False), eval_mode(unlearned, bridge=False):
            base_flat, patched_flat = _shared_prefix_patching(base, unlearned, items, base_sites.outputs,
                                                              unlearned_sites.outputs, projs, influence, orders,
                                                              distinct, batch_size, progress)
        return _result(base, unlearned, items, keys, ms, n, base_flat, patched_flat)
    prompts = [it.question for it in items for _ in it.options]
    answers = [o for it in items for o in it.options]
    base_logp: list[Tensor] = []
    patched_logp: dict[tuple[str, int], list[Tensor]] = {k: [] for k in distinct}
    widths: dict[str, int] | None = None
    index_sets: dict[tuple[str, int], dict[str, Tensor]] = {}

    with eval_mode(base, bridge=base_sites.on == "bridge"), eval_mode(unlearned, bridge=unlearned_sites.on == "bridge"):
        for start in range(0, len(prompts), batch_size):
            batch = encode(unlearned.tokenizer, prompts[start:start + batch_size],
                           answers[start:start + batch_size]).to(device)
            cache: dict[str, Tensor] = {}

            def keep(name: str, x: Tensor, cache: dict[str, Tensor] = cache) -> None:
                cache[name] = x.reshape(x.shape[0], x.shape[1], -1).to(device)

            with _hooked(base_sites.outputs, keep):
                logits = base_sites.forward(batch.input_ids.to(base.device))
            base_logp.append(answer_logprobs(logits.to(device), batch).cpu())
            if widths is None:
                widths = {p.hook: cache[p.hook].shape[-1] for p in projs}
                index_sets = _index_sets(projs, widths, influence, orders, distinct, device)
            for key in distinct:
                sets = index_sets[key]

                def patch(name: str, x: Tensor, sets: dict[str, Tensor] = sets,
                          cache: dict[str, Tensor] = cache) -> Tensor:
                    return _patched(x, sets[name], cache[name])

                with _hooked({h: unlearned_sites.outputs[h] for h in sets}, patch):
                    logits = unlearned_sites.forward(batch.input_ids)
                patched_logp[key].append(answer_logprobs(logits, batch).cpu())
            if progress is not None:
                progress(min(start + batch_size, len(prompts)), len(prompts))

    return _result(base, unlearned, items, keys, ms, n, torch.cat(base_logp),
                   {k: torch.cat(v) for k, v in patched_logp.items()})


def _result(base: Model, unlearned: Model, items: Sequence[QAItem], keys: dict[tuple[str, int], tuple[str, int]],
            ms: Sequence[int], n: int, base_logp: Tensor, patched_logp: dict[tuple[str, int], Tensor]
            ) -> PatchingResult:
    """The curves from every option's log-likelihood, unpatched (base) and under each distinct patch."""
    acc = {k: fraction(gold_wins(v, items)) for k, v in patched_logp.items()}
    rows = [{"selection": sel, "m": m, "forget_accuracy": acc[keys[sel, m]], "n_items": len(items)}
            for sel in SELECTIONS for m in ms]
    return PatchingResult(
        curves=pd.DataFrame(rows),
        base_accuracy=fraction(gold_wins(base_logp, items)),
        unlearned_accuracy=acc["none", 0],
        all_neurons_accuracy=acc["all", n],
        outside_blocks_equal=outside_blocks_equal(base, unlearned),
        n_neurons=n,
    )


def _index_sets(projs: list[Projection], widths: dict[str, int], influence: pd.DataFrame,
                orders: dict[str, np.ndarray], distinct: list[tuple[str, int]], device: torch.device
                ) -> dict[tuple[str, int], dict[str, Tensor]]:
    """Per distinct patch, the neurons to patch as per-hook local indices, once the hooks' widths are known; the
    influence table must list exactly the models' neurons."""
    index = neuron_index(projs, widths)
    n = len(influence)
    if len(index) != n or not (index["layer"].to_numpy() == influence["layer"].to_numpy()).all() or not (
            index["module"].astype(str).to_numpy() == influence["module"].astype(str).to_numpy()).all():
        raise NeuronscopeError("the influence table does not match the models' neurons")
    return {(sel, m): _split(np.arange(n) if sel == "all" else orders[sel][:m] if m else np.zeros(0, np.int64),
                             projs, widths, device) for sel, m in distinct}


def _patched(x: Tensor, idx: Tensor, source: Tensor) -> Tensor:
    """`x` (a projection's output) with the neurons `idx` taken from `source` (the base's, flattened per token)."""
    flat = x.reshape(x.shape[0], x.shape[1], -1).clone()
    flat[..., idx] = source[..., idx].to(flat.dtype)
    return flat.view(x.shape)


def _shared_prefix_patching(base: Model, unlearned: Model, items: Sequence[QAItem],
                            base_modules: dict[str, torch.nn.Module], unlearned_modules: dict[str, torch.nn.Module],
                            projs: list[Projection], influence: pd.DataFrame, orders: dict[str, np.ndarray],
                            distinct: list[tuple[str, int]], batch_size: int, progress: Progress | None
                            ) -> tuple[Tensor, dict[tuple[str, int], Tensor]]:
    """The patching test with each question run once and its options on its cache (`prefix_scoring`, a large
    vocabulary): the base's activations are read in each pass (the questions', then the options'), and the same
    pass of the unlearned model is patched with them. Every token is patched, as on the one-sequence path; the
    log-likelihoods equal that path's up to float rounding."""
    chunks, lengths = prefix_chunks(unlearned, [it.question for it in items], [it.options for it in items],
                                    batch_size)
    device = unlearned.device
    base_flat = torch.zeros(len(lengths))
    patched = {k: torch.zeros(len(lengths)) for k in distinct}
    index_sets: dict[tuple[str, int], dict[str, Tensor]] = {}
    done = 0
    for chunk in chunks:
        kept: dict[str, dict[str, Tensor]] = {"prompt": {}, "options": {}}

        def reading(phase: str, kept: dict[str, dict[str, Tensor]] = kept) -> contextlib.AbstractContextManager:
            def keep(name: str, x: Tensor) -> None:
                kept[phase][name] = x.reshape(x.shape[0], x.shape[1], -1).to(device)
            return _hooked(base_modules, keep)

        on_base = PrefixChunk(chunk.prompt.to(base.device), chunk.options, chunk.owner.to(base.device), chunk.rows)
        base_flat[chunk.rows] = chunk_logprobs(base.hf, on_base, reading).cpu().float()
        if not index_sets:
            widths = {p.hook: kept["prompt"][p.hook].shape[-1] for p in projs}
            index_sets = _index_sets(projs, widths, influence, orders, distinct, device)
        for key in distinct:
            sets = index_sets[key]

            def patching(phase: str, sets: dict[str, Tensor] = sets,
                         kept: dict[str, dict[str, Tensor]] = kept) -> contextlib.AbstractContextManager:
                return _hooked({h: unlearned_modules[h] for h in sets},
                               lambda name, x: _patched(x, sets[name], kept[phase][name]))

            patched[key][chunk.rows] = chunk_logprobs(unlearned.hf, chunk, patching).cpu().float()
        done += len(chunk.rows)
        if progress is not None:
            progress(done, len(lengths))
    return base_flat, patched

"""Cost of one unlearning step of every method, and of the stop check, relative to one GD step, in one run.

    .venv/bin/python benchmarks/bench_unlearn.py [--ckpt DIR --data DIR] [--steps 20] [--batch-size 16]
                                                 [--methods gd,ssiuu,...]

Without --ckpt it times the default-size toy model (untrained weights; the cost does not depend on them) on the
default world. With --ckpt (e.g. SmolLM2-135M from `neuronscope pull smollm2-135m --out DIR`) it times that model,
on --data or else the default world's questions; a few steps suffice there (`--steps 4`).
"bare" is the floor GD is held to: two plain AdamW steps, each an HF forward + backward of the model's own loss
(labels on the answer tokens) + step, one on the forget batch and one on the retain batch; its line also prints
GD / bare. Each method runs the same forget/retain batches through loss + backward + AdamW step, the methods
interleaved step by step (so a change in machine load hits them alike; each round starts with the next contender,
so none always runs first); each line is the median step time and its ratio to GD's. Ssiuu needs one extra
backward pass over GD; ssiuu-anchor adds a forward and backward on the frozen original model (uncached here:
distinct batches); "anchor+cache" is ssiuu-anchor on batches that recur (two, cycled, as `anchor_fixed_batches`
makes them recur in a run), so from the third step its A_0 comes from the cache; the last lines print each
anchor contender's cache hits over its steps (the hit rate).
KLUE's one-off localisation is not a step and is not timed.
`--full-logits ga,npo` adds "ga/full" and "npo/full": the same methods with the full logits (the sparse path's
vocabulary threshold raised past the model's), interleaved with the rest, so a large vocabulary's saving from
`neuronscope.sparse_logits.answer_logits` is read in one run (the toy takes the full logits either way).
`--reference` names the contender the ratios are to (gd by default; another one, e.g. `--methods ssiuu
--reference ssiuu/full --full-logits ssiuu`, leaves GD's model copy out where memory is short).
"stop check" is one forget-accuracy check (every forget base question, as the loop scores it).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import replace

import torch

from neuronscope import sparse_logits
from neuronscope.base_model import new_toy_model
from neuronscope.batching import Batch
from neuronscope.data.schema import load_dataset
from neuronscope.data.world import build_world
from neuronscope.models.handle import load_model
from neuronscope.scoring import dataset_metric, split_score
from neuronscope.unlearn import METHODS, UnlearnConfig
from neuronscope.unlearn.base import StepBatch, encode_items

CACHED = "anchor+cache"  # ssiuu-anchor whose A_0 cache hits: REPEAT batches, cycled
REPEAT = 2
CACHE_ARGS = {"anchor_fixed_batches": True, "anchor_cache_gib": 64.0}
FULL = "/full"  # a contender with the full logits (--full-logits)
DEFAULT = f"gd,bare,ssiuu,ssiuu-neuron,ssiuu-anchor,{CACHED},npo,simnpo,klue"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt")
    ap.add_argument("--data")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default=DEFAULT, help="comma-separated; the reference is always timed")
    ap.add_argument("--reference", default="gd", help="the contender the ratios are to (e.g. ssiuu/full)")
    ap.add_argument("--full-logits", default="", help="comma-separated methods also timed with the full logits")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = load_dataset(args.data) if args.data else build_world()
    model = load_model(args.ckpt, bridge=False) if args.ckpt else new_toy_model(ds)
    forget, retain = ds.items("forget", "base"), ds.items("retain", "base")
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(args.steps):
        f = [forget[i] for i in torch.randperm(len(forget), generator=gen)[:args.batch_size].tolist()]
        r = [retain[i] for i in torch.randperm(len(retain), generator=gen)[:args.batch_size].tolist()]
        batches.append(StepBatch(encode_items(model, f), f, encode_items(model, r), r))
    ref = args.reference
    names = [n for n in dict.fromkeys([ref, *args.methods.split(",")]) if n]
    bare = "bare" in names
    names = [n for n in names if n != "bare"]
    names = list(dict.fromkeys([*names, *(f"{n}{FULL}" for n in args.full_logits.split(",") if n)]))
    if any(n.startswith("ssiuu-neuron") for n in names):
        _ = model.bridge  # boot once, outside the timings
    cfg = UnlearnConfig(lambda_=1.0, batch_size=args.batch_size)
    runs = {}
    for name in names:
        m = model.clone()
        m.hf.eval()  # as the loop trains (no dropout)
        with full_logits(name.endswith(FULL)):  # KLUE's localisation too
            method = (METHODS["ssiuu-anchor"](m, ds, replace(cfg, method_args={**cfg.method_args, **CACHE_ARGS}))
                      if name == CACHED else METHODS[name.removesuffix(FULL)](m, ds, cfg))
        runs[name] = (method, torch.optim.AdamW(method.parameters(), lr=1e-5), m)
    if bare:
        hf = model.clone().hf
        hf.eval()  # as the loop trains (no dropout)
        bare_opt = torch.optim.AdamW(hf.parameters(), lr=1e-5)
    times: dict[str, list[float]] = {n: [] for n in [*names, *(["bare"] if bare else []), "stop check"]}
    metric = dataset_metric(ds)
    contenders = [*names, *(["bare"] if bare else [])]
    for step, sb in enumerate(batches, start=1):
        turn = (step - 1) % len(contenders)  # each round starts with the next contender: none always runs first
        for name in contenders[turn:] + contenders[:turn]:
            if name == "bare":
                t0 = time.perf_counter()
                for b in (sb.forget, sb.retain):
                    bare_step(hf, bare_opt, b)
                times["bare"].append(time.perf_counter() - t0)
                continue
            method, opt, _ = runs[name]
            t0 = time.perf_counter()
            # the cached anchor sees REPEAT batches over and over (as with anchor_fixed_batches), the rest distinct ones
            k = (step - 1) % REPEAT
            with full_logits(name.endswith(FULL)):
                loss, _ = method.loss(replace(batches[k], forget_index=(k,)) if name == CACHED else sb, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        split_score(runs[ref][2], forget, metric)
        times["stop check"].append(time.perf_counter() - t0)
    for method, _, _ in runs.values():
        method.finish()
    med = {n: statistics.median(t[2:]) for n, t in times.items()}
    print(f"model: {model.n_params:,} parameters; batch size {args.batch_size}; median of {args.steps - 2} steps, "
          f"methods interleaved; stop check = {len(forget)} forget questions")
    for name, t in med.items():
        extra = f"   {ref} / bare {med[ref] / t:.2f}" if name == "bare" else ""
        if name.endswith(FULL) and name.removesuffix(FULL) in med:
            extra = f"   {name.removesuffix(FULL)} / full {med[name.removesuffix(FULL)] / t:.2f}"
        print(f"{name:13s} {t * 1e3:8.1f} ms   ratio to {ref} {t / med[ref]:.2f}{extra}")
    for name, (method, _, _) in runs.items():
        if hasattr(method, "hits"):  # ssiuu-anchor's A_0 cache
            print(f"{name} A_0 cache: {method.hits} hits in {args.steps} steps (hit rate "
                  f"{method.hits / args.steps:.2f}; {'batches recur' if name == CACHED else 'distinct batches'})")


@contextlib.contextmanager
def full_logits(on: bool) -> Iterator[None]:
    """The full-logits path for every model while `on` (the sparse path's threshold above any vocabulary)."""
    if not on:
        yield
        return
    saved = sparse_logits.SPARSE_MIN_VOCAB
    sparse_logits.SPARSE_MIN_VOCAB = 1 << 62
    try:
        yield
    finally:
        sparse_logits.SPARSE_MIN_VOCAB = saved


def bare_step(hf: torch.nn.Module, opt: torch.optim.Optimizer, batch: Batch) -> None:
    """One plain HF training step on `batch`: the model's own loss on the answer tokens, backward, AdamW."""
    labels = batch.input_ids.masked_fill(~batch.answer_mask, -100)
    loss = hf(input_ids=batch.input_ids, labels=labels).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


if __name__ == "__main__":
    main()

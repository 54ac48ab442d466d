"""How much faster is the patching test when each question runs once and its options share its cache?

    .venv/bin/python benchmarks/bench_patching.py [--ckpt DIR] [--items 25] [--repeats 2] [--threads 1]

On SmolLM2-135M-Instruct (the pulled checkpoint unless --ckpt names another model on the shared-prefix path) and a
copy whose blocks carry seeded noise (the speed does not depend on what unlearning did), the first --items
real-facts candidate questions (3 options each) and an influence table of seeded random values (the neurons of
every projection), times `attribution.patching.patching_curves` at m = 0, 10, 100 and every neuron, in
interleaved rounds, down both paths:
- one sequence per option (question + option, every position's logits; the path before `prefix_scoring`);
- shared prefix: each question once, its options on its cache, the patch applied in both passes.
Prints the median [min, max] of the per-round ratios and whether the two curves are equal. Ratios, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", help="checkpoint directory (default: the pulled SmolLM2-135M)")
    ap.add_argument("--items", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import numpy as np
    import pandas as pd

    from neuronscope.attribution import patching
    from neuronscope.attribution.neurons import attribute_neurons
    from neuronscope.data.real_facts import RealFactsConfig, candidate_facts
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import ensure
    from neuronscope.prefix_scoring import shared_prefix_ok

    path = args.ckpt or ensure("smollm2-135m")
    base, unlearned = load_model(path), load_model(path)
    if not shared_prefix_ok(unlearned.hf):
        raise SystemExit("error: this model's vocabulary or head is not on the shared-prefix path")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unlearned.hf.named_parameters():
            if ".layers." in name and p.dim() == 2:
                p.add_(torch.randn(p.shape, generator=gen) * 1e-3)
    ds = candidate_facts(RealFactsConfig())
    items = [it for split in ds.splits.values() for it in split if it.options][:args.items]
    index = attribute_neurons(unlearned, items[:1])  # every projection's neurons, in table order
    rng = np.random.default_rng(0)
    influence = pd.DataFrame({"layer": index["layer"].to_numpy(), "module": index["module"].to_numpy(),
                              "d_plus": rng.random(len(index)), "d_minus": rng.random(len(index))})
    n = len(influence)
    ms = [0, 10, 100, n]
    print(f"{len(items)} questions x 3 options, {n} neurons, m = {ms}, {args.threads} thread(s)")

    def one_sequence() -> pd.DataFrame:
        real = patching.shared_prefix_ok
        patching.shared_prefix_ok = lambda hf: False
        try:
            return patching.patching_curves(base, unlearned, items, influence, ms=ms).curves
        finally:
            patching.shared_prefix_ok = real

    def shared() -> pd.DataFrame:
        return patching.patching_curves(base, unlearned, items, influence, ms=ms).curves

    ratios, times = [], {"one sequence per option": [], "shared prefix": []}
    a = b = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a = one_sequence()
        t1 = time.perf_counter()
        b = shared()
        t2 = time.perf_counter()
        times["one sequence per option"].append(t1 - t0)
        times["shared prefix"].append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    for name, ts in times.items():
        print(f"{name:<26} {statistics.median(ts):8.2f} s (median of {len(ts)})")
    print(f"one sequence / shared: {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]")
    print(f"curves equal: {a.equals(b)}")


if __name__ == "__main__":
    main()

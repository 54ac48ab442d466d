"""Cost of one Ssiuu step (and of its two variants) relative to one GD step, on the same batches.

    .venv/bin/python benchmarks/bench_unlearn.py [--ckpt DIR --data DIR] [--steps 20] [--batch-size 16]

Without --ckpt it times the default-size toy model (untrained weights; the cost does not depend on them) on the
default world. Each method runs the same forget/retain batches through loss + backward + AdamW step; the median
step time is compared with GD's. Ssiuu needs one extra backward pass over GD, so the expected ratio is <= 2.0;
ssiuu-anchor adds a forward and backward on the frozen original model (uncached here: distinct batches).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from neuronscope.base_model import new_toy_model
from neuronscope.data.schema import load_dataset
from neuronscope.data.world import build_world
from neuronscope.models.handle import load_model
from neuronscope.unlearn import METHODS, UnlearnConfig
from neuronscope.unlearn.base import StepBatch, encode_items


def time_method(model, ds, name: str, batches: list[StepBatch], warmup: int = 2) -> float:
    model = model.clone()
    method = METHODS[name](model, ds, UnlearnConfig(lambda_=1.0))
    opt = torch.optim.AdamW(method.parameters(), lr=1e-5)
    times = []
    for step, sb in enumerate(batches, start=1):
        t0 = time.perf_counter()
        loss, _ = method.loss(sb, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt")
    ap.add_argument("--data")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
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
    _ = model.bridge  # boot once, outside the timings
    gd = time_method(model, ds, "gd", batches)
    print(f"model: {model.n_params:,} parameters; batch size {args.batch_size}; median of {args.steps - 2} steps")
    print(f"gd            {gd * 1e3:8.1f} ms/step   ratio 1.00")
    for name in ("ssiuu", "ssiuu-neuron", "ssiuu-anchor"):
        t = time_method(model, ds, name, batches)
        print(f"{name:13s} {t * 1e3:8.1f} ms/step   ratio {t / gd:.2f}")


if __name__ == "__main__":
    main()

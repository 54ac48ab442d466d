"""Does attribution memory stay flat as the data set grows? Peak memory of `attribution_scores` at 1x and 4x items.

    .venv/bin/python benchmarks/bench_attribution_memory.py [--items 128] [--factor 4] [--batch-size 64] [--device cpu]

On the default toy model (ToyConfig(), untrained: memory does not depend on training), prints the peak extra
memory of one `attribution_scores` call over N and factor x N questions (same batch size, 64 by default so that
one pass stands out of the resident-set noise), for
- streaming (keep_examples=False, what `neuronscope attribute` does without --per-example): the ratio
  peak(factor x N) / peak(N) should stay near 1 (memory = one batch's pass + O(neurons) sums);
- keep_examples=True (--per-example): grows by 2 x items x neurons x 4 bytes, printed next to the measurement;
- the same streaming pass with parameters left requires_grad=True (what `frozen_parameters` avoids): autograd then
  saves every projection's input for a weight gradient that is never computed.
CPU: growth of the peak resident set (VmHWM reset via /proc/self/clear_refs; glibc's mmap threshold fixed so a freed
tensor leaves the resident set); CUDA: torch.cuda.max_memory_allocated. Median of --repeats runs each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from collections.abc import Callable, Iterator

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_attribution import fixed_mmap_threshold, peak_of  # noqa: E402


def peak(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Median over `repeats` of the peak extra memory (MiB) of one call, after a warm-up call."""
    fn()
    out = []
    for _ in range(repeats):
        mib = peak_of(fn, device)
        if mib is None:
            raise SystemExit("cannot reset the peak resident set here (/proc/self/clear_refs); run on Linux")
        out.append(mib)
    return statistics.median(out)


@contextlib.contextmanager
def _unfrozen() -> Iterator[None]:
    """Attribution with parameters left requiring grad (the behaviour before `frozen_parameters`)."""
    from neuronscope.attribution import neurons

    saved = neurons.frozen_parameters
    neurons.frozen_parameters = lambda model: contextlib.nullcontext()  # type: ignore[assignment]
    try:
        yield
    finally:
        neurons.frozen_parameters = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=128)
    ap.add_argument("--factor", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    fixed_mmap_threshold()
    torch.set_num_threads(args.threads)

    from neuronscope.attribution.neurons import attribution_scores
    from neuronscope.base_model import new_toy_model
    from neuronscope.data.world import build_world
    from neuronscope.models.toy import ToyConfig

    ds = build_world()
    model = new_toy_model(ds, ToyConfig())
    model.hf.to(args.device)
    pool = ds.items("forget", None) + ds.items("retain", None) + ds.items("test", None)
    n_small, n_large = args.items, args.items * args.factor
    if len(pool) < n_large:
        raise SystemExit(f"the default world has {len(pool)} questions; ask for at most {len(pool) // args.factor}")
    small, large = pool[:n_small], pool[:n_large]
    n_neurons = attribution_scores(model, small[:1]).n_neurons

    def run(items: list, keep: bool) -> Callable[[], object]:
        return lambda: attribution_scores(model, items, batch_size=args.batch_size, keep_examples=keep)

    stream_small, stream_large = peak(run(small, False), args.device, args.repeats), peak(
        run(large, False), args.device, args.repeats)
    keep_small, keep_large = peak(run(small, True), args.device, args.repeats), peak(
        run(large, True), args.device, args.repeats)
    with _unfrozen():
        unfrozen_small = peak(run(small, False), args.device, args.repeats)
    kept = 2 * (n_large - n_small) * n_neurons * 4 / 2**20

    print(f"toy model: {sum(p.numel() for p in model.hf.parameters()) / 1e6:.2f}M parameters, {n_neurons} neurons; "
          f"batch size {args.batch_size}; {n_small} vs {n_large} questions; device {args.device}")
    print(f"streaming (keep_examples=False): peak +{stream_small:.1f} MiB vs +{stream_large:.1f} MiB   "
          f"ratio {stream_large / stream_small:.2f} (flat: 1)")
    print(f"keep_examples=True:              peak +{keep_small:.1f} MiB vs +{keep_large:.1f} MiB   "
          f"ratio {keep_large / keep_small:.2f}; growth {keep_large - keep_small:.1f} MiB "
          f"(expected: the extra items' per-example max/min, {kept:.1f} MiB)")
    print(f"parameters left requires_grad=True: peak +{unfrozen_small:.1f} MiB vs frozen +{stream_small:.1f} MiB   "
          f"ratio {unfrozen_small / stream_small:.2f}")


if __name__ == "__main__":
    main()

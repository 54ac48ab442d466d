"""How much faster is multiple-choice scoring when a question's options share its cache?

    .venv/bin/python benchmarks/bench_scoring.py [--ckpt DIR] [--items 120] [--repeats 3] [--threads 1]

On SmolLM2-135M-Instruct (the pulled checkpoint, `neuronscope pull smollm2-135m`, unless --ckpt names another
model with a vocabulary on the shared path) and the real-facts candidate questions (`data.real_facts`, built
without the model: the first --items of them, 3 options each), times in interleaved rounds:
- one sequence per option: `scoring._logprobs` on every (question, option) pair, logits only at answer positions
  (what scoring did before `prefix_scoring`);
- shared prefix: `prefix_scoring.shared_prefix_logprobs`, each question once and its options on its cache.
Prints the median [min, max] of the per-round ratios (one sequence / shared), the largest |difference| of the
log-likelihoods and how many items change their multiple-choice answer. Ratios, not pass/fail.
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
    ap.add_argument("--items", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from neuronscope import scoring
    from neuronscope.data.real_facts import RealFactsConfig, candidate_facts
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import ensure
    from neuronscope.plan import SCORING_BATCH
    from neuronscope.prefix_scoring import shared_prefix_logprobs, shared_prefix_ok

    model = load_model(args.ckpt or ensure("smollm2-135m"), bridge=False)
    if not shared_prefix_ok(model.hf):
        raise SystemExit("error: this model's vocabulary or head is not on the shared-prefix path")
    ds = candidate_facts(RealFactsConfig())
    items = [it for split in ds.splits.values() for it in split if it.options][:args.items]
    prompts = [it.question for it in items for _ in it.options]
    answers = [o for it in items for o in it.options]
    print(f"{len(items)} questions, {len(prompts)} options, {args.threads} thread(s)")

    def one_sequence() -> torch.Tensor:
        return scoring._logprobs(model, prompts, answers, SCORING_BATCH)[0]

    def shared() -> torch.Tensor:
        return shared_prefix_logprobs(model, [it.question for it in items], [it.options for it in items],
                                      SCORING_BATCH)[0]

    a, b = one_sequence(), shared()  # warm-up, and the numbers compared
    ratios, times = [], {"one sequence per option": [], "shared prefix": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        one_sequence()
        t1 = time.perf_counter()
        shared()
        t2 = time.perf_counter()
        times["one sequence per option"].append(t1 - t0)
        times["shared prefix"].append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    for name, ts in times.items():
        print(f"{name:<26} {statistics.median(ts):8.2f} s (median of {len(ts)})")
    print(f"one sequence / shared: {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]")
    flips = int((scoring.gold_wins(a, items) != scoring.gold_wins(b, items)).sum())
    print(f"max |diff| of log P(option | question): {(a - b).abs().max().item():.2e}; answers changed: {flips}")


if __name__ == "__main__":
    main()

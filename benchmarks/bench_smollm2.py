"""Where a SmolLM2 study's time goes on a CPU: unit costs measured on the real model, projected onto a config.

    .venv/bin/python benchmarks/bench_smollm2.py [--ckpt DIR] [--config configs/smollm2-faithun.toml] [--threads 2]

Measures, on SmolLM2-135M-Instruct (pulled into a temporary directory unless --ckpt is given): the pull; scoring
one multiple-choice item with full logits and with logits only at answer positions (neuronscope.sparse_logits);
one optimiser step of every unlearning method of the config (full logits) and of an attack (training.fit's loss,
with and without sparse logits; batch = the config's); attribution
and the logit lens per item; the peak resident memory. It then multiplies each unit cost by how often the config's
grid needs it (worst case: every lr of every method's grid runs to max_steps) and prints the projected time per
stage (`--methods` times a subset; the others are costed at the slowest timed one). The projection is an estimate
from unit costs, not a run; the figures it prints depend on the machine's load.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import torch


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" /
                                            "smollm2-faithun.toml"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", help="comma-separated subset of the config's methods to time (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from neuronscope.attribution import attribution_scores
    from neuronscope.data.real_facts import RealFactsConfig, candidate_facts
    from neuronscope.lens import logit_lens
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import pull
    from neuronscope.scoring import multiple_choice_correct
    from neuronscope.sparse_logits import SPARSE_MIN_VOCAB
    from neuronscope.training import model_answer_nll
    from neuronscope.unlearn import METHODS, UnlearnConfig
    from neuronscope.unlearn.base import StepBatch, encode_items

    doc = tomllib.loads(Path(args.config).read_text())
    print("unit costs", flush=True)
    unit: dict[str, float] = {}

    def record(name: str, seconds: float) -> None:  # printed at once: a run cut short keeps what it measured
        unit[name] = seconds
        print(f"  {name:<42} {seconds:8.3f} s", flush=True)

    if args.ckpt:
        ckpt = Path(args.ckpt)
    else:
        t0 = time.perf_counter()
        ckpt = pull("smollm2-135m", Path(tempfile.mkdtemp(prefix="bench-smollm2-")) / "ckpt")[0]
        record("pull", time.perf_counter() - t0)
    model = load_model(ckpt, bridge=False)
    rf = doc.get("data", {}).get("real_facts", {})
    cand = candidate_facts(RealFactsConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in rf.items()}))
    items = cand.items("forget", None)[:24]

    # scoring: sparse (the default for this vocabulary) against full logits
    record("score item (sparse logits)",
           median_time(lambda: multiple_choice_correct(model, items), args.repeats) / len(items))
    vocab = model.hf.config.vocab_size
    import neuronscope.sparse_logits as sl

    sl.SPARSE_MIN_VOCAB = vocab + 1  # force the full-logits path once, for the comparison
    try:
        record("score item (full logits)", median_time(lambda: multiple_choice_correct(model, items), 1) / len(items))
    finally:
        sl.SPARSE_MIN_VOCAB = SPARSE_MIN_VOCAB

    un = doc.get("unlearn", {})
    bs = int(un.get("batch_size", 8))
    forget = cand.items("forget")[:bs]
    retain = cand.items("retain")[:bs]
    sb = StepBatch(encode_items(model, forget), forget, encode_items(model, retain), retain)
    timed = args.methods.split(",") if args.methods else un.get("methods", [])
    for name in timed:
        m = model.clone()
        method = METHODS[name](m, cand, UnlearnConfig(lambda_=1e-3))
        opt = torch.optim.AdamW(method.parameters(), lr=1e-5)
        step = [0]

        def one(method=method, opt=opt, step=step) -> None:
            step[0] += 1
            loss, _ = method.loss(sb, step[0])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        one()  # warm-up (ssiuu's first step has no previous attribution)
        record(f"unlearn step {name}", median_time(one, args.repeats))
        del m, method, opt

    at = doc.get("attacks", {})
    attacked = model.clone()
    batch = encode_items(attacked, cand.items("forget")[:int(at.get("batch_size", 8))])
    attack_opt = torch.optim.AdamW(attacked.hf.parameters(), lr=1e-5)

    def attack_step(sparse: bool) -> None:  # what neuronscope.training.fit does per step
        loss = model_answer_nll(attacked, batch, sparse)
        attack_opt.zero_grad(set_to_none=True)
        loss.backward()
        attack_opt.step()

    attack_step(True)  # warm-up: AdamW allocates its state
    record("attack step (sparse logits)", median_time(lambda: attack_step(True), args.repeats))
    record("attack step (full logits)", median_time(lambda: attack_step(False), args.repeats))
    unit["attack step"] = unit["attack step (sparse logits)"]
    four = cand.items("forget")[:4]
    bridge_model = load_model(ckpt)
    record("attribution item", median_time(lambda: attribution_scores(bridge_model, four), 1) / len(four))
    record("lens item", median_time(lambda: logit_lens(bridge_model, four, seed=0), 1) / len(four))

    # --- projection onto the config (counts of what the grid does) ------------------------------------------------
    n_base = {s: len(cand.items(s)) for s in ("forget", "retain", "test")}
    n_all = sum(len(v) for v in cand.splits.values() if v) + len(cand.utility)
    n_eval = n_all - len(cand.items("other", None))
    methods = [m for m in un.get("methods", []) if f"unlearn step {m}" in unit]
    slowest = max((unit[f"unlearn step {m}"] for m in methods), default=unit["attack step"])
    methods = un.get("methods", [])
    for m in methods:  # a method not timed (--methods) is costed at the slowest timed one
        unit.setdefault(f"unlearn step {m}", slowest)
    grids = {mth: un.get("method", {}).get(mth, {}).get("lr_grid", un.get("lr_grid", [un.get("lr", 1e-5)]))
             for mth in methods}
    max_steps = int(un.get("max_steps", 30))
    n_models = len(methods) + int(doc.get("oracle", {}).get("enabled", False))
    n_attacks = len(at.get("seeds", [0])) * (len(at.get("harmful_p", [])) * len(at.get("harmful_lr", [1e-5])) +
                                             (len(at.get("benign_lr", [1e-5])) if at.get("benign", True) else 0))
    steps, evals = int(at.get("steps", 10)), int(at.get("steps", 10)) // int(at.get("eval_every", 5)) + 1
    score = unit["score item (sparse logits)"]
    stages = {
        "data filter (score every candidate once)": n_all * score,
        "base eval": n_eval * score,
        "unlearning, worst case (every lr to max_steps)": sum(
            len(grids[mth]) * (max_steps * (unit[f"unlearn step {mth}"] + n_base["forget"] * score) + n_eval * score)
            for mth in methods),
        "attacks (+ floor)": (n_models + 1) * n_attacks * (steps * unit["attack step"] +
                                                           evals * n_base["forget"] * score),
        "attribution (2 pairs per model)": n_models * 2 * 2 * n_base["forget"] * unit["attribution item"],
        "lens": (n_models + 1) * n_base["forget"] * unit["lens item"],
    }
    print(f"SmolLM2-135M on {args.threads} thread(s); vocabulary {vocab}; config {args.config}")
    print(f"candidate items {n_all} (forget/retain/test base {n_base}); methods {methods}; {n_attacks} attacks per "
          f"model on {n_models} models + the floor")
    print(f"  sparse vs full scoring: {unit['score item (full logits)'] / score:.2f}x faster")
    print("\nprojected stage times (min), before the filter shrinks the data (an upper bound)")
    for k, v in stages.items():
        print(f"  {k:<50} {v / 60:7.1f}")
    print(f"  {'total':<50} {sum(stages.values()) / 60:7.1f}")
    print(f"\npeak resident memory {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()

"""How fast is neuron attribution? Ratios against a training step and against layer-by-layer integrated gradients.

    .venv/bin/python benchmarks/bench_attribution.py [--items 32] [--repeats 5] [--threads 1] [--device cpu]

On the default toy model (ToyConfig(), untrained: speed does not depend on training) and a batch of forget items
of the default world, prints:
- attribution / training step: one `attribution_scores` call (one forward + one backward, every neuron of every
  hooked projection, reduced to per-example max/min) over one training step's forward + backward (answer NLL,
  parameter gradients). Target <= 1.5.
- integrated gradients / attribution: the knowledge-neurons way, layer by layer, 20 Riemann steps per layer, each
  step a forward + backward with the layer's MLP up-projection scaled by alpha. IG here covers only one module per
  layer (the MLP), so covering all seven projections would cost it about 7x more: the ratio is conservative.
- peak memory of each (CPU: growth of the peak resident set over one run, reset via /proc/self/clear_refs, with
  glibc's mmap threshold fixed so freed tensors leave the resident set; CUDA: torch.cuda.max_memory_allocated),
  and the size of what attribution keeps (per-example max and min).
Ratios, not pass/fail: timings depend on the machine.

Then, per batch, against the limit (`--limit-only` prints only this; `--ckpt DIR` measures a checkpoint such as
SmolLM2-135M instead of the toy, `neuronscope pull smollm2-135m --out DIR`): "limit" is one plain HF forward +
backward of sum P(y|x), parameters frozen, no hooks, the backward stopping at the token embedding as attribution's
does. Contenders, interleaved in each round, median [min, max] of per-round ratios: neuronscope's
`attribution_scores` (tokenisation included), twenty lines of hand-written torch hooks on the HF nn.Linear modules
(same reductions; gated families only), and nnsight / captum where installed (never a dependency). The max |diff|
column compares each contender's per-example max/min with neuronscope's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak(device: str) -> bool:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _peak_mib(device: str, rss_before_kib: int) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return (_rss_kib("VmHWM") - rss_before_kib) / 1024


def _once(fn: Callable[[], object], device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t


def timed(fns: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, tuple[float, float | None]]:
    """Median seconds over `repeats` rounds (after a warm-up), the functions interleaved within each round so that
    a change in machine load hits all of them alike; then the peak extra memory of one run of each, in MiB."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_once(fn, device))
    return {name: (statistics.median(times[name]), peak_of(fn, device)) for name, fn in fns.items()}


def peak_of(fn: Callable[[], object], device: str) -> float | None:
    """Peak extra memory (MiB) of one call of `fn`; None where the peak cannot be reset (no /proc)."""
    if not _reset_peak(device):
        return None
    before = _rss_kib("VmRSS")
    fn()
    return _peak_mib(device, before)


def fixed_mmap_threshold() -> None:
    """Re-run this script with glibc's mmap threshold fixed, once.

    A fixed threshold makes glibc return every large tensor to the OS when freed, so the peak resident set of one
    phase measures that phase (the default dynamic threshold keeps freed memory in the heap).
    """
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ig-steps", type=int, default=20)
    ap.add_argument("--limit-only", action="store_true", help="only the contenders-versus-limit table")
    ap.add_argument("--ckpt", default=None, help="a checkpoint directory for the limit table (default: the toy)")
    ap.add_argument("--batch", type=int, default=16, help="batch size of the limit table")
    ap.add_argument("--rounds", type=int, default=11, help="interleaved rounds of the limit table")
    args = ap.parse_args()
    fixed_mmap_threshold()
    torch.set_num_threads(args.threads)
    if not args.limit_only:
        against_training_and_ig(args)
    against_the_limit(args)


def against_training_and_ig(args: argparse.Namespace) -> None:

    from neuronscope.attribution.neurons import attribution_scores
    from neuronscope.base_model import new_toy_model
    from neuronscope.batching import encode
    from neuronscope.data.world import build_world
    from neuronscope.models.projections import projections
    from neuronscope.models.toy import ToyConfig
    from neuronscope.scoring import answer_logprobs
    from neuronscope.training import answer_nll

    ds = build_world()
    model = new_toy_model(ds, ToyConfig())
    model.hf.to(args.device)
    items = (ds.forget * (args.items // max(len(ds.forget), 1) + 1))[: args.items]
    bridge = model.bridge
    projs = projections(bridge)

    def train_step() -> None:
        batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items]).to(args.device)
        model.hf.zero_grad(set_to_none=True)
        answer_nll(model.hf(input_ids=batch.input_ids).logits, batch).backward()

    def attribution() -> None:
        attribution_scores(model, items, batch_size=len(items))

    def integrated_gradients() -> None:
        batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items]).to(args.device)
        for layer in range(bridge.cfg.n_layers):
            hook = f"blocks.{layer}.mlp.in.hook_out"
            with torch.no_grad():
                clean: dict[str, torch.Tensor] = {}
                keep = [(hook, lambda x, hook, c=clean: c.setdefault("h", x))]
                bridge.run_with_hooks(batch.input_ids, fwd_hooks=keep)
            total = torch.zeros_like(clean["h"])
            for step in range(1, args.ig_steps + 1):
                alpha = step / args.ig_steps
                scaled = (alpha * clean["h"]).requires_grad_(True)
                logits = bridge.run_with_hooks(batch.input_ids, fwd_hooks=[(hook, lambda x, hook, s=scaled: s)])
                (grad,) = torch.autograd.grad(answer_logprobs(logits, batch).exp().sum(), scaled)
                total += grad
            _ = (clean["h"] * total / args.ig_steps).amax(1)  # reduce like the paper's max over positions

    res = timed({"train": train_step, "attr": attribution}, args.repeats, args.device)
    (t_train, m_train), (t_attr, m_attr) = res["train"], res["attr"]
    t_ig, m_ig = timed({"ig": integrated_gradients}, max(1, args.repeats // 4), args.device)["ig"]

    batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items])
    n_neurons = sum(attribution_scores(model, items[:1]).max[p.hook].shape[1] for p in projs)
    kept = 2 * len(items) * n_neurons * 4 / 2**20
    full = len(items) * batch.input_ids.shape[1] * n_neurons * 4 / 2**20

    def mib(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f} MiB"

    print(f"toy model: {model.n_params / 1e6:.2f}M parameters, {bridge.cfg.n_layers} layers, {len(projs)} hooked "
          f"projections, {n_neurons} neurons; batch {len(items)} x {batch.input_ids.shape[1]} tokens; "
          f"device {args.device}, {args.threads} thread(s)")
    print(f"training step (forward+backward): {t_train * 1e3:8.1f} ms   peak +{mib(m_train)}")
    print(f"attribution (all neurons)        : {t_attr * 1e3:8.1f} ms   peak +{mib(m_attr)}")
    print(f"integrated gradients ({args.ig_steps} steps/layer, MLP only): {t_ig * 1e3:8.1f} ms   peak +{mib(m_ig)}")
    print(f"ratio attribution / training step: {t_attr / t_train:.2f}   (target <= 1.5)")
    print(f"ratio IG / attribution           : {t_ig / t_attr:.1f}x  (expect >= 20x)")
    print(f"attribution keeps {kept:.2f} MiB (batch x neurons x max/min); a per-position result would be "
          f"{full:.2f} MiB (batch x positions x neurons)")


def limit_contenders(model: object, items: list, device: str) -> dict[str, Callable[[], object]]:
    """name -> one attribution-sized pass over `items` (one batch); each returns its per-hook (max, min) or None."""
    from neuronscope.attribution.neurons import attribution_scores, frozen_parameters, position_mask
    from neuronscope.batching import encode
    from neuronscope.models.families import spec_for
    from neuronscope.scoring import answer_logprobs

    hf = model.hf  # type: ignore[attr-defined]
    batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items]).to(device)
    neg = ~position_mask(batch, "prompt").unsqueeze(-1)
    embed = hf.get_input_embeddings()

    def limit() -> None:
        with frozen_parameters(model), torch.enable_grad():  # type: ignore[arg-type]
            leaf = embed(batch.input_ids).detach().requires_grad_(True)
            logits = hf(inputs_embeds=leaf).logits
            torch.autograd.grad(answer_logprobs(logits, batch).exp().sum(), leaf)

    def neuronscope() -> dict:
        s = attribution_scores(model, items, batch_size=len(items))  # type: ignore[arg-type]
        return {(p.layer, p.module): (s.max[p.hook], s.min[p.hook]) for p in s.projections}

    fns: dict[str, Callable[[], object]] = {"limit": limit, "neuronscope": neuronscope}
    spec = spec_for(hf)
    if not spec.fused_qkv and spec.hf_projections:
        blocks = spec.decoder_blocks(hf)
        targets = [((layer, m), blocks[layer].get_submodule(path))
                   for layer in range(len(blocks)) for m, path in spec.hf_projections.items()]

        def hand_written() -> dict:
            out: dict = {}

            def capture(key: tuple) -> Callable:
                def hook(mod: object, args: object, y: torch.Tensor) -> None:
                    h = y.detach()

                    def on_grad(g: torch.Tensor) -> None:
                        a = h.float() * g.float()
                        out[key] = (a.masked_fill_(neg, float("-inf")).amax(1).clone(),
                                    a.masked_fill_(neg, float("inf")).amin(1))
                    y.register_hook(on_grad)
                return hook

            handles = [mod.register_forward_hook(capture(key)) for key, mod in targets]
            try:
                limit()
            finally:
                for handle in handles:
                    handle.remove()
            return out

        fns["hand-written hooks"] = hand_written
    return fns


def against_the_limit(args: argparse.Namespace) -> None:
    from neuronscope.data.world import build_world
    from neuronscope.models.handle import load_model

    ds = build_world()
    if args.ckpt:
        model = load_model(args.ckpt, device=args.device)
        what = f"{args.ckpt}"
    else:
        from neuronscope.base_model import new_toy_model
        from neuronscope.models.toy import ToyConfig

        model = new_toy_model(ds, ToyConfig())
        model.hf.to(args.device)
        what = "the default toy (untrained)"
    items = (ds.forget * (args.batch // max(len(ds.forget), 1) + 1))[: args.batch]
    fns = limit_contenders(model, items, args.device)
    for name in ("nnsight", "captum"):
        try:
            __import__(name)
            print(f"{name} is installed but has no contender here yet")
        except ImportError:
            print(f"{name}: not installed (skipped)")
    results = {name: fn() for name, fn in fns.items()}  # warm-up, and the values compared below
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            times[name].append(_once(fn, args.device))
    ref = results["neuronscope"]
    print(f"{what}: {model.n_params / 1e6:.1f}M parameters, batch {len(items)}, device {args.device}, "
          f"{args.threads} thread(s), {args.rounds} interleaved rounds; limit median "
          f"{statistics.median(times['limit']) * 1e3:.1f} ms")
    print(f"{'contender':22s} {'/ limit: median':>16s} {'[min, max]':>16s} {'max |diff| vs neuronscope':>27s}")
    for name in fns:
        ratios = [t / lim for t, lim in zip(times[name], times["limit"], strict=True)]
        got = results[name]
        diff = "" if not isinstance(got, dict) else max(
            (max((got[k][0] - ref[k][0]).abs().max().item(), (got[k][1] - ref[k][1]).abs().max().item())
             for k in ref), default=0.0)
        diff_text = "" if diff == "" else f"{diff:.2e}"
        print(f"{name:22s} {statistics.median(ratios):16.3f} {f'[{min(ratios):.2f}, {max(ratios):.2f}]':>16s} "
              f"{diff_text:>27s}")


if __name__ == "__main__":
    main()

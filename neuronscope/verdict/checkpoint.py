"""The calibrated verdict of one checkpoint against its base and a floor model (`neuronscope attribute --oracle`).

Measures what a run's grid would (forget score, logit lens, relearning attacks with seeds) for the checkpoint and
the floor, then applies the same assembly as the grid (`neuronscope.verdict.assemble.model_verdict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from neuronscope.attacks import AttackConfig, attack
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.scoring import dataset_metric, split_score
from neuronscope.verdict.assemble import model_verdict
from neuronscope.verdict.evidence import Verdict

Log = Callable[[str], None]


def lens_record(model: Model, ds: QADataset) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Per-layer lens accuracy on the forget base items, and per-item wins by layer (for a paired comparison)."""
    from neuronscope.lens import logit_lens, summarize_lens, wins_by_layer

    per_item = logit_lens(model, ds.items("forget"), seed=0, per_item=True)
    summary = summarize_lens(per_item)
    return summary[["layer", "accuracy", "n"]].to_dict(orient="records"), wins_by_layer(per_item)


def attack_records(model: Model, ds: QADataset, configs: Sequence[AttackConfig], seeds: Sequence[int],
                   log: Log = lambda s: None) -> dict[str, list[dict[str, Any]]]:
    """{attack label: [{lr, seed, max_fs}]}: each attack on a fresh clone, once per seed. An attack that cannot
    run on this model (a harmful attack on a model that answers every forget item) is recorded as empty."""
    out: dict[str, list[dict[str, Any]]] = {}
    for base_cfg in configs:
        label = f"harmful p={base_cfg.p:g}" if base_cfg.kind == "harmful" else "benign"
        runs: list[dict[str, Any]] = []
        for seed in seeds:
            acfg = replace(base_cfg, seed=seed)
            clone = model.clone()
            torch.manual_seed(seed)
            try:
                res = attack(clone, ds, acfg)
            except NeuronscopeError as e:
                log(f"{label} not run: {e}")
                runs = []
                break
            runs.append({"lr": acfg.lr, "seed": seed, "max_fs": res.max_fs, "start_fs": res.start_fs})
        out[label] = runs
    return out


def forget_eval(model: Model, ds: QADataset) -> dict[str, Any]:
    items = ds.items("forget")
    return {"fs": split_score(model, items, dataset_metric(ds)), "counts": {"forget": {"base": len(items)}}}


def checkpoint_verdict(model: Model, base: Model, floor: Model, ds: QADataset,
                       attribution: dict[str, Any] | None = None, attacks: Sequence[AttackConfig] = (),
                       seeds: Sequence[int] = (0, 1, 2), log: Log = lambda s: None,
                       progress: Callable[[int, int], None] | None = None,
                       distrusted: dict[str, str] | None = None) -> Verdict:
    """The calibrated verdict of `model` (unlearned from `base`), with `floor` a model that never saw the forget
    facts. `attribution` is attribute_checkpoint's summary (the paper's rule and patching, shown for information).
    `distrusted`: analyses a calibration of this model measured wrong (`verdict.trust`), shown only."""
    if not ds.items("forget"):
        raise NeuronscopeError("the verdict needs forget base questions")
    results: dict[str, Any] = {"methods": ["checkpoint"], "evals": {}, "attacks": {},
                               "attack_labels": [], "analyses": {"lens": {"models": {}, "items": {}},
                                                                 "attribution": {"pairs": {}}}}
    total, done = 3 + (2 if attacks else 0), 0  # a lens per model, attacks on the floor and the checkpoint

    def advance() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for name, m in (("base", base), ("floor", floor), ("checkpoint", model)):
        log(f"forget score and logit lens: {name}")
        results["evals"][name] = forget_eval(m, ds)
        results["analyses"]["lens"]["models"][name], results["analyses"]["lens"]["items"][name] = lens_record(m, ds)
        advance()
        if name != "base" and attacks:
            log(f"relearning attacks: {name} ({len(seeds)} seeds)")
            results["attacks"][name] = attack_records(m, ds, attacks, seeds, log)
            advance()
    results["attack_labels"] = list(results["attacks"].get("floor", {}))
    if attribution:
        results["analyses"]["attribution"]["pairs"]["base vs checkpoint"] = {"summary": attribution}
    return model_verdict("checkpoint", results, floor="floor", distrusted=distrusted)

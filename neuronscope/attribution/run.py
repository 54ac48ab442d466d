"""The whole attribute analysis of one checkpoint (optionally against its base), returned as an object.

`attribute_checkpoint` takes models and items and returns an `AttributionResult`: the tables, the patching test,
the calibrated verdict and the summary of headline numbers. It writes nothing; the report layer
(`neuronscope.plots.attribution_files`) writes the parquet tables, report.html and summary.json, for the CLI
(`neuronscope attribute`) and the experiment grid alike.

Errors about a setting are `SettingError`s naming the setting (``positions``, ``batch_size``, ...), so a caller can
say where the value came from (a CLI flag, a config key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from neuronscope.attacks import AttackConfig
from neuronscope.attribution.influence import (
    TOP_M,
    cumulative_curves,
    influence_from_scores,
    influence_summary,
    module_layer_table,
)
from neuronscope.attribution.neurons import POSITIONS, TARGETS, NeuronScores, attribution_scores
from neuronscope.attribution.patching import PatchingResult, patching_curves
from neuronscope.budget import check_items
from neuronscope.data.items import QADataset, QAItem
from neuronscope.errors import NeuronscopeError, SettingError
from neuronscope.models.handle import Model
from neuronscope.verdict.evidence import Verdict

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class AttributeSettings:
    """How the analysis runs. `target` ("p", the paper's, or "logp") is what the attribution differentiates; each
    of `also_targets` adds that target's D+/D- headline numbers to the summary (``influence_<target>``).

    `relearn`: the verdict's relearning attacks (None: a harmful attack with p = 0.1 and, when the data has a
    benign corpus, a benign one), each over `relearn_seeds`; an empty list skips them.
    `calibration`: a calibration of this model (a calibration.json path or shipped:NAME, `verdict.trust`) whose
    analyses measured wrong there are shown only in the verdict.
    """

    positions: str = "prompt"
    batch_size: int = 16
    per_example: bool = False
    patching: bool = True
    patch_ms: Sequence[int] | None = None
    seed: int = 0
    target: str = "p"
    also_targets: Sequence[str] = ()
    relearn: Sequence[AttackConfig] | None = None
    relearn_seeds: Sequence[int] = (0, 1, 2)
    calibration: str = ""

    def check(self) -> None:
        if self.positions not in POSITIONS:
            raise SettingError("positions", lambda n: f"{n} must be one of {', '.join(POSITIONS)}, "
                                                      f"got {self.positions!r}")
        if self.batch_size < 1:
            raise SettingError("batch_size", lambda n: f"{n} must be at least 1, got {self.batch_size}")
        for t in (self.target, *self.also_targets):
            if t not in TARGETS:
                raise SettingError("target", lambda n, t=t: f"{n} must be one of {', '.join(TARGETS)}, got {t!r}")


@dataclass
class AttributionResult:
    """What the analysis found. Tables are None where the analysis did not run (no base, no patching)."""

    summary: dict
    attribution: pd.DataFrame
    attribution_base: pd.DataFrame | None = None
    influence: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    module_layer: pd.DataFrame | None = None
    patching: PatchingResult | None = None
    verdict: Verdict | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """{name: table} of every table computed, in the order they are written (name = file stem)."""
        out = {"attribution": self.attribution, "attribution_base": self.attribution_base,
               "influence": self.influence, "curves": self.curves, "module_layer": self.module_layer,
               "patching": self.patching.curves if self.patching is not None else None}
        return {k: v for k, v in out.items() if v is not None}


def check_same_architecture(base: Model, unlearned: Model, flag: str = "--ckpt") -> None:
    """Same parameter names and shapes, same tokenizer vocabulary; otherwise one clear error (`flag` names the
    second model's option)."""
    where = f"--base {base.source} and {flag} {unlearned.source}"
    ca, cb = base.hf.config, unlearned.hf.config
    if ca.model_type != cb.model_type:
        raise NeuronscopeError(f"{where} have different architectures ({ca.model_type} vs {cb.model_type})")
    sa = {k: tuple(v.shape) for k, v in base.hf.state_dict().items()}
    sb = {k: tuple(v.shape) for k, v in unlearned.hf.state_dict().items()}
    if sa != sb:
        diff = sorted(set(sa.items()) ^ set(sb.items()))
        name = diff[0][0].replace("._original_component", "")
        raise NeuronscopeError(f"{where} have different shapes (first difference: {name}: "
                               f"{sa.get(diff[0][0])} vs {sb.get(diff[0][0])})")
    if base.tokenizer.get_vocab() != unlearned.tokenizer.get_vocab():
        raise NeuronscopeError(f"{where} have different tokenizer vocabularies")


def select_items(ds: QADataset, split: str, kind: str | None) -> list[QAItem]:
    """The `split` items of `ds` of one `kind` (None: every kind); a missing or empty split is a `SettingError`."""
    if split != "utility" and split not in ds.splits:
        raise SettingError("split", lambda n: f"{n} {split!r} is not in the data (has: {', '.join(ds.splits)})")
    items = ds.items(split, kind)
    if not items:
        raise SettingError("split", lambda n: f"{n} {split!r} has no {kind or 'any'} questions to attribute")
    return items


def check_patching_items(items: Sequence[QAItem], split: str) -> None:
    """The patching test scores multiple choice: every item needs options."""
    missing = sum(1 for it in items if len(it.options) < 2)
    if missing:
        raise SettingError("patching", lambda n: f"{missing} {split} item(s) have no options; the patching test "
                                                 f"needs multiple choice (or pass {n})")


def attribute_checkpoint(
    unlearned: Model,
    items: Sequence[QAItem],
    settings: AttributeSettings = AttributeSettings(),
    *,
    base: Model | None = None,
    oracle: Model | None = None,
    dataset: QADataset | None = None,
    split: str = "forget",
    kind: str | None = "base",
    data_source: str | None = None,
    progress: Progress | None = None,
) -> AttributionResult:
    """Attribute `unlearned` on `items`; with `base`, also D+/D-, curves and the patching test.

    With `base`, the summary's `verdict` is the calibrated one (neuronscope.verdict): it needs `oracle`, a model
    that never saw the forget facts, as the floor of the forget score, the logit lens and the relearning attacks
    (on `dataset`'s forget split and benign corpus). Without an oracle it is "undetermined" and the paper's rule
    (`paper_verdict`) is reported beside it. `split`, `kind` and `data_source` only label the summary.
    """
    settings.check()
    if oracle is not None and base is None:
        raise SettingError("oracle", lambda n: f"{n} needs a base model (the verdict compares the checkpoint with "
                                               "its base)")
    if oracle is not None and dataset is None:
        raise SettingError("oracle", lambda n: f"{n} needs a dataset (its forget split and benign corpus), not a "
                                               "list of items")
    check_items(unlearned, items, settings.batch_size)  # context and memory, before any model work
    if base is not None and settings.patching:
        check_patching_items(items, split)
    if base is not None:
        check_same_architecture(base, unlearned)
    if oracle is not None:
        assert base is not None
        check_same_architecture(base, oracle, flag="--oracle")
    s = settings

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    scores = attribution_scores(unlearned, items, s.positions, s.batch_size, stage("attributing checkpoint"),
                                keep_examples=s.per_example, target=s.target)
    summary: dict = {
        "ckpt": str(unlearned.source), "base": str(base.source) if base else None, "data": data_source,
        "split": split, "kind": kind, "n_items": len(items), "positions": s.positions, "target": s.target,
        "n_neurons": scores.n_neurons, "attribution": _attribution_summary(scores),
    }
    result = AttributionResult(summary=summary, attribution=scores.table(per_example=s.per_example))
    if base is None:
        return result
    base_scores = attribution_scores(base, items, s.positions, s.batch_size, stage("attributing base"),
                                     keep_examples=s.per_example, target=s.target)
    result.attribution_base = base_scores.table(per_example=s.per_example)
    influence = influence_from_scores(base_scores, scores)
    result.influence = influence
    result.curves = cumulative_curves(influence)
    result.module_layer = module_layer_table(influence, TOP_M)
    summary["influence"] = influence_summary(influence, TOP_M) | {"target": s.target}
    summary["paper_verdict"] = summary["influence"]["paper_verdict"]
    for t in dict.fromkeys(s.also_targets):
        if t == s.target:
            continue
        pair = [attribution_scores(m, items, s.positions, s.batch_size, stage(f"attributing {who} ({t})"),
                                   keep_examples=False, target=t)
                for who, m in (("base", base), ("checkpoint", unlearned))]
        summary[f"influence_{t}"] = influence_summary(influence_from_scores(*pair), TOP_M) | {"target": t}
    if s.patching:
        pr = patching_curves(base, unlearned, items, influence, ms=s.patch_ms, seed=s.seed,
                             batch_size=max(s.batch_size, 3) * 3, progress=stage("patching"))
        summary["patching"] = pr.summary(TOP_M) | {"n_neurons": pr.n_neurons}
        summary["forget_accuracy"] = {"base": pr.base_accuracy, "unlearned": pr.unlearned_accuracy}
        result.patching = pr
    verdict = _verdict(unlearned, base, oracle, dataset, summary, s, stage("verdict"))
    summary["verdict"] = verdict.label
    summary["verdict_detail"] = verdict.to_json()
    result.verdict = verdict
    return result


def _verdict(unlearned: Model, base: Model, oracle: Model | None, ds: QADataset | None, summary: dict,
             s: AttributeSettings, progress: Callable[[int, int], None] | None) -> Verdict:
    from neuronscope.verdict.checkpoint import checkpoint_verdict
    from neuronscope.verdict.evidence import decide
    from neuronscope.verdict.measures import paper_rule, paper_rule_evidence, patching_evidence

    shown = [paper_rule_evidence(summary.get("influence"), "p")]
    for key, value in summary.items():
        if key.startswith("influence_"):
            shown.append(paper_rule_evidence(value, key.removeprefix("influence_")))
    shown.append(patching_evidence(summary.get("patching"), int(summary.get("n_items", 0))))
    if oracle is None:
        return decide(shown, None, paper_rule(summary.get("influence")))
    assert ds is not None
    relearn = s.relearn
    if relearn is None:
        relearn = [AttackConfig(kind="harmful", p=0.1)] + ([AttackConfig(kind="benign")] if ds.benign else [])
    from neuronscope.verdict.trust import distrusted_by

    return checkpoint_verdict(unlearned, base, oracle, ds, attribution=summary, attacks=relearn,
                              seeds=s.relearn_seeds, progress=progress, distrusted=distrusted_by(s.calibration))


def _attribution_summary(scores: NeuronScores) -> dict:
    by_module = []
    for module in dict.fromkeys(p.module for p in scores.projections):
        hooks = [p.hook for p in scores.projections if p.module == module]
        n = max(len(scores.item_ids), 1)
        mx = torch.cat([scores.sum_max[h] for h in hooks]) / n  # type: ignore[index]
        mn = torch.cat([scores.sum_min[h] for h in hooks]) / n  # type: ignore[index]
        by_module.append({"module": module, "neurons": int(mx.numel()), "mean_max": float(mx.mean()),
                          "mean_min": float(mn.mean()), "largest_max": float(mx.max()),
                          "smallest_min": float(mn.min())})
    return {"by_module": by_module}

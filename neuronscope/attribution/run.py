"""`run_attribute`: the whole attribute analysis of one checkpoint (optionally against its base), written to disk.

The CLI (`neuronscope attribute`) and the experiment grid both call this. Files in `out`:

    attribution.parquet         the checkpoint's aggregated attribution table (or per example)
    attribution_base.parquet    the base model's, with --base
    influence.parquet           D+/D- per neuron, with --base
    curves.parquet              cumulative top-m curves (Figure 3), with --base
    module_layer.parquet        top-100 means per module and layer (Figure 5), with --base
    patching.parquet            recovery curves of the causal test, with --base
    report.html                 interactive report (plotly.js inlined, opens offline)
    summary.json                headline numbers; written last, so its presence means the run is complete
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
from neuronscope.attribution.neurons import POSITIONS, TARGETS, NeuronScores, attribution_scores, save_table
from neuronscope.attribution.patching import PatchingResult, patching_curves
from neuronscope.data.schema import QADataset, QAItem, load_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.io import write_json
from neuronscope.models.device import DeviceMap
from neuronscope.models.handle import Model, _check_checkpoint, load_model
from neuronscope.verdict.evidence import Verdict

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class AttributeRun:
    summary: dict
    files: dict[str, Path]
    attribution: pd.DataFrame
    influence: pd.DataFrame | None = None
    patching: PatchingResult | None = None
    extra: dict = field(default_factory=dict)


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


def _items(data: str | Path | QADataset | Sequence[QAItem], split: str, kind: str | None) -> list[QAItem]:
    if isinstance(data, QADataset):
        ds = data
    elif isinstance(data, str | Path):
        ds = load_dataset(data)
    else:
        return list(data)
    if split != "utility" and split not in ds.splits:
        raise NeuronscopeError(f"--split {split!r} is not in the data (has: {', '.join(ds.splits)})")
    items = ds.items(split, kind)
    if not items:
        raise NeuronscopeError(f"--split {split!r} has no {kind or 'any'} questions to attribute")
    return items


def _model(ckpt: str | Path | Model, device: str, dtype: str | torch.dtype = torch.float32,
           device_map: DeviceMap | None = None, trust_remote_code: bool = False) -> Model:
    if isinstance(ckpt, Model):
        return ckpt
    return load_model(ckpt, device=device, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code)


def run_attribute(
    ckpt: str | Path | Model,
    data: str | Path | QADataset | Sequence[QAItem],
    out: str | Path,
    base: str | Path | Model | None = None,
    split: str = "forget",
    kind: str | None = "base",
    positions: str = "prompt",
    batch_size: int = 16,
    device: str = "cpu",
    per_example: bool = False,
    patching: bool = True,
    patch_ms: Sequence[int] | None = None,
    seed: int = 0,
    report: bool = True,
    progress: Progress | None = None,
    dtype: str | torch.dtype = torch.float32,
    device_map: DeviceMap | None = None,
    trust_remote_code: bool = False,
    target: str = "p",
    also_targets: Sequence[str] = (),
    oracle: str | Path | Model | None = None,
    relearn: Sequence[AttackConfig] | None = None,
    relearn_seeds: Sequence[int] = (0, 1, 2),
) -> AttributeRun:
    """Attribute `ckpt` on the `split` items of `data`; with `base`, also D+/D-, curves and the patching test.

    `target` ("p", the paper's, or "logp") is what the attribution differentiates; each of `also_targets` adds
    that target's D+/D- headline numbers to the summary (`influence_<target>`), computed without writing tables.

    With `base`, the summary's `verdict` is the calibrated one (neuronscope.verdict): it needs `oracle`, a model
    that never saw the forget facts, as the floor of the forget score, the logit lens and the relearning attacks
    (`relearn`, default: a harmful attack with p = 0.1 and, when the data has a benign corpus, a benign one, each
    over `relearn_seeds`; an empty list skips them). Without an oracle it is "undetermined" and the paper's rule
    (`paper_verdict`) is reported beside it.
    """
    t0 = time.perf_counter()
    if positions not in POSITIONS:
        raise NeuronscopeError(f"--positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
    if batch_size < 1:
        raise NeuronscopeError(f"--batch-size must be at least 1, got {batch_size}")
    for t in (target, *also_targets):
        if t not in TARGETS:
            raise NeuronscopeError(f"--target must be one of {', '.join(TARGETS)}, got {t!r}")
    if oracle is not None and base is None:
        raise NeuronscopeError("--oracle needs --base (the verdict compares the checkpoint with its base)")
    # fail fast, before any model is loaded
    for flag, path in (("--ckpt", ckpt), ("--base", base), ("--oracle", oracle)):
        if isinstance(path, str | Path):
            try:
                _check_checkpoint(Path(path))
            except NeuronscopeError as e:
                raise NeuronscopeError(f"{flag} {e}") from None
    items = _items(data, split, kind)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NeuronscopeError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # a stale summary must not vouch for a half-rewritten run

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    unlearned = _model(ckpt, device, dtype, device_map, trust_remote_code)
    base_model = _model(base, device, dtype, device_map, trust_remote_code) if base is not None else None
    if base_model is not None:
        check_same_architecture(base_model, unlearned)

    scores = attribution_scores(unlearned, items, positions, batch_size, stage("attributing checkpoint"),
                                keep_examples=per_example, target=target)
    files: dict[str, Path] = {}
    table = scores.table(per_example=per_example)
    files["attribution"] = save_table(table, out / "attribution.parquet")
    summary: dict = {
        "ckpt": str(unlearned.source), "base": str(base_model.source) if base_model else None,
        "data": str(data) if isinstance(data, str | Path) else None, "split": split, "kind": kind,
        "n_items": len(items), "positions": positions, "target": target, "n_neurons": scores.n_neurons,
        "attribution": _attribution_summary(scores),
    }
    result = AttributeRun(summary=summary, files=files, attribution=table)
    sections: list = []
    if base_model is not None:
        base_scores = attribution_scores(base_model, items, positions, batch_size, stage("attributing base"),
                                         keep_examples=per_example, target=target)
        files["attribution_base"] = save_table(base_scores.table(per_example=per_example),
                                               out / "attribution_base.parquet")
        influence = influence_from_scores(base_scores, scores)
        curves = cumulative_curves(influence)
        module_layer = module_layer_table(influence, TOP_M)
        files["influence"] = save_table(influence, out / "influence.parquet")
        files["curves"] = save_table(curves, out / "curves.parquet")
        files["module_layer"] = save_table(module_layer, out / "module_layer.parquet")
        summary["influence"] = influence_summary(influence, TOP_M) | {"target": target}
        summary["paper_verdict"] = summary["influence"]["paper_verdict"]
        for t in dict.fromkeys(also_targets):
            if t == target:
                continue
            pair = [attribution_scores(m, items, positions, batch_size, stage(f"attributing {who} ({t})"),
                                       keep_examples=False, target=t)
                    for who, m in (("base", base_model), ("checkpoint", unlearned))]
            summary[f"influence_{t}"] = influence_summary(influence_from_scores(*pair), TOP_M) | {"target": t}
        result.influence = influence
        from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_figure

        sections += [("Figure 3: cumulative influence variation", figure3_cumulative(curves, TOP_M)),
                     ("Figure 5: module x layer", figure5_heatmaps(module_layer, TOP_M))]
        if patching:
            with_options = [it for it in items if len(it.options) >= 2]
            if len(with_options) < len(items):
                raise NeuronscopeError(f"{len(items) - len(with_options)} {split} item(s) have no options; the "
                                       "patching test needs multiple choice (or pass --no-patching)")
            pr = patching_curves(base_model, unlearned, items, influence, ms=patch_ms, seed=seed,
                                 batch_size=max(batch_size, 3) * 3, progress=stage("patching"))
            files["patching"] = save_table(pr.curves, out / "patching.parquet")
            summary["patching"] = pr.summary(TOP_M) | {"n_neurons": pr.n_neurons}
            summary["forget_accuracy"] = {"base": pr.base_accuracy, "unlearned": pr.unlearned_accuracy}
            result.patching = pr
            sections.append(("Causal test: recovery curves",
                             patching_figure(pr.curves, pr.base_accuracy, pr.unlearned_accuracy)))
            if not pr.outside_blocks_equal:
                sections.append(("Note", "Embeddings, final norm or unembedding differ between the models, so "
                                         "patching every neuron need not reproduce the base model exactly."))
        sections.append(("Strongest projections", module_layer.sort_values("d_minus_top_mean", ascending=False)
                         .head(12)))
    sections.append(("Attribution by module (mean over neurons of the per-item max / min)",
                     pd.DataFrame(summary["attribution"]["by_module"])))
    if base_model is not None:
        verdict = _verdict(unlearned, base_model, oracle, data, summary, relearn, relearn_seeds, device, dtype,
                           device_map, trust_remote_code, stage("verdict"))
        summary["verdict"] = verdict.label
        summary["verdict_detail"] = verdict.to_json()
        sections.insert(0, ("Verdict (calibrated)", _verdict_frame(verdict)))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    if report:
        from neuronscope.plots.report import write_report

        intro = _intro(summary)
        files["report"] = write_report(out / "report.html", "neuronscope attribute", sections, intro)
    summary["files"] = {k: Path(v).name for k, v in files.items()}  # beside summary.json (the dir may move)
    files["summary"] = write_json(out / "summary.json", summary)
    return result


def _verdict(unlearned: Model, base: Model, oracle: str | Path | Model | None,
             data: str | Path | QADataset | Sequence[QAItem], summary: dict,
             relearn: Sequence[AttackConfig] | None, seeds: Sequence[int], device: str, dtype: str | torch.dtype,
             device_map: DeviceMap | None, trust_remote_code: bool, progress: Callable[[int, int], None] | None
             ) -> Verdict:
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
    if not isinstance(data, QADataset | str | Path):
        raise NeuronscopeError("--oracle needs a dataset (its forget split and benign corpus), not a list of items")
    ds = data if isinstance(data, QADataset) else load_dataset(data)
    floor = _model(oracle, device, dtype, device_map, trust_remote_code)
    check_same_architecture(base, floor, flag="--oracle")
    if relearn is None:
        relearn = [AttackConfig(kind="harmful", p=0.1)] + ([AttackConfig(kind="benign")] if ds.benign else [])
    return checkpoint_verdict(unlearned, base, floor, ds, attribution=summary, attacks=relearn, seeds=seeds,
                              progress=progress)


def _verdict_frame(verdict: Verdict) -> pd.DataFrame:
    rows = [{"analysis": e.analysis, "says": e.says, "calibrated": "yes" if e.calibrated else "no (shown only)",
             "detail": e.detail} for e in verdict.evidence]
    return pd.DataFrame([{"analysis": "VERDICT", "says": verdict.label, "calibrated": "", "detail": verdict.reason},
                         *rows])


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


def _intro(summary: dict) -> str:
    text = (f"{summary['ckpt']} on {summary['n_items']} {summary['split']} items, positions={summary['positions']}, "
            f"{summary['n_neurons']} neurons.")
    if "influence" in summary:
        inf = summary["influence"]
        text += (f" Against base {summary['base']}: top-{TOP_M} D+ = {inf[f'top{TOP_M}_d_plus']:.4g}, "
                 f"D- = {inf[f'top{TOP_M}_d_minus']:.4g} (the paper's rule reads {inf['paper_verdict']}).")
    if "verdict_detail" in summary:
        v = summary["verdict_detail"]
        text = f"Verdict: {v['label'].upper()}: {v['reason']}. " + text
    return text

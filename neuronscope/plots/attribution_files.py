"""The files of an attribute analysis: what `neuronscope attribute` and the experiment grid write for one pair.

`write_attribution` writes an `AttributionResult` (neuronscope.attribution.run) to a directory:

    attribution.parquet         the checkpoint's aggregated attribution table (or per example)
    attribution_base.parquet    the base model's, with a base
    influence.parquet           D+/D- per neuron, with a base
    curves.parquet              cumulative top-m curves (Figure 3), with a base
    module_layer.parquet        top-100 means per module and layer (Figure 5), with a base
    patching.parquet            recovery curves of the causal test, with a base and patching
    report.html                 interactive report (plotly.js inlined, opens offline)
    summary.json                headline numbers; written last, so its presence means the run is complete

`run_attribute` is the whole command on paths: check the inputs, load the models, analyse, write.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from neuronscope.attacks import AttackConfig
from neuronscope.attribution.influence import TOP_M
from neuronscope.attribution.neurons import save_table
from neuronscope.attribution.patching import PatchingResult
from neuronscope.attribution.run import (
    AttributeSettings,
    AttributionResult,
    Progress,
    SettingError,
    attribute_checkpoint,
)
from neuronscope.data.items import QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.io import write_json
from neuronscope.models.device import DeviceMap
from neuronscope.models.handle import Model, load_model
from neuronscope.plots.attribute_inputs import FLAGS, check_attribute_inputs
from neuronscope.verdict.evidence import Verdict


@dataclass
class AttributeRun:
    """What `run_attribute` did: the summary as written, the files, and the tables it computed."""

    summary: dict
    files: dict[str, Path]
    attribution: pd.DataFrame
    influence: pd.DataFrame | None = None
    patching: PatchingResult | None = None
    extra: dict = field(default_factory=dict)


def write_attribution(result: AttributionResult, out: Path, report: bool = True) -> dict[str, Path]:
    """Write `result`'s tables, report.html (optional) and summary.json (last) into `out`; {name: path}."""
    files = {name: save_table(table, out / f"{name}.parquet") for name, table in result.tables().items()}
    if report:
        from neuronscope.plots.report import write_report

        files["report"] = write_report(out / "report.html", "neuronscope attribute", report_sections(result),
                                       _intro(result.summary))
    result.summary["files"] = {k: Path(v).name for k, v in files.items()}  # beside summary.json (the dir may move)
    files["summary"] = write_json(out / "summary.json", result.summary)
    return files


def report_sections(result: AttributionResult) -> list:
    """The report's sections: the verdict, Figures 3 and 5, the patching curves, the strongest projections."""
    from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_figure

    sections: list = []
    if result.verdict is not None:
        sections.append(("Verdict (calibrated)", _verdict_frame(result.verdict)))
    if result.influence is not None:
        assert result.curves is not None and result.module_layer is not None
        sections += [("Figure 3: cumulative influence variation", figure3_cumulative(result.curves, TOP_M)),
                     ("Figure 5: module x layer", figure5_heatmaps(result.module_layer, TOP_M))]
        pr = result.patching
        if pr is not None:
            sections.append(("Causal test: recovery curves",
                             patching_figure(pr.curves, pr.base_accuracy, pr.unlearned_accuracy)))
            if not pr.outside_blocks_equal:
                sections.append(("Note", "Embeddings, final norm or unembedding differ between the models, so "
                                         "patching every neuron need not reproduce the base model exactly."))
        sections.append(("Strongest projections", result.module_layer.sort_values("d_minus_top_mean",
                                                                                  ascending=False).head(12)))
    sections.append(("Attribution by module (mean over neurons of the per-item max / min)",
                     pd.DataFrame(result.summary["attribution"]["by_module"])))
    return sections


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
    calibration: str = "",
) -> AttributeRun:
    """`neuronscope attribute` on paths: check every input before any work, load the models, run
    `attribute_checkpoint` and write its files into `out` (`write_attribution`). Errors name the CLI's flags."""
    t0 = time.perf_counter()
    settings = AttributeSettings(positions=positions, batch_size=batch_size, per_example=per_example,
                                 patching=patching, patch_ms=patch_ms, seed=seed, target=target,
                                 also_targets=tuple(also_targets), relearn=relearn, relearn_seeds=relearn_seeds,
                                 calibration=calibration)
    try:
        settings.check()
    except SettingError as e:
        raise e.named(FLAGS[e.setting]) from None
    ds, items = check_attribute_inputs(ckpt, data, base=base, oracle=oracle, split=split, kind=kind)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NeuronscopeError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)  # a stale summary must not vouch for a half-rewritten run

    unlearned = _model(ckpt, device, dtype, device_map, trust_remote_code)
    base_model = _model(base, device, dtype, device_map, trust_remote_code) if base is not None else None
    floor = _model(oracle, device, dtype, device_map, trust_remote_code) if oracle is not None else None
    try:
        result = attribute_checkpoint(unlearned, items, settings, base=base_model, oracle=floor, dataset=ds,
                                      split=split, kind=kind, progress=progress,
                                      data_source=str(data) if isinstance(data, str | Path) else None)
    except SettingError as e:
        raise e.named(FLAGS[e.setting]) from None
    result.summary["seconds"] = round(time.perf_counter() - t0, 2)
    files = write_attribution(result, out, report)
    return AttributeRun(summary=result.summary, files=files, attribution=result.attribution,
                        influence=result.influence, patching=result.patching)


def _verdict_frame(verdict: Verdict) -> pd.DataFrame:
    rows = [{"analysis": e.analysis, "says": e.says, "calibrated": "yes" if e.calibrated else "no (shown only)",
             "detail": e.detail} for e in verdict.evidence]
    return pd.DataFrame([{"analysis": "VERDICT", "says": verdict.label, "calibrated": "", "detail": verdict.reason},
                         *rows])


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

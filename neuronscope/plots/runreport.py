"""The report of one run directory, readable without the docs: the verdict per method with its evidence first,
then a formatted Table 1, every figure with a caption saying how to read it, and the configuration and versions
as tables. Formatting of Table 1 happens here, from the rows `build_table` returns.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from neuronscope.plots.catalog import RunFigure
from neuronscope.plots.report import figure_html, page
from neuronscope.plots.rundir import RunDir
from neuronscope.plots.table import build_table, threshold_note
from neuronscope.run_results import Results

LABELS = ("erase", "hide", "not unlearned", "undetermined")
_SAYS = {"present": "knowledge present", "absent": "knowledge absent", "undetermined": "undetermined",
         "not run": "not run"}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, signed: bool = False, digits: int = 3) -> str:
    """A number as text; missing or NaN is an en dash, never 'NaN'."""
    if x is None or isinstance(x, bool) or not isinstance(x, int | float) or math.isnan(float(x)):
        return "–"
    return f"{float(x):+.{digits}f}" if signed else f"{float(x):.{digits}f}"


def _badge(label: str) -> str:
    cls = label.replace(" ", "-") if label in LABELS else "undetermined"
    return f"<span class='badge {cls}'>{_e(label)}</span>"


def verdict_label(row: Mapping[str, Any], verdicts: Mapping[str, Any]) -> str | None:
    """A model's verdict label: Table 1's 'verdict' column where it has one, else results['verdicts']."""
    v = row.get("verdict")
    if isinstance(v, Mapping):
        v = v.get("label")
    if isinstance(v, str) and v:
        return v
    entry = verdicts.get(str(row.get("method")))
    return str(entry["label"]) if isinstance(entry, Mapping) and entry.get("label") else None


def verdict_html(verdicts: Mapping[str, Any] | None, models: Sequence[str]) -> str:
    """Per method: the calibrated label, its one-sentence reason, the evidence table and the paper's rule."""
    if not verdicts:
        return ("<p class='note'>No verdict computed for this run: its results.json has no calibrated verdicts. "
                "Table 1's gap to the oracle and the figures below still show the evidence.</p>")
    parts = []
    for name in [m for m in models if m in verdicts] + [m for m in verdicts if m not in models]:
        v = verdicts[name]
        parts.append(f"<h3>{_e(name)}: {_badge(str(v.get('label', 'undetermined')))}</h3>")
        if v.get("reason"):
            parts.append(f"<p>{_e(v['reason'])}</p>")
        evidence = v.get("evidence") or []
        if evidence:
            rows = ["<tr><th class='l'>analysis</th><th class='l'>says</th><th>value</th><th>reference</th>"
                    "<th>interval</th><th class='l'>role</th><th class='l'>detail</th></tr>"]
            for ev in evidence:
                iv = ev.get("interval")
                interval = (f"[{_num(iv[0])}, {_num(iv[1])}]" if isinstance(iv, Sequence) and len(iv) == 2
                            else "–")
                role = "used by the verdict" if ev.get("calibrated") else "for information only"
                rows.append(f"<tr><td class='l'>{_e(ev.get('analysis', ''))}</td>"
                            f"<td class='l'>{_e(_SAYS.get(str(ev.get('says')), ev.get('says', '')))}</td>"
                            f"<td>{_num(ev.get('value'))}</td><td>{_num(ev.get('reference'))}</td>"
                            f"<td>{interval}</td><td class='l'>{role}</td>"
                            f"<td class='l'>{_e(ev.get('detail', ''))}</td></tr>")
            parts.append("<div class='wrap'><table>" + "".join(rows) + "</table></div>")
        rule = v.get("paper_rule")
        if isinstance(rule, Mapping):
            parts.append(f"<p class='note'>The paper's rule (sum of the top-100 D+ vs D-, shown for information: "
                         f"it is confounded by how far unlearning moved the model) says "
                         f"<b>{_e(rule.get('label', '–'))}</b>: D+ {_num(rule.get('d_plus'))}, "
                         f"D- {_num(rule.get('d_minus'))} (target {_e(rule.get('target', '–'))}).</p>")
    return "\n".join(parts)


def table1_html(results: Results | Mapping[str, Any]) -> str:
    """Table 1 for a reader: scores, recovery per attack (mean ± 95% interval over seeds), the oracle's floor
    and each method's gap to it with its interval, and the verdict; a missing value is '–'."""
    res = results if isinstance(results, Results) else Results.from_json(dict(results))
    rows = build_table(res)
    labels = res.attack_labels
    verdicts = res.verdicts or {}
    has_lm = any("US lm-eval" in r for r in rows)
    scores = ["FS", "RS", "US", *(["US lm-eval"] if has_lm else [])]
    head1 = ("<tr><th class='l' rowspan='2'>model</th>" + "".join(f"<th rowspan='2'>{s}</th>" for s in scores)
             + "".join(f"<th colspan='2'>{_e(lab)}</th>" for lab in labels) + "<th rowspan='2'>verdict</th></tr>")
    against = "oracle" if res.oracle or not res.floor else "floor"  # no oracle: the never-known floor row
    head2 = "<tr>" + f"<th>recovered</th><th>gap to {against}</th>" * len(labels) + "</tr>"
    body = []
    for r in rows:
        name = str(r["method"])
        cls = " class='floor'" if name == "oracle" else ""
        label = {"base": "base (before)", "oracle": "oracle (floor)"}
        cells = [f"<td class='l'>{_e(label.get(name, name))}</td>"] + [f"<td>{_num(r.get(s))}</td>" for s in scores]
        for lab in labels:
            cell, gap = r.get(lab), r.get(f"gap {lab}")
            if isinstance(cell, Mapping):
                ci = cell.get("ci95")
                rec = _num(cell.get("mean")) + (f" ± {_num(ci)}" if _num(ci) != "–" else "")
            else:
                rec = "–"
            if name == "oracle":
                g = "floor"
            elif isinstance(gap, Mapping):
                m, ci = gap.get("mean"), gap.get("ci95")
                g = _num(m, True) + (f"<br><small>[{_num(m - ci, True)}, {_num(m + ci, True)}]</small>"
                                     if _num(ci) != "–" and _num(m) != "–" else "")
            else:
                g = "–"
            cells += [f"<td>{rec}</td>", f"<td>{g}</td>"]
        v = verdict_label(r, verdicts)
        cells.append(f"<td class='l'>{_badge(v) if v else ('reference' if name in ('base', 'oracle') else '–')}"
                     "</td>")
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    recovered = ("Recovered: the highest forget score reached while retraining on forget items not trained on, "
                 "mean over seeds ± 95% interval, at the strongest learning rate. ")
    if against == "oracle":
        note = (f"{threshold_note(res)} Base: the model before unlearning. Oracle: trained without the "
                f"forget facts, the floor a truly erased model should match. {recovered}Gap: "
                "method minus oracle, Welch 95% interval. The verdict calls an attack's recovery hidden knowledge "
                "when that interval lies above 0 and the gap is at least a quarter of the base's margin over the "
                "oracle (the facts came back faster than a model that never learned them could learn them); a "
                "smaller gap, however certain, is undetermined (docs/verdict.md).")
    else:
        note = (f"{threshold_note(res)} Base: the model before unlearning. No oracle can exist for this model "
                f"(it was pretrained on the facts). {recovered}Gap to floor: method minus floor, Welch 95% "
                "interval. Without a model whose answer is known the floor is not calibrated: it is shown for "
                "information, and the verdict is undetermined: no calibrated analysis, not even the forget "
                "answers, can run without a floor model (docs/verdict.md).")
    return (f"<div class='wrap'><table>{head1}{head2}{''.join(body)}</table></div>"
            f"<p class='caption'>{_e(note)}</p>")


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, Mapping):
        if not d:
            return [(prefix, "–")] if prefix else []
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(d, list | tuple):
        return [(prefix, ", ".join(str(x) for x in d) if d else "–")]
    return [(prefix, "–" if d is None or d == "" else str(d))]


def kv_table(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td class='l'>{_e(k)}</td><td class='l'>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<div class='wrap'><table>{rows}</table></div>"


def render_run_report(run: RunDir, figures: Mapping[str, RunFigure], versions: Mapping[str, str],
                      plotlyjs: str = "inline") -> str:
    """The whole report page of a run."""
    res = run.typed
    name = res.name or run.path.name
    models = (["oracle"] if res.oracle else []) + res.methods
    parts = [f"<h1>Erased or hidden? Run {_e(name)}</h1>",
             "<p>Each method below tried to make a model forget a set of facts. <b>Erased</b> means the facts are "
             "gone: relearning brings them back no faster than for an oracle model that never saw them. "
             "<b>Hidden</b> means they are still inside and only suppressed. The verdict comes first, then the "
             "evidence: Table 1, the figures (hover any point for its model, layer, module and neuron) and the "
             "run's configuration.</p>",
             f"<p class='note'>Run directory: {_e(run.path)}</p>",
             "<h2>Verdict per method</h2>", verdict_html(res.verdicts, models),
             "<h2>Table 1: erased or hidden?</h2>", table1_html(res)]
    for fig in figures.values():
        parts += [f"<h2>{_e(fig.heading)}</h2>", f"<p class='caption'>{_e(fig.caption)}</p>",
                  figure_html(fig.figure)]
    if not figures:
        parts.append("<p class='note'>No figures: the run has no attack, attribution or lens results.</p>")
    parts += ["<h2>Configuration</h2>", kv_table(_flatten(run.config)),
              "<h2>Versions</h2>", kv_table(list(versions.items()))]
    return page(f"neuronscope run {name}", "\n".join(parts), plotlyjs)


__all__ = ["kv_table", "render_run_report", "table1_html", "verdict_html", "verdict_label"]

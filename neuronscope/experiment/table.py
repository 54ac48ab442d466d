"""Table 1: per method FS, RS, US, the recovery under each attack, and the erase-vs-hide gap to the oracle.

A recovery cell is, for one attack, the mean over seeds of the maximum FS reached during retraining, at the
learning rate where that mean is highest (the strongest attack of the grid, chosen per model, the oracle
included), with the standard deviation over seeds. The gap is method minus oracle with a Welch 95% interval over
seeds: near zero means the method behaves like a model that never learned the facts (erased); clearly positive
means the facts came back faster than they could be learned from scratch (hidden).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from neuronscope.io import write_text
from neuronscope.stats import strongest as _strongest
from neuronscope.stats import summarize, welch_gap


def build_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model (base, oracle, methods) with plain numbers; formatting is left to the writers."""
    labels: list[str] = results["attack_labels"]
    attacks = results["attacks"]
    oracle_vals = {lab: _strongest(attacks["oracle"][lab])[1] for lab in labels} if "oracle" in attacks else {}
    floor = results.get("floor") or {}  # no oracle: the same attacks on never-known facts (experiment.floor)
    if not oracle_vals and floor:
        oracle_vals = {lab: _strongest(floor[lab])[1] for lab in labels if floor.get(lab)}
    rows: list[dict[str, Any]] = []
    names = ["base", *(["oracle"] if results.get("oracle") else []), *results["methods"]]
    for name in names:
        ev = results["evals"][name]
        row: dict[str, Any] = {"method": name, "FS": ev["fs"], "RS": ev["rs"], "US": ev["us"]}
        lm_eval = results.get("analyses", {}).get("utility", {}).get("models", {}).get(name)
        if lm_eval is not None:  # [utility]: the paper's US, the mean accuracy over lm-eval benchmarks
            row["US lm-eval"] = lm_eval["us"]
        verdict = results.get("verdicts", {}).get(name)
        if verdict is not None:  # the calibrated verdict (neuronscope.verdict); the oracle is its floor
            row["verdict"] = verdict["label"]
        elif name == "oracle" and results.get("verdicts"):
            row["verdict"] = "(floor)"
        un = results.get("unlearn", {}).get(name)
        if un is not None:
            row["reached"] = un.get("reached")
            row["steps"] = un.get("steps")
            row["lr"] = un.get("lr")
        for lab in labels:
            runs = attacks.get(name, {}).get(lab)
            if not runs:
                continue
            lr, vals = _strongest(runs)
            s = summarize(vals)
            row[lab] = {"mean": s.mean, "sd": s.sd, "ci95": s.ci95, "n": s.n, "lr": lr, "values": vals}
            if name != "oracle" and lab in oracle_vals:
                g = welch_gap(vals, oracle_vals[lab])
                row[f"gap {lab}"] = {"mean": g.mean, "se": g.sd, "ci95": g.ci95, "n": g.n}
        rows.append(row)
    if floor and "oracle" not in attacks:
        row = {"method": "floor (never known)", "FS": None, "RS": None, "US": None}
        for lab in labels:
            if floor.get(lab):
                lr, vals = _strongest(floor[lab])
                s = summarize(vals)
                row[lab] = {"mean": s.mean, "sd": s.sd, "ci95": s.ci95, "n": s.n, "lr": lr, "values": vals}
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    attack_cols = [c for c in cols if isinstance(next((r[c] for r in rows if c in r), None), dict)]
    plain = [c for c in cols if c not in attack_cols]
    recov = [c for c in attack_cols if not c.startswith("gap ")]
    gaps = [c for c in attack_cols if c.startswith("gap ")]
    return plain + recov + gaps


def _f(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:+.3f}" if signed else f"{x:.3f}"
    return str(x)


def _cell(c: str, v: Any) -> str:
    if v is None:
        return ""
    if c == "lr" and isinstance(v, int | float):
        return f"{v:g}"
    if not isinstance(v, dict):
        return _f(v)
    if c.startswith("gap "):
        if math.isnan(v["ci95"]):
            return _f(v["mean"], signed=True)
        return f"{_f(v['mean'], True)} [{_f(v['mean'] - v['ci95'], True)}, {_f(v['mean'] + v['ci95'], True)}]"
    return f"{_f(v['mean'])} ± {_f(v['sd'])}" if not math.isnan(v["sd"]) else _f(v["mean"])


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Flat CSV: recovery columns as <attack>_mean/_sd/_ci95/_n/_lr, gaps as gap_<attack>_mean/_ci95/_se."""
    flat_rows = []
    for r in rows:
        flat: dict[str, Any] = {}
        for c in _columns(rows):
            v = r.get(c)
            key = c.replace(" ", "_").replace("=", "")
            if isinstance(v, dict):
                for k, x in v.items():
                    if k != "values":
                        flat[f"{key}_{k}"] = x
            elif c in r:
                flat[key] = v
        flat_rows.append(flat)
    header: list[str] = []
    for f in flat_rows:
        header += [k for k in f if k not in header]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    for f in flat_rows:
        w.writerow({k: ("" if isinstance(x, float) and math.isnan(x) else x) for k, x in f.items()})
    return buf.getvalue()


_NOTE = ("Recovery = max FS during retraining on forget items not trained on (mean ± sd over seeds, strongest lr). "
         "Gap = method − oracle with a Welch 95% interval. Verdict: the calibrated rule (docs/verdict.md): hide if "
         "any calibrated analysis finds the facts above the oracle floor, erase if every one rules them out, else "
         "undetermined.")


def run_metric(results: dict[str, Any]) -> tuple[str, list[float]]:
    """How a run scored FS ('mc' or 'rouge', from its evaluations) and the thresholds its unlearning stopped at."""
    metric = next((e.get("metric") for e in results.get("evals", {}).values() if e.get("metric")), "mc")
    stops = [float(u["threshold"]) for u in results.get("unlearn", {}).values() if u.get("threshold") is not None]
    return metric, stops


def threshold_note(results: dict[str, Any]) -> str:
    """What FS means in this run and where unlearning stopped (chance, or TOFU's ROUGE-L threshold)."""
    metric, stops = run_metric(results)
    thresholds = sorted({round(t, 4) for t in stops})
    what = "mean ROUGE-L recall" if metric == "rouge" else "multiple-choice accuracy"
    stop = f" Unlearning stopped at FS <= {', '.join(f'{t:.4g}' for t in thresholds)}." if thresholds else ""
    floor = (" No oracle: every gap is to the floor row, the same attacks on facts the model never knew."
             if results.get("floor") and not results.get("oracle") else "")
    return f"FS, RS, US: {what}.{stop}{floor}"


def to_markdown(rows: list[dict[str, Any]], note: str = "") -> str:
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(c, r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + f"\n\n{_NOTE}{' ' + note if note else ''}\n"


def _short(c: str) -> str:
    return c.replace("harmful p=", "harm ").replace("benign", "ben.").replace("gap ", "gap\n")


def _compact(c: str, v: Any) -> str:
    """Two decimals and ± for the terminal: mean±sd for recovery, mean±95% half-width for gaps."""
    if not isinstance(v, dict):
        return f"{v:.2f}" if isinstance(v, float) else _cell(c, v)
    spread = v["ci95"] if c.startswith("gap ") else v["sd"]
    sign = "+" if c.startswith("gap ") else ""
    body = f"{v['mean']:{sign}.2f}"
    return body if math.isnan(spread) else f"{body}\n±{spread:.2f}"


def to_rich(rows: list[dict[str, Any]], title: str = "Table 1: erased or hidden?") -> Table:
    """The terminal view: FS/RS/US, recovery (mean±sd over seeds), gap to the oracle (mean±95% half-width)."""
    from rich import box

    cols = [c for c in _columns(rows) if c not in ("reached", "steps", "lr")]
    table = Table(title=title, caption=_NOTE.replace("with a Welch 95% interval", "± Welch 95% half-width"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for c in cols:
        table.add_column(_short(c), justify="left" if c == "method" else "right")
    for r in rows:
        table.add_row(*(_compact(c, r.get(c)) for c in cols), style="bold" if r["method"] == "oracle" else None)
    return table


def write_tables(rows: list[dict[str, Any]], out: str | Path, note: str = "") -> dict[str, Path]:
    out = Path(out)
    return {"csv": write_text(out / "table.csv", to_csv(rows)),
            "md": write_text(out / "table.md", to_markdown(rows, note))}

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
from neuronscope.run_results import AttackRun, Results
from neuronscope.stats import strongest as _strongest
from neuronscope.stats import summarize, welch_gap

FLOOR_ROW = "floor (never known)"  # the row of the same attacks on facts the base never knew (no oracle)


def _recovery(runs: list[AttackRun]) -> tuple[float, list[float]]:
    """(lr, per-seed max FS) at the strongest learning rate."""
    return _strongest([{"lr": r.lr, "max_fs": r.max_fs} for r in runs])


def _cell_of(runs: list[AttackRun]) -> dict[str, Any]:
    lr, vals = _recovery(runs)
    s = summarize(vals)
    return {"mean": s.mean, "sd": s.sd, "ci95": s.ci95, "n": s.n, "lr": lr, "values": vals}


def build_table(results: Results | dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model (base, oracle, methods) with plain numbers; formatting is left to the writers."""
    res = Results.coerce(results)
    labels = res.attack_labels
    attacks = res.attacks
    oracle_vals = {lab: _recovery(attacks["oracle"][lab])[1] for lab in labels} if "oracle" in attacks else {}
    floor = res.floor or {}  # no oracle: the same attacks on never-known facts (experiment.floor)
    if not oracle_vals and floor:
        oracle_vals = {lab: _recovery(floor[lab])[1] for lab in labels if floor.get(lab)}
    utility = res.analyses.utility.models if res.analyses.utility is not None else {}
    verdicts = res.verdicts or {}
    rows: list[dict[str, Any]] = []
    for name in res.models:
        ev = res.evals[name]
        row: dict[str, Any] = {"method": name, "FS": ev.fs, "RS": ev.rs, "US": ev.us}
        if name in utility:  # [utility]: the paper's US, the mean accuracy over lm-eval benchmarks
            row["US lm-eval"] = utility[name]["us"]
        if name in verdicts:  # the calibrated verdict (neuronscope.verdict); the oracle is its floor
            row["verdict"] = verdicts[name]["label"]
        elif name == "oracle" and verdicts:
            row["verdict"] = "(floor)"
        un = res.unlearn.get(name)
        if un is not None:
            row["reached"] = un.reached
            row["steps"] = un.steps
            row["lr"] = un.lr
        for lab in labels:
            runs = attacks.get(name, {}).get(lab)
            if not runs:
                continue
            row[lab] = _cell_of(runs)
            if name != "oracle" and lab in oracle_vals:
                g = welch_gap(row[lab]["values"], oracle_vals[lab])
                row[f"gap {lab}"] = {"mean": g.mean, "se": g.sd, "ci95": g.ci95, "n": g.n}
        rows.append(row)
    if floor and "oracle" not in attacks:
        row = {"method": FLOOR_ROW, "FS": None, "RS": None, "US": None}
        for lab in labels:
            if floor.get(lab):
                row[lab] = _cell_of(floor[lab])
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
_NOTE_NO_ORACLE = (
    "Recovery = max FS during retraining on forget items not trained on (mean ± sd over seeds, strongest lr). "
    "Gap = method − floor (never-known facts) with a Welch 95% interval. Verdict: the calibrated rule "
    "(docs/verdict.md) needs an oracle floor; without one it is undetermined.")


def _note(rows: list[dict[str, Any]]) -> str:
    """The table's note: its gaps are to the oracle, or (no oracle can exist) to the never-known floor."""
    methods = {r["method"] for r in rows}
    return _NOTE_NO_ORACLE if FLOOR_ROW in methods and "oracle" not in methods else _NOTE


def run_metric(results: Results | dict[str, Any]) -> tuple[str, list[float]]:
    """How a run scored FS ('mc' or 'rouge', from its evaluations) and the thresholds its unlearning stopped at."""
    res = Results.coerce(results)
    return res.metric(), res.stop_thresholds()


def threshold_note(results: Results | dict[str, Any]) -> str:
    """What FS means in this run and where unlearning stopped (chance, or TOFU's ROUGE-L threshold)."""
    res = Results.coerce(results)
    thresholds = sorted({round(t, 4) for t in res.stop_thresholds()})
    what = "mean ROUGE-L recall" if res.metric() == "rouge" else "multiple-choice accuracy"
    stop = f" Unlearning stopped at FS <= {', '.join(f'{t:.4g}' for t in thresholds)}." if thresholds else ""
    floor = (" No oracle: every gap is to the floor row, the same attacks on facts the model never knew. Those "
             "facts start near 0 and unlearned ones near chance, so these raw gaps include that difference of "
             "start; the verdict's shown-only comparison uses each attack's gain over its own start "
             "(docs/verdict.md)." if res.floor and not res.oracle else "")
    return f"FS, RS, US: {what}.{stop}{floor}"


def to_markdown(rows: list[dict[str, Any]], note: str = "") -> str:
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(c, r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + f"\n\n{_note(rows)}{' ' + note if note else ''}\n"


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
    table = Table(title=title, caption=_note(rows).replace("with a Welch 95% interval", "± Welch 95% half-width"),
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

"""Read a run directory (`neuronscope run`/`demo` output) into the tables the figure functions take.

Nothing is recomputed from models: recovery and trajectories come from results.json, the lens from results.json,
attribution from the parquet tables the attribution stage saved (only histograms and correlations of those
saved tables are derived here). The attribution package (and so torch) is imported only when its tables are read:
the results alone (Table 1, recovery, trajectories, the lens) need pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from neuronscope.errors import NeuronscopeError
from neuronscope.io import read_json
from neuronscope.plots.table import build_table, run_metric
from neuronscope.run_results import Results

SHIFT_COLUMNS = ("max", "min", "both")


@dataclass
class RunDir:
    """A finished run directory: its path, results.json (as written, and typed) and config.json."""

    path: Path
    results: dict[str, Any]
    config: dict[str, Any]

    @cached_property
    def typed(self) -> Results:
        return Results.from_json(self.results)

    @property
    def pairs(self) -> dict[str, Path]:
        """Attribution pairs ('base vs ga', 'ga vs ga+benign') -> their artifact directory."""
        attr = self.typed.analyses.attribution
        if attr is None or not attr.available:
            return {}
        return {k: self.path / v.dir for k, v in attr.pairs.items() if v.dir is not None}


def load_run(path: str | Path) -> RunDir:
    """Open a run directory; a missing directory or one without results.json is a user error."""
    p = Path(path)
    if not p.is_dir():
        raise NeuronscopeError(f"run directory {p} not found")
    if not (p / "results.json").is_file():
        raise NeuronscopeError(f"{p} is not a run directory (no results.json; run `neuronscope run` first)")
    try:
        results = read_json(p / "results.json")
        config = read_json(p / "config.json") if (p / "config.json").is_file() else results.get("config", {})
    except (OSError, ValueError) as e:
        raise NeuronscopeError(f"{p}: unreadable run files ({e})") from None
    if not isinstance(results, dict) or "attacks" not in results or "evals" not in results:
        raise NeuronscopeError(f"{p}/results.json is not a grid result (no attacks/evals)")
    return RunDir(p, results, config)


def forget_score(run: RunDir) -> dict[str, Any]:
    """How FS reads in this run, for the figures: its name, the reference line and that line's label.

    Multiple choice: accuracy, with the chance line where unlearning stopped (1/3 for 3 options). TOFU: ROUGE-L
    recall, with the stop threshold (0.1971) - a threshold, not a chance level.
    """
    metric, stops = run_metric(run.typed)
    if metric == "rouge":
        return {"score": "forget ROUGE-L recall", "chance": min(stops, default=None), "line_label": "stop threshold"}
    return {"score": "forget accuracy", "chance": min(stops, default=1 / 3), "line_label": "chance"}


def results_table(run: RunDir) -> pd.DataFrame:
    """Table 1 as written to table.csv."""
    csv = run.path / "table.csv"
    if not csv.is_file():
        raise NeuronscopeError(f"{csv} not found")
    return pd.read_csv(csv)


def recovery_frame(run: RunDir) -> pd.DataFrame:
    """Per (method, attack): mean/sd/n of the max FS over seeds at Table 1's (strongest) lr, and the values."""
    rows = []
    for row in build_table(run.typed):
        for lab in run.typed.attack_labels:
            cell = row.get(lab)
            if isinstance(cell, dict):
                rows.append({"method": row["method"], "attack": lab, "mean": cell["mean"], "sd": cell["sd"],
                             "n": cell["n"], "lr": cell["lr"], "values": cell["values"]})
    return pd.DataFrame(rows, columns=["method", "attack", "mean", "sd", "n", "lr", "values"])


def trajectory_frame(run: RunDir) -> pd.DataFrame:
    """Every attack run's trajectory, long: method, attack, lr, seed, step, fs."""
    rows = [{"method": method, "attack": lab, "lr": r.lr, "seed": r.seed, "step": pt["step"], "fs": pt["fs"]}
            for method, by_label in run.typed.attacks.items() for lab, runs in by_label.items()
            for r in runs for pt in r.trajectory]
    return pd.DataFrame(rows, columns=["method", "attack", "lr", "seed", "step", "fs"])


def lens_frame(run: RunDir) -> pd.DataFrame:
    """Per-layer lens accuracy per model (base, oracle, methods); empty when the run had no lens stage."""
    lens = run.typed.analyses.lens
    frames = ([pd.DataFrame(rows).assign(model=name) for name, rows in lens.models.items()]
              if lens is not None and lens.available else [])
    if not frames:
        return pd.DataFrame(columns=["model", "layer", "accuracy", "n"])
    out = pd.concat(frames, ignore_index=True)
    return out[["model", *[c for c in out.columns if c != "model"]]]


def _table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise NeuronscopeError(f"{path} not found (incomplete attribution artifact?)")
    from neuronscope.attribution.neurons import aggregate, load_table

    t = load_table(path)
    return aggregate(t) if "item" in t.columns else t


def influence_frames(run: RunDir, name: str) -> dict[str, pd.DataFrame]:
    """For 'base vs <name>': the saved curves (Figure 3) and module_layer (Figure 5) tables that exist."""
    d = run.pairs.get(f"base vs {name}")
    if d is None:
        return {}
    from neuronscope.attribution.neurons import load_table

    return {k: load_table(d / f"{k}.parquet") for k in ("curves", "module_layer") if (d / f"{k}.parquet").is_file()}


def shift_attacks(run: RunDir) -> list[str]:
    """The attack kinds whose attacked models were attributed ('X vs X+harmful', 'X vs X+benign')."""
    kinds = []
    for pair in run.pairs:
        before, sep, after = pair.partition(" vs ")
        if sep and "+" in after and after.split("+", 1)[0] == before:
            kinds.append(after.split("+", 1)[1])
    return list(dict.fromkeys(kinds))


def shift_frames(run: RunDir, column: str = "both", bins: int = 60, attack: str | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Figure 6 tables: (distributions, correlations, scatter) for every model with an attacked attribution.

    original = base, unlearned = the model, attacked = the model after the kept attack ('X vs X+attack'); each
    method's histograms share bins. scatter holds per-neuron `max` attribution before and after the attack.
    `attack` picks the attack kind; None takes the paper's harmful attack where the run attributed one, else the
    kind it has (the run's `[attribution] attack`). A kind the run did not attribute is a user error.
    """
    from neuronscope.attribution.shift import attribution_distributions, attribution_shift

    kinds = shift_attacks(run)
    if attack is None:
        attack = "harmful" if "harmful" in kinds or not kinds else kinds[0]
    elif kinds and attack not in kinds:
        raise NeuronscopeError(f"{run.path}: no attribution after a {attack!r} attack (the run has "
                               f"{', '.join(kinds)}; set [attribution] attack = \"{attack}\" and rerun)")
    dists, corrs, scatters = [], [], []
    for pair, d in run.pairs.items():
        before, sep, after = pair.partition(" vs ")
        if not sep or after != f"{before}+{attack}":
            continue
        unl_dir = run.pairs.get(f"base vs {before}")
        unlearned, attacked = _table(d / "attribution_base.parquet"), _table(d / "attribution.parquet")
        tables = {"unlearned": unlearned, "attacked": attacked}
        if unl_dir is not None:
            tables = {"original": _table(unl_dir / "attribution_base.parquet"), **tables}
        dists.append(attribution_distributions(tables, column=column, bins=bins).rename(columns={"model": "role"})
                     .assign(method=before, attack=attack))
        shift = attribution_shift(unlearned, attacked, columns=[column])[column]
        corrs.append({"method": before, "attack": attack, "column": column, **shift})
        scatters.append(pd.DataFrame({"method": before, "attack": attack, "layer": unlearned["layer"],
                                      "module": unlearned["module"], "neuron": unlearned["neuron"],
                                      "before": unlearned["max"], "after": attacked["max"].to_numpy()}))
    dist = pd.concat(dists, ignore_index=True) if dists else pd.DataFrame(
        columns=["method", "role", "bin_left", "bin_right", "count", "density"])
    corr = pd.DataFrame(corrs, columns=["method", "attack", "column", "pearson", "spearman", "mean_abs_change", "n"])
    scat = pd.concat(scatters, ignore_index=True) if scatters else pd.DataFrame(
        columns=["method", "attack", "layer", "module", "neuron", "before", "after"])
    return dist, corr, scat


__all__ = ["RunDir", "influence_frames", "lens_frame", "load_run", "patching_frames", "recovery_frame", "results_table",
           "shift_attacks", "shift_frames", "trajectory_frame"]


def patching_frames(run: RunDir, names: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, float]]]:
    """Per model with a 'base vs <name>' patching table: the recovery curves and {base, unlearned} accuracy."""
    curves: dict[str, pd.DataFrame] = {}
    accuracy: dict[str, dict[str, float]] = {}
    for name in names:
        d = run.pairs.get(f"base vs {name}")
        if d is None or not (d / "patching.parquet").is_file():
            continue
        from neuronscope.attribution.neurons import load_table

        curves[name] = load_table(d / "patching.parquet")
        attr = run.typed.analyses.attribution
        assert attr is not None  # run.pairs named this pair
        accuracy[name] = dict(attr.pairs[f"base vs {name}"].summary.get("forget_accuracy", {}))
    return curves, accuracy

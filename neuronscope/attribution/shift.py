"""Attribution shift between checkpoints (docs/method.md section 8, the data of Figure 6).

Given attribution tables of the same neurons in two or more models (e.g. original, unlearned, and unlearned then
attacked), how much did per-neuron attribution move? The paper reports the correlation before vs after a harmful
attack (GA 0.73, NPO 0.87, Ssiuu 0.99): an unlearning that only hid knowledge is rewired by a few steps of
relearning, so its attributions move more. Correlations are over neurons, of the aggregated `max` (positive
influence), `min` (negative influence) or `both` (the two stacked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from neuronscope.attribution.neurons import aggregate
from neuronscope.errors import NeuronscopeError

KEYS = ["layer", "module", "neuron"]
COLUMNS = ("max", "min", "both")


def _aggregated(t: pd.DataFrame) -> pd.DataFrame:
    return aggregate(t) if "item" in t.columns else t


def attribution_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """The per-neuron vector a correlation is taken over ('both' = max then min)."""
    t = _aggregated(table)
    if column == "both":
        return np.concatenate([t["max"].to_numpy(np.float64), t["min"].to_numpy(np.float64)])
    if column not in ("max", "min"):
        raise NeuronscopeError(f"column must be one of {', '.join(COLUMNS)}, got {column!r}")
    return t[column].to_numpy(np.float64)


def _check_same_neurons(a: pd.DataFrame, b: pd.DataFrame) -> None:
    if len(a) != len(b) or not (a[KEYS].astype(str).to_numpy() == b[KEYS].astype(str).to_numpy()).all():
        raise NeuronscopeError("the attribution tables list different neurons (not the same architecture?)")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; nan when either vector is constant."""
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties), without scipy."""
    return pearson(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())


def attribution_shift(table_a: pd.DataFrame, table_b: pd.DataFrame, columns: Sequence[str] = COLUMNS
                      ) -> dict[str, dict[str, float]]:
    """Per column: Pearson and Spearman correlation over neurons, and the mean absolute change."""
    a, b = _aggregated(table_a), _aggregated(table_b)
    _check_same_neurons(a, b)
    out: dict[str, dict[str, float]] = {}
    for col in columns:
        x, y = attribution_values(a, col), attribution_values(b, col)
        out[col] = {"pearson": pearson(x, y), "spearman": spearman(x, y),
                    "mean_abs_change": float(np.abs(x - y).mean()), "n": int(len(x))}
    return out


def correlation_matrix(tables: Mapping[str, pd.DataFrame], column: str = "both", method: str = "pearson"
                       ) -> pd.DataFrame:
    """Pairwise correlations between several models' attributions (rows and columns named by model)."""
    fn = {"pearson": pearson, "spearman": spearman}.get(method)
    if fn is None:
        raise NeuronscopeError(f"method must be 'pearson' or 'spearman', got {method!r}")
    names = list(tables)
    aggs = [_aggregated(tables[n]) for n in names]
    for t in aggs[1:]:
        _check_same_neurons(aggs[0], t)
    vals = [attribution_values(t, column) for t in aggs]
    mat = np.array([[fn(x, y) for y in vals] for x in vals])
    return pd.DataFrame(mat, index=names, columns=names)


def attribution_distributions(tables: Mapping[str, pd.DataFrame], column: str = "both", bins: int = 60,
                              quantile: float = 0.999) -> pd.DataFrame:
    """Histograms of per-neuron attribution for several models on shared bins (Figure 6, left).

    The bin range covers the central `quantile` of all values pooled (attributions are heavy-tailed; the tails
    are counted in the outermost bins). Long format: model, bin_left, bin_right, count, density.
    """
    vals = {name: attribution_values(t, column) for name, t in tables.items()}
    pooled = np.concatenate(list(vals.values())) if vals else np.zeros(0)
    if pooled.size == 0:
        return pd.DataFrame(columns=["model", "bin_left", "bin_right", "count", "density"])
    lo, hi = np.quantile(pooled, [(1 - quantile) / 2, 1 - (1 - quantile) / 2])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for name, v in vals.items():
        counts, _ = np.histogram(np.clip(v, lo, hi), bins=edges)
        width = edges[1] - edges[0]
        rows.append(pd.DataFrame({"model": name, "bin_left": edges[:-1], "bin_right": edges[1:], "count": counts,
                                  "density": counts / max(len(v), 1) / width}))
    return pd.concat(rows, ignore_index=True)

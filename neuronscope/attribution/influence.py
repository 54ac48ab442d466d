"""Influence variation between a base and an unlearned model: erase (D+) versus hide (D-) (docs/method.md).

Per neuron i, over the forget items:

    D+_i = mean [ max_k A_base(i,k) - max(max_k A_unl(i,k), 0) ]    lost positive influence ("erased")
    D-_i = mean [ min_k A_base(i,k) - min_k A_unl(i,k) ]            gained negative influence ("hidden")
    D~+_i = max(D+_i, 0),  D~-_i = max(D-_i, 0)

The inner max(., 0) keeps a neuron that flips from positive to negative influence from counting as erased (its
new negative influence shows up in D- instead). Both terms are means of per-item differences, so they also follow
from the aggregated tables: D+ = mean(max_base) - mean(max_pos_unl) and D- = mean(min_base) - mean(min_unl),
which is why the aggregated table keeps `max_pos` (the mean of the clipped per-item max) next to `max`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from neuronscope.attribution.neurons import NeuronScores, aggregate
from neuronscope.errors import NeuronscopeError

KEYS = ["layer", "module", "neuron"]
TOP_M = 100


def influence_terms(
    max_base: Float[Tensor, "example neuron"],
    min_base: Float[Tensor, "example neuron"],
    max_unl: Float[Tensor, "example neuron"],
    min_unl: Float[Tensor, "example neuron"],
) -> tuple[Float[Tensor, " neuron"], Float[Tensor, " neuron"]]:
    """Unclipped D+ and D- from per-example max_k/min_k attributions of the same items in both models."""
    if not (max_base.shape == min_base.shape == max_unl.shape == min_unl.shape):
        raise ValueError("the four attribution tensors must have the same (example, neuron) shape")
    d_plus = (max_base - max_unl.clamp(min=0)).mean(0)
    d_minus = (min_base - min_unl).mean(0)
    return d_plus, d_minus


def _frame(index: pd.DataFrame, d_plus_raw: np.ndarray, d_minus_raw: np.ndarray) -> pd.DataFrame:
    out = index[KEYS].reset_index(drop=True).copy()
    out["d_plus_raw"] = d_plus_raw
    out["d_minus_raw"] = d_minus_raw
    out["d_plus"] = np.clip(d_plus_raw, 0, None)
    out["d_minus"] = np.clip(d_minus_raw, 0, None)
    return out


def influence_from_scores(base: NeuronScores, unlearned: NeuronScores) -> pd.DataFrame:
    """D+/D- per neuron from per-example scores of the same items (the paper's formula, item by item)."""
    if base.item_ids != unlearned.item_ids:
        raise NeuronscopeError("base and unlearned attributions are over different items")
    if base.n_neurons != unlearned.n_neurons:
        raise NeuronscopeError(f"base and unlearned models have different neuron counts ({base.n_neurons} vs "
                               f"{unlearned.n_neurons})")
    if not (base.has_examples and unlearned.has_examples):  # streamed: the same means, from the per-neuron sums
        (max_b, _, min_b), (_, max_pos_u, min_u) = base.means(), unlearned.means()
        return _frame(base.neuron_index(), (max_b - max_pos_u).numpy(), (min_b - min_u).numpy())
    mb, nb = base.stacked()
    mu, nu = unlearned.stacked()
    d_plus, d_minus = influence_terms(mb.double(), nb.double(), mu.double(), nu.double())
    return _frame(base.neuron_index(), d_plus.numpy(), d_minus.numpy())


def influence_variation(base_table: pd.DataFrame, unlearned_table: pd.DataFrame) -> pd.DataFrame:
    """D+/D- per neuron from two attribution tables (aggregated, or per-example, which are aggregated first).

    Returns layer, module, neuron, d_plus_raw, d_minus_raw and the clipped d_plus, d_minus.
    """
    tables = [aggregate(t) if "item" in t.columns else t for t in (base_table, unlearned_table)]
    for name, t in zip(("base", "unlearned"), tables, strict=True):
        missing = {*KEYS, "max", "max_pos", "min"} - set(t.columns)
        if missing:
            raise NeuronscopeError(f"{name} attribution table lacks column(s) {', '.join(sorted(missing))}")
    b, u = tables
    if len(b) != len(u):
        raise NeuronscopeError(f"base and unlearned tables have different neuron counts ({len(b)} vs {len(u)})")
    same = (b["layer"].to_numpy() == u["layer"].to_numpy()).all() and (
        b["neuron"].to_numpy() == u["neuron"].to_numpy()).all() and (
        b["module"].astype(str).to_numpy() == u["module"].astype(str).to_numpy()).all()
    if not same:
        raise NeuronscopeError("base and unlearned tables list different neurons (not the same architecture?)")
    if "n" in b.columns and "n" in u.columns and int(b["n"].iloc[0]) != int(u["n"].iloc[0]):
        raise NeuronscopeError(f"base and unlearned tables are over different item counts "
                               f"({int(b['n'].iloc[0])} vs {int(u['n'].iloc[0])})")
    d_plus = b["max"].to_numpy(np.float64) - u["max_pos"].to_numpy(np.float64)
    d_minus = b["min"].to_numpy(np.float64) - u["min"].to_numpy(np.float64)
    return _frame(b, d_plus, d_minus)


def ranked(influence: pd.DataFrame, column: str) -> pd.DataFrame:
    """Neurons sorted by `column` descending; ties keep table order (layer, module, neuron) so ranks are stable."""
    return influence.sort_values(column, ascending=False, kind="stable").reset_index(drop=True)


def cumulative_curves(influence: pd.DataFrame) -> pd.DataFrame:
    """Figure 3(b) data: for D~+ and D~- separately, the cumulative sum over the top-m neurons, m = 1..N.

    Long format: kind (d_plus | d_minus), m, layer, module, neuron (the neuron at rank m), value, cumulative.
    """
    parts = []
    for kind in ("d_plus", "d_minus"):
        r = ranked(influence, kind)
        parts.append(pd.DataFrame({
            "kind": kind,
            "m": np.arange(1, len(r) + 1),
            "layer": r["layer"].to_numpy(),
            "module": r["module"].astype(str).to_numpy(),
            "neuron": r["neuron"].to_numpy(),
            "value": r[kind].to_numpy(),
            "cumulative": np.cumsum(r[kind].to_numpy()),
        }))
    return pd.concat(parts, ignore_index=True)


def top_m_sum(influence: pd.DataFrame, m: int = TOP_M) -> dict[str, float]:
    """Figure 3(c): the sum of the m largest D~+ and, separately, the m largest D~-."""
    return {kind: float(influence[kind].nlargest(m).sum()) for kind in ("d_plus", "d_minus")}


def paper_verdict(top: dict[str, float]) -> str:
    """The paper's rule: 'erase' if top-m D+ exceeds top-m D-, 'hide' if the reverse, 'none' if both are 0.

    Not the toolkit's verdict: with the P target it calls a model that hides by construction "erase"
    (neuronscope.verdict and docs/verdict.md have the calibrated rule).
    """
    if top["d_plus"] == 0 and top["d_minus"] == 0:
        return "none"
    if top["d_plus"] == top["d_minus"]:
        return "tie"
    return "erase" if top["d_plus"] > top["d_minus"] else "hide"


def module_layer_table(influence: pd.DataFrame, top: int = TOP_M) -> pd.DataFrame:
    """Figure 5 data: per (layer, module), the mean of its `top` largest D~+ and, separately, D~-.

    Also the strongest neuron of each cell (for hover text) and the cell's neuron count; a module with fewer than
    `top` neurons is averaged over all of them.
    """
    rows = []
    for (layer, module), g in influence.groupby(["layer", "module"], sort=True, observed=True):
        row: dict[str, object] = {"layer": int(layer), "module": str(module), "n_neurons": len(g)}
        for kind in ("d_plus", "d_minus"):
            vals = g[kind].to_numpy()
            order = np.argsort(-vals, kind="stable")
            row[f"{kind}_top_mean"] = float(vals[order[:top]].mean())
            row[f"{kind}_top_neuron"] = int(g["neuron"].to_numpy()[order[0]])
            row[f"{kind}_max"] = float(vals[order[0]])
        rows.append(row)
    return pd.DataFrame(rows)


def influence_summary(influence: pd.DataFrame, m: int = TOP_M) -> dict[str, object]:
    """The headline numbers: top-m sums, the paper's verdict, totals and how many neurons moved each way."""
    top = top_m_sum(influence, m)
    return {
        f"top{m}_d_plus": top["d_plus"],
        f"top{m}_d_minus": top["d_minus"],
        "paper_verdict": paper_verdict(top),
        "total_d_plus": float(influence["d_plus"].sum()),
        "total_d_minus": float(influence["d_minus"].sum()),
        "n_neurons": len(influence),
        "n_d_plus_positive": int((influence["d_plus"] > 0).sum()),
        "n_d_minus_positive": int((influence["d_minus"] > 0).sum()),
    }

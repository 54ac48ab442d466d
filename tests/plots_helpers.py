"""Synthetic inputs for every figure with any number of methods, built without training (seeded numbers), so
layout tests can draw 1, 3, 7 and 12 methods in seconds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from neuronscope.attribution.influence import cumulative_curves, module_layer_table

NAMES = ["ga", "gd", "dpo", "npo", "rmu", "ssiuu", "ssiuu_anchor", "ssiuu_neuron", "simnpo", "ga_kl", "npo_rt",
         "rmu_adaptive"]
ATTACKS = ["harmful p=0.1", "harmful p=0.3", "benign"]
MODULES = ["q", "k", "v", "o", "gate", "up", "down"]


def methods(n: int) -> list[str]:
    return NAMES[:n]


def influence_table(rng: np.random.Generator, layers: int = 4, width: int = 16) -> pd.DataFrame:
    rows = [(layer, mod, k) for layer in range(layers) for mod in MODULES for k in range(width)]
    t = pd.DataFrame(rows, columns=["layer", "module", "neuron"])
    t["d_plus"] = rng.exponential(1e-3, len(t))
    t["d_minus"] = rng.exponential(5e-4, len(t))
    return t


def frames(n: int, seed: int = 0) -> dict[str, Any]:
    """Every figure input for `n` methods plus the oracle."""
    rng = np.random.default_rng(seed)
    models = ["oracle", *methods(n)]
    rec = pd.DataFrame([{"method": m, "attack": a, "mean": rng.uniform(0.3, 0.9), "sd": rng.uniform(0, 0.1),
                         "n": 3, "lr": 1e-5, "values": []} for m in models for a in ATTACKS])
    traj = pd.DataFrame([{"method": m, "attack": a, "lr": 1e-5, "seed": s, "step": st,
                          "fs": rng.uniform(0.3, 0.9)} for m in models for a in ATTACKS for s in range(2)
                         for st in (0, 5, 10)])
    infl = {m: influence_table(rng) for m in models}
    curves = {m: cumulative_curves(t) for m, t in infl.items()}
    module_layer = {m: module_layer_table(t, top=10) for m, t in infl.items()}
    lens = pd.DataFrame([{"model": m, "layer": layer, "accuracy": 0.5 if m in ("gd", "npo") else rng.uniform(0, 1),
                          "n": 24} for m in ["base", *models] for layer in range(2)])
    patch = {m: pd.DataFrame([{"selection": s, "m": k, "forget_accuracy": rng.uniform(0.3, 1.0)}
                              for s in ("d_minus", "d_plus", "random") for k in (0, 1, 10, 100, 1000)])
             for m in models}
    acc = {m: {"base": 1.0, "unlearned": 0.33} for m in models}
    dist_rows, corr_rows, scat = [], [], []
    for m in models:
        edges = np.linspace(-4e-3, 6e-3, 31)
        for role in ("original", "unlearned", "attacked"):
            dens = rng.exponential(100, 30)
            dist_rows += [{"method": m, "attack": "harmful", "role": role, "bin_left": a, "bin_right": b,
                           "count": 1, "density": d} for a, b, d in zip(edges[:-1], edges[1:], dens, strict=True)]
        corr_rows.append({"method": m, "attack": "harmful", "column": "both", "pearson": rng.uniform(0.5, 1.0),
                          "spearman": rng.uniform(0.5, 1.0), "mean_abs_change": 1e-4, "n": 100})
        before = rng.normal(0, 1e-3, 200)
        scat.append(pd.DataFrame({"method": m, "attack": "harmful", "layer": 0, "module": "q",
                                  "neuron": np.arange(200), "before": before,
                                  "after": before + rng.normal(0, 5e-4, 200)}))
    return {"models": models, "recovery": rec, "trajectories": traj, "curves": curves, "module_layer": module_layer,
            "lens": lens, "patching": patch, "accuracy": acc, "distributions": pd.DataFrame(dist_rows),
            "correlations": pd.DataFrame(corr_rows), "scatter": pd.concat(scat, ignore_index=True)}


def all_figures(n: int) -> dict[str, Any]:
    """{figure id: plotly figure} of every figure function on `n` synthetic methods."""
    from neuronscope.plots.attacks import figure2_recovery, figure2_trajectories
    from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps, patching_facets
    from neuronscope.plots.lens import figure4_lens
    from neuronscope.plots.shift import figure6_correlations, figure6_distributions, figure6_scatter

    f = frames(n)
    return {f"n{n}-figure2_recovery": figure2_recovery(f["recovery"]),
            f"n{n}-figure2_trajectories": figure2_trajectories(f["trajectories"]),
            f"n{n}-figure3_cumulative": figure3_cumulative(f["curves"]),
            f"n{n}-figure4_lens": figure4_lens(f["lens"]),
            f"n{n}-figure5_heatmaps": figure5_heatmaps(f["module_layer"], top=10),
            f"n{n}-patching_curves": patching_facets(f["patching"], f["accuracy"]),
            f"n{n}-figure6_correlations": figure6_correlations(f["correlations"]),
            f"n{n}-figure6_distributions": figure6_distributions(f["distributions"]),
            f"n{n}-figure6_scatter": figure6_scatter(f["scatter"])}

"""D+/D- clipping rules, curves, module x layer means and attribution shift on hand-built tensors and tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from neuronscope.attribution.influence import (
    cumulative_curves,
    influence_from_scores,
    influence_terms,
    influence_variation,
    module_layer_table,
    paper_verdict,
    top_m_sum,
)
from neuronscope.attribution.neurons import NeuronScores
from neuronscope.attribution.shift import attribution_distributions, attribution_shift, correlation_matrix
from neuronscope.errors import NeuronscopeError
from neuronscope.models.projections import Projection


def test_influence_terms_hand_built() -> None:
    # 2 items x 4 neurons
    max_b = torch.tensor([[2.0, 1.0, 0.5, -1.0], [4.0, 1.0, 0.5, -3.0]])
    min_b = torch.tensor([[0.0, -1.0, 0.0, -2.0], [0.0, -1.0, -2.0, -4.0]])
    max_u = torch.tensor([[1.0, -5.0, 0.5, -2.0], [1.0, -5.0, 1.5, -2.0]])
    min_u = torch.tensor([[-3.0, -5.0, 0.0, -2.0], [-1.0, -5.0, 0.0, -4.0]])
    d_plus, d_minus = influence_terms(max_b, min_b, max_u, min_u)
    # neuron 0: lost positive influence (2->1, 4->1): D+ = mean(1, 3) = 2; gained negative: D- = mean(3, 1) = 2
    # neuron 1: flipped from +1 to -5: the inner clip makes it "erased" by only 1 (not 6); D- = mean(4, 4) = 4
    # neuron 2: gained positive influence in item 2: D+ = mean(0, -1) = -0.5 (clipped later)
    # neuron 3: negative in base; inner clip -> D+ = mean(-1 - 0, -3 - 0) = -2; min moved up -> D- = mean(0, 0)
    assert d_plus.tolist() == [2.0, 1.0, -0.5, -2.0]
    assert d_minus.tolist() == [2.0, 4.0, -1.0, 0.0]
    with pytest.raises(ValueError):
        influence_terms(max_b, min_b, max_u[:1], min_u)


def _scores(max_: torch.Tensor, min_: torch.Tensor, ids: list[str]) -> NeuronScores:
    projs = [Projection(0, "q", "blocks.0.attn.q.hook_out"), Projection(1, "down", "blocks.1.mlp.out.hook_out")]
    return NeuronScores(projs, {projs[0].hook: max_[:, :2], projs[1].hook: max_[:, 2:]},
                        {projs[0].hook: min_[:, :2], projs[1].hook: min_[:, 2:]}, ids, "prompt")


def test_clipping_and_aggregated_tables_agree_with_per_item_formula() -> None:
    g = torch.Generator().manual_seed(0)
    mb, mu = torch.randn(5, 5, generator=g), torch.randn(5, 5, generator=g)
    nb, nu = mb - torch.rand(5, 5, generator=g), mu - torch.rand(5, 5, generator=g)
    ids = [f"i{j}" for j in range(5)]
    base, unl = _scores(mb, nb, ids), _scores(mu, nu, ids)
    exact = influence_from_scores(base, unl)
    want_plus = (mb.double() - mu.double().clamp(min=0)).mean(0)
    want_minus = (nb.double() - nu.double()).mean(0)
    np.testing.assert_allclose(exact["d_plus_raw"], want_plus.numpy(), rtol=1e-6)
    np.testing.assert_allclose(exact["d_plus"], want_plus.clamp(min=0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(exact["d_minus"], want_minus.clamp(min=0).numpy(), rtol=1e-6)
    assert (exact["d_plus"] >= 0).all() and (exact["d_minus"] >= 0).all()
    assert list(exact["module"].astype(str)) == ["q", "q", "down", "down", "down"]
    # the same from aggregated tables and from per-example tables
    for per in (False, True):
        via = influence_variation(base.table(per_example=per), unl.table(per_example=per))
        np.testing.assert_allclose(via["d_plus_raw"], exact["d_plus_raw"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(via["d_minus_raw"], exact["d_minus_raw"], rtol=1e-5, atol=1e-6)
    with pytest.raises(NeuronscopeError):
        influence_from_scores(base, _scores(mu, nu, ids[::-1]))
    with pytest.raises(NeuronscopeError):
        influence_variation(base.table(), unl.table().iloc[:3])


def _influence(d_plus: list[float], d_minus: list[float], layers: list[int], modules: list[str]) -> pd.DataFrame:
    n = len(d_plus)
    return pd.DataFrame({"layer": layers, "module": modules, "neuron": list(range(n)), "d_plus_raw": d_plus,
                         "d_minus_raw": d_minus, "d_plus": d_plus, "d_minus": d_minus})


def test_curves_top_m_module_layer_and_paper_verdict() -> None:
    inf = _influence([0.0, 3.0, 1.0, 0.5], [2.0, 0.0, 0.0, 5.0], [0, 0, 1, 1], ["q", "q", "q", "k"])
    curves = cumulative_curves(inf)
    plus = curves[curves.kind == "d_plus"]
    assert plus["cumulative"].tolist() == [3.0, 4.0, 4.5, 4.5]
    assert plus["neuron"].tolist() == [1, 2, 3, 0]
    minus = curves[curves.kind == "d_minus"]
    assert minus["cumulative"].tolist() == [5.0, 7.0, 7.0, 7.0]
    assert minus[["layer", "module"]].iloc[0].tolist() == [1, "k"]
    assert top_m_sum(inf, 2) == {"d_plus": 4.0, "d_minus": 7.0}
    assert paper_verdict(top_m_sum(inf, 2)) == "hide"
    assert paper_verdict({"d_plus": 2.0, "d_minus": 1.0}) == "erase"
    assert paper_verdict({"d_plus": 0.0, "d_minus": 0.0}) == "none"
    ml = module_layer_table(inf, top=1).set_index(["layer", "module"])
    assert ml.loc[(0, "q"), "d_plus_top_mean"] == 3.0 and ml.loc[(0, "q"), "d_plus_top_neuron"] == 1
    assert ml.loc[(0, "q"), "d_minus_top_mean"] == 2.0
    assert ml.loc[(1, "k"), "d_minus_top_mean"] == 5.0
    ml2 = module_layer_table(inf, top=100).set_index(["layer", "module"])  # fewer than 100: mean of all
    assert ml2.loc[(0, "q"), "d_plus_top_mean"] == 1.5 and ml2.loc[(0, "q"), "n_neurons"] == 2


def test_attribution_shift_and_distributions() -> None:
    rng = np.random.default_rng(0)
    n = 200
    base = pd.DataFrame({"layer": 0, "module": "q", "neuron": np.arange(n), "max": rng.normal(size=n),
                         "max_pos": 0.0, "min": rng.normal(size=n) - 2})
    same = attribution_shift(base, base.copy())
    assert same["max"]["pearson"] == pytest.approx(1.0) and same["both"]["spearman"] == pytest.approx(1.0)
    assert same["min"]["mean_abs_change"] == 0.0
    flipped = base.assign(max=-base["max"])
    assert attribution_shift(base, flipped)["max"]["pearson"] == pytest.approx(-1.0)
    noisy = base.assign(max=base["max"] + rng.normal(size=n))
    r = attribution_shift(base, noisy)["max"]["pearson"]
    assert 0.5 < r < 0.9  # signal and noise of equal variance: about 0.71
    mat = correlation_matrix({"a": base, "b": noisy, "c": base}, column="max")
    assert mat.loc["a", "c"] == pytest.approx(1.0) and mat.loc["a", "b"] == pytest.approx(r)
    dist = attribution_distributions({"a": base, "b": noisy}, column="max", bins=10)
    assert set(dist["model"]) == {"a", "b"} and len(dist) == 20
    assert dist.groupby("model")["count"].sum().tolist() == [n, n]
    with pytest.raises(NeuronscopeError):
        attribution_shift(base, base.iloc[:10])


def test_figures_from_tables_and_offline_report(tmp_path) -> None:
    from neuronscope.plots import figure3_cumulative, figure5_heatmaps, patching_figure, write_report

    inf = _influence([0.0, 3.0, 1.0, 0.5], [2.0, 0.0, 0.0, 5.0], [0, 0, 1, 1], ["q", "q", "q", "k"])
    curves = cumulative_curves(inf)
    fig3 = figure3_cumulative({"GA": curves, "Ssiuu": curves}, m=2)
    lines = [t for t in fig3.data if t.type == "scatter"]
    assert len(lines) == 4 and {t.line.dash for t in lines} == {"dot", "solid"}
    assert "layer 1 k neuron 3" in lines[1].hovertext[0]  # D- rank 1 is neuron 3 of layer 1's k
    bars = [t for t in fig3.data if t.type == "bar"]
    assert list(bars[0].y) == [4.0, 4.0] and list(bars[1].y) == [7.0, 7.0]  # top-2 sums of D+ and D-
    fig5 = figure5_heatmaps(module_layer_table(inf, top=1), top=1)
    heat = fig5.data[1]  # D-
    assert list(heat.y) == ["q", "k"] and heat.z[1][1] == 5.0 and heat.z[1][0] is None
    assert "neuron 3" in heat.text[1][1]
    patch = pd.DataFrame({"selection": ["d_minus", "d_minus", "random", "random"], "m": [0, 2, 0, 2],
                          "forget_accuracy": [0.1, 0.9, 0.1, 0.1]})
    figp = patching_figure(patch, base_accuracy=1.0, unlearned_accuracy=0.1)
    assert [list(t.x) for t in figp.data] == [[2], [2]]  # m = 0 is the unlearned reference line, not a point
    path = write_report(tmp_path / "r.html", "t", [("a", fig3), ("b", fig5), ("c", patch), ("d", "note")])
    text = path.read_text()
    assert text.count("<script type='text/javascript'>") == 1 and "cdn.plot.ly/plotly" not in text
    assert text.count("Plotly.newPlot") == 2 and "<table" in text

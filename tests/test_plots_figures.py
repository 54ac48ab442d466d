"""Figures 2, 4, 6 and `neuronscope figures` on a small-profile run directory (built once per module)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from neuronscope.attribution.neurons import load_table
from neuronscope.cli import app
from neuronscope.errors import NeuronscopeError
from neuronscope.plots.attacks import figure2_recovery, figure2_trajectories
from neuronscope.plots.colors import METHOD_COLORS, method_color, method_colors
from neuronscope.plots.influence import figure3_cumulative, figure5_heatmaps
from neuronscope.plots.lens import figure4_lens
from neuronscope.plots.rundir import (
    RunDir,
    influence_frames,
    lens_frame,
    load_run,
    recovery_frame,
    shift_attacks,
    shift_frames,
    trajectory_frame,
)
from neuronscope.plots.shift import figure6_correlations, figure6_distributions, figure6_scatter

runner = CliRunner()
MODELS = ["oracle", "ga", "gd"]  # the small profile: oracle + ga, gd
ATTACKS = ["harmful p=0.1", "harmful p=0.3", "benign"]


@pytest.fixture(scope="module")
def run_dir(small_run: tuple[Path, str]) -> Path:
    return small_run[0]


@pytest.fixture(scope="module")
def run(run_dir: Path) -> RunDir:
    return load_run(run_dir)


def test_figure2_recovery_bars_match_results(run: RunDir) -> None:
    rec = recovery_frame(run)
    assert sorted(rec["method"].unique()) == sorted(MODELS) and set(rec["attack"]) == set(ATTACKS)
    fig = figure2_recovery(rec)
    assert [t.name for t in fig.data] == MODELS  # oracle first, as the reference bar
    for t in fig.data:
        assert list(t.x) == ATTACKS and t.marker.color == method_color(t.name)
        assert t.error_y.visible and len(t.error_y.array) == len(ATTACKS)
        for attack, y, sd in zip(t.x, t.y, t.error_y.array, strict=True):
            runs = run.results["attacks"][t.name][attack]
            vals = [r["max_fs"] for r in runs]  # one lr in the small profile: mean/sd over seeds of max FS
            assert y == pytest.approx(np.mean(vals)) and sd == pytest.approx(np.std(vals, ddof=1))
    assert fig.data[0].marker.pattern.shape == "/"


def test_figure2_trajectories_one_line_per_model_and_attack(run: RunDir) -> None:
    traj = trajectory_frame(run)
    fig = figure2_trajectories(traj, recovery_frame(run))
    assert len(fig.data) == len(MODELS) * len(ATTACKS)
    assert sum(bool(t.showlegend) for t in fig.data) == len(MODELS)
    ga = [t for t in fig.data if t.name == "ga"][0]  # first panel: harmful p=0.1
    runs = run.results["attacks"]["ga"]["harmful p=0.1"]
    steps = [pt["step"] for pt in runs[0]["trajectory"]]
    assert list(ga.x) == steps
    assert ga.y[-1] == pytest.approx(np.mean([r["trajectory"][-1]["fs"] for r in runs]))


def test_figure4_lens_before_after_and_chance(run: RunDir) -> None:
    lens = lens_frame(run)
    fig = figure4_lens(lens)
    assert [t.name for t in fig.data] == ["base (before)", *MODELS]
    n_layers = run.config["base"]["toy"]["n_layers"]
    for t in fig.data:  # x is nudged by < 0.1 layer per model so equal lines stay visible; the layer is kept
        assert list(t.customdata) == list(range(n_layers))
        assert np.abs(np.asarray(t.x) - np.arange(n_layers)).max() < 0.1
        assert all("layer" in h for h in t.hovertext)
    assert len({(t.marker.symbol, t.line.dash) for t in fig.data}) == len(fig.data)  # every line tellable apart
    base = run.results["analyses"]["lens"]["models"]["base"]
    assert list(fig.data[0].y) == [r["accuracy"] for r in base]
    assert any(s.y0 == 0.5 and s.y1 == 0.5 for s in fig.layout.shapes)


def test_figure6_distributions_correlations_and_neuron_hover(run: RunDir) -> None:
    assert shift_attacks(run) == ["benign"]  # the small profile attributes after the benign attack
    dist, corr, scatter = shift_frames(run)  # default: harmful where attributed, else what the run has
    assert set(corr["attack"]) == {"benign"}
    with pytest.raises(NeuronscopeError, match="harmful"):
        shift_frames(run, attack="harmful")
    fig_d = figure6_distributions(dist)
    names = [t.name for t in fig_d.data]
    for m in MODELS:
        for role in ("original", "unlearned", "attacked"):
            assert f"{m} {role}" in names
    assert "benign" in fig_d.layout.title.text
    bar = figure6_correlations(corr).data[0]
    assert list(bar.y) == MODELS and bar.orientation == "h"
    pair = run.pairs["ga vs ga+benign"]  # independent check of the GA correlation on the saved tables
    a, b = load_table(pair / "attribution_base.parquet"), load_table(pair / "attribution.parquet")
    x = np.concatenate([a["max"], a["min"]])
    y = np.concatenate([b["max"], b["min"]])
    assert bar.x[1] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    fig_s = figure6_scatter(scatter)
    sc = [t for t in fig_s.data if t.name == "ga neurons"][0]
    assert re.match(r"layer \d+ \w+ neuron \d+", sc.hovertext[0])
    scale = 1e3  # attributions here are ~1e-3: axes read in units of 10^-3, plain ticks
    assert "10<sup>-3</sup>" in fig_s.layout.xaxis.title.text
    assert np.asarray(sc.x) == pytest.approx(a["max"].to_numpy() * scale)  # every neuron of the small run
    assert np.asarray(sc.y) == pytest.approx(b["max"].to_numpy() * scale)
    dens = dist[(dist["method"] == "ga") & (dist["role"] == "unlearned")]
    width = float((dens["bin_right"] - dens["bin_left"]).iloc[0])
    assert float(dens["density"].sum()) * width == pytest.approx(1.0)


def test_figure5_one_faceted_figure_on_one_colour_scale(run: RunDir) -> None:
    ml = {m: influence_frames(run, m)["module_layer"] for m in MODELS}
    fig = figure5_heatmaps(ml)
    assert len(fig.data) == 2 * len(MODELS)
    assert {t.coloraxis for t in fig.data[0::2]} == {"coloraxis"} and {t.coloraxis for t in fig.data[1::2]} == {
        "coloraxis2"}
    top = max(float(t[["d_plus_top_mean", "d_minus_top_mean"]].to_numpy().max()) for t in ml.values())
    assert fig.layout.coloraxis.cmax == fig.layout.coloraxis2.cmax == pytest.approx(top)
    gd = ml["gd"].set_index(["module", "layer"])
    heat = fig.data[5]  # gd's D-
    assert heat.z[heat.y.index("v")][1] == pytest.approx(gd.loc[("v", 1), "d_minus_top_mean"])


def test_one_colour_per_method_across_figures(run: RunDir) -> None:
    curves = {n: influence_frames(run, n)["curves"] for n in MODELS}
    fig3 = figure3_cumulative(curves)
    fig4 = figure4_lens(lens_frame(run))
    for m in ("ga", "gd"):
        c3 = {t.line.color for t in fig3.data if t.type == "scatter" and t.legendgroup == m}
        c4 = {t.line.color for t in fig4.data if t.name == m}
        assert c3 == c4 == {METHOD_COLORS[m]}
    assert method_color("ga+benign") == METHOD_COLORS["ga"]
    assert method_color("mystery") not in METHOD_COLORS.values()
    many = method_colors(["oracle", "ga", "alpha", "beta", "gamma", "delta", "ga+benign", *[f"m{i}" for i in range(4)]])
    assert len(set(many.values())) == len(many) - 1 and many["ga+benign"] == many["ga"]


STEMS = ["figure2_recovery", "figure2_trajectories", "figure3_cumulative", "figure4_lens", "figure5_heatmaps",
         "patching_curves", "figure6_correlations", "figure6_distributions", "figure6_scatter"]


def test_figures_cli_writes_offline_html_and_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    res = runner.invoke(app, ["figures", "--run", str(run_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in out.glob("*.html")) == sorted([*STEMS, "report"])
    js = (out / "plotly.min.js").read_text()
    assert len(js) > 1_000_000  # plotly.js once per directory
    for stem in STEMS:
        text = (out / f"{stem}.html").read_text()
        assert re.findall(r"<script[^>]+src=\"([^\"]+)\"", text) == ["plotly.min.js"]
        assert len(text) < 1_000_000 and text.count("Plotly.newPlot") == 1
    report = (out / "report.html").read_text()
    assert report.count("Plotly.newPlot") == len(STEMS)
    assert re.findall(r"<script[^>]+src='([^']+)'", report) == ["plotly.min.js"] and "cdn.plot.ly" not in report
    assert sum(p.stat().st_size for p in out.iterdir()) < 8_000_000  # was ~65 MB with plotly.js in every file
    table = pd.read_csv(run_dir / "table.csv")
    assert "Table 1" in report and all(m in report for m in table["method"])
    assert "NaN" not in report and "harmful_p0.1" not in report  # formatted, not the raw CSV
    import html

    verdicts = json.loads((run_dir / "results.json").read_text())["verdicts"]
    assert verdicts and "No verdict computed" not in report  # the run's calibrated verdicts come first
    for v in verdicts.values():
        assert html.escape(v["reason"]) in report or v["reason"] in report
    assert "Configuration" in report and json.loads((run_dir / "config.json").read_text())["name"] in report
    assert "<td class='l'>unlearn.methods</td><td class='l'>ga, gd</td>" in report  # config as a table
    assert "plotly" in report and "torch" in report  # the versions section
    assert report.count("class='caption'") >= len(STEMS)
    one = tmp_path / "one"
    res = runner.invoke(app, ["figures", "--run", str(run_dir), "--out", str(one), "--self-contained"])
    assert res.exit_code == 0, res.output
    text = (one / "report.html").read_text()
    assert "src='plotly.min.js'" not in text and text.count(js[:200]) == 1


def test_figures_cli_bad_options(run_dir: Path, tmp_path: Path) -> None:
    for args, word in ((["--format", "html,gif"], "gif"), (["--shift-attack", "strong"], "strong"),
                       (["--width", "10"], "--width"), (["--shift-attack", "harmful"], "harmful")):
        res = runner.invoke(app, ["figures", "--run", str(run_dir), "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2 and word in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_bad_run_directory(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["figures", "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["figures", "--run", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert empty.exit_code == 2 and "not a run directory" in empty.output
    assert len(empty.output.strip().splitlines()) == 1
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"name": "x"}')
    with pytest.raises(NeuronscopeError, match="not a grid result"):
        load_run(tmp_path / "bad")
    assert not (tmp_path / "o").exists()


def test_twelve_methods_get_clearly_different_colours() -> None:
    from plots_helpers import NAMES

    def rgb(h: str) -> np.ndarray:
        return np.array([int(h[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)

    def distance(a: str, b: str) -> float:  # "redmean" perceptual approximation
        x, y = rgb(a), rgb(b)
        r = (x[0] + y[0]) / 2
        return float(np.sqrt((2 + r / 256) * (x[0] - y[0]) ** 2 + 4 * (x[1] - y[1]) ** 2
                             + (2 + (255 - r) / 256) * (x[2] - y[2]) ** 2))

    colours = list(method_colors(["base", "oracle", *NAMES, "extra1", "extra2"]).values())
    assert len(set(colours)) == len(colours) == 16
    assert min(distance(a, b) for i, a in enumerate(colours) for b in colours[i + 1:]) > 75

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
from neuronscope.plots.colors import METHOD_COLORS, method_color
from neuronscope.plots.influence import figure3_cumulative
from neuronscope.plots.lens import figure4_lens
from neuronscope.plots.rundir import (
    RunDir,
    influence_frames,
    lens_frame,
    load_run,
    recovery_frame,
    shift_frames,
    trajectory_frame,
)
from neuronscope.plots.shift import figure6_shift

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
    for t in fig.data:
        assert list(t.x) == list(range(n_layers))
        assert all("layer" in h for h in t.hovertext)
    base = run.results["analyses"]["lens"]["models"]["base"]
    assert list(fig.data[0].y) == [r["accuracy"] for r in base]
    assert any(s.y0 == 0.5 and s.y1 == 0.5 for s in fig.layout.shapes)


def test_figure6_distributions_correlations_and_neuron_hover(run: RunDir) -> None:
    dist, corr, scatter = shift_frames(run)
    fig = figure6_shift(dist, corr, scatter)
    names = [t.name for t in fig.data]
    for m in MODELS:
        for role in ("original", "unlearned", "attacked"):
            assert f"{m} {role}" in names
    bar = [t for t in fig.data if t.type == "bar"][0]
    assert list(bar.x) == MODELS
    pair = run.pairs["ga vs ga+benign"]  # independent check of the GA correlation on the saved tables
    a, b = load_table(pair / "attribution_base.parquet"), load_table(pair / "attribution.parquet")
    x = np.concatenate([a["max"], a["min"]])
    y = np.concatenate([b["max"], b["min"]])
    assert bar.y[1] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    sc = [t for t in fig.data if t.name == "ga neurons"][0]
    assert re.match(r"layer \d+ \w+ neuron \d+", sc.hovertext[0])
    dens = dist[(dist["method"] == "ga") & (dist["role"] == "unlearned")]
    width = float((dens["bin_right"] - dens["bin_left"]).iloc[0])
    assert float(dens["density"].sum()) * width == pytest.approx(1.0)


def test_one_colour_per_method_across_figures(run: RunDir) -> None:
    curves = {n: influence_frames(run, n)["curves"] for n in MODELS}
    fig3 = figure3_cumulative(curves)
    fig4 = figure4_lens(lens_frame(run))
    for m in ("ga", "gd"):
        c3 = {t.line.color for t in fig3.data if t.name and t.name.startswith(f"{m} ")}
        c4 = {t.line.color for t in fig4.data if t.name == m}
        assert c3 == c4 == {METHOD_COLORS[m]}
    assert method_color("ga+benign") == METHOD_COLORS["ga"]
    assert method_color("mystery") not in METHOD_COLORS.values()


def test_figures_cli_writes_offline_html_and_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    res = runner.invoke(app, ["figures", "--run", str(run_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    stems = ["figure2_recovery", "figure2_trajectories", "figure3_cumulative", "figure4_lens",
             *[f"figure5_heatmaps_{m}" for m in MODELS], "figure6_shift"]
    assert sorted(p.stem for p in out.glob("*.html")) == sorted([*stems, "report"])
    for stem in stems:
        text = (out / f"{stem}.html").read_text()
        assert not re.search(r"<script[^>]+src=", text)  # no external script: plotly.js is inline
        assert len(text) > 1_000_000
        assert text.count("Plotly.newPlot") == 1
    report = (out / "report.html").read_text()
    assert report.count("Plotly.newPlot") == len(stems)
    assert not re.search(r"<script[^>]+src=", report)
    table = pd.read_csv(run_dir / "table.csv")
    assert "Table 1" in report and all(f"<td>{m}</td>" in report for m in table["method"])
    assert "Configuration" in report and json.loads((run_dir / "config.json").read_text())["name"] in report
    assert "plotly" in report and "torch" in report  # the versions section


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

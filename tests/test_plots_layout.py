"""Every figure, drawn for 1, 3, 7 and 12 methods, measured in headless Chromium: no text on a plot area or on
another label, nothing outside the figure, no legend clipped or scrolling. One browser renders all 36 figures
(plus three figures built to fail, which prove the check can fail). Skipped where chromium is not installed."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from browser_helpers import CHROMIUM, layout_problems
from plotly.subplots import make_subplots
from plots_helpers import all_figures

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
COUNTS = (1, 3, 7, 12)


def _broken() -> dict[str, go.Figure]:
    """Figures with the faults the check must find: a label on the data, overlapping panel titles, a legend
    taller than its figure."""
    on_data = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    on_data.add_annotation(x=0.5, y=0.5, text="chance", showarrow=False)
    titles = make_subplots(rows=1, cols=8, subplot_titles=[f"method {i}: attribution distribution" for i in range(8)])
    for i in range(8):
        titles.add_trace(go.Scatter(x=[0, 1], y=[0, 1]), row=1, col=i + 1)
    legend = go.Figure([go.Scatter(x=[0, 1], y=[i, i], name=f"series {i}") for i in range(30)])
    legend.update_layout(height=300)
    return {"bad-on-data": on_data, "bad-titles": titles, "bad-legend": legend}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    figs: dict[str, go.Figure] = {}
    for n in COUNTS:
        figs |= all_figures(n)
    return layout_problems(figs | _broken(), tmp_path_factory.mktemp("layout"))


def test_the_check_finds_overlaps_and_clipping(measured: dict[str, dict]) -> None:
    assert any("on a plot area" in p for p in measured["bad-on-data"]["problems"])
    assert any(p.startswith("overlap") for p in measured["bad-titles"]["problems"])
    assert any("legend" in p for p in measured["bad-legend"]["problems"])


@pytest.mark.parametrize("n", COUNTS)
def test_no_text_overlaps_and_no_legend_clips(n: int, measured: dict[str, dict]) -> None:
    figs = {k: v for k, v in measured.items() if k.startswith(f"n{n}-")}
    assert len(figs) == 9
    for key, m in figs.items():
        assert m["n_areas"] >= 1 and m["n_text"] >= 5, key  # the figure was drawn
        assert m["problems"] == [], key

"""The run report from constructed results: the verdict section (present and absent), Table 1 formatted from
`build_table` (mean ± 95% interval, the oracle's floor, the gap with its interval, the verdict column, no NaN),
and the configuration as a table. Numbers are checked against statistics computed here."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuronscope.plots import runreport
from neuronscope.plots.rundir import RunDir
from neuronscope.plots.runreport import render_run_report, table1_html, verdict_html

T975 = {1: 12.706, 2: 4.303}  # Student t quantiles for 2 and 3 seeds


def results(verdicts: dict[str, Any] | None = None, seeds: int = 3) -> dict[str, Any]:
    recov = {"oracle": [0.35, 0.40, 0.38], "ga": [0.70, 0.76, 0.74], "ssiuu": [0.36, 0.41, 0.37]}
    attacks = {m: {"harmful p=0.1": [{"lr": 1e-5, "seed": s, "max_fs": v, "trajectory": []}
                                     for s, v in enumerate(vals[:seeds])]} for m, vals in recov.items()}
    out: dict[str, Any] = {
        "name": "constructed", "methods": ["ga", "ssiuu"], "oracle": True, "attack_labels": ["harmful p=0.1"],
        "evals": {m: {"fs": 0.33, "rs": 0.9, "us": 0.95, "metric": "mc"} for m in ["base", "oracle", "ga", "ssiuu"]},
        "unlearn": {m: {"reached": True, "steps": 10, "lr": 1e-5, "threshold": 1 / 3} for m in ["ga", "ssiuu"]},
        "attacks": attacks, "analyses": {}}
    if verdicts is not None:
        out["verdicts"] = verdicts
    return out


VERDICTS = {
    "ga": {"label": "hide", "reason": "Relearning brings the answers back well above the oracle's floor.",
           "evidence": [{"analysis": "relearning (harmful p=0.1)", "says": "present", "value": 0.7333,
                         "reference": 0.3767, "interval": [0.62, 0.86], "calibrated": True,
                         "detail": "recovery 0.73 vs floor 0.38 (oracle)"},
                        {"analysis": "D+/D- (paper)", "says": "absent", "value": 0.32, "reference": 0.05,
                         "interval": None, "calibrated": False, "detail": "erase by the paper's rule"}],
           "paper_rule": {"label": "erase", "d_plus": 0.32, "d_minus": 0.05, "target": "p"}},
    "ssiuu": {"label": "erase", "reason": "Recovery stays at the oracle's floor.", "evidence": []},
}


def _cells(text: str, row_label: str) -> list[str]:
    row = re.search(r"<tr[^>]*><td class='l'>" + re.escape(row_label) + r"</td>(.*?)</tr>", text, re.S)
    assert row, row_label
    return [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_table1_cells_are_mean_interval_floor_and_gap() -> None:
    text = table1_html(results(VERDICTS))
    ga, oracle = np.array([0.70, 0.76, 0.74]), np.array([0.35, 0.40, 0.38])
    half = T975[2] * ga.std(ddof=1) / np.sqrt(3)
    cells = _cells(text, "ga")
    assert cells[:3] == [["0.330"], ["0.900"], ["0.950"]]  # FS, RS, US
    assert cells[3] == [f"{ga.mean():.3f}", "±", f"{half:.3f}"]
    se = np.sqrt(ga.var(ddof=1) / 3 + oracle.var(ddof=1) / 3)  # Welch, df from Welch-Satterthwaite
    df = se**4 / ((ga.var(ddof=1) / 3) ** 2 / 2 + (oracle.var(ddof=1) / 3) ** 2 / 2)
    t = {3: 3.182, 4: 2.776}[int(np.floor(df))]
    gap = ga.mean() - oracle.mean()
    assert cells[4] == [f"{gap:+.3f}", f"[{gap - t * se:+.3f},", f"{gap + t * se:+.3f}]"]
    assert cells[5] == ["hide"]  # the verdict column, from results["verdicts"]
    assert _cells(text, "oracle (floor)")[4] == ["floor"] and "class='floor'" in text
    assert _cells(text, "base (before)")[3:] == [["–"], ["–"], ["reference"]]
    assert "nan" not in text.lower() and "_ci95" not in text


def test_without_an_oracle_the_gap_is_named_to_the_floor_and_its_start_is_said() -> None:
    """A pretrained model's run: no oracle row, the never-known floor row; the gap column names the floor and
    the caption says those raw gaps include the difference of start."""
    res = results(VERDICTS)
    floor = res["attacks"].pop("oracle")
    res.update(oracle=False, floor=floor)
    res["evals"].pop("oracle")
    text = table1_html(res)
    assert "gap to floor" in text and "gap to oracle" not in text
    assert "include that difference of start" in text
    assert "minus oracle" not in text and "Oracle:" not in text and "method minus floor" in text
    with_oracle = table1_html(results(VERDICTS))
    assert "gap to oracle" in with_oracle and "method minus oracle" in with_oracle


def test_one_seed_shows_no_interval_and_no_nan() -> None:
    text = table1_html(results(seeds=1))
    assert _cells(text, "ga")[3] == ["0.700"] and _cells(text, "ga")[4] == [f"{0.70 - 0.35:+.3f}"]
    assert _cells(text, "ga")[5] == ["–"]  # no verdict computed
    assert "nan" not in text.lower()


def test_verdict_column_of_the_table_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """When build_table carries a verdict column it is shown, whatever results['verdicts'] says."""
    real = runreport.build_table

    def with_column(res: dict[str, Any]) -> list[dict[str, Any]]:
        return [r | ({"verdict": {"label": "undetermined"}} if r["method"] == "ga" else {}) for r in real(res)]

    monkeypatch.setattr(runreport, "build_table", with_column)
    assert _cells(table1_html(results(VERDICTS)), "ga")[5] == ["undetermined"]


def test_verdict_section_with_evidence_and_the_papers_rule() -> None:
    text = html.unescape(verdict_html(VERDICTS, ["oracle", "ga", "ssiuu"]))
    assert text.index("ga:") < text.index("ssiuu:")
    assert "<span class='badge hide'>hide</span>" in text and "<span class='badge erase'>erase</span>" in text
    assert VERDICTS["ga"]["reason"] in text
    assert "knowledge present" in text and "used by the verdict" in text and "for information only" in text
    assert "[0.620, 0.860]" in text and "0.733" in text and "0.377" in text
    assert re.search(r"paper's rule.*says <b>erase</b>: D\+ 0\.320, D- 0\.050", text, re.S)
    assert "No verdict computed" in verdict_html(None, ["ga"]) and "No verdict computed" in verdict_html({}, [])


def test_whole_page_puts_the_verdict_first_and_the_config_in_a_table(tmp_path: Path) -> None:
    config = {"name": "constructed", "unlearn": {"methods": ["ga", "ssiuu"], "params": {"lr": 1e-5}},
              "data_dir": None}
    page = render_run_report(RunDir(tmp_path, results(VERDICTS), config), {}, {"python": "3.11", "plotly": "7"},
                             plotlyjs="plotly.min.js")
    assert page.index("<h2>Verdict per method") < page.index("<h2>Table 1") < page.index("<h2>Configuration")
    assert "<td class='l'>unlearn.params.lr</td><td class='l'>1e-05</td>" in page
    assert "<td class='l'>data_dir</td><td class='l'>–</td>" in page
    assert "<td class='l'>plotly</td><td class='l'>7</td>" in page
    assert page.count("<script") == 1 and "src='plotly.min.js'" in page

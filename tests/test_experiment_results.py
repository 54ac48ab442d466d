"""The typed results: a hand-built results document round-trips unchanged, the typed fields read what it says,
and reading results (table, figures' frames, report) imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from neuronscope.plots.table import build_table, run_metric, threshold_note
from neuronscope.run_results import Results


def _doc() -> dict[str, Any]:
    runs = [{"lr": 1e-3, "seed": s, "max_fs": v, "start_fs": 0.3, "final_fs": v, "trajectory": [{"step": 0, "fs": 0.3}],
             "n_train": 4, "n_eval": 4, "n_wrong": 3, "artifact": f"attack-x-{s}"} for s, v in enumerate([0.5, 0.7])]
    return {
        "name": "built", "config": {"name": "built"}, "methods": ["ga"], "oracle": False, "attack_labels": ["benign"],
        "evals": {"base": {"fs": 1.0, "rs": 0.9, "us": 1.0, "metric": "rouge", "detail": {}, "counts": {},
                           "train": {"epochs": 3}},
                  "ga": {"fs": 0.1, "rs": 0.8, "us": 0.9, "metric": "rouge", "new_key": 7}},
        "unlearn": {"ga": {"method": "ga", "lr": 1e-5, "steps": 12, "reached": True, "threshold": 0.1971,
                           "curve": [{"step": 1, "loss": 2.0}]}},
        "attacks": {"ga": {"benign": runs}},
        "analyses": {"lens": {"available": False}},
        "floor": {"benign": [{"lr": 1e-3, "seed": 0, "max_fs": 0.2, "trajectory": []}]},
        "seconds": 3.5, "computed": 9, "skipped": 0, "stage_seconds": {"unlearn": 1.25},
    }


def test_round_trip_keeps_every_key_and_number() -> None:
    doc = _doc()
    typed = Results.from_json(doc)
    assert typed.to_json() == doc  # keys a writer adds (evals.ga.new_key) survive the round trip
    assert typed.evals["ga"].extra == {"new_key": 7} and typed.evals["base"].train == {"epochs": 3}
    assert typed.unlearn["ga"].steps == 12 and typed.unlearn["ga"].threshold == 0.1971
    assert [r.max_fs for r in typed.attacks["ga"]["benign"]] == [0.5, 0.7]
    assert typed.floor is not None and typed.floor["benign"][0].start_fs is None
    assert typed.models == ["base", "ga"]


def test_table_reads_the_typed_results() -> None:
    typed = Results.from_json(_doc())
    assert run_metric(typed) == ("rouge", [0.1971]) == run_metric(_doc())
    assert "ROUGE-L" in threshold_note(typed) and "floor row" in threshold_note(typed)
    rows = build_table(typed)
    assert json.dumps(rows) == json.dumps(build_table(_doc()))  # the same rows, NaN included
    ga = next(r for r in rows if r["method"] == "ga")
    assert ga["benign"]["mean"] == (0.5 + 0.7) / 2 and ga["steps"] == 12
    assert ga["gap benign"]["mean"] == pytest.approx((0.5 + 0.7) / 2 - 0.2)  # the floor stands in for the oracle
    assert rows[-1]["method"] == "floor (never known)"


def test_reading_results_imports_no_torch() -> None:
    code = ("import sys; import neuronscope.run_results, neuronscope.plots.table, "
            "neuronscope.plots.rundir, neuronscope.plots.runreport; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"

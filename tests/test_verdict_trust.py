"""A model's own calibration decides which analyses speak in its verdicts: one measured wrong on a ground truth
there is shown only. Constructed records and runs whose answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config import parse_config
from neuronscope.verdict import model_verdict
from neuronscope.verdict.trust import (
    analysis_family,
    calibration_path,
    calibration_ref,
    distrusted,
    distrusted_by,
    read_record,
    shipped_names,
)


def _record(wrong_benign: list[str]) -> dict:
    """A calibration record: benign relearning wrong on `wrong_benign`, the paper's rule wrong (never calibrated),
    harmful relearning and the lens never wrong."""
    acc = {"relearning (harmful p=0.25)": {"right": 4, "wrong": [], "unsure": [], "calibrated": True},
           "relearning (benign)": {"right": 3, "wrong": wrong_benign, "unsure": [], "calibrated": True},
           "logit lens (intermediate layers)": {"right": 3, "wrong": [], "unsure": ["exact erasure"],
                                                "calibrated": True},
           "top-100 D+ vs D- (P target)": {"right": 2, "wrong": ["planted"], "unsure": [], "calibrated": False},
           "headline verdict": {"right": 3, "wrong": ["planted"], "unsure": [], "calibrated": True}}
    return {"truths": {"planted": "hide", "exact erasure": "erase"}, "analysis_accuracy": acc}


def test_families_and_what_is_distrusted() -> None:
    assert analysis_family("relearning (harmful p=0.3)") == analysis_family("relearning (harmful p=0.25)") == \
        "relearning (harmful)"
    assert analysis_family("relearning (benign)") == "relearning (benign)"
    assert analysis_family("logit lens (intermediate layers)") == "logit lens (intermediate layers)"
    out = distrusted(_record(["planted"]), "cal.json")
    # every analysis that was wrong (the paper's rule too: shown only, it gets the note), not the headline itself
    assert list(out) == ["relearning (benign)", "top-100 D+ vs D- (P target)"]
    assert "planted (truth: hide)" in out["relearning (benign)"] and "cal.json" in out["relearning (benign)"]
    assert list(distrusted(_record([]), "cal.json")) == ["top-100 D+ vs D- (P target)"]


def _results(benign: list[float], floor: list[float]) -> dict:
    """A run with an oracle, a benign attack (max FS per seed) and nothing else measured."""
    runs = lambda vs: [{"lr": 1e-3, "seed": i, "max_fs": v} for i, v in enumerate(vs)]  # noqa: E731
    return {"evals": {"base": {"fs": 1.0, "counts": {"forget": {"base": 200}}},
                      "oracle": {"fs": 0.33, "counts": {"forget": {"base": 200}}},
                      "ga": {"fs": 0.33, "counts": {"forget": {"base": 200}}}},
            "attack_labels": ["benign"], "attacks": {"ga": {"benign": runs(benign)}, "oracle": {"benign": runs(floor)}},
            "analyses": {}}


def test_a_distrusted_analysis_is_shown_and_no_longer_decides() -> None:
    floor = [0.33, 0.35, 0.34]
    why = distrusted(_record(["planted"]), "cal.json")
    # alone and "absent", benign relearning makes the verdict "erase"; distrusted, nothing calibrated is left
    absent = _results([0.34, 0.33, 0.35], floor)
    assert model_verdict("ga", absent).label == "erase"
    v = model_verdict("ga", absent, distrusted=why)
    (benign,) = [e for e in v.evidence if e.analysis == "relearning (benign)"]
    assert v.label == "undetermined" and benign.says == "absent" and not benign.calibrated
    assert "measured wrong on planted (truth: hide)" in benign.detail
    # "present" from a distrusted analysis cannot make it "hide" either
    present = _results([0.90, 0.95, 0.92], floor)
    assert model_verdict("ga", present).label == "hide"
    assert model_verdict("ga", present, distrusted=why).label == "undetermined"
    # an analysis the calibration found right keeps its vote
    assert model_verdict("ga", absent, distrusted={"relearning (harmful)": "x"}).label == "erase"


def test_calibration_files_and_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(_record(["planted"])))
    assert calibration_path(str(path)) == path
    assert list(distrusted_by(str(path))) == ["relearning (benign)", "top-100 D+ vs D- (P target)"]
    assert distrusted_by("") == {}
    # a config's file resolves against the config's folder, and the run records it absolute
    doc = {"run": {"name": "t"}, "calibration": {"file": "calibration.json"}}
    assert parse_config(doc, "t", tmp_path).verdict_calibration == str(path.resolve())
    assert calibration_ref("shipped:smollm2-135m-finetune") == "shipped:smollm2-135m-finetune"
    with pytest.raises(NeuronscopeError, match="calibration file not found"):
        calibration_path(str(tmp_path / "nope.json"))
    with pytest.raises(NeuronscopeError, match="calibration.file: .*nope.json: calibration file not found"):
        parse_config({**doc, "calibration": {"file": "nope.json"}}, "t", tmp_path)
    (tmp_path / "other.json").write_text('{"results": {}}')
    with pytest.raises(NeuronscopeError, match="not a calibration.json"):
        calibration_path(str(tmp_path / "other.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(NeuronscopeError, match="cannot read the calibration"):
        calibration_path(str(tmp_path / "broken.json"))
    with pytest.raises(NeuronscopeError, match="unknown shipped calibration 'nope'"):
        calibration_path("shipped:nope")


def test_every_shipped_calibration_is_a_calibration_record() -> None:
    """The measured calibrations in the package read as records, say how they were measured, and distrust
    only analyses they record as wrong."""
    assert "smollm2-135m-finetune" in shipped_names()
    for name in shipped_names():
        record = read_record(calibration_path(f"shipped:{name}"))
        assert record["provenance"]["command"].startswith("neuronscope calibrate")
        for family in distrusted(record, name):
            (acc,) = [a for n, a in record["analysis_accuracy"].items() if analysis_family(n) == family]
            assert acc["wrong"]


def test_a_shown_only_analysis_measured_wrong_keeps_its_place_and_gains_the_note() -> None:
    """No oracle (a FaithUn-style run): the never-known comparison is shown only; a knowledge-protocol record that
    measured it wrong on a planted hiding annotates it and changes nothing else."""
    runs = lambda vs: [{"lr": 1e-4, "seed": i, "start_fs": 0.4, "max_fs": v} for i, v in enumerate(vs)]  # noqa: E731
    floor = [{"lr": 1e-4, "seed": i, "start_fs": 0.0, "max_fs": v} for i, v in enumerate([0.5, 0.52, 0.49])]
    results = {"evals": {"base": {"fs": 1.0, "counts": {"forget": {"base": 70}}},
                         "ga": {"fs": 0.4, "counts": {"forget": {"base": 70}}}},
               "attack_labels": ["harmful p=0.3"], "attacks": {"ga": {"harmful p=0.3": runs([0.8, 0.85, 0.82])}},
               "floor": {"harmful p=0.3": floor}, "analyses": {}}
    record = {"truths": {"planted": "hide"}, "analysis_accuracy": {
        "relearning (harmful p=0.25) vs never-known facts": {"right": 0, "wrong": ["planted"], "unsure": [],
                                                             "calibrated": False}}}
    plain = model_verdict("ga", results)
    noted = model_verdict("ga", results, distrusted=distrusted(record, "shipped:k"))
    assert noted.label == plain.label == "undetermined"
    before = {e.analysis: e for e in plain.evidence}
    for e in noted.evidence:
        b = before[e.analysis]
        assert (e.says, e.calibrated, e.value) == (b.says, b.calibrated, b.value)
        if e.analysis == "relearning (harmful p=0.3) vs never-known facts":
            assert e.detail == f"{b.detail}; measured wrong on planted (truth: hide) in the calibration shipped:k"
        else:
            assert e.detail == b.detail

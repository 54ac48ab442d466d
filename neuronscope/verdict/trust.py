"""Which analyses a measured calibration lets speak in a run's verdict.

The headline rule reads the analyses marked calibrated, because they were right on the toy's ground truths. On
another model that is an assumption until that model's own calibration (`neuronscope calibrate --ckpt ...`) has
been read: an analysis that said "absent" on a model that hides by construction, or "present" on an exact
erasure, has been measured wrong there, so in runs on that model it is shown only. A run names the calibration it
trusts (`[calibration] file`: a calibration.json, or `shipped:NAME` for one measured by the project and kept in
the package); nothing is tuned to it, an analysis either was wrong on a ground truth or it was not.

Analyses are matched by family: "relearning (harmful p=0.3)" in a run and "relearning (harmful p=0.25)" in the
calibration are the same attack at different leak fractions (the calibration's record says which it measured).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError

SHIPPED_PREFIX = "shipped:"
MEASURED_DIR = Path(__file__).parent / "measured"  # calibrations the project measured: NAME.json
HEADLINE = "headline verdict"  # the analysis_accuracy row of the verdict itself (CalibrationResult), never an analysis


def analysis_family(name: str) -> str:
    """The analysis without its parameters: 'relearning (harmful p=0.3)' -> 'relearning (harmful)'."""
    return re.sub(r" p=[^)\s]*", "", name)


def shipped_names() -> list[str]:
    return sorted(p.stem for p in MEASURED_DIR.glob("*.json"))


def _located(value: str) -> Path:
    """The file `value` names: shipped:NAME in the package, else a path (resolved by the caller: a config
    resolves it against its own folder)."""
    if value.startswith(SHIPPED_PREFIX):
        name = value[len(SHIPPED_PREFIX):]
        if name not in shipped_names():
            raise NeuronscopeError(f"unknown shipped calibration {name!r}; known: {', '.join(shipped_names())}")
        return MEASURED_DIR / f"{name}.json"
    path = Path(value)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: calibration file not found (a calibration.json that `neuronscope "
                               "calibrate` wrote)")
    return path


def calibration_path(value: str) -> Path:
    """The calibration.json `value` names (a path or shipped:NAME), checked: it exists and is one."""
    path = _located(value)
    read_record(path)
    return path


def calibration_ref(value: str) -> str:
    """`value` checked and made independent of the working directory: shipped:NAME as given, a path absolute
    (what a run records and reads back when its verdict is assembled)."""
    path = calibration_path(value)
    return value if value.startswith(SHIPPED_PREFIX) else str(path.resolve())


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NeuronscopeError(f"{path}: cannot read the calibration ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("analysis_accuracy"), dict):
        raise NeuronscopeError(f"{path}: not a calibration.json (no analysis_accuracy)")
    return record


def distrusted(record: dict[str, Any], source: str) -> dict[str, str]:
    """{analysis family: where it was measured wrong} for every analysis the record measured wrong on one of its
    ground truths (not the headline itself). In a verdict a calibrated analysis among them is demoted to shown
    only; one that is shown only anyway (the paper's rule, the never-known comparison) carries the note, so a
    reader sees that its reading has been measured wrong on this model (`assemble._trusted`)."""
    truths = record.get("truths", {})
    out: dict[str, str] = {}
    for name, acc in record["analysis_accuracy"].items():
        if name == HEADLINE or not acc.get("wrong"):
            continue
        wrong = ", ".join(f"{m} (truth: {truths.get(m, '?')})" for m in acc["wrong"])
        out[analysis_family(name)] = f"measured wrong on {wrong} in the calibration {source}"
    return out


def distrusted_by(value: str) -> dict[str, str]:
    """`distrusted` of the calibration `value` names (a path or shipped:NAME; empty when it names none)."""
    if not value:
        return {}
    return distrusted(read_record(_located(value)), value)


__all__ = ["HEADLINE", "SHIPPED_PREFIX", "analysis_family", "calibration_path", "calibration_ref", "distrusted",
           "distrusted_by", "read_record", "shipped_names"]

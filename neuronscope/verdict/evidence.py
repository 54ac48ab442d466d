"""Evidence and the headline verdict: erased, hidden, not unlearned, or undetermined.

One analysis gives one `Evidence`: whether it finds the forget knowledge *present* in the model (decodable or
recoverable beyond what a model that never knew the facts achieves), *absent*, or cannot tell. The headline rule
(`decide`) reads only the analyses marked `calibrated`, i.e. measured against a floor (a model that never saw the
forget facts) and shown to be right on ground-truth models (`neuronscope.verdict.calibration`):

1. the forget answers are still visibly above the floor -> "not unlearned";
2. any calibrated detector finds the knowledge present -> "hide";
3. every calibrated detector that ran finds it absent (at least one ran) -> "erase";
4. otherwise -> "undetermined". Never a confident word the evidence does not support.

Why this generalises: "hidden" is defined by what the knowledge can still do (be read out of the model's
internals, or come back under a little training), so one detector that finds it is enough; "erased" is a claim
that nothing finds it, so it needs every detector to rule it out with an interval. No threshold here was tuned on
the ground-truth cases: TAU and the 95% level were fixed before the calibration was run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Says = Literal["present", "absent", "undetermined", "not run"]
Label = Literal["erase", "hide", "not unlearned", "undetermined", "reference"]

# Knowledge counts as present when a detector recovers at least this fraction of the base model's margin over the
# floor (and significantly more than the floor); as absent when the interval excludes this fraction.
TAU = 0.25


@dataclass(frozen=True)
class Evidence:
    """What one analysis says, with the number it rests on, the floor it is compared with and a 95% interval of
    the difference (model - floor)."""

    analysis: str
    says: Says
    value: float | None = None
    reference: float | None = None
    interval: tuple[float, float] | None = None
    calibrated: bool = True
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = list(self.interval) if self.interval is not None else None
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Evidence:
        iv = d.get("interval")
        return Evidence(**{**d, "interval": tuple(iv) if iv is not None else None})


@dataclass(frozen=True)
class Verdict:
    label: Label
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    paper_rule: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "reason": self.reason, "evidence": [e.to_json() for e in self.evidence],
                "paper_rule": self.paper_rule}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Verdict:
        return Verdict(d["label"], d["reason"], [Evidence.from_json(e) for e in d.get("evidence", [])],
                       d.get("paper_rule"))


def classify_gap(gap: float, half_width: float, span: float) -> Says:
    """present / absent / undetermined for a difference `gap` (model - floor) with a 95% `half_width`, against
    the base's own margin over the floor `span`.

    present: the interval lies above 0 and the gap is at least TAU * span. absent: the interval lies below
    TAU * span and does not lie above 0 (a trace significantly above the floor, however small, is never called
    absent). Anything else: undetermined.
    """
    if not (math.isfinite(gap) and math.isfinite(half_width) and math.isfinite(span)) or span <= 0:
        return "undetermined"
    bar = TAU * span
    if gap - half_width > 0 and gap >= bar:
        return "present"
    if gap + half_width < bar and gap - half_width <= 0:
        return "absent"
    return "undetermined"


def decide(evidence: list[Evidence], visible: Evidence | None = None,
           paper_rule: dict[str, Any] | None = None) -> Verdict:
    """The headline verdict from calibrated evidence (see the module docstring). `visible` is the evidence that
    the forget answers themselves are still above the floor (the model was not unlearned)."""
    allv = ([visible] if visible is not None else []) + list(evidence)
    if visible is not None and visible.says == "present":
        return Verdict("not unlearned", f"the forget answers are still above the floor ({visible.detail})", allv,
                       paper_rule)
    used = [e for e in evidence if e.calibrated and e.says != "not run"]
    present = [e for e in used if e.says == "present"]
    if present:
        names = ", ".join(e.analysis for e in present)
        return Verdict("hide", f"the knowledge is still there: {names} found it above the floor", allv, paper_rule)
    if used and all(e.says == "absent" for e in used):
        names = ", ".join(e.analysis for e in used)
        return Verdict("erase", f"no calibrated analysis finds the knowledge above the floor ({names})", allv,
                       paper_rule)
    if not used:
        return Verdict("undetermined", "no calibrated analysis could run (it needs a floor model that never saw "
                                       "the forget facts, e.g. the oracle)", allv, paper_rule)
    unsure = ", ".join(e.analysis for e in used if e.says != "absent")
    return Verdict("undetermined", f"nothing found the knowledge, but {unsure} cannot rule it out", allv,
                   paper_rule)

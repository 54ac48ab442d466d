"""results.json as typed objects: what the grid writes and what the table, the figures and the report read.

One schema, written by `Results.to_json` and read by `Results.from_json`, so no reader walks the file through
`.get(...).get(...)` chains. Readers are tolerant of what older or hand-built results leave out (an evaluation
without per-kind detail, an attack run without its trajectory); keys a newer writer adds to an evaluation or an
unlearning run are kept in `extra` and written back unchanged, so a round trip never drops a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _present(d: dict[str, Any], optional: tuple[str, ...]) -> dict[str, Any]:
    """`d` without the optional keys whose value is None (they were absent when read)."""
    return {k: v for k, v in d.items() if not (k in optional and v is None)}


@dataclass
class Scores:
    """One model's evaluation (eval.json): FS, RS, US with the metric, per split and kind, and the training log."""

    fs: float
    rs: float
    us: float
    metric: str | None = None
    detail: dict[str, Any] | None = None
    counts: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scores:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in known},
                   extra={k: v for k, v in d.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        d = {"fs": self.fs, "rs": self.rs, "us": self.us, "metric": self.metric, "detail": self.detail,
             "counts": self.counts, "train": self.train}
        return _present(d, ("metric", "detail", "counts", "train")) | self.extra


@dataclass
class UnlearnRun:
    """What the unlearning of one method did (unlearn.json): learning rate, steps, whether FS reached the
    threshold, and the loop's own record (config, final report, curve, notes, lr-search trials) as written."""

    reached: bool | None = None
    steps: int | None = None
    lr: float | None = None
    threshold: float | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnlearnRun:
        return cls(d.get("reached"), d.get("steps"), d.get("lr"), d.get("threshold"), dict(d))

    def to_json(self) -> dict[str, Any]:
        return dict(self.record)


@dataclass
class AttackRun:
    """One relearning attack (one learning rate, one seed): its peak, start and final FS and its trajectory."""

    lr: float
    seed: int
    max_fs: float
    start_fs: float | None = None
    final_fs: float | None = None
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    n_train: int | None = None
    n_eval: int | None = None
    n_wrong: int | None = None
    artifact: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AttackRun:
        return cls(**{k: d[k] for k in (f.name for f in fields(cls)) if k in d})

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return _present(d, ("start_fs", "final_fs", "n_train", "n_eval", "n_wrong", "artifact"))


AttacksByLabel = dict[str, list[AttackRun]]


def _attacks_from(d: dict[str, list[dict[str, Any]]]) -> AttacksByLabel:
    return {lab: [AttackRun.from_json(r) for r in runs] for lab, runs in d.items()}


def _attacks_to(d: AttacksByLabel) -> dict[str, list[dict[str, Any]]]:
    return {lab: [r.to_json() for r in runs] for lab, runs in d.items()}


@dataclass
class AttributionPair:
    """One attributed pair ('base vs ga'): its artifact directory (relative to the run) and its summary."""

    dir: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return _present({"dir": self.dir, "summary": self.summary}, ("dir",))


@dataclass
class Attribution:
    available: bool = False
    pairs: dict[str, AttributionPair] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Attribution:
        return cls(bool(d.get("available")), {k: AttributionPair(v.get("dir"), v.get("summary", {}))
                                              for k, v in d.get("pairs", {}).items()})

    def to_json(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False}
        return {"available": True, "pairs": {k: v.to_json() for k, v in self.pairs.items()}}


@dataclass
class Lens:
    """Per model: per-layer lens accuracy rows, and per-item wins by layer (the verdict's item-level test)."""

    available: bool = False
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    items: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lens:
        return cls(bool(d.get("available")), dict(d.get("models", {})), dict(d.get("items", {})))

    def to_json(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False}
        return {"available": True, "models": self.models, "items": self.items}


@dataclass
class Utility:
    """US through lm-evaluation-harness per model."""

    tasks: list[str]
    limit: int | None
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Utility:
        return cls(list(d.get("tasks", [])), d.get("limit"), dict(d.get("models", {})))

    def to_json(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "limit": self.limit, "models": self.models}


@dataclass
class Calibration:
    """The ground-truth calibration's confusion table and per-analysis accuracy."""

    size: str
    confusion: Any
    analysis_accuracy: Any
    checks: Any

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        return cls(d["size"], d.get("confusion"), d.get("analysis_accuracy"), d.get("checks"))

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "confusion": self.confusion, "analysis_accuracy": self.analysis_accuracy,
                "checks": self.checks}


@dataclass
class Analyses:
    attribution: Attribution | None = None
    lens: Lens | None = None
    utility: Utility | None = None
    calibration: Calibration | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Analyses:
        return cls(Attribution.from_json(d["attribution"]) if "attribution" in d else None,
                   Lens.from_json(d["lens"]) if "lens" in d else None,
                   Utility.from_json(d["utility"]) if "utility" in d else None,
                   Calibration.from_json(d["calibration"]) if "calibration" in d else None)

    def to_json(self) -> dict[str, Any]:
        return {name: part.to_json() for name in ("attribution", "lens", "utility", "calibration")
                if (part := getattr(self, name)) is not None}


@dataclass
class Results:
    """A grid run: every model's evaluation, unlearning record and attacks, the analyses and the verdicts.

    `floor`: with no oracle, the same attacks on facts the model never knew (experiment.floor). `stage_seconds`:
    wall seconds per stage kind in this invocation (cached stages count their load time only). `stage_peak_gib`:
    the peak resident memory of a process while it computed a stage of that kind (neuronscope.peak_memory), the
    largest over the stages and processes of this invocation.
    """

    name: str
    config: dict[str, Any]
    methods: list[str]
    oracle: bool
    attack_labels: list[str]
    evals: dict[str, Scores] = field(default_factory=dict)
    unlearn: dict[str, UnlearnRun] = field(default_factory=dict)
    attacks: dict[str, AttacksByLabel] = field(default_factory=dict)
    analyses: Analyses = field(default_factory=Analyses)
    floor: AttacksByLabel | None = None
    verdicts: dict[str, dict[str, Any]] | None = None
    seconds: float | None = None
    computed: int | None = None
    skipped: int | None = None
    stage_seconds: dict[str, float] | None = None
    stage_peak_gib: dict[str, float] | None = None

    @property
    def models(self) -> list[str]:
        """Table 1's rows: base, the oracle when there is one, then the methods."""
        return ["base", *(["oracle"] if self.oracle else []), *self.methods]

    def metric(self) -> str:
        """How FS was scored ('mc' or 'rouge'), from the first evaluation that says."""
        return next((e.metric for e in self.evals.values() if e.metric), "mc")

    def stop_thresholds(self) -> list[float]:
        """The thresholds the methods' unlearning stopped at."""
        return [float(u.threshold) for u in self.unlearn.values() if u.threshold is not None]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Results:
        return cls(
            name=d.get("name", ""), config=dict(d.get("config", {})), methods=list(d.get("methods", [])),
            oracle=bool(d.get("oracle", False)), attack_labels=list(d.get("attack_labels", [])),
            evals={k: Scores.from_json(v) for k, v in d.get("evals", {}).items()},
            unlearn={k: UnlearnRun.from_json(v) for k, v in d.get("unlearn", {}).items()},
            attacks={k: _attacks_from(v) for k, v in d.get("attacks", {}).items()},
            analyses=Analyses.from_json(d.get("analyses", {})),
            floor=_attacks_from(d["floor"]) if d.get("floor") else None,
            verdicts=d.get("verdicts"), seconds=d.get("seconds"), computed=d.get("computed"),
            skipped=d.get("skipped"), stage_seconds=d.get("stage_seconds"), stage_peak_gib=d.get("stage_peak_gib"))

    @classmethod
    def coerce(cls, r: Results | dict[str, Any]) -> Results:
        return r if isinstance(r, Results) else cls.from_json(dict(r))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "config": self.config, "methods": self.methods, "oracle": self.oracle,
            "attack_labels": self.attack_labels, "evals": {k: v.to_json() for k, v in self.evals.items()},
            "unlearn": {k: v.to_json() for k, v in self.unlearn.items()},
            "attacks": {k: _attacks_to(v) for k, v in self.attacks.items()}, "analyses": self.analyses.to_json()}
        if self.floor:
            d["floor"] = _attacks_to(self.floor)
        for key in ("verdicts", "seconds", "computed", "skipped", "stage_seconds", "stage_peak_gib"):
            if (value := getattr(self, key)) is not None:
                d[key] = value
        return d


__all__ = ["Analyses", "AttackRun", "Attribution", "AttributionPair", "Calibration", "Lens", "Results", "Scores",
           "UnlearnRun", "Utility"]

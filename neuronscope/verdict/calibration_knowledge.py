"""Ground truths on knowledge a pretrained model already has (the FaithUn-style counterpart of the calibration).

On real facts no oracle can exist (no model without those facts), so no exact erasure can be built and no
calibrated analysis can run: the grid's verdict of such a model is "undetermined", and it shows, for information,
each attack's gain against the same attack's gain on facts the base never knew (`assemble._never_known`). This
module measures what that never-known comparison says on models whose answer is known, all built from the
pretrained checkpoint itself as the base:

- **planted hiding** (truth: hide, two variants): training only the last layer's MLP down projection, or only
  the last layer's attention q, k, v, o, to the stop threshold on the forget facts (calibration.py's
  constructions; everything else bit-identical to the base, checked), on the gold option's share among the
  options (`planted_objective`; the answers' NLL could not get there on real facts). A site that cannot bring the forget
  answers to the stop threshold within `planted_max_steps` is recorded under checks["not built"] and left out
  (on SmolLM2-135M's country facts the MLP down projection alone did not: docs/verdict.md).
- **no change** (truth: not unlearned): a short fine-tune of the base on the benign corpus only.
- **the never-known floor**: the same attacks on the base, measured on the facts it never knew (the real-facts
  filter's dropped facts), stored as results["floor"] {label: runs} like the grid's, so `model_verdict` applies
  unchanged.

While they are analysed the ground-truth models wait on disk and come back one at a time (`one_at_a_time`, as in
the fine-tune protocol): only the base and the model being analysed are in memory.

The result is a `CalibrationResult`; its headline verdicts are "undetermined" by the verdict's own rules (no floor
model). What it records is the shown-only evidence per ground truth: "present" is the right reading for both
truths here (hide and not unlearned), as in `CalibrationResult.analysis_accuracy`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from neuronscope.attacks import AttackConfig
from neuronscope.data.real_facts import RealFactsConfig, never_known_dataset
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.scoring import multiple_choice_accuracy
from neuronscope.verdict.assemble import model_verdict
from neuronscope.verdict.calibration import (
    CalibrationResult,
    GroundTruth,
    Log,
    attack_set,
    attribution_pair,
    base_attribution,
    construction_checks,
    eval_record,
    no_change,
    one_at_a_time,
    planted_hiding,
)
from neuronscope.verdict.checkpoint import attack_records

PROTOCOL = "knowledge"


@dataclass(frozen=True)
class KnowledgeCalibrationConfig:
    """The knowledge protocol's settings, fixed before it first ran on SmolLM2-135M: the attack is
    pretrained_config's (the grid's SmolLM2 attack: rate 1e-4, 15 steps), planted hiding at 1e-3 (one site), and
    the real-facts data with a larger forget fraction than the grid's (0.3: about 70 known forget facts)."""

    ckpt: str
    data: RealFactsConfig = RealFactsConfig(countries=40, seed=0, forget=0.3, retain=0.2, test=0.5)
    planted_lr: float = 1e-3
    planted_max_steps: int = 300
    # What the planted hiding trains its one site on (calibration._planted). "answer" (gradient ascent on the
    # answers' NLL, the fine-tune protocol's) did not reach the threshold on SmolLM2's real facts at either site
    # (FS 0.45 after 300 steps on the MLP down projection: every option pushed down together), so the knowledge
    # protocol trains the gold option's share among the options instead. Chosen on the constructions' forget
    # accuracy alone, before any analysis ran on them (docs/verdict.md).
    planted_objective: str = "options"
    no_change_lr: float = 1e-4
    no_change_steps: int = 30
    attack: AttackConfig = AttackConfig(kind="harmful", p=0.25, lr=1e-4, steps=15, eval_every=5, batch_size=8)
    benign_attack: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    seed: int = 0  # the constructions' training seed
    attribution: bool = True
    patching: bool = False
    eval_kinds: tuple[str, ...] = ("base",)
    protocol: str = field(default=PROTOCOL, init=False)

    def data_table(self) -> dict[str, Any]:
        """The `[data.real_facts]` table the dataset is built (and cached) from, as a config would give it."""
        return {"countries": self.data.countries, "seed": self.data.seed, "forget": self.data.forget,
                "retain": self.data.retain, "test": self.data.test}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def calibrate_knowledge(ds: QADataset, cfg: KnowledgeCalibrationConfig, log: Log = lambda s: None
                        ) -> CalibrationResult:
    """Ground truths from `cfg.ckpt` on `ds` (facts it knows; meta["never_known"] the facts it does not), every
    attack on them and on the never-known floor, and each model's verdict as the grid assembles it."""
    from neuronscope.models.handle import load_model

    t0 = time.perf_counter()
    floor_ds = never_known_dataset(ds)
    if floor_ds is None:
        raise NeuronscopeError("the knowledge calibration needs facts the model never knew (meta never_known, "
                               "written by the real-facts filter): the dataset has fewer than 2")
    forget = ds.items("forget")
    if not forget:
        raise NeuronscopeError("the knowledge calibration needs forget base questions")
    base = load_model(cfg.ckpt)
    seconds: dict[str, float] = {}
    failed: dict[str, Any] = {}
    truths: list[GroundTruth] = planted_hiding(base, ds, cfg.planted_lr, cfg.planted_max_steps, cfg.seed, log,
                                               seconds, failed, cfg.planted_objective)
    truths.append(no_change(base, ds, cfg.no_change_lr, cfg.no_change_steps, cfg.seed, log, seconds))
    checks = construction_checks(base, truths, forget)
    checks["not built"] = failed  # a planted hiding that did not reach the stop threshold (no ground truth)
    checks["base"] = {"forget_accuracy": multiple_choice_accuracy(base, forget),
                      "retain_accuracy": multiple_choice_accuracy(base, ds.items("retain")), "n_forget": len(forget)}
    checks["never-known floor"] = {"n_items": len(floor_ds.items("forget")),
                                   "base_accuracy": multiple_choice_accuracy(base, floor_ds.items("forget"))}

    attacks = attack_set(cfg.attack, cfg.benign_attack)
    labels = {gt.name: gt.truth for gt in truths}
    named = [(gt.name, gt.model) for gt in truths]
    del truths  # `named` holds the only references: one_at_a_time lets each go once it is on disk
    results: dict[str, Any] = {"methods": list(labels), "evals": {}, "attacks": {},
                               "attack_labels": [], "analyses": {"attribution": {"pairs": {}}}}
    t = time.perf_counter()
    log("analysing base")
    results["evals"]["base"] = eval_record(base, ds, cfg.eval_kinds)
    base_scores = base_attribution(base, ds) if cfg.attribution else None
    with tempfile.TemporaryDirectory(prefix="neuronscope-calibration-") as directory:
        for name, model in one_at_a_time(named, directory):
            log(f"analysing {name}")
            results["evals"][name] = eval_record(model, ds, cfg.eval_kinds)
            results["attacks"][name] = attack_records(model, ds, attacks, cfg.seeds, log)
            if cfg.attribution:
                results["analyses"]["attribution"]["pairs"][f"base vs {name}"] = {
                    "summary": attribution_pair(base, model, ds, cfg.patching, base_scores)}
            del model
    seconds["analyses"] = time.perf_counter() - t
    t = time.perf_counter()
    log("the never-known floor: the same attacks on the base, on facts it never knew")
    results["floor"] = attack_records(base, floor_ds, attacks, cfg.seeds, log)
    results["attack_labels"] = list(results["floor"])
    seconds["never-known floor"] = time.perf_counter() - t
    verdicts = {name: model_verdict(name, results).to_json() for name in labels}
    seconds["total"] = time.perf_counter() - t0
    return CalibrationResult(cfg.to_json(), checks, results, labels, verdicts,
                             {k: round(v, 1) for k, v in seconds.items()})


__all__ = ["PROTOCOL", "KnowledgeCalibrationConfig", "calibrate_knowledge"]

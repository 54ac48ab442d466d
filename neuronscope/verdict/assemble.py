"""The verdict of each model of a run, from what the run measured (a pure function of results.json's content).

The floor is the oracle (the same recipe without the forget facts). Without an oracle no calibrated analysis can
run and every verdict is "undetermined"; the paper's D+/D- rule is still shown, labelled as such, and so is the
relearning recovery against the never-known floor where the run measured one (a real pretrained model).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from neuronscope.verdict.evidence import Evidence, Verdict, decide
from neuronscope.verdict.measures import (
    lens_evidence,
    paper_rule,
    paper_rule_evidence,
    patching_evidence,
    relearning_evidence,
    visible_evidence,
)
from neuronscope.verdict.trust import analysis_family


def _n_forget(ev: dict[str, Any]) -> int:
    return int(ev.get("counts", {}).get("forget", {}).get("base", 0))


def model_verdict(name: str, results: dict[str, Any], floor: str = "oracle",
                  distrusted: dict[str, str] | None = None) -> Verdict:
    """Evidence for one model of a run and the headline verdict (see neuronscope.verdict.evidence).

    `distrusted` ({analysis family: why}, `neuronscope.verdict.trust`): analyses a calibration of this model
    measured wrong; they are shown, with why, but do not decide."""
    evals, attacks = results["evals"], results.get("attacks", {})
    analyses = results.get("analyses", {})
    has_floor = floor in evals
    evidence: list[Evidence] = []
    visible = None
    base_fs = float(evals["base"]["fs"])
    if has_floor:
        ev, fl = evals[name], evals[floor]
        visible = visible_evidence(float(ev["fs"]), _n_forget(ev), float(fl["fs"]), _n_forget(fl), base_fs)
        for label in results.get("attack_labels", []):
            evidence.append(relearning_evidence(label, attacks.get(name, {}).get(label, []),
                                                attacks.get(floor, {}).get(label, []), base_fs))
        lens = analyses.get("lens", {}).get("models", {})
        if name in lens and floor in lens and "base" in lens:
            items = analyses.get("lens", {}).get("items", {})
            evidence.append(lens_evidence(lens[name], lens[floor], lens["base"], _wins(items.get(name)),
                                          _wins(items.get(floor))))
        else:
            evidence.append(Evidence("logit lens (intermediate layers)", "not run"))
    elif results.get("floor"):  # no oracle: the same attacks on facts the base never knew, shown beside
        for label in results.get("attack_labels", []):
            evidence.append(_never_known(label, attacks.get(name, {}).get(label, []),
                                         results["floor"].get(label, []), base_fs))
    pair = analyses.get("attribution", {}).get("pairs", {}).get(f"base vs {name}", {}).get("summary", {})
    influence = pair.get("influence")
    evidence.append(paper_rule_evidence(influence, "p"))
    if pair.get("influence_logp"):
        evidence.append(paper_rule_evidence(pair["influence_logp"], "logp"))
    evidence.append(patching_evidence(pair.get("patching"), int(pair.get("n_items", 0) or 0)))
    return decide([_trusted(e, distrusted or {}) for e in evidence], visible, paper_rule(influence))


def _trusted(e: Evidence, distrusted: dict[str, str]) -> Evidence:
    """`e`, or, where a calibration of this model measured its analysis wrong, shown only with why (a calibrated
    analysis loses its vote; a shown-only one keeps its place and gains the note)."""
    why = distrusted.get(analysis_family(e.analysis))
    if why is None:
        return e
    if e.calibrated:
        return replace(e, calibrated=False, detail=f"{e.detail}; shown only: {why}".lstrip("; "))
    return replace(e, detail=f"{e.detail}; {why}".lstrip("; "))


def _never_known(label: str, runs: list[dict[str, Any]], floor_runs: list[dict[str, Any]], base_fs: float
                 ) -> Evidence:
    """What the attack taught, against what it taught on facts the base never knew; shown only.

    Compared as gains (recovery minus the attack's own starting FS, per seed), not as recoveries: never-known
    facts start near 0 (they were selected as answered wrongly) while unlearned ones start near chance, so raw
    recoveries differ by that start even when an attack teaches nothing (a benign attack that leaves FS where it
    was). The margin is what unlearning removed (the base's FS minus the model's mean start). Shown only: the
    facts differ, and no model whose answer is known (an exact erasure) exists to calibrate this floor."""
    if any(r.get("start_fs") is None for r in [*runs, *floor_runs]):  # records from before start_fs was kept
        ev = relearning_evidence(label, runs, floor_runs, base_fs)
        detail = ev.detail
    else:
        def gains(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**r, "max_fs": r["max_fs"] - r["start_fs"]} for r in rs]

        start = sum(r["start_fs"] for r in runs) / len(runs) if runs else float("nan")
        ev = relearning_evidence(label, gains(runs), gains(floor_runs), base_fs, margin=base_fs - start)
        detail = (f"gain {ev.value:+.3f} from a start of {start:.3f} vs gain {ev.reference:+.3f} on never-known "
                  f"facts" if ev.value is not None and ev.reference is not None else ev.detail)
    return replace(ev, analysis=f"relearning ({label}) vs never-known facts", calibrated=False,
                   detail=f"{detail}; floor: the same attack on facts the base never knew".lstrip("; "))


def _wins(table: dict[str, list[float]] | None) -> dict[int, list[float]] | None:
    return None if table is None else {int(k): v for k, v in table.items()}


def run_verdicts(results: dict[str, Any], distrusted: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """{model: verdict JSON} for every unlearned model of a run (the oracle is the floor itself)."""
    return {name: model_verdict(name, results, distrusted=distrusted).to_json() for name in results.get("methods", [])
            if name in results.get("evals", {})}

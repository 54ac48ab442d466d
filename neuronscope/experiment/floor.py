"""The relearning floor when no oracle can exist: the same attacks on facts the model never knew.

A pretrained model cannot be retrained without the facts it knows, so FaithUn-style runs on a real model have no
oracle. What an attack achieves on facts the base model never knew (the real-facts filter's dropped facts,
meta["never_known"]) is what it can teach from nothing in the same number of steps: a recovery of forgotten facts
at or below this floor is no evidence of hidden knowledge. It is a floor, not an oracle: those facts start at
accuracy 0 (they were chosen as answered wrongly), an unlearned model's forget facts start at about chance, and
they are other (often harder) facts than the forget set.

Each of the floor's attacks is a chain of its own (`floor_chains`): on several processes they fill the time the
methods' chains leave, where as one chain (nine attacks, ~290 s on SmolLM2) taken last it ran alone at the end.
"""

from __future__ import annotations

from pathlib import Path

import torch

from neuronscope.attacks import AttackConfig, AttackResult, attack
from neuronscope.data.real_facts import never_known_dataset
from neuronscope.experiment.config import ExperimentConfig
from neuronscope.experiment.runstate import GridRun
from neuronscope.experiment.stages import Models, attack_label, attack_run
from neuronscope.io import read_json, write_json
from neuronscope.run_results import AttacksByLabel

floor_dataset = never_known_dataset  # the never-known facts as a forget split (neuronscope.data.real_facts)


def floor_chain(i: int) -> str:
    """The chain of the floor's attack number `i` (0-based, in `AttackSection.configs` order)."""
    return f"floor-{i + 1}"


def floor_chains(cfg: ExperimentConfig) -> list[str]:
    """One chain per attack of the grid where the floor stands in for the oracle (no oracle), else none. Known
    from the config alone, before the data exists: where the data turns out to hold no never-known facts, each
    of these chains finds nothing to do."""
    return [] if cfg.oracle else [floor_chain(i) for i in range(len(cfg.attacks.configs()))]


def floor_stage(run: GridRun, m: Models, attack_cfgs: list[AttackConfig]) -> AttacksByLabel | None:
    """Every attack of the grid on the base model, measured on the never-known facts: {label: runs}. A process
    running some chains only (experiment.parallel) computes the attacks whose chain it runs, and its result is
    not read; the final pass runs every chain, so it reads every attack (from the cache)."""
    fds = floor_dataset(m.ds)
    if fds is None:
        return None
    out: AttacksByLabel = {}
    for i, acfg in enumerate(attack_cfgs):
        if not run.mine(floor_chain(i)):
            continue
        def compute(tmp: Path, acfg: AttackConfig = acfg) -> None:
            model = run.load(m.base_dir)
            torch.manual_seed(acfg.seed)
            result = attack(model, fds, acfg, progress=run.steps_bar(
                f"floor: {attack_label(acfg)} lr {acfg.lr:g} seed {acfg.seed}", acfg.steps))
            write_json(tmp / "attack.json", result.to_json())

        art = run.step(f"floor-{acfg.kind}", {"model": m.base.key, "data": m.data.key, "attack": acfg.to_json(),
                                              "floor": "never_known"}, compute,
                       f"floor (never-known facts): {attack_label(acfg)}")
        res = AttackResult.from_json(read_json(art.path / "attack.json"))
        out.setdefault(attack_label(acfg), []).append(attack_run(acfg, res, art))
    return out


__all__ = ["floor_chain", "floor_chains", "floor_dataset", "floor_stage"]

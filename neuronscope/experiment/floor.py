"""The relearning floor when no oracle can exist: the same attacks on facts the model never knew.

A pretrained model cannot be retrained without the facts it knows, so FaithUn-style runs on a real model have no
oracle. What an attack achieves on facts the base model never knew (the real-facts filter's dropped facts,
meta["never_known"]) is what it can teach from nothing in the same number of steps: a recovery of forgotten facts
at or below this floor is no evidence of hidden knowledge. It is a floor, not an oracle: those facts start at
accuracy 0 (they were chosen as answered wrongly), an unlearned model's forget facts start at about chance, and
they are other (often harder) facts than the forget set.
"""

from __future__ import annotations

from pathlib import Path

import torch

from neuronscope.attacks import AttackConfig, AttackResult, attack
from neuronscope.data.real_facts import never_known_dataset
from neuronscope.experiment.runstate import GridRun
from neuronscope.experiment.stages import Models, attack_label, attack_run
from neuronscope.io import read_json, write_json
from neuronscope.run_results import AttacksByLabel

floor_dataset = never_known_dataset  # the never-known facts as a forget split (neuronscope.data.real_facts)


def floor_stage(run: GridRun, m: Models, attack_cfgs: list[AttackConfig]) -> AttacksByLabel | None:
    """Every attack of the grid on the base model, measured on the never-known facts: {label: runs}."""
    fds = floor_dataset(m.ds)
    if fds is None:
        return None
    out: AttacksByLabel = {}
    for acfg in attack_cfgs:
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


__all__ = ["floor_dataset", "floor_stage"]

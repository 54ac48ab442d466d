"""`neuronscope calibrate`: ground-truth erase / hide models and what every analysis says on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from neuronscope.cli.app import app, console, user_errors
from neuronscope.cli.options import OverwriteOpt

if TYPE_CHECKING:
    from neuronscope.verdict.calibration import CalibrationResult

PROTOCOLS = ("finetune", "knowledge")  # with --ckpt: TOFU-style (fictitious people) or FaithUn-style (real facts)


def _check_ckpt(value: str) -> None:
    """A wrong checkpoint or model name fails here, before torch is imported."""
    from neuronscope.models.pretrained_specs import PRETRAINED_PREFIX, spec

    if value.startswith(PRETRAINED_PREFIX):
        spec(value[len(PRETRAINED_PREFIX):])
    else:
        from neuronscope.models.checkpoint import check_checkpoint

        check_checkpoint(Path(value))


def _resolve_ckpt(value: str) -> Path:
    from neuronscope.experiment.builtin import pretrained_checkpoint
    from neuronscope.models.pretrained_specs import PRETRAINED_PREFIX

    return pretrained_checkpoint(value[len(PRETRAINED_PREFIX):]) if value.startswith(PRETRAINED_PREFIX) else Path(value)


def _recipe(cfg: Any, seeds: int | None, attack: dict[str, float | int]) -> Any:
    """A calibration recipe (either protocol's config) with the command line's seeds and attack settings."""
    from dataclasses import replace

    if seeds is not None:
        cfg = replace(cfg, seeds=tuple(range(seeds)))
    return replace(cfg, attack=replace(cfg.attack, **attack))


def _knowledge(ckpt: str, seeds: int | None, attack: dict[str, float | int]
               ) -> Callable[[Callable[[str], None]], CalibrationResult]:
    """The knowledge protocol on `ckpt`: its real-facts dataset built (cached) as a grid config's
    [data.real_facts] would be, then the ground truths and the never-known floor."""
    from neuronscope.data.formats.registry import load_dataset
    from neuronscope.experiment.builtin import built_dataset_dir
    from neuronscope.experiment.config import dataclass_from
    from neuronscope.verdict.calibration_knowledge import KnowledgeCalibrationConfig, calibrate_knowledge

    cfg = _recipe(KnowledgeCalibrationConfig(ckpt=ckpt), seeds, attack)
    ds = load_dataset(built_dataset_dir("real_facts", Path(ckpt), cfg.data_table(), "calibrate: data.real_facts",
                                        dataclass_from))
    return lambda log: calibrate_knowledge(ds, cfg, log)


@app.command("calibrate")
@user_errors
def calibrate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Directory for calibration.json and confusion.md.")],
    size: Annotated[str | None, typer.Option(help="'full' (the default world, 200 people, ~minutes) or 'small' "
                                                  "(the CI-sized world); toy models only.")] = None,
    ckpt: Annotated[str | None, typer.Option(help="Calibrate on fine-tunes of this pretrained checkpoint instead "
                                                  "of toy models: a checkpoint directory or pretrained:NAME (e.g. "
                                                  "pretrained:smollm2-135m, ~30-60 min on one core).")] = None,
    protocol: Annotated[str | None, typer.Option(help="With --ckpt: 'finetune' (the default: fine-tunes on "
                                                      "fictitious people, TOFU-style) or 'knowledge' (ground truths "
                                                      "on real facts the model already knows, FaithUn-style, with "
                                                      "the never-known floor; docs/verdict.md).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Relearning-attack seeds per model (default: 5 full, 3 "
                                                   "small).")] = None,
    attack_lr: Annotated[float | None, typer.Option(
        "--attack-lr", help="The relearning attacks' learning rate, harmful and benign alike (default: the "
                            "recipe's). Calibrate the attack you will run: a verdict read from an attack is only as "
                            "good as that attack's calibration.")] = None,
    attack_steps: Annotated[int | None, typer.Option(
        "--attack-steps", help="The relearning attacks' optimiser steps (default: the recipe's).")] = None,
    attack_p: Annotated[float | None, typer.Option(
        "--attack-p", help="The harmful attack's leaked fraction of the forget facts, in (0, 1] (default: the "
                           "recipe's): calibrate at the p your grid attacks with.")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Build models whose answer is known (exact erasure, planted hiding, no change) and run every analysis.

    With --ckpt and --protocol knowledge: planted hiding and no change on real facts the model already knows, and
    the same attacks on facts it never knew (no exact erasure can exist there; docs/verdict.md)."""
    from neuronscope.errors import NeuronscopeError

    if size not in (None, "full", "small"):
        raise NeuronscopeError(f"--size must be 'full' or 'small', got {size!r}")
    if ckpt is not None and size is not None:
        raise NeuronscopeError("--size sets the toy world; with --ckpt the pretrained recipe is used: give one")
    if protocol is not None and protocol not in PROTOCOLS:
        raise NeuronscopeError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol is not None and ckpt is None:
        raise NeuronscopeError("--protocol chooses the recipe on a pretrained checkpoint: give --ckpt")
    if ckpt is not None:
        _check_ckpt(ckpt)
    if seeds is not None and seeds < 2:
        raise NeuronscopeError(f"--seeds must be at least 2 (the relearning interval needs two), got {seeds}")
    if threads < 1:
        raise NeuronscopeError(f"--threads must be at least 1, got {threads}")
    if attack_lr is not None and not attack_lr > 0:
        raise NeuronscopeError(f"--attack-lr must be positive, got {attack_lr}")
    if attack_steps is not None and attack_steps < 1:
        raise NeuronscopeError(f"--attack-steps must be at least 1, got {attack_steps}")
    # the grid's bound (attacks.AttackConfig): p = 1 trains on every wrong answer, and the harmful split always
    # leaves one item to measure
    if attack_p is not None and not 0 < attack_p <= 1:
        raise NeuronscopeError(f"--attack-p must lie in (0, 1], got {attack_p}")
    attack = {k: v for k, v in (("lr", attack_lr), ("steps", attack_steps), ("p", attack_p)) if v is not None}
    from neuronscope.outdir import check_output, open_output

    check_output(out, overwrite=overwrite)  # before minutes of work
    import torch

    from neuronscope.io import write_json, write_text
    from neuronscope.verdict.calibration import (
        CalibrationConfig,
        calibrate,
        confusion_markdown,
        pretrained_config,
        small_config,
    )

    torch.set_num_threads(threads)
    if protocol == "knowledge" and ckpt is not None:
        run = _knowledge(str(_resolve_ckpt(ckpt)), seeds, attack)
    else:
        if ckpt is not None:
            recipe = pretrained_config(str(_resolve_ckpt(ckpt)))
        else:
            recipe = small_config() if size == "small" else CalibrationConfig()
        cfg = _recipe(recipe, seeds, attack)

        def run(log: Callable[[str], None]) -> CalibrationResult:
            return calibrate(cfg, log=log)

    if console.is_terminal:
        with console.status("calibrating") as status:
            result = run(lambda msg: status.update(f"calibrating: {msg}"))
    else:  # a log file or a pipe: one timestamped line per stage (a spinner draws nothing there)
        import time

        start = time.perf_counter()
        result = run(lambda msg: console.print(f"[{time.perf_counter() - start:6.0f}s] calibrating: {msg}",
                                               markup=False, highlight=False))
    open_output(out, "calibrate", replace=overwrite)
    json_path = write_json(out / "calibration.json", result.to_json())
    md_path = write_text(out / "confusion.md", confusion_markdown(result))
    from neuronscope.cli.verdict_view import print_verdict

    for name, verdict in result.verdicts.items():
        print_verdict(console, verdict, f"{name} (truth: {result.truths[name]})")
    console.print(confusion_markdown(result), markup=False)
    console.print(f"calibration: {json_path}\nconfusion table: {md_path}")

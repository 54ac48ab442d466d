"""The grid's stages, one function each: data, base, oracle, unlearning, attacks, attribution, lens, utility,
calibration (the no-oracle floor is in experiment.floor).

Each stage asks `GridRun.step` for its artifact (computed into a temporary directory, or read from the cache) and
returns the typed part of `Results` it contributes. Each computation loads its inputs from disk and seeds torch
itself, so a resumed or parallel run computes exactly what an uninterrupted serial one would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from neuronscope.attacks import AttackConfig, AttackResult, NothingToRelearn, attack
from neuronscope.base_model import BaseTrainConfig, FinetuneConfig, finetune_base, finetune_items, train_base
from neuronscope.data.schema import KINDS, QADataset, load_dataset, save_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.cache import Artifact
from neuronscope.experiment.config import DataSection, ExperimentConfig
from neuronscope.experiment.runstate import (
    GridRun,
    data_fingerprint,
    dir_fingerprint,
    dir_key,
    model_placement,
    numerics,
)
from neuronscope.io import read_json, write_json
from neuronscope.progress import step_total
from neuronscope.run_results import (
    AttackRun,
    AttacksByLabel,
    Attribution,
    AttributionPair,
    Calibration,
    Lens,
    Scores,
    UnlearnRun,
    Utility,
)
from neuronscope.scoring import EvalReport, evaluate


@dataclass
class Models:
    """What the stages after training need: the data and its artifact, the base model and its artifact."""

    ds: QADataset
    data: Artifact
    base: Artifact
    base_dir: Path


def attack_label(cfg: AttackConfig) -> str:
    return f"harmful p={cfg.p:g}" if cfg.kind == "harmful" else "benign"


def jsonable(obj: Any) -> Any:
    """JSON-safe copy (floats like inf/nan kept as strings, tuples as lists)."""
    return json.loads(json.dumps(obj, default=str))


def write_eval(report: EvalReport, tmp: Path, extra: dict[str, Any] | None = None) -> None:
    write_json(tmp / "eval.json", {"fs": report.fs, "rs": report.rs, "us": report.us, "metric": report.metric,
                                   "detail": report.detail, "counts": report.counts, **(extra or {})})


def read_eval(art: Artifact) -> Scores:
    return Scores.from_json(read_json(art.path / "eval.json"))


def load_experiment_data(cfg: ExperimentConfig) -> QADataset:
    """The dataset the grid's data stage writes: the embedded world, or the real files prepared per [data]."""
    if cfg.data_dir is None:
        from neuronscope.data.world import build_world

        return build_world(cfg.world)
    from neuronscope.data.prepare import prepare_dataset

    d = cfg.data
    return prepare_dataset(cfg.data_dir, format=d.format, prompt=d.prompt, template=d.template or None,
                           chat=d.chat, system=d.system, tokenizer_from=cfg.base_ckpt if d.chat else None,
                           benign=d.benign or None, benign_n=d.benign_n, seed=d.seed)


# --- data, base, oracle -------------------------------------------------------------------------------------------


def data_stage(run: GridRun) -> tuple[Artifact, QADataset]:
    """The dataset (the embedded world or the prepared real files), keyed by what it is made from."""
    cfg = run.cfg
    if cfg.data_dir is not None:
        inputs: dict[str, Any] = {"dir": cfg.data_dir, "files": data_fingerprint(Path(cfg.data_dir))}
        if cfg.data != DataSection():  # real files: how they were prepared, and what rendered them
            inputs["prep"] = asdict(cfg.data)
            if cfg.data.benign:
                inputs["benign"] = data_fingerprint(Path(cfg.data.benign))
            if cfg.data.chat:
                ckpt = Path(cfg.base_ckpt)
                inputs["tokenizer"] = dir_fingerprint(ckpt, "*token*") | dir_fingerprint(ckpt, "*chat*")
    else:
        inputs = {"world": asdict(cfg.world)}

    def make_data(tmp: Path) -> None:
        save_dataset(load_experiment_data(cfg), tmp / "data")

    data = run.step("data", inputs, make_data, "data")
    return data, load_dataset(data.path / "data")


def _base_json(b: BaseTrainConfig) -> dict[str, Any]:
    d = asdict(b)
    d.pop("exclude_splits")
    return d


def _trained(run: GridRun, ds: QADataset, exclude: tuple[str, ...], label: str) -> Callable[[Path], None]:
    """Train the toy model from scratch (without `exclude`); the trainer's own final scoring is the evaluation."""
    cfg = run.cfg

    def compute(tmp: Path) -> None:
        bcfg = BaseTrainConfig(**{**asdict(cfg.base), "toy": cfg.base.toy, "exclude_splits": exclude})
        most = step_total(len(ds.training_items(exclude)), bcfg.batch_size, bcfg.max_epochs)
        result = train_base(ds, bcfg, progress=run.steps_bar(f"training {label}", most, bound=True))
        if not result.reached_target:
            raise NeuronscopeError(
                f"the {label} model did not reach base accuracy {bcfg.target:.2f} in {bcfg.max_epochs} epochs "
                f"(FS {result.report.fs:.3f}, RS {result.report.rs:.3f}); raise base.max_epochs or base.lr")
        result.model.save(tmp / "model")
        write_eval(result.report, tmp, extra={"train": result.summary()})

    return compute


def _finetuned(run: GridRun, ds: QADataset, exclude: tuple[str, ...], label: str) -> Callable[[Path], None]:
    """Fine-tune the given checkpoint (TOFU's first step); the trainer's own final scoring is the evaluation."""
    cfg = run.cfg

    def compute(tmp: Path) -> None:
        assert cfg.finetune is not None and cfg.base_ckpt is not None
        fcfg = FinetuneConfig(**{**asdict(cfg.finetune), "exclude_splits": exclude})
        steps = step_total(len(finetune_items(ds, exclude)), fcfg.batch_size, fcfg.epochs)
        result = finetune_base(run.load(Path(cfg.base_ckpt)), ds, fcfg,
                               progress=run.steps_bar(f"fine-tuning {label}", steps))
        result.model.save(tmp / "model")
        write_eval(result.report, tmp, extra={"train": result.summary()})

    return compute


def _checkpoint_inputs(run: GridRun, data: Artifact) -> dict[str, Any]:
    """What a base from a given checkpoint is keyed by; a fine-tune adds its recipe (`_finetune_inputs`)."""
    cfg = run.cfg
    assert cfg.base_ckpt is not None
    return {"data": data.key, "ckpt": cfg.base_ckpt, "files": dir_fingerprint(Path(cfg.base_ckpt), "*.safetensors"),
            "numerics": numerics(cfg)}


def _finetune_inputs(run: GridRun, data: Artifact) -> dict[str, Any]:
    return {**_checkpoint_inputs(run, data), "finetune": asdict(run.cfg.finetune)}


def base_stage(run: GridRun, data: Artifact, ds: QADataset) -> Models:
    """The base model: fine-tuned from the given checkpoint, the given checkpoint itself, or the trained toy."""
    cfg = run.cfg
    if cfg.base_ckpt is not None and cfg.finetune is not None:  # TOFU: fine-tune the given checkpoint first
        base = run.step("base", _finetune_inputs(run, data), _finetuned(run, ds, (), "base"), "fine-tuning base")
        return Models(ds, data, base, base.path / "model")
    if cfg.base_ckpt is not None:
        def given_base(tmp: Path) -> None:
            write_eval(evaluate(run.load(Path(cfg.base_ckpt)), ds), tmp)

        base = run.step("base", _checkpoint_inputs(run, data), given_base, "base (given checkpoint)")
        return Models(ds, data, base, Path(cfg.base_ckpt))
    inputs = {"data": data.key, "train": _base_json(cfg.base), "numerics": numerics(cfg, placed=False)}
    base = run.step("base", inputs, _trained(run, ds, (), "base"), "training base")
    return Models(ds, data, base, base.path / "model")


def oracle_stage(run: GridRun, data: Artifact, ds: QADataset) -> Artifact:
    """The oracle: the base's training without the forget facts (the floor an erased model should match). It does
    not need the base model, so it can train while another process trains the base."""
    cfg = run.cfg
    if cfg.finetune is not None:
        return run.step("oracle", {**_finetune_inputs(run, data), "exclude": ["forget"]},
                        _finetuned(run, ds, ("forget",), "oracle"), "fine-tuning oracle (without the forget facts)")
    return run.step("oracle", {"data": data.key, "train": _base_json(cfg.base), "exclude": ["forget"],
                               "numerics": numerics(cfg, placed=False)},
                    _trained(run, ds, ("forget",), "oracle"), "training oracle (without the forget facts)")


# --- unlearning ---------------------------------------------------------------------------------------------------


def unlearn_stage(run: GridRun, m: Models, method: str, api: Any) -> tuple[Artifact, Scores, UnlearnRun]:
    """Unlearn `method` from the base model; the loop's final evaluation is the model's evaluation when it scored
    every question kind (it is the same model, in memory), else the saved model is scored."""
    params = run.cfg.unlearn.params_for(method)
    lr_grid = tuple(params.pop("lr_grid", ()))
    stride = params.pop("stride", 1)  # FS scored at every stride-th check, with an exact back-off (same result)
    loop_args = {"stride": stride} if stride > 1 else {}
    ucfg = api.config_cls(**params)
    if hasattr(ucfg, "check"):
        ucfg.check()

    def unlearned(tmp: Path) -> None:
        # an lr search loads the base afresh for each trial (the loop seeds each): no copy of it is held beside
        # the one being trained
        model = run.load(m.base_dir) if not lr_grid else None
        torch.manual_seed(getattr(ucfg, "seed", 0))
        bar = run.steps_bar(f"unlearning {method}", getattr(ucfg, "max_steps", None), bound=True)
        if lr_grid:  # the paper's rule: the lowest learning rate of the grid that reaches the threshold
            if api.lr_search is None:
                raise NeuronscopeError("unlearn.lr_grid needs an lr_search")
            result = api.lr_search(lambda: run.load(m.base_dir), m.ds, method, ucfg, list(lr_grid), progress=bar,
                                   **loop_args)
        else:
            result = api.unlearn(model, m.ds, method, ucfg, progress=bar, **loop_args)
        for note in getattr(result, "notes", ()):
            run.log(f"[yellow]note[/] {method}: {note}")
        result.model.save(tmp / "model")
        write_json(tmp / "unlearn.json", jsonable(result.to_json()))
        report = getattr(result, "report", None)
        if isinstance(report, EvalReport) and set(KINDS) <= set(getattr(ucfg, "eval_kinds", ())):
            write_eval(report, tmp)
        else:
            write_eval(evaluate(run.load(tmp / "model"), m.ds), tmp)

    keyed = ucfg.to_json() if hasattr(ucfg, "to_json") else asdict(ucfg)  # the flat layout runs have recorded
    inputs = {"base": m.base.key, "data": m.data.key, "method": method, "cfg": jsonable(keyed),
              "numerics": numerics(run.cfg)}
    if lr_grid:
        inputs["lr_grid"] = list(lr_grid)
    if stride > 1:  # the curve then has FS only at the scored checks
        inputs["stride"] = stride
    art = run.step(f"unlearn-{method}", inputs, unlearned, f"unlearning {method}")
    return art, read_eval(art), UnlearnRun.from_json(read_json(art.path / "unlearn.json"))


# --- relearning attacks -------------------------------------------------------------------------------------------


def kept_attack(cfg: ExperimentConfig, attack_cfgs: list[AttackConfig]) -> AttackConfig | None:
    """The one attack per model whose final checkpoint is kept for 'unlearned vs attacked' attribution."""
    if not cfg.attribution:
        return None
    return next((a for a in attack_cfgs if a.kind == cfg.attribution_attack), None)


def attack_run(acfg: AttackConfig, res: AttackResult, art: Artifact) -> AttackRun:
    return AttackRun(lr=acfg.lr, seed=acfg.seed, max_fs=res.max_fs, start_fs=res.start_fs, final_fs=res.final_fs,
                     trajectory=res.trajectory, n_train=len(res.train_ids), n_eval=len(res.eval_ids),
                     n_wrong=res.n_wrong, artifact=art.path.name)


def attack_stage(run: GridRun, m: Models, name: str, model: Artifact, ckpt: Path, acfg: AttackConfig,
                 keep: bool) -> tuple[Artifact, AttackRun]:
    """One relearning attack on one model; `keep` saves the attacked model for attribution."""

    def attacked(tmp: Path) -> None:
        loaded = run.load(ckpt)
        torch.manual_seed(acfg.seed)
        result = attack(loaded, m.ds, acfg, progress=run.steps_bar(
            f"{name}: {attack_label(acfg)} lr {acfg.lr:g} seed {acfg.seed}", acfg.steps))
        for note in result.notes:
            run.log(f"[yellow]note[/] {name}: {note}")
        write_json(tmp / "attack.json", result.to_json())
        if keep:
            loaded.save(tmp / "model")

    a = run.step(f"attack-{name}-{acfg.kind}", {"model": model.key, "data": m.data.key, "attack": acfg.to_json(),
                                                "keep_model": keep, "numerics": numerics(run.cfg)},
                 attacked, f"attacking {name}: {attack_label(acfg)}")
    return a, attack_run(acfg, AttackResult.from_json(read_json(a.path / "attack.json")), a)


def attacks_stage(run: GridRun, m: Models, name: str, model: Artifact, ckpt: Path,
                  attack_cfgs: list[AttackConfig]) -> tuple[AttacksByLabel, Path | None]:
    """Every attack of the grid on one model: its runs by label, and the kept attacked checkpoint (if any).

    A model that answers every forget item correctly (an unlearning that never moved an answer) gets no harmful
    attack: there is no wrong answer to train on, whatever the seed or fraction. Its harmful labels are then
    missing, which the table, the figures and the verdict show as "not run"; the rest of the grid goes on."""
    kept = kept_attack(run.cfg, attack_cfgs)
    runs: AttacksByLabel = {}
    attacked_dir = None
    nothing_wrong = False
    for acfg in attack_cfgs:
        keep = kept is not None and acfg == kept
        if acfg.kind == "harmful" and nothing_wrong:
            run.progress.advance(run.overall)
            continue
        try:
            a, record = attack_stage(run, m, name, model, ckpt, acfg, keep)
        except NothingToRelearn as e:
            run.log(f"[yellow]skip[/] {name}: every harmful attack not run: {e}")
            run.progress.advance(run.overall)
            nothing_wrong = True
            continue
        runs.setdefault(attack_label(acfg), []).append(record)
        if keep:
            attacked_dir = a.path / "model"
    return runs, attacked_dir


# --- analyses -----------------------------------------------------------------------------------------------------


def attribution_stage(run: GridRun, m: Models, models: dict[str, Path], attacked: dict[str, Path]) -> Attribution:
    """Base vs each unlearned (or oracle) model, and each of those vs its attacked self: `run_attribute`."""
    from neuronscope.plots.attribution_files import run_attribute

    out = Attribution(available=True)
    for name, ckpt in models.items():
        # (a, its dir, b, its dir, whether the pair runs the patching test)
        pairs = [("base", m.base_dir, name, ckpt, run.cfg.patching)]
        if name in attacked:
            pairs.append((name, ckpt, f"{name}+{run.cfg.attribution_attack}", attacked[name],
                          run.cfg.patching and run.cfg.patch_attacked))
        for a_name, a_dir, b_name, b_dir, patching in pairs:
            def compute(tmp: Path, a_dir: Path = a_dir, b_dir: Path = b_dir, patching: bool = patching) -> None:
                torch.manual_seed(0)
                run_attribute(b_dir, m.ds, tmp, base=a_dir, **model_placement(run.cfg), patching=patching,
                              report=False, also_targets=("logp",), progress=run.stage_bar("attribution"))

            inputs = {"data": m.data.key, "a": dir_key(a_dir), "b": dir_key(b_dir), "patching": patching,
                      "targets": ["p", "logp"], "numerics": numerics(run.cfg)}
            art = run.step(f"attribution-{a_name}-vs-{b_name}".replace("+", "-"), inputs, compute,
                           f"attribution {a_name} vs {b_name}")
            out.pairs[f"{a_name} vs {b_name}"] = AttributionPair(str(art.path.relative_to(run.out)),
                                                                 read_json(art.path / "summary.json"))
    return out


def lens_stage(run: GridRun, m: Models, model_dirs: dict[str, Path]) -> Lens:
    """Per-layer gold-vs-distractor logit-lens accuracy on the forget base items, per model."""
    from neuronscope.lens import logit_lens, summarize_lens, wins_by_layer
    from neuronscope.models.handle import load_model

    out = Lens(available=True)
    items = m.ds.items("forget")
    for name, d in model_dirs.items():
        def compute(tmp: Path, d: Path = d) -> None:
            per_item = logit_lens(load_model(d, **model_placement(run.cfg)), items, seed=0, per_item=True)
            write_json(tmp / "lens.json", jsonable(summarize_lens(per_item).to_dict(orient="records")))
            # per-item wins (items in forget order) let the verdict compare a model and the oracle item by item
            write_json(tmp / "lens_items.json", wins_by_layer(per_item))

        art = run.step(f"lens-{name}", {"data": m.data.key, "model": dir_key(d), "per_item": True,
                                        "numerics": numerics(run.cfg)}, compute, f"logit lens {name}")
        out.models[name] = read_json(art.path / "lens.json")
        out.items[name] = read_json(art.path / "lens_items.json")
    return out


def utility_stage(run: GridRun, model_dirs: dict[str, Path]) -> Utility:
    """US through lm-evaluation-harness per model ([utility]): its own artifact, so changing the tasks recomputes
    only this, never the models."""
    from neuronscope.lm_eval_utility import lm_eval_utility

    u = run.cfg.utility
    out = Utility(list(u.lm_eval), u.limit)
    for name, d in model_dirs.items():
        def compute(tmp: Path, d: Path = d) -> None:
            score = lm_eval_utility(run.load(d), u.lm_eval, u.limit or None, include_path=u.include or None,
                                    include_defaults=u.defaults)
            write_json(tmp / "utility.json", score.to_json())

        inputs = {"model": dir_key(d), "utility": asdict(u), "numerics": numerics(run.cfg)}
        art = run.step(f"utility-{name}", inputs, compute, f"lm-eval utility {name}")
        out.models[name] = read_json(art.path / "utility.json")
    return out


def calibration_stage(run: GridRun, size: str) -> Calibration:
    """Ground-truth erase / hide models and the verdict of every analysis on them ([calibration]); independent
    of the run's own models, so one artifact per calibration configuration."""
    from neuronscope.verdict.calibration import CalibrationConfig, calibrate, small_config

    ccfg = small_config() if size == "small" else CalibrationConfig()

    def compute(tmp: Path) -> None:
        torch.manual_seed(0)
        result = calibrate(ccfg, log=lambda msg: run.progress.update(run.inner, description=f"  calibration: {msg}",
                                                                      visible=True, info=""))
        write_json(tmp / "calibration.json", jsonable(result.to_json()))

    art = run.step("calibration", {"calibration": jsonable(ccfg.to_json())}, compute, "calibration (ground truth)")
    return Calibration.from_json({"size": size, **read_json(art.path / "calibration.json")})


__all__ = ["Models", "attack_label", "attack_stage", "attacks_stage", "attribution_stage", "base_stage",
           "calibration_stage", "data_stage", "kept_attack", "lens_stage", "load_experiment_data", "oracle_stage",
           "unlearn_stage", "utility_stage"]

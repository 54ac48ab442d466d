"""Commands of the foundation: world, train-base and eval."""

import json
from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli.app import app, console, metrics_table, user_errors
from neuronscope.cli.options import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    OverwriteOpt,
    TrustRemoteCodeOpt,
    warn_missing_retain,
)

# BaseTrainConfig's and ToyConfig's defaults, written out so that `--help` imports neither torch nor transformers
# (tests/test_cli_base.py checks they match)
TRAIN_DEFAULTS = {"lr": 5e-4, "max_epochs": 150, "d_model": 192, "n_layers": 4, "n_heads": 4, "d_mlp": 512}


@app.command()
@user_errors
def world(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the world's JSONL files to.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    people: Annotated[int, typer.Option(help="Number of fictitious people (clusters).")] = 200,
    forget: Annotated[float, typer.Option(help="Fraction of clusters in the forget split.")] = 0.05,
    retain: Annotated[float, typer.Option(help="Fraction of clusters in the retain split.")] = 0.10,
    test: Annotated[float, typer.Option(help="Fraction of clusters in the test split.")] = 0.70,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write the synthetic knowledge world (the embedded default dataset)."""
    from neuronscope.data.schema import save_dataset
    from neuronscope.data.world import WorldConfig, build_world
    from neuronscope.outdir import check_output, open_output

    check_output(out, overwrite=overwrite)
    ds = build_world(WorldConfig(people=people, seed=seed, forget=forget, retain=retain, test=test))
    save_dataset(ds, open_output(out, "world", replace=overwrite))
    console.print(metrics_table(f"world written to {out}", {"items": ds.meta["items"],
                                                            "clusters": ds.meta["clusters"]}))


@app.command("train-base")
@user_errors
def train_base_cmd(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint directory to write.")],
    data: Annotated[Path | None, typer.Option("--data", help="World directory; built fresh when omitted.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the model initialisation and batch order.")] = 0,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = TRAIN_DEFAULTS["lr"],
    max_epochs: Annotated[int, typer.Option(help="Give up after this many epochs.")] = TRAIN_DEFAULTS["max_epochs"],
    d_model: Annotated[int, typer.Option(help="Toy model width.")] = TRAIN_DEFAULTS["d_model"],
    n_layers: Annotated[int, typer.Option(help="Toy model depth.")] = TRAIN_DEFAULTS["n_layers"],
    n_heads: Annotated[int, typer.Option(help="Attention heads.")] = TRAIN_DEFAULTS["n_heads"],
    d_mlp: Annotated[int, typer.Option(help="MLP width.")] = TRAIN_DEFAULTS["d_mlp"],
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    oracle: Annotated[bool, typer.Option("--oracle", help="Train without the forget facts: the floor model that "
                                                         "`attribute --oracle` compares with.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Train the toy Llama-style base model on a world until it knows the forget and retain facts."""
    from neuronscope.data.schema import load_dataset, save_dataset
    from neuronscope.data.world import build_world
    from neuronscope.errors import NeuronscopeError
    from neuronscope.io import write_json
    from neuronscope.outdir import check_output, open_output

    check_output(out, overwrite=overwrite, inputs=[data])
    ds = load_dataset(data) if data is not None else None  # a wrong --data: one line before torch is imported
    from neuronscope.base_model import BaseTrainConfig, train_base
    from neuronscope.models.toy import ToyConfig

    toy = ToyConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp)
    cfg = BaseTrainConfig(toy=toy, lr=lr, max_epochs=max_epochs, seed=seed,
                          exclude_splits=("forget",) if oracle else ())
    cfg.check()  # before the world is written or anything trains
    if ds is None:
        ds = build_world()
        data = out.parent / f"{out.name}-world"
        check_output(data, overwrite=overwrite, flag="the world directory of --out,")
        save_dataset(ds, open_output(data, "train-base", replace=overwrite))
    from neuronscope.progress import LoggedProgress, step_total

    # the total is a bound: training stops once the facts are known (every check_every epochs)
    most = step_total(len(ds.training_items(cfg.exclude_splits)), cfg.batch_size, cfg.max_epochs)
    with LoggedProgress(console=console) as bar:
        task = bar.add_task("training oracle (without the forget facts)" if oracle else "training base model",
                            total=most, unit="steps", bound=True)
        result = train_base(ds, cfg, progress=lambda step, loss: bar.update(
            task, completed=step, info=f"loss {loss:.3f}"))
    if not result.reached_target:
        raise NeuronscopeError(
            f"base model did not reach {cfg.target:.2f} base accuracy in {cfg.max_epochs} epochs "
            f"(forget {result.report.detail.get('forget', {}).get('base', float('nan')):.3f}, "
            f"retain {result.report.detail.get('retain', {}).get('base', float('nan')):.3f}); nothing written")
    result.model.save(out, marker="train-base")
    write_json(out / "neuronscope_train.json", result.summary() | {"data": str(data)})
    _print_report(result.report, json_out, extra={"epochs": result.epochs, "seconds": round(result.seconds, 1),
                                                  "n_params": result.n_params, "checkpoint": str(out)})


def _print_report(report, json_out: bool, extra: dict | None = None) -> None:
    if json_out:
        typer.echo(json.dumps(report.to_json() | (extra or {}), indent=2))
        return
    what = "mean ROUGE-L recall" if report.metric == "rouge" else "multiple-choice accuracy"
    console.print(metrics_table(f"scores ({what})",
                                {"FS / RS / US": {"FS": report.fs, "RS": report.rs, "US": report.us}}))
    console.print(metrics_table(f"{what} by split and question kind", report.detail))
    for k, v in (extra or {}).items():
        console.print(f"{k}: {v}")


@app.command("eval")
@user_errors
def eval_cmd(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="HF checkpoint directory.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (or one QA JSONL file).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    normalize: Annotated[str, typer.Option(help="Option score: 'sum' (log P) or 'mean' (per token).")] = "sum",
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    lm_eval: Annotated[str | None, typer.Option(
        "--lm-eval", help="Also score utility with lm-evaluation-harness tasks, comma-separated (mmlu,gsm8k,...; "
                          "'paper' = the paper's five); needs neuronscope[lmeval].")] = None,
    lm_eval_limit: Annotated[int, typer.Option(
        "--lm-eval-limit", help="Items per lm-eval task (the paper: 500); 0 = all.")] = 500,
    lm_eval_include: Annotated[Path | None, typer.Option(
        "--lm-eval-include", help="A directory of extra lm-eval task YAMLs (your own benchmarks).")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Sequences per scoring pass (a batch that would not fit the memory budget is split; "
                             "scores do not depend on it).")] = 256,
) -> None:
    """Score a checkpoint: FS (forget), RS (retain + test), US (utility) and a per-kind breakdown."""
    from neuronscope.data.schema import load_dataset
    from neuronscope.errors import NeuronscopeError
    from neuronscope.models.checkpoint import check_checkpoint

    if normalize not in ("sum", "mean"):
        raise NeuronscopeError(f"--normalize must be 'sum' or 'mean', got {normalize!r}")
    if batch_size < 1:
        raise NeuronscopeError(f"--batch-size must be at least 1, got {batch_size}")
    tasks: tuple[str, ...] | None = None
    if lm_eval is not None:  # fail before loading anything: extra not installed, unknown task, data not offline
        from neuronscope.lm_eval_utility import check_tasks, parse_tasks

        if lm_eval_limit < 0:
            raise NeuronscopeError(f"--lm-eval-limit must be 0 (all) or positive, got {lm_eval_limit}")
        tasks = parse_tasks(lm_eval)
        check_tasks(tasks, lm_eval_include)
    ds = load_dataset(data)
    if not ds.items("forget", "base"):
        raise NeuronscopeError(f"{data}: the forget split has no base questions: FS cannot be scored")
    warn_missing_retain(ds, data)
    check_checkpoint(ckpt)  # a wrong --ckpt: one line before torch is imported
    from neuronscope.models.handle import load_model
    from neuronscope.scoring import evaluate

    model = load_model(ckpt, device=device, dtype=dtype, device_map=device_map, bridge=False,
                       trust_remote_code=trust_remote_code)
    from neuronscope.progress import LoggedProgress

    with LoggedProgress(console=console) as bar:
        task = bar.add_task("scoring", total=None, unit="questions")
        report = evaluate(model, ds, normalize=normalize, batch_size=batch_size,  # type: ignore[arg-type]
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    if tasks is None:
        _print_report(report, json_out)
        return
    from neuronscope.lm_eval_utility import lm_eval_utility

    utility = lm_eval_utility(model, tasks, lm_eval_limit or None, include_path=lm_eval_include)
    if json_out:
        _print_report(report, True, {"lm_eval": utility.to_json()})
        return
    _print_report(report, False)
    rows = {t: {"accuracy": s.accuracy, "metric": s.metric, "n": s.n} for t, s in utility.tasks.items()}
    console.print(metrics_table(f"lm-eval utility (at most {utility.limit or 'all'} items per task)",
                                {**rows, "US (mean)": {"accuracy": utility.us}}))

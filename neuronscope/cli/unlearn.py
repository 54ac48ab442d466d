"""`neuronscope unlearn`: run one unlearning method on a checkpoint and write the unlearned checkpoint.

The output directory holds the HF checkpoint plus `neuronscope_unlearn.json` (FS, RS, US, steps, whether the
threshold was reached, config, lr-search trials) and `unlearn_curve.csv` (one row per step). Everything is
written to a temporary directory that is renamed into place only when complete; on any error nothing is written.
"""

import csv
import io
import json
from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli.app import app, console, metrics_table, user_errors
from neuronscope.cli.options import (
    DeviceMapOpt,
    DeviceOpt,
    DryRunOpt,
    DtypeOpt,
    OverwriteOpt,
    SeqLenOpt,
    TrackOpt,
    TrustRemoteCodeOpt,
    warn_missing_retain,
)

DEFAULT_LR_GRID = "1e-5,3e-5,1e-4,3e-4,1e-3,3e-3"


def curve_csv(curve: list[dict]) -> str:
    """The per-step curve as CSV; columns are the union of keys, missing values left empty."""
    columns: list[str] = []
    for row in curve:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in curve)
    return buf.getvalue()


def _parse_grid(text: str) -> list[float]:
    from neuronscope.errors import NeuronscopeError

    try:
        grid = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise NeuronscopeError(f"--lr-grid must be comma-separated numbers, got {text!r}") from None
    if not grid:
        raise NeuronscopeError("--lr-grid is empty")
    from neuronscope.checks import learning_rates

    learning_rates(grid, "--lr-grid")
    return grid


# flags that set a loop knob or a method setting directly; any other setting is given as --setting KEY=VALUE
FLAGS = {"lr": "--lr", "max_steps": "--max-steps", "threshold": "--threshold", "check_every": "--check-every",
         "stride": "--stride",
         "batch_size": "--batch-size", "seed": "--seed", "lambda_": "--lambda", "lambda_relative": "--lambda-relative",
         "beta": "--beta"}


@app.command("methods")
@user_errors
def methods_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print the methods and their settings as JSON.")] = False,
) -> None:
    """The registered unlearning methods, each with its summary and settings (keys for --setting KEY=VALUE)."""
    from rich.table import Table

    from neuronscope.unlearn.catalog import CATALOG  # what the method classes declare, without importing torch

    rows = [info.listing() for info in CATALOG.values()]
    if json_out:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="unlearning methods (neuronscope unlearn --method NAME [--setting KEY=VALUE])")
    for column in ("method", "summary", "settings (default)"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["method"], r["summary"], "\n".join(f"{k} = {v['default']}: {v['help']}"
                                                             for k, v in r["settings"].items()))
    console.print(table)


def parse_settings(texts: list[str]) -> dict[str, object]:
    """--setting KEY=VALUE pairs, each value typed as its method declares it."""
    from neuronscope.checks import SettingError
    from neuronscope.errors import NeuronscopeError
    from neuronscope.unlearn.base import coerce_setting

    out: dict[str, object] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NeuronscopeError(f"--setting must be KEY=VALUE, got {text!r}")
        try:
            out[key] = coerce_setting(key, value, text=True)
        except SettingError as e:
            raise e.named(f"--setting {key}") from None
    return out


def reworded(e: Exception, from_setting: set[str]) -> Exception:
    """A SettingError named as the user gave the value: `--setting KEY` or the flag."""
    from neuronscope.checks import SettingError, flag_name

    if not isinstance(e, SettingError):
        return e
    if e.setting in from_setting:
        return e.named(f"--setting {e.setting}")
    return e.named(FLAGS.get(e.setting, flag_name(e.setting)))


@app.command("unlearn")
@user_errors
def unlearn_cmd(
    method: Annotated[str, typer.Option("--method", help="A registered method: `neuronscope methods` lists them.")],
    ckpt: Annotated[Path, typer.Option("--ckpt", help="HF checkpoint directory to unlearn from.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (forget.jsonl, retain.jsonl, ...).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the unlearned checkpoint.")],
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 1e-4,
    lambda_: Annotated[float | None, typer.Option(
        "--lambda", help="Ssiuu regulariser weight (default: the variant's toy default).")] = None,
    lambda_relative: Annotated[bool, typer.Option(
        "--lambda-relative", help="Scale-free: weight = lambda / L_reg at its first active step.")] = False,
    beta: Annotated[float | None, typer.Option(
        "--beta", help="DPO/NPO inverse temperature (default: the method's, 0.1).")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--setting", help="A method setting, KEY=VALUE (repeatable; `neuronscope methods` lists the keys).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of batch order and random vectors.")] = 0,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Give up after this many steps.")] = 500,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Stop once FS <= this (default: the data's own: chance, or TOFU's 0.1971).")] = None,
    check_every: Annotated[int, typer.Option("--check-every", help="Steps between forget checks.")] = 1,
    stride: Annotated[int, typer.Option(
        "--stride", help="Score FS at every N-th check only, then go back to the first check that met the "
                         "threshold (same steps and weights; docs/unlearning.md).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Forget and retain batch size.")] = 16,
    lr_search: Annotated[bool, typer.Option(
        "--lr-search", help="Use the lowest lr of --lr-grid that reaches the threshold.")] = False,
    lr_grid: Annotated[str, typer.Option("--lr-grid", help="Comma-separated learning rates.")] = DEFAULT_LR_GRID,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",  # training: bf16 weights stall at small lr (neuronscope.models.precision)
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    dry_run: DryRunOpt = False,
    seq_len: SeqLenOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    overwrite: OverwriteOpt = False,
    track: TrackOpt = None,
) -> None:
    """Unlearn the forget split from a checkpoint; stop as soon as forget accuracy reaches chance."""
    from neuronscope.data.schema import load_dataset
    from neuronscope.errors import NeuronscopeError
    from neuronscope.models.checkpoint import check_checkpoint
    from neuronscope.outdir import check_output
    from neuronscope.tracking import check_tracker
    from neuronscope.unlearn.catalog import check_method

    check_tracker(track)
    check_method(method)  # an unknown name: one line before torch is imported
    if not dry_run:  # a dry run writes nothing
        check_output(out, overwrite=overwrite, inputs=[ckpt, data])
    ds = load_dataset(data)
    if not ds.items("forget", "base"):
        raise NeuronscopeError(f"{data}: the forget split has no base questions: nothing to unlearn")
    if not dry_run:  # a dry run reads config.json only (plan_inputs)
        check_checkpoint(ckpt)  # the paths first: a wrong one is one line before torch is imported
    from neuronscope.checks import SettingError, at_least
    from neuronscope.io import atomic_path, write_json, write_text
    from neuronscope.models.handle import Model, load_model, save_pretrained
    from neuronscope.unlearn import UnlearnConfig, get_method
    from neuronscope.unlearn import lr_search as run_lr_search
    from neuronscope.unlearn import unlearn as run_unlearn

    method_cls = get_method(method)
    method_args = parse_settings(setting or [])
    from_setting = set(method_args)
    flags = {"lambda_": lambda_, "lambda_relative": lambda_relative or None, "beta": beta}
    method_args |= {k: v for k, v in flags.items() if v is not None}
    cfg = UnlearnConfig(lr=lr, max_steps=max_steps, threshold=threshold, check_every=check_every,
                        batch_size=batch_size, seed=seed, method_args=method_args)
    try:
        cfg.check()
        cfg.settings(method_cls)
        at_least(stride, 1, "stride")
    except SettingError as e:
        raise reworded(e, from_setting) from None
    grid = _parse_grid(lr_grid) if lr_search else []
    warn_missing_retain(ds, data)
    if dry_run:
        from neuronscope.cli.options import plan_inputs, print_plan
        from neuronscope.plan import plan_unlearn, planned_dtype

        shape, counts = plan_inputs(ckpt, ds, seq_len)
        wdtype = planned_dtype(dtype, device, device_map)
        assert counts is not None
        print_plan(plan_unlearn(shape, wdtype, method, batch_size, counts, max_steps, len(set(grid)) or 1,
                                check_every, cfg.rs_every, method_args, stride=stride),
                   shape, counts, wdtype)
        return
    from neuronscope.cli.options import note_idle_gpu

    note_idle_gpu(device, device_map)

    def load() -> Model:
        return load_model(ckpt, device=device, dtype=dtype, device_map=device_map, bridge=False,
                          trust_remote_code=trust_remote_code)

    model = load() if not lr_search else None  # a search loads it for each trial: no copy held beside a trial

    from neuronscope.progress import LoggedProgress

    with LoggedProgress(console=console) as bar:
        # a bound: unlearning stops as soon as FS reaches the threshold; an lr search runs up to one trial per rate
        task = bar.add_task(f"unlearning ({method})", total=max_steps * (len(set(grid)) or 1), unit="steps",
                            bound=True)
        done = {"before": 0, "last": 0}  # steps of finished lr-search trials, and the last step seen

        def progress(step: int, row: dict) -> None:
            if step < done["last"]:  # a new lr-search trial started over at step 1
                done["before"] += done["last"]
            done["last"] = step
            fs = f" FS {row['fs']:.2f}" if row.get("fs") is not None else ""
            bar.update(task, completed=done["before"] + step,
                       info=f"step {step} loss {row.get('loss', float('nan')):.3f}{fs}")

        try:
            if lr_search:
                result = run_lr_search(load, ds, method, cfg, grid, progress=progress, stride=stride)
            else:
                result = run_unlearn(model, ds, method, cfg, progress=progress, stride=stride)
        except SettingError as e:  # a setting that only the model can judge (rmu_layer past the last block)
            raise reworded(e, from_setting) from None

    meta = dict(getattr(result.model.hf.config, "neuronscope", None) or {})
    meta["unlearn"] = result.summary() | {"source": str(ckpt), "data": str(data)}
    result.model.hf.config.neuronscope = meta
    with atomic_path(out, directory=True, marker="unlearn") as tmp:
        save_pretrained(result.model.hf, tmp)
        result.model.tokenizer.save_pretrained(tmp)
        write_text(tmp / "unlearn_curve.csv", curve_csv(result.curve))
        write_json(tmp / "neuronscope_unlearn.json", result.to_json() | {"source": str(ckpt), "data": str(data)})

    if track is not None:
        from neuronscope.tracking import log_unlearn, open_tracker

        with open_tracker(track, out, f"unlearn-{method}", result.config) as tracker:
            log_unlearn(tracker, method, result.to_json())
    if json_out:
        typer.echo(json.dumps(result.summary() | {"checkpoint": str(out)}, indent=2))
        return
    threshold = float(result.config["threshold"])
    console.print(metrics_table(f"unlearning with {method} (threshold {threshold:.3f})", {
        "result": {"lr": f"{result.lr:g}", "steps": result.steps, "reached": str(result.reached),
                   "FS": result.fs, "RS": result.rs, "US": result.us, "seconds": f"{result.seconds:.1f}"}}))
    if result.trials:
        console.print(metrics_table("lr search", {f"{t['lr']:g}": {k: v for k, v in t.items() if k != "lr"}
                                                  for t in result.trials}))
    for note in result.notes:
        console.print(f"note: {note}")
    if not result.reached:
        console.print(f"[yellow]warning:[/] FS {result.fs:.3f} did not reach {threshold:.3f} "
                      f"in {max_steps} steps")
    console.print(f"wrote {out} (checkpoint, neuronscope_unlearn.json, unlearn_curve.csv"
                  f"{f', {track} logs' if track else ''})")

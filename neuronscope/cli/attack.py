"""`neuronscope attack`: a relearning attack on one checkpoint, over seeds and learning rates."""

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
)


@app.command("attack")
@user_errors
def attack_cmd(
    kind: Annotated[str, typer.Option("--kind", help="harmful (train on some forget facts) or benign (unrelated "
                                                     "instructions).")],
    ckpt: Annotated[Path, typer.Option("--ckpt", help="The unlearned HF checkpoint directory to attack.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (forget split, benign corpus).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write one JSON per run and summary.json to.")],
    p: Annotated[float, typer.Option("--p", help="Harmful: fraction of the forget base items to train on, "
                                                 "drawn from those answered wrongly.")] = 0.1,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0, 1, ...): mean and spread.")] = 3,
    lr: Annotated[list[float] | None, typer.Option("--lr", help="Learning rate; repeat for a grid.")] = None,
    steps: Annotated[int, typer.Option("--steps", help="AdamW steps per attack.")] = 30,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Measure FS every this many steps.")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Attack batch size.")] = 16,
    benign_n: Annotated[int, typer.Option("--benign-n", help="Benign: sample this many items (0 = all).")] = 0,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",  # training: bf16 weights stall at small lr (neuronscope.models.precision)
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    dry_run: DryRunOpt = False,
    seq_len: SeqLenOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    overwrite: OverwriteOpt = False,
    track: TrackOpt = None,
) -> None:
    """Fine-tune an unlearned checkpoint and report the highest forget accuracy it climbs back to."""
    from neuronscope.data.schema import load_dataset
    from neuronscope.errors import NeuronscopeError
    from neuronscope.io import write_json
    from neuronscope.models.checkpoint import check_checkpoint
    from neuronscope.outdir import check_output, open_output
    from neuronscope.stats import summarize
    from neuronscope.tracking import check_tracker

    check_tracker(track)
    if seeds < 1:
        raise NeuronscopeError(f"--seeds must be at least 1, got {seeds}")
    if not dry_run:  # a dry run writes nothing and reads config.json only (plan_inputs)
        check_output(out, overwrite=overwrite, inputs=[ckpt, data])
    ds = load_dataset(data)
    if not dry_run:
        check_checkpoint(ckpt)  # the paths first: a wrong one is one line before torch is imported
    from neuronscope.attacks import AttackConfig, attack
    from neuronscope.models.handle import load_model

    lrs = lr or [1e-3]
    cfgs = [AttackConfig(kind=kind, p=p, lr=x, steps=steps, eval_every=eval_every, batch_size=batch_size, seed=s,
                         benign_n=benign_n) for x in lrs for s in range(seeds)]
    for c in cfgs:
        c.check()
    if dry_run:
        from neuronscope.cli.options import plan_inputs, print_plan
        from neuronscope.plan import plan_attack, planned_dtype

        shape, counts = plan_inputs(ckpt, ds, seq_len)
        wdtype = planned_dtype(dtype, device, device_map)
        assert counts is not None
        print_plan(plan_attack(shape, wdtype, batch_size, counts, steps, len(cfgs), eval_every), shape, counts,
                   wdtype)
        return
    from neuronscope.cli.options import note_idle_gpu

    note_idle_gpu(device, device_map)
    original = load_model(ckpt, device=device, dtype=dtype, device_map=device_map, bridge=False,
                          trust_remote_code=trust_remote_code)
    from neuronscope.budget import check_dataset

    check_dataset(original, ds)  # every question fits the model's context: before --out is created
    open_output(out, "attack", replace=overwrite)
    summary: dict[str, dict] = {}
    results: dict[str, dict] = {}
    notes: list[str] = []
    from neuronscope.progress import LoggedProgress

    with LoggedProgress(console=console) as bar:
        task = bar.add_task("attacking", total=len(cfgs) * steps, unit="steps")
        for c in cfgs:
            bar.update(task, description=f"{kind} lr {c.lr:g} seed {c.seed}")
            result = attack(original.clone(), ds, c, progress=lambda _s, loss: bar.update(
                task, advance=1, info=f"loss {loss:.3f}"))
            tag = f"{kind}{f'-p{p:g}' if kind == 'harmful' else ''}-lr{c.lr:g}-seed{c.seed}"
            write_json(out / f"attack-{tag}.json", result.to_json())
            results[tag] = result.to_json()
            notes += [n for n in result.notes if n not in notes]
            summary.setdefault(f"lr {c.lr:g}", {"lr": c.lr, "max_fs": [], "start_fs": []})
            summary[f"lr {c.lr:g}"]["max_fs"].append(result.max_fs)
            summary[f"lr {c.lr:g}"]["start_fs"].append(result.start_fs)
    for row in summary.values():
        row["summary"] = summarize(row["max_fs"]).to_json()
    write_json(out / "summary.json", {"kind": kind, "p": p if kind == "harmful" else None, "ckpt": str(ckpt),
                                      "data": str(data), "runs": summary})
    if track is not None:
        from neuronscope.tracking import log_attack, open_tracker

        with open_tracker(track, out, f"attack-{kind}", {"ckpt": str(ckpt), "data": str(data), "kind": kind,
                                                         "p": p, "steps": steps, "lrs": lrs}) as tracker:
            for tag, res in results.items():
                log_attack(tracker, f"attack/{tag}", res)
            for row in summary.values():
                tracker.scalars(f"attack/lr{row['lr']:g}", {"max_fs_mean": row["summary"]["mean"]}, 0)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    rows = {k: {"start FS": sum(v["start_fs"]) / len(v["start_fs"]), "max FS mean": v["summary"]["mean"],
                "sd": v["summary"]["sd"], "95% ±": v["summary"]["ci95"], "seeds": len(v["max_fs"])}
            for k, v in summary.items()}
    title = f"{kind} attack{f' (p={p:g})' if kind == 'harmful' else ''}: max FS during retraining"
    console.print(metrics_table(title, rows))
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}")
    console.print(f"written to {out}")

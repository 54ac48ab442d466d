"""`neuronscope attribute`: neuron attribution of a checkpoint and, against its base, erase (D+) vs hide (D-)."""

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
    TrustRemoteCodeOpt,
)


@app.command("attribute")
@user_errors
def attribute_cmd(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="Checkpoint to analyse (the unlearned model).")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory (or one QA JSONL file = forget split).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write tables, summary.json and report.html.")],
    base: Annotated[Path | None, typer.Option("--base", help="Checkpoint before unlearning: adds D+/D-, curves "
                                                             "and the patching test.")] = None,
    split: Annotated[str, typer.Option(help="Split whose items are attributed (the forget set C_f).")] = "forget",
    kind: Annotated[str, typer.Option(help="Question kind to use: base, paraphrase, multihop, same_answer, "
                                           "or 'all'.")] = "base",
    positions: Annotated[str, typer.Option(help="Token positions max/min run over: 'prompt' (prompt tokens incl. "
                                                "bos), 'all' (prompt + answer inputs), 'last' (last prompt "
                                                "token).")] = "prompt",
    batch_size: Annotated[int, typer.Option(help="Questions per forward/backward pass.")] = 16,
    per_example: Annotated[bool, typer.Option("--per-example", help="Write one row per (item, neuron) instead "
                                                                   "of means over items.")] = False,
    patching: Annotated[bool, typer.Option("--patching/--no-patching", help="Run the causal patching test "
                                                                           "(with --base).")] = True,
    patch_m: Annotated[str | None, typer.Option("--patch-m", help="Comma-separated neuron counts m for the "
                                                                 "patching curves, e.g. 0,10,100 (default: 0, 1, "
                                                                 "2, 5, 10, ... all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random-neuron control in the patching test.")] = 0,
    target: Annotated[str, typer.Option(help="What the attribution differentiates: 'p' (P(y|x), the paper's) or "
                                             "'logp' (log P(y|x); not shrunk by how far P fell).")] = "p",
    oracle: Annotated[Path | None, typer.Option("--oracle", help="A model that never saw the forget facts (the "
                                                                 "floor): enables the calibrated verdict (forget "
                                                                 "score, logit lens, relearning attacks).")] = None,
    relearn_seeds: Annotated[int, typer.Option(help="Seeds of each relearning attack of the verdict (0: no "
                                                    "attacks).")] = 3,
    calibration: Annotated[str | None, typer.Option(
        "--calibration", help="With --oracle: a calibration of this model (the calibration.json of `neuronscope "
                              "calibrate --ckpt ...`, or shipped:NAME); analyses it measured wrong are shown "
                              "only in the verdict.")] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    dry_run: DryRunOpt = False,
    seq_len: SeqLenOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Attribute every neuron (A = h * dP(y|x)/dh); with --base and --oracle, tell whether unlearning erased or hid."""
    from neuronscope.errors import NeuronscopeError

    ms = None
    if patch_m is not None:
        try:
            ms = [int(v) for v in patch_m.split(",") if v.strip()]
        except ValueError:
            raise NeuronscopeError(f"--patch-m must be comma-separated integers, got {patch_m!r}") from None
        if any(m < 0 for m in ms):
            raise NeuronscopeError(f"--patch-m values must be >= 0, got {patch_m!r}")
    if batch_size < 1:  # checked here too, before --out is created
        raise NeuronscopeError(f"--batch-size must be at least 1, got {batch_size}")
    if positions not in ("prompt", "all", "last"):
        raise NeuronscopeError(f"--positions must be one of prompt, all, last, got {positions!r}")
    if target not in ("p", "logp"):
        raise NeuronscopeError(f"--target must be 'p' or 'logp', got {target!r}")
    if relearn_seeds < 0:
        raise NeuronscopeError(f"--relearn-seeds must be >= 0, got {relearn_seeds}")
    if oracle is not None and base is None:
        raise NeuronscopeError("--oracle needs --base (the verdict compares the checkpoint with its base)")
    if calibration is not None:
        if oracle is None:
            raise NeuronscopeError("--calibration changes what the verdict reads: it needs --oracle")
        from neuronscope.verdict.trust import calibration_ref

        calibration = calibration_ref(calibration)  # a missing or wrong file: one line, before torch

    if dry_run:
        from neuronscope.data.schema import load_dataset

        ds = load_dataset(data)  # a wrong --data: one line before torch is imported
        from neuronscope.attribution.run import SettingError, select_items
        from neuronscope.cli.options import plan_inputs, print_plan
        from neuronscope.plan import plan_attribute, planned_dtype

        try:
            items = select_items(ds, split, None if kind == "all" else kind)
        except SettingError as e:
            raise e.named("--split") from None
        shape, counts = plan_inputs(ckpt, ds, seq_len)
        assert counts is not None
        wdtype = planned_dtype(dtype, device, device_map)
        plan = plan_attribute(shape, wdtype, batch_size, len(items), counts.seq_len, per_example=per_example,
                              with_base=base is not None, patching=patching and base is not None)
        print_plan(plan, shape, counts, wdtype)
        return
    from neuronscope.outdir import check_output, open_output
    from neuronscope.plots.attribute_inputs import check_attribute_inputs

    check_output(out, overwrite=overwrite, inputs=[ckpt, base, data, oracle])
    check_attribute_inputs(ckpt, data, base=base, oracle=oracle, split=split, kind=None if kind == "all" else kind)
    from neuronscope.cli.options import note_idle_gpu
    from neuronscope.plots.attribution_files import run_attribute

    open_output(out, "attribute", replace=overwrite)
    note_idle_gpu(device, device_map)
    from neuronscope.progress import LoggedProgress

    with LoggedProgress(console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, unit="batches")
            bar.update(tasks[stage], completed=done)

        run = run_attribute(ckpt, data, out, base=base, split=split, kind=None if kind == "all" else kind,
                            positions=positions, batch_size=batch_size, device=device, dtype=dtype,
                            device_map=device_map, trust_remote_code=trust_remote_code,
                            per_example=per_example,
                            patching=patching, patch_ms=ms, seed=seed, progress=progress, target=target,
                            also_targets=("logp" if target == "p" else "p",), oracle=oracle,
                            relearn=[] if relearn_seeds == 0 else None, relearn_seeds=tuple(range(relearn_seeds)),
                            calibration=calibration or "")
    s = run.summary
    console.print(metrics_table("attribution", {s["ckpt"]: {"items": s["n_items"], "neurons": s["n_neurons"],
                                                            "positions": s["positions"]}}))
    if "influence" in s:
        inf = s["influence"]
        console.print(metrics_table(f"influence variation ({target} target), sum over the top-100 neurons", {
            "D+ (erased)": {"value": f"{inf['top100_d_plus']:.4g}"},
            "D- (hidden)": {"value": f"{inf['top100_d_minus']:.4g}"},
            "the paper's rule": {"value": inf["paper_verdict"]}}))
    if "patching" in s:
        p = s["patching"]
        rows = {"base": p["base_accuracy"], "unlearned": p["unlearned_accuracy"]}
        rows |= {f"patch top-{p['m']} by {label}": p[key] for label, key in
                 (("D-", "d_minus_accuracy"), ("D+", "d_plus_accuracy"), ("random", "random_accuracy")) if key in p}
        rows["patch all neurons"] = p["all_neurons_accuracy"]
        console.print(metrics_table("forget accuracy (3-option multiple choice)",
                                    {k: {"accuracy": v} for k, v in rows.items()}))
    if "verdict_detail" in s:
        from neuronscope.cli.verdict_view import print_verdict

        print_verdict(console, s["verdict_detail"])
    for name, path in run.files.items():
        if name != "summary":
            console.print(f"{name}: {path}")
    console.print(f"summary: {run.files['summary']}")

"""`neuronscope lens`: per-layer logit-lens accuracy of a checkpoint (and optionally its base) on one split."""

from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli.app import app, console, metrics_table, user_errors
from neuronscope.cli.options import DeviceMapOpt, DeviceOpt, DtypeOpt, OverwriteOpt, TrustRemoteCodeOpt


@app.command("lens")
@user_errors
def lens_cmd(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="HF checkpoint directory (e.g. the unlearned model).")],
    data: Annotated[Path, typer.Option("--data", help="Dataset directory or file (world, FaithUn, ...).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write lens.csv, lens_items.csv, summary.json.")],
    base: Annotated[Path | None, typer.Option("--base", help="Checkpoint to compare with (before unlearning).")
                    ] = None,
    split: Annotated[str, typer.Option(help="Split to probe: forget, retain, test, other or utility.")] = "forget",
    kind: Annotated[str, typer.Option(help="Question kind (base, paraphrase, multihop, same_answer) or 'all'.")
                    ] = "base",
    seed: Annotated[int, typer.Option(help="Seed of the per-item distractor draw.")] = 0,
    no_final_norm: Annotated[bool, typer.Option("--no-final-norm", help="Unembed the raw residual stream.")
                             ] = False,
    answer_tokens: Annotated[str, typer.Option(help="'first' answer token, or 'sum' / 'mean' over all tokens.")
                             ] = "first",
    position: Annotated[int, typer.Option(help="Prompt token to read (-1: last, the answer-predicting one).")
                        ] = -1,
    batch_size: Annotated[int, typer.Option(help="Items per forward pass.")] = 64,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Logit lens: at every layer, does the residual stream prefer the gold answer over a distractor? (chance 0.5)"""
    from neuronscope.data.schema import KINDS, load_dataset
    from neuronscope.errors import NeuronscopeError, SettingError
    from neuronscope.io import write_json, write_text
    from neuronscope.models.checkpoint import check_checkpoint
    from neuronscope.outdir import check_output, open_output

    if batch_size < 1:
        raise NeuronscopeError(f"--batch-size must be at least 1, got {batch_size}")
    if kind != "all" and kind not in KINDS:
        raise NeuronscopeError(f"--kind must be one of {', '.join(KINDS)} or 'all', got {kind!r}")
    check_output(out, overwrite=overwrite, inputs=[ckpt, base, data])
    ds = load_dataset(data)
    available = [s for s, v in ds.splits.items() if v] + (["utility"] if ds.utility else [])
    if split not in available:
        raise NeuronscopeError(f"{data}: no split {split!r} (available: {', '.join(available) or 'none'})")
    items = ds.items(split, None if kind == "all" else kind)
    if not items:
        raise NeuronscopeError(f"{data}: split {split!r} has no questions of kind {kind!r}")
    models = {"ckpt": ckpt} | ({"base": base} if base is not None else {})
    for path in models.values():  # both, before the first one is loaded and probed; and before torch is imported
        check_checkpoint(path)
    import pandas as pd
    from transformers.utils import logging as hf_logging

    from neuronscope.lens import ANSWER_TOKENS, CHANCE, logit_lens, summarize_lens
    from neuronscope.models.handle import load_model

    if answer_tokens not in ANSWER_TOKENS:
        raise NeuronscopeError(f"--answer-tokens must be one of {', '.join(ANSWER_TOKENS)}, got {answer_tokens!r}")

    hf_logging.disable_progress_bar()  # the weight-loading bar would precede a one-line error on stderr
    per_item = []
    for name, path in models.items():
        model = load_model(path, device=device, dtype=dtype, device_map=device_map,
                           trust_remote_code=trust_remote_code)
        try:
            rows = logit_lens(model, items, seed=seed, position=position, final_norm=not no_final_norm,
                              answer_tokens=answer_tokens, batch_size=batch_size, per_item=True)
        except SettingError as e:
            raise e.named("--batch-size") from None
        per_item.append(rows.assign(model=name))
        del model
    item_table = pd.concat(per_item, ignore_index=True)
    item_table = item_table[["model", *[c for c in item_table.columns if c != "model"]]]
    table = summarize_lens(item_table)

    open_output(out, "lens", replace=overwrite)
    written = [write_text(out / "lens.csv", table.to_csv(index=False)),
               write_text(out / "lens_items.csv", item_table.to_csv(index=False))]
    accuracy = {name: table[table["model"] == name]["accuracy"].round(6).tolist() for name in models}
    summary = {
        "checkpoints": {name: str(path) for name, path in models.items()}, "data": str(data), "split": split,
        "kind": kind, "n_items": len(items), "seed": seed, "position": position, "final_norm": not no_final_norm,
        "answer_tokens": answer_tokens, "chance": CHANCE, "layers": sorted(table["layer"].unique().tolist()),
        "accuracy": accuracy,
    }
    written.append(write_json(out / "summary.json", summary))

    rows = {f"layer {layer}": {name: accuracy[name][i] for name in models}
            for i, layer in enumerate(summary["layers"])}
    console.print(metrics_table(f"logit-lens accuracy (chance {CHANCE})", rows))
    console.print(f"{len(items)} items of {split}/{kind}; distractor seed {seed}")
    for path in written:
        console.print(f"wrote {path}")

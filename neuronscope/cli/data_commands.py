"""Commands that get real data and real checkpoints ready: prepare (FaithUn / TOFU / Alpaca) and finetune."""

from pathlib import Path
from typing import Annotated

import typer

from neuronscope.cli.app import app, console, metrics_table, user_errors
from neuronscope.cli.options import DeviceMapOpt, DeviceOpt, DtypeOpt, OverwriteOpt, TrustRemoteCodeOpt


@app.command()
@user_errors
def prepare(
    data: Annotated[Path, typer.Option("--data", help="FaithUn / TOFU file or directory, or a world directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the prepared dataset (world format) to.")],
    format: Annotated[str, typer.Option("--format", help="auto, world, faithun or tofu.")] = "auto",
    prompt: Annotated[str, typer.Option("--prompt", help="plain, mcqa (options listed, option texts scored) or "
                                                         "mcqa-letters (letters scored).")] = "plain",
    template: Annotated[str | None, typer.Option(
        "--template", help="Custom prompt template over {question} and {options}.")] = None,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap prompts in the chat template of --tokenizer-from.")
                    ] = False,
    system: Annotated[str, typer.Option("--system", help="System message for the chat template.")] = "",
    tokenizer_from: Annotated[Path | None, typer.Option(
        "--tokenizer-from", help="Checkpoint whose tokenizer renders the chat template.")] = None,
    benign: Annotated[Path | None, typer.Option("--benign", help="Alpaca JSON: the benign attack's corpus.")] = None,
    benign_n: Annotated[int, typer.Option("--benign-n", help="Seeded sample of the benign corpus (0 = all).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the benign sample.")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Read real benchmark files once and write them, formatted for a model, as a dataset every command reads."""
    from neuronscope.data.prepare import prepare_dataset
    from neuronscope.data.schema import save_dataset
    from neuronscope.io import atomic_path
    from neuronscope.outdir import check_output

    check_output(out, overwrite=overwrite, inputs=[data, tokenizer_from, benign])
    ds = prepare_dataset(data, format=format, prompt=prompt, chat=chat, system=system, template=template,
                         tokenizer_from=tokenizer_from, benign=benign, benign_n=benign_n, seed=seed)
    with atomic_path(out, directory=True, marker="prepare") as tmp:
        save_dataset(ds, tmp)
    counts = {s: {"items": len(v), "base": sum(it.kind == "base" for it in v)} for s, v in ds.splits.items()}
    counts["utility"] = {"items": len(ds.utility), "base": len(ds.utility)}
    counts["benign"] = {"items": len(ds.benign)}
    from neuronscope.scoring import dataset_metric, stop_threshold

    console.print(metrics_table(f"prepared {ds.meta.get('format', 'world')} data in {out}", counts))
    console.print(f"scored by: {dataset_metric(ds)}; unlearning stops at FS <= {stop_threshold(ds):.4f}")


@app.command()
@user_errors
def finetune(
    ckpt: Annotated[Path, typer.Option("--ckpt", help="Pretrained HF checkpoint directory to start from.")],
    data: Annotated[Path, typer.Option("--data", help="Dataset (prepared directory or any supported file).")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint directory to write.")],
    lr: Annotated[float, typer.Option(help="AdamW learning rate (TOFU: 1e-5).")] = 1e-5,
    epochs: Annotated[int, typer.Option(help="Epochs over the QA pairs (TOFU: 5).")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the batch order.")] = 0,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Split to leave out (repeatable); --exclude forget gives the retain-only oracle.")] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",  # training: bf16 weights stall at small lr (neuronscope.models.precision)
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Fine-tune a pretrained checkpoint on the dataset's QA pairs first (TOFU's protocol), then save it."""
    from neuronscope.data.schema import load_dataset
    from neuronscope.io import write_json
    from neuronscope.models.checkpoint import check_checkpoint
    from neuronscope.outdir import check_output

    check_output(out, overwrite=overwrite, inputs=[ckpt, data])
    ds = load_dataset(data)
    check_checkpoint(ckpt)  # a wrong --data or --ckpt: one line before torch is imported
    from neuronscope.base_model import FinetuneConfig, finetune_base
    from neuronscope.models.handle import load_model

    cfg = FinetuneConfig(lr=lr, epochs=epochs, batch_size=batch_size, seed=seed, exclude_splits=tuple(exclude or ()))
    cfg.check()
    from neuronscope.base_model import finetune_items
    from neuronscope.progress import LoggedProgress, step_total

    model = load_model(ckpt, device=device, dtype=dtype, device_map=device_map, bridge=False,
                       trust_remote_code=trust_remote_code)
    total = step_total(len(finetune_items(ds, cfg.exclude_splits)), cfg.batch_size, cfg.epochs)
    with LoggedProgress(console=console) as bar:
        task = bar.add_task(f"fine-tuning ({cfg.epochs} epochs)", total=total, unit="steps")
        result = finetune_base(model, ds, cfg, progress=lambda step, loss: bar.update(
            task, completed=step, info=f"loss {loss:.3f}"))
    result.model.save(out, marker="finetune")
    write_json(out / "neuronscope_finetune.json", result.summary() | {"data": str(data), "from": str(ckpt)})
    console.print(metrics_table(f"fine-tuned {ckpt} for {result.epochs} epochs ({result.steps} steps)",
                                {"FS / RS / US": {"FS": result.report.fs, "RS": result.report.rs,
                                                  "US": result.report.us}}))
    if note := result.model.hf.config.neuronscope.get("finetune", {}).get("note"):
        console.print(f"[yellow]warning:[/] {note}")
    console.print(f"checkpoint: {out}")

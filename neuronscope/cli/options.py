"""Options shared by the commands that load a model: --device, --dtype, --device-map, --dry-run, --seq-len.

`--device` stays `cpu` by default: every number in the docs and the grid's own `[run] device` default is a CPU
float32 run, and a GPU changes the numerics (and, with `--dtype auto`, the precision). A GPU is one flag away
(`--device auto` or `cuda`), and a command run on the CPU while a GPU is visible says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from neuronscope.cli.app import console, metrics_table

if TYPE_CHECKING:
    from neuronscope.data.schema import QADataset
    from neuronscope.plan import DataCounts, Plan, Shape

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Weights' dtype: auto (bfloat16 on a CUDA GPU that supports "
                                                       "it, else float32), float32, bfloat16 or float16.")]
DeviceMapOpt = Annotated[str | None, typer.Option(
    "--device-map", help="Spread the layers over GPUs with accelerate: auto, balanced, sequential, or a JSON object "
                         "{module: device}. Replaces --device.")]
TrustRemoteCodeOpt = Annotated[bool, typer.Option(
    "--trust-remote-code", help="Let a checkpoint run the model code it ships (config.json auto_map). Off by "
                                "default: only for checkpoints whose code you trust.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Replace an existing --out that neuronscope wrote earlier (it carries the .neuronscope "
                        "marker); a directory without the marker, or one holding an input, is never replaced.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the memory and step plan from config.json and the "
                                                           "data, then exit without loading weights.")]
TrackOpt = Annotated[str | None, typer.Option(
    "--track", help="Also log losses, FS/RS/US curves and the final table to tensorboard, wandb (offline) or mlflow "
                    "(a local file store), under the output directory; needs neuronscope[<tracker>].")]
SeqLenOpt = Annotated[int | None, typer.Option("--seq-len", help="Dry run: tokens per sequence (default: the "
                                                                 "longest prompt + option of the data).")]


def note_idle_gpu(device: str, device_map: str | None) -> None:
    """One line when the run stays on the CPU although a GPU is visible (the default --device is cpu)."""
    import torch

    if device == "cpu" and device_map is None and torch.cuda.is_available():
        console.print("note: running on the cpu although a CUDA GPU is visible; pass --device auto (or cuda)")


def warn_missing_retain(ds: QADataset, data: Path) -> None:
    """One warning line on stderr (stdout may be --json) when RS, the retain score, lacks its retain split."""
    from rich.markup import escape

    from neuronscope.cli.app import err_console

    if ds.items("retain", "base"):
        return
    if ds.items("test", "base"):
        msg = f"{data}: no retain questions (retain.jsonl missing or empty): RS is scored on the test split alone"
    else:
        msg = f"{data}: no retain or test questions (retain.jsonl missing or empty): RS cannot be scored (nan)"
    err_console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)


def plan_inputs(ckpt: Path, ds: QADataset | None, seq_len: int | None) -> tuple[Shape, DataCounts | None]:
    """The model shape from `ckpt`/config.json (no weights read) and the data counts, measured with its tokenizer."""
    from neuronscope.errors import NeuronscopeError
    from neuronscope.models.handle import load_tokenizer
    from neuronscope.plan import DataCounts, model_shape

    if seq_len is not None and seq_len < 1:
        raise NeuronscopeError(f"--seq-len must be at least 1, got {seq_len}")
    shape = model_shape(ckpt)
    if ds is None:
        return shape, None
    tokenizer = None
    if seq_len is None:
        try:
            tokenizer = load_tokenizer(ckpt)
        except NeuronscopeError as e:
            raise NeuronscopeError(f"{e}; it measures the data: give --seq-len instead") from None
    return shape, DataCounts.from_dataset(ds, tokenizer, seq_len)


def print_plan(plan: Plan, shape: Shape, counts: DataCounts | None, dtype: object) -> None:
    from neuronscope.plan import shape_rows

    console.print(metrics_table(f"dry run: nothing loaded, dtype {str(dtype).removeprefix('torch.')}",
                                shape_rows(shape)))
    if counts is not None:
        console.print(f"data: {counts.forget} forget, {counts.retain} retain, {counts.rs} retain+test base questions; "
                      f"{counts.evaluated} questions in all; sequences up to {counts.seq_len} tokens")
    for table in plan.tables():
        console.print(table)
    for note in plan.notes:
        console.print(f"note: {note}")

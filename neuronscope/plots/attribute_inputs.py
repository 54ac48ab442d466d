"""The inputs of `neuronscope attribute` (and of the grid's attribution stage), checked before any model loads.

No torch, transformers or pandas at import: a wrong checkpoint or data path is one error line in a fraction of a
second. Only choosing the items (`select_items`, past the path checks) reaches the attribution library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from neuronscope.data.items import QADataset, QAItem
from neuronscope.data.schema import load_dataset
from neuronscope.errors import NeuronscopeError, SettingError
from neuronscope.models.checkpoint import check_checkpoint

if TYPE_CHECKING:
    from neuronscope.models.handle import Model

FLAGS = {"positions": "--positions", "batch_size": "--batch-size", "target": "--target", "split": "--split",
         "patching": "--no-patching", "oracle": "--oracle"}  # settings as `neuronscope attribute` names them


def check_attribute_inputs(
    ckpt: str | Path | Model,
    data: str | Path | QADataset | Sequence[QAItem],
    base: str | Path | Model | None = None,
    oracle: str | Path | Model | None = None,
    split: str = "forget",
    kind: str | None = "base",
) -> tuple[QADataset | None, list[QAItem]]:
    """Everything about the inputs that can be checked without loading a model, so a mistake is one error line
    before any output directory exists; returns the dataset (None for a plain list of items) and the items."""
    if oracle is not None and base is None:
        raise NeuronscopeError("--oracle needs --base (the verdict compares the checkpoint with its base)")
    for flag, path in (("--ckpt", ckpt), ("--base", base), ("--oracle", oracle)):
        if isinstance(path, str | Path):
            try:
                check_checkpoint(Path(path))
            except NeuronscopeError as e:
                raise NeuronscopeError(f"{flag} {e}") from None
    ds = load_dataset(data) if isinstance(data, str | Path) else data if isinstance(data, QADataset) else None
    from neuronscope.attribution.run import select_items  # torch: only once the paths are known to be good

    try:
        items = select_items(ds, split, kind) if ds is not None else list(data)  # type: ignore[arg-type]
    except SettingError as e:
        raise e.named(FLAGS[e.setting]) from None
    if oracle is not None and ds is None:
        raise NeuronscopeError("--oracle needs a dataset (its forget split and benign corpus), not a list of items")
    return ds, items

"""The world format, neuronscope's own: a directory of JSONL splits (or one QA JSONL file, the forget split),
read and written here.

The files are described in `neuronscope.data.items` and docs/data.md. A directory is a world when it holds
``forget.jsonl``; a file when its first record has an ``id`` or ``options`` (the other formats' records have
neither).
"""

from __future__ import annotations

from pathlib import Path

from neuronscope.data.formats.records import Probe
from neuronscope.data.formats.registry import DataFormat, register
from neuronscope.data.items import SPLITS, InstructionItem, QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.io import read_json, read_jsonl, write_json, write_jsonl


def load_items(path: str | Path) -> list[QAItem]:
    path = Path(path)
    items = [QAItem.from_json(row, f"{path}: line {n}") for n, row in read_jsonl(path)]
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise NeuronscopeError(f"{path}: duplicate id {it.id!r}")
        seen.add(it.id)
    return items


def save_dataset(ds: QADataset, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, items in ds.splits.items():
        write_jsonl(out / f"{split}.jsonl", (it.to_json() for it in items))
    write_jsonl(out / "utility.jsonl", (it.to_json() for it in ds.utility))
    write_jsonl(out / "benign.jsonl", (b.to_json() for b in ds.benign))
    write_json(out / "world.json", ds.meta)
    return out


def load_world_dataset(path: str | Path) -> QADataset:
    """Read a world dataset directory (or a single QA JSONL file, taken as the forget split)."""
    path = Path(path)
    if path.is_file():
        return QADataset(splits={"forget": load_items(path)}, meta={"name": path.stem})
    if not path.is_dir():
        raise NeuronscopeError(f"{path}: data directory not found")
    if not (path / "forget.jsonl").is_file():
        raise NeuronscopeError(f"{path}: not a dataset directory (no forget.jsonl)")
    splits = {s: load_items(path / f"{s}.jsonl") for s in SPLITS if (path / f"{s}.jsonl").is_file()}
    utility = load_items(path / "utility.jsonl") if (path / "utility.jsonl").is_file() else []
    benign: list[InstructionItem] = []
    if (path / "benign.jsonl").is_file():
        benign = [InstructionItem.from_json(r, f"{path / 'benign.jsonl'}: line {n}")
                  for n, r in read_jsonl(path / "benign.jsonl")]
    meta = read_json(path / "world.json") if (path / "world.json").is_file() else {"name": path.name}
    return QADataset(splits=splits, utility=utility, benign=benign, meta=meta)


def _is_world_dir(path: Path) -> bool:
    return (path / "forget.jsonl").is_file()


def _is_world_file(path: Path, probe: Probe) -> bool:
    row = probe.first_row
    return row is not None and ("id" in row or "options" in row)


WORLD = register(DataFormat(
    name="world", load=load_world_dataset, detect_dir=_is_world_dir, detect_file=_is_world_file,
    dir_order=10, file_order=30, dir_hint="forget.jsonl", record_hint="'id' + 'question' (world)"))

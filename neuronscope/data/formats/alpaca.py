"""Alpaca: a JSON (or JSONL) list of ``{instruction, input, output}`` -> `InstructionItem`, the benign corpus.

A file is Alpaca when its first record has an ``instruction``; it loads as a dataset with no splits whose
``benign`` holds the rows.
"""

from __future__ import annotations

from pathlib import Path

from neuronscope.data.formats.records import Probe, check_unique_ids, read_records, text_field
from neuronscope.data.formats.registry import DataFormat, register
from neuronscope.data.items import InstructionItem, QADataset
from neuronscope.errors import NeuronscopeError


def load_alpaca(path: str | Path) -> list[InstructionItem]:
    """Alpaca rows (``instruction``, optional ``input``, ``output``) as instruction items.

    The id is the row's own string ``id`` when it has one, else ``<file stem>.<index>`` (0-based), so the same
    file always gives the same ids.
    """
    path = Path(path)
    items: list[InstructionItem] = []
    for i, (loc, row) in enumerate(read_records(path)):
        where = f"{path}: {loc}"
        rid = row.get("id", f"{path.stem}.{i}")
        if not isinstance(rid, str) or not rid.strip():
            raise NeuronscopeError(f"{where}: field 'id' must be a non-empty string")
        items.append(InstructionItem(
            id=rid,
            instruction=text_field(row, "instruction", where),
            output=text_field(row, "output", where),
            input=text_field(row, "input", where, required=False, empty_ok=True),
        ))
    check_unique_ids([it.id for it in items], path)
    return items


def load_alpaca_dataset(path: Path) -> QADataset:
    if not path.is_file():
        raise NeuronscopeError(f"{path}: an Alpaca dataset must be a file")
    return QADataset(splits={}, benign=load_alpaca(path), meta={"name": path.stem, "format": "alpaca"})


def _is_alpaca_file(path: Path, probe: Probe) -> bool:
    return probe.first_row is not None and "instruction" in probe.first_row


ALPACA = register(DataFormat(name="alpaca", load=load_alpaca_dataset, detect_file=_is_alpaca_file, file_order=20,
                             record_hint="'instruction' (Alpaca)"))

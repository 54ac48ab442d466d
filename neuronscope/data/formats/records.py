"""What the file formats share: reading JSON / JSONL records, typed fields with located errors, a cheap probe."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.io import read_jsonl


def read_records(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a JSON array or a JSONL file, each with where it came from ("line N" or "item N").

    Both shapes are accepted because the same benchmark ships either way (TOFU's ``.json`` files on the Hub are
    JSON lines); which one a file is follows from its first character, not its suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return [(f"line {n}", row) for n, row in read_jsonl(path)]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise NeuronscopeError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    out: list[tuple[str, dict[str, Any]]] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise NeuronscopeError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
        out.append((f"item {i}", row))
    return out


def text_field(row: dict[str, Any], key: str, where: str, *, required: bool = True, empty_ok: bool = False) -> str:
    """`row[key]` as a string; a missing, non-string or empty value is an error located at `where`."""
    if key not in row:
        if required:
            raise NeuronscopeError(f"{where}: missing field '{key}'")
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise NeuronscopeError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise NeuronscopeError(f"{where}: field '{key}' must be a non-empty string")
    return value


def check_unique_ids(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise NeuronscopeError(f"{path}: duplicate id {i!r}")
        seen.add(i)


def first_row(path: Path) -> dict[str, Any] | None:
    """The first record of a JSON array / JSONL file, or None when the file is neither."""
    text = path.read_text(encoding="utf-8").lstrip()
    try:
        if text.startswith("["):
            data = json.loads(text)
            return data[0] if data and isinstance(data[0], dict) else None
        first = text.split("\n", 1)[0]
        row = json.loads(first)
        return row if isinstance(row, dict) else None
    except json.JSONDecodeError:
        return None


class Probe:
    """A file's first record, read once however many formats look at it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def first_row(self) -> dict[str, Any] | None:
        return first_row(self.path)

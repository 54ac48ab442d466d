"""The registry of data formats: each format says how to recognise its files and how to read them.

`detect_format` tries the formats in order: for a directory by `dir_order`, for a file by `file_order` (lower
first; a format without a detector for that kind of path is never chosen for it). The first that recognises the
path reads it. Adding a format is one file that calls `register` (docs/architecture.md, "Adding a data format").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neuronscope.data.formats.records import Probe
from neuronscope.data.items import QADataset
from neuronscope.errors import NeuronscopeError


@dataclass(frozen=True)
class DataFormat:
    """One dataset format: its name (``--format`` / ``data.format``), detectors, loader and the hints the errors give.

    `detect_dir` / `detect_file` answer "is this path mine?" cheaply and never raise for a foreign file; `load`
    reads the path into a `QADataset` and raises a `NeuronscopeError` naming the file, place and field on bad input.
    """

    name: str
    load: Callable[[Path], QADataset]
    detect_dir: Callable[[Path], bool] | None = None
    detect_file: Callable[[Path, Probe], bool] | None = None
    dir_order: int = 100
    file_order: int = 100
    dir_hint: str = ""  # what a directory of this format holds, e.g. "forget.jsonl"
    record_hint: str = ""  # the fields a record of this format starts with, e.g. "'instruction' (Alpaca)"


_FORMATS: dict[str, DataFormat] = {}


def register(fmt: DataFormat) -> DataFormat:
    """Add `fmt` to the registry (a name is registered once)."""
    if fmt.name in _FORMATS or fmt.name == "auto":
        raise ValueError(f"data format {fmt.name!r} is already registered")
    _FORMATS[fmt.name] = fmt
    return fmt


def formats() -> tuple[str, ...]:
    """'auto' and every registered format, in registration order."""
    return ("auto", *_FORMATS)


def get_format(name: str) -> DataFormat:
    if name not in _FORMATS:
        raise NeuronscopeError(f"unknown data format {name!r}; expected one of {', '.join(formats())}")
    return _FORMATS[name]


def detect_format(path: str | Path) -> str:
    """Which registered format reads `path`."""
    path = Path(path)
    if not path.exists():
        raise NeuronscopeError(f"{path}: file or directory not found")
    if path.is_dir():
        candidates = sorted((f for f in _FORMATS.values() if f.detect_dir), key=lambda f: f.dir_order)
        for f in candidates:
            assert f.detect_dir is not None
            if f.detect_dir(path):
                return f.name
        hints = ", ".join(f"no {f.dir_hint}" for f in candidates if f.dir_hint)
        raise NeuronscopeError(f"{path}: not a dataset directory ({hints})")
    probe = Probe(path)
    for f in sorted((f for f in _FORMATS.values() if f.detect_file), key=lambda f: f.file_order):
        assert f.detect_file is not None
        if f.detect_file(path, probe):
            return f.name
    if probe.first_row is None:
        raise NeuronscopeError(f"{path}: cannot tell the format (not a JSON array of objects nor JSON lines)")
    hints = [f.record_hint for _, f in sorted(_FORMATS.items()) if f.record_hint]
    expected = hints[0] if len(hints) == 1 else f"{', '.join(hints[:-1])} or {hints[-1]}"
    raise NeuronscopeError(
        f"{path}: cannot tell the format of the first record (fields: {', '.join(probe.first_row) or 'none'}); "
        f"expected {expected}")


def load_dataset(path: str | Path, format: str = "auto") -> QADataset:
    """Read any registered format into a `QADataset` ("auto": `detect_format` chooses)."""
    path = Path(path)
    if format != "auto":
        get_format(format)  # an unknown name is an error before the path is looked at
    return get_format(detect_format(path) if format == "auto" else format).load(path)

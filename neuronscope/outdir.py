"""The one rule for where a command may write: never into, or over, anything neuronscope did not create.

Every directory a command writes carries a marker file (`.neuronscope`). An `--out` is accepted when it does not
exist yet or is an empty directory; an existing non-empty one only with `--overwrite`, and even then only if it
carries the marker (neuronscope wrote it). An `--out` that is an existing file, equals or contains one of the
command's inputs, or contains the working directory is refused whatever the flags. `neuronscope run` resumes a
marked run directory without `--overwrite` (that is how a killed run continues); `--overwrite` starts it afresh.

The checks run before any long work, so a refused `--out` costs nothing; they touch nothing on disk. A command
that fails after creating its `--out` but before writing anything into it removes that empty directory again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from neuronscope.errors import NeuronscopeError

MARKER = ".neuronscope"  # no .json suffix: data fingerprints hash *.json files, the marker must not count
# What a run directory holds: one written before markers existed is recognised by these names alone
RUN_DIR_NAMES = frozenset({"artifacts", "config.json", "run.log", "results.json", "table.md", "table.csv",
                           "distributed", "figures", ".neuronscope.lock"})


def is_marked(directory: Path) -> bool:
    """Whether `directory` was written by neuronscope (it carries the marker file)."""
    return (Path(directory) / MARKER).is_file()


def write_marker(directory: Path, command: str) -> None:
    """Mark `directory` as neuronscope's own output (the file is tiny and deterministic: no time, no host)."""
    (Path(directory) / MARKER).write_text(json.dumps({"written_by": "neuronscope", "command": command}) + "\n",
                                          encoding="utf-8")


def is_unmarked_run_dir(directory: Path) -> bool:
    """A run directory of a neuronscope without markers: only a run's names (`artifacts/` and `config.json`
    among them) and temporary `.*.tmp` files of a killed write."""
    names = {p.name for p in Path(directory).iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))}
    return names <= RUN_DIR_NAMES and (Path(directory) / "artifacts").is_dir() and (Path(directory) / "config.json"
                                                                                     ).is_file()


def _within(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(out: Path, *, overwrite: bool = False, inputs: Iterable[Path | str | None] = (),
                 resume: bool = False, flag: str = "--out") -> Path:
    """Raise a NeuronscopeError unless a command may write `out`; returns `out`. Touches nothing.

    `inputs`: the command's input files and directories (None entries are skipped). `resume`: an existing marked
    directory is continued without `--overwrite` (run directories; an unmarked one that holds only what a run
    writes, from before markers existed, is accepted too).
    """
    out = Path(out)
    where = out.resolve()
    if out.exists() and not out.is_dir():
        raise NeuronscopeError(f"{flag} {out} is an existing file; give a directory (nothing was written)")
    if _within(where, Path.cwd().resolve()):
        raise NeuronscopeError(f"{flag} {out} is or contains the working directory; give a new directory")
    for source in inputs:
        if source is None:
            continue
        if _within(where, Path(source).resolve()):
            what = "is" if Path(source).resolve() == where else "contains"
            raise NeuronscopeError(f"{flag} {out} {what} the input {source}; give a directory outside the inputs "
                                   "(inputs are never overwritten, even with --overwrite)")
    if not out.exists() or not any(out.iterdir()):
        return out
    if resume and is_unmarked_run_dir(out):  # `open_output` marks it
        return out
    if not is_marked(out):
        raise NeuronscopeError(f"{flag} {out} exists, is not empty and was not written by neuronscope (no {MARKER} "
                               "marker); nothing there is replaced, even with --overwrite: give a new or empty "
                               "directory")
    if not (overwrite or resume):
        raise NeuronscopeError(f"{flag} {out} holds an earlier neuronscope output; pass --overwrite to replace it, "
                               "or give a new directory")
    return out


def open_output(out: Path, command: str, *, replace: bool = False) -> Path:
    """Create `out` (already passed `check_output`) as a marked directory that a command fills file by file.

    `replace` (the command's --overwrite): an earlier output there is removed first; only a marked directory
    ever is. Commands that build their output in a temporary directory and rename it into place use
    `neuronscope.io.atomic_path(..., marker=command)` instead, which keeps the old output until the new is whole.
    """
    out = Path(out)
    new = not out.exists()
    foreign = out.is_dir() and any(out.iterdir()) and not is_marked(out)
    if foreign and not (command == "run" and is_unmarked_run_dir(out)):  # a caller that skipped check_output
        raise NeuronscopeError(f"{out} is not empty and was not written by neuronscope; nothing written there")
    if replace and out.is_dir() and is_marked(out):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not is_marked(out):
        write_marker(out, command)
    if new:
        _created.append(out)
    return out


_created: list[Path] = []  # directories `open_output` created in this process


def discard_empty_outputs() -> list[Path]:
    """Remove each directory `open_output` created in this process that still holds nothing but the marker (a
    command that failed before writing anything leaves no output that looks like a result); returns them.
    Anything else is left alone: a directory that existed before, or holds any file, is never removed."""
    removed = []
    while _created:
        out = _created.pop()
        try:
            if out.is_dir() and [p.name for p in out.iterdir()] == [MARKER]:
                (out / MARKER).unlink()
                out.rmdir()
                removed.append(out)
        except OSError:
            continue  # best effort: the command is already failing with its own message
    return removed


__all__ = ["MARKER", "RUN_DIR_NAMES", "check_output", "discard_empty_outputs", "is_marked", "is_unmarked_run_dir",
           "open_output", "write_marker"]

"""Atomic file writes and JSON/JSONL helpers.

Every artifact is written to a temporary file beside its target and renamed into place, so an interrupted run
never leaves a half-written file that looks whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.outdir import is_marked, write_marker

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (checkpoints are gigabytes)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_path(target: str | Path, *, directory: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    A directory replaces an existing `target` only if that one is empty or carries neuronscope's marker
    (`neuronscope.outdir`): anything else is refused before the block runs, never deleted. `marker` (the
    command's name) marks the new directory as neuronscope's own.
    """
    target = Path(target)
    _check_replaceable(target, directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and marker is not None:
            write_marker(tmp, marker)
        _check_replaceable(target, directory)  # again: the block may have run for hours
        # mkstemp/mkdtemp and some writers (safetensors) create private (0600/0700) entries; give the artifact the
        # modes a plain open() / mkdir() would.
        umask = os.umask(0)
        os.umask(umask)
        for entry in [tmp, *(tmp.rglob("*") if directory else ())]:
            if not entry.is_symlink():
                entry.chmod((0o777 if entry.is_dir() else 0o666) & ~umask)
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None and e.errno in _DISK_ERRNOS:  # a failed write names no file
            raise OSError(e.errno, e.strerror, str(target)) from None
        raise


def _check_replaceable(target: Path, directory: bool) -> None:
    """Refuse to replace what neuronscope did not write (a NeuronscopeError, before any work)."""
    if not target.exists() and not target.is_symlink():
        return
    if not directory:
        if target.is_dir() and not target.is_symlink():
            raise NeuronscopeError(f"{target} is a directory; a file cannot be written there")
        return
    if target.is_symlink() or not target.is_dir():
        raise NeuronscopeError(f"{target} exists and is not a directory; nothing written")
    if any(target.iterdir()) and not is_marked(target):
        raise NeuronscopeError(f"{target} exists, is not empty and was not written by neuronscope; it is not replaced")


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise NeuronscopeError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a JSONL file with their 1-based line numbers (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: file not found")
    rows: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise NeuronscopeError(f"{path}: line {lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise NeuronscopeError(f"{path}: line {lineno}: expected a JSON object")
            rows.append((lineno, row))
    return rows

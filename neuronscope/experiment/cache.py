"""Artifacts keyed by a hash of their inputs, written atomically, trusted only when provably complete.

An artifact is a directory `<root>/<name>-<key>` where key = sha256 of the canonical JSON of its inputs (upstream
artifacts appear in the inputs by *their* keys, so a change anywhere upstream changes every key below it). The
directory is filled in a temporary sibling, a manifest (`_complete.json`: inputs, and every file's size and sha256)
is written last, and the whole directory is renamed into place. On lookup the manifest is re-checked against
the files: a missing manifest, a missing, truncated or altered file, or different inputs means the artifact is
removed and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuronscope.experiment.lock import artifact_lock
from neuronscope.io import atomic_path, file_sha256, write_json

MANIFEST = "_complete.json"
CACHE_VERSION = 1  # bump when an artifact's content changes meaning for the same inputs


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def input_key(name: str, inputs: dict[str, Any]) -> str:
    """A short, stable hash of an artifact's name and inputs."""
    return hashlib.sha256(canonical({"name": name, "inputs": inputs, "v": CACHE_VERSION}).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    name: str
    key: str
    path: Path
    cached: bool  # True when found complete rather than computed now


class ArtifactCache:
    """`get(name, inputs, compute)` returns a complete artifact, computing it only when no valid one exists."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = lambda _msg: None,
                 lock_dir: str | Path | None = None):
        self.root = Path(root)
        self.log = log
        self.lock_dir = Path(lock_dir) if lock_dir is not None else None  # set: one process computes an artifact

    def path(self, name: str, inputs: dict[str, Any]) -> Path:
        return self.root / f"{name}-{input_key(name, inputs)}"

    def problem(self, path: Path, name: str, inputs: dict[str, Any]) -> str | None:
        """Why the artifact at `path` cannot be trusted, or None when it is complete and intact."""
        manifest = path / MANIFEST
        if not manifest.is_file():
            return "no manifest (partial or foreign directory)"
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "unreadable manifest"
        if not isinstance(meta, dict):
            return "unreadable manifest"
        if meta.get("key") != input_key(name, inputs) or canonical(meta.get("inputs")) != canonical(
                json.loads(canonical(inputs))):
            return "manifest inputs differ"
        files = meta.get("files")
        if not isinstance(files, dict) or not files or not all(
                isinstance(info, dict) and isinstance(info.get("size"), int) and isinstance(info.get("sha256"), str)
                for info in files.values()):
            return "manifest lists no files (or malformed entries)"
        for rel, info in files.items():
            f = path / rel
            if not f.is_file():
                return f"missing file {rel}"
            if f.stat().st_size != info["size"]:
                return f"file {rel} has {f.stat().st_size} bytes, expected {info['size']}"
            if file_sha256(f) != info["sha256"]:
                return f"file {rel} does not match its checksum"
        return None

    def lookup(self, name: str, inputs: dict[str, Any]) -> Path | None:
        """The artifact's path if a complete one exists; a broken one is deleted (and logged)."""
        path = self.path(name, inputs)
        if not path.exists():
            return None
        why = self.problem(path, name, inputs)
        if why is None:
            return path
        self.log(f"[yellow]recompute[/] {path.name}: {why}")
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return None

    def get(self, name: str, inputs: dict[str, Any], compute: Callable[[Path], None]) -> Artifact:
        """Return the cached artifact, or run `compute(tmpdir)` to fill a fresh one and seal it. With a `lock_dir`,
        a process that needs an artifact another process is computing waits for it and then reads it."""
        if self.lock_dir is None:
            return self._get(name, inputs, compute)
        with artifact_lock(self.lock_dir / f"{name}-{input_key(name, inputs)}.lock"):
            return self._get(name, inputs, compute)

    def _get(self, name: str, inputs: dict[str, Any], compute: Callable[[Path], None]) -> Artifact:
        key = input_key(name, inputs)
        found = self.lookup(name, inputs)
        if found is not None:
            self.log(f"[dim]skip[/] {found.name} (cached)")
            return Artifact(name, key, found, cached=True)
        target = self.path(name, inputs)
        t0 = time.perf_counter()
        with atomic_path(target, directory=True) as tmp:
            compute(tmp)
            files = {str(f.relative_to(tmp)): {"size": f.stat().st_size, "sha256": file_sha256(f)}
                     for f in sorted(tmp.rglob("*")) if f.is_file() and f.name != MANIFEST}
            write_json(tmp / MANIFEST, {"name": name, "key": key, "inputs": json.loads(canonical(inputs)),
                                        "files": files, "seconds": round(time.perf_counter() - t0, 3)})
        self.log(f"[green]done[/] {target.name} in {time.perf_counter() - t0:.1f}s")
        return Artifact(name, key, target, cached=False)

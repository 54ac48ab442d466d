"""Atomic writes: all or nothing, with ordinary file modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path, read_jsonl, write_json, write_jsonl


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_text("x")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "new").write_text("y")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and (tmp_path / "d" / "old").exists()


def test_modes_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "d", directory=True) as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"a": 1}, {"b": 2}])
    assert read_jsonl(tmp_path / "a.jsonl") == [(1, {"a": 1}), (2, {"b": 2})]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n[1, 2]\n')
    with pytest.raises(NeuronscopeError, match="bad.jsonl: line 3: expected a JSON object"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(NeuronscopeError, match="broken.jsonl: line 2: invalid JSON"):
        read_jsonl(tmp_path / "broken.jsonl")

"""Atomic writes: all or nothing, with ordinary file modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path, read_jsonl, write_json, write_jsonl
from neuronscope.outdir import is_marked, write_marker


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    write_marker(tmp_path / "d", "test")  # an earlier output of neuronscope's: the only kind it may replace
    (tmp_path / "d" / "old").write_text("x")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "d", directory=True) as tmp:
        (tmp / "new").write_text("y")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and (tmp_path / "d" / "old").exists()


def test_a_directory_not_written_by_neuronscope_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    ran = []
    with pytest.raises(NeuronscopeError, match="not written by neuronscope"), \
            atomic_path(tmp_path / "d", directory=True, marker="test") as tmp:
        ran.append(tmp)  # refused before the block: no work is done for nothing
    assert ran == [] and [p.name for p in tmp_path.iterdir()] == ["d"]
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"
    with atomic_path(tmp_path / "e", directory=True, marker="test") as tmp:  # a new one is marked, then replaceable
        (tmp / "a").write_text("1")
    assert is_marked(tmp_path / "e")
    with atomic_path(tmp_path / "e", directory=True, marker="test") as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".neuronscope", "b"]


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
    assert (tmp_path / "d" / "f").stat().st_mode & 0o777 == 0o644


def test_a_saved_checkpoint_has_ordinary_modes(tiny_trained, tmp_path: Path) -> None:  # noqa: ANN001
    old = os.umask(0o022)
    try:
        tiny_trained.model.save(tmp_path / "ckpt")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()}
    assert modes["model.safetensors"] == 0o644  # safetensors itself writes 0600
    assert set(modes.values()) == {0o644}


def test_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"a": 1}, {"b": 2}])
    assert read_jsonl(tmp_path / "a.jsonl") == [(1, {"a": 1}), (2, {"b": 2})]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n[1, 2]\n')
    with pytest.raises(NeuronscopeError, match="bad.jsonl: line 3: expected a JSON object"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(NeuronscopeError, match="broken.jsonl: line 2: invalid JSON"):
        read_jsonl(tmp_path / "broken.jsonl")

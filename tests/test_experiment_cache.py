"""The artifact cache: keys follow inputs, complete artifacts are reused, broken ones are recomputed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuronscope.experiment.cache import MANIFEST, ArtifactCache, input_key
from neuronscope.stats import summarize, t975, welch_gap


def _writer(calls: list[int], payload: bytes = b"x" * 1000):  # noqa: ANN202
    def compute(tmp: Path) -> None:
        calls.append(1)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "weights.bin").write_bytes(payload)
        (tmp / "result.json").write_text('{"fs": 0.5}')
    return compute


def test_key_depends_on_name_and_every_input() -> None:
    k = input_key("attack", {"a": 1, "b": [1, 2]})
    assert k == input_key("attack", {"b": [1, 2], "a": 1})  # order of keys does not matter
    assert k != input_key("attack", {"a": 1, "b": [2, 1]})
    assert k != input_key("attack", {"a": 1.5, "b": [1, 2]})
    assert k != input_key("unlearn", {"a": 1, "b": [1, 2]})


def test_computed_once_then_reused(tmp_path: Path) -> None:
    calls: list[int] = []
    logs: list[str] = []
    cache = ArtifactCache(tmp_path, logs.append)
    first = cache.get("thing", {"x": 1}, _writer(calls))
    second = cache.get("thing", {"x": 1}, _writer(calls))
    assert calls == [1] and not first.cached and second.cached and first.path == second.path
    assert (first.path / MANIFEST).is_file() and any("skip" in m for m in logs)
    cache.get("thing", {"x": 2}, _writer(calls))
    assert calls == [1, 1]


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_file", "delete_manifest", "garble_manifest",
                                    "other_inputs", "no_files_list", "empty_files_list", "bad_file_entry"])
def test_damaged_artifact_is_recomputed(tmp_path: Path, damage: str) -> None:
    calls: list[int] = []
    logs: list[str] = []
    cache = ArtifactCache(tmp_path, logs.append)
    art = cache.get("thing", {"x": 1}, _writer(calls))
    w = art.path / "sub" / "weights.bin"
    if damage == "flip":
        w.write_bytes(b"x" * 999 + b"y")
    elif damage == "truncate":
        w.write_bytes(b"x" * 10)
    elif damage == "delete_file":
        w.unlink()
    elif damage == "delete_manifest":
        (art.path / MANIFEST).unlink()
    elif damage == "garble_manifest":
        (art.path / MANIFEST).write_text("{not json")
    elif damage in ("no_files_list", "empty_files_list", "bad_file_entry"):  # a manifest that vouches for nothing
        meta = json.loads((art.path / MANIFEST).read_text())
        if damage == "no_files_list":
            del meta["files"]
        elif damage == "empty_files_list":
            meta["files"] = {}
        else:
            meta["files"]["sub/weights.bin"] = {"size": 1000}
        w.write_bytes(b"x" * 10)  # and the weights are damaged, which only the files list could reveal
        (art.path / MANIFEST).write_text(json.dumps(meta))
    else:
        text = (art.path / MANIFEST).read_text().replace('"x": 1', '"x": 3')
        (art.path / MANIFEST).write_text(text)
    again = cache.get("thing", {"x": 1}, _writer(calls))
    assert calls == [1, 1] and not again.cached
    assert w.read_bytes() == b"x" * 1000
    assert any("recompute" in m for m in logs)


def test_failed_compute_leaves_nothing_that_looks_done(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def boom(tmp: Path) -> None:
        (tmp / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get("thing", {"x": 1}, boom)
    assert list(tmp_path.iterdir()) == [] and cache.lookup("thing", {"x": 1}) is None


def test_stats_use_student_t() -> None:
    s = summarize([0.4, 0.5, 0.6])
    assert s.mean == pytest.approx(0.5) and s.sd == pytest.approx(0.1)
    assert s.ci95 == pytest.approx(4.303 * 0.1 / 3 ** 0.5, rel=1e-3)
    assert t975(2.7) == 4.303 and t975(1000) == 1.96
    g = welch_gap([0.6, 0.7, 0.8], [0.4, 0.5, 0.6])
    assert g.mean == pytest.approx(0.2) and g.sd == pytest.approx((0.01 / 3 * 2) ** 0.5)
    assert g.ci95 == pytest.approx(2.776 * g.sd, rel=1e-3)  # Welch df = 4 for equal variances, n = 3


def test_two_processes_needing_one_artifact_compute_it_once(tmp_path: Path) -> None:
    """With a lock directory, a second asker waits for the artifact the first is computing and reads it (two
    threads with their own lock files: flock treats separate opens as separate holders, as two processes)."""
    import threading
    import time

    calls: list[int] = []

    def slow(tmp: Path) -> None:
        calls.append(1)
        time.sleep(0.5)
        (tmp / "a.txt").write_text("done")

    got: list = []

    def ask() -> None:
        got.append(ArtifactCache(tmp_path / "artifacts", lock_dir=tmp_path / ".locks").get("base", {"x": 1}, slow))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.1)  # the first is computing when the second asks
    for t in threads:
        t.join()
    assert calls == [1]
    assert [a.cached for a in got] == [False, True] and got[0].path == got[1].path
    assert (got[1].path / "a.txt").read_text() == "done"
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [got[0].path.name]  # locks kept apart

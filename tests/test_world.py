"""The synthetic world: determinism, cluster-level splits, option sets."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from conftest import TINY_WORLD

from neuronscope.data.schema import KINDS, load_dataset, save_dataset
from neuronscope.data.world import WorldConfig, build_world
from neuronscope.errors import NeuronscopeError


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = save_dataset(build_world(TINY_WORLD), tmp_path / "a")
    b = save_dataset(build_world(TINY_WORLD), tmp_path / "b")
    files = sorted(p.name for p in a.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == 7


def test_other_seed_other_world() -> None:
    a = build_world(TINY_WORLD)
    b = build_world(WorldConfig(**{**TINY_WORLD.__dict__, "seed": 1}))
    assert [it.question for it in a.forget] != [it.question for it in b.forget]


def test_splits_are_disjoint_at_cluster_level() -> None:
    ds = build_world(WorldConfig(people=200, seed=3))
    clusters = {s: {it.cluster for it in items} for s, items in ds.splits.items()}
    names = list(clusters)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not clusters[a] & clusters[b], (a, b)
    # 5% / 10% / 70% of 200 clusters; the rest is trained on but never scored
    assert {s: len(c) for s, c in clusters.items()} == {"forget": 10, "retain": 20, "test": 140, "other": 30}
    # every fact's questions stay inside its cluster's split
    for s, items in ds.splits.items():
        for it in items:
            assert it.fact.split(".")[0] == it.cluster, (s, it.id)


def test_every_fact_has_every_kind() -> None:
    ds = build_world(TINY_WORLD)
    by_fact: dict[str, list[str]] = {}
    for it in ds.forget + ds.retain + ds.test:
        by_fact.setdefault(it.fact, []).append(it.kind)
    for kinds in by_fact.values():
        assert sorted(kinds) == sorted(["base", "paraphrase", "paraphrase", "multihop", "same_answer"])
    assert set(KINDS) == {k for ks in by_fact.values() for k in ks}


def test_options_contain_gold_and_two_distractors_of_the_same_type() -> None:
    ds = build_world(TINY_WORLD)
    items = [it for s in ds.splits.values() for it in s] + ds.utility
    # the values each attribute takes across all people: a distractor must be one of them
    values_of: dict[str, set[str]] = {}
    for it in items:
        if it.kind in ("base", "paraphrase", "same_answer") and it.cluster != "world":
            values_of.setdefault(it.fact.split(".")[1], set()).add(it.answer)
    pools = {
        "birthplace": {c for c in _world_answers(ds, "which city is home")},
        "employer": _world_answers(ds, "which company makes"),
        "education": _world_answers(ds, "which university has"),
        "occupation": _world_answers(ds, "who uses a"),
    }
    for it in items:
        assert len(it.options) == 3, it.id
        assert it.answer in it.options, it.id
        assert len(set(it.options)) == 3, it.id
        if it.kind in ("base", "paraphrase", "same_answer") and it.cluster != "world":
            attr = it.fact.split(".")[1]
            assert values_of[attr] <= pools[attr]
            assert set(it.options) <= pools[attr], (it.id, it.options)


def _world_answers(ds, prefix: str) -> set[str]:
    """All values of one type: the answers of the world facts that enumerate them."""
    return {it.answer for it in ds.utility if it.question.startswith(prefix)}


def test_round_trip_through_files(tmp_path: Path) -> None:
    ds = build_world(TINY_WORLD)
    loaded = load_dataset(save_dataset(ds, tmp_path / "w"))
    assert loaded.splits == ds.splits and loaded.utility == ds.utility and loaded.benign == ds.benign
    assert loaded.meta["seed"] == TINY_WORLD.seed


def test_training_items_exclude_held_out_kinds_and_optionally_splits() -> None:
    ds = build_world(TINY_WORLD)
    train = ds.training_items()
    assert {it.kind for it in train} == {"base"}
    assert len(train) == sum(len(ds.items(s)) for s in ds.splits) + len(ds.utility)
    oracle = ds.training_items(exclude_splits=("forget",))
    assert not {it.id for it in oracle} & {it.id for it in ds.forget}


@pytest.mark.parametrize("kwargs, message", [
    ({"people": 2}, "--people"),
    ({"forget": 0.5, "retain": 0.4, "test": 0.7}, "must not exceed 1"),
    ({"forget": -0.1}, "forget"),
    ({"cities": 2}, "at least 3"),
])
def test_bad_world_config(kwargs: dict, message: str) -> None:
    with pytest.raises(NeuronscopeError, match=message):
        build_world(WorldConfig(**kwargs))


def test_same_seed_same_world_in_any_process() -> None:
    """The world must not depend on Python's per-process string hashing (set order): it once did, through the
    occupation-field distractor pool, and two processes then scored the same model differently."""
    import subprocess
    import sys

    code = ("import hashlib, json; from neuronscope.data.world import build_world; ds = build_world(); "
            "rows = [it.to_json() for s in ds.splits.values() for it in s] + [it.to_json() for it in ds.utility]; "
            "print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "PYTHONHASHSEED": s},
                              capture_output=True, text=True, check=True).stdout for s in ("1", "2", "3")}
    assert len(digests) == 1

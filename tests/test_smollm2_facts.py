"""The real-facts dataset: FaithUn-shaped questions about countries, filtered to what the model knows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.data.real_facts import (
    ATTRIBUTES,
    RealFactsConfig,
    build_real_facts,
    candidate_facts,
    country_table,
    keep_known,
)
from neuronscope.data.schema import QAItem, load_dataset

pytest.importorskip("countryinfo")
pytest.importorskip("pycountry")

SMALL = RealFactsConfig(countries=12, seed=0, forget=0.25, retain=0.25, test=0.5)


def _rows(ds) -> list[dict]:
    return [it.to_json() for s in sorted(ds.splits) for it in ds.splits[s]] + [it.to_json() for it in ds.utility]


def test_candidates_are_deterministic_and_the_seed_matters() -> None:
    a, b = candidate_facts(SMALL), candidate_facts(SMALL)
    assert _rows(a) == _rows(b) and a.meta == b.meta
    other = candidate_facts(RealFactsConfig(countries=12, seed=1, forget=0.25, retain=0.25, test=0.5))
    assert _rows(other) != _rows(a)


def test_every_fact_has_the_faithun_question_kinds_and_three_options_of_its_type() -> None:
    ds = candidate_facts(SMALL)
    every = country_table()
    table = {c["name"]: c for c in every[:SMALL.countries]}
    by_fact: dict[str, list[QAItem]] = {}
    for items in ds.splits.values():
        for it in items:
            by_fact.setdefault(it.fact, []).append(it)
    assert len(by_fact) == SMALL.countries * len(ATTRIBUTES)
    assert {len({it.cluster for it in v}) for v in by_fact.values()} == {1}  # one cluster per country
    for fact, items in by_fact.items():
        kinds = [it.kind for it in items]
        assert kinds.count("base") == 1 and kinds.count("paraphrase") == 2 and kinds.count("multihop") == 1
        attr = fact.split(".")[1]
        values = {c[attr] for c in every} if attr != "border" else {c["name"] for c in every}
        for it in items:
            assert len(it.options) == 3 and it.answer in it.options and len(set(it.options)) == 3
            assert set(it.options) <= values, (it.id, it.options)  # false options are of the same type
    # the gold of a base question is the package's fact, and false borders are not neighbours
    for items in ds.splits.values():
        for it in items:
            if it.kind == "base" and it.fact.endswith(".capital"):
                country = it.question.removeprefix("The capital of ").removesuffix(" is")
                assert table[country]["capital"] == it.answer
            if it.kind == "base" and it.fact.endswith(".border"):
                country = it.question.removesuffix(" shares a land border with")
                assert [o for o in it.options if o in table[country]["borders"]] == [it.answer]
    assert all(not any(w in it.question for w in table) for it in ds.utility)  # utility: nothing about countries


def test_keep_known_drops_exactly_what_the_model_gets_wrong() -> None:
    ds = candidate_facts(SMALL)
    # a constructed model: knows every capital and currency fact, no region fact; misses every second paraphrase;
    # misses every utility question about months
    def known(items: list[QAItem]) -> list[bool]:
        return [not (it.fact.endswith(".region") or it.id.endswith(".para1") or ".month." in it.id)
                for it in items]

    kept = keep_known(ds, known)
    all_items = [it for v in ds.splits.values() for it in v]
    want_ids = {it.id for it in all_items if not it.fact.endswith(".region") and not it.id.endswith(".para1")}
    assert {it.id for v in kept.splits.values() for it in v} == want_ids
    dropped = kept.meta["dropped"]
    assert sorted(dropped["facts"]) == sorted(it.fact for it in all_items
                                              if it.kind == "base" and it.fact.endswith(".region"))
    assert set(dropped["questions"]) == {it.id for it in all_items
                                         if it.id.endswith(".para1") and not it.fact.endswith(".region")}
    assert dropped["clusters"] == []  # every country keeps its other facts
    assert {it.id for it in kept.utility} == {it.id for it in ds.utility if ".month." not in it.id}
    assert len(dropped["utility"]) == 12

    # a model that knows nothing about one forget country loses the whole cluster, and says so
    lost = ds.items("forget")[0].cluster
    gone = keep_known(ds, lambda items: [it.cluster != lost for it in items])
    assert lost in gone.meta["dropped"]["clusters"] and lost not in {it.cluster for it in gone.forget}


def test_on_smollm2_every_kept_question_is_answered_and_every_dropped_fact_is_not(smollm2_ckpt: Path,
                                                                                    tmp_path: Path) -> None:
    from neuronscope.models.handle import load_model
    from neuronscope.scoring import multiple_choice_correct

    cfg = RealFactsConfig(countries=4, attributes=("capital", "region", "currency"), seed=0, forget=0.25,
                          retain=0.25, test=0.5)
    out = tmp_path / "facts"
    result = CliRunner().invoke(app, ["real-facts", "--ckpt", str(smollm2_ckpt), "--out", str(out),
                                      "--countries", "4", "--attributes", "capital,region,currency",
                                      "--forget", "0.25", "--retain", "0.25", "--test", "0.5"])
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    model = load_model(smollm2_ckpt, bridge=False)
    kept = [it for v in ds.splits.values() for it in v] + ds.utility
    assert kept and multiple_choice_correct(model, kept).all()
    cand = candidate_facts(cfg)
    dropped = set(ds.meta["dropped"]["facts"])
    dropped_base = [it for v in cand.splits.values() for it in v if it.kind == "base" and it.fact in dropped]
    assert not multiple_choice_correct(model, dropped_base).any()
    meta = json.loads((out / "world.json").read_text())
    assert meta["candidates"]["facts"] == 12 and meta["source"]["countryinfo"]
    # the same model and config give the same dataset
    again = build_real_facts(model, cfg)
    assert _rows(again) == _rows(ds)

"""The data formats (FaithUn, TOFU, Alpaca, world), the registry that detects and loads them, and their errors on
malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuronscope.data.formats import detect_format
from neuronscope.data.formats import load_dataset as load_any
from neuronscope.data.formats.alpaca import load_alpaca
from neuronscope.data.formats.faithun import load_faithun, read_faithun_clusters
from neuronscope.data.formats.tofu import load_tofu
from neuronscope.data.schema import QADataset, load_dataset
from neuronscope.errors import NeuronscopeError


def q(question: str, answer: str, *false: str) -> dict:
    return {"question": question, "answer": answer, "false_options": list(false)}


def faithun_entities() -> dict:
    """Two entities, three base facts (= three clusters), with every evaluation category in use."""
    return {
        "Q1": {
            "hop1_unlearn": [q("Where was Ann born?", "Paris", "Rome", "Oslo"),
                             q("What is Ann's job?", "poet", "pilot", "baker")],
            "hop1_test": [[q("Ann's birthplace?", "Paris", "Rome", "Oslo"), q("Ann was born in?", "Paris", "Lima",
                                                                               "Oslo")],
                          q("Ann works as?", "poet", "pilot", "baker")],
            "hop2_test": [q("In which country was Ann born?", "France", "Italy", "Norway"), None],
            "same_object": [[], q("Who wrote Odes?", "poet", "pilot", "baker")],
        },
        "Q2": {
            "hop1_unlearn": [q("Where was Bo born?", "Oslo", "Rome", "Paris")],
            "hop1_test": [q("Bo's birthplace?", "Oslo", "Rome", "Lima")],
        },
    }


def write_faithun(tmp: Path, data: object, splits: dict[str, list[int]] | None = None) -> Path:
    path = tmp / "FaithUn_Dataset.json"
    path.write_text(json.dumps(data, indent=1))
    names = {"forget": "forget_set_split.txt", "retain": "retaining_set_split.txt", "test": "test_set_split.txt"}
    for split, idx in (splits or {}).items():
        (tmp / names[split]).write_text("\n".join(map(str, idx)) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# FaithUn
# ---------------------------------------------------------------------------------------------------------------


def test_faithun_clusters_kinds_and_options(tmp_path: Path) -> None:
    clusters = read_faithun_clusters(write_faithun(tmp_path, faithun_entities()))
    assert len(clusters) == 3  # clusters numbered over entities in file order
    kinds = [[it.kind for it in c] for c in clusters]
    assert kinds[0] == ["base", "paraphrase", "paraphrase", "multihop"]
    assert kinds[1] == ["base", "paraphrase", "same_answer"]
    assert kinds[2] == ["base", "paraphrase"]
    assert {it.cluster for it in clusters[2]} == {"faithun.2"}
    base = clusters[0][0]
    assert base.answer == "Paris" and sorted(base.options) == ["Oslo", "Paris", "Rome"]
    assert base.fact == "Q1.0" and base.id == "Q1.0.hop1_unlearn"
    assert clusters[0][2].question == "Ann was born in?" and "Lima" in clusters[0][2].options
    # the option order is shuffled per item but fixed: a second read gives the same
    assert read_faithun_clusters(tmp_path / "FaithUn_Dataset.json") == clusters


def test_faithun_split_files(tmp_path: Path) -> None:
    path = write_faithun(tmp_path, faithun_entities(), {"forget": [2], "retain": [0], "test": []})
    ds = load_faithun(path)
    assert [it.question for it in ds.forget if it.kind == "base"] == ["Where was Bo born?"]
    assert {it.cluster for it in ds.retain} == {"faithun.0"}
    assert ds.test == [] and {it.cluster for it in ds.splits["other"]} == {"faithun.1"}
    assert ds.meta["clusters"] == {"forget": 1, "retain": 1, "test": 0, "other": 1}
    assert ds.meta["chance"] == pytest.approx(1 / 3)
    # the directory form, and the split files in a splits/ subfolder (the benchmark repository's layout)
    (tmp_path / "splits").mkdir()
    for f in ("forget_set_split.txt", "retaining_set_split.txt", "test_set_split.txt"):
        (tmp_path / f).rename(tmp_path / "splits" / f)
    ds2 = load_any(tmp_path)
    assert ds2.splits == ds.splits


def test_faithun_seeded_split_without_files(tmp_path: Path) -> None:
    path = write_faithun(tmp_path, faithun_entities())
    a, b = load_faithun(path, seed=1, fractions=(0.34, 0.34, 0.32)), load_faithun(path, seed=1,
                                                                                fractions=(0.34, 0.34, 0.32))
    assert a.splits == b.splits
    assert sorted(a.meta["clusters"].values()) == [0, 1, 1, 1]
    assert "seeded" in a.meta["split_source"]


def test_faithun_list_of_entities(tmp_path: Path) -> None:
    ents = [{"id": k, **v} for k, v in faithun_entities().items()]
    clusters = read_faithun_clusters(write_faithun(tmp_path, ents))
    assert [c[0].fact for c in clusters] == ["Q1.0", "Q1.1", "Q2.0"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["Q1"]["hop1_unlearn"][1].pop("question"),
     "entity 'Q1', hop1_unlearn[1]: missing field 'question'"),
    (lambda d: d["Q1"]["hop1_test"][0][1].pop("false_options"),
     "entity 'Q1', hop1_test[0][1]: missing field 'false_options'"),
    (lambda d: d["Q2"]["hop1_test"][0].update(answer=3), "entity 'Q2', hop1_test[0]: field 'answer'"),
    (lambda d: d["Q2"]["hop1_unlearn"][0].update(false_options=["Rome", "Oslo"]),
     "hop1_unlearn[0]: field 'false_options' contains the answer"),
    (lambda d: d["Q2"]["hop1_unlearn"][0].update(false_options=["Rome", "Rome"]), "duplicate options"),
    (lambda d: d["Q2"]["hop1_test"].append(q("x?", "y", "z")), "field 'hop1_test' has 2 entries"),
    (lambda d: d["Q2"].pop("hop1_unlearn"), "entity 'Q2': missing field 'hop1_unlearn'"),
])
def test_faithun_malformed(tmp_path: Path, mutate, message: str) -> None:
    data = faithun_entities()
    mutate(data)
    path = write_faithun(tmp_path, data)
    with pytest.raises(NeuronscopeError, match=r"FaithUn_Dataset\.json") as e:
        load_faithun(path)
    assert message in str(e.value)


def test_faithun_bad_split_files(tmp_path: Path) -> None:
    path = write_faithun(tmp_path, faithun_entities(), {"forget": [0], "retain": [0], "test": [1]})
    with pytest.raises(NeuronscopeError, match="retaining_set_split.txt: cluster 0 is also in the forget split"):
        load_faithun(path)
    (tmp_path / "test_set_split.txt").write_text("1\nseven\n")
    (tmp_path / "retaining_set_split.txt").write_text("1\n")
    with pytest.raises(NeuronscopeError, match="test_set_split.txt: line 2: expected a cluster index"):
        load_faithun(path)
    (tmp_path / "test_set_split.txt").write_text("9\n")
    with pytest.raises(NeuronscopeError, match="line 1: cluster index 9 out of range"):
        load_faithun(path)
    (tmp_path / "test_set_split.txt").unlink()
    with pytest.raises(NeuronscopeError, match="split files incomplete"):
        load_faithun(path)


def test_faithun_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "FaithUn_Dataset.json"
    path.write_text('{"Q1": {"hop1_unlearn": [\n  {"question": "a?",, }\n]}}')
    with pytest.raises(NeuronscopeError, match=r"FaithUn_Dataset\.json: line 2: invalid JSON"):
        load_faithun(path)


# ---------------------------------------------------------------------------------------------------------------
# TOFU
# ---------------------------------------------------------------------------------------------------------------

TOFU_ROWS = [{"question": f"Who wrote book {i}?", "answer": f"Author {i // 2}", "paraphrased_answer": "x"}
             for i in range(6)]


def test_tofu_jsonl_and_json_array(tmp_path: Path) -> None:
    (tmp_path / "forget01.json").write_text("".join(json.dumps(r) + "\n" for r in TOFU_ROWS[:4]))  # JSON lines
    (tmp_path / "retain99.json").write_text(json.dumps(TOFU_ROWS[4:]))  # a JSON array
    (tmp_path / "world_facts.jsonl").write_text(json.dumps({"question": "Capital of France?", "answer": "Paris"}))
    ds = load_tofu(tmp_path)
    assert [it.question for it in ds.forget] == [r["question"] for r in TOFU_ROWS[:4]]
    assert [it.answer for it in ds.retain] == ["Author 2", "Author 2"]
    assert all(it.options == () for it in ds.forget + ds.retain)
    assert [it.id for it in ds.forget][:2] == ["forget01.0", "forget01.1"]
    assert [it.answer for it in ds.utility] == ["Paris"]
    one = load_tofu(tmp_path / "forget01.json", per_author=2)
    assert [it.cluster for it in one.forget] == ["forget01.author0"] * 2 + ["forget01.author1"] * 2
    assert load_any(tmp_path).splits == ds.splits
    assert detect_format(tmp_path / "retain99.json") == "tofu"
    assert list(load_any(tmp_path / "retain99.json").splits) == ["retain"]


def test_tofu_malformed(tmp_path: Path) -> None:
    rows = [dict(r) for r in TOFU_ROWS[:3]]
    del rows[2]["answer"]
    (tmp_path / "forget01.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(NeuronscopeError, match=r"forget01\.jsonl: line 3: missing field 'answer'"):
        load_tofu(tmp_path)
    rows[2]["answer"] = ""
    (tmp_path / "forget01.jsonl").write_text(json.dumps(rows))
    with pytest.raises(NeuronscopeError, match=r"forget01\.jsonl: item 2: field 'answer' must be a non-empty"):
        load_tofu(tmp_path / "forget01.jsonl")
    (tmp_path / "forget01.jsonl").write_text(json.dumps(TOFU_ROWS[0]) + "\n{oops\n")
    with pytest.raises(NeuronscopeError, match=r"forget01\.jsonl: line 2: invalid JSON"):
        load_tofu(tmp_path)
    with pytest.raises(NeuronscopeError, match="no TOFU forget file forget05"):
        load_tofu(tmp_path, forget="forget05")


# ---------------------------------------------------------------------------------------------------------------
# Alpaca
# ---------------------------------------------------------------------------------------------------------------


def test_alpaca(tmp_path: Path) -> None:
    rows = [{"instruction": "Give a synonym.", "input": "happy", "output": "glad"},
            {"instruction": "Name a colour.", "output": "red"}]
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(rows))
    items = load_alpaca(path)
    assert [(it.id, it.prompt, it.output) for it in items] == [
        ("alpaca_data.0", "Give a synonym. happy", "glad"), ("alpaca_data.1", "Name a colour.", "red")]
    ds = load_any(path)
    assert ds.benign == items and ds.splits == {}


@pytest.mark.parametrize(("row", "message"), [
    ({"input": "x", "output": "y"}, "item 1: missing field 'instruction'"),
    ({"instruction": "x", "input": 3, "output": "y"}, "item 1: field 'input' must be a string"),
    ({"instruction": "x", "output": ["y"]}, "item 1: field 'output' must be a string"),
    ("just text", "item 1: expected a JSON object"),
])
def test_alpaca_malformed(tmp_path: Path, row: object, message: str) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "a", "input": "", "output": "b"}, row]))
    with pytest.raises(NeuronscopeError, match=r"alpaca\.json") as e:
        load_alpaca(path)
    assert message in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# dispatch and the world format
# ---------------------------------------------------------------------------------------------------------------


def test_world_dir_still_loads(tiny_world: QADataset, tiny_world_dir: Path) -> None:
    assert detect_format(tiny_world_dir) == "world"
    ds = load_dataset(tiny_world_dir)
    assert ds.splits == tiny_world.splits and ds.utility == tiny_world.utility and ds.benign == tiny_world.benign
    single = load_dataset(tiny_world_dir / "retain.jsonl")
    assert single.forget == tiny_world.retain
    assert load_any(tiny_world_dir / "benign.jsonl").benign == tiny_world.benign  # detected as Alpaca-shaped


def test_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(NeuronscopeError, match="not found"):
        load_any(tmp_path / "missing.json")
    with pytest.raises(NeuronscopeError, match="no forget.jsonl"):
        load_dataset(tmp_path)
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps([{"text": "hello"}]))
    with pytest.raises(NeuronscopeError, match=r"weird\.json: cannot tell the format .*fields: text"):
        load_any(weird)
    with pytest.raises(NeuronscopeError, match="unknown data format 'csv'"):
        load_any(weird, format="csv")
    # an explicit format overrides detection and validates with that format's fields
    with pytest.raises(NeuronscopeError, match=r"weird\.json: item 0: missing field 'question'"):
        load_any(weird, format="tofu")
    with pytest.raises(NeuronscopeError, match=r"weird\.json: line 1: expected a JSON object"):
        load_any(weird, format="world")


def test_a_new_format_is_one_registration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/architecture.md's recipe: a DataFormat registered is detected (in its place in the order) and loaded."""
    from neuronscope.data.formats import registry
    from neuronscope.data.formats.records import read_records, text_field

    def load_mine(path: Path) -> QADataset:
        from neuronscope.data.items import QAItem

        items = [QAItem(id=f"{path.stem}.{i}", question=text_field(row, "q", f"{path}: {loc}"),
                        answer=text_field(row, "a", f"{path}: {loc}"))
                 for i, (loc, row) in enumerate(read_records(path))]
        return QADataset(splits={"forget": items}, meta={"name": path.stem, "format": "mine"})

    fmt = registry.DataFormat(name="mine", load=load_mine, file_order=35, record_hint="'q' + 'a' (mine)",
                              detect_file=lambda path, probe: probe.first_row is not None and "q" in probe.first_row)
    monkeypatch.setitem(registry._FORMATS, "mine", fmt)
    mine = tmp_path / "m.jsonl"
    mine.write_text(json.dumps({"q": "Who?", "a": "Ann"}) + "\n")
    assert detect_format(mine) == "mine" and registry.formats()[-1] == "mine"
    assert load_dataset(mine).forget[0].answer == "Ann"
    # a record that has both 'q' and 'question' is TOFU's only after 'mine' (35 < 40) had its turn
    both = tmp_path / "b.jsonl"
    both.write_text(json.dumps({"q": "Who?", "a": "Ann", "question": "Who?", "answer": "Ann"}) + "\n")
    assert detect_format(both) == "mine"
    weird = tmp_path / "w.jsonl"
    weird.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(NeuronscopeError, match=r"expected 'instruction' \(Alpaca\), 'q' \+ 'a' \(mine\), 'question'"):
        detect_format(weird)
    with pytest.raises(NeuronscopeError, match=r"missing field 'a'"):
        mine.write_text(json.dumps({"q": "Who?"}) + "\n")
        load_dataset(mine, "mine")

"""Write the tiny world as real benchmark files (FaithUn JSON + split files, TOFU JSON, Alpaca JSON).

The words stay the world's, so a model trained on the tiny world knows these "real" files' facts: the FaithUn and
TOFU code paths can then be checked on a model whose answers mean something.
"""

from __future__ import annotations

import json
from pathlib import Path

from neuronscope.data.schema import QADataset, QAItem

_CATEGORY = {"paraphrase": "hop1_test", "multihop": "hop2_test", "same_answer": "same_object"}


def _q(it: QAItem) -> dict:
    return {"question": it.question, "answer": it.answer, "false_options": [o for o in it.options if o != it.answer]}


def world_as_faithun(ds: QADataset, out: Path) -> Path:
    """One entity per person, one cluster per base fact; the split files follow the world's splits."""
    out.mkdir(parents=True, exist_ok=True)
    entities: dict[str, dict] = {}
    split_of: list[str] = []
    for split in ("forget", "retain", "test"):
        by_person: dict[str, list[QAItem]] = {}
        for it in ds.splits.get(split, []):
            by_person.setdefault(it.cluster, []).append(it)
        for person, items in by_person.items():
            base = [it for it in items if it.kind == "base"]
            ent: dict[str, list] = {"hop1_unlearn": [_q(it) for it in base]}
            for kind, cat in _CATEGORY.items():
                ent[cat] = [[_q(x) for x in items if x.kind == kind and x.fact == b.fact] for b in base]
            entities[person] = ent
            split_of += [split] * len(base)
    names = {"forget": "forget_set_split.txt", "retain": "retaining_set_split.txt", "test": "test_set_split.txt"}
    for split, fname in names.items():
        (out / fname).write_text("\n".join(str(i) for i, s in enumerate(split_of) if s == split) + "\n")
    path = out / "FaithUn_Dataset.json"
    path.write_text(json.dumps(entities))
    return path


def world_as_tofu(ds: QADataset, out: Path) -> Path:
    """forget01.json (forget base QA) and retain99.json (retain + test base QA) as JSON lines, no options."""
    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, items: list[QAItem]) -> None:
        (out / name).write_text("".join(json.dumps({"question": it.question, "answer": it.answer}) + "\n"
                                        for it in items))

    write("forget01.json", ds.items("forget"))
    write("retain99.json", ds.items("retain") + ds.items("test"))
    return out


def world_as_alpaca(ds: QADataset, path: Path) -> Path:
    path.write_text(json.dumps([{"instruction": b.instruction, "input": b.input, "output": b.output}
                                for b in ds.benign]))
    return path

"""FaithUn: entities with ``hop1_unlearn`` / ``hop1_test`` / ``hop2_test`` / ``same_object`` question lists, every
question with its answer and false options; 664 clusters split by the benchmark's index files.

A file is FaithUn when it is a ``.json`` holding ``hop1_unlearn`` (tried before the record-based formats, since a
list of entities may carry an ``id``); a directory when one of its ``*.json`` files is. Field mappings: docs/data.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from neuronscope.data.formats.records import Probe, check_unique_ids, text_field
from neuronscope.data.formats.registry import DataFormat, register
from neuronscope.data.items import QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.io import read_json

# FaithUn category -> neuronscope question kind
FAITHUN_CATEGORIES: dict[str, str] = {
    "hop1_unlearn": "base",
    "hop1_test": "paraphrase",
    "hop2_test": "multihop",
    "same_object": "same_answer",
}
FAITHUN_SPLIT_FILES: dict[str, str] = {
    "forget": "forget_set_split.txt",
    "retain": "retaining_set_split.txt",
    "test": "test_set_split.txt",
}
# The benchmark's README names the categories but not the per-question keys; these are the names read, in order.
QUESTION_KEYS = ("question", "query", "prompt")
ANSWER_KEYS = ("answer", "answers", "gold", "object")
FALSE_KEYS = ("false_options", "false_answers", "false_answer", "wrong_answers", "distractors", "negative_answers")
ENTITY_ID_KEYS = ("id", "entity_id", "qid", "wikidata_id", "entity")


def _first_key(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in row), None)


def _strings(value: Any, key: str, where: str) -> list[str]:
    """A string or a list of strings, as a list of non-empty strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise NeuronscopeError(f"{where}: field '{key}' must be a non-empty string or list of non-empty strings")
    return values


def _faithun_question(row: Any, where: str, iid: str, cluster: str, kind: str, fact: str) -> QAItem:
    if not isinstance(row, dict):
        raise NeuronscopeError(f"{where}: expected a question object, got {type(row).__name__}")
    qk = _first_key(row, QUESTION_KEYS)
    if qk is None:
        raise NeuronscopeError(f"{where}: missing field 'question'")
    question = text_field(row, qk, where)
    ak = _first_key(row, ANSWER_KEYS)
    if ak is None:
        raise NeuronscopeError(f"{where}: missing field 'answer'")
    answer = _strings(row[ak], ak, where)[0]  # a list of answers: the first is gold, the rest are aliases
    fk = _first_key(row, FALSE_KEYS)
    if fk is not None:
        false = _strings(row[fk], fk, where)
        if answer in false:
            raise NeuronscopeError(f"{where}: field '{fk}' contains the answer {answer!r}")
        options = [answer, *false]
    elif "options" in row:
        fk = "options"
        options = _strings(row["options"], "options", where)
        if answer not in options:
            raise NeuronscopeError(f"{where}: field 'options' does not contain the answer {answer!r}")
    else:
        raise NeuronscopeError(f"{where}: missing field 'false_options' (or one of {', '.join(FALSE_KEYS[1:])})")
    if len(set(options)) != len(options):
        raise NeuronscopeError(f"{where}: field '{fk}' has duplicate options")
    if len(options) < 2:
        raise NeuronscopeError(f"{where}: field '{fk}' gives no false option")
    # A fixed, id-seeded order: gold is not always first, yet the same file always gives the same order.
    random.Random(f"faithun:{iid}").shuffle(options)
    return QAItem(id=iid, question=question, answer=answer, options=tuple(options), cluster=cluster, kind=kind,
                  fact=fact)


def _faithun_entities(data: Any, path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(entity id, where, entity object) in file order, from a dict keyed by entity id or a list of entities."""
    if isinstance(data, dict) and "hop1_unlearn" in data:
        data = [data]
    if isinstance(data, dict):
        pairs = [(str(k), f"{path}: entity {k!r}", v) for k, v in data.items()]
    elif isinstance(data, list):
        pairs = []
        for i, ent in enumerate(data):
            key = _first_key(ent, ENTITY_ID_KEYS) if isinstance(ent, dict) else None
            eid = str(ent[key]) if key else f"e{i}"
            pairs.append((eid, f"{path}: item {i}", ent))
    else:
        raise NeuronscopeError(f"{path}: expected a JSON object of entities or a list of entities")
    for _, where, ent in pairs:
        if not isinstance(ent, dict):
            raise NeuronscopeError(f"{where}: expected an entity object, got {type(ent).__name__}")
        if "hop1_unlearn" not in ent:
            raise NeuronscopeError(f"{where}: missing field 'hop1_unlearn'")
    return pairs


def read_faithun_clusters(path: str | Path) -> list[list[QAItem]]:
    """The questions of every cluster, clusters in the benchmark's global order.

    Each ``hop1_unlearn`` question is one cluster; clusters are numbered over entities in file order (the order
    the split files index). An evaluation category is absent, empty, or a list aligned with ``hop1_unlearn``:
    entry j holds the question (an object), questions (a list) or nothing (null / []) derived from base
    question j. This alignment is our reading of the format (docs/data.md), so a mismatch is an error.
    """
    path = Path(path)
    entities = _faithun_entities(read_json(path), path)
    clusters: list[list[QAItem]] = []
    for eid, where, ent in entities:
        base = ent["hop1_unlearn"]
        if not isinstance(base, list):
            raise NeuronscopeError(f"{where}: field 'hop1_unlearn' must be a list of questions")
        members: list[list[QAItem]] = [[] for _ in base]
        first = len(clusters)  # global index of this entity's first cluster
        for cat, kind in FAITHUN_CATEGORIES.items():
            entries = ent.get(cat)
            if entries is None or entries == []:  # an absent or empty category: no questions of that kind
                continue
            if not isinstance(entries, list):
                raise NeuronscopeError(f"{where}: field '{cat}' must be a list")
            if len(entries) != len(base):
                raise NeuronscopeError(
                    f"{where}: field '{cat}' has {len(entries)} entries but 'hop1_unlearn' has {len(base)}; "
                    "questions are matched to their base question (cluster) by position")
            for j, entry in enumerate(entries):
                if cat == "hop1_unlearn":  # exactly one base question per cluster
                    group, nested = [entry], False
                else:
                    nested = isinstance(entry, list)
                    group = entry if nested else ([] if entry is None else [entry])
                for k, q in enumerate(group):
                    suffix = f".{k}" if cat != "hop1_unlearn" else ""
                    loc = f"{where}, {cat}[{j}]" + (f"[{k}]" if nested else "")
                    members[j].append(_faithun_question(
                        q, loc, f"{eid}.{j}.{cat}{suffix}", f"faithun.{first + j}", kind, f"{eid}.{j}"))
        clusters.extend(members)
    check_unique_ids([it.id for members in clusters for it in members], path)
    return clusters


def _read_split_file(path: Path, n_clusters: int) -> list[int]:
    out: list[int] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not s.isdigit():
            raise NeuronscopeError(f"{path}: line {lineno}: expected a cluster index, got {s!r}")
        if int(s) >= n_clusters:
            raise NeuronscopeError(
                f"{path}: line {lineno}: cluster index {s} out of range (the data has {n_clusters} clusters)")
        out.append(int(s))
    return out


def _find_split_dir(json_path: Path, splits_dir: Path | None) -> Path | None:
    candidates = [splits_dir] if splits_dir is not None else [json_path.parent, json_path.parent / "splits"]
    for d in candidates:
        present = [(d / f).is_file() for f in FAITHUN_SPLIT_FILES.values()]
        if all(present):
            return d
        if any(present):
            missing = [f for f, p in zip(FAITHUN_SPLIT_FILES.values(), present, strict=True) if not p]
            raise NeuronscopeError(f"{d}: FaithUn split files incomplete (missing {', '.join(missing)})")
    if splits_dir is not None:
        raise NeuronscopeError(f"{splits_dir}: no FaithUn split files ({', '.join(FAITHUN_SPLIT_FILES.values())})")
    return None


def _faithun_json(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise NeuronscopeError(f"{path}: file or directory not found")
    found = [p for p in sorted(path.glob("*.json")) if _looks_faithun(p)]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise NeuronscopeError(f"{path}: expected one FaithUn JSON file (with 'hop1_unlearn'), found {what}")
    return found[0]


def load_faithun(path: str | Path, splits_dir: str | Path | None = None, seed: int = 0,
                 fractions: tuple[float, float, float] = (0.05, 0.10, 0.70)) -> QADataset:
    """FaithUn JSON (a file, or a directory holding it) as a dataset split at cluster level.

    The split comes from the benchmark's index files (``forget_set_split.txt``, ``retaining_set_split.txt``,
    ``test_set_split.txt``: one cluster index per line), looked for in `splits_dir`, else beside the JSON or in
    its ``splits/`` folder. Without them, clusters are split by a seeded shuffle with `fractions`
    (forget, retain, test; 5/10/70 as in the paper). Clusters in no split go to ``other``.
    """
    json_path = _faithun_json(Path(path))
    clusters = read_faithun_clusters(json_path)
    split_dir = _find_split_dir(json_path, Path(splits_dir) if splits_dir is not None else None)
    assign: dict[int, str] = {}
    if split_dir is not None:
        for split, fname in FAITHUN_SPLIT_FILES.items():
            for c in _read_split_file(split_dir / fname, len(clusters)):
                if c in assign and assign[c] != split:
                    raise NeuronscopeError(
                        f"{split_dir / fname}: cluster {c} is also in the {assign[c]} split")
                assign[c] = split
        source = str(split_dir)
    else:
        order = list(range(len(clusters)))
        random.Random(seed).shuffle(order)
        n = len(order)
        cuts = [round(f * n) for f in fractions]
        start = 0
        for split, k in zip(("forget", "retain", "test"), cuts, strict=True):
            for c in order[start:start + k]:
                assign[c] = split
            start += k
        source = f"seeded shuffle (seed {seed}, fractions {list(fractions)})"
    splits: dict[str, list[QAItem]] = {s: [] for s in ("forget", "retain", "test", "other")}
    for c, members in enumerate(clusters):
        splits[assign.get(c, "other")].extend(members)
    n_options = {len(it.options) for members in clusters for it in members}
    meta = {"name": json_path.stem, "format": "faithun", "source": str(json_path), "split_source": source,
            "clusters": {s: sum(1 for c in range(len(clusters)) if assign.get(c, "other") == s) for s in splits},
            "items": {s: len(v) for s, v in splits.items()},
            "chance": 1 / n_options.pop() if len(n_options) == 1 else None}
    return QADataset(splits=splits, meta=meta)


def _looks_faithun(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    if isinstance(data, dict):
        return "hop1_unlearn" in data or any(isinstance(v, dict) and "hop1_unlearn" in v for v in data.values())
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "hop1_unlearn" in data[0]


def _is_faithun_dir(path: Path) -> bool:
    return any(_looks_faithun(p) for p in sorted(path.glob("*.json")))


def _is_faithun_file(path: Path, probe: Probe) -> bool:
    return path.suffix == ".json" and _looks_faithun(path)


def _load(path: Path) -> QADataset:
    return load_faithun(path)


FAITHUN = register(DataFormat(
    name="faithun", load=_load, detect_dir=_is_faithun_dir, detect_file=_is_faithun_file, dir_order=30,
    file_order=10, dir_hint="FaithUn JSON"))

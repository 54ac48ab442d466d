"""Loaders that read real benchmark files from local paths into the QA schema.

Formats (field mappings in docs/data.md):

- ``world``   the embedded default: a directory of JSONL splits (or one QA JSONL file), see `schema`.
- ``faithun`` FaithUn JSON: entities with ``hop1_unlearn`` / ``hop1_test`` / ``hop2_test`` / ``same_object``
  question lists, every question with its answer and false options; 664 clusters split by index files.
- ``tofu``    TOFU JSON or JSONL rows of ``question`` / ``answer``; the forget and retain splits are separate files.
- ``alpaca``  Alpaca JSON: a list of ``{instruction, input, output}`` -> `InstructionItem` (the benign corpus).

Every user mistake is a `NeuronscopeError` that names the file, the place (``line N`` for JSONL, ``item N``
(0-based) for a JSON array, the entity and list position for FaithUn) and the field.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Literal

from neuronscope.data.schema import InstructionItem, QADataset, QAItem, load_world_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.io import read_json, read_jsonl

Format = Literal["auto", "world", "faithun", "tofu", "alpaca"]
FORMATS: tuple[str, ...] = ("auto", "world", "faithun", "tofu", "alpaca")

# ----------------------------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------------------------


def read_records(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a JSON array or a JSONL file, each with where it came from ("line N" or "item N").

    Both shapes are accepted because the same benchmark ships either way (TOFU's ``.json`` files on the Hub are
    JSON lines); which one a file is follows from its first character, not its suffix.
    """
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        return [(f"line {n}", row) for n, row in read_jsonl(path)]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise NeuronscopeError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    out: list[tuple[str, dict[str, Any]]] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise NeuronscopeError(f"{path}: item {i}: expected a JSON object, got {type(row).__name__}")
        out.append((f"item {i}", row))
    return out


def _text(row: dict[str, Any], key: str, where: str, *, required: bool = True, empty_ok: bool = False) -> str:
    if key not in row:
        if required:
            raise NeuronscopeError(f"{where}: missing field '{key}'")
        return ""
    value = row[key]
    if not isinstance(value, str):
        raise NeuronscopeError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise NeuronscopeError(f"{where}: field '{key}' must be a non-empty string")
    return value


def _check_unique_ids(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise NeuronscopeError(f"{path}: duplicate id {i!r}")
        seen.add(i)


# ----------------------------------------------------------------------------------------------------------------
# Alpaca
# ----------------------------------------------------------------------------------------------------------------


def load_alpaca(path: str | Path) -> list[InstructionItem]:
    """Alpaca rows (``instruction``, optional ``input``, ``output``) as instruction items.

    The id is the row's own string ``id`` when it has one, else ``<file stem>.<index>`` (0-based), so the same
    file always gives the same ids.
    """
    path = Path(path)
    items: list[InstructionItem] = []
    for i, (loc, row) in enumerate(read_records(path)):
        where = f"{path}: {loc}"
        rid = row.get("id", f"{path.stem}.{i}")
        if not isinstance(rid, str) or not rid.strip():
            raise NeuronscopeError(f"{where}: field 'id' must be a non-empty string")
        items.append(InstructionItem(
            id=rid,
            instruction=_text(row, "instruction", where),
            output=_text(row, "output", where),
            input=_text(row, "input", where, required=False, empty_ok=True),
        ))
    _check_unique_ids([it.id for it in items], path)
    return items


# ----------------------------------------------------------------------------------------------------------------
# TOFU
# ----------------------------------------------------------------------------------------------------------------

TOFU_PER_AUTHOR = 20  # TOFU lists each fictitious author's 20 questions consecutively
_TOFU_UTILITY = ("real_authors", "world_facts")


def load_tofu_items(path: str | Path, per_author: int = TOFU_PER_AUTHOR) -> list[QAItem]:
    """TOFU rows (``question``, ``answer``; other fields ignored) as QA items without options.

    TOFU is scored by ROUGE-L, not multiple choice, so ``options`` stays empty. ``cluster`` groups each run of
    `per_author` consecutive rows as one author (``<stem>.author<k>``); ``per_author=0`` leaves it empty.
    """
    path = Path(path)
    items: list[QAItem] = []
    for i, (loc, row) in enumerate(read_records(path)):
        where = f"{path}: {loc}"
        question, answer = _text(row, "question", where), _text(row, "answer", where)
        iid = f"{path.stem}.{i}"
        cluster = f"{path.stem}.author{i // per_author}" if per_author > 0 else ""
        items.append(QAItem(id=iid, question=question, answer=answer, options=(), cluster=cluster, kind="base",
                            fact=iid))
    return items


def _tofu_split_of(stem: str) -> str:
    s = stem.lower()
    if s.startswith("retain"):
        return "retain"
    if s.startswith(_TOFU_UTILITY):
        return "utility"
    return "forget"


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.json", f"{stem}.jsonl", f"{stem}_dataset.json", f"{stem}_dataset.jsonl",
                 f"{stem}_perturbed.json", f"{stem}_perturbed.jsonl"):  # TOFU ships real_authors_perturbed.json
        if (directory / name).is_file():
            return directory / name
    return None


def load_tofu(path: str | Path, forget: str = "forget01", retain: str | None = None,
              per_author: int = TOFU_PER_AUTHOR) -> QADataset:
    """A TOFU file or directory as a dataset.

    A file becomes one split, named from its stem (``forget*`` -> forget, ``retain*`` -> retain, ``real_authors``
    / ``world_facts`` -> utility). A directory gives forget = ``<forget>.json[l]``, retain = ``<retain>`` (default:
    the complement, ``forget01`` -> ``retain99``), and utility = ``real_authors`` + ``world_facts`` when present.
    """
    path = Path(path)
    if path.is_file():
        split = _tofu_split_of(path.stem)
        items = load_tofu_items(path, per_author)
        if split == "utility":
            return QADataset(splits={}, utility=items, meta={"name": path.stem, "format": "tofu", "metric": "rouge"})
        return QADataset(splits={split: items}, meta={"name": path.stem, "format": "tofu", "metric": "rouge"})
    if not path.is_dir():
        raise NeuronscopeError(f"{path}: file or directory not found")
    forget_file = _find(path, forget)
    if forget_file is None:
        raise NeuronscopeError(f"{path}: no TOFU forget file {forget}.json or {forget}.jsonl")
    if retain is None:
        m = re.fullmatch(r"forget(\d+)", forget)
        retain = f"retain{100 - int(m.group(1)):02d}" if m else "retain"
    splits = {"forget": load_tofu_items(forget_file, per_author)}
    retain_file = _find(path, retain)
    if retain_file is not None:
        splits["retain"] = load_tofu_items(retain_file, per_author)
    utility = [it for stem in _TOFU_UTILITY if (f := _find(path, stem)) for it in load_tofu_items(f, per_author)]
    meta = {"name": path.name, "format": "tofu", "metric": "rouge", "forget": forget_file.name,
            "retain": retain_file.name if retain_file else None}
    return QADataset(splits=splits, utility=utility, meta=meta)


# ----------------------------------------------------------------------------------------------------------------
# FaithUn
# ----------------------------------------------------------------------------------------------------------------

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
    question = _text(row, qk, where)
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
    _check_unique_ids([it.id for members in clusters for it in members], path)
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


# ----------------------------------------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------------------------------------


def _looks_faithun(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    if isinstance(data, dict):
        return "hop1_unlearn" in data or any(isinstance(v, dict) and "hop1_unlearn" in v for v in data.values())
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "hop1_unlearn" in data[0]


def _first_row(path: Path) -> dict[str, Any] | None:
    """The first record of a JSON array / JSONL file, or None when the file is neither."""
    text = path.read_text(encoding="utf-8").lstrip()
    try:
        if text.startswith("["):
            data = json.loads(text)
            return data[0] if data and isinstance(data[0], dict) else None
        first = text.split("\n", 1)[0]
        row = json.loads(first)
        return row if isinstance(row, dict) else None
    except json.JSONDecodeError:
        return None


def detect_format(path: str | Path) -> str:
    """Which loader reads `path`: 'world', 'faithun', 'tofu' or 'alpaca'."""
    path = Path(path)
    if not path.exists():
        raise NeuronscopeError(f"{path}: file or directory not found")
    if path.is_dir():
        if (path / "forget.jsonl").is_file():
            return "world"
        if any(_find(path, f"forget{k:02d}") for k in range(1, 100)) or _find(path, "forget"):
            return "tofu"
        if any(_looks_faithun(p) for p in sorted(path.glob("*.json"))):
            return "faithun"
        raise NeuronscopeError(
            f"{path}: not a dataset directory (no forget.jsonl, no TOFU forget file, no FaithUn JSON)")
    if path.suffix == ".json" and _looks_faithun(path):
        return "faithun"
    row = _first_row(path)
    if row is None:
        raise NeuronscopeError(f"{path}: cannot tell the format (not a JSON array of objects nor JSON lines)")
    if "instruction" in row:
        return "alpaca"
    if "id" in row or "options" in row:
        return "world"
    if "question" in row:
        return "tofu"
    raise NeuronscopeError(
        f"{path}: cannot tell the format of the first record (fields: {', '.join(row) or 'none'}); "
        "expected 'instruction' (Alpaca), 'question' + 'answer' (TOFU) or 'id' + 'question' (world)")


def load_any(path: str | Path, format: str = "auto") -> QADataset:
    """Read any supported dataset into a `QADataset`; Alpaca files land in ``benign`` with no splits."""
    path = Path(path)
    if format not in FORMATS:
        raise NeuronscopeError(f"unknown data format {format!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "world":
        return load_world_dataset(path)
    if fmt == "faithun":
        return load_faithun(path)
    if fmt == "tofu":
        return load_tofu(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: an Alpaca dataset must be a file")
    return QADataset(splits={}, benign=load_alpaca(path), meta={"name": path.stem, "format": "alpaca"})

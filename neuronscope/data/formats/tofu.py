"""TOFU: JSON or JSONL rows of ``question`` / ``answer``; the forget and retain splits are separate files.

A directory is TOFU when it holds a forget file (``forget01.json``, ``forget.jsonl``, ...); a file when its first
record has a ``question`` (tried after the world and Alpaca formats, whose records may have one too). TOFU is
scored by ROUGE-L, so its items carry no options and its meta says ``metric: rouge``.
"""

from __future__ import annotations

import re
from pathlib import Path

from neuronscope.data.formats.records import Probe, read_records, text_field
from neuronscope.data.formats.registry import DataFormat, register
from neuronscope.data.items import QADataset, QAItem
from neuronscope.errors import NeuronscopeError

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
        question, answer = text_field(row, "question", where), text_field(row, "answer", where)
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


def find_tofu_file(directory: Path, stem: str) -> Path | None:
    """`directory`'s file for split `stem`, under any of the names TOFU ships it with."""
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
    forget_file = find_tofu_file(path, forget)
    if forget_file is None:
        raise NeuronscopeError(f"{path}: no TOFU forget file {forget}.json or {forget}.jsonl")
    if retain is None:
        m = re.fullmatch(r"forget(\d+)", forget)
        retain = f"retain{100 - int(m.group(1)):02d}" if m else "retain"
    splits = {"forget": load_tofu_items(forget_file, per_author)}
    retain_file = find_tofu_file(path, retain)
    if retain_file is not None:
        splits["retain"] = load_tofu_items(retain_file, per_author)
    utility = [it for stem in _TOFU_UTILITY if (f := find_tofu_file(path, stem))
               for it in load_tofu_items(f, per_author)]
    meta = {"name": path.name, "format": "tofu", "metric": "rouge", "forget": forget_file.name,
            "retain": retain_file.name if retain_file else None}
    return QADataset(splits=splits, utility=utility, meta=meta)


def _is_tofu_dir(path: Path) -> bool:
    return any(find_tofu_file(path, f"forget{k:02d}") for k in range(1, 100)) or bool(find_tofu_file(path, "forget"))


def _is_tofu_file(path: Path, probe: Probe) -> bool:
    return probe.first_row is not None and "question" in probe.first_row


TOFU = register(DataFormat(
    name="tofu", load=load_tofu, detect_dir=_is_tofu_dir, detect_file=_is_tofu_file, dir_order=20, file_order=40,
    dir_hint="TOFU forget file", record_hint="'question' + 'answer' (TOFU)"))

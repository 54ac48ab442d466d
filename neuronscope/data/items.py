"""The QA schema every part of neuronscope reads: items and datasets.

A dataset directory holds one JSONL file per split (see docs/data.md):

    world.json      metadata (name, seed, split fractions, counts)
    forget.jsonl    QA items of the forget clusters
    retain.jsonl    QA items of the retain clusters
    test.jsonl      QA items of the test clusters
    other.jsonl     QA items of clusters in no evaluation split (trained, never scored)
    utility.jsonl   general-utility QA, not about the forget/retain/test subjects (US)
    benign.jsonl    instruction-style corpus for the benign relearning attack

Only forget.jsonl is required; the others are read when present. Reading and writing the directory:
`neuronscope.data.formats.world`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from neuronscope.errors import NeuronscopeError

Kind = Literal["base", "paraphrase", "multihop", "same_answer"]
KINDS: tuple[str, ...] = ("base", "paraphrase", "multihop", "same_answer")
SPLITS: tuple[str, ...] = ("forget", "retain", "test", "other")


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answer and multiple-choice options (gold included)."""

    id: str
    question: str
    answer: str
    options: tuple[str, ...] = ()
    cluster: str = ""
    kind: str = "base"
    fact: str = ""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = list(self.options)
        return d

    @staticmethod
    def from_json(row: dict[str, Any], where: str) -> QAItem:
        """Validate one JSON row; `where` ("file: line N") prefixes every error."""
        for key in ("id", "question", "answer"):
            if key not in row:
                raise NeuronscopeError(f"{where}: missing field '{key}'")
            if not isinstance(row[key], str) or not row[key].strip():
                raise NeuronscopeError(f"{where}: field '{key}' must be a non-empty string")
        options = row.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
            raise NeuronscopeError(f"{where}: field 'options' must be a list of non-empty strings")
        if options:
            if row["answer"] not in options:
                raise NeuronscopeError(f"{where}: field 'options' does not contain the answer")
            if len(set(options)) != len(options):
                raise NeuronscopeError(f"{where}: field 'options' has duplicates")
        kind = row.get("kind", "base")
        if kind not in KINDS:
            raise NeuronscopeError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
        for key in ("cluster", "fact"):
            if not isinstance(row.get(key, ""), str):
                raise NeuronscopeError(f"{where}: field '{key}' must be a string")
        return QAItem(
            id=row["id"],
            question=row["question"],
            answer=row["answer"],
            options=tuple(options),
            cluster=row.get("cluster", ""),
            kind=kind,
            fact=row.get("fact", ""),
        )


@dataclass(frozen=True)
class InstructionItem:
    """An instruction-style example (Alpaca shape) for benign fine-tuning."""

    id: str
    instruction: str
    output: str
    input: str = ""

    @property
    def prompt(self) -> str:
        return f"{self.instruction} {self.input}".strip()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(row: dict[str, Any], where: str) -> InstructionItem:
        for key in ("id", "instruction", "output"):
            if key not in row:
                raise NeuronscopeError(f"{where}: missing field '{key}'")
            if not isinstance(row[key], str) or not row[key].strip():
                raise NeuronscopeError(f"{where}: field '{key}' must be a non-empty string")
        if not isinstance(row.get("input", ""), str):
            raise NeuronscopeError(f"{where}: field 'input' must be a string")
        return InstructionItem(row["id"], row["instruction"], row["output"], row.get("input", ""))


@dataclass
class QADataset:
    """Splits of QA items plus the utility set and the benign corpus."""

    splits: dict[str, list[QAItem]]
    utility: list[QAItem] = field(default_factory=list)
    benign: list[InstructionItem] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def forget(self) -> list[QAItem]:
        return self.splits.get("forget", [])

    @property
    def retain(self) -> list[QAItem]:
        return self.splits.get("retain", [])

    @property
    def test(self) -> list[QAItem]:
        return self.splits.get("test", [])

    def items(self, split: str, kind: str | None = "base") -> list[QAItem]:
        """Items of one split ('utility' included), optionally of one kind."""
        pool = self.utility if split == "utility" else self.splits.get(split, [])
        return [it for it in pool if kind is None or it.kind == kind]

    def training_items(self, exclude_splits: tuple[str, ...] = (), utility: bool = True) -> list[QAItem]:
        """What a base model is trained on: every base question of every split, plus the utility facts.

        Paraphrase, multi-hop and same-answer questions are never trained on: they measure generalisation.
        `utility=False` leaves the utility questions out (TOFU: they are real-world evaluation sets).
        """
        out = [it for s, items in self.splits.items() if s not in exclude_splits for it in items
               if it.kind == "base"]
        return out + list(self.utility) if utility else out

    def all_text(self) -> list[str]:
        texts: list[str] = []
        for items in [*self.splits.values(), self.utility]:
            for it in items:
                texts.extend([it.question, it.answer, *it.options])
        for b in self.benign:
            texts.extend([b.instruction, b.input, b.output])
        return texts

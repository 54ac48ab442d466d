"""Prompt formats: how a QA item becomes the text a model is scored, trained and attributed on.

A format is applied once, when a dataset is prepared (`prepare_dataset`, `neuronscope prepare`), and rewrites
each item's `question` (and, for lettered choices, its `answer` and `options`). Everything downstream - scoring,
unlearning, attacks, attribution, the lens - then reads one rendered prompt per item, so what is unlearned is
exactly what is scored.

Presets:

- ``plain``         the question as it is (the embedded world; TOFU).
- ``mcqa``          question and lettered options listed in the prompt; the candidates scored are the option
                    texts (gold = the answer text). This is the default for FaithUn.
- ``mcqa-letters``  the same prompt; the candidates are the letters (gold = the gold option's letter).

``chat=True`` wraps the rendered prompt as a user turn through the tokenizer's own chat template (with the
generation prompt), as an instruction-tuned model expects; the rendered text then starts with the template's
special tokens, and `neuronscope.batching.encode` does not add a second BOS.
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from neuronscope.data.schema import InstructionItem, QADataset, QAItem
from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:  # annotations only: reading and formatting data imports no transformers
    from transformers import PreTrainedTokenizerBase

Choices = Literal["text", "letters"]
MCQA_TEMPLATE = "Question: {question}\nOptions:\n{options}\nAnswer:"
LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class PromptFormat:
    """A template over ``{question}`` and ``{options}`` (lettered lines), the candidates, and chat wrapping."""

    template: str = "{question}"
    choices: Choices = "text"
    chat: bool = False
    system: str = ""  # system message for chat templates that take one ("" = none)

    def check(self) -> None:
        if "{question}" not in self.template:
            raise NeuronscopeError(f"prompt template must contain {{question}}, got {self.template!r}")
        try:
            self.template.format(question="q", options="o")
        except (KeyError, IndexError, ValueError) as e:
            raise NeuronscopeError(f"prompt template {self.template!r} is invalid: only {{question}} and "
                                   f"{{options}} may appear ({e})") from None
        if self.choices not in ("text", "letters"):
            raise NeuronscopeError(f"prompt choices must be 'text' or 'letters', got {self.choices!r}")
        if self.choices == "letters" and "{options}" not in self.template:
            raise NeuronscopeError("lettered choices need {options} in the template, or the letters mean nothing")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, PromptFormat] = {
    "plain": PromptFormat(),
    "mcqa": PromptFormat(template=MCQA_TEMPLATE, choices="text"),
    "mcqa-letters": PromptFormat(template=MCQA_TEMPLATE, choices="letters"),
}


def prompt_format(preset: str, *, chat: bool = False, system: str = "", template: str | None = None
                  ) -> PromptFormat:
    """A preset by name, optionally with chat wrapping and a custom template."""
    if preset not in PRESETS:
        raise NeuronscopeError(f"unknown prompt format {preset!r}; expected one of {', '.join(PRESETS)}")
    fmt = replace(PRESETS[preset], chat=chat, system=system)
    if template is not None:
        fmt = replace(fmt, template=template)
    fmt.check()
    return fmt


def options_block(options: tuple[str, ...]) -> str:
    """'A. first\\nB. second\\n...' in the item's stored option order."""
    if len(options) > len(LETTERS):
        raise NeuronscopeError(f"{len(options)} options: at most {len(LETTERS)} can be lettered")
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def render_chat(text: str, tokenizer: PreTrainedTokenizerBase, system: str = "") -> str:
    """`text` as one user turn of the tokenizer's chat template, ending with the assistant's generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise NeuronscopeError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                               "prepare the data without chat wrapping")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def format_item(item: QAItem, fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase | None = None) -> QAItem:
    """The item with its question rendered; lettered choices also replace answer and options by letters."""
    needs_options = "{options}" in fmt.template
    if needs_options and len(item.options) < 2:
        raise NeuronscopeError(f"item {item.id!r} has no options to list in the prompt format")
    text = fmt.template.format(question=item.question,
                               options=options_block(item.options) if needs_options else "")
    if fmt.chat:
        if tokenizer is None:
            raise NeuronscopeError("chat wrapping needs the model's tokenizer")
        text = render_chat(text, tokenizer, fmt.system)
    if fmt.choices == "letters":
        letters = tuple(LETTERS[i] for i in range(len(item.options)))
        return replace(item, question=text, answer=letters[item.options.index(item.answer)], options=letters)
    return replace(item, question=text)


def format_instruction(item: InstructionItem, fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase | None = None
                       ) -> InstructionItem:
    """Benign instruction items get the same chat wrapping (no QA template: they are not questions)."""
    if not fmt.chat:
        return item
    if tokenizer is None:
        raise NeuronscopeError("chat wrapping needs the model's tokenizer")
    return InstructionItem(item.id, render_chat(item.prompt, tokenizer, fmt.system), item.output)


def format_dataset(ds: QADataset, fmt: PromptFormat, tokenizer: PreTrainedTokenizerBase | None = None
                   ) -> QADataset:
    """Every item of every split, the utility set and the benign corpus in `fmt`; meta records the format."""
    fmt.check()
    if ds.meta.get("prompt"):
        raise NeuronscopeError("the dataset is already formatted (meta 'prompt' is set); format raw data once")
    splits = {s: [format_item(it, fmt, tokenizer) for it in items] for s, items in ds.splits.items()}
    utility = [format_item(it, fmt, tokenizer) for it in ds.utility]
    benign = [format_instruction(b, fmt, tokenizer) for b in ds.benign]
    meta = dict(ds.meta) | {"prompt": fmt.to_json()}
    if fmt.chat:
        meta["chat_tokenizer"] = str(getattr(tokenizer, "name_or_path", ""))
    return QADataset(splits=splits, utility=utility, benign=benign, meta=meta)

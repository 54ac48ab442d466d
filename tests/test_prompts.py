"""Prompt formats: rendered text by hand, lettered choices, chat wrapping without a second BOS, bad formats."""

from __future__ import annotations

import pytest

from neuronscope.batching import encode
from neuronscope.data.prompts import PromptFormat, format_dataset, format_item, prompt_format
from neuronscope.data.schema import InstructionItem, QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.tokenizer import build_word_tokenizer

ITEM = QAItem(id="a", question="where was ann born ?", answer="paris", options=("rome", "paris", "oslo"))
CHAT = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}")


def _tok():
    tok = build_word_tokenizer(["where was ann born ? paris rome oslo Question Options Answer A B C . :",
                                "<user> <assistant> <system> be brief repeat the word apple"])
    tok.chat_template = CHAT
    return tok


def test_mcqa_renders_question_and_lettered_options() -> None:
    out = format_item(ITEM, prompt_format("mcqa"))
    assert out.question == "Question: where was ann born ?\nOptions:\nA. rome\nB. paris\nC. oslo\nAnswer:"
    assert (out.answer, out.options) == ("paris", ITEM.options)  # option texts stay the candidates


def test_mcqa_letters_maps_gold_to_its_letter() -> None:
    out = format_item(ITEM, prompt_format("mcqa-letters"))
    assert (out.answer, out.options) == ("B", ("A", "B", "C"))
    assert "B. paris" in out.question


def test_plain_is_identity() -> None:
    assert format_item(ITEM, prompt_format("plain")) == ITEM


def test_chat_wraps_once_and_encode_adds_no_second_bos() -> None:
    tok = _tok()
    out = format_item(ITEM, prompt_format("plain", chat=True, system="be brief"), tok)
    assert out.question == "<bos><system> be brief <user> where was ann born ? <assistant>"
    ids = encode(tok, [out.question], [out.answer]).input_ids[0].tolist()
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    plain = encode(tok, [ITEM.question], [ITEM.answer]).input_ids[0].tolist()
    assert plain[0] == tok.bos_token_id and plain.count(tok.bos_token_id) == 1


def test_format_dataset_records_format_and_wraps_benign() -> None:
    tok = _tok()
    ds = QADataset(splits={"forget": [ITEM]}, benign=[InstructionItem("b", "repeat the word", "apple", "apple")])
    out = format_dataset(ds, prompt_format("mcqa", chat=True), tok)
    assert out.meta["prompt"]["chat"] is True and out.meta["prompt"]["template"].startswith("Question:")
    assert out.benign[0].instruction == "<bos><user> repeat the word apple <assistant>"
    assert out.benign[0].prompt == out.benign[0].instruction  # input folded into the rendered prompt
    with pytest.raises(NeuronscopeError, match="already formatted"):
        format_dataset(out, prompt_format("plain"))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: prompt_format("nope"), "unknown prompt format"),
    (lambda: prompt_format("plain", template="no placeholder"), "must contain {question}"),
    (lambda: prompt_format("plain", template="{question} {other}"), "only {question} and {options}"),
    (lambda: PromptFormat(template="{question}", choices="letters").check(), "need {options}"),
    (lambda: format_item(QAItem("x", "q ?", "a"), prompt_format("mcqa")), "no options"),
    (lambda: format_item(ITEM, prompt_format("plain", chat=True), build_word_tokenizer(["a"])), "no chat template"),
])
def test_bad_formats_fail_clearly(make, message: str) -> None:
    with pytest.raises(NeuronscopeError, match=message):
        make()

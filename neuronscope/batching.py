"""Turn (prompt, answer) pairs into right-padded token batches with an answer mask.

Right padding keeps every real token at the position it would have alone, so a causal model needs no attention
mask: padding only ever follows the tokens that matter. The HF model and the TransformerBridge therefore see
identical inputs.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor
from transformers import PreTrainedTokenizerBase

ANSWER_PREFIX = " "


@dataclass
class Batch:
    input_ids: Int[Tensor, "batch pos"]
    answer_mask: Bool[Tensor, "batch pos"]  # True where the token is part of the answer
    prompt_mask: Bool[Tensor, "batch pos"]  # True where the token is part of the prompt (bos included)

    @property
    def token_mask(self) -> Bool[Tensor, "batch pos"]:
        return self.answer_mask | self.prompt_mask

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.answer_mask.to(device), self.prompt_mask.to(device))

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def carries_bos(tokenizer: PreTrainedTokenizerBase, prompt: str) -> bool:
    """Does the prompt text already start with the BOS token (a rendered chat template)? Then none is added."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and prompt.startswith(bos)


Row = tuple[list[int], int]  # token ids of prompt + answer, and how many of them are the prompt


def encode_row(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str) -> Row:
    """One (prompt, answer) pair as token ids: the prompt (with BOS unless it carries one) then the answer."""
    p_ids = tokenizer(prompt, add_special_tokens=not carries_bos(tokenizer, prompt))["input_ids"]
    a_ids = tokenizer(ANSWER_PREFIX + answer, add_special_tokens=False)["input_ids"]
    if not a_ids:
        raise ValueError(f"answer {answer!r} encodes to no tokens")
    return p_ids + a_ids, len(p_ids)


def pad_rows(tokenizer: PreTrainedTokenizerBase, rows: Sequence[Row], width: int | None = None) -> Batch:
    """Right-pad encoded rows to the longest of them (or to `width`, when a batch was split from a wider one)."""
    width = max([len(ids) for ids, _ in rows] + ([width] if width is not None else []))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows], dtype=torch.long)
    pos = torch.arange(width)
    n_prompt = torch.tensor([n for _, n in rows]).unsqueeze(1)
    length = torch.tensor([len(ids) for ids, _ in rows]).unsqueeze(1)
    return Batch(input_ids, (pos >= n_prompt) & (pos < length), pos < n_prompt)


_MEMO_LIMIT = 500_000  # pairs remembered per tokenizer before the memo starts afresh (a long notebook session)
_memo: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, dict[tuple[int, str, str], tuple[tuple[int, ...], int]]] = \
    weakref.WeakKeyDictionary()


def encode_rows(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str]) -> list[Row]:
    """`encode_row` of every pair, with one tokenizer call for all answers and one per kind of prompt (with or
    without BOS to add): the very same ids, without a tokenizer call per string.

    Pairs are tokenised once per tokenizer: the unlearning loop scores the same forget questions at every check
    and an attack at every evaluation, so later calls read the remembered ids (keyed by the tokenizer's size too,
    so tokens added to it later are not missed)."""
    if len(prompts) != len(answers):
        raise ValueError("prompts and answers differ in length")
    if not prompts:
        return []
    try:
        memo = _memo.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: no memo
        return _encode_rows(tokenizer, prompts, answers)
    try:
        size = len(tokenizer)  # grows when tokens are added
    except TypeError:  # a minimal tokenizer without a size
        size = -1
    keys = [(size, p, a) for p, a in zip(prompts, answers, strict=True)]
    missing = [i for i, k in enumerate(keys) if k not in memo]
    if missing:
        if len(memo) + len(missing) > _MEMO_LIMIT:
            memo.clear()
        fresh = _encode_rows(tokenizer, [prompts[i] for i in missing], [answers[i] for i in missing])
        for i, (ids, n) in zip(missing, fresh, strict=True):
            memo[keys[i]] = (tuple(ids), n)
    return [(list(ids), n) for ids, n in (memo[k] for k in keys)]


def _encode_rows(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str]) -> list[Row]:
    """`encode_rows` without the memo."""
    answer_ids = tokenizer([ANSWER_PREFIX + a for a in answers], add_special_tokens=False)["input_ids"]
    prompt_ids: list[list[int]] = [[] for _ in prompts]
    for has_bos in (False, True):
        idx = [i for i, p in enumerate(prompts) if carries_bos(tokenizer, p) == has_bos]
        if idx:
            ids = tokenizer([prompts[i] for i in idx], add_special_tokens=not has_bos)["input_ids"]
            for i, row in zip(idx, ids, strict=True):
                prompt_ids[i] = row
    rows = []
    for p_ids, a_ids, answer in zip(prompt_ids, answer_ids, answers, strict=True):
        if not a_ids:
            raise ValueError(f"answer {answer!r} encodes to no tokens")
        rows.append((p_ids + a_ids, len(p_ids)))
    return rows


def encode(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str]) -> Batch:
    """Tokenise prompt and answer separately (the answer with a leading space) and concatenate them.

    The tokenizer's special tokens (BOS) are added to the prompt unless it already starts with BOS.
    """
    return pad_rows(tokenizer, encode_rows(tokenizer, prompts, answers))

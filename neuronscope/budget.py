"""Sequence lengths against the model's context and a memory budget, checked before any work.

A scoring batch is right-padded to its longest sequence, so one 5,000-word question in a batch of 256 made every
row 5,000 tokens wide and the eager attention alone asked for tens of GB. Two guards:

- **Context**: every question + answer (or option) must fit the model's positions (`max_position_embeddings`,
  GPT-2's `n_positions`, ...). Rotary models would otherwise score past their context silently. `check_dataset`
  measures every item before anything runs and names the first one that does not fit.
- **Memory**: `forward_bytes` estimates the activations of one forward pass (eager attention scores and
  probabilities, the float32 logits and their log-softmax, the MLP); `plan_batches` keeps every batch as it was
  when it fits the budget and splits only a batch that does not, in order, into consecutive pieces that fit, each
  padded to the width the whole batch had. Ordinary data is batched exactly as before, and a split batch gives
  every item the same score bit for bit (a row's numbers depend on the padded width, not on the batch size; with
  each piece cut to its own width they moved by up to 2e-6 in log-probability on the toy). Splitting bounds the
  memory; it does not save the compute of the padding.
  Training batches cannot be split without changing the gradient sums, so there `check_training` refuses, before
  the first step, a batch size whose worst-case batch (the longest sequences together) would not fit.

The budget is NEURONSCOPE_MEMORY_GB when set, else half the memory free on the device (CUDA: the driver's free
memory; CPU: the available RAM, Linux's MemAvailable, which counts the page cache the kernel gives back). The
estimate is rough (within a small factor); it is meant to stop a 50 GB batch, not to pack memory tightly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuronscope.batching import ANSWER_PREFIX, Row, carries_bos
from neuronscope.errors import NeuronscopeError, SettingError

GIB = 1024**3
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(config: Any) -> tuple[int | None, str]:
    """The model's number of positions and the config key it came from ((None, "") when the config has none)."""
    for key in CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value, key
    return None, ""


def memory_budget(device: torch.device | str = "cpu") -> int:
    """Bytes one forward pass may use: NEURONSCOPE_MEMORY_GB, else half the free memory of `device`."""
    text = os.environ.get("NEURONSCOPE_MEMORY_GB", "")
    if text:
        try:
            gb = float(text)
        except ValueError:
            gb = float("nan")
        if not gb > 0 or gb == float("inf"):
            raise NeuronscopeError(f"NEURONSCOPE_MEMORY_GB must be a positive number of GiB, got {text!r}")
        return int(gb * GIB)
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return max(available_ram() // 2, GIB)


def available_ram(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes of RAM a new allocation can have now. Linux: MemAvailable, the free pages plus the page cache and
    other memory the kernel reclaims on demand. The free pages alone (SC_AVPHYS_PAGES) shrink as a run writes
    checkpoints, whose pages stay cached: half-way through a FaithUn-style study on SmolLM2 (24 GiB machine, two
    processes of ~7.5 GiB) they made a budget of 1.1 GiB, and the logit lens refused a 1.3 GiB batch and ended the
    run. Elsewhere the free pages; where neither exists, 16 GiB."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every OS has the available-pages count
        return 16 * GIB


@dataclass(frozen=True)
class Sizes:
    """What the activation estimate needs from a config."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    dtype_bytes: int

    @staticmethod
    def of(model: Any) -> Sizes:
        """From a Model (its HF config and parameter dtype)."""
        c = model.hf.config
        hidden = int(getattr(c, "hidden_size", 0) or 0)
        intermediate = getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None) or 4 * hidden
        dtype = next(model.hf.parameters()).dtype
        return Sizes(hidden=hidden, layers=int(getattr(c, "num_hidden_layers", 1) or 1),
                     heads=int(getattr(c, "num_attention_heads", 1) or 1), intermediate=int(intermediate),
                     vocab=int(getattr(c, "vocab_size", 0) or 0), dtype_bytes=torch.finfo(dtype).bits // 8)


def forward_bytes(s: Sizes, batch: int, width: int, train: bool = False) -> int:
    """Estimated peak activation bytes of one forward (and, with `train`, what backward keeps) for `batch`
    sequences of `width` tokens.

    Without gradients one layer's activations are alive at a time; the logits (model dtype), their float32 copy
    and log-softmax dominate at small widths, the eager attention scores and probabilities (float32 softmax) at
    large ones. Training keeps every layer's activations for the backward pass.
    """
    tokens = batch * width
    attention = 2 * batch * s.heads * width * width * 4
    mlp = 3 * tokens * s.intermediate * s.dtype_bytes
    residual = 4 * tokens * s.hidden * s.dtype_bytes
    layer = attention + mlp + residual
    logits = tokens * s.vocab * (s.dtype_bytes + 8)
    return (s.layers * layer if train else layer) + logits


Part = tuple[range, int]  # consecutive item indices, and the width they are padded to


def plan_batches(widths: Sequence[int], batch_size: int, fits: Callable[[int, int], bool],
                 names: Sequence[str] | None = None) -> list[Part]:
    """The chunks of `batch_size`, each with its widest sequence as the padding width. A chunk that `fits(n, width)`
    is kept as it is; one that does not is cut, in order, into the fewest equal pieces that fit, each still padded
    to the chunk's width: a row's result then depends only on the width, never on how many rows share its batch,
    so a split batch scores every item bit for bit as the whole one (tests/test_budget.py). A sequence that does
    not fit even alone is an error."""
    out: list[Part] = []
    for start in range(0, len(widths), batch_size):
        stop = min(start + batch_size, len(widths))
        width = max(widths[start:stop])
        n = stop - start
        while n > 0 and not fits(n, width):
            n -= 1 if n <= 8 else max(1, n // 8)  # big strides first; the exact size matters only near the end
        if n == 0:
            i = start + max(range(stop - start), key=lambda k: widths[start + k])
            who = f"{names[i]!r}" if names is not None else f"#{i}"
            raise NeuronscopeError(f"sequence {who} of {widths[i]} tokens does not fit the memory budget even "
                                   "alone; shorten it or raise NEURONSCOPE_MEMORY_GB")
        while n < stop - start and fits(n + 1, width):  # the largest piece that fits
            n += 1
        pieces = -(-(stop - start) // n)
        size = -(-(stop - start) // pieces)  # equal pieces: ceil(n_rows / pieces)
        out += [(range(i, min(i + size, stop)), width) for i in range(start, stop, size)]
    return out


def scoring_batches(model: Any, rows: Sequence[Row], batch_size: int, names: Sequence[str] | None = None
                    ) -> list[Part]:
    """`plan_batches` for no-grad scoring of encoded rows on `model`'s device."""
    sizes, budget = Sizes.of(model), memory_budget(model.device)
    return plan_batches([len(ids) for ids, _ in rows], batch_size,
                        lambda n, w: forward_bytes(sizes, n, w) <= budget, names)


def _pairs(ds: Any) -> list[tuple[str, str, str]]:
    """(name, prompt, answer) of everything a run scores or trains on: every question with its answer and each
    option, and the benign corpus."""
    out: list[tuple[str, str, str]] = []
    for split, items in [*ds.splits.items(), ("utility", ds.utility)]:
        if split != "other":  # never scored, trained on or unlearned (evaluate skips it too)
            out += _item_pairs(items, f"{split} ")
    out += [(f"benign item {b.id!r}", b.prompt, b.output) for b in ds.benign]
    return out


def _item_pairs(items: Sequence[Any], label: str = "") -> list[tuple[str, str, str]]:
    """(name, question, answer) for each question's answer and each of its options."""
    return [(f"{label}item {it.id!r}", it.question, answer) for it in items
            for answer in dict.fromkeys((it.answer, *it.options))]


def sequence_widths(tokenizer: Any, pairs: Sequence[tuple[str, str, str]]) -> list[tuple[int, int]]:
    """(prompt tokens, answer tokens) of each (name, prompt, answer), tokenised as `encode_row` does but in batches
    of distinct texts (a question is shared by its options): a dataset of 11k sequences in a fraction of a second."""
    prompts = list(dict.fromkeys(p for _, p, _ in pairs))
    answers = list(dict.fromkeys(a for _, _, a in pairs))
    p_len: dict[str, int] = {}
    for special in (True, False):  # BOS is added unless the prompt already carries it (a rendered chat template)
        group = [p for p in prompts if carries_bos(tokenizer, p) != special]
        if group:
            ids = tokenizer(group, add_special_tokens=special)["input_ids"]
            p_len.update(zip(group, map(len, ids), strict=True))
    a_ids = tokenizer([ANSWER_PREFIX + a for a in answers], add_special_tokens=False)["input_ids"] if answers else []
    a_len = dict(zip(answers, map(len, a_ids), strict=True))
    out = []
    for name, prompt, answer in pairs:
        if a_len[answer] == 0:
            raise NeuronscopeError(f"{name}: answer {answer!r} encodes to no tokens")
        out.append((p_len[prompt], a_len[answer]))
    return out


def check_context(model: Any, pairs: Sequence[tuple[str, str, str]]) -> list[int]:
    """Token counts of (name, prompt, answer) pairs; the first longer than the model's context is an error."""
    limit, key = context_length(model.hf.config)
    widths = []
    for (name, _, _), (n_prompt, n_answer) in zip(pairs, sequence_widths(model.tokenizer, pairs), strict=True):
        if limit is not None and n_prompt + n_answer > limit:
            raise NeuronscopeError(f"{name} is {n_prompt + n_answer} tokens ({n_prompt} prompt + {n_answer} answer), "
                                   f"longer than the model's context of {limit} positions ({key}); shorten it or "
                                   "leave it out")
        widths.append(n_prompt + n_answer)
    return widths


def check_dataset(model: Any, ds: Any) -> None:
    """Before any work: every item fits the model's context, and the longest fits the memory budget alone."""
    _check_pairs(model, _pairs(ds))


def check_items(model: Any, items: Sequence[Any], batch_size: int | None = None, setting: str = "batch_size",
                what: str = "an attribution batch") -> None:
    """`check_dataset` for a list of questions (attribution, the logit lens): each question with its answer and each
    option within the model's context, the longest within the memory budget alone; with `batch_size`, also the
    worst batch, costed as a training batch: attribution keeps activations for its gradient and the lens every
    layer's residual stream, and neither splits a batch. A bad batch size is a SettingError naming `setting`."""
    widths = _check_pairs(model, _item_pairs(items))
    if batch_size is not None:
        check_training(model, widths, batch_size, flag=setting, what=what)


def _check_pairs(model: Any, pairs: Sequence[tuple[str, str, str]]) -> list[int]:
    widths = check_context(model, pairs)
    if widths:
        longest = max(range(len(widths)), key=widths.__getitem__)
        sizes, budget = Sizes.of(model), memory_budget(model.device)
        if forward_bytes(sizes, 1, widths[longest]) > budget:
            raise NeuronscopeError(f"{pairs[longest][0]} is {widths[longest]} tokens: one forward pass over it "
                                   f"needs about {forward_bytes(sizes, 1, widths[longest]) / GIB:.1f} GiB, over the "
                                   f"memory budget of {budget / GIB:.1f} GiB (NEURONSCOPE_MEMORY_GB)")
    return widths


def check_training(model: Any, widths: Sequence[int], batch_size: int, flag: str = "--batch-size",
                   what: str = "a training batch") -> None:
    """The worst training batch (the `batch_size` longest sequences together) must fit the budget: a training
    batch is never split (that would change its gradient)."""
    if not widths:
        return
    worst = sorted(widths, reverse=True)[:batch_size]
    sizes, budget = Sizes.of(model), memory_budget(model.device)
    need = forward_bytes(sizes, len(worst), worst[0], train=True)
    if need > budget:
        raise SettingError(flag, lambda name: f"{what} of {len(worst)} sequences up to {worst[0]} tokens needs about "
                           f"{need / GIB:.1f} GiB of activations, over the memory budget of {budget / GIB:.1f} GiB "
                           f"(NEURONSCOPE_MEMORY_GB); lower {name}")

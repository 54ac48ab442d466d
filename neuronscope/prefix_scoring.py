"""Multiple-choice option scores with each question run once: its key/value cache is shared by its options.

Scoring a 3-option question as three (question + option) sequences runs the question's tokens three times. On the
real facts the questions are ~8 tokens and the options ~2, so two thirds of the work repeats the same prefix. Here a
question runs once, with its cache kept; the first option token's log-probability is read off the question's last
position, and the rest of each option runs on a copy of that cache.

Questions are grouped by token count, so a group has no padding to mask: every position is where it would be alone,
and the options, right-padded, need no mask either (padding only follows the tokens that are read). The result
equals the one-sequence-per-option path up to float rounding (different matrix shapes), not bit for bit, so it is
used only where `sparse_logits` already departs from the full-logits path (`shared_prefix_ok`): the toy models
keep every number they had.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformers import PreTrainedModel

from neuronscope.batching import encode_rows
from neuronscope.budget import Sizes, forward_bytes, memory_budget
from neuronscope.errors import NeuronscopeError
from neuronscope.sparse_logits import head_logprobs, sparse_ok


def shared_prefix_ok(hf: PreTrainedModel) -> bool:
    """Whether option scores may share the question's cache: the large-vocabulary path of `sparse_ok`, on a model
    whose cache can be copied row by row."""
    if not sparse_ok(hf):
        return False
    from transformers import DynamicCache

    return hasattr(DynamicCache, "batch_select_indices")


Around = Callable[[str], AbstractContextManager[object]]  # phase ("prompt" or "options") -> context of its forward


@dataclass
class PrefixChunk:
    """Equally long prompts run together, and the option rows that continue them."""

    prompt: Int[Tensor, "items width"]
    options: list[list[int]]  # answer tokens of each option row
    owner: Int[Tensor, " rows"]  # the chunk's item each row belongs to
    rows: Int[Tensor, " rows"]  # each row's place among all options laid end to end


def chunk_logprobs(hf: PreTrainedModel, chunk: PrefixChunk, around: Around | None = None) -> Float[Tensor, " rows"]:
    """log P(option | prompt) for every option row of `chunk`, on the device of its tensors.

    `around(phase)` wraps the prompts' forward ("prompt") and the options' ("options", only rows of two or more
    tokens, in row order): where hooks read or patch activations of each pass."""
    def phase(name: str) -> AbstractContextManager[object]:
        return around(name) if around is not None else contextlib.nullcontext()

    prompt, options, owner = chunk.prompt, chunk.options, chunk.owner
    device = prompt.device
    with phase("prompt"):
        out = hf.base_model(input_ids=prompt, use_cache=True)
    firsts = torch.tensor([o[0] for o in options], device=device)
    logp = head_logprobs(hf, out.last_hidden_state[:, -1][owner], firsts)
    longer = _continued_rows(options)
    if not longer:
        return logp
    width = max(len(options[r]) for r in longer) - 1
    pad = options[longer[0]][0]  # any token: padding follows every token that is read
    ids = torch.tensor([options[r][:-1] + [pad] * (width + 1 - len(options[r])) for r in longer], device=device)
    cache = out.cache
    cache.batch_select_indices(owner[torch.tensor(longer, device=device)])
    with phase("options"):
        hidden = hf.base_model(input_ids=ids, cache=cache, use_cache=True).last_hidden_state
    lengths = torch.tensor([len(options[r]) - 1 for r in longer], device=device)
    reads = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)  # position j predicts token j+1
    targets = torch.tensor([t for r in longer for t in options[r][1:]], device=device)
    rest = head_logprobs(hf, hidden[reads], targets)
    rows = torch.arange(len(longer), device=device).unsqueeze(1).expand_as(reads)[reads]
    extra = torch.zeros(len(longer), dtype=rest.dtype, device=device).index_add_(0, rows, rest)
    return logp.index_add(0, torch.tensor(longer, device=device), extra.to(logp.dtype))


def _continued_rows(options: Sequence[Sequence[int]]) -> list[int]:
    """The option rows that run past their first token (the "options" pass), in the order that pass runs them."""
    return [r for r, o in enumerate(options) if len(o) > 1]


def prefix_chunks(model, prompts: Sequence[str], options: Sequence[Sequence[str]], batch_size: int
                  ) -> tuple[list[PrefixChunk], Tensor]:
    """The chunks that score every option of every prompt (prompts grouped by token count, at most `batch_size`
    option rows each, fewer where the memory budget asks), and each option's token count, laid end to end."""
    if batch_size < 1:
        raise NeuronscopeError(f"batch size must be at least 1, got {batch_size}")
    flat_prompts = [p for p, opts in zip(prompts, options, strict=True) for _ in opts]
    flat_options = [o for opts in options for o in opts]
    rows = encode_rows(model.tokenizer, flat_prompts, flat_options)
    starts, at = [], 0
    for opts in options:
        starts.append(at)
        at += len(opts)
    lengths = torch.tensor([len(ids) - n for ids, n in rows])
    groups: dict[int, list[int]] = defaultdict(list)  # prompt token count -> items
    for i, start in enumerate(starts):
        if options[i]:
            groups[rows[start][1]].append(i)
    sizes, budget = Sizes.of(model), memory_budget(model.device)
    chunks = []
    for width in sorted(groups):
        items = groups[width]
        at = 0
        while at < len(items):
            part, n_rows = [], 0
            while at < len(items) and (not part or n_rows + len(options[items[at]]) <= batch_size):
                part.append(items[at])
                n_rows += len(options[items[at]])
                at += 1
            widest = width + max(len(rows[starts[i] + k][0]) - width for i in part for k in range(len(options[i])))
            while len(part) > 1 and forward_bytes(sizes, n_rows, widest) > budget:
                at -= 1
                n_rows -= len(options[part.pop()])
            chunks.append(PrefixChunk(
                prompt=torch.tensor([rows[starts[i]][0][:width] for i in part], device=model.device),
                options=[rows[starts[i] + k][0][width:] for i in part for k in range(len(options[i]))],
                owner=torch.tensor([j for j, i in enumerate(part) for _ in options[i]], device=model.device),
                rows=torch.tensor([starts[i] + k for i in part for k in range(len(options[i]))])))
    return chunks, lengths


@torch.no_grad()
def shared_prefix_logprobs(model, prompts: Sequence[str], options: Sequence[Sequence[str]], batch_size: int
                           ) -> tuple[Float[Tensor, " rows"], Tensor]:
    """log P(option | prompt) of every option of every prompt, laid end to end, and each option's token count.

    `batch_size` bounds the option rows of one forward, as in `scoring` (a group over the memory budget runs in
    fewer rows)."""
    chunks, lengths = prefix_chunks(model, prompts, options, batch_size)
    result = torch.zeros(len(lengths), dtype=torch.float32)
    for chunk in chunks:
        result[chunk.rows] = chunk_logprobs(model.hf, chunk).cpu().to(result.dtype)
    return result, lengths


__all__ = ["PrefixChunk", "chunk_logprobs", "prefix_chunks", "shared_prefix_logprobs", "shared_prefix_ok"]

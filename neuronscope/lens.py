"""Logit lens: does each layer's residual stream already prefer the gold answer over a distractor?

At every layer l the residual stream after block l (TransformerBridge hook ``blocks.{l}.hook_resid_post``) is
read at the answer-predicting position, passed through the model's final norm and unembedding, and the gold
answer's log-probability is compared with that of one distractor drawn (seeded, per item) from the item's false
options. Accuracy per layer is how often gold wins (a tie counts one half), so chance is 0.5. A model that has
*erased* a fact sits near 0.5 in every layer; one that *hides* it falls below 0.5 in late layers, because it
still tells the answer apart and pushes it down (docs/method.md section 7). Choices are parameters (docs/lens.md):

- ``position``: which prompt token's residual is read; -1, the last prompt token, is the one whose logits
  predict the first answer token.
- ``final_norm``: apply the final norm before the unembedding (True; the last layer then equals the model's own
  logits) or unembed the raw residual (False).
- ``answer_tokens``: "first" compares the answers' first tokens at `position`; "sum" / "mean" teacher-force the
  whole answer and add (or average) the lens log-probabilities of all its tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from neuronscope.batching import encode
from neuronscope.budget import check_items
from neuronscope.data.schema import QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.families import spec_for
from neuronscope.models.families.generic import NORM_NAMES
from neuronscope.models.handle import Model

AnswerTokens = Literal["first", "sum", "mean"]
ANSWER_TOKENS: tuple[str, ...] = ("first", "sum", "mean")
CHANCE = 0.5


def final_norm_module(model: Model) -> nn.Module | None:
    """The final norm applied before the unembedding, where the model's family spec says it is."""
    return spec_for(model).final_norm_module(model.hf)


def project(model: Model, resid: Float[Tensor, "... d_model"], final_norm: bool = True
            ) -> Float[Tensor, "... vocab"]:
    """Residual -> logits through the (optional) final norm, the output embedding and any final softcap."""
    if final_norm:
        norm = final_norm_module(model)
        if norm is None:
            raise NeuronscopeError(
                f"{model.source}: no final norm found on {type(model.hf).__name__} (a model type without a family "
                f"spec is searched for {', '.join(NORM_NAMES)}); run the lens without the final norm")
        resid = norm(resid)
    unembed = model.hf.get_output_embeddings()
    if unembed is None:
        raise NeuronscopeError(f"{model.source}: {type(model.hf).__name__} has no output embedding")
    logits = unembed(resid)
    cap = spec_for(model).softcap_value(model.hf.config)  # Gemma 2 caps its logits
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


@torch.no_grad()
def residual_stream(model: Model, input_ids: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer batch pos d_model"]:
    """The residual stream after every block (the family spec's hook, ``blocks.{l}.hook_resid_post``), stacked,
    from one TransformerBridge forward."""
    bridge = model.bridge
    spec = spec_for(model)
    names = [spec.resid_hook_name(layer) for layer in range(bridge.cfg.n_layers)]
    wanted = set(names)
    _, cache = bridge.run_with_cache(input_ids.to(model.device), names_filter=lambda n: n in wanted)
    return torch.stack([cache[n] for n in names])


@torch.no_grad()
def lens_logits(model: Model, input_ids: Int[Tensor, "batch pos"], final_norm: bool = True
                ) -> Float[Tensor, "layer batch pos vocab"]:
    """Lens logits at every layer and position; for small inputs (notebooks, checks): it holds all vocab logits."""
    return project(model, residual_stream(model, input_ids), final_norm)


def pick_distractors(items: Sequence[QAItem], seed: int = 0) -> list[str]:
    """One false option per item, drawn from a generator seeded by (seed, item id).

    Seeding per item means an item gets the same distractor whatever subset it is scored in, so the lens of a
    base and an unlearned model compare the very same pairs. Items without options (TOFU's open questions) draw
    from the other items' gold answers instead: the same pairs for the same item list.
    """
    answers = sorted({it.answer for it in items})
    out = []
    for it in items:
        false = [o for o in it.options if o != it.answer] or [a for a in answers if a != it.answer]
        if not false:
            raise NeuronscopeError(
                f"item {it.id!r} has no false option and no other item has a different answer; the lens needs a "
                "distractor to compare the gold answer with")
        out.append(random.Random(f"{seed}:{it.id}").choice(false))
    return out


@torch.no_grad()
def _score_layers(model: Model, input_ids: Int[Tensor, "batch pos"], rows: Int[Tensor, " k"],
                  positions: Int[Tensor, " k"], targets: Int[Tensor, "k t"], final_norm: bool
                  ) -> Float[Tensor, "layer k t"]:
    """Lens log-probabilities of `targets` at (row, position) pairs, layer by layer (one vocab slice at a time)."""
    resid = residual_stream(model, input_ids)[:, rows.to(model.device), positions.to(model.device)]
    out = []
    for layer_resid in resid:
        logp = torch.log_softmax(project(model, layer_resid, final_norm).float(), dim=-1)
        out.append(logp.gather(-1, targets.to(logp.device)).cpu())
    return torch.stack(out)


def _teacher_forced(model: Model, prompts: list[str], answers: list[str], final_norm: bool, mean: bool
                    ) -> Float[Tensor, "layer batch"]:
    """Per layer, the summed (or mean) lens log-probability of each whole answer, fed token by token."""
    batch = encode(model.tokenizer, prompts, answers)
    predicts = batch.answer_mask[:, 1:]  # position j predicts answer token j + 1
    rows, positions = predicts.nonzero(as_tuple=True)
    targets = batch.input_ids[rows, positions + 1].unsqueeze(-1)
    token_logp = _score_layers(model, batch.input_ids, rows, positions, targets, final_norm)[..., 0]
    total = torch.zeros(token_logp.shape[0], len(prompts)).index_add_(1, rows, token_logp)
    return total / predicts.sum(-1) if mean else total


def _first_token(model: Model, prompts: list[str], golds: list[str], distractors: list[str], position: int,
                 final_norm: bool, ids: list[str]) -> tuple[Tensor, Tensor]:
    """Per layer, the lens log-probabilities of the gold and distractor first tokens at `position`."""
    gold = encode(model.tokenizer, prompts, golds)
    dist = encode(model.tokenizer, prompts, distractors)
    n_prompt = gold.prompt_mask.sum(-1)
    pos = n_prompt + position if position < 0 else torch.full_like(n_prompt, position)
    for i, (p, n) in enumerate(zip(pos.tolist(), n_prompt.tolist(), strict=True)):
        if not 0 <= p < n:
            raise NeuronscopeError(f"position {position} lies outside the {n}-token prompt of item {ids[i]!r}")
    rows = torch.arange(len(prompts))
    targets = torch.stack([gold.input_ids[rows, n_prompt], dist.input_ids[rows, n_prompt]], dim=-1)
    scores = _score_layers(model, gold.input_ids, rows, pos, targets, final_norm)  # answers never precede pos
    return scores[..., 0], scores[..., 1]


def logit_lens(model: Model, items: Sequence[QAItem], *, seed: int = 0, position: int = -1,
               final_norm: bool = True, answer_tokens: str = "first", batch_size: int = 64,
               per_item: bool = False) -> pd.DataFrame:
    """Gold-versus-distractor accuracy of the logit lens at every layer.

    Returns one row per layer (``layer, accuracy, n, ties, p_gold, p_distractor``; p_* are mean lens
    probabilities, or mean exp of the summed / mean log-probabilities for the teacher-forced modes), or with
    ``per_item=True`` one row per (layer, item): ``layer, item, gold, distractor, logp_gold, logp_distractor,
    win`` (win is 1, 0.5 for a tie, 0). Ties happen in "first" mode when both answers start with the same token.
    """
    if answer_tokens not in ANSWER_TOKENS:
        raise NeuronscopeError(f"answer_tokens must be one of {', '.join(ANSWER_TOKENS)}, got {answer_tokens!r}")
    if answer_tokens != "first" and position != -1:
        raise NeuronscopeError(
            f"position {position} applies to answer_tokens='first' only; '{answer_tokens}' reads every "
            "answer-predicting position")
    if not items:
        raise NeuronscopeError("no items to run the logit lens on")
    if batch_size < 1:
        raise NeuronscopeError(f"batch_size must be at least 1, got {batch_size}")
    check_items(model, items, batch_size, what="a logit-lens batch")  # context and memory, before any forward
    distractors = pick_distractors(items, seed)
    gold_parts, dist_parts = [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        prompts, golds = [it.question for it in chunk], [it.answer for it in chunk]
        dists = distractors[start:start + batch_size]
        if answer_tokens == "first":
            g, d = _first_token(model, prompts, golds, dists, position, final_norm, [it.id for it in chunk])
        else:
            g = _teacher_forced(model, prompts, golds, final_norm, answer_tokens == "mean")
            d = _teacher_forced(model, prompts, dists, final_norm, answer_tokens == "mean")
        gold_parts.append(g)
        dist_parts.append(d)
    logp_gold, logp_dist = torch.cat(gold_parts, dim=1), torch.cat(dist_parts, dim=1)  # (layer, item)
    win = (logp_gold > logp_dist).double() + 0.5 * (logp_gold == logp_dist).double()
    n_layers = logp_gold.shape[0]
    table = pd.DataFrame({
        "layer": [layer for layer in range(n_layers) for _ in items],
        "item": [it.id for _ in range(n_layers) for it in items],
        "gold": [it.answer for _ in range(n_layers) for it in items],
        "distractor": distractors * n_layers,
        "logp_gold": logp_gold.flatten().double().numpy(),
        "logp_distractor": logp_dist.flatten().double().numpy(),
        "win": win.flatten().numpy(),
    })
    return table if per_item else summarize_lens(table)


def wins_by_layer(per_item: pd.DataFrame) -> dict[str, list[float]]:
    """{layer (as a string key): per-item wins in item order}: what a paired comparison of two models needs."""
    return {str(layer): g["win"].tolist() for layer, g in per_item.groupby("layer", sort=True)}


def summarize_lens(per_item: pd.DataFrame) -> pd.DataFrame:
    """Per-layer accuracy from per-item lens rows (extra grouping columns such as ``model`` are kept)."""
    keys = [c for c in per_item.columns if c not in
            ("layer", "item", "gold", "distractor", "logp_gold", "logp_distractor", "win")] + ["layer"]
    frame = per_item.assign(p_gold=np.exp(per_item["logp_gold"]), p_distractor=np.exp(per_item["logp_distractor"]),
                            tie=per_item["win"] == 0.5)
    out = frame.groupby(keys, sort=True).agg(
        accuracy=("win", "mean"), n=("win", "size"), ties=("tie", "sum"),
        p_gold=("p_gold", "mean"), p_distractor=("p_distractor", "mean")).reset_index()
    out["ties"] = out["ties"].astype(int)
    return out

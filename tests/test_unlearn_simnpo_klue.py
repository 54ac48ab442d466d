"""SimNPO and KLUE: losses against hand computations, KLUE's localisation and gradient mask, both reaching the
stop threshold on the tiny world, and their plans asked of the registry."""

from __future__ import annotations

import math

import pytest
import torch
from unlearn_helpers import hand_answer_logps, hand_mean_nll

from neuronscope.errors import NeuronscopeError
from neuronscope.plan import DataCounts, plan_unlearn, shape_from_config
from neuronscope.unlearn import METHODS, UnlearnConfig, unlearn
from neuronscope.unlearn.base import StepBatch, encode_items
from neuronscope.unlearn.klue import ffn_blocks, select_neurons

CHANCE = 1 / 3 + 1e-6


@pytest.fixture(scope="module")
def uneven(tiny_trained, tiny_world) -> StepBatch:
    """Forget questions with answers of 1, 2 and 3 tokens (world words appended), so |y| differs between rows."""
    model = tiny_trained.model
    f = tiny_world.items("forget", "base")[:3]
    answers = [" ".join([it.answer] + [o for o in it.options if o != it.answer][:i]) for i, it in enumerate(f)]
    r = tiny_world.items("retain", "base")[:2]
    return StepBatch(encode_items(model, f, answers), f, encode_items(model, r), r, (0, 1, 2))


def test_simnpo_loss_by_hand(tiny_trained, tiny_world, uneven):
    model = tiny_trained.model.clone()
    cfg = UnlearnConfig(retain_weight=0.7, simnpo_beta=1.7, simnpo_gamma=0.4)
    loss, terms = METHODS["simnpo"](model, tiny_world, cfg).loss(uneven, 1)
    rows = hand_answer_logps(model.hf(input_ids=uneven.forget.input_ids).logits, uneven.forget)
    assert sorted(len(r) for r in rows) == [1, 2, 3]  # the normalisation is exercised
    beta, gamma = 1.7, 0.4
    # -(2/beta) mean log sigmoid(-(beta/|y|) log p - gamma), with -log sigmoid(z) = log(1 + e^-z)
    term = sum((2 / beta) * math.log1p(math.exp((beta / len(row)) * sum(t.item() for t in row) + gamma))
               for row in rows) / len(rows)
    nll_r = hand_mean_nll(model.hf(input_ids=uneven.retain.input_ids).logits, uneven.retain).item()
    assert terms["simnpo"] == pytest.approx(term, rel=1e-5)
    assert loss.item() == pytest.approx(term + 0.7 * nll_r, rel=1e-5)
    unnormalised = sum((2 / beta) * math.log1p(math.exp(beta * sum(t.item() for t in row) + gamma))
                       for row in rows) / len(rows)
    assert abs(unnormalised - term) > 1e-3  # a loss without the division would fail the check above


def test_simnpo_keeps_no_reference(tiny_trained, tiny_world):
    method = METHODS["simnpo"](tiny_trained.model.clone(), tiny_world, UnlearnConfig())
    assert getattr(method, "ref", None) is None and not METHODS["simnpo"].needs_reference
    with pytest.raises(NeuronscopeError, match="simnpo_beta must be a positive number"):
        UnlearnConfig(simnpo_beta=-1.0).check()


def test_klue_selects_top_share_of_retain_contrasted_score():
    score = torch.tensor([[0.5, -1.0, 2.0, 0.1], [3.0, 0.0, -0.2, 1.0]])
    chosen = select_neurons(score, 0.25)  # 2 of 8
    assert chosen.tolist() == [[False, False, True, False], [True, False, False, False]]
    assert select_neurons(score, 0.01).sum() == 1  # never empty


def test_klue_attribution_and_mask(tiny_trained, tiny_world):
    model = tiny_trained.model.clone()
    cfg = UnlearnConfig(klue_fraction=0.1, klue_superficial=0.5, batch_size=4)
    method = METHODS["klue"](model, tiny_world, cfg)
    blocks = ffn_blocks(model)
    n = sum(b.width for b in blocks)
    assert int(method.chosen.sum()) == round(0.1 * n)
    # the score by hand on the first block: one forward per item, gradient of P(y|x) w.r.t. the down input
    layer0 = blocks[0].output

    def per_item(items):
        acc = torch.zeros(blocks[0].width, dtype=torch.float64)
        for it in items:
            b = encode_items(model, [it])
            kept = []
            h = layer0.register_forward_pre_hook(lambda _m, a, kept=kept: kept.append(a[0]))
            logits = model.hf(input_ids=b.input_ids).logits
            h.remove()
            p = torch.stack([t.exp() for t in hand_answer_logps(logits, b)[0]]).prod()
            (g,) = torch.autograd.grad(p, kept)
            acc += (kept[0] * g).sum((0, 1)).double()
        return acc / len(items)

    hand = per_item(tiny_world.items("forget", "base")) - 0.5 * per_item(tiny_world.items("retain", "base"))
    assert torch.allclose(method.score[0], hand, rtol=1e-4, atol=1e-8)
    # one step: only the chosen units' rows and columns move, the output bias never
    before = {n_: p.detach().clone() for n_, p in model.hf.named_parameters()}
    result = unlearn(model, tiny_world, "klue", UnlearnConfig(lr=1e-2, max_steps=1, threshold=0.0, rs_every=0,
                                                               eval_kinds=("base",), klue_fraction=0.1))
    chosen = METHODS["klue"](tiny_trained.model.clone(), tiny_world, UnlearnConfig(klue_fraction=0.1)).chosen
    moved_units = set()
    for name, p in model.hf.named_parameters():
        d = (p.detach() - before[name]).abs()
        if "mlp" not in name:
            assert d.max() == 0, name
            continue
        layer = int(name.split(".")[2])
        c = chosen[layer]
        if d.dim() == 2 and d.shape[1] == c.numel() and d.shape[0] != c.numel():  # output projection [d, I]
            assert d[:, ~c].max() == 0 and d[:, c].max() > 0
            moved_units |= {(layer, i) for i in c.nonzero().flatten().tolist()}
        elif d.shape[0] == c.numel():  # input projections [I, d] and their biases
            assert d[~c].max() == 0 and d[c].max() > 0, name
        else:
            assert d.max() == 0, name
    assert moved_units and result.steps == 1
    # the gradient hooks are gone after the run: a later fine-tune (an attack) trains every entry
    model.hf.zero_grad()
    b = encode_items(model, tiny_world.items("forget", "base")[:2])
    from neuronscope.training import answer_nll

    answer_nll(model.hf(input_ids=b.input_ids).logits, b).backward()
    w = blocks[0].output.weight
    assert w.grad[:, ~chosen[0]].abs().sum() > 0


@pytest.mark.parametrize("method", ["simnpo", "klue"])
def test_reaches_the_stop_threshold(tiny_trained, tiny_world, method):
    cfg = UnlearnConfig(lr=3e-3, max_steps=200, batch_size=8, rs_every=0, eval_kinds=("base",))
    r = unlearn(tiny_trained.model.clone(), tiny_world, method, cfg)
    assert r.reached and r.fs <= CHANCE and r.steps < cfg.max_steps, (r.steps, r.fs)


def test_planned_from_the_registry(tiny_ckpt):
    from neuronscope.models.handle import load_model

    model = load_model(tiny_ckpt, bridge=False)
    s = shape_from_config(model.hf.config)
    counts = DataCounts(forget=6, retain=6, rs=18, evaluated=100, options=3, seq_len=12)
    rows = {m: {item: (b, how) for _, item, b, how in plan_unlearn(s, torch.float32, m, 8, counts, 50).memory}
            for m in ("gd", "simnpo", "klue", "npo")}
    assert "reference copy" not in rows["simnpo"] and "reference copy" in rows["npo"]
    assert rows["simnpo"]["activations"] == rows["gd"]["activations"]  # forget + retain sequences
    mlp = sum(p.numel() for n, p in model.hf.named_parameters() if ".mlp." in n)
    assert rows["klue"]["gradients"][0] == mlp * 4  # float32: every MLP parameter held by the optimiser
    counted = {what: n for what, n, _ in plan_unlearn(s, torch.float32, "klue", 4, counts, 50).counts}
    assert counted["unlearn: forward + backward passes before training"] == 2 + 2  # 6 forget, 6 retain, batches of 4
    assert not any("before training" in what for what, _, _ in plan_unlearn(s, torch.float32, "gd", 4, counts,
                                                                              50).counts)
    with pytest.raises(NeuronscopeError, match="unknown method 'forgetall'"):
        plan_unlearn(s, torch.float32, "forgetall", 8, counts, 50)
    with pytest.raises(NeuronscopeError, match="klue_fraction must lie in"):
        plan_unlearn(s, torch.float32, "klue", 8, counts, 50, settings={"klue_fraction": 0.0})

"""Each method's loss against a hand computation on a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from unlearn_helpers import hand_mean_nll, hand_seq_logp

from neuronscope.unlearn import METHODS, UnlearnConfig
from neuronscope.unlearn.base import StepBatch, encode_items
from neuronscope.unlearn.dpo import resolve_refusal

CFG = UnlearnConfig(beta=0.3, retain_weight=0.7, rmu_c=5.0, rmu_alpha=3.0, rmu_trainable=1, lambda_=10.0)


@pytest.fixture(scope="module")
def model(tiny_trained):
    return tiny_trained.model.clone()


@pytest.fixture(scope="module")
def sb(model, tiny_world) -> StepBatch:
    f = tiny_world.items("forget", "base")[:3]
    r = tiny_world.items("retain", "base")[:2]
    return StepBatch(encode_items(model, f), f, encode_items(model, r), r, (0, 1, 2))


def _perturb(model, seed: int = 0, scale: float = 0.02) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.hf.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def test_registry_has_every_method():
    assert set(METHODS) == {"ga", "gd", "dpo", "npo", "rmu", "ssiuu", "ssiuu-neuron", "ssiuu-anchor", "klue", "simnpo"}


def test_ga_loss(model, tiny_world, sb):
    loss, terms = METHODS["ga"](model, tiny_world, CFG).loss(sb, 1)
    expected = -hand_mean_nll(model.hf(input_ids=sb.forget.input_ids).logits, sb.forget)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["loss"] == pytest.approx(loss.item())


@pytest.mark.parametrize("name", ["gd", "ssiuu", "ssiuu-anchor", "ssiuu-neuron"])
def test_gd_loss_and_first_ssiuu_step_is_plain_gd(model, tiny_world, sb, name):
    loss, terms = METHODS[name](model, tiny_world, CFG).loss(sb, 1)
    hf = model.hf
    expected = (-hand_mean_nll(hf(input_ids=sb.forget.input_ids).logits, sb.forget)
                + CFG.retain_weight * hand_mean_nll(hf(input_ids=sb.retain.input_ids).logits, sb.retain))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert terms.get("reg", 0.0) == 0.0


def test_npo_loss(tiny_trained, tiny_world, sb):
    model = tiny_trained.model.clone()
    method = METHODS["npo"](model, tiny_world, CFG)  # the reference is frozen here
    ref_logp = hand_seq_logp(model.hf(input_ids=sb.forget.input_ids).logits, sb.forget)
    _perturb(model)
    loss, _ = method.loss(sb, 1)
    logp = hand_seq_logp(model.hf(input_ids=sb.forget.input_ids).logits, sb.forget)
    b = CFG.beta
    npo = (2 / b) * sum(math.log1p(math.exp(b * (lp - r))) for lp, r in
                        zip(logp.tolist(), ref_logp.tolist(), strict=True)) / len(logp)
    nll_r = hand_mean_nll(model.hf(input_ids=sb.retain.input_ids).logits, sb.retain).item()
    assert logp.mean().item() != pytest.approx(ref_logp.mean().item())  # the perturbation mattered
    assert loss.item() == pytest.approx(npo + CFG.retain_weight * nll_r, rel=1e-4)


def test_dpo_loss_and_refusal(tiny_trained, tiny_world, sb):
    model = tiny_trained.model.clone()
    # The toy vocabulary lacks the paper's refusal words, so the eos token stands in (documented).
    assert resolve_refusal(model, CFG.refusal) == model.tokenizer.eos_token
    assert resolve_refusal(model, "the") == "the"
    method = METHODS["dpo"](model, tiny_world, CFG)
    win = encode_items(model, sb.forget_items, [model.tokenizer.eos_token] * 3)
    assert win.input_ids[win.answer_mask].tolist() == [model.tokenizer.eos_token_id] * 3

    def logps():
        return (hand_seq_logp(model.hf(input_ids=win.input_ids).logits, win),
                hand_seq_logp(model.hf(input_ids=sb.forget.input_ids).logits, sb.forget))

    ref_w, ref_l = logps()
    _perturb(model, seed=1)
    loss, _ = method.loss(sb, 1)
    w, lo = logps()
    dpo = sum(-math.log(1 / (1 + math.exp(-CFG.beta * ((a - b) - (c - d)))))
              for a, b, c, d in zip(w.tolist(), ref_w.tolist(), lo.tolist(), ref_l.tolist(), strict=True)) / 3
    nll_r = hand_mean_nll(model.hf(input_ids=sb.retain.input_ids).logits, sb.retain).item()
    assert loss.item() == pytest.approx(dpo + CFG.retain_weight * nll_r, rel=1e-4)


def test_rmu_loss_and_trainable_subset(tiny_trained, tiny_world, sb):
    model = tiny_trained.model.clone()
    method = METHODS["rmu"](model, tiny_world, CFG)
    layer = method.layer
    assert layer == model.hf.config.num_hidden_layers // 2
    assert method.control.norm().item() == pytest.approx(CFG.rmu_c, rel=1e-5)
    names = {id(p): n for n, p in model.hf.named_parameters()}
    assert {names[id(p)].split(".mlp.")[0] for p in method.parameters()} == {f"model.layers.{layer}"}

    def block_out(batch):  # independent route: a forward hook on the decoder layer itself
        out = {}
        h = model.hf.model.layers[layer].register_forward_hook(
            lambda mod, inp, o: out.__setitem__("h", o[0] if isinstance(o, tuple) else o))
        model.hf(input_ids=batch.input_ids)
        h.remove()
        return out["h"]

    ref_r = block_out(sb.retain).detach()
    _perturb(model, seed=2)
    loss, _ = method.loss(sb, 1)

    def mse(h, target, batch):
        rows = [((h[b, k] - target[b, k] if target.dim() == 3 else h[b, k] - target) ** 2).mean()
                for b in range(h.shape[0]) for k in range(h.shape[1]) if batch.token_mask[b, k]]
        return torch.stack(rows).mean()

    expected = mse(block_out(sb.forget), method.control, sb.forget) \
        + CFG.rmu_alpha * mse(block_out(sb.retain), ref_r, sb.retain)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_nll_helper_matches_torch(model, sb):
    logits = model.hf(input_ids=sb.forget.input_ids).logits
    ids = sb.forget.input_ids[:, 1:][sb.forget.answer_mask[:, 1:]]
    ref = F.cross_entropy(logits[:, :-1][sb.forget.answer_mask[:, 1:]], ids)
    assert hand_mean_nll(logits, sb.forget).item() == pytest.approx(ref.item(), rel=1e-5)

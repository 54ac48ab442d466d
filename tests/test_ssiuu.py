"""Ssiuu's regulariser: its gradient is 2 (A_t - A_{t-1}) g on the parameters with A_t < 0 and 0 elsewhere."""

from __future__ import annotations

import pytest
import torch
from unlearn_helpers import hand_mean_nll, hand_prob_grads

from neuronscope.attribution.parameters import attribution_with_grad, parameter_attribution
from neuronscope.unlearn import METHODS, UnlearnConfig
from neuronscope.unlearn.base import StepBatch, encode_items
from neuronscope.unlearn.ssiuu import negative_attribution_regulariser
from neuronscope.unlearn.ssiuu_neuron import neuron_regulariser, pooled_neuron_attribution

LAM = 50.0


@pytest.fixture(scope="module")
def batches(tiny_trained, tiny_world) -> tuple[StepBatch, StepBatch]:
    m = tiny_trained.model
    f, r = tiny_world.items("forget", "base"), tiny_world.items("retain", "base")
    return (StepBatch(encode_items(m, f[:3]), f[:3], encode_items(m, r[:2]), r[:2], (0, 1, 2)),
            StepBatch(encode_items(m, f[3:6]), f[3:6], encode_items(m, r[2:4]), r[2:4], (3, 4, 5)))


def _perturb(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.hf.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


def test_parameter_attribution_is_phi_times_grad_of_probability(tiny_trained, batches):
    model = tiny_trained.model.clone()
    sb = batches[0]
    a = parameter_attribution(model, sb.forget)
    names, params = zip(*model.hf.named_parameters(), strict=True)
    g = hand_prob_grads(model.hf, sb.forget, list(params))
    for n, p, gi in zip(names, params, g, strict=True):
        want = p.detach() * gi
        torch.testing.assert_close(a[n], want, rtol=1e-3, atol=1e-4 * want.abs().max().item() + 1e-12)


def test_regulariser_gradient_alone_is_exact_on_selected_and_zero_elsewhere():
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(50, generator=gen, requires_grad=True)
    g = torch.randn(50, generator=gen)
    a_prev = torch.randn(50, generator=gen)
    reg = negative_attribution_regulariser(attribution_with_grad([phi], [g]), [a_prev])
    (grad,) = torch.autograd.grad(reg, [phi])
    a_t = phi.detach() * g
    sel = a_t < 0
    assert 0 < sel.sum() < 50
    assert reg.item() == pytest.approx(((a_prev - a_t)[sel] ** 2).sum().item(), rel=1e-6)
    torch.testing.assert_close(grad[sel], (2 * (a_t - a_prev) * g)[sel])
    assert (grad[~sel] == 0).all()


def test_ssiuu_step_gradient_is_gd_plus_lambda_times_2_dA_g(tiny_trained, tiny_world, batches):
    model = tiny_trained.model.clone()
    method = METHODS["ssiuu"](model, tiny_world, UnlearnConfig(lambda_=LAM))
    params = list(model.hf.parameters())
    sb1, sb2 = batches
    a_prev = [p.detach() * g for p, g in zip(params, hand_prob_grads(model.hf, sb1.forget, params), strict=True)]

    loss1, terms1 = method.loss(sb1, 1)  # first step: no regulariser, gradient = GD's
    assert terms1["reg"] == 0.0
    gd1 = (-hand_mean_nll(model.hf(input_ids=sb1.forget.input_ids).logits, sb1.forget)
           + hand_mean_nll(model.hf(input_ids=sb1.retain.input_ids).logits, sb1.retain))
    for x, y in zip(torch.autograd.grad(loss1, params), torch.autograd.grad(gd1, params), strict=True):
        torch.testing.assert_close(x, y.float(), rtol=1e-4, atol=1e-7)

    _perturb(model, seed=3)  # stands in for the optimiser step
    loss2, terms2 = method.loss(sb2, 2)
    grads = torch.autograd.grad(loss2, params)
    gd2 = (-hand_mean_nll(model.hf(input_ids=sb2.forget.input_ids).logits, sb2.forget)
           + hand_mean_nll(model.hf(input_ids=sb2.retain.input_ids).logits, sb2.retain))
    gd_grads = torch.autograd.grad(gd2, params)
    g2 = hand_prob_grads(model.hf, sb2.forget, params)
    reg_hand = 0.0
    n_sel = 0
    for p, tot, gd, g, prev in zip(params, grads, gd_grads, g2, a_prev, strict=True):
        a_t = p.detach() * g
        sel = a_t < 0
        n_sel += int(sel.sum())
        reg_hand += float(((prev - a_t)[sel] ** 2).sum())
        expected = gd.float() + LAM * 2 * (a_t - prev) * g * sel
        scale = expected.abs().max().item() + 1e-12
        torch.testing.assert_close(tot, expected, rtol=1e-3, atol=1e-4 * scale)
    assert n_sel > 0
    assert terms2["reg"] == pytest.approx(reg_hand, rel=1e-3)
    assert terms2["reg"] > 0


def test_relative_lambda_fixes_weight_at_first_active_step(tiny_trained, tiny_world, batches):
    model = tiny_trained.model.clone()
    method = METHODS["ssiuu"](model, tiny_world, UnlearnConfig(lambda_=0.5, lambda_relative=True))
    _, t1 = method.loss(batches[0], 1)
    _perturb(model, seed=4)
    _, t2 = method.loss(batches[1], 2)
    assert t2["lambda"] * t2["reg"] == pytest.approx(0.5, rel=1e-6)
    _perturb(model, seed=5)
    _, t3 = method.loss(batches[0], 3)
    assert t3["lambda"] == t2["lambda"]


def test_anchor_compares_with_original_model_on_same_batch(tiny_trained, tiny_world, batches):
    model = tiny_trained.model.clone()
    params = list(model.hf.parameters())
    sb = batches[1]
    a0 = [p.detach() * g for p, g in zip(params, hand_prob_grads(model.hf, sb.forget, params), strict=True)]
    method = METHODS["ssiuu-anchor"](model, tiny_world, UnlearnConfig(lambda_=LAM))
    _, t1 = method.loss(sb, 1)
    assert t1["reg"] == pytest.approx(0.0, abs=1e-12)  # same parameters, same batch
    _perturb(model, seed=6)
    for got, want in zip(method.comparison(sb, params), a0, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * want.abs().max().item() + 1e-12)
    _, t2 = method.loss(sb, 2)
    g = hand_prob_grads(model.hf, sb.forget, params)
    reg = sum(float(((w - p.detach() * gi)[(p.detach() * gi) < 0] ** 2).sum())
              for p, gi, w in zip(params, g, a0, strict=True))
    assert t2["reg"] == pytest.approx(reg, rel=1e-3)


def test_neuron_attribution_matches_hf_hook_route(tiny_trained, tiny_world, batches):
    model = tiny_trained.model.clone()
    method = METHODS["ssiuu-neuron"](model, tiny_world, UnlearnConfig(lambda_=LAM))
    sb = batches[0]
    logits, acts = method.forward_with_acts(sb)
    from neuronscope.attribution.parameters import answer_probability_sum
    g = torch.autograd.grad(answer_probability_sum(logits, sb.forget), acts)
    a = pooled_neuron_attribution(acts, list(g), sb.forget.token_mask)
    # independent route: a plain torch hook on the last layer's MLP down projection of the HF model
    last = model.hf.config.num_hidden_layers - 1
    kept = {}
    h = model.hf.model.layers[last].mlp.down_proj.register_forward_hook(lambda m, i, o: kept.__setitem__("o", o))
    logits_hf = model.hf(input_ids=sb.forget.input_ids).logits
    h.remove()
    (go,) = torch.autograd.grad(answer_probability_sum(logits_hf, sb.forget), [kept["o"]])
    per = (kept["o"] * go * sb.forget.token_mask.unsqueeze(-1)).sum(1).mean(0)
    idx = method.hooks.index(f"blocks.{last}.mlp.out.hook_out")
    start = sum(x[0, 0].numel() for x in acts[:idx])
    want = per.detach()
    torch.testing.assert_close(a[start:start + per.numel()], want, rtol=1e-3, atol=1e-4 * want.abs().max().item())
    assert a.numel() == sum(x[0, 0].numel() for x in acts)


def test_neuron_regulariser_is_norm_on_negative_neurons():
    a_t = torch.tensor([-1.0, 2.0, -3.0, 0.5], requires_grad=True)
    prev = torch.tensor([0.0, 0.0, 1.0, 0.0])
    reg = neuron_regulariser(a_t, prev)
    assert reg.item() == pytest.approx((1 + 16) ** 0.5)
    (grad,) = torch.autograd.grad(reg, [a_t])
    torch.testing.assert_close(grad, torch.tensor([-1.0, 0.0, -4.0, 0.0]) / 17 ** 0.5)
    zero = neuron_regulariser(a_t, a_t.detach())
    (gz,) = torch.autograd.grad(zero, [a_t])
    assert torch.isfinite(gz).all() and zero.item() == 0


def test_lambda_defaults_per_variant(tiny_trained, tiny_world):
    model = tiny_trained.model.clone()
    assert METHODS["ssiuu"](model, tiny_world, UnlearnConfig()).lam == 1e3
    assert METHODS["ssiuu-anchor"](model, tiny_world, UnlearnConfig()).lam == 1e2
    assert METHODS["ssiuu"](model, tiny_world, UnlearnConfig(lambda_relative=True)).lambda_ == 100.0
    assert METHODS["ssiuu"](model, tiny_world, UnlearnConfig(lambda_=7.0)).lam == 7.0

"""The fused Ssiuu regulariser against the plain autograd form: value, |I-| and gradient equal bit for bit."""

from __future__ import annotations

import pytest
import torch

from neuronscope.attribution.parameters import attribution_with_grad
from neuronscope.unlearn.ssiuu import fused_negative_attribution_regulariser, negative_attribution_regulariser


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lam", [1.0, 0.37, 1e3, 0.0])
def test_fused_regulariser_equals_autograd_form_bit_for_bit(dtype, lam):
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(s, generator=gen).to(dtype).requires_grad_() for s in [(7, 5), (11,), (300, 3)]]
    grads = [torch.randn(p.shape, generator=gen).to(dtype) for p in params]
    refs = [torch.randn(p.shape, generator=gen).to(dtype) for p in params]

    def other():  # another loss term sharing the parameters, as GD's does
        return sum((p.float() ** 3).sum() for p in params)

    plain = negative_attribution_regulariser(attribution_with_grad(params, grads), refs)
    want = torch.autograd.grad(other() + lam * plain, params)
    reg, a_t, n_neg = fused_negative_attribution_regulariser(params, grads, refs)
    got = torch.autograd.grad(other() + lam * reg, params)
    assert torch.equal(reg, plain)
    assert n_neg == sum(int((p.detach() * g < 0).sum()) for p, g in zip(params, grads, strict=True)) > 0
    for a, p, g in zip(a_t, params, grads, strict=True):
        assert torch.equal(a, p.detach() * g) and not a.requires_grad
    for x, y in zip(got, want, strict=True):
        assert torch.equal(x, y) and torch.equal(x.signbit(), y.signbit())


def test_fused_regulariser_gradient_is_2_dA_g_on_negative_entries():
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(50, generator=gen, requires_grad=True)
    g, a_prev = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    reg, _, n_neg = fused_negative_attribution_regulariser([phi], [g], [a_prev])
    (grad,) = torch.autograd.grad(reg, [phi])
    a_t = phi.detach() * g
    sel = a_t < 0
    assert n_neg == int(sel.sum()) and 0 < n_neg < 50
    assert reg.item() == pytest.approx(((a_prev - a_t)[sel] ** 2).sum().item(), rel=1e-6)
    torch.testing.assert_close(grad[sel], (2 * (a_t - a_prev) * g)[sel])
    assert (grad[~sel] == 0).all()

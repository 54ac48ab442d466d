"""analyses/ssiuu_gradient_share.py: its written-out regulariser gradient equals the method's own (the fused
regulariser's backward), its GD gradient equals one taken through full logits, and its shares on a hand-built case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from neuronscope.attribution.parameters import answer_probability_grads
from neuronscope.batching import encode
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import load_model
from neuronscope.training import answer_nll
from neuronscope.unlearn.ssiuu import fused_negative_attribution_regulariser

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "ssiuu_gradient_share.py"


@pytest.fixture(scope="module")
def script():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("ssiuu_gradient_share", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass resolves its annotations through its module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_gradients_equal_the_methods_regulariser_and_full_logits(script, tiny_ckpt: Path,  # noqa: ANN001
                                                                  tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    forget = [i for i in tiny_world.items("forget") if i.kind == "base"]
    retain = [i for i in tiny_world.items("retain") if i.kind == "base"]

    def batch(items: list):  # noqa: ANN202
        return encode(model.tokenizer, [i.question for i in items], [i.answer for i in items])

    previous, current, kept = batch(forget[:4]), batch(forget[4:8]), batch(retain[:4])
    share = script.gradient_share(model, previous, current, kept)

    params = [p for p in model.hf.parameters() if p.requires_grad]
    a_prev = [p.detach() * g for p, g in zip(params, answer_probability_grads(model, previous, params), strict=True)]
    reg, _, n_neg = fused_negative_attribution_regulariser(params, answer_probability_grads(model, current, params),
                                                           a_prev)
    reg_grad = torch.autograd.grad(reg, params)
    assert n_neg > 0 and reg.item() > 0
    assert share.reg == pytest.approx(reg.item(), rel=1e-5)
    torch.testing.assert_close(share.reg_grad, torch.cat([g.flatten() for g in reg_grad]), rtol=1e-5, atol=1e-12)

    full = (-answer_nll(model.hf(input_ids=current.input_ids).logits, current)
            + answer_nll(model.hf(input_ids=kept.input_ids).logits, kept))
    gd_grad = torch.autograd.grad(full, params, allow_unused=True)
    expected = torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                          for p, g in zip(params, gd_grad, strict=True)])
    assert share.gd_loss == pytest.approx(full.item(), rel=1e-5)
    torch.testing.assert_close(share.gd_grad, expected, rtol=1e-4, atol=1e-7)


def test_shares_on_a_hand_built_case(script) -> None:  # noqa: ANN001
    share = script.GradientShare(0.0, 0.0, torch.tensor([1.0, -3.0, 0.5]), torch.tensor([2.0, 1.0, 1.0]))
    ratio, larger = share.at(1.0)
    assert ratio == pytest.approx((1 + 9 + 0.25) ** 0.5 / 6 ** 0.5)
    assert larger == pytest.approx(1 / 3)  # only |-3| > |1|
    assert share.at(4.0)[1] == pytest.approx(1.0)  # 4 > 2, 12 > 1, 2 > 1
    assert share.at(0.0) == (0.0, 0.0)

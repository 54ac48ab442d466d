"""analyses/ssiuu_gradient_share.py: the method's regulariser gradient it reads equals the gradient written out by
hand, its GD gradient equals one taken through full logits, and its shares on a hand-built case."""

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


def test_gradients_equal_the_hand_written_regulariser_and_full_logits(script, tiny_ckpt: Path,  # noqa: ANN001
                                                                       tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    forget = [i for i in tiny_world.items("forget") if i.kind == "base"]
    retain = [i for i in tiny_world.items("retain") if i.kind == "base"]

    def batch(items: list):  # noqa: ANN202
        return encode(model.tokenizer, [i.question for i in items], [i.answer for i in items])

    previous, current, kept = batch(forget[:4]), batch(forget[4:8]), batch(retain[:4])
    share = script.gradient_share(model, previous, current, kept)

    # the regulariser's gradient written out (g_t constant): 2 (A_t - A_(t-1)) g_t on {A_t < 0}, 0 elsewhere
    params = [p for p in model.hf.parameters() if p.requires_grad]
    a_prev = [p.detach() * g for p, g in zip(params, answer_probability_grads(model, previous, params), strict=True)]
    g_t = answer_probability_grads(model, current, params)
    a_t = [p.detach() * g for p, g in zip(params, g_t, strict=True)]
    reg = sum(((x - y) ** 2 * (y < 0)).sum() for x, y in zip(a_prev, a_t, strict=True)).item()
    reg_grad = torch.cat([(2 * (y - x) * g * (y < 0)).flatten() for x, y, g in zip(a_prev, a_t, g_t, strict=True)])
    assert reg > 0 and bool((reg_grad != 0).any())
    assert share.reg == pytest.approx(reg, rel=1e-5)
    torch.testing.assert_close(share.reg_grad, reg_grad, rtol=1e-5, atol=1e-12)

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

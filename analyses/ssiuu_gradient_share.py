"""How much of a Ssiuu step is its regulariser? Gradient of lambda * L_reg against GD's, per parameter.

Ssiuu's regulariser is L_reg = sum over {A_t < 0} of (A_(t-1) - A_t)^2 with A = phi * g, g = dP/dphi held
constant, so dL_reg/dphi = 2 (A_t - A_(t-1)) g_t there (docs/unlearning.md). A_(t-1) comes from one forget batch,
A_t and the GD loss (-NLL forget + NLL retain) from the next, as at the loop's second step. AdamW scales each
parameter's step by that parameter's own gradient history, so what matters is on how many parameters the
regulariser's gradient is the larger one, not only its norm (docs/real-model.md, "Ssiuu with a larger lambda").

    python analyses/ssiuu_gradient_share.py --ckpt MODEL_DIR --data DATASET_DIR [--batch 8] [--lambdas 1e-3,0.37]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import Tensor

from neuronscope import load_dataset, load_model
from neuronscope.attribution.parameters import answer_probability_grads
from neuronscope.batching import Batch, encode
from neuronscope.models.handle import Model
from neuronscope.sparse_logits import answer_logits
from neuronscope.training import answer_nll
from neuronscope.unlearn.ssiuu import fused_negative_attribution_regulariser


@dataclass
class GradientShare:
    """The two gradients of one Ssiuu step, flattened over every trainable parameter."""

    reg: float  # L_reg
    gd_loss: float  # -NLL(forget) + NLL(retain)
    reg_grad: Tensor  # dL_reg/dphi (lambda = 1)
    gd_grad: Tensor  # dL_GD/dphi

    def at(self, lam: float) -> tuple[float, float]:
        """(norm of lambda dL_reg over GD's, share of parameters where lambda dL_reg is the larger in magnitude)."""
        scaled = lam * self.reg_grad
        return (scaled.norm().item() / self.gd_grad.norm().item(),
                (scaled.abs() > self.gd_grad.abs()).double().mean().item())


def gradient_share(model: Model, previous: Batch, current: Batch, kept: Batch) -> GradientShare:
    """A_(t-1) from the forget batch `previous`; L_reg (the method's own regulariser) and the GD loss (retain weight
    1, the default) on `current` and the retain batch `kept`."""
    params = [p for p in model.hf.parameters() if p.requires_grad]
    a_prev = [p.detach() * g for p, g in zip(params, answer_probability_grads(model, previous, params), strict=True)]
    reg, _, _ = fused_negative_attribution_regulariser(params, answer_probability_grads(model, current, params),
                                                       a_prev)
    reg_grad = torch.cat([g.flatten() for g in torch.autograd.grad(reg, params)])
    logits_f, batch_f = answer_logits(model.hf, current)
    logits_r, batch_r = answer_logits(model.hf, kept)
    gd = -answer_nll(logits_f, batch_f) + answer_nll(logits_r, batch_r)
    grads = torch.autograd.grad(gd, params, allow_unused=True)
    gd_grad = torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                         for p, g in zip(params, grads, strict=True)])
    return GradientShare(reg.item(), gd.item(), reg_grad, gd_grad)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=8, help="forget and retain items per batch")
    ap.add_argument("--lambdas", default="1e-3,0.0368,0.368,3.68,36.8")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds = load_dataset(args.data)
    forget = [i for i in ds.items("forget") if i.kind == "base"]
    retain = [i for i in ds.items("retain") if i.kind == "base"]
    n = args.batch
    if len(forget) < 2 * n or len(retain) < n:
        raise SystemExit(f"error: need {2 * n} forget and {n} retain base items, have {len(forget)} and {len(retain)}")
    model = load_model(args.ckpt, bridge=False)

    def batch(items: list) -> Batch:
        return encode(model.tokenizer, [i.question for i in items], [i.answer for i in items])

    share = gradient_share(model, batch(forget[:n]), batch(forget[n:2 * n]), batch(retain[:n]))
    print(f"L_reg {share.reg:.2f}, GD loss {share.gd_loss:.3f}; gradient norms: L_reg {share.reg_grad.norm():.3e}, "
          f"GD {share.gd_grad.norm():.3e}; {share.gd_grad.numel():,} parameters")
    for lam in (float(v) for v in args.lambdas.split(",")):
        ratio, larger = share.at(lam)
        print(f"lambda {lam:g}: norm {ratio:.3g}x GD's; the larger of the two on {larger:.4%} of the parameters")


if __name__ == "__main__":
    main()

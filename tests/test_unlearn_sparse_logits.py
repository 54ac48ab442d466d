"""The unlearning losses with logits only from the first answer-predicting position (a vocabulary of at least
SPARSE_MIN_VOCAB) against the same losses written out here from the model's full logits; the toy keeps the full
logits untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from neuronscope import sparse_logits
from neuronscope.batching import Batch
from neuronscope.data.schema import QADataset
from neuronscope.models.handle import Model, load_model
from neuronscope.sparse_logits import answer_logits, first_answer_position, sparse_ok
from neuronscope.unlearn import METHODS, UnlearnConfig
from neuronscope.unlearn.base import Method, StepBatch, encode_items
from neuronscope.unlearn.dpo import resolve_refusal
from neuronscope.unlearn.ssiuu import negative_attribution_regulariser

CFG = UnlearnConfig(beta=0.3, retain_weight=0.7, lambda_=10.0, simnpo_beta=0.5, simnpo_gamma=0.2, rmu_c=5.0,
                    rmu_alpha=3.0, rmu_trainable=1, klue_fraction=0.2, batch_size=4)
# P(y|x) of a random model over 8,192 words is ~1e-4 per token, so a fixed lambda leaves Ssiuu's regulariser far
# below the GD terms; weighted relative to its first value it counts as much as they do
SSIUU = UnlearnConfig(retain_weight=0.7, lambda_=1.0, lambda_relative=True, batch_size=4)
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def big(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A small random Llama whose vocabulary (the toy words padded to SPARSE_MIN_VOCAB) takes the sparse path."""
    from family_helpers import build_family_checkpoint

    from neuronscope.models.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(tiny_world.all_text())
    path = build_family_checkpoint("llama", tok, tmp_path_factory.mktemp("big") / "ckpt",
                                   vocab_size=sparse_logits.SPARSE_MIN_VOCAB)
    model = load_model(path, bridge=False)
    assert sparse_ok(model.hf)
    return model


def _step_batch(model: Model, ds: QADataset, offset: int) -> StepBatch:
    """Forget answers of one and two words (rows whose answers start at different positions)."""
    f, r = ds.items("forget", "base")[offset:offset + 3], ds.items("retain", "base")[offset:offset + 2]
    answers = [f[0].answer, f"{f[1].answer} {f[2].answer}", f[2].answer]
    sb = StepBatch(encode_items(model, f, answers), f, encode_items(model, r, [r[0].answer, f"{r[1].answer} x"]), r,
                   tuple(range(offset, offset + 3)))
    starts = sb.forget.answer_mask.float().argmax(1)
    assert len(set(starts.tolist())) > 1 and first_answer_position(sb.forget) > 0
    return sb


def _perturb(model: Model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.hf.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


# -- the losses written out from full logits (cross_entropy on the answer positions, no library loss code) -------
def token_nll(hf: torch.nn.Module, batch: Batch) -> Tensor:
    """[batch, pos-1] NLL of each next token under the full logits, zero outside the answer."""
    logits = hf(input_ids=batch.input_ids).logits
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch.input_ids[:, 1:], reduction="none")
    return nll * batch.answer_mask[:, 1:]


def mean_nll(hf: torch.nn.Module, batch: Batch) -> Tensor:
    return token_nll(hf, batch).sum() / batch.answer_mask[:, 1:].sum()


def seq_logp(hf: torch.nn.Module, batch: Batch) -> Tensor:
    return -token_nll(hf, batch).sum(1)


def prob_grads(hf: torch.nn.Module, batch: Batch, params: list[Tensor]) -> list[Tensor]:
    """d(sum_b P(y|x))/d params, P from the full logits."""
    return list(torch.autograd.grad(seq_logp(hf, batch).exp().sum(), params))


def reference_loss(name: str, method: Method, sb: StepBatch, prev: list[Tensor] | None) -> tuple[Tensor, list]:
    """The method's loss at this step from full logits, and the attribution a Ssiuu step remembers."""
    hf, w = method.model.hf, CFG.retain_weight
    gd = -mean_nll(hf, sb.forget) + w * mean_nll(hf, sb.retain)
    if name in ("ga",):
        return -mean_nll(hf, sb.forget), []
    if name in ("gd", "klue"):
        return gd, []
    if name == "npo":
        lp, ref = seq_logp(hf, sb.forget), seq_logp(method.ref.hf, sb.forget).detach()
        return -(2 / CFG.beta) * F.logsigmoid(-CFG.beta * (lp - ref)).mean() + w * mean_nll(hf, sb.retain), []
    if name == "dpo":
        win = encode_items(method.model, sb.forget_items, [resolve_refusal(method.model, CFG.refusal)] * 3)
        margin = ((seq_logp(hf, win) - seq_logp(method.ref.hf, win).detach())
                  - (seq_logp(hf, sb.forget) - seq_logp(method.ref.hf, sb.forget).detach()))
        return -F.logsigmoid(CFG.beta * margin).mean() + w * mean_nll(hf, sb.retain), []
    if name == "simnpo":
        lengths = sb.forget.answer_mask.sum(1).float()
        u = -(CFG.simnpo_beta / lengths) * seq_logp(hf, sb.forget) - CFG.simnpo_gamma
        return -(2 / CFG.simnpo_beta) * F.logsigmoid(u).mean() + w * mean_nll(hf, sb.retain), []
    params = [p for p in method.parameters() if p.requires_grad]
    a_t = [p.detach() * g for p, g in zip(params, prob_grads(hf, sb.forget, params), strict=True)]
    if name == "ssiuu-anchor":  # held to the frozen original's attribution on this batch
        ref_params = [method.ref_params[method.names[id(p)]] for p in params]
        prev = [p.detach() * g for p, g in zip(ref_params, prob_grads(method.ref.hf, sb.forget, ref_params),
                                                strict=True)]
    if prev is None:
        return gd, a_t
    g_t = prob_grads(hf, sb.forget, params)
    reg = negative_attribution_regulariser([p * gi for p, gi in zip(params, g_t, strict=True)], prev)
    assert method.lam is not None and method.lam > 0
    return gd + method.lam * reg, a_t  # the weight the method fixed at its first active step


def _head_widths(models: list[Model]) -> tuple[list[int], Callable[[], None]]:
    """Positions each call of the models' heads received (a forward hook), and a remover."""
    widths: list[int] = []
    handles = [m.hf.get_output_embeddings().register_forward_hook(lambda _m, args, _o: widths.append(args[0].shape[1]))
               for m in models]
    return widths, lambda: [h.remove() for h in handles]


def _steps(big: Model, ds: QADataset, name: str, check: bool) -> list[tuple[Tensor, list[Tensor | None]]]:
    """(loss, gradient on the trainable parameters) of two steps of `name` on a copy of `big`; `check`: each
    against the loss written out from full logits, and the head never given a whole row."""
    model = big.clone()
    method = METHODS[name](model, ds, SSIUU if name.startswith("ssiuu") else CFG)
    _perturb(model, seed=1)  # away from the frozen references
    params = [p for p in method.parameters() if p.requires_grad]
    prev, out = None, []
    for step, offset in ((1, 0), (2, 3)):  # two steps: Ssiuu's regulariser is active on the second
        sb = _step_batch(model, ds, offset)
        widths, remove = _head_widths([model, *([method.ref] if hasattr(method, "ref") else [])])
        try:
            loss, _ = method.loss(sb, step)
        finally:
            remove()
        got_g = list(torch.autograd.grad(loss, params, retain_graph=check, allow_unused=True))
        assert any(g is not None and g.abs().max() > 0 for g in got_g)
        out.append((loss.detach(), got_g))
        if check:
            assert widths and max(widths) < sb.forget.input_ids.shape[1]  # never a whole (prompt + answer) row
            want, prev = reference_loss(name, method, sb, prev)
            if name.startswith("ssiuu") and step == 2:  # the regulariser counts
                gd = -mean_nll(model.hf, sb.forget) + CFG.retain_weight * mean_nll(model.hf, sb.retain)
                assert (want - gd).item() > 0.1  # 1 where lambda was fixed, this step (Ssiuu)
            torch.testing.assert_close(loss, want, rtol=RTOL, atol=ATOL)
            want_g = torch.autograd.grad(want, params, allow_unused=True)
            for g, h in zip(got_g, want_g, strict=True):
                assert (g is None) == (h is None)
                if g is not None:  # the method's own full-logits path differs from this form by up to 2.5e-6 too
                    torch.testing.assert_close(g, h, rtol=RTOL, atol=1e-5 * h.abs().max().item())
        _perturb(model, seed=10 + step)  # stands in for the optimiser step
    method.finish()
    return out


@pytest.mark.parametrize("name", ["ga", "gd", "npo", "dpo", "simnpo", "klue", "ssiuu", "ssiuu-anchor"])
def test_loss_and_gradient_equal_the_full_logits(big: Model, tiny_world: QADataset, name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the loss written out from full logits, and against the method's own code on the full logits (the
    threshold raised past the vocabulary)."""
    sliced = _steps(big, tiny_world, name, check=True)
    monkeypatch.setattr(sparse_logits, "SPARSE_MIN_VOCAB", big.hf.config.vocab_size + 1)
    full = _steps(big, tiny_world, name, check=False)
    for (loss, grads), (loss_full, grads_full) in zip(sliced, full, strict=True):
        torch.testing.assert_close(loss, loss_full, rtol=RTOL, atol=ATOL)
        for g, h in zip(grads, grads_full, strict=True):
            assert (g is None) == (h is None)
            if g is not None:
                torch.testing.assert_close(g, h, rtol=RTOL, atol=ATOL * max(1.0, h.abs().max().item()))


def test_klue_localisation_equals_the_full_logits(big: Model, tiny_world: QADataset,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """KLUE's neuron scores (gradient x activation of P(y|x)) from the answer positions' logits only."""
    runs = {}
    for path in ("sliced", "full"):
        if path == "full":
            monkeypatch.setattr(sparse_logits, "SPARSE_MIN_VOCAB", big.hf.config.vocab_size + 1)
        model = big.clone()
        widths, remove = _head_widths([model])
        try:
            runs[path] = METHODS["klue"](model, tiny_world, CFG), sum(widths)
        finally:
            remove()
    (sliced, sliced_rows), (full, full_rows) = runs["sliced"], runs["full"]
    assert 0 < sliced_rows < full_rows  # the head saw fewer positions
    assert full.score.abs().max() > 0
    torch.testing.assert_close(sliced.score, full.score, rtol=1e-4, atol=1e-6 * full.score.abs().max().item())


def test_rmu_skips_the_head(big: Model, tiny_world: QADataset) -> None:
    """RMU reads a block's output only: above SPARSE_MIN_VOCAB the head is not run; the loss is unchanged."""
    model = big.clone()
    method = METHODS["rmu"](model, tiny_world, CFG)
    _perturb(model, seed=2)
    sb = _step_batch(model, tiny_world, 0)
    widths, remove = _head_widths([model, method.ref])
    try:
        loss, _ = method.loss(sb, 1)
    finally:
        remove()
    assert widths == []
    layer = model.hf.model.layers[method.layer]

    def block_out(hf: torch.nn.Module, batch: Batch) -> Tensor:
        out = {}
        h = hf.model.layers[method.layer].register_forward_hook(lambda _m, _i, o: out.__setitem__("h", o))
        try:
            hf(input_ids=batch.input_ids)
        finally:
            h.remove()
        return out["h"][0] if isinstance(out["h"], tuple) else out["h"]

    def mse(h: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return (((h - target) ** 2).mean(-1) * mask).sum() / mask.sum()

    want = (mse(block_out(model.hf, sb.forget), method.control, sb.forget.token_mask)
            + CFG.rmu_alpha * mse(block_out(model.hf, sb.retain), block_out(method.ref.hf, sb.retain).detach(),
                                  sb.retain.token_mask))
    torch.testing.assert_close(loss, want, rtol=RTOL, atol=ATOL)
    params = list(layer.mlp.parameters())
    for g, h in zip(torch.autograd.grad(loss, params), torch.autograd.grad(want, params), strict=True):
        torch.testing.assert_close(g, h, rtol=RTOL, atol=ATOL * max(1.0, h.abs().max().item()))


def test_toy_keeps_the_full_logits_and_the_batch(tiny_trained, tiny_world: QADataset) -> None:
    model = tiny_trained.model
    assert not sparse_ok(model.hf)
    sb = _step_batch(model, tiny_world, 0)
    with torch.no_grad():
        logits, batch = answer_logits(model.hf, sb.forget)
        full = model.hf(input_ids=sb.forget.input_ids).logits
    assert batch is sb.forget
    assert torch.equal(logits, full)
    with torch.no_grad():
        logits_m, batch_m = METHODS["ga"](model, tiny_world, CFG).answer_logits(sb.forget)
    assert batch_m is sb.forget and torch.equal(logits_m, full)


def test_no_answer_token_gives_the_full_logits_losses(big: Model, tiny_world: QADataset) -> None:
    """A batch without answer tokens keeps one position; the losses built on it are the full logits' zeros."""
    sb = _step_batch(big, tiny_world, 0)
    empty = Batch(sb.forget.input_ids, torch.zeros_like(sb.forget.answer_mask), sb.forget.prompt_mask)
    from neuronscope.scoring import answer_logprobs
    from neuronscope.training import answer_nll

    with torch.no_grad():
        logits, kept = answer_logits(big.hf, empty)
        full = big.hf(input_ids=empty.input_ids).logits
    assert logits.shape[1] == kept.input_ids.shape[1] == 1
    assert torch.equal(answer_logprobs(logits, kept), answer_logprobs(full, empty))
    assert answer_nll(logits, kept).item() == answer_nll(full, empty).item() == 0.0

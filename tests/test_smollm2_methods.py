"""The analyses on the real pretrained model: attribution, one unlearning step per method, the sparse scoring path.

Kept cheap: a handful of real facts the model knows, the session's one pulled checkpoint, one or two steps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

from neuronscope.attribution import attribution_scores
from neuronscope.batching import encode
from neuronscope.data.real_facts import RealFactsConfig, candidate_facts
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.models.handle import Model, load_model
from neuronscope.scoring import answer_logprobs, answer_probabilities, multiple_choice_correct
from neuronscope.sparse_logits import answer_logprobs_sparse, sparse_ok
from neuronscope.unlearn import METHODS, UnlearnConfig, unlearn

pytest.importorskip("countryinfo")

# (layer, module) -> HF module path inside a Llama block; an independent table, not neuronscope's own
HF_PATHS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
            "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
LAYERS = (0, 14, 29)


@pytest.fixture(scope="module")
def known_ds(smollm2_ckpt: Path) -> QADataset:
    """Capital and currency facts of 6 large countries that the model answers: 3 forget, 3 retain clusters."""
    cand = candidate_facts(RealFactsConfig(countries=6, attributes=("capital", "currency"), forget=0.5,
                                           retain=0.5, test=0.0))
    model = load_model(smollm2_ckpt, bridge=False)
    base = [it for s in ("forget", "retain") for it in cand.items(s)]
    ok = multiple_choice_correct(model, base)
    keep = {it.id for it, k in zip(base, ok.tolist(), strict=True) if k}
    splits = {s: [it for it in cand.items(s) if it.id in keep] for s in ("forget", "retain")}
    assert len(splits["forget"]) >= 3 and len(splits["retain"]) >= 3, splits
    return QADataset(splits={s: v[:4] for s, v in splits.items()}, utility=cand.utility[:2], meta={"chance": 1 / 3})


def test_sparse_scoring_equals_full_logits(smollm2_ckpt: Path, known_ds: QADataset) -> None:
    model = load_model(smollm2_ckpt, bridge=False)
    assert sparse_ok(model.hf)
    items = known_ds.forget
    batch = encode(model.tokenizer, [it.question for it in items for _ in it.options],
                   [o for it in items for o in it.options])
    with torch.no_grad():
        dense = answer_logprobs(model.hf(input_ids=batch.input_ids).logits, batch)
        sparse = answer_logprobs_sparse(model.hf, batch)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-4)

    # the training loss (attacks, fine-tuning): same value and same gradient through the sparse head
    from neuronscope.training import answer_nll, model_answer_nll

    batch = encode(model.tokenizer, [it.question for it in items], [it.answer for it in items])
    weight = model.hf.model.layers[29].mlp.down_proj.weight
    grads = []
    for sparse_path in (False, True):
        loss = model_answer_nll(model, batch, sparse_path)
        grads.append((loss.detach(), torch.autograd.grad(loss, weight)[0]))
    with torch.no_grad():
        want = answer_nll(model.hf(input_ids=batch.input_ids).logits, batch)
    torch.testing.assert_close(grads[0][0], want)
    torch.testing.assert_close(grads[1][0], want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-6 * grads[0][1].abs().max().item())


def _hf_attribution(hf: torch.nn.Module, tok: object, item: QAItem) -> dict[tuple[int, str], Tensor]:
    """max over prompt positions of h * dP(y|x)/dh per neuron, by plain autograd on the transformers model."""
    p_ids = tok(item.question)["input_ids"]
    a_ids = tok(" " + item.answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + a_ids])
    outs: dict[tuple[int, str], Tensor] = {}
    handles = []
    for layer in LAYERS:
        for module, path in HF_PATHS.items():
            def keep(mod: object, args: object, out: Tensor, key: tuple[int, str] = (layer, module)) -> None:
                out.retain_grad()
                outs[key] = out
            handles.append(hf.get_submodule(f"model.layers.{layer}.{path}").register_forward_hook(keep))
    try:
        logp = torch.log_softmax(hf(input_ids=ids).logits[0, :-1].double(), -1)
        pos = torch.arange(len(p_ids) - 1, ids.shape[1] - 1)
        logp[pos, ids[0, pos + 1]].sum().exp().backward()
    finally:
        for h in handles:
            h.remove()
    return {k: (o.detach() * o.grad)[0, :len(p_ids)].max(0).values for k, o in outs.items()}


def test_attribution_equals_activation_times_autograd_gradient(smollm2_ckpt: Path, known_ds: QADataset) -> None:
    from transformers import AutoModelForCausalLM

    items = known_ds.forget[:2]
    scores = attribution_scores(load_model(smollm2_ckpt), items, batch_size=2)
    hf = AutoModelForCausalLM.from_pretrained(smollm2_ckpt, attn_implementation="eager").eval()
    tok = load_model(smollm2_ckpt, bridge=False).tokenizer
    want = [_hf_attribution(hf, tok, it) for it in items]
    by_key = {(p.layer, p.module): p.hook for p in scores.projections}
    assert set(HF_PATHS) == {m for _, m in by_key}
    for layer in LAYERS:
        for module in HF_PATHS:
            got = scores.max[by_key[layer, module]]  # (item, neuron)
            width = got.shape[1]
            neurons = torch.tensor([0, 1, width // 3, width // 2, width - 1])
            for i in range(len(items)):
                ref = want[i][layer, module][neurons].float()
                scale = want[i][layer, module].abs().max().item()
                assert scale > 0, (layer, module)
                torch.testing.assert_close(got[i, neurons], ref, rtol=1e-3, atol=1e-3 * scale,
                                           msg=lambda m, k=(layer, module): f"{k}: {m}")


def _mean_logp(model: Model, items: list[QAItem]) -> float:
    return answer_probabilities(model, items).log().mean().item()


# the paper's FaithUn rate range (1e-6 .. 5e-5): one AdamW step at 1e-5. Two steps where one shows nothing of the
# method: RMU's loss must fall from its first value; Ssiuu's regulariser needs the previous step's attribution
# (at step 1 it is GD), so its second step is the one with the regulariser active
# DPO without its retain NLL, as in tests/test_families.py: at step 1 the model is its reference, so DPO's own
# gradient is beta / 2 = 0.05 times the preference direction while the retain NLL (weight 1) raises every answer,
# forget answers included (measured here: -2.22 -> -2.13 with it on a 4 + 4 item batch): the test must measure DPO
OVERRIDES = {"dpo": {"retain_weight": 0.0}}
ONE_STEP = UnlearnConfig(lr=1e-5, max_steps=1, threshold=0.0, check_every=1, rs_every=0, batch_size=4,
                         eval_kinds=("base",), seed=0)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_step_of_each_method_lowers_forget_logprob(smollm2_ckpt: Path, known_ds: QADataset,
                                                       method: str) -> None:
    model = load_model(smollm2_ckpt, bridge=False)
    forget = known_ds.items("forget")
    before = _mean_logp(model, forget)
    two = method == "rmu" or method.startswith("ssiuu")
    cfg = replace(ONE_STEP, max_steps=2 if two else 1, **OVERRIDES.get(method, {}))
    result = unlearn(model, known_ds, method, cfg)
    after = _mean_logp(model, forget)
    print(f"{method}: forget log P {before:.4f} -> {after:.4f} ({result.steps} step(s))")
    if method == "rmu":
        losses = [r["loss"] for r in result.curve[1:]]
        assert losses[1] < losses[0], losses
    else:
        assert after < before, (before, after)
    if method.startswith("ssiuu"):
        assert result.curve[2]["reg"] > 0, result.curve[2]

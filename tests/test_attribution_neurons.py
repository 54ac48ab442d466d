"""Neuron attribution against independent computations: HF-module hooks + autograd, and finite differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from neuronscope.attribution.neurons import (
    aggregate,
    attribute_neurons,
    attribution_scores,
    load_table,
    position_mask,
    reduce_positions,
    save_table,
)
from neuronscope.batching import encode
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models import load_model
from neuronscope.models.handle import Model
from neuronscope.models.tokenizer import build_word_tokenizer
from neuronscope.scoring import answer_logprobs

LLAMA_MODULES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                 "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


@pytest.fixture(scope="module")
def gpt2_ckpt(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (no gate, fused qkv, dropout on) saved with a word tokenizer."""
    tok = build_word_tokenizer(tiny_world.all_text())
    cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(cfg)
    out = tmp_path_factory.mktemp("gpt2") / "gpt2"
    hf.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def _manual_reduce(a: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max/min over masked positions with a Python loop (independent of reduce_positions)."""
    maxes, mins = [], []
    for b in range(a.shape[0]):
        rows = a[b][mask[b]]
        maxes.append(rows.max(0).values)
        mins.append(rows.min(0).values)
    return torch.stack(maxes), torch.stack(mins)


def test_reduce_positions_hand_built() -> None:
    a = torch.tensor([[[1.0, -2.0], [3.0, -1.0], [-5.0, 9.0]],
                      [[-1.0, -1.0], [-4.0, 2.0], [7.0, 7.0]]])  # (batch 2, pos 3, neuron 2)
    mask = torch.tensor([[True, True, False], [True, True, False]])
    a_max, a_min = reduce_positions(a, mask)
    assert a_max.tolist() == [[3.0, -1.0], [-1.0, 2.0]]  # position 2 (e.g. padding) never counts
    assert a_min.tolist() == [[1.0, -2.0], [-4.0, -1.0]]
    with pytest.raises(ValueError):
        reduce_positions(a, torch.zeros(2, 3, dtype=torch.bool))


def test_position_masks(tiny_trained) -> None:
    tok = tiny_trained.model.tokenizer
    batch = encode(tok, ["where was x born ?", "what ?"], ["paris", "b"])  # second row is padded
    prompt = position_mask(batch, "prompt")
    assert prompt.tolist() == batch.prompt_mask.tolist()
    all_ = position_mask(batch, "all")
    # single-token answers: the only answer token is also the last real token, so "all" == "prompt" here
    assert all_.tolist() == prompt.tolist()
    last = position_mask(batch, "last")
    assert last.sum(-1).tolist() == [1, 1]
    assert last[1].nonzero().item() == batch.prompt_mask[1].sum().item() - 1
    long = encode(tok, ["what ?"], ["paris london"])
    assert position_mask(long, "all")[0].tolist() == [True, True, True, True, False]
    with pytest.raises(NeuronscopeError):
        position_mask(batch, "answer")


def test_llama_matches_hf_module_hooks_and_autograd(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    items = tiny_world.forget[:5]
    model = load_model(tiny_ckpt)
    table = attribute_neurons(model, items, batch_size=2, per_example=True)

    ref = load_model(tiny_ckpt, bridge=False)
    batch = encode(ref.tokenizer, [it.question for it in items], [it.answer for it in items])
    acts: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for layer, block in enumerate(ref.hf.model.layers):
        for module, path in LLAMA_MODULES.items():
            sub = block.get_submodule(path)

            def keep(mod, inp, out, key=(layer, module)):
                out.retain_grad()
                acts[key] = out

            handles.append(sub.register_forward_hook(keep))
    logits = ref.hf(input_ids=batch.input_ids).logits
    answer_logprobs(logits, batch).exp().sum().backward()
    for h in handles:
        h.remove()
    assert len(acts) == 2 * 7
    for (layer, module), h in acts.items():
        a = h.detach() * h.grad
        want_max, want_min = _manual_reduce(a, batch.prompt_mask)
        got = table[(table.layer == layer) & (table.module == module)]
        got_max = torch.tensor(got["max"].to_numpy()).view(len(items), -1)
        got_min = torch.tensor(got["min"].to_numpy()).view(len(items), -1)
        scale = want_max.abs().max().item()
        assert scale > 0
        torch.testing.assert_close(got_max, want_max, atol=1e-5 * scale, rtol=1e-4)
        torch.testing.assert_close(got_min, want_min, atol=1e-5 * scale, rtol=1e-4)
    assert set(table["item"]) == {it.id for it in items}
    # the backward pass was taken w.r.t. an embedding leaf: no parameter gradient was left behind
    assert all(p.grad is None for p in model.hf.parameters())


def _plain64(path: Path) -> Model:
    """The reference: plain HF in float64 with sdpa attention (eager attention takes its softmax in float32)."""
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64, attn_implementation="sdpa").eval()
    return Model(hf, AutoTokenizer.from_pretrained(path), path)


def _answer_prob64(logits: torch.Tensor, batch) -> torch.Tensor:
    """P(y|x) in float64 (scoring.answer_logprobs works in float32, too coarse for finite differences)."""
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    tok = logp.gather(-1, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (tok * batch.answer_mask[:, 1:]).sum(-1).exp()


def _finite_difference_check(bridged, plain, items, module_path, slices, eps=1e-3, rtol=1e-4) -> None:
    """A = h * dP/dh at every prompt position by central differences on HF-module outputs (float64)."""
    scores = attribution_scores(bridged, items, batch_size=len(items))
    batch = encode(plain.tokenizer, [it.question for it in items], [it.answer for it in items])
    for (layer, module), (offset, neurons) in slices.items():
        sub = module_path(plain.hf, layer, module)
        hook = next(p.hook for p in scores.projections if (p.layer, p.module) == (layer, module))
        for neuron in neurons:
            col = offset + neuron
            fd = torch.zeros(batch.input_ids.shape, dtype=torch.float64)
            with torch.no_grad():
                base_out: dict[str, torch.Tensor] = {}
                handle = sub.register_forward_hook(lambda m, i, o, d=base_out: d.setdefault("h", o.clone()))
                plain.hf(input_ids=batch.input_ids)
                handle.remove()
                h = base_out["h"][..., col]
                for k in range(batch.input_ids.shape[1]):
                    probs = []
                    for sign in (1.0, -1.0):
                        def bump(m, i, o, k=k, sign=sign, col=col):
                            o = o.clone()
                            o[:, k, col] += sign * eps
                            return o
                        handle = sub.register_forward_hook(bump)
                        probs.append(_answer_prob64(plain.hf(input_ids=batch.input_ids).logits, batch))
                        handle.remove()
                    fd[:, k] = h[:, k] * (probs[0] - probs[1]) / (2 * eps)
            want_max, want_min = _manual_reduce(fd.unsqueeze(-1), batch.prompt_mask)
            atol = rtol * fd.abs().max().item()
            assert fd.abs().max() > 0
            torch.testing.assert_close(scores.max[hook][:, neuron].double(), want_max[:, 0], rtol=rtol, atol=atol)
            torch.testing.assert_close(scores.min[hook][:, neuron].double(), want_min[:, 0], rtol=rtol, atol=atol)


def test_llama_finite_differences(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    bridged = load_model(tiny_ckpt, dtype=torch.float64)
    plain = _plain64(tiny_ckpt)
    # HF's LlamaRMSNorm computes in float32 even in a float64 model; the same formula in float64 for the reference
    for mod in plain.hf.modules():
        if type(mod).__name__ == "LlamaRMSNorm":
            mod.forward = lambda h, m=mod: m.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True)
                                                                       + m.variance_epsilon))
    items = tiny_world.forget[:2]
    _finite_difference_check(
        bridged, plain, items, lambda hf, layer, m: hf.model.layers[layer].get_submodule(LLAMA_MODULES[m]),
        {(0, "k"): (0, [5]), (1, "gate"): (0, [17])}, rtol=1e-3)


def test_gpt2_no_gate_finite_differences_and_dropout(gpt2_ckpt: Path, tiny_world: QADataset) -> None:
    bridged = load_model(gpt2_ckpt, dtype=torch.float64)
    plain = _plain64(gpt2_ckpt)
    items = tiny_world.forget[:2]
    d = 32
    paths = {"q": "attn.c_attn", "v": "attn.c_attn", "in": "mlp.c_fc", "out": "mlp.c_proj"}
    # GPT-2 fuses q, k, v in one c_attn output [q | k | v]: the v neuron j is column 2d + j
    _finite_difference_check(
        bridged, plain, items, lambda hf, layer, m: hf.transformer.h[layer].get_submodule(paths[m]),
        {(0, "q"): (0, [3]), (1, "v"): (2 * d, [7]), (0, "in"): (0, [100])})
    table = attribute_neurons(bridged, items)
    widths = table.groupby("module", observed=True).size().to_dict()
    assert widths == {"q": 2 * d, "k": 2 * d, "v": 2 * d, "o": 2 * d, "in": 2 * 4 * d, "out": 2 * d}
    bridged.hf.train()  # dropout on: attribution must switch it off, and put the flag back
    again = attribute_neurons(bridged, items)
    assert bridged.hf.training
    pd.testing.assert_frame_equal(table, again)


def test_aggregate_and_tables_round_trip(tiny_ckpt: Path, tiny_world: QADataset, tmp_path: Path) -> None:
    model = load_model(tiny_ckpt)
    items = tiny_world.forget[:4]
    per = attribute_neurons(model, items, batch_size=3, per_example=True)
    agg = attribute_neurons(model, items, batch_size=4)
    assert list(agg.columns) == ["layer", "module", "neuron", "max", "max_pos", "min", "n"]
    assert (agg["max"] >= agg["min"]).all() and (agg["max_pos"] >= agg["max"]).all()
    mine = aggregate(per)
    np.testing.assert_allclose(mine["max"], agg["max"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(mine["max_pos"], agg["max_pos"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(mine["min"], agg["min"], rtol=1e-5, atol=1e-9)
    for name in ("t.parquet", "t.csv"):
        save_table(agg, tmp_path / name)
        back = load_table(tmp_path / name)
        np.testing.assert_allclose(back["max"], agg["max"])
        assert back["module"].astype(str).tolist() == agg["module"].astype(str).tolist()
    with pytest.raises(NeuronscopeError):
        attribute_neurons(model, [])
    with pytest.raises(NeuronscopeError):
        attribute_neurons(model, items, positions="answers")

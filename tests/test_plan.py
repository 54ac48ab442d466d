"""The dry run: exact parameter counts from config.json alone, the stated memory formulas, and the CLI in seconds."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.data.schema import QADataset
from neuronscope.experiment.config import profile
from neuronscope.models.handle import load_model
from neuronscope.plan import (
    REFERENCE_METHODS,
    DataCounts,
    model_shape,
    plan_attribute,
    plan_grid,
    plan_unlearn,
    shape_from_config,
    trainable_params,
)
from neuronscope.unlearn import METHODS, UnlearnConfig

LLAMA_3B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 3072,
            "num_hidden_layers": 28, "intermediate_size": 8192, "num_attention_heads": 24, "num_key_value_heads": 8,
            "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 131072, "rope_theta": 500000.0, "hidden_act": "silu", "torch_dtype": "bfloat16"}
D, L, FF, H, KV, HD, V = 3072, 28, 8192, 24, 8, 128, 128256  # FF: intermediate


def _llama_dir(tmp_path: Path, tokenizer_from: Path | None = None) -> Path:
    out = tmp_path / "llama-3b"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(LLAMA_3B))
    if tokenizer_from is not None:
        for f in tokenizer_from.glob("tokenizer*"):
            shutil.copy(f, out / f.name)
    return out


def test_llama_3b_parameter_count_is_exact(tmp_path: Path) -> None:
    s = model_shape(_llama_dir(tmp_path))
    # per block: q (D x H*HD), k and v (D x KV*HD), o (H*HD x D), gate, up, down (3 x D x FF), two RMSNorms (2D);
    # plus the tied embedding/unembedding (V x D) counted once and the final norm (D)
    block = D * H * HD + 2 * D * KV * HD + H * HD * D + 3 * D * FF + 2 * D
    assert s.n_params == L * block + V * D + D == 3_212_749_824
    assert s.n_neurons == L * (H * HD + 2 * KV * HD + D + 2 * FF + D) == 774_144
    assert s.mlp_params_per_layer == 3 * D * FF and s.gated


def test_attribution_bound_for_llama_3b(tmp_path: Path) -> None:
    s, b, B, T = model_shape(_llama_dir(tmp_path)), 2, 16, 128
    plan = plan_attribute(s, torch.bfloat16, B, n_items=1000, seq_len=T, per_example=True)
    rows = {item: nbytes for _, item, nbytes, _ in plan.memory}
    n = 774_144
    assert rows["weights"] == 3_212_749_824 * 2
    hooked_and_saved = L * T * (n // L + 2 * D + FF) * b  # hooked outputs, norm inputs, act(gate)
    attention, logits = L * H * T * T * b, T * V * (b + 4 + 4)
    assert rows["one batch's pass"] == B * (hooked_and_saved + attention + logits)
    assert rows["one projection's gradient"] == B * T * FF * (b + 12)
    assert rows["accumulators"] == 3 * n * 8 + B * n * 2 * 4
    assert rows["per-example max/min (CPU)"] == 1000 * n * 2 * 4  # grows with items
    assert round(plan.peak() / 2**30, 2) == 19.34  # the figures quoted in docs/attribution.md
    streaming = plan_attribute(s, torch.bfloat16, B, n_items=1000, seq_len=T)
    assert round(streaming.peak() / 2**30, 2) == 13.57
    assert round(rows["per-example max/min (CPU)"] / 2**30, 2) == 5.77
    with_base = plan_attribute(s, torch.bfloat16, B, n_items=1000, seq_len=T, with_base=True, patching=True)
    assert round(with_base.stage_total("attribute") / 2**30, 2) == 19.56
    assert with_base.stage_total("attribute: patching") == 2 * rows["weights"] + 48 * T * n * b
    assert round(with_base.stage_total("attribute: patching") / 2**30, 2) == 20.83


def test_reference_copies_and_rmu_trainable_match_the_methods(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    cfg = UnlearnConfig()
    cloning = set()
    for name, cls in METHODS.items():
        method = cls(model, tiny_world, cfg)
        ref = getattr(method, "ref", None)
        if ref is not None and ref.hf is not model.hf:
            cloning.add(name)
        if name == "rmu":
            rmu_params = sum(p.numel() for p in method.parameters())
    assert cloning == set(REFERENCE_METHODS)
    s = shape_from_config(model.hf.config)
    assert s.n_params == model.n_params
    assert trainable_params(s, "rmu", cfg.rmu_trainable) == rmu_params
    counts = DataCounts(forget=6, retain=6, rs=18, evaluated=100, options=3, seq_len=12)
    for name in METHODS:
        items = {item for _, item, _, _ in plan_unlearn(s, torch.float32, name, 8, counts, 50).memory}
        assert ("reference copy" in items) == (name in REFERENCE_METHODS)


def test_plan_grid_counts_from_the_config() -> None:
    cfg = profile("small")
    s = shape_from_config(LlamaConfig(hidden_size=64, num_hidden_layers=2, intermediate_size=128,
                                      num_attention_heads=4, vocab_size=100))
    counts = DataCounts(forget=6, retain=6, rs=18, evaluated=100, options=3, seq_len=12)
    plan = plan_grid(cfg, s, torch.float32, counts)
    got = dict((what, n) for what, n, _ in plan.counts)
    attacks = cfg.attacks.configs()
    models = len(cfg.unlearn.methods) + int(cfg.oracle)
    unlearn_steps = sum(cfg.unlearn.params_for(m).get("max_steps", 500) for m in cfg.unlearn.methods)
    assert len(attacks) == (2 * 1 + 1) * 2  # (2 harmful p + benign) x 2 seeds
    assert got["attacks: optimiser steps"] == 10 * len(attacks) * models
    assert got["grid: optimiser steps (at most)"] == unlearn_steps + 10 * len(attacks) * models
    assert cfg.attribution and cfg.patching
    # each model against the base, and (patch_attacked) its attacked self
    assert got["attribution: patching tests"] == 2 * models
    fewer = plan_grid(dataclasses.replace(cfg, patch_attacked=False), s, torch.float32, counts)
    assert dict((what, n) for what, n, _ in fewer.counts)["attribution: patching tests"] == models


def test_cli_dry_runs_without_weights(tmp_path: Path, tiny_ckpt: Path, tiny_world_dir: Path) -> None:
    ckpt = _llama_dir(tmp_path, tokenizer_from=tiny_ckpt)
    assert not list(ckpt.glob("*.safetensors"))
    # the peak of this process's own memory map (VmHWM): getrusage's ru_maxrss survives exec, so a child forked
    # from a large test process (a pytest-xdist worker that held a real model) would report the parent's peak
    code = ("import sys; from neuronscope.cli import app\n"
            "try:\n    app(sys.argv[1:], prog_name='neuronscope')\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
            "print('MAXRSS_KIB', hwm, 'RC', rc, file=sys.stderr)\n")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, "unlearn", "--method", "npo", "--ckpt", str(ckpt), "--data",
                          str(tiny_world_dir), "--out", str(tmp_path / "never"), "--dry-run", "--dtype", "bf16"],
                         capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert "RC 0" in res.stderr, res.stderr[-2000:]
    rss_gib = int(res.stderr.split("MAXRSS_KIB")[1].split()[0]) / 2**20
    assert rss_gib < 1.5, rss_gib  # bfloat16 weights alone would be 6 GiB
    assert seconds < 120, seconds  # seconds on an idle machine (imports); generous for a loaded one
    assert "3,212,749,824" in res.stdout and "reference copy" in res.stdout
    assert not (tmp_path / "never").exists()
    runner = CliRunner()
    for args in (["attribute", "--ckpt", str(ckpt), "--base", str(ckpt), "--data", str(tiny_world_dir), "--out",
                  str(tmp_path / "a"), "--dry-run", "--seq-len", "64"],
                 ["attack", "--kind", "benign", "--ckpt", str(ckpt), "--data", str(tiny_world_dir), "--out",
                  str(tmp_path / "b"), "--dry-run"]):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        assert "774,144" in out.output and "nothing loaded" in out.output
    bad = runner.invoke(app, ["attribute", "--ckpt", str(ckpt), "--data", str(tiny_world_dir), "--out",
                              str(tmp_path / "c"), "--dry-run", "--seq-len", "0"])
    assert bad.exit_code == 2 and "--seq-len must be at least 1" in bad.output


@pytest.mark.parametrize("name", ["small"])
def test_run_dry_run_prints_the_grid_plan(name: str, tmp_path: Path) -> None:
    config = tmp_path / "grid.toml"
    config.write_text((Path(__file__).parents[1] / "configs" / f"{name}.toml").read_text())
    res = CliRunner().invoke(app, ["run", str(config), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "grid: optimiser steps" in res.output and not (tmp_path / "runs").exists()


def test_stride_state_is_what_the_loop_keeps(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    """The planned stop-check state (stride > 1) equals the bytes of a snapshot the loop takes after a step (the
    trainable weights and AdamW's two moments); fewer FS checks are planned, and at most one replay more."""
    from neuronscope.unlearn import METHODS
    from neuronscope.unlearn.loop import _snapshot

    model = load_model(tiny_ckpt, bridge=False)
    cfg = UnlearnConfig()
    method = METHODS["gd"](model, tiny_world, cfg)
    params = method.parameters()
    opt = torch.optim.AdamW(params, lr=1e-4)
    sum(p.sum() for p in params).backward()
    opt.step()
    snap = _snapshot(1, params, opt, method, [], [])
    kept = sum(w.numel() * w.element_size() for w in snap.weights)
    kept += sum(t.numel() * t.element_size() for st in snap.optimizer["state"].values() for k, t in st.items()
                if k != "step")
    s = shape_from_config(model.hf.config)
    counts = DataCounts(forget=6, retain=6, rs=18, evaluated=100, options=3, seq_len=12)
    strided = plan_unlearn(s, torch.float32, "gd", 8, counts, 50, stride=5)
    rows = {item: n for _, item, n, _ in strided.memory}
    assert rows["stop-check state (stride)"] == kept
    plain = plan_unlearn(s, torch.float32, "gd", 8, counts, 50)
    assert "stop-check state (stride)" not in {item for _, item, _, _ in plain.memory}
    got = {what: n for what, n, _ in strided.counts}
    every = {what: n for what, n, _ in plain.counts}
    assert got["unlearn: optimiser steps (at most)"] == 50 + 5
    scored = "unlearn: sequences scored (at most)"
    assert got[scored] == every[scored] - (50 - 15) * 6 * 3  # 10 scored checks + 5 replayed, not 50


def test_unlearn_dry_run_plans_the_stride(tmp_path: Path, tiny_ckpt: Path,
                                                         tiny_world_dir: Path) -> None:
    args = ["unlearn", "--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out",
            str(tmp_path / "never"), "--dry-run"]
    plain = CliRunner().invoke(app, args)
    strided = CliRunner().invoke(app, [*args, "--stride", "5"])
    assert plain.exit_code == 0 and strided.exit_code == 0, plain.output + strided.output
    assert "stop-check state" not in plain.output and "stop-check state" in strided.output
    assert not (tmp_path / "never").exists()


def test_ssiuu_planned_state_is_what_its_loss_holds(tiny_ckpt: Path, tiny_world: QADataset,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Ssiuu's planned rows equal the bytes its loss holds at a regularised step: A_(t-1) between steps, and during
    the loss this step's gradient of P, A_t, the difference and the mask (what the fused regulariser keeps)."""
    from neuronscope.unlearn import ssiuu
    from neuronscope.unlearn.base import StepBatch, encode_items

    model = load_model(tiny_ckpt, bridge=False)
    method = METHODS["ssiuu"](model, tiny_world, UnlearnConfig())
    kept: list[torch.Tensor] = []
    real = ssiuu._FusedNegativeAttributionRegulariser.apply

    def capture(*args):  # noqa: ANN002, ANN202
        out = real(*args)
        kept.append(out)
        return out

    monkeypatch.setattr(ssiuu._FusedNegativeAttributionRegulariser, "apply", capture)
    forget, retain = tiny_world.items("forget", "base")[:4], tiny_world.items("retain", "base")[:4]
    batch = StepBatch(encode_items(model, forget), forget, encode_items(model, retain), retain, (0, 1, 2, 3))
    method.loss(batch, 1)  # the first step sets A_(t-1)
    prev = sum(a.numel() * a.element_size() for a in method.prev)
    method.loss(batch, 2)
    ctx = kept[0].grad_fn
    held = sum(t.numel() * t.element_size() for group in (ctx.d, ctx.masks, ctx.grads, method.prev) for t in group)
    trainable = sum(p.numel() for p in method.parameters())
    rows = {item: n for item, n, _ in METHODS["ssiuu"].extra_state(shape_from_config(model.hf.config),
                                                                    method.settings, trainable, 4, 50)}
    assert rows["A_(t-1)"] == prev == trainable * 4
    assert rows["in the loss: g_t, A_t, A_(t-1) - A_t, mask"] == held

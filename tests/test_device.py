"""--device / --dtype resolution, bfloat16 numerics, and the device-map (accelerate dispatch) path on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.hooks import AlignDevicesHook
from typer.testing import CliRunner

from neuronscope.attribution.neurons import attribute_neurons
from neuronscope.batching import encode
from neuronscope.cli import app
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models import device as dev
from neuronscope.models.handle import _check_placement, load_model
from neuronscope.scoring import answer_logprobs, evaluate

# every module of the tiny Llama placed explicitly: one device, but accelerate's hooks are attached all the same
CPU_MAP = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.norm": "cpu",
           "model.rotary_emb": "cpu", "lm_head": "cpu"}


def _no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "mps_available", lambda: False)


def _two_gpus(monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_gpu(monkeypatch)
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert dev.resolve_device(" CPU ") == torch.device("cpu")
    for spec, message in [("cuda", "CUDA is not available"), ("cuda:1", "CUDA is not available"),
                          ("mps", "MPS backend is not available"), ("gpu", "--device must be"),
                          ("cuda:x", "--device must be")]:
        with pytest.raises(NeuronscopeError, match=message):
            dev.resolve_device(spec)
    monkeypatch.setattr(dev, "mps_available", lambda: True)
    assert dev.resolve_device("auto") == torch.device("mps")
    _two_gpus(monkeypatch, bf16=True)
    assert dev.resolve_device("auto") == torch.device("cuda", 0)
    assert dev.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(NeuronscopeError, match=r"only 2 CUDA device\(s\) visible"):
        dev.resolve_device("cuda:2")


def test_resolve_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert dev.resolve_dtype("auto", cpu) is torch.float32
    assert dev.resolve_dtype("bf16", cpu) is torch.bfloat16 and dev.resolve_dtype("float16") is torch.float16
    assert dev.resolve_dtype(torch.float64) is torch.float64
    with pytest.raises(NeuronscopeError, match="--dtype must be"):
        dev.resolve_dtype("int8")
    _two_gpus(monkeypatch, bf16=True)
    assert dev.resolve_dtype("auto", gpu) is torch.bfloat16
    _two_gpus(monkeypatch, bf16=False)
    assert dev.resolve_dtype("auto", gpu) is torch.float32  # pre-Ampere: never float16 behind the user's back
    with pytest.raises(NeuronscopeError, match="does not support bfloat16"):
        dev.resolve_dtype("bfloat16", gpu)


def test_parse_device_map_and_offload_rejected(tmp_path: Path) -> None:
    assert dev.parse_device_map("auto") == "auto"
    assert dev.parse_device_map('{"model.layers.0": 0, "lm_head": "cuda:1"}') == {"model.layers.0": 0,
                                                                                  "lm_head": "cuda:1"}
    for bad in ("everywhere", "{not json", '["a"]'):
        with pytest.raises(NeuronscopeError, match="--device-map"):
            dev.parse_device_map(bad)
    _check_placement({"a": "cpu", "b": "cpu"}, tmp_path)  # all on the cpu: not offloading
    _check_placement({"a": 0, "b": 1}, tmp_path)
    for offloading in ({"a": 0, "b": "cpu"}, {"a": 0, "b": "disk"}):
        with pytest.raises(NeuronscopeError, match="offloads modules"):
            _check_placement(offloading, tmp_path)


def test_cli_unavailable_device_is_one_error_line(tiny_ckpt: Path, tiny_world_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    res = CliRunner().invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                   "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA is not available" in res.output
    res = CliRunner().invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                   "--device", "cuda:0", "--device-map", "auto"])
    assert res.exit_code == 2 and "not both" in res.output


def test_bfloat16_scores_and_attribution_reduce_in_float32(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    m32, m16 = load_model(tiny_ckpt), load_model(tiny_ckpt, dtype="bfloat16")
    assert m16.hf.dtype is torch.bfloat16
    items = tiny_world.forget[:6]
    batch = encode(m16.tokenizer, [it.question for it in items], [it.answer for it in items])
    with torch.no_grad():
        lp16 = answer_logprobs(m16.hf(input_ids=batch.input_ids).logits, batch)
        lp32 = answer_logprobs(m32.hf(input_ids=batch.input_ids).logits, batch)
    assert lp16.dtype is torch.float32
    torch.testing.assert_close(lp16, lp32, rtol=0.05, atol=0.1)  # bf16 weights: ~3 significant digits
    t16, t32 = attribute_neurons(m16, items), attribute_neurons(m32, items)
    assert t16["max"].dtype == np.float32 and np.isfinite(t16[["max", "min"]].to_numpy()).all()
    assert np.corrcoef(t16["max"], t32["max"])[0, 1] > 0.95


def test_device_map_dispatch_matches_plain_load(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    plain, mapped = load_model(tiny_ckpt), load_model(tiny_ckpt, device_map=CPU_MAP)
    assert mapped.device_map == CPU_MAP and mapped.device == torch.device("cpu")
    assert isinstance(mapped.hf._hf_hook, AlignDevicesHook)  # the dispatch path ran, hooks attached
    twin = mapped.bridge.original_model
    assert twin is not mapped.hf and twin.hf_device_map == CPU_MAP
    assert isinstance(twin.model.layers[0]._hf_hook, AlignDevicesHook)  # the twin carries its own hooks
    assert all(p is q for p, q in zip(mapped.hf.parameters(), twin.parameters(), strict=True))  # no copy

    items = tiny_world.forget[:5]
    batch = encode(plain.tokenizer, [it.question for it in items], [it.answer for it in items])
    calls = 0
    original = AlignDevicesHook.pre_forward

    def counting(self, module, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        nonlocal calls
        calls += 1
        return original(self, module, *args, **kwargs)

    with torch.no_grad():
        assert torch.equal(plain.hf(input_ids=batch.input_ids).logits, mapped.hf(input_ids=batch.input_ids).logits)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(AlignDevicesHook, "pre_forward", counting)
            bridged = mapped.bridge(batch.input_ids)
        assert torch.equal(plain.bridge(batch.input_ids), bridged)
    assert calls >= 2  # the bridge's forward went through the twin's device hooks (embedding, blocks, ...)
    a, b = attribute_neurons(plain, items), attribute_neurons(mapped, items)
    np.testing.assert_array_equal(a[["max", "max_pos", "min"]].to_numpy(), b[["max", "max_pos", "min"]].to_numpy())
    assert evaluate(plain, tiny_world).to_json() == evaluate(mapped, tiny_world).to_json()


def test_clone_of_dispatched_model_is_independent_and_dispatched(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    mapped = load_model(tiny_ckpt, device_map=CPU_MAP)
    clone = mapped.clone()
    assert clone.device_map == CPU_MAP and isinstance(clone.hf._hf_hook, AlignDevicesHook)
    pairs = list(zip(mapped.hf.parameters(), clone.hf.parameters(), strict=True))
    assert all(p is not q and p.data_ptr() != q.data_ptr() and torch.equal(p, q) for p, q in pairs)
    items = tiny_world.forget[:4]
    ids = encode(mapped.tokenizer, [it.question for it in items], [it.answer for it in items]).input_ids
    with torch.no_grad():
        before = mapped.hf(input_ids=ids).logits
        assert torch.equal(clone.hf(input_ids=ids).logits, before)
        clone.hf.lm_head.weight.mul_(0.5)  # train the clone: the original must not move
        assert torch.equal(mapped.hf(input_ids=ids).logits, before)
        assert not torch.equal(clone.hf(input_ids=ids).logits, before)
        after = clone.hf(input_ids=ids).logits
        torch.testing.assert_close(clone.bridge(ids), after, rtol=1e-4, atol=1e-5)  # its bridge sees its weights


def test_dispatched_model_trains_and_its_bridge_follows(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    from neuronscope.training import answer_nll

    mapped = load_model(tiny_ckpt, device_map=CPU_MAP)
    items = tiny_world.forget[:4]
    batch = encode(mapped.tokenizer, [it.question for it in items], [it.answer for it in items])
    opt = torch.optim.AdamW(mapped.hf.parameters(), lr=1e-2)
    mapped.hf.train()
    answer_nll(mapped.hf(input_ids=batch.input_ids).logits, batch).backward()
    opt.step()
    mapped.hf.eval()
    with torch.no_grad():
        torch.testing.assert_close(mapped.bridge(batch.input_ids), mapped.hf(input_ids=batch.input_ids).logits,
                                   rtol=1e-4, atol=1e-5)

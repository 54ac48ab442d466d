"""trust_remote_code: a checkpoint that ships its own model code is refused unless asked for, then runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import load_model


@pytest.fixture()
def remote_ckpt(tiny_ckpt: Path, tmp_path: Path) -> Path:
    """The tiny Llama re-labelled as an architecture transformers does not know, with its code in the directory."""
    out = tmp_path / "remote"
    shutil.copytree(tiny_ckpt, out)
    (out / "configuration_tinyremote.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyRemoteConfig(LlamaConfig):\n"
        "    model_type = 'tinyremote'\n")
    (out / "modeling_tinyremote.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tinyremote import TinyRemoteConfig\n\n\n"
        "class TinyRemoteForCausalLM(LlamaForCausalLM):\n    config_class = TinyRemoteConfig\n")
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(model_type="tinyremote", architectures=["TinyRemoteForCausalLM"],
               auto_map={"AutoConfig": "configuration_tinyremote.TinyRemoteConfig",
                         "AutoModelForCausalLM": "modeling_tinyremote.TinyRemoteForCausalLM"})
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def test_remote_code_is_refused_by_default(remote_ckpt: Path, tiny_world_dir: Path) -> None:
    with pytest.raises(NeuronscopeError, match="ships its own model code.*--trust-remote-code"):
        load_model(remote_ckpt, bridge=False)
    r = CliRunner().invoke(app, ["eval", "--ckpt", str(remote_ckpt), "--data", str(tiny_world_dir)])
    assert r.exit_code == 2 and "--trust-remote-code" in r.output


def test_remote_code_runs_when_asked(remote_ckpt: Path, tiny_ckpt: Path, tiny_world_dir: Path) -> None:
    model = load_model(remote_ckpt, bridge=False, trust_remote_code=True)
    assert type(model.hf).__name__ == "TinyRemoteForCausalLM"
    ids = torch.tensor([[1, 5, 6, 7]])
    plain = load_model(tiny_ckpt, bridge=False)
    assert torch.equal(model.hf(input_ids=ids).logits, plain.hf(input_ids=ids).logits)  # same weights, same maths
    r = CliRunner().invoke(app, ["eval", "--ckpt", str(remote_ckpt), "--data", str(tiny_world_dir),
                                 "--trust-remote-code", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["fs"] >= 0.9

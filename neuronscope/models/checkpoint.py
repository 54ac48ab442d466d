"""What a checkpoint directory must hold before any weights are read, checked from its files alone.

No torch or transformers here: a command given a wrong --ckpt says so in a fraction of a second, before it imports
the libraries that loading a model needs (`neuronscope.models.handle.load_model` runs the same check).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError


def check_checkpoint(path: Path) -> dict[str, Any]:
    """`path`'s config.json, once the directory is known to be a safetensors causal-LM checkpoint."""
    if not path.exists():
        raise NeuronscopeError(f"{path}: checkpoint directory not found")
    if not path.is_dir():
        raise NeuronscopeError(f"{path}: a checkpoint must be a directory, not a file")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise NeuronscopeError(f"{path}: not an HF checkpoint (no config.json)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise NeuronscopeError(f"{cfg_file}: invalid JSON ({e.msg})") from None
    except (UnicodeDecodeError, OSError) as e:
        raise NeuronscopeError(f"{cfg_file}: unreadable ({e})") from None
    if not isinstance(cfg, dict):
        raise NeuronscopeError(f"{cfg_file}: expected a JSON object")
    archs = cfg.get("architectures") or []
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise NeuronscopeError(
            f"{path}: not a causal-LM checkpoint (architectures: {', '.join(archs) or 'none'})"
        )
    if not list(path.glob("*.safetensors")):
        raise NeuronscopeError(f"{path}: no .safetensors weights (only safetensors checkpoints are loaded)")
    return cfg

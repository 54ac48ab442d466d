"""Config entries that stand for things neuronscope makes itself, resolved to paths before the config is checked.

    [base] ckpt = "pretrained:smollm2-135m"    the model pulled from its installed package into the cache
                                               (neuronscope.models.pretrained.ensure; pulled on first use)
    [data.real_facts] countries = 40, ...      the real-facts dataset built for base.ckpt (RealFactsConfig fields),
                                               built on first use into the cache and reused while the checkpoint,
                                               the config and the source packages are unchanged
    [data.synthetic_people] people = 40, ...   TOFU-style: the synthetic world's people (WorldConfig fields) with
                                               real utility questions base.ckpt answers (cached the same way)

The cache is $NEURONSCOPE_CACHE or ~/.cache/neuronscope. Both steps are slow only the first time (a pull ~15-40 s;
the dataset scores every candidate question once).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError

PRETRAINED_PREFIX = "pretrained:"


def _ckpt_path(value: str, base_dir: Path | None) -> Path:
    path = Path(value)
    return path if base_dir is None or path.is_absolute() else base_dir / path


def real_facts_dir(ckpt: Path, table: dict[str, Any], where: str) -> Path:
    """The cached real-facts dataset for checkpoint `ckpt` and [data.real_facts] `table`, built if missing."""
    from neuronscope.data.real_facts import RealFactsConfig, _sources, build_real_facts
    from neuronscope.data.schema import save_dataset
    from neuronscope.experiment.cache import file_sha256
    from neuronscope.experiment.config import _dataclass_from
    from neuronscope.io import atomic_path
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import cache_dir

    cfg = _dataclass_from(RealFactsConfig, table, where)
    try:
        cfg.check()
    except NeuronscopeError as e:
        raise NeuronscopeError(f"{where}: {e}") from None
    if not (ckpt / "config.json").is_file():
        raise NeuronscopeError(f"{where}: needs base.ckpt, an HF checkpoint directory ({ckpt} is not one)")
    weights = {f.name: file_sha256(f) for f in sorted(ckpt.glob("*.safetensors"))}
    key = json.dumps({"cfg": {**table, "attributes": list(cfg.attributes)}, "weights": weights,
                      "sources": _sources()}, sort_keys=True, default=str)
    out = cache_dir() / "data" / f"real-facts-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not (out / "world.json").is_file():
        ds = build_real_facts(load_model(ckpt, bridge=False), cfg)
        with atomic_path(out, directory=True) as tmp:
            save_dataset(ds, tmp)
    return out


def synthetic_people_dir(ckpt: Path, table: dict[str, Any], where: str) -> Path:
    """The cached TOFU-style dataset ([data.synthetic_people]: WorldConfig fields) for checkpoint `ckpt`."""
    from neuronscope.data.real_facts import _sources, synthetic_people
    from neuronscope.data.schema import save_dataset
    from neuronscope.data.world import WorldConfig
    from neuronscope.experiment.cache import file_sha256
    from neuronscope.experiment.config import _dataclass_from
    from neuronscope.io import atomic_path
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import cache_dir

    world = _dataclass_from(WorldConfig, table, where)
    try:
        world.check()
    except NeuronscopeError as e:
        raise NeuronscopeError(f"{where}: {e}") from None
    if not (ckpt / "config.json").is_file():
        raise NeuronscopeError(f"{where}: needs base.ckpt, an HF checkpoint directory ({ckpt} is not one)")
    weights = {f.name: file_sha256(f) for f in sorted(ckpt.glob("*.safetensors"))}
    key = json.dumps({"world": table, "weights": weights, "sources": _sources()}, sort_keys=True, default=str)
    out = cache_dir() / "data" / f"synthetic-people-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not (out / "world.json").is_file():
        ds = synthetic_people(load_model(ckpt, bridge=False), world)
        with atomic_path(out, directory=True) as tmp:
            save_dataset(ds, tmp)
    return out


BUILDERS = {"real_facts": real_facts_dir, "synthetic_people": synthetic_people_dir}


def resolve_builtins(doc: dict[str, Any], source: str, base_dir: Path | None) -> dict[str, Any]:
    """A copy of the parsed TOML with `pretrained:NAME` and [data.real_facts] replaced by real paths."""
    base, data = doc.get("base"), doc.get("data")
    built = [k for k in BUILDERS if isinstance(data, dict) and k in data]
    if not (isinstance(base, dict) and str(base.get("ckpt", "")).startswith(PRETRAINED_PREFIX)) and not built:
        return doc
    doc = copy.deepcopy(doc)
    base, data = doc.get("base"), doc.get("data")
    if isinstance(base, dict) and isinstance(base.get("ckpt"), str) and base["ckpt"].startswith(PRETRAINED_PREFIX):
        from neuronscope.models.pretrained import ensure

        try:
            base["ckpt"] = str(ensure(base["ckpt"][len(PRETRAINED_PREFIX):]))
        except NeuronscopeError as e:
            raise NeuronscopeError(f"{source}: base.ckpt: {e}") from None
    if len(built) > 1:
        raise NeuronscopeError(f"{source}: [data]: give one of {', '.join(f'[data.{k}]' for k in built)}")
    for name in built:
        table = data.pop(name)
        where = f"{source}: data.{name}"
        if not isinstance(table, dict):
            raise NeuronscopeError(f"{where}: must be a table")
        if "path" in data or "dir" in data or "world" in data:
            raise NeuronscopeError(f"{where}: give either [data.{name}] or data.path / [data.world], not both")
        ckpt = base.get("ckpt") if isinstance(base, dict) else None
        if not isinstance(ckpt, str):
            raise NeuronscopeError(f"{where}: is built for base.ckpt: set base.ckpt")
        data["path"] = str(BUILDERS[name](_ckpt_path(ckpt, base_dir), table, where))
    return doc


__all__ = ["BUILDERS", "PRETRAINED_PREFIX", "real_facts_dir", "resolve_builtins", "synthetic_people_dir"]

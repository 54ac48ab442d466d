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
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.models.pretrained_specs import PRETRAINED_PREFIX

TableParser = Callable[[type, dict[str, Any], str], Any]  # (settings class, TOML table, where) -> settings



def _first_use(msg: str) -> None:
    """One line on stderr before a first-use step that takes minutes, so a command is not silent meanwhile (the
    config is resolved before any run directory or log exists)."""
    print(f"first use: {msg}", file=sys.stderr, flush=True)


def pretrained_checkpoint(name: str) -> Path:
    """The cached checkpoint of pretrained model `name`, pulled from its installed package on first use."""
    from neuronscope.models.pretrained import PROVENANCE, default_dir, ensure

    if not (default_dir(name) / PROVENANCE).is_file():
        _first_use(f"pulling {name} from its installed package into {default_dir(name)} (15-40 s)")
    return ensure(name)


def _ckpt_path(value: str, base_dir: Path | None) -> Path:
    path = Path(value)
    return path if base_dir is None or path.is_absolute() else base_dir / path


@dataclass(frozen=True)
class Builder:
    """A dataset neuronscope builds for a checkpoint: its settings class, the cache-key name of its table, and the
    function that builds it (model, settings) -> QADataset."""

    prefix: str  # cache directory name: <prefix>-<key>
    settings: Callable[[], type]
    key_name: str  # the table's name in the cache key (kept from the first release: existing caches stay valid)
    build: Callable[[Any, Any], Any]
    keyed: Callable[[dict[str, Any], Any], dict[str, Any]] = lambda table, cfg: table  # the table as keyed


def _real_facts() -> type:
    from neuronscope.data.real_facts import RealFactsConfig

    return RealFactsConfig


def _world() -> type:
    from neuronscope.data.world import WorldConfig

    return WorldConfig


def _build_real_facts(model: Any, cfg: Any) -> Any:
    from neuronscope.data.real_facts import build_real_facts

    return build_real_facts(model, cfg)


def _build_people(model: Any, cfg: Any) -> Any:
    from neuronscope.data.real_facts import synthetic_people

    return synthetic_people(model, cfg)


def _attributes_as_parsed(table: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """Real facts are keyed by the attribute list as parsed: a string and a list of the same names key the same."""
    return {**table, "attributes": list(cfg.attributes)}


BUILDERS = {"real_facts": Builder("real-facts", _real_facts, "cfg", _build_real_facts, _attributes_as_parsed),
            "synthetic_people": Builder("synthetic-people", _world, "world", _build_people)}


def built_dataset_dir(name: str, ckpt: Path, table: dict[str, Any], where: str, parse: TableParser) -> Path:
    """The cached dataset of builder `name` for checkpoint `ckpt` and its config table, built if missing; reused
    while the checkpoint's weights, the table and the source packages are unchanged."""
    from neuronscope.data.real_facts import _sources
    from neuronscope.data.schema import save_dataset
    from neuronscope.io import atomic_path, file_sha256
    from neuronscope.models.handle import load_model
    from neuronscope.models.pretrained import cache_dir

    builder = BUILDERS[name]
    cfg = parse(builder.settings(), table, where)
    try:
        cfg.check()
    except NeuronscopeError as e:
        raise NeuronscopeError(f"{where}: {e}") from None
    if not (ckpt / "config.json").is_file():
        raise NeuronscopeError(f"{where}: needs base.ckpt, an HF checkpoint directory ({ckpt} is not one)")
    weights = {f.name: file_sha256(f) for f in sorted(ckpt.glob("*.safetensors"))}
    key = json.dumps({builder.key_name: builder.keyed(table, cfg), "weights": weights, "sources": _sources()},
                     sort_keys=True, default=str)
    out = cache_dir() / "data" / f"{builder.prefix}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not (out / "world.json").is_file():
        _first_use(f"building {where.split(': ')[-1]} for {ckpt} into {out} (it scores every candidate question "
                   "once; minutes on a CPU)")
        ds = builder.build(load_model(ckpt, bridge=False), cfg)
        with atomic_path(out, directory=True) as tmp:
            save_dataset(ds, tmp)
    return out


def resolve_builtins(doc: dict[str, Any], source: str, base_dir: Path | None, parse: TableParser) -> dict[str, Any]:
    """A copy of the parsed TOML with `pretrained:NAME` and [data.real_facts] replaced by real paths. `parse`
    turns a builder's table into its settings dataclass (the config reader's own checker)."""
    base, data = doc.get("base"), doc.get("data")
    built = [k for k in BUILDERS if isinstance(data, dict) and k in data]
    if not (isinstance(base, dict) and str(base.get("ckpt", "")).startswith(PRETRAINED_PREFIX)) and not built:
        return doc
    doc = copy.deepcopy(doc)
    base, data = doc.get("base"), doc.get("data")
    if isinstance(base, dict) and isinstance(base.get("ckpt"), str) and base["ckpt"].startswith(PRETRAINED_PREFIX):
        try:
            base["ckpt"] = str(pretrained_checkpoint(base["ckpt"][len(PRETRAINED_PREFIX):]))
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
        data["path"] = str(built_dataset_dir(name, _ckpt_path(ckpt, base_dir), table, where, parse))
    return doc


__all__ = ["BUILDERS", "PRETRAINED_PREFIX", "Builder", "built_dataset_dir", "pretrained_checkpoint", "resolve_builtins"]

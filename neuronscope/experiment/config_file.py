"""Where an experiment config comes from: a TOML file, or a built-in profile's text. Read here, checked in
`experiment.config`.

No torch here (the schema in `experiment.config` needs the recipes and the method registry, which import it): a
missing or malformed config file, or an unknown profile, is one error line before torch is imported.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError

PROFILES: tuple[str, ...] = ("full", "small", "smollm2-faithun", "smollm2-tofu")


def read_config(path: Path) -> dict[str, Any]:
    """The parsed TOML of config file `path`."""
    if not path.is_file():
        raise NeuronscopeError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise NeuronscopeError(f"{path}: invalid TOML ({e})") from None


def check_profile(name: str) -> None:
    if name not in PROFILES:
        raise NeuronscopeError(f"--profile must be one of {', '.join(PROFILES)}, got {name!r}")


def profile_text(name: str) -> str:
    """The TOML of built-in profile `name` (package data, identical to configs/*.toml)."""
    from importlib import resources

    return resources.files("neuronscope.experiment").joinpath(f"profiles/{name}.toml").read_text("utf-8")

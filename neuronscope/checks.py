"""Value checks shared by every config and flag: one NeuronscopeError naming the value as the user wrote it.

A config dataclass checks its fields through these with a `name` function that words a field the way the user
gave it: `--d-model` on the command line, `base.toy.d_model` in a TOML config. NaN and infinity are refused
wherever a number must be finite: `nan > 0` is False but `nan <= 0` is False too, so a check written as
`if lr <= 0` lets NaN through to fail minutes later inside AdamW.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from neuronscope.errors import NeuronscopeError, SettingError  # noqa: F401  (SettingError: re-exported for the value checks)

Namer = Callable[[str], str]


def flag_name(field: str) -> str:
    """A dataclass field as its command-line flag: `toy.d_model` -> `--d-model`, `lambda_` -> `--lambda`."""
    return "--" + field.rsplit(".", 1)[-1].rstrip("_").replace("_", "-")


def positive(value: float, name: str) -> None:
    """A finite number > 0 (a learning rate, a temperature)."""
    if not (value > 0 and math.isfinite(value)):
        raise SettingError(name, f"must be a positive number, got {value}")


def non_negative(value: float, name: str) -> None:
    """A finite number >= 0 (a weight, a decay)."""
    if not (value >= 0 and math.isfinite(value)):
        raise SettingError(name, f"must be a non-negative number, got {value}")


def at_least(value: int, low: int, name: str) -> None:
    if value < low:
        raise SettingError(name, f"must be at least {low}, got {value}")


def fraction(value: float, name: str, *, open_low: bool = False) -> None:
    """A number in [0, 1], or in (0, 1] with `open_low`; NaN fails both."""
    ok = (0 < value <= 1) if open_low else (0 <= value <= 1)
    if not ok:
        raise SettingError(name, f"must lie in {'(' if open_low else '['}0, 1], got {value}")


def learning_rates(values: Iterable[float], name: str) -> None:
    """Every rate of a grid finite and positive."""
    for v in values:
        if not (v > 0 and math.isfinite(v)):
            raise NeuronscopeError(f"{name}: learning rates must be positive numbers, got {v}")

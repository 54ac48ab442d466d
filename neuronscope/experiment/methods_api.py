"""The seam between the grid and the unlearning package: what the grid (and the config reader) use of it.

`unlearn_api()` returns the real `neuronscope.unlearn`; tests swap in fake methods by replacing this module's
`unlearn_api`, which every caller reads through the module (`methods_api.unlearn_api()`), never by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class UnlearnAPI:
    """What the grid uses of the unlearning package: the loop, its config class, the method names, lr_search."""

    unlearn: Callable[..., Any]
    config_cls: type
    methods: tuple[str, ...]
    lr_search: Callable[..., Any] | None = None

    def config_fields(self) -> set[str]:
        return {f.name for f in fields(self.config_cls)}

    def config_default(self, name: str) -> Any:
        return getattr(self.config_cls(), name)


def unlearn_api() -> UnlearnAPI:
    """The real `neuronscope.unlearn` (unlearn, UnlearnConfig, METHODS, lr_search)."""
    from neuronscope.unlearn import METHODS, UnlearnConfig, lr_search, unlearn

    return UnlearnAPI(unlearn, UnlearnConfig, tuple(METHODS), lr_search)


__all__ = ["UnlearnAPI", "unlearn_api"]

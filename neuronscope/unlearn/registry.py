"""Methods by name. Adding a method means one small file with a `@register` class, imported in __init__."""

from __future__ import annotations

from neuronscope.errors import NeuronscopeError
from neuronscope.unlearn.base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise NeuronscopeError(f"--method: unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]

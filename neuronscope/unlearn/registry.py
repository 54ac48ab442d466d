"""Methods by name. Adding a method means one small file with a `@register` class, imported in __init__
(docs/architecture.md, "Adding an unlearning method")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronscope.errors import NeuronscopeError

if TYPE_CHECKING:  # the registry holds classes; base.py asks it for them (settings, help): no cycle at run time
    from neuronscope.unlearn.base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    for other in METHODS.values():  # a shared public key must mean the same kind of value
        for key in set(cls.settings_cls.keys) & set(other.settings_cls.keys):
            mine = type(getattr(cls.settings_cls(), cls.settings_cls.keys[key]))
            theirs = type(getattr(other.settings_cls(), other.settings_cls.keys[key]))
            if mine is not theirs:
                raise ValueError(f"setting {key!r} of {cls.name} is a {mine.__name__}, of {other.name} a "
                                 f"{theirs.__name__}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise NeuronscopeError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]

"""Methods by name. Adding a method means one small file with a `@register` class and its row in `catalog.py`
(docs/architecture.md, "Adding an unlearning method"). A method's module is imported when its class is first asked
for, so naming and listing methods (the catalog) never imports torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neuronscope.unlearn.catalog import CATALOG, MethodInfo, check_method

if TYPE_CHECKING:  # the registry holds classes; base.py asks it for them (settings, help): no cycle at run time
    from neuronscope.unlearn.base import Method

METHODS: dict[str, type[Method]] = {}  # complete and in the catalog's order once all_methods() has run


def class_listing(cls: type[Method]) -> dict[str, Any]:
    """What the class itself says of the catalog row's fields (summary, keys, fields, defaults, help); a default as
    its repr, so 1, 1.0 and True differ."""
    settings, defaults = cls.settings_cls, cls.settings_cls()
    return {"method": cls.name, "summary": cls.summary,
            "settings": {k: {"field": f, "default": repr(getattr(defaults, f)), "help": settings.help.get(k, "")}
                         for k, f in settings.keys.items()}}


def catalog_listing(info: MethodInfo) -> dict[str, Any]:
    """The catalog row in `class_listing`'s form."""
    return {"method": info.name, "summary": info.summary,
            "settings": {s.key: {"field": s.field, "default": repr(s.default), "help": s.help} for s in info.settings}}


def check_against_catalog(cls: type[Method]) -> None:
    """Refuse a class without a catalog row, or one whose summary or settings (keys, fields, defaults, help) are
    not its row's: what `neuronscope methods` lists, read from the catalog, is then what the class does."""
    if cls.name not in CATALOG:
        raise ValueError(f"method {cls.name!r} has no row in neuronscope/unlearn/catalog.py")
    mine, row = class_listing(cls), catalog_listing(CATALOG[cls.name])
    if mine != row:
        raise ValueError(f"method {cls.name!r} disagrees with its catalog row: {mine} != {row}")


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    check_against_catalog(cls)
    for other in METHODS.values():  # a shared public key must mean the same kind of value
        for key in set(cls.settings_cls.keys) & set(other.settings_cls.keys):
            mine = type(getattr(cls.settings_cls(), cls.settings_cls.keys[key]))
            theirs = type(getattr(other.settings_cls(), other.settings_cls.keys[key]))
            if mine is not theirs:
                raise ValueError(f"setting {key!r} of {cls.name} is a {mine.__name__}, of {other.name} a "
                                 f"{theirs.__name__}")
    METHODS[cls.name] = cls
    return cls


def all_methods() -> dict[str, type[Method]]:
    """Every method's class, by name in the catalog's order (their modules imported on the first call)."""
    for info in CATALOG.values():
        if info.name not in METHODS:
            importlib.import_module(f"neuronscope.unlearn.{info.module}")
        if info.name not in METHODS:
            raise ValueError(f"neuronscope.unlearn.{info.module} registers no method {info.name!r}")
    if list(METHODS) != list(CATALOG):  # modules imported in another order: the catalog's, in place
        classes = dict(METHODS)
        METHODS.clear()
        METHODS.update((name, classes[name]) for name in CATALOG)
    return METHODS


def get_method(name: str) -> type[Method]:
    check_method(name)
    return all_methods()[name]

"""The torch-free catalog of methods and the method classes agree, so `neuronscope methods` (which reads only the
catalog) lists what the classes do; a class that disagrees with its row is refused when it registers."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.unlearn import METHODS
from neuronscope.unlearn.catalog import CATALOG
from neuronscope.unlearn.npo import NPO, NPOSettings
from neuronscope.unlearn.registry import check_against_catalog


def test_every_catalog_row_is_a_registered_class_in_the_same_order() -> None:
    assert list(METHODS) == list(CATALOG)
    for name, cls in METHODS.items():
        assert cls.name == name and cls.__module__ == f"neuronscope.unlearn.{CATALOG[name].module}"


@pytest.mark.parametrize("name", list(CATALOG))
def test_the_class_declares_its_catalog_row(name: str) -> None:
    """Read from the class itself (not through the catalog helpers): summary, keys -> fields, defaults, help."""
    cls, row = METHODS[name], CATALOG[name]
    settings, defaults = cls.settings_cls, cls.settings_cls()
    assert cls.summary == row.summary
    assert settings.keys == {s.key: s.field for s in row.settings}
    assert settings.help == {s.key: s.help for s in row.settings}
    hints = typing.get_type_hints(settings)
    for s in row.settings:
        value = getattr(defaults, s.field)
        assert value == s.default and type(value) is type(s.default), (s.key, value, s.default)
        hint = hints[s.field]
        allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
        assert type(s.default) in allowed, (s.key, hint)  # the default is a value of the field's type


def test_methods_json_is_what_the_classes_declare() -> None:
    """The CLI's listing (catalog) against one built from the classes, as the listing was built before."""
    res = CliRunner().invoke(app, ["methods", "--json"])
    assert res.exit_code == 0, res.output
    from_classes = [{"method": n, "summary": c.summary,
                     "settings": {k: {"default": getattr(c.settings_cls(), f), "help": c.settings_cls.help[k]}
                                  for k, f in c.settings_cls.keys.items()}} for n, c in METHODS.items()]
    assert json.loads(res.output) == json.loads(json.dumps(from_classes, default=str))


def test_a_class_that_disagrees_with_its_row_is_refused() -> None:
    @dataclass(frozen=True)
    class OtherBeta(NPOSettings):
        beta: float = 0.2

        keys: ClassVar[dict[str, str]] = {"beta": "beta"}

    class Drifted(NPO):
        settings_cls = OtherBeta

    class Renamed(NPO):
        summary = "another summary"

    class Unlisted(NPO):
        name = "not-in-the-catalog"

    check_against_catalog(NPO)  # the real one agrees
    for cls, message in ((Drifted, "disagrees with its catalog row"), (Renamed, "disagrees with its catalog row"),
                         (Unlisted, "has no row")):
        with pytest.raises(ValueError, match=message):
            check_against_catalog(cls)

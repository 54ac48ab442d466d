"""The calibrated verdict and its evidence as a terminal table (shared by `attribute`, `calibrate` and `run`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_STYLE = {"present": "red", "absent": "green", "undetermined": "yellow", "not run": "dim"}


def verdict_table(title: str, verdict: dict[str, Any]) -> Table:
    table = Table(title=title, caption=verdict["reason"])
    for col in ("analysis", "says", "used by the verdict", "detail"):
        table.add_column(col)
    for e in verdict["evidence"]:
        table.add_row(e["analysis"], f"[{_STYLE.get(e['says'], '')}]{e['says']}[/]",
                      "yes" if e["calibrated"] else "no (shown only)", e.get("detail") or "")
    return table


def print_verdict(console: Console, verdict: dict[str, Any], name: str = "") -> None:
    label = verdict["label"].upper()
    console.print(verdict_table(f"verdict{f' for {name}' if name else ''}: {label}", verdict))

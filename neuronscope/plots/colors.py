"""One method -> colour map shared by every figure, so a method looks the same in Figures 2-6 and the report."""

from __future__ import annotations

METHOD_COLORS: dict[str, str] = {
    "base": "#7f7f7f",
    "oracle": "#000000",
    "ga": "#d62728",
    "gd": "#ff7f0e",
    "dpo": "#9467bd",
    "npo": "#8c564b",
    "rmu": "#e377c2",
    "ssiuu": "#2ca02c",
}
_EXTRA = ["#1f77b4", "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173", "#3182bd"]


def method_color(name: str) -> str:
    """The colour of a method (or model) name; an attacked model ('ga+benign') takes its method's colour.

    Unknown names get a stable colour from a spare palette (hash of the name), never one of the known methods'.
    """
    key = name.split("+", 1)[0].strip().lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return _EXTRA[sum(map(ord, key)) % len(_EXTRA)]


__all__ = ["METHOD_COLORS", "method_color"]

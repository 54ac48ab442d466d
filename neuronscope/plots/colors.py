"""One model -> colour map shared by every figure, so a method looks the same in Figures 2-6 and the report.

The known methods keep fixed colours; other names take the first unused spare colour, in the order a figure
lists them, so no two series of one figure share a colour for the 10 known + 8 other names.
"""

from __future__ import annotations

from collections.abc import Iterable

METHOD_COLORS: dict[str, str] = {
    "base": "#7f7f7f",
    "oracle": "#000000",
    "ga": "#d62728",
    "gd": "#ff7f0e",
    "dpo": "#9467bd",
    "npo": "#8c564b",
    "rmu": "#e377c2",
    "ssiuu": "#2ca02c",
    "ssiuu_anchor": "#bcbd22",
    "ssiuu_neuron": "#17becf",
}
# spare colours: each at least ~80 apart (redmean RGB distance) from every fixed colour and from each other
_EXTRA = ["#1f77b4", "#393b79", "#e7ba52", "#7b4173", "#9ecae1", "#637939", "#ff9896", "#c49c94"]
# neutral keys for D+ (erased) and D- (hidden) when a figure colours by method: never a method's colour
D_PLUS_KEY = "#6b6b6b"
D_MINUS_KEY = "#2b2b2b"


def _key(name: str) -> str:
    return name.split("+", 1)[0].strip().lower()


def method_color(name: str) -> str:
    """The colour of one method (or model) name; an attacked model ('ga+benign') takes its method's colour.

    Unknown names get a stable spare colour (hash of the name), never a known method's. Figures that draw several
    names use `method_colors`, which also keeps unknown names apart from each other.
    """
    key = _key(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return _EXTRA[sum(map(ord, key)) % len(_EXTRA)]


def method_colors(names: Iterable[str]) -> dict[str, str]:
    """{name: colour} for the names one figure draws: known methods fixed, the rest distinct spare colours."""
    names = list(dict.fromkeys(names))
    out = {n: METHOD_COLORS[_key(n)] for n in names if _key(n) in METHOD_COLORS}
    used = set(out.values())
    by_key: dict[str, str] = {}
    for n in names:
        if n in out:
            continue
        k = _key(n)
        if k not in by_key:
            colour = method_color(n)
            if colour in used:  # past 8 other names colours repeat: no palette stays legible beyond that
                colour = next((c for c in _EXTRA if c not in used), colour)
            by_key[k] = colour
            used.add(colour)
        out[n] = by_key[k]
    return out


__all__ = ["D_MINUS_KEY", "D_PLUS_KEY", "METHOD_COLORS", "method_color", "method_colors"]

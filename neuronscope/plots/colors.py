"""One model -> colour map shared by every figure, so a method looks the same in Figures 2-6 and the report.

The original methods keep fixed colours; a method registered later takes a spare colour by registration order
(`registered_colors`); other names take the first unused spare colour, in the order a figure lists them, so no two
series of one figure share a colour for the 10 fixed + 8 other names.
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


def registered_colors() -> dict[str, str]:
    """A spare colour for each registered unlearning method without a fixed one, in registration order, so a method
    added to the registry has the same colour in every figure without an edit here."""
    from neuronscope.unlearn.catalog import CATALOG  # read when a name is not a fixed one (no torch)

    names = [n for n in CATALOG if n.replace("-", "_") not in METHOD_COLORS]
    return {n.replace("-", "_"): _EXTRA[i % len(_EXTRA)] for i, n in enumerate(names)}


def method_color(name: str) -> str:
    """The colour of one method (or model) name; an attacked model ('ga+benign') takes its method's colour.

    Fixed colours first, then registered methods' (`registered_colors`); other names get a stable spare colour
    (hash of the name), never a fixed one. Figures that draw several names use `method_colors`, which also keeps
    the names of one figure apart from each other.
    """
    key = _key(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    registered = registered_colors()
    if key.replace("-", "_") in registered:
        return registered[key.replace("-", "_")]
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


__all__ = ["D_MINUS_KEY", "D_PLUS_KEY", "METHOD_COLORS", "method_color", "method_colors", "registered_colors"]

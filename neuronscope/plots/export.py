"""Static export (PNG, SVG, PDF) through kaleido and a locally installed Chromium; nothing is downloaded.

kaleido 1.x drives a Chrome/Chromium through choreographer; it is given the browser's path explicitly (found on
PATH, or named by NEURONSCOPE_BROWSER / BROWSER_PATH), MathJax is off and plotly.js comes from the installed
plotly package, so export works offline. The legend is re-planned for the export width (print layout).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import plotly.graph_objects as go

from neuronscope.errors import NeuronscopeError
from neuronscope.plots.layout import LEGEND_ROW, WIDTH, legend_rows

STATIC = ("png", "svg", "pdf")
FORMATS = ("html", *STATIC)
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def parse_formats(text: str) -> list[str]:
    """'html,png' -> ['html', 'png']; an unknown format is a user error."""
    formats = list(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise NeuronscopeError(f"--format: unknown format {', '.join(bad) or repr(text)} "
                               f"(choose from {', '.join(FORMATS)})")
    return formats


def find_browser() -> str | None:
    """The Chromium kaleido should drive: NEURONSCOPE_BROWSER, BROWSER_PATH, else the first on PATH."""
    for var in ("NEURONSCOPE_BROWSER", "BROWSER_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def check_static_export() -> str:
    """The browser path, after checking kaleido and a browser are there; else one clear user error."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise NeuronscopeError("static export needs kaleido: pip install 'neuronscope[export]'") from None
    browser = find_browser()
    if browser is None or not Path(browser).is_file():
        raise NeuronscopeError("static export needs Chromium (Debian/Ubuntu: apt-get install chromium), or set "
                               "NEURONSCOPE_BROWSER to a Chrome/Chromium executable")
    return browser


def for_print(fig: go.Figure, width: int) -> go.Figure:
    """A copy laid out for a fixed `width`: legend rows re-planned for it, the height grown to hold them."""
    out = go.Figure(fig)
    names = [t.name for t in out.data if t.name and t.showlegend is not False]
    extra = (legend_rows(names, width) - legend_rows(names, WIDTH)) * LEGEND_ROW if out.layout.showlegend else 0
    height = (out.layout.height or 450) + extra
    out.update_layout(width=width, height=height,
                      margin={"b": (out.layout.margin.b or 60) + extra})
    return out


def export_static(figures: Mapping[str, go.Figure], out: Path, formats: Sequence[str], width: int = WIDTH,
                  scale: float = 1.0) -> list[Path]:
    """Write every figure as `<stem>.<format>` (png/svg/pdf) at `width` px (x `scale` for PNG) in one browser."""
    import kaleido

    browser = check_static_export()
    formats = [f for f in formats if f in STATIC]
    if not formats or not figures:
        return []
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        specs = []
        for stem, fig in figures.items():
            f = for_print(fig, width)
            for fmt in formats:
                specs.append({"fig": f.to_plotly_json(), "path": str(Path(tmp) / f"{stem}.{fmt}"),
                              "opts": {"format": fmt, "width": width, "height": int(f.layout.height),
                                       "scale": scale if fmt == "png" else 1}})
        kaleido.write_fig_from_object_sync(specs, kopts={"path": browser, "mathjax": False})
        written = []
        for spec in specs:
            src = Path(spec["path"])
            if not src.is_file() or src.stat().st_size == 0:
                raise NeuronscopeError(f"static export wrote no {src.name}")
            written.append(Path(os.replace(src, out / src.name) or out / src.name))
    return written


PACKAGES = ("neuronscope", "torch", "transformers", "transformer-lens", "plotly", "pandas", "numpy", "kaleido")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shaped the numbers (Python first); 'not installed' where absent."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_html_figures(figs: Mapping[str, go.Figure], out: Path) -> list[Path]:
    """Each figure as `<stem>.html` loading the one `plotly.min.js` of the directory (written once, offline)."""
    from plotly.offline import get_plotlyjs

    from neuronscope.io import write_text
    from neuronscope.plots.report import PLOTLY_JS

    out.mkdir(parents=True, exist_ok=True)
    paths = [write_text(out / PLOTLY_JS, get_plotlyjs())]
    for stem, fig in figs.items():
        text = fig.to_html(full_html=True, include_plotlyjs=PLOTLY_JS, config={"displaylogo": False})
        paths.append(write_text(out / f"{stem}.html", text))
    return paths


__all__ = ["FORMATS", "check_static_export", "export_static", "find_browser", "for_print", "package_versions",
           "parse_formats", "write_html_figures"]

"""Static export through kaleido and the system Chromium: PNG/SVG/PDF files exist, are not empty and have the
pixel size asked for. Skipped where kaleido or chromium is missing."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from plots_helpers import all_figures

from neuronscope.errors import NeuronscopeError
from neuronscope.plots.export import export_static, find_browser, for_print, parse_formats

kaleido = pytest.importorskip("kaleido")
pytestmark = pytest.mark.skipif(find_browser() is None, reason="chromium is not installed")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_png_svg_pdf_at_the_requested_size(tmp_path: Path) -> None:
    figs = all_figures(7)
    pick = {k.split("-", 1)[1]: figs[k] for k in ("n7-figure3_cumulative", "n7-figure6_distributions")}
    written = export_static(pick, tmp_path, ["png", "svg", "pdf"], width=800, scale=2)
    assert sorted(p.name for p in written) == sorted(f"{s}.{f}" for s in pick for f in ("png", "svg", "pdf"))
    for stem, fig in pick.items():
        height = for_print(fig, 800).layout.height
        assert png_size(tmp_path / f"{stem}.png") == (1600, 2 * height)
        svg = (tmp_path / f"{stem}.svg").read_text()
        assert re.search(r'<svg[^>]* width="800" height="' + str(height) + '"', svg)
        assert stem.split("_")[0] and (tmp_path / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".export-*"))  # the staging directory is gone


def test_print_layout_grows_for_a_narrow_page() -> None:
    fig = all_figures(12)["n12-figure3_cumulative"]
    assert for_print(fig, 500).layout.height > for_print(fig, 1000).layout.height


def test_bad_format_is_one_user_error() -> None:
    assert parse_formats("HTML, png") == ["html", "png"]
    with pytest.raises(NeuronscopeError, match="gif"):
        parse_formats("png,gif")

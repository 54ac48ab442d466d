"""Headless Chromium for the figure tests: render plotly figures on one page and read back, from the DOM, the
bounding box of every text label, plot area, legend and colour bar, to find overlaps and clipping.

One Chromium process renders a whole page of figures, so checking dozens of figures costs one browser start.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1"]

# Runs after every plot has drawn; writes the problems per figure into <pre id="layout-result">.
MEASURE_JS = r"""
function inter(a, b) {
  const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  return w > 1.5 && h > 1.5;
}
function inside(a, b) {
  return a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
}
function describe(el) {
  const cls = el.closest('.legend') ? 'legend' : el.closest('.colorbar') ? 'colorbar'
    : el.closest('.gtitle') || el.classList.contains('gtitle') ? 'title'
    : el.closest('.annotation') ? 'annotation' : (el.getAttribute('class') || el.parentNode.getAttribute('class')
    || 'text');
  return cls + ' "' + el.textContent.trim().slice(0, 40) + '"';
}
function measure(gd) {
  const problems = [];
  const root = gd.querySelector('.main-svg').getBoundingClientRect();
  const areas = [...gd.querySelectorAll('.draglayer .nsewdrag')].map(r => r.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0);
  const texts = [...gd.querySelectorAll('svg text')].filter(t => t.textContent.trim()
    && !t.closest('.hoverlayer') && getComputedStyle(t).visibility !== 'hidden'
    && getComputedStyle(t).display !== 'none'
    && t.getBoundingClientRect().width > 0);
  const boxes = texts.map(t => ({el: t, r: t.getBoundingClientRect()}));
  for (const b of boxes) {
    if (!inside(b.r, root)) problems.push('outside the figure: ' + describe(b.el));
    for (const a of areas) if (inter(b.r, a)) { problems.push('on a plot area: ' + describe(b.el)); break; }
  }
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++)
    if (inter(boxes[i].r, boxes[j].r))
      problems.push('overlap: ' + describe(boxes[i].el) + ' / ' + describe(boxes[j].el));
  const legend = gd.querySelector('.legend');
  if (legend) {
    const bg = legend.querySelector('.bg').getBoundingClientRect();
    const content = legend.querySelector('.scrollbox').getBoundingClientRect();
    if (content.height > bg.height + 2) problems.push('legend clipped: content ' + content.height.toFixed(0)
      + 'px in a ' + bg.height.toFixed(0) + 'px box');
    const bar = legend.querySelector('.scrollbar');
    if (bar && bar.getBoundingClientRect().height > 0 && bar.getBoundingClientRect().width > 0)
      problems.push('legend scrolls');
    if (!inside(bg, root)) problems.push('legend outside the figure');
    for (const a of areas) if (inter(bg, a)) { problems.push('legend on a plot area'); break; }
  }
  for (const cb of gd.querySelectorAll('.colorbar')) {
    const r = cb.getBoundingClientRect();
    if (!inside(r, root)) problems.push('colour bar outside the figure');
    for (const a of areas) if (inter(r, a)) { problems.push('colour bar on a plot area'); break; }
  }
  return {problems: problems, n_text: boxes.length, n_areas: areas.length,
          width: root.width, height: root.height};
}
window.addEventListener('load', () => setTimeout(() => {
  const out = {};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) out[gd.id] = measure(gd);
  const pre = document.createElement('pre'); pre.id = 'layout-result'; pre.style.display = 'none';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 1500));
"""


def figures_page(figs: dict[str, go.Figure], width: int = 1000) -> str:
    """One HTML page with plotly.js once and every figure at `width` px, ids = the dict's keys."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script>",
             "<style>body{margin:0;font-family:sans-serif} .fig{margin:10px 0}</style></head><body>"]
    for key, fig in figs.items():
        parts.append(f"<div class='fig' style='width:{width}px'>"
                     + fig.to_html(full_html=False, include_plotlyjs=False, div_id=key,
                                   config={"responsive": False}) + "</div>")
    parts.append(f"<script>{MEASURE_JS}</script></body></html>")
    return "\n".join(parts)


def run_chromium(page: Path, tmp: Path, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *extra,
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)


def layout_problems(figs: dict[str, go.Figure], tmp: Path, width: int = 1000) -> dict[str, dict]:
    """{figure id: {problems, n_text, n_areas, width, height}} measured in headless Chromium."""
    page = tmp / "figures.html"
    page.write_text(figures_page(figs, width))
    proc = run_chromium(page, tmp, "--virtual-time-budget=60000", "--window-size=1100,900", "--dump-dom")
    m = re.search(r"<pre id=\"layout-result\"[^>]*>(.*?)</pre>", proc.stdout, re.S)
    assert m, f"no measurement came back: {proc.stderr[-1500:]}"
    text = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text)


def screenshot(page: Path, png: Path, tmp: Path, width: int = 1100, height: int = 900) -> Path:
    proc = run_chromium(page, tmp, "--virtual-time-budget=20000", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}")
    assert png.is_file(), proc.stderr[-1500:]
    return png

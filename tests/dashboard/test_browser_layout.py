"""Chart layout in a real browser at four window sizes: nothing overlaps, nothing is clipped.

Starts the dashboard (as ``tests/dashboard/test_browser.py`` does) with a small untrained
checkpoint for the bundled ``radar_synthetic`` data (the worst case: a rain colour bar and an
error colour bar side by side) and one for ``moving_mnist`` when it loads offline, opens it in
Debian chromium at 1024x768, 1280x720, 1440x900 and 1920x1080 and measures the bounding boxes of
the plotly SVG parts of the forecast, gates and metrics charts: colour bars, legend, titles,
subplot titles, axis titles, plot areas, play/pause buttons, the slider's rail, step labels and
current-value label.
No two of them may overlap and each must lie inside its chart; in the forecast and gates charts no
blank band wider than ``BLANK_PX`` may open between the title and the first row's subplot titles,
between panels and their colour bars, nor above the controls (:func:`blank_bands`). The cell
equations beside the gate panels (below them on narrow pages) must lie inside their column and the
window, uncut, and clear of the gates chart. Screenshots go to
``test-artifacts/layout_WIDTHxHEIGHT_*.png`` and the measurements to
``test-artifacts/layout_boxes.json``.

Skipped when ``/usr/bin/chromium`` is missing, unless ``CONVLSTM_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bench.server import CHROMIUM, CHROMIUM_ARGS, dashboard_server
from tests.conftest import require_browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
SIZES = [(1024, 768), (1280, 720), (1440, 900), (1920, 1080)]
RADAR_NORMALIZATION = {
    "kind": "db",
    "units": "mm/h",
    "threshold": 0.1,
    "zerovalue": -15.0,
    "scale": 10.0,
}
TOLERANCE_PX = 1.0

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _checkpoints(root: Path) -> list[str]:
    """Tiny untrained checkpoints: radar_synthetic (always) and moving_mnist (when offline)."""
    from tests.dashboard_synthetic import make_checkpoint_for

    wanted = (("radar_synthetic", RADAR_NORMALIZATION), ("moving_mnist", None))
    return [n for n, norm in wanted if make_checkpoint_for(root, n, normalization=norm)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("layout_checkpoints")
    made = _checkpoints(root)
    assert "radar_synthetic" in made
    env = dict(os.environ, CONVLSTM_CHECKPOINTS=str(root), CONVLSTM_LAB_WARM_UP="0")
    log = tmp_path_factory.mktemp("log") / "streamlit.log"
    with dashboard_server(log, env=env, start_timeout=90) as srv:
        yield {"url": srv.url, "datasets": made}


JS_READY = """(kind) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (m && m.kind === kind && gd._fullLayout && gd.querySelector('.main-svg')) return m;
  }
  return null;
}"""

# Bounding boxes (client pixels) of the parts of one chart that must neither overlap nor be
# clipped. Each entry: [name, left, top, right, bottom]; the chart's own box comes first.
JS_BOXES = """(kind) => {
  let gd = null;
  for (const g of document.querySelectorAll('.js-plotly-plot')) {
    const m = g.layout && g.layout.meta;
    if (m && m.kind === kind) { gd = g; break; }
  }
  if (!gd) return null;
  gd.setAttribute('data-layout-kind', kind);
  gd.scrollIntoView({block: 'start'});
  const box = (el) => { const r = el.getBoundingClientRect();
                        return [r.left, r.top, r.right, r.bottom]; };
  const out = {chart: box(gd), parts: []};
  const add = (sel, name, labelOf) => {
    gd.querySelectorAll(sel).forEach((el, i) => {
      const r = box(el);
      if (r[2] - r[0] < 0.5 || r[3] - r[1] < 0.5) return;  // empty (e.g. an untitled axis)
      const label = labelOf ? labelOf(el) : '';
      out.parts.push([`${name}[${i}]${label ? ' ' + label : ''}`, ...r]);
    });
  };
  const text = (el) => (el.textContent || '').trim().slice(0, 40);
  // a colour bar's visible parts (title, bar, tick labels): plotly pads its transparent,
  // click-through background by ypad pixels on both sides, which is no part of what one sees
  gd.querySelectorAll('g.colorbar').forEach((el, i) => {
    const seen = [...el.querySelectorAll('.cbtitle, .cbfills, .cbaxis, .cboutline')].map(box)
      .filter((r) => r[2] - r[0] >= 0.5 && r[3] - r[1] >= 0.5);
    if (!seen.length) return;
    const r = [0, 1, 2, 3].map((k) => (k < 2 ? Math.min : Math.max)(...seen.map((b) => b[k])));
    const label = text(el.querySelector('.cbtitle') || el);
    out.parts.push([`colorbar[${i}]${label ? ' ' + label : ''}`, ...r]);
  });
  add('g.legend', 'legend');
  add('g.annotation', 'annotation', text);
  add('.gtitle', 'title', text);
  add('g[class^="g-x"][class$="title"]', 'xtitle', text);
  add('g[class^="g-y"][class$="title"]', 'ytitle', text);
  add('rect.nsewdrag', 'plot');
  add('g.updatemenu-button', 'button', text);
  add('.slider-rail-rect', 'slider-rail');
  // step labels sit in g.slider-label-group; the current value is the other text.slider-label
  add('g.slider-label-group', 'slider-label', text);
  gd.querySelectorAll('text.slider-label').forEach((el, i) => {
    if (el.closest('.slider-label-group')) return;
    out.parts.push([`slider-value[${i}] ${text(el)}`, ...box(el)]);
  });
  return out;
}"""


def _wait_kind(page, kind: str, timeout: float = 120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        meta = page.evaluate(JS_READY, kind)
        if meta is not None:
            return meta
        page.wait_for_timeout(200)
    raise AssertionError(f"chart {kind!r} did not appear")


def overlaps(parts: list, tol: float = TOLERANCE_PX) -> list[tuple[str, str, float]]:
    """Pairs of parts whose boxes intersect by more than ``tol`` pixels in both directions."""
    found = []
    for i, (a, *ra) in enumerate(parts):
        for b, *rb in parts[i + 1 :]:
            w = min(ra[2], rb[2]) - max(ra[0], rb[0])
            h = min(ra[3], rb[3]) - max(ra[1], rb[1])
            if w > tol and h > tol:
                found.append((a, b, round(min(w, h), 1)))
    return found


def clipped(chart: list, parts: list, tol: float = TOLERANCE_PX) -> list[tuple[str, list]]:
    """Parts that stick out of the chart's box."""
    left, top, right, bottom = chart
    return [
        (name, [round(v, 1) for v in r])
        for name, *r in parts
        if r[0] < left - tol or r[1] < top - tol or r[2] > right + tol or r[3] > bottom + tol
    ]


BLANK_PX = 40.0
"""The widest blank band allowed in the forecast and gates charts: between the figure's title and
the subplot titles of the first row, between a row of panels (or the x-axis titles under them)
and their colour bars, and between the colour bars and the play/pause buttons and slider. The
layout's own spacing is 8-30 px (title padding, tick labels); square panels in a chart of fixed
height left 60-110 px above them on a 1024 px window."""
BANDS_CHECKED = ("forecast", "gates")


def _named(parts: list, prefix: str) -> list[list[float]]:
    return [r for name, *r in parts if name.startswith(prefix)]


def _beside(a: list[float], b: list[float]) -> bool:
    """Whether boxes ``a`` and ``b`` share some horizontal extent."""
    return min(a[2], b[2]) - max(a[0], b[0]) > TOLERANCE_PX


def blank_bands(parts: list) -> dict[str, float]:
    """The vertical blank bands (pixels) of one chart.

    ``title``: from the bottom of the figure title to the top of the subplot titles of the first
    row of panels; ``colorbar[i]``: from the lowest panel or x-axis title above colour bar ``i``
    (sharing some of its width) to its top; ``controls``: from the lowest colour bar to the top of
    the play/pause buttons and slider.
    """
    plots, titles = _named(parts, "plot["), _named(parts, "title[")
    notes, bars = _named(parts, "annotation["), _named(parts, "colorbar[")
    xtitles = _named(parts, "xtitle[")
    controls = _named(parts, "button[") + _named(parts, "slider-")
    bands: dict[str, float] = {}
    if plots and titles:
        first_top = min(p[1] for p in plots)
        row_titles = [a for a in notes if first_top - 12 <= a[3] <= first_top + TOLERANCE_PX]
        if row_titles:
            bands["title"] = min(a[1] for a in row_titles) - max(t[3] for t in titles)
    for i, bar in enumerate(bars):
        above = [r for r in plots + xtitles if _beside(r, bar) and r[3] <= bar[1] + TOLERANCE_PX]
        if above:
            bands[f"colorbar[{i}]"] = bar[1] - max(r[3] for r in above)
    if controls and bars:
        bands["controls"] = min(c[1] for c in controls) - max(b[3] for b in bars)
    return {k: round(v, 1) for k, v in bands.items()}


def test_blank_bands_measures_the_gaps():
    """The band measure on hand-made boxes: a title 100 px above its row, a bar 10 px under."""
    parts = [
        ["title[0] Lead time", 0, 0, 300, 40],
        ["annotation[0] Prediction", 20, 140, 80, 160],
        ["annotation[1] Truth", 120, 140, 180, 160],
        ["plot[0]", 0, 162, 100, 262],
        ["plot[1]", 110, 162, 210, 262],
        ["xtitle[0] x (km)", 30, 280, 70, 296],
        ["colorbar[0] rain", 0, 306, 210, 340],
        ["button[0] Play", 0, 350, 40, 370],
    ]
    assert blank_bands(parts) == {"title": 100.0, "colorbar[0]": 10.0, "controls": 10.0}
    parts[5] = ["xtitle[0] x (km)", 400, 280, 440, 296]  # not above the bar: the plots count
    assert blank_bands(parts)["colorbar[0]"] == 44.0


def _check_chart(page, kind: str, tag: str, report: dict) -> list[str]:
    _wait_kind(page, kind)
    page.wait_for_timeout(600)  # let plotly finish its layout (automargin redraws)
    boxes = page.evaluate(JS_BOXES, kind)
    page.wait_for_timeout(300)
    boxes = page.evaluate(JS_BOXES, kind)  # after scrolling the chart into view
    page.screenshot(path=str(ARTIFACTS / f"layout_{tag}_{kind}.png"))
    page.locator(f'[data-layout-kind="{kind}"]').first.screenshot(
        path=str(ARTIFACTS / f"layout_{tag}_{kind}_chart.png")
    )
    bad_overlap = overlaps(boxes["parts"])
    bad_clip = clipped(boxes["chart"], boxes["parts"])
    bands = blank_bands(boxes["parts"])
    report[f"{tag} {kind}"] = {
        "chart": [round(v, 1) for v in boxes["chart"]],
        "parts": {name: [round(v, 1) for v in r] for name, *r in boxes["parts"]},
        "overlaps": bad_overlap,
        "clipped": bad_clip,
        "blank_bands": bands,
    }
    problems = [f"{tag} {kind}: {a} overlaps {b} by {px} px" for a, b, px in bad_overlap]
    problems += [f"{tag} {kind}: {n} outside the chart {r}" for n, r in bad_clip]
    if kind in BANDS_CHECKED:
        if "title" not in bands or not any(k.startswith("colorbar") for k in bands):
            problems.append(f"{tag} {kind}: title, subplot titles or colour bars not found")
        problems += [
            f"{tag} {kind}: {px} px blank above {where} (at most {BLANK_PX:g})"
            for where, px in bands.items()
            if px > BLANK_PX
        ]
    return problems


# The cell equations beside (or below) the gate panels: the rendered formula's box, its column's
# box, the gates chart's box, and every element between the formula and the column whose content
# is wider than its box (clipped or scrolled: an equation cut off).
JS_EQUATIONS = """() => {
  const block = document.querySelector('.st-key-gates_equations');
  const k = block && block.querySelector('.katex-html');
  if (!k) return null;
  k.scrollIntoView({block: 'center'});
  const box = (el) => { const r = el.getBoundingClientRect();
                        return [r.left, r.top, r.right, r.bottom]; };
  const column = k.closest('[data-testid="stColumn"]');
  const cut = [];
  for (let el = k.parentElement; el && el !== column; el = el.parentElement) {
    // KaTeX's own boxes overhang by ~2 px everywhere; a cut equation is wider than that
    if (el.scrollWidth > el.clientWidth + 4) cut.push([el.className, el.scrollWidth, el.clientWidth]);
  }
  let gates = null;
  for (const gd of block.querySelectorAll('.js-plotly-plot')) {
    if (gd.layout && gd.layout.meta && gd.layout.meta.kind === 'gates') gates = box(gd);
  }
  return {equations: box(k), column: box(column), gates, cut, width: window.innerWidth};
}"""


def _check_equations(page, tag: str, report: dict) -> list[str]:
    """The equations block: inside its column and the window, not cut, clear of the gates chart."""
    deadline = time.time() + 60
    boxes = None
    while boxes is None and time.time() < deadline:
        boxes = page.evaluate(JS_EQUATIONS)
        page.wait_for_timeout(200)
    assert boxes is not None and boxes["gates"] is not None, "no equations beside the gates"
    page.wait_for_timeout(300)
    boxes = page.evaluate(JS_EQUATIONS)  # after scrolling them into view
    page.screenshot(path=str(ARTIFACTS / f"layout_{tag}_equations.png"))
    eq = boxes["equations"]
    problems = [f"{tag} equations: cut off by {c[0]!r} ({c[1]} > {c[2]} px)" for c in boxes["cut"]]
    problems += [
        f"{tag} equations: {n} outside {r}" for n, r in clipped(boxes["column"], [["formula", *eq]])
    ]
    if eq[0] < -TOLERANCE_PX or eq[2] > boxes["width"] + TOLERANCE_PX:
        problems.append(f"{tag} equations: outside the window ({eq})")
    parts = [["equations", *eq], ["gates chart", *boxes["gates"]]]
    problems += [f"{tag}: {a} overlaps {b} by {px} px" for a, b, px in overlaps(parts)]
    report[f"{tag} equations"] = {k: boxes[k] for k in ("equations", "column", "gates", "cut")}
    return problems


def _view(page, name: str) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text(name, exact=True).first.click()


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_chart_layout_has_no_overlaps(server, width, height):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    tag = f"{width}x{height}"
    report_path = ARTIFACTS / "layout_boxes.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(server["url"] + "/?dataset=radar_synthetic&view=Gates")
        problems += _check_chart(page, "forecast", tag, report)
        problems += _check_chart(page, "gates", tag, report)
        problems += _check_chart(page, "gate_means", tag, report)
        problems += _check_equations(page, tag, report)
        _view(page, "Metrics")
        problems += _check_chart(page, "metrics", tag, report)
        if "moving_mnist" in server["datasets"] and width == 1280:
            page.goto(server["url"] + "/?dataset=moving_mnist&view=Metrics")
            _wait_kind(page, "forecast")
            for kind in ("forecast", "metrics"):
                problems += _check_chart(page, kind, f"{tag}_video", report)
        browser.close()
    report_path.write_text(json.dumps(report, indent=1))
    assert not problems, "\n".join(problems)


def test_forecast_height_follows_a_window_resize(server):
    """Narrowing the window redraws the forecast shorter (its height follows its width), with no
    blank band opening above the panels."""
    from playwright.sync_api import sync_playwright

    heights, problems, report = [], [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(server["url"] + "/?dataset=radar_synthetic")
        for width, height in [(1920, 1080), (1024, 768)]:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(800)  # Streamlit measures the new box, plotly redraws
            problems += _check_chart(page, "forecast", f"resized_to_{width}x{height}", report)
            chart = report[f"resized_to_{width}x{height} forecast"]["chart"]
            heights.append(chart[3] - chart[1])
        browser.close()
    assert not problems, "\n".join(problems)
    assert heights[1] < heights[0] - 150, f"chart heights {heights} did not follow the width"

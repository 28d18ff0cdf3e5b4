"""The gate lab (issue 13) in a real browser: Debian chromium driven by playwright.

Starts ``streamlit run dashboard/app.py`` (as ``tests/dashboard/test_browser.py`` does) with two
small untrained checkpoints for the bundled ``moving_mnist`` data (layers of 6 and 4 hidden
channels, with and without peephole terms; both fit the data, so they can be compared), then
drives with the mouse what AppTest cannot: a click on a unit tile of the unit browser, a click on
a point of the saturation plot, a box dragged on the intervention map, and the checkpoint picker of
the side-by-side view. Every test asserts what the page then shows (decoded panel values, titles,
tables, the URL). Screenshots go to ``test-artifacts/lab_*.png``.

Skipped when ``/usr/bin/chromium`` is missing, unless ``CONVLSTM_REQUIRE_BROWSER=1`` (CI), where a
missing browser is a failure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from bench.server import CHROMIUM, CHROMIUM_ARGS, dashboard_server
from tests.conftest import require_browser
from tests.dashboard.test_browser import _select, _wait_chart, _wait_url

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
HIDDEN = (6, 4)
N_CTX = 10  # the checkpoints' context: the first forecast frame is animation step 10
PATCH = 4  # make_checkpoint's patch size: one latent cell is 4 x 4 frame pixels

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.dashboard_synthetic import make_checkpoint

    require_browser()
    root = tmp_path_factory.mktemp("lab_browser_checkpoints")
    make_checkpoint(root, "lab_peep", hidden=HIDDEN, peephole=True)
    make_checkpoint(root, "lab_plain", hidden=HIDDEN, peephole=False, seed=1)
    env = dict(os.environ, CONVLSTM_CHECKPOINTS=str(root), CONVLSTM_LAB_WARM_UP="0")
    log = tmp_path_factory.mktemp("log_lab") / "streamlit.log"
    with dashboard_server(log, env=env, start_timeout=90) as srv:
        yield srv.url


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1500, "height": 1400})
        tab.base = server  # the server's URL, for goto
        yield tab
        browser.close()


def _open(page, query: str) -> None:
    page.goto(page.base + "/?dataset=moving_mnist&checkpoint=lab_peep&" + query)


# Client pixel position of data point (x, y) on subplot ``axis`` ("" for the first, "2", ...) of
# the chart whose layout.meta.kind is ``kind`` (the chart is scrolled into view first).
JS_POINT = """([kind, axis, x, y]) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (!m || m.kind !== kind) continue;
    gd.scrollIntoView({block: 'center'});
    const fl = gd._fullLayout, xa = fl['xaxis' + axis], ya = fl['yaxis' + axis];
    const r = gd.getBoundingClientRect();
    return [r.left + xa._offset + xa.d2p(x), r.top + ya._offset + ya.d2p(y)];
  }
  return null;
}"""

# The codes of heatmap trace ``index`` of chart ``kind`` as nested lists (rows of the z array).
JS_CODES = """([kind, index]) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (!m || m.kind !== kind) continue;
    const z = gd._fullData[index].z;
    return Array.from(z, (row) => Array.from(row));
  }
  return null;
}"""

# The unit (customdata) of the point plotly hovers now on chart ``kind`` (what a click opens).
JS_HOVERED = """(kind) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (!m || m.kind !== kind) continue;
    const h = gd._hoverdata && gd._hoverdata[0];
    return h ? h.customdata : null;
  }
  return null;
}"""


def _point(page, kind: str, x: float, y: float, axis: str = "") -> tuple[float, float]:
    xy = page.evaluate(JS_POINT, [kind, axis, x, y])
    assert xy is not None, f"no chart {kind!r}"
    page.wait_for_timeout(300)  # after scrolling
    return tuple(page.evaluate(JS_POINT, [kind, axis, x, y]))


def _decoded(page, kind: str, index: int, scale_meta: dict) -> np.ndarray:
    """Values of heatmap ``index`` of chart ``kind``, decoded with its scale from the meta."""
    from dashboard import figures as F

    codes = np.asarray(page.evaluate(JS_CODES, [kind, index]), dtype=np.uint8)
    return F.scale_from_meta(scale_meta).decode(codes)


def _number(page, label: str) -> int:
    box = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).first
    return int(box.locator("input").input_value())


def _wait_text(page, text: str, timeout_ms: int = 60000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_ms)


def test_unit_browser_sort_and_click_on_a_tile_opens_that_unit(page):
    _open(page, "view=Units&layer=0&sort=activity")
    first = _wait_chart(page, "units", lambda c: "sorted by activity" in c["title"], 120)
    assert sorted(first["meta"]["units"]) == list(range(HIDDEN[0]))
    _select(page, "Sort units by", "variance")
    units = _wait_chart(page, "units", lambda c: "sorted by variance" in c["title"], 60)
    _wait_url(page, "sort=variance")
    order, cols = units["meta"]["units"], units["meta"]["cols"]
    h, w = units["meta"]["tile"]
    shown = _wait_chart(page, "gates", lambda c: c["n"] == 6, 60)["meta"]["reduction"]
    rank = next(k for k in range(len(order) - 1, -1, -1) if order[k] != shown)
    unit = order[rank]  # the last tile that is not the unit shown now
    r, c = divmod(rank, cols)
    x, y = _point(page, "units", c * (w + 1) + (w - 1) / 2, r * (h + 1) + (h - 1) / 2)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    gates = _wait_chart(page, "gates", lambda c: c["meta"]["reduction"] == unit, 60)
    series = _wait_chart(page, "gate_means", lambda c: c["meta"]["unit"] == unit, 60)
    _wait_url(page, f"channel={unit}")
    _wait_text(page, f"Unit {unit} of layer 0")
    page.screenshot(path=str(ARTIFACTS / "lab_unit_browser_click.png"))
    # the unit's six panels, all of that one unit, and its time series
    assert gates["n"] == 6 and gates["meta"]["layer"] == 0
    assert gates["meta"]["shown"] == f"channel {unit}"
    assert f"unit {unit}" in series["title"]
    assert "sort=variance" in page.url  # the order chosen stays in the link


def test_click_on_a_saturation_point_opens_that_unit(page):
    _open(page, "view=Saturation&layer=1")
    sat = _wait_chart(page, "saturation", lambda c: c["meta"]["layer"] == 1, 120)
    assert sat["meta"]["units"] == list(range(HIDDEN[1]))  # layer 1: 4 units, one point each
    xs = page.evaluate(
        """() => { for (const gd of document.querySelectorAll('.js-plotly-plot')) {
             if (gd.layout.meta && gd.layout.meta.kind === 'saturation') {
               const t = gd._fullData[0]; return [Array.from(t.x), Array.from(t.y),
                                             Array.from(t.customdata)]; } } }"""
    )
    k = len(xs[2]) - 1  # the last unit's point on the input-gate panel
    x, y = _point(page, "saturation", xs[0][k], xs[1][k])
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    hovered = page.evaluate(JS_HOVERED, "saturation")  # points may overlap: the one plotly picks
    assert hovered is not None, "no point under the mouse"
    unit = int(hovered[0] if isinstance(hovered, list) else hovered)
    page.mouse.click(x, y)
    _wait_url(page, "view=Units")
    _wait_chart(page, "units", lambda c: True, 60)
    gates = _wait_chart(page, "gates", lambda c: c["meta"]["reduction"] == unit, 60)
    _wait_url(page, f"channel={unit}")
    _wait_text(page, f"Unit {unit} of layer 1")
    assert gates["meta"]["layer"] == 1
    page.screenshot(path=str(ARTIFACTS / "lab_saturation_click.png"))


def _compare(page, other: str, expect_zero: bool) -> tuple[dict, dict]:
    _select(page, "Compare with checkpoint", other)
    # the second run is named "<name> (again)" when it is the first checkpoint once more
    names = ["lab_peep", other if other != "lab_peep" else "lab_peep (again)"]
    fc = _wait_chart(page, "compare", lambda c: c["meta"]["checkpoints"] == names, 90)
    gates = _wait_chart(page, "compare_gates", lambda c: c["meta"]["checkpoints"] == names, 30)
    _wait_url(page, f"other={other}")
    # both forecasts, then the difference (decoded from the page's 8-bit codes)
    titles = fc["meta"]["titles"][0]
    assert titles[0].startswith("lab_peep") and titles[1].startswith(other)
    assert titles[2].startswith(f"{names[1]} − lab_peep")
    scales = fc["meta"]["scales"][0]
    first, second = (_decoded(page, "compare", k, scales[k]) for k in (0, 1))
    diff = _decoded(page, "compare", 2, scales[2])
    finite = np.isfinite(diff)
    assert finite.mean() > 0.9
    if expect_zero:
        assert fc["meta"]["max_abs_difference"] == 0.0
        assert gates["meta"]["max_abs_gate_difference"] == 0.0
        np.testing.assert_array_equal(first, second)
        zero = _decoded_zero(scales[2])
        assert np.all(diff[finite] == zero), np.unique(diff[finite])[:10]
    else:
        assert fc["meta"]["max_abs_difference"] > 0
        assert np.abs(diff[finite]).max() > 0
        assert not np.array_equal(first, second)
    # both score tables, one under each checkpoint's name
    if other == "lab_peep":
        want = {"Scores of lab_peep": 2}
    else:
        want = {"Scores of lab_peep": 1, f"Scores of {other}": 1}
    deadline = time.time() + 60
    while time.time() < deadline:
        seen = {t: page.get_by_text(t, exact=True).count() for t in want}
        tables = page.locator('[data-testid="stDataFrame"]').count()
        if seen == want and tables >= 2:
            break
        page.wait_for_timeout(200)
    assert seen == want and tables >= 2, (seen, tables)
    return fc, gates


def _decoded_zero(scale_meta: dict) -> float:
    """What a zero difference reads as after the 8-bit round trip of ``scale_meta``."""
    from dashboard import figures as F

    scale = F.scale_from_meta(scale_meta)
    return float(scale.decode(scale.encode(np.zeros(1)))[0])


def test_side_by_side_of_two_checkpoints_and_of_one_with_itself(page):
    _open(page, "view=Side by side&layer=1")
    _wait_chart(page, "compare", lambda c: True, 120)
    _compare(page, "lab_peep", expect_zero=True)
    page.screenshot(path=str(ARTIFACTS / "lab_side_by_side_same.png"))
    _compare(page, "lab_plain", expect_zero=False)
    page.screenshot(path=str(ARTIFACTS / "lab_side_by_side_two.png"))


def test_box_dragged_on_the_intervention_map_becomes_the_region(page):
    # close the forget gate of layer 0 from the first forecast frame, shown at that frame
    _open(
        page,
        f"view=Interventions&step={N_CTX}&layer=0&gate=forget&op=set&value=0"
        f"&from_step={N_CTX}&region=40,60,4,20",
    )
    before = _wait_chart(page, "intervention", lambda c: c["meta"]["region"] == [40, 60, 4, 20])
    assert before["meta"]["max_abs_difference"] > 0
    # drag a box on the original forecast (an image: pixel k at k, rows downwards) around rows
    # 8..23, columns 36..55: the box's corners lie 0.4 pixel inside the outer pixels' edges
    want = [8, 24, 36, 56]
    x0, y0 = _point(page, "intervention", 35.6, 7.6)
    x1, y1 = _point(page, "intervention", 55.4, 23.4)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    drawn = _wait_chart(page, "intervention", lambda c: c["meta"]["region"] == want, 60)
    page.wait_for_function(  # the link writes the commas as %2C
        "(p) => decodeURIComponent(location.search).includes(p)",
        arg="region=" + ",".join(map(str, want)),
        timeout=30000,
    )
    labels = ("rows from y0", "to y1", "columns from x0", "to x1")
    assert [_number(page, label) for label in labels] == want  # the inputs follow the box
    page.screenshot(path=str(ARTIFACTS / "lab_intervention_box.png"))
    # the intervened forecast differs from the original inside the box and nowhere farther than
    # the receptive field of one step (layer 1's 3x3 kernel: one latent cell, then a 1x1 head)
    diff = _decoded(page, "intervention", 2, drawn["meta"]["scales"][0][2])
    zero = _decoded_zero(drawn["meta"]["scales"][0][2])
    changed = np.abs(diff - zero) > 0
    y_a, y_b, x_a, x_b = want
    inside = np.zeros_like(changed)
    inside[y_a:y_b, x_a:x_b] = True
    near = np.zeros_like(changed)
    near[max(y_a - PATCH, 0) : y_b + PATCH, max(x_a - PATCH, 0) : x_b + PATCH] = True
    assert changed[inside].any()  # (an untrained net: many changes are below one 8-bit step)
    biggest = np.unravel_index(np.nanargmax(np.abs(diff - zero)), diff.shape)
    assert inside[biggest], biggest
    assert not changed[~near].any(), np.argwhere(changed & ~near)[:5]


# Titles of chart ``kind`` (figure title, subplot titles) that stick out of the chart or overlap
# another title: ``[kind, text, problem, px]`` (client pixels, 1 px tolerance).
JS_TITLE_PROBLEMS = """(kind) => {
  const out = [];
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (!m || m.kind !== kind) continue;
    const chart = gd.getBoundingClientRect();
    const texts = [...gd.querySelectorAll('.gtitle, .annotation-text')]
      .filter((t) => t.textContent.trim())
      .map((t) => [t.textContent.slice(0, 40), t.getBoundingClientRect()]);
    for (const [text, b] of texts) {
      const outside = Math.max(chart.left - b.left, b.right - chart.right);
      if (outside > 1) out.push([kind, text, 'outside the chart', Math.round(outside)]);
    }
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i][1], b = texts[j][1];
        const ox = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const oy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (ox > 1 && oy > 1) out.push([kind, texts[i][0], 'overlaps ' + texts[j][0], Math.round(ox)]);
      }
    }
  }
  return out;
}"""


def test_lab_titles_fit_a_1024_px_window(page):
    """At 1024x768 the side-by-side gates (6 columns) and the saturation chart keep every title
    inside the chart and apart from the others (they overlapped by up to 67 px, or were cut)."""
    page.set_viewport_size({"width": 1024, "height": 768})
    _open(page, "view=Side%20by%20side&other=lab_plain")
    _wait_chart(page, "compare_gates", lambda c: "lab_plain" in c["meta"]["checkpoints"], 120)
    page.wait_for_timeout(500)  # the chart's height follows its width: let it settle
    problems = page.evaluate(JS_TITLE_PROBLEMS, "compare_gates")
    problems += page.evaluate(JS_TITLE_PROBLEMS, "compare")
    page.screenshot(path=str(ARTIFACTS / "lab_side_by_side_1024.png"), full_page=True)
    _open(page, "view=Saturation&layer=0")
    _wait_chart(page, "saturation", lambda c: c["meta"]["layer"] == 0, 120)
    page.wait_for_timeout(500)
    problems += page.evaluate(JS_TITLE_PROBLEMS, "saturation")
    assert problems == []

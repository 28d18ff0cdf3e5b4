"""The gate lab views (issue 13) driven with AppTest, checked against the model functions.

Two small untrained checkpoints for the bundled ``moving_mnist`` data (layers of 6 and 4 hidden
channels; one with peephole terms, one without) are written to a temporary folder.
"""

from __future__ import annotations

import json

import numpy as np
import plotly.io as pio
import pytest

from dashboard import figures as F
from dashboard import lab_figures as LF
from dashboard import services
from model import gate_lab
from model.interventions import GateEdit
from tests.dashboard.test_app import TIMEOUT, _qp, charts, shown, z_of
from tests.dashboard_synthetic import make_checkpoint, synthetic_rollout

N_CTX, HORIZON = 10, 10
HIDDEN = (6, 4)
REGION = (16, 48, 8, 40)  # rows 16..47, columns 8..39 of the 64x64 frame


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab_checkpoints")
    make_checkpoint(root, "lab_peep", hidden=HIDDEN, peephole=True)
    make_checkpoint(root, "lab_plain", hidden=HIDDEN, peephole=False, seed=1)
    return root


@pytest.fixture(autouse=True)
def _checkpoints(ckpt_root, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(ckpt_root))


def run_app(query: dict | None = None):
    from streamlit.testing.v1 import AppTest

    from tests.dashboard.test_app import APP

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rollout_of(name: str = "lab_peep", edit=None):
    """The page's rollout (sample 0, 10 context and 10 forecast frames), computed here."""
    net, meta = services.load_model(name)
    data = services.load_dataset("moving_mnist")
    window = services.Window(0, 0, N_CTX, HORIZON)
    return services.run_rollout(net, meta, data, window, intervene=edit)


def panels(spec: dict) -> list[list[np.ndarray]]:
    """Decoded values of a panel grid figure, row by row."""
    from dashboard import figures as F

    scales = spec["layout"]["meta"]["scales"]
    traces = iter(spec["data"])
    return [[F.scale_from_meta(s).decode(z_of(next(traces))) for s in row] for row in scales]


def table_with(at, *columns: str):
    """The first dataframe on the page holding ``columns``."""
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with {columns}")


# -- interventions ---------------------------------------------------------------------------------
GRIDS = {
    "image": F.Grid(0.0, 1.0, 0.0, 1.0, "x (pixel)", "y (pixel)", True, 64, 48),
    # a map stored north to south: y decreases with the row, 2 km pixels
    "map": F.Grid(-255.0, 2.0, 300.0, -2.0, "x (km)", "y (km)", False, 128, 100),
}


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
@pytest.mark.parametrize("region", [(8, 24, 36, 56), (0, 1, 0, 1), (3, 48, 0, 64)])
def test_box_on_the_pixel_edges_gives_the_region_back(grid, region):
    """region_from_box inverts the dotted region outline, on images and on maps."""
    if region[1] > grid.height:
        region = (region[0], grid.height, *region[2:])
    shape = LF._region_shape(region, grid, "")
    box = {"x": [shape["x1"], shape["x0"]], "y": [shape["y0"], shape["y1"]]}
    assert LF.region_from_box(box, grid) == region
    # a box a little inside the outer pixels' edges holds the same pixel centres
    inner = {
        "x": [shape["x0"] + 0.4 * abs(grid.dx), shape["x1"] - 0.4 * abs(grid.dx)],
        "y": [shape["y0"] + 0.4 * abs(grid.dy), shape["y1"] - 0.4 * abs(grid.dy)],
    }
    assert LF.region_from_box(inner, grid) == region


def test_box_beyond_the_frame_is_clamped_and_a_tiny_or_bad_box_handled():
    grid = GRIDS["image"]
    assert LF.region_from_box({"x": [-20, 5.2], "y": [40.2, 99]}, grid) == (41, 48, 0, 6)
    assert LF.region_from_box({"x": [10.1, 10.3], "y": [3.9, 4.2]}, grid) == (4, 5, 10, 11)
    assert LF.region_from_box({"x": [500, 600], "y": [500, 600]}, grid) == (47, 48, 63, 64)
    for bad in (
        {},
        {"x": [1], "y": [1, 2]},
        {"x": ["a", 2], "y": [1, 2]},
        {"x": [float("nan"), 2], "y": [1, 2]},
    ):
        assert LF.region_from_box(bad, grid) is None


def test_intervention_changes_the_forecast_inside_the_region_and_shows_score_changes():
    query = {
        "view": "Interventions", "layer": "0", "gate": "forget", "op": "set", "value": "0",
        "units": "all", "from_step": str(N_CTX), "region": ",".join(map(str, REGION)),
    }  # fmt: skip
    at = run_app(query)
    assert not at.error, [shown(e.value) for e in at.error]
    spec = charts(at)["intervention"]
    meta = spec["layout"]["meta"]
    assert meta["step"] == N_CTX and meta["region"] == list(REGION)
    (original, edited, diff), (gate_a, gate_b, _) = panels(spec)
    y0, y1, x0, x1 = REGION
    resolution = 1 / 254
    assert np.abs(edited - original)[y0:y1, x0:x1].max() > 10 * resolution
    assert meta["max_abs_difference"] > 0
    # the panels are the model's own intervened forecast (start: the step before lead 1)
    edit = GateEdit(layer=0, target="f", value=0.0, region=REGION, start=N_CTX - 1)
    want = rollout_of(edit=edit)
    np.testing.assert_allclose(edited, want.prediction.values[0, 0], atol=resolution)
    base = rollout_of()
    np.testing.assert_allclose(original, base.prediction.values[0, 0], atol=resolution)
    # the closed forget gate shows as 0 inside the region (latent pixels of 4x4 patches)
    assert np.allclose(gate_b[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4], 0.0, atol=1e-2)
    assert gate_a[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4].min() > 0.05
    # the change in every score: intervened minus original, per lead
    table = table_with(at, "score", "original", "intervened", "change")
    assert (
        set(table["score"]) >= {"MSE", "MAE"} and len(table) == HORIZON * table["score"].nunique()
    )
    np.testing.assert_allclose(table["change"], table["intervened"] - table["original"])
    mse = table[table["score"] == "MSE"]
    assert (mse["change"] != 0).any()
    assert mse["lead_time"].iloc[0] == "+1 frame"
    for key, value in query.items():
        assert _qp(at, key) == value


@pytest.mark.parametrize(
    "query,message",
    [
        ({"value": "2"}, "value=2.0 is outside the forget range [0.0, 1.0]"),
        ({"region": "40,20,0,10"}, "is outside the 64x64 frame or empty"),
        ({"layer": "1", "units": "0,9"}, None),  # rejected by the link: channel 9 of 4
    ],
)
def test_intervention_errors_are_one_clear_message(query, message):
    at = run_app({"view": "Interventions", "gate": "forget", "op": "set", **query})
    if message is None:
        assert "channel 9 does not exist" in " ".join(shown(w.value) for w in at.warning)
        at.text_input(key="iv_units").set_value("1, 7").run()
        message = "channel 7 does not exist; this layer has channels 0-3"
    if "region" in query:  # the link refuses it; typed into the inputs it is the edit's error
        assert "ignored" in " ".join(shown(w.value) for w in at.warning)
        at.number_input(key="region_y0").set_value(40).run()
        at.number_input(key="region_y1").set_value(20).run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and message in errors[0], errors
    assert "Traceback" not in errors[0] and "intervention" not in charts(at)


# -- unit browser ----------------------------------------------------------------------------------
def test_unit_browser_small_multiples_sort_and_one_unit_for_six_panels():
    at = run_app({"view": "Units", "layer": "0", "gate": "hidden", "sort": "activity"})
    assert not at.error
    ds = rollout_of()
    spec = charts(at)["units"]
    order = spec["layout"]["meta"]["units"]
    assert len(order) == HIDDEN[0]  # one small multiple per hidden channel of the layer
    assert len(spec["data"][1]["customdata"]) == HIDDEN[0]
    want = gate_lab.unit_statistics(ds, layer=0, step=N_CTX, sort_by="activity")
    assert order == [int(u) for u in want.index]
    el = next(e for e in at.get("plotly_chart") if '"kind":"units"' in e.proto.spec)
    assert len(el.proto.spec) < 3 * 2**20  # what the browser receives for this chart
    # the tiles are the 8-bit unit maps of the model, in sort order
    maps = gate_lab.encode_unit_maps(ds, layer=0, step=N_CTX, gate="hidden")
    mosaic = z_of(spec["data"][0])
    np.testing.assert_array_equal(mosaic[:16, :16], maps.codes[order[0]])
    # one unit: its six panels and its time series
    unit = order[-1]
    at.selectbox(key="unit").set_value(unit).run()
    specs = charts(at)
    assert specs["gates"]["layout"]["meta"]["reduction"] == unit
    assert specs["gates"]["layout"]["meta"]["shown"] == f"channel {unit}"  # all six panels
    assert specs["gate_means"]["layout"]["meta"]["unit"] == unit
    assert _qp(at, "channel") == str(unit)
    # another layer and another order
    at.selectbox(key="layer").set_value(1).run()
    at.selectbox(key="sort").set_value("variance").run()
    order = charts(at)["units"]["layout"]["meta"]["units"]
    want = gate_lab.unit_statistics(ds, layer=1, step=N_CTX, sort_by="variance")
    assert order == [int(u) for u in want.index] and len(order) == HIDDEN[1]


def test_unit_grid_payload_of_64_units_on_a_64x64_grid_is_under_3_mb():
    ds = synthetic_rollout(domain="radar", n_context=4, horizon=2, size=64, patch=1, layers=1,
                           hidden=64)  # fmt: skip
    table, payload = services.unit_browser(ds, layer=0, step=4, gate="cell")
    fig = LF.unit_grid_figure(payload, list(table.index))
    sent = len(pio.to_json(fig, validate=False))
    payload_bytes = len(json.dumps(payload))
    print(f"unit browser, 64 units of 64x64: payload {payload_bytes} B, figure {sent} B")
    assert payload_bytes < 3 * 2**20 and sent < 3 * 2**20
    assert len(fig.layout.meta["units"]) == 64 and len(fig.data[1].x) == 64


# -- saturation ------------------------------------------------------------------------------------
def test_saturation_view_has_one_point_per_unit_and_opens_the_unit_browser():
    at = run_app({"view": "Saturation", "layer": "0"})
    spec = charts(at)["saturation"]
    points = [t for t in spec["data"] if t.get("mode") == "markers"]
    assert [t["name"] for t in points] == ["input", "forget", "output"]
    sat = gate_lab.saturation(rollout_of())
    for trace in points:
        x, y = z_of({"z": trace["x"]}), z_of({"z": trace["y"]})
        assert len(x) == len(y) == HIDDEN[0]  # one point per unit
        assert list(z_of({"z": trace["customdata"]})) == list(range(HIDDEN[0]))
        np.testing.assert_allclose(x, sat.left.sel(layer=0, gate=trace["name"])[: HIDDEN[0]])
        np.testing.assert_allclose(y, sat.right.sel(layer=0, gate=trace["name"])[: HIDDEN[0]])
    at.selectbox(key="layer").set_value(1).run()
    points = [t for t in charts(at)["saturation"]["data"] if t.get("mode") == "markers"]
    assert all(len(z_of({"z": t["x"]})) == HIDDEN[1] for t in points)  # the 4-wide layer
    at.selectbox(key="sat_unit").set_value(3).run()
    at.button(key="open_unit").click().run()
    assert at.radio(key="view").value == "Units"
    assert at.selectbox(key="unit").value == 3 and at.selectbox(key="layer").value == 1
    assert charts(at)["gates"]["layout"]["meta"]["reduction"] == 3


# -- attribution and memory ------------------------------------------------------------------------
def test_attribution_view_per_frame_heatmaps_shares_and_cache(monkeypatch):
    calls = []
    real = services.attribution
    monkeypatch.setattr(services, "attribution", lambda *a, **k: calls.append(1) or real(*a, **k))
    query = {"view": "Attribution", "region": "20,36,20,36", "step": str(N_CTX + 1)}
    at = run_app(query)
    assert not at.error, [shown(e.value) for e in at.error]
    specs = charts(at)
    heat = specs["attribution"]
    assert heat["layout"]["meta"]["frames"] == N_CTX and heat["layout"]["meta"]["lead"] == 2
    share = specs["attribution_share"]["layout"]["meta"]["share"]
    assert len(share) == N_CTX and sum(share) == pytest.approx(1.0)
    assert any("Attribution ready" in s.label for s in at.get("status"))
    at.radio(key="view").set_value("Memory").run()
    at.radio(key="view").set_value("Attribution").run()
    assert len(calls) == 1  # computed once, then cached


def test_memory_view_shows_the_memory_map_at_the_chosen_lead():
    at = run_app({"view": "Memory", "step": str(N_CTX + 3)})
    spec = charts(at)["memory"]
    assert spec["layout"]["meta"]["lead"] == 4
    want = gate_lab.memory_map(rollout_of())
    for layer, values in enumerate(panels(spec)[0]):
        np.testing.assert_allclose(values, want.sel(layer=layer, lead=4).values, atol=0.5 / 254)


# -- side by side ----------------------------------------------------------------------------------
def test_side_by_side_of_one_checkpoint_is_all_zero_and_of_two_is_not():
    at = run_app({"view": "Side by side", "other": "lab_peep", "layer": "1"})
    assert not at.error
    specs = charts(at)
    assert specs["compare"]["layout"]["meta"]["max_abs_difference"] == 0.0
    assert specs["compare_gates"]["layout"]["meta"]["max_abs_gate_difference"] == 0.0
    first, second, diff = panels(specs["compare"])[0]
    np.testing.assert_array_equal(first, second)
    assert np.all(diff == 0.0)
    assert all(np.all(d[np.isfinite(d)] == 0.0) for d in panels(specs["compare_gates"])[2])
    tables = [f.value for f in at.dataframe if "MSE" in f.value.columns]
    assert len(tables) == 2 and tables[0].equals(tables[1])  # both score tables
    at.selectbox(key="other").set_value("lab_plain").run()
    specs = charts(at)
    assert specs["compare"]["layout"]["meta"]["max_abs_difference"] > 0
    want = rollout_of("lab_plain").prediction - rollout_of().prediction
    _, _, diff = panels(specs["compare"])[0]
    scale = specs["compare"]["layout"]["meta"]["scales"][0][2]
    tol = (scale["vmax"] - scale["vmin"]) / 254 / 2 * 1.01
    inside = np.abs(want.values[0, 0]) < scale["vmax"]
    np.testing.assert_allclose(diff[inside], want.values[0, 0][inside], atol=tol)


# -- equations -------------------------------------------------------------------------------------
@pytest.mark.parametrize("checkpoint,peephole", [("lab_peep", True), ("lab_plain", False)])
def test_cell_equations_beside_the_gate_panels(checkpoint, peephole):
    at = run_app({"checkpoint": checkpoint, "view": "Gates"})
    latex = " ".join(el.value for el in at.latex)
    assert "f_t &= \\sigma(W_{xf} \\ast X_t" in latex
    assert "C_t &= f_t \\circ C_{t-1} + i_t \\circ g_t" in latex
    assert ("W_{cf} \\circ C_{t-1}" in latex) is peephole
    assert ("W_{co} \\circ C_t" in latex) is peephole
    gates = charts(at)["gates"]
    titles = [a["text"] for a in gates["layout"]["annotations"][:6]]
    for symbol in ("i<sub>t</sub>", "f<sub>t</sub>", "o<sub>t</sub>", "g<sub>t</sub>",
                   "C<sub>t</sub>", "H<sub>t</sub>"):  # fmt: skip
        assert any(symbol in t for t in titles), (symbol, titles)
    forget = next(t for t in gates["data"] if t["name"] == "forget")
    assert "f_t = σ(W_xf * X_t" in forget["hovertemplate"]
    assert ("W_cf ∘ C_{t-1}" in forget["hovertemplate"]) is peephole


# -- deep links ------------------------------------------------------------------------------------
LINKS = {
    "Units": {"layer": "1", "gate": "cell", "sort": "saturation", "channel": "2"},
    "Saturation": {"layer": "1"},
    "Interventions": {
        "layer": "1", "gate": "cell", "op": "clamp", "lo": "-0.5", "hi": "0.25",
        "units": "0,2,3", "from_step": "13", "region": "8,24,32,64",
    },
    "Attribution": {"region": "0,16,0,16"},
    "Memory": {},
    "Side by side": {"other": "lab_plain", "layer": "1"},
}  # fmt: skip


@pytest.mark.parametrize("view", list(LINKS))
def test_deep_link_of_each_lab_view_round_trips(view):
    query = {"view": view, "step": str(N_CTX + 2), "sample": "1", **LINKS[view]}
    at = run_app(query)
    assert not at.warning and not at.error, [shown(m.value) for m in [*at.warning, *at.error]]
    written = {k: _qp(at, k) for k in at.query_params}
    for key, value in query.items():
        assert written[key] == value, (key, written)
    again = run_app(written)  # the URL the page wrote opens the same view
    assert not again.warning
    assert {k: _qp(again, k) for k in again.query_params} == written
    assert again.radio(key="view").value == view
    assert again.select_slider(key="step").value == N_CTX + 2

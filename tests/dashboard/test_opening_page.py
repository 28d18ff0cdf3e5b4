"""The page a new user meets: the bundled FMI radar event forecast over its whole domain by the
shipped radar checkpoint, offline (no clicks, no network, no ../shared); and whole-domain radar
rollouts in :func:`dashboard.services.run_rollout` on grids other than the checkpoint's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from streamlit.testing.v1 import AppTest

from dashboard import services, state
from model.checkpoint import DEFAULT_ROOT
from tests.dashboard_synthetic import make_checkpoint

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 240
RADAR_NORM = {"kind": "db", "units": "mm/h", "threshold": 0.1, "zerovalue": -15.0, "scale": 10.0}


def _codes(trace: dict) -> np.ndarray:
    """The codes of a forecast panel (an indexed PNG image) in the data's row order."""
    from dashboard.figures import panel_codes

    return panel_codes(trace)


def test_default_page_opens_on_the_bundled_fmi_event_over_its_whole_domain(monkeypatch):
    monkeypatch.delenv(services.CHECKPOINT_ROOT_ENV, raising=False)  # the shipped checkpoints
    monkeypatch.setenv("CONVLSTM_LAB_WARM_UP", "0")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    shipped = [p.name for p in Path(DEFAULT_ROOT).iterdir() if (p / "meta.json").is_file()]
    want = next(name for name in state.RADAR_CHECKPOINTS if name in shipped)
    assert at.sidebar.radio(key="domain").value == "radar"
    assert at.sidebar.selectbox(key="dataset").value == state.OPENING_DATASET == "radar_fmi_sample"
    assert at.sidebar.selectbox(key="checkpoint").value == want
    data = services.load_dataset(state.OPENING_DATASET)
    height, width = data.sizes["y"], data.sizes["x"]
    forecast = next(
        json.loads(el.proto.spec)
        for el in at.get("plotly_chart")
        if json.loads(el.proto.spec)["layout"].get("meta", {}).get("kind") == "forecast"
    )
    layout = forecast["layout"]
    assert layout["meta"]["dataset"] == "radar_fmi_sample"
    assert layout["meta"]["sample"] == state.OPENING_SAMPLE
    prediction = forecast["data"][0]
    assert _codes(prediction).shape == (height, width)  # the whole domain, not one 128 px tile
    shapes = [_codes(t).shape for f in forecast["frames"] for t in f["data"]]
    assert shapes.count((height, width)) >= 2 * len(forecast["frames"])  # prediction and truth
    assert set(shapes) <= {(height, width), (1, 1)}  # (1, 1): an empty panel (no error yet)
    # valid times of the event, km axes spanning the domain, north up
    times = data["timestamp"].values[state.OPENING_SAMPLE]
    first = np.datetime_as_string(times[0], unit="m").replace("T", " ")
    assert layout["meta"]["valid_times"][0] == f"{first} UTC"
    assert layout["xaxis"]["title"]["text"] == "x (km)"
    assert layout["yaxis"]["title"]["text"] == "y (km)"
    y = data["y"].values
    # row 0 of the data is north; plotly draws images with positive steps, so the image is sent
    # south row first, starting at the southern row's centre
    assert prediction["meta"]["flip_y"] and prediction["dy"] > 0
    assert prediction["y0"] == pytest.approx(y[-1])
    lo, hi = layout["yaxis"]["range"]
    assert lo < hi and layout["yaxis"].get("autorange") != "reversed"
    assert hi - lo == pytest.approx(height * abs(float(y[1] - y[0])), rel=0.01)
    # a Lagrangian checkpoint's gates are said to be in the frame that moves with the rain
    meta = json.loads((Path(DEFAULT_ROOT) / want / "meta.json").read_text())
    captions = " ".join(c.value for c in at.caption)
    assert ("Lagrangian frame" in captions) == (meta.get("frame") == "lagrangian")
    assert (services.gates_frame_note(meta) is None) == (meta.get("frame") != "lagrangian")


# -- services: whole-domain radar rollouts --------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_radar(tmp_path_factory):
    root = tmp_path_factory.mktemp("radar_ckpt")
    make_checkpoint(
        root, "tiny_radar", dataset="radar_synthetic", domain="radar", frame_size=(32, 32),
        hidden=(4, 4), patch_size=4, context=4, horizon=3, normalization=RADAR_NORM,
    )  # fmt: skip
    return services.load_model("tiny_radar", root=root)


def _radar(height: int, width: int, *, km: float = 1.0, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.5, 2.0, size=(1, 8, 1, height, width)).astype(np.float32)  # mm/h
    values[..., :3, :5] = np.nan  # outside coverage
    return xr.DataArray(
        values,
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "y": ("y", (height - np.arange(height) - 0.5) * km, {"units": "km"}),
            "x": ("x", (np.arange(width) + 0.5) * km, {"units": "km"}),
        },
        attrs={"domain": "radar", "time_step": "PT5M", "units": "mm/h"},
    )


def test_a_radar_domain_larger_than_the_checkpoint_grid_is_forecast_in_stitched_tiles(tiny_radar):
    net, meta = tiny_radar
    data = _radar(72, 100)
    assert services.fit_problem(meta, data) == "fits"
    ds = services.run_rollout(net, meta, data, services.Window(0, 1, 4, 3))
    assert ds["prediction"].shape == (3, 1, 72, 100)
    assert ds["truth"].shape == (3, 1, 72, 100)
    assert ds.attrs["tiles"] > 1
    gates = ds["gates"]
    assert gates.sizes["gy"] == 72 // 4 and gates.sizes["gx"] == 100 // 4
    assert np.isfinite(gates.values).all()
    np.testing.assert_allclose(ds["gate_y"].values[0], data["y"].values[:4].mean(), atol=1e-6)
    assert np.isfinite(ds["prediction"].values).all()  # padding and NaN never reach the output
    # the page's scores use the same pixels for the model and both baselines
    tables, _ = services.score(ds, data=data)
    assert {"ConvLSTM", "persistence", "extrapolation"} <= set(tables)


def test_a_radar_domain_at_another_pixel_size_is_resampled_and_back(tiny_radar):
    net, meta = tiny_radar
    data = _radar(30, 40, km=2.0)  # 60 x 80 km at 2 km: 60 x 80 px of the checkpoint's 1 km
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 4, 3))
    assert ds["prediction"].shape == (3, 1, 30, 40)  # back on the data grid
    assert ds.attrs["model_grid"] == [60, 80]
    assert ds["gates"].sizes["gy"] == 60 // 4 and ds["gates"].sizes["gx"] == 80 // 4


def test_a_radar_grid_equal_to_the_checkpoint_gives_the_single_rollout(tiny_radar):
    from model.normalize import Normalizer
    from model.rollout import rollout

    net, meta = tiny_radar
    data = _radar(32, 32)
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 4, 3))
    context, truth = services.select_window(data, services.Window(0, 0, 4, 3))
    plain = rollout(net, context, 3, truth=truth, capture=True,
                    normalizer=Normalizer.from_metadata(meta["normalization"]))  # fmt: skip
    np.testing.assert_allclose(ds["prediction"].values, plain["prediction"].values, atol=1e-5)
    np.testing.assert_allclose(
        ds["gates"].values.astype(np.float32), plain["gates"].values.astype(np.float32), atol=4e-3
    )


def test_interventions_and_attribution_on_a_tiled_radar_domain_say_why_not(tiny_radar):
    net, meta = tiny_radar
    edit = services.make_edit(net.config, steps=6, layer=0, target="forget", operation="set")
    with pytest.raises(services.DashboardError, match="own 32x32 grid"):
        services.run_rollout(net, meta, _radar(64, 64), services.Window(0, 0, 4, 3), intervene=edit)
    with pytest.raises(services.DashboardError, match="attribution runs on the checkpoint's own"):
        services.attribution(
            net, meta, _radar(64, 64), services.Window(0, 0, 4, 3), lead=1, region=(0, 8, 0, 8)
        )
    # on the checkpoint's own grid both run
    ds = services.run_rollout(
        net, meta, _radar(32, 32), services.Window(0, 0, 4, 3), intervene=edit
    )
    assert ds["prediction"].shape == (3, 1, 32, 32)


def test_baselines_are_computed_once_per_window_whatever_the_checkpoint(tiny_radar, monkeypatch):
    from dashboard import cache

    net, meta = tiny_radar
    data = _radar(40, 40)
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 4, 3))
    direct, _ = services.score(ds, threshold=2.0, data=data)
    calls = []
    real = services.baseline_forecasts
    monkeypatch.setattr(
        services, "baseline_forecasts", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    cache.clear()
    first, _ = cache.scores(("ckpt_a", "tiny_data", 0, 0, 4, 3), 1.0, _ds=ds, _data=data)
    other, _ = cache.scores(("ckpt_b", "tiny_data", 0, 0, 4, 3), 2.0, _ds=ds, _data=data)
    assert len(calls) == 1  # the second checkpoint and threshold reuse the window's baselines
    for name in ("persistence", "extrapolation"):
        np.testing.assert_allclose(other[name].to_numpy(), direct[name].to_numpy())
    cache.scores(("ckpt_a", "tiny_data", 1, 0, 4, 3), 1.0, _ds=ds, _data=data)
    assert len(calls) == 2  # another sample: its own baselines
    cache.clear()
    assert set(first) == {"ConvLSTM", "persistence", "extrapolation"}


def test_a_domain_too_large_for_every_layers_gates_keeps_the_last_layers(tiny_radar, monkeypatch):
    from model.tiling import domain_capture_bytes

    net, meta = tiny_radar
    data = _radar(72, 100)
    steps = 4 + 3 - 1
    every = domain_capture_bytes(net, True, steps, (72, 100))
    last = domain_capture_bytes(net, {"layers": [1]}, steps, (72, 100))
    monkeypatch.setattr(services, "CAPTURE_MAX_BYTES", (every + last) // 2)
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 4, 3))
    assert ds["gates"].sizes["layer"] == 1 and int(ds["layer"].values[0]) == 1
    assert "Only layer 1's gates" in ds.attrs["capture_note"]
    assert ds["gates"].nbytes <= services.CAPTURE_MAX_BYTES
    monkeypatch.setattr(services, "CAPTURE_MAX_BYTES", last // 2)
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 4, 3))
    assert "gates" not in ds and "not recorded" in ds.attrs["capture_note"]
    assert ds["prediction"].shape == (3, 1, 72, 100)  # the forecast is kept


@pytest.mark.parametrize("view", ["Interventions", "Attribution"])
def test_whole_network_tools_on_the_opening_domain_say_they_need_the_checkpoint_grid(
    view, monkeypatch
):
    monkeypatch.delenv(services.CHECKPOINT_ROOT_ENV, raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["view"] = view
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    infos = " ".join(i.value for i in at.info).replace("\\", "")
    shipped = [p.name for p in Path(DEFAULT_ROOT).iterdir() if (p / "meta.json").is_file()]
    opening = next(name for name in state.RADAR_CHECKPOINTS if name in shipped)
    grid = json.loads((Path(DEFAULT_ROOT) / opening / "meta.json").read_text())["frame_size"]
    assert f"own {grid[0]}x{grid[1]} grid" in infos and "256x256 px" in infos


def test_the_summary_names_the_radar_events_a_checkpoint_was_trained_on():
    meta = {"dataset": "radar_fmi", "training": {"events": ["mch/20150515", "fmi/pgm/20160928",
                                                            "mch/20170131"]}}  # fmt: skip
    assert services.trained_on(meta) == "3 radar events from 2 weather services"
    one = {"dataset": "radar_mch", "training": {"events": ["mch/20150515"]}}
    assert services.trained_on(one) == "1 radar event from 1 weather service"
    assert services.trained_on({"dataset": "radar_mch"}) == "radar_mch"
    unknown = {"dataset": "radar_x", "training": {"events": ["xyz/2020"]}}
    assert services.trained_on(unknown) == "radar_x"  # not a source the readers know

"""The page's state follows what a presenter does: the step is a lead time across data and
checkpoints, the rollout window follows the checkpoint, warnings go when their cause goes, the
probe and Back/Forward live in the link (AppTest)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import services
from tests.dashboard_synthetic import make_checkpoint

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
RADAR_NORM = {"kind": "db", "units": "mm/h", "threshold": 0.1, "zerovalue": -15.0, "scale": 10.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("presenter_checkpoints")
    make_checkpoint(root, "mnist_a", context=10, horizon=10)
    make_checkpoint(root, "mnist_b", context=5, horizon=3, seed=1)
    make_checkpoint(
        root, "radar_6to12", dataset="radar_synthetic", domain="radar", frame_size=(128, 128),
        patch_size=4, context=6, horizon=12, normalization=RADAR_NORM,
    )  # fmt: skip
    return root


@pytest.fixture(autouse=True)
def _checkpoints(root, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(root))


def run(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def forecast_title(at: AppTest) -> str:
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if spec["layout"].get("meta", {}).get("kind") == "forecast":
            return spec["layout"]["title"]["text"]
    raise AssertionError("no forecast chart")


def step_label(at: AppTest) -> str:
    widget = at.select_slider(key="step")
    return widget.options[widget.value]  # the label the slider shows


def lead_of_title(title: str) -> str:
    return re.search(r"Lead time ([+-]?\d+ \w+)", title).group(1)


def test_step_label_and_figure_agree_after_a_domain_switch():
    at = run({"dataset": "moving_mnist", "checkpoint": "mnist_a"})
    at.select_slider(key="step").set_value(12).run()  # third forecast frame: +3 frames
    assert step_label(at).startswith("+3 frames")
    assert lead_of_title(forecast_title(at)) == "+3 frames"
    at.sidebar.radio(key="domain").set_value("radar").run()
    assert not at.exception
    # the same lead (third forecast frame) on 5-minute radar frames: +15 min everywhere
    assert step_label(at).startswith("+15 min")
    assert lead_of_title(forecast_title(at)) == "+15 min"
    assert at.query_params["step"] == [str(6 + 2)] or at.query_params["step"] == str(6 + 2)


def test_context_and_horizon_follow_the_checkpoint():
    at = run({"dataset": "moving_mnist", "checkpoint": "mnist_a"})
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (10, 10)
    at.selectbox(key="checkpoint").set_value("mnist_b").run()
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (5, 3)
    at.slider(key="context").set_value(7).run()  # the user's choice for mnist_b
    at.selectbox(key="checkpoint").set_value("mnist_a").run()
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (10, 10)
    assert not at.sidebar.warning  # no "beyond the training horizon" carried over
    at.selectbox(key="checkpoint").set_value("mnist_b").run()
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (7, 3)
    at.sidebar.radio(key="domain").set_value("radar").run()
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (6, 12)


def test_same_selection_same_forecast_whatever_the_click_path():
    direct = run({"dataset": "radar_synthetic", "checkpoint": "radar_6to12"})
    via = run({"dataset": "moving_mnist", "checkpoint": "mnist_b"})
    via.slider(key="context").set_value(2).run()
    via.sidebar.radio(key="domain").set_value("radar").run()
    assert forecast_title(via) == forecast_title(direct)
    assert via.slider(key="context").value == direct.slider(key="context").value == 6


def test_link_warnings_go_once_the_link_is_fixed():
    at = run({"dataset": "nope"})
    assert at.warning
    at.number_input(key="sample").set_value(1).run()
    assert not at.warning


def test_probe_location_is_in_the_link_and_restored():
    at = run({"dataset": "moving_mnist", "checkpoint": "mnist_a", "view": "Pixel probe"})
    at.number_input(key="probe_x").set_value(20).run()
    at.number_input(key="probe_y").set_value(33).run()
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query["probe_x"] == "20" and query["probe_y"] == "33"
    again = run(query)
    assert again.number_input(key="probe_x").value == 20
    assert again.number_input(key="probe_y").value == 33


def test_a_url_lagging_behind_a_click_does_not_undo_it():
    """A rerun whose query string is an older link but is no Back/Forward (the URL update of the
    last run had not reached the browser when the user clicked) keeps the user's choice; Back
    itself is checked in Chromium (tests/dashboard/test_browser.py)."""
    at = run({"dataset": "moving_mnist", "checkpoint": "mnist_a", "sample": "2"})
    earlier = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    at.number_input(key="sample").set_value(5).run()
    at.sidebar.radio(key="domain").set_value("radar")
    for key in list(at.query_params):
        del at.query_params[key]
    for k, v in earlier.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    assert at.sidebar.radio(key="domain").value == "radar"
    assert at.selectbox(key="dataset").value == "radar_synthetic"


def test_metrics_say_one_sample_and_the_whole_split_can_be_scored():
    at = run({"dataset": "moving_mnist", "checkpoint": "mnist_a", "view": "Metrics"})
    captions = " ".join(c.value for c in at.caption)
    assert "Scores of sample 0 only" in captions
    one = at.dataframe[0].value
    at.button(key="score_split").click().run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "pooled over all 64 samples" in captions
    pooled = at.dataframe[0].value
    assert list(pooled.columns) == list(one.columns) and len(pooled) == len(one)
    assert not pooled["MSE"].equals(one["MSE"])  # 64 samples, not sample 0 again


def test_start_up_warms_each_domain_opening_page(root, monkeypatch):
    from dashboard import cache

    monkeypatch.setenv(cache.WARM_UP_ENV, "1")  # pages ahead on (the queue is drained below)

    cache.clear()
    warmed = cache.warm_up_defaults(str(root), ("video", "radar", "traffic"))
    # radar opens on the bundled FMI event, forecast in tiles by the 128 px radar checkpoint
    assert warmed == [("moving_mnist", "mnist_a"), ("radar_fmi_sample", "radar_6to12")]

    def entries(name: str) -> int:
        return next(c for c in cache.stats() if c["name"] == name)["entries"]

    assert entries("rollouts") == 2
    assert entries("figures") == 3 * 2  # forecast, gates and gate means per page
    # the page then finds its opening rollout and figures ready (no new entries) ...
    at = run({"dataset": "moving_mnist"})
    assert at.selectbox(key="checkpoint").value == "mnist_a"
    # ... and asks for the next two samples' pages in the background (one worker, in order)
    cache._PREFETCH.submit(lambda: None).result(timeout=120)  # the queue ran
    assert (entries("rollouts"), entries("figures")) == (4, 12)
    at.sidebar.number_input(key="sample").increment().run()
    assert not at.exception and at.sidebar.number_input(key="sample").value == 1
    cache._PREFETCH.submit(lambda: None).result(timeout=120)
    assert entries("rollouts") == 5  # sample 1 found ready; sample 3 prefetched (2 was)
    assert entries("figures") == 15
    cache.clear()


def _cf_netcdf_south_first(path: Path) -> Path:
    """A CF radar file stored south to north (y increasing northward) in metres, 1 km pixels:
    rain (8 mm/h) in the northern quarter only."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    rain = np.zeros((10, 64, 64), np.float32)
    rain[:, 48:, :] = 8.0  # the last rows stored are the northernmost
    ds = xr.Dataset(
        {"rain": (("time", "y", "x"), rain, {"units": "mm/h"})},
        coords={
            "time": pd.date_range("2021-07-14 12:00", periods=10, freq="5min"),
            "y": ("y", 500.0 + 1000.0 * np.arange(64), {"units": "m", "axis": "Y",
                                                         "standard_name": "projection_y_coordinate"}),
            "x": ("x", 500.0 + 1000.0 * np.arange(64), {"units": "m", "axis": "X",
                                                         "standard_name": "projection_x_coordinate"}),
        },
    )  # fmt: skip
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def test_uploaded_cf_grid_stored_south_first_is_drawn_north_up_in_km(tmp_path):
    """Through the real upload path (sandboxed reader): metre coordinates and their units reach
    the figure, which puts the northern rain at the top of km axes."""
    import numpy as np

    from tests.dashboard.test_app import decode

    content = _cf_netcdf_south_first(tmp_path / "storm.nc").read_bytes()
    at = run()
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value(("storm.nc", content, "application/x-netcdf"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    spec = next(
        json.loads(el.proto.spec)
        for el in at.get("plotly_chart")
        if json.loads(el.proto.spec)["layout"].get("meta", {}).get("kind") == "forecast"
    )
    layout = spec["layout"]
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == (
        "x (km)",
        "y (km)",
    )
    lo, hi = layout["yaxis"]["range"]
    assert lo < hi and layout["yaxis"].get("autorange") != "reversed"  # y grows upwards
    observed = spec["frames"][0]["data"][1]  # the truth panel shows the first context frame
    assert observed["y0"] == 0.5 and observed["dy"] == 1.0  # row k drawn at y = 0.5 + k km
    rows = decode(spec, observed)
    wet = np.flatnonzero(np.nanmax(rows, axis=1) > 1.0)
    assert wet.min() == 48 and wet.max() == 63  # at y >= 48.5 km: the top of the chart
    assert "valid 2021-07-14 12:" in layout["title"]["text"] and "UTC" in layout["title"]["text"]

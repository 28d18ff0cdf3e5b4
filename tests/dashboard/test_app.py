"""The Streamlit page driven with AppTest: every control and view, asserting what is drawn.

A small untrained checkpoint for the bundled ``moving_mnist`` dataset is written to a temporary
folder (``$CONVLSTM_CHECKPOINTS``), so these tests do not depend on the shipped checkpoints.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import figures as F
from dashboard import services
from tests.dashboard_synthetic import make_checkpoint

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_checkpoint(root, "tiny_mnist")
    return root


@pytest.fixture(autouse=True)
def _checkpoints(ckpt_root, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(ckpt_root))


def run_app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """The text a Markdown message displays: escapes of :func:`dashboard.text.plain` resolved."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly specs on the page by ``layout.meta.kind``."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[spec["layout"].get("meta", {}).get("kind", "?")] = spec
    return out


def z_of(trace: dict) -> np.ndarray:
    """Decode plotly's base64 typed array (or a plain list) into numpy."""
    import base64

    z = trace["z"]
    if isinstance(z, dict):
        raw = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        shape = [int(s) for s in str(z.get("shape", len(raw))).split(",")]
        return raw.reshape(shape)
    return np.asarray(z)


def decode(spec: dict, trace: dict, key: str = "value_scale") -> np.ndarray:
    """Physical values of a forecast panel (a PNG image of codes) or a heatmap of codes."""
    codes = F.panel_codes(trace) if "source" in trace else z_of(trace)
    return F.scale_from_meta(spec["layout"]["meta"][key]).decode(codes)


def data_frame(sample: int, t: int) -> np.ndarray:
    return services.load_dataset("moving_mnist").values[sample, t, 0]


def test_opens_on_an_animated_forecast_without_clicks():
    at = run_app()
    assert not at.error
    assert at.sidebar.radio(key="domain").value == "video"
    assert at.selectbox(key="dataset").value == "moving_mnist"
    assert at.selectbox(key="checkpoint").value == "tiny_mnist"
    specs = charts(at)
    fc = specs["forecast"]
    # three image panels, two invisible heatmaps holding the colour bars
    assert [t["type"] for t in fc["data"]] == ["image"] * 3 + ["heatmap"] * 2
    assert len(fc["frames"]) == 20  # 10 context + 10 forecast frames
    assert fc["layout"]["xaxis"]["title"]["text"] == "x (pixel)"
    assert fc["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "pixel intensity [0, 1]"
    assert fc["layout"]["sliders"][0]["active"] == 10
    assert fc["layout"]["sliders"][0]["steps"][10]["label"] == "+1 frame"
    assert len(fc["layout"]["updatemenus"]) == 1
    # the gates view is open by default: 6 heatmaps at the page's step (no slider of their own:
    # one time control), and the mean lines
    assert len(specs["gates"]["data"]) == 6 and not specs["gates"].get("frames")
    assert (
        "sliders" not in specs["gates"]["layout"] and specs["gates"]["layout"]["meta"]["step"] == 10
    )
    assert {t["name"] for t in specs["gate_means"]["data"]} == set(F.GATE_NAMES)
    assert "cpu" in " ".join(c.value for c in at.sidebar.caption)
    assert (
        dict(at.query_params) | {}
        and at.query_params["dataset"] == ["moving_mnist"]
        or (at.query_params["dataset"] == "moving_mnist")
    )


def _qp(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def test_truth_and_prediction_pixels_match_the_data_and_the_model():
    at = run_app()
    fc = charts(at)["forecast"]
    first = fc["frames"][10]["data"]  # lead +1 frame
    truth = decode(fc, first[1])
    want = data_frame(0, 10)
    np.testing.assert_allclose(truth, want, atol=0.5 / 254 + 1e-6)
    net, meta = services.load_model("tiny_mnist")
    data = services.load_dataset("moving_mnist")
    ds = services.run_rollout(net, meta, data, services.Window(0, 0, 10, 10))
    pred = decode(fc, first[0])
    np.testing.assert_allclose(pred, ds.prediction.values[0, 0], atol=0.5 / 254 + 1e-6)


def test_sample_control_changes_the_truth_and_the_link():
    at = run_app()
    at.number_input(key="sample").set_value(3).run()
    assert not at.exception
    fc = charts(at)["forecast"]
    truth = decode(fc, fc["frames"][12]["data"][1])
    np.testing.assert_allclose(truth, data_frame(3, 12), atol=0.5 / 254 + 1e-6)
    assert _qp(at, "sample") == "3"


def test_context_and_horizon_controls_with_beyond_training_flag():
    at = run_app()
    at.slider(key="context").set_value(6).run()
    at.slider(key="horizon").set_value(16).run()
    assert not at.exception
    fc = charts(at)["forecast"]
    assert len(fc["frames"]) == 6 + 16
    assert any("beyond the training horizon of 10" in w.value for w in at.sidebar.warning)
    titles = [f["layout"]["title"]["text"] for f in fc["frames"]]
    assert "beyond training horizon" in titles[-1] and "beyond" not in titles[6 + 9]
    assert _qp(at, "context") == "6" and _qp(at, "horizon") == "16"
    # ground truth runs out after frame 20: a caption says how much is covered
    assert any("covers 14 of the 16" in c.value for c in at.sidebar.caption)


def test_start_frame_moves_the_context_window():
    at = run_app()
    at.slider(key="context").set_value(5).run()
    at.slider(key="horizon").set_value(5).run()
    at.slider(key="start").set_value(4).run()
    assert not at.exception
    fc = charts(at)["forecast"]
    observed = decode(fc, fc["frames"][0]["data"][1])  # first context frame = data frame 4
    np.testing.assert_allclose(observed, data_frame(0, 4), atol=0.5 / 254 + 1e-6)


def test_step_control_sets_the_animation_start_and_gates_step():
    at = run_app()
    at.select_slider(key="step").set_value(15).run()
    specs = charts(at)
    assert specs["forecast"]["layout"]["sliders"][0]["active"] == 15
    # Play runs on from the chosen step, never from the first frame
    play = specs["forecast"]["layout"]["updatemenus"][0]["buttons"][0]["args"][0]
    assert play[0] == "15" and len(play) == 20 - 15
    assert specs["gates"]["layout"]["meta"]["step"] == 15  # the gates follow the same control
    assert "+6 frames" in specs["gates"]["layout"]["title"]["text"]
    assert _qp(at, "step") == "15"


def test_gate_controls_layer_gate_and_channel():
    at = run_app()
    at.selectbox(key="layer").set_value(1).run()
    at.selectbox(key="gate").set_value("cell").run()
    at.selectbox(key="reduction").set_value("max").run()
    gates = charts(at)["gates"]
    assert gates["layout"]["meta"]["layer"] == 1
    titles = [a["text"] for a in gates["layout"]["annotations"]]
    assert titles[4] == "<b>cell C<sub>t</sub></b>"
    assert "max over channels" in gates["layout"]["title"]["text"]
    at.selectbox(key="reduction").set_value("channel").run()
    at.number_input(key="hidden_channel").set_value(2).run()
    gates = charts(at)["gates"]
    assert gates["layout"]["meta"]["reduction"] == 2
    assert "channel 2" in gates["layout"]["title"]["text"]
    assert (_qp(at, "layer"), _qp(at, "gate"), _qp(at, "channel")) == ("1", "cell", "2")
    at.selectbox(key="reduction").set_value("variance").run()
    gates = charts(at)["gates"]
    # one unit for all six panels, never one per panel: the most varying channel of the cell
    shown = gates["layout"]["meta"]["shown"]
    assert shown.endswith("(most variance in cell)") and shown in gates["layout"]["title"]["text"]
    net, meta = services.load_model("tiny_mnist")
    ds = services.run_rollout(net, meta, services.load_dataset("moving_mnist"),
                              services.Window(0, 0, 10, 10))  # fmt: skip
    cell = ds.gates.sel(layer=1, gate="cell").astype(np.float32)
    assert shown.startswith(f"channel {int(cell.var(('step', 'gy', 'gx')).argmax('hidden'))} ")


def test_pixel_probe_view_follows_xy_inputs():
    at = run_app()
    at.radio(key="view").set_value("Pixel probe").run()
    at.number_input(key="probe_x").set_value(20).run()
    at.number_input(key="probe_y").set_value(33).run()
    assert not at.exception
    specs = charts(at)
    assert "gates" not in specs  # only the open view is sent
    probe = specs["probe"]
    assert probe["layout"]["meta"] == {"kind": "probe", "x": 20, "y": 33}
    observed = probe["data"][0]["y"]
    observed = z_of({"z": observed}) if isinstance(observed, dict) else np.asarray(observed)
    assert observed[12] == pytest.approx(float(data_frame(0, 12)[33, 20]), abs=1e-6)
    names = [t["name"] for t in probe["data"]]
    assert names.count("forget") == 2  # every gate of each of the 2 layers
    assert specs["probe_map"]["data"][2]["x"] == [20]


def test_metrics_view_scores_model_and_persistence():
    at = run_app()
    at.radio(key="view").set_value("Metrics").run()
    assert not at.exception
    m = charts(at)["metrics"]
    assert {t["name"] for t in m["data"]} == {"ConvLSTM", "persistence", "all-black"}
    assert "MSE" in m["layout"]["meta"]["scores"]
    table = at.dataframe[0].value
    assert set(table["forecast"]) == {"ConvLSTM", "persistence", "all-black"}
    black = table[table["forecast"] == "all-black"]
    assert (black["MSE"] > 0).all()  # the empty frame misses every lit pixel of the truth
    assert len(table) == 30 and table["lead_time"].iloc[0] == "+1 frame"


def test_export_view_offers_four_downloads():
    at = run_app()
    at.radio(key="view").set_value("Export").run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == [
        "Animation (GIF)",
        "Animation (MP4)",
        "Rollout with gates (NetCDF)",
        "Metrics (CSV)",
    ]


def test_deep_link_restores_the_same_view():
    query = {
        "dataset": "moving_mnist",
        "checkpoint": "tiny_mnist",
        "sample": "5",
        "step": "13",
        "layer": "1",
        "gate": "output",
        "channel": "3",
    }
    at = run_app(query)
    assert not at.warning
    assert at.number_input(key="sample").value == 5
    assert at.select_slider(key="step").value == 13
    assert at.selectbox(key="layer").value == 1
    assert at.selectbox(key="gate").value == "output"
    assert at.number_input(key="hidden_channel").value == 3
    specs = charts(at)
    assert specs["forecast"]["layout"]["sliders"][0]["active"] == 13
    assert specs["gates"]["layout"]["meta"]["reduction"] == 3
    for key, value in query.items():
        assert _qp(at, key) == value


def test_bad_deep_link_shows_a_message_and_defaults():
    at = run_app({"dataset": "nope", "sample": "999", "gate": "bogus", "checkpoint": "x"})
    text = " ".join(shown(w.value) for w in at.warning)
    assert "'nope' is not a known dataset" in text
    assert "'999' is not a valid sample index" in text
    assert "'bogus' is not a known gate" in text
    assert "'x' is not a known checkpoint" in text
    assert at.selectbox(key="dataset").value == "moving_mnist"
    assert at.number_input(key="sample").value == 0
    assert "forecast" in charts(at)


def test_upload_npy_goes_through_the_same_views():
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    assert any("Upload a file" in i.value for i in at.info)
    rng = np.random.default_rng(0)
    frames = (rng.random((12, 64, 64)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    np.save(buf, frames)
    at.sidebar.file_uploader[0].set_value(("mine.npy", buf.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error, [shown(e.value) for e in at.error]
    fc = charts(at)["forecast"]
    # the checkpoint's training window: 10 context frames, then its 10-frame horizon
    assert (at.slider(key="context").value, at.slider(key="horizon").value) == (10, 10)
    assert len(fc["frames"]) == 10 + 10
    observed = decode(fc, fc["frames"][0]["data"][1])
    np.testing.assert_allclose(observed, frames[0] / 255.0, atol=0.5 / 254 + 1e-6)


def test_checkpoint_applied_to_natural_video_is_marked_out_of_its_family():
    import imageio.v3 as iio

    at = run_app()
    assert not any("Out of its family" in w.value for w in at.sidebar.warning)  # digits on digits
    at.sidebar.radio(key="domain").set_value("upload").run()
    rng = np.random.default_rng(1)
    clip = (rng.random((12, 64, 64)) * 255).astype(np.uint8)  # a grey-noise "natural" clip
    gif = iio.imwrite("<bytes>", clip, extension=".gif")
    at.sidebar.file_uploader[0].set_value(("clip.gif", gif, "image/gif"))
    at.run()
    assert not at.exception and "forecast" in charts(at)  # it still fits and forecasts
    notes = [shown(w.value) for w in at.sidebar.warning]
    assert any("trained on Moving MNIST digits; this is natural video" in n for n in notes), notes


def test_bad_upload_gives_a_message_not_a_traceback():
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value(
        ("broken.npy", b"not really numpy", "application/octet-stream")
    )
    at.run()
    assert not at.exception
    assert at.error and "broken.npy" in shown(at.error[0].value)
    # the page stays usable: switch back to a bundled dataset
    at.sidebar.radio(key="domain").set_value("video").run()
    assert not at.error and "forecast" in charts(at)


def test_upload_without_a_compatible_checkpoint_says_why():
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    buf = io.BytesIO()
    np.save(buf, np.zeros((8, 32, 32), np.uint8))
    at.sidebar.file_uploader[0].set_value(("small.npy", buf.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert "No checkpoint fits small.npy" in shown(at.error[0].value)
    assert "32x32" in shown(at.error[0].value)


def test_broken_checkpoint_is_an_error_message(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, "tiny_mnist")
    (tmp_path / "tiny_mnist" / "model.safetensors").write_bytes(b"garbage")
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(tmp_path))
    at = run_app()
    # listed as unavailable with its reason; the page says no checkpoint fits instead of failing
    captions = " ".join(shown(c.value) for c in at.sidebar.caption)
    assert "Unavailable: tiny_mnist:" in captions
    assert "safetensors" in captions or "sha256" in captions
    assert at.error and "No checkpoint fits" in shown(at.error[0].value)


@pytest.fixture(scope="module")
def radar_root(tmp_path_factory):
    import datasets

    if "radar_synthetic" not in datasets.list_datasets():
        pytest.skip("datasets.radar_synthetic is not registered")
    root = tmp_path_factory.mktemp("radar_checkpoints")
    make_checkpoint(
        root, "tiny_radar", dataset="radar_synthetic", domain="radar", frame_size=(128, 128),
        hidden=(4, 4), patch_size=4, context=12, horizon=12,
        normalization={"kind": "db", "units": "mm/h", "threshold": 0.1, "zerovalue": -15.0,
                       "scale": 10.0},
    )  # fmt: skip
    return root


def test_radar_page_units_colours_and_threshold_metrics(radar_root, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(radar_root))
    at = run_app({"dataset": "radar_synthetic", "view": "Metrics"})
    assert at.sidebar.radio(key="domain").value == "radar"
    assert at.selectbox(key="checkpoint").value == "tiny_radar"
    specs = charts(at)
    fc = specs["forecast"]
    assert fc["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "rain rate (mm/h)"
    assert fc["layout"]["xaxis"]["title"]["text"] == "x (km)"
    assert fc["layout"]["sliders"][0]["steps"][12]["label"] == "+5 min"
    assert fc["layout"]["meta"]["value_scale"]["log"] is True
    stops = fc["layout"]["coloraxis"]["colorscale"]
    assert stops[2][1] == "#ffffff"  # the no-rain colour
    assert "white = no rain" in " ".join(c.value for c in at.caption)
    # metrics: MSE, MAE and CSI/POD/FAR/FBI/FSS at the default 1 mm/h, then at a user threshold
    scores = specs["metrics"]["layout"]["meta"]["scores"]
    assert {"MSE", "MAE", "CSI@1", "POD@1", "FAR@1", "FBI@1", "FSS@1"} <= set(scores)
    assert "FSS (rain rate ≥ 1 mm/h, 10 km)" in specs["metrics"]["layout"]["meta"]["titles"]
    assert services.SCORING_NOTE in " ".join(c.value for c in at.caption)  # mask, events, domain
    assert at.number_input(key="threshold").value == 1.0
    at.number_input(key="threshold").set_value(5.0).run()
    assert not at.exception
    scores = charts(at)["metrics"]["layout"]["meta"]["scores"]
    assert "CSI@5" in scores and "CSI@1" not in scores
    table = at.dataframe[0].value
    assert table["lead_time"].iloc[0] == "+5 min"
    # persistence: MAE at lead 1 equals |last context frame - truth| averaged (model.metrics)
    from model.baselines import persistence
    from model.metrics import per_lead

    data = services.load_dataset("radar_synthetic")
    ctx, truth = services.select_window(data, services.Window(0, 0, 12, 12))
    want = per_lead(persistence(ctx.values, horizon=12), truth.values, domain="radar")
    got = table[table["forecast"] == "persistence"]["MAE"].to_numpy()
    np.testing.assert_allclose(got, want["MAE"].to_numpy(), rtol=1e-6)
    # radar also scores pysteps optical-flow extrapolation, with the same functions
    from model.baselines import extrapolation

    assert set(table["forecast"]) == {"ConvLSTM", "persistence", "extrapolation"}
    want = per_lead(extrapolation(ctx.values, horizon=12), truth.values, domain="radar")
    got = table[table["forecast"] == "extrapolation"]["MAE"].to_numpy()
    np.testing.assert_allclose(got, want["MAE"].to_numpy(), rtol=1e-5)


def test_upload_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(services, "UPLOAD_MAX_MB", 0.001)  # 1 kB
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 64, 64), np.uint8))
    at.sidebar.file_uploader[0].set_value(("big.npy", buf.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert "over the 0.001 MB limit" in shown(at.error[0].value)


def test_a_new_session_first_gets_the_hidden_plotly_preload_chart_once():
    from dashboard.page_start import PLOTLY_PRELOAD_KEY

    at = run_app()
    first = at.get("plotly_chart")[0]  # before the heavy imports and the forecast
    assert json.loads(first.proto.spec)["layout"]["meta"] == {"kind": "preload"}
    assert list(charts(at))[:2] == ["preload", "forecast"]
    style = " ".join(m.value for m in at.markdown)
    assert f".st-key-{PLOTLY_PRELOAD_KEY}{{display:none;}}" in style
    at.run()  # the session's next run: its browser has plotly already
    assert "preload" not in charts(at) and "forecast" in charts(at)


def test_no_checkpoints_at_all_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(tmp_path))
    at = run_app()
    assert at.error and "No checkpoint fits" in shown(at.error[0].value)
    assert "none" in shown(at.error[0].value)  # lists what the folder holds
    assert list(charts(at)) == ["preload"]  # no chart but the hidden one that loads plotly early
    assert at.get("imgs") or at.get("image")  # a preview of the data instead


def test_traffic_channels_and_sequential_colours(tmp_path, monkeypatch):
    import datasets

    if "traffic_sumo" not in datasets.list_datasets():
        pytest.skip("datasets.traffic_sumo is not registered")
    try:
        data = services.load_dataset("traffic_sumo", n_samples=2)
    except services.DashboardError as exc:
        pytest.skip(f"traffic_sumo does not load here: {exc}")
    make_checkpoint(
        tmp_path, "tiny_traffic", dataset="traffic_sumo", domain="traffic", in_channels=2,
        frame_size=(16, 16), hidden=(4,), patch_size=2, context=12, horizon=12,
        normalization={"kind": "scale", "units": "vehicles per interval", "scale": 50.0},
    )  # fmt: skip
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(tmp_path))
    at = run_app({"dataset": "traffic_sumo"})
    assert at.sidebar.radio(key="domain").value == "traffic"
    assert at.selectbox(key="data_channel").options == ["inflow", "outflow"]
    fc = charts(at)["forecast"]
    assert "inflow" in fc["layout"]["title"]["text"]
    assert fc["layout"]["coloraxis"]["colorscale"][2][1] == "#ffffcc"  # YlOrRd, sequential
    assert fc["layout"]["sliders"][0]["steps"][12]["label"] == "+15 min"
    at.selectbox(key="data_channel").set_value("outflow").run()
    fc = charts(at)["forecast"]
    assert "outflow" in fc["layout"]["title"]["text"]
    truth = decode(fc, fc["frames"][12]["data"][1])
    want = data.values[0, 12, 1]
    scale = F.scale_from_meta(fc["layout"]["meta"]["value_scale"])
    assert np.all(np.abs(truth - want) <= scale.resolution(0) * 1.01)
    # one layer: the layer choice has a single option and the gates view still draws
    assert at.selectbox(key="layer").options == ["0"]
    assert len(charts(at)["gates"]["data"]) == 6

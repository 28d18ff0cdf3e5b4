"""Figure builders on synthetic rollouts of the model.rollout schema (no Streamlit, no model)."""

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from dashboard import figures as F
from tests.dashboard_synthetic import synthetic_rollout


def _decode(fig, trace, key="value_scale"):
    scale = F.scale_from_meta(fig.layout.meta[key])
    return scale.decode(F.panel_codes(trace))


@pytest.mark.parametrize("domain", ["radar", "traffic", "video"])
def test_forecast_figure_frames_panels_and_axes(domain):
    ds = synthetic_rollout(domain=domain, n_context=4, horizon=5)
    fig = F.forecast_figure(ds)
    assert len(fig.frames) == 9  # 4 context + 5 forecast steps
    # three image panels (indexed PNGs of 8-bit codes), then the invisible heatmaps that keep
    # the two colour bars
    assert [type(t) for t in fig.data] == [go.Image] * 3 + [go.Heatmap] * 2
    assert all(t.source.startswith(F.PNG_URI) for t in fig.data[:3])
    assert [t.coloraxis for t in fig.data[3:]] == ["coloraxis", "coloraxis2"]
    assert all(t.opacity == 0 and t.hoverinfo == "skip" for t in fig.data[3:])
    assert all(list(f.traces) == [0, 1, 2] for f in fig.frames)
    assert [a.text for a in fig.layout.annotations][:3] == [
        "Prediction",
        "Truth",
        "Error (prediction − truth)",
    ]
    assert fig.layout.xaxis.title.text == "x (pixel)"
    assert fig.layout.yaxis.title.text == "y (pixel)"
    units = ds.attrs["units"]
    assert units in fig.layout.coloraxis.colorbar.title.text
    assert fig.layout.coloraxis2.colorbar.title.text == f"error ({units})"
    # one play/pause menu and one slider with a step per frame, starting at the first forecast
    assert len(fig.layout.updatemenus) == 1 and len(fig.layout.sliders) == 1
    slider = fig.layout.sliders[0]
    assert len(slider.steps) == 9 and slider.active == 4
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "❚❚ Pause"]


def test_forecast_lead_time_labels_in_real_units():
    ds = synthetic_rollout(domain="radar", n_context=3, horizon=3)
    fig = F.forecast_figure(ds)
    labels = [s.label for s in fig.layout.sliders[0].steps]
    assert labels == ["-10 min", "-5 min", "±0 min", "+5 min", "+10 min", "+15 min"]
    assert fig.layout.title.text.startswith("Lead time +5 min")
    traffic = F.forecast_figure(synthetic_rollout(domain="traffic", n_context=2, horizon=2))
    assert [s.label for s in traffic.layout.sliders[0].steps] == [
        "-30 min",
        "±0 min",
        "+30 min",
        "+60 min",
    ]
    video = F.forecast_figure(synthetic_rollout(domain="video", n_context=2, horizon=2))
    assert [s.label for s in video.layout.sliders[0].steps][-2:] == ["+1 frame", "+2 frames"]


def test_forecast_known_pixel_values():
    ds = synthetic_rollout(domain="radar", n_context=4, horizon=4, size=16)
    fig = F.forecast_figure(ds)
    y, x = 8, 5
    for k in range(4):
        frame = fig.frames[4 + k]
        pred, truth, err = frame.data
        expect_p = float(ds.prediction.values[k, 0, y, x])
        expect_t = float(ds.truth.values[k, 0, y, x])
        got_p = _decode(fig, pred)[y, x]
        got_t = _decode(fig, truth)[y, x]
        scale = F.scale_from_meta(fig.layout.meta["value_scale"])
        assert abs(got_p - expect_p) <= scale.resolution(expect_p) * 1.01
        assert abs(got_t - expect_t) <= scale.resolution(expect_t) * 1.01
        got_e = _decode(fig, err, "error_scale")[y, x]
        escale = F.scale_from_meta(fig.layout.meta["error_scale"])
        assert abs(got_e - (expect_p - expect_t)) <= escale.resolution(0) * 1.01
    # context frames: observed frame in the truth panel, prediction and error blank
    ctx = fig.frames[1]
    assert F.panel_codes(ctx.data[0]).shape == (1, 1) and F.panel_codes(ctx.data[0])[0, 0] == 0
    got = _decode(fig, ctx.data[1])[y, x]
    assert abs(got - float(ds.context.values[1, 0, y, x])) <= 0.05 * got + 0.01


def test_forecast_nan_pixels_are_no_data():
    ds = synthetic_rollout(domain="radar", nan_corner=True)
    fig = F.forecast_figure(ds)
    truth = F.panel_codes(fig.frames[-1].data[1])
    assert truth[0, 0] == 0 and truth[5, 5] != 0


def test_forecast_initial_step_and_beyond_training_flag():
    ds = synthetic_rollout(domain="radar", n_context=4, horizon=6)
    fig = F.forecast_figure(ds, step=8, beyond_training=3)
    assert fig.layout.sliders[0].active == 8
    assert "beyond training horizon" in fig.layout.title.text
    assert "beyond" not in fig.frames[4].layout.title.text
    assert "beyond" in fig.frames[8].layout.title.text
    without = F.forecast_figure(ds, show_context=False)
    assert len(without.frames) == 6


def test_forecast_without_truth_has_two_panels():
    ds = synthetic_rollout(domain="video", truth=False)
    fig = F.forecast_figure(ds)
    assert [type(t) for t in fig.data] == [go.Image, go.Image, go.Heatmap]
    assert fig.layout.annotations[1].text == "Observed (context)"


def test_multichannel_picks_channel_and_names_it():
    ds = synthetic_rollout(domain="traffic")
    ds["prediction"][:, 1] = 0.0
    fig = F.forecast_figure(ds, channel=1)
    assert "outflow" in fig.layout.title.text
    assert np.all(_decode(fig, fig.frames[-1].data[0]) == 0.0)


@pytest.mark.parametrize("reduction", ["mean", "max", "variance", 2])
def test_gates_figure_six_panels_at_one_step(reduction):
    ds = synthetic_rollout(n_context=4, horizon=4, layers=2, hidden=3)
    equations = {"C_t": "C_t = f_t ∘ C_{t-1} + i_t ∘ g_t"}
    fig = F.gates_figure(ds, layer=1, reduction=reduction, step=5, gate="cell", equations=equations)
    assert len(fig.data) == 6 and all(isinstance(t, go.Heatmap) for t in fig.data)
    assert not fig.frames and not fig.layout.sliders  # the page's step control is the only one
    assert fig.layout.meta["step"] == 5
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:6] == [
        "input i<sub>t</sub>", "forget f<sub>t</sub>", "output o<sub>t</sub>",
        "candidate g<sub>t</sub>", "<b>cell C<sub>t</sub></b>", "hidden H<sub>t</sub>",
    ]  # fmt: skip
    assert "C_t = f_t ∘ C_{t-1} + i_t ∘ g_t" in fig.data[4].hovertemplate
    # one reduction for every panel, said once in the figure title
    shown = {"mean": "mean over channels", "max": "max over channels", 2: "channel 2",
             "variance": "(most variance in cell)"}[reduction]  # fmt: skip
    assert shown in fig.layout.title.text and shown in fig.layout.meta["shown"]
    assert [t.name for t in fig.data] == list(F.GATE_NAMES)
    # values of a known latent pixel, decoded with each panel's scale
    sub = ds.gates.sel(layer=1).astype(np.float32)
    if reduction == "mean":
        expect = sub.mean("hidden")
    elif reduction == "max":
        expect = sub.max("hidden")
    elif reduction == 2:
        expect = sub.isel(hidden=2)
    else:
        expect = None
    for i, trace in enumerate(fig.data):
        scale = F.scale_from_meta(fig.layout.meta["scales"][i])
        got = scale.decode(np.asarray(trace.z))
        if expect is not None:
            want = float(expect.isel(gate=i, step=5, gy=3, gx=2))
            assert abs(got[3, 2] - want) <= scale.resolution(want) * 1.01 + 2e-3


def test_gates_variance_picks_one_channel_for_all_panels():
    ds = synthetic_rollout(hidden=3)
    g = ds["gates"].values.astype(np.float32)
    g[:, :, :, 1] *= 5.0  # channel 1 varies most in every gate...
    g[:, 1, :, 2] *= 40.0  # ...except the forget gate, where channel 2 does
    ds["gates"].values[:] = g.astype(np.float16)
    reduced, desc = F.reduce_hidden(ds["gates"].sel(layer=0), "variance")
    assert set(desc.values()) == {"channel 1 (most variance in hidden)"}
    reduced, desc = F.reduce_hidden(ds["gates"].sel(layer=0), "variance", focus="forget")
    assert set(desc.values()) == {"channel 2 (most variance in forget)"}
    np.testing.assert_array_equal(
        reduced.values, ds["gates"].sel(layer=0).isel(hidden=2).values.astype(np.float32)
    )
    with pytest.raises(ValueError, match="out of range"):
        F.reduce_hidden(ds["gates"].sel(layer=0), 7)


def test_gates_figure_needs_gates():
    with pytest.raises(ValueError, match="no gates"):
        F.gates_figure(synthetic_rollout(gates=False))


def test_gate_means_figure_lines_and_axes():
    ds = synthetic_rollout(n_context=4, horizon=4)
    fig = F.gate_means_figure(ds, layer=0, step=2, gate="forget")
    assert [t.name for t in fig.data] == list(F.GATE_NAMES)
    assert all(isinstance(t, go.Scatter) for t in fig.data)
    forget = next(t for t in fig.data if t.name == "forget")
    want = ds.gates.sel(layer=0, gate="forget").astype(np.float32).mean(("hidden", "gy", "gx"))
    np.testing.assert_allclose(forget.y, want.values, rtol=1e-5)
    assert forget.line.width > fig.data[0].line.width
    assert fig.layout.xaxis2.title.text == "lead time (min)"
    np.testing.assert_allclose(forget.x, [-15, -10, -5, 0, 5, 10, 15])


def test_probe_series_and_figure():
    ds = synthetic_rollout(n_context=4, horizon=4, layers=2)
    table = F.probe_series(ds, y=9, x=6)
    assert len(table) == 8
    assert table["observed"].iloc[2] == pytest.approx(float(ds.context.values[2, 0, 9, 6]))
    assert table["prediction"].iloc[5] == pytest.approx(float(ds.prediction.values[1, 0, 9, 6]))
    assert np.isnan(table["prediction"].iloc[0])
    want = ds.gates.sel(layer=1, gate="cell").isel(gy=9 // 2, gx=6 // 2).astype(np.float32)
    np.testing.assert_allclose(table["L1 cell"].values[:7], want.mean("hidden").values, rtol=1e-5)
    fig = F.probe_figure(ds, y=9, x=6)
    names = [t.name for t in fig.data]
    assert names[:2] == ["truth / observed", "prediction"]
    assert names.count("forget") == 2  # one per layer
    assert fig.layout.yaxis.title.text == "mm/h"


def test_probe_map_has_clickable_points_with_pixels():
    ds = synthetic_rollout(size=16)
    fig = F.probe_map_figure(ds, step=5, marker=(3, 4))
    heat, points, marker = fig.data
    assert isinstance(heat, go.Heatmap) and isinstance(points, go.Scatter)
    assert len(points.x) == 256  # 16 x 16 pixels, stride 1
    assert list(marker.x) == [3] and list(marker.y) == [4]
    grid = fig.layout.meta["grid"]
    assert F.pixel_of(grid, points.x[37], points.y[37]) == (37 % 16, 37 // 16)
    assert F.pixel_of(grid, -5.0, 99.0) == (0, 15)
    big = F.probe_map_figure(synthetic_rollout(size=128, hidden=1, layers=1), step=1)
    assert len(big.data[1].x) <= 4096 and big.layout.meta["stride"] == 2


def test_metrics_figure_panels_per_score():
    import pandas as pd

    idx = pd.Index([1, 2, 3], name="lead_step")
    tables = {
        "ConvLSTM": pd.DataFrame({"MSE": [1.0, 2.0, 3.0], "CSI@1": [0.9, 0.8, 0.7]}, index=idx),
        "persistence": pd.DataFrame({"MSE": [2.0, 3.0, 4.0], "CSI@1": [0.8, 0.6, 0.5]}, index=idx),
    }
    ds = synthetic_rollout(n_context=2, horizon=3)
    fig = F.metrics_figure(tables, lead=F.time_axis(ds), units={"MSE": "(mm/h)^2"})
    assert len(fig.data) == 4
    assert fig.layout.yaxis.title.text == "MSE ((mm/h)^2)"
    assert fig.layout.xaxis.title.text == "lead time (min)"
    assert list(fig.data[0].x) == [5, 10, 15]


def test_parse_time_step():
    assert F.parse_time_step("PT5M") == 300
    assert F.parse_time_step("PT1H30M") == 5400
    assert F.parse_time_step("P1D") == 86400
    assert F.parse_time_step("1 frame") is None
    assert F.parse_time_step(600) == 600


def test_payload_of_a_radar_rollout_with_gates_is_under_5_mb():
    """12+12 frames at 128x128 with two 64-channel layers at 64x64 (the issue's benchmark case)."""
    ds = synthetic_rollout(
        domain="radar", n_context=12, horizon=12, size=128, patch=2, layers=2, hidden=64
    )
    figs = [
        F.forecast_figure(ds),
        F.gates_figure(ds, layer=0, reduction="variance"),
        F.gate_means_figure(ds, layer=0),
    ]
    total = sum(len(pio.to_json(f, validate=False)) for f in figs)
    assert total < 5e6, total


# -- valid times, map orientation, units, layout ------------------------------------------------
def _with_times(ds, start="2016-07-11 14:15"):
    import pandas as pd

    t0 = pd.Timestamp(start)
    n_ctx = ds.sizes["context_time"]
    return ds.assign_coords(
        time=("time", t0 + ds["lead_time"].values),
        context_time=(
            "context_time",
            t0 + np.arange(-(n_ctx - 1), 1) * pd.Timedelta(ds.attrs["time_step"]),
        ),
    )


def test_titles_give_valid_time_when_the_data_has_timestamps():
    ds = _with_times(synthetic_rollout(domain="radar", n_context=3, horizon=4))
    fig = F.forecast_figure(ds)
    assert fig.layout.title.text.startswith("Lead time +5 min · valid 2016-07-11 14:20 UTC")
    assert "valid 2016-07-11 14:35 UTC" in fig.frames[-1].layout.title.text
    assert "valid 2016-07-11 14:05 UTC" in fig.frames[0].layout.title.text
    assert fig.layout.meta["valid_times"][3] == "2016-07-11 14:20 UTC"
    gates = F.gates_figure(ds, step=3)
    assert "valid 2016-07-11 14:20 UTC" in gates.layout.title.text
    # the presenter's pattern still finds the lead
    import re

    assert re.search(r"Lead time ([+-]?\d+ \w+)", fig.layout.title.text).group(1) == "+5 min"


def test_relative_lead_only_without_real_timestamps():
    ds = synthetic_rollout(domain="radar", n_context=3, horizon=4)
    assert F.valid_times(ds) is None
    assert "valid" not in F.forecast_figure(ds).layout.title.text
    nominal = _with_times(synthetic_rollout(domain="radar"))
    nominal.attrs["synthetic"] = 1  # nominal timestamps of synthetic data are not shown
    assert F.valid_times(nominal) is None
    # context times missing: filled back from the first forecast time and the time step
    ds = _with_times(synthetic_rollout(domain="radar", n_context=3, horizon=2))
    ds = ds.assign_coords(context_time=np.arange(3))
    times = F.valid_times(ds)
    assert [F.format_valid_time(t, "UTC") for t in times] == [
        "2016-07-11 14:05 UTC",
        "2016-07-11 14:10 UTC",
        "2016-07-11 14:15 UTC",
        "2016-07-11 14:20 UTC",
        "2016-07-11 14:25 UTC",
    ]


@pytest.mark.parametrize(
    ("stamp", "zone", "label"),
    [
        ("2016-07-11 14:35", "UTC", "2016-07-11 14:35 UTC"),
        ("2016-07-11 14:35:30", "UTC", "2016-07-11 14:35:30 UTC"),
        ("2014-01-10 08:30", "America/New_York", "2014-01-10 08:30 New York time (UTC-5)"),
        ("2014-07-10 08:00", "America/New_York", "2014-07-10 08:00 New York time (UTC-4)"),
        ("2015-03-01 17:30", "Asia/Shanghai", "2015-03-01 17:30 Shanghai time (UTC+8)"),
        ("2015-03-01 17:30", "Asia/Kolkata", "2015-03-01 17:30 Kolkata time (UTC+5:30)"),
        ("2015-03-01 17:30", "local", "2015-03-01 17:30 local time"),
        ("2015-03-01 17:30", "Mars/Olympus_Mons", "2015-03-01 17:30 time zone Mars/Olympus_Mons"),
    ],
)
def test_valid_time_names_the_clock_of_the_data(stamp, zone, label):
    assert F.format_valid_time(np.datetime64(stamp), zone) == label


def test_titles_and_meta_use_the_time_zone_in_the_attrs():
    ds = _with_times(
        synthetic_rollout(domain="traffic", n_context=3, horizon=2), "2014-07-10 08:00"
    )
    ds.attrs["time_zone"] = "America/New_York"
    fig = F.forecast_figure(ds)
    assert "UTC" not in fig.layout.title.text.replace("(UTC-4)", "")
    assert "New York time (UTC-4)" in fig.layout.title.text
    assert all(t.endswith("New York time (UTC-4)") for t in fig.layout.meta["valid_times"])
    assert all("New York time" in f.layout.title.text for f in fig.frames)
    assert "New York time (UTC-4)" in F.gates_figure(ds, step=2).layout.title.text
    del ds.attrs["time_zone"]  # absent: UTC, as CF-NetCDF and every radar source
    assert F.forecast_figure(ds).layout.meta["valid_times"][0].endswith(" UTC")


def test_cf_grid_stored_south_to_north_is_drawn_north_up_in_km():
    ds = synthetic_rollout(domain="radar", size=16)
    ds = ds.assign_coords(y=np.arange(16) * 2000.0 + 1000.0, x=np.arange(16) * 2000.0 + 1000.0)
    ds["y"].attrs["units"] = "m"
    ds["x"].attrs["units"] = "m"
    grid = F.frame_grid(ds)
    assert (grid.x_title, grid.y_title) == ("x (km)", "y (km)")
    assert grid.dy == 2.0 and grid.y0 == 1.0 and not grid.image
    fig = F.forecast_figure(ds)
    lo, hi = fig.layout.yaxis.range
    assert lo < hi  # y increases upwards: north up
    assert F.north_up_rows(ds)
    # the same grid stored north to south (radar readers): still north up, rows not flipped
    flipped = ds.isel(y=slice(None, None, -1))
    lo, hi = F.forecast_figure(flipped).layout.yaxis.range
    assert lo < hi and not F.north_up_rows(flipped)


def test_radar_km_coordinates_with_resolution_are_not_rescaled():
    ds = synthetic_rollout(domain="radar", size=16)
    ds = ds.assign_coords(y=63.0 - 2.0 * np.arange(16), x=1.0 + 2.0 * np.arange(16))
    ds.attrs["resolution_km"] = 2.0  # x/y already in km (the radar readers)
    grid = F.frame_grid(ds)
    assert grid.x_title == "x (km)" and grid.dx == 2.0 and grid.y0 == 63.0
    cells = synthetic_rollout(domain="radar", size=16)
    cells.attrs["resolution_km"] = 2.0  # x/y are cell indices
    assert F.frame_grid(cells).dx == 2.0
    lat = synthetic_rollout(domain="radar", size=16)
    lat = lat.assign_coords(y=50.0 + 0.01 * np.arange(16), x=5.0 + 0.01 * np.arange(16))
    lat.attrs["original_dims"] = "time lat lon"
    assert F.frame_grid(lat).y_title == "latitude (°N)"
    assert F.frame_grid(synthetic_rollout(size=16)).image  # pixel indices: an image


def test_metric_titles_carry_units():
    import pandas as pd

    idx = pd.Index([1, 2], name="lead_step")
    video = pd.DataFrame(
        {"MSE": [120.0, 300.0], "MAE": [1.0, 2.0], "SSIM": [0.9, 0.8], "PSNR": [20.0, 18.0]},
        index=idx,
    )
    video.attrs["units"] = {
        "MSE": "sum over frame of squared [0,1] error",
        "MAE": "sum over frame of absolute [0,1] error",
        "SSIM": "1",
        "PSNR": "dB",
    }
    video.attrs.update(n_samples=1, valid_pixels=[4096, 4096])
    fig = F.metrics_figure({"ConvLSTM": video}, frame_size=(64, 64))
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "MSE per frame (sum over 64×64 px)"
    assert fig.layout.yaxis.title.text.startswith("squared error")
    assert fig.layout.yaxis3.title.text == "SSIM (0–1)"
    assert fig.layout.yaxis4.title.text == "PSNR (dB)"
    # without frame_size: the pixel count from the table's attrs
    assert F.metrics_figure({"m": video}).layout.annotations[0].text == (
        "MSE per frame (sum over 4096 px)"
    )
    assert F.score_labels("CSI@1", "1 (event: rain rate >= 1 mm/h)") == (
        "CSI (rain rate ≥ 1 mm/h)",
        "CSI (0–1)",
    )
    assert F.score_labels("RMSE", "counts per interval")[1] == "RMSE (counts per interval)"


def test_layout_parts_are_placed_apart_in_pixels():
    """What the browser test measures, in the spec: bars side by side, legend under the axes."""
    ds = synthetic_rollout(domain="radar", n_context=3, horizon=3)
    fig = F.forecast_figure(ds)
    a, b = fig.layout.coloraxis.colorbar, fig.layout.coloraxis2.colorbar
    assert a.orientation == b.orientation == "h"
    assert a.x + a.len / 2 <= b.x - b.len / 2  # rain bar left of the error bar, no overlap
    menu, slider = fig.layout.updatemenus[0], fig.layout.sliders[0]
    assert menu.y == slider.y and slider.currentvalue.xanchor == "right"
    assert menu.xanchor == "left" and slider.x == 0.0
    # colour bars, then the controls: pixels below the plot area's bottom, at any chart height
    assert a.y == b.y == menu.y == 0.0 and a.yanchor == menu.yanchor == slider.yanchor == "top"
    assert a.ypad == b.ypad == F.AXIS_BELOW_PX
    assert menu.pad.t == slider.pad.t >= a.ypad + F.COLORBAR_BAND_PX
    gates = F.gates_figure(synthetic_rollout(), gate="candidate")
    xs = sorted(
        (gates.layout[f"coloraxis{'' if i == 0 else i + 1}"].colorbar.x, i) for i in range(3)
    )
    bars = [gates.layout[f"coloraxis{'' if i == 0 else i + 1}"].colorbar for _, i in xs]
    for left, right in zip(bars, bars[1:], strict=False):
        assert left.x + left.len / 2 < right.x - right.len / 2
    upper = gates.layout.yaxis.domain[0]  # the upper row's bottom: its bars hang from it
    bars = [gates.layout[F._ca(i)].colorbar for i in range(6)]
    assert [b.y for b in bars] == [upper] * 3 + [0.0] * 3
    assert [b.ypad for b in bars] == [F.GATES_TICKS_PX] * 3 + [F.AXIS_BELOW_PX] * 3
    # plotly pads a bar by ypad below it too: the bottom margin holds that, or plotly grows it
    # and the panels no longer fill the height fit_height gives
    for chart in (gates, fig):
        lowest = [chart.layout[k].colorbar for k in chart.layout if k.startswith("coloraxis")]
        assert all(chart.layout.margin.b >= 2 * b.ypad + 24 for b in lowest if b.y == 0.0)
    assert all(a.yref.endswith("domain") for a in gates.layout.annotations[:6])
    means = F.gate_means_figure(synthetic_rollout())
    assert means.layout.legend.yref == "container" and means.layout.legend.y == 0.0
    assert means.layout.margin.b >= F.LEGEND_PX


@pytest.mark.parametrize("north_to_south", [False, True])
def test_image_panels_hold_the_exact_codes_in_data_order(north_to_south):
    """The PNG of a panel decodes to the codes of the data, whichever way the rows are stored;
    plotly draws an image only with positive steps, so rows stored north to south are sent
    flipped with ``y0`` at the southern row."""
    ds = synthetic_rollout(domain="radar", n_context=2, horizon=3, size=16)
    ds = ds.assign_coords(y=np.arange(16) * 2000.0 + 1000.0, x=np.arange(16) * 2000.0 + 1000.0)
    ds["y"].attrs["units"] = ds["x"].attrs["units"] = "m"
    if north_to_south:
        ds = ds.isel(y=slice(None, None, -1))
    fig = F.forecast_figure(ds)
    scale = F.scale_from_meta(fig.layout.meta["value_scale"])
    pred = fig.frames[2 + 1].data[0]
    assert np.array_equal(F.panel_codes(pred), scale.encode(ds.prediction.values[1, 0]))
    assert pred.dy == 2.0 and pred.dx == 2.0
    assert pred.y0 == 1.0  # km: the southern row's centre comes first in the image
    assert pred.meta["flip_y"] == north_to_south
    lo, hi = fig.layout.yaxis.range
    assert lo < hi  # north up either way


def test_palette_is_the_colorscale_plotly_draws():
    from dashboard.scales import NO_DATA, value_scale

    rain = value_scale("radar", units="mm/h")
    palette = rain.palette()
    assert palette.shape == (256, 4) and palette.dtype == np.uint8
    assert list(palette[NO_DATA]) == [200, 200, 200, 89]  # no data: translucent grey
    assert list(palette[1]) == [255, 255, 255, 255]  # below 0.1 mm/h: white
    assert list(palette[255]) == [0xC5, 0x1B, 0x8A, 255]  # the top stop's colour
    # a PNG panel carries this palette and the codes as indices
    import base64
    import io

    from PIL import Image

    codes = np.array([[0, 1], [128, 255]], np.uint8)
    uri = F.png_source(codes, palette)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(F.PNG_URI) :]))) as image:
        rgba = np.asarray(image.convert("RGBA"))
    assert np.array_equal(rgba, palette[codes])


def _fitted(fig, width: float) -> dict:
    """What the browser draws for ``fig`` in a chart ``width`` pixels wide (CSS of
    ``widgets.fit_css``), with ``inset_px`` taken by the margins and y-axis labels: plot height,
    the height of a row of panels, a panel's width, and the gap between two rows."""
    fit = fig.layout.meta["fit"]
    height = min(fit["fixed_px"] + fit["per_px"] * (width - fit["inset_px"]), fit["max_px"])
    plot_h = height - fig.layout.margin.t - fig.layout.margin.b
    plot_w = width - fit["inset_px"]
    x, y = fig.layout.xaxis.domain, fig.layout.yaxis.domain
    below = [a.domain for a in fig.select_yaxes() if a.domain[1] < y[0]]
    gap = (y[0] - max(d[1] for d in below)) * plot_h if below else None
    return {
        "height": height,
        "row": (y[1] - y[0]) * plot_h,
        "panel": (x[1] - x[0]) * plot_w,
        "gap": gap,
    }


@pytest.mark.parametrize("size", [(16, 16), (32, 16)])
@pytest.mark.parametrize("width", [560, 820, 1000, 1460])
def test_chart_height_follows_its_width_so_panels_fill_it(width, size):
    """The forecast's square-pixel panels exactly fill the height :func:`fit_height` gives, at
    any width (no blank band above them), until the cap, where the panels are height-limited."""
    ny, nx = size  # (32, 16): a grid twice as high as wide
    ds = synthetic_rollout(domain="radar", n_context=2, horizon=2, size=ny).isel(x=slice(0, nx))
    fig = F.forecast_figure(ds)
    aspect = ny / nx
    drawn = _fitted(fig, width)
    if drawn["height"] < fig.layout.meta["fit"]["max_px"]:
        assert drawn["row"] == pytest.approx(aspect * drawn["panel"], rel=1e-3)
    else:  # capped: panels as tall as the row, narrower than their column
        assert drawn["row"] < aspect * drawn["panel"]
    assert 300 < drawn["height"] <= F.MAX_CHART_PX


def _panel_grid(n_rows: int, n_cols: int):
    from dashboard import lab_figures as L
    from dashboard.scales import value_scale

    ds = synthetic_rollout(size=16)
    grid, scale = F.frame_grid(ds), value_scale("radar", units="mm/h")
    values = ds["truth"].values[0, 0]
    rows = [
        [L.Panel(f"r{r} c{c}", values, scale, grid) for c in range(n_cols)] for r in range(n_rows)
    ]
    return L.panel_grid_figure(rows, title="panels", kind="test")


@pytest.mark.parametrize("width", [560, 700, 880, 1000, 1460])
@pytest.mark.parametrize("chart", ["gates", "grid 3x6", "grid 2x3"])
def test_rows_of_panels_keep_their_gap_as_the_chart_grows(width, chart):
    """Rows of square panels (gates; the lab's panel grids): the rows fill their share of the
    height, the gap between two rows holds the upper row's tick labels, colour bars and the lower
    row's titles from the narrowest chart on, and grows by at most ``ROW_SLACK_PX`` before the
    chart stops growing."""
    from dashboard import lab_figures as L

    if chart == "gates":
        fig, need = F.gates_figure(synthetic_rollout(size=16, patch=2)), F.GATES_ROW_GAP_PX
    else:
        n_rows, n_cols = (int(v) for v in chart.split()[1].split("x"))
        fig, need = _panel_grid(n_rows, n_cols), L.ROW_GAP_PX
    drawn = _fitted(fig, width)
    assert need - 1 <= drawn["gap"] <= need + F.ROW_SLACK_PX + 1
    assert drawn["row"] <= drawn["panel"] * (1 + 1e-3)  # never a band above a row
    if drawn["height"] < fig.layout.meta["fit"]["max_px"]:
        assert drawn["row"] == pytest.approx(drawn["panel"], rel=1e-3)


def test_fit_css_sets_the_box_height_from_the_frame_width():
    from dashboard.widgets import fit_css

    fit = {"fixed_px": 302.0, "per_px": 0.30667, "inset_px": 72.0, "max_px": 900.0}
    css = fit_css("forecast_chart", fit)
    assert ".st-key-forecast_chart_frame {container-type: inline-size;}" in css
    assert "min(calc(302px + 0.30667 * (100cqw - 72px)), 900px)" in css
    assert css.startswith("<style>") and css.endswith("</style>")

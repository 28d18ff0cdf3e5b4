"""Exports: GIF and MP4 animations, NetCDF with gates, CSV of scores."""

import io

import imageio.v2 as imageio
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from dashboard import exports
from dashboard.scales import value_scale
from tests.dashboard_synthetic import synthetic_rollout


def _radar(**kw):
    ds = synthetic_rollout(domain="radar", **kw)
    ds.attrs.update(dataset="radar_test", checkpoint="tiny_radar", sample=2)
    return ds


def test_animation_frames_have_three_panels_and_domain_colours():
    ds = _radar(n_context=3, horizon=4, size=16)
    anim = exports.render_animation(ds)
    frames = anim.frames
    assert len(frames) == 7 and len(anim.titles) == 7
    h, w, c = frames[0].shape
    assert c == 3 and w >= exports.SLIDE_WIDTH and h <= 720
    assert len(anim.panels) == 3
    # a no-rain pixel (far corner of the truth panel) is the white no-rain colour
    x0, y0, _, _ = anim.panels[1]
    assert tuple(frames[-1][y0 + 2, x0 + 2]) == (255, 255, 255)
    lut = exports.lookup_table(value_scale("radar", units="mm/h"))
    assert tuple(lut[1]) == (255, 255, 255) and lut.shape == (256, 3)
    # the frames are the same as animation_frames (what the page downloads)
    np.testing.assert_array_equal(exports.animation_frames(ds)[3], frames[3])


def test_frames_are_slide_ready_title_and_colour_bars_with_units():
    ds = _radar(n_context=3, horizon=4, size=16)
    anim = exports.render_animation(ds)
    assert anim.titles[3].startswith("Lead time +5 min")
    assert "forecast step 1/4" in anim.titles[3] and "context" in anim.titles[0]
    assert "radar_test" in anim.heading and "tiny_radar" in anim.heading
    labels = [b["label"] for b in anim.colorbars]
    assert labels == ["rain rate (mm/h)", "error (mm/h)"]
    frame = anim.frames[-1]
    for bar in anim.colorbars:
        x0, y0, x1, y1 = bar["box"]
        assert x1 - x0 > 200 and y1 > anim.panels[0][3]  # under the panels, wide enough
        lut = exports.lookup_table(bar["scale"])
        row = frame[(y0 + y1) // 2, x0 + 1 : x1 - 1].astype(int)
        # the bar runs through the scale's colours from left to right
        assert np.abs(row[0] - lut[2 if bar["scale"].floor_colour else 1]).max() <= 12
        assert np.abs(row[-1] - lut[255]).max() <= 12
        assert len({tuple(p) for p in row}) > 50
    # the title is drawn: dark text pixels in the title band, none before it is drawn
    band = frame[8:44, 20:600]
    assert (band.min(axis=2) < 80).sum() > 200


def test_valid_time_in_export_titles_when_data_has_timestamps():
    ds = _radar(n_context=3, horizon=4, size=16)
    t0 = pd.Timestamp("2016-07-11 14:15")
    ds = ds.assign_coords(
        time=("time", t0 + ds["lead_time"].values),
        context_time=("context_time", t0 + np.arange(-2, 1) * pd.Timedelta("5min")),
    )
    anim = exports.render_animation(ds)
    assert anim.titles[3].startswith("Lead time +5 min · valid 2016-07-11 14:20 UTC")
    assert "valid 2016-07-11 14:05 UTC" in anim.titles[0]


def test_map_rows_stored_south_first_are_exported_north_up():
    ds = _radar(n_context=2, horizon=2, size=16)
    ds = ds.assign_coords(y=np.arange(16) * 1000.0 + 500.0, x=np.arange(16) * 1000.0 + 500.0)
    ds.attrs["synthetic"] = 1
    ds["truth"][:] = 0.0
    ds["truth"][:, :, 0, :] = 50.0  # heavy rain in the southern row only
    anim = exports.render_animation(ds, show_context=False)
    x0, y0, x1, y1 = anim.panels[1]
    frame = anim.frames[0]
    assert tuple(frame[y0 + 2, (x0 + x1) // 2]) == (255, 255, 255)  # north edge: no rain
    assert tuple(frame[y1 - 2, (x0 + x1) // 2]) != (255, 255, 255)  # south edge: rain


def test_gif_and_mp4_decode_back(tmp_path):
    ds = synthetic_rollout(domain="video", n_context=2, horizon=3, size=16)
    frames = exports.animation_frames(ds)
    gif = exports.to_gif(frames, fps=5)
    assert gif[:6] in (b"GIF87a", b"GIF89a")
    decoded_gif = imageio.mimread(io.BytesIO(gif), format="GIF")
    assert len(decoded_gif) == 5
    assert decoded_gif[0].shape[1] >= exports.SLIDE_WIDTH
    with Image.open(io.BytesIO(gif)) as im:
        assert im.size[0] >= 1280 and im.info["duration"] == 200  # 5 fps
    mp4 = exports.to_mp4(frames, fps=10)
    assert mp4[4:8] == b"ftyp"
    path = tmp_path / "a.mp4"
    path.write_bytes(mp4)
    reader = imageio.get_reader(path, format="FFMPEG")
    assert reader.get_meta_data()["fps"] == 10
    reader.close()
    decoded = imageio.mimread(path, format="FFMPEG")
    assert len(decoded) == 5
    assert decoded[0].shape[1] >= exports.SLIDE_WIDTH
    assert decoded[0].shape[0] % 16 == 0 and decoded[0].shape[1] % 16 == 0
    with pytest.raises(ValueError, match="frame rate"):
        exports.to_gif(frames, fps=0)


def test_netcdf_round_trip_keeps_gates_and_values():
    ds = synthetic_rollout(domain="radar", n_context=3, horizon=3)
    ds.attrs["synthetic"] = True
    ds.attrs["meta"] = {"a": 1}
    blob = exports.to_netcdf(ds)
    back = xr.open_dataset(io.BytesIO(blob), engine="h5netcdf", decode_timedelta=True)
    np.testing.assert_allclose(back["prediction"].values, ds["prediction"].values)
    g = ds["gates"].values.astype(np.float32)
    assert back["gates"].dims == ds["gates"].dims
    assert np.nanmax(np.abs(back["gates"].values - g)) <= np.nanmax(np.abs(g)) / 32000 + 1e-6
    assert list(back["gate"].values) == list(ds["gate"].values)
    assert back.attrs["units"] == "mm/h" and back.attrs["synthetic"] == 1
    assert back["lead_time"].values[0] == np.timedelta64(5, "m")


def test_metrics_csv():
    table = pd.DataFrame({"lead_step": [1, 2], "forecast": ["ConvLSTM"] * 2, "MSE": [0.5, 1.0]})
    text = exports.metrics_csv(table).decode()
    assert text.splitlines()[0] == "lead_step,forecast,MSE"
    assert text.splitlines()[2] == "2,ConvLSTM,1.0"


def test_heading_can_be_given_and_frames_can_be_wider():
    ds = synthetic_rollout(domain="traffic", n_context=2, horizon=2, size=16)
    anim = exports.render_animation(ds, channel=1, width=1920, heading="my upload · run 3")
    assert anim.heading == "my upload · run 3"
    assert anim.frames[0].shape[1] == 1920
    assert "channel: outflow" in exports.render_animation(ds, channel=1).heading
    frames = exports.animation_frames(ds, heading="x", show_context=False)
    assert len(frames) == 2

"""Exports: GIF and MP4 animations, NetCDF with gates, CSV of scores."""

import io

import imageio.v2 as imageio
import numpy as np
import pandas as pd
import xarray as xr

from dashboard import exports
from dashboard.scales import value_scale
from tests.dashboard_synthetic import synthetic_rollout


def test_animation_frames_have_three_panels_and_domain_colours():
    ds = synthetic_rollout(domain="radar", n_context=3, horizon=4, size=16)
    frames = exports.animation_frames(ds, min_panel=32)
    assert len(frames) == 7
    h, w, c = frames[0].shape
    assert c == 3 and h == 32 + exports.LABEL_HEIGHT and w == 3 * 32 + 2 * exports.PANEL_GAP
    # a no-rain pixel (far corner of the truth panel) is the white no-rain colour
    corner = frames[-1][exports.LABEL_HEIGHT + 1, 32 + exports.PANEL_GAP + 1]
    assert tuple(corner) == (255, 255, 255)
    lut = exports.lookup_table(value_scale("radar", units="mm/h"))
    assert tuple(lut[1]) == (255, 255, 255) and lut.shape == (256, 3)


def test_gif_and_mp4_decode_back(tmp_path):
    ds = synthetic_rollout(domain="video", n_context=2, horizon=3, size=16)
    frames = exports.animation_frames(ds, min_panel=32)
    gif = exports.to_gif(frames)
    assert gif[:6] in (b"GIF87a", b"GIF89a")
    assert len(imageio.mimread(io.BytesIO(gif), format="GIF")) == 5
    mp4 = exports.to_mp4(frames)
    assert mp4[4:8] == b"ftyp"
    path = tmp_path / "a.mp4"
    path.write_bytes(mp4)
    decoded = imageio.mimread(path, format="FFMPEG")
    assert len(decoded) == 5
    assert decoded[0].shape[0] % 16 == 0 and decoded[0].shape[1] % 16 == 0


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

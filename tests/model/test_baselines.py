"""Baselines: persistence, optical-flow extrapolation, hour-of-week mean."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from model.baselines import (
    HourOfWeekMean,
    extrapolation,
    frame_times,
    get_baseline,
    hour_of_week,
    persistence,
)
from model.metrics import per_lead


def _dataset_array(values, *, step="PT5M", start="2020-01-01T00:00"):
    """A dataset-like DataArray (sample, time, channel, y, x) with one shared time axis."""
    s, t, c, y, x = values.shape
    return xr.DataArray(
        values.astype(np.float32),
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "time": pd.date_range(start, periods=t, freq=pd.Timedelta(step)),
            "channel": [f"c{k}" for k in range(c)],
            "y": np.arange(y),
            "x": np.arange(x),
        },
        attrs={"units": "mm/h", "time_step": step, "domain": "radar"},
    )


def _moving_rain(n_frames, *, dy=2, dx=1, size=64, seed=0):
    """Smooth rain field (mm/h) translated by (dy, dx) pixels per frame: frames [T, Y, X]."""
    rng = np.random.default_rng(seed)
    big = ndimage.gaussian_filter(rng.random((size + 80, size + 80)), 4)
    big = np.clip((big - big.mean()) * 300, 0, None)
    return np.stack(
        [
            big[40 - dy * k : 40 - dy * k + size, 40 - dx * k : 40 - dx * k + size]
            for k in range(n_frames)
        ]
    )


def test_persistence_repeats_last_frame_numpy_and_xarray():
    rng = np.random.default_rng(0)
    ctx = rng.random((2, 4, 1, 5, 6))
    out = persistence(ctx, horizon=3)
    assert out.shape == (2, 3, 1, 5, 6)
    for k in range(3):
        np.testing.assert_array_equal(out[:, k], ctx[:, -1].astype(np.float32))
    single = persistence(ctx[0], horizon=2)  # (time, channel, y, x) in, same layout out
    assert single.shape == (2, 1, 5, 6)

    da = _dataset_array(ctx)
    fc = persistence(da, horizon=3)
    assert fc.dims == ("sample", "time", "channel", "y", "x")
    assert fc.attrs["units"] == "mm/h"
    assert list(fc["lead_time"].values) == list(pd.to_timedelta([5, 10, 15], unit="min"))
    # Forecast timestamps follow the last context time.
    assert fc["time"].values[0] == da["time"].values[-1] + np.timedelta64(5, "m")
    assert list(fc["channel"].values) == ["c0"]


def test_extrapolation_follows_known_motion_and_beats_persistence():
    frames = _moving_rain(7, dy=2, dx=1)  # moves 2 px down, 1 px right per step
    ctx = frames[:3, None][None]  # (1, 3, 1, 64, 64)
    truth = frames[3:, None][None]  # (1, 4, 1, 64, 64)
    fc = extrapolation(ctx, horizon=4)
    assert fc.shape == truth.shape
    pers = persistence(ctx, horizon=4)
    # Score away from the inflow border, where outval fills unknown rain.
    valid = np.zeros((64, 64), bool)
    valid[12:-12, 12:-12] = True
    ext_scores = per_lead(fc, truth, domain="radar", valid=valid)
    pers_scores = per_lead(pers, truth, domain="radar", valid=valid)
    assert (ext_scores["MSE"] < 0.2 * pers_scores["MSE"]).all()


def test_extrapolation_keeps_nan_mask_and_handles_no_rain():
    ctx = np.zeros((1, 3, 1, 32, 32), np.float32)
    ctx[..., :4] = np.nan  # invalid strip outside the radar domain
    fc = extrapolation(ctx, horizon=2)
    assert np.isnan(fc[..., :4]).all()
    assert np.array_equal(fc[..., 4:], np.zeros_like(fc[..., 4:]))


def _rain_entering_from_the_left(n_frames, *, speed=3, shape=(64, 112), seed=1):
    """Frames ``[T, Y, X]`` of textured rain moving ``speed`` px/step to the right: in frame ``k``
    only columns ``< 36 + speed * k`` are rainy (a crop from column 48 on is dry until frame 4)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    field = ndimage.gaussian_filter(rng.random((height, width + 80)), 3)
    field = np.clip((field - field.mean()) * 400, 0, None)
    field[:, 80 + 36 :] = 0.0  # rain only in columns < 36 of the first frame
    return np.stack([field[:, 80 - speed * k : 80 - speed * k + width] for k in range(n_frames)])


def test_extrapolation_on_a_crop_uses_the_whole_domain_around_it():
    frames = _rain_entering_from_the_left(3 + 8)  # 3 observed, 8 to forecast
    row, col, size = 8, 48, 48
    whole_ctx = frames[None, :3, None]  # (1, 3, 1, 64, 112)
    crop_ctx = whole_ctx[..., row : row + size, col : col + size]
    truth = frames[None, 3:, None, row : row + size, col : col + size]
    assert np.nanmax(crop_ctx) == 0.0 and truth[:, -1].max() > 1.0  # rain arrives from outside

    alone = extrapolation(crop_ctx, horizon=8)  # the crop as its own domain: nothing comes in
    assert alone.max() == 0.0
    fc = extrapolation(crop_ctx, horizon=8, domain=whole_ctx, origin=(row, col))
    assert fc.shape == truth.shape
    assert fc[:, -1].max() > 1.0  # rain from outside the crop appears inside it
    scores = per_lead(fc, truth, domain="radar", thresholds=(1.0,))
    assert scores.loc[8, "CSI@1"] > 0.5
    # exactly the whole-domain forecast, cut to the crop afterwards
    full = extrapolation(whole_ctx, horizon=8)
    np.testing.assert_array_equal(fc, full[..., row : row + size, col : col + size])


def test_extrapolation_reads_the_crop_corner_from_the_domain_coordinates():
    frames = _rain_entering_from_the_left(4)
    whole = _dataset_array(frames[None, :3, None]).assign_coords(
        crop_row=("sample", [8]), crop_col=("sample", [40])
    )
    ctx = whole.isel(y=slice(8, 56), x=slice(40, 88))
    fc = extrapolation(ctx, horizon=1, domain=whole)
    assert fc.dims == ctx.dims and fc.sizes["y"] == 48
    assert fc["x"].values[0] == 40  # the crop's own coordinates
    np.testing.assert_array_equal(
        fc.values, extrapolation(whole.values, horizon=1)[..., 8:56, 40:88]
    )


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        (None, "crop corner of every sample"),
        ((30, 40), "does not fit"),
        ((9, 40), "differs from the context's last frame"),
    ],
)
def test_extrapolation_domain_errors_say_what_to_pass(origin, message):
    frames = _rain_entering_from_the_left(3)[None, :, None]
    ctx = frames[..., 8:56, 40:88].copy()
    ctx[..., :, :4] = 1.0  # differs from the domain one row lower (9, 40)
    whole = frames.copy()
    whole[..., 8:56, 40:44] = 1.0
    with pytest.raises(ValueError, match=message):
        extrapolation(ctx, horizon=2, domain=whole, origin=origin)


def test_extrapolation_needs_enough_frames():
    with pytest.raises(ValueError, match="n_frames"):
        extrapolation(np.zeros((1, 2, 1, 8, 8)), horizon=2, n_frames=3)


def test_hour_of_week_bins():
    # 2024-01-01 was a Monday; 1970-01-01 a Thursday.
    t = np.array(["2024-01-01T00:30", "2024-01-07T23:00", "1970-01-01T00:00"], "datetime64[m]")
    assert hour_of_week(t).tolist() == [0, 167, 72]


def test_hour_of_week_mean_fit_and_forecast():
    # Two weeks of hourly counts equal to hour-of-week + 1000 * week index: the mean of each bin is
    # hour + 500; overlapping windows must not count a frame twice.
    times = pd.date_range("2024-01-01", periods=2 * 168, freq="h")  # starts on a Monday
    week = np.arange(2 * 168) // 168
    series = (np.arange(2 * 168) % 168 + 1000.0 * week).astype(np.float32)
    frames = np.broadcast_to(series[:, None, None, None], (len(series), 2, 3, 2)).copy()
    # Windows of 4 frames with stride 1 (overlapping), with a (sample, time) timestamp coordinate.
    idx = np.arange(len(series) - 3)[:, None] + np.arange(4)
    windows = xr.DataArray(
        frames[idx],
        dims=("sample", "time", "channel", "y", "x"),
        coords={"valid_time": (("sample", "time"), times.values[idx])},
        attrs={"time_step": "PT1H", "units": "trips per hour"},
    )
    assert frame_times(windows).shape == (len(idx), 4)
    clim = HourOfWeekMean.fit(windows)
    assert clim.counts.tolist() == [2] * 168
    assert clim.means[5, 1, 2, 1] == pytest.approx(5 + 500)

    # Forecast 3 hours after a context ending on Tuesday 2024-01-09 10:00 (hour-of-week 34).
    ctx_times = pd.date_range("2024-01-09T08:00", periods=3, freq="h")
    ctx = xr.DataArray(
        np.zeros((3, 2, 3, 2), np.float32),
        dims=("time", "channel", "y", "x"),
        coords={"time": ctx_times},
        attrs={"time_step": "PT1H"},
    )
    fc = clim(ctx, horizon=3)
    assert fc.dims == ("time", "channel", "y", "x")
    assert fc.isel(channel=0, y=0, x=0).values.tolist() == pytest.approx([535, 536, 537])
    assert fc["time"].values[0] == np.datetime64("2024-01-09T11:00")


def test_hour_of_week_mean_without_times_says_so():
    with pytest.raises(ValueError, match="timestamps"):
        HourOfWeekMean.fit(np.zeros((2, 3, 1, 2, 2)))


def test_registry_lists_names():
    assert get_baseline("Persistence") is persistence
    with pytest.raises(ValueError, match="available: all_black, extrapolation, persistence"):
        get_baseline("climatology")


SHARED = Path(__file__).resolve().parents[2].parent / "shared"
needs_shared = pytest.mark.skipif(
    not (SHARED / "data").is_dir(), reason="needs ../shared/data (real radar/traffic files)"
)


@needs_shared
@pytest.mark.shared
def test_real_radar_extrapolation_on_the_whole_domain_beats_persistence_and_the_crop_alone():
    from datasets import get_dataset
    from datasets.radar import whole_domain

    root = SHARED / "data"
    data = get_dataset("radar_mch", split="test", root=root, context=6, horizon=12)
    ctx, truth = data.isel(time=slice(0, 6)), data.isel(time=slice(6, 18))
    whole = whole_domain(ctx.isel(time=slice(3, 6)), root=root)
    ext = per_lead(extrapolation(ctx, horizon=12, domain=whole), truth, domain="radar")
    pers = per_lead(persistence(ctx, horizon=12), truth, domain="radar")
    assert ext.loc[6, "CSI@1"] > pers.loc[6, "CSI@1"]  # 30 min at PT5M
    assert (ext["MSE"] < pers["MSE"]).all()
    # issue 11: the crop alone advects 0 mm/h in from its edges and misses the rain coming in
    crop_only = per_lead(extrapolation(ctx, horizon=12), truth, domain="radar")
    assert (ext.loc[6:, "CSI@1"] > crop_only.loc[6:, "CSI@1"]).all()
    assert (ext.loc[6:, "POD@1"] > crop_only.loc[6:, "POD@1"]).all()


@needs_shared
@pytest.mark.shared
def test_real_taxi_hour_of_week_mean_beats_persistence_after_two_hours():
    from datasets import get_dataset

    root = SHARED / "data" / "traffic"
    train = get_dataset("taxinyc", split="train", root=root, context=12, horizon=6, stride=6)
    test = get_dataset("taxinyc", split="test", root=root, context=12, horizon=6, n_samples=200)
    clim = HourOfWeekMean.fit(train)
    assert clim.counts.min() > 100  # three years of every hour of the week
    ctx, truth = test.isel(time=slice(0, 12)), test.isel(time=slice(12, 18))
    hist = per_lead(clim(ctx, horizon=6), truth, domain="traffic")
    pers = per_lead(persistence(ctx, horizon=6), truth, domain="traffic")
    assert (hist.loc[2:, "RMSE"] < pers.loc[2:, "RMSE"]).all()


def test_all_black_is_zero_where_persistence_is_valid():
    from model.baselines import all_black, persistence

    context = np.random.default_rng(0).random((2, 3, 1, 4, 4)).astype(np.float32) + 0.1
    context[:, -1, :, 0, 0] = np.nan  # an invalid pixel stays invalid
    black = all_black(context, horizon=5)
    assert black.shape == persistence(context, horizon=5).shape == (2, 5, 1, 4, 4)
    assert np.isnan(black[:, :, :, 0, 0]).all()
    assert (black[:, :, :, 1:, :] == 0).all()

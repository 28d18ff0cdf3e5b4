"""The dashboard's scores (dashboard.services): baselines on the whole radar domain, common mask.

Plain functions, no Streamlit; the page itself is driven in test_app.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from dashboard import services
from datasets import download
from model.baselines import extrapolation, persistence
from model.metrics import compare, per_lead


def _rain_moving_right(n_frames, *, speed=3, shape=(64, 112)):
    """Frames ``[T, Y, X]``: textured rain moving ``speed`` px/step to the right, in columns
    ``< 36 + speed * k`` of frame ``k`` (a crop from column 48 on is dry in frames 0-3)."""
    rng = np.random.default_rng(1)
    height, width = shape
    field = ndimage.gaussian_filter(rng.random((height, width + 80)), 3)
    field = np.clip((field - field.mean()) * 400, 0, None)
    field[:, 80 + 36 :] = 0.0
    return np.stack([field[:, 80 - speed * k : 80 - speed * k + width] for k in range(n_frames)])


def test_dashboard_extrapolation_of_a_crop_uses_the_whole_domain():
    frames = _rain_moving_right(3 + 8)[None, :, None]  # (1, 11, 1, 64, 112)
    row, col, size = 8, 48, 48
    crop = frames[..., row : row + size, col : col + size]
    context, truth = crop[:, :3], crop[:, 3:]
    whole = xr.DataArray(
        frames[:, :3],
        dims=("sample", "time", "channel", "y", "x"),
        coords={"crop_row": ("sample", [row]), "crop_col": ("sample", [col])},
    )
    prediction = np.zeros_like(truth)
    alone, _ = services._score_tables(prediction, truth, context, domain="radar", threshold=1.0)
    tables, units = services._score_tables(
        prediction, truth, context, domain="radar", threshold=1.0, whole=whole
    )
    assert list(tables) == ["ConvLSTM", "persistence", "extrapolation"]
    # the crop alone is dry: its extrapolation forecasts no rain, and misses what comes in
    assert alone["extrapolation"].loc[8, "POD@1"] == 0.0
    # with the domain around it, rain moving in from outside the crop is forecast inside it
    assert tables["extrapolation"].loc[8, "CSI@1"] > 0.5
    assert tables["extrapolation"].loc[8, "FSS@1"] > 0.5
    assert {"FBI@1", "FSS@1"} <= set(units) and "scale 10 px" in units["FSS@1"]


def test_dashboard_scores_every_forecast_on_the_common_mask():
    rng = np.random.default_rng(0)
    context = rng.gamma(0.5, 4.0, (2, 4, 1, 16, 16)).astype(np.float32)
    truth = rng.gamma(0.5, 4.0, (2, 3, 1, 16, 16)).astype(np.float32)
    truth[:, :, :, 0, :] = np.nan  # no truth on row 0
    prediction = rng.gamma(0.5, 4.0, truth.shape).astype(np.float32)
    prediction[:, :, :, :, 0] = np.nan  # the model gives nothing on column 0
    tables, _ = services._score_tables(prediction, truth, context, domain="radar", threshold=1.0)
    common = np.isfinite(truth) & np.isfinite(prediction)
    want = int(common[:, 0].sum())
    assert {name: t.attrs["valid_pixels"][0] for name, t in tables.items()} == {
        "ConvLSTM": want,
        "persistence": want,
        "extrapolation": want,
    }
    pers = per_lead(persistence(context, horizon=3), truth, domain="radar", thresholds=(1.0,),
                    valid=common)  # fmt: skip
    np.testing.assert_allclose(tables["persistence"]["MSE"], pers["MSE"])
    assert tables["persistence"].loc[1, "MSE"] != pytest.approx(
        per_lead(persistence(context, horizon=3), truth, domain="radar").loc[1, "MSE"]
    )  # its own mask alone would count column 0 too


def test_whole_domain_context_is_none_for_data_without_a_larger_domain():
    data = services.load_dataset("radar_synthetic", n_samples=1)
    assert services.whole_domain_context(data, services.Window(0, 0, 12, 12)) is None


def test_real_radar_window_scores_its_extrapolation_on_the_whole_domain(shared_data):
    # the dashboard reads radar_mch from the download cache: point the test's private cache at
    # ../shared/data (same layout as pysteps-data)
    cache = download.cache_root() / "pysteps-data"
    cache.mkdir(parents=True)
    os.symlink(shared_data / "radar", cache / "radar")
    data = services.load_dataset("radar_mch", n_samples=1)
    window = services.Window(sample=0, start=0, context=12, horizon=12)
    whole = services.whole_domain_context(data, window)
    assert whole.sizes["y"] == 640 and whole.sizes["x"] == 710 and whole.sizes["time"] == 3
    r, c = int(whole["crop_row"][0]), int(whole["crop_col"][0])
    np.testing.assert_array_equal(
        whole.values[0, :, :, r : r + 128, c : c + 128], data.values[0, 9:12]
    )
    context, truth = services.select_window(data, window)
    ds = xr.Dataset(
        {
            "prediction": (("time", "channel", "y", "x"), truth.values),  # a perfect "model"
            "truth": (("time", "channel", "y", "x"), truth.values),
            "context": (("context_time", "channel", "y", "x"), context.values),
        },
        attrs={"domain": "radar", "sample": 0, "start": 0, "resolution_km": 1.0},
    )
    tables, _ = services.score(ds, threshold=1.0, data=data)
    ctx = context.values[None]
    want = compare(
        {
            "ConvLSTM": truth.values[None],
            "persistence": persistence(ctx, horizon=12),
            "extrapolation": extrapolation(ctx, horizon=12, domain=whole),
        },
        truth.values[None],
        domain="radar",
        thresholds=(1.0,),
        pixel_km=1.0,
    )
    for name in want:
        np.testing.assert_allclose(tables[name]["CSI@1"], want[name]["CSI@1"])
    assert tables["extrapolation"].attrs["fss_scale_px"] == 10
    crop_only = extrapolation(ctx, horizon=12)
    assert not np.allclose(
        tables["extrapolation"]["MSE"],
        per_lead(crop_only, truth.values[None], domain="radar")["MSE"],
    )

"""The bundled real radar event ``radar_fmi_sample`` (FMI 2017-05-09): a small CF NetCDF with its
licence, read offline; and (with ../shared) that tools/make_fmi_sample.py regenerates it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from datasets import get_dataset
from datasets.errors import DatasetError
from datasets.radar_sample import (
    FMI_SAMPLE_ATTRIBUTION,
    FMI_SAMPLE_PATH,
    radar_fmi_sample,
    read_fmi_sample,
)

SHARED_RADAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "radar"


def test_the_bundled_file_is_a_small_attributed_cf_netcdf():
    assert FMI_SAMPLE_PATH.stat().st_size < 5 * 2**20  # issue: at most 10 MB, aim for 5
    with xr.open_dataset(FMI_SAMPLE_PATH, engine="h5netcdf", mask_and_scale=False) as raw:
        rain = raw["rain_rate"]
        assert rain.dims == ("time", "y", "x") and rain.dtype == np.int16
        assert rain.attrs["units"] == "mm/h" and rain.attrs["grid_mapping"] == "crs"
        assert rain.attrs["scale_factor"] == pytest.approx(0.01) and "_FillValue" in rain.attrs
        assert rain.encoding["zlib"] or rain.encoding.get("compression") == "gzip"
        crs = raw["crs"].attrs
        assert "+proj=stere" in crs["proj4_params"] and crs["grid_mapping_name"]
        assert raw["x"].attrs["units"] == "m" and raw["y"].attrs["units"] == "m"
        assert raw["x"].attrs["standard_name"] == "projection_x_coordinate"
        attrs = raw.attrs
        assert "CC BY 4.0" in attrs["licence"] and attrs["attribution"] == FMI_SAMPLE_ATTRIBUTION
        assert "pysteps-data" in attrs["original_source"] and "cropped" in attrs["history"]
    with xr.open_dataset(FMI_SAMPLE_PATH, engine="h5netcdf") as ds:
        times = ds["time"].values
        assert times.size == 40 and str(times[0])[:16] == "2017-05-09T10:45"
        assert (np.diff(times) == np.timedelta64(5, "m")).all()
        assert np.diff(ds["y"].values).max() < 0  # north first
        assert np.diff(ds["x"].values).min() > 0


def test_the_loader_gives_windows_in_mm_per_hour_with_km_coordinates():
    series = read_fmi_sample()
    assert series.dims == ("sample", "time", "channel", "y", "x")
    assert series.shape == (1, 40, 1, 256, 256)
    rain = series.values
    assert np.nanmax(rain) > 10 and (rain >= 1).mean() > 0.01  # showers, not an empty crop
    assert series["y"].attrs["units"] == "km" and float(series["x"][1] - series["x"][0]) == (
        pytest.approx(1.0, abs=1e-3)
    )
    windows = radar_fmi_sample(split="test")
    assert windows.sizes["sample"] == 5 and windows.sizes["time"] == 24  # 12 + 12 every 4 frames
    np.testing.assert_array_equal(windows.values[1], rain[0, 4:28])
    np.testing.assert_array_equal(windows["timestamp"].values[1], series["time"].values[4:28])
    assert FMI_SAMPLE_ATTRIBUTION in windows.attrs["description"]
    assert "same windows" in windows.attrs["split_policy"]
    assert windows.attrs["time_zone"] == "UTC"  # FMI stamps its frames in UTC
    short = get_dataset("radar_fmi_sample", split="val", context=6, horizon=12, n_samples=2)
    assert short.sizes["time"] == 18 and short.sizes["sample"] == 2


def test_nan_outside_coverage_survives_the_file(tmp_path):
    with xr.open_dataset(FMI_SAMPLE_PATH, engine="h5netcdf") as ds:
        ds = ds.load()
    ds["rain_rate"][:, :10, :20] = np.nan  # as outside radar coverage
    path = tmp_path / "with_nan.nc"
    ds.to_netcdf(path, engine="h5netcdf")  # the file's own packing (int16, fill value)
    series = read_fmi_sample(path)
    assert np.isnan(series.values[0, :, 0, :10, :20]).all()
    assert np.isfinite(series.values[0, :, 0, 10:, 20:]).all()


def test_a_file_that_is_not_the_event_is_refused(tmp_path):
    bad = tmp_path / "other.nc"
    xr.Dataset({"flow": (("t",), np.zeros(3))}).to_netcdf(bad, engine="h5netcdf")
    with pytest.raises(DatasetError, match="no rain_rate"):
        read_fmi_sample(bad)
    with pytest.raises(DatasetError, match="missing"):
        read_fmi_sample(tmp_path / "absent.nc")


def test_the_tool_regenerates_the_bundled_event_from_shared():
    if not (SHARED_RADAR / "fmi" / "pgm" / "20170509").is_dir():
        pytest.skip("needs ../shared/data/radar/fmi/pgm/20170509 (the pysteps-data FMI files)")
    from tools.make_fmi_sample import build

    made = build(SHARED_RADAR)
    with xr.open_dataset(FMI_SAMPLE_PATH, engine="h5netcdf") as bundled:
        np.testing.assert_array_equal(made["x"].values, bundled["x"].values)
        np.testing.assert_array_equal(made["time"].values, bundled["time"].values)
        np.testing.assert_allclose(
            made["rain_rate"].values, bundled["rain_rate"].values, atol=0.0051
        )  # int16 steps of 0.01 mm/h

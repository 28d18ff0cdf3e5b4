"""datasets.splits: the split syntax (fractions, dates), and windows cut from a file's time axis."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from datasets import DatasetError
from datasets.files import read_series
from datasets.layout import as_dataset_array
from datasets.splits import DEFAULT_SPLIT, parse_split, split_windows, with_time_axis
from datasets.vocabulary import SPLITS

DATES = "train:..2024-01-02,val:2024-01-03..2024-01-03T11:00,test:2024-01-03T12:00.."


def _series(n_time=40, *, start=None, step="PT1H", channels=2, size=4, sequences=1):
    """Frames whose pixel (0, 0) of channel 0 holds the frame index (so windows can be checked)."""
    values = np.ones((sequences, n_time, channels, size, size), np.float32)
    values[:, :, 0, 0, 0] = np.arange(n_time)
    time = None if start is None else pd.date_range(start, periods=n_time, freq="h").values
    return as_dataset_array(values, units="u", time_step=step if start else "1 frame",
                            domain="traffic", source="s.npz", description="test", time=time)  # fmt: skip


# ------------------------------------------------------------------------------ syntax
def test_fractions_and_dates_parse():
    spec = parse_split(" 0.7, 0.2 ,0.1 ")
    assert spec.fractions == (0.7, 0.2, 0.1) and not spec.by_dates
    assert parse_split(DEFAULT_SPLIT).fractions == (0.8, 0.1, 0.1)
    dates = parse_split(DATES)
    (_, t0, t1), (_, v0, v1), (_, s0, s1) = dates.ranges
    assert t0 is None and s1 is None  # open ends
    assert t1 == pd.Timestamp("2024-01-02T23:59:59.999999999")  # a date alone: its whole day
    assert (v0, v1) == (pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-03T11:00"))
    assert s0 == pd.Timestamp("2024-01-03T12:00")
    # any order of the names; the ranges come back in train, val, test order
    shuffled = parse_split("test:2024-03-01..,train:..2024-01-31,val:2024-02-01..2024-02-29")
    assert [r[0] for r in shuffled.ranges] == list(SPLITS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("0.8,0.2", "has 2 fraction"),
        ("0.8,0.3,0.1", "add up to 1.2"),
        ("0.9,0,0.1", "val gets 0"),
        ("0.9,nan,0.1", "val gets nan"),
        ("eighty,ten,ten", "neither fractions nor dates"),
        ("train:..2024-06-30,val:2024-07-01..2024-07-15", "no range for test"),
        ("train:..2024-06-30,train:..2024-06-30,test:2024-07-16..", "names train twice"),
        ("tran:..2024-06-30,val:2024-07-01..,test:2024-08-01..", "'tran:..2024-06-30' does not"),
        ("train:2024-06-30,val:2024-07-01..,test:2024-08-01..", "is not a range"),
        ("train:..2024-13-01,val:2024-07-01..,test:2024-08-01..", "'2024-13-01' is not a date"),
        (
            "train:..2024-07-01,val:2024-07-01..2024-07-15,test:2024-07-16..",
            "train and val overlap",
        ),
        ("train:..,val:2024-07-01..2024-07-15,test:2024-07-16..", "overlap"),
        ("train:2024-07-09..2024-07-01,val:2024-07-10..,test:..2024-06-01", "train ends before"),
    ],
)
def test_bad_splits_say_what_is_wrong(text, message):
    with pytest.raises(DatasetError, match=message) as info:
        parse_split(text)
    assert repr(text) in str(info.value) or text == ""


# ------------------------------------------------------------------------------ fractions
def test_fraction_windows_stay_inside_their_split_in_time_order():
    series = _series(40)
    spec = parse_split("0.6,0.2,0.2")
    bounds = {"train": (0, 24), "val": (24, 32), "test": (32, 40)}  # 0.6 / 0.2 / 0.2 of 40
    for split, (lo, hi) in bounds.items():
        w = split_windows(series, spec, split, context=3, horizon=3)
        frames = w["frame"].values  # (S, 6) index in the file
        assert frames.min() >= lo and frames.max() < hi
        assert w.sizes["sample"] == hi - lo - 6 + 1  # every start, stride 1
        np.testing.assert_array_equal(w.values[:, :, 0, 0, 0], frames)  # the frames cut are those
        assert w.attrs["split"] == split and w.attrs["context"] == 3
    strided = split_windows(series, spec, "train", context=3, horizon=3, stride=5)
    assert strided["frame"].values[:, 0].tolist() == list(range(0, 19, 5))
    few = split_windows(series, spec, "train", context=3, horizon=3, n_samples=3)
    assert few["frame"].values[:, 0].tolist() == [0, 9, 18]  # evenly, first and last kept


def test_several_sequences_are_split_by_sequence():
    series = _series(6, sequences=10)
    spec = parse_split("0.8,0.1,0.1")
    train = split_windows(series, spec, "train", context=3, horizon=3)
    test = split_windows(series, spec, "test", context=3, horizon=3)
    assert train["sequence"].values.tolist() == list(range(8))
    assert test["sequence"].values.tolist() == [9]


def test_a_split_without_a_window_says_what_to_change():
    with pytest.raises(DatasetError, match=r"val split \(0.05 of the 40 frames: 2\).*larger share"):
        split_windows(_series(40), parse_split("0.9,0.05,0.05"), "val", context=3, horizon=3)


# ------------------------------------------------------------------------------ dates, gaps, NaN
def test_date_windows_lie_in_their_range_and_never_span_a_gap_or_missing_frame():
    series = _series(72, start="2024-01-01")  # 3 days, hourly
    series = series.drop_isel(time=[10])  # one hour missing on Jan 1 (a gap in time)
    series[0, 30] = np.nan  # a missing frame on Jan 2 (no finite value)
    series[0, 5:, 1, 0, 0] = np.nan  # a masked pixel: kept, not a missing frame
    spec = parse_split(DATES)
    seen = {}
    for split in SPLITS:
        w = split_windows(series, spec, split, context=2, horizon=2)
        stamps = pd.DatetimeIndex(w["timestamp"].values.ravel())
        _, start, end = spec.ranges[SPLITS.index(split)]
        assert (start is None or stamps.min() >= start) and (end is None or stamps.max() <= end)
        steps = np.diff(w["timestamp"].values, axis=1)
        assert (steps == np.timedelta64(1, "h")).all()  # no window spans the missing hour
        assert np.isfinite(w.values[:, :, 0]).all()  # nor the missing frame
        seen[split] = set(stamps)
    assert not (seen["train"] & seen["val"]) and not (seen["val"] & seen["test"])
    assert pd.Timestamp("2024-01-01T10:00") not in seen["train"]  # it is not in the file
    # Only the gap and the missing frame cost windows: 4-frame windows in the stretches of hours
    # 0-9 (10 frames), 11-30 (20: hour 10 is missing) and 32-47 (16: hour 31 has no value).
    train = split_windows(series, spec, "train", context=2, horizon=2)
    assert train.sizes["sample"] == (10 - 3) + (20 - 3) + (16 - 3)


def test_dates_need_timestamps_and_start_with_time_step_gives_them():
    series = _series(72)  # frame indices only
    with pytest.raises(DatasetError, match="has no timestamps.*state start and time_step"):
        split_windows(series, parse_split(DATES), "train", context=2, horizon=2)
    stamped = with_time_axis(series, start="2024-01-01", time_step="PT1H")
    assert stamped.attrs["time_step"] == "PT1H"
    w = split_windows(stamped, parse_split(DATES), "val", context=2, horizon=2)
    assert pd.DatetimeIndex(w["timestamp"].values.ravel()).min() == pd.Timestamp("2024-01-03")
    with pytest.raises(DatasetError, match="has timestamps of its own"):
        with_time_axis(stamped, start="2025-01-01", time_step="PT1H")
    with pytest.raises(DatasetError, match="states a time step of PT1H, the config says PT30M"):
        with_time_axis(stamped, time_step="PT30M")


def test_taxibj_file_is_read_as_one_series_and_split_by_dates(tmp_path):
    times = pd.date_range("2024-01-01", periods=72, freq="h").delete([40])  # one hour missing
    slots = [f"{t:%Y%m%d}{t.hour:02d}".encode() for t in times]
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "CITY_T60_InOut.h5", "w") as h5:
        h5["date"] = np.array(slots)
        h5["data"] = rng.integers(0, 50, size=(len(times), 2, 4, 4)).astype(np.float64)
    series, _ = read_series(tmp_path / "CITY_T60_InOut.h5")
    assert series.sizes["sample"] == 1 and series.sizes["time"] == 71
    w = split_windows(series, parse_split(DATES), "train", context=3, horizon=3)
    steps = np.diff(w["timestamp"].values, axis=1)
    assert (steps == np.timedelta64(1, "h")).all()
    assert (w["timestamp"].values < np.datetime64("2024-01-03")).all()
    # Jan 1-2 has 47 hours present, in stretches of 40 and 7 around the missing hour 40
    assert w.sizes["sample"] == (40 - 5) + (7 - 5)


# ------------------------------------------------------------------------------ reading
def test_read_series_says_what_it_inferred_and_checks_reader_options(tmp_path):
    frames = np.zeros((12, 8, 8, 2), np.float32)
    np.savez(tmp_path / "f.npz", flows=frames, mask=np.ones((8, 8)))
    array, notes = read_series(tmp_path / "f.npz", domain="traffic", units="vehicles")
    assert array.sizes["channel"] == 2 and array.attrs["units"] == "vehicles"
    assert any("'flows' (inferred" in n for n in notes)
    assert any("'thwc' (inferred" in n for n in notes)
    stated, notes = read_series(tmp_path / "f.npz", key="flows", layout="thwc")
    assert notes == [] and stated.attrs["domain"] == "unknown"
    with pytest.raises(DatasetError, match=r"no reader option variable; this format takes"):
        read_series(tmp_path / "f.npz", variable="rain")
    with pytest.raises(DatasetError, match="domain 'weather'"):
        read_series(tmp_path / "f.npz", domain="weather")


def test_nan_frames_of_a_netcdf_file_break_windows(tmp_path):
    times = pd.date_range("2024-01-01", periods=10, freq="5min")
    rain = np.ones((10, 6, 6), np.float32)
    rain[:, 0, :] = np.nan  # outside the radar domain: a mask
    rain[4] = np.nan  # a missing frame
    xr.Dataset({"rain": (("time", "y", "x"), rain, {"units": "mm/h"})},
               coords={"time": times}).to_netcdf(tmp_path / "r.nc")  # fmt: skip
    series, _ = read_series(tmp_path / "r.nc")
    w = split_windows(series, parse_split("0.6,0.2,0.2"), "train", context=1, horizon=1)
    starts = pd.DatetimeIndex(w["timestamp"].values[:, 0])
    assert list(starts.minute) == [0, 5, 10]  # frames 0-3; frame 4 is missing, 5 stands alone


def test_a_folder_of_radar_files_is_one_series(tmp_path):
    from tests.datasets.test_radar import _write_odim

    folder = tmp_path / "event"
    folder.mkdir()
    for minute in range(0, 50, 5):
        raw = np.zeros((12, 10), dtype=np.uint16)
        raw[3:6, minute // 5 : minute // 5 + 3] = 200  # 20 mm/h moving east
        _write_odim(folder / f"T_PAAH21_C_EUOC_2018061312{minute:02d}00.h5", raw)
    (folder / ".DS_Store").write_bytes(b"x")  # hidden files are skipped
    series, _ = read_series(folder)
    assert series.shape == (1, 10, 1, 12, 10) and series.attrs["time_step"] == "PT5M"
    assert series.attrs["domain"] == "radar" and series.attrs["units"] == "mm/h"
    spec = parse_split(
        "train:..2018-06-13T12:29,val:2018-06-13T12:30..2018-06-13T12:39,test:2018-06-13T12:40.."
    )
    w = split_windows(series, spec, "train", context=2, horizon=2)
    assert w.sizes["sample"] == 6 - 4 + 1  # 12:00 .. 12:25
    (folder / "notes.txt").write_text("not radar")
    with pytest.raises(DatasetError, match="unknown format"):
        read_series(folder)

"""Traffic datasets: gap-free windows, TaxiBJ date parsing, duplicate/gap reports on tiny HDF5
files written here, the bundled SUMO flows, and (with ../shared) every real TaxiNYC year."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from datasets import DatasetError, get_dataset
from datasets import traffic as T
from datasets.files import read_any

BUNDLED_SECONDS = 10.0


# ----------------------------------------------------------------------------- helpers


def _series(times, *, seed=0, step="PT1H") -> xr.DataArray:
    """A (time, channel, y, x) series whose values encode the frame's hour offset."""
    times = pd.DatetimeIndex(times)
    rng = np.random.default_rng(seed)
    values = rng.random((len(times), 2, 3, 4)).astype(np.float32)
    values[:, 0, 0, 0] = (times - times[0]) / pd.Timedelta(hours=1)  # frame clock in pixel 0
    return xr.DataArray(
        values,
        dims=("time", "channel", "y", "x"),
        coords={"time": times, "channel": ["inflow", "outflow"], "y": range(3), "x": range(4)},
        attrs={"time_step": step, "source": "synthetic test series"},
    )


def _dates(times: pd.DatetimeIndex, *, interval: int = 60, base: int = 0) -> np.ndarray:
    """TaxiBJ date strings ``YYYYMMDDSS`` for ``times``."""
    slots = (times.hour * 60 + times.minute) // interval + base
    return np.array([f"{t:%Y%m%d}{s:02d}".encode() for t, s in zip(times, slots, strict=True)])


def _write_h5(path: Path, dates, data) -> Path:
    with h5py.File(path, "w") as h5:
        h5["date"] = dates
        h5["data"] = data
    return path


def _defective_file(folder: Path) -> tuple[Path, dict]:
    """Two days of hourly flows with known defects.

    - missing: 2020-01-01 10:00-12:00 (3 h) and 2020-01-02 06:00 (1 h) -> 4 missing hours, 2 ranges;
    - duplicated: 05:00 and 06:00 on Jan 1 (repeats differ by +7) and 16:00 on Jan 2 (identical),
      the repeats appended at the end of the file (time goes backwards once).
    """
    full = pd.date_range("2020-01-01", periods=48, freq="h")
    missing = full[[10, 11, 12, 30]]
    present = full.difference(missing)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 50, size=(len(present), 2, 4, 3)).astype(np.float64)
    row = {t: i for i, t in enumerate(present)}
    dup_times = [full[5], full[6], full[40]]
    dup_data = np.stack([data[row[full[5]]] + 7, data[row[full[6]]] + 7, data[row[full[40]]]])
    dates = np.concatenate([_dates(present), _dates(pd.DatetimeIndex(dup_times))])
    path = _write_h5(folder / "CITY_M4x3_T60_InOut.h5", dates, np.concatenate([data, dup_data]))
    truth = {
        "present": present,
        "data": data,
        "row": row,
        "dup_times": dup_times,
        "dup_data": dup_data,
        "n_rows": len(dates),
    }
    return path, truth


# ----------------------------------------------------------------------------- windows


def test_windows_never_span_a_gap():
    full = pd.date_range("2021-03-01", periods=100, freq="h")
    series = _series(full.delete(slice(40, 45)))  # 5 missing hours: runs of 40 and 55 frames
    out = T.windows(series, 3, 2, stride=1)
    assert out.dims == ("sample", "time", "channel", "y", "x")
    assert out.dtype == np.float32
    assert out.sizes["sample"] == (40 - 5 + 1) + (55 - 5 + 1)
    steps = np.diff(out["timestamp"].values, axis=1)
    assert (steps == np.timedelta64(1, "h")).all(), "a window spans the gap"
    # The values travel with their timestamps: pixel 0 holds each frame's hour offset.
    clock = (out["timestamp"].values - full[0].to_datetime64()) / np.timedelta64(1, "h")
    np.testing.assert_array_equal(out.values[:, :, 0, 0, 0], clock)
    assert out.attrs["context"] == 3 and out.attrs["horizon"] == 2 and out.attrs["stride"] == 1
    # Without the gap the same call would give windows across it.
    assert T.windows(_series(full), 3, 2, stride=1).sizes["sample"] == 100 - 5 + 1


def test_windows_stride_restarts_in_each_run_and_nan_frames_break_runs():
    full = pd.date_range("2021-03-01", periods=30, freq="h")
    series = _series(full)
    series[12, 1, 2, 3] = np.nan  # one bad pixel: frame 12 is unusable
    assert T.contiguous_runs(series) == [(0, 12), (13, 30)]
    out = T.windows(series, 2, 2, stride=4)
    starts = out["timestamp"].values[:, 0]
    expected = full[[0, 4, 8, 13, 17, 21, 25]].values
    np.testing.assert_array_equal(starts, expected)
    assert np.isfinite(out.values).all()


def test_windows_refuses_too_short_and_bad_arguments():
    series = _series(pd.date_range("2021-03-01", periods=10, freq="h").delete([4]))
    with pytest.raises(DatasetError, match="no gap-free stretch"):
        T.windows(series, 4, 2)
    with pytest.raises(ValueError, match="stride"):
        T.windows(series, 2, 2, stride=0)


# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("raw", "interval", "expected_interval", "base", "first", "last"),
    [
        # TaxiNYC: hourly, slots 00..23
        ([b"2010010100", b"2010010123"], None, 60, 0, "2010-01-01 00:00", "2010-01-01 23:00"),
        # TaxiBJ: 48 half-hour slots 01..48
        ([b"2013070101", b"2013070148"], None, 30, 1, "2013-07-01 00:00", "2013-07-01 23:30"),
        # BikeNYC: hourly, slots 01..24
        ([b"2014040101", b"2014040124"], 60, 60, 1, "2014-04-01 00:00", "2014-04-01 23:00"),
        # str and int values are accepted too
        (["2012022900", 2012022905], 60, 60, 0, "2012-02-29 00:00", "2012-02-29 05:00"),
    ],
)
def test_parse_dates_hourly_and_half_hourly(raw, interval, expected_interval, base, first, last):
    times, got_interval, got_base = T.parse_dates(raw, interval_minutes=interval)
    assert got_interval == expected_interval and got_base == base
    assert times[0] == pd.Timestamp(first) and times[-1] == pd.Timestamp(last)


def test_parse_dates_half_hour_slots_map_to_every_half_hour():
    day = pd.date_range("2013-07-01", periods=48, freq="30min")
    times, interval, base = T.parse_dates(_dates(day, interval=30, base=1))
    assert (interval, base) == (30, 1)
    pd.testing.assert_index_equal(times, day.as_unit("ns"), check_names=False, check_freq=False)


@pytest.mark.parametrize(
    ("raw", "interval", "message"),
    [
        ([b"2010013200"], None, "not a real date"),
        ([b"20100101"], None, "YYYYMMDDSS"),
        ([b"2010O10100"], None, "YYYYMMDDSS"),
        ([b"\xff\xfe10010100"], None, "ASCII"),
        ([b"2013070149"], 30, "outside"),
        ([b"2010010100", b"2010010124"], 60, "outside"),
        ([], None, "empty"),
    ],
)
def test_parse_dates_rejects_bad_strings(raw, interval, message):
    with pytest.raises(DatasetError, match=message):
        T.parse_dates(np.array(raw, dtype=object), interval_minutes=interval, source="f.h5")


# ----------------------------------------------------------------------------- defects


def test_duplicates_and_gaps_are_detected_with_exact_counts(tmp_path):
    path, truth = _defective_file(tmp_path)
    series, report = T.read_taxibj(path)
    print(report.summary())
    assert report.n_rows == truth["n_rows"] == 47
    assert report.interval_minutes == 60 and report.slot_base == 0
    assert report.n_duplicated_timestamps == 3
    assert report.n_dropped_rows == 3
    assert report.duplicate_ranges == (
        "2020-01-01T05:00/2020-01-01T06:00",
        "2020-01-02T16:00/2020-01-02T16:00",
    )
    assert report.max_duplicate_abs_diff == 7.0
    assert report.n_out_of_order == 1
    assert report.n_missing == 4
    assert report.gap_ranges == (
        "2020-01-01T10:00/2020-01-01T12:00",
        "2020-01-02T06:00/2020-01-02T06:00",
    )
    assert report.n_frames == 44 and report.start == "2020-01-01T00:00"
    # The series: sorted unique times, first occurrence kept, values unchanged.
    assert series.dims == ("time", "channel", "y", "x") and series.dtype == np.float32
    pd.testing.assert_index_equal(
        pd.DatetimeIndex(series["time"].values), truth["present"].as_unit("ns"), check_names=False
    )
    np.testing.assert_array_equal(series.values, truth["data"].astype(np.float32))
    assert list(series["channel"].values) == ["inflow", "outflow"]
    # The report also travels in the attrs, as NetCDF-safe values.
    assert series.attrs["report_n_missing"] == 4
    assert series.attrs["report_n_dropped_rows"] == 3
    assert "2020-01-01T10:00/2020-01-01T12:00" in series.attrs["report_gap_ranges"]
    assert series.attrs["time_step"] == "PT1H" and series.attrs["domain"] == "traffic"
    for value in series.attrs.values():
        assert isinstance(value, str | int | float)
    # Windows never reach across the missing hours.
    out = T.windows(series, 3, 3, stride=1)
    assert (np.diff(out["timestamp"].values, axis=1) == np.timedelta64(1, "h")).all()
    assert out.sizes["sample"] == (10 - 6 + 1) + (17 - 6 + 1) + (17 - 6 + 1)


def test_duplicate_policies_last_and_drop(tmp_path):
    path, truth = _defective_file(tmp_path)
    last, report_last = T.read_taxibj(path, duplicates="last")
    i = list(pd.DatetimeIndex(last["time"].values)).index(truth["dup_times"][0])
    np.testing.assert_array_equal(last.values[i], truth["dup_data"][0].astype(np.float32))
    assert report_last.n_dropped_rows == 3 and report_last.n_missing == 4
    dropped, report_drop = T.read_taxibj(path, duplicates="drop")
    assert report_drop.n_dropped_rows == 6
    assert report_drop.n_missing == 4 + 3
    assert truth["dup_times"][0] not in set(pd.DatetimeIndex(dropped["time"].values))
    assert "gap" in report_drop.duplicate_policy
    with pytest.raises(ValueError, match="first, last, drop"):
        T.read_taxibj(path, duplicates="mean")


def test_read_any_dispatches_taxibj_layout_to_windows(tmp_path):
    path, _ = _defective_file(tmp_path)
    out = read_any(path, context=2, horizon=2)
    assert out.dims == ("sample", "time", "channel", "y", "x") and out.dtype == np.float32
    assert out.attrs["report_n_missing"] == 4
    assert (np.diff(out["timestamp"].values, axis=1) == np.timedelta64(1, "h")).all()
    # the slots are the city's clock, and the file does not say which city: never claimed UTC
    assert out.attrs["time_zone"] == "local"


# ----------------------------------------------------------------------------- errors


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    good_dates = _dates(pd.date_range("2020-01-01", periods=6, freq="h"))
    good_data = np.zeros((6, 2, 4, 3))
    files = {}
    with h5py.File(folder / "nodate.h5", "w") as h5:
        h5["data"] = good_data
    files["missing key"] = (folder / "nodate.h5", "missing dataset")
    files["wrong dims"] = (_write_h5(folder / "dims.h5", good_dates, np.zeros((6, 4, 3))), "shape")
    files["length mismatch"] = (
        _write_h5(folder / "len.h5", good_dates[:5], good_data),
        "must match",
    )
    bad_dates = good_dates.copy()
    bad_dates[3] = b"2020013100"[:8] + b"xx"
    files["bad date"] = (_write_h5(folder / "date.h5", bad_dates, good_data), "YYYYMMDDSS")
    big = _write_h5(
        folder / "big.h5",
        _dates(pd.date_range("2020", periods=200, freq="h")),
        np.ones((200, 2, 32, 32)),
    )
    full = big.read_bytes()
    (folder / "cut.h5").write_bytes(full[: len(full) // 2])
    files["truncated"] = (folder / "cut.h5", "cut.h5")
    (folder / "noise.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    files["not hdf5"] = (folder / "noise.h5", "not an HDF5 file")
    files["missing file"] = (folder / "absent.h5", "no such file")
    strings = _write_h5(folder / "str.h5", good_dates, np.full((6, 2, 2, 2), b"ab"))
    files["text data"] = (strings, "dtype")
    return files


@pytest.mark.parametrize(
    "case",
    [
        "missing key",
        "wrong dims",
        "length mismatch",
        "bad date",
        "truncated",
        "not hdf5",
        "missing file",
        "text data",
    ],
)
def test_bad_files_raise_dataset_error_naming_the_file(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    with pytest.raises(DatasetError) as info:
        T.read_taxibj(path)
    assert path.name in str(info.value)
    assert message in str(info.value)


def test_too_big_is_refused_before_reading(tmp_path):
    path = _write_h5(
        tmp_path / "big.h5",
        _dates(pd.date_range("2020", periods=50, freq="h")),
        np.ones((50, 2, 32, 32)),
    )
    with pytest.raises(DatasetError, match="larger than the limit"):
        T.read_taxibj(path, max_bytes=10_000)
    # A small file that declares a huge array (chunked, compressed zeros) is refused by its shape.
    huge = tmp_path / "huge.h5"
    with h5py.File(huge, "w") as h5:
        h5["date"] = _dates(pd.date_range("2020", periods=4000, freq="h"))
        h5.create_dataset(
            "data",
            shape=(4000, 2, 256, 256),
            dtype="f8",
            chunks=(1, 2, 256, 256),
            compression="gzip",
        )
    assert huge.stat().st_size < 1_000_000
    with pytest.raises(
        DatasetError, match=r"^huge\.h5: declares 4,000 MiB of arrays, over the limit"
    ):
        T.read_taxibj(huge, max_bytes=100_000_000)


# ----------------------------------------------------------------------------- bundled SUMO


def test_bundled_sumo_loads_fast_with_contract_attrs():
    for split in ("train", "val", "test"):
        start = time.perf_counter()
        arr = get_dataset("traffic_sumo", split=split)
        elapsed = time.perf_counter() - start
        print(f"traffic_sumo/{split}: {arr.sizes['sample']} windows in {elapsed:.2f} s")
        assert elapsed < BUNDLED_SECONDS
        assert arr.dims == ("sample", "time", "channel", "y", "x")
        assert arr.dtype == np.float32
        assert arr.shape[1:] == (24, 2, 16, 16)
        assert list(arr["channel"].values) == ["inflow", "outflow"]
        attrs = arr.attrs
        assert attrs["units"] == "vehicles per interval"
        assert attrs["time_step"] == "PT15M"
        assert attrs["domain"] == "traffic" and attrs["synthetic"] == 1
        assert "SUMO" in attrs["description"] and "simulated" in attrs["description"].lower()
        assert attrs["source"] and attrs["licence"]
        assert np.isfinite(arr.values).all() and (arr.values >= 0).all()
        steps = np.diff(arr["timestamp"].values, axis=1)
        assert (steps == np.timedelta64(15, "m")).all()


def test_bundled_sumo_splits_are_disjoint_blocks_in_time_order():
    spans = {}
    for split in ("train", "val", "test"):
        stamps = get_dataset("traffic_sumo", split=split, stride=1)["timestamp"].values
        spans[split] = (stamps.min(), stamps.max())
    assert spans["train"][1] < spans["val"][0]
    assert spans["val"][1] < spans["test"][0]
    assert get_dataset("traffic_sumo", split="test", n_samples=3).sizes["sample"] == 3


def test_bundled_sumo_flows_are_non_trivial_with_daily_variation():
    series = T.read_sumo_series()
    assert series.sizes["time"] % 96 == 0 and series.sizes["time"] // 96 >= 28
    values = series.values  # (T, 2, 16, 16) vehicles per 15 min
    total = values.sum(axis=(2, 3))  # (T, 2)
    # Every vehicle that enters a cell leaves one: in- and out-flow totals agree.
    np.testing.assert_allclose(total[:, 0].sum(), total[:, 1].sum(), rtol=0.01)
    times = pd.DatetimeIndex(series["time"].values)
    hour = times.hour + times.minute / 60
    weekday = times.day_of_week < 5
    peak = total[weekday & (hour >= 7.5) & (hour < 9), 0].mean()
    night = total[(hour >= 2) & (hour < 4), 0].mean()
    midday = total[weekday & (hour >= 12) & (hour < 14), 0].mean()
    print(
        f"SUMO in-flow per 15 min over the grid: peak {peak:.0f}, midday {midday:.0f}, night {night:.0f}"
    )
    assert peak > 4 * night, "no morning peak over the night"
    assert peak > midday > night
    # Space matters too: the busiest cell carries far more than the quietest.
    per_cell = values[:, 0].mean(axis=0)
    assert per_cell.max() > 5 * max(per_cell.min(), 0.1)


# ----------------------------------------------------------------------------- real TaxiNYC


@pytest.mark.shared
@pytest.mark.parametrize("year", [2010, 2011, 2012, 2013, 2014])
def test_taxinyc_year_loads_with_reported_defects(shared_data, year):
    series, report = T.read_taxinyc_year(year, root=shared_data / "traffic")
    print(report.summary())
    assert series.dims == ("time", "channel", "y", "x") and series.shape[1:] == (2, 16, 8)
    assert series.attrs["units"] == "trips per hour" and series.attrs["time_step"] == "PT1H"
    assert (series.values >= 0).all() and series.values.max() > 100
    assert 48 <= report.n_duplicated_timestamps <= 1728
    assert report.n_dropped_rows == report.n_duplicated_timestamps
    assert report.max_duplicate_abs_diff > 0, "repeated rows are documented to differ"
    assert report.n_missing == 696
    assert report.gap_ranges == (f"{year}-09-02T00:00/{year}-09-30T23:00",)
    assert report.start == f"{year}-01-01T00:00" and report.end == f"{year}-12-31T23:00"
    times = pd.DatetimeIndex(series["time"].values)
    autumn = times[times >= pd.Timestamp(f"{year}-10-01")]
    expected = pd.date_range(f"{year}-10-01", f"{year}-12-31 23:00", freq="h")
    pd.testing.assert_index_equal(
        autumn, expected.as_unit("ns"), check_names=False, check_freq=False
    )


@pytest.mark.shared
def test_taxinyc_split_windows_skip_september(shared_data):
    arr = get_dataset("taxinyc", split="test", root=shared_data / "traffic", stride=1)
    stamps = arr["timestamp"].values
    assert (np.diff(stamps, axis=1) == np.timedelta64(1, "h")).all()
    september = (stamps >= np.datetime64("2014-09-02")) & (stamps < np.datetime64("2014-10-01"))
    assert not september.any()
    assert arr.attrs["missing_hours"] == 696 and arr.attrs["dropped_duplicate_rows"] == 1728
    assert arr.attrs["units"] == "trips per hour" and arr.attrs["synthetic"] == 0

    # New York local time (module doc of T.TAXINYC_TIME_ZONE): the windows keep the zone
    assert arr.attrs["time_zone"] == "America/New_York"


@pytest.mark.shared
def test_taxinyc_timestamps_are_new_york_local_time(shared_data):
    """The evidence behind ``time_zone``: the daylight-saving days in New York's clock."""
    series, _ = T.read_taxinyc_year(2014, root=shared_data / "traffic")
    assert series.attrs["time_zone"] == T.TAXINYC_TIME_ZONE == "America/New_York"
    trips = series.sum(("channel", "y", "x")).to_series()
    # 2014-03-09 02:00 does not exist in New York (clocks jump 02:00 -> 03:00): no trip
    assert trips[pd.Timestamp("2014-03-09 02:00")] == 0
    assert trips[pd.Timestamp("2014-03-09 01:00")] > 1000
    # 2014-11-02 01:00 happens twice: more trips than the midnight before it
    assert trips[pd.Timestamp("2014-11-02 01:00")] > 1.3 * trips[pd.Timestamp("2014-11-02 00:00")]
    # the nightly minimum is at 05:00 local time (it would be 09:00 or 10:00 in UTC)
    assert trips.groupby(trips.index.hour).mean().idxmin() == 5


@pytest.mark.shared
def test_taxinyc_manifest_matches_the_files(shared_data):
    from datasets.download import sha256_of

    for rel, digest in T.TAXINYC_FILES.items():
        assert sha256_of(shared_data / "traffic" / rel) == digest, rel


@pytest.mark.shared
def test_taxinyc_download_from_local_server(shared_http_server, tmp_path):
    arr = get_dataset(
        "taxinyc",
        split="test",
        download=True,
        base_url=shared_http_server + "traffic/",
        cache_dir=tmp_path,
        n_samples=4,
    )
    assert arr.sizes["sample"] == 4
    assert (tmp_path / "taxinyc" / "TaxiNYC" / "NYC14_Taxi_M16x8_T60_InOut.h5").is_file()


def test_taxinyc_without_files_says_how_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="download=True"):
        get_dataset("taxinyc", split="test", cache_dir=tmp_path)
    with pytest.raises(DatasetError, match="root="):
        get_dataset("taxinyc", split="test", root=tmp_path)


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_taxibj_files_raise_only_dataset_error(tmp_path, seed):
    """Flipped bytes and truncation of a valid file: a clean result or DatasetError, nothing else."""
    path, _ = _defective_file(tmp_path)
    original = path.read_bytes()
    rng = np.random.default_rng(seed)
    corrupt = bytearray(original)
    for pos in rng.integers(0, len(corrupt), size=int(rng.integers(1, 64))):
        corrupt[pos] = int(rng.integers(0, 256))
    cut = int(rng.integers(1, len(original)))
    for name, content in (("flipped.h5", bytes(corrupt)), ("cut.h5", original[:cut])):
        target = tmp_path / name
        target.write_bytes(content)
        for reader in (T.read_taxibj, T.open_taxibj):
            try:
                result = reader(target)
            except DatasetError as exc:
                assert name in str(exc)
                continue
            arr = result[0] if isinstance(result, tuple) else result
            assert arr.dtype == np.float32 and np.isfinite(arr.values).all()


# ----------------------------------------------------------------------------- SUMO generator


def test_demand_profile_has_weekday_commute_peaks_only():
    from tools.sumo_traffic import SumoConfig, demand_rates

    cfg = SumoConfig()
    minutes = np.arange(7 * 1440)
    inbound, outbound, other = demand_rates(minutes, cfg)
    hour = minutes % 1440 / 60
    monday, saturday = minutes < 1440, (minutes >= 5 * 1440) & (minutes < 6 * 1440)
    assert inbound[monday].argmax() == 8 * 60 and inbound[monday].max() == cfg.commute_peak_per_h
    assert 17 <= hour[monday][outbound[monday].argmax()] <= 18
    assert inbound[saturday].max() == 0 and outbound[saturday].max() == 0
    assert other.min() >= cfg.night_per_h and other[monday & (hour == 3)].max() < other.max() / 3


def test_route_follows_predecessor_table():
    from tools.sumo_traffic import route

    pred = np.full((4, 4), -9999, dtype=np.int32)  # edge graph 0 -> 1 -> 2 -> 3
    pred[0, 1], pred[0, 2], pred[0, 3] = 0, 1, 2
    assert route(pred, 0, 3) == [0, 1, 2, 3]
    assert route(pred, 3, 0) == []


def test_sumo_generator_end_to_end_tiny(tmp_path):
    """A 4x4 grid over 3 days, run for real when the optional SUMO extra is installed."""
    pytest.importorskip(
        "sumolib", reason="Eclipse SUMO is an optional extra (requirements-sumo.txt)"
    )
    from tools import sumo_traffic as S

    try:
        S.sumo_binary("sumo")
    except RuntimeError as exc:
        pytest.skip(f"SUMO binary not installed: {exc}")
    cfg = S.SumoConfig(
        days=3, junctions=4, bins=4, commute_peak_per_h=300, other_peak_per_h=150, night_per_h=20
    )
    counts, grid, stats = S.simulate(tmp_path, cfg, jobs=1, verbose=False)
    assert counts.shape == (3 * 96, 2, 4, 4) and grid.cell_m == pytest.approx(100.0)
    assert stats.departed == stats.trips_planned > 1000
    assert stats.arrived == stats.departed
    total_in, total_out = counts[:, 0].sum(), counts[:, 1].sum()
    assert total_in == pytest.approx(total_out, rel=0.01)
    assert total_in >= stats.departed + stats.boundary_crossings * 0.99
    out = tmp_path / "tiny.nc"
    S.write_netcdf(S.to_dataset(counts, grid, cfg, stats), out)
    series = T.read_sumo_series(out)
    np.testing.assert_array_equal(series.values, counts.astype(np.float32))
    assert series.attrs["synthetic"] == 1 and series.attrs["config_days"] == 3
    test = get_dataset("traffic_sumo", split="test", path=out)
    assert test["timestamp"].values.min() >= np.datetime64("2024-01-03")


def test_taxibj_half_hour_file_takes_interval_from_its_name(tmp_path):
    """TaxiBJ layout: ``_T30_`` in the name, slots 01..48, one day missing its last 3 slots."""
    times = pd.date_range("2013-07-01", periods=96, freq="30min")[:-3]
    data = np.arange(len(times) * 2 * 4 * 4, dtype=np.float64).reshape(-1, 2, 4, 4)
    path = _write_h5(tmp_path / "BJ13_M4x4_T30_InOut.h5", _dates(times, interval=30, base=1), data)
    series, report = T.read_taxibj(path)
    assert (report.interval_minutes, report.slot_base) == (30, 1)
    assert series.attrs["time_step"] == "PT30M" and series.attrs["units"].endswith("30 minutes")
    assert report.n_missing == 0 and report.n_duplicated_timestamps == 0
    assert pd.Timestamp(series["time"].values[-1]) == pd.Timestamp("2013-07-02 22:00")
    np.testing.assert_array_equal(series.values, data.astype(np.float32))

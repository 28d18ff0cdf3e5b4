"""Radar datasets: the bundled synthetic generator, the pysteps-based readers and the split rule.

Tests marked ``shared`` read the pysteps example radar data in ../shared/data/radar and skip
without it; the rest need no files (KNMI and ODIM files are written here with h5py).
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from datasets import DatasetError, get_dataset, list_datasets
from datasets.radar import EVENTS, split_blocks
from datasets.radar_io import (
    RADAR_SOURCES,
    find_radar_files,
    guess_radar_source,
    parse_timestamp,
    rain_crop_origin,
    read_radar_file,
    read_radar_sequence,
    sliding_windows,
)
from datasets.radar_synthetic import synthetic_precipitation

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RADAR = SHARED / "data" / "radar"
needs_shared = pytest.mark.skipif(
    not RADAR.is_dir(), reason=f"pysteps example radar data not found at {RADAR}"
)

# folder, source, expected frame count, step in minutes
EVENT_FOLDERS = [
    ("mch/20150515", "mch", 40, 5),
    ("mch/20160711", "mch", 40, 5),
    ("mch/20170131", "mch", 40, 5),
    ("bom/prcp-c10/66/2020/10/31", "bom", 144, 10),
    ("bom/prcp-cscn/2/2018/06/16", "bom", 61, 6),
    ("fmi/pgm/20160928", "fmi", 40, 5),
    ("fmi/pgm/20170509", "fmi", 40, 5),
]
# plausible fraction of NaN (outside the radar domain) of a full composite
NAN_FRACTION = {"mch": (0.25, 0.33), "fmi": (0.18, 0.32), "bom": (0.0, 0.5)}


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_precipitation(n_samples=3, split="test", seed=0)


# --- synthetic ------------------------------------------------------------------------------------


def test_synthetic_is_registered_and_labelled():
    assert "radar_synthetic" in list_datasets()
    array = get_dataset("radar_synthetic", split="val", n_samples=2)
    assert array.dims == ("sample", "time", "channel", "y", "x")
    assert array.shape == (2, 24, 1, 128, 128)
    assert array.dtype == np.float32
    assert array.attrs["units"] == "mm/h"
    assert array.attrs["time_step"] == "PT5M"
    assert array.attrs["domain"] == "radar"
    assert array.attrs["synthetic"] == 1
    assert "SYNTHETIC" in array.attrs["description"]
    for key in ("source", "licence"):
        assert array.attrs[key]
    assert array["time"].dtype.kind == "M"
    steps = np.diff(array["time"].values).astype("timedelta64[m]").astype(int)
    assert (steps == 5).all()
    assert array["timestamp"].dims == ("sample", "time")
    assert np.diff(array["y"].values).tolist() == [-1.0] * 127  # km, north at row 0
    assert np.diff(array["x"].values).tolist() == [1.0] * 127
    assert not np.isnan(array.values).any()


def test_synthetic_rain_fraction_and_intensities(synthetic):
    rain = synthetic.values  # (S, T, 1, H, W)
    wet = (rain >= 0.1).mean(axis=(1, 2, 3, 4))
    assert ((wet > 0.15) & (wet < 0.55)).all(), wet
    assert rain.min() >= 0.0
    values = rain[rain >= 0.1]
    low, high = np.quantile(values, [0.05, 0.95])
    assert 0.1 <= low < 1.0 and 1.0 < high <= 10.0, (low, high)
    assert (values > 10.0).mean() < 0.03
    peaks = rain.max(axis=(1, 2, 3, 4))
    assert (peaks > 5.0).all() and (peaks < 150.0).all(), peaks


def test_synthetic_is_deterministic_and_sample_wise(synthetic):
    again = synthetic_precipitation(n_samples=2, split="test", seed=0)
    np.testing.assert_array_equal(again.values, synthetic.values[:2])
    other_seed = synthetic_precipitation(n_samples=1, split="test", seed=1)
    assert not np.array_equal(other_seed.values[0], synthetic.values[0])


def test_synthetic_splits_differ(synthetic):
    train = synthetic_precipitation(n_samples=1, split="train", seed=0)
    val = synthetic_precipitation(n_samples=1, split="val", seed=0)
    assert not np.array_equal(train.values[0], synthetic.values[0])
    assert not np.array_equal(val.values[0], synthetic.values[0])
    assert not np.array_equal(train.values[0], val.values[0])


def _best_shift(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[int, int, float]:
    """(dy, dx) maximising the correlation of a[y, x] with b[y + dy, x + dx]."""
    best = (0, 0, -2.0)
    n = a.shape[0]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            ya, yb = slice(max(0, -dy), n - max(0, dy)), slice(max(0, dy), n - max(0, -dy))
            xa, xb = slice(max(0, -dx), n - max(0, dx)), slice(max(0, dx), n - max(0, -dx))
            r = np.corrcoef(a[ya, xa].ravel(), b[yb, xb].ravel())[0, 1]
            if r > best[2]:
                best = (dy, dx, r)
    return best


def test_synthetic_advection_is_visible(synthetic):
    # The pattern moves by the drift stored with each sample (km/h, direction 0 = east, 90 = north).
    lag = 6  # frames = 30 minutes
    checked = 0
    for i in range(synthetic.sizes["sample"]):
        speed = float(synthetic["speed_km_h"][i]) * lag * 5 / 60  # pixels (1 km)
        angle = np.deg2rad(float(synthetic["direction_deg"][i]))
        expected = (-speed * np.sin(angle), speed * np.cos(angle))  # rows grow southwards
        if speed < 2.0:
            continue
        first = np.log1p(synthetic.values[i, 0, 0])
        later = np.log1p(synthetic.values[i, lag, 0])
        dy, dx, r_best = _best_shift(first, later, radius=int(speed) + 3)
        r_still = np.corrcoef(first.ravel(), later.ravel())[0, 1]
        assert abs(dy - expected[0]) <= 2.0 and abs(dx - expected[1]) <= 2.0, (dy, dx, expected)
        assert r_best > r_still + 0.05
        checked += 1
    assert checked >= 1


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_synthetic_spectrum_fits_pysteps_power_law(synthetic):
    from pysteps.noise.fftgenerators import initialize_param_2d_fft_filter

    fields = np.log10(np.maximum(synthetic.values[:, 0, 0], 0.05)).astype(np.float64)  # (S, H, W)
    fit = initialize_param_2d_fft_filter(fields, win_fun="tukey")
    _break, _level, beta1, beta2 = fit["pars"]
    assert -3.5 < beta1 < -1.0 and -4.0 <= beta2 < -1.5, fit["pars"]


def test_synthetic_time_of_default_test_split():
    # Default test split (16 samples); CPU seconds, so a busy shared machine does not fail it.
    start = time.process_time()
    array = get_dataset("radar_synthetic", split="test")
    used = time.process_time() - start
    assert array.shape == (16, 24, 1, 128, 128)
    assert used < 10.0, f"default test split took {used:.1f} s of CPU"


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_samples"):
        synthetic_precipitation(n_samples=0)
    with pytest.raises(ValueError, match="split"):
        synthetic_precipitation(n_samples=1, split="holdout")


# --- pure helpers ---------------------------------------------------------------------------------


def test_rain_crop_origin_finds_the_rain_and_ignores_nan():
    frames = np.zeros((3, 40, 50), dtype=np.float32)
    frames[:, 25:35, 30:45] = 5.0  # the storm
    frames[:, :10, :10] = np.nan  # outside the domain (NaN >= threshold is False)
    row, col = rain_crop_origin(frames, size=16, threshold=1.0)
    assert 35 - 16 <= row <= 25 and 45 - 16 <= col <= 30
    window = frames[:, row : row + 16, col : col + 16]
    assert (window >= 1).sum() == 3 * 10 * 15  # the whole storm fits


def test_rain_crop_origin_without_rain_prefers_valid_pixels():
    frames = np.zeros((2, 30, 30), dtype=np.float32)
    frames[:, :, :15] = np.nan
    row, col = rain_crop_origin(frames, size=10, threshold=1.0)
    assert col >= 15 and row == 0


@pytest.mark.parametrize(
    ("n", "splits", "window"),
    [
        (144, ("train", "val", "test"), 24),
        (61, ("train", "val", "test"), 24),
        (40, ("val", "test"), 24),
        (40, ("val", "test"), 20),
        (40, ("train",), 24),
        (20, ("train",), 24),
    ],
)
def test_split_blocks_never_overlap(n, splits, window):
    blocks = split_blocks(n, splits=splits, window=window)
    covered = np.zeros(n, dtype=int)
    for split, (start, stop) in blocks.items():
        assert split in splits
        assert stop - start >= window
        covered[start:stop] += 1
    assert covered.max(initial=0) <= 1
    if "test" in splits and n >= window:
        assert "test" in blocks and blocks["test"][1] == n  # test is the end of the event
    if "train" in blocks and "test" in blocks:
        assert blocks["train"][1] <= blocks["test"][0]


def test_split_blocks_examples():
    assert split_blocks(144, splits=("train", "val", "test"), window=24) == {
        "test": (115, 144),
        "val": (86, 115),
        "train": (0, 86),
    }
    assert split_blocks(61, splits=("train", "val", "test"), window=24) == {
        "test": (37, 61),
        "train": (0, 37),
    }
    assert split_blocks(40, splits=("val", "test"), window=20) == {"test": (20, 40), "val": (0, 20)}


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("AQC161932100V_00005.801.gif", "mch", "2016-07-11T21:00"),
        ("66_20201031_235000.prcp-c10.nc", "bom", "2020-10-31T23:50"),
        ("201609281445_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz", "fmi", "2016-09-28T14:45"),
        ("RAD_NL25_RAC_MFBS_EM_5min_201008260005.h5", "knmi", "2010-08-26T00:05"),
        ("T_PAAH21_C_EUOC_20180613120000.hdf", "odim", "2018-06-13T12:00"),
    ],
)
def test_parse_timestamp(name, source, expected):
    assert parse_timestamp(name, source=source) == np.datetime64(expected, "ns")


def test_parse_timestamp_without_time_fails():
    with pytest.raises(DatasetError, match="timestamps="):
        parse_timestamp("radar.gif", source="mch")


# --- KNMI and ODIM files written here -------------------------------------------------------------


def _write_knmi(path: Path, raw: np.ndarray) -> Path:
    """A KNMI-style HDF5 (5-min ACRR in 0.01 mm, 65535 = no data) as pysteps reads it."""
    with h5py.File(path, "w") as f:
        f.create_group("image1").create_dataset("image_data", data=raw)
        geo = f.create_group("geographic")
        rows, cols = raw.shape[-2:]
        geo.attrs["geo_column_offset"] = np.array([0.0], dtype=np.float32)
        geo.attrs["geo_row_offset"] = np.array([3649.98193359375], dtype=np.float32)
        geo.attrs["geo_pixel_size_x"] = np.array([1.0000035], dtype=np.float32)
        geo.attrs["geo_pixel_size_y"] = np.array([-1.0000048], dtype=np.float32)
        geo.attrs["geo_number_columns"] = np.array([cols], dtype=np.int32)
        geo.attrs["geo_number_rows"] = np.array([rows], dtype=np.int32)
        geo.attrs["geo_dim_pixel"] = np.bytes_(b"KM,KM")
        proj = geo.create_group("map_projection")
        proj.attrs["projection_proj4_params"] = np.bytes_(
            b"+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60"
        )
    return path


def _write_odim(
    path: Path, raw: np.ndarray, *, gain=0.1, offset=0.0, nodata=65535, undetect=0, quantity="RATE"
) -> Path:
    """An ODIM HDF5 composite (``quantity``, 2 km LAEA grid) in the layout pysteps' importer reads."""
    import pyproj

    projdef = "+proj=laea +lat_0=55 +lon_0=10 +x_0=1950000 +y_0=-2100000 +units=m +ellps=WGS84"
    proj = pyproj.Proj(projdef)
    rows, cols = raw.shape
    x0, y0 = 1_000_000.0, -1_000_000.0
    ll = proj(x0, y0, inverse=True)
    ur = proj(x0 + 2000.0 * cols, y0 + 2000.0 * rows, inverse=True)
    with h5py.File(path, "w") as f:
        where = f.create_group("where")
        where.attrs["projdef"] = np.bytes_(projdef.encode())
        where.attrs["LL_lon"], where.attrs["LL_lat"] = ll
        where.attrs["UR_lon"], where.attrs["UR_lat"] = ur
        where.attrs["xscale"], where.attrs["yscale"] = 2000.0, 2000.0
        data = f.create_group("dataset1").create_group("data1")
        data.create_dataset("data", data=raw)
        what = data.create_group("what")
        what.attrs["quantity"] = np.bytes_(quantity.encode())
        what.attrs["gain"], what.attrs["offset"] = gain, offset
        what.attrs["nodata"], what.attrs["undetect"] = float(nodata), float(undetect)
    return path


def test_knmi_hdf5_reads_as_mm_per_hour(tmp_path):
    raw = np.zeros((40, 30), dtype=np.uint16)
    raw[10:20, 5:15] = 50  # 0.50 mm in 5 min = 6 mm/h
    raw[:3, :] = 65535  # no data
    path = _write_knmi(tmp_path / "RAD_NL25_RAC_MFBS_EM_5min_201008260000.h5", raw)
    rain, geo = read_radar_file(path, source="knmi")
    assert rain.shape == (40, 30) and rain.dtype == np.float32
    np.testing.assert_allclose(rain[10:20, 5:15], 6.0, rtol=1e-5)
    assert np.isnan(rain[:3]).all() and np.nanmax(rain) == pytest.approx(6.0)
    assert geo["pixel_km"] == pytest.approx(1.0, rel=1e-3)
    assert "import_knmi_hdf5" in geo["importer"]


def test_odim_hdf5_sequence(tmp_path):
    files = []
    for k in range(3):
        raw = np.zeros((32, 36), dtype=np.uint16)
        raw[8:16, 10 + k : 20 + k] = 200  # 20 mm/h moving east
        raw[-4:, :] = 65535
        name = f"T_PAAH21_C_EUOC_201806131{k}0000.hdf"  # 10:00, 11:00, 12:00 -> but step 1 h
        files.append(_write_odim(tmp_path / name, raw))
    seq = read_radar_sequence(files, source="odim", grid=16, resolution_km=2.0)
    assert seq.shape == (1, 3, 1, 16, 16)
    assert seq.attrs["time_step"] == "PT1H" and seq.attrs["units"] == "mm/h"
    assert np.nanmax(seq.values) == pytest.approx(20.0, rel=1e-4)
    assert seq.attrs["crop_row"] <= 8 and seq.attrs["crop_row"] + 16 >= 16  # storm inside
    coarse = read_radar_sequence(files, source="odim", grid=None, resolution_km=4.0)
    assert coarse.shape == (1, 3, 1, 16, 18) and coarse.attrs["resolution_km"] == pytest.approx(4.0)


def test_odim_reflectivity_reads_through_marshall_palmer(tmp_path):
    raw = np.zeros((16, 20), dtype=np.uint8)
    raw[4:8, 5:10] = 130  # 130 * 0.5 - 32 = 33 dBZ
    raw[-2:, :] = 255  # no data
    path = _write_odim(
        tmp_path / "T_PAAH21_C_EUOC_20180613120000.hdf",
        raw,
        gain=0.5,
        offset=-32.0,
        nodata=255,
        quantity="DBZH",
    )
    rain, _ = read_radar_file(path, source="auto")
    expected = (10 ** (33.0 / 10) / 200.0) ** (1 / 1.6)  # Z = 200 R^1.6: 2.73 mm/h
    np.testing.assert_allclose(rain[4:8, 5:10], expected, rtol=1e-4)
    assert np.isnan(rain[-2:]).all()
    assert np.nanmax(rain) == pytest.approx(expected, rel=1e-4)


def test_odim_without_a_read_quantity_names_what_it_holds(tmp_path):
    path = _write_odim(
        tmp_path / "v_20180613120000.h5", np.zeros((8, 8), np.uint8), quantity="VRADH"
    )
    with pytest.raises(DatasetError, match="ODIM quantities VRADH; read are RATE"):
        read_radar_file(path, source="odim")


def test_guess_radar_source_on_written_files(tmp_path):
    knmi = _write_knmi(tmp_path / "k_201008260000.h5", np.zeros((8, 8), dtype=np.uint16))
    odim = _write_odim(tmp_path / "o_201806131200.h5", np.zeros((8, 8), dtype=np.uint16))
    pgm = tmp_path / "201609281445.pgm"
    pgm.write_bytes(b"P5\n# type stereographic\n4 4\n255\n" + bytes(16))
    assert guess_radar_source(knmi) == "knmi"
    assert guess_radar_source(odim) == "odim"
    assert guess_radar_source(pgm) == "fmi"
    rain, _ = read_radar_file(odim, source="auto")
    assert rain.shape == (8, 8)
    text = tmp_path / "notes.txt"
    text.write_text("not radar")
    with pytest.raises(DatasetError, match="source="):
        guess_radar_source(text)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [*sorted(RADAR_SOURCES), "auto"])
def test_random_bytes_raise_dataset_error(tmp_path, source):
    path = tmp_path / "AQC161932100V_201607112100_00005.801.bin"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(DatasetError, match=str(path.name)):
        read_radar_file(path, source=source)


@pytest.mark.parametrize("source", sorted(RADAR_SOURCES))
def test_empty_and_missing_files(tmp_path, source):
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty"):
        read_radar_file(empty, source=source)
    with pytest.raises(DatasetError, match="does not exist"):
        read_radar_file(tmp_path / "nope.dat", source=source)


def test_unknown_source(tmp_path):
    with pytest.raises(DatasetError, match="unknown radar source"):
        read_radar_file(tmp_path / "x", source="nexrad")


def test_too_big_file(tmp_path):
    path = _write_knmi(tmp_path / "big_201008260000.h5", np.zeros((40, 30), dtype=np.uint16))
    with pytest.raises(DatasetError, match="larger than the limit"):
        read_radar_file(path, source="knmi", max_bytes=100)
    with pytest.raises(DatasetError, match="larger than the limit"):
        read_radar_file(path, source="knmi", max_pixels=100)


def test_all_nan_and_wrong_dims(tmp_path):
    nodata = np.full((20, 20), 65535, dtype=np.uint16)
    with pytest.raises(DatasetError, match="NaN"):
        read_radar_file(_write_knmi(tmp_path / "a_201008260000.h5", nodata), source="knmi")
    cube = np.zeros((2, 20, 20), dtype=np.uint16)
    with pytest.raises(DatasetError, match="2 dims"):
        read_radar_file(_write_knmi(tmp_path / "b_201008260000.h5", cube), source="knmi")


def test_pgm_without_metadata_does_not_hang(tmp_path):
    # pysteps' FMI metadata parser loops forever on a PGM without '#' lines: refused up front.
    path = tmp_path / "201609281445_fmi.pgm.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"P5\n4 4\n255\n" + bytes(16))
    with pytest.raises(DatasetError, match="'#'"):
        read_radar_file(path, source="fmi")


def test_sequence_rejects_duplicates_and_bad_timestamps(tmp_path):
    path = _write_knmi(tmp_path / "k_201008260000.h5", np.zeros((20, 20), dtype=np.uint16))
    with pytest.raises(DatasetError, match="same time"):
        read_radar_sequence([path, path], source="knmi", grid=None)
    with pytest.raises(DatasetError, match="one per file"):
        read_radar_sequence([path], source="knmi", timestamps=[], grid=None)
    with pytest.raises(DatasetError, match="no knmi radar files"):
        read_radar_sequence([], source="knmi")


def test_sliding_windows_keep_timestamps(tmp_path):
    files = [
        _write_knmi(tmp_path / f"k_2010082600{m:02d}.h5", np.full((20, 20), m, dtype=np.uint16))
        for m in range(0, 30, 5)
    ]
    seq = read_radar_sequence(files, source="knmi", grid=None)
    windows = sliding_windows(seq, context=2, horizon=2, stride=2)
    assert windows.shape == (2, 4, 1, 20, 20)
    assert windows["timestamp"].values[1, 0] == np.datetime64("2010-08-26T00:10", "ns")
    np.testing.assert_allclose(windows.values[1, :, 0, 0, 0], [1.2, 1.8, 2.4, 3.0], rtol=1e-5)
    with pytest.raises(DatasetError, match="fewer than"):
        sliding_windows(seq, context=4, horizon=4)


# --- real data (../shared) ------------------------------------------------------------------------


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize(("folder", "source", "count", "step"), EVENT_FOLDERS)
def test_real_event_reads_through_pysteps(folder, source, count, step):
    files = find_radar_files(RADAR / folder, source=source)
    assert len(files) == count
    times = np.array([parse_timestamp(f, source=source) for f in files])
    assert (np.diff(times) == np.timedelta64(step, "m")).all()

    assert guess_radar_source(files[0]) == source
    seq = read_radar_sequence(files[:3], source=source, grid=128)
    assert seq.shape == (1, 3, 1, 128, 128) and seq.dtype == np.float32
    assert seq.attrs["units"] == "mm/h" and seq.attrs["time_step"] == f"PT{step}M"
    assert seq.attrs["synthetic"] == 0 and seq.attrs["domain"] == "radar"
    assert (seq["time"].values == times[:3]).all()
    values = seq.values[np.isfinite(seq.values)]
    assert values.size and values.min() >= 0.0 and values.max() <= 300.0

    rain, geo = read_radar_file(files[0], source=source)
    low, high = NAN_FRACTION[source]
    assert low <= np.isnan(rain).mean() <= high
    assert 0.0 <= np.nanmin(rain) and np.nanmax(rain) <= 300.0
    assert geo["pixel_km"] == pytest.approx({"bom": 0.5}.get(source, 1.0), rel=1e-3)


@needs_shared
@pytest.mark.shared
def test_real_crop_is_where_it_rains_most():
    files = find_radar_files(RADAR / "mch/20160711", source="mch")[:3]
    full = read_radar_sequence(files, source="mch", grid=None)
    cropped = read_radar_sequence(files, source="mch", grid=128, crop_threshold=1.0)
    row, col = cropped.attrs["crop_row"], cropped.attrs["crop_col"]
    rainy = (np.nan_to_num(full.values[0, :, 0], nan=0.0) >= 1.0).sum(axis=0)  # (H, W)
    # brute force over a coarse lattice of windows: none beats the chosen one
    chosen = rainy[row : row + 128, col : col + 128].sum()
    lattice = [
        rainy[r : r + 128, c : c + 128].sum()
        for r in range(0, rainy.shape[0] - 127, 16)
        for c in range(0, rainy.shape[1] - 127, 16)
    ]
    assert chosen >= max(lattice) > 0
    h, w = rainy.shape
    centre = rainy[(h - 128) // 2 : (h + 128) // 2, (w - 128) // 2 : (w + 128) // 2].sum()
    assert chosen > centre
    np.testing.assert_array_equal(
        cropped.values[0], full.values[0, :, :, row : row + 128, col : col + 128]
    )


@needs_shared
@pytest.mark.shared
def test_real_mixed_time_steps_are_refused():
    files = find_radar_files(RADAR / "mch/20150515", source="mch")
    with pytest.raises(DatasetError, match="time steps differ"):
        read_radar_sequence([files[0], files[1], files[3]], source="mch")


@needs_shared
@pytest.mark.shared
def test_registered_mch_test_split():
    array = get_dataset("radar_mch", split="test", root=SHARED / "data")
    assert array.shape == (2, 24, 1, 128, 128)
    assert array.attrs["units"] == "mm/h" and array.attrs["time_step"] == "PT5M"
    assert set(array["event"].values) == {"mch/20160711"}
    stamps = array["timestamp"].values
    assert (np.diff(stamps, axis=1) == np.timedelta64(5, "m")).all()
    assert stamps[0, 0] == np.datetime64("2016-07-11T20:45", "ns")
    assert "pysteps-data" in array.attrs["licence"]


@needs_shared
@pytest.mark.shared
def test_registered_bom_splits_do_not_overlap():
    root = SHARED / "data" / "radar"
    train = get_dataset("radar_bom_cscn", split="train", root=root, grid=64)
    test = get_dataset("radar_bom_cscn", split="test", root=root, grid=64)
    assert train.attrs["time_step"] == test.attrs["time_step"] == "PT6M"
    assert train["timestamp"].values.max() < test["timestamp"].values.min()
    few = get_dataset("radar_bom_cscn", split="train", root=root, grid=64, n_samples=3)
    assert few.sizes["sample"] == 3  # evenly spaced: first, middle and last window
    np.testing.assert_array_equal(
        few["timestamp"].values[[0, -1]], train["timestamp"].values[[0, -1]]
    )
    with pytest.raises(DatasetError, match=r"context \+ horizon <= 20"):
        get_dataset("radar_bom_cscn", split="val", root=root, grid=64)


@needs_shared
@pytest.mark.shared
def test_registered_fmi_val_needs_a_short_window():
    root = SHARED / "data"
    with pytest.raises(DatasetError, match="val"):
        get_dataset("radar_fmi", split="val", root=root)
    val = get_dataset("radar_fmi", split="val", root=root, context=10, horizon=10, grid=64)
    test = get_dataset("radar_fmi", split="test", root=root, context=10, horizon=10, grid=64)
    assert val.shape[1:] == (20, 1, 64, 64)
    assert val["timestamp"].values.max() < test["timestamp"].values.min()


@needs_shared
@pytest.mark.shared
def test_whole_domain_holds_each_window_at_its_crop_corner():
    from datasets.radar import whole_domain

    root = SHARED / "data"
    windows = get_dataset("radar_mch", split="test", root=root, context=6, horizon=6, grid=96)
    frames = windows.isel(time=slice(3, 6))  # the last context frames
    whole = whole_domain(frames, root=root)
    assert whole.sizes["y"] == 640 and whole.sizes["x"] == 710  # the MeteoSwiss composite at 1 km
    assert whole.sizes["sample"] == frames.sizes["sample"] and whole.sizes["time"] == 3
    np.testing.assert_array_equal(whole["timestamp"].values, frames["timestamp"].values)
    for k in range(whole.sizes["sample"]):
        r, c = int(whole["crop_row"][k]), int(whole["crop_col"][k])
        cut = whole.values[k, :, :, r : r + 96, c : c + 96]
        np.testing.assert_array_equal(cut, frames.values[k])
        assert whole["y"].values[r] == pytest.approx(float(windows["y0_km"][k]))
    outside = np.ones(whole.shape[-2:], bool)
    outside[r : r + 96, c : c + 96] = False
    assert np.nansum(whole.values[-1, -1, 0][outside]) > 0  # rain outside the crop is there too
    # another resolution gives another grid, still holding the crop
    coarse = get_dataset("radar_mch", split="test", root=root, context=6, horizon=6, grid=64,
                         resolution_km=2.0, n_samples=1)  # fmt: skip
    whole2 = whole_domain(coarse.isel(time=[5]), root=root)
    assert whole2.sizes["y"] == 320
    r, c = int(whole2["crop_row"][0]), int(whole2["crop_col"][0])
    np.testing.assert_array_equal(
        whole2.values[0, 0, 0, r : r + 64, c : c + 64], coarse.values[0, 5, 0]
    )


def test_whole_domain_is_none_for_data_that_is_its_own_domain(synthetic):
    from datasets.radar import whole_domain

    assert whole_domain(synthetic) is None  # synthetic: no larger observed domain
    assert whole_domain(synthetic.assign_attrs(dataset="radar_mch")) is None  # no crop coords


def test_real_datasets_say_how_to_get_the_data(tmp_path):
    for name in EVENTS:
        with pytest.raises(DatasetError, match="download=True"):
            get_dataset(name, split="test", cache_dir=tmp_path / "empty-cache")
        with pytest.raises(DatasetError, match="download=True"):
            get_dataset(name, split="test", root=tmp_path)


@needs_shared
@pytest.mark.shared
def test_fast_bom_path_matches_plain_pysteps():
    from pysteps.io import importers

    path = next((RADAR / "bom/prcp-c10/66/2020/10/31").glob("*.nc"))
    plain, _, plain_meta = importers.import_bom_rf3(str(path))
    rain, geo = read_radar_file(path, source="bom")
    expected = plain * 60.0 / plain_meta["accutime"]  # mm per 10 min -> mm/h
    np.testing.assert_allclose(rain, expected.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert geo["x"][0] == pytest.approx(plain_meta["x1"] / 1000 + 0.25)


@needs_shared
@pytest.mark.shared
def test_download_path_through_local_server(shared_http_server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="download=True"):
        get_dataset("radar_fmi", split="test", cache_dir=cache)
    array = get_dataset(
        "radar_fmi", split="test", download=True, base_url=shared_http_server, cache_dir=cache
    )
    assert array.shape == (1, 24, 1, 128, 128)
    assert (cache / "pysteps-data" / "radar" / "fmi" / "pgm" / "20170509").is_dir()
    again = get_dataset("radar_fmi", split="test", cache_dir=cache)  # from the cache, offline
    np.testing.assert_array_equal(again.values, array.values)


def _write_saf_crr(path: Path, rain: np.ndarray, *, time="2018-06-01T07:00:00Z") -> Path:
    """An NWC SAF CRR netCDF-4 file (uint16 x 0.1 mm/h, fill 65535, GDAL geo attributes)."""
    import netCDF4

    rows, cols = rain.shape
    x0, y0, step = -1_500_000.0, 5_000_000.0, 3000.0  # geostationary metres, 3 km pixels
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("ny", rows)
        ds.createDimension("nx", cols)
        ds.institution = "EUMETSAT Nowcasting SAF"
        ds.nominal_product_time = time
        ds.gdal_projection = "+proj=geos +a=6378137.0 +b=6356752.3 +lon_0=0.0 +h=35785863.0"
        ds.gdal_geotransform_table = np.array([x0, step, 0.0, y0, 0.0, -step])
        ds.gdal_xgeo_up_left, ds.gdal_ygeo_up_left = x0, y0
        ds.gdal_xgeo_low_right, ds.gdal_ygeo_low_right = x0 + cols * step, y0 - rows * step
        var = ds.createVariable("crr_intensity", "u2", ("ny", "nx"), fill_value=65535)
        var.scale_factor, var.add_offset, var.units = 0.1, 0.0, "mm/h"
        var[:] = np.ma.masked_array(np.nan_to_num(rain), mask=np.isnan(rain))
        quality = ds.createVariable("crr_quality", "u2", ("ny", "nx"))
        quality[:] = np.ones(rain.shape, dtype=np.uint16)
    return path


def test_nwc_saf_crr_reads_as_mm_per_hour_in_km(tmp_path):
    rain = np.zeros((12, 15))
    rain[3:6, 4:9] = 7.5
    rain[0, :] = np.nan  # outside the satellite's coverage
    path = _write_saf_crr(tmp_path / "S_NWC_CRR_MSG4_Europe-VISIR_20180601T070000Z.nc", rain)
    assert guess_radar_source(path) == "saf"
    got, geo = read_radar_file(path, source="auto")
    np.testing.assert_allclose(got[1:], rain[1:], atol=1e-6)
    assert np.isnan(got[0]).all()
    assert geo["pixel_km"] == pytest.approx(3.0) and not geo["latlon"]
    assert geo["x"][0] == pytest.approx(-1500.0 + 1.5) and geo["y"][0] == pytest.approx(
        5000.0 - 1.5
    )
    assert "import_saf_crri" in geo["importer"]


def test_nwc_saf_crr_upload_takes_its_time_from_the_file(tmp_path):
    from datasets.files import read_any

    rain = np.zeros((6, 7))
    rain[2:4, 1:5] = 2.0
    path = _write_saf_crr(tmp_path / "upload.nc", rain)
    data = read_any(path)
    assert data.attrs["domain"] == "radar" and data.attrs["units"] == "mm/h"
    assert data["time"].values[0] == np.datetime64("2018-06-01T07:00", "ns")
    np.testing.assert_allclose(data.values[0, 0, 0], rain, atol=1e-6)


def _write_mch_hdf5(path: Path, raw: np.ndarray, *, gain=0.05) -> Path:
    """A MeteoSwiss HDF5 composite as pysteps' importer reads it (no where/projdef: CCS4 grid)."""
    with h5py.File(path, "w") as f:
        where = f.create_group("where")
        where.attrs["xscale"], where.attrs["yscale"] = 1.0, 1.0
        where.attrs["xsize"], where.attrs["ysize"] = raw.shape[1], raw.shape[0]
        data = f.create_group("dataset1").create_group("data1")
        data.create_dataset("data", data=raw)
        what = data.create_group("what")
        what.attrs["quantity"] = np.bytes_(b"RATE")
        what.attrs["gain"], what.attrs["offset"] = gain, 0.0
        what.attrs["nodata"], what.attrs["undetect"] = 255.0, -1.0
    return path


def test_meteoswiss_hdf5_reads_on_the_ccs4_grid(tmp_path):
    raw = np.zeros((640, 710), dtype=np.uint8)
    raw[100:120, 200:260] = 100  # 100 * 0.05 = 5 mm/h
    raw[:, :20] = 255  # outside the domain
    path = _write_mch_hdf5(tmp_path / "RZC161932100VL.801.h5", raw)
    assert guess_radar_source(path) == "mch_hdf5"
    seq = read_radar_sequence([path], source="auto", grid=None, crop=None, resolution_km=None)
    assert seq["time"].values[0] == np.datetime64("2016-07-11T21:00", "ns")
    frame = seq.values[0, 0, 0]
    np.testing.assert_allclose(frame[100:120, 200:260], 5.0, rtol=1e-6)
    assert np.isnan(frame[:, :20]).all() and (frame[:100, 20:] == 0).all()
    assert seq["x"].values[0] == pytest.approx(255.5) and seq["y"].values[0] == pytest.approx(479.5)


def test_meteoswiss_hdf5_off_the_ccs4_grid_is_refused(tmp_path):
    path = _write_mch_hdf5(tmp_path / "RZC161932100VL.801.h5", np.zeros((64, 71), np.uint8))
    with pytest.raises(DatasetError, match=r"read on the CCS4 grid \(640, 710\) only"):
        read_radar_file(path, source="auto")

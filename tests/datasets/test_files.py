"""Generic readers (datasets.files): .npy, NetCDF 3/4, Zarr folder and zip, mp4/avi/gif video."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from datasets import DatasetError
from datasets import files as F
from datasets.files import iso_duration, open_netcdf_or_zarr, open_npy, open_video, read_any

DIMS = ("sample", "time", "channel", "y", "x")


def _rain(n_time=6, ny=10, nx=12, seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=n_time, freq="5min")
    rain = xr.DataArray(
        rng.gamma(0.5, 2.0, size=(n_time, ny, nx)).astype(np.float32),
        dims=("time", "lat", "lon"),
        coords={"time": times, "lat": np.linspace(46, 47, ny), "lon": np.linspace(7, 8, nx)},
        attrs={"units": "mm/h", "long_name": "rain rate"},
        name="precip",
    )
    rain[0, 0, 0] = np.nan  # a masked pixel
    return rain.to_dataset()


def _zip_folder(folder, target):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())


@pytest.mark.parametrize("kind", ["netcdf4", "netcdf3", "zarr", "zarr-zip"])
def test_netcdf_and_zarr_round_trip(tmp_path, kind):
    ds = _rain()
    if kind == "netcdf4":
        path = tmp_path / "rain.nc"
        ds.to_netcdf(path, engine="h5netcdf")
    elif kind == "netcdf3":
        path = tmp_path / "rain3.nc"
        ds.to_netcdf(path, engine="scipy")
    else:
        folder = tmp_path / "rain.zarr"
        ds.to_zarr(folder, mode="w", consolidated=False)
        path = folder
        if kind == "zarr-zip":
            path = tmp_path / "rain.zarr.zip"
            _zip_folder(folder, path)
    for arr in (open_netcdf_or_zarr(path), read_any(path)):
        assert arr.dims == DIMS and arr.shape == (1, 6, 1, 10, 12)
        assert arr.dtype == np.float32
        np.testing.assert_allclose(arr.values[0, :, 0], ds["precip"].values, equal_nan=True)
        assert arr.attrs["units"] == "mm/h"
        assert arr.attrs["time_step"] == "PT5M"
        assert arr.attrs["domain"] == "radar"  # guessed from rain units
        np.testing.assert_array_equal(arr["time"].values, ds["time"].values)
        np.testing.assert_allclose(arr["y"].values, ds["lat"].values)
        assert int(arr.isnull().sum()) == 1  # the mask survives as NaN


def test_netcdf_dims_are_reordered_and_extra_dim_is_channel(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.random((3, 4, 5, 2)).astype(np.float32)  # (x, time, y, band)
    da = xr.DataArray(data, dims=("x", "time", "y", "band"), name="flow")
    da = da.assign_coords(band=["in", "out"])
    path = tmp_path / "flow.nc"
    da.to_dataset().to_netcdf(path)
    arr = open_netcdf_or_zarr(path, domain="traffic")
    assert arr.shape == (1, 4, 2, 5, 3)
    np.testing.assert_allclose(arr.values[0], data.transpose(1, 3, 2, 0))
    assert list(arr["channel"].values) == ["in", "out"]
    assert arr.attrs["time_step"] == "1 frame"  # no timestamps: a step count
    assert arr.attrs["domain"] == "traffic"


def test_netcdf_variable_choice(tmp_path):
    ds = _rain()
    ds["other"] = ds["precip"] * 2
    path = tmp_path / "two.nc"
    ds.to_netcdf(path)
    with pytest.raises(DatasetError, match="variable="):
        open_netcdf_or_zarr(path)
    arr = open_netcdf_or_zarr(path, variable="other")
    np.testing.assert_allclose(arr.values[0, :, 0], ds["other"].values, equal_nan=True)
    with pytest.raises(DatasetError, match="no variable 'nope'"):
        open_netcdf_or_zarr(path, variable="nope")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: xr.Dataset({"v": (("y", "x"), np.ones((3, 3)))}), "no numeric variable"),
        (lambda: xr.Dataset({"v": (("time", "y", "x"), np.full((2, 3, 3), np.nan))}), "NaN"),
        (lambda: xr.Dataset({"v": (("time", "y", "x"), np.full((2, 3, 3), np.inf))}), "infinite"),
    ],
    ids=["no-time", "all-nan", "inf"],
)
def test_netcdf_bad_content(tmp_path, make, message):
    path = tmp_path / "bad.nc"
    make().to_netcdf(path)
    with pytest.raises(DatasetError, match=message):
        read_any(path)


@pytest.mark.parametrize(
    ("shape", "layout", "expected"),
    [
        ((7, 9, 11), None, (1, 7, 1, 9, 11)),
        ((7, 2, 9, 11), None, (1, 7, 2, 9, 11)),
        ((3, 7, 2, 9, 11), None, (3, 7, 2, 9, 11)),
        ((20, 6, 16, 16), None, (6, 20, 1, 16, 16)),  # mnist_test_seq (T, N, H, W)
        ((20, 3, 16, 16), "mnist_test_seq", (3, 20, 1, 16, 16)),
    ],
)
def test_npy_layouts(tmp_path, shape, layout, expected):
    raw = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    np.save(tmp_path / "a.npy", raw)
    arr = open_npy(tmp_path / "a.npy", layout=layout)
    assert arr.dims == DIMS and arr.shape == expected and arr.dtype == np.float32
    assert arr.attrs["units"] == "pixel intensity [0, 1]"
    assert float(arr.max()) <= 1.0
    if len(shape) == 4 and expected[0] != 1:  # (T, N, H, W): sequence 1 is the file's column 1
        np.testing.assert_allclose(arr.values[1, :, 0], raw[:, 1] / 255.0, atol=1e-7)


def test_npy_float_keeps_values_and_units(tmp_path):
    raw = np.random.default_rng(0).random((4, 5, 6)).astype(np.float64) * 30
    np.save(tmp_path / "rain.npy", raw)
    arr = read_any(tmp_path / "rain.npy", units="mm/h", domain="radar")
    np.testing.assert_allclose(arr.values[0, :, 0], raw, rtol=1e-6)
    assert arr.attrs["units"] == "mm/h" and arr.attrs["domain"] == "radar"


@pytest.mark.parametrize(
    "raw",
    [np.zeros((4, 4)), np.zeros((2, 2, 2, 2, 2, 2)), np.array(["a", "b"]), np.zeros((3, 0, 4))],
    ids=["2d", "6d", "strings", "empty"],
)
def test_npy_wrong_shapes(tmp_path, raw):
    np.save(tmp_path / "bad.npy", raw)
    with pytest.raises(DatasetError, match="bad.npy"):
        open_npy(tmp_path / "bad.npy")


def test_npy_pickles_are_never_loaded(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="obj.npy"):
        read_any(tmp_path / "obj.npy")


def _frames(n=12, h=48, w=80, seed=0):
    """RGB frames: a bright square moving right on a dark background."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        frames[t, 16:32, 16 + 2 * t : 32 + 2 * t] = (255, 255, 255)
    return frames


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ".avi"])
def test_video_files(tmp_path, suffix):
    import imageio.v2 as iio2
    import imageio.v3 as iio

    frames = _frames()
    path = tmp_path / f"clip{suffix}"
    if suffix == ".gif":
        iio.imwrite(path, frames, duration=100, loop=0)
    else:
        codec = {".mp4": "libx264", ".avi": "mjpeg"}[suffix]
        iio2.mimwrite(path, list(frames), fps=10, format="FFMPEG", codec=codec, macro_block_size=16)
    arr = read_any(path, size=24)
    assert arr.dims == DIMS and arr.shape == (1, 12, 1, 24, 24) and arr.dtype == np.float32
    assert arr.attrs["units"] == "pixel intensity [0, 1]" and arr.attrs["domain"] == "video"
    assert arr.attrs["frame_rate_hz"] == pytest.approx(10.0)
    values = arr.values[0, :, 0]
    assert values.min() >= 0.0 and values.max() <= 1.0 and values.max() > 0.8
    # The square moves right: its centre of brightness in x increases.
    xs = (values.sum(axis=1) * np.arange(24)).sum(axis=1) / values.sum(axis=(1, 2))
    assert xs[-1] - xs[0] > 3
    # max_frames stops early; a misnamed file is still found by its content.
    assert open_video(path, size=16, max_frames=5).shape == (1, 5, 1, 16, 16)
    renamed = tmp_path / "upload.bin"
    renamed.write_bytes(path.read_bytes())
    assert read_any(renamed, size=16).shape == (1, 12, 1, 16, 16)


def test_size_limit_and_missing_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 32, 32), dtype=np.uint8))
    with pytest.raises(DatasetError, match="larger than the limit"):
        read_any(tmp_path / "a.npy", max_bytes=1000)
    with pytest.raises(DatasetError, match="no such file"):
        read_any(tmp_path / "missing.nc")
    (tmp_path / "empty.nc").write_bytes(b"")
    with pytest.raises(DatasetError, match="empty"):
        read_any(tmp_path / "empty.nc")


def test_unknown_format_lists_known_ones(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, these are not frames")
    with pytest.raises(DatasetError, match=r"unknown format.*\.npy"):
        read_any(tmp_path / "notes.txt")


def test_register_reader_hook_takes_precedence(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "READERS", list(F.READERS))
    calls = []

    def fake_reader(path, *, max_bytes, **options):
        calls.append(path.name)
        return F.as_dataset_array(
            np.zeros((1, 2, 1, 3, 3)),
            units="vehicles",
            time_step="PT1H",
            domain="traffic",
            source=path.name,
            description="fake",
        )

    F.register_reader("fake-h5", fake_reader, suffixes=(".h5",), magic=(F.HDF5_MAGIC,))
    xr.Dataset({"v": (("time", "y", "x"), np.ones((2, 3, 3)))}).to_netcdf(tmp_path / "a.h5")
    xr.Dataset({"v": (("time", "y", "x"), np.ones((2, 3, 3)))}).to_netcdf(tmp_path / "a.nc")
    assert read_any(tmp_path / "a.h5").attrs["domain"] == "traffic"
    assert read_any(tmp_path / "a.nc").attrs["units"] == "unknown"  # NetCDF-4 is not caught
    assert calls == ["a.h5"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "PT5M"),
        (3600, "PT1H"),
        (360, "PT6M"),
        (86400, "P1D"),
        (90, "PT1M30S"),
        (0.5, "PT0.5S"),
    ],
)
def test_iso_duration(seconds, text):
    assert iso_duration(seconds) == text
    assert pd.Timedelta(text).total_seconds() == seconds


def test_read_bytes_for_uploads(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", raw)
    data = (tmp_path / "clip.npy").read_bytes()
    arr = F.read_bytes(data, filename="My Clip.npy")
    assert arr.shape == (1, 6, 1, 16, 16)
    assert arr.attrs["source"] == "My Clip.npy"
    np.testing.assert_allclose(arr.values[0, :, 0], raw / 255.0, atol=1e-7)
    with pytest.raises(DatasetError, match="larger than the limit"):
        F.read_bytes(data, filename="clip.npy", max_bytes=100)
    with pytest.raises(DatasetError):
        F.read_bytes(b"\x00" * 100, filename="../../etc/clip.npy")


BOM_DIR = "radar/bom/prcp-c10/66/2020/10/31"


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["netcdf", "zarr-zip"])
def test_real_bom_frames_stacked_to_a_time_series(shared_data, tmp_path, kind):
    """Real BoM Rainfields frames, stacked along time as a user would, read back by the reader."""
    paths = sorted((shared_data / BOM_DIR).glob("*.nc"))[:6]
    frames = []
    for path in paths:
        with xr.open_dataset(path) as ds:
            rain = ds["precipitation"].load()
            frames.append(rain.expand_dims(time=[ds["valid_time"].values]))
    stacked = xr.concat(frames, dim="time").to_dataset()
    if kind == "netcdf":
        target = tmp_path / "bom.nc"
        stacked.to_netcdf(target)
    else:
        stacked.to_zarr(tmp_path / "bom.zarr", consolidated=False)
        target = tmp_path / "bom.zarr.zip"
        _zip_folder(tmp_path / "bom.zarr", target)
    arr = read_any(target)
    assert arr.shape == (1, 6, 1, 512, 512) and arr.dtype == np.float32
    assert arr.attrs["time_step"] == "PT10M"  # prcp-c10: one frame every 10 minutes
    assert arr.attrs["units"] == stacked["precipitation"].attrs["units"]
    np.testing.assert_allclose(
        arr.values[0, :, 0], stacked["precipitation"].values, rtol=1e-6, equal_nan=True
    )
    assert np.nanmax(arr.values) > 0  # it rained on 31 Oct 2020 near Mt Stapylton
    np.testing.assert_allclose(arr["y"].values, stacked["y"].values)


@pytest.mark.shared
def test_single_bom_frame_reads_as_one_radar_frame(shared_data):
    """A BoM Rainfields3 frame (2-D precipitation, scalar valid_time) goes to the radar reader."""
    path = sorted((shared_data / BOM_DIR).glob("*.nc"))[0]
    data = read_any(path)
    assert data.shape[:3] == (1, 1, 1) and data.attrs["units"] == "mm/h"
    assert "One frame" in data.attrs["description"]


def test_single_frame_cf_netcdf_names_its_variables(tmp_path):
    netCDF4 = pytest.importorskip("netCDF4")
    path = tmp_path / "frame.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", 3)
        ds.createDimension("x", 4)
        ds.createVariable("precipitation", "f4", ("y", "x"))[:] = np.ones((3, 4), "f4")
    with pytest.raises(
        DatasetError, match=r"no numeric variable with \(time, y, x\).*precipitation"
    ):
        read_any(path)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT", "NETCDF3_64BIT_DATA"])
def test_netcdf3_header_check_accepts_valid_files(tmp_path, fmt):
    netCDF4 = pytest.importorskip("netCDF4")
    path = tmp_path / "ok.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = "header walk"
        ds.createDimension("time", None)
        ds.createDimension("y", 3)
        ds.createDimension("x", 5)
        var = ds.createVariable("precipitation", "f4", ("time", "y", "x"))
        var.units = "mm/h"
        var.valid_range = np.array([0.0, 500.0], dtype="f4")
        var[0:2] = np.ones((2, 3, 5), dtype="f4")
        ds.createVariable("crs", "i4")
    F.check_netcdf3_header(path)  # no error
    assert path.read_bytes()[3] == {"NETCDF3_CLASSIC": 1, "NETCDF3_64BIT": 2}.get(fmt, 5)


def test_netcdf3_header_declaring_more_than_the_file_holds_is_refused(tmp_path):
    """A 100-byte corrupted header declared 570 million variables; netCDF-C took 4.5 GB to fail."""
    good = tmp_path / "good.nc"
    xr.Dataset({"p": (("time", "y", "x"), np.zeros((4, 6, 6), "f4"))}).to_netcdf(
        good, engine="scipy"
    )
    blob = bytearray(good.read_bytes())
    var_list = blob.index(b"\x00\x00\x00\x0b")  # NC_VARIABLE tag, then the variable count
    blob[var_list + 4 : var_list + 8] = (570_425_346).to_bytes(4, "big")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(bytes(blob[:100]))
    with pytest.raises(DatasetError, match="declares 570425346 variables"):
        F.check_netcdf3_header(bad)
    with pytest.raises(DatasetError, match="declares 570425346 variables"):
        F.open_netcdf_or_zarr(bad)
    from datasets.radar_io import read_radar_file

    with pytest.raises(DatasetError, match="declares 570425346 variables"):
        read_radar_file(bad, source="bom")  # checked before the netCDF library opens it


def test_npz_with_channels_last_flows_is_read_and_says_which_array(tmp_path):
    from datasets.files import read_any

    rng = np.random.default_rng(0)
    flows = rng.poisson(5.0, size=(30, 14, 8, 2)).astype(np.float32)  # (T, H, W, in/out)
    path = tmp_path / "bike.npz"
    np.savez_compressed(path, data=flows, timestamps=np.arange(30))
    arr = read_any(path)
    assert arr.dims == ("sample", "time", "channel", "y", "x")
    assert arr.shape == (1, 30, 2, 14, 8)
    np.testing.assert_array_equal(arr.values[0, :, 1], flows[..., 1])
    assert arr.attrs["npz_key"] == "data" and "as thwc" in arr.attrs["description"]


def test_npz_with_several_frame_arrays_asks_for_a_key(tmp_path):
    from datasets.files import open_npz

    path = tmp_path / "two.npz"
    np.savez(path, a=np.zeros((4, 8, 8)), b=np.ones((4, 8, 8)))
    with pytest.raises(DatasetError, match=r"cannot tell which array.*a \(4, 8, 8\).*name it"):
        open_npz(path)
    assert float(open_npz(path, key="b").values.max()) == 1.0
    with pytest.raises(DatasetError, match="no array 'c'"):
        open_npz(path, key="c")


def test_npz_declaring_a_huge_array_is_refused_before_inflating(tmp_path):
    import zipfile

    from datasets.files import open_npz

    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float32))
    header["shape"] = (100000, 4096, 4096)
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.npy", member.getvalue())
    with pytest.raises(DatasetError, match="huge.npz"):
        open_npz(path)

"""Property tests: random bytes, truncated or corrupted real-ish files and wrong shapes fed to every
reader. A reader may return a valid dataset array or raise ``DatasetError``; nothing else may
escape, and nothing may hang (per-test timeouts; hypothesis ``deadline`` per example).

The readers under test are :data:`datasets.files.READERS` (so every format listed there, and any
added with ``register_reader``, is fuzzed too), the named readers below, and the readers of other modules
listed in ``MODULE_READERS`` (extend the list). Every listed reader must import: an ImportError or
a missing function fails the run instead of dropping the reader silently.
"""

from __future__ import annotations

import functools
import importlib
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets import DatasetError
from datasets import files as F
from datasets.radar_io import RADAR_SOURCES
from datasets.video import mnist_test_seq

FUZZ = settings(
    max_examples=25,
    deadline=timedelta(seconds=10),  # one example; ffmpeg start-up on a busy machine included
    suppress_health_check=[HealthCheck.too_slow],
)
SUFFIXES = [
    ".npy",
    ".nc",
    ".zip",
    ".zarr.zip",
    ".mp4",
    ".avi",
    ".gif",
    ".h5",
    ".grib2",
    ".tif",
    ".gz",
    ".bin",
    "",
]
MAGICS = [
    F.NPY_MAGIC,
    F.HDF5_MAGIC,
    b"CDF\x01",
    b"CDF\x02",
    F.ZIP_MAGIC,
    b"GIF89a",
    b"\x00\x00\x00\x18ftypmp42",
    b"RIFF\x00\x00\x00\x00AVI ",
    b"GRIB\xff\xff\x00\x02",  # GRIB2 indicator section up to the edition
    b"II*\x00",  # TIFF
    b"P5\n",  # PGM
    b"\x1f\x8b",  # gzip
    b"",
]

# (module, function, keyword arguments) of readers written in other modules. Each is called as
# reader(path, **kwargs) and must raise only DatasetError on bad files (what it returns on success
# is checked only when it is a DataArray).
MODULE_READERS = [
    ("datasets.traffic", "read_taxibj", {}),
    *[("datasets.radar_io", "read_radar_file", {"source": source}) for source in RADAR_SOURCES],
]


def _module_readers():
    """The readers of :data:`MODULE_READERS`; an ImportError or AttributeError propagates."""
    found = []
    for module_name, attr, kwargs in MODULE_READERS:
        func = getattr(importlib.import_module(module_name), attr)
        assert callable(func), f"{module_name}.{attr} is not callable"
        label = ",".join(f"{k}={v}" for k, v in kwargs.items())
        found.append(
            pytest.param(functools.partial(func, **kwargs), id=f"{module_name}.{attr}({label})")
        )
    return found


def _mnist_seq_reader(path, **_):
    return mnist_test_seq(split="test", path=path)


def _all_readers():
    named = [
        pytest.param(F.read_any, id="read_any"),
        pytest.param(F.open_npy, id="open_npy"),
        pytest.param(F.open_netcdf_or_zarr, id="open_netcdf_or_zarr"),
        pytest.param(functools.partial(F.open_video, size=16, max_frames=8), id="open_video"),
        pytest.param(_mnist_seq_reader, id="mnist_test_seq"),
        pytest.param(lambda p: F.read_bytes(p.read_bytes(), filename=p.name), id="read_bytes"),
    ]
    generic = {F.read_any, F.open_npy, F.open_netcdf_or_zarr, F.open_video}
    registered = [
        pytest.param(e.reader, id=f"READERS:{e.name}") for e in F.READERS if e.reader not in generic
    ]
    return named + registered + _module_readers()


READERS_UNDER_TEST = _all_readers()


def test_every_listed_reader_is_under_test():
    ids = {param.id for param in READERS_UNDER_TEST}
    listed = {
        f"{m}.{a}({','.join(f'{k}={v}' for k, v in kw.items())})" for m, a, kw in MODULE_READERS
    }
    assert listed <= ids, sorted(listed - ids)
    assert {"read_any", "open_npy", "open_netcdf_or_zarr", "open_video", "read_bytes"} <= ids
    assert len(MODULE_READERS) == 1 + len(RADAR_SOURCES)  # read_taxibj and every radar source


def _check_outcome(reader, path: Path) -> None:
    """Call the reader: a valid array or DatasetError; anything else fails the test."""
    try:
        arr = reader(path)
    except DatasetError as exc:
        assert str(exc), "empty DatasetError message"
        return
    if isinstance(arr, xr.DataArray):
        assert arr.dims == F.DIMS
        assert arr.dtype == np.float32


def _seed_files(folder: Path) -> dict[str, bytes]:
    """Small valid files of every generic format and GRIB2/GeoTIFF radar (to be corrupted)."""
    import imageio.v2 as iio2
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    np.save(folder / "s.npy", rng.integers(0, 255, (5, 8, 8), dtype=np.uint8))
    ds = xr.Dataset(
        {"p": (("time", "y", "x"), rng.random((4, 6, 6)).astype("f4"))},
        coords={"time": pd.date_range("2020-01-01", periods=4, freq="h")},
    )
    ds.to_netcdf(folder / "s.nc", engine="h5netcdf")
    ds.to_netcdf(folder / "s3.nc", engine="scipy")
    ds.to_zarr(folder / "z.zarr", consolidated=False)
    with zipfile.ZipFile(folder / "s.zarr.zip", "w") as archive:
        for p in sorted((folder / "z.zarr").rglob("*")):
            if p.is_file():
                archive.write(p, p.relative_to(folder / "z.zarr").as_posix())
    frames = rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    iio.imwrite(folder / "s.gif", frames, duration=100)
    iio2.mimwrite(folder / "s.mp4", list(frames), fps=5, format="FFMPEG", macro_block_size=16)
    from tests.datasets.test_geotiff import write_geotiff
    from tests.datasets.test_grib import write_grib2

    rain = np.round(rng.gamma(0.5, 4.0, (2, 6, 8)), 2)  # (T, H, W) mm/h
    write_grib2(folder / "s.grib2", list(rain), ["202001010000", "202001010005"])
    write_geotiff(folder / "s.tif", rng.integers(0, 200, (6, 8), dtype=np.uint8))
    names = ["s.npy", "s.nc", "s3.nc", "s.zarr.zip", "s.gif", "s.mp4", "s.grib2", "s.tif"]
    return {name: (folder / name).read_bytes() for name in names}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return _seed_files(tmp_path_factory.mktemp("seeds"))


def _write(data: bytes, suffix: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    folder = tempfile.TemporaryDirectory(prefix="fuzz-")
    path = Path(folder.name) / f"input{suffix}"
    path.write_bytes(data)
    return folder, path


@pytest.mark.timeout(300)
@pytest.mark.parametrize("reader", READERS_UNDER_TEST)
@FUZZ
@given(
    magic=st.sampled_from(MAGICS),
    body=st.binary(min_size=0, max_size=2048),
    suffix=st.sampled_from(SUFFIXES),
)
def test_random_bytes_raise_only_dataset_error(reader, magic, body, suffix):
    folder, path = _write(magic + body, suffix)
    with folder:
        _check_outcome(reader, path)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("reader", READERS_UNDER_TEST)
@FUZZ
@given(data=st.data())
def test_truncated_and_corrupted_files_raise_only_dataset_error(reader, seeds, data):
    name = data.draw(st.sampled_from(sorted(seeds)), label="seed file")
    blob = bytearray(seeds[name])
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8),
        label="flips",
    )
    for index, value in flips:
        blob[index] = value
    suffix = "".join(Path(name).suffixes)
    folder, path = _write(bytes(blob[:cut]), suffix)
    with folder:
        _check_outcome(reader, path)


ARRAY_DTYPES = st.sampled_from(
    [np.uint8, np.float32, np.float64, np.int16, np.bool_, np.complex64, np.float16]
)


@pytest.mark.timeout(300)
@FUZZ
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=6),
    dtype=ARRAY_DTYPES,
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, 255.0]),
)
def test_npy_of_any_shape_reads_or_raises_dataset_error(shape, dtype, fill):
    values = np.full(shape, fill if np.dtype(dtype).kind in "fc" else 1, dtype=dtype)
    folder = tempfile.TemporaryDirectory(prefix="fuzz-")
    with folder:
        path = Path(folder.name) / "a.npy"
        np.save(path, values)
        for reader in (F.read_any, F.open_npy, _mnist_seq_reader):
            _check_outcome(reader, path)
        try:
            arr = F.open_npy(path)
        except DatasetError:
            return
        assert arr.sizes["time"] >= 1 and np.isfinite(arr.values).any()


@pytest.mark.timeout(300)
@FUZZ
@given(
    dims=st.lists(
        st.sampled_from(["time", "t", "lat", "lon", "y", "x", "band", "member", "level"]),
        min_size=0,
        max_size=5,
        unique=True,
    ),
    size=st.integers(0, 4),
    timestamps=st.booleans(),
    fill=st.sampled_from([0.5, np.nan]),
)
def test_netcdf_of_any_dims_reads_or_raises_dataset_error(dims, size, timestamps, fill):
    values = np.full([size] * len(dims), fill, dtype=np.float32)
    ds = xr.Dataset({"v": (dims, values)})
    if timestamps and "time" in dims:
        ds = ds.assign_coords(time=pd.date_range("2021-01-01", periods=size, freq="10min"))
    folder = tempfile.TemporaryDirectory(prefix="fuzz-")
    with folder:
        path = Path(folder.name) / "a.nc"
        ds.to_netcdf(path)
        for reader in (F.read_any, F.open_netcdf_or_zarr):
            _check_outcome(reader, path)

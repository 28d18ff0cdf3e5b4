"""Hostile uploads: structured files that name other server files or declare huge data.

Every file here is built the way an attacker would build it (not random bytes): HDF5 / NetCDF-4
external links, external storage and virtual datasets over a planted secret; NetCDF-4, netCDF-3,
Zarr (v2 and v3), npy, GIF, mp4 and gzip files that are tiny but declare gigabytes. Each must be
refused with one plain-sentence :class:`DatasetError` that names the file by its base name only,
the planted secret must never come back, and the refusal must be fast and light: measured in a
fresh interpreter (:func:`measure`), under :data:`MAX_SECONDS` and :data:`MAX_RSS_GROWTH_MB`.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from datasets import DatasetError
from datasets import files as F
from datasets import radar_io as R
from datasets import untrusted as U

REPO = Path(__file__).resolve().parents[2]
SECRET = (b"TOP-SECRET-" + bytes(range(65, 91)) * 40)[:1024]  # 1 KiB of recognisable bytes
MAX_SECONDS = 2.0
MAX_RSS_GROWTH_MB = 200.0


# ----------------------------------------------------------------------------------------------
# Builders: each writes one hostile file into `folder` (server files planted in `server`)
# ----------------------------------------------------------------------------------------------
def _dates(n: int) -> np.ndarray:
    return np.array([f"201501{slot:04d}".encode() for slot in range(1, n + 1)])


def _taxibj_start(h5: h5py.File) -> None:
    h5["date"] = _dates(4)


def _plant(server: Path) -> tuple[Path, Path]:
    server.mkdir(exist_ok=True)
    text = server / "secret.txt"
    text.write_bytes(SECRET)
    secret_h5 = server / "secret.h5"
    with h5py.File(secret_h5, "w") as h5:
        h5["secret"] = np.frombuffer(SECRET, dtype=np.uint8).reshape(4, 1, 16, 16)
    return text, secret_h5


def _external_link(h5: h5py.File, server: Path, where: str = "data") -> None:
    h5[where] = h5py.ExternalLink(str(server / "secret.h5"), "/secret")


def _external_storage(h5: h5py.File, server: Path, where: str = "data") -> None:
    h5.create_dataset(
        where, shape=(4, 1, 16, 16), dtype="u1", external=[(str(server / "secret.txt"), 0, 1024)]
    )


def _virtual(h5: h5py.File, server: Path, where: str = "data") -> None:
    layout = h5py.VirtualLayout(shape=(4, 1, 16, 16), dtype="u1")
    layout[:] = h5py.VirtualSource(str(server / "secret.h5"), "secret", shape=(4, 1, 16, 16))
    h5.create_virtual_dataset(where, layout)


def _nested_external(h5: h5py.File, server: Path) -> None:
    h5["data"] = np.zeros((4, 1, 16, 16), dtype="u1")
    h5.create_group("a/b/c")["leak"] = h5py.ExternalLink(str(server / "secret.h5"), "/secret")


def _soft_to_external(h5: h5py.File, server: Path) -> None:
    _external_link(h5, server, where="hidden/ext")
    h5["data"] = h5py.SoftLink("/hidden/ext")


def _plugin_filter(h5: h5py.File, server: Path) -> None:
    h5.create_dataset(
        "data",
        shape=(4, 1, 16, 16),
        dtype="f4",
        chunks=(1, 1, 16, 16),
        compression=32015,  # zstd: a plugin, i.e. a shared library named by the file
        allow_unknown_filter=True,
    )


HDF5_ATTACKS: dict[str, Callable] = {
    "external_link": _external_link,
    "external_storage": _external_storage,
    "virtual": _virtual,
    "nested_external": _nested_external,
    "soft_to_external": _soft_to_external,
    "plugin_filter": _plugin_filter,
}


def _h5(folder: Path, server: Path, attack: str) -> Path:
    path = folder / f"{attack}.h5"
    with h5py.File(path, "w") as h5:
        _taxibj_start(h5)
        HDF5_ATTACKS[attack](h5, server)
    return path


def _nc4(folder: Path, server: Path, attack: str) -> Path:
    """A valid NetCDF-4 file with one hostile HDF5 object added next to its variable."""
    path = folder / f"{attack}.nc"
    ds = xr.Dataset(
        {"p": (("time", "y", "x"), np.ones((4, 16, 16), dtype="f4"))},
        coords={"time": pd.date_range("2020-01-01", periods=4, freq="5min")},
    )
    ds.to_netcdf(path, engine="netcdf4")
    with h5py.File(path, "a") as h5:
        HDF5_ATTACKS[attack](h5, server)
    return path


def _nc4_huge(folder: Path, server: Path) -> Path:
    import netCDF4

    path = folder / "huge_chunked.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", 100_000), ("y", 4096), ("x", 4096)):
            nc.createDimension(name, size)
        nc.createVariable(
            "p", "f4", ("time", "y", "x"), zlib=True, chunksizes=(1, 256, 256), fill_value=1.0
        )
    return path


def _nc3_records(folder: Path, server: Path) -> Path:
    """A classic netCDF file with 4 records whose header then claims 2**31 - 1 records."""
    path = folder / "huge_records.nc"
    ds = xr.Dataset({"p": (("time", "y", "x"), np.ones((4, 64, 64), dtype="f4"))})
    ds.to_netcdf(path, engine="scipy", unlimited_dims=["time"])
    blob = bytearray(path.read_bytes())
    blob[4:8] = struct.pack(">i", 2**31 - 1)  # numrecs
    path.write_bytes(bytes(blob))
    return path


def _zarr_zip(folder: Path, server: Path, zarr_format: int) -> Path:
    import zarr

    store = folder / f"huge_v{zarr_format}.zarr"
    group = zarr.open_group(store=str(store), mode="w", zarr_format=zarr_format)
    dims = {"attributes": {"_ARRAY_DIMENSIONS": ["time", "y", "x"]}}
    if zarr_format == 3:
        dims = {"dimension_names": ["time", "y", "x"]}
    group.create_array(
        "p", shape=(100_000, 4096, 4096), chunks=(1, 256, 256), dtype="f4", fill_value=1.0, **dims
    )
    path = folder / f"huge_v{zarr_format}.zarr.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for item in sorted(store.rglob("*")):
            if item.is_file():
                archive.write(item, item.relative_to(store).as_posix())
    return path


def _zip_bomb(folder: Path, server: Path) -> Path:
    path = folder / "bomb.zarr.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(".zgroup", json.dumps({"zarr_format": 2}))
        with archive.open("p/0.0.0", "w", force_zip64=True) as member:
            block = bytes(2**20)
            for _ in range(64):  # 64 MiB of zeros -> ~64 KiB
                member.write(block)
    return path


def _gif_screen(folder: Path, server: Path) -> Path:
    """~40 bytes: a 65535 x 65535 logical screen with one 65535 x 65535 frame of 1 code."""
    path = folder / "screen.gif"
    head = (
        b"GIF89a" + struct.pack("<HH", 65535, 65535) + bytes([0x80, 0, 0]) + b"\0\0\0\xff\xff\xff"
    )
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00" + b"\x02\x02\x44\x01\x00"
    path.write_bytes(head + frame + b"\x3b")
    return path


def _gif_frames(folder: Path, server: Path) -> Path:
    """300 frames of 1 x 1 pixels on a 2000 x 2000 canvas: ~6 KB, 1.2 billion pixels to compose."""
    path = folder / "frames.gif"
    head = b"GIF89a" + struct.pack("<HH", 2000, 2000) + bytes([0x80, 0, 0]) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    path.write_bytes(head + frame * 300 + b"\x3b")
    return path


def _mp4_wide(folder: Path, server: Path) -> Path:
    """One black 8192 x 64 frame: ffmpeg reports an 8192-pixel side before decoding."""
    import imageio_ffmpeg

    path = folder / "wide.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
         "color=black:s=8192x64:d=0.04:r=25", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def _npy_shape(folder: Path, server: Path) -> Path:
    path = folder / "huge.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 4096, 4096)}
        )
        fh.write(b"\0" * 64)
    return path


def _pgm_bomb(folder: Path, server: Path) -> Path:
    """FMI-style PGM header for 100 x 100 pixels, then 64 MiB of zeros (gzip: ~64 KiB)."""
    path = folder / "201609281600_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
    header = b"P5\n# projection_name polar_stereographic\n100 100\n255\n"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(header)
        block = bytes(2**20)
        for _ in range(64):
            fh.write(block)
    return path


def _mch_canvas(folder: Path, server: Path) -> Path:
    """A 710 x 640 screen whose first frame descriptor grows pillow's canvas to 60000 x 60000."""
    path = folder / "AQC161932100V_00005.801.gif"
    head = b"GIF89a" + struct.pack("<HH", 710, 640) + bytes([0x80, 0, 0]) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 60000, 60000) + b"\x00" + b"\x02\x02\x44\x01\x00"
    path.write_bytes(head + frame + b"\x3b")
    return path


def _bom_external(folder: Path, server: Path) -> Path:
    path = folder / "310_20180501_000000.prcp-c10.nc"
    xr.Dataset({"precipitation": (("y", "x"), np.zeros((16, 16), dtype="f4"))}).to_netcdf(
        path, engine="netcdf4"
    )
    with h5py.File(path, "a") as h5:
        _external_storage(h5, server, where="leak")
    return path


def _knmi_external(folder: Path, server: Path) -> Path:
    path = folder / "RAD_NL25_RAC_MFBS_EM_5min_201008260000.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("geographic")
        h5.create_group("image1")
        h5["image1/image_data"] = h5py.ExternalLink(str(server / "secret.h5"), "/secret")
    return path


# (builder, how it is read): "upload" goes through read_bytes (the dashboard's path); a radar
# source name goes through read_radar_file(path, source=...).
CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    **{f"h5_{a}": (lambda f, s, a=a: _h5(f, s, a), "upload") for a in HDF5_ATTACKS},
    **{
        f"nc4_{a}": (lambda f, s, a=a: _nc4(f, s, a), "upload")
        for a in ("external_link", "external_storage", "virtual", "nested_external")
    },
    "nc4_huge_chunked": (_nc4_huge, "upload"),
    "nc3_huge_records": (_nc3_records, "upload"),
    "zarr_v2_huge": (lambda f, s: _zarr_zip(f, s, 2), "upload"),
    "zarr_v3_huge": (lambda f, s: _zarr_zip(f, s, 3), "upload"),
    "zip_bomb": (_zip_bomb, "upload"),
    "gif_65535_screen": (_gif_screen, "upload"),
    "gif_300_frames": (_gif_frames, "upload"),
    "mp4_8192_wide": (_mp4_wide, "upload"),
    "npy_huge_shape": (_npy_shape, "upload"),
    "fmi_pgm_gz_bomb": (_pgm_bomb, "fmi"),
    "fmi_pgm_gz_bomb_auto": (_pgm_bomb, "auto"),
    "mch_gif_canvas": (_mch_canvas, "mch"),
    "bom_nc_external": (_bom_external, "bom"),
    "knmi_external_link": (_knmi_external, "knmi"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    """Every hostile file of :data:`CASES`, built once, with the secrets they point at."""
    folder = tmp_path_factory.mktemp("uploads")
    server = tmp_path_factory.mktemp("server")
    _plant(server)
    return {name: build(folder, server) for name, (build, _) in CASES.items()}


def read(path: Path, how: str):
    """Read ``path`` as the dashboard would (``"upload"``) or as one radar source."""
    if how == "upload":
        return F.read_bytes(path.read_bytes(), filename=path.name)
    return R.read_radar_file(path, source=how)


def assert_plain_refusal(text: str, name: str) -> None:
    """One sentence, starting with the file's base name, without folders or secrets."""
    assert text.startswith(f"{name}: "), text
    assert "\n" not in text and len(text) < 400, text
    assert text.endswith("."), text
    assert re.search(r"\.\s+[A-Z]", text) is None, f"more than one sentence: {text}"
    assert tempfile.gettempdir() not in text, text
    assert str(REPO) not in text and "/home/" not in text, text
    assert "TOP-SECRET" not in text and "ABCDEFGHIJ" not in text, text


# ----------------------------------------------------------------------------------------------
# Every hostile file is refused, with a plain message, and nothing of the secret comes back
# ----------------------------------------------------------------------------------------------
def test_secrets_are_readable_without_the_checks(hostile, tmp_path):
    """The attacks are real: h5py itself follows them to the planted bytes."""
    with h5py.File(hostile["h5_external_storage"], "r") as h5:
        assert h5["data"][()].tobytes() == SECRET
    with h5py.File(hostile["h5_virtual"], "r") as h5:
        assert h5["data"][()].tobytes() == SECRET
    with h5py.File(hostile["h5_external_link"], "r") as h5:
        assert h5["data"][()].tobytes() == SECRET


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_file_is_refused_with_a_plain_message(hostile, case):
    path, how = hostile[case], CASES[case][1]
    with pytest.raises(DatasetError) as info:
        read(path, how)
    assert_plain_refusal(str(info.value), path.name)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("h5_external_link", "external link /data -> secret.h5:/secret"),
        ("h5_external_storage", "external storage of /data -> secret.txt"),
        ("h5_virtual", "virtual dataset /data"),
        ("h5_nested_external", "external link /a/b/c/leak"),
        ("h5_soft_to_external", "external link /hidden/ext"),
        ("h5_plugin_filter", "HDF5 filter 32015"),
        ("nc4_huge_chunked", "declares 6,400,000 MiB of arrays"),
        ("nc3_huge_records", "2,147,483,647 records"),
        ("zarr_v2_huge", "declares 6,400,000 MiB of Zarr arrays"),
        ("zarr_v3_huge", "declares 6,400,000 MiB of Zarr arrays"),
        ("zip_bomb", "compressed more than 100:1"),
        ("gif_65535_screen", "GIF canvas of 65535 x 65535"),
        ("gif_300_frames", "300 frames of 2000 x 2000"),
        ("mp4_8192_wide", "video frame of 8192 x 64"),
        ("npy_huge_shape", "declares an array (100000, 4096, 4096)"),
        ("fmi_pgm_gz_bomb", "gzip bombs are not accepted"),
        ("mch_gif_canvas", "60000 x 60000"),
        ("bom_nc_external", "external storage of /leak"),
        ("knmi_external_link", "external link /image1/image_data"),
    ],
)
def test_refusal_says_why(hostile, case, words):
    with pytest.raises(DatasetError, match=re.escape(words)):
        read(hostile[case], CASES[case][1])


# ----------------------------------------------------------------------------------------------
# Fast and light: each refusal measured in a fresh interpreter
# ----------------------------------------------------------------------------------------------
HARNESS = r"""
import json, resource, sys, time
import datasets.catalog, datasets.files as F, datasets.radar_io as R
import h5py, netCDF4, zarr, PIL.Image, imageio.v3, imageio.plugins.ffmpeg, scipy.io
import pysteps.io.importers
from datasets.errors import DatasetError
how, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    if how == "upload":
        F.read_bytes(data, filename=path.rsplit("/", 1)[-1])
    else:
        R.read_radar_file(path, source=how)
    outcome, message = "read", ""
except DatasetError as exc:
    outcome, message = "refused", str(exc)
seconds = time.perf_counter() - start
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_mb": growth, "message": message}))
"""


def measure(path: Path, how: str) -> dict:
    """Read ``path`` in a fresh interpreter: outcome, seconds and peak RSS growth (MB).

    The baseline is the peak RSS after every reader library is imported and the file's bytes are
    in memory, so only what reading costs is counted.
    """
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, how, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal_is_fast_and_light(hostile, case):
    result = measure(hostile[case], CASES[case][1])
    print(f"{case}: {result['seconds']:.3f} s, {result['rss_mb']:.1f} MB")
    assert result["outcome"] == "refused", result
    assert result["seconds"] < MAX_SECONDS, result
    assert result["rss_mb"] < MAX_RSS_GROWTH_MB, result
    assert "TOP-SECRET" not in json.dumps(result)


# ----------------------------------------------------------------------------------------------
# The checks themselves: valid files pass, each limit bites
# ----------------------------------------------------------------------------------------------
def test_check_hdf5_accepts_builtin_filters_soft_links_and_references(tmp_path):
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as h5:
        a = h5.create_dataset("a", data=np.ones((8, 8)), compression="gzip", shuffle=True)
        h5.create_dataset("b", data=np.ones((8, 8)), compression="lzf", fletcher32=True)
        h5.create_dataset("c", data=np.ones((8, 8)), scaleoffset=0)
        h5["soft"] = h5py.SoftLink("/a")
        h5["ref"] = a.ref
        h5["region"] = a.regionref[0:2, 0:2]
    total = U.check_hdf5(path, max_bytes=10_000)
    assert 3 * 512 + 8 < total < 3 * 512 + 8 + 64  # three 8 x 8 float64, two references


def test_check_hdf5_limits(tmp_path):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("a", shape=(1000, 1000), dtype="f8", chunks=(1000, 1000))
    with pytest.raises(DatasetError, match="declares 8 MiB of arrays, over the limit of 1 MiB"):
        U.check_hdf5(path, max_bytes=2**20)
    with pytest.raises(DatasetError, match="chunks of 8 MiB"):
        U.check_hdf5(path, max_bytes=None, max_chunk_bytes=2**20)
    with pytest.raises(DatasetError, match="more than 0 HDF5 links"):
        U.check_hdf5(path, max_bytes=None, max_links=0)
    (tmp_path / "junk.h5").write_bytes(F.HDF5_MAGIC + b"\0" * 100)
    with pytest.raises(DatasetError, match=r"^junk\.h5: cannot be opened as HDF5"):
        U.check_hdf5(tmp_path / "junk.h5", max_bytes=None)


def test_check_zip_member_count_and_sizes(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(5):
            archive.writestr(f"m{i}", b"x" * 1000)
    U.check_zip(path, max_bytes=5000)
    with pytest.raises(DatasetError, match="5 zip members, over the limit of 4"):
        U.check_zip(path, max_bytes=None, max_members=4)
    with pytest.raises(DatasetError, match="unpacks to 4.9 KiB, over the limit"):
        U.check_zip(path, max_bytes=4999)


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ({"shape": [4], "chunks": [4], "dtype": "|O", "compressor": None}, "Python objects"),
        (
            {"shape": [4], "chunks": [4], "dtype": "<f4", "compressor": {"id": "pickle"}},
            "codec 'pickle'",
        ),
        ({"shape": [10**6], "chunks": [10**6], "dtype": "<f8", "compressor": None}, "over"),
    ],
)
def test_check_zarr_metadata_refuses_objects_pickles_and_sizes(meta, words):
    doc = json.dumps({"zarr_format": 2, "fill_value": 0, "order": "C", "filters": None, **meta})
    with pytest.raises(DatasetError, match=words):
        U.check_zarr_metadata("s.zarr.zip", {"p/.zarray": doc.encode()}, max_bytes=2**20)


def test_check_zarr_metadata_counts_consolidated_arrays():
    small = {"zarr_format": 2, "shape": [4], "chunks": [4], "dtype": "<f4", "compressor": None}
    huge = {**small, "shape": [10**9], "chunks": [1000]}
    documents = {
        "p/.zarray": json.dumps(small).encode(),
        ".zmetadata": json.dumps({"metadata": {"p/.zarray": huge}}).encode(),
    }
    with pytest.raises(DatasetError, match="3,815 MiB of Zarr arrays"):
        U.check_zarr_metadata("s.zip", documents, max_bytes=2**20)


def test_valid_files_still_read(tmp_path):
    """A real zipped Zarr (v3), NetCDF-4 with compression and a 300-frame small GIF still read."""
    import imageio.v3 as iio

    ds = xr.Dataset({"p": (("time", "y", "x"), np.random.default_rng(0).random((4, 8, 8)))})
    ds.to_netcdf(tmp_path / "ok.nc", engine="netcdf4", encoding={"p": {"zlib": True}})
    assert F.read_any(tmp_path / "ok.nc").shape == (1, 4, 1, 8, 8)
    frames = np.random.default_rng(0).integers(0, 255, (300, 16, 16), dtype=np.uint8)
    iio.imwrite(tmp_path / "ok.gif", frames, duration=40)
    assert F.read_any(tmp_path / "ok.gif", size=8).sizes["time"] == 300


def test_decoded_limit_names_shape_and_what_to_do(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 64, 64), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"\(10, 64, 64\) would take 160.0 KiB.*crop"):
        F.open_npy(tmp_path / "a.npy", max_decoded_bytes=100_000)
    assert F.open_npy(tmp_path / "a.npy", max_decoded_bytes=200_000).shape == (1, 10, 1, 64, 64)


def test_gif_info_reads_blocks_only(tmp_path):
    path = _gif_frames(tmp_path, tmp_path)
    info = U.gif_info(path, max_frames=1000)
    assert (info.width, info.height, info.frames) == (2000, 2000, 300)
    assert len(info.palette) % 3 == 0 and info.comment == b""
    assert U.gif_info(path, max_frames=7).frames == 7


def test_gif_info_keeps_a_bounded_comment(tmp_path):
    from PIL import Image

    path = tmp_path / "c.gif"
    Image.new("P", (4, 3)).save(path, comment=b"PRDT=AQC161932045 " + b"x" * 9000)
    info = U.gif_info(path, max_frames=1)
    assert info.comment.startswith(b"PRDT=AQC161932045 ")
    assert len(info.comment) == U.GIF_COMMENT_BYTES  # a long comment is cut, never read whole


def test_public_message_removes_folders(tmp_path):
    path = tmp_path / "sub" / "f.h5"
    text = U.public_message(f"cannot open {path} (in {path.parent})", path)
    assert text == "cannot open f.h5 (in (folder))"

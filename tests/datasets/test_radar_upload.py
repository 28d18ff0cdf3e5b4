"""Radar files through the upload path: read_any / read_bytes take ODIM/KNMI HDF5 and zips of them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from datasets import DatasetError
from datasets import files as F
from datasets.files import read_any, read_bytes
from tests.datasets.test_radar import _write_knmi, _write_odim

NAMES = [f"T_PAAH21_C_EUOC_2018061312{m:02d}00.h5" for m in (0, 5, 10)]


def _frame(k: int) -> np.ndarray:
    raw = np.zeros((12, 10), dtype=np.uint16)
    raw[3:6, 2 + k : 5 + k] = 200  # 20 mm/h moving east
    raw[-2:, :] = 65535  # outside the radar domain
    return raw


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _odim_bytes(tmp_path: Path, k: int) -> bytes:
    return _write_odim(tmp_path / f"o{k}.h5", _frame(k)).read_bytes()


def test_zip_of_odim_files_reads_as_a_sequence(tmp_path):
    upload = _zip(
        tmp_path / "event.zip", {n: _odim_bytes(tmp_path, k) for k, n in enumerate(NAMES)}
    )
    array = read_any(upload)
    assert array.dims == ("sample", "time", "channel", "y", "x")
    assert array.shape == (1, 3, 1, 12, 10) and array.dtype == np.float32
    assert array.attrs["units"] == "mm/h" and array.attrs["time_step"] == "PT5M"
    assert array["time"].dtype.kind == "M"
    assert str(array["time"].values[0])[:16] == "2018-06-13T12:00"
    assert np.nanmax(array.values) == pytest.approx(20.0, rel=1e-4)
    assert np.isnan(array.values[0, :, 0, -2:]).all()
    assert array["y"].attrs["units"] == "km"
    assert "convlstm-radar" not in str(array.attrs) and "0000_" not in str(array.attrs)
    uploaded = read_bytes(upload.read_bytes(), filename="event.zip")
    assert uploaded.shape == (1, 3, 1, 12, 10) and uploaded.attrs["source"] == "event.zip"


def test_single_odim_file_is_one_frame_with_time_from_its_attributes(tmp_path):
    path = _write_odim(tmp_path / "composite.h5", _frame(0))
    with h5py.File(path, "a") as f:
        what = f.create_group("what")
        what.attrs["date"], what.attrs["time"] = np.bytes_(b"20180613"), np.bytes_(b"121500")
    array = read_bytes(path.read_bytes(), filename="composite.h5")
    assert array.shape == (1, 1, 1, 12, 10) and array.attrs["units"] == "mm/h"
    assert str(array["time"].values[0])[:16] == "2018-06-13T12:15"
    assert "no forecast" in array.attrs["description"]


def test_single_knmi_file_with_time_in_its_name(tmp_path):
    path = _write_knmi(tmp_path / "RAD_NL25_RAC_5min_201008260005.h5", _frame(0))
    array = read_any(path)
    assert array.shape == (1, 1, 1, 12, 10) and array.attrs["radar_source"] == "knmi"
    assert str(array["time"].values[0])[:16] == "2010-08-26T00:05"


def test_single_file_without_a_time_says_so(tmp_path):
    path = _write_odim(tmp_path / "composite.h5", _frame(0))
    with pytest.raises(DatasetError, match=r"^composite\.h5: no valid time") as err:
        read_any(path)
    assert str(tmp_path) not in str(err.value)


@pytest.mark.parametrize("member", ["../evil.h5", "sub/T_2018061312000.h5", "..\\evil.h5"])
def test_zip_member_with_a_path_is_refused(tmp_path, member):
    upload = _zip(tmp_path / "evil.zip", {NAMES[0]: _odim_bytes(tmp_path, 0), member: b"x"})
    with pytest.raises(DatasetError, match="top level of the zip") as err:
        read_any(upload)
    assert str(err.value).startswith("evil.zip: ")
    assert not (tmp_path / "evil.h5").exists() and not (tmp_path.parent / "evil.h5").exists()


def test_zip_mixing_sources_is_refused(tmp_path):
    knmi = _write_knmi(tmp_path / "k.h5", _frame(0)).read_bytes()
    members = {NAMES[0]: _odim_bytes(tmp_path, 0), "RAD_NL25_201806131205.h5": knmi}
    with pytest.raises(DatasetError, match="mixes radar sources"):
        read_any(_zip(tmp_path / "mixed.zip", members))


def test_zip_bomb_is_refused_before_inflating(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(NAMES[0], bytes(8 * 2**20))
    with pytest.raises(DatasetError, match="zip bombs"):
        read_any(tmp_path / "bomb.zip")


def test_other_files_keep_their_readers(tmp_path):
    ds = xr.Dataset({"rain": (("time", "y", "x"), np.ones((3, 4, 5), dtype=np.float32))})
    nc = tmp_path / "rain.nc"
    ds.to_netcdf(nc, engine="h5netcdf")
    zarr_zip = io.BytesIO()
    with zipfile.ZipFile(zarr_zip, "w") as archive:
        archive.writestr("rain/.zarray", "{}")
    (tmp_path / "store.zip").write_bytes(zarr_zip.getvalue())
    odim = _write_odim(tmp_path / "o.h5", _frame(0))
    heads = {p: p.read_bytes()[:512] for p in (nc, tmp_path / "store.zip", odim)}
    chosen = {p.name: [e.name for e in F.READERS if e.match(p, h)][0] for p, h in heads.items()}
    assert chosen == {"rain.nc": "netcdf-zarr", "store.zip": "netcdf-zarr", "o.h5": "radar"}
    assert read_any(nc).shape == (1, 3, 1, 4, 5)


SHARED_RADAR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "radar"
needs_shared_radar = pytest.mark.skipif(
    not SHARED_RADAR.is_dir(), reason="../shared/data/radar (pysteps example data) is missing"
)


@needs_shared_radar
@pytest.mark.shared
@pytest.mark.parametrize(
    ("folder", "pattern", "suffix"),
    [
        ("fmi/pgm/20160928", "*.pgm.gz", ".gz"),
        ("bom/prcp-cscn/2/2018/06/16", "*.nc", ".nc"),
    ],
)
def test_single_radar_file_uploaded_under_a_fixed_name_reads_with_its_own_time(
    tmp_path, folder, pattern, suffix
):
    """The dashboard saves an upload as ``upload<suffix>``: the time must come from inside."""
    from datasets.radar_io import parse_timestamp, read_radar_file

    original = sorted((SHARED_RADAR / folder).glob(pattern))[3]
    source = "fmi" if suffix == ".gz" else "bom"
    upload = tmp_path / f"upload{suffix}"
    upload.write_bytes(original.read_bytes())
    data = read_any(upload)
    assert data.attrs["domain"] == "radar" and data.attrs["units"] == "mm/h"
    assert data["time"].values[0] == parse_timestamp(original, source=source)
    rain, _ = read_radar_file(original, source=source)
    np.testing.assert_array_equal(data.values[0, 0, 0], rain)


# ----------------------------------------------------------------------------- MeteoSwiss GIF


def write_mch_gif(path: Path, *, comment: bytes | None = b"PRDT=AQC161932045", palette=None):
    """A MeteoSwiss-like AQC frame written by pillow: 710 x 640 palette indices, rain (index 120)
    in a box, no data (255) in the top rows, the product's colour table and comment."""
    from PIL import Image

    from datasets.radar_io import MCH_GIF_PALETTE

    index = np.zeros((640, 710), np.uint8)
    index[100:200, 300:400] = 120
    index[:50] = 255
    image = Image.fromarray(index, mode="P")
    image.putpalette(MCH_GIF_PALETTE if palette is None else palette)
    extra = {} if comment is None else {"comment": b"generated by Meteoswiss\n" + comment}
    image.save(path, optimize=False, **extra)
    return path


def test_a_meteoswiss_gif_under_a_fixed_name_is_one_radar_frame_at_its_stated_time(tmp_path):
    """The page saves an upload as ``upload.gif``: the frame's time comes from its comment."""
    from pysteps.io.importers import import_mch_gif

    path = write_mch_gif(tmp_path / "upload.gif")
    chosen = [e.name for e in F.READERS if e.match(path, path.read_bytes()[:512])][0]
    assert chosen == "radar"
    data = read_any(path)
    assert data.shape == (1, 1, 1, 640, 710) and data.attrs["domain"] == "radar"
    assert data.attrs["radar_source"] == "mch" and data.attrs["units"] == "mm/h"
    assert data["time"].values[0] == np.datetime64("2016-07-11T20:45")
    assert data.attrs["time_zone"] == "UTC"
    assert "One frame: no forecast" in data.attrs["description"]
    mm_per_5min = import_mch_gif(str(path), "AQC", "mm", 5.0)[0][120, 350]
    assert float(data.values[0, 0, 0, 120, 350]) == pytest.approx(12 * mm_per_5min, rel=1e-5)
    assert np.isnan(data.values[0, 0, 0, :50]).all()  # no data (index 255) stays masked


def test_a_meteoswiss_gif_without_a_stated_time_says_so(tmp_path):
    path = write_mch_gif(tmp_path / "upload.gif", comment=None)
    with pytest.raises(DatasetError, match=r"^upload\.gif: no valid time") as err:
        read_any(path)
    assert str(tmp_path) not in str(err.value)


@pytest.mark.parametrize("case", ["other palette", "other size", "two frames"])
def test_other_gifs_stay_video(tmp_path, case):
    from PIL import Image

    path = tmp_path / "clip.gif"
    if case == "other palette":
        grey = bytes(v for i in range(256) for v in (i, i, i))
        write_mch_gif(path, palette=grey)
    else:
        size = (64, 48) if case == "other size" else (710, 640)
        frames = [Image.new("L", size, 30 * k).convert("P") for k in range(2)]
        frames[0].save(
            path, save_all=True, append_images=frames[1:] if case == "two frames" else []
        )
    chosen = [e.name for e in F.READERS if e.match(path, path.read_bytes()[:512])][0]
    assert chosen == "video"


@needs_shared_radar
@pytest.mark.shared
def test_real_meteoswiss_gif_uploaded_under_a_fixed_name_reads_as_radar(tmp_path):
    from datasets.radar_io import is_mch_gif, parse_timestamp, read_radar_file

    originals = sorted((SHARED_RADAR / "mch").glob("*/*.gif"))
    assert originals and all(is_mch_gif(p) for p in originals)  # every frame of the 3 events
    original = originals[43]
    upload = tmp_path / "upload.gif"
    upload.write_bytes(original.read_bytes())
    data = read_any(upload)
    assert data.attrs["domain"] == "radar" and data.shape == (1, 1, 1, 640, 710)
    assert data["time"].values[0] == parse_timestamp(original, source="mch")
    rain, _ = read_radar_file(original, source="mch")
    np.testing.assert_array_equal(data.values[0, 0, 0], rain)

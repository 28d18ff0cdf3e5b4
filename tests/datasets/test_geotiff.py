"""FMI GeoTIFF composites: real TIFF files written by pillow with GeoTIFF tags, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets import DatasetError
from datasets import geotiff as GT
from datasets.files import read_any
from datasets.radar_io import guess_radar_source, read_radar_file, read_radar_sequence

ETRS_TM35FIN = 3067
WEST, NORTH, PIXEL_M = 50_000.0, 7_800_000.0, 1000.0


def write_geotiff(
    path: Path,
    raw: np.ndarray,
    *,
    epsg: int = ETRS_TM35FIN,
    time: str | None = "2016:09:28 16:00:00",
    geokeys: bool = True,
    pixel_is_point: bool = False,
) -> Path:
    """An 8-bit GeoTIFF (pixel scale, tie point at the upper-left corner, EPSG key) via pillow."""
    from PIL import Image, TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[GT.PIXEL_SCALE_TAG] = (PIXEL_M, PIXEL_M, 0.0)
    info.tagtype[GT.PIXEL_SCALE_TAG] = 12  # DOUBLE
    corner = (WEST + PIXEL_M / 2, NORTH - PIXEL_M / 2) if pixel_is_point else (WEST, NORTH)
    info[GT.TIEPOINT_TAG] = (0.0, 0.0, 0.0, *corner, 0.0)
    info.tagtype[GT.TIEPOINT_TAG] = 12
    if geokeys:
        raster = 2 if pixel_is_point else 1
        key = GT.PROJECTED_CRS_KEY
        info[GT.GEOKEY_DIRECTORY_TAG] = (
            1,
            1,
            0,
            3,
            1024,
            0,
            1,
            1,
            1025,
            0,
            1,
            raster,
            key,
            0,
            1,
            epsg,
        )
        info.tagtype[GT.GEOKEY_DIRECTORY_TAG] = 3  # SHORT
    if time is not None:
        info[GT.DATETIME_TAG] = time
    Image.fromarray(raw.astype(np.uint8)).save(path, tiffinfo=info)
    return path


def _raw() -> np.ndarray:
    raw = np.zeros((30, 40), dtype=np.uint8)  # 0 -> -32 dBZ: dry
    raw[10:15, 12:20] = 130  # (130 - 64) / 2 = 33 dBZ
    raw[:2, :] = GT.NO_DATA
    return raw


def test_fmi_geotiff_reads_as_mm_per_hour_on_its_grid(tmp_path):
    path = write_geotiff(tmp_path / "201609281600_FINUTM.tif", _raw())
    assert guess_radar_source(path) == "fmi_geotiff"
    rain, geo = read_radar_file(path, source="auto")
    expected = (10 ** (33.0 / 10) / 223.0) ** (1 / 1.53)  # Z = 223 R^1.53: 2.62 mm/h
    np.testing.assert_allclose(rain[10:15, 12:20], expected, rtol=1e-5)
    assert np.isnan(rain[:2]).all()
    assert (rain[2:10] == 0).all()
    assert geo["pixel_km"] == pytest.approx(1.0) and not geo["latlon"]
    assert geo["x"][0] == pytest.approx(WEST / 1000 + 0.5)
    assert geo["y"][0] == pytest.approx(NORTH / 1000 - 0.5)
    assert "+proj=utm +zone=35" in geo["projection"]
    assert geo["importer"] == "datasets.geotiff.read_fmi_geotiff"


def test_pixel_is_point_tie_point_is_a_pixel_centre(tmp_path):
    area = read_radar_file(write_geotiff(tmp_path / "a.tif", _raw()), source="fmi_geotiff")[1]
    point = write_geotiff(tmp_path / "p.tif", _raw(), pixel_is_point=True)
    geo = read_radar_file(point, source="fmi_geotiff")[1]
    np.testing.assert_allclose(geo["x"], area["x"])
    np.testing.assert_allclose(geo["y"], area["y"])


def test_sequence_and_single_upload_take_times(tmp_path):
    paths = [
        write_geotiff(tmp_path / f"2016092816{m:02d}_FINUTM.tif", _raw(), time=None)
        for m in (0, 5, 10)
    ]
    seq = read_radar_sequence(paths, source="auto", grid=None, crop=None, resolution_km=None)
    assert seq.shape == (1, 3, 1, 30, 40) and seq.attrs["time_step"] == "PT5M"
    upload = write_geotiff(tmp_path / "upload.tif", _raw())  # the name holds no time
    data = read_any(upload)
    assert data["time"].values[0] == np.datetime64("2016-09-28T16:00", "ns")
    assert data.attrs["units"] == "mm/h" and data.attrs["domain"] == "radar"


def test_oversized_declared_tiff_is_refused_before_decoding(tmp_path, monkeypatch):
    path = write_geotiff(tmp_path / "big.tif", _raw())
    monkeypatch.setattr(GT, "read_fmi_geotiff", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(
        DatasetError, match=r"declares 30 x 40 pixels; images from 2 x 2 up to 1,000"
    ):
        read_radar_file(path, source="fmi_geotiff", max_pixels=1000)


def test_tiff_without_geotiff_keys_or_epsg_says_so(tmp_path):
    plain = write_geotiff(tmp_path / "plain.tif", _raw(), geokeys=False)
    with pytest.raises(DatasetError, match="without GeoTIFF keys"):
        read_any(plain)
    custom = write_geotiff(tmp_path / "custom.tif", _raw(), epsg=32767)
    with pytest.raises(DatasetError, match="no EPSG code"):
        read_radar_file(custom, source="fmi_geotiff")


def test_truncated_tiff_gives_one_sentence(tmp_path):
    path = write_geotiff(tmp_path / "cut.tif", _raw())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError) as info:
        read_any(path)
    assert str(info.value).startswith("cut.tif: ") and "\n" not in str(info.value)
    assert str(tmp_path) not in str(info.value)

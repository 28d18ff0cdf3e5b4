"""GRIB2 rain rates: real files written by ecCodes from its own GRIB2 sample, read back.

Every file here is written by the ecCodes library (``codes_grib_new_from_samples("GRIB2")``, grid,
parameter, dates and values set through its keys), so the reader meets the byte layout a real
producer writes. Damaged files are real files cut short or with one declared size changed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from datasets import DatasetError
from datasets import grib as G
from datasets.files import read_any
from datasets.radar_io import guess_radar_source, read_radar_file, read_radar_sequence

MRMS = (209, 6, 1)  # NSSL MRMS PrecipRate, mm/h
PRATE = (0, 1, 7)  # WMO precipitation rate, kg m-2 s-1


def write_grib2(
    path: Path,
    fields: list[np.ndarray],
    times: list[str],
    *,
    north: float = 40.0,
    west: float = 250.0,
    step: float = 0.01,
    parameter: tuple[int, int, int] = MRMS,
    south_first: bool = False,
    east_first: bool = False,
    missing: list[np.ndarray] | None = None,
    edition: int = 2,
    packing: str = "grid_simple",
) -> Path:
    """Write one GRIB message per field with ecCodes; ``fields[k]`` is ``(Nj, Ni)`` north first.

    ``times`` are ``"YYYYmmddHHMM"`` validity times; ``south_first`` stores rows south to north
    (``jScansPositively=1``); ``east_first`` stores columns east to west
    (``iScansNegatively=1``); ``missing`` marks points absent through the bitmap; ``packing`` is
    ecCodes' ``packingType`` (MRMS files use ``grid_png``).
    """
    eccodes = G.load_eccodes()
    with open(path, "wb") as out:
        for k, (field, time) in enumerate(zip(fields, times, strict=True)):
            handle = eccodes.codes_grib_new_from_samples("GRIB1" if edition == 1 else "GRIB2")
            nj, ni = field.shape
            south = north - (nj - 1) * step
            rows = field[::-1] if south_first else field
            rows = rows[:, ::-1] if east_first else rows
            east = west + (ni - 1) * step
            keys = {
                "Ni": ni,
                "Nj": nj,
                "jScansPositively": int(south_first),
                "iScansNegatively": int(east_first),
                "latitudeOfFirstGridPointInDegrees": south if south_first else north,
                "latitudeOfLastGridPointInDegrees": north if south_first else south,
                "longitudeOfFirstGridPointInDegrees": east if east_first else west,
                "longitudeOfLastGridPointInDegrees": west if east_first else east,
                "iDirectionIncrementInDegrees": step,
                "jDirectionIncrementInDegrees": step,
                "dataDate": int(time[:8]),
                "dataTime": int(time[8:]),
            }
            if edition == 2:
                keys.update(
                    discipline=parameter[0],
                    parameterCategory=parameter[1],
                    parameterNumber=parameter[2],
                    bitsPerValue=24,
                )
            for key, value in keys.items():
                eccodes.codes_set(handle, key, value)
            values = np.array(rows, dtype=np.float64).ravel()  # (Nj * Ni,)
            if missing is not None:
                eccodes.codes_set(handle, "bitmapPresent", 1)
                eccodes.codes_set(handle, "missingValue", 9999.0)
                mask = missing[k][::-1] if south_first else missing[k]
                mask = mask[:, ::-1] if east_first else mask
                values[mask.ravel()] = 9999.0
            eccodes.codes_set_values(handle, values)
            if packing != "grid_simple":  # repack the values set above
                eccodes.codes_set(handle, "packingType", packing)
            out.write(eccodes.codes_get_message(handle))
            eccodes.codes_release(handle)
    return path


def _fields(n: int, shape=(20, 30), seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.round(rng.gamma(0.5, 4.0, size=shape), 3) for _ in range(n)]


def test_one_message_round_trip_of_values_and_coordinates(tmp_path):
    (field,) = _fields(1)
    path = write_grib2(
        tmp_path / "MRMS_PrecipRate_00.00_20190601-120000.grib2", [field], ["201906011200"]
    )
    assert guess_radar_source(path) == "grib"
    rain, geo = read_radar_file(path, source="auto")
    np.testing.assert_allclose(rain, field, atol=1e-3)  # 24-bit packing
    assert geo["latlon"]
    np.testing.assert_allclose(geo["y"], 40.0 - 0.01 * np.arange(20), atol=1e-9)  # north first
    np.testing.assert_allclose(geo["x"], -110.0 + 0.01 * np.arange(30), atol=1e-9)  # 250 E
    # 0.01 degrees at 39.9 N: 1.112 km north-south, 0.853 km east-west, geometric mean 0.974 km
    assert geo["pixel_km"] == pytest.approx(0.974, abs=0.001)
    assert geo["importer"] == "datasets.grib.read_grib2"


@pytest.mark.parametrize("packing", ["grid_png", "grid_jpeg", "grid_ccsds", "grid_complex"])
def test_compressed_packings_decode(tmp_path, packing):
    # a smooth storm: ecCodes 2.50's PNG writer fails on incompressible noise ("Failed to write
    # PNG data"), a writer-side limit; the reader is what is tested here
    yy, xx = np.mgrid[0:20, 0:30]
    field = np.round(np.clip(20 * np.exp(-((yy - 8) ** 2 + (xx - 12) ** 2) / 20) - 0.5, 0, None), 2)
    path = write_grib2(tmp_path / "p.grib2", [field], ["201906011200"], packing=packing)
    assert G.grib_messages(path, max_pixels=10**6)[0].packing in G.PACKINGS
    rain, _ = read_radar_file(path, source="grib")
    np.testing.assert_allclose(rain, field, atol=1e-3)


def test_rows_stored_south_first_come_out_north_up(tmp_path):
    (field,) = _fields(1, seed=3)
    north_first = write_grib2(tmp_path / "a.grib2", [field], ["201906011200"])
    south_first = write_grib2(tmp_path / "b.grib2", [field], ["201906011200"], south_first=True)
    east_first = write_grib2(
        tmp_path / "c.grib2", [field], ["201906011200"], south_first=True, east_first=True
    )
    rain_a, geo_a = read_radar_file(north_first, source="grib")
    for other in (south_first, east_first):
        rain_b, geo_b = read_radar_file(other, source="grib")
        np.testing.assert_array_equal(rain_a, rain_b)
        np.testing.assert_allclose(rain_b, field, atol=1e-3)
        np.testing.assert_allclose(geo_a["y"], geo_b["y"])
        np.testing.assert_allclose(geo_a["x"], geo_b["x"])


def test_multi_message_file_is_a_sequence_with_times_from_the_messages(tmp_path):
    fields = _fields(3, seed=1)
    times = ["201906011200", "201906011202", "201906011204"]
    path = write_grib2(tmp_path / "no_time_in_this_name.grib2", fields, times)
    data = read_any(path)
    assert data.dims == ("sample", "time", "channel", "y", "x")
    assert data.shape == (1, 3, 1, 20, 30)
    np.testing.assert_allclose(data.values[0, :, 0], np.stack(fields), atol=1e-3)
    assert list(data["time"].values) == [
        np.datetime64(f"2019-06-01T12:0{m}", "ns") for m in (0, 2, 4)
    ]
    assert data.attrs["time_step"] == "PT2M"
    assert data.attrs["units"] == "mm/h"
    assert data.attrs["domain"] == "radar"
    assert data["y"].attrs["units"] == "degrees_north"
    assert data["x"].attrs["units"] == "degrees_east"
    assert data["y"].values[0] > data["y"].values[-1]  # row 0 north
    assert data.attrs["resolution_km"] == pytest.approx(0.974, abs=0.001)


def test_files_of_one_message_each_read_as_a_sequence(tmp_path):
    fields = _fields(2, seed=2)
    paths = [
        write_grib2(tmp_path / f"f{k}.grib2", [f], [t])
        for k, (f, t) in enumerate(zip(fields, ["201906011205", "201906011200"], strict=True))
    ]
    data = read_radar_sequence(paths, source="grib", grid=None, crop=None, resolution_km=None)
    # sorted by the validity time inside the files, not by their names
    np.testing.assert_allclose(data.values[0, :, 0], np.stack(fields[::-1]), atol=1e-3)
    assert data.attrs["time_step"] == "PT5M"


def test_wmo_precipitation_rate_is_converted_to_mm_per_hour(tmp_path):
    field = np.full((4, 5), 1.0 / 3600.0)  # kg m-2 s-1: 1 mm/h everywhere
    field[0, 0] = 10.0 / 3600.0
    path = write_grib2(tmp_path / "prate.grib2", [field], ["202001010000"], parameter=PRATE)
    rain, _ = read_radar_file(path, source="grib")
    expected = np.ones((4, 5))
    expected[0, 0] = 10.0
    np.testing.assert_allclose(rain, expected, rtol=1e-4)


def test_bitmap_points_and_mrms_no_coverage_become_nan(tmp_path):
    field = np.arange(20, dtype=np.float64).reshape(4, 5) / 4
    field[3, 4] = -3.0  # MRMS "no coverage"
    absent = np.zeros((4, 5), dtype=bool)
    absent[0, 1] = True
    path = write_grib2(tmp_path / "m.grib2", [field], ["202001010000"], missing=[absent])
    rain, _ = read_radar_file(path, source="grib")
    assert np.isnan(rain[0, 1]) and np.isnan(rain[3, 4])
    assert np.isfinite(rain).sum() == 18
    ok = np.isfinite(rain)
    np.testing.assert_allclose(rain[ok], field[ok], atol=1e-3)


def test_parameter_that_is_not_rain_is_refused_with_its_numbers(tmp_path):
    path = write_grib2(tmp_path / "t.grib2", _fields(1), ["202001010000"], parameter=(0, 0, 0))
    with pytest.raises(DatasetError, match=r"\(0, 0, 0\) is not a rain rate"):
        read_radar_file(path, source="grib")


def test_grib_edition_1_is_refused_in_one_sentence(tmp_path):
    path = write_grib2(tmp_path / "old.grib", _fields(1), ["202001010000"], edition=1)
    with pytest.raises(DatasetError, match="GRIB edition 1; only GRIB2 is read"):
        guess_radar_source(path)
    with pytest.raises(DatasetError, match="GRIB edition 1; only GRIB2 is read"):
        read_any(path)


def _declare_grid(path: Path, ni: int, nj: int) -> Path:
    """Change the declared Ni/Nj (and number of points) of the one message of a real file."""
    data = bytearray(path.read_bytes())
    at = G.SECTION0_BYTES
    while data[at + 4] != 3:  # walk to the grid definition section
        at += struct.unpack_from(">I", data, at)[0]
    struct.pack_into(">I", data, at + 6, ni * nj)
    struct.pack_into(">I", data, at + 30, ni)
    struct.pack_into(">I", data, at + 34, nj)
    path.write_bytes(bytes(data))
    return path


def test_oversized_declared_grid_is_refused_before_decoding(tmp_path, monkeypatch):
    path = write_grib2(tmp_path / "huge.grib2", _fields(1), ["202001010000"])
    _declare_grid(path, 60_000, 50_000)  # 3e9 points declared in a 2 kB file

    def no_decoding():
        raise AssertionError("ecCodes was loaded for a file the header walk must refuse")

    monkeypatch.setattr(G, "load_eccodes", no_decoding)
    with pytest.raises(DatasetError, match=r"declares a grid of 50,000 x 60,000 points"):
        read_radar_file(path, source="auto")
    with pytest.raises(DatasetError, match=r"declares a grid of 50,000 x 60,000 points"):
        read_any(path)


def test_grid_over_the_caller_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = write_grib2(tmp_path / "big.grib2", _fields(1, shape=(50, 60)), ["202001010000"])
    monkeypatch.setattr(G, "load_eccodes", lambda: pytest.fail("decoded a refused file"))
    with pytest.raises(DatasetError, match=r"50 x 60 points; fields from 2 x 2 up to 2,000"):
        read_radar_file(path, source="grib", max_pixels=2000)


def test_declared_points_that_disagree_with_the_grid_are_refused(tmp_path):
    path = write_grib2(tmp_path / "odd.grib2", _fields(1), ["202001010000"])
    data = bytearray(path.read_bytes())
    at = G.SECTION0_BYTES
    while data[at + 4] != 3:
        at += struct.unpack_from(">I", data, at)[0]
    struct.pack_into(">I", data, at + 6, 7)  # number of points no longer Ni * Nj
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="declares 7 points but a 20 x 30 grid"):
        G.grib_messages(path, max_pixels=10**6)


@pytest.mark.parametrize("keep", [0.3, 0.75, 0.99])  # inside message 1 or 2
def test_truncated_file_gives_one_sentence(tmp_path, keep):
    path = write_grib2(tmp_path / "cut.grib2", _fields(2), ["202001010000", "202001010005"])
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DatasetError) as info:
        read_any(path)
    message = str(info.value)
    assert message.startswith("cut.grib2: GRIB message ")
    assert "truncated" in message and "\n" not in message and str(tmp_path) not in message


def test_messages_are_counted_and_bounded(tmp_path):
    path = write_grib2(tmp_path / "many.grib2", _fields(3), ["202001010000"] * 3)
    assert [m.ni * m.nj for m in G.grib_messages(path, max_pixels=10**6)] == [600] * 3
    with pytest.raises(DatasetError, match="more than 2 GRIB messages"):
        G.grib_messages(path, max_pixels=10**6, max_messages=2)
    with pytest.raises(DatasetError, match="3 GRIB messages; read it with"):
        read_radar_file(path, source="grib")


def test_non_latlon_grid_is_refused_naming_its_template(tmp_path):
    path = write_grib2(tmp_path / "lcc.grib2", _fields(1), ["202001010000"])
    eccodes = G.load_eccodes()
    with open(path, "rb") as handle:
        message = eccodes.codes_grib_new_from_file(handle)
    eccodes.codes_set(message, "gridType", "lambert")  # grid template 3.30
    path.write_bytes(eccodes.codes_get_message(message))
    eccodes.codes_release(message)
    with pytest.raises(DatasetError, match=r"grid template 3\.30; only regular latitude"):
        read_radar_file(path, source="grib")


def test_section_running_past_its_message_is_refused(tmp_path):
    path = write_grib2(tmp_path / "bad.grib2", _fields(1), ["202001010000"])
    data = bytearray(path.read_bytes())
    struct.pack_into(">I", data, G.SECTION0_BYTES, 10**6)  # section 1 claims 1 MB
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"malformed section \(number 1, 1,000,000 bytes\)"):
        read_any(path)


def test_reading_grib_then_loading_pyproj_exits_cleanly(tmp_path):
    """ecCodes' bundled PROJ must not replace pyproj's (a crash at exit, see load_eccodes)."""
    import subprocess
    import sys

    path = write_grib2(tmp_path / "a.grib2", _fields(1), ["202001010000"])
    code = (
        "import sys; from datasets.grib import read_grib2; "
        "read_grib2(sys.argv[1], max_pixels=10**6); import pyproj, pysteps.io; print('ok')"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=root, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-500:]
    assert done.stdout.decode().strip().endswith("ok")


def test_grid_across_the_greenwich_meridian_keeps_increasing_longitudes(tmp_path):
    (field,) = _fields(1, seed=6)
    path = write_grib2(tmp_path / "eu.grib2", [field], ["202001010000"], west=355.0, step=0.5)
    rain, geo = read_radar_file(path, source="grib")
    np.testing.assert_allclose(geo["x"], -5.0 + 0.5 * np.arange(30), atol=1e-9)
    np.testing.assert_allclose(rain, field, atol=1e-3)


def test_gzipped_grib2_as_noaa_serves_mrms_reads_like_the_plain_file(tmp_path):
    import gzip

    fields = _fields(2, seed=7)
    plain = write_grib2(tmp_path / "p.grib2", fields, ["201906011200", "201906011202"])
    zipped = tmp_path / "MRMS_PrecipRate_00.00_20190601-120000.grib2.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_any(zipped).values, read_any(plain).values)
    cut = tmp_path / "cut.grib2.gz"
    cut.write_bytes(gzip.compress(plain.read_bytes()[:-50]))
    with pytest.raises(DatasetError, match=r"^cut\.grib2\.gz: GRIB message 2 declares"):
        read_any(cut)


def test_gzipped_grib2_bomb_is_refused_while_inflating(tmp_path):
    import gzip

    path = write_grib2(tmp_path / "p.grib2", _fields(1), ["201906011200"])
    bomb = tmp_path / "bomb.grib2.gz"
    bomb.write_bytes(gzip.compress(path.read_bytes() + bytes(50 * 2**20)))  # + 50 MiB of zeros
    assert bomb.stat().st_size < 2**20
    with pytest.raises(DatasetError, match="gzip bombs are not accepted"):
        read_any(bomb, max_bytes=2**20)


def test_lat_lon_pixels_far_from_the_asked_size_are_resampled_not_refused(tmp_path):
    """0.01 degree at 60 N is 1.112 km north-south but 0.556 km east-west (0.786 km geometric
    mean, not within 5 % of 1 km): the default 1 km resamples each axis to 1 km pixels on the
    same centre (bilinear north-south, area means east-west), keeping a uniform field uniform,
    the invalid columns invalid and the domain's centre."""
    field = np.full((20, 30), 2.5)
    outside = np.zeros((20, 30), bool)
    outside[:, :4] = True  # outside the radar: absent through the bitmap
    path = write_grib2(tmp_path / "MRMS_PrecipRate_00.00_20190601-120000.grib2", [field],
                       ["201906011200"], north=60.0, missing=[outside])  # fmt: skip
    data = read_radar_sequence([path], source="grib", grid=None, crop=None)
    # 20 x 1.112 km -> 22 px, 30 x 0.556 km -> 17 px of 1 km
    assert data.shape == (1, 1, 1, 22, 17)
    assert data.attrs["resolution_km"] == 1.0
    values = data.values[0, 0, 0]
    np.testing.assert_allclose(values[np.isfinite(values)], 2.5, rtol=1e-6)
    assert np.isnan(values[:, 0]).all() and np.isfinite(values[:, 4:]).all()
    y, x = data["y"].values, data["x"].values
    assert y[0] > y[-1] and data["y"].attrs["units"] == "degrees_north"
    assert np.mean(y) == pytest.approx(60.0 - 0.095, abs=1e-6)  # same centre as the native grid
    assert np.mean(x) == pytest.approx(-110.0 + 0.145, abs=1e-6)
    with pytest.raises(DatasetError, match="positive"):
        read_radar_sequence([path], source="grib", grid=None, crop=None, resolution_km=-1.0)

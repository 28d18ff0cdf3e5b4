"""GRIB2 rain-rate fields (e.g. NOAA MRMS ``PrecipRate``): a header walk, then decoding with ecCodes.

Two steps, in this order, for every file:

1. :func:`grib_messages` walks the file's sections in pure Python (no GRIB library, nothing
   decoded): every message must be GRIB edition 2, whole (its declared length inside the file,
   ending in ``7777``), hold one field, on a regular latitude/longitude grid (grid template 3.0)
   whose declared ``Ni`` x ``Nj`` equals its declared number of points and stays under
   ``max_pixels``, with a packing ecCodes decodes from its own code; the number of messages is
   bounded too. A truncated or foreign file stops here with one sentence.
2. :func:`read_grib2` decodes one message with ecCodes (the ``eccodes`` package and its
   ``eccodeslib`` binary wheel from PyPI) and returns ``(field, None, metadata)`` like
   :func:`pysteps.io.importers.import_mrms_grib` with ``window_size=1`` (the pysteps importer needs
   ``pygrib``, whose wheel bundles a second ecCodes that crashes the interpreter at exit when both
   are loaded, and it assumes rows stored north to south; this reader honours every scanning
   order).

Rain parameters (:data:`RAIN_PARAMETERS`, keyed by discipline, category, number)
-----------------------------------------------------------------------------------
=================  ==========================================  ==================  ==============
key                parameter                                   stored in           to mm/h
=================  ==========================================  ==================  ==============
``(209, 6, 1)``    MRMS ``PrecipRate`` (NSSL local table)      mm/h, -3 = no data  x 1
``(0, 1, 7)``      precipitation rate (WMO ``prate``)          kg m-2 s-1          x 3600
``(0, 1, 52)``     total precipitation rate (WMO ``tprate``)   kg m-2 s-1          x 3600
=================  ==========================================  ==================  ==============

Any other parameter is refused with its three numbers in the message. Points the bitmap marks
missing, and MRMS' -3 "no coverage", become NaN.

Orientation: the returned field has row 0 at the northern edge and column 0 at the western edge;
``x1``/``x2`` are longitudes in degrees east (-180 to 180 at the western edge), ``y1``/``y2``
latitudes in degrees north, ``cartesian_unit="degrees"`` (as pysteps writes for MRMS).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError
from datasets.magic import GRIB_MAGIC

MAX_MESSAGES = 1000  # messages (frames) in one GRIB file
SECTION0_BYTES = 16
END_MARK = b"7777"
LATLON_TEMPLATE = 0  # grid definition template 3.0: regular latitude/longitude
LATLON_MIN_BYTES = 72  # section 3 with template 3.0 is 72 octets long
MISSING_U32 = 0xFFFFFFFF  # "missing" in a 4-octet field (e.g. Ni of a reduced grid)
PACKINGS = {
    0: "simple",
    2: "complex",
    3: "complex with spatial differencing",
    4: "IEEE floating point",
    40: "JPEG 2000",
    41: "PNG",
    42: "CCSDS",
}
"""Data representation templates (section 5) accepted: those ecCodes decodes with its own code."""


@dataclass(frozen=True)
class RainParameter:
    """A GRIB2 parameter read as rain rate: its name, stored unit, factor to mm/h, no-data value."""

    name: str
    stored_unit: str
    to_mm_per_hour: float
    no_data: float | None = None


RAIN_PARAMETERS: dict[tuple[int, int, int], RainParameter] = {
    (209, 6, 1): RainParameter("MRMS PrecipRate", "mm/h", 1.0, no_data=-3.0),
    (0, 1, 7): RainParameter("precipitation rate (prate)", "kg m-2 s-1", 3600.0),
    (0, 1, 52): RainParameter("total precipitation rate (tprate)", "kg m-2 s-1", 3600.0),
}
"""GRIB2 parameters (discipline, category, number) that are rain rates (module doc)."""


@dataclass(frozen=True)
class GribMessage:
    """What one GRIB2 message declares, read from its section headers (nothing decoded).

    ``offset``/``length`` in bytes within the file; ``ni`` points along a parallel (west-east),
    ``nj`` along a meridian; ``scanning_mode`` the flag octet of grid template 3.0; ``packing`` the
    data representation template number.
    """

    offset: int
    length: int
    discipline: int
    ni: int
    nj: int
    scanning_mode: int
    packing: int


def is_grib(data: bytes) -> bool:
    """True when ``data`` starts with a GRIB indicator section (any edition)."""
    return data[:4] == GRIB_MAGIC


def _u32(data, at: int) -> int:
    return struct.unpack_from(">I", data, at)[0]


def _u16(data, at: int) -> int:
    return struct.unpack_from(">H", data, at)[0]


def grib_messages(
    path: str | os.PathLike, *, max_pixels: int, max_messages: int = MAX_MESSAGES
) -> list[GribMessage]:
    """Walk a GRIB2 file's messages and sections without decoding anything (module doc, step 1).

    Parameters
    ----------
    path : path-like
        The file (already checked to exist and be of a bounded size).
    max_pixels : int
        Largest ``Ni`` x ``Nj`` accepted per message.
    max_messages : int
        Most messages accepted in the file.

    Returns
    -------
    list of GribMessage
        One per message, in file order (bytes between messages are skipped, as ecCodes does).

    Raises
    ------
    DatasetError
        Not GRIB, GRIB edition 1, a truncated or malformed message, a message with no or several
        fields, a grid other than regular latitude/longitude, a declared grid larger than
        ``max_pixels`` or inconsistent with its number of points, an unsupported packing, or more
        than ``max_messages`` messages. One sentence naming the file.
    """
    path = Path(path)
    name = path.name
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < SECTION0_BYTES:
                raise DatasetError(f"{name}: {size} bytes is too short for a GRIB file.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _walk(data, size, name, max_pixels, max_messages)
    except OSError as exc:
        raise DatasetError(f"{name}: cannot be read ({type(exc).__name__}).") from exc


def _walk(data, size: int, name: str, max_pixels: int, max_messages: int) -> list[GribMessage]:
    if data[:4] != GRIB_MAGIC:
        raise DatasetError(f"{name}: not a GRIB file (starts with {bytes(data[:4])!r}).")
    messages: list[GribMessage] = []
    start = 0
    while start != -1 and start < size:
        if len(messages) >= max_messages:
            raise DatasetError(
                f"{name}: more than {max_messages:,} GRIB messages; split the file in time."
            )
        messages.append(_message(data, start, size, name, len(messages) + 1, max_pixels))
        start = data.find(GRIB_MAGIC, start + messages[-1].length)
    return messages


def _message(data, start: int, size: int, name: str, number: int, max_pixels: int) -> GribMessage:
    where = f"{name}: GRIB message {number}"
    discipline, length = _indicator(data, start, size, where)
    grid = packing = None
    fields = 0
    end = start + length - len(END_MARK)  # the sections lie between section 0 and '7777'
    at = start + SECTION0_BYTES
    while at < end:
        section_bytes, section = _section_header(data, at, end, where)
        if section == 3:
            grid = _grid(data, at, section_bytes, where, max_pixels)
        elif section == 5:
            packing = _packing(data, at, section_bytes, where)
        elif section == 7:
            fields += 1
        at += section_bytes
    if fields != 1 or grid is None or packing is None:
        raise DatasetError(
            f"{where} holds {fields} fields (a grid and a data section each); one field per "
            "message is read. Split it with ecCodes' grib_copy."
        )
    ni, nj, scanning_mode = grid
    return GribMessage(start, length, discipline, ni, nj, scanning_mode, packing)


def _indicator(data, start: int, size: int, where: str) -> tuple[int, int]:
    """``(discipline, message length)`` from section 0, checked against the file and '7777'."""
    if start + SECTION0_BYTES > size:
        raise DatasetError(f"{where} is truncated (its first section is cut off).")
    edition = data[start + 7]
    if edition != 2:
        raise DatasetError(
            f"{where} is GRIB edition {edition}; only GRIB2 is read (convert it, e.g. with "
            "ecCodes' grib_set -s edition=2)."
        )
    length = struct.unpack_from(">Q", data, start + 8)[0]
    if length < SECTION0_BYTES + len(END_MARK) or start + length > size:
        raise DatasetError(
            f"{where} declares {length:,} bytes but the file has {size - start:,} from its "
            "start; the file is truncated or damaged."
        )
    if data[start + length - len(END_MARK) : start + length] != END_MARK:
        raise DatasetError(f"{where} does not end in '7777'; the file is damaged.")
    return data[start + 6], length


def _section_header(data, at: int, end: int, where: str) -> tuple[int, int]:
    """``(length, number)`` of the section at ``at``; it must end by ``end``."""
    if at + 5 > end:
        raise DatasetError(f"{where} has a cut-off section header; the file is damaged.")
    section_bytes, section = _u32(data, at), data[at + 4]
    if section_bytes < 5 or at + section_bytes > end or not 1 <= section <= 7:
        raise DatasetError(
            f"{where} has a malformed section (number {section}, {section_bytes:,} bytes); "
            "the file is damaged."
        )
    return section_bytes, section


def _grid(data, at: int, section_bytes: int, where: str, max_pixels: int) -> tuple[int, int, int]:
    """``(Ni, Nj, scanning mode)`` of a grid definition section, checked (nothing allocated)."""
    if section_bytes < 14:
        raise DatasetError(f"{where}: its grid section is cut off; the file is damaged.")
    points, template = _u32(data, at + 6), _u16(data, at + 12)
    if template != LATLON_TEMPLATE:
        raise DatasetError(
            f"{where} uses grid template 3.{template}; only regular latitude/longitude grids "
            "(3.0, as in NOAA MRMS) are read. Regrid it to latitude/longitude first."
        )
    if section_bytes < LATLON_MIN_BYTES:
        raise DatasetError(f"{where}: its grid section is cut off; the file is damaged.")
    ni, nj, scanning_mode = _u32(data, at + 30), _u32(data, at + 34), data[at + 71]
    if MISSING_U32 in (ni, nj):
        raise DatasetError(
            f"{where} is on a reduced (quasi-regular) grid; regrid it to a regular grid first."
        )
    if ni < 2 or nj < 2 or ni * nj > max_pixels:
        raise DatasetError(
            f"{where} declares a grid of {nj:,} x {ni:,} points; fields from 2 x 2 up to "
            f"{max_pixels:,} points are read."
        )
    if ni * nj != points:
        raise DatasetError(
            f"{where} declares {points:,} points but a {nj:,} x {ni:,} grid; the file is damaged."
        )
    if scanning_mode & 0x10:
        raise DatasetError(
            f"{where} stores rows in alternating directions; rewrite it in plain row order."
        )
    return ni, nj, scanning_mode


def _packing(data, at: int, section_bytes: int, where: str) -> int:
    if section_bytes < 11:
        raise DatasetError(f"{where}: its data representation section is cut off.")
    template = _u16(data, at + 9)
    if template not in PACKINGS:
        raise DatasetError(
            f"{where} packs its values with data representation template 5.{template}; read are "
            f"{', '.join(f'5.{k} ({v})' for k, v in PACKINGS.items())}."
        )
    return template


def check_grib2(path: str | os.PathLike, *, max_pixels: int) -> GribMessage:
    """The one message of a GRIB2 file, walked by :func:`grib_messages` (nothing decoded).

    Raises
    ------
    DatasetError
        What :func:`grib_messages` refuses, or a file of several messages (a time series: read it
        with :func:`datasets.files.read_any`, one frame per message).
    """
    path = Path(path)
    messages = grib_messages(path, max_pixels=max_pixels)
    if len(messages) != 1:
        raise DatasetError(
            f"{path.name}: {len(messages)} GRIB messages; read it with datasets.files.read_any "
            "(one frame per message) or split it with ecCodes' grib_copy."
        )
    return messages[0]


# --- decoding (after the walk) -------------------------------------------------------------------


def load_eccodes():
    """The ``eccodes`` module, imported after ``pyproj`` (the one place that imports it).

    The ``eckitlib`` wheel under ``eccodeslib`` bundles its own PROJ library; loaded before
    ``pyproj``, its symbols take the place of pyproj's and the interpreter crashes at exit
    (measured: ``import eccodes``, decode a message, ``import pyproj`` -> exit code 139). With
    ``pyproj`` loaded first each keeps its own.
    """
    import pyproj  # noqa: F401  (must be loaded before eccodes; see above)

    try:
        import eccodes
    except (ImportError, RuntimeError) as exc:  # RuntimeError: the binary library is missing
        raise DatasetError(
            "reading GRIB2 needs the ecCodes Python package: pip install eccodes eccodeslib "
            "(versions in requirements.txt)."
        ) from exc
    return eccodes


def read_grib2(path: str | os.PathLike, *, max_pixels: int) -> tuple[np.ndarray, None, dict]:
    """Decode the one rain-rate field of a one-message GRIB2 file (module doc, step 2).

    Parameters
    ----------
    path : path-like
        The file.
    max_pixels : int
        Largest grid accepted (checked by :func:`grib_messages` before decoding).

    Returns
    -------
    field : numpy.ndarray
        float64 ``(Nj, Ni)`` rain rate in mm/h, row 0 north, column 0 west, NaN where missing.
    quality : None
    metadata : dict
        pysteps-style: ``x1``, ``x2`` (degrees east), ``y1``, ``y2`` (degrees north) of the grid's
        outer edges, ``xpixelsize``/``ypixelsize`` (degrees), ``cartesian_unit="degrees"``,
        ``unit="mm/h"``, ``transform=None``, ``zerovalue=0``, ``yorigin="upper"``,
        ``projection`` (proj4 text of the grid's Earth shape), ``institution``, ``accutime=None``,
        ``valid_time`` (datetime64), ``parameter`` (name).

    Raises
    ------
    DatasetError
        Anything :func:`grib_messages` refuses, more than one message, a parameter that is not a
        rain rate (:data:`RAIN_PARAMETERS`), or inconsistent grid corners.
    """
    with _one_message(path, max_pixels) as (eccodes, handle_id, message):
        return _decode(eccodes, handle_id, Path(path).name, message)


@contextlib.contextmanager
def _one_message(path: str | os.PathLike, max_pixels: int):
    """``(eccodes, handle, GribMessage)`` of a checked one-message GRIB2 file; released after."""
    path = Path(path)
    message = check_grib2(path, max_pixels=max_pixels)
    eccodes = load_eccodes()
    with open(path, "rb") as handle:
        handle_id = eccodes.codes_grib_new_from_file(handle)
    if handle_id is None:
        raise DatasetError(f"{path.name}: ecCodes found no GRIB message in it.")
    try:
        yield eccodes, handle_id, message
    finally:
        eccodes.codes_release(handle_id)


def _decode(eccodes, handle_id, name: str, message: GribMessage) -> tuple[np.ndarray, None, dict]:
    def get(key):
        return eccodes.codes_get(handle_id, key)

    key = (int(get("discipline")), int(get("parameterCategory")), int(get("parameterNumber")))
    parameter = RAIN_PARAMETERS.get(key)
    if parameter is None:
        known = "; ".join(f"{k} {p.name}" for k, p in RAIN_PARAMETERS.items())
        raise DatasetError(
            f"{name}: GRIB parameter (discipline, category, number) = {key} is not a rain rate; "
            f"read are {known}."
        )
    ni, nj = int(get("Ni")), int(get("Nj"))
    if (ni, nj) != (message.ni, message.nj):
        raise DatasetError(f"{name}: ecCodes reads a {nj} x {ni} grid the header did not declare.")
    values = np.asarray(eccodes.codes_get_values(handle_id), dtype=np.float64)  # (Ni * Nj,)
    if values.size != ni * nj:
        raise DatasetError(f"{name}: {values.size:,} values for a {nj} x {ni} grid.")
    if int(get("bitmapPresent")):
        bitmap = np.asarray(eccodes.codes_get_array(handle_id, "bitmap"), dtype=bool)  # (Ni*Nj,)
        values[~bitmap] = np.nan
    if parameter.no_data is not None:
        values[values == parameter.no_data] = np.nan
    if int(get("jPointsAreConsecutive")):
        field = values.reshape(ni, nj).T  # columns stored one after another
    else:
        field = values.reshape(nj, ni)  # (Nj, Ni) rows stored one after another
    field = field * parameter.to_mm_per_hour
    dlon = float(get("iDirectionIncrementInDegrees"))
    dlat = float(get("jDirectionIncrementInDegrees"))
    lon1 = float(get("longitudeOfFirstGridPointInDegrees"))
    lat1 = float(get("latitudeOfFirstGridPointInDegrees"))
    lon2 = float(get("longitudeOfLastGridPointInDegrees"))
    lat2 = float(get("latitudeOfLastGridPointInDegrees"))
    if int(get("iScansNegatively")):  # first column east: turn it west-first
        field, lon1, lon2 = field[:, ::-1], lon2, lon1
    if int(get("jScansPositively")):  # first row south: turn it north-first
        field, lat1, lat2 = field[::-1], lat2, lat1
    west = (lon1 + 180.0) % 360.0 - 180.0
    _check_spacing(name, lon2 - lon1, ni, dlon, "longitude")
    _check_spacing(name, lat1 - lat2, nj, dlat, "latitude")
    metadata = {
        "institution": _institution(get),
        "parameter": parameter.name,
        "unit": "mm/h",
        "transform": None,
        "zerovalue": 0.0,
        "threshold": 0.0,
        "accutime": None,
        "projection": _projection(get),
        "yorigin": "upper",
        "cartesian_unit": "degrees",
        "xpixelsize": dlon,
        "ypixelsize": dlat,
        "x1": west - dlon / 2,
        "x2": west + (ni - 0.5) * dlon,
        "y1": lat2 - dlat / 2,
        "y2": lat1 + dlat / 2,
        "valid_time": _valid_time(get, name),
    }
    return np.ascontiguousarray(field), None, metadata


def _check_spacing(name: str, span: float, n: int, step: float, axis: str) -> None:
    span = span % 360.0 if axis == "longitude" else span
    if not (step > 0 and np.isclose(span, (n - 1) * step, rtol=1e-3, atol=1e-4)):
        raise DatasetError(
            f"{name}: the {axis}s of the first and last grid points ({span:g} degrees apart) do "
            f"not match {n} points {step:g} degrees apart; the grid is inconsistent."
        )


_EARTH_SHAPES = {  # GRIB2 code table 3.2 -> proj4, as pysteps maps it
    0: "+R=6367470",
    1: "+R=6367470",
    2: "+ellps=IAU76",
    4: "+ellps=GRS80",
    5: "+ellps=WGS84",
    6: "+R=6371229",
    8: "+R=6371200",
    9: "+ellps=airy",
}


def _projection(get) -> str:
    shape = int(get("shapeOfTheEarth"))
    return f"+proj=longlat {_EARTH_SHAPES.get(shape, '+ellps=WGS84')} +no_defs"


def _institution(get) -> str:
    try:
        centre = str(get("centreDescription"))
    except Exception:  # noqa: BLE001 - ecCodes raises its own KeyValueNotFoundError
        return "GRIB2 producer"
    return centre if centre and centre.lower() not in ("unknown", "missing") else "GRIB2 producer"


def _valid_time(get, name: str) -> np.datetime64:
    date, time = int(get("validityDate")), int(get("validityTime"))
    try:
        stamp = datetime.strptime(f"{date:08d}{time:04d}", "%Y%m%d%H%M")
    except ValueError as exc:
        raise DatasetError(f"{name}: invalid validity date/time {date} {time:04d}.") from exc
    return np.datetime64(stamp, "ns")


def grib_valid_time(path: str | os.PathLike, *, max_pixels: int) -> np.datetime64:
    """The validity time of the one message of a GRIB2 file (checked as in :func:`read_grib2`).

    Only the header keys are read; the values are not decoded.
    """
    with _one_message(path, max_pixels) as (eccodes, handle_id, _message):
        return _valid_time(lambda key: eccodes.codes_get(handle_id, key), Path(path).name)


def split_messages(
    path: str | os.PathLike, folder: Path, *, max_pixels: int, max_total_pixels: int | None = None
) -> list[Path]:
    """Write each message of a checked GRIB2 file into ``folder`` as its own file, in order.

    Files are named ``NNNN_message.grib2``. :func:`grib_messages` runs first, and the declared
    points of all messages together must stay under ``max_total_pixels``, so nothing is copied from
    a file that would be refused. Returns the new files.
    """
    path = Path(path)
    messages = grib_messages(path, max_pixels=max_pixels)
    total = sum(m.ni * m.nj for m in messages)
    if max_total_pixels is not None and total > max_total_pixels:
        raise DatasetError(
            f"{path.name}: {len(messages)} GRIB messages declare {total:,} points together, over "
            f"the limit of {max_total_pixels:,}; split the file in time or crop it."
        )
    out = []
    with open(path, "rb") as handle:
        for index, message in enumerate(messages):
            handle.seek(message.offset)
            target = folder / f"{index:04d}_message.grib2"
            target.write_bytes(handle.read(message.length))
            out.append(target)
    return out


__all__ = [
    "MAX_MESSAGES",
    "check_grib2",
    "RAIN_PARAMETERS",
    "GribMessage",
    "grib_messages",
    "grib_valid_time",
    "is_grib",
    "load_eccodes",
    "read_grib2",
    "split_messages",
]

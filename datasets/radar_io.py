"""Readers for real weather-radar files through :mod:`pysteps.io.importers`, in mm/h.

Public readers (each raises only :class:`~datasets.errors.DatasetError` on bad input)
-----------------------------------------------------------------------------------
- :func:`read_radar_file` — one file -> ``(rain_rate (H, W) float32 mm/h, geometry dict)``.
- :func:`read_radar_sequence` — many files -> ``DataArray (sample=1, time, channel=1, y, x)``,
  converted to mm/h, block-averaged to ``resolution_km`` and cropped to ``grid`` x ``grid`` where it
  rains most.
- :func:`parse_timestamp` — the valid time written in a file name.
- :func:`file_time` — a file's valid time (in the file for GRIB2, else its name).
- :func:`guess_radar_source` — which of the sources below a file is (``source="auto"``).
- :func:`find_radar_files` — the files of one source in a folder, in time order.
- :func:`sliding_windows` — cut a sequence into ``context + horizon`` windows (its home is
  :mod:`datasets.windows`; re-exported here).

Sources (``source=``)
---------------------
========  =============================  ===============================================  ========
source    format                         pysteps importer                                 unit in
========  =============================  ===============================================  ========
``mch``   MeteoSwiss AQC GIF             ``import_mch_gif(f, "AQC", "mm", 5.0)``          mm/5 min
``bom``   BoM Rainfields3 netCDF         ``import_bom_rf3(f)``                            mm/step
``fmi``   FMI PGM (optionally gzipped)   ``import_fmi_pgm(f, gzipped=...)``               dBZ
``fmi_    FMI GeoTIFF                    :func:`datasets.geotiff.read_fmi_geotiff`        dBZ
geotiff`` (8-bit, (v - 64) / 2 dBZ)      (pillow; ``import_fmi_geotiff`` needs GDAL)
``knmi``  KNMI HDF5 (5-min ACRR)         ``import_knmi_hdf5(f, qty="ACRR", accutime=5)``  mm/5 min
``odim``  ODIM HDF5 (OPERA, DPC, DWD)    ``import_odim_hdf5(f, qty="RATE" or "DBZH")``    mm/h, dBZ
``mch_    MeteoSwiss HDF5 (CCS4 grid,     ``import_mch_hdf5(f, qty="RATE" or "DBZH")``     mm/h, dBZ
hdf5``    no where/projdef)
``saf``   NWC SAF CRR netCDF (satellite) ``import_saf_crri(f)``                           mm/h
``grib``  GRIB2 lat/lon rain rate        :func:`datasets.grib.read_grib2` (ecCodes; the   mm/h
          (NOAA MRMS PrecipRate, WMO     pysteps ``import_mrms_grib`` contract, any
          prate/tprate)                  scanning order)
========  =============================  ===============================================  ========

Every field goes through :func:`pysteps.utils.conversion.to_rainrate` (accumulations divided by
their accumulation time; reflectivity through the source's Z-R law, e.g. Z = 223 R^1.53 for FMI,
Marshall-Palmer Z = 200 R^1.6 for ODIM DBZH).
Values at the product's "no rain" level become 0. Pixels outside the radar domain stay NaN: they
form the mask that travels beside the data and are never fed to a model as numbers.

Orientation and coordinates: row 0 is the northern edge (files stored bottom-up are flipped);
``y`` and ``x`` are projected pixel-centre coordinates in km (``y`` decreasing down the rows),
and the projection is kept in ``attrs["projection"]``. GRIB2 grids are latitude/longitude:
``y``/``x`` are then degrees north/east (``units`` "degrees_north"/"degrees_east") and
``resolution_km`` is the local pixel scale at the domain centre.

Time stamps come from the file names (:func:`parse_timestamp`), except for GRIB2, whose messages
carry their validity time (:func:`file_time`).

Crop rule: among all ``grid`` x ``grid`` windows of the resampled domain, the one with the most
pixels >= ``crop_threshold`` (default 1 mm/h) summed over all frames of the sequence (NaN counts as
dry); ties go to the first window in row-major order. If nothing reaches the threshold, the window
with the most valid (non-NaN) pixels is used instead.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import threading
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import check_file
from datasets.layout import UTC
from datasets.magic import (
    GRIB_MAGIC,
    GZIP_MAGIC,
    HDF5_MAGIC,
    NETCDF3_MAGIC,
    TIFF_MAGIC,
    head,
    is_gif,
)
from datasets.timesteps import iso_duration
from datasets.untrusted import (
    DEFAULT_MAX_DECODED_BYTES,
    check_gzip,
    check_hdf5,
    check_netcdf3_header,
    gif_info,
    public_message,
)
from datasets.windows import sliding_windows  # re-exported (in __all__): its home was here

MAX_BYTES = 200 * 1024 * 1024  # refuse radar files larger than this (a composite is ~1 MB)
MAX_PIXELS = 25_000_000  # refuse fields with more pixels than this (5000 x 5000)
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), as model.regrid scales lat/lon grids
DEFAULT_CROP_THRESHOLD = 1.0  # mm/h; "where it rains most" counts pixels at or above this
CHANNEL = "rain_rate"
PYSTEPS_LICENCE = (
    "pysteps-data example radar data: no licence file; its README asks that the data source be "
    "cited (see github.com/pySTEPS/pysteps-data). For development and evaluation; do not "
    "redistribute."
)

_BOM_PATCH_LOCK = threading.Lock()  # one BoM import at a time while pysteps sees the shim


@dataclass(frozen=True)
class RadarSource:
    """How to read one radar source: importer, file name pattern and time stamp format."""

    name: str
    institution: str
    description: str
    importer_name: str  # the pysteps.io.importers function, for attrs and messages
    glob: tuple[str, ...]  # file name patterns in a folder
    time_regex: str  # one group per strptime format part, joined
    time_format: str
    check_header: Callable[[Path, int], None]
    library: str = "pysteps.io.importers"  # the module of ``importer_name``

    @property
    def importer(self) -> str:
        """The reader's qualified name, for attrs and messages."""
        return f"{self.library}.{self.importer_name}"


def _import_with(source: str, path: Path, max_pixels: int):
    """Call the importer of ``source`` on ``path``: ``(field, quality, metadata)``."""
    if source == "grib":
        from datasets.grib import read_grib2

        return read_grib2(path, max_pixels=max_pixels)
    if source == "fmi_geotiff":
        from datasets.geotiff import read_fmi_geotiff

        return read_fmi_geotiff(path, max_pixels=max_pixels)
    from pysteps.io import importers

    if source == "mch":
        return importers.import_mch_gif(str(path), "AQC", "mm", 5.0)
    if source == "bom":
        with _fast_bom_coordinates(importers):
            return importers.import_bom_rf3(str(path))
    if source == "fmi":
        return importers.import_fmi_pgm(str(path), gzipped=_is_gzip(path))
    if source == "knmi":
        return importers.import_knmi_hdf5(str(path), qty="ACRR", accutime=5.0)
    if source == "odim":
        return importers.import_odim_hdf5(str(path), qty=_odim_quantity(path))
    if source == "saf":
        return importers.import_saf_crri(str(path))
    if source == "mch_hdf5":
        return importers.import_mch_hdf5(str(path), qty=_odim_quantity(path))
    raise DatasetError(f"unknown radar source {source!r}; use one of {', '.join(RADAR_SOURCES)}")


class _LoadedVariable:
    """A netCDF variable whose values are read once: ``min(var)`` no longer reads element-wise."""

    def __init__(self, variable):
        self._variable = variable
        self._values = variable[:]

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, name):
        return getattr(self._variable, name)


class _LoadedCoordinates:
    """``netCDF4.Dataset`` stand-in whose 1-D ``x``/``y`` variables are loaded into memory."""

    def __init__(self, filename, *args, **kwargs):
        import netCDF4

        self._dataset = netCDF4.Dataset(filename, *args, **kwargs)
        self.variables = dict(self._dataset.variables)
        for name in ("x", "y"):
            if name in self.variables and self.variables[name].ndim == 1:
                self.variables[name] = _LoadedVariable(self.variables[name])

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def close(self):
        self._dataset.close()


@contextlib.contextmanager
def _fast_bom_coordinates(importers):
    """Let ``import_bom_rf3`` find the grid extent without reading ``x``/``y`` one value at a time.

    pysteps computes ``min(ds.variables["x"])`` when the file has no ``valid_min`` attribute (as in
    the ``prcp-c10`` product), which reads 512 values one by one (~0.9 s per file). Inside this
    context its module sees a ``netCDF4`` whose datasets hold ``x``/``y`` in memory; the values it
    computes are the same (checked in the tests).
    """
    import types

    import netCDF4

    shim = types.SimpleNamespace(Dataset=_LoadedCoordinates, num2date=netCDF4.num2date)
    with _BOM_PATCH_LOCK:
        original = importers.netCDF4
        importers.netCDF4 = shim
        try:
            yield
        finally:
            importers.netCDF4 = original


# --- header checks: refuse what would hang or exhaust memory before pysteps sees the file --------


def _check_gif(path: Path, max_pixels: int) -> None:
    head = _read_head(path, 10)
    if not is_gif(head):
        raise DatasetError(
            f"{path.name}: not a GIF file (starts with {head[:6]!r}); expected MeteoSwiss AQC GIF"
        )
    if len(head) < 10:
        raise DatasetError(f"{path.name}: truncated GIF header ({len(head)} bytes)")
    canvas = gif_info(path, max_frames=1)  # pillow grows the screen to the first frame's extent
    _check_size(path, canvas.height, canvas.width, max_pixels)


MCH_GIF_SIZE = (710, 640)  # (width, height): the CCS4 grid of 1 km pixels (pysteps' geodata)
MCH_GIF_PALETTE = bytes(
    v for i in range(256) for v in ((255, 255 - i, 255 - i) if i < 255 else (0, 0, 0))
)
"""The MeteoSwiss AQC GIF colour table ("COLOR=reddish" in its comment): index i is RGB
(255, 255 - i, 255 - i), index 255 (no data) is black. The importer reads the indices, so a GIF
with this table and grid is a MeteoSwiss frame whatever its file is called."""
_MCH_PRODUCT = re.compile(rb"PRDT=AQC(\d{9})(?!\d)")  # comment: product and its time, yydddHHMM


def is_mch_gif(path: str | os.PathLike) -> bool:
    """True when ``path`` is one MeteoSwiss AQC frame: a one-image GIF of the CCS4 grid's size
    with :data:`MCH_GIF_PALETTE` (nothing decoded: :func:`datasets.untrusted.gif_info`)."""
    try:
        if not is_gif(_read_head(Path(path), 6)):
            return False
        info = gif_info(path, max_frames=2)
    except (DatasetError, OSError, ValueError):
        return False
    return (
        (info.width, info.height) == MCH_GIF_SIZE
        and info.frames == 1
        and info.palette == MCH_GIF_PALETTE
    )


def mch_gif_time(path: str | os.PathLike) -> np.datetime64 | None:
    """Valid time a MeteoSwiss GIF states in its comment (``PRDT=AQC161932045``), else None."""
    try:
        found = _MCH_PRODUCT.search(gif_info(path, max_frames=1).comment)
        if found is None:
            return None
        stamp = datetime.strptime(found.group(1).decode(), RADAR_SOURCES["mch"].time_format)
    except (DatasetError, OSError, ValueError):
        return None
    return np.datetime64(stamp, "ns")


def _check_pgm(path: Path, max_pixels: int) -> None:
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as handle:
            head = handle.read(65536)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path.name}: cannot decompress/read the PGM file ({exc})") from exc
    if not head.startswith(b"P5"):
        raise DatasetError(f"{path.name}: not a binary PGM (P5) file (starts with {head[:8]!r})")
    lines = head.split(b"\n")
    if not any(line.startswith(b"#") for line in lines[:-1]):
        raise DatasetError(
            f"{path.name}: PGM header has no '#' metadata lines; not an FMI composite"
        )
    tokens = []
    for line in lines[1:-1]:
        if line.startswith(b"#"):
            continue
        tokens += line.split()
        if len(tokens) >= 3:
            break
    try:
        width, height, maxval = (int(t) for t in tokens[:3])
    except ValueError as exc:
        raise DatasetError(
            f"{path.name}: PGM header has no valid 'width height maxval' line"
        ) from exc
    if maxval > 255:
        raise DatasetError(f"{path.name}: PGM maxval {maxval} is not 8-bit; not an FMI composite")
    _check_size(path, height, width, max_pixels)
    if _is_gzip(path):  # pysteps reads header lines and the pixels: no more than that may unpack
        check_gzip(path, max_bytes=len(head) + width * height + 4096)


def _check_netcdf(path: Path, max_pixels: int) -> None:
    _check_netcdf_variable(path, max_pixels, "precipitation", "a BoM Rainfields3 file")


def _check_saf(path: Path, max_pixels: int) -> None:
    _check_netcdf_variable(path, max_pixels, "crr_intensity", "an NWC SAF CRR file")


def _check_netcdf_variable(path: Path, max_pixels: int, variable: str, product: str) -> None:
    """A netCDF file (declared sizes bounded) whose 2-D ``variable`` fits ``max_pixels``."""
    head = _read_head(path, 8)
    if not (head.startswith(NETCDF3_MAGIC) or head.startswith(HDF5_MAGIC)):
        raise DatasetError(f"{path.name}: not a netCDF file (starts with {head[:8]!r})")
    if head.startswith(NETCDF3_MAGIC):  # before the netCDF library allocates what it declares
        check_netcdf3_header(path, max_bytes=DEFAULT_MAX_DECODED_BYTES)
    else:  # netCDF-4: no links to other files, no plugin filters, declared sizes bounded
        check_hdf5(path, max_bytes=DEFAULT_MAX_DECODED_BYTES)
    try:
        import netCDF4

        with netCDF4.Dataset(path) as ds:
            if variable not in ds.variables:
                raise DatasetError(
                    f"{path.name}: no {variable!r} variable (has {', '.join(ds.variables)}); "
                    f"not {product}"
                )
            shape = ds.variables[variable].shape
    except DatasetError:
        raise
    except Exception as exc:  # netCDF4 raises OSError, RuntimeError, ... on damaged files
        raise DatasetError(
            f"{path.name}: cannot open as netCDF ({type(exc).__name__}: {exc})"
        ) from exc
    if len(shape) != 2:
        raise DatasetError(f"{path.name}: {variable!r} has shape {shape}; expected 2 dims (y, x)")
    _check_size(path, shape[0], shape[1], max_pixels)


def _hdf5_shapes(path: Path, kind: str) -> list[tuple[int, ...]]:
    head = _read_head(path, 8)
    if not head.startswith(HDF5_MAGIC):
        raise DatasetError(f"{path.name}: not an HDF5 file (starts with {head[:8]!r})")
    check_hdf5(path, max_bytes=DEFAULT_MAX_DECODED_BYTES)  # before any link is followed
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if kind == "knmi":
                if "image1/image_data" not in f or "geographic" not in f:
                    raise DatasetError(
                        f"{path.name}: no 'image1/image_data' or 'geographic' group; not a KNMI HDF5 "
                        "radar file"
                    )
                return [f["image1/image_data"].shape]
            shapes = [
                f[f"{name}/{sub}/data"].shape
                for name in f
                if name.startswith("dataset")
                for sub in f[name]
                if sub.startswith("data")
                and isinstance(f[f"{name}/{sub}"], h5py.Group)
                and "data" in f[f"{name}/{sub}"]
            ]
            if not shapes or "where" not in f:
                raise DatasetError(
                    f"{path.name}: no 'datasetN/dataN/data' arrays or no 'where' group; not an ODIM "
                    "HDF5 composite"
                )
            return shapes
    except DatasetError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ... on damaged files
        raise DatasetError(
            f"{path.name}: cannot open as HDF5 ({type(exc).__name__}: {exc})"
        ) from exc


ODIM_QUANTITIES = ("RATE", "DBZH")
"""ODIM quantities read, in order of preference: rain rate (mm/h), else reflectivity (dBZ, through
Marshall-Palmer Z = 200 R^1.6, pysteps' default). ACRR is left out: pysteps assumes a 15-minute
accumulation for every ODIM file instead of reading it from the file."""


def hdf5_attr_text(value) -> str:
    """An HDF5 attribute value as text (bytes decoded; a 1-element array unwrapped)."""
    value = value[0] if isinstance(value, np.ndarray) and value.shape else value
    return value.decode() if isinstance(value, bytes | np.bytes_) else str(value)


def _odim_quantity(path: Path) -> str:
    """The ODIM quantity to read (:data:`ODIM_QUANTITIES`) from the ``what`` groups of the file."""
    import h5py

    found = set()
    with h5py.File(path, "r") as f:
        for name, group in f.items():
            if not (name.startswith("dataset") and isinstance(group, h5py.Group)):
                continue
            for where in [group, *(g for n, g in group.items() if n.startswith("data"))]:
                what = where.get("what") if isinstance(where, h5py.Group) else None
                if isinstance(what, h5py.Group) and "quantity" in what.attrs:
                    found.add(hdf5_attr_text(what.attrs["quantity"]).strip())
    for quantity in ODIM_QUANTITIES:
        if quantity in found:
            return quantity
    raise DatasetError(
        f"{path.name}: ODIM quantities {', '.join(sorted(found)) or 'none'}; read are RATE (mm/h) "
        "and DBZH (dBZ)."
    )


def _check_knmi(path: Path, max_pixels: int) -> None:
    for shape in _hdf5_shapes(path, "knmi"):
        if len(shape) != 2:
            raise DatasetError(f"{path.name}: image_data has shape {shape}; expected 2 dims (y, x)")
        _check_size(path, shape[0], shape[1], max_pixels)


def _check_odim(path: Path, max_pixels: int) -> None:
    for shape in _hdf5_shapes(path, "odim"):
        if len(shape) != 2:
            raise DatasetError(
                f"{path.name}: an ODIM data array has shape {shape}; expected 2 dims"
            )
        _check_size(path, shape[0], shape[1], max_pixels)


MCH_CCS4_SHAPE = (640, 710)  # rows, columns of the Swiss CCS4 grid pysteps places MCH HDF5 on


def _check_mch_hdf5(path: Path, max_pixels: int) -> None:
    for shape in _hdf5_shapes(path, "odim"):  # the same ODIM-style groups
        if tuple(shape) != MCH_CCS4_SHAPE:
            raise DatasetError(
                f"{path.name}: a data array of shape {tuple(shape)}; MeteoSwiss HDF5 without "
                f"georeferencing is read on the CCS4 grid {MCH_CCS4_SHAPE} only"
            )
        _check_size(path, shape[0], shape[1], max_pixels)


def _check_geotiff(path: Path, max_pixels: int) -> None:
    from datasets.geotiff import geotiff_grid

    geotiff_grid(path, max_pixels=max_pixels)  # the TIFF directory only, nothing decoded


def _check_grib(path: Path, max_pixels: int) -> None:
    from datasets.grib import check_grib2

    check_grib2(path, max_pixels=max_pixels)  # declared grid and message count, nothing decoded


RADAR_SOURCES: dict[str, RadarSource] = {
    "mch": RadarSource(
        "mch",
        "MeteoSwiss",
        "MeteoSwiss AQC radar composite (GIF, mm per 5 min, 1 km)",
        "import_mch_gif",
        ("AQC*.gif", "*.gif"),
        r"(\d{2})(\d{3})(\d{2})(\d{2})",  # AQC yy doy HH MM
        "%y%j%H%M",
        _check_gif,
    ),
    "bom": RadarSource(
        "bom",
        "Australian Bureau of Meteorology",
        "BoM Rainfields3 radar rainfall (netCDF, mm per time step)",
        "import_bom_rf3",
        ("*.nc",),
        r"(\d{8})_(\d{6})",
        "%Y%m%d%H%M%S",
        _check_netcdf,
    ),
    "fmi": RadarSource(
        "fmi",
        "Finnish Meteorological Institute",
        "FMI radar reflectivity composite (PGM, dBZ, converted with Z = 223 R^1.53)",
        "import_fmi_pgm",
        ("*.pgm.gz", "*.pgm"),
        r"(\d{12})",
        "%Y%m%d%H%M",
        _check_pgm,
    ),
    "fmi_geotiff": RadarSource(
        "fmi_geotiff",
        "Finnish Meteorological Institute",
        "FMI radar reflectivity composite (GeoTIFF, dBZ, converted with Z = 223 R^1.53)",
        "read_fmi_geotiff",
        ("*.tif", "*.tiff"),
        r"(\d{12})",  # 201609281600_FINUTM.tif
        "%Y%m%d%H%M",
        _check_geotiff,
        library="datasets.geotiff",
    ),
    "knmi": RadarSource(
        "knmi",
        "KNMI - Royal Netherlands Meteorological Institute",
        "KNMI radar accumulation (HDF5, ACRR mm per 5 min)",
        "import_knmi_hdf5",
        ("*.h5", "*.hdf5"),
        r"(\d{12})",
        "%Y%m%d%H%M",
        _check_knmi,
    ),
    "odim": RadarSource(
        "odim",
        "ODIM HDF5 producer (e.g. OPERA)",
        "ODIM HDF5 radar composite (RATE mm/h, else DBZH dBZ with Z = 200 R^1.6)",
        "import_odim_hdf5",
        ("*.h5", "*.hdf", "*.hdf5"),
        r"(\d{12,14})",
        "%Y%m%d%H%M%S",
        _check_odim,
    ),
    "mch_hdf5": RadarSource(
        "mch_hdf5",
        "MeteoSwiss",
        "MeteoSwiss HDF5 composite on the CCS4 grid (RATE mm/h, else DBZH dBZ with Z = 316 R^1.5)",
        "import_mch_hdf5",
        ("*.h5", "*.hdf5"),
        r"(\d{2})(\d{3})(\d{2})(\d{2})",  # RZC yy doy HH MM, as the GIF files
        "%y%j%H%M",
        _check_mch_hdf5,
    ),
    "saf": RadarSource(
        "saf",
        "EUMETSAT NWC SAF",
        "NWC SAF convective rainfall rate from satellite (CRR/CRR-Ph netCDF, mm/h)",
        "import_saf_crri",
        ("*CRR*.nc",),
        r"(\d{8})T(\d{6})",  # S_NWC_CRR_MSG4_Europe-VISIR_20180601T070000Z.nc
        "%Y%m%d%H%M%S",
        _check_saf,
    ),
    "grib": RadarSource(
        "grib",
        "GRIB2 producer (e.g. NOAA MRMS)",
        "GRIB2 rain rate on a latitude/longitude grid (e.g. NOAA MRMS PrecipRate, mm/h)",
        "read_grib2",
        ("*.grib2", "*.grb2"),
        r"(\d{8})-(\d{6})",  # MRMS: ..._20190601-120000.grib2
        "%Y%m%d%H%M%S",
        _check_grib,
        library="datasets.grib",
    ),
}


def _gzipped_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes inside a gzip file."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path.name}: damaged gzip file ({exc})") from exc


def _hdf5_radar_source(path: Path) -> str | None:
    """``knmi``, ``odim``, ``mch_hdf5``, ``saf`` or ``bom`` from an HDF5 file's top level, else None."""
    check_hdf5(path, max_bytes=DEFAULT_MAX_DECODED_BYTES)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            names = set(f)
            if {"image1", "geographic"} <= names:
                return "knmi"
            if "where" in names and any(n.startswith("dataset") for n in names):
                # ODIM places the grid with where/projdef; MeteoSwiss' files leave it out
                return "odim" if "projdef" in f["where"].attrs else "mch_hdf5"
            if "crr_intensity" in names:
                return "saf"  # netCDF4 files are HDF5 inside
            if "precipitation" in names:
                return "bom"
    except Exception as exc:  # h5py raises OSError, KeyError, ... on damaged files
        raise DatasetError(
            f"{path.name}: cannot open as HDF5 ({type(exc).__name__}: {exc})"
        ) from exc
    return None


def _netcdf3_radar_source(path: Path) -> str:
    """``saf`` for a classic netCDF file with ``crr_intensity``, else ``bom`` (checked later)."""
    check_netcdf3_header(path, max_bytes=DEFAULT_MAX_DECODED_BYTES)
    try:
        import netCDF4

        with netCDF4.Dataset(path) as ds:
            return "saf" if "crr_intensity" in ds.variables else "bom"
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot open as netCDF ({exc})") from exc


def guess_radar_source(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> str:
    """The radar source of a file, from its first bytes and (for HDF5) its groups.

    GIF -> ``mch``; PGM (optionally gzipped) -> ``fmi``; netCDF with a ``precipitation``
    variable -> ``bom``; netCDF with ``crr_intensity`` -> ``saf``; HDF5 with ``image1`` and
    ``geographic`` -> ``knmi``; HDF5 with
    ``datasetN`` groups and ``where`` -> ``odim`` (``mch_hdf5`` when ``where`` has no
    ``projdef``); TIFF -> ``fmi_geotiff``; ``GRIB`` with
    edition 2 -> ``grib``.

    Raises
    ------
    DatasetError
        Missing or empty file, GRIB edition 1, or none of the formats above.
    """
    path = Path(path)
    _check_file(path, max_bytes)
    head = _read_head(path, 8)
    if is_gif(head):
        return "mch"
    if head.startswith(b"P5"):
        return "fmi"
    if head.startswith(GZIP_MAGIC) and _gzipped_head(path, 2) == b"P5":
        return "fmi"
    if head.startswith(NETCDF3_MAGIC):
        return _netcdf3_radar_source(path)
    if head.startswith(HDF5_MAGIC):
        source = _hdf5_radar_source(path)
        if source is not None:
            return source
    if head[:4] in TIFF_MAGIC:
        return "fmi_geotiff"
    if head.startswith(GRIB_MAGIC) and len(head) == 8:
        if head[7] == 2:
            return "grib"
        raise DatasetError(
            f"{path.name}: GRIB edition {head[7]}; only GRIB2 is read (convert it, e.g. with "
            "ecCodes' grib_set -s edition=2)."
        )
    raise DatasetError(
        f"{path.name}: cannot tell which radar format this is (starts with {head!r}); pass source= one "
        f"of {', '.join(RADAR_SOURCES)}"
    )


# --- one file ------------------------------------------------------------------------------------


def read_radar_file(
    path: str | os.PathLike,
    *,
    source: str,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, dict]:
    """Read one radar file as rain rate in mm/h.

    Parameters
    ----------
    path : path-like
        The file.
    source : {"mch", "bom", "fmi", "fmi_geotiff", "knmi", "odim", "mch_hdf5", "saf", "grib", "auto"}
        Its format (see the module doc); ``"auto"`` guesses it (:func:`guess_radar_source`).
    max_bytes, max_pixels : int
        Refuse larger files / fields (protects against corrupt headers and huge inputs).

    Returns
    -------
    rain : numpy.ndarray
        float32 ``(H, W)`` rain rate in mm/h, row 0 at the northern edge, NaN outside the radar
        domain.
    geometry : dict
        ``pixel_km`` (float), ``x`` ``(W,)`` and ``y`` ``(H,)`` pixel-centre coordinates (km, or
        degrees east/north when ``latlon`` is True), ``latlon`` (bool), ``projection`` (proj4 text), ``institution``, ``accutime_min`` (float or None),
        ``importer`` (the pysteps function used).

    Raises
    ------
    DatasetError
        Missing, empty, too large, truncated or unreadable file; wrong format or dims; all-NaN or
        negative rain rates; missing georeferencing. The message names the file.
    """
    path = Path(path)
    try:
        return _read_radar_file(path, source=source, max_bytes=max_bytes, max_pixels=max_pixels)
    except DatasetError as exc:  # library messages quote full paths: keep the base name only
        raise DatasetError(public_message(str(exc), path)) from exc.__cause__


def _read_radar_file(
    path: Path, *, source: str, max_bytes: int, max_pixels: int
) -> tuple[np.ndarray, dict]:
    if str(source).lower() == "auto":
        source = guess_radar_source(path, max_bytes=max_bytes)
    spec = _source(source)
    _check_file(path, max_bytes)
    spec.check_header(path, max_pixels)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"), _quiet():
            warnings.simplefilter("ignore")
            field, _quality, metadata = _import_with(spec.name, path, max_pixels)
            from pysteps.utils.conversion import to_rainrate

            field = np.ma.filled(np.ma.asarray(field, dtype=np.float64), np.nan)
            if field.ndim != 2:
                raise DatasetError(
                    f"{path.name}: field has shape {field.shape}; expected 2 dims (y, x)"
                )
            rain, meta = to_rainrate(field, dict(metadata))
    except DatasetError:
        raise
    except MemoryError as exc:
        raise DatasetError(f"{path.name}: too large to read into memory") from exc
    except Exception as exc:  # any importer failure on a damaged or foreign file
        raise DatasetError(
            f"{path.name}: could not be read as {spec.description} with {spec.importer} "
            f"({type(exc).__name__}: {exc}). Check the file and source=."
        ) from exc
    rain = np.asarray(rain, dtype=np.float64)
    rain[~np.isfinite(rain)] = np.nan
    if np.isnan(rain).all():
        raise DatasetError(f"{path.name}: every pixel is NaN (no radar coverage); nothing to read")
    zero = meta.get("zerovalue")
    if zero is not None and np.isfinite(zero):
        rain[rain <= float(zero) + 1e-9] = 0.0
    low = float(np.nanmin(rain))
    if low < -1e-3:
        raise DatasetError(
            f"{path.name}: negative rain rates (min {low:.3g} mm/h) after conversion; the file is not "
            f"a {spec.description} or its scaling is wrong"
        )
    rain = np.clip(rain, 0.0, None)
    geometry = _geometry(path, meta, rain.shape)
    if geometry.pop("flip"):
        rain = rain[::-1]
    geometry.update(
        institution=str(meta.get("institution", spec.institution)),
        accutime_min=_float_or_none(meta.get("accutime")),
        importer=spec.importer,
    )
    return np.ascontiguousarray(rain, dtype=np.float32), geometry


def _geometry(path: Path, meta: dict, shape: tuple[int, int]) -> dict:
    """Pixel size (km) and pixel-centre coordinates (km, or degrees on lat/lon grids) from metadata."""
    try:
        x1, x2, y1, y2 = (float(meta[k]) for k in ("x1", "x2", "y1", "y2"))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path.name}: no georeferencing (x1, x2, y1, y2) in the file's metadata; cannot place it "
            "on a km grid"
        ) from exc
    unit = str(meta.get("cartesian_unit", "m"))
    to_km = {"m": 1e-3, "km": 1.0, "degrees": 1.0}.get(unit)
    if to_km is None:
        raise DatasetError(
            f"{path.name}: coordinates in {unit!r}; only projected m or km, or latitude/longitude "
            "in degrees, are supported"
        )
    height, width = shape
    dx = _float_or_none(meta.get("xpixelsize")) or (x2 - x1) / width
    dy = _float_or_none(meta.get("ypixelsize")) or (y2 - y1) / height
    if not (np.isfinite(dx) and np.isfinite(dy) and dx > 0 and dy > 0):
        raise DatasetError(f"{path.name}: invalid pixel size ({dx}, {dy}) in the metadata")
    x = (x1 + (np.arange(width) + 0.5) * dx) * to_km
    y = (y2 - (np.arange(height) + 0.5) * dy) * to_km  # north at row 0
    if unit == "degrees":
        if not (-90.0 <= y.min() and y.max() <= 90.0):
            raise DatasetError(f"{path.name}: latitudes outside -90..90 degrees in the metadata")
        pixel_km = _latlon_pixel_km(y, dy, dx)
    else:
        pixel_km = float(np.sqrt(dx * dy) * to_km)
    return {
        "pixel_km": pixel_km,
        "x": x,
        "y": y,
        "latlon": unit == "degrees",
        "projection": str(meta.get("projection") or ""),
        "flip": meta.get("yorigin", "upper") == "lower",
    }


def _latlon_pixel_km(lat: np.ndarray, dlat: float, dlon: float) -> float:
    """Geometric-mean pixel size in km of a lat/lon grid at its centre latitude (approximate)."""
    rad = np.pi / 180.0
    centre = 0.5 * (float(lat.min()) + float(lat.max()))
    dy = EARTH_RADIUS_KM * dlat * rad
    dx = EARTH_RADIUS_KM * dlon * rad * np.cos(centre * rad)
    return float(np.sqrt(dy * dx))


# --- sequences -----------------------------------------------------------------------------------


def parse_timestamp(path: str | os.PathLike, *, source: str) -> np.datetime64:
    """Valid time written in a radar file name.

    E.g. ``AQC161932100V_00005.801.gif`` (MeteoSwiss: year, day of year, hour, minute) ->
    2016-07-11T21:00.

    Raises
    ------
    DatasetError
        The name holds no time stamp in the source's pattern.
    """
    spec = _source(source)
    name = Path(path).name
    pattern = r"AQC" + spec.time_regex if spec.name == "mch" else spec.time_regex
    for match in re.finditer(pattern, name):
        text = "".join(match.groups())
        formats = [spec.time_format]
        if spec.name == "odim" and len(text) == 12:
            formats = ["%Y%m%d%H%M"]
        for fmt in formats:
            try:
                return np.datetime64(datetime.strptime(text, fmt), "ns")
            except ValueError:
                continue
    raise DatasetError(
        f"{name}: no time stamp in the file name (expected {spec.time_format!r} as in the "
        f"{spec.name} archive); pass timestamps= explicitly"
    )


def file_time(
    path: str | os.PathLike, *, source: str, max_pixels: int = MAX_PIXELS
) -> np.datetime64:
    """Valid time of a radar file: inside the file for GRIB2, else from its name.

    Raises
    ------
    DatasetError
        No time stamp (:func:`parse_timestamp`), or a GRIB2 file its header check refuses.
    """
    if _source(source).name == "grib":
        from datasets.grib import grib_valid_time

        try:
            return grib_valid_time(path, max_pixels=max_pixels)
        except DatasetError as exc:
            raise DatasetError(public_message(str(exc), Path(path))) from exc.__cause__
    return parse_timestamp(path, source=source)


def find_radar_files(folder: str | os.PathLike, *, source: str) -> list[Path]:
    """Files of ``source`` in ``folder`` (not recursive), sorted by the time in their names.

    Raises
    ------
    DatasetError
        The folder is missing or holds no file matching the source's patterns.
    """
    spec = _source(source)
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"radar folder {folder} does not exist")
    files = sorted({p for pattern in spec.glob for p in folder.glob(pattern) if p.is_file()})
    if not files:
        raise DatasetError(
            f"no {spec.description} files ({', '.join(spec.glob)}) in {folder}; check the folder "
            "and source="
        )
    return sorted(files, key=lambda p: (file_time(p, source=source), p.name))


def read_radar_sequence(
    files: Sequence[str | os.PathLike],
    *,
    source: str,
    grid: int | None = 128,
    resolution_km: float | None = 1.0,
    crop: str | tuple[int, int] | None = "rain",
    crop_threshold: float = DEFAULT_CROP_THRESHOLD,
    timestamps: Sequence | None = None,
    licence: str = "as given by the data provider",
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> xr.DataArray:
    """Read radar files of one source into one sequence on a model grid, in mm/h.

    Parameters
    ----------
    files : sequence of path-like
        The files, any order; they are sorted by time.
    source : {"mch", "bom", "fmi", "fmi_geotiff", "knmi", "odim", "mch_hdf5", "saf", "grib", "auto"}
        Their format; ``"auto"`` guesses it from the first file.
    grid : int or None
        Side of the square output window in pixels; None keeps the whole (resampled) domain.
    resolution_km : float or None
        Output pixel size. An integer multiple (within 5 %) of the native pixel size is reached by
        block-averaging (a block with less than half its pixels valid becomes NaN); any other
        size (e.g. 1 km from MRMS's ~0.97 km lat/lon pixels) by resampling the whole domain
        (:class:`model.regrid.GridResampler`: area-weighted means when coarser, bilinear when
        finer, per axis, centred on the native grid; on lat/lon grids each axis's local scale at
        the centre). None keeps the native grid.
    crop : "rain", "center", (row, col) or None
        Where to cut the ``grid`` window: where it rains most (module doc), the domain centre, or
        an explicit upper-left corner in output pixels; None (or ``grid=None``) keeps the domain.
    crop_threshold : float
        Rain rate in mm/h counted by ``crop="rain"``.
    timestamps : sequence of datetime-like, optional
        Valid times of ``files`` (same order), when the file names do not carry them.
    licence : str
        Stored in ``attrs["licence"]``.
    max_bytes, max_pixels : int
        Limits per file, as in :func:`read_radar_file`.

    Returns
    -------
    xarray.DataArray
        float32 rain rate in mm/h, dims ``(sample, time, channel, y, x)`` with ``sample`` of
        length 1; ``time`` datetime64 valid times (also as ``timestamp (sample, time)``); ``y``
        and ``x`` in km (``units`` "km"), or latitude/longitude in degrees for GRIB2 grids
        (``units`` "degrees_north"/"degrees_east"), row 0 north; NaN outside the radar domain;
        attrs ``units``, ``time_step`` (ISO 8601, e.g. ``"PT5M"``), ``domain``, ``source``,
        ``licence``, ``description``, ``synthetic=0``, ``projection``, ``resolution_km`` (grid
        spacing; on lat/lon grids the local scale at the centre), ``crop_row``/``crop_col`` (upper-left
        corner in the resampled domain, -1 when not cropped), ``crop_threshold``,
        ``nan_fraction``, ``folder``.

    Raises
    ------
    DatasetError
        Any file unreadable (see :func:`read_radar_file`); no files; duplicated times; time steps
        that are not all equal (the message lists them); files on different grids; ``grid``
        larger than the domain; a resolution that is not a positive number.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise DatasetError(f"no {source} radar files given")
    if str(source).lower() == "auto":
        source = guess_radar_source(paths[0], max_bytes=max_bytes)  # then used for every file
    spec = _source(source)
    if timestamps is None:
        times = [file_time(p, source=source, max_pixels=max_pixels) for p in paths]
    else:
        if len(timestamps) != len(paths):
            raise DatasetError(
                f"{len(timestamps)} timestamps for {len(paths)} files; give one per file"
            )
        try:
            times = [np.datetime64(t, "ns") for t in timestamps]
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"timestamps are not datetimes ({exc})") from exc
    order = np.argsort(np.array(times, dtype="datetime64[ns]"), kind="stable")
    paths = [paths[i] for i in order]
    times_arr = np.array([times[i] for i in order], dtype="datetime64[ns]")
    step_min = _common_step(paths, times_arr)

    stack, geometry, y_coord, x_coord, pixel_km = _read_frames(
        paths, source=source, resolution_km=resolution_km, max_bytes=max_bytes,
        max_pixels=max_pixels,
    )  # fmt: skip  # (T, H', W')

    row = col = -1
    if grid is not None and crop is not None:
        row, col = _crop_origin(
            stack, grid=int(grid), crop=crop, threshold=crop_threshold, where=paths[0].parent
        )
        stack = stack[:, row : row + grid, col : col + grid]
        y_coord, x_coord = y_coord[row : row + grid], x_coord[col : col + grid]

    nan_fraction = float(np.isnan(stack).mean())
    data = stack[None, :, None].astype(np.float32)  # (1, T, 1, H, W)
    array = xr.DataArray(
        data,
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "sample": [0],
            "time": times_arr,
            "channel": [CHANNEL],
            "y": y_coord.astype(np.float64),
            "x": x_coord.astype(np.float64),
            "timestamp": (("sample", "time"), times_arr[None, :]),
        },
        name=CHANNEL,
    )
    latlon = geometry["latlon"]
    array.y.attrs["units"] = "degrees_north" if latlon else "km"
    array.x.attrs["units"] = "degrees_east" if latlon else "km"
    spacing = (
        f"{abs(float(y_coord[1] - y_coord[0])) if len(y_coord) > 1 else 0:.3g} degree "
        f"latitude/longitude grid (~{pixel_km:.3g} km)"
        if latlon
        else f"{pixel_km:.3g} km grid"
    )
    array.attrs = {
        "units": "mm/h",
        "time_step": "unknown" if step_min is None else iso_duration(step_min * 60),
        "domain": "radar",
        "source": f"{geometry['institution']} via {geometry['importer']}",
        "licence": licence,
        "description": (
            f"{spec.description}; rain rate in mm/h on a {spacing}, "
            f"{len(paths)} frames from {paths[0].name} to {paths[-1].name}; NaN outside the radar "
            "domain."
        ),
        "synthetic": 0,
        "time_zone": UTC,  # every radar source stamps its frames in UTC
        "radar_source": spec.name,
        "projection": geometry["projection"],
        # x/y in km: their spacing; lat/lon grids: the local scale at the centre (approximate)
        "resolution_km": pixel_km,
        "crop_row": int(row),
        "crop_col": int(col),
        "crop_threshold": float(crop_threshold),
        "nan_fraction": nan_fraction,
        "folder": str(paths[0].parent),
    }
    return array


# --- helpers -------------------------------------------------------------------------------------


def _source(source: str) -> RadarSource:
    key = str(source).lower()
    if key not in RADAR_SOURCES:
        raise DatasetError(
            f"unknown radar source {source!r}; use one of {', '.join(RADAR_SOURCES)}"
        )
    return RADAR_SOURCES[key]


def _check_file(path: Path, max_bytes: int) -> None:
    check_file(
        path,
        max_bytes=max_bytes,
        hint="Check the folder and the file name.",
        limit_hint="A radar composite is a few MB; raise max_bytes if the file is genuine.",
    )


def _check_size(path: Path, height: int, width: int, max_pixels: int) -> None:
    if height < 2 or width < 2:
        raise DatasetError(f"{path.name}: field of {height} x {width} pixels is too small.")
    if height * width > max_pixels:
        raise DatasetError(
            f"{path.name}: field of {height} x {width} pixels is larger than the limit of "
            f"{max_pixels:,}; raise max_pixels if the file is genuine."
        )


def _read_head(path: Path, n: int) -> bytes:
    try:
        return head(path, n)
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot be read ({exc})") from exc


def _is_gzip(path: Path) -> bool:
    return _read_head(path, 2) == GZIP_MAGIC


@contextlib.contextmanager
def _quiet():
    """Silence pysteps' prints during an import."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _float_or_none(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _common_step(paths: list[Path], times: np.ndarray) -> float | None:
    """The one time step in minutes; DatasetError on duplicates or mixed steps."""
    if len(times) < 2:
        return None
    diffs = np.diff(times).astype("timedelta64[s]").astype(np.int64)  # seconds
    if (diffs == 0).any():
        i = int(np.flatnonzero(diffs == 0)[0])
        raise DatasetError(
            f"{paths[i].name} and {paths[i + 1].name} have the same time {times[i]}; remove the "
            "duplicate"
        )
    steps = np.unique(diffs)
    if len(steps) > 1:
        i = int(np.flatnonzero(diffs != diffs[0])[0])
        listed = ", ".join(f"{s / 60:g} min" for s in steps)
        raise DatasetError(
            f"time steps differ in {paths[0].parent} ({listed}); first change between "
            f"{paths[i].name} and {paths[i + 1].name}. Never mix time steps: read the files of "
            "one product and step at a time, or fill the gaps."
        )
    return float(steps[0]) / 60.0


def _read_frames(paths: list[Path], *, source: str, resolution_km, max_bytes: int,
                 max_pixels: int):  # fmt: skip
    """Every file's frame at ``resolution_km`` (block means or resampling, as
    :func:`read_radar_sequence` says): ``(stack (T, H', W'), geometry, y, x, pixel_km)``."""
    frames, geometry, factor, resampler = [], None, 1, None
    for path in paths:
        rain, geo = read_radar_file(path, source=source, max_bytes=max_bytes, max_pixels=max_pixels)
        if geometry is None:
            geometry = geo
            factor = _block_factor(geo["pixel_km"], resolution_km)
            if factor is None:  # not an integer multiple: resampled (model.regrid)
                resampler = _grid_resampler(geo, rain.shape, float(resolution_km))
        elif rain.shape != (len(geometry["y"]), len(geometry["x"])):
            raise DatasetError(
                f"{path.name}: grid {rain.shape} differs from {paths[0].name} "
                f"({len(geometry['y'])}, {len(geometry['x'])}); read one grid at a time"
            )
        if resampler is not None:
            frames.append(resampler.to_model(rain))  # (H', W')
        else:
            frames.append(_block_mean(rain, factor))  # (H', W')
    stack = np.stack(frames)  # (T, H', W')
    if resampler is not None:
        y_coord = _resampled_coord(geometry["y"], resampler.y)
        x_coord = _resampled_coord(geometry["x"], resampler.x)
    else:
        y_coord = _block_coord(geometry["y"], factor)
        x_coord = _block_coord(geometry["x"], factor)
    pixel_km = float(resolution_km) if resampler is not None else geometry["pixel_km"] * factor
    return stack, geometry, y_coord, x_coord, pixel_km


def _block_factor(native_km: float, resolution_km: float | None) -> int | None:
    """Block size reaching ``resolution_km`` from ``native_km`` pixels: 1 for None, the integer
    multiple (within 5 %), or None when it is no such multiple (then resampled)."""
    if resolution_km is None:
        return 1
    if not (float(resolution_km) > 0 and np.isfinite(float(resolution_km))):
        raise DatasetError(f"resolution_km={resolution_km}: give a positive size in km or None")
    ratio = float(resolution_km) / native_km
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > 0.05 * factor:
        return None
    return factor


def _grid_resampler(geometry: dict, shape: tuple[int, int], resolution_km: float):
    """:class:`model.regrid.GridResampler` from a native grid (``geometry`` of
    :func:`read_radar_file`, lat/lon included: the local scale at the centre) to
    ``resolution_km`` pixels: area-weighted means when coarser, bilinear when finer."""
    from model.regrid import GridResampler, PixelSize, latlon_pixel_size

    if geometry["latlon"]:
        size = latlon_pixel_size(np.asarray(geometry["y"]), np.asarray(geometry["x"]))
    else:
        km = float(geometry["pixel_km"])
        size = PixelSize(km, km, "projected grid spacing")
    return GridResampler.for_pixel_size(shape, size, resolution_km)


def _resampled_coord(coord: np.ndarray, axis) -> np.ndarray:
    """Coordinates of the resampled pixels of one axis (a :class:`model.regrid.AxisMap`): the
    native coordinates continued linearly to the new pixel centres."""
    coord = np.asarray(coord, dtype=np.float64)
    step = (coord[-1] - coord[0]) / (len(coord) - 1) if len(coord) > 1 else 0.0
    return coord[0] + axis.model_to_data_index(np.arange(axis.n_model)) * step


def _block_mean(field: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks; NaN where under half a block is valid."""
    if factor == 1:
        return field.astype(np.float32)
    h, w = (field.shape[0] // factor) * factor, (field.shape[1] // factor) * factor
    blocks = field[:h, :w].reshape(h // factor, factor, w // factor, factor)  # (H', f, W', f)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))  # (H', W')
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[count < (factor * factor) / 2] = np.nan
    return mean.astype(np.float32)


def _block_coord(coord: np.ndarray, factor: int) -> np.ndarray:
    n = (len(coord) // factor) * factor
    return coord[:n].reshape(-1, factor).mean(axis=1)


def _window_sums(counts: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``counts`` (H, W) over every ``size`` x ``size`` window: (H-size+1, W-size+1)."""
    integral = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = counts.cumsum(axis=0).cumsum(axis=1)
    return (
        integral[size:, size:]
        - integral[:-size, size:]
        - integral[size:, :-size]
        + integral[:-size, :-size]
    )


def rain_crop_origin(
    frames: np.ndarray, *, size: int, threshold: float = DEFAULT_CROP_THRESHOLD
) -> tuple[int, int]:
    """Upper-left corner of the ``size`` x ``size`` window where it rains most.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(T, H, W)`` rain rate in mm/h, NaN outside the domain.
    size : int
        Window side in pixels (<= H and <= W).
    threshold : float
        Rain rate in mm/h; the window maximises the count of pixels >= threshold over all frames.

    Returns
    -------
    (int, int)
        Row and column of the window's upper-left pixel. If no pixel reaches ``threshold``, the
        window with the most valid pixels. Ties go to the first window in row-major order.
    """
    with np.errstate(invalid="ignore"):
        rainy = (frames >= threshold).sum(axis=0)  # (H, W) NaN compares False
    sums = _window_sums(rainy, size)
    if sums.max() == 0:
        sums = _window_sums(np.isfinite(frames).sum(axis=0), size)
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(row), int(col)


def _crop_origin(stack: np.ndarray, *, grid: int, crop, threshold: float, where) -> tuple[int, int]:
    height, width = stack.shape[1:]
    if grid < 1 or grid > height or grid > width:
        raise DatasetError(
            f"grid={grid} does not fit the {height} x {width} domain of {where} at this "
            "resolution; use a smaller grid or a finer resolution_km"
        )
    if crop == "rain":
        return rain_crop_origin(stack, size=grid, threshold=threshold)
    if crop == "center":
        return (height - grid) // 2, (width - grid) // 2
    if isinstance(crop, tuple | list) and len(crop) == 2:
        row, col = int(crop[0]), int(crop[1])
        if not (0 <= row <= height - grid and 0 <= col <= width - grid):
            raise DatasetError(
                f"crop corner {crop} puts the {grid}-pixel window outside the {height} x {width} "
                f"domain of {where}"
            )
        return row, col
    raise DatasetError(f"crop={crop!r}; use 'rain', 'center', (row, col), or grid=None")


__all__ = [
    "RADAR_SOURCES",
    "file_time",
    "find_radar_files",
    "guess_radar_source",
    "parse_timestamp",
    "rain_crop_origin",
    "read_radar_file",
    "read_radar_sequence",
    "sliding_windows",
]

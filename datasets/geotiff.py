"""FMI radar reflectivity composites in GeoTIFF, read with pillow (no GDAL).

pysteps reads these with :func:`pysteps.io.importers.import_fmi_geotiff`, which needs GDAL's
Python bindings; PyPI has no binary wheel of them (``pip download --only-binary=:all: gdal``:
"No matching distribution found"), so that importer cannot run from the package registry. This
module returns what it returns, from the same file, with pillow (already a requirement):

- :func:`geotiff_grid` reads the TIFF directory only (pillow opens lazily; no pixel is decoded):
  one 8-bit band, a declared size of at most ``max_pixels``, and the GeoTIFF tags that place it
  (``ModelPixelScale`` 33550, ``ModelTiepoint`` 33922, ``GeoKeyDirectory`` 34735 with an EPSG
  code of a projected or geographic CRS; no ``ModelTransformation`` rotation).
- :func:`read_fmi_geotiff` decodes the band: dBZ = (value - 64) / 2, 255 = no data (NaN), with the
  metadata pysteps writes (Z = 223 R^1.53, 5-minute product, ``yorigin="upper"``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError
from datasets.magic import TIFF_MAGIC

PIXEL_SCALE_TAG = 33550
TIEPOINT_TAG = 33922
TRANSFORMATION_TAG = 34264
GEOKEY_DIRECTORY_TAG = 34735
DATETIME_TAG = 306
RASTER_TYPE_KEY = 1025  # GTRasterTypeGeoKey: 1 = PixelIsArea, 2 = PixelIsPoint
GEOGRAPHIC_CRS_KEY = 2048
PROJECTED_CRS_KEY = 3072
NO_DATA = 255
FMI_ZR = (223.0, 1.53)


@dataclass(frozen=True)
class GeoGrid:
    """A GeoTIFF's declared grid: size, outer edges in CRS units, pixel size, CRS."""

    width: int
    height: int
    x1: float
    y1: float
    x2: float
    y2: float
    xpixelsize: float
    ypixelsize: float
    epsg: int
    projection: str
    cartesian_unit: str  # "m" or "degrees"


def is_tiff(data: bytes) -> bool:
    """True when ``data`` starts with a classic TIFF header."""
    return data[:4] in TIFF_MAGIC


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path, formats=["TIFF"])  # reads the directory, not the pixels
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DatasetError(
            f"{path.name}: cannot be opened as TIFF ({type(exc).__name__})."
        ) from exc


def _geokeys(path: Path, tags) -> dict[int, int]:
    directory = tags.get(GEOKEY_DIRECTORY_TAG)
    if directory is None or len(directory) < 4:
        raise DatasetError(f"{path.name}: a TIFF without GeoTIFF keys; it is not placed on a map.")
    count = int(directory[3])
    keys = {}
    for k in range(count):
        entry = directory[4 + 4 * k : 8 + 4 * k]
        if len(entry) < 4:
            raise DatasetError(f"{path.name}: its GeoTIFF key directory is cut off.")
        key, location, _n, value = (int(v) for v in entry)
        if location == 0:  # the value is stored in place (a SHORT)
            keys[key] = value
    return keys


def geotiff_grid(path: str | os.PathLike, *, max_pixels: int) -> GeoGrid:
    """The declared grid of a one-band 8-bit GeoTIFF, from its directory only (module doc).

    Raises
    ------
    DatasetError
        Not a TIFF, several bands or not 8-bit, a declared size over ``max_pixels``, no or
        unsupported georeferencing (rotation, no EPSG code, unknown code). One sentence.
    """
    import pyproj

    path = Path(path)
    with _open(path) as image:
        width, height = image.size
        tags = image.tag_v2
        mode = image.mode
        if width < 2 or height < 2 or width * height > max_pixels:
            raise DatasetError(
                f"{path.name}: declares {height:,} x {width:,} pixels; images from 2 x 2 up to "
                f"{max_pixels:,} pixels are read."
            )
        if mode not in ("L", "P"):
            raise DatasetError(
                f"{path.name}: TIFF of mode {mode}; an FMI composite is one 8-bit band."
            )
        if TRANSFORMATION_TAG in tags:
            raise DatasetError(
                f"{path.name}: the GeoTIFF is rotated or sheared (ModelTransformation); only "
                "north-up grids are read."
            )
        scale, tiepoint = tags.get(PIXEL_SCALE_TAG), tags.get(TIEPOINT_TAG)
        keys = _geokeys(path, tags)
    if not scale or not tiepoint or len(scale) < 2 or len(tiepoint) < 6:
        raise DatasetError(f"{path.name}: no GeoTIFF pixel scale and tie point; not placed.")
    epsg = keys.get(PROJECTED_CRS_KEY) or keys.get(GEOGRAPHIC_CRS_KEY)
    if not epsg or epsg == 32767:  # 32767: user-defined, spelt out in other keys
        raise DatasetError(
            f"{path.name}: its GeoTIFF CRS has no EPSG code; save it with one (e.g. EPSG:3067)."
        )
    try:
        crs = pyproj.CRS.from_epsg(epsg)
        with warnings.catch_warnings():  # "you will likely lose ... information": pysteps' form
            warnings.simplefilter("ignore", UserWarning)
            projection = crs.to_proj4()
    except pyproj.exceptions.CRSError as exc:
        raise DatasetError(f"{path.name}: unknown EPSG code {epsg} in its GeoTIFF keys.") from exc
    dx, dy = float(scale[0]), float(scale[1])
    i, j, x, y = (float(tiepoint[k]) for k in (0, 1, 3, 4))
    if not (dx > 0 and dy > 0 and np.isfinite([i, j, x, y]).all()):
        raise DatasetError(f"{path.name}: invalid GeoTIFF pixel scale ({dx}, {dy}).")
    x1, y2 = x - i * dx, y + j * dy  # upper-left corner of pixel (0, 0)
    if keys.get(RASTER_TYPE_KEY) == 2:  # PixelIsPoint: the tie point is a pixel centre
        x1, y2 = x1 - dx / 2, y2 + dy / 2
    return GeoGrid(
        width,
        height,
        x1,
        y2 - height * dy,
        x1 + width * dx,
        y2,
        dx,
        dy,
        int(epsg),
        projection,
        "degrees" if crs.is_geographic else "m",
    )


def read_fmi_geotiff(path: str | os.PathLike, *, max_pixels: int) -> tuple[np.ndarray, None, dict]:
    """An FMI GeoTIFF composite as pysteps' ``import_fmi_geotiff`` returns it (module doc).

    Returns
    -------
    field : numpy.ndarray
        float64 ``(H, W)`` reflectivity in dBZ, row 0 north, NaN where the file has 255.
    quality : None
    metadata : dict
        ``projection``, ``x1``, ``y1``, ``x2``, ``y2``, ``xpixelsize``, ``ypixelsize``,
        ``cartesian_unit``, ``yorigin="upper"``, ``institution``, ``unit="dBZ"``,
        ``transform="dB"``, ``accutime=5.0``, ``threshold``, ``zerovalue``, ``zr_a=223``,
        ``zr_b=1.53``, ``valid_time`` (TIFF DateTime tag, or None).
    """
    path = Path(path)
    grid = geotiff_grid(path, max_pixels=max_pixels)
    with _open(path) as image:
        raw = np.asarray(image, dtype=np.float64)  # (H, W) stored values (palette indices too)
        stamp = image.tag_v2.get(DATETIME_TAG)
    if raw.shape != (grid.height, grid.width):
        raise DatasetError(f"{path.name}: decodes to {raw.shape}, not its declared size.")
    dbz = (raw - 64.0) / 2.0
    dbz[raw == NO_DATA] = np.nan
    finite = dbz[np.isfinite(dbz)]
    lowest = float(finite.min()) if finite.size else np.nan
    metadata = {
        "projection": grid.projection,
        "x1": grid.x1,
        "y1": grid.y1,
        "x2": grid.x2,
        "y2": grid.y2,
        "xpixelsize": grid.xpixelsize,
        "ypixelsize": grid.ypixelsize,
        "cartesian_unit": grid.cartesian_unit,
        "yorigin": "upper",
        "institution": "Finnish Meteorological Institute",
        "unit": "dBZ",
        "transform": "dB",
        "accutime": 5.0,
        "threshold": float(finite[finite > lowest].min()) if (finite > lowest).any() else lowest,
        "zerovalue": lowest,
        "zr_a": FMI_ZR[0],
        "zr_b": FMI_ZR[1],
        "valid_time": _tiff_time(stamp),
    }
    return dbz, None, metadata


def _tiff_time(stamp) -> np.datetime64 | None:
    try:
        return np.datetime64(datetime.strptime(str(stamp).strip(), "%Y:%m:%d %H:%M:%S"), "ns")
    except (TypeError, ValueError):
        return None


def geotiff_time(path: str | os.PathLike) -> np.datetime64 | None:
    """The TIFF ``DateTime`` tag (306) as a time, or None; reads the directory only."""
    path = Path(path)
    with _open(path) as image:
        return _tiff_time(image.tag_v2.get(DATETIME_TAG))


__all__ = ["GeoGrid", "geotiff_grid", "geotiff_time", "is_tiff", "read_fmi_geotiff"]

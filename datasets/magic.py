"""Leading bytes that tell a file's format, and the suffixes that go with them.

Every module that sniffs a file (the readers of :mod:`datasets.files`, the radar importers, the
hostile-file checks of :mod:`datasets.untrusted`) uses these constants and :func:`head`.
"""

from __future__ import annotations

import os
from pathlib import Path

NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")  # classic, 64-bit offset, 64-bit data
ZIP_MAGIC = b"PK\x03\x04"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
GZIP_MAGIC = b"\x1f\x8b"
MKV_MAGIC = b"\x1a\x45\xdf\xa3"  # Matroska / WebM (EBML header)
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # classic TIFF, little- / big-endian
GRIB_MAGIC = b"GRIB"  # any edition; octet 8 holds the edition number

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif", ".mpg", ".mpeg")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
ZARR_SUFFIXES = (".zarr", ".zip")
GRIB_SUFFIXES = (".grib2", ".grb2", ".grib", ".grb")
TIFF_SUFFIXES = (".tif", ".tiff")


def head(path: str | os.PathLike, n: int) -> bytes:
    """The first ``n`` bytes of a file (fewer when it is shorter); ``OSError`` when unreadable."""
    with open(Path(path), "rb") as handle:
        return handle.read(n)


def is_gif(data: bytes) -> bool:
    """True when ``data`` starts with a GIF signature."""
    return data[:6] in GIF_MAGIC

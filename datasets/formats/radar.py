"""Radar files for :func:`datasets.files.read_any`: one HDF5 or GRIB2 radar file, a zip or a folder.

Match rules (:func:`match_radar`)
---------------------------------
- GRIB (magic bytes ``GRIB``, any edition; edition 1 is then refused in one sentence), also
  gzipped (``.grib2.gz``, as NOAA serves MRMS; inflated after :func:`check_gzip` bounds it);
- a binary PGM (magic ``P5``, plain or inside gzip) or a TIFF: an FMI composite (PGM, GeoTIFF);
- a MeteoSwiss AQC frame: a one-image GIF of the CCS4 grid (710 x 640) with the product's colour
  table (:func:`datasets.radar_io.is_mch_gif`, nothing decoded); other GIFs stay video;
- a BoM Rainfields3 frame: NetCDF-4 with a 2-D ``precipitation`` and a scalar ``valid_time``;
- HDF5 (magic bytes) whose top-level groups say KNMI (``image1`` + ``geographic``), ODIM
  (``where`` + ``datasetN``) or NWC SAF CRR (netCDF-4 with ``crr_intensity``), as
  :func:`datasets.radar_io.guess_radar_source` tells them
  (:func:`datasets.untrusted.check_hdf5` runs first). TaxiBJ HDF5 (``date``/``data``) and
  other NetCDF-4 files do not match and keep their readers;
- a zip (magic bytes, not ``.npz``) whose file members all have radar suffixes (``.h5``,
  ``.hdf``, ``.hdf5``, ``.gif``, ``.pgm``, ``.pgm.gz``, ``.grib2``, ``.grb2``, ``.grib``,
  ``.grb``, ``.tif``, ``.tiff``); ``__MACOSX/`` entries and folders are skipped. A zipped Zarr store has ``.zarray``/``zarr.json`` members and does not match;
- a folder (``python -m model.train CONFIG --data DIR``; uploads are never folders) whose
  top-level files all have those suffixes (hidden files skipped, symbolic links left out). A Zarr
  folder keeps its chunks in subfolders and does not match.

Reading (:func:`open_radar`)
----------------------------
A zip is checked with :func:`datasets.untrusted.check_zip` before anything is inflated. Members
with a path separator or ``..`` are refused; the others are written into a temporary folder under
fixed names ``NNNN_<base name>`` (the base name sanitised to ``[A-Za-z0-9._-]``, kept only so
that the time stamp in it can be parsed), and the files must be of one source. Then
:func:`datasets.radar_io.read_radar_sequence` reads the whole domain on the native grid
(``grid=None``, ``crop=None``, ``resolution_km=None``), in mm/h with real timestamps. When a name
holds no time stamp, the HDF5 attributes give it (ODIM ``/what`` ``date`` + ``time``, KNMI
``image1`` ``image_datetime_valid``, NWC SAF ``nominal_product_time``, BoM ``valid_time``, FMI
``# obstime`` header line, TIFF ``DateTime``, the MeteoSwiss GIF comment's ``PRDT=AQC...``); an
upload's own name is never used (it is saved under a fixed name). GRIB2 messages always
give their own validity time. A single GRIB2 file of several messages is split into one file per
message (after its header walk, :func:`datasets.grib.split_messages`), one frame each. The pixels of all frames together are
bounded by :data:`MAX_TOTAL_PIXELS` (each file by :data:`datasets.radar_io.MAX_PIXELS`).
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.magic import (
    GRIB_MAGIC,
    GRIB_SUFFIXES,
    GZIP_MAGIC,
    HDF5_MAGIC,
    TIFF_MAGIC,
    TIFF_SUFFIXES,
    ZIP_MAGIC,
    head,
    is_gif,
)
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_gzip, check_zip

RADAR_MEMBER_SUFFIXES = {
    ".h5": "hdf5",
    ".hdf": "hdf5",
    ".hdf5": "hdf5",
    ".gif": "mch",
    ".pgm": "fmi",
    ".pgm.gz": "fmi",
    **dict.fromkeys(GRIB_SUFFIXES, "grib"),
    **dict.fromkeys(TIFF_SUFFIXES, "fmi_geotiff"),
}
"""Zip member endings of radar files, and their family (HDF5 is ODIM or KNMI, told by content)."""
MAX_ZIP_FRAMES = 1000
MAX_TOTAL_PIXELS = DEFAULT_MAX_DECODED_BYTES // 4  # float32 pixels of all frames together
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_SKIPPED = "__MACOSX/"


def _family(name: str) -> str | None:
    lower = name.lower()
    for suffix, family in sorted(RADAR_MEMBER_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(suffix):
            return family
    return None


def _file_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith(_SKIPPED)]


def _match_zip(path: Path) -> bool:
    if path.name.lower().endswith(".npz"):
        return False
    try:
        with zipfile.ZipFile(path) as archive:  # the central directory only; nothing inflated
            members = _file_members(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return bool(members) and all(_family(i.filename) for i in members)


def _folder_files(path: Path) -> list[Path]:
    """A folder's regular files, top level only, sorted by name (hidden files and links left out)."""
    return sorted(
        p
        for p in path.iterdir()
        if not p.name.startswith(".") and not p.is_symlink() and p.is_file()
    )


def _match_folder(path: Path) -> bool:
    files = _folder_files(path)
    return bool(files) and all(_family(p.name) for p in files)


def _match_hdf5(path: Path) -> bool:
    from datasets.radar_io import _hdf5_radar_source

    try:
        source = _hdf5_radar_source(path)  # check_hdf5 runs first
        return source in ("knmi", "odim", "mch_hdf5", "saf") or (
            source == "bom" and _is_bom_frame(path)
        )
    except DatasetError:
        return False  # hostile or damaged: the other readers (or read_any) say why


def _is_bom_frame(path: Path) -> bool:
    """A BoM Rainfields3 frame: 2-D ``precipitation`` and a scalar ``valid_time`` (netCDF-4).

    Other NetCDF-4 files with a ``precipitation`` variable (e.g. CF ``(time, y, x)``) keep the
    NetCDF reader.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            rain, time = f.get("precipitation"), f.get("valid_time")
            return (
                isinstance(rain, h5py.Dataset)
                and rain.ndim == 2
                and isinstance(time, h5py.Dataset)
                and time.shape == ()
            )
    except (OSError, KeyError, ValueError, TypeError):
        return False


def _is_pgm(path: Path, head: bytes) -> bool:
    """A binary PGM (FMI composite), plain or gzipped."""
    if head.startswith(b"P5"):
        return True
    if head.startswith(GZIP_MAGIC):
        from datasets.radar_io import _gzipped_head

        try:
            return _gzipped_head(path, 2) == b"P5"
        except DatasetError:
            return False
    return False


def match_radar(path: Path, head: bytes) -> bool:
    """A KNMI/ODIM HDF5 or a GRIB file, or a zip or folder of radar files only (module doc)."""
    if path.is_dir():
        return _match_folder(path)
    if head.startswith(GRIB_MAGIC):
        return True  # any edition: the radar reader says why edition 1 is refused
    if is_gif(head):
        from datasets.radar_io import is_mch_gif

        return is_mch_gif(path)  # a MeteoSwiss frame by its grid and colour table; else video
    if _is_pgm(path, head) or head[:4] in TIFF_MAGIC or _is_gzipped_grib(path):
        return True  # FMI PGM or GeoTIFF: the radar reader says why a foreign one is refused
    if head.startswith(HDF5_MAGIC):
        return _match_hdf5(path)
    if head.startswith(ZIP_MAGIC):
        return _match_zip(path)
    return False


# --- time stamps -----------------------------------------------------------------------------------


def _attr_text(group, name: str) -> str:
    from datasets.radar_io import hdf5_attr_text

    return hdf5_attr_text(group.attrs[name])


def _hdf5_time(path: Path) -> np.datetime64 | None:
    """Valid time from ODIM ``/what``, NWC SAF or KNMI ``/image1`` attributes, else None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "what" in f and {"date", "time"} <= set(f["what"].attrs):
                text = _attr_text(f["what"], "date") + _attr_text(f["what"], "time")[:6]
                return np.datetime64(datetime.strptime(text, "%Y%m%d%H%M%S"), "ns")
            if "valid_time" in f and f["valid_time"].shape == ():  # BoM: seconds since 1970
                units = _attr_text(f["valid_time"], "units")
                if units.startswith("seconds since 1970-01-01"):
                    return np.datetime64(int(f["valid_time"][()]), "s").astype("datetime64[ns]")
            if "nominal_product_time" in f.attrs:  # NWC SAF netCDF-4, e.g. 2018-06-01T07:00:00Z
                text = _attr_text(f, "nominal_product_time")[:19]
                return np.datetime64(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S"), "ns")
            if "image1" in f and "image_datetime_valid" in f["image1"].attrs:
                text = _attr_text(f["image1"], "image_datetime_valid")[:17]
                return np.datetime64(datetime.strptime(text.title(), "%d-%b-%Y;%H:%M:%S"), "ns")
    except (OSError, KeyError, ValueError, TypeError, IndexError):
        return None
    return None


def _pgm_time(path: Path) -> np.datetime64 | None:
    """Valid time from an FMI PGM header comment ``# obstime YYYYmmddHHMM``, else None."""
    from datasets.radar_io import _is_gzip

    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as handle:
            header = handle.read(4096)
    except (OSError, EOFError, zlib.error, DatasetError):
        return None
    found = re.search(rb"^# obstime (\d{12})\s*$", header, flags=re.MULTILINE)
    if found is None:
        return None
    try:
        return np.datetime64(datetime.strptime(found.group(1).decode(), "%Y%m%d%H%M"), "ns")
    except ValueError:
        return None


def _file_header_time(path: Path, source: str) -> np.datetime64 | None:
    """Valid time written inside a radar file (HDF5 attributes, PGM header), else None."""
    if source in ("odim", "mch_hdf5", "knmi", "saf", "bom"):
        return _hdf5_time(path)
    if source == "fmi":
        return _pgm_time(path)
    if source == "mch":
        from datasets.radar_io import mch_gif_time

        return mch_gif_time(path)
    if source == "fmi_geotiff":
        from datasets.geotiff import geotiff_time

        try:
            return geotiff_time(path)
        except DatasetError:
            return None
    return None


def _times(paths: list[Path], names: list[str], source: str) -> list[np.datetime64]:
    from datasets.radar_io import file_time, parse_timestamp

    if source == "grib":  # the messages carry their validity time
        return [file_time(path, source=source) for path in paths]
    times = []
    for path, name in zip(paths, names, strict=True):
        try:
            times.append(parse_timestamp(name, source=source))
            continue
        except DatasetError:
            pass
        found = _file_header_time(path, source)
        if found is None:
            raise DatasetError(
                f"{name}: no valid time in the file name (e.g. 201806131200) or its attributes; "
                "rename the file with its time."
            )
        times.append(found)
    return times


# --- reading ---------------------------------------------------------------------------------------


def _safe_name(index: int, member: str, zip_name: str) -> tuple[str, str]:
    """``(base name, fixed file name)`` of a zip member; refuse separators and ``..``."""
    if "/" in member or "\\" in member or ".." in member:
        raise DatasetError(
            f"{zip_name}: zip member {_SAFE.sub('_', member)[:80]!r} has a folder or '..' in its "
            "name; put the radar files at the top level of the zip."
        )
    base = _SAFE.sub("_", member)[-120:]
    return base, f"{index:04d}_{base}"


def _extract(path: Path, folder: Path, max_bytes: int) -> tuple[list[Path], list[str]]:
    check_zip(path, max_bytes=max_bytes)
    with zipfile.ZipFile(path) as archive:
        members = _file_members(archive)
        if len(members) > MAX_ZIP_FRAMES:
            raise DatasetError(
                f"{path.name}: {len(members):,} radar files, over the limit of {MAX_ZIP_FRAMES:,}."
            )
        if len({_family(i.filename) for i in members}) > 1:
            raise DatasetError(
                f"{path.name}: the zip mixes radar formats; zip the files of one source only."
            )
        paths, names = [], []
        for index, info in enumerate(members):
            base, fixed = _safe_name(index, info.filename, path.name)
            target = folder / fixed
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            paths.append(target)
            names.append(base)
    return paths, names


def _same_source(paths: list[Path], names: list[str], zip_name: str) -> str:
    from datasets.radar_io import guess_radar_source

    sources = {guess_radar_source(p) for p in paths}
    if len(sources) > 1:
        raise DatasetError(
            f"{zip_name}: the zip mixes radar sources ({', '.join(sorted(sources))}); zip the files "
            "of one source only."
        )
    return sources.pop()


def _read(paths: list[Path], names: list[str], label: str) -> xr.DataArray:
    from datasets.radar_io import MAX_PIXELS, read_radar_sequence

    source = _same_source(paths, names, label)
    return read_radar_sequence(
        paths,
        source=source,
        grid=None,
        crop=None,
        resolution_km=None,
        timestamps=_times(paths, names, source),
        licence="as given by the data provider",
        max_pixels=min(MAX_PIXELS, MAX_TOTAL_PIXELS // len(paths)),
    )


def _public(text: str, folder: Path, paths: list[Path], names: list[str]) -> str:
    for path, name in zip(paths, names, strict=True):
        text = text.replace(str(path), name).replace(path.name, name)
    return text.replace(str(folder) + "/", "").replace(str(folder), "(folder)")


def _read_folder(path: Path) -> xr.DataArray:
    """A folder of radar files of one source (the command line's ``--data DIR``)."""
    files = _folder_files(path)
    if len(files) > MAX_ZIP_FRAMES:
        raise DatasetError(
            f"{path.name}: {len(files):,} radar files, over the limit of {MAX_ZIP_FRAMES:,}; "
            "split the folder."
        )
    if len({_family(p.name) for p in files}) > 1:
        raise DatasetError(f"{path.name}: the folder mixes radar formats; keep one source in it.")
    return _read(files, [p.name for p in files], path.name)


def _is_grib(path: Path) -> bool:
    return path.is_file() and head(path, len(GRIB_MAGIC)) == GRIB_MAGIC


def _is_gzipped_grib(path: Path) -> bool:
    if not path.is_file() or head(path, len(GZIP_MAGIC)) != GZIP_MAGIC:
        return False
    from datasets.radar_io import _gzipped_head

    try:
        return _gzipped_head(path, len(GRIB_MAGIC)) == GRIB_MAGIC
    except DatasetError:
        return False


def _gunzip(path: Path, folder: Path, limit: int) -> Path:
    """Inflate a gzipped file into ``folder`` once :func:`check_gzip` has bounded its size."""
    check_gzip(path, max_bytes=limit)
    target = folder / "inflated.grib2"
    with gzip.open(path, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def _grib_frames(
    path: Path, folder: Path, label: str | None = None
) -> tuple[list[Path], list[str]]:
    """One file per message of a GRIB file (header-checked first), named ``label`` message k."""
    from datasets.grib import split_messages
    from datasets.radar_io import MAX_PIXELS, guess_radar_source

    label = label or path.name
    try:
        guess_radar_source(path)  # GRIB edition 1 is refused here, in one sentence
        paths = split_messages(
            path, folder, max_pixels=MAX_PIXELS, max_total_pixels=MAX_TOTAL_PIXELS
        )
    except DatasetError as exc:
        raise DatasetError(str(exc).replace(path.name, label)) from exc.__cause__
    if len(paths) == 1:
        return paths, [label]
    return paths, [f"{label} message {k + 1}" for k in range(len(paths))]


def open_radar(path: Path, *, max_bytes: int | None = None, **_options) -> xr.DataArray:
    """Read one KNMI/ODIM HDF5 or GRIB2 file, or a zip or folder of radar files of one source.

    A GRIB2 file of several messages (one rain-rate field each, one grid) gives one frame per
    message, at the messages' validity times (module doc).

    Returns
    -------
    xarray.DataArray
        float32 rain rate in mm/h ``(1, time, 1, y, x)``, ``time`` datetime64, ``y``/``x`` in km,
        NaN outside the radar domain, the attrs of :func:`datasets.radar_io.read_radar_sequence`.
    """
    path = Path(path)
    limit = DEFAULT_MAX_DECODED_BYTES if max_bytes is None else max_bytes
    is_zip = path.is_file() and head(path, len(ZIP_MAGIC)) == ZIP_MAGIC
    if path.is_dir():
        array = _read_folder(path)
        description = str(array.attrs.get("description", ""))
    elif not is_zip and not _is_grib(path) and not _is_gzipped_grib(path):
        array = _read([path], [path.name], path.name)
        description = str(array.attrs.get("description", ""))
    else:
        with tempfile.TemporaryDirectory(prefix="convlstm-radar-") as tmp:
            folder = Path(tmp)
            paths, names = [], []
            try:
                if is_zip:
                    paths, names = _extract(path, folder, limit)
                elif _is_gzipped_grib(path):  # as NOAA serves MRMS: .grib2.gz
                    paths, names = _grib_frames(_gunzip(path, folder, limit), folder, path.name)
                else:
                    paths, names = _grib_frames(path, folder)
                array = _read(paths, names, path.name).load()
            except DatasetError as exc:
                raise DatasetError(_public(str(exc), folder, paths, names)) from exc.__cause__
            description = _public(str(array.attrs.get("description", "")), folder, paths, names)
    if len(array["time"]) == 1:
        description += " One frame: no forecast without more frames."
    return array.assign_attrs(folder=path.name, description=description)

"""Generic readers for files users bring: arrays, NetCDF/Zarr, video; one layout out.

Every reader returns what a registered dataset returns: an ``xarray.DataArray``, float32, dims
``(sample, time, channel, y, x)``, attrs ``units``, ``time_step``, ``domain``, ``source``,
``licence``, ``description``, ``synthetic`` (see :mod:`datasets.registry`). Every failure, whatever
the library underneath raised, comes out as one :class:`DatasetError` naming the file and what was
wrong; a file larger than ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`) is refused before it is
read.

=======================  ==========================================================================
reader                   reads
=======================  ==========================================================================
:func:`open_npy`         ``.npy``: ``(T, H, W)``, ``(T, C, H, W)``, ``(T, H, W, C)``,
                         ``(N, T, C, H, W)`` or the ``mnist_test_seq.npy`` layout ``(T, N, H, W)``
:func:`open_npz`         ``.npz``: one array of those layouts (``key=``, or inferred and said)
:func:`open_netcdf_or_zarr`  NetCDF (3 or 4), a Zarr folder, or a zipped Zarr store, with a
                         variable that has ``(time, y, x)`` dims (``lat``/``lon`` etc. accepted)
:func:`open_video`       mp4, avi, mov, mkv, webm, gif via imageio (ffmpeg / pillow): grayscale,
                         centre-cropped to a square and resized to ``size`` x ``size``
:func:`open_radar`       one KNMI/ODIM HDF5 or GRIB2 radar file, or a zip of radar files of one
                         source
:func:`read_any`         any of the above, chosen by content (magic bytes) then suffix
:func:`read_series`      any of the above along its whole time axis (to be split into train, val
                         and test by :mod:`datasets.splits`), with the choices it inferred
=======================  ==========================================================================

Units and time steps. uint8 pixels become ``"pixel intensity [0, 1]"`` (value / 255); other arrays
keep their values and take ``units=`` (default ``"unknown"``). Real timestamps give an ISO 8601
``time_step`` (``"PT5M"``); video and arrays without timestamps use :data:`FRAME_STEP`
(``"1 frame"``), which is a count of frames, not a duration: label lead times in frames.

The readers table
-----------------
:func:`read_any` walks :data:`READERS`, a list of :class:`ReaderEntry` built here, in this module,
from the format modules of :mod:`datasets.formats`, and uses the first whose ``match(path, head)``
is true (``head`` is the first 512 bytes, empty for a folder). The order is the dispatch order:

1. ``taxibj-hdf5`` (:mod:`datasets.formats.taxibj`): HDF5 with top-level ``date`` and ``data``
   (TaxiBJ, BikeNYC, TaxiNYC), cut into gap-free windows; ahead of the generic readers;
2. ``npy`` and 3. ``npz`` (:mod:`datasets.formats.npy`);
4. ``radar`` (:mod:`datasets.formats.radar`): HDF5 whose groups say KNMI or ODIM, GRIB2 (one
   frame per message), or a zip whose
   members are all radar files of one source (ODIM/KNMI ``.h5``, MeteoSwiss ``.gif``, FMI
   ``.pgm``/``.pgm.gz``), read whole-domain in mm/h with real timestamps; ahead of
   ``netcdf-zarr``, which takes every other zip (zipped Zarr) and NetCDF-4 (BoM too);
5. ``netcdf-zarr`` (:mod:`datasets.formats.netcdf`);
6. ``video`` (:mod:`datasets.formats.video`).

Nothing registers itself on import. A user adds a format at run time with :func:`register_reader`
(ahead of the others by default); a reader is called as ``reader(path, max_bytes=..., **options)``.
Importing this module imports no dataset module (:mod:`datasets.radar`, ``traffic``, ``video``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from datasets.errors import DatasetError
from datasets.formats.netcdf import (  # noqa: F401
    RADAR_UNITS,
    TIME_NAMES,
    X_NAMES,
    Y_NAMES,
    match_netcdf,
    open_netcdf_or_zarr,
)
from datasets.formats.npy import (  # noqa: F401
    NPY_LAYOUTS,
    NPZ_PREFERRED_KEYS,
    match_npy,
    match_npz,
    mnist_seq_to_array,
    open_npy,
    open_npz,
)
from datasets.formats.radar import match_radar, open_radar
from datasets.formats.taxibj import looks_like_taxibj, open_taxibj
from datasets.formats.video import DEFAULT_MAX_FRAMES, match_video, open_video  # noqa: F401
from datasets.guards import DEFAULT_MAX_BYTES, check_file
from datasets.layout import (  # noqa: F401  (re-exported: their home was here)
    DIMS,
    DOMAINS,
    FRAME_STEP,
    PIXEL_UNITS,
    USER_LICENCE,
    as_dataset_array,
)
from datasets.magic import (  # noqa: F401  (re-exported)
    GIF_MAGIC,
    GRIB_SUFFIXES,
    HDF5_MAGIC,
    NETCDF3_MAGIC,
    NETCDF_SUFFIXES,
    NPY_MAGIC,
    TIFF_SUFFIXES,
    VIDEO_SUFFIXES,
    ZARR_SUFFIXES,
    ZIP_MAGIC,
)
from datasets.timesteps import iso_duration  # noqa: F401  (re-exported)
from datasets.untrusted import (  # noqa: F401  (re-exported: their home was here)
    NETCDF3_HEADER_MAX_BYTES,
    check_netcdf3_header,
    public_message,
)


@dataclass
class ReaderEntry:
    """One format :func:`read_any` knows: a name, a ``match(path, head)`` test and the reader."""

    name: str
    match: Callable[[Path, bytes], bool]
    reader: Callable[..., xr.DataArray]
    suffixes: tuple[str, ...] = field(default=())


def _suffix_or_magic(suffixes, magic) -> Callable[[Path, bytes], bool]:
    suffixes = tuple(s.lower() for s in suffixes)
    magic = tuple(magic)

    def match(path: Path, head: bytes) -> bool:
        if magic and head and not any(head.startswith(m) for m in magic):
            return False  # content says it is something else
        if suffixes:
            return path.name.lower().endswith(suffixes)
        return bool(magic and head)

    return match


def register_reader(
    name: str,
    reader: Callable[..., xr.DataArray],
    *,
    suffixes: Iterable[str] = (),
    magic: Iterable[bytes] = (),
    match: Callable[[Path, bytes], bool] | None = None,
    first: bool = True,
) -> None:
    """Teach :func:`read_any` a format.

    Parameters
    ----------
    name : str
        Shown in messages (replaces an entry of the same name).
    reader : callable
        ``reader(path, *, max_bytes, **options) -> DataArray`` raising only :class:`DatasetError`.
    suffixes : iterable of str
        File name endings (``".h5"``) that select the reader.
    magic : iterable of bytes
        Leading bytes the file must start with. With both ``suffixes`` and ``magic``, a file must
        have both (so an HDF5 reader for ``.h5`` does not catch NetCDF-4 ``.nc`` files).
    match : callable, optional
        ``match(path, head) -> bool`` replacing the suffix/magic test.
    first : bool
        Try this reader before the ones already registered (domain readers before generic ones).
    """
    entry = ReaderEntry(name, match or _suffix_or_magic(suffixes, magic), reader, tuple(suffixes))
    READERS[:] = [e for e in READERS if e.name != name]
    READERS.insert(0, entry) if first else READERS.append(entry)


READERS: list[ReaderEntry] = [
    ReaderEntry("taxibj-hdf5", looks_like_taxibj, open_taxibj, (".h5", ".hdf5")),
    ReaderEntry("npy", match_npy, open_npy, (".npy",)),
    ReaderEntry("npz", match_npz, open_npz, (".npz",)),
    ReaderEntry(
        "radar",
        match_radar,
        open_radar,
        (".h5", ".hdf", ".hdf5", ".zip", ".pgm", ".gz") + GRIB_SUFFIXES + TIFF_SUFFIXES,
    ),
    ReaderEntry("netcdf-zarr", match_netcdf, open_netcdf_or_zarr, NETCDF_SUFFIXES + ZARR_SUFFIXES),
    ReaderEntry("video", match_video, open_video, VIDEO_SUFFIXES),
]
"""Formats :func:`read_any` knows, in dispatch order (first match wins)."""


def find_reader(
    path: str | os.PathLike, *, max_bytes: int | None = DEFAULT_MAX_BYTES
) -> ReaderEntry:
    """The :data:`READERS` entry that reads ``path`` (by its content, then its suffix).

    Parameters
    ----------
    path : path
        A file, or a Zarr folder.
    max_bytes : int or None
        Size limit, checked first (:func:`datasets.guards.check_file`).

    Raises
    ------
    DatasetError
        Missing or too large, or of no known format (the message lists the known suffixes).
    """
    path = check_file(path, max_bytes=max_bytes, folder_ok=True)
    head = b""
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(512)
    for entry in READERS:
        if entry.match(path, head):
            return entry
    known = sorted({s for e in READERS for s in e.suffixes})
    raise DatasetError(
        f"{path.name}: unknown format (starts {head[:8]!r}). Known: {', '.join(known)}; give the file "
        "its usual suffix, or convert it to .npy (T, H, W) or NetCDF with (time, y, x) dims."
    )


def read_any(
    path: str | os.PathLike, *, max_bytes: int | None = DEFAULT_MAX_BYTES, **options
) -> xr.DataArray:
    """Read any supported file (see :data:`READERS`), chosen by its content, then its suffix.

    Parameters
    ----------
    path : path
        A file, or a Zarr folder.
    max_bytes : int or None
        Size limit, checked before reading.
    **options
        Passed to the chosen reader (e.g. ``size=`` for video, ``variable=`` for NetCDF).

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` with the dataset attrs.

    Raises
    ------
    DatasetError
        Unknown format (the message lists the known ones), or any reader's error.
    """
    return _read_with(find_reader(path, max_bytes=max_bytes), path, max_bytes, options)


def _read_with(entry: ReaderEntry, path, max_bytes: int | None, options: dict) -> xr.DataArray:
    path = Path(path).expanduser()
    try:
        return entry.reader(path, max_bytes=max_bytes, **options)
    except DatasetError as exc:  # registered readers too: no server folder in messages
        raise DatasetError(public_message(str(exc), path)) from exc.__cause__


SERIES_OPTIONS = {"taxibj-hdf5": {"series": True}}
"""Reader options that make a reader return its file's whole time axis instead of windows."""


def read_series(
    path: str | os.PathLike,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    units: str | None = None,
    domain: str | None = None,
    **options,
) -> tuple[xr.DataArray, list[str]]:
    """A file's frames along its whole time axis, to be split (:mod:`datasets.splits`).

    :func:`read_any` with the reader's own options checked first, TaxiBJ-style files read as one
    series (:data:`SERIES_OPTIONS`) rather than windows, and ``units``/``domain`` set on any
    format.

    Parameters
    ----------
    path : path
        Any file :func:`read_any` reads (a Zarr folder too).
    max_bytes : int or None
        Size limit of the file.
    units : str, optional
        Units of the values (e.g. ``"vehicles per 30 min"``); the reader's when None.
    domain : {"radar", "traffic", "video"}, optional
        What the data is (decides the scores and baselines); the reader's guess when None.
    **options
        Options of the chosen reader (``layout=`` and ``key=`` for ``.npy``/``.npz``,
        ``variable=`` for NetCDF/Zarr, ``size=`` for video, ``interval_minutes=`` for TaxiBJ).

    Returns
    -------
    (xarray.DataArray, list of str)
        float32 ``(sample, time, channel, y, x)``; and one note per choice the reader inferred
        (the ``.npz`` array, the axis order), for the caller to show. The ``domain`` attr is
        ``"unknown"`` when neither the file nor ``domain`` says it.

    Raises
    ------
    DatasetError
        An option the format does not take (the message lists those it takes), a bad domain, or
        anything :func:`read_any` refuses.
    """
    import inspect

    entry = find_reader(path, max_bytes=max_bytes)
    name = Path(path).name
    if domain is not None and domain not in DOMAINS:
        raise DatasetError(f"domain {domain!r} for {name}: use one of {', '.join(DOMAINS)}")
    params = inspect.signature(entry.reader).parameters
    takes = sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k != "max_bytes")
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise DatasetError(
            f"{name} ({entry.name} format): no reader option {', '.join(unknown)}; this format "
            f"takes {', '.join(takes) or 'none'}"
        )
    stated = {k: v for k, v in (("units", units), ("domain", domain)) if v is not None}
    passed = {k: v for k, v in stated.items() if k in params}
    options = {**options, **passed, **SERIES_OPTIONS.get(entry.name, {})}
    array = _read_with(entry, path, max_bytes, options)
    array = array.assign_attrs(**stated) if stated else array
    return array, _inferred(array, entry.name, name, options)


def _inferred(array: xr.DataArray, reader: str, name: str, options: dict) -> list[str]:
    """Notes on what :func:`read_series` chose without being told."""
    notes = []
    if reader == "npz" and "key" not in options:
        notes.append(
            f"{name}: read array {array.attrs.get('npz_key')!r} (inferred: the only frame array, "
            f"or the first of {', '.join(NPZ_PREFERRED_KEYS)}); set key to read another"
        )
    if reader in ("npy", "npz") and "layout" not in options:
        notes.append(
            f"{name}: axes read as {array.attrs.get('layout')!r} (inferred from the shape); set "
            f"layout to one of {', '.join(NPY_LAYOUTS)} if that is wrong"
        )
    return notes


def read_bytes(
    data: bytes, *, filename: str, max_bytes: int | None = DEFAULT_MAX_BYTES, **options
) -> xr.DataArray:
    """:func:`read_any` for an upload held in memory (e.g. Streamlit's ``UploadedFile``).

    Parameters
    ----------
    data : bytes
        The file's content. A Zarr store must come zipped.
    filename : str
        The uploaded name; only its suffix is used (it may tell the format), and it becomes the
        ``source`` attr.
    max_bytes : int or None
        Size limit, checked before anything is written.
    **options
        As for :func:`read_any`.
    """
    import tempfile

    if max_bytes is not None and len(data) > max_bytes:
        raise DatasetError(
            f"{filename}: {len(data) / 1e6:.1f} MB is larger than the limit of "
            f"{max_bytes / 1e6:.1f} MB. Crop or subsample it first."
        )
    name = Path(str(filename)).name or "upload"
    suffix = "".join(s for s in Path(name).suffixes if len(s) <= 6 and s[1:].isalnum())
    with tempfile.TemporaryDirectory(prefix="convlstm-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            arr = read_any(path, max_bytes=max_bytes, **options)
            arr.load()
        except DatasetError as exc:  # name the upload, never the temporary folder
            text = public_message(str(exc), path)
            raise DatasetError(text.replace(path.name, name)) from exc.__cause__
    messages = {"source": name}
    if str(path.name) in arr.attrs.get("description", ""):
        messages["description"] = arr.attrs["description"].replace(path.name, name)
    return arr.assign_attrs(**messages)

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
:func:`open_npy`         ``.npy``: ``(T, H, W)``, ``(T, C, H, W)``, ``(N, T, C, H, W)`` or the
                         ``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8
:func:`open_netcdf_or_zarr`  NetCDF (3 or 4), a Zarr folder, or a zipped Zarr store, with a
                         variable that has ``(time, y, x)`` dims (``lat``/``lon`` etc. accepted)
:func:`open_video`       mp4, avi, mov, mkv, webm, gif via imageio (ffmpeg / pillow): grayscale,
                         centre-cropped to a square and resized to ``size`` x ``size``
:func:`read_any`         any of the above, chosen by content (magic bytes) then suffix
=======================  ==========================================================================

Units and time steps. uint8 pixels become ``"pixel intensity [0, 1]"`` (value / 255); other arrays
keep their values and take ``units=`` (default ``"unknown"``). Real timestamps give an ISO 8601
``time_step`` (``"PT5M"``); video and arrays without timestamps use :data:`FRAME_STEP`
(``"1 frame"``), which is a count of frames, not a duration: label lead times in frames.

Dispatch hook for other modules
-------------------------------
:func:`read_any` walks :data:`READERS`, a list of :class:`ReaderEntry`, and uses the first whose
``match(path, head)`` is true (``head`` is the first 512 bytes, empty for a folder). A domain module
adds its own format, ahead of the generic ones, with::

    from datasets.files import register_reader
    register_reader("taxibj-hdf5", read_taxibj, suffixes=(".h5", ".hdf5"), magic=(HDF5_MAGIC,))

``read_any`` imports :mod:`datasets.builtin` first, so readers registered by the dataset modules are
always known. A registered reader is called as ``reader(path, max_bytes=..., **options)``.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.untrusted import (
    DEFAULT_MAX_DECODED_BYTES,
    NETCDF3_HEADER_MAX_BYTES,  # noqa: F401  (re-exported: its home was here)
    check_decoded,
    check_gif,
    check_hdf5,
    check_netcdf3_header,
    check_npy,
    check_video,
    check_zarr,
    public_message,
)

DEFAULT_MAX_BYTES = 200 * 1024**2  # 200 MiB: large enough for an upload, small enough for RAM
DEFAULT_MAX_FRAMES = 300  # frames read from a video before stopping (10 s at 30 fps)
PIXEL_UNITS = "pixel intensity [0, 1]"
FRAME_STEP = "1 frame"  # time_step of frame sequences without timestamps (not an ISO duration)
USER_LICENCE = "user file: licence as set by its owner"
DIMS = ("sample", "time", "channel", "y", "x")

NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
ZIP_MAGIC = b"PK\x03\x04"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif", ".mpg", ".mpeg")
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
ZARR_SUFFIXES = (".zarr", ".zip")

TIME_NAMES = ("time", "t", "frame", "frames", "step", "valid_time")
Y_NAMES = ("y", "lat", "latitude", "rows", "row", "north", "nj", "yc", "projection_y_coordinate")
X_NAMES = ("x", "lon", "longitude", "cols", "col", "east", "ni", "xc", "projection_x_coordinate")
RADAR_UNITS = ("mm/h", "mm h-1", "mm hr-1", "mm/hr", "mm", "dbz", "kg m-2 s-1")


# ----------------------------------------------------------------------------------------------
# Building the common layout
# ----------------------------------------------------------------------------------------------
def as_dataset_array(
    values: np.ndarray,
    *,
    units: str,
    time_step: str,
    domain: str,
    source: str,
    description: str,
    licence: str = USER_LICENCE,
    synthetic: bool = False,
    time: Iterable | None = None,
    channel: Iterable[str] | None = None,
    y: Iterable | None = None,
    x: Iterable | None = None,
    extra_attrs: dict | None = None,
) -> xr.DataArray:
    """Wrap ``values`` ``(sample, time, channel, y, x)`` in the layout every dataset returns.

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(N, T, C, H, W)``; cast to float32.
    units, time_step, domain, source, description, licence, synthetic
        The attrs of the dataset contract (``synthetic`` stored as int 0/1).
    time, channel, y, x : sequence, optional
        Coordinates; default to step / pixel indices and channel names ``"c0", "c1", ...``.
    extra_attrs : dict, optional
        More attrs (str, int or float values, so that NetCDF export can hold them).

    Returns
    -------
    xarray.DataArray
        float32, dims ``(sample, time, channel, y, x)``.
    """
    values = np.asarray(values, dtype=np.float32)  # (N, T, C, H, W)
    if values.ndim != 5:
        raise DatasetError(
            f"{source}: expected 5 dims (sample, time, channel, y, x), got {values.shape}"
        )
    n, t, c, h, w = values.shape
    coords = {
        "sample": np.arange(n),
        "time": np.arange(t) if time is None else np.asarray(time),
        "channel": [f"c{i}" for i in range(c)] if channel is None else list(channel),
        "y": np.arange(h) if y is None else np.asarray(y),
        "x": np.arange(w) if x is None else np.asarray(x),
    }
    attrs = {
        "units": units,
        "time_step": time_step,
        "domain": domain,
        "source": source,
        "licence": licence,
        "description": description,
        "synthetic": int(bool(synthetic)),
    }
    attrs.update(extra_attrs or {})
    return xr.DataArray(values, dims=DIMS, coords=coords, attrs=attrs)


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration of a time step: 300 -> ``"PT5M"``, 3600 -> ``"PT1H"``, 86400 -> ``"P1D"``."""
    seconds = float(seconds)
    if seconds <= 0 or not np.isfinite(seconds):
        raise ValueError(f"time step must be positive, got {seconds} s")
    days, rest = divmod(seconds, 86400.0)
    hours, rest = divmod(rest, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    text = "P" + (f"{int(days)}D" if days else "")
    clock = ""
    clock += f"{int(hours)}H" if hours else ""
    clock += f"{int(minutes)}M" if minutes else ""
    clock += (f"{secs:g}S") if secs else ""
    return text + ("T" + clock if clock else "")


def check_file(path: str | os.PathLike, *, max_bytes: int | None, folder_ok: bool = False) -> Path:
    """Resolve ``path`` and refuse a missing file or one larger than ``max_bytes``.

    Raises
    ------
    DatasetError
        Missing path, a folder where a file is needed, or more than ``max_bytes`` bytes.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path.name}: no such file. Check the path (or upload the file again).")
    if path.is_dir():
        if not folder_ok:
            raise DatasetError(f"{path.name}: is a folder; give a file.")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        size = path.stat().st_size
    if size == 0:
        raise DatasetError(
            f"{path.name}: is empty (0 bytes); the file is truncated or not written yet."
        )
    if max_bytes is not None and size > max_bytes:
        raise DatasetError(
            f"{path.name}: {size / 1e6:.1f} MB is larger than the limit of {max_bytes / 1e6:.1f} MB. "
            "Crop or subsample it first, or pass a larger max_bytes."
        )
    return path


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(n)


def _reader(kind: str) -> Callable:
    """Decorator: any exception becomes a DatasetError naming the file (base name) and ``kind``."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(path, *args, **kwargs):
            name = Path(path).name
            try:
                return func(path, *args, **kwargs)
            except DatasetError as exc:
                raise DatasetError(public_message(str(exc), path)) from exc.__cause__
            except (MemoryError, RecursionError) as exc:
                raise DatasetError(
                    f"{name}: too large or malformed to read as {kind} ({type(exc).__name__})."
                ) from None
            except Exception as exc:  # third-party readers raise anything on malformed input
                detail = public_message(f"{type(exc).__name__}: {exc}", path)
                raise DatasetError(
                    f"{name}: could not be read as {kind} ({detail}); check that the file is "
                    "complete and in that format."
                ) from exc

        return inner

    return wrap


def _check_values(values: np.ndarray, *, path) -> None:
    """Refuse empty, all-NaN or infinite data (NaN alone is a mask and is kept)."""
    if values.size == 0 or 0 in values.shape:
        raise DatasetError(f"{path.name}: holds no data (shape {values.shape}).")
    finite = np.isfinite(values)
    if np.isinf(values).any():
        raise DatasetError(
            f"{path.name}: contains infinite values; replace them by NaN (masked) first."
        )
    if not finite.any():
        raise DatasetError(
            f"{path.name}: every value is NaN; there is nothing to show or forecast."
        )


# ----------------------------------------------------------------------------------------------
# .npy arrays
# ----------------------------------------------------------------------------------------------
NPY_LAYOUTS = ("thw", "tchw", "ntchw", "mnist_test_seq")


def mnist_seq_to_array(raw: np.ndarray, *, source: str, sample=None, **attrs) -> xr.DataArray:
    """The ``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8 as a dataset array in [0, 1].

    Parameters
    ----------
    raw : numpy.ndarray
        ``(T, N, H, W)`` uint8 (may be a memory map; only the rows used are read).
    source : str
        The file it came from (for attrs and messages).
    sample : sequence of int, optional
        Indices along ``N`` to keep (default: all); they become the ``sample`` coordinate.
    **attrs
        Overrides of the default attrs (e.g. ``description``, ``licence``).
    """
    if raw.ndim != 4 or raw.dtype != np.uint8:
        raise DatasetError(
            f"{source}: the mnist_test_seq layout is (frames, sequences, 64, 64) uint8, got "
            f"{raw.shape} {raw.dtype}."
        )
    index = np.arange(raw.shape[1]) if sample is None else np.asarray(sample, dtype=int)
    frames = np.asarray(raw[:, index], dtype=np.float32) / 255.0  # (T, N, H, W)
    values = frames.transpose(1, 0, 2, 3)[:, :, None]  # (N, T, 1, H, W)
    fields = {
        "units": PIXEL_UNITS,
        "time_step": FRAME_STEP,
        "domain": "video",
        "source": source,
        "description": "Moving MNIST sequences in the mnist_test_seq.npy layout",
        "licence": USER_LICENCE,
        "synthetic": True,
    }
    fields.update(attrs)
    out = as_dataset_array(values, channel=["intensity"], **fields)
    return out.assign_coords(sample=index)


@_reader("a NumPy .npy array")
def open_npy(
    path: str | os.PathLike,
    *,
    layout: str | None = None,
    units: str | None = None,
    domain: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> xr.DataArray:
    """Read a ``.npy`` array of frames.

    Parameters
    ----------
    path : path
        The ``.npy`` file (never unpickled).
    layout : {"thw", "tchw", "ntchw", "mnist_test_seq"}, optional
        Axis order. Default by rank: 3 -> ``thw``; 5 -> ``ntchw``; 4 -> ``tchw`` when the second
        axis has at most 4 entries (channels), else ``mnist_test_seq`` ``(T, N, H, W)``.
    units : str, optional
        Units of the values; uint8 arrays are pixel intensities scaled to [0, 1] whatever is given.
    domain : {"radar", "traffic", "video"}, optional
        Default: ``"video"`` for uint8, ``"unknown"`` otherwise.
    max_bytes : int or None
        Size limit (None: no limit).
    max_decoded_bytes : int or None
        Limit on the float32 array returned, checked from the header before any data is read.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``.
    """
    path = check_file(path, max_bytes=max_bytes)
    if _head(path, 6) == NPY_MAGIC:
        shape, _ = check_npy(path)  # the header only: a shape the file does not hold is refused
        check_decoded(path, shape, max_bytes=max_decoded_bytes)
    raw = np.load(path, allow_pickle=False, mmap_mode="r")
    if not isinstance(raw, np.ndarray):
        raise DatasetError(
            f"{path.name}: holds several arrays (.npz); save one array with np.save."
        )
    if layout is not None and layout not in NPY_LAYOUTS:
        raise DatasetError(
            f"layout {layout!r} for {path.name}: use one of {', '.join(NPY_LAYOUTS)}"
        )
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_) or np.iscomplexobj(raw):
        raise DatasetError(f"{path.name}: dtype {raw.dtype} is not a real number type.")
    if layout is None:
        layout = {3: "thw", 5: "ntchw"}.get(raw.ndim)
        if raw.ndim == 4:
            layout = "tchw" if raw.shape[1] <= 4 else "mnist_test_seq"
    expected = {"thw": 3, "tchw": 4, "ntchw": 5, "mnist_test_seq": 4}
    if layout is None or raw.ndim != expected[layout]:
        raise DatasetError(
            f"{path.name}: array of shape {raw.shape} does not fit layout {layout or '(none)'}: expected "
            "(T, H, W), (T, C, H, W), (N, T, C, H, W) or mnist_test_seq (T, N, H, W)."
        )
    if layout == "mnist_test_seq":
        if raw.dtype != np.uint8:
            raise DatasetError(
                f"{path.name}: mnist_test_seq layout must be uint8, got {raw.dtype}."
            )
        out = mnist_seq_to_array(raw, source=path.name)
        _check_values(out.values, path=path)
        return out
    values = np.asarray(raw)
    values = {"thw": values[None, :, None], "tchw": values[None], "ntchw": values}[layout]
    is_pixels = values.dtype == np.uint8
    values = values.astype(np.float32) / (255.0 if is_pixels else 1.0)  # (N, T, C, H, W)
    _check_values(values, path=path)
    return as_dataset_array(
        values,
        units=PIXEL_UNITS if is_pixels else (units or "unknown"),
        time_step=FRAME_STEP,
        domain=domain or ("video" if is_pixels else "unknown"),
        source=path.name,
        description=f"array {raw.shape} {raw.dtype} read from {path.name} as {layout}",
    )


# ----------------------------------------------------------------------------------------------
# NetCDF and Zarr
# ----------------------------------------------------------------------------------------------
def _is_zarr_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in (".zgroup", ".zarray", "zarr.json", ".zmetadata")
    )


def _open_zarr(store) -> xr.Dataset:
    """Open a Zarr store, with or without consolidated metadata, without warning about which."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
        return xr.open_zarr(store, consolidated=None, chunks=None)


def _open_xarray(path: Path, *, max_declared: int | None) -> xr.Dataset:
    """Open NetCDF, a Zarr folder, or a zipped Zarr store as an ``xarray.Dataset``.

    The checks of :mod:`datasets.untrusted` run first (``max_declared`` bounds the declared size
    of all stored arrays): no other file is named, and nothing declared is too large.
    """
    if path.is_dir():
        if not _is_zarr_folder(path):
            raise DatasetError(
                f"{path.name}: folder is not a Zarr store (no .zgroup or zarr.json)."
            )
        check_zarr(path, max_bytes=max_declared)
        return _open_zarr(path)
    head = _head(path, 8)
    if head.startswith(ZIP_MAGIC):
        import zarr

        check_zarr(path, max_bytes=max_declared)  # zip members, then every array's metadata
        with zipfile.ZipFile(path) as archive:  # bad CRCs before zarr
            broken = archive.testzip()
        if broken is not None:
            raise DatasetError(
                f"{path.name}: zip member {broken!r} is corrupt (bad CRC); zip it again."
            )
        store = zarr.storage.ZipStore(path, mode="r")
        try:
            ds = _open_zarr(store)
        except Exception:
            store.close()
            raise
        ds.set_close(store.close)
        return ds
    if head.startswith(HDF5_MAGIC):
        check_hdf5(path, max_bytes=max_declared)  # links, external storage, filters, sizes
        return xr.open_dataset(path, engine="netcdf4")
    if head.startswith(NETCDF3_MAGIC):
        check_netcdf3_header(path, max_bytes=max_declared)
        return xr.open_dataset(path, engine="scipy")
    raise DatasetError(
        f"{path.name}: not NetCDF, HDF5 or a (zipped) Zarr store (starts {head[:4]!r})."
    )


def _find_dim(dims: Iterable[str], names: tuple[str, ...]) -> str | None:
    lowered = {d.lower(): d for d in dims}
    return next((lowered[n] for n in names if n in lowered), None)


def _pick_variable(ds: xr.Dataset, variable: str | None, path: Path) -> xr.DataArray:
    if variable is not None:
        if variable not in ds.data_vars:
            raise DatasetError(
                f"{path.name}: no variable {variable!r}; variables: {', '.join(map(str, ds.data_vars))}"
            )
        return ds[variable]
    candidates = [
        name
        for name, var in ds.data_vars.items()
        if var.ndim >= 3
        and np.issubdtype(var.dtype, np.number)
        and (_find_dim(var.dims, TIME_NAMES) or _datetime_dim(var))
    ]
    if not candidates:
        raise DatasetError(
            f"{path.name}: no numeric variable with (time, y, x) dims; variables and dims: "
            + "; ".join(f"{n} {tuple(v.dims)}" for n, v in ds.data_vars.items())
        )
    if len(candidates) > 1:
        raise DatasetError(
            f"{path.name}: several variables have (time, y, x) dims: {', '.join(map(str, candidates))}."
            " Pass variable= to choose one."
        )
    return ds[candidates[0]]


def _datetime_dim(var: xr.DataArray) -> str | None:
    for dim in var.dims:
        if dim in var.coords and np.issubdtype(var.coords[dim].dtype, np.datetime64):
            return str(dim)
    return None


@_reader("NetCDF or Zarr")
def open_netcdf_or_zarr(
    path: str | os.PathLike,
    *,
    variable: str | None = None,
    domain: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> xr.DataArray:
    """Read a variable with ``(time, y, x)`` dims from NetCDF, a Zarr folder or a zipped Zarr.

    Parameters
    ----------
    path : path
        ``.nc`` (NetCDF 3 or 4), a ``.zarr`` folder, or a ``.zip`` / ``.zarr.zip`` store.
    variable : str, optional
        The variable; default: the only numeric variable with a time dim and two more dims.
    domain : {"radar", "traffic", "video"}, optional
        Default: the variable's or file's ``domain`` attribute, else ``"radar"`` for rain units
        (mm/h, mm, dBZ), else ``"unknown"``.
    max_bytes : int or None
        Size limit of the file or folder.
    max_decoded_bytes : int or None
        Limit on the declared size of all arrays stored in the file and on the float32 array
        returned, checked from the metadata before any data is read.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``: the time dim (``time``, ``t``, ``frame``... or
        any datetime dim) becomes ``time``; ``y``/``lat``/``latitude``... and ``x``/``lon``/...
        (else the last two dims) become ``y`` and ``x``; one other dim becomes ``channel``, a second
        one ``sample``. Fill values become NaN (a mask, see :func:`datasets.valid_mask`).
    """
    path = check_file(path, max_bytes=max_bytes, folder_ok=True)
    with _open_xarray(path, max_declared=max_decoded_bytes) as ds:
        var = _pick_variable(ds, variable, path)
        time_dim = _datetime_dim(var) or _find_dim(var.dims, TIME_NAMES)
        if time_dim is None:
            raise DatasetError(f"{path.name}: variable {var.name!r} {var.dims} has no time dim.")
        rest = [d for d in var.dims if d != time_dim]
        y_dim, x_dim = _find_dim(rest, Y_NAMES), _find_dim(rest, X_NAMES)
        if y_dim is None or x_dim is None:
            y_dim, x_dim = rest[-2], rest[-1]
        extra = [d for d in rest if d not in (y_dim, x_dim)]
        if len(extra) > 2:
            raise DatasetError(
                f"{path.name}: variable {var.name!r} has dims {var.dims}; at most (sample, time, "
                "channel, y, x) can be read. Select the extra dims first."
            )
        channel_dim = extra[-1] if extra else None
        sample_dim = extra[0] if len(extra) == 2 else None
        order = [d for d in (sample_dim, time_dim, channel_dim, y_dim, x_dim) if d is not None]
        data = var.transpose(*order)
        shape = [data.sizes[d] for d in order]
        check_decoded(path, [1] * (5 - len(shape)) + shape, max_bytes=max_decoded_bytes)
        values = np.asarray(data.values, dtype=np.float32)  # loads into memory
        if sample_dim is None:
            values = values[None]
        if channel_dim is None:
            values = values[:, :, None]
        _check_values(values, path=path)
        time = data[time_dim].values if time_dim in data.coords else None
        time_step = FRAME_STEP
        if time is not None and np.issubdtype(np.asarray(time).dtype, np.datetime64):
            steps = np.diff(np.asarray(time, dtype="datetime64[ns]")).astype("int64") / 1e9
            if len(steps) and np.all(steps > 0):
                time_step = iso_duration(float(np.median(steps)))
        elif time is not None:
            time = None
        units = str(var.attrs.get("units", "unknown"))
        guess = var.attrs.get("domain") or ds.attrs.get("domain")
        if guess not in ("radar", "traffic", "video"):
            guess = "radar" if units.strip().lower() in RADAR_UNITS else "unknown"

        def coord(dim):
            if dim is None or dim not in data.coords:
                return None
            vals = np.asarray(data[dim].values)
            return vals if np.issubdtype(vals.dtype, np.number) else None

        channel_coord = None
        if channel_dim is not None and channel_dim in data.coords:
            channel_coord = [str(v) for v in data[channel_dim].values]
        return as_dataset_array(
            values,
            units=units,
            time_step=time_step,
            domain=domain or guess,
            source=path.name,
            description=str(
                var.attrs.get("long_name") or f"variable {var.name!r} read from {path.name}"
            ),
            time=time,
            channel=channel_coord,
            y=coord(y_dim),
            x=coord(x_dim),
            extra_attrs={"variable": str(var.name), "original_dims": " ".join(map(str, order))},
        )


# ----------------------------------------------------------------------------------------------
# Video files
# ----------------------------------------------------------------------------------------------
def _to_gray(frame: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` -> ``(H, W)`` float32 in [0, 255]."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        gray = frame.astype(np.float32)
    elif frame.ndim == 3 and frame.shape[-1] in (1, 2):
        gray = frame[..., 0].astype(np.float32)
    elif frame.ndim == 3 and frame.shape[-1] in (3, 4):
        rgb = frame[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma
    else:
        raise DatasetError(f"video frame of shape {frame.shape} is not an image")
    if frame.dtype == np.uint16:
        gray = gray / 257.0
    return gray


def _square_resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``(H, W)`` to a square and resize to ``(size, size)`` (bilinear)."""
    from PIL import Image

    h, w = gray.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = gray[top : top + side, left : left + side]
    image = Image.fromarray(np.clip(crop, 0, 255).astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


@_reader("a video (mp4, avi, mov, mkv, webm, gif)")
def open_video(
    path: str | os.PathLike,
    *,
    size: int = 64,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    extension: str | None = None,
) -> xr.DataArray:
    """Read a video as grayscale frames.

    Parameters
    ----------
    path : path
        mp4/avi/mov/mkv/webm (ffmpeg, shipped with ``imageio-ffmpeg``) or an animated GIF (pillow).
    size : int
        Output frames are ``size`` x ``size`` pixels: centre-cropped to a square, then resized.
    max_frames : int
        Stop after this many frames.
    max_bytes : int or None
        Size limit of the file.
    extension : str, optional
        Format to assume (e.g. ``".mp4"``) when the file name has no telling suffix.

    Returns
    -------
    xarray.DataArray
        float32 ``(1, time, 1, size, size)`` in ``"pixel intensity [0, 1]"``; ``time_step`` is
        ``"1 frame"`` and ``frame_rate_hz`` holds the frame rate when the file states one.
    """
    import imageio.v3 as iio

    path = check_file(path, max_bytes=max_bytes)
    if not (isinstance(size, int) and 4 <= size <= 1024):
        raise DatasetError(f"size={size!r} for {path.name}: use an int between 4 and 1024.")
    if not (isinstance(max_frames, int) and max_frames >= 1):
        raise DatasetError(f"max_frames={max_frames!r} for {path.name}: use a positive int.")
    ext = extension or (path.suffix.lower() if path.suffix.lower() in VIDEO_SUFFIXES else None)
    if ext is None:
        with open(path, "rb") as handle:
            ext = ".gif" if handle.read(6) in GIF_MAGIC else ".mp4"
    check_decoded(path, (1, max_frames, 1, size, size), max_bytes=DEFAULT_MAX_DECODED_BYTES)
    frames = []
    plugin = "pillow" if ext == ".gif" else "FFMPEG"  # explicit: no fallback to other plugins
    if plugin == "pillow":
        check_gif(path, max_frames=max_frames)  # canvas and frames from the GIF blocks
    with iio.imopen(path, "r", extension=ext, plugin=plugin) as video:
        try:
            meta = video.metadata()  # GIF: global metadata, no frame is decoded
        except Exception:  # metadata is optional for GIF; frames are what matter
            meta = {}
        if plugin == "FFMPEG":
            check_video(path, meta, max_frames=max_frames)  # ffmpeg's frame size, then decode
        for frame in video.iter():
            frames.append(_square_resize(_to_gray(frame), size))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise DatasetError(f"{path.name}: the video has no frames.")
    values = np.stack(frames)[None, :, None] / 255.0  # (1, T, 1, size, size)
    _check_values(values, path=path)
    extra = {"original_format": ext.lstrip(".")}
    fps = meta.get("fps")
    if not fps and meta.get("duration") and ext == ".gif":
        fps = 1000.0 / float(meta["duration"])  # GIF duration is per frame, in ms
    if fps and np.isfinite(fps) and fps > 0:
        extra["frame_rate_hz"] = float(fps)
    return as_dataset_array(
        values,
        units=PIXEL_UNITS,
        time_step=FRAME_STEP,
        domain="video",
        source=path.name,
        description=f"grayscale frames of {path.name}, centre-cropped and resized to {size}x{size}",
        channel=["intensity"],
        extra_attrs=extra,
    )


# ----------------------------------------------------------------------------------------------
# Dispatch
# ----------------------------------------------------------------------------------------------
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


def _match_netcdf(path: Path, head: bytes) -> bool:
    if not head:
        return _is_zarr_folder(path)
    name = path.name.lower()
    if head.startswith(NETCDF3_MAGIC):
        return True
    if head.startswith(HDF5_MAGIC):
        return name.endswith(NETCDF_SUFFIXES)
    if head.startswith(ZIP_MAGIC):
        return True
    return False


def _match_video(path: Path, head: bytes) -> bool:
    if head[:6] in GIF_MAGIC:
        return True
    if head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3"):  # mp4/mov, mkv/webm
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    return path.name.lower().endswith(VIDEO_SUFFIXES) and not head.startswith(
        (NPY_MAGIC, HDF5_MAGIC, ZIP_MAGIC) + NETCDF3_MAGIC
    )


READERS: list[ReaderEntry] = [
    ReaderEntry(
        "npy",
        lambda p, h: h.startswith(NPY_MAGIC) or p.name.lower().endswith(".npy"),
        open_npy,
        (".npy",),
    ),
    ReaderEntry("netcdf-zarr", _match_netcdf, open_netcdf_or_zarr, NETCDF_SUFFIXES + ZARR_SUFFIXES),
    ReaderEntry("video", _match_video, open_video, VIDEO_SUFFIXES),
]


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
    import datasets.builtin  # noqa: F401  (dataset modules register their readers on import)

    path = check_file(path, max_bytes=max_bytes, folder_ok=True)
    head = b""
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(512)
    for entry in READERS:
        if entry.match(path, head):
            try:
                return entry.reader(path, max_bytes=max_bytes, **options)
            except DatasetError as exc:  # registered readers too: no server folder in messages
                raise DatasetError(public_message(str(exc), path)) from exc.__cause__
    known = sorted({s for e in READERS for s in e.suffixes})
    raise DatasetError(
        f"{path.name}: unknown format (starts {head[:8]!r}). Known: {', '.join(known)}; give the file "
        "its usual suffix, or convert it to .npy (T, H, W) or NetCDF with (time, y, x) dims."
    )


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

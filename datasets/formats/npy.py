"""Reader of ``.npy`` arrays: ``(T, H, W)``, ``(T, C, H, W)``, ``(N, T, C, H, W)`` or the
``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8, as a dataset array (never unpickled)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import DEFAULT_MAX_BYTES, check_file, reader_errors
from datasets.layout import (
    FRAME_STEP,
    MOVING_MNIST_FAMILY,
    PIXEL_UNITS,
    USER_LICENCE,
    as_dataset_array,
    check_values,
)
from datasets.magic import NPY_MAGIC, head
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_decoded, check_npy, check_zip

NPY_LAYOUTS = ("thw", "tchw", "thwc", "ntchw", "mnist_test_seq")
NPZ_PREFERRED_KEYS = ("data", "frames", "x", "flow", "video", "arr_0")
"""Keys an ``.npz`` is read from, in this order, when it holds several frame arrays."""


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
    out = as_dataset_array(values, channel=["intensity"],
                           extra_attrs={"family": MOVING_MNIST_FAMILY}, **fields)  # fmt: skip
    return out.assign_coords(sample=index)


@reader_errors("a NumPy .npy array")
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
    if head(path, 6) == NPY_MAGIC:
        shape, _ = check_npy(path)  # the header only: a shape the file does not hold is refused
        check_decoded(path, shape, max_bytes=max_decoded_bytes)
    raw = np.load(path, allow_pickle=False, mmap_mode="r")
    if not isinstance(raw, np.ndarray):
        raise DatasetError(
            f"{path.name}: holds several arrays (.npz); save one array with np.save."
        )
    return frames_from_array(raw, source=path.name, layout=layout, units=units, domain=domain)


def frames_from_array(
    raw: np.ndarray,
    *,
    source: str,
    layout: str | None = None,
    units: str | None = None,
    domain: str | None = None,
) -> xr.DataArray:
    """An array of frames in one of :data:`NPY_LAYOUTS` as a dataset array.

    Parameters
    ----------
    raw : numpy.ndarray
        ``(T, H, W)``, ``(T, C, H, W)``, ``(T, H, W, C)``, ``(N, T, C, H, W)`` or ``(T, N, H, W)``
        uint8 (mnist_test_seq); may be a memory map.
    source : str
        File name for attrs and messages.
    layout : str, optional
        Axis order; default inferred from the rank and sizes (the description says which).
    units, domain : str, optional
        As for :func:`open_npy`.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``.
    """
    if layout is not None and layout not in NPY_LAYOUTS:
        raise DatasetError(f"layout {layout!r} for {source}: use one of {', '.join(NPY_LAYOUTS)}")
    if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_) or np.iscomplexobj(raw):
        raise DatasetError(f"{source}: dtype {raw.dtype} is not a real number type.")
    layout = layout or _infer_layout(raw.shape)
    expected = {"thw": 3, "tchw": 4, "thwc": 4, "ntchw": 5, "mnist_test_seq": 4}
    if layout is None or raw.ndim != expected[layout]:
        raise DatasetError(
            f"{source}: array of shape {raw.shape} does not fit layout {layout or '(none)'}: "
            "expected (T, H, W), (T, C, H, W), (T, H, W, C), (N, T, C, H, W) or mnist_test_seq "
            "(T, N, H, W); name the layout."
        )
    if layout == "mnist_test_seq":
        if raw.dtype != np.uint8:
            raise DatasetError(f"{source}: mnist_test_seq layout must be uint8, got {raw.dtype}.")
        out = mnist_seq_to_array(raw, source=source).assign_attrs(layout=layout)
        check_values(out.values, path=Path(source))
        return out
    values = np.asarray(raw)
    values = {
        "thw": lambda v: v[None, :, None],
        "tchw": lambda v: v[None],
        "thwc": lambda v: np.moveaxis(v, -1, 1)[None],
        "ntchw": lambda v: v,
    }[layout](values)  # (N, T, C, H, W)
    is_pixels = values.dtype == np.uint8
    values = values.astype(np.float32) / (255.0 if is_pixels else 1.0)  # (N, T, C, H, W)
    check_values(values, path=Path(source))
    return as_dataset_array(
        values,
        units=PIXEL_UNITS if is_pixels else (units or "unknown"),
        time_step=FRAME_STEP,
        domain=domain or ("video" if is_pixels else "unknown"),
        source=source,
        description=f"array {raw.shape} {raw.dtype} read from {source} as {layout}",
        extra_attrs={"layout": layout},
    )


def _infer_layout(shape: tuple[int, ...]) -> str | None:
    """Axis order from the rank: 3 thw, 5 ntchw; 4 tchw (few channels second), thwc (few
    channels last), else mnist_test_seq."""
    if len(shape) != 4:
        return {3: "thw", 5: "ntchw"}.get(len(shape))
    if shape[1] <= 4:
        return "tchw"
    return "thwc" if shape[-1] <= 4 else "mnist_test_seq"


@reader_errors("a NumPy .npz archive")
def open_npz(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    layout: str | None = None,
    units: str | None = None,
    domain: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> xr.DataArray:
    """Read one array of frames from a ``.npz`` archive (never unpickled).

    Parameters
    ----------
    path : path
        The ``.npz`` file; zip member sizes and ratios are checked before anything is inflated.
    key : str, optional
        The array to read; default: the only array of 3 or more dims, else the first of
        :data:`NPZ_PREFERRED_KEYS` present (the description says which was taken).
    layout, units, domain
        As for :func:`open_npy` (layout also ``"thwc"``: time, height, width, channels).
    max_bytes, max_decoded_bytes : int or None
        Limits on the file and on the float32 array returned (checked from the member's header).

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``.
    """
    import zipfile

    path = check_file(path, max_bytes=max_bytes)
    check_zip(path, max_bytes=max_decoded_bytes or DEFAULT_MAX_DECODED_BYTES)
    with zipfile.ZipFile(path) as archive:
        shapes = _npz_headers(archive)
    chosen = _npz_key(shapes, key, path.name)
    check_decoded(path, shapes[chosen][0], max_bytes=max_decoded_bytes)
    with np.load(path, allow_pickle=False) as archive:
        raw = archive[chosen]
    out = frames_from_array(raw, source=path.name, layout=layout, units=units, domain=domain)
    return out.assign_attrs(
        npz_key=chosen, description=out.attrs["description"] + f" (key {chosen!r})"
    )


def _npz_headers(archive) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` of every ``.npy`` member, from its header only."""
    shapes = {}
    for name in archive.namelist():
        if not name.endswith(".npy"):
            continue
        with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(member)
        shapes[name[: -len(".npy")]] = (tuple(int(n) for n in shape), dtype)
    return shapes


def _npz_key(shapes: dict, key: str | None, source: str) -> str:
    listing = "; ".join(f"{k} {shape} {dtype}" for k, (shape, dtype) in shapes.items())
    if key is not None:
        if key not in shapes:
            raise DatasetError(f"{source}: no array {key!r}; arrays: {listing or 'none'}.")
        return key
    frames = [k for k, (shape, _) in shapes.items() if len(shape) >= 3]
    if len(frames) == 1:
        return frames[0]
    preferred = [k for k in NPZ_PREFERRED_KEYS if k in frames]
    if preferred:
        return preferred[0]
    raise DatasetError(
        f"{source}: cannot tell which array holds the frames ({listing or 'no arrays'}); "
        "name it with key=."
    )


def match_npz(path, head: bytes) -> bool:
    """A ``.npz`` name (a zip whose members are ``.npy`` arrays)."""
    return path.name.lower().endswith(".npz") and (not head or head.startswith(b"PK"))


def match_npy(path, head: bytes) -> bool:
    """NumPy magic bytes, or a ``.npy`` name."""
    return head.startswith(NPY_MAGIC) or path.name.lower().endswith(".npy")

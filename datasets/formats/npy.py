"""Reader of ``.npy`` arrays: ``(T, H, W)``, ``(T, C, H, W)``, ``(N, T, C, H, W)`` or the
``mnist_test_seq.npy`` layout ``(T, N, H, W)`` uint8, as a dataset array (never unpickled)."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import DEFAULT_MAX_BYTES, check_file, reader_errors
from datasets.layout import FRAME_STEP, PIXEL_UNITS, USER_LICENCE, as_dataset_array, check_values
from datasets.magic import NPY_MAGIC, head
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_decoded, check_npy

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
        check_values(out.values, path=path)
        return out
    values = np.asarray(raw)
    values = {"thw": values[None, :, None], "tchw": values[None], "ntchw": values}[layout]
    is_pixels = values.dtype == np.uint8
    values = values.astype(np.float32) / (255.0 if is_pixels else 1.0)  # (N, T, C, H, W)
    check_values(values, path=path)
    return as_dataset_array(
        values,
        units=PIXEL_UNITS if is_pixels else (units or "unknown"),
        time_step=FRAME_STEP,
        domain=domain or ("video" if is_pixels else "unknown"),
        source=path.name,
        description=f"array {raw.shape} {raw.dtype} read from {path.name} as {layout}",
    )


def match_npy(path, head: bytes) -> bool:
    """NumPy magic bytes, or a ``.npy`` name."""
    return head.startswith(NPY_MAGIC) or path.name.lower().endswith(".npy")

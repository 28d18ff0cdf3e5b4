"""Moving MNIST made on the training device, inside the training step: an endless stream.

:func:`datasets.video.moving_mnist` draws a fixed set of sequences with NumPy on the host; training
from it copies every batch to the device and sees the same 10,000 sequences again and again.
:class:`MovingMNISTStream` instead renders each batch where the network runs, from the digits of one
split's pool (held apart per split exactly as :func:`datasets.video.digit_pool` says), so training
never waits on a host and never sees a sequence twice.

Sequences are a pure function of ``(seed, split, sample number, digit, field)``: every random draw
is an integer hash of that counter (:func:`hash32`), and positions are integer (fixed-point)
arithmetic. The same ``seed`` and sample numbers give bit-identical sequences on any device and in
the NumPy reference (:func:`reference_sequences`, what the tests compare against), whatever the batch
size, and a resumed run continues the stream from its sample counter.

Motion follows :mod:`datasets.video`: start uniform over the canvas, direction uniform (4096
directions), speed uniform in [2, 5] pixels per frame (1/256 px steps), reflected at the borders,
digits overlaid with ``max``.
"""

from __future__ import annotations

import numpy as np
import torch

from datasets.video import DIGIT, SPEED_RANGE, digit_pool, mnist_digits
from datasets.vocabulary import SPLITS

MASK32 = 0xFFFFFFFF
FIXED = 256  # fixed-point positions: 1/256 pixel
DIRECTIONS = 4096  # directions the motion can take (uniform over the circle)
TRIG_ONE = 1 << 14  # sin/cos table scale
FIELDS = 5  # per digit: glyph, start y, start x, direction, speed


def hash32(x):
    """A 32-bit integer hash (Mueller's ``0x45d9f3b`` mixer) of ``x`` in ``[0, 2**32)``.

    Works on int64 torch tensors and on NumPy int64 arrays alike: every product stays below
    ``2**59``, so no overflow, and both libraries give the same bits.
    """
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    return x ^ (x >> 16)


def draw(seed: int, split: str, sample, digits: int):
    """Random 32-bit words of samples ``sample``: ``(N, digits, FIELDS)`` int64 (torch or NumPy).

    ``sample`` holds global sample numbers (int64, torch tensor or NumPy array, below ``2**62``).
    """
    base = hash32(((int(seed) & MASK32) * 3 + SPLITS.index(split) + 1) & MASK32)
    lo, hi = sample & MASK32, (sample >> 32) & MASK32
    key = hash32(hash32(base ^ lo) ^ hi)  # (N,)
    slot = _slots(digits, like=sample)  # (1, D, F)
    return hash32(hash32(key[:, None, None] ^ slot) ^ 0x9E3779B9)  # (N, D, F)


def _slots(digits: int, *, like):
    """``(1, digits, FIELDS)`` counters 0..digits*FIELDS-1 in ``like``'s library and device."""
    n = digits * FIELDS
    if isinstance(like, torch.Tensor):
        return torch.arange(n, dtype=torch.int64, device=like.device).reshape(1, digits, FIELDS)
    return np.arange(n, dtype=np.int64).reshape(1, digits, FIELDS)


def trig_table() -> np.ndarray:
    """``(2, DIRECTIONS)`` int64: round(sin, cos of each direction x ``TRIG_ONE``)."""
    angle = 2.0 * np.pi * np.arange(DIRECTIONS) / DIRECTIONS
    return np.rint(np.stack([np.sin(angle), np.cos(angle)]) * TRIG_ONE).astype(np.int64)


def trajectories(words, *, pool_size: int, frames: int, size: int, trig):
    """Digit choices and pixel positions from :func:`draw`'s words (torch or NumPy, same bits).

    Parameters
    ----------
    words : int64 array ``(N, D, FIELDS)``
    pool_size : int
        Digits in the split's pool.
    frames, size : int
        Frames per sequence, canvas side (pixels).
    trig : int64 array ``(2, DIRECTIONS)``
        :func:`trig_table`, in the same library/device as ``words``.

    Returns
    -------
    choice : int64 ``(N, D)``
        Index into the pool.
    y, x : int64 ``(N, D, T)``
        Top-left corner of each digit, pixels.
    """
    span = (size - DIGIT) * FIXED  # room to move, fixed point
    choice = words[..., 0] % pool_size
    start_y, start_x = words[..., 1] % (span + 1), words[..., 2] % (span + 1)
    direction = words[..., 3] % DIRECTIONS
    low, high = (int(round(s * FIXED)) for s in SPEED_RANGE)
    speed = low + words[..., 4] % (high - low + 1)  # fixed point per frame
    vy = (speed * trig[0][direction]) // TRIG_ONE  # (N, D), floor division in both libraries
    vx = (speed * trig[1][direction]) // TRIG_ONE
    t = _frame_index(frames, like=words)  # (T,)
    period = 2 * span

    def bounce(start, velocity):
        folded = (start[..., None] + velocity[..., None] * t) % period  # (N, D, T), non-negative
        position = span - abs(span - folded)
        return (position + FIXED // 2) // FIXED  # nearest pixel

    return choice, bounce(start_y, vy), bounce(start_x, vx)


def _frame_index(frames: int, *, like):
    if isinstance(like, torch.Tensor):
        return torch.arange(frames, dtype=torch.int64, device=like.device)
    return np.arange(frames, dtype=np.int64)


class MovingMNISTStream:
    """Batches of Moving MNIST rendered on ``device``, from one split's digit pool.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Which digit pool (disjoint pools, :func:`datasets.video.digit_pool`).
    seed : int
        Fixes every sequence (with the sample numbers).
    device : torch.device or str
    frames, size, digits : int
        Frames per sequence, canvas side in pixels, digits per sequence.

    Examples
    --------
    >>> stream = MovingMNISTStream(split="train", seed=0, device="cpu")
    >>> stream.batch(start=0, size=4).shape
    torch.Size([4, 20, 1, 64, 64])
    """

    def __init__(
        self,
        *,
        split: str = "train",
        seed: int = 0,
        device: torch.device | str = "cpu",
        frames: int = 20,
        size: int = 64,
        digits: int = 2,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; use one of {', '.join(SPLITS)}")
        if size < DIGIT or frames < 1 or digits < 1:
            raise ValueError(
                f"frames={frames}, size={size}, digits={digits}: use frames >= 1, size >= {DIGIT}, "
                "digits >= 1"
            )
        self.split, self.seed = split, int(seed)
        self.device = torch.device(device)
        self.frames, self.size, self.digits = frames, size, digits
        images, _ = mnist_digits()
        self.pool = torch.from_numpy(digit_pool(split)).to(self.device)  # (P,) indices into images
        self.glyphs = torch.from_numpy(images[digit_pool(split)]).to(self.device)  # (P, 28, 28)
        self.trig = torch.from_numpy(trig_table()).to(self.device)  # (2, DIRECTIONS)
        offsets = torch.arange(DIGIT, device=self.device)
        self._rows = offsets.view(1, 1, 1, DIGIT, 1)  # broadcast over (N, D, T, 28, 28)
        self._cols = offsets.view(1, 1, 1, 1, DIGIT)

    def digit_indices(self, *, start: int, size: int) -> torch.Tensor:
        """``(size, digits)`` int64: indices into :func:`mnist_digits` of samples start.."""
        words = draw(self.seed, self.split, self._samples(start, size), self.digits)
        return self.pool[words[..., 0] % len(self.pool)]

    def batch(self, *, start: int, size: int) -> torch.Tensor:
        """Samples ``start .. start + size - 1`` of the stream.

        Returns
        -------
        torch.Tensor
            ``[size, frames, 1, size_px, size_px]`` float32 on the stream's device, values in
            [0, 1] (pixel intensity).
        """
        words = draw(self.seed, self.split, self._samples(start, size), self.digits)  # (N, D, F)
        choice, y, x = trajectories(words, pool_size=len(self.pool), frames=self.frames,
                                    size=self.size, trig=self.trig)  # fmt: skip  # (N, D), (N, D, T)
        n, t, side = size, self.frames, self.size
        frame = torch.arange(n * t, device=self.device).view(n, 1, t, 1, 1)  # (N, 1, T, 1, 1)
        rows = y[..., None, None] + self._rows  # (N, D, T, 28, 1)
        cols = x[..., None, None] + self._cols  # (N, D, T, 1, 28)
        flat = ((frame * side + rows) * side + cols).reshape(-1)  # (N*D*T*28*28,)
        ink = self.glyphs[choice][:, :, None].expand(n, self.digits, t, DIGIT, DIGIT)
        canvas = torch.zeros(n * t * side * side, device=self.device)  # (N*T*H*W,)
        canvas.scatter_reduce_(0, flat, ink.reshape(-1), reduce="amax")  # overlay with max
        return canvas.view(n, t, 1, side, side)  # [N, T, 1, H, W]

    def _samples(self, start: int, size: int) -> torch.Tensor:
        return torch.arange(start, start + size, dtype=torch.int64, device=self.device)


def reference_sequences(
    *, split: str, seed: int, start: int, size: int, frames: int = 20, side: int = 64,
    digits: int = 2,
) -> np.ndarray:  # fmt: skip
    """The stream's samples rendered by a plain NumPy loop (what the device output must equal).

    Returns
    -------
    numpy.ndarray
        ``(size, frames, 1, side, side)`` float32 in [0, 1].
    """
    images, _ = mnist_digits()
    pool = digit_pool(split)
    words = draw(seed, split, np.arange(start, start + size, dtype=np.int64), digits)
    choice, y, x = trajectories(words, pool_size=len(pool), frames=frames, size=side,
                                trig=trig_table())  # fmt: skip
    canvas = np.zeros((size, frames, 1, side, side), dtype=np.float32)
    for n in range(size):
        for d in range(digits):
            glyph = images[pool[choice[n, d]]]  # (28, 28)
            for t in range(frames):
                patch = canvas[
                    n, t, 0, y[n, d, t] : y[n, d, t] + DIGIT, x[n, d, t] : x[n, d, t] + DIGIT
                ]
                np.maximum(patch, glyph, out=patch)
    return canvas

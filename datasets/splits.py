"""A file's time axis cut into train / val / test windows: the split syntax and the cutter.

Split syntax (``--split`` of ``python -m model.train`` and ``model.evaluate``; ``split =`` in a
training config's ``[data]``):

============  ====================================================================================
fractions     ``"0.8,0.1,0.1"``: the train, val and test shares of the frames, in time order
              (:data:`DEFAULT_SPLIT`). Each above 0, adding up to 1. A file of several independent
              sequences (``.npy``/``.npz`` layouts ``ntchw`` and ``mnist_test_seq``, a NetCDF
              variable with a sample dim) is split by sequence, in file order.
dates         ``"train:..2024-06-30,val:2024-07-01..2024-07-15,test:2024-07-16.."``: each split
              named once with a range ``START..END``; both ends are included and either may be
              left open. A date alone covers its whole day (``..2024-06-30`` runs to the end of
              June 30); a time is written ``2024-07-01T06:00``. Ranges may not overlap; frames in
              no range are left out. Needs timestamps: NetCDF/Zarr time coordinates, radar files,
              TaxiBJ-style HDF5, or ``start`` and ``time_step`` stated for an array file.
============  ====================================================================================

Windows (:func:`split_windows`): each split is cut into windows of ``context + horizon``
consecutive frames, ``stride`` frames apart, that never leave their split, never span a gap in
time and never hold a missing frame (one without any finite value; NaN at some pixels of a frame
is a mask of invalid pixels and stays). So no frame of one split's windows lies in another split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from datasets.errors import DatasetError
from datasets.layout import DIMS
from datasets.timesteps import parse_time_step
from datasets.vocabulary import SPLITS

DEFAULT_SPLIT = "0.8,0.1,0.1"
"""Chronological fractions train, val, test: the split of a file when none is given."""

MAX_WINDOW_BYTES = 4 * 2**30
"""Largest float32 array of one split's windows (4 GiB); a larger one asks for a larger stride."""

_EXAMPLES = (
    "fractions train,val,test such as 0.8,0.1,0.1, or dates such as "
    "train:..2024-06-30,val:2024-07-01..2024-07-15,test:2024-07-16.."
)


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split (see the module docstring for the syntax).

    Attributes
    ----------
    text : str
        The text it was parsed from (stored in checkpoints, shown in messages).
    fractions : tuple of float or None
        ``(train, val, test)`` shares, adding up to 1; None for a split by dates.
    ranges : tuple or None
        ``((name, start, end), ...)`` in :data:`SPLITS` order, ``start``/``end`` inclusive
        ``pandas.Timestamp`` (naive, UTC) or None for an open end; None for fractions.
    """

    text: str
    fractions: tuple[float, float, float] | None = None
    ranges: tuple[tuple[str, pd.Timestamp | None, pd.Timestamp | None], ...] | None = None

    @property
    def by_dates(self) -> bool:
        """True for a split by dates."""
        return self.ranges is not None

    def range_text(self, split: str) -> str:
        """``"2024-07-01..2024-07-15"`` of ``split`` as written (dates only)."""
        for part in self.text.split(","):
            name, _, written = part.partition(":")
            if name.strip() == split:
                return written.strip()
        return "?"


def parse_split(text: str) -> SplitSpec:
    """Read a split written as fractions or dates (module docstring).

    Parameters
    ----------
    text : str
        E.g. ``"0.8,0.1,0.1"`` or ``"train:..2024-06-30,val:2024-07-01..2024-07-15,test:2024-07-16.."``.

    Returns
    -------
    SplitSpec

    Raises
    ------
    DatasetError
        The text is neither; the message quotes it, says what was wrong and gives examples.
    """
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"split {text!r} is empty; give {_EXAMPLES}")
    text = text.strip()
    parts = [p.strip() for p in text.split(",")]
    if all(_is_number(p) for p in parts):
        return SplitSpec(text=text, fractions=_fractions(text, parts))
    if not any(":" in p for p in parts):
        raise DatasetError(f"split {text!r} is neither fractions nor dates; give {_EXAMPLES}")
    return SplitSpec(text=text, ranges=_ranges(text, parts))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fractions(text: str, parts: list[str]) -> tuple[float, float, float]:
    if len(parts) != 3:
        raise DatasetError(
            f"split {text!r} has {len(parts)} fraction(s); give three, train,val,test "
            "(e.g. 0.8,0.1,0.1)"
        )
    values = tuple(float(p) for p in parts)
    for name, value in zip(SPLITS, values, strict=True):
        if not math.isfinite(value) or value <= 0:
            raise DatasetError(
                f"split {text!r}: {name} gets {value:g}; every split needs a share above 0 "
                "(e.g. 0.8,0.1,0.1)"
            )
    if abs(sum(values) - 1.0) > 1e-6:
        raise DatasetError(
            f"split {text!r}: the fractions add up to {sum(values):g}; they must add up to 1 "
            "(e.g. 0.8,0.1,0.1)"
        )
    return values  # type: ignore[return-value]


def _ranges(text: str, parts: list[str]) -> tuple:
    found: dict[str, tuple] = {}
    for part in parts:
        name, colon, written = (s.strip() for s in part.partition(":"))
        if not colon or name not in SPLITS:
            raise DatasetError(
                f"split {text!r}: {part!r} does not start with train:, val: or test:; "
                f"give {_EXAMPLES}"
            )
        if name in found:
            raise DatasetError(f"split {text!r} names {name} twice; name each split once")
        start, dots, end = (s.strip() for s in written.partition(".."))
        if not dots:
            raise DatasetError(
                f"split {text!r}: {name}:{written} is not a range; write START..END (either end "
                "may be left open: ..END, START..)"
            )
        found[name] = (name, _stamp(start, text, end=False), _stamp(end, text, end=True))
    missing = [s for s in SPLITS if s not in found]
    if missing:
        raise DatasetError(
            f"split {text!r} gives no range for {' and '.join(missing)}; name train, val and "
            "test once each"
        )
    ranges = tuple(found[s] for s in SPLITS)
    _check_ranges(text, ranges)
    return ranges


def _stamp(text: str, whole: str, *, end: bool) -> pd.Timestamp | None:
    """A range end: None when open; a date alone ends at the end of its day when ``end``."""
    if not text:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT or not (text[:4].isdigit() and "-" in text):
        raise DatasetError(
            f"split {whole!r}: {text!r} is not a date; write 2024-07-01 or 2024-07-01T06:00"
        )
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    if end and len(text) == 10:  # YYYY-MM-DD: the whole day
        stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return stamp


def _check_ranges(text: str, ranges: tuple) -> None:
    for name, start, end in ranges:
        if start is not None and end is not None and start > end:
            raise DatasetError(f"split {text!r}: {name} ends before it starts")
    low = pd.Timestamp.min
    order = sorted(ranges, key=lambda r: r[1] if r[1] is not None else low)
    for (a, _, a_end), (b, b_start, _) in zip(order, order[1:], strict=False):
        if a_end is None or b_start is None or a_end >= b_start:
            raise DatasetError(
                f"split {text!r}: {a} and {b} overlap; ranges include both ends, so end one the "
                "day (or time step) before the next one starts"
            )


# ------------------------------------------------------------------------------------------------
# time axis
def with_time_axis(
    array: xr.DataArray, *, start: str | None = None, time_step: str | None = None
) -> xr.DataArray:
    """Give a file's frames the time step and timestamps its owner states.

    Parameters
    ----------
    array : xarray.DataArray
        ``(sample, time, channel, y, x)`` as read.
    start : str, optional
        Time of the first frame (``"2024-01-01T00:00"``), for a file without timestamps; needs
        ``time_step``.
    time_step : str, optional
        Time between frames (ISO 8601, ``"PT30M"``), for a file that does not state one.

    Returns
    -------
    xarray.DataArray
        ``array`` with attr ``time_step`` (ISO 8601) and, with ``start``, a datetime64 ``time``.

    Raises
    ------
    DatasetError
        ``time_step`` is no duration or contradicts the file's, or ``start`` is given for a file
        with timestamps of its own.
    """
    from datasets.timesteps import iso_duration

    source = array.attrs.get("source", "file")
    if time_step:
        seconds = parse_time_step(time_step)
        own = parse_time_step(array.attrs.get("time_step"))
        if seconds is None:
            raise DatasetError(f"time_step={time_step!r} for {source}: write ISO 8601 ('PT30M')")
        if own is not None and abs(own - seconds) > 1e-6 * own:
            raise DatasetError(
                f"{source}: states a time step of {array.attrs.get('time_step')}, the config "
                f"says {time_step}; remove time_step from the config"
            )
        array = array.assign_attrs(time_step=iso_duration(seconds))
    if start:
        if _datetimes(array) is not None:
            first = pd.Timestamp(array["time"].values[0])
            raise DatasetError(
                f"{source}: has timestamps of its own (from {first}); remove start from the config"
            )
        if not time_step:
            raise DatasetError(f"start={start!r} for {source} needs time_step too")
        step = pd.Timedelta(seconds=parse_time_step(time_step))
        stamps = pd.Timestamp(start) + step * np.arange(array.sizes["time"])
        array = array.assign_coords(time=np.asarray(stamps, dtype="datetime64[ns]"))
    return array


# ------------------------------------------------------------------------------------------------
# windows
def split_windows(
    array: xr.DataArray,
    spec: SplitSpec,
    split: str,
    *,
    context: int,
    horizon: int,
    stride: int = 1,
    n_samples: int | None = None,
    max_bytes: int = MAX_WINDOW_BYTES,
) -> xr.DataArray:
    """The windows of one split of a file's frames.

    Parameters
    ----------
    array : xarray.DataArray
        A file's frames ``(sample, time, channel, y, x)`` in physical units, as
        :func:`datasets.files.read_any` returns them: one sequence (``sample`` of length 1), or
        several independent ones. ``time`` is datetime64 (real timestamps; gaps are differences
        other than the ``time_step`` attr) or a frame index.
    spec : SplitSpec
        From :func:`parse_split`.
    split : {"train", "val", "test"}
    context, horizon : int
        Frames in and frames out; a window holds ``context + horizon`` frames.
    stride : int
        Frames between the starts of consecutive windows (>= 1).
    n_samples : int, optional
        Keep this many windows, evenly spaced (all when None).
    max_bytes : int
        Largest float32 size of the windows returned.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``, ``time`` the frame index in the window; the
        coordinate ``timestamp (sample, time)`` (real times) or ``frame (sample, time)`` (index
        in the file), and ``sequence (sample)`` for a file of several sequences; attrs as the
        file's plus ``context``, ``horizon``, ``stride`` and ``split``.

    Raises
    ------
    DatasetError
        Unknown split, a split by dates of a file without timestamps, a split without any window
        (the message says how many frames it got and what to change), or windows larger than
        ``max_bytes``.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    context, horizon, stride = int(context), int(horizon), int(stride)
    if min(context, horizon, stride) < 1:
        raise DatasetError(
            f"context={context}, horizon={horizon}, stride={stride}: each must be at least 1"
        )
    array = _in_time_order(array.transpose(*DIMS))
    source = str(array.attrs.get("source", "file"))
    times = _datetimes(array)
    labels = _labels(array, times, spec, source)  # (N, T): index into SPLITS, -1 for none
    values = array.values  # (N, T, C, H, W)
    present = np.isfinite(values).reshape(*values.shape[:2], -1).any(axis=2)  # (N, T)
    linked = _linked(times, array.attrs.get("time_step"), values.shape[1])  # (T,)
    length = context + horizon
    mine = labels == SPLITS.index(split)
    starts = [
        (n, s)
        for n in range(values.shape[0])
        for a, b in _runs(mine[n] & present[n], linked)
        for s in range(a, b - length + 1, stride)
    ]
    if not starts:
        raise DatasetError(_no_window(source, spec, split, mine, present, linked, length))
    starts = _evenly(starts, n_samples)
    nbytes = len(starts) * length * int(np.prod(values.shape[2:])) * 4
    if nbytes > max_bytes:
        raise DatasetError(
            f"{source}: the {len(starts):,} {split} windows of {length} frames take "
            f"{nbytes / 2**30:.1f} GiB (limit {max_bytes / 2**30:.1f} GiB); set a larger stride "
            f"(stride = {max(2, math.ceil(nbytes / max_bytes) * stride)} in the [data] {split} "
            "table) or n_samples"
        )
    return _cut(array, values, times, starts, length, attrs={
        "context": context, "horizon": horizon, "stride": stride, "split": split,
        "split_spec": spec.text})  # fmt: skip


def _in_time_order(array: xr.DataArray) -> xr.DataArray:
    """``array`` sorted by a datetime ``time`` that is out of order (files may be)."""
    time = array["time"].values
    if np.issubdtype(time.dtype, np.datetime64) and (np.diff(time) < np.timedelta64(0)).any():
        return array.sortby("time")
    return array


def _datetimes(array: xr.DataArray) -> np.ndarray | None:
    time = array["time"].values
    return time.astype("datetime64[ns]") if np.issubdtype(time.dtype, np.datetime64) else None


def _labels(array: xr.DataArray, times, spec: SplitSpec, source: str) -> np.ndarray:
    """Which split each frame of each sequence is in: ``(N, T)`` int, -1 for none."""
    n, t = array.sizes["sample"], array.sizes["time"]
    labels = np.full((n, t), -1, dtype=np.int8)
    if spec.by_dates:
        if times is None:
            raise DatasetError(
                f"{source}: has no timestamps (time step {array.attrs.get('time_step')!r}), so "
                f"it cannot be split by dates ({spec.text}); split it by fractions (e.g. "
                f"{DEFAULT_SPLIT}), or state start and time_step in the config's [data]"
            )
        stamps = pd.DatetimeIndex(times)
        for index, (_, start, end) in enumerate(spec.ranges):
            inside = np.ones(t, dtype=bool)
            if start is not None:
                inside &= stamps >= start
            if end is not None:
                inside &= stamps <= end
            labels[:, inside] = index
        return labels
    count = t if n == 1 else n  # one sequence: split its frames; several: split the sequences
    edges = np.round(np.cumsum([0.0, *spec.fractions]) * count).astype(int)
    for index in range(len(SPLITS)):
        if n == 1:
            labels[0, edges[index] : edges[index + 1]] = index
        else:
            labels[edges[index] : edges[index + 1], :] = index
    return labels


def _linked(times, time_step, n_time: int) -> np.ndarray:
    """``(T,)`` bool: frame ``t`` follows frame ``t - 1`` without a gap in time (``[0]`` False)."""
    linked = np.ones(n_time, dtype=bool)
    linked[0] = False
    if times is None or n_time < 2:
        return linked
    ticks = times.astype(np.int64)
    diffs = np.diff(ticks)
    seconds = parse_time_step(time_step)
    if seconds is not None:
        step = round(seconds * 1e9)
    else:
        step = diffs[diffs > 0].min() if (diffs > 0).any() else 1
    linked[1:] = diffs == step
    return linked


def _runs(ok: np.ndarray, linked: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of the stretches of consecutive ``ok`` frames without a gap."""
    goes_on = ok[1:] & ok[:-1] & linked[1:]  # frame t continues frame t - 1
    first = ok & ~np.concatenate([[False], goes_on])
    last = ok & ~np.concatenate([goes_on, [False]])
    return list(
        zip(np.flatnonzero(first).tolist(), (np.flatnonzero(last) + 1).tolist(), strict=True)
    )


def _evenly(starts: list, n_samples: int | None) -> list:
    if n_samples is None or int(n_samples) >= len(starts):
        return starts
    if int(n_samples) < 1:
        raise DatasetError(f"n_samples={n_samples}: ask for at least 1 window")
    pick = np.unique(np.linspace(0, len(starts) - 1, int(n_samples)).round().astype(int))
    return [starts[i] for i in pick]


def _no_window(source, spec, split, mine, present, linked, length) -> str:
    """Why ``split`` holds no window, and what to change."""
    frames = int(mine.sum())
    runs = [b - a for n in range(mine.shape[0]) for a, b in _runs(mine[n] & present[n], linked)]
    longest = max(runs, default=0)
    where = (
        f"{spec.range_text(split)}: {frames} frames"
        if spec.by_dates
        else f"{spec.fractions[SPLITS.index(split)]:g} of the "
        + (
            f"{mine.shape[1]} frames: {frames}"
            if mine.shape[0] == 1
            else f"{mine.shape[0]} sequences: {int(mine.any(axis=1).sum())}"
        )  # fmt: skip
    )
    change = "widen its dates" if spec.by_dates else "give it a larger share (e.g. 0.6,0.2,0.2)"
    return (
        f"{source}: the {split} split ({where}) holds no window of context + horizon = {length} "
        f"frames without a gap or missing frame (longest stretch: {longest}); {change}, or "
        "shorten context/horizon"
    )


def _cut(array, values, times, starts, length: int, *, attrs: dict) -> xr.DataArray:
    seq = np.array([n for n, _ in starts], dtype=int)
    first = np.array([s for _, s in starts], dtype=int)
    index = first[:, None] + np.arange(length)[None, :]  # (S, L)
    out = np.asarray(values[seq[:, None], index], dtype=np.float32)  # (S, L, C, H, W)
    coords = {
        "sample": np.arange(len(starts)),
        "time": np.arange(length),
        "channel": array["channel"].values,
        "y": array["y"].values,
        "x": array["x"].values,
    }
    if times is not None:
        coords["timestamp"] = (("sample", "time"), times[index])
    else:
        coords["frame"] = (("sample", "time"), index)
    if values.shape[0] > 1:
        coords["sequence"] = ("sample", seq)
    return xr.DataArray(out, dims=DIMS, coords=coords, name=array.name,
                        attrs={**array.attrs, **attrs})  # fmt: skip


__all__ = [
    "DEFAULT_SPLIT",
    "MAX_WINDOW_BYTES",
    "SplitSpec",
    "parse_split",
    "split_windows",
    "with_time_axis",
]

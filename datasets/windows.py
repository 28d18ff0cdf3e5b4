"""Cutting sequences into samples of ``context + horizon`` frames: the one windowing module.

- :func:`windows`: a ``(time, channel, y, x)`` series with gaps (traffic; the TaxiBJ reader), cut
  only inside gap-free stretches (:func:`contiguous_runs`);
- :func:`sliding_windows`: a one-sample ``(sample, time, channel, y, x)`` sequence without gaps
  (radar events, whose NaN are a mask, not missing frames);
- :func:`take_evenly`: keep ``n_samples`` windows, evenly spaced (first and last included).

Both cutters return dims ``(sample, time, channel, y, x)`` where ``time`` is the frame index in
the window (0 .. context + horizon - 1) and the coordinate ``timestamp (sample, time)`` holds the
real times; attrs are the input's plus ``context`` and ``horizon``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.layout import DIMS
from datasets.timesteps import parse_time_step


def _check_window(context: int, horizon: int, stride: int) -> None:
    if context < 1 or horizon < 1 or stride < 1:
        raise ValueError(f"need context, horizon, stride >= 1; got {context}, {horizon}, {stride}")


def _cut(values, stamps, starts: np.ndarray, length: int, *, like: xr.DataArray, attrs: dict):
    """Windows ``values[start : start + length]`` for each start, as a dataset array."""
    index = starts[:, None] + np.arange(length)[None, :]  # (N, L)
    out = np.asarray(values, dtype=np.float32)[index]  # (N, L, C, H, W)
    return xr.DataArray(
        out,
        dims=DIMS,
        coords={
            "sample": np.arange(starts.size),
            "time": np.arange(length),
            "channel": like["channel"].values,
            "y": like["y"],
            "x": like["x"],
            "timestamp": (("sample", "time"), np.asarray(stamps)[index]),
        },
        name=like.name,
        attrs=attrs,
    )


def contiguous_runs(series: xr.DataArray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of gap-free stretches of a ``(time, ...)`` series.

    A gap is a time difference other than the series' step (``attrs["time_step"]`` as an ISO 8601
    duration, else the smallest positive difference) or a frame with any non-finite value.
    """
    n = series.sizes["time"]
    if n == 0:
        return []
    times = series["time"].values
    if np.issubdtype(times.dtype, np.datetime64):
        ticks = times.astype("datetime64[ns]").astype(np.int64)
        seconds = parse_time_step(series.attrs.get("time_step"))
        step = round(seconds * 1e9) if seconds is not None else _smallest_step(ticks)
    else:
        ticks = np.asarray(times, dtype=np.float64)
        step = _smallest_step(ticks)
    other = [d for d in series.dims if d != "time"]
    finite = np.isfinite(series.transpose("time", *other).values).reshape(n, -1).all(axis=1)
    ok_step = np.diff(ticks) == step  # (n-1,) frame i -> i+1 continuous
    runs, start = [], None
    for i in range(n):
        if not finite[i]:
            if start is not None:
                runs.append((start, i))
            start = None
            continue
        if start is None:
            start = i
        elif not ok_step[i - 1]:
            runs.append((start, i))
            start = i
    if start is not None:
        runs.append((start, n))
    return runs


def _smallest_step(ticks: np.ndarray):
    diffs = np.diff(ticks)
    return diffs[diffs > 0].min() if (diffs > 0).any() else 1


def windows(
    series: xr.DataArray, context: int = 12, horizon: int = 12, *, stride: int = 1
) -> xr.DataArray:
    """Cut a ``(time, channel, y, x)`` series into windows that never span a gap.

    Parameters
    ----------
    series : xarray.DataArray
        dims ``(time, channel, y, x)``; ``time`` datetime64 (with ``attrs["time_step"]``) or
        numeric steps.
    context, horizon : int
        Frames given to the model and frames to forecast (>= 1 each).
    stride : int
        Frames between the starts of consecutive windows within one gap-free stretch (>= 1);
        each stretch starts its own windows at its first frame.

    Returns
    -------
    xarray.DataArray
        float32, dims ``(sample, time, channel, y, x)``: ``time`` is the frame index in the window
        (0 .. context + horizon - 1), the coordinate ``timestamp (sample, time)`` holds the times;
        attrs as the series plus ``context``, ``horizon`` and ``stride``.

    Raises
    ------
    ValueError
        context, horizon or stride below 1.
    DatasetError
        No gap-free stretch of ``context + horizon`` frames.
    """
    context, horizon, stride = int(context), int(horizon), int(stride)
    _check_window(context, horizon, stride)
    if set(series.dims) != {"time", "channel", "y", "x"}:
        raise DatasetError(
            f"{series.attrs.get('source', 'series')}: dims {series.dims}; windows() needs "
            "(time, channel, y, x)."
        )
    series = series.transpose("time", "channel", "y", "x")
    length = context + horizon
    runs = contiguous_runs(series)
    starts = np.concatenate(
        [np.arange(a, b - length + 1, stride) for a, b in runs if b - a >= length]
        or [np.zeros(0, dtype=int)]
    ).astype(int)
    if starts.size == 0:
        longest = max((b - a for a, b in runs), default=0)
        raise DatasetError(
            f"{series.attrs.get('source', 'series')}: no gap-free stretch of context + horizon = "
            f"{length} frames (longest is {longest}); ask for a shorter window."
        )
    attrs = {**series.attrs, "context": context, "horizon": horizon, "stride": stride}
    return _cut(series.values, series["time"].values, starts, length, like=series, attrs=attrs)


def sliding_windows(
    sequence: xr.DataArray, *, context: int, horizon: int, stride: int = 1
) -> xr.DataArray:
    """Cut a one-sample sequence into windows of ``context + horizon`` frames.

    Parameters
    ----------
    sequence : xarray.DataArray
        dims ``(sample, time, channel, y, x)`` with ``sample`` of length 1 and a ``timestamp
        (sample, time)`` coordinate.
    context, horizon : int
        Frames given to the model and frames to forecast (>= 1 each).
    stride : int
        Frames between the starts of consecutive windows (>= 1).

    Returns
    -------
    xarray.DataArray
        dims ``(sample, time, channel, y, x)``, one sample per window; ``time`` is the frame index
        in the window (0 .. context + horizon - 1) and ``timestamp (sample, time)`` the valid
        times; attrs as the input plus ``context`` and ``horizon``.

    Raises
    ------
    DatasetError
        The sequence is shorter than one window.
    """
    _check_window(context, horizon, stride)
    length = context + horizon
    n_time = sequence.sizes["time"]
    if n_time < length:
        raise DatasetError(
            f"sequence in {sequence.attrs.get('folder', '?')} has {n_time} frames, fewer than "
            f"context + horizon = {length}; ask for a shorter window"
        )
    starts = np.arange(0, n_time - length + 1, stride)
    attrs = {**sequence.attrs, "context": int(context), "horizon": int(horizon)}
    return _cut(
        sequence.values[0],  # (T, C, H, W)
        sequence["timestamp"].values[0],  # (T,)
        starts,
        length,
        like=sequence,
        attrs=attrs,
    )


def take_evenly(arr: xr.DataArray, n_samples: int | None) -> xr.DataArray:
    """Keep ``n_samples`` windows, evenly spaced (first and last included; all when None).

    The ``sample`` coordinate is renumbered 0 .. n - 1.
    """
    if n_samples is None or int(n_samples) >= arr.sizes["sample"]:
        return arr
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    pick = np.unique(np.linspace(0, arr.sizes["sample"] - 1, int(n_samples)).round().astype(int))
    return arr.isel(sample=pick).assign_coords(sample=np.arange(pick.size))


__all__ = ["contiguous_runs", "sliding_windows", "take_evenly", "windows"]

"""Reference forecasts every ConvLSTM is compared with.

- :func:`persistence`: the last observed frame repeated (every domain);
- :func:`extrapolation`: radar optical flow, pysteps Lucas-Kanade motion on the last few observed
  frames plus semi-Lagrangian advection of the last frame (Shi et al. 2015 compare with ROVER, a
  similar optical-flow nowcast);
- :class:`HourOfWeekMean`: traffic climatology, the mean of each hour of the week (168 bins) over
  the training split.

Every baseline takes the observed ``context`` laid out like the dataset arrays,
``(sample, time, channel, y, x)`` or ``(time, channel, y, x)``, as an xarray DataArray or a numpy
array in physical units, and returns the forecast of ``horizon`` frames in the same layout and type
(a DataArray keeps the ``channel``/``y``/``x`` coordinates and attrs, and gets a ``lead_time``
coordinate on ``time``, plus forecast timestamps when the context has them). NaN (invalid pixels)
in the context stays NaN where the last observed frame has it.

Baselines see the whole domain
------------------------------
A model may be trained and scored on a crop of a larger radar domain (``datasets.radar`` cuts
128 km windows out of the MeteoSwiss composite). A baseline given only the crop would be handicapped
for no reason: optical-flow extrapolation would advect ``outval`` (0 mm/h) in from the crop's
edges, where the real forecast advects the rain that lies just outside it. So the extrapolation
takes the same frames over the whole domain (``domain=``, e.g. from
:func:`datasets.radar.whole_domain`), forecasts there, and only then cuts the forecast to the
crop's pixels. Persistence needs nothing outside the crop (its crop of the whole-domain forecast is
the forecast of the crop).

>>> from model.baselines import get_baseline
>>> forecast = get_baseline("persistence")(context, horizon=12)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from datasets.timesteps import time_step_delta

log = logging.getLogger(__name__)

HOURS_PER_WEEK = 168


# ------------------------------------------------------------------------------------------------
# all black
def all_black(context, *, horizon: int):
    """An empty forecast: every pixel 0 (video: a black frame) for ``horizon`` frames.

    The floor of a video forecast on Moving MNIST, whose frames are mostly black background: a
    blurry forecast can score below it on SSIM while beating it on MSE, so cards show both.
    Invalid (NaN) pixels of the last context frame stay NaN, as in :func:`persistence`.

    Parameters
    ----------
    context : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)``, physical units.
    horizon : int
        Number of forecast frames.

    Returns
    -------
    Same type as ``context``, ``(sample?, horizon, channel, y, x)`` of zeros.
    """
    last = persistence(context, horizon=horizon)
    zeros = np.where(np.isnan(np.asarray(last)), np.nan, 0.0).astype(np.float32)
    if isinstance(last, xr.DataArray):
        return last.copy(data=zeros).assign_attrs(baseline="all_black")
    return zeros


# ------------------------------------------------------------------------------------------------
# persistence
def persistence(context, *, horizon: int):
    """Repeat the last observed frame ``horizon`` times.

    Parameters
    ----------
    context : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)``, physical units.
    horizon : int
        Number of forecast frames.

    Returns
    -------
    Same type as ``context``
        ``(sample?, horizon, channel, y, x)``.
    """
    values, single = _values(context)
    _check_horizon(horizon)
    out = np.repeat(values[:, -1:], horizon, axis=1)  # [S, H, C, Y, X]
    return _wrap(out, context, single, baseline="persistence")


# ------------------------------------------------------------------------------------------------
# optical-flow extrapolation (radar)
def extrapolation(
    context,
    *,
    horizon: int,
    n_frames: int = 3,
    method: str = "LK",
    outval: float = 0.0,
    domain=None,
    origin=None,
):
    """Optical-flow nowcast: pysteps motion on the last frames, semi-Lagrangian advection.

    The motion field is estimated with ``pysteps.motion.get_method(method)`` (Lucas-Kanade by
    default) on the last ``n_frames`` observed rain-rate fields (NaN pixels are masked by pysteps),
    and the last field is advected ``horizon`` steps with
    ``pysteps.extrapolation.semilagrangian.extrapolate``; rain entering from outside the grid is
    ``outval`` mm/h. When no motion can be estimated (e.g. no rain), the motion is zero, which is
    persistence.

    With ``domain`` (the same observations over the whole radar domain the context was cut from)
    motion and advection run on the whole domain and the forecast is then cut to the context's
    pixels: rain enters the crop from the domain around it, and ``outval`` only comes in at the
    domain's own edge (module docstring).

    Parameters
    ----------
    context : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)`` rain rate in mm/h; NaN marks invalid pixels.
    horizon : int
        Number of forecast frames (each one context time step ahead).
    n_frames : int
        Observed frames used to estimate the motion (2 or more).
    method : str
        A pysteps motion method name (``"LK"``, ``"DARTS"``, ``"proesmans"``, ...).
    outval : float
        Rain rate (mm/h) advected in from outside the (whole) domain.
    domain : xarray.DataArray or numpy.ndarray, optional
        ``(sample?, time, channel, Y, X)`` in mm/h with ``Y >= y``, ``X >= x``, the same samples
        and channels as ``context`` and at least ``n_frames`` frames, the last of which are the
        context's last frames (:func:`datasets.radar.whole_domain` gives them). Without it the
        context is its own whole domain.
    origin : (row, col) or (rows, cols), optional
        Where each sample's crop starts in ``domain``: its upper-left pixel, as two ints or two
        ``(sample,)`` arrays. Default: ``domain``'s ``crop_row``/``crop_col`` coordinates.

    Returns
    -------
    Same type as ``context``
        ``(sample?, horizon, channel, y, x)`` in mm/h; NaN where the last observed frame is NaN.

    Raises
    ------
    ValueError
        Too few frames; a ``domain`` without an ``origin``, of other samples or channels, that
        does not contain the crop, or whose frames at the crop differ from the context's last one.
    """
    from pysteps import motion
    from pysteps.extrapolation import semilagrangian

    values, single = _values(context)
    _check_horizon(horizon)
    if n_frames < 2:
        raise ValueError(f"n_frames={n_frames}: optical flow needs at least 2 observed frames")
    source, rows, cols = _whole_domain(values, domain, origin)
    if source.shape[1] < n_frames:
        raise ValueError(
            f"context has {source.shape[1]} frames but n_frames={n_frames} are needed for the "
            "motion field; give a longer context or a smaller n_frames"
        )
    oflow = motion.get_method(method)
    s_count, _, c_count, height, width = values.shape
    out = np.empty((s_count, horizon, c_count, height, width), dtype=np.float32)
    for s in range(s_count):
        crop = (slice(rows[s], rows[s] + height), slice(cols[s], cols[s] + width))
        for c in range(c_count):
            frames = source[s, -n_frames:, c].astype(np.float64)  # [n, Y, X], mm/h
            velocity = _motion(oflow, frames)  # [2, Y, X] pixels per step
            last = np.where(np.isfinite(frames[-1]), frames[-1], 0.0)
            advected = semilagrangian.extrapolate(last, velocity, horizon, outval=outval)
            advected = np.where(np.isfinite(advected), advected, outval)[:, crop[0], crop[1]]
            advected[:, ~np.isfinite(values[s, -1, c])] = np.nan  # the observations' mask
            out[s, :, c] = advected
    return _wrap(out, context, single, baseline=f"extrapolation ({method})")


def _whole_domain(values: np.ndarray, domain, origin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frames [S, T, C, Y, X], rows [S], cols [S])``: where :func:`extrapolation` runs.

    Without ``domain``: the context itself at origin (0, 0). With it: the whole-domain frames,
    checked to hold each sample's crop, whose last frame must equal the context's last frame.
    """
    s_count, _, c_count, height, width = values.shape
    if domain is None:
        zeros = np.zeros(s_count, dtype=np.intp)
        return values, zeros, zeros
    if origin is None:
        if not isinstance(domain, xr.DataArray) or not {"crop_row", "crop_col"} <= set(
            domain.coords
        ):
            raise ValueError(
                "domain= needs the crop corner of every sample: pass origin=(rows, cols) or a "
                "DataArray with crop_row/crop_col coordinates (datasets.radar.whole_domain)"
            )
        origin = (domain["crop_row"].values, domain["crop_col"].values)
    source, _ = _values(domain)
    rows = np.broadcast_to(np.asarray(origin[0], dtype=np.intp), (s_count,))
    cols = np.broadcast_to(np.asarray(origin[1], dtype=np.intp), (s_count,))
    if source.shape[0] != s_count or source.shape[2] != c_count:
        raise ValueError(
            f"domain has {source.shape[0]} samples and {source.shape[2]} channels, the context "
            f"{s_count} and {c_count}; pass the whole-domain frames of the same samples"
        )
    big_h, big_w = source.shape[3:]
    for s in range(s_count):
        r, c = int(rows[s]), int(cols[s])
        if not (0 <= r <= big_h - height and 0 <= c <= big_w - width):
            raise ValueError(
                f"sample {s}: a {height} x {width} crop at (row {r}, col {c}) does not fit in the "
                f"{big_h} x {big_w} domain; check origin="
            )
        cut = source[s, -1, :, r : r + height, c : c + width]
        if not np.allclose(cut, values[s, -1], rtol=1e-5, atol=1e-5, equal_nan=True):
            raise ValueError(
                f"sample {s}: the domain's last frame cut at (row {r}, col {c}) differs from the "
                "context's last frame; pass the whole-domain frames of the same times and each "
                "sample's crop corner"
            )
    return source, rows, cols


def estimate_motion(frames: np.ndarray, method: str = "LK") -> np.ndarray:
    """Motion field ``[2, Y, X]`` (pixels per step) of ``frames [n, Y, X]`` (mm/h, NaN masked)
    with pysteps' ``method``, as :func:`extrapolation` estimates it; zeros when it cannot be."""
    from pysteps import motion

    return _motion(motion.get_method(method), frames)


def _motion(oflow: Callable, frames: np.ndarray) -> np.ndarray:
    """Motion field ``[2, Y, X]`` (pixels per step), zeros when it cannot be estimated."""
    rain = np.nan_to_num(frames, nan=0.0)
    if np.count_nonzero(rain[-1] > 0) < 10:
        return np.zeros((2, *frames.shape[1:]))
    try:
        velocity = np.asarray(oflow(frames), dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - pysteps raises various errors on degenerate fields
        log.warning("optical flow failed (%s); using zero motion (persistence)", err)
        return np.zeros((2, *frames.shape[1:]))
    return np.nan_to_num(velocity, nan=0.0)


# ------------------------------------------------------------------------------------------------
# same-hour-of-week historical mean (traffic)
@dataclass(frozen=True)
class HourOfWeekMean:
    """Mean of every hour of the week (Monday 00:00 = bin 0) and pixel over a training series.

    Attributes
    ----------
    means : numpy.ndarray
        ``(168, channel, y, x)`` float32 in the data's units; bins never seen in training hold the
        overall mean of the training series.
    counts : numpy.ndarray
        ``(168,)`` number of training frames per bin.
    """

    means: np.ndarray
    counts: np.ndarray

    @classmethod
    def fit(cls, frames, times=None) -> HourOfWeekMean:
        """Average training frames by hour of the week.

        Parameters
        ----------
        frames : xarray.DataArray or numpy.ndarray
            A series ``(time, channel, y, x)`` or windows ``(sample, time, channel, y, x)``.
            Frames seen in several overlapping windows count once (deduplicated by timestamp).
        times : array-like of datetime64, optional
            Timestamps shaped like the leading ``(sample?, time)`` axes; read from ``frames``'
            coordinates when omitted (see :func:`frame_times`).

        Raises
        ------
        ValueError
            No timestamps could be found.
        """
        values, _ = _values(frames)  # [S, T, C, Y, X]
        if times is None:
            times = frame_times(frames)
            if times is None:
                raise ValueError(
                    "the training frames carry no timestamps (a datetime64 'time' coordinate); "
                    "the hour-of-week mean needs them: pass times=..."
                )
        times = np.asarray(times, dtype="datetime64[ns]").reshape(values.shape[:2])
        flat_t = times.reshape(-1)
        flat_v = values.reshape(-1, *values.shape[2:])  # [S*T, C, Y, X]
        _, first = np.unique(flat_t, return_index=True)  # each timestamp once
        flat_t, flat_v = flat_t[first], flat_v[first]
        bins = hour_of_week(flat_t)
        sums = np.zeros((HOURS_PER_WEEK, *flat_v.shape[1:]))
        np.add.at(sums, bins, np.nan_to_num(flat_v, nan=0.0))
        valid = np.isfinite(flat_v)
        n = np.zeros_like(sums)
        np.add.at(n, bins, valid)
        overall = np.nanmean(flat_v, axis=0)
        means = np.where(n > 0, sums / np.maximum(n, 1), overall)
        counts = np.bincount(bins, minlength=HOURS_PER_WEEK)
        return cls(means=means.astype(np.float32), counts=counts)

    def predict(self, times) -> np.ndarray:
        """Climatology at ``times`` (any shape of datetime64) -> ``times.shape + (C, Y, X)``."""
        times = np.asarray(times, dtype="datetime64[ns]")
        return self.means[hour_of_week(times)]

    def __call__(self, context, *, horizon: int, times=None):
        """Forecast ``horizon`` frames after ``context`` from the climatology.

        Parameters
        ----------
        context : xarray.DataArray or numpy.ndarray
            ``(sample?, time, channel, y, x)``; its timestamps (coordinates, or ``times``) and
            time step (attr ``time_step``, else the spacing of the timestamps) give the forecast
            times.
        horizon : int
            Number of forecast frames.
        times : array-like of datetime64, optional
            The forecast timestamps ``(sample?, horizon)``, when the context carries none.
        """
        values, single = _values(context)
        _check_horizon(horizon)
        if times is None:
            times = forecast_times(context, horizon=horizon)
            if times is None:
                raise ValueError(
                    "the context carries no timestamps and no time step; the hour-of-week mean "
                    "needs the forecast times: pass times=..."
                )
        times = np.asarray(times, dtype="datetime64[ns]").reshape(values.shape[0], horizon)
        out = self.predict(times)  # [S, H, C, Y, X]
        if out.shape[2:] != values.shape[2:]:
            raise ValueError(
                f"the climatology has frames of {self.means.shape[1:]} (channel, y, x) but the "
                f"context has {values.shape[2:]}; fit it on the same grid"
            )
        return _wrap(out, context, single, baseline="hour-of-week mean")


def hour_of_week(times) -> np.ndarray:
    """Hour of the week, 0 (Monday 00:00-00:59) to 167, of datetime64 values (any shape)."""
    t = np.asarray(times, dtype="datetime64[h]")
    hours = t.astype(np.int64)  # hours since 1970-01-01 00:00, a Thursday
    return ((hours + 3 * 24) % HOURS_PER_WEEK).astype(np.intp)


# ------------------------------------------------------------------------------------------------
# registry
BASELINES: dict[str, Callable] = {
    "persistence": persistence,
    "extrapolation": extrapolation,
    "all_black": all_black,
}
"""Baselines that need no fitting; the hour-of-week mean is built with ``HourOfWeekMean.fit``."""


def get_baseline(name: str) -> Callable:
    """Baseline forecast function by name (case-insensitive); ``ValueError`` lists the names."""
    key = str(name).lower()
    if key not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; available: {', '.join(sorted(BASELINES))}")
    return BASELINES[key]


# ------------------------------------------------------------------------------------------------
# time handling
def time_step(array) -> pd.Timedelta | None:
    """The time step of a dataset array: attr ``time_step`` (ISO 8601 or seconds), else None."""
    return time_step_delta(getattr(array, "attrs", {}).get("time_step"))  # "1 frame" -> None


def frame_times(array) -> np.ndarray | None:
    """Timestamps ``(sample, time)`` (datetime64[ns]) of a dataset array, or None.

    Looked for, in order: a datetime64 coordinate with dims ``(sample, time)`` (any name); a 1-D
    datetime64 ``time`` coordinate (shared by all samples); a datetime64 coordinate on ``sample``
    alone (the first frame's time, e.g. ``start_time``) plus the ``time_step`` attr.
    """
    if not isinstance(array, xr.DataArray):
        return None
    n_sample = array.sizes.get("sample", 1)
    n_time = array.sizes["time"]
    for coord in array.coords.values():
        if set(coord.dims) == {"sample", "time"} and np.issubdtype(coord.dtype, np.datetime64):
            return coord.transpose("sample", "time").values.astype("datetime64[ns]")
    if "time" in array.coords and np.issubdtype(array["time"].dtype, np.datetime64):
        t = array["time"].values.astype("datetime64[ns]")
        if t.ndim == 1:
            return np.broadcast_to(t, (n_sample, n_time)).copy()
        if t.ndim == 0:  # one-frame selection
            return np.full((n_sample, n_time), t)
    step = time_step(array)
    if step is not None and "sample" in array.dims:
        for coord in array.coords.values():
            if coord.dims == ("sample",) and np.issubdtype(coord.dtype, np.datetime64):
                start = coord.values.astype("datetime64[ns]")[:, None]
                return start + np.arange(n_time) * step.to_timedelta64()
    return None


def forecast_times(context, *, horizon: int) -> np.ndarray | None:
    """Timestamps ``(sample, horizon)`` of the frames after ``context``, or None if unknown."""
    times = frame_times(context)
    if times is None:
        return None
    step = time_step(context)
    if step is None:
        if times.shape[1] < 2:
            return None
        step = pd.Timedelta(times[0, -1] - times[0, -2])
    return times[:, -1:] + np.arange(1, horizon + 1) * step.to_timedelta64()


# ------------------------------------------------------------------------------------------------
# layout helpers
def _values(array) -> tuple[np.ndarray, bool]:
    """``(values [S, T, C, Y, X] float32, single)``; ``single`` when the input had no sample axis."""
    if isinstance(array, xr.DataArray):
        order = [d for d in ("sample", "time", "channel", "y", "x") if d in array.dims]
        if set(order) != set(array.dims) or not {"time", "channel", "y", "x"} <= set(order):
            raise ValueError(
                f"array has dims {array.dims}; expected (sample, time, channel, y, x) or "
                "(time, channel, y, x)"
            )
        values = np.asarray(array.transpose(*order).values, dtype=np.float32)
    else:
        values = np.asarray(array, dtype=np.float32)
    if values.ndim == 4:
        return values[np.newaxis], True
    if values.ndim != 5:
        raise ValueError(
            f"array has shape {values.shape}; expected (sample, time, channel, y, x) or "
            "(time, channel, y, x)"
        )
    return values, False


def _check_horizon(horizon: int) -> None:
    if int(horizon) < 1:
        raise ValueError(f"horizon={horizon} must be at least 1")


def _wrap(out: np.ndarray, context, single: bool, *, baseline: str):
    """Give the forecast ``out [S, H, C, Y, X]`` the layout and type of ``context``."""
    out = out.astype(np.float32, copy=False)
    horizon = out.shape[1]
    if not isinstance(context, xr.DataArray):
        return out[0] if single else out
    dims = ("time", "channel", "y", "x") if single else ("sample", "time", "channel", "y", "x")
    coords = {
        name: coord
        for name, coord in context.coords.items()
        if "time" not in coord.dims and set(coord.dims) <= set(dims)
    }
    step = time_step(context)
    if step is not None:
        lead = np.arange(1, horizon + 1) * step.to_timedelta64()
    else:
        lead = np.arange(1, horizon + 1)
    coords["lead_time"] = ("time", lead)
    times = forecast_times(context, horizon=horizon)
    if times is not None:
        shared = bool((times == times[:1]).all())
        if shared:
            coords["time"] = ("time", times[0])
        else:
            coords["valid_time"] = (("sample", "time"), times)
            coords["time"] = ("time", np.arange(horizon))
    else:
        coords["time"] = ("time", np.arange(horizon))
    attrs = dict(context.attrs)
    attrs["baseline"] = baseline
    return xr.DataArray(out[0] if single else out, dims=dims, coords=coords, attrs=attrs)


__all__ = [
    "BASELINES",
    "all_black",
    "estimate_motion",
    "HOURS_PER_WEEK",
    "HourOfWeekMean",
    "extrapolation",
    "forecast_times",
    "frame_times",
    "get_baseline",
    "hour_of_week",
    "persistence",
    "time_step",
]

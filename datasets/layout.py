"""The layout every dataset returns: dims, splits, domains, attrs, and the function that builds it.

A dataset array is float32 with dims :data:`DIMS` ``(sample, time, channel, y, x)`` and the attrs
``units``, ``time_step``, ``domain``, ``source``, ``licence``, ``description``, ``synthetic`` (see
:mod:`datasets.registry`), and ``time_zone`` where the timestamps are not UTC (:func:`time_zone_of`).
This module depends on nothing else in :mod:`datasets` but the error type,
so readers, domain modules and the registry all build on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.vocabulary import DIMS, DOMAINS, SPLITS  # noqa: F401 - re-exported here

PIXEL_UNITS = "pixel intensity [0, 1]"
FRAME_STEP = "1 frame"  # time_step of frame sequences without timestamps (not an ISO duration)
MOVING_MNIST_FAMILY = "Moving MNIST digits"  # attrs["family"]: what the frames show
NATURAL_VIDEO_FAMILY = "natural video"
USER_LICENCE = "user file: licence as set by its owner"
UTC = "UTC"
LOCAL_TIME = "local"  # attrs["time_zone"] of local clock times whose zone the file does not state


def time_zone_of(attrs: dict) -> str:
    """The clock a dataset's timestamps read: ``attrs["time_zone"]``, an IANA name.

    Timestamps are naive ``datetime64`` wall-clock times in that zone, e.g. ``"America/New_York"``
    for TaxiNYC (the trips' local time; its daylight-saving days show the skipped and doubled
    hour); :data:`LOCAL_TIME` when a file holds local times without saying where. Absent means
    :data:`UTC`, as in CF-NetCDF, which every radar source uses.
    """
    zone = str(attrs.get("time_zone") or UTC).strip()
    return zone or UTC


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


def check_values(values: np.ndarray, *, path) -> None:
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


def valid_mask(array: xr.DataArray) -> xr.DataArray:
    """Boolean mask of valid (finite) pixels, same dims as ``array``."""
    return array.notnull()

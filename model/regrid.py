"""Resampling between a data grid and a checkpoint's pixel size, for whole-domain forecasts.

A checkpoint learnt motion and structure in pixels of one size (``radar_mch``: 1 km). Data at
another pixel size (FMI-like 2 km, a 0.5 km composite) is resampled to that size before the
forecast (:meth:`GridResampler.to_model`) and the forecast back to the data grid for display and
scoring (:meth:`GridResampler.to_data`), by :func:`model.tiling.domain_rollout`.

Pixel sizes
-----------
- The checkpoint's: :func:`checkpoint_pixel_km` reads ``meta["resolution_km"]`` (or
  ``pixel_km``), else the ``resolution_km`` dataset option it was trained with
  (``meta["dataset_options"]["options"]``), else the default of the radar dataset it names (the
  radar loaders all give 1 km unless told otherwise). None for data without a physical pixel
  (video, traffic cells): such checkpoints are tiled on the data grid as it is.
- The data's: :func:`data_pixel_size` reads the ``y``/``x`` coordinates: ``units`` "km" or "m"
  (the radar readers write km and ``attrs["resolution_km"]``), or ``attrs["resolution_km"]`` with
  pixel-index coordinates. **Latitude/longitude** (``units`` "degrees_north"/"degrees_east", or
  ``attrs["original_dims"]`` naming lat/lon): a regular grid in degrees is given the local scale at
  the domain centre, ``dy = R Δφ`` and ``dx = R cos(φ_c) Δλ`` (``R`` = 6371.0088 km, the mean Earth
  radius), one pixel size per axis. The east-west scale is then exact on the centre latitude and
  off by ``cos φ / cos φ_c - 1`` elsewhere; :attr:`PixelSize.scale_error` reports the largest such
  error over the domain (6 % for a 710-km-tall domain at 47° N). No reprojection is done: data on
  a projected grid (all the radar readers) needs none, and a separable resampling keeps the cost
  linear in the pixels.

Interpolation (separable, one sparse operator per axis, weights >= 0 so values stay in range)
----------------------------------------------------------------------------------------------
- Downsampling (target pixel larger): **area-weighted** means, each target cell the exact overlap-
  weighted mean of the source cells it covers (a box filter of the target's size, so no aliasing;
  for rain rates it keeps the rain volume), for any ratio, not only integer blocks.
- Upsampling or equal size: **bilinear** interpolation between pixel centres (edge values held).
- Invalid pixels (NaN, e.g. outside the radar domain) carry no weight; a target pixel whose valid
  weight is under half its total is NaN (the rule of :func:`datasets.radar_io.read_radar_sequence`
  block means).

The model grid keeps the data's extent and centre: ``round(n * data_km / model_km)`` pixels of
exactly ``model_km`` per axis, centred on the data grid.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import xarray as xr

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
SAME_SIZE_RTOL = 1e-3  # pixel sizes this close are equal: no resampling
REGULAR_RTOL = 0.01  # coordinate steps may vary this much and still count as one pixel size
MIN_VALID = 0.5  # a resampled pixel needs this share of its weight on valid pixels

_KM = ("km", "kilometre", "kilometres", "kilometer", "kilometers")
_METRES = ("m", "metre", "metres", "meter", "meters")
_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "long", "longitude")


@dataclass(frozen=True)
class PixelSize:
    """Pixel size of a grid along ``y`` and ``x``, in km, and how it was found.

    ``scale_error``: the largest relative error of the ``x`` pixel size over the domain (lat/lon
    grids only, see the module docstring); 0 for projected grids.
    """

    dy_km: float
    dx_km: float
    method: str
    scale_error: float = 0.0


def checkpoint_pixel_km(meta: dict) -> float | None:
    """The pixel size in km a checkpoint was trained at, or None when it states none.

    Parameters
    ----------
    meta : dict
        Checkpoint metadata (``meta.json``, as :func:`model.checkpoint.load_checkpoint` returns it).

    Returns
    -------
    float or None
        ``meta["resolution_km"]`` (or ``pixel_km``), else the ``resolution_km`` dataset option,
        else the default pixel size of the radar dataset named by ``meta["dataset"]``; None for
        datasets without a physical pixel size.
    """
    for key in ("resolution_km", "pixel_km"):
        if _positive(meta.get(key)):
            return float(meta[key])
    options = (meta.get("dataset_options") or {}).get("options") or {}
    if _positive(options.get("resolution_km")):
        return float(options["resolution_km"])
    return _dataset_default_km(str(meta.get("dataset", "")))


def _dataset_default_km(name: str) -> float | None:
    """The pixel size a built-in radar dataset loads at by default (None: not a radar dataset)."""
    from datasets import radar, radar_synthetic

    if name == "radar_synthetic":
        return float(radar_synthetic.PIXEL_KM)
    if name in radar.EVENTS:
        default = inspect.signature(radar.load_radar_events).parameters["resolution_km"].default
        return float(default)
    return None


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def data_pixel_size(data) -> PixelSize | None:
    """The pixel size of an array ``(..., y, x)`` from its coordinates and attrs (module docstring).

    Parameters
    ----------
    data : xarray.DataArray or array-like
        Frames with ``y``/``x`` coordinates; plain arrays have no pixel size.

    Returns
    -------
    PixelSize or None
        None when nothing says the size (pixel indices and no ``resolution_km``).

    Raises
    ------
    ValueError
        Coordinates that are not evenly spaced (the message gives the steps found).
    """
    if not isinstance(data, xr.DataArray) or "y" not in data.coords or "x" not in data.coords:
        return None
    y, x = data.coords["y"], data.coords["x"]
    if _is_latlon(data):
        return latlon_pixel_size(_values(y, "y"), _values(x, "x"))
    factors = [_unit_factor(c) for c in (y, x)]
    if all(f is not None for f in factors):
        dy, dx = (abs(_step(_values(c, c.name))) * f for c, f in zip((y, x), factors, strict=True))
        return PixelSize(dy, dx, f"y/x coordinates in {y.attrs.get('units')}")
    km = data.attrs.get("resolution_km") or data.attrs.get("pixel_km")
    if _positive(km):
        return PixelSize(float(km), float(km), "the resolution_km attribute")
    return None


def _values(coord: xr.DataArray, name) -> np.ndarray:
    if coord.ndim != 1 or not np.issubdtype(coord.dtype, np.number):
        raise ValueError(
            f"coordinate {name!r} must be 1-D and numeric to give a pixel size, got dims "
            f"{coord.dims} and dtype {coord.dtype}; pass the pixel size (data_pixel_km=) instead"
        )
    return coord.values.astype(np.float64)


def _is_latlon(data: xr.DataArray) -> bool:
    units = str(data.coords["y"].attrs.get("units", "")).lower()
    dims = str(data.attrs.get("original_dims", "")).lower().split()
    return "degree" in units or any(d in _LAT_NAMES for d in dims)


def _unit_factor(coord: xr.DataArray) -> float | None:
    """km per coordinate unit (km: 1, m: 1e-3); None when the units are not a length."""
    units = str(coord.attrs.get("units", "")).strip().lower()
    if units in _KM:
        return 1.0
    if units in _METRES:
        return 1e-3
    return None


def _step(values: np.ndarray) -> float:
    """The constant step of ``values`` (the median; all steps within :data:`REGULAR_RTOL`)."""
    if values.size < 2:
        raise ValueError(
            "a 1-pixel axis has no coordinate step; pass the pixel size (data_pixel_km=)"
        )
    steps = np.diff(values)
    step = float(np.median(steps))
    if step == 0 or np.max(np.abs(steps - step)) > REGULAR_RTOL * abs(step):
        raise ValueError(
            f"coordinates are not evenly spaced (steps from {steps.min():g} to {steps.max():g}): "
            "resample the data to a regular grid first"
        )
    return step


def latlon_pixel_size(lat: np.ndarray, lon: np.ndarray) -> PixelSize:
    """Local pixel size at the centre of a regular latitude/longitude grid (degrees)."""
    if np.nanmax(np.abs(lat)) > 90:
        raise ValueError(
            f"y is in degrees but reaches {np.nanmax(np.abs(lat)):g}: y must be latitude and x "
            "longitude"
        )
    lat_c = float(np.mean([lat.min(), lat.max()]))
    rad = math.pi / 180.0
    dy = EARTH_RADIUS_KM * abs(_step(lat)) * rad
    dx = EARTH_RADIUS_KM * abs(_step(lon)) * rad * math.cos(lat_c * rad)
    # cos is monotonic in |lat|: the extremes are at the edges, or at the equator when crossed
    extremes = [lat.min(), lat.max()] + ([0.0] if lat.min() < 0 < lat.max() else [])
    ratios = np.cos(np.asarray(extremes) * rad) / math.cos(lat_c * rad)
    error = float(np.max(np.abs(ratios - 1.0)))
    method = (
        f"latitude/longitude: local scale at the domain centre (lat {lat_c:.2f}°), "
        f"east-west scale within {100 * error:.1f} % over the domain"
    )
    return PixelSize(dy, dx, method, scale_error=error)


# --- operators -----------------------------------------------------------------------------------


def axis_operator(positions: np.ndarray, n_src: int, ratio: float) -> sp.csr_array:
    """Sparse ``[m, n_src]`` resampling weights along one axis (rows sum to 1).

    Parameters
    ----------
    positions : numpy.ndarray
        ``[m]`` target pixel centres in source pixel units (source pixel ``j`` is centred at ``j``
        and spans ``[j - 0.5, j + 0.5]``).
    n_src : int
        Source pixels.
    ratio : float
        Target pixel size over source pixel size. Above 1: area-weighted means over each target
        cell; otherwise bilinear interpolation between centres (edges held).

    Returns
    -------
    scipy.sparse.csr_array
        float32 weights.
    """
    positions = np.asarray(positions, dtype=np.float64)
    m = positions.size
    if ratio > 1.0 + 1e-9:
        rows, cols, vals = _area_weights(positions, n_src, ratio)
    else:
        rows, cols, vals = _linear_weights(positions, n_src)
    op = sp.coo_array((vals, (rows, cols)), shape=(m, n_src)).tocsr()  # duplicates summed
    total = np.asarray(op.sum(axis=1)).ravel()
    op = sp.diags_array(1.0 / np.maximum(total, 1e-12)) @ op
    return sp.csr_array(op, dtype=np.float32)


def _area_weights(positions: np.ndarray, n_src: int, ratio: float):
    """Overlap of each target cell ``[p - ratio/2, p + ratio/2]`` with the source cells."""
    lo, hi = positions - ratio / 2, positions + ratio / 2  # [m] target cell edges
    first = np.clip(np.floor(lo + 0.5), 0, n_src - 1).astype(np.int64)  # [m]
    span = int(math.ceil(ratio)) + 2  # most source cells one target cell can touch
    cols = first[:, None] + np.arange(span)[None, :]  # [m, span]
    overlap = np.minimum(hi[:, None], cols + 0.5) - np.maximum(lo[:, None], cols - 0.5)
    overlap = np.where(cols < n_src, np.clip(overlap, 0.0, None), 0.0)  # [m, span]
    rows = np.broadcast_to(np.arange(positions.size)[:, None], cols.shape)
    return rows.ravel(), np.minimum(cols, n_src - 1).ravel(), overlap.ravel()


def _linear_weights(positions: np.ndarray, n_src: int):
    """Bilinear weights between the two nearest source centres (clamped at the edges)."""
    u = np.clip(positions, 0.0, n_src - 1)  # [m]
    left = np.minimum(np.floor(u).astype(np.int64), max(n_src - 2, 0))  # [m]
    frac = u - left
    right = np.minimum(left + 1, n_src - 1)
    rows = np.concatenate([np.arange(u.size)] * 2)
    return rows, np.concatenate([left, right]), np.concatenate([1.0 - frac, frac])


def apply_separable(op_y: sp.csr_array, op_x: sp.csr_array, frames: np.ndarray) -> np.ndarray:
    """Resample ``frames [..., H, W]`` with ``op_y [H', H]`` and ``op_x [W', W]``, NaN-aware.

    NaN pixels carry no weight; an output pixel with less than :data:`MIN_VALID` of its weight
    on valid pixels is NaN. Returns float32 ``[..., H', W']``.
    """
    lead, (h, w) = frames.shape[:-2], frames.shape[-2:]
    flat = np.asarray(frames, dtype=np.float32).reshape(-1, h, w)  # [N, H, W]
    valid = np.isfinite(flat)
    if valid.all():
        out = _separable(op_y, op_x, flat)
    else:
        num = _separable(op_y, op_x, np.where(valid, flat, 0.0).astype(np.float32))
        den = _separable(op_y, op_x, valid.astype(np.float32))  # valid share of the weight
        ok = den >= MIN_VALID - 1e-6
        out = np.full(num.shape, np.nan, dtype=np.float32)
        out[ok] = num[ok] / den[ok]
    return out.reshape(*lead, op_y.shape[0], op_x.shape[0])


def _separable(op_y: sp.csr_array, op_x: sp.csr_array, flat: np.ndarray) -> np.ndarray:
    """``op_y @ frame @ op_x.T`` for every frame of ``flat [N, H, W]`` -> ``[N, H', W']``."""
    n, h, w = flat.shape
    ho, wo = op_y.shape[0], op_x.shape[0]
    cols = flat.transpose(1, 0, 2).reshape(h, n * w)  # [H, N*W]
    t = np.asarray(op_y @ cols).reshape(ho, n, w).transpose(1, 0, 2).reshape(n * ho, w)
    out = np.asarray(op_x @ t.T).T  # [N*H', W']
    return np.ascontiguousarray(out, dtype=np.float32).reshape(n, ho, wo)


# --- one grid to another -------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisMap:
    """One axis of the data grid (``n_data`` pixels) and of the model grid (``n_model`` pixels).

    ``ratio`` is the model pixel size over the data pixel size; both grids share their centre.
    """

    n_data: int
    n_model: int
    ratio: float

    @classmethod
    def for_sizes(cls, n_data: int, data_km: float, model_km: float) -> AxisMap:
        """``round(n_data * data_km / model_km)`` model pixels (at least 1) of ``model_km``."""
        ratio = model_km / data_km
        if abs(ratio - 1.0) <= SAME_SIZE_RTOL:
            return cls(n_data, n_data, 1.0)
        return cls(n_data, max(1, round(n_data / ratio)), ratio)

    @property
    def identity(self) -> bool:
        return self.n_data == self.n_model and self.ratio == 1.0

    def model_to_data_index(self, model_index: np.ndarray) -> np.ndarray:
        """Model pixel positions (model pixel units) -> the same places in data pixel units."""
        centred = np.asarray(model_index, dtype=np.float64) - (self.n_model - 1) / 2
        return centred * self.ratio + (self.n_data - 1) / 2

    def data_to_model_index(self, data_index: np.ndarray) -> np.ndarray:
        """Data pixel positions (data pixel units) -> the same places in model pixel units."""
        centred = np.asarray(data_index, dtype=np.float64) - (self.n_data - 1) / 2
        return centred / self.ratio + (self.n_model - 1) / 2

    def to_model(self) -> sp.csr_array:
        """``[n_model, n_data]`` weights: data -> model grid."""
        return axis_operator(self.model_to_data_index(np.arange(self.n_model)), self.n_data,
                             self.ratio)  # fmt: skip

    def to_data(self) -> sp.csr_array:
        """``[n_data, n_model]`` weights: model -> data grid."""
        return axis_operator(self.data_to_model_index(np.arange(self.n_data)), self.n_model,
                             1.0 / self.ratio)  # fmt: skip


@dataclass(frozen=True)
class GridResampler:
    """Data grid <-> model grid (the checkpoint's pixel size), separable per axis.

    Build it with :meth:`for_pixel_size`; :meth:`to_model` and :meth:`to_data` resample frames.
    """

    y: AxisMap
    x: AxisMap
    data_size: PixelSize
    model_km: float

    @classmethod
    def for_pixel_size(
        cls, shape: tuple[int, int], data_size: PixelSize, model_km: float
    ) -> GridResampler:
        """Resampler for a ``(H, W)`` data grid of ``data_size`` pixels to ``model_km`` pixels."""
        if not (_positive(model_km) and data_size.dy_km > 0 and data_size.dx_km > 0):
            raise ValueError(
                f"pixel sizes must be positive: data {data_size.dy_km:g} x "
                f"{data_size.dx_km:g} km, model {model_km!r} km"
            )
        h, w = (int(s) for s in shape)
        return cls(
            AxisMap.for_sizes(h, data_size.dy_km, model_km),
            AxisMap.for_sizes(w, data_size.dx_km, model_km),
            data_size,
            float(model_km),
        )

    @property
    def identity(self) -> bool:
        """True when the grids are the same (no resampling)."""
        return self.y.identity and self.x.identity

    @property
    def model_shape(self) -> tuple[int, int]:
        """``(H', W')`` of the model grid in pixels."""
        return (self.y.n_model, self.x.n_model)

    def to_model(self, frames: np.ndarray) -> np.ndarray:
        """``[..., H, W]`` on the data grid -> ``[..., H', W']`` float32 on the model grid."""
        if self.identity:
            return np.asarray(frames, dtype=np.float32)
        return apply_separable(self.y.to_model(), self.x.to_model(), frames)

    def to_data(self, frames: np.ndarray) -> np.ndarray:
        """``[..., H', W']`` on the model grid -> ``[..., H, W]`` float32 on the data grid."""
        if self.identity:
            return np.asarray(frames, dtype=np.float32)
        return apply_separable(self.y.to_data(), self.x.to_data(), frames)

    def describe(self) -> str:
        """One line for ``attrs``: the sizes, how they were found, the interpolation per axis."""
        d = self.data_size
        if self.identity:
            return (
                f"none: data pixels {d.dy_km:.4g} x {d.dx_km:.4g} km ({d.method}) match the model's"
            )

        def kind(ratio: float) -> str:
            return "area-weighted" if ratio > 1 else "bilinear"

        return (
            f"data {d.dy_km:.4g} x {d.dx_km:.4g} km pixels ({d.method}) -> model "
            f"{self.model_km:g} km (y {kind(self.y.ratio)}, x {kind(self.x.ratio)}); forecast "
            f"back to the data grid (y {kind(1 / self.y.ratio)}, x {kind(1 / self.x.ratio)})"
        )

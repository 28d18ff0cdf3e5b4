"""Per-lead-time verification scores for forecasts in physical units.

Pure numpy/xarray (and pysteps for the fractions skill score); no torch. The same functions score
checkpoints in ``python -m model.evaluate`` and feed the dashboard's metrics panel.

>>> from model.metrics import compare, per_lead
>>> table = per_lead(prediction, truth, domain="radar", thresholds=(1.0, 5.0))
>>> table.loc[6, "CSI@1"]          # CSI at 1 mm/h, 6th forecast step (30 min at PT5M)
>>> tables = compare({"convlstm": pred, "persistence": pers}, truth, domain="radar")

Layout of the inputs
--------------------
``prediction`` and ``truth`` are xarray DataArrays or numpy arrays laid out as
``(sample, time, channel, y, x)`` or, for one sample, ``(time, channel, y, x)``; ``time`` is the
forecast lead (the first entry is the first forecast step). Both must have the same shape.

Which pixels count
------------------
:func:`per_lead` scores a pixel only where ``truth`` and ``prediction`` are finite and ``valid``
(if given) is True: NaN marks invalid radar pixels (outside the radar domain), which never enter a
score. Forecasts that are compared with each other must be scored on the *same* pixels, so
:func:`compare` (which the evaluation and the dashboard use) first builds the common mask
(:func:`common_valid`): a pixel counts only if it is finite in the truth and in every compared
forecast; every forecast's table is then computed on exactly those pixels.

Scores by domain
----------------
``"video"`` (values in [0, 1])
    ``MSE`` and ``MAE`` per frame in the OpenSTL convention: the squared (absolute) error is summed
    over the pixels (and channels) of one frame, then averaged over samples. ``SSIM`` (Wang et al.
    2004; Gaussian window sigma 1.5, 11x11, K1=0.01, K2=0.03, data range 1, borders of 5 pixels
    cropped as in scikit-image ``structural_similarity(gaussian_weights=True)``; channels
    averaged) and ``PSNR`` in dB (``10 log10(1 / mse)`` with ``mse`` the mean squared error of one
    frame; ``inf`` for a perfect frame), each averaged over samples.
``"radar"`` (rain rate in mm/h)
    ``MSE`` in (mm/h)^2 and ``MAE`` in mm/h, the mean over all valid pixels of all samples at one
    lead time. For each threshold ``t`` in mm/h, from the contingency table pooled over samples
    and pixels (:func:`contingency`): ``CSI@t``, ``POD@t``, ``FAR@t`` and the frequency bias
    ``FBI@t = (hits + false alarms) / (hits + misses) = POD / (1 - FAR)`` (1: as many forecast
    events as observed; above 1: too many). ``FSS@t``: the fractions skill score of Roberts and
    Lean (2008) over square neighbourhoods of :data:`FSS_SCALE_KM` (10 km; the side in pixels is
    ``round(10 km / pixel size)``), pooled over samples and channels with
    ``pysteps.verification.spatialscores`` (``fss_init``/``fss_accum``/``fss_compute``, the
    pieces of its ``fss``); pixels outside the mask are no-event in both fields. A score whose
    denominator is zero is NaN.

    **Event convention**: an event is a rain rate ``>= t`` (at least ``t`` mm/h), in every radar
    score here (:data:`EVENT`). ``pysteps.verification.spatialscores.fss`` counts ``>= t`` too;
    ``pysteps.verification.detcatscores.det_cat_fct`` counts ``> t``, so its CSI/POD/FAR differ
    from ours where values equal ``t`` exactly (and it counts NaN pixels as correct negatives,
    where we leave them out).
``"traffic"`` (counts per interval)
    ``RMSE`` and ``MAE`` in counts, over all valid pixels and both flow channels of all samples
    at one lead time.

The returned ``pandas.DataFrame`` is indexed by ``lead_step`` (1, 2, ... forecast steps); its
``attrs`` hold ``domain``, ``units`` (a dict metric -> unit), ``n_samples``, ``valid_pixels`` (a list,
one count per lead) and, when the prediction carries a ``lead_time`` coordinate, ``lead_time``
(a list of ``pandas.Timedelta`` or step counts); radar tables also ``fss_scale_px`` and
``pixel_km``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from datasets import vocabulary

DOMAINS = vocabulary.DOMAINS

# SSIM constants of Wang et al. (2004), as in scikit-image with gaussian_weights=True.
_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5 -> an 11x11 window
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03

EVENT = ">="
"""Radar event convention: an event is a value ``>= threshold`` (see the module docstring)."""
FSS_SCALE_KM = 10.0
"""Side of the fractions skill score's square neighbourhood, in km."""


def as_5d(array, *, name: str = "array") -> np.ndarray:
    """Return ``array`` as a float64 numpy array ``(sample, time, channel, y, x)``.

    Parameters
    ----------
    array : xarray.DataArray or numpy.ndarray
        ``(sample, time, channel, y, x)`` or ``(time, channel, y, x)``. A DataArray whose dims are
        named is transposed into that order first.
    name : str
        Used in error messages.

    Returns
    -------
    numpy.ndarray
        float64, 5-D.
    """
    if isinstance(array, xr.DataArray):
        order = [d for d in ("sample", "time", "channel", "y", "x") if d in array.dims]
        if set(order) == set(array.dims):
            array = array.transpose(*order)
        values = np.asarray(array.values, dtype=np.float64)
    else:
        values = np.asarray(array, dtype=np.float64)
    if values.ndim == 4:
        values = values[np.newaxis]
    if values.ndim != 5:
        raise ValueError(
            f"{name} has shape {values.shape}; expected (sample, time, channel, y, x) or "
            "(time, channel, y, x)"
        )
    return values


def valid_pixels(prediction, truth, valid=None) -> np.ndarray:
    """Boolean mask ``(sample, time, channel, y, x)`` of the pixels that enter the scores.

    True where both arrays are finite and ``valid`` (broadcast to the same layout) is True.
    """
    pred = as_5d(prediction, name="prediction")
    true = as_5d(truth, name="truth")
    _check_same_shape(pred, true)
    mask = np.isfinite(pred) & np.isfinite(true)
    if valid is not None:
        v = as_5d(valid, name="valid").astype(bool) if np.ndim(valid) >= 4 else np.asarray(valid)
        try:
            mask &= np.broadcast_to(v.astype(bool), mask.shape)
        except ValueError as err:
            raise ValueError(
                f"valid mask of shape {np.shape(valid)} does not broadcast to the data shape "
                f"{mask.shape}; pass a boolean mask shaped like the truth"
            ) from err
    return mask


def common_valid(truth, *forecasts, valid=None) -> np.ndarray:
    """The common mask ``(sample, time, channel, y, x)``: finite in the truth and every forecast.

    Parameters
    ----------
    truth : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)`` observations.
    *forecasts : xarray.DataArray or numpy.ndarray
        Forecasts compared with each other, each shaped like ``truth``.
    valid : array-like of bool, optional
        Extra mask, broadcast to the data layout.

    Returns
    -------
    numpy.ndarray
        bool, True where the truth and all forecasts are finite and ``valid`` is True.
    """
    true = as_5d(truth, name="truth")
    mask = valid_pixels(true, true, valid)
    for k, forecast in enumerate(forecasts):
        pred = as_5d(forecast, name=f"forecast {k}")
        _check_same_shape(pred, true)
        mask &= np.isfinite(pred)
    return mask


def compare(
    forecasts: dict,
    truth,
    *,
    domain: str,
    thresholds: Sequence[float] = (1.0, 5.0),
    valid=None,
    pixel_km: float | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`per_lead` of several forecasts of the same truth, all on the common mask.

    Parameters
    ----------
    forecasts : dict of str -> xarray.DataArray or numpy.ndarray
        Name -> forecast ``(sample?, time, channel, y, x)`` in physical units, shaped like
        ``truth``.
    truth : xarray.DataArray or numpy.ndarray
        Observations.
    domain, thresholds, pixel_km
        As in :func:`per_lead`.
    valid : array-like of bool, optional
        Extra mask, broadcast to the data layout.

    Returns
    -------
    dict of str -> pandas.DataFrame
        One :func:`per_lead` table per forecast, in the order given. Every table is computed on
        the pixels of :func:`common_valid` (finite in the truth and in *every* forecast), so the
        scores of different forecasts count the same pixels (``attrs["valid_pixels"]`` agree).
    """
    mask = common_valid(truth, *forecasts.values(), valid=valid)
    return {
        name: per_lead(
            forecast, truth, domain=domain, thresholds=thresholds, valid=mask, pixel_km=pixel_km
        )  # fmt: skip
        for name, forecast in forecasts.items()
    }


def contingency(prediction, truth, *, threshold: float, valid=None) -> pd.DataFrame:
    """Contingency-table counts per lead time for the event ``value >= threshold``.

    The event convention (:data:`EVENT`) is inclusive: a value equal to ``threshold`` is an event.

    Parameters
    ----------
    prediction, truth : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)`` in physical units (e.g. mm/h).
    threshold : float
        Event threshold in the same units.
    valid : array-like of bool, optional
        Extra mask of pixels to score (broadcast to the data layout).

    Returns
    -------
    pandas.DataFrame
        Index ``lead_step`` (1..T); integer columns ``hits``, ``misses``, ``false_alarms``,
        ``correct_negatives``.
    """
    counts = sample_contingency(prediction, truth, threshold=threshold, valid=valid)
    n_leads = counts["hits"].shape[1]
    return pd.DataFrame({k: v.sum(axis=0) for k, v in counts.items()}, index=_lead_index(n_leads))


def sample_contingency(prediction, truth, *, threshold: float, valid=None) -> dict[str, np.ndarray]:
    """Contingency counts per sample and lead (the pieces :func:`contingency` sums over samples).

    Parameters
    ----------
    prediction, truth, threshold, valid
        As in :func:`contingency`.

    Returns
    -------
    dict of str -> numpy.ndarray
        ``hits``, ``misses``, ``false_alarms``, ``correct_negatives``: each ``[S, T]`` int
        (sample, lead), summed over channels and pixels.
    """
    pred = as_5d(prediction, name="prediction")
    true = as_5d(truth, name="truth")
    mask = valid_pixels(pred, true, valid)
    p = (pred >= threshold) & mask
    o = (true >= threshold) & mask
    axes = (2, 3, 4)
    return {
        "hits": (p & o).sum(axis=axes),
        "misses": (~p & o & mask).sum(axis=axes),
        "false_alarms": (p & ~o & mask).sum(axis=axes),
        "correct_negatives": (~p & ~o & mask).sum(axis=axes),
    }


def categorical_scores(table: pd.DataFrame) -> pd.DataFrame:
    """CSI, POD, FAR and frequency bias from a :func:`contingency` table (NaN where undefined).

    ``CSI = H / (H + M + F)``, ``POD = H / (H + M)``, ``FAR = F / (H + F)`` and the frequency bias
    ``FBI = (H + F) / (H + M)`` (``= POD / (1 - FAR)``; 1 is unbiased, above 1 over-forecasts).
    """
    h = table["hits"].to_numpy(dtype=np.float64)
    m = table["misses"].to_numpy(dtype=np.float64)
    f = table["false_alarms"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "CSI": _ratio(h, h + m + f),
            "POD": _ratio(h, h + m),
            "FAR": _ratio(f, h + f),
            "FBI": _ratio(h + f, h + m),
        },
        index=table.index,
    )


def fss(prediction, truth, *, threshold: float, scale: int, valid=None) -> np.ndarray:
    """Fractions skill score per lead time, pooled over samples and channels.

    Roberts and Lean (2008), computed with ``pysteps.verification.spatialscores``: for every
    sample and channel of one lead, ``fss_accum`` adds the sums of squared neighbourhood fractions
    of the event ``value >= threshold`` (our :data:`EVENT`, also pysteps' for FSS); ``fss_compute``
    turns the sums of all of them into one score (for one field this is ``spatialscores.fss``).

    Parameters
    ----------
    prediction, truth : xarray.DataArray or numpy.ndarray
        ``(sample?, time, channel, y, x)`` in physical units (e.g. mm/h).
    threshold : float
        Event threshold in the same units.
    scale : int
        Side of the square neighbourhood in pixels (1: pixel by pixel).
    valid : array-like of bool, optional
        Extra mask; pixels outside it (or not finite) are no-event in both fields.

    Returns
    -------
    numpy.ndarray
        ``(time,)`` float64 in [0, 1]; NaN at a lead where neither field has an event.
    """
    num, den = sample_fss_sums(prediction, truth, threshold=threshold, scale=scale, valid=valid)
    # fss_compute without its 0/0 warning: no event in either field is undefined (NaN)
    return 1.0 - _ratio(num.sum(axis=0), den.sum(axis=0))


def sample_fss_sums(prediction, truth, *, threshold: float, scale: int, valid=None):
    """The sums behind :func:`fss`, per sample and lead: ``FSS = 1 - sum(num) / sum(den)``.

    Parameters
    ----------
    prediction, truth, threshold, scale, valid
        As in :func:`fss`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``num`` (squared difference of the neighbourhood fractions) and ``den`` (sum of their
        squares), each ``[S, T]`` float64 (sample, lead), summed over channels and pixels.
    """
    from pysteps.verification.spatialscores import fss_accum, fss_init

    pred = as_5d(prediction, name="prediction")
    true = as_5d(truth, name="truth")
    mask = valid_pixels(pred, true, valid)
    pred = np.where(mask, pred, np.nan)
    true = np.where(mask, true, np.nan)
    num = np.zeros(pred.shape[:2])
    den = np.zeros(pred.shape[:2])
    for s, t in np.ndindex(*pred.shape[:2]):
        sums = fss_init(threshold, int(scale))
        for c in range(pred.shape[2]):
            fss_accum(sums, pred[s, t, c], true[s, t, c])
        num[s, t] = sums["sum_fct_sq"] - 2.0 * sums["sum_fct_obs"] + sums["sum_obs_sq"]
        den[s, t] = sums["sum_fct_sq"] + sums["sum_obs_sq"]
    return num, den


def fss_scale_px(pixel_km: float, scale_km: float = FSS_SCALE_KM) -> int:
    """Neighbourhood side in pixels for ``scale_km`` on a grid of ``pixel_km`` (at least 1)."""
    if not pixel_km or pixel_km <= 0 or not np.isfinite(pixel_km):
        raise ValueError(f"pixel size {pixel_km!r} km: give a positive pixel size in km")
    return max(1, int(round(scale_km / pixel_km)))


def pixel_size_km(*arrays) -> float | None:
    """The grid spacing in km of the first DataArray that states it (attr ``resolution_km``)."""
    for array in arrays:
        value = getattr(array, "attrs", {}).get("resolution_km")
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return None


def ssim_frame(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, valid=None) -> float:
    """Mean structural similarity of two 2-D images ``(y, x)``.

    Gaussian-weighted SSIM (Wang et al. 2004) with sigma 1.5 (11x11 window), K1=0.01, K2=0.03,
    population covariances, and a 5-pixel border cropped before averaging (the scikit-image
    ``gaussian_weights=True`` convention; images of 10 pixels or less a side are not cropped). Pixels where ``valid`` is False (or either image is
    not finite) are filled with 0 before filtering and left out of the mean.

    Returns
    -------
    float
        In [-1, 1]; 1 for identical images. NaN when no valid pixel is left after cropping.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)

    def blur(x):
        return ndimage.gaussian_filter(
            x, sigma=_SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect"
        )

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b  # population (co)variances, as in scikit-image
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    pad = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
    if min(a.shape) <= 2 * pad:  # too small to crop: average the whole map
        pad = 0
    inner = (slice(pad, -pad or None), slice(pad, -pad or None))
    keep = ok[inner]
    if not keep.any():
        return float("nan")
    return float(ssim_map[inner][keep].mean())


def per_lead(
    prediction,
    truth,
    *,
    domain: str,
    thresholds: Sequence[float] = (1.0, 5.0),
    valid=None,
    pixel_km: float | None = None,
) -> pd.DataFrame:
    """Scores per forecast lead time for one domain.

    Parameters
    ----------
    prediction, truth : xarray.DataArray or numpy.ndarray
        ``(sample, time, channel, y, x)`` or ``(time, channel, y, x)``, same shape, physical units
        (video in [0, 1], radar in mm/h, traffic in counts per interval); ``time`` is the lead.
    domain : {"video", "radar", "traffic"}
        Which set of scores (see the module docstring).
    thresholds : sequence of float
        Radar event thresholds in mm/h (events are values ``>= t``) for CSI/POD/FAR/FBI/FSS
        (ignored for other domains).
    valid : array-like of bool, optional
        Extra mask of pixels to score, broadcast to the data layout (NaN pixels are always out).
        To compare forecasts on the same pixels use :func:`compare`.
    pixel_km : float, optional
        Radar grid spacing in km, for the FSS neighbourhood of :data:`FSS_SCALE_KM`; default the
        ``resolution_km`` attr of ``prediction`` or ``truth``, else 1 km (the unit of ``FSS@t``
        then says so).

    Returns
    -------
    pandas.DataFrame
        Index ``lead_step`` (1..T), one float column per metric: video ``MSE, MAE, SSIM, PSNR``;
        radar ``MSE, MAE`` then ``CSI@t, POD@t, FAR@t, FBI@t, FSS@t`` per threshold; traffic
        ``RMSE, MAE``. ``attrs`` as in the module docstring.

    Raises
    ------
    ValueError
        Unknown domain, mismatched shapes, or a mask that does not broadcast.
    """
    domain = str(domain).lower()
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; use one of {', '.join(DOMAINS)}")
    pred = as_5d(prediction, name="prediction")
    true = as_5d(truth, name="truth")
    _check_same_shape(pred, true)
    mask = valid_pixels(pred, true, valid)
    n_valid = mask.sum(axis=(0, 2, 3, 4))  # per lead
    extra: dict = {}
    if domain == "video":
        columns, units = _video_scores(pred, true, mask)
    elif domain == "radar":
        pixel_km = pixel_km or pixel_size_km(prediction, truth)
        columns, units, extra = _radar_scores(pred, true, mask, thresholds, pixel_km)
    else:  # traffic
        err = np.where(mask, pred - true, 0.0)
        columns = {
            "RMSE": np.sqrt(_ratio((err**2).sum(axis=(0, 2, 3, 4)), n_valid)),
            "MAE": _ratio(np.abs(err).sum(axis=(0, 2, 3, 4)), n_valid),
        }
        units = {"RMSE": "counts per interval", "MAE": "counts per interval"}

    table = pd.DataFrame(
        {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()},
        index=_lead_index(pred.shape[1]),
    )
    table.attrs.update(
        domain=domain,
        units=units,
        n_samples=int(pred.shape[0]),
        valid_pixels=[int(n) for n in n_valid],
        **extra,
    )
    lead_time = _lead_time(prediction)
    if lead_time is not None:
        table.attrs["lead_time"] = lead_time
    return table


def _video_scores(pred: np.ndarray, true: np.ndarray, mask: np.ndarray):
    """OpenSTL-style video scores ``(columns, units)``: sums over a frame, means over samples."""
    err = np.where(mask, pred - true, 0.0)
    columns = {
        "MSE": (err**2).sum(axis=(2, 3, 4)).mean(axis=0),
        "MAE": np.abs(err).sum(axis=(2, 3, 4)).mean(axis=0),
    }
    frame_n = mask.sum(axis=(2, 3, 4))  # (sample, time)
    frame_mse = _ratio((err**2).sum(axis=(2, 3, 4)), frame_n)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(1.0 / frame_mse)
    ssim = np.empty(pred.shape[:3])
    for s, t, c in np.ndindex(*pred.shape[:3]):
        ssim[s, t, c] = ssim_frame(pred[s, t, c], true[s, t, c], valid=mask[s, t, c])
    with np.errstate(invalid="ignore"):
        columns["SSIM"] = ssim.mean(axis=2).mean(axis=0)
    columns["PSNR"] = psnr.mean(axis=0)
    units = {
        "MSE": "sum over frame of squared [0,1] error",
        "MAE": "sum over frame of absolute [0,1] error",
        "SSIM": "1",
        "PSNR": "dB",
    }
    return columns, units


def _radar_scores(pred, true, mask, thresholds, pixel_km: float | None):
    """Radar scores ``(columns, units, attrs)`` on the pixels of ``mask`` (module docstring)."""
    err = np.where(mask, pred - true, 0.0)
    n_valid = mask.sum(axis=(0, 2, 3, 4))
    columns = {
        "MSE": _ratio((err**2).sum(axis=(0, 2, 3, 4)), n_valid),
        "MAE": _ratio(np.abs(err).sum(axis=(0, 2, 3, 4)), n_valid),
    }
    units = {"MSE": "(mm/h)^2", "MAE": "mm/h"}
    scale = fss_scale_px(pixel_km or 1.0)
    where = f"{FSS_SCALE_KM:g} km = {scale} px" if pixel_km else f"{scale} px, pixel size not given"
    for thr in thresholds:
        scores = categorical_scores(contingency(pred, true, threshold=thr, valid=mask))
        event = f"event: rain rate {EVENT} {thr:g} mm/h"
        for name in ("CSI", "POD", "FAR", "FBI"):
            columns[f"{name}@{thr:g}"] = scores[name].to_numpy()
            units[f"{name}@{thr:g}"] = f"1 ({event})"
        columns[f"FSS@{thr:g}"] = fss(pred, true, threshold=thr, scale=scale, valid=mask)
        units[f"FSS@{thr:g}"] = f"1 ({event}; scale {where})"
    return columns, units, {"fss_scale_px": scale, "pixel_km": pixel_km}


def _lead_index(n: int) -> pd.Index:
    return pd.Index(np.arange(1, n + 1), name="lead_step")


def _lead_time(array) -> list | None:
    """The ``lead_time`` coordinate of a DataArray as a list, if there is one."""
    if isinstance(array, xr.DataArray) and "lead_time" in array.coords:
        values = array.coords["lead_time"].values
        if np.issubdtype(values.dtype, np.timedelta64):
            return [pd.Timedelta(v) for v in values]
        return [v.item() if hasattr(v, "item") else v for v in values]
    return None


def _ratio(num, den) -> np.ndarray:
    """``num / den`` elementwise, NaN where ``den`` is zero."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _check_same_shape(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(
            f"prediction has shape {pred.shape} but truth has {true.shape}; both must be "
            "(sample, time, channel, y, x) with the same number of lead times"
        )


__all__ = [
    "DOMAINS",
    "as_5d",
    "EVENT",
    "FSS_SCALE_KM",
    "categorical_scores",
    "common_valid",
    "compare",
    "contingency",
    "fss",
    "fss_scale_px",
    "sample_contingency",
    "sample_fss_sums",
    "per_lead",
    "pixel_size_km",
    "ssim_frame",
    "valid_pixels",
]

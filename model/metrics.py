"""Per-lead-time verification scores for forecasts in physical units.

Pure numpy/xarray; no torch. The same functions score checkpoints in ``python -m model.evaluate``
and feed the dashboard's metrics panel.

>>> from model.metrics import per_lead
>>> table = per_lead(prediction, truth, domain="radar", thresholds=(1.0, 5.0))
>>> table.loc[6, "CSI@1"]          # CSI at 1 mm/h, 6th forecast step (30 min at PT5M)

Layout of the inputs
--------------------
``prediction`` and ``truth`` are xarray DataArrays or numpy arrays laid out as
``(sample, time, channel, y, x)`` or, for one sample, ``(time, channel, y, x)``; ``time`` is the
forecast lead (the first entry is the first forecast step). Both must have the same shape.
Pixels are scored only where ``truth`` and ``prediction`` are finite and ``valid`` (if given) is
True: NaN marks invalid radar pixels (outside the radar domain), which never enter a score.

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
    lead time; ``CSI@t``, ``POD@t``, ``FAR@t`` for each threshold ``t`` in mm/h from the
    contingency table pooled over samples and pixels (an event is a value ``>= t``, as in
    ``pysteps.verification.det_cat_fct``). A score whose denominator is zero is NaN.
``"traffic"`` (counts per interval)
    ``RMSE`` and ``MAE`` in counts, over all valid pixels and both flow channels of all samples
    at one lead time.

The returned ``pandas.DataFrame`` is indexed by ``lead_step`` (1, 2, ... forecast steps); its
``attrs`` hold ``domain``, ``units`` (a dict metric -> unit), ``n_samples``, ``valid_pixels`` (a list,
one count per lead) and, when the prediction carries a ``lead_time`` coordinate, ``lead_time``
(a list of ``pandas.Timedelta`` or step counts).
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


def contingency(prediction, truth, *, threshold: float, valid=None) -> pd.DataFrame:
    """Contingency-table counts per lead time for the event ``value >= threshold``.

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
    pred = as_5d(prediction, name="prediction")
    true = as_5d(truth, name="truth")
    mask = valid_pixels(pred, true, valid)
    p = (pred >= threshold) & mask
    o = (true >= threshold) & mask
    axes = (0, 2, 3, 4)
    table = pd.DataFrame(
        {
            "hits": (p & o).sum(axis=axes),
            "misses": (~p & o & mask).sum(axis=axes),
            "false_alarms": (p & ~o & mask).sum(axis=axes),
            "correct_negatives": (~p & ~o & mask).sum(axis=axes),
        },
        index=_lead_index(pred.shape[1]),
    )
    return table


def categorical_scores(table: pd.DataFrame) -> pd.DataFrame:
    """CSI, POD and FAR from a :func:`contingency` table (NaN where undefined).

    ``CSI = H / (H + M + F)``, ``POD = H / (H + M)``, ``FAR = F / (H + F)``.
    """
    h = table["hits"].to_numpy(dtype=np.float64)
    m = table["misses"].to_numpy(dtype=np.float64)
    f = table["false_alarms"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {"CSI": _ratio(h, h + m + f), "POD": _ratio(h, h + m), "FAR": _ratio(f, h + f)},
        index=table.index,
    )


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
        Radar event thresholds in mm/h for CSI/POD/FAR (ignored for other domains).
    valid : array-like of bool, optional
        Extra mask of pixels to score, broadcast to the data layout (NaN pixels are always out).

    Returns
    -------
    pandas.DataFrame
        Index ``lead_step`` (1..T), one float column per metric: video ``MSE, MAE, SSIM, PSNR``;
        radar ``MSE, MAE, CSI@t, POD@t, FAR@t`` per threshold; traffic ``RMSE, MAE``. ``attrs``
        as in the module docstring.

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
    err = np.where(mask, pred - true, 0.0)
    n_valid = mask.sum(axis=(0, 2, 3, 4))  # per lead
    index = _lead_index(pred.shape[1])
    columns: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}

    if domain == "video":
        # OpenSTL: sum over the pixels of a frame, mean over frames (here: over samples per lead).
        columns["MSE"] = (err**2).sum(axis=(2, 3, 4)).mean(axis=0)
        columns["MAE"] = np.abs(err).sum(axis=(2, 3, 4)).mean(axis=0)
        frame_n = mask.sum(axis=(2, 3, 4))  # (sample, time)
        frame_mse = _ratio((err**2).sum(axis=(2, 3, 4)), frame_n)
        with np.errstate(divide="ignore"):
            psnr = 10.0 * np.log10(1.0 / frame_mse)
        columns["PSNR"] = psnr.mean(axis=0)
        ssim = np.empty(pred.shape[:3])
        for s, t, c in np.ndindex(*pred.shape[:3]):
            ssim[s, t, c] = ssim_frame(pred[s, t, c], true[s, t, c], valid=mask[s, t, c])
        with np.errstate(invalid="ignore"):
            columns["SSIM"] = ssim.mean(axis=2).mean(axis=0)
        units = {
            "MSE": "sum over frame of squared [0,1] error",
            "MAE": "sum over frame of absolute [0,1] error",
            "SSIM": "1",
            "PSNR": "dB",
        }
        columns = {k: columns[k] for k in ("MSE", "MAE", "SSIM", "PSNR")}
    elif domain == "radar":
        columns["MSE"] = _ratio((err**2).sum(axis=(0, 2, 3, 4)), n_valid)
        columns["MAE"] = _ratio(np.abs(err).sum(axis=(0, 2, 3, 4)), n_valid)
        units = {"MSE": "(mm/h)^2", "MAE": "mm/h"}
        for thr in thresholds:
            scores = categorical_scores(contingency(pred, true, threshold=thr, valid=mask))
            for name in ("CSI", "POD", "FAR"):
                key = f"{name}@{thr:g}"
                columns[key] = scores[name].to_numpy()
                units[key] = f"1 (event: rain rate >= {thr:g} mm/h)"
    else:  # traffic
        columns["RMSE"] = np.sqrt(_ratio((err**2).sum(axis=(0, 2, 3, 4)), n_valid))
        columns["MAE"] = _ratio(np.abs(err).sum(axis=(0, 2, 3, 4)), n_valid)
        units = {"RMSE": "counts per interval", "MAE": "counts per interval"}

    table = pd.DataFrame(
        {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}, index=index
    )
    table.attrs.update(
        domain=domain,
        units=units,
        n_samples=int(pred.shape[0]),
        valid_pixels=[int(n) for n in n_valid],
    )
    lead_time = _lead_time(prediction)
    if lead_time is not None:
        table.attrs["lead_time"] = lead_time
    return table


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
    "categorical_scores",
    "contingency",
    "per_lead",
    "ssim_frame",
    "valid_pixels",
]

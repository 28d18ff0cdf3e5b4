"""Bootstrap confidence intervals of a paired score difference (ours - a baseline).

Pooled scores (CSI from a contingency table summed over windows, FSS from sums of squared
neighbourhood fractions) are not means of per-window scores, so the bootstrap resamples the
**per-window pieces** of the score (:func:`model.metrics.sample_contingency`,
:func:`model.metrics.sample_fss_sums`): each resample draws ``S`` of the ``S`` windows with
replacement, the *same* windows for both forecasts (paired), sums their pieces and recomputes
both pooled scores; the interval is the percentile interval of the differences. The generator is
seeded (:data:`SEED`), so a table is reproducible.

>>> pieces = window_pieces(ours, lk, truth, threshold=1.0, scale=10, lead=6)  # doctest: +SKIP
>>> paired_interval(pieces["CSI"]["ours"], pieces["CSI"]["theirs"], SCORES["CSI"])  # +SKIP
"""

from __future__ import annotations

import numpy as np

from model.metrics import _ratio, sample_contingency, sample_fss_sums

RESAMPLES = 2000
LEVEL = 0.9
SEED = 0


def csi_from_pieces(pieces: np.ndarray) -> np.ndarray:
    """CSI from ``[..., 3]`` summed (hits, misses, false alarms); NaN where undefined."""
    h, m, f = pieces[..., 0], pieces[..., 1], pieces[..., 2]
    return _ratio(h, h + m + f)


def fss_from_pieces(pieces: np.ndarray) -> np.ndarray:
    """FSS from ``[..., 2]`` summed (num, den) of :func:`model.metrics.sample_fss_sums`."""
    return 1.0 - _ratio(pieces[..., 0], pieces[..., 1])


SCORES = {"CSI": csi_from_pieces, "FSS": fss_from_pieces}
"""Score name -> function of the summed per-window pieces."""


def window_pieces(ours, theirs, truth, *, threshold: float, scale: int, lead: int, valid=None):
    """Per-window pieces of CSI and FSS at one lead for two forecasts of the same truth.

    Parameters
    ----------
    ours, theirs, truth : numpy.ndarray
        ``[S, T, C, Y, X]`` in mm/h (S windows).
    threshold : float
        Event threshold (events are ``>= threshold``, :data:`model.metrics.EVENT`).
    scale : int
        FSS neighbourhood side in pixels.
    lead : int
        1-based lead step.
    valid : numpy.ndarray, optional
        ``[S, T, C, Y, X]`` bool: the common mask of truth and every forecast compared.

    Returns
    -------
    dict
        ``{"CSI": {"ours": [S, 3], "theirs": [S, 3]}, "FSS": {"ours": [S, 2], "theirs": [S, 2]}}``
        float64 pieces per window.
    """
    k = slice(lead - 1, lead)
    cut = None if valid is None else valid[:, k]
    out = {"CSI": {}, "FSS": {}}
    for name, forecast in (("ours", ours), ("theirs", theirs)):
        counts = sample_contingency(forecast[:, k], truth[:, k], threshold=threshold, valid=cut)
        out["CSI"][name] = np.stack(
            [counts[c][:, 0] for c in ("hits", "misses", "false_alarms")], axis=-1
        ).astype(np.float64)  # [S, 3]
        num, den = sample_fss_sums(forecast[:, k], truth[:, k], threshold=threshold,
                                   scale=scale, valid=cut)  # fmt: skip
        out["FSS"][name] = np.stack([num[:, 0], den[:, 0]], axis=-1)  # [S, 2]
    return out


def paired_interval(ours: np.ndarray, theirs: np.ndarray, score, *, resamples: int = RESAMPLES,
                    level: float = LEVEL, seed: int = SEED) -> dict:  # fmt: skip
    """Percentile bootstrap interval of ``score(ours) - score(theirs)`` over resampled windows.

    Parameters
    ----------
    ours, theirs : numpy.ndarray
        ``[S, K]`` per-window pieces of the score (the same S windows, in the same order).
    score : callable
        Summed pieces ``[..., K]`` -> score ``[...]`` (:data:`SCORES`).
    resamples : int
        Bootstrap resamples.
    level : float
        Coverage of the interval (0.9: the 5th to the 95th percentile).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    dict
        ``difference`` (on all windows), ``low``, ``high`` (the interval), ``windows``,
        ``resamples``, ``level``, ``seed``.
    """
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape or ours.ndim != 2 or ours.shape[0] == 0:
        raise ValueError(f"paired pieces must be [S, K] alike with S >= 1, got {ours.shape} and "
                         f"{theirs.shape}")  # fmt: skip
    n = ours.shape[0]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))  # [B, S] window indices
    diffs = score(ours[picks].sum(axis=1)) - score(theirs[picks].sum(axis=1))  # [B]
    tail = 50.0 * (1.0 - level)
    low, high = np.nanpercentile(diffs, [tail, 100.0 - tail])
    return {
        "difference": float(score(ours.sum(axis=0)) - score(theirs.sum(axis=0))),
        "low": float(low),
        "high": float(high),
        "windows": int(n),
        "resamples": int(resamples),
        "level": float(level),
        "seed": int(seed),
    }


__all__ = [
    "LEVEL",
    "RESAMPLES",
    "SCORES",
    "SEED",
    "csi_from_pieces",
    "fss_from_pieces",
    "paired_interval",
    "window_pieces",
]

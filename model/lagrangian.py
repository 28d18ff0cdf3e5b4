"""Forecasting in a Lagrangian frame (Ritvanen et al. 2023): the network forecasts growth and
decay, optical flow moves the rain.

A checkpoint whose metadata says ``"frame": "lagrangian"`` is run in three steps, over the whole
domain, by :func:`model.tiling.domain_rollout` (and so by ``model.evaluate`` and the dashboard,
which call it) without the caller knowing:

1. **Motion.** The pysteps motion field (Lucas-Kanade by default, on the last ``n_frames`` context
   frames, exactly as the extrapolation baseline :func:`model.baselines.extrapolation` estimates
   it) over the whole domain, in pixels per time step (:func:`motion_field`).
2. **Into the frame of the last context frame.** Each context frame ``j`` of ``T`` is advected
   forward ``T - 1 - j`` steps with pysteps' semi-Lagrangian scheme (:func:`to_lagrangian`), so
   that a rain cell that only moved sits at the same pixel in every frame. The ConvLSTM (a real
   one: its gates are the gates of this frame) reads these frames and forecasts the next ones in
   the same frame; its head is residual (``config.residual``): a forecast is the previous frame
   plus a change in dB space, so a zero head forecasts "the last frame again".
3. **Back.** The forecast for lead ``k`` is advected forward ``k`` steps by the same motion field
   with the same scheme as the baseline (:func:`from_lagrangian`), and rain below
   :data:`RAIN_FLOOR` (0.1 mm/h) is zeroed. With a zero head the whole pipeline is therefore
   pysteps' extrapolation of the last frame (with rain under 0.1 mm/h removed first): the network
   starts at the extrapolation baseline and training can only move it from there.

   Postprocess (``"postprocess"`` in the metadata): ``"cdf_match"`` matches each lead's
   distribution to the last frame's in the Lagrangian frame, before step 3 (a zero head is still
   exactly extrapolation); ``"cdf_match_after"`` matches each advected lead instead, over the
   valid pixels of the last frame, restoring the rain that left through the domain's edge: with
   it a zero head is **no longer** extrapolation (same motion, but the rain fraction of the last
   frame at every lead, the restored rain next to the advected rain).

Invalid pixels (NaN, outside the radar) are read as 0 mm/h when advecting, as the baseline does,
rain from outside the domain is 0 mm/h, and the forecast is NaN where the last observed frame is.

Training targets are the true future frames moved into the same frame: frame ``t + k`` advected
``k`` steps backwards (:func:`targets_to_lagrangian`); pixels that come from outside the domain are
NaN there and do not count in the loss.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

FRAME_KEY = "frame"
"""Checkpoint metadata key naming the frame the network forecasts in."""
LAGRANGIAN = "lagrangian"
MOTION_KEY = "motion"
"""Checkpoint metadata key with the motion settings, e.g. ``{"method": "LK", "n_frames": 3}``."""
DEFAULT_MOTION = {"method": "LK", "n_frames": 3}
RAIN_FLOOR = 0.1
"""mm/h: forecast rain below this is zeroed (Lagrangian checkpoints)."""
POSTPROCESS_KEY = "postprocess"
"""Checkpoint metadata key: ``"cdf_match"`` gives every Lagrangian-frame forecast the rain-rate
distribution of the last context frame (:func:`match_distribution`) before it is advected back;
``"cdf_match_after"`` gives it to every advected lead instead (:func:`match_after_advection`), so
rain that left through the domain's edge is restored; absent/``"none"``: neither."""
POSTPROCESS_OPTIONS = ("none", "cdf_match", "cdf_match_after", "cdf_match_after_inflow")
"""Every postprocess a checkpoint may name; ``"cdf_match_after_inflow"`` is ``"cdf_match_after"``
with the inflow band (pixels whose trajectory starts outside the valid domain, where the
advection brings 0 mm/h) first given the last observation there (:func:`fill_inflow`), so the
restored rain is placed at the inflow edge rather than only next to the forecast rain."""


def check_postprocess(name: str) -> str:
    """``name`` if it is one of :data:`POSTPROCESS_OPTIONS`; else ValueError naming them."""
    if name not in POSTPROCESS_OPTIONS:
        raise ValueError(f"{POSTPROCESS_KEY}={name!r}: use one of "
                         + ", ".join(repr(o) for o in POSTPROCESS_OPTIONS))  # fmt: skip
    return name


def is_lagrangian(meta: dict | None) -> bool:
    """Does the checkpoint metadata ask for the Lagrangian pipeline?"""
    return bool(meta) and meta.get(FRAME_KEY) == LAGRANGIAN


def motion_settings(meta: dict | None) -> dict:
    """``{"method", "n_frames"}`` of a checkpoint (defaults: :data:`DEFAULT_MOTION`)."""
    stored = (meta or {}).get(MOTION_KEY) or {}
    return {
        "method": str(stored.get("method", DEFAULT_MOTION["method"])),
        "n_frames": int(stored.get("n_frames", DEFAULT_MOTION["n_frames"])),
    }


def motion_field(frames: np.ndarray, *, method: str = "LK", n_frames: int = 3) -> np.ndarray:
    """Motion of the last ``n_frames`` frames, as the extrapolation baseline estimates it.

    Parameters
    ----------
    frames : numpy.ndarray
        ``[T, Y, X]`` rain rate in mm/h, NaN where invalid; ``T >= n_frames >= 2``.
    method : str
        A pysteps motion method (``"LK"``, ``"DARTS"``, ...).
    n_frames : int
        Frames the motion is estimated from (the last ones).

    Returns
    -------
    numpy.ndarray
        ``[2, Y, X]`` float64 (x, y) displacement in pixels per time step; zeros where no motion
        can be estimated (e.g. no rain).
    """
    from model.baselines import estimate_motion

    if not 2 <= n_frames <= frames.shape[0]:
        raise ValueError(
            f"the motion needs 2 to {frames.shape[0]} frames (the context), got n_frames={n_frames}"
        )
    return estimate_motion(np.asarray(frames[-n_frames:], dtype=np.float64), method)


def _filled(field: np.ndarray) -> np.ndarray:
    """``field`` in float64 with NaN read as 0 mm/h (as the extrapolation baseline does)."""
    field = np.asarray(field, dtype=np.float64)
    return np.where(np.isfinite(field), field, 0.0)


def displacements(velocity: np.ndarray, steps: int) -> list[np.ndarray]:
    """Cumulative semi-Lagrangian displacements after 1, 2, ..., ``steps`` steps.

    pysteps' scheme (``semilagrangian.extrapolate`` with ``precip=None``), continued step by step
    exactly as one ``extrapolate(field, velocity, steps)`` call integrates the trajectories.
    Negative ``velocity`` gives the trajectories backwards in time.

    Returns
    -------
    list of numpy.ndarray
        ``steps`` arrays ``[2, Y, X]`` (x, y) in pixels: where each pixel's value comes from.
    """
    from pysteps.extrapolation import semilagrangian

    out, displacement = [], None
    for _ in range(int(steps)):
        _, displacement = semilagrangian.extrapolate(
            None, velocity, 1, return_displacement=True, displacement_prev=displacement
        )
        out.append(displacement)
    return out


def warp(field: np.ndarray, displacement: np.ndarray, *, outval: float = 0.0) -> np.ndarray:
    """``field`` ``[Y, X]`` (NaN read as 0) moved by ``displacement`` ``[2, Y, X]`` (x, y pixels),
    bilinear, ``outval`` from outside the domain: pysteps' interpolation step (order 1)."""
    from scipy.ndimage import map_coordinates

    h, w = field.shape
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    coords = [y + displacement[1], x + displacement[0]]
    return map_coordinates(_filled(field), coords, mode="constant", cval=outval, order=1,
                           prefilter=False)  # fmt: skip


def advect(field: np.ndarray, velocity: np.ndarray, steps: int, *, outval: float = 0.0):
    """``field`` ``[Y, X]`` moved ``steps`` time steps along ``velocity`` (semi-Lagrangian).

    ``steps`` may be negative (backwards, along ``-velocity``); 0 returns the field (NaN as 0).
    Returns ``[Y, X]`` float64; ``outval`` where the trajectory starts outside the domain.
    """
    if steps == 0:
        return _filled(field)
    sign = 1.0 if steps > 0 else -1.0
    return warp(field, displacements(sign * velocity, abs(int(steps)))[-1], outval=outval)


def to_lagrangian(frames: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Context frames moved into the frame of the last one.

    Parameters
    ----------
    frames : numpy.ndarray
        ``[T, Y, X]`` mm/h (NaN: invalid, read as 0).
    velocity : numpy.ndarray
        ``[2, Y, X]`` pixels per step (:func:`motion_field`).

    Returns
    -------
    numpy.ndarray
        ``[T, Y, X]`` float32 mm/h: frame ``j`` advected ``T - 1 - j`` steps forward (the last
        frame unchanged); 0 mm/h where rain would come from outside the domain.
    """
    t = frames.shape[0]
    moves = displacements(velocity, t - 1)
    out = [warp(frames[j], moves[t - 2 - j]) for j in range(t - 1)] + [_filled(frames[-1])]
    return np.stack(out).astype(np.float32)  # [T, Y, X]


def targets_to_lagrangian(frames: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """The true future frames moved back into the frame of the last context frame.

    Parameters
    ----------
    frames : numpy.ndarray
        ``[H, Y, X]`` mm/h, frame ``k`` valid ``k + 1`` steps after the last context frame.
    velocity : numpy.ndarray
        ``[2, Y, X]`` pixels per step.

    Returns
    -------
    numpy.ndarray
        ``[H, Y, X]`` float32 mm/h: frame ``k`` advected ``k + 1`` steps backwards; NaN where
        the trajectory leaves the domain or meets an invalid pixel (not to be scored).
    """
    out = []
    for frame, move in zip(frames, displacements(-velocity, frames.shape[0]), strict=True):
        invalid = warp((~np.isfinite(frame)).astype(np.float64), move, outval=1.0) > 0.5
        out.append(np.where(invalid, np.nan, warp(frame, move)))
    return np.stack(out).astype(np.float32)  # [H, Y, X]


def from_lagrangian(forecast: np.ndarray, velocity: np.ndarray, *, floor: float = RAIN_FLOOR,
                    moves: list | None = None):  # fmt: skip
    """Lagrangian-frame forecasts moved to where the rain will be.

    Lead ``k`` (1-based) is advected ``k`` steps forward with pysteps' semi-Lagrangian scheme
    (:func:`displacements`), so a forecast of the last frame at every lead is the extrapolation
    baseline's forecast.

    Parameters
    ----------
    forecast : numpy.ndarray
        ``[H, Y, X]`` mm/h in the frame of the last context frame.
    velocity : numpy.ndarray
        ``[2, Y, X]`` pixels per step.
    floor : float
        Rain rates below it (mm/h) become 0.
    moves : list of numpy.ndarray, optional
        ``displacements(velocity, H)`` when already computed.

    Returns
    -------
    numpy.ndarray
        ``[H, Y, X]`` float32 mm/h; 0 where rain would come from outside the domain.
    """
    moves = displacements(velocity, forecast.shape[0]) if moves is None else moves
    out = np.stack([warp(f, d) for f, d in zip(forecast, moves, strict=True)])  # [H, Y, X]
    return np.where(out >= floor, out, 0.0).astype(np.float32)


def match_distribution(field: np.ndarray, reference: np.ndarray, valid: np.ndarray, *,
                       tiebreak: np.ndarray | None = None):  # fmt: skip
    """``field`` with the values of ``reference``, assigned by rank over the ``valid`` pixels
    (empirical CDF matching, as pysteps' ``probmatching`` does for STEPS): the network decides
    where rain grows or decays, the last observation how much rain and how intense.

    Parameters
    ----------
    field, reference : numpy.ndarray
        ``[Y, X]`` mm/h (NaN read as 0).
    valid : numpy.ndarray
        ``[Y, X]`` bool: the pixels matched; others are left as they are.
    tiebreak : numpy.ndarray, optional
        ``[Y, X]``: ranks pixels of equal ``field`` value (higher ranks higher); without it ties
        keep raster order.

    Returns
    -------
    numpy.ndarray
        ``[Y, X]`` float64; a field ranked like ``reference`` comes out as ``reference``.
    """
    out = _filled(field)
    if tiebreak is None:
        order = np.argsort(out[valid], kind="stable")
    else:
        order = np.lexsort((np.asarray(tiebreak)[valid], out[valid]))  # last key sorts first
    values = np.empty(order.size)
    values[order] = np.sort(_filled(reference)[valid])
    out[valid] = values
    return out


def match_after_advection(
    advected: np.ndarray, reference: np.ndarray, *, floor: float = RAIN_FLOOR
) -> np.ndarray:
    """Advected leads given the rain-rate distribution of ``reference`` over its valid pixels
    (postprocess ``"cdf_match_after"``).

    Rain advected out through the domain's edge is not replaced by rain from outside (the
    advection brings 0 mm/h in), so each lead's rain fraction shrinks with the lead; matching
    after the advection restores the fraction of the last observation. Dry pixels are ranked by
    their distance to the nearest forecast rain (closest first), so the restored rain grows
    around the forecast rain rather than in raster order.

    Parameters
    ----------
    advected : numpy.ndarray
        ``[H, Y, X]`` mm/h: each lead advected to where the rain will be, not floored.
    reference : numpy.ndarray
        ``[Y, X]`` mm/h: the last observed frame; NaN = invalid (left NaN in the result).
    floor : float
        Rain rates below it (mm/h) become 0 after the matching.

    Returns
    -------
    numpy.ndarray
        ``[H, Y, X]`` float32 mm/h: per lead, the values of ``reference`` on its valid pixels
        (rates below ``floor`` zeroed), NaN where ``reference`` is.
    """
    from scipy.ndimage import distance_transform_edt

    valid = np.isfinite(reference)  # [Y, X]
    out = []
    for lead in advected:  # [Y, X]
        dry = ~(_filled(lead) >= floor)
        closeness = (
            -distance_transform_edt(dry) if dry.any() and not dry.all() else np.zeros(lead.shape)
        )  # [Y, X] px, 0 on rain
        out.append(match_distribution(lead, reference, valid, tiebreak=closeness))
    out = np.stack(out)  # [H, Y, X]
    out = np.where(out >= floor, out, 0.0)
    out[:, ~valid] = np.nan
    return out.astype(np.float32)


def inflow_band(velocity: np.ndarray, valid: np.ndarray, steps: int, *,
                moves: list | None = None) -> np.ndarray:  # fmt: skip
    """Pixels whose semi-Lagrangian trajectory over each lead starts outside the valid domain.

    Parameters
    ----------
    velocity : numpy.ndarray
        ``[2, Y, X]`` pixels per step.
    valid : numpy.ndarray
        ``[Y, X]`` bool: the valid pixels of the last observed frame.
    steps : int
        Leads.
    moves : list of numpy.ndarray, optional
        ``displacements(velocity, steps)`` when already computed.

    Returns
    -------
    numpy.ndarray
        ``[steps, Y, X]`` bool: True where lead ``k``'s advected value came (mostly) from outside
        the domain or from invalid pixels (0 mm/h brought in).
    """
    outside = (~valid).astype(np.float64)  # [Y, X]
    moves = displacements(velocity, steps) if moves is None else moves
    return np.stack([warp(outside, d, outval=1.0) > 0.5 for d in moves])


def fill_inflow(advected: np.ndarray, reference: np.ndarray, band: np.ndarray) -> np.ndarray:
    """``advected`` ``[H, Y, X]`` with the last observation ``reference`` ``[Y, X]`` (NaN as 0) on
    the inflow ``band`` ``[H, Y, X]``: rain at the upstream edge is assumed to stay, not to vanish.
    Returns ``[H, Y, X]`` float64."""
    return np.where(band, _filled(reference)[None], _filled(advected))


# --- whole-domain rollouts -----------------------------------------------------------------------


class LagrangianContext:
    """A context moved into the Lagrangian frame, and how to move the forecast back.

    Parameters
    ----------
    context : xarray.DataArray or array-like
        ``(time, channel, y, x)`` mm/h (a ``sample`` dim of size 1 is dropped).
    meta : dict
        Checkpoint metadata (:func:`motion_settings`).

    Attributes
    ----------
    observed : numpy.ndarray
        ``[T, C, Y, X]`` float32: the context as given.
    velocity : numpy.ndarray
        ``[C, 2, Y, X]``: each channel's motion field, pixels per step.
    frames : xarray.DataArray or numpy.ndarray
        The context in the Lagrangian frame, the same type, dims and coordinates as given.
    """

    def __init__(self, context, meta: dict):
        from model.rollout import _as_frames

        self.settings = motion_settings(meta)
        self.postprocess = check_postprocess(str(meta.get(POSTPROCESS_KEY) or "none"))
        self.observed = _as_frames(context, "context")  # [T, C, Y, X]
        self._displacements: dict = {}
        self.velocity = np.stack([
            motion_field(self.observed[:, c], **self.settings)
            for c in range(self.observed.shape[1])
        ])  # fmt: skip  # [C, 2, Y, X]
        moved = np.stack([
            to_lagrangian(self.observed[:, c], self.velocity[c])
            for c in range(self.observed.shape[1])
        ], axis=1)  # fmt: skip  # [T, C, Y, X]
        if isinstance(context, xr.DataArray):
            if "sample" in context.dims:
                context = context.isel(sample=0)
            self.frames = context.transpose("time", "channel", "y", "x").copy(data=moved)
        else:
            self.frames = moved

    def to_observed(self, forecast: np.ndarray, postprocess: str | None = None) -> np.ndarray:
        """Forecast ``[H, C, Y, X]`` (Lagrangian frame, mm/h) -> where the rain will be, NaN
        where the last observed frame is invalid (:func:`match_distribution` first, or
        :func:`match_after_advection` after, when the checkpoint, or ``postprocess`` (one of
        :data:`POSTPROCESS_OPTIONS`, overriding it: candidates compared on one forecast), asks
        for it)."""
        postprocess = check_postprocess(postprocess or self.postprocess)
        if postprocess in ("cdf_match_after", "cdf_match_after_inflow"):
            out = np.stack([self._matched_after(forecast[:, c], c, postprocess)
                            for c in range(forecast.shape[1])], axis=1)  # fmt: skip  # [H, C, Y, X]
            out[:, ~np.isfinite(self.observed[-1])] = np.nan
            return out
        if postprocess == "cdf_match":
            valid = np.isfinite(self.observed[-1])  # [C, Y, X]
            forecast = np.stack([
                [match_distribution(f[c], self.observed[-1, c], valid[c]) for c in range(f.shape[0])]
                for f in forecast
            ])  # fmt: skip  # [H, C, Y, X]
        out = np.stack([
            from_lagrangian(forecast[:, c], self.velocity[c], moves=self._moves(c, len(forecast)))
            for c in range(forecast.shape[1])
        ], axis=1)  # fmt: skip  # [H, C, Y, X]
        out[:, ~np.isfinite(self.observed[-1])] = np.nan
        return out

    def _moves(self, channel: int, steps: int) -> list[np.ndarray]:
        """``displacements(velocity[channel], steps)``, computed once per context."""
        key = (channel, steps)
        if key not in self._displacements:
            self._displacements[key] = displacements(self.velocity[channel], steps)
        return self._displacements[key]

    def _matched_after(self, forecast: np.ndarray, channel: int, postprocess: str) -> np.ndarray:
        """One channel's forecast ``[H, Y, X]`` advected back and matched after the advection
        (the inflow band filled first for ``"cdf_match_after_inflow"``)."""
        last = self.observed[-1, channel]  # [Y, X]
        moves = self._moves(channel, forecast.shape[0])
        advected = from_lagrangian(forecast, self.velocity[channel], floor=0.0, moves=moves)
        if postprocess == "cdf_match_after_inflow":
            band = inflow_band(self.velocity[channel], np.isfinite(last), forecast.shape[0],
                               moves=moves)  # fmt: skip  # [H, Y, X]
            advected = fill_inflow(advected, last, band)
        return match_after_advection(advected, last)

    def attrs(self) -> dict:
        """Attrs a rollout result gets: the route, in words and settings."""
        return {
            "frame": LAGRANGIAN,
            "motion_method": self.settings["method"],
            "motion_frames": self.settings["n_frames"],
            "postprocess": self.postprocess,
            "route": (
                f"Lagrangian frame: pysteps {self.settings['method']} motion from the last "
                f"{self.settings['n_frames']} context frames; the ConvLSTM (gates in the frame "
                "of the last context frame) forecasts growth and decay; each lead advected by "
                f"the motion (semi-Lagrangian), rain below {RAIN_FLOOR:g} mm/h zeroed"
                + {
                    "cdf_match": "; each lead given the last frame's rain distribution (CDF "
                    "matching) before the advection",
                    "cdf_match_after": "; each advected lead given the last frame's rain "
                    "distribution over the whole domain (CDF matching after the advection: rain "
                    "that left through the edge is restored)",
                    "cdf_match_after_inflow": "; the inflow band (trajectories from outside the "
                    "domain) given the last observation there, then each advected lead given the "
                    "last frame's rain distribution (CDF matching after the advection)",
                }.get(self.postprocess, "")
            ),
        }


def finish_rollout(ds: xr.Dataset, moved: LagrangianContext) -> xr.Dataset:
    """A rollout of the Lagrangian context, made whole: the forecast moved to where the rain will
    be, the context shown as observed, the route in attrs. ``ds``: the
    :func:`model.tiling.domain_rollout` layout; changed in place and returned."""
    prediction = ds["prediction"].transpose("time", "channel", "y", "x")
    ds["prediction"] = prediction.copy(data=moved.to_observed(prediction.values))
    ds["context"] = ds["context"].copy(data=moved.observed)
    ds.attrs.update(moved.attrs())
    return ds


__all__ = [
    "DEFAULT_MOTION",
    "FRAME_KEY",
    "LAGRANGIAN",
    "LagrangianContext",
    "MOTION_KEY",
    "POSTPROCESS_KEY",
    "POSTPROCESS_OPTIONS",
    "RAIN_FLOOR",
    "advect",
    "check_postprocess",
    "displacements",
    "fill_inflow",
    "finish_rollout",
    "from_lagrangian",
    "inflow_band",
    "is_lagrangian",
    "match_after_advection",
    "match_distribution",
    "motion_field",
    "motion_settings",
    "targets_to_lagrangian",
    "to_lagrangian",
    "warp",
]

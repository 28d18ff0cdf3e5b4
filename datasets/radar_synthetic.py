"""Synthetic precipitation sequences made with pysteps' own tools (bundled, offline).

Recipe (one sample; everything vectorised over the frames of a sample)
----------------------------------------------------------------------
1. **Spatial structure** — a two-slope power-law Fourier filter in the format of
   :func:`pysteps.noise.fftgenerators.initialize_param_2d_fft_filter` (PSD slopes ``beta1`` at
   large scales, ``beta2`` at small scales, scale break 16-40 km; typical of radar rain fields) on a
   periodic ``(grid + 2 * pad)`` square domain. Correlated noise is white noise filtered by it,
   the recipe of :func:`pysteps.noise.fftgenerators.generate_noise_2d_fft_filter`; its spectrum is
   checked in the tests by fitting pysteps' parametric filter back to the fields.
2. **Evolution** — in the Lagrangian frame every Fourier mode follows an AR(1) process whose
   lag-one correlation decreases with the mode's wavenumber (a continuous version of the scale
   dependent AR(1) of the STEPS cascade): large structures live for hours, 4-km cells for minutes.
3. **Motion** — a smooth motion field (uniform drift 6-30 km/h in a random direction plus a weak,
   large-scale rotational part from a stream function) is integrated backwards with
   :func:`pysteps.extrapolation.semilagrangian.extrapolate` (``return_displacement=True``) to get
   the displacement of every pixel after each step; frame ``t`` samples the evolved field at the
   displaced coordinates (bilinear, periodic), exactly as pysteps' extrapolation warps a field.
4. **Rain rates** — the standardised Gaussian field is thresholded at its ``1 - wet_fraction``
   quantile in the visible window (rain cover 20-50 %, slowly growing or decaying over the
   sequence) and the wet part is mapped quantile-to-quantile onto a log-normal distribution
   (median 0.5-1.5 mm/h, log-sd 0.8-0.95): mostly 0.1-10 mm/h with tails to about 50 mm/h.

The hidden border of the noise domain (at least 32 km per side, more for long sequences) keeps the
periodic wrap out of view: motion is at most about 2.9 km per step, so nothing that leaves the
window comes back in during the sequence (see ``_padding``).

Every sample ``i`` of split ``s`` is drawn from ``numpy.random.default_rng([seed, s, i])``, so a
sample does not depend on how many samples are asked for, and splits never share a sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft
import xarray as xr
from scipy import special

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
TIME_STEP_MIN = 5.0  # minutes between frames
PIXEL_KM = 1.0  # grid spacing
MAX_STEP_PX = 2.5 * 1.15  # fastest motion: 30 km/h drift plus the 15 % rotational part
COARSE = 8  # the smooth motion field is integrated on a grid COARSE times coarser
MAX_VALUES = 400_000_000  # refuse requests larger than this many float32 values (1.6 GB)
NOMINAL_START = np.datetime64("2000-01-01T00:00:00", "ns")  # synthetic data has no real clock


def synthetic_precipitation(
    *,
    n_samples: int,
    split: str = "test",
    seed: int = 0,
    grid: int = 128,
    frames: int = 24,
) -> xr.DataArray:
    """Synthetic rain-rate sequences on a 1-km grid at 5-minute steps.

    Parameters
    ----------
    n_samples : int
        Number of sequences (>= 1).
    split : {"train", "val", "test"}
        Which independent stream of samples to draw from.
    seed : int
        Base seed; together with ``split`` and the sample index it fixes every sample.
    grid : int
        Height and width in pixels (1 km each); >= 16.
    frames : int
        Frames per sequence (5 minutes apart); >= 2.

    Returns
    -------
    xarray.DataArray
        float32 rain rate in mm/h, dims ``(sample, time, channel, y, x)``, shape
        ``(n_samples, frames, 1, grid, grid)``; ``time`` is a nominal datetime64 axis starting
        2000-01-01 (the data are synthetic); ``y``/``x`` pixel centres in km (``y`` decreasing, row
        0 at the top/north); attrs as required by :mod:`datasets.registry` plus the per-sample
        generator parameters as coordinates along ``sample``.
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_CODES)}")
    n_samples, grid, frames = int(n_samples), int(grid), int(frames)
    if n_samples < 1 or grid < 16 or frames < 2:
        raise ValueError(
            f"need n_samples >= 1, grid >= 16 and frames >= 2; got n_samples={n_samples}, "
            f"grid={grid}, frames={frames}"
        )
    if n_samples * frames * grid * grid > MAX_VALUES:
        raise ValueError(
            f"n_samples={n_samples} x frames={frames} x {grid}x{grid} is more than "
            f"{MAX_VALUES:,} values; ask for fewer samples per call"
        )
    out = np.empty((n_samples, frames, 1, grid, grid), dtype=np.float32)  # (S, T, C, H, W)
    params = []
    for i in range(n_samples):
        rng = np.random.default_rng([int(seed), SPLIT_CODES[split], i])
        rain, p = _one_sample(rng, grid=grid, frames=frames)
        out[i, :, 0] = rain  # (T, H, W)
        params.append(p)
    table = pd.DataFrame(params)
    times = NOMINAL_START + np.arange(frames) * np.timedelta64(int(TIME_STEP_MIN * 60), "s")
    centres = (np.arange(grid) + 0.5) * PIXEL_KM
    coords = {
        "sample": np.arange(n_samples),
        "time": times.astype("datetime64[ns]"),
        "channel": ["rain_rate"],
        "y": centres[::-1].copy(),
        "x": centres,
    }
    for name in table.columns:
        coords[name] = ("sample", table[name].to_numpy(dtype=np.float32))
    array = xr.DataArray(out, dims=("sample", "time", "channel", "y", "x"), coords=coords)
    array.name = "rain_rate"
    array.attrs = {
        "units": "mm/h",
        "time_step": "PT5M",
        "domain": "radar",
        "source": "synthetic: pysteps power-law noise, AR(1) evolution, semi-Lagrangian advection",
        "licence": "generated by convlstm-lab; no restrictions",
        "description": (
            "SYNTHETIC precipitation (not observed weather): power-law correlated noise "
            "thresholded to 20-50% rain cover, log-normal rain rates, evolving and advected by a "
            "smooth motion field. 1 km grid, 5 min steps; timestamps are nominal."
        ),
        "synthetic": 1,
        "resolution_km": PIXEL_KM,  # spacing of x/y, which are already in km
        "split": split,
        "seed": int(seed),
    }
    array.y.attrs["units"] = "km"
    array.x.attrs["units"] = "km"
    return array


# --- one sample ---------------------------------------------------------------------------------


def _one_sample(rng: np.random.Generator, *, grid: int, frames: int) -> tuple[np.ndarray, dict]:
    """Rain rates ``(frames, grid, grid)`` in mm/h and the parameters drawn for them."""
    pad, margin = _padding(frames)
    m = grid + 2 * pad  # periodic domain side
    p = {
        "beta1": rng.uniform(-2.2, -1.6),  # PSD slope at scales above the break
        "beta2": rng.uniform(-3.6, -3.0),  # PSD slope below the break
        "break_km": rng.uniform(16.0, 40.0),
        "lifetime_min": rng.uniform(400.0, 900.0),  # decorrelation time of 128-km structures
        "wet_fraction": rng.uniform(0.2, 0.5),
        "wet_growth": rng.uniform(-0.015, 0.015),  # per step, on the log of the wet fraction
        "median_mm_h": rng.uniform(0.5, 1.5),
        "log_sd": rng.uniform(0.8, 0.95),
        "speed_km_h": rng.uniform(6.0, 30.0),
        "direction_deg": rng.uniform(0.0, 360.0),  # where the rain moves to, 0 = +x (east)
    }
    field = _evolving_noise(rng, p, m=m, frames=frames)  # (T, m, m), standardised
    z = _advect(rng, p, field, grid=grid, pad=pad, margin=margin)  # (T, grid, grid)
    return _to_rain_rate(z, p), p


def _padding(frames: int) -> tuple[int, int]:
    """Hidden border of the noise domain and margin of the trajectory grid, in pixels.

    Whatever leaves the window travels at most ``MAX_STEP_PX * (frames - 1)`` pixels, so with a
    border of half that on each side nothing that left comes back in through the periodic wrap;
    the trajectory grid reaches further than any backward trajectory from the window.
    """
    travel = MAX_STEP_PX * (frames - 1)
    pad = max(32, int(np.ceil(travel / 2 / 8)) * 8)
    margin = int(np.ceil(travel / COARSE) + 1) * COARSE
    return pad, margin


def _power_law_filter(m: int, p: dict) -> np.ndarray:
    """Amplitude filter ``(m, m // 2 + 1)`` of pysteps' two-slope parametric form (rfft layout)."""
    ky = np.fft.fftfreq(m) * m
    kx = np.fft.rfftfreq(m) * m
    k = np.hypot(ky[:, None], kx[None, :])  # wavenumber, cycles per domain
    k[0, 0] = 1.0
    k_break = m * PIXEL_KM / p["break_km"]
    log_k, log_b = np.log(k), np.log(k_break)
    # piecewise_linear(log k) of initialize_param_2d_fft_filter with the slopes halved (amplitude)
    log_amp = np.where(
        log_k < log_b, p["beta1"] / 2 * (log_k - log_b), p["beta2"] / 2 * (log_k - log_b)
    )
    amp = np.exp(log_amp)
    amp[0, 0] = 0.0  # no mean
    return amp


def _evolving_noise(rng: np.random.Generator, p: dict, *, m: int, frames: int) -> np.ndarray:
    """Standardised Lagrangian noise fields ``(frames, m, m)`` with scale-dependent AR(1)."""
    amp = _power_law_filter(m, p).astype(np.float32)  # (m, m//2+1)
    ky = np.fft.fftfreq(m) * m
    kx = np.fft.rfftfreq(m) * m
    scale_km = m * PIXEL_KM / np.maximum(np.hypot(ky[:, None], kx[None, :]), 1.0)
    # lifetime proportional to scale, roughly as STEPS cascade autocorrelations of radar data
    # (lag-1 at 5 min about 0.7-0.85 at 4 km, 0.95 at 16 km, 0.99 at 64 km)
    lifetime = p["lifetime_min"] * (scale_km / 128.0)
    phi = np.exp(-TIME_STEP_MIN / lifetime).astype(np.float32)  # lag-1 correlation per mode
    innov = np.sqrt(1.0 - phi**2).astype(np.float32)
    shape = (frames, m, m // 2 + 1)
    white = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
        shape, dtype=np.float32
    )  # (T, m, m//2+1) complex white noise in the spectral domain
    spec = np.empty(shape, dtype=np.complex64)
    spec[0] = white[0]
    for t in range(1, frames):
        spec[t] = phi * spec[t - 1] + innov * white[t]
    fields = scipy.fft.irfft2(spec * amp, s=(m, m), workers=-1)  # (T, m, m) float32
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return fields


def _motion_field(rng: np.random.Generator, p: dict, *, rows: np.ndarray, cols: np.ndarray):
    """Smooth velocity ``(2, *rows.shape)`` in pixels per step at pixel positions ``rows, cols``.

    Uniform drift plus a weak cellular rotation (from a stream function) of wavelength 1.5-3
    domains, peaking at 15 % of the drift. Returns x then y components, as pysteps expects.
    """
    speed = p["speed_km_h"] * TIME_STEP_MIN / 60.0 / PIXEL_KM  # pixels per step
    angle = np.deg2rad(p["direction_deg"])
    k = 2 * np.pi / (rng.uniform(1.5, 3.0) * (rows.shape[0] * COARSE))
    phase = rng.uniform(0, 2 * np.pi, size=2)
    amp = 0.15 * speed / k
    # u = d(psi)/dy, v = -d(psi)/dx for psi = amp * sin(k x + a) * sin(k y + b)
    u = amp * k * np.sin(k * cols + phase[0]) * np.cos(k * rows + phase[1])
    v = -amp * k * np.cos(k * cols + phase[0]) * np.sin(k * rows + phase[1])
    # image rows grow southwards: moving north (sin > 0) means a decreasing row index
    return np.stack([speed * np.cos(angle) + u, -speed * np.sin(angle) + v])


def _advect(
    rng: np.random.Generator, p: dict, fields: np.ndarray, *, grid: int, pad: int, margin: int
) -> np.ndarray:
    """Frame ``t`` of ``fields`` (T, m, m) sampled along ``t`` steps of backward trajectories.

    The trajectories come from :func:`pysteps.extrapolation.semilagrangian.extrapolate` on a grid
    ``COARSE`` times coarser than the pixels (the motion field is smooth) that covers the visible
    window plus ``margin`` pixels: extrapolating the coordinate fields themselves (as one complex
    field ``x + i y``) gives the displacement after every step in one call (bilinear interpolation
    reproduces a linear field exactly). They are upsampled bilinearly to the visible pixels, and
    the periodic field is warped bilinearly, as pysteps warps a field along its displacement.
    """
    from pysteps.extrapolation.semilagrangian import extrapolate

    frames = fields.shape[0]
    size = -(-grid // COARSE) * COARSE  # grid rounded up to a multiple of COARSE
    n_c = (size + 2 * margin) // COARSE + 1  # coarse nodes per side
    node = pad - margin + COARSE * np.arange(n_c, dtype=np.float64)  # fine position of nodes
    rows, cols = np.meshgrid(node, node, indexing="ij")  # (n_c, n_c)
    velocity = _motion_field(rng, p, rows=rows, cols=cols) / COARSE  # (2, n_c, n_c) coarse px
    cy, cx = np.meshgrid(
        np.arange(n_c, dtype=np.float64), np.arange(n_c, dtype=np.float64), indexing="ij"
    )  # (n_c, n_c) coarse coordinates
    start = cx + 1j * cy  # (n_c, n_c) both coordinates in one complex field
    warped = extrapolate(start, velocity, frames - 1, outval=np.nan, allow_nonfinite_values=True)
    shift = warped - start  # (T-1, n_c, n_c) backward displacement, coarse px: x + i y
    lo, hi = margin // COARSE, margin // COARSE + size // COARSE + 1  # nodes around the window
    if not np.isfinite(shift[:, lo:hi, lo:hi]).all():
        raise RuntimeError("synthetic motion left the trajectory grid; widen the margin")
    disp = np.stack([shift.real, shift.imag], axis=1)[..., lo:hi, lo:hi]  # (T-1, 2, n, n)
    d = _upsample(_upsample(disp.astype(np.float32), axis=-2), axis=-1)  # (T-1, 2, size, size)
    d = d[..., :grid, :grid] * COARSE  # fine pixels
    visible = pad + np.arange(grid, dtype=np.float32)
    out = np.empty((frames, grid, grid), dtype=np.float32)
    out[0] = fields[0, pad : pad + grid, pad : pad + grid]
    out[1:] = _bilinear_wrap(fields[1:], visible[:, None] + d[:, 1], visible[None, :] + d[:, 0])
    return out


def _upsample(nodes: np.ndarray, *, axis: int) -> np.ndarray:
    """Linear interpolation from ``n`` nodes ``COARSE`` pixels apart to ``(n - 1) * COARSE`` pixels.

    Pixel ``COARSE * a + k`` lies at fraction ``k / COARSE`` between nodes ``a`` and ``a + 1``.
    """
    nodes = np.moveaxis(nodes, axis, -1)  # (..., n)
    frac = np.arange(COARSE, dtype=np.float32) / COARSE  # (COARSE,)
    left, right = nodes[..., :-1, None], nodes[..., 1:, None]  # (..., n-1, 1)
    fine = left * (1 - frac) + right * frac  # (..., n-1, COARSE)
    return np.moveaxis(fine.reshape(*fine.shape[:-2], -1), -1, axis)


def _bilinear_wrap(fields: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Periodic bilinear interpolation of ``fields`` (T, m, m) at ``rows, cols`` (T, H, W)."""
    t, m = fields.shape[0], fields.shape[1]
    padded = np.pad(fields, ((0, 0), (0, 1), (0, 1)), mode="wrap")  # (T, m+1, m+1): no wrap at +1
    r = np.floor(rows)
    c = np.floor(cols)
    fr, fc = rows - r, cols - c  # (T, H, W) fractional parts
    w = m + 1
    index = (
        (np.arange(t, dtype=np.intp) * w * w)[:, None, None]
        + (r.astype(np.intp) % m) * w
        + c.astype(np.intp) % m
    )  # (T, H, W) flat index of the upper-left neighbour
    flat = padded.reshape(-1)
    top = flat[index] + fc * (flat[index + 1] - flat[index])
    bottom = flat[index + w] + fc * (flat[index + w + 1] - flat[index + w])
    return top + fr * (bottom - top)


def _to_rain_rate(z: np.ndarray, p: dict) -> np.ndarray:
    """Map Gaussian fields ``(T, H, W)`` to rain rates in mm/h (0 where dry).

    The threshold of frame ``t`` is the ``1 - wet_t`` quantile of the visible field, so the rain
    cover of every frame is exactly ``wet_t``; wet pixels keep their rank order and are mapped onto
    a log-normal distribution of rain rates.
    """
    frames = z.shape[0]
    steps = np.arange(frames) - (frames - 1) / 2
    wet = np.clip(p["wet_fraction"] * np.exp(p["wet_growth"] * steps), 0.1, 0.6)  # (T,)
    flat = z.reshape(frames, -1)  # (T, H*W)
    q = np.array([np.quantile(flat[t], 1.0 - wet[t]) for t in range(frames)])  # (T,)
    cdf_q = special.ndtr(q)[:, None, None]  # (T, 1, 1)
    rain = np.zeros(z.shape, dtype=np.float32)  # (T, H, W)
    mask = z > q[:, None, None]
    # position of each wet pixel inside the wet tail of a normal law, then the log-normal quantile
    u = (special.ndtr(z) - cdf_q) / (1.0 - cdf_q)  # (T, H, W), in (0, 1] where wet
    u = np.clip(u[mask], 1e-6, 1 - 1e-9)
    rain[mask] = p["median_mm_h"] * np.exp(p["log_sd"] * special.ndtri(u))
    return rain

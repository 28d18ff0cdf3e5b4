"""Gate lab: what the units of a ConvLSTM do, read from a rollout with captured gates.

Plain functions over :func:`model.rollout.rollout` results (``gates (layer, gate, step, hidden,
gy, gx)``, float16) and over networks; no Streamlit. Interventions (editing gates while a rollout
runs) live in :mod:`model.interventions`.

=============================  =====================================================================
:func:`unit_statistics`        per hidden channel of one layer and step: activity, variance,
                               saturation; sorted (the unit browser's table)
:func:`encode_unit_maps`       every channel's map of one gate as 8-bit codes plus scales
                               (the unit browser's payload, :class:`UnitMaps`)
:func:`saturation`             left/right saturation of the sigmoid gates per unit over a rollout
                               (Karpathy et al. 2015)
:func:`integrated_gradients`   attribution of a forecast region to the context frames (Captum)
:func:`memory_map`             how much of the cell state at the end of the context survives to
                               each lead time (cumulative product of forget gates)
:func:`side_by_side`           two checkpoints on one window: forecasts, one layer's gates, and
                               their differences (:func:`compare_rollouts` for two finished runs)
:func:`cell_equations`         the cell equations of a config as LaTeX or plain text
=============================  =====================================================================

Steps follow the rollout's convention: ``step`` counts the inputs the network read, the context
frames first (``0 .. n_ctx - 1``), then the forecasts fed back; lead time ``k`` (1-based) is read
out after step ``n_ctx + k - 2``. Gate values are dimensionless (sigmoid gates in [0, 1],
candidate and hidden state in [-1, 1], the cell state unbounded).
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from model.convlstm import GATES, ConvLSTM, ConvLSTMConfig
from model.interventions import TARGET_RANGES
from model.normalize import Normalizer
from model.rollout import _as_frames, rollout

SIGMOID_GATES: tuple[str, ...] = ("input", "forget", "output")
"""The gates saturation is measured on (values in [0, 1])."""

SATURATION_LOW = 0.1
SATURATION_HIGH = 0.9
"""Karpathy, Johnson & Fei-Fei (2015), "Visualizing and understanding recurrent networks": a gate
value below 0.1 is left-saturated, above 0.9 right-saturated."""

UNIT_COLUMNS: tuple[str, ...] = (
    "activity",
    "variance",
    "saturation",
    "left_saturated",
    "right_saturated",
)
"""Columns of :func:`unit_statistics` (each a valid ``sort_by``)."""

N_CODES = 256
NO_DATA = 0
"""8-bit code layout of :class:`UnitMaps`, the one of ``dashboard.scales.Scale`` without a floor
colour: code 0 is no data (NaN), codes 1..255 cover ``[vmin, vmax]`` linearly."""


# --------------------------------------------------------------------------------------------
# reading captured gates


def _layer_gates(ds: xr.Dataset, layer: int, needed: Sequence[str]) -> xr.DataArray:
    """``gates`` of one layer ``(gate, step, hidden, gy, gx)``, its NaN padding dropped.

    Raises ``ValueError`` saying what to capture when the layer or a gate was not recorded.
    """
    if "gates" not in ds:
        raise ValueError("this rollout has no gates; run rollout(..., capture=True)")
    layers = [int(v) for v in ds["layer"].values]
    if layer not in layers:
        raise ValueError(
            f"layer {layer} was not captured (captured: {layers}); run rollout with "
            f"capture={{'layers': [{layer}]}} or capture=True"
        )
    captured = [str(g) for g in ds["gate"].values]
    missing = [g for g in needed if g not in captured]
    if missing:
        raise ValueError(
            f"gates {missing} were not captured (captured: {captured}); run rollout with "
            f"capture={{'gates': {list(needed)}}} or capture=True"
        )
    g = ds["gates"].sel(layer=layer)  # (gate, step, hidden, gy, gx)
    first = g.isel(gate=0, step=0, gy=0, gx=0).values  # (hidden,), NaN past the layer's width
    width = int(np.isfinite(first.astype(np.float32)).sum())
    return g.isel(hidden=slice(0, width))


def _context_length(ds: xr.Dataset) -> int:
    if "context_length" in ds.attrs:
        return int(ds.attrs["context_length"])
    return int((ds["phase"].values == "context").sum())


def _check_step(ds: xr.Dataset, step: int) -> int:
    n = ds.sizes["step"]
    if not isinstance(step, int | np.integer) or not 0 <= step < n:
        raise ValueError(
            f"step {step!r} is out of range: this rollout captured steps 0..{n - 1} "
            f"({_context_length(ds)} context frames, then forecast feedbacks)"
        )
    return int(step)


# --------------------------------------------------------------------------------------------
# unit browser


def unit_statistics(
    ds: xr.Dataset,
    *,
    layer: int,
    step: int,
    sort_by: str = "activity",
    ascending: bool = False,
    low: float = SATURATION_LOW,
    high: float = SATURATION_HIGH,
) -> pd.DataFrame:
    """Per hidden channel of one layer at one step: activity, variance, saturation.

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``hidden``, ``input``, ``forget`` and ``output`` captured for ``layer``.
    layer : int
        Layer (a value of the ``layer`` coordinate).
    step : int
        Captured step (see the module docstring).
    sort_by : str
        One of :data:`UNIT_COLUMNS`, or ``"channel"``.
    ascending : bool
        Sort order (default: largest first).
    low, high : float
        Saturation thresholds (default 0.1 and 0.9).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``channel`` (hidden channel), one row each, sorted; columns

        - ``activity``: mean ``|H_t|`` over the latent pixels (dimensionless, [0, 1]);
        - ``variance``: variance of ``H_t`` over the latent pixels;
        - ``saturation``: fraction of the ``i``, ``f``, ``o`` values of this step and channel
          (pixels x 3 gates) below ``low`` or above ``high``;
        - ``left_saturated``, ``right_saturated``: the two parts of it;
        - ``rank``: 1 for the first row.
    """
    if sort_by not in (*UNIT_COLUMNS, "channel"):
        raise ValueError(f"sort_by={sort_by!r}; use one of {[*UNIT_COLUMNS, 'channel']}")
    step = _check_step(ds, step)
    g = _layer_gates(ds, layer, ("hidden", *SIGMOID_GATES)).isel(step=step)
    h = g.sel(gate="hidden").values.astype(np.float64)  # [hid, gy, gx]
    sig = g.sel(gate=list(SIGMOID_GATES)).values.astype(np.float32)  # [3, hid, gy, gx]
    left = (sig < low).mean(axis=(0, 2, 3))  # [hid]
    right = (sig > high).mean(axis=(0, 2, 3))
    table = pd.DataFrame(
        {
            "activity": np.abs(h).mean(axis=(1, 2)),
            "variance": h.var(axis=(1, 2)),
            "saturation": left + right,
            "left_saturated": left,
            "right_saturated": right,
        },
        index=pd.Index(np.arange(h.shape[0]), name="channel"),
    )
    if sort_by == "channel":
        table = table.sort_index(ascending=ascending)
    else:
        table = table.sort_values(sort_by, ascending=ascending, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    table.attrs.update(layer=layer, step=step, low=low, high=high)
    return table


@dataclass(frozen=True, eq=False)  # arrays: compare the fields yourself
class UnitMaps:
    """Every hidden channel's map of one gate at one step, as 8-bit codes (the unit browser).

    Attributes
    ----------
    codes : numpy.ndarray
        ``[hidden, gy, gx]`` uint8: 0 no data, 1..255 linear over ``[vmin[c], vmax[c]]``, the code
        layout of ``dashboard.scales.Scale`` (so ``Scale(vmin[c], vmax[c], ...)`` decodes and
        labels channel ``c``).
    vmin, vmax : numpy.ndarray
        ``[hidden]`` float32, dimensionless; all equal with ``scale="global"``.
    gate : str
    layer, step : int
    scale : {"channel", "global"}
    """

    codes: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    gate: str
    layer: int
    step: int
    scale: str

    @property
    def nbytes(self) -> int:
        """Bytes of the codes and scales."""
        return int(self.codes.nbytes + self.vmin.nbytes + self.vmax.nbytes)

    def decode(self) -> np.ndarray:
        """Codes -> values ``[hidden, gy, gx]`` float32 (NaN for no data); error at most half a
        code step, ``(vmax - vmin) / 508``."""
        span = N_CODES - 2
        lo, hi = self.vmin[:, None, None], self.vmax[:, None, None]
        values = lo + (self.codes.astype(np.float32) - 1) / span * (hi - lo)
        return np.where(self.codes == NO_DATA, np.nan, values).astype(np.float32)

    def to_payload(self) -> dict:
        """JSON-ready dict: base64 codes (row-major ``[hidden, gy, gx]``), shape, scales."""
        return {
            "gate": self.gate,
            "layer": self.layer,
            "step": self.step,
            "scale": self.scale,
            "shape": list(self.codes.shape),
            "codes": base64.b64encode(np.ascontiguousarray(self.codes).tobytes()).decode("ascii"),
            "vmin": [float(v) for v in self.vmin],
            "vmax": [float(v) for v in self.vmax],
        }


def encode_unit_maps(
    ds: xr.Dataset, *, layer: int, step: int, gate: str, scale: str = "channel"
) -> UnitMaps:
    """All hidden channels' maps of one gate at one step, encoded to 8 bits.

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``gate`` captured for ``layer``.
    layer, step : int
        Layer and captured step.
    gate : str
        A name of :data:`GATES`.
    scale : {"channel", "global"}
        ``"channel"``: each channel spans its own ``[min, max]`` (faint units stay visible).
        ``"global"``: one range for all, the gates view's (``dashboard.scales.gate_scale``):
        ``[0, 1]`` for the sigmoid gates, ``[-1, 1]`` for candidate and hidden, ``±max |C|`` for
        the cell; sigmoid and tanh gates then get the very codes of the gates view.

    Returns
    -------
    UnitMaps
        ``codes [hidden, gy, gx]`` uint8 and per-channel ``vmin``, ``vmax``. A 64-channel layer
        on a 64x64 latent grid is 262 kB of codes (350 kB as the base64 payload).
    """
    if gate not in GATES:
        raise ValueError(f"gate {gate!r} is unknown; use one of {GATES}")
    if scale not in ("channel", "global"):
        raise ValueError(f"scale={scale!r}; use 'channel' or 'global'")
    step = _check_step(ds, step)
    values = _layer_gates(ds, layer, (gate,)).sel(gate=gate).isel(step=step).values
    values = values.astype(np.float32)  # [hid, gy, gx]
    if scale == "global":
        lo, hi = _global_range(gate, values)
        vmin, vmax = np.full(len(values), lo), np.full(len(values), hi)
    else:
        vmin, vmax = values.min(axis=(1, 2)), values.max(axis=(1, 2))  # [hid]
        flat = ~(vmax > vmin)  # a constant channel: a range of width 1e-3 around its value
        vmin = np.where(flat, vmin - 5e-4, vmin)
        vmax = np.where(flat, vmin + 1e-3, vmax)
    vmin, vmax = vmin.astype(np.float32), vmax.astype(np.float32)
    codes = _encode_linear(values, vmin[:, None, None], vmax[:, None, None])
    return UnitMaps(codes, vmin, vmax, gate, int(layer), step, scale)


def _global_range(gate: str, values: np.ndarray) -> tuple[float, float]:
    lo, hi = TARGET_RANGES[gate]
    if np.isfinite(lo):
        return lo, hi
    top = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    return -(top or 1.0), top or 1.0


def _encode_linear(values: np.ndarray, vmin, vmax) -> np.ndarray:
    """Values -> uint8 codes (0 NaN, 1..255 linear over [vmin, vmax], clipped): the arithmetic
    of ``dashboard.scales.Scale.encode`` for a linear scale without a floor colour."""
    values = values.astype(np.float64)
    frac = np.clip((values - vmin) / (vmax - vmin), 0.0, 1.0)
    codes = 1 + np.rint(np.nan_to_num(frac) * (N_CODES - 2))
    return np.where(np.isfinite(values), codes, NO_DATA).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# saturation


def saturation(
    ds: xr.Dataset,
    *,
    low: float = SATURATION_LOW,
    high: float = SATURATION_HIGH,
    phase: str = "all",
) -> xr.Dataset:
    """Left/right saturation of each unit's sigmoid gates (Karpathy, Johnson & Fei-Fei 2015).

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``input``, ``forget`` and ``output`` captured (any captured layers).
    low, high : float
        A value ``< low`` is left-saturated, ``> high`` right-saturated (the paper's 0.1, 0.9).
        Compared in float32 to the captured (float16) values.
    phase : {"all", "context", "forecast"}
        Steps counted.

    Returns
    -------
    xarray.Dataset
        ``left (layer, gate, hidden)`` and ``right (layer, gate, hidden)``: fractions of the
        unit's values over steps x latent pixels, ``units="fraction"``; NaN for padding
        channels past a narrower layer's width. ``ds.to_dataframe()`` gives one row per
        (layer, gate, unit); :func:`saturation_table` one row per unit.
    """
    if phase not in ("all", "context", "forecast"):
        raise ValueError(f"phase={phase!r}; use 'all', 'context' or 'forecast'")
    if "gates" not in ds:
        raise ValueError("this rollout has no gates; run rollout(..., capture=True)")
    layers = [int(v) for v in ds["layer"].values]
    left, right = [], []
    for layer in layers:
        g = _layer_gates(ds, layer, SIGMOID_GATES).sel(gate=list(SIGMOID_GATES))
        if phase != "all":
            g = g.isel(step=np.flatnonzero(ds["phase"].values == phase))
        values = g.values.astype(np.float32)  # [3, step, hid, gy, gx]
        if values.shape[1] == 0:
            raise ValueError(f"this rollout has no {phase} steps")
        pad = ((0, 0), (0, ds.sizes["hidden"] - values.shape[2]))
        for side, hit in ((left, values < low), (right, values > high)):
            side.append(np.pad(hit.mean(axis=(1, 3, 4)), pad, constant_values=np.nan))
    dims = ("layer", "gate", "hidden")
    coords = {"layer": layers, "gate": list(SIGMOID_GATES), "hidden": ds["hidden"].values}
    attrs = {"units": "fraction", "low": low, "high": high, "phase": phase}
    return xr.Dataset(
        {"left": (dims, np.stack(left)), "right": (dims, np.stack(right))},
        coords=coords,
        attrs=attrs,
    )


def saturation_table(sat: xr.Dataset) -> pd.DataFrame:
    """:func:`saturation` as one row per unit ``(layer, hidden)``, columns ``<gate>_left`` and
    ``<gate>_right`` (padding channels dropped)."""
    columns = {}
    for gate in sat["gate"].values:
        for side in ("left", "right"):
            columns[f"{gate}_{side}"] = sat[side].sel(gate=gate).to_series()
    return pd.DataFrame(columns).dropna(how="all")


# --------------------------------------------------------------------------------------------
# memory map


def memory_map(ds: xr.Dataset, *, reduce: str | None = "mean") -> xr.DataArray:
    """How much of each layer's cell state at the end of the context survives to each lead time.

    The cell update ``C_t = f_t ∘ C_{t-1} + i_t ∘ g_t`` carries ``C`` of the last context step
    ``s0 = n_ctx - 1`` into the state lead ``k`` is read from (step ``s0 + k - 1``) multiplied by
    ``prod_{s = s0 + 1}^{s0 + k - 1} f_s``: 1 at lead 1 (nothing forgotten yet), then the
    cumulative product of the forecast steps' forget gates. It is the direct path through the
    cell only (what re-enters through ``H`` and the input gate is not counted).

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``forget`` captured (any captured layers).
    reduce : {"mean", None}
        ``"mean"``: averaged over the hidden channels (one map per layer and lead, what the page
        shows); None: per channel.

    Returns
    -------
    xarray.DataArray
        ``memory (layer, lead, gy, gx)`` (``reduce="mean"``) or ``(layer, lead, hidden, gy,
        gx)`` (None; NaN in padding channels), float32 in [0, 1], ``units="fraction"``, on the
        latent grid; coordinates ``lead`` (1..horizon) and ``lead_time`` when the rollout has it.
    """
    if reduce not in ("mean", None):
        raise ValueError(f"reduce={reduce!r}; use 'mean' or None")
    if "gates" not in ds:
        raise ValueError("this rollout has no gates; run rollout(..., capture=True)")
    _layer_gates(ds, int(ds["layer"].values[0]), ("forget",))  # clear error if not captured
    s0 = _context_length(ds) - 1
    forget = ds["gates"].sel(gate="forget").astype(np.float64)  # (layer, step, hidden, gy, gx)
    f = forget.isel(step=slice(s0, None)).rename(step="lead")  # last context step, forecasts
    f[dict(lead=0)] = xr.where(np.isfinite(f.isel(lead=0)), 1.0, np.nan)  # lead 1: all kept
    survive = f.cumprod("lead", skipna=False)  # (layer, lead, hidden, gy, gx); padding NaN
    if reduce == "mean":
        survive = survive.mean("hidden", skipna=True)
    horizon = survive.sizes["lead"]
    survive = survive.assign_coords(lead=np.arange(1, horizon + 1))
    if "lead_time" in ds.coords and ds.sizes.get("time") == horizon:
        survive = survive.assign_coords(lead_time=("lead", ds["lead_time"].values))
    survive.attrs.update(units="fraction", description="cell state surviving from the context")
    return survive.astype(np.float32).rename("memory")


# --------------------------------------------------------------------------------------------
# attribution


@contextlib.contextmanager
def _inputs_only_grads(model: ConvLSTM):
    """Eval mode with parameters frozen (gradients flow to the inputs only); restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


def integrated_gradients(
    model: ConvLSTM,
    context,
    *,
    lead: int,
    region: tuple[int, int, int, int],
    normalizer: Normalizer | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 4,
    method: str = "gausslegendre",
) -> xr.Dataset:
    """Integrated gradients of a forecast region's mean with respect to each context frame.

    The output explained is the mean, over ``region`` and the output channels, of the forecast
    at ``lead`` in model space (the network's output before un-normalising; un-normalising the
    rain rate has a threshold the gradients would not see). The baseline is an all-zero
    model-space context (no rain, no traffic, black video). Computed with Captum's
    ``IntegratedGradients`` in float32 (Sundararajan, Taly & Yan 2017).

    Parameters
    ----------
    model : ConvLSTM
        The network (its device is used; its mode and parameters are left as they were).
    context : xarray.DataArray or array-like
        Observed frames ``(time, channel, y, x)`` in physical units (model space without
        ``normalizer``).
    lead : int
        Lead time explained, 1 for the first forecast frame.
    region : (y0, y1, x0, x1)
        Output rectangle in frame pixels, rows ``y0 <= y < y1`` and columns ``x0 <= x < x1``.
    normalizer : Normalizer, optional
        Physical units <-> model space (from the checkpoint); identity when omitted.
    n_steps : int
        Points on the path from the baseline to the input (Gauss-Legendre by default). With 32
        the completeness gap of the shipped checkpoints measured at most 0.06% (16: 0.6%); the
        time grows in proportion.
    internal_batch_size : int
        Path points per forward/backward pass; bounds memory: each point holds one rollout's
        autograd graph, measured 70 MB for radar_mch at lead 12 and 35 MB for
        video_moving_mnist at lead 10 (peak growth 355 and 206 MB with the default 4). Larger
        batches were no faster on the CPU.
    method : str
        Captum's integration rule (``"gausslegendre"``, ``"riemann_trapezoid"``, ...).

    Returns
    -------
    xarray.Dataset
        - ``attribution (context_time, y, x)`` float32: per context frame and pixel, summed over
          input channels; in the output's model-space units. Its total is ``f(x) - f(0)`` up to
          the completeness gap.
        - ``contribution (context_time)``: the signed sum per frame;
        - ``share (context_time)``: each frame's share of the total ``|attribution|`` (sums to 1);
        - attrs ``lead``, ``region``, ``f_input``, ``f_baseline``, ``completeness_gap``
          (``sum(attribution) - (f(x) - f(0))``), ``completeness_relative`` (its size over
          ``|f(x) - f(0)|``), ``n_steps``, ``method``, ``seconds``.

    Notes
    -----
    Time, measured with the defaults on one thread of a shared 2-core CPU (load about 8, so
    ranges): radar_mch (6 context frames of 128x128) 2-3 s at lead 1, 8-10 s at lead 12;
    video_moving_mnist (10 frames of 64x64) 7-10 s at lead 1, 12-21 s at lead 10. The
    convolutions and their gradients take over 90% of it (float32; under bfloat16 they would
    halve, at the price of the completeness check).
    """
    from captum.attr import IntegratedGradients

    normalizer = normalizer or Normalizer()
    frames = _as_frames(context, "context")  # [T, C, H, W] physical
    y0, y1, x0, x1 = _checked_rectangle(region, model.config.frame_size)
    if isinstance(lead, bool) or not isinstance(lead, int | np.integer) or lead < 1:
        raise ValueError(f"lead={lead!r} must be a positive integer (1: first forecast frame)")
    if n_steps < 2 or internal_batch_size < 1:
        raise ValueError(f"n_steps={n_steps} must be >= 2 and internal_batch_size >= 1")
    device = next(model.parameters()).device
    x = torch.as_tensor(normalizer.to_model(frames), dtype=torch.float32, device=device)[None]
    model.check_frames(x)  # [1, T, C, H, W] model space

    def target(inputs: torch.Tensor) -> torch.Tensor:
        forecast, _ = model(inputs, horizon=int(lead))  # [N, lead, C, H, W]
        return forecast[:, lead - 1, :, y0:y1, x0:x1].mean(dim=(1, 2, 3))  # [N]

    began = time.perf_counter()
    baseline = torch.zeros_like(x)
    with _inputs_only_grads(model):
        attr = IntegratedGradients(target).attribute(
            x,
            baselines=baseline,
            n_steps=n_steps,
            method=method,
            internal_batch_size=internal_batch_size,
        )  # [1, T, C, H, W]
        with torch.no_grad():
            f_x, f_b = (float(target(v)[0]) for v in (x, baseline))
    seconds = time.perf_counter() - began
    heat = attr[0].sum(dim=1).detach().double().cpu().numpy()  # [T, H, W]
    return _attribution_dataset(context, heat, f_x, f_b, seconds, (y0, y1, x0, x1), lead,
                                n_steps, method)  # fmt: skip


def _attribution_dataset(context, heat, f_x, f_b, seconds, region, lead, n_steps, method):
    contribution = heat.sum(axis=(1, 2))  # [T]
    magnitude = np.abs(heat).sum(axis=(1, 2))
    total = magnitude.sum()
    gap = float(contribution.sum() - (f_x - f_b))
    coords = {}
    if isinstance(context, xr.DataArray) and "time" in context.coords:
        coords["context_time"] = context.coords["time"].values
    return xr.Dataset(
        {
            "attribution": (("context_time", "y", "x"), heat.astype(np.float32)),
            "contribution": ("context_time", contribution),
            "share": ("context_time", magnitude / total if total > 0 else magnitude),
        },
        coords=coords,
        attrs={
            "lead": int(lead),
            "region": list(region),
            "f_input": f_x,
            "f_baseline": f_b,
            "completeness_gap": gap,
            "completeness_relative": abs(gap) / max(abs(f_x - f_b), 1e-12),
            "n_steps": int(n_steps),
            "method": method,
            "seconds": seconds,
            "units": "model-space output per frame pixel",
        },
    )


def _checked_rectangle(region, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    big_h, big_w = frame_size
    try:
        y0, y1, x0, x1 = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region {region!r} must be (y0, y1, x0, x1) in frame pixels") from None
    if not (0 <= y0 < y1 <= big_h and 0 <= x0 < x1 <= big_w):
        raise ValueError(
            f"region {tuple(region)} is outside the {big_h}x{big_w} frame or empty: it needs "
            f"0 <= y0 < y1 <= {big_h} and 0 <= x0 < x1 <= {big_w} (y1 and x1 excluded)"
        )
    return y0, y1, x0, x1


# --------------------------------------------------------------------------------------------
# side by side


def side_by_side(
    first: ConvLSTM,
    second: ConvLSTM,
    context,
    horizon: int,
    *,
    layer: int | None = None,
    gates: Sequence[str] = GATES,
    normalizers: tuple[Normalizer | None, Normalizer | None] = (None, None),
    names: tuple[str, str] = ("first", "second"),
    precision: str = "auto",
) -> xr.Dataset:
    """Two networks' rollouts on one window: forecasts, one layer's gates, and differences.

    Parameters
    ----------
    first, second : ConvLSTM
        The networks (e.g. two checkpoints of one dataset); both must read ``context``.
    context : xarray.DataArray or array-like
        Observed frames ``(time, channel, y, x)`` in physical units.
    horizon : int
        Frames to forecast.
    layer : int, optional
        Layer whose gates are compared; it must have the same hidden channels and latent grid in
        both. None: forecasts only.
    gates : sequence of str
        Gates compared (names of :data:`GATES`).
    normalizers : (Normalizer or None, Normalizer or None)
        Each network's normaliser (from its checkpoint).
    names : (str, str)
        Labels of the ``checkpoint`` coordinate.
    precision : {"auto", "fp32", "bf16"}
        As in :func:`model.rollout.rollout`; the same for both.

    Returns
    -------
    xarray.Dataset
        ``prediction (checkpoint, time, channel, y, x)`` physical units,
        ``prediction_difference (time, channel, y, x)`` second minus first; with ``layer``:
        ``gates (checkpoint, gate, step, hidden, gy, gx)`` float16 as captured and
        ``gate_difference (gate, step, hidden, gy, gx)`` float32, second minus first. The same
        network twice gives differences of exactly zero.
    """
    spec = _comparable(first, second, layer, names)
    capture = {"layers": [layer], "gates": list(gates)} if spec else False
    runs = [
        rollout(net, context, horizon, capture=capture, normalizer=norm, precision=precision)
        for net, norm in zip((first, second), normalizers, strict=True)
    ]
    return compare_rollouts(*runs, layer=layer if spec else None, gates=gates, names=names)


def compare_rollouts(
    first: xr.Dataset,
    second: xr.Dataset,
    *,
    layer: int | None = None,
    gates: Sequence[str] = GATES,
    names: tuple[str, str] = ("first", "second"),
) -> xr.Dataset:
    """Two rollouts of one window (e.g. two checkpoints' cached runs) as :func:`side_by_side`.

    Parameters
    ----------
    first, second : xarray.Dataset
        :func:`model.rollout.rollout` results on the same context and horizon; with ``layer``,
        both with that layer's ``gates`` captured.
    layer : int, optional
        Layer whose gates are compared (None: forecasts only).
    gates : sequence of str
        Gates compared.
    names : (str, str)
        Labels of the ``checkpoint`` coordinate.

    Returns
    -------
    xarray.Dataset
        As :func:`side_by_side`. Gates are compared without the NaN padding of a narrower layer.

    Raises
    ------
    ValueError
        The forecasts or the layer's gates differ in shape, naming both.
    """
    a, b = first["prediction"], second["prediction"]
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]!r} forecast {dict(a.sizes)} but {names[1]!r} {dict(b.sizes)}; compare "
            "rollouts of one window"
        )
    data = {
        "prediction": xr.concat([a, b], dim="checkpoint"),
        "prediction_difference": b - a,
    }
    if layer is not None:
        g = [_layer_gates(r, layer, gates).sel(gate=list(gates)) for r in (first, second)]
        shapes = [(r.sizes["hidden"], r.sizes["gy"], r.sizes["gx"]) for r in g]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"layer {layer} is {_shape_words(shapes[0])} in {names[0]!r} but "
                f"{_shape_words(shapes[1])} in {names[1]!r}: gates of different shapes cannot "
                "be subtracted; pick a layer of the same shape or compare forecasts only"
            )
        g = [v.drop_vars("layer", errors="ignore") for v in g]
        data["gates"] = xr.concat(g, dim="checkpoint")
        data["gate_difference"] = g[1].astype(np.float32) - g[0].astype(np.float32)
    out = xr.Dataset(data).assign_coords(checkpoint=list(names))
    out.attrs.update(
        {k: v for k, v in first.attrs.items() if k not in ("interventions",)},
        layer=-1 if layer is None else int(layer),
        difference=f"{names[1]} minus {names[0]}",
    )
    return out


def _comparable(first: ConvLSTM, second: ConvLSTM, layer: int | None, names) -> bool:
    """Check both networks read the same frames and ``layer`` has one shape; True if gates too."""
    a, b = first.config, second.config
    if (a.in_channels, a.frame_size) != (b.in_channels, b.frame_size):
        raise ValueError(
            f"{names[0]!r} reads {a.in_channels}-channel {a.frame_size} frames but {names[1]!r} "
            f"reads {b.in_channels}-channel {b.frame_size} ones; compare checkpoints of one dataset"
        )
    if layer is None:
        return False
    for name, cfg in zip(names, (a, b), strict=True):
        if not 0 <= layer < len(cfg.hidden_channels):
            raise ValueError(
                f"layer {layer} does not exist in {name!r} (layers 0..{len(cfg.hidden_channels) - 1})"
            )
    shape_a = (a.hidden_channels[layer], *a.grid_size)
    shape_b = (b.hidden_channels[layer], *b.grid_size)
    if shape_a != shape_b:
        raise ValueError(
            f"layer {layer} is {_shape_words(shape_a)} in {names[0]!r} but "
            f"{_shape_words(shape_b)} in {names[1]!r}: gates of different shapes cannot be "
            "subtracted; pick a layer of the same shape or compare forecasts only (layer=None)"
        )
    return True


def _shape_words(shape: tuple[int, int, int]) -> str:
    return f"{shape[0]} hidden channels on a {shape[1]}x{shape[2]} grid"


# --------------------------------------------------------------------------------------------
# the equations


EQUATION_KEYS: tuple[str, ...] = ("i_t", "f_t", "g_t", "C_t", "o_t", "H_t")
"""Keys of :func:`cell_equations`, in the order the cell evaluates them."""


def cell_equations(config, *, fmt: str = "latex") -> dict[str, str]:
    """The ConvLSTM cell equations of a network, as LaTeX or plain text.

    Parameters
    ----------
    config : ConvLSTMConfig, ConvLSTM or dict
        The architecture: a config, a network, or checkpoint metadata (its ``"config"``).
    fmt : {"latex", "text"}
        LaTeX (``\\sigma``, ``\\ast`` for the convolution, ``\\circ`` for the Hadamard product)
        or plain Unicode text (``σ``, ``*``, ``∘``).

    Returns
    -------
    dict of str
        Keyed ``i_t``, ``f_t``, ``g_t`` (candidate), ``C_t``, ``o_t``, ``H_t``, in the order the
        cell evaluates them; the peephole terms ``W_c ∘ C`` appear only when ``config.peephole``
        is True (``i_t``, ``f_t`` read ``C_{t-1}``, ``o_t`` reads ``C_t``). ``X_t`` is the
        layer's input: the patched frame for layer 0, the hidden state of the layer below
        otherwise; the convolutions are ``k x k`` with ``k = config.kernel_size``.
    """
    if isinstance(config, ConvLSTM):
        config = config.config
    elif isinstance(config, dict):
        config = ConvLSTMConfig.from_dict(config.get("config", config))
    if not isinstance(config, ConvLSTMConfig):
        raise ValueError(f"config is a {type(config).__name__}; give a ConvLSTMConfig or model")
    if fmt not in ("latex", "text"):
        raise ValueError(f"fmt={fmt!r}; use 'latex' or 'text'")
    sym = _LATEX if fmt == "latex" else _TEXT
    peep = config.peephole

    def gate(name: str, act: str, cell: str | None) -> str:
        terms = [f"W_{{x{name}}} {sym['conv']} X_t", f"W_{{h{name}}} {sym['conv']} H_{{t-1}}"]
        if peep and cell:
            terms.append(f"W_{{c{name}}} {sym['had']} {cell}")
        terms.append(f"b_{name}")
        return f"{name}_t = {sym[act]}({' + '.join(terms)})"

    out = {
        "i_t": gate("i", "sig", "C_{t-1}"),
        "f_t": gate("f", "sig", "C_{t-1}"),
        "g_t": gate("g", "tanh", None),
        "C_t": f"C_t = f_t {sym['had']} C_{{t-1}} + i_t {sym['had']} g_t",
        "o_t": gate("o", "sig", "C_t"),
        "H_t": f"H_t = o_t {sym['had']} {sym['tanh']}(C_t)",
    }
    if fmt == "text":  # W_{xi} -> W_xi; C_{t-1} keeps its braces
        out = {k: re.sub(r"_\{([a-z]+)\}", r"_\1", v) for k, v in out.items()}
    return out


_LATEX = {"sig": r"\sigma", "tanh": r"\tanh", "conv": r"\ast", "had": r"\circ"}
_TEXT = {"sig": "σ", "tanh": "tanh", "conv": "*", "had": "∘"}

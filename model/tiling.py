"""Whole-domain rollouts of a network built for one frame size: overlapping tiles, blended.

A checkpoint runs only on its training grid (per-pixel peephole weights; ``radar_mch``: 128 x 128
px at 1 km). :func:`tiled_rollout` forecasts a domain of any size with it, and
:func:`domain_rollout` also resamples data of another pixel size to the checkpoint's
(:mod:`model.regrid`) and the forecast back. Both return the :func:`model.rollout.rollout` dataset
(``prediction``, ``truth``, ``context``, ``gates``, coordinates, attrs) on the whole domain, so
everything downstream reads it unchanged.

Tiles (:func:`plan_tiles`)
--------------------------
- Tiles are the checkpoint's frame size, ``stride`` apart (default half a tile, rounded to the
  patch size), the last tile of each row and column flush with the border, so every pixel is
  covered. Tile corners are multiples of the patch size, so every tile's latent cells sit on one
  whole-domain latent grid.
- A domain that is not a multiple of the patch size, or smaller than a tile, is **padded** at the
  bottom and right with invalid pixels (NaN, which the network reads as 0 in model space, as it
  reads invalid radar pixels) and the forecast cropped back. So any domain of at least one latent
  cell (``patch_size`` pixels) per side works; ``attrs["tile_padding"]`` records the padding.
- Each tile is a full rollout of the network (:func:`model.rollout.forecast_windows`), ``tile_batch``
  tiles per forward pass.

Blending (:meth:`TileLayout.weights`)
-------------------------------------
Each tile's weight is a separable Tukey window: 1 in the middle, ``sin²`` ramps over the overlap
with each neighbouring tile (no ramp on a side that meets the domain border), positive everywhere.
Two ramps over the same overlap sum to exactly 1 (``sin² + cos²``), and the weights are divided
by their sum over the tiles anyway, so they are a partition of unity: a field that every tile
forecasts alike comes out unchanged, and a domain of one tile gives that tile's rollout exactly.
Predictions are blended in physical units, in float32.

Gates
-----
Captured gates are stitched, with the same windows at the latent resolution, straight from the
network's gate hook into one whole-domain float16 array ``(layer, gate, step, hidden, gy, gx)``:
no per-tile gate buffers, so capture memory is that array (bounded by ``byte_budget``, see
:func:`domain_capture_bytes`) plus one batch of tiles. Each tile's share is weighted in float32
and added into the float16 array (within 2 float16 ulps of blending in float32). The latent grid is
``(H // patch, W // patch)`` of the (model-grid) domain, the rule of a single rollout; the last
``H % patch`` rows and ``W % patch`` columns have no latent cell of their own. Non-dimension
coordinates ``gate_y (gy)`` and ``gate_x (gx)`` give each latent cell's centre in the data's
``y``/``x`` coordinates (through the resampling, when there is one).

A full capture of ``radar_mch`` (2 layers x 32 channels, 6 gates, 12 + 12 frames = 23 steps)
needs 477 MiB on 710 x 640 px and 1053 MiB on 1000 x 1000 px (above the default 512 MiB budget:
raise ``byte_budget`` or capture fewer layers or gates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from model import lagrangian
from model.convlstm import GATES, ConvLSTM
from model.normalize import Normalizer
from model.regrid import GridResampler, PixelSize, checkpoint_pixel_km, data_pixel_size
from model.rollout import (
    DEFAULT_BYTE_BUDGET,
    CaptureBudgetError,
    CaptureSpec,
    _checked_inputs,
    _frame_variables,
    forecast_windows,
    gate_variables,
    resolve_precision,
)

DEFAULT_TILE_BATCH = 16  # tiles per forward pass (16 radar tiles: ~80 MB of activations)


@dataclass(frozen=True)
class TileLayout:
    """Where the tiles of a domain lie.

    Attributes
    ----------
    domain : (int, int)
        ``(H, W)`` of the domain in pixels.
    tile, stride : (int, int)
        Tile size (the network's frame size) and the step between tile corners, in pixels.
    patch : int
        The network's patch size: corners are multiples of it.
    starts_y, starts_x : tuple of int
        Tile corners along each axis; the tiles are every ``(starts_y[i], starts_x[j])``.
    """

    domain: tuple[int, int]
    tile: tuple[int, int]
    stride: tuple[int, int]
    patch: int
    starts_y: tuple[int, ...]
    starts_x: tuple[int, ...]

    @property
    def padded(self) -> tuple[int, int]:
        """``(H, W)`` of the padded domain the tiles cover exactly."""
        return (self.starts_y[-1] + self.tile[0], self.starts_x[-1] + self.tile[1])

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Every tile's upper-left corner ``(y0, x0)`` in pixels, row by row."""
        return [(y0, x0) for y0 in self.starts_y for x0 in self.starts_x]

    @property
    def latent_shape(self) -> tuple[int, int]:
        """``(gy, gx)``: the domain's latent grid, ``domain // patch``."""
        return (self.domain[0] // self.patch, self.domain[1] // self.patch)

    def weights(self, axis: int, *, latent: bool = False) -> np.ndarray:
        """Normalised 1-D blend weights ``[n_starts, tile]`` along ``axis`` (0: y, 1: x).

        Row ``i`` is the weight of the tile starting at ``starts[i]`` over its pixels (latent
        cells when ``latent``); over all tiles the weights of each pixel sum to 1. The weight of
        tile ``(i, j)`` is ``outer(weights(0)[i], weights(1)[j])``.
        """
        scale = self.patch if latent else 1
        starts = [s // scale for s in (self.starts_y, self.starts_x)[axis]]
        size = self.tile[axis] // scale
        windows = np.stack([_tukey(starts, k, size) for k in range(len(starts))])  # [n, size]
        total = np.zeros(starts[-1] + size)
        for s, w in zip(starts, windows, strict=True):
            total[s : s + size] += w
        return np.stack([w / total[s : s + size] for s, w in zip(starts, windows, strict=True)])


def _tukey(starts: list[int], k: int, size: int) -> np.ndarray:
    """Window of tile ``k``: ``sin²`` ramps over its overlaps with tiles ``k - 1`` and ``k + 1``."""
    w = np.ones(size)
    if k > 0:
        ramp = starts[k - 1] + size - starts[k]  # overlap with the previous tile
        w[:ramp] *= _ramp(ramp)
    if k + 1 < len(starts):
        ramp = starts[k] + size - starts[k + 1]  # overlap with the next tile
        w[size - ramp :] *= _ramp(ramp)[::-1]
    return w


def _ramp(n: int) -> np.ndarray:
    """``sin²`` from near 0 to near 1 over ``n`` pixels, never 0; ``r + r[::-1] == 1``."""
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


def plan_tiles(
    domain: tuple[int, int], tile: tuple[int, int], *, patch: int = 1, stride=None
) -> TileLayout:
    """Tile corners covering ``domain`` (module docstring: tiles, padding).

    Parameters
    ----------
    domain : (int, int)
        ``(H, W)`` in pixels, at least ``patch`` each.
    tile : (int, int)
        The network's frame size ``(h, w)``, multiples of ``patch``.
    patch : int
        The network's patch size.
    stride : int or (int, int), optional
        Pixels between tile corners, a multiple of ``patch`` from ``patch`` to the tile size;
        default half the tile, rounded down to a multiple of ``patch``.

    Returns
    -------
    TileLayout

    Raises
    ------
    ValueError
        A domain under one patch, or a stride that is not a multiple of the patch size or is
        larger than the tile (pixels would be left out); the message says what fits.
    """
    h, w = (int(s) for s in domain)
    if h < patch or w < patch:
        raise ValueError(
            f"domain {h}x{w} px is smaller than one latent cell ({patch}x{patch} px, the "
            "checkpoint's patch size): give a larger domain"
        )
    strides = (stride, stride) if stride is None or np.isscalar(stride) else tuple(stride)
    steps = tuple(_checked_stride(s, t, patch) for s, t in zip(strides, tile, strict=True))
    starts = tuple(_starts(n, t, s, patch) for n, t, s in zip((h, w), tile, steps, strict=True))
    return TileLayout((h, w), tuple(int(t) for t in tile), steps, int(patch), *starts)


def _checked_stride(stride, tile: int, patch: int) -> int:
    if stride is None:
        return max(patch, tile // 2 // patch * patch)
    stride = int(stride)
    if stride % patch or not patch <= stride <= tile:
        raise ValueError(
            f"stride={stride} must be a multiple of the patch size {patch} from {patch} to "
            f"{tile} (the tile): smaller strides overlap more, larger ones would skip pixels"
        )
    return stride


def _starts(n: int, tile: int, stride: int, patch: int) -> tuple[int, ...]:
    """Corners along one axis: every ``stride``, the last flush with the padded border."""
    padded = max(tile, math.ceil(n / patch) * patch)
    starts = list(range(0, padded - tile + 1, stride))
    if starts[-1] + tile < padded:
        starts.append(padded - tile)
    return tuple(starts)


# --- capture -------------------------------------------------------------------------------------


def domain_capture_bytes(model: ConvLSTM, capture, steps: int, domain: tuple[int, int]) -> int:
    """Bytes of the whole-domain float16 gate array for ``capture`` over ``steps`` steps.

    Parameters
    ----------
    model : ConvLSTM
    capture : bool or dict
        As in :func:`model.rollout.rollout`.
    steps : int
        Steps recorded: ``context + horizon - 1``.
    domain : (int, int)
        ``(H, W)`` of the domain on the model grid, in pixels.

    Returns
    -------
    int
        0 when nothing is captured.
    """
    spec = CaptureSpec.parse(capture, len(model.cells))
    if spec is None:
        return 0
    p = model.config.patch_size
    widest = max(model.config.hidden_channels[i] for i in spec.layers)
    cells = (domain[0] // p) * (domain[1] // p)
    return 2 * len(spec.layers) * len(spec.gates) * steps * widest * cells


class _GateStitcher:
    """Whole-domain float16 gates, filled by the network's gate hook tile batch by tile batch,
    with the latent blend weights.

    :attr:`gates` is ``[layer, gate, step, hidden, gy, gx]`` (CPU), a view of a block stored
    hidden-last (``[..., gy, gx, hidden]``) like :class:`model.rollout.GateRecorder`'s: the
    channels-last layout the network computes in, so weighting and adding run on contiguous memory
    (weighting a channels-last gate against a channels-first weight ran 150 times slower).
    """

    def __init__(self, model: ConvLSTM, spec: CaptureSpec, steps: int, layout: TileLayout):
        widths = [model.config.hidden_channels[i] for i in spec.layers]
        gy, gx = layout.latent_shape
        shape = (len(spec.layers), len(spec.gates), steps, gy, gx, max(widths))
        self._block = torch.zeros(shape, dtype=torch.float16)
        for k, hid in enumerate(widths):
            self._block[k, ..., hid:] = float("nan")  # padding of narrower layers only
        self.gates = self._block.permute(0, 1, 2, 5, 3, 4)  # [layer, gate, step, hidden, gy, gx]
        self._patch = layout.patch
        self._layer = {layer: k for k, layer in enumerate(spec.layers)}
        self._gate_index = [GATES.index(g) for g in spec.gates]
        self._wy = torch.as_tensor(layout.weights(0, latent=True), dtype=torch.float32)
        self._wx = torch.as_tensor(layout.weights(1, latent=True), dtype=torch.float32)
        self._tiles: list[tuple[int, int]] = []  # latent corners of the batch
        self._weights = None  # [b, th, tw, 1] latent weights of the batch, on the model's device

    def start_batch(self, tiles: list[tuple[int, int, int, int]], device) -> None:
        """Tiles ``(iy, ix, y0, x0)`` of the next forward pass (indices and pixel corners)."""
        weights = [self._wy[iy][:, None] * self._wx[ix][None, :] for iy, ix, _, _ in tiles]
        self._weights = torch.stack(weights)[..., None].to(device)  # [b, th, tw, 1]
        self._tiles = [(y0 // self._patch, x0 // self._patch) for _, _, y0, x0 in tiles]

    def hook(self, layer: int, step: int, gates: tuple[torch.Tensor, ...]) -> None:
        """``gate_hook``: add each tile's weighted gates into the domain array."""
        k = self._layer.get(layer)
        if k is None:
            return
        gy, gx = self._block.shape[3:5]
        hid, th, tw = gates[0].shape[1:]
        for j, g in enumerate(self._gate_index):
            hidden_last = gates[g].permute(0, 2, 3, 1).float()  # [b, th, tw, hid]
            share = (hidden_last * self._weights).cpu()  # [b, th, tw, hid] float32
            for b, (ly, lx) in enumerate(self._tiles):
                h, w = min(th, gy - ly), min(tw, gx - lx)  # latent rows past the domain: cut
                if h > 0 and w > 0:
                    target = self._block[k, j, step, ly : ly + h, lx : lx + w, :hid]
                    target.add_(share[b, :h, :w])  # float32 share -> float16 sum


# --- rollouts ------------------------------------------------------------------------------------


@torch.no_grad()
def tiled_rollout(
    model: ConvLSTM,
    context,
    horizon: int,
    *,
    truth=None,
    capture=False,
    normalizer: Normalizer | None = None,
    stride=None,
    tile_batch: int = DEFAULT_TILE_BATCH,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
    precision: str = "auto",
    time_step: str | None = None,
) -> xr.Dataset:
    """Free-running forecast of a domain of any size, in overlapping tiles of the model's frame.

    The data must already be at the checkpoint's pixel size (else use :func:`domain_rollout`).

    Parameters
    ----------
    model : ConvLSTM
        The network (its device is used); its frame size is the tile size.
    context : xarray.DataArray or array-like
        Observed frames ``(time, channel, y, x)`` in physical units, any ``y``/``x`` size of at
        least one patch; coordinates and attrs carry into the result as in
        :func:`model.rollout.rollout`.
    horizon : int
        Frames to forecast.
    truth : xarray.DataArray or array-like, optional
        The frames that followed ``(time, channel, y, x)``; may be shorter than ``horizon``.
    capture : bool or dict
        Gates to record, as in :func:`model.rollout.rollout`, stitched over the domain.
    normalizer : Normalizer, optional
        Physical units <-> model space (from the checkpoint); identity when omitted.
    stride : int or (int, int), optional
        Pixels between tile corners (see :func:`plan_tiles`); default half a tile.
    tile_batch : int
        Tiles per forward pass; peak memory grows with it, not with the number of tiles.
    byte_budget : int
        Most bytes the whole-domain gate array may take (:func:`domain_capture_bytes`); above it
        :class:`model.rollout.CaptureBudgetError` is raised before anything runs.
    precision : {"auto", "fp32", "bf16"}
        As in :func:`model.rollout.rollout`.
    time_step : str, optional
        ISO 8601 step; defaults to ``context.attrs["time_step"]``.

    Returns
    -------
    xarray.Dataset
        The :func:`model.rollout.rollout` layout on the whole domain (``gates (layer, gate, step,
        hidden, gy, gx)`` on the domain's latent grid, with ``gate_y``/``gate_x``), and attrs
        ``tile_size``, ``tile_stride``, ``tiles``, ``tile_padding`` (pixels added at the bottom
        and right), ``blend``.
    """
    return _domain_forecast(
        model, context, horizon, None, truth=truth, capture=capture,
        normalizer=normalizer or Normalizer(), stride=stride, tile_batch=tile_batch,
        byte_budget=byte_budget, precision=precision, time_step=time_step,
    )  # fmt: skip


@torch.no_grad()
def domain_rollout(
    model: ConvLSTM,
    context,
    horizon: int,
    *,
    meta: dict | None = None,
    model_pixel_km: float | None = None,
    data_pixel_km: float | tuple[float, float] | None = None,
    truth=None,
    capture=False,
    normalizer: Normalizer | None = None,
    stride=None,
    tile_batch: int = DEFAULT_TILE_BATCH,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
    precision: str = "auto",
    time_step: str | None = None,
) -> xr.Dataset:
    """Forecast a whole domain at any pixel size: resample, tile, resample back.

    The context is resampled to the checkpoint's pixel size (:mod:`model.regrid`), forecast there
    with :func:`tiled_rollout`'s tiles, and the prediction resampled back to the data grid;
    ``context`` and ``truth`` in the result are the data as given. A checkpoint whose ``meta``
    says ``"frame": "lagrangian"`` forecasts in the frame of the last context frame and its
    forecast is advected back (:mod:`model.lagrangian`; attrs ``frame``, ``route``). Gates stay on the model's
    latent grid, placed on the data's coordinates by ``gate_y``/``gate_x``.

    Parameters
    ----------
    model : ConvLSTM
    context : xarray.DataArray or array-like
        ``(time, channel, y, x)`` in physical units; its pixel size comes from its coordinates
        or ``attrs["resolution_km"]`` (:func:`model.regrid.data_pixel_size`, lat/lon included).
    horizon : int
    meta : dict, optional
        Checkpoint metadata: the pixel size (:func:`model.regrid.checkpoint_pixel_km`) and, when
        ``normalizer`` is not given, the normalisation.
    model_pixel_km : float, optional
        The checkpoint's pixel size in km, overriding ``meta``.
    data_pixel_km : float or (float, float), optional
        The data's pixel size in km (``dy, dx``), overriding what its coordinates say.
    truth, capture, normalizer, stride, tile_batch, byte_budget, precision, time_step
        As in :func:`tiled_rollout` (``byte_budget`` counts the gates on the model grid).

    Returns
    -------
    xarray.Dataset
        As :func:`tiled_rollout`, on the data grid, with attrs ``regrid`` (what was done, in
        words), ``model_pixel_km``, ``data_pixel_km`` (``[dy, dx]``) and ``model_grid``
        (``[H', W']``) when pixel sizes are known.

    Raises
    ------
    ValueError
        The checkpoint has a pixel size but the data's cannot be told (pass ``data_pixel_km=``).
    """
    meta = meta or {}
    if normalizer is None and meta.get("normalization"):
        normalizer = Normalizer.from_metadata(meta["normalization"])
    moved = None
    if lagrangian.is_lagrangian(meta):
        moved = lagrangian.LagrangianContext(context, meta)  # module docstring of model.lagrangian
        context = moved.frames  # [T, C, Y, X] in the frame of the last context frame
    resampler = _resampler(context, meta, model_pixel_km, data_pixel_km)
    ds = _domain_forecast(
        model, context, horizon, resampler, truth=truth, capture=capture,
        normalizer=normalizer or Normalizer(), stride=stride, tile_batch=tile_batch,
        byte_budget=byte_budget, precision=precision, time_step=time_step,
    )  # fmt: skip
    if resampler is None:
        ds.attrs["regrid"] = "none: the checkpoint states no pixel size; tiled on the data grid"
    if moved is not None:
        ds = lagrangian.finish_rollout(ds, moved)
    return ds


def _resampler(context, meta: dict, model_km, data_km) -> GridResampler | None:
    """The data -> model grid resampler, or None when the checkpoint states no pixel size."""
    model_km = model_km if model_km is not None else checkpoint_pixel_km(meta)
    if model_km is None:
        return None
    if data_km is not None:
        dy, dx = (data_km, data_km) if np.isscalar(data_km) else data_km
        size = PixelSize(float(dy), float(dx), "data_pixel_km")
    else:
        size = data_pixel_size(context)
    if size is None:
        raise ValueError(
            f"the checkpoint works on {model_km:g} km pixels but the data's pixel size is "
            "unknown (no y/x coordinates in km or m, no resolution_km attribute): pass "
            "data_pixel_km="
        )
    if isinstance(context, xr.DataArray) and {"y", "x"} <= set(context.dims):
        shape = (context.sizes["y"], context.sizes["x"])  # whatever the order of the dims
    else:
        shape = np.shape(context)[-2:]
    return GridResampler.for_pixel_size(shape, size, model_km)


def _domain_forecast(model, context, horizon, resampler, *, truth, capture, normalizer,
                     stride, tile_batch, byte_budget, precision, time_step) -> xr.Dataset:  # fmt: skip
    attrs = dict(getattr(context, "attrs", {}))
    time_step = time_step or attrs.get("time_step")
    ctx, tru = _checked_inputs(context, truth, horizon, "free")  # [Tc, C, H, W], [<=H, C, H, W]
    _check_channels(model, ctx)
    if tile_batch < 1:
        raise ValueError(f"tile_batch={tile_batch} must be at least 1")
    frames = resampler.to_model(ctx) if resampler is not None else ctx  # [Tc, C, H', W']
    cfg = model.config
    layout = plan_tiles(frames.shape[-2:], cfg.frame_size, patch=cfg.patch_size, stride=stride)
    steps = ctx.shape[0] + horizon - 1
    spec = CaptureSpec.parse(capture, len(model.cells))
    _check_budget(model, capture, steps, layout, byte_budget)
    stitcher = _GateStitcher(model, spec, steps, layout) if spec is not None else None
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    prediction = _forecast_tiles(model, frames, horizon, layout, normalizer, precision,
                                 tile_batch, stitcher)  # fmt: skip  # [horizon, C, H', W']
    if resampler is not None:
        prediction = resampler.to_data(prediction)  # [horizon, C, H, W] on the data grid
    data_vars, coords = _frame_variables(context, ctx, tru, prediction, horizon, time_step)
    if stitcher is not None:
        _add_gates(data_vars, coords, stitcher, spec, ctx.shape[0], layout, resampler, context)
    attrs.update(
        mode="free", precision=precision, device=str(device), horizon=horizon,
        context_length=ctx.shape[0], patch_size=cfg.patch_size, **_tile_attrs(layout),
        **_regrid_attrs(resampler),
    )  # fmt: skip
    if time_step:
        attrs["time_step"] = time_step
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _check_channels(model: ConvLSTM, ctx: np.ndarray) -> None:
    if ctx.shape[1] != model.config.in_channels:
        raise ValueError(
            f"context has {ctx.shape[1]} channel(s) but the model reads "
            f"{model.config.in_channels}: select the model's channels"
        )


def _check_budget(model, capture, steps: int, layout: TileLayout, byte_budget: int) -> None:
    need = domain_capture_bytes(model, capture, steps, layout.domain)
    if need > byte_budget:
        h, w = layout.domain
        raise CaptureBudgetError(
            f"capturing gates over the {h}x{w} px domain for {steps} steps needs "
            f"{need / 2**20:.0f} MiB, over the budget of {byte_budget / 2**20:.0f} MiB: capture "
            "fewer layers or gates, shorten the rollout or the domain, or raise byte_budget"
        )


def _forecast_tiles(model, frames, horizon, layout, normalizer, precision, tile_batch,
                    stitcher) -> np.ndarray:  # fmt: skip
    """Blended forecast ``[horizon, C, H, W]`` (physical) of ``frames [Tc, C, H, W]``."""
    ph, pw = layout.padded
    th, tw = layout.tile
    pad = ((0, 0), (0, 0), (0, ph - frames.shape[-2]), (0, pw - frames.shape[-1]))
    padded = np.pad(frames, pad, constant_values=np.nan)  # [Tc, C, Hp, Wp], NaN: invalid
    wy, wx = layout.weights(0), layout.weights(1)  # [ny, th], [nx, tw]
    out = np.zeros((horizon, model.config.channels_out, ph, pw), dtype=np.float32)
    tiles = [(iy, ix, y0, x0) for iy, y0 in enumerate(layout.starts_y)
             for ix, x0 in enumerate(layout.starts_x)]  # fmt: skip
    device = next(model.parameters()).device
    for first in range(0, len(tiles), tile_batch):
        batch = tiles[first : first + tile_batch]
        windows = np.stack([padded[..., y0 : y0 + th, x0 : x0 + tw] for _, _, y0, x0 in batch])
        hook = None
        if stitcher is not None:
            stitcher.start_batch(batch, device)
            hook = stitcher.hook
        pred = forecast_windows(model, windows, horizon, batch_size=len(batch), precision=precision,
                                normalizer=normalizer, gate_hook=hook)  # fmt: skip  # [b, H, C, th, tw]
        for (iy, ix, y0, x0), p in zip(batch, pred, strict=True):
            weight = (wy[iy][:, None] * wx[ix][None, :]).astype(np.float32)  # [th, tw]
            out[..., y0 : y0 + th, x0 : x0 + tw] += p * weight
    h, w = layout.domain
    return out[..., :h, :w]


def _add_gates(data_vars, coords, stitcher, spec, n_ctx, layout, resampler, context) -> None:
    """The stitched gates (:func:`model.rollout.gate_variables`) and where each latent cell lies
    in the data's coordinates (``gate_y``, ``gate_x``)."""
    gates = stitcher.gates.numpy()  # [layer, gate, step, hidden, gy, gx] float16
    data_vars["gates"], gate_coords = gate_variables(gates, spec, n_ctx)
    gy, gx = gates.shape[-2:]
    coords.update(
        gate_coords,
        gate_y=("gy", _latent_centres(context, "y", gy, layout.patch, resampler and resampler.y)),
        gate_x=("gx", _latent_centres(context, "x", gx, layout.patch, resampler and resampler.x)),
    )


def _latent_centres(context, dim: str, cells: int, patch: int, axis) -> np.ndarray:
    """Centres of ``cells`` latent cells in the data's ``dim`` coordinate (pixel index if none)."""
    centres = np.arange(cells) * patch + (patch - 1) / 2  # model pixel index
    index = axis.model_to_data_index(centres) if axis is not None else centres  # data pixels
    coord = context.coords.get(dim) if isinstance(context, xr.DataArray) else None
    if (
        coord is None
        or coord.ndim != 1
        or coord.size < 2
        or not np.issubdtype(coord.dtype, np.number)
    ):
        return index
    values = coord.values.astype(np.float64)
    return values[0] + index * (values[-1] - values[0]) / (values.size - 1)


def _tile_attrs(layout: TileLayout) -> dict:
    h, w = layout.domain
    ph, pw = layout.padded
    return {
        "tile_size": list(layout.tile),
        "tile_stride": list(layout.stride),
        "tiles": len(layout.origins),
        "tile_padding": [ph - h, pw - w],
        "blend": "Tukey windows (sin² ramps over the tile overlaps), normalised",
    }


def _regrid_attrs(resampler: GridResampler | None) -> dict:
    if resampler is None:
        return {}
    size = resampler.data_size
    return {
        "regrid": resampler.describe(),
        "model_pixel_km": resampler.model_km,
        "data_pixel_km": [size.dy_km, size.dx_km],
        "model_grid": list(resampler.model_shape),
        "regrid_scale_error": size.scale_error,
    }

"""Downloads: the animation as GIF/MP4, the rollout with its gates as NetCDF, scores as CSV.

Frames are drawn with the same colour scales as the figures (:mod:`dashboard.scales`), so a
downloaded animation looks like the page. No model math here.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pandas as pd
import xarray as xr
from PIL import Image, ImageDraw, ImageFont

from dashboard.figures import time_axis, units_of
from dashboard.scales import NO_DATA, Scale, error_scale, value_scale

PANEL_GAP = 6
LABEL_HEIGHT = 22
BACKGROUND = (255, 255, 255)


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.strip()
    if colour.startswith("rgba") or colour.startswith("rgb"):
        parts = colour[colour.index("(") + 1 : colour.index(")")].split(",")
        return tuple(int(float(p)) for p in parts[:3])  # type: ignore[return-value]
    colour = colour.lstrip("#")
    if len(colour) == 3:
        colour = "".join(c * 2 for c in colour)
    return tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def lookup_table(scale: Scale) -> np.ndarray:
    """``(256, 3)`` uint8 RGB colour of every code of ``scale`` (the plotly colorscale, sampled)."""
    stops = scale.colorscale()
    pos = np.array([s[0] for s in stops]) * 255.0
    rgb = np.array([_hex_to_rgb(s[1]) for s in stops], dtype=np.float64)
    codes = np.arange(256, dtype=np.float64)
    lut = np.empty((256, 3))
    for c in range(3):
        lut[:, c] = np.interp(codes, pos, rgb[:, c])
    lut[NO_DATA] = (235, 235, 235)
    return lut.round().astype(np.uint8)


def _panel(codes: np.ndarray, lut: np.ndarray, scale_up: int, flip: bool) -> np.ndarray:
    img = lut[codes]  # (y, x, 3)
    if flip:
        img = img[::-1]
    return np.kron(img, np.ones((scale_up, scale_up, 1), np.uint8)) if scale_up > 1 else img


def animation_frames(
    ds: xr.Dataset, *, channel: int = 0, show_context: bool = True, min_panel: int = 192
) -> list[np.ndarray]:
    """RGB frames ``(height, width, 3)`` uint8: prediction | truth | error, with a lead-time label.

    Context steps show the observed frame in the truth panel and blank prediction/error panels,
    as on the page.
    """
    axis = time_axis(ds)
    n_ctx = axis.n_context
    units = units_of(ds)
    pred = ds["prediction"].isel(channel=channel).values
    ctx = ds["context"].isel(channel=channel).values if "context" in ds else None
    truth = ds["truth"].isel(channel=channel).values if "truth" in ds else None
    vscale = value_scale(
        str(ds.attrs.get("domain", "video")), units=units, arrays=(ctx, truth, pred)
    )
    err = pred - truth if truth is not None else None
    escale = error_scale(units=units, arrays=(err,) if err is not None else ())
    vlut, elut = lookup_table(vscale), lookup_table(escale)
    ny, nx = pred.shape[-2:]
    up = max(1, int(np.ceil(min_panel / max(ny, nx))))
    flip = (
        "y" in ds.coords
        and bool(ds["y"].attrs.get("units"))
        and ds["y"].values[-1] > ds["y"].values[0]
    )
    blank = np.zeros((ny, nx), np.uint8)
    n_panels = 3 if truth is not None else 2
    font = ImageFont.load_default()
    frames = []
    first = 0 if show_context else n_ctx
    for s in range(first, n_ctx + pred.shape[0]):
        if s < n_ctx:
            codes = [blank, vscale.encode(ctx[s]), blank][:n_panels]
            luts = [vlut, vlut, elut]
        else:
            k = s - n_ctx
            codes = [vscale.encode(pred[k])]
            if truth is not None:
                codes += [vscale.encode(truth[k]), escale.encode(err[k])]
            else:
                codes += [blank]
            luts = [vlut, vlut, elut]
        panels = [_panel(c, lut, up, flip) for c, lut in zip(codes, luts, strict=False)]
        h, w = panels[0].shape[:2]
        canvas = np.full(
            (h + LABEL_HEIGHT, n_panels * w + (n_panels - 1) * PANEL_GAP, 3), 255, np.uint8
        )
        for i, p in enumerate(panels):
            canvas[LABEL_HEIGHT:, i * (w + PANEL_GAP) : i * (w + PANEL_GAP) + w] = p
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        phase = "context" if s < n_ctx else "forecast"
        names = (
            ["prediction", "truth", f"error ({units})"]
            if n_panels == 3
            else ["prediction", "observed"]
        )
        draw.text((4, 5), f"{axis.label(s)} ({phase})", fill=(0, 0, 0), font=font)
        for i, name in enumerate(names[1:], start=1):
            draw.text((i * (w + PANEL_GAP) + 4, 5), name, fill=(60, 60, 60), font=font)
        frames.append(np.asarray(img))
    return frames


def to_gif(frames: list[np.ndarray], *, fps: float = 3.0) -> bytes:
    """Animated GIF (looping) of RGB frames."""
    buf = io.BytesIO()
    imageio.mimsave(buf, frames, format="GIF", duration=1000.0 / fps, loop=0)
    return buf.getvalue()


def to_mp4(frames: list[np.ndarray], *, fps: float = 3.0) -> bytes:
    """H.264 MP4 (yuv420p, plays in browsers) of RGB frames, padded to multiples of 16 pixels."""
    h, w = frames[0].shape[:2]
    ph, pw = -h % 16, -w % 16
    padded = [np.pad(f, ((0, ph), (0, pw), (0, 0)), constant_values=255) for f in frames]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rollout.mp4"
        writer = imageio.get_writer(
            path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=16, output_params=["-movflags", "+faststart"],
        )  # fmt: skip
        try:
            for f in padded:
                writer.append_data(f)
        finally:
            writer.close()
        return path.read_bytes()


def _netcdf_attr(value):
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | float | str | np.integer | np.floating):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return list(value)
    return json.dumps(value, default=str)


def to_netcdf(ds: xr.Dataset) -> bytes:
    """The rollout (prediction, truth, context, gates) as NetCDF-4 bytes.

    Gates are packed to int16 with ``scale_factor`` (CF convention, decoded by xarray/netCDF
    readers) and zlib-compressed: NetCDF has no float16.
    """
    out = ds.copy()
    out.attrs = {k: _netcdf_attr(v) for k, v in ds.attrs.items() if v is not None}
    encoding: dict = {}
    for name in ("prediction", "truth", "context"):
        if name in out:
            encoding[name] = {"zlib": True, "complevel": 1}
    if "gates" in out:
        g = out["gates"].astype(np.float32)
        top = float(np.nanmax(np.abs(g.values))) if np.isfinite(g.values).any() else 1.0
        scale = max(top, 1e-6) / 32000.0
        out["gates"] = g
        encoding["gates"] = {
            "dtype": "int16", "scale_factor": scale, "add_offset": 0.0, "_FillValue": -32768,
            "zlib": True, "complevel": 1,
        }  # fmt: skip
    for name in list(out.coords):
        if out[name].dtype.kind in "OU":
            out[name] = out[name].astype(str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rollout.nc"
        out.to_netcdf(path, engine="h5netcdf", encoding=encoding)
        return path.read_bytes()


def metrics_csv(long_table: pd.DataFrame) -> bytes:
    """CSV bytes of the tidy scores table (:func:`dashboard.services.scores_long`)."""
    return long_table.to_csv(index=False).encode()

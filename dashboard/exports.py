"""Downloads: the animation as GIF/MP4, the rollout with its gates as NetCDF, scores as CSV.

Frames are drawn with the same colour scales as the figures (:mod:`dashboard.scales`), so a
downloaded animation looks like the page, and are slide-ready: at least 1280 px wide, with a title
(lead time, valid time when the data has real timestamps), the dataset/sample/checkpoint, panel
names and colour bars with units; the frame rate is a parameter of :func:`to_gif`/:func:`to_mp4`.
No model math here.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pandas as pd
import xarray as xr
from PIL import Image, ImageDraw, ImageFont

from dashboard.figures import (
    north_up_rows,
    step_time_label,
    time_axis,
    units_of,
    valid_times,
    value_label,
)
from dashboard.scales import NO_DATA, Scale, error_scale, value_scale
from datasets.layout import time_zone_of

PANEL_GAP = 40
BACKGROUND = (255, 255, 255)
SLIDE_WIDTH = 1280  # frames are at least this wide (a 16:9 slide at 720p)
MARGIN = 32
TITLE_SIZE, SUBTITLE_SIZE, LABEL_SIZE, TICK_SIZE = 30, 22, 20, 17
HEADER_HEIGHT = 108  # title, subtitle, panel names
COLORBAR_HEIGHT = 20
FOOTER_HEIGHT = 104  # colour bars: bar, ticks, tick labels, units title
LABEL_HEIGHT = HEADER_HEIGHT  # the rows above the panels (kept for callers)
FPS_RANGE = (0.5, 30.0)
MAX_PANEL_HEIGHT = 500  # frames stay within 720 px high


@dataclass(frozen=True)
class Animation:
    """Rendered export frames and what they show (for callers and tests).

    Attributes
    ----------
    frames : list of numpy.ndarray
        RGB ``(height, width, 3)`` uint8, ``width >= SLIDE_WIDTH``.
    titles : list of str
        The title line of each frame (lead time, valid time when known).
    heading : str
        The line under the title (dataset, checkpoint, sample, channel).
    colorbars : list of dict
        ``{"label", "box": (x0, y0, x1, y1), "scale"}``: where each colour bar is drawn.
    panels : list of tuple
        ``(x0, y0, x1, y1)`` pixel box of each panel.
    """

    frames: list
    titles: list
    heading: str
    colorbars: list
    panels: list


def _font(size: int):
    """DejaVu Sans (has −, ±, ·, ≥) when installed, else Pillow's scalable default font."""
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def lookup_table(scale: Scale) -> np.ndarray:
    """``(256, 3)`` uint8 RGB colour of every code of ``scale`` (the page's colours,
    :meth:`dashboard.scales.Scale.palette`), no-data code in light grey."""
    lut = scale.palette()[:, :3].copy()
    lut[NO_DATA] = (235, 235, 235)
    return lut


def _panel(codes: np.ndarray, lut: np.ndarray, size: tuple[int, int], flip: bool) -> np.ndarray:
    """Colour the codes and enlarge them (nearest neighbour: sharp pixels) to ``(height, width)``."""
    img = lut[codes]  # (y, x, 3)
    if flip:
        img = img[::-1]
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    rows = (np.arange(h) * img.shape[0]) // h
    cols = (np.arange(w) * img.shape[1]) // w
    return img[rows][:, cols]


def _colorbar(
    canvas: np.ndarray,
    scale: Scale,
    lut: np.ndarray,
    label: str,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """A horizontal colour bar in ``box`` (codes left to right), ticks below, label under them."""
    x0, y0, x1, y1 = box
    first = 2 if scale.floor_colour else 1
    codes = np.linspace(first, 255, x1 - x0).round().astype(int)
    canvas = canvas.copy()
    canvas[y0:y1, x0:x1] = lut[codes][None, :, :]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    tick_font, label_font = _font(TICK_SIZE), _font(LABEL_SIZE)
    tickvals, ticktext = scale.ticks()
    last_right = -1e9
    for code, text in zip(tickvals, ticktext, strict=True):
        x = x0 + (code - first) / (255 - first) * (x1 - x0 - 1)
        draw.line([(x, y1), (x, y1 + 5)], fill=(60, 60, 60), width=1)
        w = draw.textlength(text, font=tick_font)
        left = min(max(x - w / 2, x0 - 2), x1 + 2 - w)  # inside the bar's width
        if left > last_right + 4:  # skip a label that would touch the previous one
            draw.text((left, y1 + 7), text, fill=(40, 40, 40), font=tick_font)
            last_right = left + w
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(180, 180, 180))
    w = draw.textlength(label, font=label_font)
    draw.text(
        ((x0 + x1) / 2 - w / 2, y1 + 12 + TICK_SIZE), label, fill=(30, 30, 30), font=label_font
    )
    return np.asarray(img).copy()


def _heading(ds: xr.Dataset, channel: int) -> str:
    parts = []
    if ds.attrs.get("dataset"):
        parts.append(f"data: {ds.attrs['dataset']}")
    if ds.attrs.get("sample") is not None and ds.attrs.get("dataset"):
        parts.append(f"sample {ds.attrs['sample']}")
    if ds.attrs.get("checkpoint"):
        parts.append(f"checkpoint: {ds.attrs['checkpoint']}")
    if int(ds.sizes.get("channel", 1)) > 1:
        name = str(ds["channel"].values[channel]) if "channel" in ds.coords else str(channel)
        parts.append(f"channel: {name}")
    if ds.attrs.get("synthetic"):
        parts.append("synthetic data")
    return " · ".join(parts) or "ConvLSTM forecast"


def render_animation(
    ds: xr.Dataset,
    *,
    channel: int = 0,
    show_context: bool = True,
    width: int = SLIDE_WIDTH,
    heading: str | None = None,
) -> Animation:
    """Slide-ready frames: title, prediction | truth | error panels, colour bars with units.

    Each frame is at least ``width`` pixels wide. The title gives the lead time (and the valid
    time when the data has real timestamps) and whether the frame is context or forecast; the
    line under it the dataset, sample and checkpoint (or ``heading``). Context steps show the
    observed frame in the truth panel and blank prediction/error panels, as on the page. Map
    grids are drawn north up.
    """
    axis = time_axis(ds)
    times, zone = valid_times(ds), time_zone_of(ds.attrs)
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
    n_panels = 3 if truth is not None else 2
    target = (max(width, SLIDE_WIDTH) - 2 * MARGIN - (n_panels - 1) * PANEL_GAP) / n_panels
    zoom = max(min(target / nx, MAX_PANEL_HEIGHT / ny), 1.0)
    pw, ph = int(nx * zoom), int(ny * zoom)
    content = n_panels * pw + (n_panels - 1) * PANEL_GAP
    full_w = max(width, SLIDE_WIDTH, content + 2 * MARGIN)
    full_h = HEADER_HEIGHT + ph + FOOTER_HEIGHT
    left = (full_w - content) // 2
    panels = [
        (left + i * (pw + PANEL_GAP), HEADER_HEIGHT, left + i * (pw + PANEL_GAP) + pw, HEADER_HEIGHT + ph)
        for i in range(n_panels)
    ]  # fmt: skip
    flip = north_up_rows(ds)
    blank = np.zeros((ny, nx), np.uint8)
    names = (
        ["Prediction", "Truth", "Error (prediction − truth)"]
        if n_panels == 3
        else ["Prediction", "Observed (context)"]
    )
    bar_top = HEADER_HEIGHT + ph + 14
    value_end = panels[1][2] if n_panels == 3 else panels[-1][2]
    colorbars = [
        {
            "label": value_label(vscale, units),
            "box": (panels[0][0], bar_top, value_end, bar_top + COLORBAR_HEIGHT),
            "scale": vscale,
            "lut": vlut,
        }
    ]
    if n_panels == 3:
        colorbars.append(
            {
                "label": f"error ({units})" if units else "error",
                "box": (panels[2][0], bar_top, panels[2][2], bar_top + COLORBAR_HEIGHT),
                "scale": escale,
                "lut": elut,
            }
        )
    heading = heading or _heading(ds, channel)
    title_font, sub_font, label_font = _font(TITLE_SIZE), _font(SUBTITLE_SIZE), _font(LABEL_SIZE)
    # the parts that do not change between frames
    base = np.full((full_h, full_w, 3), 255, np.uint8)
    base_img = Image.fromarray(base)
    draw = ImageDraw.Draw(base_img)
    draw.text((MARGIN, 10 + TITLE_SIZE + 10), heading, fill=(70, 70, 70), font=sub_font)
    for (x0, _, x1, _), name in zip(panels, names, strict=True):
        w = draw.textlength(name, font=label_font)
        draw.text(((x0 + x1) / 2 - w / 2, HEADER_HEIGHT - LABEL_SIZE - 8), name, fill=(30, 30, 30), font=label_font)  # fmt: skip
    base = np.asarray(base_img).copy()
    for bar in colorbars:
        base = _colorbar(base, bar["scale"], bar["lut"], bar["label"], bar["box"])
    outline = Image.fromarray(base)
    for x0, y0, x1, y1 in panels:  # a thin frame: white (no rain) panels stand out
        ImageDraw.Draw(outline).rectangle([x0 - 1, y0 - 1, x1, y1], outline=(176, 176, 176))
    base = np.asarray(outline).copy()
    frames, titles = [], []
    first = 0 if show_context else n_ctx
    for s in range(first, n_ctx + pred.shape[0]):
        if s < n_ctx:
            codes = [blank, vscale.encode(ctx[s]), blank][:n_panels]
            what = f"context frame {s + 1}/{n_ctx} (input)"
        else:
            k = s - n_ctx
            codes = [vscale.encode(pred[k])]
            if truth is not None:
                codes += [vscale.encode(truth[k]), escale.encode(err[k])]
            else:
                codes += [blank]
            what = f"forecast step {k + 1}/{pred.shape[0]}"
        luts = [vlut, vlut, elut]
        canvas = base.copy()
        for (x0, y0, x1, y1), c, lut in zip(panels, codes, luts, strict=False):
            canvas[y0:y1, x0:x1] = _panel(c, lut, (ph, pw), flip)
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        text = f"{step_time_label(axis, times, s, zone)} · {what}"
        draw.text((MARGIN, 10), text, fill=(0, 0, 0), font=title_font)
        titles.append(text)
        frames.append(np.asarray(img))
    boxes = [{k: v for k, v in bar.items() if k != "lut"} for bar in colorbars]
    return Animation(frames, titles, heading, boxes, panels)


def animation_frames(
    ds: xr.Dataset,
    *,
    channel: int = 0,
    show_context: bool = True,
    width: int = SLIDE_WIDTH,
    heading: str | None = None,
) -> list[np.ndarray]:
    """RGB frames ``(height, width, 3)`` uint8 of :func:`render_animation` (slide-ready)."""
    return render_animation(
        ds, channel=channel, show_context=show_context, width=width, heading=heading
    ).frames


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise ValueError(f"frame rate {fps:g} fps is outside {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}")
    return fps


def to_gif(frames: list[np.ndarray], *, fps: float = 3.0) -> bytes:
    """Animated GIF (looping) of RGB frames at ``fps`` frames per second (0.5..30)."""
    fps = _check_fps(fps)
    buf = io.BytesIO()
    imageio.mimsave(buf, frames, format="GIF", duration=1000.0 / fps, loop=0)
    return buf.getvalue()


def to_mp4(frames: list[np.ndarray], *, fps: float = 3.0) -> bytes:
    """H.264 MP4 (yuv420p, plays in browsers) of RGB frames, padded to multiples of 16 pixels.

    ``fps``: frames per second (0.5..30).
    """
    fps = _check_fps(fps)
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

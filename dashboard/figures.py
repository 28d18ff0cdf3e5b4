"""Pure plotly builders: rollout ``xr.Dataset`` -> ``go.Figure``. No Streamlit, no model math.

Every builder takes the rollout dataset of :func:`model.rollout.rollout`:

- ``prediction (time, channel, y, x)`` float32 in physical units, ``time`` = forecast steps;
- ``truth (time, channel, y, x)`` when known; ``context (context_time, channel, y, x)``;
- ``gates (layer, gate, step, hidden, y, x)`` float16 when captured, ``step`` covering the context
  and the forecast, ``y``/``x`` at the latent (patched) resolution;
- coordinate ``lead_time (time)`` (``timedelta64`` or step counts), attrs ``units``, ``domain``,
  ``time_step``.

Animation steps are numbered ``0 .. Tc + H - 1``: steps ``< Tc`` show the context frames (lead
times ``-(Tc - 1) .. 0``), the rest the forecast (``+1 .. +H`` time steps), the same numbering as
the ``step`` dimension of the gates.
Heatmaps carry ``uint8`` codes (see :mod:`dashboard.scales`); ``layout.meta`` records the scales
so a reader (a test, the browser) can decode them.

Layout: everything around the panels (colour bars, play/pause, slider, legends) is placed in
pixels from the panels, so the charts stay clean from a 1024 px window (about 560 px of chart) to
1920 px: colour bars are horizontal under their own panels, play/pause sits left of the slider's
right-aligned current value above the rail, legends sit under the axes, subplot titles are pinned
to their panels. Charts of square-pixel panels (forecast, gates, the lab's panel grids) grow in
height with their width (:func:`fit_height`, drawn by :func:`dashboard.widgets.chart`), so the
panels fill their plot area and no blank band opens between the title and the panels
(``tests/dashboard/test_browser_layout.py`` measures this in Chromium). Titles give the lead
time and, when the data has real timestamps, the valid time (:func:`valid_times`).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from dashboard.scales import Scale, error_scale, gate_scale, value_scale
from datasets.layout import LOCAL_TIME, UTC, time_zone_of
from datasets.timesteps import parse_time_step

GATE_NAMES = ("input", "forget", "output", "candidate", "cell", "hidden")
REDUCTIONS = ("mean", "max", "variance")
GATE_COLOURS = {
    "input": "#1f77b4",
    "forget": "#d62728",
    "output": "#2ca02c",
    "candidate": "#9467bd",
    "cell": "#ff7f0e",
    "hidden": "#17becf",
}
FRAME_MS = 350
FONT = "Source Sans Pro, Source Sans 3, sans-serif"
_AXIS = {
    "gridcolor": "#ebebeb",
    "linecolor": "#d0d0d0",
    "zerolinecolor": "#d8d8d8",
    "ticks": "",
    "automargin": True,
}
# A light template close to Streamlit's look (charts are drawn with theme=None for speed).
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": FONT, "size": 13, "color": "#31333F"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "colorway": ["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1"],
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "hoverlabel": {"font": {"family": FONT}},
        "title": {"font": {"size": 15}},
    }
)


# -- time axis ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeAxis:
    """Lead times of the animation steps in one display unit.

    Attributes
    ----------
    values : numpy.ndarray
        Lead time of every step ``0 .. Tc + H - 1`` in ``unit`` (context steps <= 0).
    unit : str
        ``"s"``, ``"min"``, ``"h"``, ``"days"`` or ``"frames"``.
    n_context : int
        Number of context steps ``Tc``.
    """

    values: np.ndarray
    unit: str
    n_context: int

    def label(self, step: int) -> str:
        """Lead-time label of a step, e.g. ``"+15 min"``, ``"-1 h"``, ``"+3 frames"``."""
        v = float(self.values[step])
        sign = "+" if v > 0 else ("-" if v < 0 else "±")
        num = f"{abs(v):.0f}" if float(abs(v)).is_integer() else f"{abs(v):.2g}"
        unit = self.unit
        if unit == "frames" and abs(v) == 1:
            unit = "frame"
        return f"{sign}{num} {unit}"

    def phase(self, step: int) -> str:
        return "context" if step < self.n_context else "forecast"

    @property
    def title(self) -> str:
        return f"lead time ({self.unit})"


def time_axis(ds: xr.Dataset) -> TimeAxis:
    """Lead times of the context and forecast steps of a rollout, in a readable unit."""
    n_ctx = int(ds.sizes.get("context_time", 0))
    n_fc = int(ds.sizes.get("time", 0))  # 0: an inspection (model.rollout.inspect_gates)
    steps = np.arange(-(n_ctx - 1), n_fc + 1) if n_ctx else np.arange(1, n_fc + 1)
    seconds = None
    if "lead_time" in ds.coords and np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
        lead = ds["lead_time"].values.astype("timedelta64[s]").astype(np.float64)
        if lead.size and lead[0] > 0:
            seconds = float(lead[0])
    if seconds is None:
        seconds = parse_time_step(ds.attrs.get("time_step"))
    if seconds is None:
        return TimeAxis(steps.astype(np.float64), "frames", n_ctx)
    span = seconds * max(abs(steps[0]), steps[-1])
    if seconds % 86400 == 0:
        unit, size = "days", 86400.0
    elif seconds % 3600 == 0 or (seconds % 1800 == 0 and span >= 6 * 3600):
        unit, size = "h", 3600.0
    elif seconds % 60 == 0:
        unit, size = "min", 60.0
    else:
        unit, size = "s", 1.0
    return TimeAxis(steps * seconds / size, unit, n_ctx)


def _datetimes(ds: xr.Dataset, dim: str) -> np.ndarray | None:
    for name in ("valid_time", "timestamp", dim):
        if name in ds.coords and ds.coords[name].dims == (dim,):
            values = np.asarray(ds.coords[name].values)
            if np.issubdtype(values.dtype, np.datetime64):
                return values.astype("datetime64[s]")
    if dim == "context_time" and "context_valid_time" in ds.coords:
        values = np.asarray(ds.coords["context_valid_time"].values)
        if np.issubdtype(values.dtype, np.datetime64):
            return values.astype("datetime64[s]")
    return None


def valid_times(ds: xr.Dataset) -> np.ndarray | None:
    """Valid time (``datetime64[s]``) of every animation step ``0 .. Tc + H - 1``, or None.

    Read from datetime coordinates of ``time``/``context_time`` (or ``valid_time``/``timestamp``
    coordinates along them; ``context_valid_time`` along ``context_time``); missing context times
    are filled back from the first forecast time and the time step. Synthetic data
    (``attrs["synthetic"]``) carries nominal timestamps only: None. The times are wall-clock times
    in the data's zone, ``time_zone_of(ds.attrs)`` (:func:`datasets.layout.time_zone_of`).
    """
    if ds.attrs.get("synthetic"):
        return None
    n_ctx = int(ds.sizes.get("context_time", 0))
    fc = _datetimes(ds, "time")
    if fc is None:
        return None
    ctx = _datetimes(ds, "context_time") if n_ctx else np.array([], "datetime64[s]")
    if ctx is None:
        step = parse_time_step(ds.attrs.get("time_step"))
        if step is None:
            return None
        lead0 = 1
        if "lead_time" in ds.coords and np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
            lead0 = float(ds["lead_time"].values[0].astype("timedelta64[s]").astype(float)) / step
        offsets = (np.arange(-(n_ctx - 1), 1) - lead0) * step
        ctx = fc[0] + offsets.astype("timedelta64[s]")
    return np.concatenate([ctx, fc])


def format_valid_time(value, zone: str) -> str:
    """A wall-clock time with its zone: ``"2016-07-11 14:35 UTC"``.

    Parameters
    ----------
    value : datetime64 or timestamp-like
        Naive wall-clock time in ``zone`` (seconds shown only when not zero).
    zone : str
        The dataset's ``attrs["time_zone"]`` (:func:`datasets.layout.time_zone_of`): ``"UTC"``; an
        IANA name, shown as its city and the UTC offset of that moment
        (``"2014-07-10 08:00 New York time (UTC-4)"``); ``"local"``: ``"local time"``.
    """
    t = pd.Timestamp(value)
    clock = t.strftime("%Y-%m-%d %H:%M:%S" if t.second else "%Y-%m-%d %H:%M")
    return f"{clock} {zone_label(zone, t)}"


def zone_label(zone: str, when=None) -> str:
    """How a title names the clock of ``zone`` (see :func:`format_valid_time`) at ``when``."""
    zone = str(zone or UTC).strip()
    if zone.upper() in (UTC, "Z", "ETC/UTC", "GMT"):
        return UTC
    if zone == LOCAL_TIME:
        return "local time"
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"time zone {zone}"
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    if when is None:
        return f"{city} time"
    offset = pd.Timestamp(when).to_pydatetime().replace(tzinfo=tz).utcoffset()
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    hours = f"{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
    return f"{city} time (UTC{sign}{hours})"


def step_time_label(axis: TimeAxis, times: np.ndarray | None, step: int, zone: str) -> str:
    """``"Lead time +20 min · valid 2016-07-11 14:35 UTC"``, or the lead alone without times.

    ``zone``: the clock of ``times`` (:func:`format_valid_time`).
    """
    label = f"Lead time {axis.label(step)}"
    if times is not None and 0 <= step < len(times):
        label += f" · valid {format_valid_time(times[step], zone)}"
    return label


# -- geometry ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Heatmap placement: origin, spacing and axis titles of the frame grid."""

    x0: float
    dx: float
    y0: float
    dy: float
    x_title: str
    y_title: str
    image: bool  # row 0 at the top (images, arrays without a projected y coordinate)
    width: int
    height: int


_METRES = ("m", "metre", "metres", "meter", "meters")
_LAT_NAMES = ("lat", "latitude")


def _coord_scale(step: float, units: str, km: float | None) -> tuple[float, str] | None:
    """Factor that turns a coordinate into display units, and the unit name; None: unknown."""
    u = units.strip().lower()
    if u == "km" or u == "kilometres" or u == "kilometers":
        return 1.0, "km"
    if u in _METRES:
        return 1e-3, "km"
    if km:
        step = abs(step)
        if math.isclose(step, km, rel_tol=1e-3):
            return 1.0, "km"  # coordinates already in km (the radar readers)
        if math.isclose(step, km * 1000.0, rel_tol=1e-3):
            return 1e-3, "km"  # metres
        if math.isclose(step, 1.0, rel_tol=1e-6):
            return float(km), "km"  # grid-cell indices of km kilometres
    return None


def _is_index(values: np.ndarray) -> bool:
    return bool(np.array_equal(values, np.arange(values.size)))


def frame_grid(ds: xr.Dataset) -> Grid:
    """Grid of the data frames: a map (north up, km when the scale is known) or an image.

    Numeric ``x``/``y`` coordinates other than plain pixel indices are map coordinates: ``y`` is
    drawn increasing upwards whatever its storage order, so a CF grid stored south-to-north and a
    radar grid stored north-to-south both show north up. Metres (``units`` "m") and radar grids
    with ``resolution_km`` are shown in km; latitude/longitude in degrees. Pixel indices give an
    image (row 0 at the top).
    """
    ny, nx = int(ds.sizes["y"]), int(ds.sizes["x"])
    xs, ys = ds.coords.get("x"), ds.coords.get("y")
    km = ds.attrs.get("resolution_km") or ds.attrs.get("pixel_km")
    km = float(km) if km else None
    if (
        xs is not None
        and ys is not None
        and nx > 1
        and ny > 1
        and np.issubdtype(xs.dtype, np.number)
        and np.issubdtype(ys.dtype, np.number)
        and (not (_is_index(xs.values) and _is_index(ys.values)) or km or xs.attrs.get("units"))
    ):
        xv, yv = xs.values.astype(float), ys.values.astype(float)
        dx, dy = float(xv[1] - xv[0]), float(yv[1] - yv[0])
        xu, yu = str(xs.attrs.get("units", "")), str(ys.attrs.get("units", ""))
        fx, fy = _coord_scale(dx, xu, km), _coord_scale(dy, yu, km)
        dims = str(ds.attrs.get("original_dims", "")).lower().split()
        if fx and fy:
            x_title, y_title = f"x ({fx[1]})", f"y ({fy[1]})"
            sx, sy = fx[0], fy[0]
        elif "degrees_north" in yu.lower() or any(d in _LAT_NAMES for d in dims):
            x_title, y_title, sx, sy = "longitude (°E)", "latitude (°N)", 1.0, 1.0
        else:
            x_title = f"x ({xu})" if xu else "x"
            y_title = f"y ({yu})" if yu else "y"
            sx = sy = 1.0
        return Grid(
            float(xv[0]) * sx, dx * sx, float(yv[0]) * sy, dy * sy,
            x_title, y_title, False, nx, ny,
        )  # fmt: skip
    return Grid(0.0, 1.0, 0.0, 1.0, "x (pixel)", "y (pixel)", True, nx, ny)


def north_up_rows(ds: xr.Dataset) -> bool:
    """True when row 0 of the frames is the southern edge (flip it to draw north up)."""
    grid = frame_grid(ds)
    return not grid.image and grid.dy > 0


def latent_grid(ds: xr.Dataset) -> tuple[Grid, int]:
    """Grid of the gates (latent resolution) in the frame's coordinates, and the patch size."""
    grid = frame_grid(ds)
    gy_dim, gx_dim = gate_dims(ds)
    gy = int(ds["gates"].sizes[gy_dim])
    patch = max(1, grid.height // gy)
    return (
        Grid(
            grid.x0 + (patch - 1) * grid.dx / 2,
            grid.dx * patch,
            grid.y0 + (patch - 1) * grid.dy / 2,
            grid.dy * patch,
            grid.x_title,
            grid.y_title,
            grid.image,
            int(ds["gates"].sizes[gx_dim]),
            gy,
        ),
        patch,
    )


def gate_dims(ds: xr.Dataset) -> tuple[str, str]:
    """Names of the latent y/x dims of ``gates`` (``gy``/``gx`` from the rollout, or ``y``/``x``)."""
    dims = ds["gates"].dims
    return ("gy", "gx") if "gy" in dims else ("y", "x")


def _heatmap(codes: np.ndarray, grid: Grid, coloraxis: str, name: str) -> go.Heatmap:
    return go.Heatmap(
        z=codes,
        x0=grid.x0,
        dx=grid.dx,
        y0=grid.y0,
        dy=grid.dy,
        coloraxis=coloraxis,
        name=name,
        hovertemplate=f"{name}<br>x=%{{x}}<br>y=%{{y}}<extra></extra>",
    )


def _whole_frame(grid: Grid) -> Grid:
    """A one-cell grid whose single cell covers all of ``grid`` (for blank panels)."""
    return dataclasses.replace(
        grid,
        x0=grid.x0 + (grid.width - 1) * grid.dx / 2,
        dx=grid.dx * grid.width,
        y0=grid.y0 + (grid.height - 1) * grid.dy / 2,
        dy=grid.dy * grid.height,
        width=1,
        height=1,
    )


def _blank(grid: Grid, coloraxis: str, name: str) -> go.Heatmap:
    """A one-cell heatmap of code 0 (no data) covering the whole frame: almost no payload."""
    trace = _heatmap(np.zeros((1, 1), np.uint8), _whole_frame(grid), coloraxis, name)
    return trace.update(hoverinfo="skip", hovertemplate=None)


PNG_URI = "data:image/png;base64,"
PNG_LEVEL = 3  # zlib level: 0.7 ms and ~16 kB for a 256x256 radar frame (level 9: 23 ms, 14 kB)


def png_source(codes: np.ndarray, palette: np.ndarray) -> str:
    """A ``data:`` URI of an indexed PNG whose pixel indices are ``codes`` and whose palette is
    ``palette`` (lossless: the browser draws exactly the heatmap colours, :func:`png_codes` reads
    the codes back).

    Parameters
    ----------
    codes : numpy.ndarray
        ``(H, W)`` ``uint8`` codes (:mod:`dashboard.scales`).
    palette : numpy.ndarray
        ``(256, 4)`` ``uint8`` RGBA of each code (:meth:`dashboard.scales.Scale.palette`).
    """
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(codes, dtype=np.uint8), mode="P")
    image.putpalette(palette[:, :3].tobytes(), rawmode="RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=PNG_LEVEL, transparency=palette[:, 3].tobytes())
    return PNG_URI + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_codes(source: str) -> np.ndarray:
    """The ``(H, W)`` ``uint8`` codes of a :func:`png_source` URI (rows as stored in the image)."""
    from PIL import Image

    if not source.startswith(PNG_URI):
        raise ValueError("not a PNG data URI of this dashboard")
    with Image.open(io.BytesIO(base64.b64decode(source[len(PNG_URI) :]))) as image:
        if image.mode != "P":
            raise ValueError(f"not an indexed PNG (mode {image.mode})")
        return np.asarray(image, dtype=np.uint8)


def _image_placement(grid: Grid, width: int, height: int) -> tuple[dict, bool, bool]:
    """``x0/dx/y0/dy`` of a ``go.Image`` over ``grid`` and whether rows/columns must be flipped.

    plotly draws an image's row 0 at ``y0`` going towards ``y0 + dy`` only for positive steps
    (a negative ``dy`` is drawn as if positive), so a grid stored north to south is sent flipped.
    """
    flip_y, flip_x = grid.dy < 0, grid.dx < 0
    y0 = grid.y0 + (height - 1) * grid.dy if flip_y else grid.y0
    x0 = grid.x0 + (width - 1) * grid.dx if flip_x else grid.x0
    return {"x0": x0, "dx": abs(grid.dx), "y0": y0, "dy": abs(grid.dy)}, flip_y, flip_x


def _image(codes: np.ndarray, grid: Grid, palette: np.ndarray, name: str) -> go.Image:
    """A frame of codes as an indexed PNG image on ``grid`` (a few kB instead of a heatmap's
    64 kB of codes, and an ``<image>`` the browser draws without colour-mapping each cell)."""
    place, flip_y, flip_x = _image_placement(grid, codes.shape[1], codes.shape[0])
    shown = codes[::-1] if flip_y else codes
    shown = shown[:, ::-1] if flip_x else shown
    return go.Image(
        source=png_source(shown, palette),
        name=name,
        meta={"flip_y": flip_y, "flip_x": flip_x},
        hovertemplate=f"{name}<br>x=%{{x}}<br>y=%{{y}}<extra></extra>",
        **place,
    )


def _blank_image(grid: Grid, palette: np.ndarray, name: str) -> go.Image:
    """A one-pixel image of code 0 (no data) covering the whole frame: almost no payload."""
    trace = _image(np.zeros((1, 1), np.uint8), _whole_frame(grid), palette, name)
    return trace.update(hoverinfo="skip", hovertemplate=None)


def panel_codes(trace) -> np.ndarray:
    """The codes of a forecast panel (a ``go.Image``/``go.Heatmap`` or its JSON dict) in the
    data's row and column order (row 0 = the first row of the rollout's ``y``)."""
    get = trace.get if isinstance(trace, dict) else lambda key, default=None: getattr(trace, key)
    source = get("source", None)
    if not source:
        return np.asarray(get("z", None), dtype=np.uint8)
    codes = png_codes(source)
    flips = get("meta", None) or {}
    codes = codes[::-1] if flips.get("flip_y") else codes
    return codes[:, ::-1] if flips.get("flip_x") else codes


def _colorbar_holder(grid: Grid, coloraxis: str) -> go.Heatmap:
    """An invisible one-cell heatmap that keeps ``coloraxis``'s colour bar on the figure (the
    panels themselves are images, which have no colour axis)."""
    return _blank(grid, coloraxis, coloraxis).update(opacity=0)


def _style_axes(fig: go.Figure, grid: Grid, n_cols: int, *, row: int = 1, rows: int = 1) -> None:
    for col in range(1, n_cols + 1):
        idx = (row - 1) * n_cols + col
        suffix = "" if idx == 1 else str(idx)
        fig.update_xaxes(
            title_text=grid.x_title,
            title_standoff=4,
            title_font={"size": 13},
            range=[grid.x0 - grid.dx / 2, grid.x0 + (grid.width - 0.5) * grid.dx],
            constrain="domain",
            showgrid=False,
            zeroline=False,
            showline=True,
            mirror=True,
            linecolor="#b0b0b0",
            row=row,
            col=col,
            **({"matches": "x"} if idx > 1 else {}),
        )
        yr = [grid.y0 - grid.dy / 2, grid.y0 + (grid.height - 0.5) * grid.dy]
        if grid.image == (grid.dy > 0):
            yr = yr[::-1]
        fig.update_yaxes(
            title_text=grid.y_title if col == 1 else None,
            range=yr,
            scaleanchor=f"x{suffix}",
            scaleratio=1,
            constrain="domain",
            constraintoward="bottom",
            showgrid=False,
            zeroline=False,
            showline=True,
            mirror=True,
            linecolor="#b0b0b0",
            row=row,
            col=col,
            **({"matches": "y"} if idx > 1 else {}),
        )


# Pixel sizes of the parts below the panels (the layout is in pixels so it holds at any width).
AXIS_BELOW_PX = 48  # x tick labels and the x axis title
COLORBAR_BAND_PX = 62  # a horizontal colour bar: title above, bar, tick labels below
CONTROLS_PX = 100  # play/pause + current value on one line, then the slider rail and labels
BUTTON_FONT = 12


Y_AXIS_PX = 72
"""Room plotly's automargin takes at the left for the first panel's y tick labels and title,
plus the left and right margins, over-estimated on purpose (see :func:`fit_height`)."""
MAX_CHART_PX = 900
"""The tallest a chart of :func:`fit_height` grows (beyond, its panels leave room at the sides)."""
NARROWEST_PX = 560
"""The narrowest chart laid out for: the main column of a 1024 px window."""
ROW_SLACK_PX = 40
"""How much a gap between rows of panels may grow beyond its need before the chart stops growing
(:func:`fit_height`'s ``max_gap_px``)."""


def row_spacing(
    gap_px: float, *, rows: int, cols: int, horizontal_spacing: float, aspect: float = 1.0
) -> float:
    """plotly's ``vertical_spacing`` that leaves ``gap_px`` between rows of square-pixel panels in
    the narrowest chart (:data:`NARROWEST_PX`); wider, the gap grows with the panels.

    ``aspect``: the panels' data height over width.
    """
    if rows < 2:
        return 0.0
    panel = (NARROWEST_PX - Y_AXIS_PX) * (1 - (cols - 1) * horizontal_spacing) / cols * aspect
    return gap_px / (rows * panel + (rows - 1) * gap_px)


def aspect_of(grid: Grid) -> float:
    """The drawn height over width of a panel of ``grid`` (square pixels in data units)."""
    return abs(grid.height * grid.dy) / abs(grid.width * grid.dx)


def fit_height(
    fig: go.Figure,
    aspect: float,
    *,
    inset_px: float = Y_AXIS_PX,
    max_px: float = MAX_CHART_PX,
    max_gap_px: float | None = None,
) -> dict:
    """How tall ``fig`` must be for its square-pixel panels to fill their plot area at any width.

    The panels keep square pixels (``scaleanchor``), so at a fixed height a narrow chart leaves a
    blank band above them. With this rule the chart's height follows its width, and everything
    around the panels is placed in pixels from them (titles, colour bars, controls), so nothing
    drifts apart. :func:`dashboard.widgets.chart` turns it into the CSS height of the chart's box:

    ``height = min(fixed_px + per_px * (width - inset_px), max_px)`` in CSS pixels, ``width`` the
    chart's width.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        A figure with its subplots and margins set; the first subplot's domains give the panel
        sizes (all panels alike).
    aspect : float
        A panel's drawn height over its width (:func:`aspect_of`).
    inset_px : float
        Width taken beside the panels (margins, y-axis labels, a vertical colour bar). Better
        over-estimated: the panels then fill the height exactly and leave a few pixels spare at
        the sides, never a band above.
    max_px : float
        The tallest the chart grows; beyond, its panels leave room at the sides.
    max_gap_px : float, optional
        With several rows: the largest gap between two rows (plotly's row gap is a fraction of
        the plot height, so it grows with the chart); the chart stops growing there.

    Returns
    -------
    dict
        ``{"fixed_px", "per_px", "inset_px", "max_px"}``, stored as ``layout.meta["fit"]``.
    """
    xdom = fig.layout.xaxis.domain or (0.0, 1.0)
    ydom = fig.layout.yaxis.domain or (0.0, 1.0)
    margin = fig.layout.margin
    fixed = float(margin.t + margin.b)
    per_px = aspect * (xdom[1] - xdom[0]) / (ydom[1] - ydom[0])
    cap = float(max_px)
    rows = {tuple(a.domain) for a in fig.select_yaxes() if a.domain}
    if max_gap_px is not None and len(rows) > 1:
        gap = (1.0 - sum(d[1] - d[0] for d in rows)) / (len(rows) - 1)  # share of one row gap
        cap = min(cap, fixed + max_gap_px / gap)
    return {
        "fixed_px": round(fixed, 1),
        "per_px": round(per_px, 5),
        "inset_px": float(inset_px),
        "max_px": round(cap, 1),
    }


def _titles_on_panels(fig: go.Figure, n_panels: int, *, size: int) -> None:
    """Pin the subplot titles to their panels' drawn tops (``x/y domain`` references).

    Square panels (``scaleanchor``) shrink inside their subplot cell when the page is narrow;
    titles pinned to the cell would float above them, titles pinned to the axis domain follow.
    """
    for i, ann in enumerate(list(fig.layout.annotations)[:n_panels]):
        suffix = "" if i == 0 else str(i + 1)
        ann.update(
            xref=f"x{suffix} domain",
            yref=f"y{suffix} domain",
            x=0.5,
            y=1.0,
            xanchor="center",
            yanchor="bottom",
            yshift=2,
            font={"size": size},
        )


def _animation_controls(
    fig: go.Figure,
    names: list[str],
    labels: list[str],
    active: int,
    prefix: str,
    *,
    top_px: float,
) -> None:
    """One play/pause menu and one slider driving all panels of ``fig``.

    Both start ``top_px`` pixels below the plot area (``y=0`` plus a pad in pixels, so at any
    chart height): the buttons at the left, the slider's current value right-aligned on the same
    line, the slider rail under both, so the buttons never cover the label nor the rail at any
    width.
    """
    play = {
        "frame": {"duration": FRAME_MS, "redraw": True},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    y, pad = 0.0, {"t": top_px, "r": 0, "b": 0, "l": 0}
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "showactive": False,
                "x": 0.0,
                "y": y,
                "xanchor": "left",
                "yanchor": "top",
                "pad": pad,
                "font": {"size": BUTTON_FONT},
                "buttons": [
                    # from the chosen step (then from where it was paused), never from frame 0
                    {"label": "▶ Play", "method": "animate", "args": [names[active:], play]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        sliders=[
            {
                "active": active,
                "x": 0.0,
                "len": 1.0,
                "xanchor": "left",
                "y": y,
                "yanchor": "top",
                "pad": pad,
                "font": {"size": 11},
                "currentvalue": {
                    "prefix": prefix,
                    "xanchor": "right",
                    "offset": 16,
                    "font": {"size": 13},
                },
                "steps": [
                    {
                        "label": lab,
                        "method": "animate",
                        "args": [
                            [name],
                            {
                                "mode": "immediate",
                                "frame": {"duration": 0, "redraw": True},
                                "transition": {"duration": 0},
                            },
                        ],
                    }
                    for name, lab in zip(names, labels, strict=True)
                ],
            }
        ],
    )


def _hbar(
    scale: Scale, title: str, *, x0: float, x1: float, top_px: float, y: float = 0.0, **style
) -> dict:
    """A horizontal colour bar spanning paper ``x0 .. x1``, its top ``top_px`` pixels below
    paper ``y`` (the bottom of a row of panels; 0: the plot area's), title above the bar: placed
    in pixels, so at any chart height.

    plotly pads the bar by ``ypad = top_px`` on both sides inside its transparent, click-through
    background, and grows the bottom margin when that does not fit: under the last row the
    margin must hold :func:`bar_margin`.
    """
    bar = {
        "title": title,
        "orientation": "h",
        "x": (x0 + x1) / 2,
        "xanchor": "center",
        "len": max(0.05, x1 - x0),
        "y": y,
        "yanchor": "top",
        "ypad": top_px,
        "thickness": 10,
        "tickfont": {"size": 10},
        "title_side": "top",
        "title_font": {"size": 12},
        "outlinewidth": 0,
        "xpad": 0,
    }
    return scale.coloraxis(**{**bar, **style})


def bar_margin(bar_px: float, top_px: float = AXIS_BELOW_PX) -> float:
    """The bottom margin that holds a colour bar ``bar_px`` tall hung ``top_px`` under the plot
    area by :func:`_hbar`, with plotly's padding below it (else plotly grows the margin and the
    panels no longer fill the height :func:`fit_height` gives)."""
    return 2 * top_px + bar_px


def value_label(scale: Scale, units: str) -> str:
    """Colorbar title: ``"rain rate (mm/h)"``, or just the units when they already say what it is."""
    if not units:
        return scale.label
    if scale.label and scale.label.split()[0].lower() in units.lower():
        return units
    return f"{scale.label} ({units})"


def _scale_meta(scale: Scale) -> dict:
    return {
        "vmin": scale.vmin,
        "vmax": scale.vmax,
        "log": scale.log,
        "floor": bool(scale.floor_colour),
        "units": scale.units,
    }


def scale_from_meta(meta: dict) -> Scale:
    """Rebuild a :class:`Scale` (enough to decode codes) from a figure's ``layout.meta`` entry."""
    return Scale(
        meta["vmin"],
        meta["vmax"],
        meta["units"],
        ((0.0, "#000"), (1.0, "#fff")),
        log=meta["log"],
        floor_colour="#fff" if meta["floor"] else None,
    )


def domain_of(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("domain", "video"))


def units_of(ds: xr.Dataset) -> str:
    return str(ds["prediction"].attrs.get("units") or ds.attrs.get("units") or "")


def _channel_name(ds: xr.Dataset, channel: int) -> str | None:
    if int(ds.sizes.get("channel", 1)) <= 1:
        return None
    if "channel" in ds.coords:
        return str(ds["channel"].values[channel])
    return f"channel {channel}"


def n_steps(ds: xr.Dataset, *, show_context: bool = True) -> int:
    """Number of animation steps of the forecast view."""
    return int(ds.sizes["time"]) + (int(ds.sizes.get("context_time", 0)) if show_context else 0)


FORECAST_HEIGHT = 560  # without a browser; in the page the height follows the width (fit_height)
FORECAST_MARGIN = {"l": 10, "r": 10, "t": 92, "b": AXIS_BELOW_PX + COLORBAR_BAND_PX + CONTROLS_PX}
TITLE_TOP_PX = 8


def _title(text: str, *, size: int = 15) -> dict:
    """A left-aligned figure title at the top edge (pixels from the top, whatever the height)."""
    return {
        "text": text,
        "x": 0.0,
        "xref": "paper",
        "xanchor": "left",
        "y": 1.0,
        "yref": "container",
        "yanchor": "top",
        # plotly anchors a multi-line title by its first line: leave room for the rest above
        "pad": {"t": TITLE_TOP_PX + 12 * text.count("<br>")},
        "font": {"size": size},
    }


LEGEND_PX = 56  # room for a horizontal legend under the x axis title (two lines when narrow)


def _bottom_legend() -> dict:
    """A horizontal legend at the bottom edge of the figure, under the axes (never on a plot)."""
    return {
        "orientation": "h",
        "x": 0.0,
        "xanchor": "left",
        "xref": "paper",
        "y": 0.0,
        "yref": "container",
        "yanchor": "bottom",
        "font": {"size": 12},
    }


def _source_label(ds: xr.Dataset) -> str:
    """``"radar_synthetic · tiny_radar"``: the dataset and the checkpoint of a rollout."""
    parts = [str(ds.attrs.get(k) or "") for k in ("dataset", "checkpoint")]
    return " · ".join(p for p in parts if p)


# -- forecast view -----------------------------------------------------------------------------
def _forecast_panels(
    s: int,
    n_ctx: int,
    ctx: np.ndarray | None,
    pred: np.ndarray,
    truth: np.ndarray | None,
    err: np.ndarray | None,
    scale: Scale,
    escale: Scale,
    grid: Grid,
    n_cols: int,
) -> list[go.Image]:
    """The panels of animation step ``s``: a context frame (``s < n_ctx``) or a forecast step."""
    values, errors = scale.palette(), escale.palette()
    if s < n_ctx:
        out = [
            _blank_image(grid, values, "prediction"),
            _image(scale.encode(ctx[s]), grid, values, "observed"),
        ]
        if n_cols == 3:
            out.append(_blank_image(grid, errors, "error"))
        return out
    k = s - n_ctx
    out = [_image(scale.encode(pred[k]), grid, values, "prediction")]
    if truth is not None:
        out.append(_image(scale.encode(truth[k]), grid, values, "truth"))
        out.append(_image(escale.encode(err[k]), grid, errors, "error"))
    else:
        out.append(_blank_image(grid, values, "observed"))
    return out


def _forecast_title(
    s: int,
    axis: TimeAxis,
    times: np.ndarray | None,
    horizon: int,
    beyond_training: int | None,
    ch_name: str,
    zone: str,
) -> str:
    """The figure title of animation step ``s``: its time (clock ``zone``), then what the frame is."""
    n_ctx = axis.n_context
    k = s - n_ctx + 1
    if s < n_ctx:
        what = f"Context frame {s + 1}/{n_ctx} (input)"
    else:
        what = f"Forecast step {k}/{horizon}"
        if beyond_training is not None and k > beyond_training:
            what += " — beyond training horizon"
    extra = f" · {ch_name}" if ch_name else ""
    return f"{step_time_label(axis, times, s, zone)}<br><span style='font-size:12px'>{what}{extra}</span>"


def _forecast_colorbars(
    fig: go.Figure, scale: Scale, escale: Scale, units: str, n_cols: int
) -> dict:
    """Colour bars under the panels: values under prediction/truth, the error under its panel."""
    dom = [fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain for i in range(n_cols)]
    value_end = dom[1][1] if n_cols == 3 else dom[-1][1]
    layout = {
        "coloraxis": _hbar(
            scale,
            value_label(scale, units),
            x0=dom[0][0],
            x1=value_end,
            top_px=AXIS_BELOW_PX,
        )
    }
    if n_cols == 3:
        layout["coloraxis2"] = _hbar(
            escale,
            f"error ({units})" if units else "error",
            x0=dom[2][0],
            x1=dom[2][1],
            top_px=AXIS_BELOW_PX,
        )
    return layout


def forecast_figure(
    ds: xr.Dataset,
    *,
    channel: int = 0,
    step: int | None = None,
    show_context: bool = True,
    beyond_training: int | None = None,
) -> go.Figure:
    """Prediction | truth | error panels animated in sync (one play/pause, one slider).

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout (see module doc).
    channel : int
        Data channel shown (e.g. inflow/outflow for traffic).
    step : int, optional
        Animation step shown first (``0 .. Tc + H - 1``; default: the first forecast step).
    show_context : bool
        Include the context frames (lead <= 0) in the animation.
    beyond_training : int, optional
        Forecast steps after this many are flagged "beyond training horizon" in the title.

    Returns
    -------
    plotly.graph_objects.Figure
        Heatmaps of ``uint8`` codes; ``layout.meta`` = ``{"value_scale", "error_scale", "steps",
        "kind": "forecast"}``.
    """
    axis = time_axis(ds)
    n_ctx = axis.n_context
    units = units_of(ds)
    domain = domain_of(ds)
    pred = ds["prediction"].isel(channel=channel).values  # (H, y, x)
    ctx = ds["context"].isel(channel=channel).values if "context" in ds else None  # (Tc, y, x)
    truth = ds["truth"].isel(channel=channel).values if "truth" in ds else None  # (H, y, x)
    scale = value_scale(domain, units=units, arrays=(ctx, truth, pred))
    err = pred - truth if truth is not None else None
    escale = error_scale(units=units, arrays=(err,) if err is not None else ())
    grid = frame_grid(ds)

    titles = ["Prediction", "Truth"] + (["Error (prediction − truth)"] if err is not None else [])
    if truth is None:
        titles = ["Prediction", "Observed (context)"]
    n_cols = len(titles)
    fig = make_subplots(rows=1, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.04)

    first = 0 if show_context else n_ctx
    steps = list(range(first, n_ctx + pred.shape[0]))
    if step is None or step not in steps:
        step = n_ctx if n_ctx < n_ctx + pred.shape[0] else steps[0]

    def panels(s: int) -> list[go.Image]:
        return _forecast_panels(s, n_ctx, ctx, pred, truth, err, scale, escale, grid, n_cols)

    ch_name = _channel_name(ds, channel)

    times, zone = valid_times(ds), time_zone_of(ds.attrs)

    def title(s: int) -> str:
        return _forecast_title(s, axis, times, pred.shape[0], beyond_training, ch_name, zone)

    names = [str(s) for s in steps]
    fig.frames = [
        go.Frame(
            name=str(s),
            data=panels(s),
            traces=list(range(n_cols)),
            layout={"title": {"text": title(s)}},
        )
        for s in steps
    ]
    for col, trace in enumerate(panels(step), start=1):
        fig.add_trace(trace, row=1, col=col)
    fig.add_trace(_colorbar_holder(grid, "coloraxis"), row=1, col=1)
    if n_cols == 3:
        fig.add_trace(_colorbar_holder(grid, "coloraxis2"), row=1, col=3)
    _style_axes(fig, grid, n_cols)
    for col in range(2, n_cols + 1):
        fig.update_yaxes(showticklabels=False, row=1, col=col)  # same y as the first panel
    _titles_on_panels(fig, n_cols, size=14)
    layout = _forecast_colorbars(fig, scale, escale, units, n_cols)
    fig.update_layout(
        **layout,
        title=_title(title(step)),
        height=FORECAST_HEIGHT,
        margin=FORECAST_MARGIN,
        template=TEMPLATE,
        meta={
            "kind": "forecast",
            "value_scale": _scale_meta(scale),
            "error_scale": _scale_meta(escale),
            "steps": steps,
            "labels": [axis.label(s) for s in steps],
            "valid_times": [format_valid_time(t, zone) for t in times]
            if times is not None
            else None,
            "n_context": n_ctx,
            "dataset": str(ds.attrs.get("dataset", "")),
            "sample": int(ds.attrs.get("sample", 0)),
            "channel": channel,
        },
    )
    labels = [axis.label(s) for s in steps]
    _animation_controls(
        fig,
        names,
        labels,
        steps.index(step),
        "Lead time: ",
        top_px=AXIS_BELOW_PX + COLORBAR_BAND_PX,
    )
    fig.layout.meta["fit"] = fit_height(fig, aspect_of(grid))
    return fig


GATES_TICKS_PX = 24  # x tick labels of the upper row
GATES_BAR_PX = 34  # a gate's colour bar (bar and tick labels) under its panel
GATES_ROW_GAP_PX = GATES_TICKS_PX + GATES_BAR_PX + 30  # ... then the lower row's titles
GATES_MARGIN = {"l": 10, "r": 10, "t": 90, "b": bar_margin(GATES_BAR_PX)}
GATES_HEIGHT = 640  # without a browser (fit_height)
GATE_SYMBOLS = {
    "input": "i_t",
    "forget": "f_t",
    "output": "o_t",
    "candidate": "g_t",
    "cell": "C_t",
    "hidden": "H_t",
}
"""The symbol of each gate and state in the cell equations (``model.gate_lab.cell_equations``)."""


def symbol_html(gate: str) -> str:
    """A gate's symbol as plotly text: ``f<sub>t</sub>``."""
    sym = GATE_SYMBOLS.get(gate)
    if sym is None:
        return ""
    base, sub = sym.split("_")
    return f"{base}<sub>{sub}</sub>"


# -- gates view --------------------------------------------------------------------------------
def reduce_hidden(
    gates: xr.DataArray, reduction: str | int, *, focus: str | None = None
) -> tuple[xr.DataArray, dict[str, str]]:
    """Reduce the hidden channels of ``gates (gate, step, hidden, y, x)`` for display.

    ``reduction`` is ``"mean"``, ``"max"``, ``"variance"`` (the one channel whose ``focus`` gate,
    default the hidden state, varies most over steps and pixels; every panel shows that same
    channel) or a channel index. NaN padding channels (past a narrower layer's width) are left
    out. Returns ``(gate, step, y, x)`` float32 and a description per gate (e.g.
    ``"channel 17"``).
    """
    g = gates.astype(np.float32)
    names = [str(v) for v in g["gate"].values]
    if reduction == "mean":
        return g.mean("hidden"), dict.fromkeys(names, "mean over channels")
    if reduction == "max":
        return g.max("hidden"), dict.fromkeys(names, "max over channels")
    if reduction == "variance":
        focus = focus if focus in names else ("hidden" if "hidden" in names else names[0])
        spatial = tuple(d for d in g.dims if d not in ("gate", "hidden"))
        var = g.sel(gate=focus).var(dim=spatial).fillna(-1.0)  # (hidden,); padding never wins
        best = int(var.argmax("hidden"))
        return g.isel(hidden=best), dict.fromkeys(
            names, f"channel {best} (most variance in {focus})"
        )
    c = int(reduction)
    if not 0 <= c < g.sizes["hidden"]:
        raise ValueError(f"hidden channel {c} out of range 0..{g.sizes['hidden'] - 1}")
    return g.isel(hidden=c), dict.fromkeys(names, f"channel {c}")


def gates_figure(
    ds: xr.Dataset,
    *,
    layer: int = 0,
    reduction: str | int = "mean",
    step: int | None = None,
    gate: str | None = None,
    equations: dict[str, str] | None = None,
) -> go.Figure:
    """Heatmaps of the six gates and states of one layer at one step.

    The page's step control chooses the step (one time control for the forecast, the gates and
    the probe), so this figure has no slider of its own.

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``gates (layer, gate, step, hidden, y, x)``.
    layer : int
        Layer (a value of the ``layer`` coordinate).
    reduction : {"mean", "max", "variance"} or int
        How the hidden channels are shown (see :func:`reduce_hidden`); one choice for all six
        panels.
    step : int, optional
        Step shown (default: the first forecast step).
    gate : str, optional
        Gate outlined as the focus of the view (and the one ``"variance"`` ranks channels by).
    equations : dict of str, optional
        The cell equations as text keyed by symbol (``model.gate_lab.cell_equations(...,
        fmt="text")``); each panel's hover names its equation.

    Returns
    -------
    plotly.graph_objects.Figure
        2 x 3 heatmaps of ``uint8`` codes with one relabelled colorbar each, titles with the
        equations' symbols; ``layout.meta`` holds the scale of each gate and the step.
    """
    if "gates" not in ds:
        raise ValueError("this rollout has no gates; run it with capture=True")
    axis = time_axis(ds)
    sub = ds["gates"].sel(layer=layer)  # (gate, step, hidden, y, x)
    n_steps_g = int(sub.sizes["step"])
    if step is None or not 0 <= step < n_steps_g:
        step = min(axis.n_context, n_steps_g - 1)
    reduced, desc = reduce_hidden(sub, reduction, focus=gate)  # (gate, step, y, x)
    names = [str(v) for v in reduced["gate"].values]
    values = reduced.values  # (gate, step, y, x)
    scales = [gate_scale(n, arrays=(values[i],)) for i, n in enumerate(names)]
    grid, _ = latent_grid(ds)

    def label(n: str) -> str:
        head = f"{n} {symbol_html(n)}".strip()
        return f"<b>{head}</b>" if n == gate else head

    fig = make_subplots(
        rows=2,
        cols=3,
        subplot_titles=[label(n) for n in names],
        horizontal_spacing=0.05,
        vertical_spacing=row_spacing(
            GATES_ROW_GAP_PX, rows=2, cols=3, horizontal_spacing=0.05, aspect=aspect_of(grid)
        ),
    )
    for i, n in enumerate(names):
        trace = _heatmap(scales[i].encode(values[i, step]), grid, _ca(i), n)
        equation = (equations or {}).get(GATE_SYMBOLS.get(n, ""), "")
        trace.hovertemplate = (
            f"{n} {GATE_SYMBOLS.get(n, '')}<br>{equation}<br>x=%{{x}}<br>y=%{{y}}<extra></extra>"
        )
        fig.add_trace(trace, row=i // 3 + 1, col=i % 3 + 1)
    for row in (1, 2):
        _style_axes(fig, grid, 3, row=row, rows=2)
    fig.update_xaxes(title_text=None, row=1)
    fig.update_yaxes(showticklabels=False, col=2)
    fig.update_yaxes(showticklabels=False, col=3)
    _titles_on_panels(fig, len(names), size=12)
    layout = _gate_colorbars(fig, scales)
    times = valid_times(ds)
    phase = "context" if step < axis.n_context else "forecast"
    lead = axis.label(step) if step < len(axis.values) else f"step {step}"
    when = (
        f"valid {format_valid_time(times[step], time_zone_of(ds.attrs))} · "
        if times is not None
        else ""
    )
    shown = desc[names[0]]  # one reduction for all six panels
    fig.update_layout(
        **layout,
        title=_title(
            f"Layer {layer} gates at {lead} ({phase}, step {step})<br>"
            f"<span style='font-size:12px'>{when}{shown}</span>"
        ),
        height=GATES_HEIGHT,
        margin=GATES_MARGIN,
        template=TEMPLATE,
        meta={
            "kind": "gates",
            "gates": names,
            "scales": [_scale_meta(s) for s in scales],
            "step": step,
            "layer": layer,
            "reduction": reduction,
            "shown": shown,
        },
    )
    if gate in names:  # the focus gate: its panel outlined in red
        _outline(fig, names.index(gate))
    fig.layout.meta["fit"] = fit_height(
        fig, aspect_of(grid), max_gap_px=GATES_ROW_GAP_PX + ROW_SLACK_PX
    )
    return fig


def _gate_colorbars(fig: go.Figure, scales: list[Scale]) -> dict:
    """One horizontal colour bar under each gate panel, in pixels from the panel's bottom."""
    layout: dict = {}
    for i, scale in enumerate(scales):
        xdom = fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain
        ydom = fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain
        width = (xdom[1] - xdom[0]) * 0.8
        layout[_ca(i)] = _hbar(
            scale,
            "",
            x0=(xdom[0] + xdom[1] - width) / 2,
            x1=(xdom[0] + xdom[1] + width) / 2,
            y=ydom[0],
            top_px=GATES_TICKS_PX if i < 3 else AXIS_BELOW_PX,
            thickness=8,
        )
    return layout


def _outline(fig: go.Figure, i: int, colour: str = "#ff4b4b") -> None:
    """A frame around panel ``i`` (0-based, in subplot order)."""
    suffix = "" if i == 0 else str(i + 1)
    fig.add_shape(
        type="rect",
        xref=f"x{suffix} domain",
        yref=f"y{suffix} domain",
        x0=0,
        x1=1,
        y0=0,
        y1=1,
        line={"color": colour, "width": 3},
    )


def _ca(i: int) -> str:
    return "coloraxis" if i == 0 else f"coloraxis{i + 1}"


def gate_means_figure(
    ds: xr.Dataset,
    *,
    layer: int = 0,
    step: int | None = None,
    gate: str | None = None,
    unit: int | None = None,
) -> go.Figure:
    """Line chart of each gate's mean (over channels and pixels) per step for one layer.

    The top panel shows the sigmoid gates (input, forget, output; 0..1): how much the network
    writes, keeps and exposes per step; the bottom one the candidate, cell and hidden states.
    With ``unit`` (a hidden channel) the means are of that unit only, over the pixels (the unit
    browser's time series).
    """
    axis = time_axis(ds)
    sub = ds["gates"].sel(layer=layer).astype(np.float32)
    if unit is not None:
        sub = sub.isel(hidden=[int(unit)])
    means = sub.mean(dim=("hidden", *gate_dims(ds)))  # (gate, step)
    x = axis.values[: means.sizes["step"]]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=("input, forget, output gates (0–1)", "candidate, cell and hidden state"),
    )
    for name in [str(v) for v in means["gate"].values]:
        row = 1 if name in ("input", "forget", "output") else 2
        fig.add_trace(
            go.Scatter(
                x=x,
                y=means.sel(gate=name).values.astype(np.float64),
                mode="lines+markers",
                name=name,
                line={"color": GATE_COLOURS.get(name), "width": 3.5 if name == gate else 1.8},
                marker={"size": 4},
                hovertemplate=f"{name}: %{{y:.3f}}<br>{axis.title}: %{{x}}<extra></extra>",
            ),
            row=row,
            col=1,
        )
    boundary = (
        0.5 * (x[axis.n_context - 1] + x[axis.n_context]) if 0 < axis.n_context < len(x) else None
    )
    for row in (1, 2):
        if boundary is not None:
            fig.add_vline(x=boundary, line={"dash": "dot", "color": "#888"}, row=row, col=1)
        if step is not None and 0 <= step < len(x):
            fig.add_vline(x=float(x[step]), line={"color": "#ff4b4b", "width": 1.5}, row=row, col=1)
    fig.update_yaxes(title_text="mean activation", row=1, col=1, range=[0, 1])
    fig.update_yaxes(title_text="mean value", row=2, col=1)
    fig.update_xaxes(title_text=axis.title, title_standoff=4, row=2, col=1)
    fig.update_layout(
        title=_title(
            f"Layer {layer}{'' if unit is None else f', unit {unit}'}: mean of each gate per "
            "step<br><span style='font-size:12px'>the forecast starts after the dotted line</span>",
            size=14,
        ),
        height=520,
        margin={"l": 10, "r": 10, "t": 80, "b": 40 + LEGEND_PX},
        legend=_bottom_legend(),
        template=TEMPLATE,
        meta={"kind": "gate_means", "layer": layer, "unit": unit},
    )
    for ann in fig.layout.annotations:
        ann.font = {"size": 13}
    return fig


# -- pixel probe -------------------------------------------------------------------------------
def probe_series(ds: xr.Dataset, *, y: int, x: int, channel: int = 0) -> pd.DataFrame:
    """Values at one pixel over all steps: observed/truth, prediction and every gate per layer.

    Returns a DataFrame indexed by step with columns ``lead``, ``observed``, ``prediction`` and
    ``L{layer} {gate}`` (gates at the latent pixel ``(y // patch, x // patch)``, channel mean).
    """
    axis = time_axis(ds)
    n_ctx = axis.n_context
    n_fc = int(ds.sizes["time"])
    total = n_ctx + n_fc
    observed = np.full(total, np.nan)
    predicted = np.full(total, np.nan)
    if "context" in ds:
        observed[:n_ctx] = ds["context"].isel(channel=channel, y=y, x=x).values
    if "truth" in ds:
        observed[n_ctx:] = ds["truth"].isel(channel=channel, y=y, x=x).values
    predicted[n_ctx:] = ds["prediction"].isel(channel=channel, y=y, x=x).values
    cols = {"lead": axis.values[:total], "observed": observed, "prediction": predicted}
    if "gates" in ds:
        _, patch = latent_grid(ds)
        gy_dim, gx_dim = gate_dims(ds)
        g = ds["gates"].isel({gy_dim: y // patch, gx_dim: x // patch}).astype(np.float32)
        g = g.mean("hidden")
        for layer in g["layer"].values:
            for gate in g["gate"].values:
                series = np.full(total, np.nan)
                vals = g.sel(layer=layer, gate=gate).values
                series[: min(total, vals.size)] = vals[:total]
                cols[f"L{int(layer)} {gate}"] = series
    return pd.DataFrame(cols, index=pd.RangeIndex(total, name="step"))


def probe_figure(
    ds: xr.Dataset, *, y: int, x: int, channel: int = 0, step: int | None = None
) -> go.Figure:
    """Time series at one pixel: prediction vs truth, then every gate of each layer."""
    axis = time_axis(ds)
    table = probe_series(ds, y=y, x=x, channel=channel)
    layers = sorted({int(c.split()[0][1:]) for c in table.columns if c.startswith("L")})
    units = units_of(ds)
    titles = [f"value at pixel (x={x}, y={y})"] + [
        f"layer {layer}: gates at latent pixel (channel mean)" for layer in layers
    ]
    fig = make_subplots(
        rows=1 + len(layers),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=titles,
    )
    lead = table["lead"].values
    fig.add_trace(
        go.Scatter(
            x=lead,
            y=table["observed"],
            name="truth / observed",
            mode="lines+markers",
            line={"color": "#333"},
            legendgroup="values",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=lead,
            y=table["prediction"],
            name="prediction",
            mode="lines+markers",
            line={"color": "#ff4b4b"},
            legendgroup="values",
        ),
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text=units or "value", row=1, col=1)
    for r, layer in enumerate(layers, start=2):
        for gate in GATE_NAMES:
            col = f"L{layer} {gate}"
            if col not in table:
                continue
            fig.add_trace(
                go.Scatter(
                    x=lead,
                    y=table[col],
                    name=gate,
                    mode="lines",
                    line={"color": GATE_COLOURS[gate]},
                    legendgroup=gate,
                    showlegend=r == 2,
                ),
                row=r,
                col=1,
            )
        fig.update_yaxes(title_text="activation", row=r, col=1)
    if 0 < axis.n_context < len(lead):
        b = 0.5 * (lead[axis.n_context - 1] + lead[axis.n_context])
        for r in range(1, 2 + len(layers)):
            fig.add_vline(x=b, line={"dash": "dot", "color": "#888"}, row=r, col=1)
    if step is not None and 0 <= step < len(lead):
        for r in range(1, 2 + len(layers)):
            fig.add_vline(x=float(lead[step]), line={"color": "#ff4b4b", "width": 1}, row=r, col=1)
    fig.update_xaxes(title_text=axis.title, row=1 + len(layers), col=1)
    fig.update_layout(
        height=260 + 200 * len(layers),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
        legend={"x": 1.02, "y": 1.0, "xanchor": "left", "yanchor": "top"},
        template=TEMPLATE,
        meta={"kind": "probe", "x": x, "y": y},
    )
    return fig


def pixel_grid(grid: Grid) -> dict:
    """What :func:`pixel_of` needs to turn a clicked coordinate back into a pixel index."""
    return {
        "x0": grid.x0, "dx": grid.dx, "y0": grid.y0, "dy": grid.dy,
        "width": grid.width, "height": grid.height,
    }  # fmt: skip


def pixel_of(grid: dict, x: float, y: float) -> tuple[int, int]:
    """Pixel ``(column, row)`` nearest to the plot coordinate ``(x, y)`` (clipped to the frame)."""
    col = int(round((float(x) - grid["x0"]) / grid["dx"]))
    row = int(round((float(y) - grid["y0"]) / grid["dy"]))
    return min(max(col, 0), grid["width"] - 1), min(max(row, 0), grid["height"] - 1)


def probe_map_figure(
    ds: xr.Dataset,
    *,
    step: int,
    channel: int = 0,
    marker: tuple[int, int] | None = None,
    max_points: int = 4096,
) -> go.Figure:
    """A clickable frame for the pixel probe: the frame at ``step`` plus an invisible point grid.

    Plotly heatmaps send no selection events, so a grid of transparent markers (every ``stride``
    pixels, at most ``max_points``) catches the click; :func:`pixel_of` with ``layout.meta.grid``
    turns the clicked point back into a pixel.
    """
    axis = time_axis(ds)
    n_ctx = axis.n_context
    units = units_of(ds)
    if step < n_ctx:
        frame = ds["context"].isel(channel=channel, context_time=step).values
        what = "observed"
    elif "truth" in ds:
        frame = ds["truth"].isel(channel=channel, time=step - n_ctx).values
        what = "truth"
    else:
        frame = ds["prediction"].isel(channel=channel, time=step - n_ctx).values
        what = "prediction"
    arrays = [
        ds[v].isel(channel=channel).values for v in ("context", "truth", "prediction") if v in ds
    ]
    scale = value_scale(domain_of(ds), units=units, arrays=arrays)
    grid = frame_grid(ds)
    fig = make_subplots(rows=1, cols=1)
    fig.add_trace(_heatmap(scale.encode(frame), grid, "coloraxis", what), row=1, col=1)
    stride = max(1, math.ceil(math.sqrt(grid.width * grid.height / max_points)))
    iy, ix = np.meshgrid(
        np.arange(0, grid.height, stride), np.arange(0, grid.width, stride), indexing="ij"
    )
    iy, ix = iy.ravel(), ix.ravel()
    fig.add_trace(
        go.Scatter(
            x=grid.x0 + ix * grid.dx,
            y=grid.y0 + iy * grid.dy,
            mode="markers",
            marker={"size": 6, "opacity": 0.0, "color": "#000"},
            hovertemplate="x=%{x}, y=%{y}<extra>click to probe</extra>",
            name="pick",
            showlegend=False,
        )
    )
    if marker is not None:
        mx, my = marker
        fig.add_trace(
            go.Scatter(
                x=[grid.x0 + mx * grid.dx],
                y=[grid.y0 + my * grid.dy],
                mode="markers",
                marker={"symbol": "x-thin", "size": 14, "line": {"width": 3, "color": "#ff4b4b"}},
                name="probe",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    _style_axes(fig, grid, 1)
    fig.update_layout(
        coloraxis=scale.coloraxis(title=units, len=0.9),
        title={"text": f"Click a pixel · {what} at {axis.label(step)}", "font": {"size": 14}},
        height=440,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        clickmode="event+select",
        dragmode=False,
        template=TEMPLATE,
        meta={"kind": "probe_map", "stride": stride, "grid": pixel_grid(grid)},
    )
    return fig


# -- metrics -----------------------------------------------------------------------------------
def score_labels(
    score: str, unit: str, *, frame_size: tuple[int, int] | None = None, pixels: int | None = None
) -> tuple[str, str]:
    """Panel title and y-axis title of a score, with its unit (see :mod:`model.metrics`).

    ``"MSE"`` with the video unit (a sum over the frame) -> ``("MSE per frame (sum over 64×64 px)",
    "squared error summed over the frame")``; ``"CSI@1"`` -> ``("CSI (event: rain ≥ 1 mm/h)",
    "CSI (0–1)")``; ``"MSE"`` in ``(mm/h)^2`` -> ``("MSE", "MSE ((mm/h)^2)")``.
    """
    unit = str(unit or "").strip()
    name = score.split("@")[0]
    low = unit.lower()
    if low.startswith("sum over frame"):
        if frame_size:
            where = f"{int(frame_size[0])}×{int(frame_size[1])} px"
        elif pixels:
            where = f"{int(pixels)} px"
        else:
            where = "all pixels"
        what = "squared error" if "squared" in low else "absolute error"
        value = " of [0,1] values" if "[0,1]" in unit else ""
        return f"{score} per frame (sum over {where})", f"{what}{value}, summed"
    if unit == "1" or low.startswith("1 ("):
        event = unit[unit.index("(") + 1 : unit.rindex(")")] if "(" in unit else ""
        event = event.replace(">=", "≥").replace("event: ", "")
        event, _, scale = event.partition("; scale ")  # FSS: "...; scale 10 km = 10 px"
        if scale:
            event = f"{event}, {scale.split(' = ')[0]}"  # short enough for a 1024 px page
        title = f"{name} ({event})" if event else score
        bounded = name in ("CSI", "POD", "FAR", "FSS", "SSIM", "ETS", "HSS")
        return title, f"{name} ({'0–1' if bounded else 'no unit'})"
    if not unit:
        return score, score
    return score, f"{score} ({unit})"


def metrics_figure(
    tables: dict[str, pd.DataFrame],
    *,
    lead: TimeAxis | None = None,
    units: dict | None = None,
    frame_size: tuple[int, int] | None = None,
) -> go.Figure:
    """Per-lead-time scores of several forecasts (e.g. model and persistence), one panel per score.

    Parameters
    ----------
    tables : dict of str -> pandas.DataFrame
        Forecast name -> table indexed by ``lead_step`` (1..H) with one column per score.
    lead : TimeAxis, optional
        Converts lead steps to lead times on the x axis (else steps).
    units : dict, optional
        Score -> unit for the titles (default: ``attrs["units"]`` of the first table, as
        :func:`model.metrics.per_lead` sets it).
    frame_size : (int, int), optional
        ``(height, width)`` of the frames, named in the title of per-frame sums (video MSE/MAE);
        default: the pixel count from the tables' ``attrs["valid_pixels"]``.
    """
    first = next(iter(tables.values()))
    scores = [c for c in first.columns if not c.startswith("_")]
    if units is None:
        units = dict(first.attrs.get("units") or {})
    pixels = None
    counts, n = first.attrs.get("valid_pixels"), first.attrs.get("n_samples")
    if counts and n:
        pixels = int(round(float(counts[0]) / float(n)))
    labels = {
        sc: score_labels(sc, (units or {}).get(sc, ""), frame_size=frame_size, pixels=pixels)
        for sc in scores
    }
    ncols = 3 if len(scores) > 4 else (2 if len(scores) > 1 else 1)
    nrows = math.ceil(len(scores) / ncols)
    panel_px = 250
    gap_px = 80  # x tick labels and title of the row above, then this row's titles
    plot_px = nrows * panel_px + (nrows - 1) * gap_px
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=[labels[sc][0] for sc in scores],
        vertical_spacing=gap_px / plot_px if nrows > 1 else 0.0,
        horizontal_spacing=0.09 if ncols > 1 else 0.0,
    )
    palette = ["#ff4b4b", "#555555", "#1f77b4", "#2ca02c"]
    xtitle = "lead time (steps)"
    for k, (name, table) in enumerate(tables.items()):
        steps = np.asarray(table.index, dtype=int)
        if lead is not None:
            x = lead.values[lead.n_context + steps - 1]
            xtitle = lead.title
        else:
            x = steps
        for i, score in enumerate(scores):
            if score not in table:
                continue
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=table[score].astype(float).values,
                    name=name,
                    mode="lines+markers",
                    line={
                        "color": palette[k % len(palette)],
                        "dash": ("solid", "dash", "dot", "dashdot")[min(k, 3)],
                    },
                    legendgroup=name,
                    showlegend=i == 0,
                ),
                row=i // ncols + 1,
                col=i % ncols + 1,
            )
    for i, score in enumerate(scores):
        row, col = i // ncols + 1, i % ncols + 1
        fig.update_yaxes(title_text=labels[score][1], title_font={"size": 12}, row=row, col=col)
        fig.update_xaxes(
            title_text=xtitle, title_font={"size": 12}, title_standoff=4, row=row, col=col
        )
    for ann in fig.layout.annotations:
        ann.font = {"size": 13}
    top, bottom = 56, 44 + LEGEND_PX  # top: room for the mode bar above the panel titles
    fig.update_layout(
        height=plot_px + top + bottom,
        margin={"l": 10, "r": 10, "t": top, "b": bottom},
        legend=_bottom_legend(),
        template=TEMPLATE,
        meta={"kind": "metrics", "scores": scores, "titles": [labels[sc][0] for sc in scores]},
    )
    return fig

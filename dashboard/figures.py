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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from dashboard.scales import Scale, error_scale, gate_scale, value_scale

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
_ISO = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
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


def parse_time_step(value) -> float | None:
    """Seconds in an ISO 8601 duration (``"PT5M"``), a number of seconds, or None."""
    if value is None:
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value) if value > 0 else None
    match = _ISO.match(str(value).strip().upper())
    if not match or not any(match.groups()):
        return None
    d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
    seconds = ((d * 24 + h) * 60 + m) * 60 + s
    return seconds or None


def time_axis(ds: xr.Dataset) -> TimeAxis:
    """Lead times of the context and forecast steps of a rollout, in a readable unit."""
    n_ctx = int(ds.sizes.get("context_time", 0))
    n_fc = int(ds.sizes["time"])
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


def frame_grid(ds: xr.Dataset) -> Grid:
    """Grid of the data frames: projected coordinates when ``x``/``y`` carry units, else pixels."""
    ny, nx = int(ds.sizes["y"]), int(ds.sizes["x"])
    xs, ys = ds.coords.get("x"), ds.coords.get("y")
    km = ds.attrs.get("resolution_km") or ds.attrs.get("pixel_km")
    if (
        km
        and xs is not None
        and ys is not None
        and nx > 1
        and ny > 1
        and np.issubdtype(xs.dtype, np.number)
        and np.issubdtype(ys.dtype, np.number)
    ):
        # coordinates in grid cells of pixel_km kilometres (e.g. the synthetic radar)
        xv, yv = xs.values.astype(float) * float(km), ys.values.astype(float) * float(km)
        return Grid(
            float(xv[0]), float(xv[1] - xv[0]), float(yv[0]), float(yv[1] - yv[0]),
            "x (km)", "y (km)", False, nx, ny,
        )  # fmt: skip
    if (
        xs is not None
        and ys is not None
        and xs.attrs.get("units")
        and ys.attrs.get("units")
        and nx > 1
        and ny > 1
        and np.issubdtype(xs.dtype, np.number)
    ):
        xv, yv = xs.values.astype(float), ys.values.astype(float)
        return Grid(
            float(xv[0]),
            float(xv[1] - xv[0]),
            float(yv[0]),
            float(yv[1] - yv[0]),
            f"x ({xs.attrs['units']})",
            f"y ({ys.attrs['units']})",
            False,
            nx,
            ny,
        )
    return Grid(0.0, 1.0, 0.0, 1.0, "x (pixel)", "y (pixel)", True, nx, ny)


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


def _blank(grid: Grid, coloraxis: str, name: str) -> go.Heatmap:
    """A one-cell heatmap of code 0 (no data) covering the whole frame: almost no payload."""
    return go.Heatmap(
        z=np.zeros((1, 1), np.uint8),
        x0=grid.x0 + (grid.width - 1) * grid.dx / 2,
        dx=grid.dx * grid.width,
        y0=grid.y0 + (grid.height - 1) * grid.dy / 2,
        dy=grid.dy * grid.height,
        coloraxis=coloraxis,
        name=name,
        hoverinfo="skip",
    )


def _style_axes(fig: go.Figure, grid: Grid, n_cols: int, *, row: int = 1, rows: int = 1) -> None:
    for col in range(1, n_cols + 1):
        idx = (row - 1) * n_cols + col
        suffix = "" if idx == 1 else str(idx)
        fig.update_xaxes(
            title_text=grid.x_title,
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
            showgrid=False,
            zeroline=False,
            showline=True,
            mirror=True,
            linecolor="#b0b0b0",
            row=row,
            col=col,
            **({"matches": "y"} if idx > 1 else {}),
        )


def _animation_controls(
    fig: go.Figure, names: list[str], labels: list[str], active: int, prefix: str, y: float = -0.1
) -> None:
    """One play/pause menu and one slider driving all panels of ``fig``."""
    play = {
        "frame": {"duration": FRAME_MS, "redraw": True},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
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
                "pad": {"t": 30, "r": 10},
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, play]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        sliders=[
            {
                "active": active,
                "x": 0.2,
                "len": 0.8,
                "y": y,
                "yanchor": "top",
                "pad": {"t": 20},
                "currentvalue": {"prefix": prefix, "font": {"size": 13}},
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


# -- forecast view -----------------------------------------------------------------------------
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
    fig = make_subplots(rows=1, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.07)

    first = 0 if show_context else n_ctx
    steps = list(range(first, n_ctx + pred.shape[0]))
    if step is None or step not in steps:
        step = n_ctx if n_ctx < n_ctx + pred.shape[0] else steps[0]

    def panels(s: int) -> list[go.Heatmap]:
        if s < n_ctx:
            obs = ctx[s]
            out = [
                _blank(grid, "coloraxis", "prediction"),
                _heatmap(scale.encode(obs), grid, "coloraxis", "observed"),
            ]
            if n_cols == 3:
                out.append(_blank(grid, "coloraxis2", "error"))
            return out
        k = s - n_ctx
        out = [_heatmap(scale.encode(pred[k]), grid, "coloraxis", "prediction")]
        if truth is not None:
            out.append(_heatmap(scale.encode(truth[k]), grid, "coloraxis", "truth"))
            out.append(_heatmap(escale.encode(err[k]), grid, "coloraxis2", "error"))
        else:
            out.append(_blank(grid, "coloraxis", "observed"))
        return out

    ch_name = _channel_name(ds, channel)

    def title(s: int) -> str:
        k = s - n_ctx + 1
        if s < n_ctx:
            what = f"Context frame {s + 1}/{n_ctx} (input)"
        else:
            what = f"Forecast step {k}/{pred.shape[0]}"
            if beyond_training is not None and k > beyond_training:
                what += " — beyond training horizon"
        extra = f" · {ch_name}" if ch_name else ""
        return f"Lead time {axis.label(s)} · {what}{extra}"

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
    _style_axes(fig, grid, n_cols)
    vlabel = value_label(scale, units)
    fig.update_layout(
        coloraxis=scale.coloraxis(title=vlabel, x=1.0, len=0.9),
        title={"text": title(step), "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        height=440,
        margin={"l": 10, "r": 10, "t": 60, "b": 110},
        template=TEMPLATE,
        meta={
            "kind": "forecast",
            "value_scale": _scale_meta(scale),
            "error_scale": _scale_meta(escale),
            "steps": steps,
            "labels": [axis.label(s) for s in steps],
            "n_context": n_ctx,
            "dataset": str(ds.attrs.get("dataset", "")),
            "sample": int(ds.attrs.get("sample", 0)),
            "channel": channel,
        },
    )
    if n_cols == 3:
        fig.update_layout(
            coloraxis2=escale.coloraxis(
                title=f"error ({units})" if units else "error", x=1.08, len=0.9
            )
        )
        fig.update_layout(margin={"r": 40})
    labels = [axis.label(s) for s in steps]
    _animation_controls(fig, names, labels, steps.index(step), "Lead time: ", y=-0.24)
    return fig


# -- gates view --------------------------------------------------------------------------------
def reduce_hidden(gates: xr.DataArray, reduction: str | int) -> tuple[xr.DataArray, dict[str, str]]:
    """Reduce the hidden channels of ``gates (gate, step, hidden, y, x)`` for display.

    ``reduction`` is ``"mean"``, ``"max"``, ``"variance"`` (per gate, the channel whose values vary
    most over steps and pixels) or a channel index. Returns ``(gate, step, y, x)`` float32 and a
    description per gate (e.g. ``"channel 17"``).
    """
    g = gates.astype(np.float32)
    names = [str(v) for v in g["gate"].values]
    if reduction == "mean":
        return g.mean("hidden"), dict.fromkeys(names, "mean over channels")
    if reduction == "max":
        return g.max("hidden"), dict.fromkeys(names, "max over channels")
    if reduction == "variance":
        spatial = tuple(d for d in g.dims if d not in ("gate", "hidden"))
        var = g.var(dim=spatial)  # (gate, hidden)
        best = var.argmax("hidden")  # (gate,)
        picked = g.isel(hidden=best)
        desc = {
            n: f"channel {int(c)} (most variance)" for n, c in zip(names, best.values, strict=True)
        }
        return picked, desc
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
) -> go.Figure:
    """Heatmaps of the six gates and states of one layer, animated over the steps.

    Parameters
    ----------
    ds : xarray.Dataset
        Rollout with ``gates (layer, gate, step, hidden, y, x)``.
    layer : int
        Layer (a value of the ``layer`` coordinate).
    reduction : {"mean", "max", "variance"} or int
        How the hidden channels are shown (see :func:`reduce_hidden`).
    step : int, optional
        Step shown first (default: the first forecast step).
    gate : str, optional
        Gate outlined as the focus of the view.

    Returns
    -------
    plotly.graph_objects.Figure
        2 x 3 heatmaps of ``uint8`` codes with one relabelled colorbar each; ``layout.meta`` holds
        the scale of each gate and the steps.
    """
    if "gates" not in ds:
        raise ValueError("this rollout has no gates; run it with capture=True")
    axis = time_axis(ds)
    sub = ds["gates"].sel(layer=layer)  # (gate, step, hidden, y, x)
    reduced, desc = reduce_hidden(sub, reduction)  # (gate, step, y, x)
    names = [str(v) for v in reduced["gate"].values]
    values = reduced.values  # (gate, step, y, x)
    scales = [gate_scale(n, arrays=(values[i],)) for i, n in enumerate(names)]
    grid, _ = latent_grid(ds)
    n_steps_g = values.shape[1]
    steps = list(range(n_steps_g))
    if step is None or step not in steps:
        step = min(axis.n_context, n_steps_g - 1)

    titles = [f"<b>{n}</b> · {desc[n]}" if n == gate else f"{n} · {desc[n]}" for n in names]
    fig = make_subplots(
        rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.16
    )

    def panels(s: int) -> list[go.Heatmap]:
        return [
            _heatmap(scales[i].encode(values[i, s]), grid, _ca(i), n) for i, n in enumerate(names)
        ]

    def title(s: int) -> str:
        phase = "context" if s < axis.n_context else "forecast"
        label = axis.label(s) if s < len(axis.values) else f"step {s}"
        return f"Layer {layer} gates at lead time {label} ({phase}, step {s})"

    fig.frames = [
        go.Frame(
            name=str(s), data=panels(s), traces=list(range(6)), layout={"title": {"text": title(s)}}
        )
        for s in steps
    ]
    for i, trace in enumerate(panels(step)):
        fig.add_trace(trace, row=i // 3 + 1, col=i % 3 + 1)
    for row in (1, 2):
        _style_axes(fig, grid, 3, row=row, rows=2)
    fig.update_xaxes(title_text=None, row=1)
    layout: dict = {}
    for i in range(len(names)):
        xdom = fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain
        ydom = fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain
        key = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        layout[key] = scales[i].coloraxis(
            title="",
            x=xdom[1] + 0.005,
            y=(ydom[0] + ydom[1]) / 2,
            len=(ydom[1] - ydom[0]) * 0.95,
            thickness=10,
            tickfont={"size": 10},
        )
    fig.update_layout(
        **layout,
        title={"text": title(step), "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        height=640,
        margin={"l": 10, "r": 30, "t": 70, "b": 60},
        template=TEMPLATE,
        meta={
            "kind": "gates",
            "gates": names,
            "scales": [_scale_meta(s) for s in scales],
            "steps": steps,
            "layer": layer,
            "reduction": reduction,
        },
    )
    if gate in names:
        i = names.index(gate)
        xd = fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain
        yd = fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain
        fig.add_shape(
            type="rect",
            xref="paper",
            yref="paper",
            x0=xd[0] - 0.005,
            x1=xd[1] + 0.03,
            y0=yd[0] - 0.01,
            y1=yd[1] + 0.05,
            line={"color": "#ff4b4b", "width": 2},
        )
    labels = [axis.label(s) if s < len(axis.values) else str(s) for s in steps]
    _animation_controls(fig, [str(s) for s in steps], labels, steps.index(step), "Lead time: ")
    return fig


def _ca(i: int) -> str:
    return "coloraxis" if i == 0 else f"coloraxis{i + 1}"


def gate_means_figure(
    ds: xr.Dataset, *, layer: int = 0, step: int | None = None, gate: str | None = None
) -> go.Figure:
    """Line chart of each gate's mean (over channels and pixels) per step for one layer.

    The top panel shows the sigmoid gates (input, forget, output; 0..1): how much the network
    writes, keeps and exposes per step; the bottom one the candidate, cell and hidden states.
    """
    axis = time_axis(ds)
    sub = ds["gates"].sel(layer=layer).astype(np.float32)
    means = sub.mean(dim=("hidden", *gate_dims(ds)))  # (gate, step)
    x = axis.values[: means.sizes["step"]]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("gates (0–1)", "candidate, cell and hidden state"),
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
    fig.update_xaxes(title_text=axis.title, row=2, col=1)
    fig.update_layout(
        title={
            "text": f"Layer {layer}: mean of each gate per step (forecast starts after the dotted line)",
            "x": 0.0,
            "font": {"size": 14},
        },
        height=480,
        margin={"l": 10, "r": 10, "t": 95, "b": 40},
        legend={"orientation": "h", "y": 1.16, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        template=TEMPLATE,
        meta={"kind": "gate_means", "layer": layer},
    )
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
def metrics_figure(
    tables: dict[str, pd.DataFrame], *, lead: TimeAxis | None = None, units: dict | None = None
) -> go.Figure:
    """Per-lead-time scores of several forecasts (e.g. model and persistence), one panel per score.

    Parameters
    ----------
    tables : dict of str -> pandas.DataFrame
        Forecast name -> table indexed by ``lead_step`` (1..H) with one column per score.
    lead : TimeAxis, optional
        Converts lead steps to lead times on the x axis (else steps).
    units : dict, optional
        Score -> unit for the y-axis titles.
    """
    scores = [c for c in next(iter(tables.values())).columns if not c.startswith("_")]
    ncols = 3 if len(scores) > 4 else (2 if len(scores) > 1 else 1)
    nrows = math.ceil(len(scores) / ncols)
    fig = make_subplots(
        rows=nrows, cols=ncols, subplot_titles=scores, vertical_spacing=0.12 if nrows < 4 else 0.06
    )
    palette = ["#ff4b4b", "#555555", "#1f77b4", "#2ca02c"]
    for k, (name, table) in enumerate(tables.items()):
        steps = np.asarray(table.index, dtype=int)
        if lead is not None:
            x = lead.values[lead.n_context + steps - 1]
            xtitle = lead.title
        else:
            x, xtitle = steps, "lead time (steps)"
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
        unit = str((units or {}).get(score, "") or "")
        short = unit and len(unit) <= 12 and unit != "1"
        row, col = i // ncols + 1, i % ncols + 1
        fig.update_yaxes(title_text=f"{score} ({unit})" if short else score, row=row, col=col)
        last_in_column = i + ncols >= len(scores)
        fig.update_xaxes(title_text=xtitle if last_in_column else None, row=row, col=col)
    fig.update_layout(
        height=max(340, 300 * nrows),
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"},
        template=TEMPLATE,
        meta={"kind": "metrics", "scores": scores},
    )
    return fig

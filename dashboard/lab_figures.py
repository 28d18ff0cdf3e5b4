"""Pure plotly builders of the gate lab views (no Streamlit, no model math).

Every figure shows one step: the page's step control is the one time control, so none of these
has a slider of its own. Heatmaps carry ``uint8`` codes (:mod:`dashboard.scales`, or the unit
maps' own 8-bit payload, :class:`model.gate_lab.UnitMaps`); ``layout.meta`` says what each panel
holds so a reader (a test, the browser) can decode it.

=============================  =====================================================================
:func:`panel_grid_figure`      rows of heatmap panels with their scales (original | intervened |
                               difference; two checkpoints; attribution per context frame)
:func:`unit_grid_figure`       every hidden unit of a layer as small multiples, from the 8-bit
                               payload of ``model.gate_lab.encode_unit_maps``
:func:`saturation_figure`      left- vs right-saturated fraction, one point per unit (Karpathy et
                               al. 2015)
:func:`share_figure`           each context frame's share of an attribution
:func:`memory_curve_figure`    mean surviving cell state per lead time and layer
:func:`intervention_figure`    original | intervened | difference: forecast and edited gate
:func:`compare_figures`        two checkpoints: forecasts and one layer's gates, differences
:func:`attribution_figure`     integrated gradients per context frame
:func:`memory_figure`          the memory map of every layer at one lead
=============================  =====================================================================
"""

from __future__ import annotations

import base64
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

from dashboard.figures import (
    AXIS_BELOW_PX,
    GATE_COLOURS,
    LEGEND_PX,
    ROW_SLACK_PX,
    TEMPLATE,
    Grid,
    _bottom_legend,
    _hbar,
    _heatmap,
    _scale_meta,
    _style_axes,
    _title,
    _titles_on_panels,
    aspect_of,
    bar_margin,
    domain_of,
    fit_height,
    frame_grid,
    latent_grid,
    row_spacing,
    symbol_html,
    time_axis,
    units_of,
    value_label,
)
from dashboard.scales import N_CODES, SIGMOID_COLOURS, Scale, error_scale, gate_scale, value_scale


@dataclass(frozen=True)
class Panel:
    """One heatmap of a :func:`panel_grid_figure`: a title, values ``(y, x)`` and their scale."""

    title: str
    values: np.ndarray
    scale: Scale
    grid: Grid


PANEL_PX = 250
"""Height of one row of up to four panels (with more, less: panels are square in pixels)."""
GRID_TOP_PX = 70
BAR_PX = 58
"""A horizontal colour bar under a row: its title, the bar and its tick labels."""
ROW_GAP_PX = AXIS_BELOW_PX + BAR_PX + 26
"""From the bottom of one row of panels to the top of the next (ticks, bar, next titles)."""


def _region_shape(region: Sequence[int], grid: Grid, ref: str) -> dict:
    """A rectangle around frame pixels ``(y0, y1, x0, x1)`` in the axes' data coordinates."""
    y0, y1, x0, x1 = region
    xr_ = sorted((grid.x0 + (x0 - 0.5) * grid.dx, grid.x0 + (x1 - 0.5) * grid.dx))
    yr_ = sorted((grid.y0 + (y0 - 0.5) * grid.dy, grid.y0 + (y1 - 0.5) * grid.dy))
    return {
        "type": "rect",
        "xref": f"x{ref}",
        "yref": f"y{ref}",
        "x0": xr_[0],
        "x1": xr_[1],
        "y0": yr_[0],
        "y1": yr_[1],
        "line": {"color": "#111", "width": 1.5, "dash": "dot"},
        "fillcolor": "rgba(0,0,0,0)",
    }


def region_from_box(box: dict, grid: Grid) -> tuple[int, int, int, int] | None:
    """A box dragged on a panel -> the frame pixels ``(y0, y1, x0, x1)`` whose centres it holds.

    The inverse of :func:`_region_shape`: a box drawn on the pixel edges gives those pixels back.
    Works on every panel of a :func:`panel_grid_figure` whose axes are in the frame's
    coordinates (the frame grid, and the latent grid of ``figures.latent_grid``).

    Parameters
    ----------
    box : dict
        One entry of Streamlit's plotly selection ``box``: ``{"x": [a, b], "y": [c, d]}`` in the
        axes' data coordinates (km for maps, pixel index for images), in any order.
    grid : Grid
        The frame grid (``figures.frame_grid``): pixel ``k`` sits at ``x0 + k * dx``.

    Returns
    -------
    (y0, y1, x0, x1) or None
        Half-open rows and columns, clamped to the frame and at least one pixel wide (a box
        smaller than a pixel gives the nearest pixel); None when ``box`` has no usable range.
    """
    try:
        xs = [float(v) for v in box["x"]]
        ys = [float(v) for v in box["y"]]
    except (KeyError, TypeError, ValueError):
        return None
    if len(xs) < 2 or len(ys) < 2 or not all(map(math.isfinite, xs + ys)):
        return None

    def pixels(values: list[float], origin: float, step: float, n: int) -> tuple[int, int]:
        lo, hi = sorted(((values[0] - origin) / step, (values[-1] - origin) / step))
        first, stop = math.ceil(lo), math.floor(hi) + 1  # pixel centres inside [lo, hi]
        if stop <= first:  # narrower than a pixel: the pixel nearest its middle
            first = round((lo + hi) / 2)
            stop = first + 1
        first = min(max(first, 0), n - 1)
        return first, min(max(stop, first + 1), n)

    y0, y1 = pixels(ys, grid.y0, grid.dy, grid.height)
    x0, x1 = pixels(xs, grid.x0, grid.dx, grid.width)
    return y0, y1, x0, x1


def _row_bars(fig: go.Figure, rows: list[list[Panel]], names: dict, labels: dict):
    """One horizontal colour bar per scale, under the last row that uses it, spanning its
    columns there (the first run of neighbouring columns when they are not all together)."""
    n_cols = max(len(r) for r in rows)
    layout: dict = {}
    for scale, name in names.items():
        r = max(k for k, row in enumerate(rows) if any(p.scale == scale for p in row))
        cols = [c for c, p in enumerate(rows[r]) if p.scale == scale]
        run = [cols[0]]
        while run[-1] + 1 in cols:
            run.append(run[-1] + 1)
        first, last = r * n_cols + run[0] + 1, r * n_cols + run[-1] + 1
        x0 = fig.layout[f"xaxis{'' if first == 1 else first}"].domain[0]
        x1 = fig.layout[f"xaxis{'' if last == 1 else last}"].domain[1]
        y_bottom = fig.layout[f"yaxis{'' if first == 1 else first}"].domain[0]
        layout[name] = _hbar(
            scale,
            labels.get(scale, scale.label),
            x0=x0,
            x1=x1,
            y=y_bottom,
            top_px=AXIS_BELOW_PX,
        )
    return layout


def _grid_titles(rows: list[list[Panel]], n_cols: int, *, column_heads: bool) -> list[str]:
    """Subplot titles row by row ("" where a row is short); ``column_heads``: the first row's
    only."""
    titles = [(r[c].title if c < len(r) else "") for r in rows for c in range(n_cols)]
    if column_heads:
        titles = titles[:n_cols] + [""] * (len(titles) - n_cols)
    return titles


def _label_rows(fig: go.Figure, labels: Sequence[str], grid: Grid) -> None:
    """Each row's label, bold, above the y axis title of its first panel."""
    for r, label in enumerate(labels, start=1):
        fig.update_yaxes(title_text=f"<b>{label}</b><br>{grid.y_title}", row=r, col=1)


def panel_grid_figure(
    rows: list[list[Panel]],
    *,
    title: str,
    kind: str,
    region: Sequence[int] | None = None,
    frame: Grid | None = None,
    bar_titles: dict | None = None,
    meta: dict | None = None,
    row_labels: Sequence[str] | None = None,
) -> go.Figure:
    """Rows of heatmap panels, each with its scale; colour bars under the bottom row.

    Parameters
    ----------
    rows : list of list of Panel
        Panels row by row (rows may be shorter than the longest; the rest stays empty).
    title : str
        Figure title.
    kind : str
        ``layout.meta.kind``.
    region : (y0, y1, x0, x1), optional
        Frame pixels outlined on every panel (dotted), in ``frame``'s coordinates.
    frame : Grid, optional
        The frame grid (needed with ``region``).
    bar_titles : dict, optional
        Scale -> colour bar title (default: the scale's label).
    meta : dict, optional
        More ``layout.meta`` entries.
    row_labels : sequence of str, optional
        One label per row, for rows whose panels share their columns' titles (e.g. one
        checkpoint per row, one gate per column): the first row's panel titles then head the
        columns, and each row's label goes above its y axis title, where a long name has room;
        six titled panels a row overlap in a 1024 px window.

    Returns
    -------
    plotly.graph_objects.Figure
        ``layout.meta``: ``kind``, ``titles`` and ``scales`` (row by row, for decoding the codes)
        and ``meta``'s entries.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    panel_px = min(PANEL_PX, round(1000 / n_cols))  # square panels in a ~1000 px wide chart
    plot_px = n_rows * panel_px + (n_rows - 1) * ROW_GAP_PX
    bottom = bar_margin(BAR_PX)  # x axis, colour bars and plotly's padding under them
    height = GRID_TOP_PX + plot_px + bottom  # without a browser (see fit_height)
    titles = _grid_titles(rows, n_cols, column_heads=row_labels is not None)
    grid = rows[0][0].grid
    fig = make_subplots(
        rows=n_rows, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.03,
        vertical_spacing=row_spacing(
            ROW_GAP_PX, rows=n_rows, cols=n_cols, horizontal_spacing=0.03, aspect=aspect_of(grid)
        ),
    )  # fmt: skip
    names: dict[Scale, str] = {}
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            name = names.setdefault(
                panel.scale, "coloraxis" if not names else f"coloraxis{len(names) + 1}"
            )
            fig.add_trace(
                _heatmap(panel.scale.encode(panel.values), panel.grid, name, panel.title),
                row=r + 1,
                col=c + 1,
            )
    for r, row in enumerate(rows):
        _style_axes(fig, row[0].grid, n_cols, row=r + 1, rows=n_rows)
        if r < n_rows - 1:
            fig.update_xaxes(title_text=None, row=r + 1)
    for c in range(2, n_cols + 1):
        fig.update_yaxes(showticklabels=False, title_text=None, col=c)
    _label_rows(fig, row_labels or [], grid)
    _titles_on_panels(fig, len(titles), size=12)
    layout = _row_bars(fig, rows, names, bar_titles or {})
    if region is not None and frame is not None:
        for k in range(n_rows * n_cols):
            if titles[k]:
                fig.add_shape(_region_shape(region, frame, "" if k == 0 else str(k + 1)))
    fig.update_layout(
        **layout,
        title=_title(title, size=14),
        height=height,
        margin={"l": 10, "r": 10, "t": GRID_TOP_PX, "b": bottom},
        hovermode="closest",
        template=TEMPLATE,
        meta={
            "kind": kind,
            "titles": [[p.title for p in row] for row in rows],
            "scales": [[_scale_meta(p.scale) for p in row] for row in rows],
            **(meta or {}),
        },
    )
    fig.layout.meta["fit"] = fit_height(  # narrower than ~1000 px: shorter, no band above
        fig, aspect_of(grid), max_px=height, max_gap_px=ROW_GAP_PX + ROW_SLACK_PX
    )
    return fig


# -- unit browser --------------------------------------------------------------------------------
UNIT_TILE_GAP = 1
"""Pixels of no data between two small multiples."""
UNIT_BAR_PX = 110
"""Width beside the unit mosaic: the margins and the vertical colour bar with its labels."""


def unit_mosaic(
    payload: dict, order: Sequence[int], *, flip_rows: bool = False
) -> tuple[np.ndarray, int, int]:
    """The payload's 8-bit maps tiled in ``order``: ``(codes [rows*(h+gap), cols*(w+gap)], rows,
    cols)``; gaps are code 0 (no data). ``flip_rows``: each map upside down (row 0 of the data
    is the southern edge of a map, drawn at the bottom as in the gate panels)."""
    n, h, w = (int(v) for v in payload["shape"])
    codes = np.frombuffer(base64.b64decode(payload["codes"]), np.uint8).reshape(n, h, w)
    if flip_rows:
        codes = codes[:, ::-1]
    cols = math.ceil(math.sqrt(len(order)))
    rows_ = math.ceil(len(order) / cols)
    step_y, step_x = h + UNIT_TILE_GAP, w + UNIT_TILE_GAP
    mosaic = np.zeros((rows_ * step_y - UNIT_TILE_GAP, cols * step_x - UNIT_TILE_GAP), np.uint8)
    for k, unit in enumerate(order):
        r, c = divmod(k, cols)
        mosaic[r * step_y : r * step_y + h, c * step_x : c * step_x + w] = codes[unit]
    return mosaic, rows_, cols


def unit_grid_figure(
    payload: dict,
    order: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    picked: int | None = None,
    sort_by: str = "activity",
    flip_rows: bool = False,
) -> go.Figure:
    """Every hidden unit of one layer's gate at one step, as small multiples.

    Parameters
    ----------
    payload : dict
        ``model.gate_lab.UnitMaps.to_payload()``: base64 8-bit codes ``[hidden, gy, gx]`` with
        code 0 no data and 1..255 each unit's own ``[vmin, vmax]`` (``scale="channel"``) or one
        range for all (``"global"``).
    order : sequence of int
        Units in the order drawn (left to right, top to bottom), e.g. sorted by activity.
    labels : sequence of str, optional
        Hover text per unit in ``order`` (e.g. its statistics).
    picked : int, optional
        A unit outlined in red.
    sort_by : str
        What ``order`` is sorted by (for the title).
    flip_rows : bool
        Draw each map upside down (see :func:`unit_mosaic`; ``figures.north_up_rows``).

    Returns
    -------
    plotly.graph_objects.Figure
        One heatmap of the tiled codes and a transparent marker at each tile's centre (heatmaps
        send no click events; the markers do, ``customdata`` the unit). ``layout.meta``:
        ``kind="units"``, ``units`` (the order), ``payload_bytes``, ``cols``, ``tile``.
    """
    mosaic, n_rows, cols = unit_mosaic(payload, order, flip_rows=flip_rows)
    _, h, w = (int(v) for v in payload["shape"])
    step_y, step_x = h + UNIT_TILE_GAP, w + UNIT_TILE_GAP
    scale = Scale(0.0, 1.0, "", SIGMOID_COLOURS, label="activation")
    fig = go.Figure(
        go.Heatmap(
            z=mosaic, x0=0, dx=1, y0=0, dy=1, coloraxis="coloraxis", hoverinfo="skip", name="units"
        )
    )
    rank = np.arange(len(order))
    fig.add_trace(
        go.Scatter(
            x=(rank % cols) * step_x + (w - 1) / 2,
            y=(rank // cols) * step_y + (h - 1) / 2,
            mode="markers+text",
            text=[f"{u}" for u in order],
            textposition="middle center",
            textfont={"size": 9, "color": "rgba(255,255,255,0.85)"},
            marker={"size": max(8, min(40, 400 // cols)), "opacity": 0.0, "color": "#000"},
            customdata=list(order),
            hovertext=list(labels) if labels is not None else [f"unit {u}" for u in order],
            hovertemplate="%{hovertext}<extra>click to open</extra>",
            showlegend=False,
            name="pick",
        )
    )
    if picked is not None and picked in order:
        k = list(order).index(picked)
        r, c = divmod(k, cols)
        fig.add_shape(
            type="rect", x0=c * step_x - 0.5, x1=c * step_x + w - 0.5, y0=r * step_y - 0.5,
            y1=r * step_y + h - 0.5, line={"color": "#ff4b4b", "width": 3},
        )  # fmt: skip
    bar = scale.coloraxis(title="", len=0.6, thickness=10)
    own = payload.get("scale") == "channel"
    bar["colorbar"].update(
        tickvals=[1, N_CODES - 1],
        ticktext=["unit min", "unit max"] if own else [f"{payload['vmin'][0]:g}", f"{payload['vmax'][0]:g}"],
    )  # fmt: skip
    side = max(320, min(900, 90 * cols))
    fig.update_xaxes(visible=False, range=[-0.5, cols * step_x - 0.5], constrain="domain")
    fig.update_yaxes(
        visible=False, range=[n_rows * step_y - 0.5, -0.5], scaleanchor="x", constrain="domain"
    )
    gate = str(payload.get("gate", ""))
    fig.update_layout(
        coloraxis=bar,
        title=_title(
            f"Layer {payload.get('layer')} · {gate} {symbol_html(gate)} of every unit at step "
            f"{payload.get('step')}, sorted by {sort_by}<br><span style='font-size:12px'>"
            "click a unit to open it; colours span each unit's own range</span>",
            size=14,
        ),
        height=side + 90,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        clickmode="event+select",
        dragmode=False,
        template=TEMPLATE,
        meta={
            "kind": "units",
            "units": [int(u) for u in order],
            "cols": cols,
            "tile": [h, w],
            "gate": gate,
            "payload_bytes": len(payload["codes"]) + 16 * len(payload["vmin"]),
        },
    )
    aspect = (n_rows * step_y) / (cols * step_x)  # the mosaic's height over width
    fig.layout.meta["fit"] = fit_height(fig, aspect, inset_px=UNIT_BAR_PX, max_px=side + 90)
    return fig


# -- saturation ----------------------------------------------------------------------------------
def saturation_figure(sat: xr.Dataset, *, layer: int, picked: int | None = None) -> go.Figure:
    """Left- vs right-saturated fraction of each unit's sigmoid gates, one panel per gate.

    Parameters
    ----------
    sat : xarray.Dataset
        ``model.gate_lab.saturation``: ``left``/``right (layer, gate, hidden)`` fractions, NaN
        for padding channels.
    layer : int
        Layer shown.
    picked : int, optional
        A unit drawn larger, in red.

    Returns
    -------
    plotly.graph_objects.Figure
        A scatter per gate with one point per unit (``customdata`` the unit);
        ``layout.meta``: ``kind="saturation"``, ``layer``, ``units``.
    """
    gates = [str(g) for g in sat["gate"].values]
    left = sat["left"].sel(layer=layer)
    units = [int(u) for u in left["hidden"].values if np.isfinite(left.isel(gate=0).sel(hidden=u))]
    fig = make_subplots(
        rows=1, cols=len(gates), horizontal_spacing=0.06,
        subplot_titles=[f"{g} {symbol_html(g)}" for g in gates],
    )  # fmt: skip
    for c, gate in enumerate(gates, start=1):
        x = sat["left"].sel(layer=layer, gate=gate, hidden=units).values
        y = sat["right"].sel(layer=layer, gate=gate, hidden=units).values
        sizes = [13 if u == picked else 8 for u in units]
        colours = ["#ff4b4b" if u == picked else GATE_COLOURS.get(gate, "#0068c9") for u in units]
        fig.add_trace(
            go.Scatter(
                x=x, y=y, mode="markers", name=gate, customdata=units,
                marker={"size": sizes, "color": colours, "opacity": 0.8,
                        "line": {"width": 0.5, "color": "#fff"}},
                hovertemplate=f"{gate}: unit %{{customdata}}<br>left %{{x:.2f}}, right "
                "%{y:.2f}<extra>click to open</extra>",
                showlegend=False,
            ),
            row=1, col=c,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=[0, 1], y=[1, 0], mode="lines", hoverinfo="skip", showlegend=False,
                       line={"color": "#bbb", "dash": "dot", "width": 1}),
            row=1, col=c,
        )  # fmt: skip
        fig.update_xaxes(range=[-0.03, 1.03], title_text="left-saturated (< 0.1)", row=1, col=c)
        fig.update_yaxes(range=[-0.03, 1.03], row=1, col=c, scaleanchor=f"x{'' if c == 1 else c}")
    fig.update_yaxes(title_text="right-saturated (> 0.9)", row=1, col=1)
    fig.update_layout(
        title=_title(
            f"Layer {layer}: saturation of each unit over the rollout ({len(units)} units)"
            "<br><span style='font-size:12px'>fraction of its values below 0.1 (left) and "
            "above 0.9 (right)<br>(Karpathy et al. 2015); click a point to open the unit</span>",
            size=14,
        ),
        height=446,
        margin={"l": 10, "r": 10, "t": 106, "b": 50},  # a three-line title
        clickmode="event+select",
        dragmode=False,
        template=TEMPLATE,
        meta={"kind": "saturation", "layer": int(layer), "units": units, "gates": gates},
    )
    return fig


# -- attribution and memory ----------------------------------------------------------------------
def share_figure(share: np.ndarray, labels: Sequence[str], *, title: str) -> go.Figure:
    """Bar chart of each context frame's share of the total ``|attribution|`` (sums to 1)."""
    fig = go.Figure(
        go.Bar(
            x=list(labels), y=np.asarray(share, dtype=np.float64), marker_color="#0068c9",
            hovertemplate="%{x}: %{y:.1%}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(title_text="share of |attribution|", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title_text="context frame (lead time)")
    fig.update_layout(
        title=_title(title, size=14),
        height=320,
        margin={"l": 10, "r": 10, "t": 60, "b": 40},
        template=TEMPLATE,
        meta={"kind": "attribution_share", "share": [float(v) for v in share]},
    )
    return fig


def memory_curve_figure(memory: xr.DataArray, *, labels: Sequence[str], lead: int) -> go.Figure:
    """Mean surviving fraction of the context's cell state per lead time, one line per layer.

    ``memory``: ``model.gate_lab.memory_map`` ``(layer, lead, gy, gx)``; ``labels`` the lead
    times' labels (one per lead); ``lead`` (1-based) marked.
    """
    means = memory.mean(("gy", "gx"))
    fig = go.Figure()
    for layer in memory["layer"].values:
        fig.add_trace(
            go.Scatter(
                x=list(labels), y=means.sel(layer=layer).values.astype(np.float64),
                mode="lines+markers", name=f"layer {int(layer)}",
            )
        )  # fmt: skip
    if 1 <= lead <= len(labels):
        fig.add_vline(x=lead - 1, line={"color": "#ff4b4b", "width": 1.5})
    fig.update_yaxes(title_text="mean fraction kept", range=[0, 1.02])
    fig.update_xaxes(title_text="lead time")
    fig.update_layout(
        title=_title("Cell state of the last context step still carried, per lead", size=14),
        height=340,
        margin={"l": 10, "r": 10, "t": 60, "b": 40 + LEGEND_PX},
        legend=_bottom_legend(),
        template=TEMPLATE,
        meta={"kind": "memory_curve", "lead": int(lead)},
    )
    return fig


# -- builders of whole views ---------------------------------------------------------------------
def _difference_scale(arrays, units: str = "") -> Scale:
    """The diverging error scale (symmetric around 0) labelled as a difference."""
    s = error_scale(units=units, arrays=arrays)
    return Scale(s.vmin, s.vmax, units, s.colours, label="difference")


def _mean_units(gates: xr.DataArray, channels: Sequence[int] | None) -> np.ndarray:
    """``(hidden, gy, gx)`` -> the mean map over ``channels`` (None: all; NaN padding left out)."""
    values = gates.values.astype(np.float32)
    if channels is not None:
        values = values[list(channels)]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN pixel stays NaN
        return np.nanmean(values, axis=0)


def intervention_figure(
    original: xr.Dataset,
    edited: xr.Dataset,
    edit,
    *,
    step: int,
    gate_step: int,
    channel: int = 0,
) -> go.Figure:
    """Original forecast | intervened | difference, then the edited gate the same way.

    Parameters
    ----------
    original, edited : xarray.Dataset
        The rollout and its intervened twin (``model.rollout.rollout(..., intervene=edit)``).
    edit : model.interventions.GateEdit
        The edit (its layer, target, channels and region).
    step : int
        Animation step of the forecast shown (a forecast step, ``>= n_context``).
    gate_step : int
        Step of the gates shown.
    channel : int
        Data channel.

    Returns
    -------
    plotly.graph_objects.Figure
        2 x 3 panels (the edited gate averaged over the edited channels); ``layout.meta``:
        ``kind="intervention"``, ``step``, ``gate_step``, ``edit``, ``region``,
        ``max_abs_difference`` (of the forecast at ``step``).
    """
    axis = time_axis(original)
    k = step - axis.n_context
    units = units_of(original)
    a = original["prediction"].isel(time=k, channel=channel).values
    b = edited["prediction"].isel(time=k, channel=channel).values
    diff = b - a
    value = value_scale(domain_of(original), units=units, arrays=(a, b))
    delta = _difference_scale((diff,), units)
    frame = frame_grid(original)
    latent, _ = latent_grid(original)

    def gate_map(ds: xr.Dataset) -> np.ndarray:
        g = ds["gates"].sel(layer=edit.layer, gate=edit.target).isel(step=gate_step)
        return _mean_units(g, edit.channels)

    ga, gb = gate_map(original), gate_map(edited)
    gscale = gate_scale(edit.target, arrays=(ga, gb))
    gdelta = _difference_scale((gb - ga,))
    sym = f"{edit.target} {symbol_html(edit.target)}"
    which = "all channels" if edit.channels is None else f"channels {list(edit.channels)}"
    rows = [
        [
            Panel(f"Original · {axis.label(step)}", a, value, frame),
            Panel("Intervened", b, value, frame),
            Panel("Intervened − original", diff, delta, frame),
        ],
        [
            Panel(f"{sym} original · step {gate_step}", ga, gscale, latent),
            Panel(f"{sym} intervened", gb, gscale, latent),
            Panel(f"{sym} difference ({which} mean)", gb - ga, gdelta, latent),
        ],
    ]
    region = edit.region if edit.region is not None and len(edit.region) == 4 else None
    fig = panel_grid_figure(
        rows,
        title=f"Intervention: {edit.describe()}<br><span style='font-size:12px'>drag a box on "
        "any panel to make it the edit's region</span>",
        kind="intervention",
        region=region,
        frame=frame,
        bar_titles={value: value_label(value, units), delta: f"difference ({units})"},
        meta={
            "step": int(step),
            "gate_step": int(gate_step),
            "edit": edit.describe(),
            "region": list(region) if region is not None else None,
            "max_abs_difference": float(np.nanmax(np.abs(diff)))
            if np.isfinite(diff).any()
            else 0.0,
        },
    )
    # dragging draws a box (read back by region_from_box), not a zoom
    fig.update_layout(dragmode="select", newselection={"line": {"color": "#ff4b4b"}})
    return fig


def compare_figures(
    cmp: xr.Dataset, ds: xr.Dataset, *, step: int, gate_step: int, channel: int = 0
) -> tuple[go.Figure, go.Figure | None]:
    """Two checkpoints on one window (``model.gate_lab.compare_rollouts``) at one step.

    Returns
    -------
    (Figure, Figure or None)
        Forecasts ``first | second | second − first`` (``kind="compare"``, ``meta``
        ``max_abs_difference``), and when gates were compared, rows ``first``, ``second``,
        difference by columns of gates, each averaged over the hidden channels
        (``kind="compare_gates"``, ``checkpoints``, ``max_abs_gate_difference``).
    """
    axis = time_axis(ds)
    names = [str(n) for n in cmp["checkpoint"].values]
    units = units_of(ds)
    k = step - axis.n_context
    pred = cmp["prediction"].isel(time=k, channel=channel).values  # (2, y, x)
    diff = cmp["prediction_difference"].isel(time=k, channel=channel).values
    value = value_scale(domain_of(ds), units=units, arrays=(pred,))
    delta = _difference_scale((diff,), units)
    frame = frame_grid(ds)
    forecast = panel_grid_figure(
        [[
            Panel(f"{names[0]} · {axis.label(step)}", pred[0], value, frame),
            Panel(names[1], pred[1], value, frame),
            Panel(f"{names[1]} − {names[0]}", diff, delta, frame),
        ]],
        title=f"Forecasts of two checkpoints at lead time {axis.label(step)}",
        kind="compare",
        bar_titles={value: value_label(value, units), delta: f"difference ({units})"},
        meta={"step": int(step), "checkpoints": names,
              "max_abs_difference": float(np.nanmax(np.abs(diff), initial=0.0))},
    )  # fmt: skip
    if "gates" not in cmp:
        return forecast, None
    latent, _ = latent_grid(ds)
    gates = [str(g) for g in cmp["gate"].values]
    rows: list[list[Panel]] = [[], [], []]
    biggest = 0.0
    for gate in gates:
        g = cmp["gates"].sel(gate=gate).isel(step=gate_step)  # (checkpoint, hidden, gy, gx)
        a, b = _mean_units(g.isel(checkpoint=0), None), _mean_units(g.isel(checkpoint=1), None)
        d = _mean_units(cmp["gate_difference"].sel(gate=gate).isel(step=gate_step), None)
        biggest = max(biggest, float(np.nanmax(np.abs(d), initial=0.0)))
        scale = gate_scale(gate, arrays=(a, b))
        sym = f"{gate} {symbol_html(gate)}"  # short: six columns fit a 1024 px window
        rows[0].append(Panel(sym, a, scale, latent))
        rows[1].append(Panel(sym, b, scale, latent))
        rows[2].append(Panel(sym, d, _difference_scale((d,)), latent))
    gates_fig = panel_grid_figure(
        rows,
        title=f"Layer {int(cmp.attrs.get('layer', 0))} gates at step {gate_step} (mean over "
        f"hidden channels)<br><span style='font-size:12px'>rows: {names[0]} · {names[1]} · "
        f"{names[1]} − {names[0]}</span>",
        kind="compare_gates",
        row_labels=[_short(names[0]), _short(names[1]), "difference"],
        meta={
            "gate_step": int(gate_step),
            "checkpoints": names,
            "max_abs_gate_difference": biggest,
        },
    )
    return forecast, gates_fig


def _short(name: str, limit: int = 18) -> str:
    """``name`` cut to ``limit`` characters with an ellipsis (a row label beside a panel)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def attribution_figure(ig: xr.Dataset, ds: xr.Dataset, *, columns: int = 6) -> go.Figure:
    """Integrated gradients per context frame (``model.gate_lab.integrated_gradients``), one
    panel per frame on one symmetric scale, the explained region outlined."""
    axis = time_axis(ds)
    heat = ig["attribution"].values  # (context_time, y, x)
    s = error_scale(units="", arrays=(heat,))
    scale = Scale(s.vmin, s.vmax, "", s.colours, label="attribution")
    frame = frame_grid(ds)
    panels = [
        Panel(f"frame {t + 1} · {axis.label(t)}", heat[t], scale, frame) for t in range(len(heat))
    ]
    rows = [panels[i : i + columns] for i in range(0, len(panels), columns)]
    region = [int(v) for v in ig.attrs["region"]]
    return panel_grid_figure(
        rows,
        title=f"What drove the forecast over the outlined region at lead {int(ig.attrs['lead'])}"
        " (integrated gradients per context frame)",
        kind="attribution",
        region=region,
        frame=frame,
        bar_titles={scale: "attribution (model-space output per pixel)"},
        meta={"lead": int(ig.attrs["lead"]), "region": region, "frames": len(panels)},
    )


def memory_figure(memory: xr.DataArray, ds: xr.Dataset, *, lead: int) -> go.Figure:
    """The memory map of every layer at one lead (``model.gate_lab.memory_map``, fractions)."""
    axis = time_axis(ds)
    scale = Scale(0.0, 1.0, "", SIGMOID_COLOURS, label="fraction kept")
    latent, _ = latent_grid(ds)
    step = axis.n_context + lead - 1
    panels = [
        Panel(f"layer {int(layer)}", memory.sel(layer=layer, lead=lead).values, scale, latent)
        for layer in memory["layer"].values
    ]
    return panel_grid_figure(
        [panels],
        title=f"Cell state of the last context step still carried at lead {axis.label(step)}"
        "<br><span style='font-size:12px'>product of the forget gates since (mean over hidden "
        "channels)</span>",
        kind="memory",
        bar_titles={scale: "fraction of the context's cell state kept"},
        meta={"lead": int(lead), "layers": [int(v) for v in memory["layer"].values]},
    )

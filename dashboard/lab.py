"""The gate lab views of the page (thin Streamlit UI; issue 13).

Units (small multiples of every hidden unit), Saturation, Interventions, Attribution, Memory and
Side by side, plus the cell equations beside the gate panels. Compute lives in
:mod:`model.gate_lab` and :mod:`model.interventions`, reached through :mod:`dashboard.services`
and cached in :mod:`dashboard.cache`; figures are built by :mod:`dashboard.lab_figures`. Every
view shows the page's step (one time control), keeps its settings in the deep link and shows
problems as one message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import streamlit as st
import xarray as xr

from dashboard import cache, figures, lab_figures, services, state
from dashboard.state import DeepLink, format_channels, format_rectangle, parse_channels
from dashboard.text import safe
from dashboard.widgets import BOX_CHART_CONFIG, chart, choose

OPERATIONS = ("set", "scale", "clamp", "freeze")
OPERATION_LABELS = {
    "set": "set to a value",
    "scale": "scale by a factor",
    "clamp": "clamp between bounds",
    "freeze": "freeze at its value",
}
SORTS = ("activity", "variance", "saturation")
REGION_KEYS = ("region_y0", "region_y1", "region_x0", "region_x1")


@dataclass
class LabPage:
    """What every lab view reads: the rollout, the page's step and the selection behind it."""

    ds: xr.Dataset
    link: DeepLink
    query: dict
    step: int
    rollout_key: tuple
    root: str
    data: xr.DataArray
    meta: dict
    config: object
    checkpoint: str
    compatible: list[str] = field(default_factory=list)
    channel: int = 0

    @property
    def axis(self) -> figures.TimeAxis:
        return figures.time_axis(self.ds)

    @property
    def n_ctx(self) -> int:
        return int(self.ds.sizes.get("context_time", 0))

    @property
    def key(self) -> tuple:
        """Cache key of this rollout (the checkpoint folder included)."""
        return (*self.rollout_key, self.root)

    @property
    def gate_step(self) -> int:
        """The page's step as a step of the captured gates."""
        return min(self.step, int(self.ds.sizes["step"]) - 1)

    @property
    def forecast_step(self) -> int:
        """The page's step, or the first forecast step while the step is a context frame."""
        return min(max(self.step, self.n_ctx), self.n_ctx + int(self.ds.sizes["time"]) - 1)

    @property
    def lead(self) -> int:
        """Lead time (1-based) of :attr:`forecast_step`."""
        return self.forecast_step - self.n_ctx + 1

    def context_note(self) -> None:
        if self.step < self.n_ctx:
            st.caption(
                f"The step chosen above is a context frame; this view shows the first forecast "
                f"step ({self.axis.label(self.forecast_step)}) instead."
            )


# -- shared controls -------------------------------------------------------------------------------
def choose_layer(page: LabPage, where) -> int:
    layers = [int(v) for v in page.ds["layer"].values]
    linked = page.link.take_choice("layer", [str(v) for v in layers], what="layer")
    if linked is not None:
        st.session_state["layer"] = int(linked)
    choose("layer", layers)
    layer = int(where.selectbox("Layer", layers, key="layer"))
    page.query["layer"] = layer
    return layer


def choose_gate(page: LabPage, where, label: str, default: str = state.OPENING_GATE) -> str:
    gates = [str(v) for v in page.ds["gate"].values]
    linked = page.link.take_choice("gate", gates, what="gate")
    if linked:
        st.session_state["gate"] = linked
    choose("gate", gates, default)
    gate = where.selectbox(
        label, gates, key="gate", format_func=lambda g: f"{g} ({figures.GATE_SYMBOLS[g]})"
    )
    page.query["gate"] = gate
    return gate


def region_inputs(page: LabPage, heading: str) -> tuple[int, int, int, int]:
    """Four number inputs: a rectangle of frame pixels (default: around the heaviest rain)."""
    ny, nx = int(page.ds.sizes["y"]), int(page.ds.sizes["x"])
    linked = page.link.take_rectangle("region", ny, nx)
    if linked is not None:
        st.session_state.update(dict(zip(REGION_KEYS, linked, strict=True)))
    limits = (ny - 1, ny, nx - 1, nx)
    bounded = zip(REGION_KEYS, limits, strict=True)
    if any(not 0 <= st.session_state.get(k, -1) <= hi for k, hi in bounded):
        default = services.default_region(page.ds)
        st.session_state.update(dict(zip(REGION_KEYS, default, strict=True)))
    st.markdown(heading)
    labels = (
        "rows from y0", "to y1 (excluded)", "columns from x0", "to x1 (excluded)",
    )  # fmt: skip
    columns = st.columns(4)
    region = tuple(
        int(col.number_input(label, 0, hi, step=1, key=key))
        for col, label, hi, key in zip(columns, labels, limits, REGION_KEYS, strict=True)
    )
    page.query["region"] = format_rectangle(region)
    return region


def equations(meta: dict) -> None:
    """The checkpoint's cell equations (LaTeX), peephole terms when it has them."""
    eq = services.cell_equations(meta)
    if not eq:
        st.caption("This checkpoint does not record its cell configuration.")
        return
    st.latex(
        r"\footnotesize\begin{aligned}"
        + r" \\ ".join(map(_latex_lines, eq.values()))
        + r"\end{aligned}"
    )

    st.caption(
        "σ: sigmoid, ∗: convolution, ∘: element-wise product. X_t is the patched frame for "
        "layer 0, the hidden state of the layer below otherwise. Hover a panel for its equation."
    )


def _latex_lines(equation: str) -> str:
    """``a = σ(x + y + b)`` as aligned lines, one term each (the bias stays with the last), so
    the equations fit a narrow column."""
    left, right = equation.split(" = ", 1)
    terms = right.split(" + ")
    if "(" in right and len(terms) > 2:
        terms = [*terms[:-2], f"{terms[-2]} + {terms[-1]}"]
        right = r" \\ &\quad + ".join(terms)
    return f"{left} &= {right}"


def text_equations(meta: dict) -> dict[str, str]:
    return services.cell_equations(meta, fmt="text")


# -- interventions ---------------------------------------------------------------------------------
def interventions_view(page: LabPage) -> None:
    st.caption(
        "Edit a gate or state inside the cell update while the forecast runs, then compare with "
        "the forecast without the edit. Example: close the forget gate (set it to 0) of layer 0 "
        "over a storm from +15 min."
    )
    problem = services.own_grid_problem(page.meta, page.ds, "Gate interventions run")
    if problem:
        st.info(safe(problem))
        return
    edit = _edit_controls(page)
    if edit is None:
        return
    t0 = time.perf_counter()
    with st.spinner("Running the intervened forecast…"):
        edited = cache.intervention(page.rollout_key, page.root, edit, _data=page.data)
    page.context_note()
    fig = lab_figures.intervention_figure(
        page.ds, edited, edit, step=page.forecast_step, gate_step=page.gate_step,
        channel=page.channel,
    )  # fmt: skip
    st.session_state["_region_grid"] = figures.frame_grid(page.ds)
    chart(
        fig, "intervention_chart", config=BOX_CHART_CONFIG, on_select=_on_region_box,
        selection_mode=("box",),
    )  # fmt: skip
    st.caption(
        f"{edit.describe()} · ready in {time.perf_counter() - t0:.2f} s. The edit acts on the "
        "gates computed while reading the frame before the first changed forecast; the dotted "
        "box is the region: drag a new box on any panel, or type its rows and columns above. "
        "Step shown above drives these panels."
    )
    _score_change(page, edit, edited)


def _edit_controls(page: LabPage):
    """The edit's widgets; the checked GateEdit, or None after showing what is wrong."""
    c1, c2, c3, c4 = st.columns(4)
    layer = choose_layer(page, c1)
    gate = choose_gate(page, c2, "Gate or state")
    op = _operation(page, c3)
    numbers = _operation_values(page, c4, op)
    c5, c6 = st.columns([1, 2])
    hidden = int(page.config.hidden_channels[layer])
    channels_text = _channels_input(page, c5, hidden)
    start = _from_step(page, c6) - 1
    region = region_inputs(page, "Region (frame pixels)")
    if numbers is None:
        return None
    try:
        channels = parse_channels(channels_text, hidden)
        return services.make_edit(
            page.config, steps=int(page.ds.sizes["step"]), layer=layer, target=gate,
            operation=op, channels=channels, region=region, start=start, **numbers,
        )  # fmt: skip
    except (ValueError, services.DashboardError) as exc:
        st.error(safe(exc))
        return None


def _on_region_box() -> None:
    """Make a box dragged on the intervention panels the edit's region (a callback: it runs
    before the region inputs are drawn, so they show the box; it must never raise)."""
    try:
        selection = (st.session_state.get("intervention_chart") or {}).get("selection", {})
        boxes = selection.get("box") or []
        grid = st.session_state.get("_region_grid")
        region = lab_figures.region_from_box(boxes[-1], grid) if boxes and grid else None
        if region is not None:
            st.session_state.update(dict(zip(REGION_KEYS, region, strict=True)))
    except Exception:  # noqa: BLE001 - a bad event must not break the page
        pass


def _operation(page: LabPage, where) -> str:
    linked = page.link.take_choice("op", list(OPERATIONS), what="operation")
    if linked:
        st.session_state["op"] = linked
    choose("op", list(OPERATIONS))
    op = where.selectbox("Operation", OPERATIONS, key="op", format_func=OPERATION_LABELS.get)
    page.query["op"] = op
    return op


def _operation_values(page: LabPage, where, op: str) -> dict | None:
    """``value`` (set, scale) or ``lo``/``hi`` (clamp) of the operation; None: unreadable."""
    if op in ("set", "scale"):
        key, label, default = {
            "set": ("iv_value", "Value (gates 0–1, g and H −1–1)", 0.0),
            "scale": ("iv_factor", "Factor", 0.5),
        }[op]
        linked = page.link.take_float("value", what=f"{op} value")
        if linked is not None:
            st.session_state[key] = linked
        st.session_state.setdefault(key, default)
        value = float(where.number_input(label, step=0.1, format="%g", key=key))
        page.query["value"] = f"{value:g}"
        return {"value": value}
    if op == "freeze":
        where.caption("Keeps the value it had at the first edited step.")
        return {}
    bounds = {}
    for name, label in (("lo", "Lower bound (empty: none)"), ("hi", "Upper bound (empty: none)")):
        linked = page.link.take_float(name, what=f"clamp bound {name}")
        if linked is not None:
            st.session_state[f"iv_{name}"] = f"{linked:g}"
        text = where.text_input(label, key=f"iv_{name}").strip()
        try:
            bounds[name] = float(text) if text else None
        except ValueError:
            where.error(safe(f"{label.split(' (')[0]} {text!r} is not a number."))
            return None
        if bounds[name] is not None:
            page.query[name] = f"{bounds[name]:g}"
    return bounds


def _channels_input(page: LabPage, where, hidden: int) -> str:
    linked = page.link.take_channels("units", hidden)
    if linked is not None:
        st.session_state["iv_units"] = linked
    st.session_state.setdefault("iv_units", "all")
    text = where.text_input(f"Channels (all, or e.g. 0, 3, 5-7; 0–{hidden - 1})", key="iv_units")
    try:
        page.query["units"] = format_channels(parse_channels(text, hidden))
    except ValueError:
        page.query["units"] = text.strip()
    return text


def _from_step(page: LabPage, where) -> int:
    """Animation step of the first forecast frame the edit changes (start step + 1)."""
    axis, n_ctx = page.axis, page.n_ctx
    last = int(page.ds.sizes["step"])  # steps read; the edit starts at most at the last one
    linked = page.link.take_int("from_step", 1, last, what="first changed step")
    if linked is not None:
        st.session_state["from_step"] = linked
    if not 1 <= st.session_state.get("from_step", 0) <= last:
        st.session_state["from_step"] = min(n_ctx, last) or 1
    step = int(
        where.select_slider(
            "Edit so that the forecast changes from",
            options=list(range(1, last + 1)),
            key="from_step",
            format_func=lambda s: f"{axis.label(s)} ({axis.phase(s)})",
        )
    )
    page.query["from_step"] = step
    return step


def _score_change(page: LabPage, edit, edited: xr.Dataset) -> None:
    if "truth" not in page.ds:
        st.caption("No ground truth after the context: no scores to compare.")
        return
    threshold = float(st.session_state.get("threshold", 1.0))
    table, units = cache.score_change(page.key, edit, threshold, _original=page.ds, _edited=edited)
    table = table.copy()
    table.insert(1, "lead_time", [page.axis.label(page.n_ctx + k - 1) for k in table["lead_step"]])
    table.insert(3, "unit", [units.get(s, "") for s in table["score"]])
    st.markdown("**Change in each score** (intervened − original, same pixels)")
    st.dataframe(table, hide_index=True, key="score_change_table")


# -- unit browser ----------------------------------------------------------------------------------
def units_view(page: LabPage) -> None:
    c1, c2, c3, c4 = st.columns(4)
    layer = choose_layer(page, c1)
    gate = choose_gate(page, c2, "Gate shown in the tiles", default="hidden")
    sort = _choose_sort(page, c3)
    table, payload = services.unit_browser(
        page.ds, layer=layer, step=page.gate_step, gate=gate, sort_by=sort
    )
    order = [int(u) for u in table.index]
    unit = _choose_unit(page, c4, order, table, sort)
    st.session_state["_unit_order"] = order
    labels = [
        f"unit {u} · activity {table.loc[u, 'activity']:.3f}, variance "
        f"{table.loc[u, 'variance']:.3g}, saturation {table.loc[u, 'saturation']:.0%}"
        for u in order
    ]
    fig = lab_figures.unit_grid_figure(
        payload, order, labels=labels, picked=unit, sort_by=sort,
        flip_rows=figures.north_up_rows(page.ds),
    )  # fmt: skip
    chart(fig, "units_chart", on_select=_on_unit_click, selection_mode="points")
    st.caption(
        f"{len(order)} units of layer {layer} at step {page.gate_step}, 8-bit maps "
        f"({fig.layout.meta['payload_bytes'] / 1e3:.0f} kB). Activity: mean |H_t|; variance of "
        "H_t over the grid; saturation: share of i, f, o values below 0.1 or above 0.9."
    )
    st.markdown(f"**Unit {unit}** of layer {layer}: its six panels and time series")
    gates_with_equations(page, layer=layer, reduction=unit, gate=gate)
    chart(
        figures.gate_means_figure(page.ds, layer=layer, step=page.gate_step, gate=gate, unit=unit),
        "unit_series_chart",
    )
    st.dataframe(table, key="unit_table")


def gates_with_equations(page: LabPage, *, layer: int, reduction, gate: str) -> None:
    """The six gate panels of ``layer`` (one reduction for all) with the equations beside
    (below them where the page is too narrow for both: :data:`EQUATIONS_CSS`)."""
    st.html(EQUATIONS_CSS)
    left, right = st.container(key="gates_equations").columns([3, 1.3])
    with left:
        chart(
            cache.gates_figure(
                page.rollout_key, layer, reduction, page.gate_step, gate, _ds=page.ds,
                _equations=text_equations(page.meta),
            ),
            "gates_chart",
        )  # fmt: skip
    with right:
        st.markdown("**Cell equations**")
        equations(page.meta)


EQUATIONS_CSS = """<style>
.st-key-gates_equations {container-type: inline-size;}
@container (max-width: 900px) {
  .st-key-gates_equations [data-testid="stHorizontalBlock"] {flex-direction: column;}
  .st-key-gates_equations [data-testid="stColumn"] {width: 100% !important;
    flex: 1 1 auto !important; min-width: 0;}
}
</style>"""
"""Gate panels and equations side by side only where the page's main column is wider than
1100 px (the equations' column then has room for their longest line, about 320 px); narrower,
the equations go below the panels. A container query: it follows the main column, so an open or
closed sidebar counts."""


def _choose_sort(page: LabPage, where) -> str:
    linked = page.link.take_choice("sort", list(SORTS), what="unit order")
    if linked:
        st.session_state["sort"] = linked
    choose("sort", list(SORTS))
    sort = where.selectbox("Sort units by", SORTS, key="sort")
    page.query["sort"] = sort
    return sort


def _choose_unit(page: LabPage, where, order: list[int], table, sort: str) -> int:
    linked = page.link.take_channel(len(order))
    if isinstance(linked, int):
        st.session_state["unit"] = linked
    choose("unit", order)
    unit = int(
        where.selectbox(
            "Unit",
            order,
            key="unit",
            format_func=lambda u: f"{u} ({sort} {table.loc[u, sort]:.3g})",
        )
    )
    page.query["channel"] = unit
    return unit


def _on_unit_click() -> None:
    """Open the clicked small multiple (a callback: it must never raise)."""
    try:
        points = (st.session_state.get("units_chart") or {}).get("selection", {}).get("points", [])
        order = st.session_state.get("_unit_order") or []
        if points:
            unit = points[0].get("customdata")
            unit = order[points[0]["point_index"]] if unit is None else unit
            st.session_state["unit"] = int(unit[0] if isinstance(unit, list) else unit)
    except Exception:  # noqa: BLE001 - a bad event must not break the page
        pass


# -- saturation ------------------------------------------------------------------------------------
def saturation_view(page: LabPage) -> None:
    c1, c2, c3 = st.columns([1, 1, 1])
    layer = choose_layer(page, c1)
    sat = cache.saturation(page.key, _ds=page.ds)
    units = [
        int(u)
        for u in sat["hidden"].values
        if bool(sat["left"].sel(layer=layer, hidden=u).notnull().all())
    ]
    st.session_state["_saturation_units"] = units
    choose("sat_unit", units)
    unit = int(c2.selectbox("Unit", units, key="sat_unit"))
    c3.button(
        "Open this unit in the unit browser", key="open_unit", on_click=open_unit,
        args=(layer, unit),
    )  # fmt: skip
    fig = lab_figures.saturation_figure(sat, layer=layer, picked=unit)
    chart(fig, "saturation_chart", on_select=_on_saturation_click, selection_mode="points")
    st.caption(
        "Over every step of this rollout (context and forecast). Units in the bottom-left corner "
        "never saturate; along the axes they act as switches (Karpathy, Johnson & Fei-Fei 2015)."
    )


def open_unit(layer: int, unit: int) -> None:
    """Switch to the unit browser on ``unit`` of ``layer`` (a callback)."""
    st.session_state.update(view="Units", layer=int(layer), unit=int(unit))


def _on_saturation_click() -> None:
    try:
        points = (st.session_state.get("saturation_chart") or {}).get("selection", {})
        points = points.get("points", [])
        layer = st.session_state.get("layer")
        if points and points[0].get("customdata") is not None and layer is not None:
            unit = points[0]["customdata"]
            open_unit(layer, unit[0] if isinstance(unit, list) else unit)
    except Exception:  # noqa: BLE001 - a bad event must not break the page
        pass


# -- attribution and memory ------------------------------------------------------------------------
def attribution_view(page: LabPage) -> None:
    problem = services.own_grid_problem(page.meta, page.ds, "The attribution runs")
    if problem:
        st.info(safe(problem))
        return
    region = region_inputs(page, "Output region explained (frame pixels)")
    page.context_note()
    lead = page.lead
    with st.status(
        f"Integrated gradients of the forecast at {page.axis.label(page.forecast_step)} "
        "(a few seconds)…",
        expanded=False,
    ) as status:
        ig = cache.attribution(page.rollout_key, page.root, lead, region, _data=page.data)
        status.update(
            label=f"Attribution ready ({ig.attrs['seconds']:.1f} s to compute; completeness "
            f"within {ig.attrs['completeness_relative']:.2%})",
            state="complete",
        )
    chart(lab_figures.attribution_figure(ig, page.ds), "attribution_chart")
    labels = [page.axis.label(t) for t in range(len(ig["share"]))]
    chart(
        lab_figures.share_figure(
            ig["share"].values, labels, title="Share of each context frame in the attribution"
        ),
        "attribution_share_chart",
    )
    st.caption(
        "Integrated gradients (Sundararajan et al. 2017) of the mean forecast over the region, "
        "from an all-zero context: red pushed the forecast up, blue down."
    )


def memory_view(page: LabPage) -> None:
    page.context_note()
    memory = cache.memory(page.key, _ds=page.ds)
    chart(lab_figures.memory_figure(memory, page.ds, lead=page.lead), "memory_chart")
    labels = [page.axis.label(page.n_ctx + k - 1) for k in memory["lead"].values]
    chart(
        lab_figures.memory_curve_figure(memory, labels=labels, lead=page.lead),
        "memory_curve_chart",
    )
    st.caption(
        "The direct path through the cell only: C of the last context step times the forget "
        "gates of every forecast step since (what re-enters through H and the input gate is not "
        "counted)."
    )


# -- side by side ----------------------------------------------------------------------------------
def side_by_side_view(page: LabPage) -> None:
    c1, c2 = st.columns(2)
    options = page.compatible or [page.checkpoint]
    linked = page.link.take_choice("other", options, what="checkpoint to compare with")
    if linked:
        st.session_state["other"] = linked
    others = [n for n in options if n != page.checkpoint]
    choose("other", options, others[0] if others else page.checkpoint)
    other = c1.selectbox("Compare with checkpoint", options, key="other")
    page.query["other"] = other
    layer = choose_layer(page, c2)
    _, sample, start, context, horizon = page.rollout_key[1:]
    second = cache.rollout(
        other, page.root, page.rollout_key[1], sample, start, context, horizon, _data=page.data
    )
    names = (page.checkpoint, other if other != page.checkpoint else f"{other} (again)")
    cmp, note = services.compare_runs(page.ds, second, layer=layer, names=names)
    if note:
        st.info(safe(note))
    page.context_note()
    forecast, gates = lab_figures.compare_figures(
        cmp, page.ds, step=page.forecast_step, gate_step=page.gate_step, channel=page.channel
    )
    chart(forecast, "compare_chart")
    if gates is not None:
        chart(gates, "compare_gates_chart")
    _score_tables(page, second, other)


def _score_tables(page: LabPage, second: xr.Dataset, other: str) -> None:
    if "truth" not in page.ds:
        st.caption("No ground truth after the context: no scores to compare.")
        return
    threshold = float(st.session_state.get("threshold", 1.0))
    labels = [page.axis.label(page.n_ctx + i) for i in range(int(page.ds.sizes["time"]))]
    second_key = (other, *page.rollout_key[1:])
    runs = ((page.checkpoint, page.rollout_key, page.ds), (other, second_key, second))
    for k, (col, (name, key, ds)) in enumerate(zip(st.columns(2), runs, strict=True)):
        tables, _ = cache.scores(key, threshold, _ds=ds, _data=page.data)
        table = services.scores_long({"ConvLSTM": tables["ConvLSTM"]}, labels)
        col.markdown(f"**Scores of {safe(name)}**")
        col.dataframe(table.drop(columns="forecast"), hide_index=True, key=f"scores_{k}")


VIEWS = {
    "Units": units_view,
    "Saturation": saturation_view,
    "Interventions": interventions_view,
    "Attribution": attribution_view,
    "Memory": memory_view,
    "Side by side": side_by_side_view,
}
"""The lab's views by the name the page's view control shows."""


def show(view: str, page: LabPage) -> None:
    """Draw lab view ``view``; a rollout without gates gets a message instead."""
    if "gates" not in page.ds:
        st.info(safe(page.ds.attrs.get("capture_note", "This rollout has no gates.")))
        return
    VIEWS[view](page)

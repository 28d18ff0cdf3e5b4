"""Small Streamlit helpers shared by the page (:mod:`dashboard.app`) and the gate lab views
(:mod:`dashboard.lab`): chart settings and widget-state guards. No compute here."""

from __future__ import annotations

import streamlit as st

# theme=None on every chart: the Streamlit theme rewrites the whole spec in the browser, which took
# ~1.5 s for a 24-frame 128x128 animation; figures carry their own light template instead.
CHART_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def choose(key: str, options: list, default=None) -> None:
    """Make sure ``st.session_state[key]`` is one of ``options`` before its widget is drawn."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


BOX_CHART_CONFIG = {**CHART_CONFIG, "modeBarButtonsToRemove": ["lasso2d", "zoom2d", "pan2d"]}
"""A chart on which dragging draws a box that means something (a region): no drag-to-zoom or pan
tool that would leave the box tool (plotly shows no box button for heatmaps)."""


def chart(fig, key: str, *, config: dict | None = None, **kwargs):
    """``st.plotly_chart`` with the page's settings (no Streamlit theme, no plotly logo).

    A figure with ``layout.meta["fit"]`` (:func:`dashboard.figures.fit_height`: square panels)
    is drawn as tall as its width asks for (:func:`fit_css`), in two keyed containers: the outer
    one gives the width (a CSS size container), the inner one gets the height and the chart fills
    it (``height="stretch"``); Streamlit hands plotly the new height on every resize.
    """
    meta = getattr(fig.layout, "meta", None)
    fit = meta.get("fit") if isinstance(meta, dict) else None
    kwargs.update(key=key, config=config or CHART_CONFIG, theme=None)
    if not fit:
        return st.plotly_chart(fig, **kwargs)
    st.html(fit_css(key, fit))
    with st.container(key=f"{key}_frame"), st.container(key=f"{key}_box"):
        return st.plotly_chart(fig, height="stretch", **kwargs)


def fit_css(key: str, fit: dict) -> str:
    """The ``<style>`` that makes the chart ``key``'s box ``fit["fixed_px"] + fit["per_px"] *
    (width - fit["inset_px"])`` pixels tall, at most ``fit["max_px"]`` (container query units:
    ``100cqw`` is the width of the ``{key}_frame`` container)."""
    fixed, per, inset, top = (float(fit[k]) for k in ("fixed_px", "per_px", "inset_px", "max_px"))
    height = f"min(calc({fixed:g}px + {per:g} * (100cqw - {inset:g}px)), {top:g}px)"
    return (
        f"<style>.st-key-{key}_frame {{container-type: inline-size;}}\n"
        # doubled class: outranks Streamlit's own rule; flex none: a flex-basis would win
        f".st-key-{key}_box.st-key-{key}_box {{flex: none; height: {height};}}</style>"
    )


KEPT_KEYS = (
    "layer", "gate", "reduction", "hidden_channel", "op", "iv_value", "iv_factor", "iv_lo",
    "iv_hi", "iv_units", "from_step", "region_y0", "region_y1", "region_x0", "region_x1", "sort",
    "unit", "sat_unit", "other",
)  # fmt: skip
"""Widget keys whose values outlive a view that does not draw them (layer, region, edit...)."""


def keep_values(keys=KEPT_KEYS) -> None:
    """Keep the values of ``keys`` through runs that do not draw their widgets.

    Streamlit forgets a widget's value at the end of a run that does not draw it; written back
    as plain session state at the start of each run, it stays. Call before any widget is drawn.
    """
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]

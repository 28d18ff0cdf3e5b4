"""The first lines of every page run, before :mod:`dashboard.app` imports the heavy modules.

Streamlit's browser code for plotly charts (4.7 MB of JavaScript) is fetched and compiled only
when a page receives its first plotly chart. On the busy 2-core machine that took about 1 s to
fetch and 2 s to start, after the forecast had arrived. :func:`open_page` therefore sends a
hidden one-point chart as the first element of a new session's first run. The browser then loads
plotly while the server imports torch, loads the checkpoint and computes the page. This module
imports only Streamlit and plotly, so the hidden chart goes out within milliseconds of the run's
start, even on a cold server.

Once plotly has started, the browser draws every chart it has received in one go. On a new page
the forecast then waited about 0.5 s for the gate panels, the equations and the gate means below
it. On such a page (:func:`new_browser_page`) the gates view sends its controls and a placeholder;
the browser reports when it has drawn the forecast (:func:`report_forecast_drawn`), and that
report's run sends the rest.
"""

from __future__ import annotations

import streamlit as st

PLOTLY_PRELOAD_KEY = "plotly_preload"
"""Key of the hidden container of the preload chart (styled ``display: none``)."""
PRELOADED_KEY = "_plotly_preloaded"
"""Session-state flag: this session's browser was sent the preload chart."""


FORECAST_DRAWN_MAX_WAIT_MS = 8000
"""The browser's signal fires after this long even if no forecast chart was drawn (an error on the
page, a slow machine): the deferred part of the page is then sent anyway."""
FORECAST_DRAWN_JS = """
export default function (component) {
  const { setTriggerValue } = component;
  const started = performance.now();
  let done = false;
  let timer = null;
  const drawn = () => [...document.querySelectorAll('.js-plotly-plot')].some((gd) => {
    const meta = gd.layout && gd.layout.meta;
    const frames = gd._transitionData && gd._transitionData._frames;
    return meta && meta.kind === 'forecast' && frames && frames.length > 0;
  });
  const check = () => {
    if (done) return;
    if (drawn() || performance.now() - started > MAX_WAIT_MS) {
      done = true;
      // after the browser has painted the forecast, never before
      requestAnimationFrame(() => setTimeout(() => setTriggerValue('drawn', true), 0));
      return;
    }
    timer = setTimeout(check, 40);
  };
  check();
  return () => { done = true; clearTimeout(timer); };
}
""".replace("MAX_WAIT_MS", str(FORECAST_DRAWN_MAX_WAIT_MS))
"""The browser side of :func:`report_forecast_drawn`: poll for the forecast chart with its
animation frames, wait for the next paint, then report ``drawn`` (a rerun)."""
FIRST_RUN_KEY = "_first_run"
"""Session-state flag: this run is the session's first (set by :func:`open_page`)."""
INCOMPLETE_KEY = "_page_incomplete"
"""Session-state flag: this run left part of the page to the next (:func:`report_forecast_drawn`;
cleared by :func:`open_page` at the start of every run)."""


def open_page() -> None:
    """Page config and style; on a session's first run, the hidden plotly preload chart."""
    st.set_page_config(page_title="convlstm-lab", page_icon="🌧️", layout="wide")
    st.markdown(
        "<style>div.block-container{padding-top:2.2rem;} "
        "h1{font-size:1.9rem !important; margin-bottom:0 !important;} "
        f".st-key-{PLOTLY_PRELOAD_KEY}{{display:none;}}</style>",
        unsafe_allow_html=True,
    )
    first = PRELOADED_KEY not in st.session_state
    st.session_state[FIRST_RUN_KEY] = first
    st.session_state[INCOMPLETE_KEY] = False
    if first:  # a session's first run
        st.session_state[PRELOADED_KEY] = True
        _preload_plotly()


def new_browser_page() -> bool:
    """Whether this run is a browser session's first (a new page), which may leave the slow part
    of its view to the next run (then it calls :func:`report_forecast_drawn`).

    On a new page the browser must fetch and start plotly and then draws every chart it has at
    once, so the forecast waited for the charts below it. Any other run, and a client that runs
    no scripts (:func:`_runs_scripts`), gets the whole page at once.
    """
    return bool(st.session_state.get(FIRST_RUN_KEY)) and _runs_scripts()


def report_forecast_drawn() -> None:
    """An invisible element whose script reports (a rerun) once the browser has drawn and painted
    the forecast chart, or after :data:`FORECAST_DRAWN_MAX_WAIT_MS`; the report's run completes
    this page (:func:`page_incomplete` is true until then)."""
    st.session_state[INCOMPLETE_KEY] = True
    _forecast_drawn_signal(key="forecast_drawn_signal", on_drawn_change=lambda: None)


def page_incomplete() -> bool:
    """Whether this run left part of the page to the run of the browser's report (that run shows
    this run's warnings again: they are one page)."""
    return bool(st.session_state.get(INCOMPLETE_KEY))


def _runs_scripts() -> bool:
    """Whether this session's client is a web browser, which runs the page's scripts: every
    browser's ``User-Agent`` starts ``Mozilla/``. Streamlit's AppTest sends no headers; the load
    benchmark's websocket client sends ``Python/... websockets/...``: they get whole pages."""
    return st.context.headers.get("User-Agent", "").startswith("Mozilla/")


_forecast_drawn_signal = st.components.v2.component("convlstm_forecast_drawn", js=FORECAST_DRAWN_JS)


def _preload_plotly() -> None:
    """A hidden 10x10 px static chart: the browser loads plotly now (the next run drops it)."""
    import plotly.graph_objects as go

    tiny = go.Figure(
        go.Scatter(x=[0], y=[0]), layout={"height": 10, "width": 10, "meta": {"kind": "preload"}}
    )
    with st.container(key=PLOTLY_PRELOAD_KEY):
        st.plotly_chart(tiny, config={"staticPlot": True}, theme=None)

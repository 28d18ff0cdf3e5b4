"""The first lines of every page run, before :mod:`dashboard.app` imports the heavy modules.

Streamlit's browser code for plotly charts (4.7 MB of JavaScript) is fetched and compiled only
when a page receives its first plotly chart. On the busy 2-core machine that took about 1 s to
fetch and 2 s to start, after the forecast had arrived. :func:`open_page` therefore sends a
hidden one-point chart as the first element of a new session's first run. The browser then loads
plotly while the server imports torch, loads the checkpoint and computes the page. This module
imports only Streamlit and plotly, so the hidden chart goes out within milliseconds of the run's
start, even on a cold server.
"""

from __future__ import annotations

import streamlit as st

PLOTLY_PRELOAD_KEY = "plotly_preload"
"""Key of the hidden container of the preload chart (styled ``display: none``)."""
PRELOADED_KEY = "_plotly_preloaded"
"""Session-state flag: this session's browser was sent the preload chart."""


def open_page() -> None:
    """Page config and style; on a session's first run, the hidden plotly preload chart."""
    st.set_page_config(page_title="convlstm-lab", page_icon="🌧️", layout="wide")
    st.markdown(
        "<style>div.block-container{padding-top:2.2rem;} "
        "h1{font-size:1.9rem !important; margin-bottom:0 !important;} "
        f".st-key-{PLOTLY_PRELOAD_KEY}{{display:none;}}</style>",
        unsafe_allow_html=True,
    )
    if PRELOADED_KEY not in st.session_state:  # a session's first run
        st.session_state[PRELOADED_KEY] = True
        _preload_plotly()


def _preload_plotly() -> None:
    """A hidden 10x10 px static chart: the browser loads plotly now (the next run drops it)."""
    import plotly.graph_objects as go

    tiny = go.Figure(
        go.Scatter(x=[0], y=[0]), layout={"height": 10, "width": 10, "meta": {"kind": "preload"}}
    )
    with st.container(key=PLOTLY_PRELOAD_KEY):
        st.plotly_chart(tiny, config={"staticPlot": True}, theme=None)

"""convlstm-lab dashboard: ``streamlit run dashboard/app.py``.

Opens, offline and with no clicks, on the bundled real radar event (FMI, 2017-05-09) forecast over
its whole domain by the preferred radar checkpoint (:mod:`dashboard.state`); without one, on a
bundled checkpoint's forecast of a bundled sample. The sidebar picks the data, the
checkpoint and the rollout window; the main area shows the animated forecast and one view below it
(gates; the gate lab's units, saturation, interventions, attribution, memory and side by side, see
:mod:`dashboard.lab`; pixel probe, metrics or exports), so only that view's data reaches the
browser. One step control drives the forecast's start, the gates, the probe and the lab views.
Deep links (``?dataset=...&checkpoint=...&step=...``) restore a view; see :mod:`dashboard.state`.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

if __package__ in (None, ""):  # `streamlit run dashboard/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.page_start import (
    new_browser_page,
    open_page,
    page_incomplete,
    report_forecast_drawn,
)

if __name__ == "__main__":  # not in a child process that imports this file as __mp_main__
    open_page()  # before the heavy imports below: a new browser page starts loading plotly now

import numpy as np
import xarray as xr

from dashboard import cache, exports, figures, lab, services, state
from dashboard.state import DeepLink, to_query
from dashboard.text import plain, safe
from dashboard.widgets import chart, keep_values
from dashboard.widgets import choose as _choose
from datasets.layout import time_zone_of

VIEWS = ("Gates", *lab.VIEWS, "Pixel probe", "Metrics", "Export")
UPLOAD = "upload"
NEW_PAGE_WARNINGS_KEY = "_new_page_warnings"
"""Session state: the warnings of a new page's first run, shown again by the run completing it."""
UPLOAD_TYPES = [s.lstrip(".") for s in services.UPLOAD_SUFFIXES]
COLOUR_NOTES = {
    "radar": "Rain rate in mm/h on a logarithmic scale; white = no rain (below 0.1 mm/h), "
    "grey = no data (outside radar coverage).",
    "traffic": "Flow counts per interval on a sequential scale; grey = no data.",
    "video": "Pixel intensity in grayscale; grey = no data.",
}
REDUCTION_LABELS = {
    "mean": "mean over channels",
    "max": "max over channels",
    "variance": "the channel with most variance (in the focus gate)",
    "channel": "one channel",
}


def main() -> None:
    current = st.query_params.to_dict()
    written = st.session_state.get("_written_query")
    back_or_forward = written is not None and current != written and _history_navigation()
    if "_link" not in st.session_state or back_or_forward:
        # a new session, or the browser's Back/Forward brought another link: apply it. A URL
        # that merely lags behind (a click during a run) is not a navigation and is ignored.
        st.session_state["_link"] = DeepLink.from_query(current)
    link: DeepLink = st.session_state["_link"]
    keep_values()  # a layer, region or edit chosen in one view is still there in the next
    query: dict[str, object] = {}
    st.title("ConvLSTM lab")
    messages = st.container()
    # a new page's first run and the run that completes it (page_start) are one page: the first
    # run's warnings come again at once, so they stay on screen through the second run
    with messages:
        for msg in st.session_state.pop(NEW_PAGE_WARNINGS_KEY, []):
            st.warning(safe(msg))
    try:
        explore(link, query)
    except services.DashboardError as exc:
        st.error(safe(exc))
    except Exception as exc:  # noqa: BLE001 - the page must stay usable; never show a traceback
        st.error(safe(f"Something went wrong ({type(exc).__name__}: {exc}). Try other settings."))
    with messages:
        for msg in link.messages:
            st.warning(safe(msg))
    if page_incomplete():
        st.session_state[NEW_PAGE_WARNINGS_KEY] = list(link.messages)
    link.messages.clear()  # shown once: the link below no longer holds the rejected values
    final = to_query(query)
    st.query_params.from_dict(final)
    st.session_state["_written_query"] = final
    _release_memory()
    cache.first_page_served()  # the start-up warm-up may go on with the other domains


# -- sidebar: data and checkpoint ---------------------------------------------------------------
def _default_selection(entries, root: str) -> tuple[str | None, str | None]:
    """(dataset, checkpoint) to open on: the bundled radar event with the preferred radar
    checkpoint (:mod:`dashboard.state`), else the first bundled checkpoint whose dataset is
    bundled."""
    names = {e.name for e in entries if e.bundled}
    shipped = [name for name, _ in cache.checkpoints(root)]
    radar = [name for name in state.RADAR_CHECKPOINTS if name in shipped]
    if state.OPENING_DATASET in names and radar:
        return state.OPENING_DATASET, radar[0]
    ranked = sorted(
        cache.checkpoints(root),
        key=lambda item: (
            services.DOMAINS.index(d) if (d := item[1].get("domain")) in services.DOMAINS else 3,
            item[0],
        ),
    )
    for name, meta in ranked:
        if meta.get("dataset") in names:
            return meta["dataset"], name
    known = {e.name for e in entries}
    for name, meta in ranked:  # no bundled pair: any registered dataset with a checkpoint
        if meta.get("dataset") in known:
            return meta["dataset"], name
    return None, None


@dataclass
class Selection:
    """Everything the page shows, chosen top to bottom in the sidebar: one object per run.

    The widgets keep their values in ``st.session_state`` (Streamlit's per-user state); this
    object gathers what they resolved to in this run, so each part of the page reads one place.
    """

    root: str
    link: DeepLink
    query: dict
    domain: str = ""
    data: xr.DataArray | None = None
    data_key: str = ""
    data_label: str = ""
    checkpoint: str = ""
    meta: dict = field(default_factory=dict)
    sample: int = 0
    start: int = 0
    context: int = 1
    horizon: int = 1
    train_horizon: int = 0
    compatible: list = field(default_factory=list)

    @property
    def window(self) -> services.Window:
        return services.Window(self.sample, self.start, self.context, self.horizon)

    @property
    def rollout_key(self) -> tuple:
        return (self.checkpoint, self.data_key, self.sample, self.start, self.context, self.horizon)


def explore(link: DeepLink, query: dict) -> None:
    sel = Selection(root=str(services.checkpoint_root()), link=link, query=query)
    entries = cache.catalog()
    default_ds, default_ckpt = _default_selection(entries, sel.root)
    by_name = {e.name: e for e in entries}
    first = by_name[default_ds].domain if default_ds in by_name else None
    cache.server_ready(sel.root, tuple(sorted(services.DOMAINS, key=lambda d: d != first)))
    if not _choose_data(sel, entries, default_ds) or not _choose_checkpoint(sel, default_ckpt):
        return
    if not services.has_forecast_head(sel.meta):  # an imported network without a head
        _inspect_page(sel)
        return
    _choose_window(sel)
    net, loaded_meta, ds = _run_forecast(sel)
    step, channel, axis = _forecast_view(sel, ds)
    view = _choose_view(sel, ds, step, axis)
    page = lab.LabPage(
        ds=ds, link=link, query=query, step=step, rollout_key=sel.rollout_key, root=sel.root,
        data=sel.data, meta=loaded_meta, config=net.config, checkpoint=sel.checkpoint,
        compatible=sel.compatible, channel=channel,
    )  # fmt: skip
    views = {
        "Gates": lambda: _gates_view(page, after_forecast=True),
        "Pixel probe": lambda: _probe_view(ds, link, query, step, channel),
        "Metrics": lambda: _metrics_view(ds, sel, axis, _split_scorer(sel, net, loaded_meta)),
        "Export": lambda: _export_view(ds, sel, axis, channel),
    }
    views.get(view, lambda: lab.show(view, page))()
    query.update(context=sel.context, horizon=sel.horizon)
    cache.prefetch_next_samples(sel.rollout_key, sel.root, _data=sel.data)  # while the user looks


def _inspect_page(sel: Selection) -> None:
    """An inspect-mode checkpoint (no forecasting head): its gates over frames of the data only."""
    st.sidebar.header("Frames")
    n_time = int(sel.data.sizes["time"])
    sel.sample = _choose_sample(sel)
    default = min(int(sel.meta.get("context") or 10), n_time)
    _window_follows_checkpoint(sel.checkpoint, default, 1, n_time)
    sel.context = _linked_slider(sel, "context", "Frames read", 1, n_time, default)
    sel.start, sel.horizon = _choose_start(sel), 0
    source = (sel.meta.get("imported_from") or {}).get("project") or "an imported network"
    st.info(
        safe(
            f"{sel.checkpoint} has no forecasting head ({source}): inspect mode shows its gates "
            f"over the {sel.context} frames it read. Nothing is forecast, so there is no forecast, "
            "pixel probe, metrics or export view for it."
        )
    )
    with st.status("Running the network over the frames…", expanded=False) as status:
        ds = cache.inspection(sel.checkpoint, sel.root, sel.data_key, sel.sample, sel.start,
                              sel.context, _data=sel.data)  # fmt: skip
        status.update(label="Gates ready", state="complete", expanded=False)
    steps = list(range(int(ds.sizes["step"])))
    if st.session_state.get("inspect_step") not in steps:
        st.session_state["inspect_step"] = steps[-1]
    step = st.select_slider("Frame shown in the gates", steps, key="inspect_step",
                            format_func=lambda k: f"frame {sel.start + k}")  # fmt: skip
    from model.convlstm import ConvLSTMConfig

    page = lab.LabPage(
        ds=ds, link=sel.link, query=sel.query, step=step,
        rollout_key=("inspect", *sel.rollout_key), root=sel.root, data=sel.data, meta=sel.meta,
        config=ConvLSTMConfig.from_dict(sel.meta["config"]), checkpoint=sel.checkpoint,
    )  # fmt: skip
    _gates_view(page)
    sel.query.update(context=sel.context)


def _choose_data(sel: Selection, entries, default_ds: str | None) -> bool:
    """Domain, then dataset or upload (the domain follows a linked dataset). False: stop here."""
    by_name = {e.name: e for e in entries}
    side = st.sidebar
    side.header("Data")
    linked = sel.link.take_choice("dataset", list(by_name), what="dataset")
    if linked:
        st.session_state["dataset"] = linked
        st.session_state["domain"] = by_name[linked].domain or "video"
    domains = [d for d in services.DOMAINS if any(e.domain == d for e in entries)] + [UPLOAD]
    if "domain" not in st.session_state:
        first = by_name[default_ds].domain if default_ds in by_name else domains[0]
        st.session_state["domain"] = first
    _choose("domain", domains)
    sel.domain = side.radio(
        "Domain", domains, key="domain", horizontal=True,
        format_func=lambda d: "my file" if d == UPLOAD else d,
    )  # fmt: skip
    if sel.domain == UPLOAD:
        sel.data, sel.data_key, sel.data_label = _upload_data(side)
        if sel.data is None:
            st.info("Upload a file in the sidebar to forecast your own data.")
        elif int(sel.data.sizes["time"]) < 2:  # nothing to forecast from: say so, show the frame
            st.info(safe(_one_frame_note(sel.data, sel.data_label)))
            _preview(sel.data, sel.data_label)
            return False
        return sel.data is not None
    names = [e.name for e in entries if e.domain == sel.domain]
    bundled_first = sorted(names, key=lambda n: (not by_name[n].bundled, n))
    _choose("dataset", bundled_first, default_ds)
    name = side.selectbox(
        "Dataset", bundled_first, key="dataset",
        format_func=lambda n: n if by_name[n].bundled else f"{n} (needs files)",
    )  # fmt: skip
    if by_name[name].summary:
        side.caption(by_name[name].summary)
    if not by_name[name].bundled and _needs_download(name):
        return False
    sel.data, sel.data_key, sel.data_label = cache.dataset(name), name, name
    sel.query["dataset"] = name
    return True


def _choose_checkpoint(sel: Selection, default_ckpt: str | None) -> bool:
    """Only checkpoints that fit the data; the others listed with their reason. False: none."""
    side, data = st.sidebar, sel.data
    fits = [(n, m) for n, m in cache.checkpoints(sel.root) if _compatible(m, data)]
    names = [n for n, _ in fits]
    linked = sel.link.take_choice(
        "checkpoint", names, what=f"checkpoint compatible with {sel.data_label}"
    )
    if linked:
        st.session_state["checkpoint"] = linked
    side.header("Model")
    for bad, reason in cache.unavailable_checkpoints(sel.root):
        side.caption(safe(f"Unavailable: {bad}: {reason}"))
    if not names:
        _no_checkpoint_fits(sel)
        return False
    _choose(
        "checkpoint",
        names,
        default_ckpt if default_ckpt in names else state.preferred_checkpoint(names),
    )
    sel.checkpoint = side.selectbox("Checkpoint", names, key="checkpoint")
    sel.compatible = names
    sel.meta = dict(fits[names.index(sel.checkpoint)][1])
    for note in (services.time_step_note(sel.meta, data), services.family_note(sel.meta, data)):
        if note:
            side.warning(safe(note))
    sel.query["checkpoint"] = sel.checkpoint
    return True


def _no_checkpoint_fits(sel: Selection) -> None:
    data = sel.data
    c, h, w = (int(data.sizes[d]) for d in ("channel", "y", "x"))
    why = "; ".join(f"{n}: {services.fit_problem(m, data)}" for n, m in cache.checkpoints(sel.root))
    st.error(
        safe(
            f"No checkpoint fits {sel.data_label} ({c} channel(s), {h}x{w} grid, domain "
            f"{data.attrs.get('domain', '?')}, step {data.attrs.get('time_step', '?')}). "
            f"Checkpoints available: {why or 'none'}. Pick other data or train a checkpoint "
            "for it (python -m model.train)."
        )
    )
    _preview(data, sel.data_label)


def _choose_window(sel: Selection) -> None:
    """Sample, context, start and horizon; context and horizon follow the checkpoint."""
    st.sidebar.header("Forecast")
    n_time = int(sel.data.sizes["time"])
    sel.sample = _choose_sample(sel)
    default_ctx, _ = state.default_window(sel.meta, n_time)
    sel.train_horizon = int(sel.meta.get("horizon") or 0)
    max_ctx = max(1, n_time - 1)
    _window_follows_checkpoint(sel.checkpoint, default_ctx, sel.train_horizon, n_time)
    sel.context = _linked_slider(sel, "context", "Context frames", 1, max_ctx, default_ctx)
    sel.start = _choose_start(sel)
    _, default_h = state.default_window(sel.meta, n_time, sel.context)
    max_h = max(48, 2 * (sel.train_horizon or 12))
    sel.horizon = _linked_slider(sel, "horizon", "Horizon (frames)", 1, max_h, default_h)
    st.session_state["_windows"][sel.checkpoint] = (sel.context, sel.horizon)
    _window_notes(sel, n_time)


def _choose_sample(sel: Selection) -> int:
    n_samples = int(sel.data.sizes["sample"])
    linked = sel.link.take_int("sample", 0, n_samples - 1, what="sample index")
    if linked is not None:
        st.session_state["sample"] = linked
    st.session_state.setdefault("sample", min(state.OPENING_SAMPLE, n_samples - 1))
    if st.session_state["sample"] >= n_samples:
        st.session_state["sample"] = 0
    sample = int(
        st.sidebar.number_input(
            f"Sample (0–{n_samples - 1})", min_value=0, max_value=n_samples - 1, step=1,
            key="sample",
        )
    )  # fmt: skip
    sel.query["sample"] = sample
    return sample


def _linked_slider(sel: Selection, key: str, label: str, lo: int, hi: int, default: int) -> int:
    """A sidebar slider whose value a link may set; out-of-range values fall back to ``default``."""
    what = {"context": "context length"}.get(key, key)
    linked = sel.link.take_int(key, lo, hi, what=what)
    if linked is not None:
        st.session_state[key] = linked
    if not lo <= st.session_state.get(key, lo - 1) <= hi:
        st.session_state[key] = default
    return int(st.sidebar.slider(label, lo, hi, key=key) if hi > lo else lo)


def _choose_start(sel: Selection) -> int:
    last_start = services.max_start(sel.data, context=sel.context)
    if last_start <= 0:
        return 0
    if st.session_state.get("start", 0) > last_start:
        st.session_state["start"] = 0
    start = int(st.sidebar.slider("Start frame", 0, last_start, value=0, key="start"))
    st.sidebar.caption(_start_caption(sel.data, sel.sample, start))
    return start


def _window_notes(sel: Selection, n_time: int) -> None:
    if sel.train_horizon and sel.horizon > sel.train_horizon:
        st.sidebar.warning(
            f"Horizon {sel.horizon} is beyond the training horizon of {sel.train_horizon} frames: "
            "steps after it are extrapolation."
        )
    truth_left = n_time - sel.start - sel.context
    if truth_left < sel.horizon:
        st.sidebar.caption(
            f"Ground truth covers {max(truth_left, 0)} of the {sel.horizon} forecast frames."
        )


def _run_forecast(sel: Selection):
    """``(network, its metadata, rollout)`` of the selection, with a status box and timing."""
    t0 = time.perf_counter()
    with st.status("Loading the checkpoint and running the forecast…", expanded=False) as status:
        net, loaded_meta = cache.model(sel.checkpoint, sel.root)
        status.update(label="Running the forecast…")
        ds = cache.rollout(
            sel.checkpoint, sel.root, sel.data_key, sel.sample, sel.start, sel.context,
            sel.horizon, _data=sel.data,
        )  # fmt: skip
        status.update(
            label=f"Forecast ready ({time.perf_counter() - t0:.2f} s)",
            state="complete",
            expanded=False,
        )
    st.sidebar.header("Device")
    st.sidebar.caption(safe(ds.attrs.get("device_note") or loaded_meta.get("device_note", "?")))
    _summary(ds, sel.data, sel.data_label, sel.checkpoint, sel.meta, sel.context, sel.horizon,
             sel.train_horizon)  # fmt: skip
    return net, loaded_meta, ds


def _forecast_view(sel: Selection, ds):
    """The animated forecast at the chosen step; returns ``(step, data channel, time axis)``.

    The step is kept as a lead (frames after the first forecast frame), so that it means the same
    lead time after a switch of data or checkpoint; clamped to this rollout.
    """
    n_ctx = int(ds.sizes.get("context_time", 0))
    total = figures.n_steps(ds)
    linked_step = sel.link.take_int("step", 0, total - 1, what="animation step")
    if linked_step is not None:
        st.session_state["_lead"] = linked_step - n_ctx
    step = min(max(n_ctx + int(st.session_state.get("_lead", 0)), 0), total - 1)
    st.session_state["step"] = step
    st.session_state["_n_ctx"] = n_ctx
    channel = 0
    if int(ds.sizes["channel"]) > 1:
        chans = [str(c) for c in ds["channel"].values]
        channel = chans.index(st.selectbox("Data channel", chans, key="data_channel"))
    fig = cache.forecast_figure(sel.rollout_key, channel, step, sel.train_horizon or None, _ds=ds)
    chart(fig, "forecast_chart")
    st.caption(COLOUR_NOTES.get(figures.domain_of(ds), "") + " Press ▶ Play or drag the slider.")
    return step, channel, figures.time_axis(ds)


def _choose_view(sel: Selection, ds, step: int, axis) -> str:
    """The view below the forecast and the step slider shared by the views."""
    linked_view = sel.link.take_choice("view", list(VIEWS), what="view")
    if linked_view:
        st.session_state["view"] = linked_view
    view = st.radio("View", VIEWS, key="view", horizontal=True, label_visibility="collapsed")
    n_ctx = int(ds.sizes.get("context_time", 0))
    st.select_slider(
        "Step shown: the forecast starts here (▶ Play runs on from it), and the gates, probe and "
        "lab views show it",
        options=list(range(figures.n_steps(ds))),
        key="step",
        on_change=_on_step_change,
        format_func=lambda s: f"{axis.label(s)} ({'context' if s < n_ctx else 'forecast'})",
    )
    sel.query.update(view=view, step=step)
    return view


def _split_scorer(sel: Selection, net, loaded_meta):
    """``score_split(threshold, on_sample)`` over the whole split (an upload: all its samples)."""
    whole = sel.data if sel.domain == UPLOAD else None

    def score_split(threshold, on_sample):
        split = whole if whole is not None else cache.dataset(sel.data_key, n_samples=None)
        window = services.Window(
            sample=0, start=sel.start, context=sel.context, horizon=sel.horizon
        )
        return services.score_split(
            net, loaded_meta, split, window, threshold=threshold, on_sample=on_sample
        )

    return score_split


def _history_navigation() -> bool:
    """Whether this run comes from the browser's Back/Forward (Streamlit marks those runs)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return bool(getattr(get_script_run_ctx(), "is_history_navigation", False))


def _release_memory() -> None:
    """Hand what this run freed (figure JSON, scratch arrays) back to the OS (a few ms)."""
    from model.runtime import release_memory

    release_memory()


def _on_step_change() -> None:
    """Keep the chosen step as a lead time (see :func:`explore`)."""
    st.session_state["_lead"] = int(st.session_state["step"]) - int(
        st.session_state.get("_n_ctx", 0)
    )


def _window_follows_checkpoint(ckpt: str, train_ctx: int, train_h: int, n_time: int) -> None:
    """On a checkpoint switch, context and horizon become what this checkpoint had last, or its
    training values: a window chosen for one checkpoint never carries over to another."""
    windows = st.session_state.setdefault("_windows", {})
    if st.session_state.get("_window_checkpoint") == ckpt:
        return
    default_h = train_h or max(1, min(12, n_time - train_ctx))
    context, horizon = windows.get(ckpt, (train_ctx, default_h))
    st.session_state["context"], st.session_state["horizon"] = context, horizon
    st.session_state["_window_checkpoint"] = ckpt


def _compatible(meta: dict, data) -> bool:
    from model.checkpoint import compatible

    return compatible(meta, data)


def _needs_download(name: str) -> bool:
    """Offer the download of a dataset whose files are not here yet; True while they are missing."""
    plan = services.download_plan(name)
    if plan is None or not plan.missing:
        return False
    st.info(
        safe(
            f"{name} needs {len(plan.missing)} of its {plan.total} data files, which are not on "
            f"this machine yet. They come from the public {plan.source} repository and are checked "
            "against published checksums; nothing else is downloaded."
        )
    )
    if st.button(f"Download {len(plan.missing)} files", key=f"download_{name}", type="primary"):
        bar = st.progress(0.0, text="Starting the download…")

        def on_file(done: int, total: int, rel: str) -> None:
            label = (
                f"File {done + 1} of {total}: {plain(rel.rsplit('/', 1)[-1])}" if rel else "Done"
            )
            bar.progress(done / max(total, 1), text=label)

        services.download_files(plan, on_file)  # a failure is shown by main() as one sentence
        st.rerun()
    return True


def _start_caption(data, sample: int, start: int) -> str:
    """When the chosen window's context starts: a date where the data has one, else a frame."""
    times = None
    if "timestamp" in data.coords and "sample" in data["timestamp"].dims:
        times = data["timestamp"].isel(sample=sample).values  # windows: (sample, time)
    elif "time" in data.coords:
        times = data["time"].values
    if times is not None and str(times.dtype).startswith("datetime64"):
        zone = time_zone_of(data.attrs)
        return f"Context starts {figures.format_valid_time(times[start], zone)}"
    return f"Context starts at frame {start}"


def _upload_data(side):
    side.caption(
        "NetCDF / Zarr (zip), TaxiBJ-style HDF5, radar files (ODIM/OPERA/DWD/KNMI/MeteoSwiss "
        "HDF5, MeteoSwiss AQC GIF, GRIB2 (MRMS, WMO precipitation rate), FMI .pgm(.gz) or GeoTIFF, BoM Rainfields "
        ".nc, NWC SAF CRR .nc) or a .zip of them, .npy, .npz, mp4 or gif; at most "
        f"{services.UPLOAD_MAX_MB} MB."
    )
    cache.upload_reader()
    generation = int(st.session_state.get("_upload_generation", 0))
    rejected = st.session_state.pop("_upload_rejected", None)
    if rejected:
        st.error(safe(rejected))
    up = side.file_uploader("Your data", type=UPLOAD_TYPES, key=f"upload_file_{generation}")
    if up is None:
        return None, None, None
    shown = services.display_name(up.name)
    if up.size > services.UPLOAD_MAX_MB * 1024**2:
        _reject_upload(
            f"{shown} is {up.size / 1e6:.1f} MB, over the {services.UPLOAD_MAX_MB} MB limit. "
            "Crop it in time or space first."
        )
    content = up.getvalue()
    with st.status(f"Reading {plain(shown)}…", expanded=False) as status:
        try:
            data = cache.upload(content, up.name)
        except services.DashboardError as exc:
            status.update(label=f"Could not read {plain(shown)}", state="error")
            del content
            _reject_upload(str(exc))
        status.update(label=f"Read {plain(shown)}: {plain(dict(data.sizes))}", state="complete")
    return data, cache.upload_key(content, up.name), shown


def _one_frame_note(data, label: str) -> str:
    """One sentence for an upload of a single frame: a forecast needs context frames before it."""
    what = "radar frame" if data.attrs.get("domain") == "radar" else "frame"
    when = ""
    if str(data["time"].dtype).startswith("datetime64"):
        when = f" (valid {figures.format_valid_time(data['time'].values[0], time_zone_of(data.attrs))})"
    return (
        f"{label} is one {what}{when}, and a forecast needs several consecutive frames as its "
        "context: upload them together, as a .zip of the frames or one file with a time axis."
    )


def _reject_upload(message: str) -> None:
    """Show ``message`` and let go of the rejected file at once (a new uploader widget)."""
    st.session_state["_upload_rejected"] = message
    st.session_state["_upload_generation"] = int(st.session_state.get("_upload_generation", 0)) + 1
    st.rerun()


def _preview(data, label: str) -> None:
    frame = data.isel(sample=0, time=0, channel=0).values
    finite = frame[frame == frame]
    top = float(finite.max()) if finite.size else 1.0
    img = (
        255 * (frame - min(0.0, float(finite.min()) if finite.size else 0.0)) / (top or 1.0)
    ).clip(0, 255)
    st.image(
        np.nan_to_num(img, nan=0.0).astype("uint8"),  # no data (NaN) drawn black
        caption=f"{plain(label)}: first frame of sample 0 (no forecast)",
        width=320,
    )


def _summary(ds, data, label, ckpt, meta, context, horizon, train_h) -> None:
    units = figures.units_of(ds) or "no units"
    step = data.attrs.get("time_step", "?")
    bits = [
        f"**{plain(label)}** ({figures.domain_of(ds)}, {plain(units)}, step {plain(step)})",
        f"checkpoint **{ckpt}**"
        + (
            f" trained on {plain(services.trained_on(meta))} for {meta.get('context')}→{train_h}"
            " frames"
            if train_h
            else ""
        ),
        f"{context} context → {horizon} forecast frames",
    ]
    if data.attrs.get("synthetic"):
        bits.append("synthetic data")
    st.markdown(" · ".join(bits))


# -- views -------------------------------------------------------------------------------------
def _gates_view(page: lab.LabPage, *, after_forecast: bool = False) -> None:
    """Layer, gate and channel choices, the six gate panels, the equations, the gate means.

    ``after_forecast``: on a new page the charts come in the run after the browser drew the
    forecast (:func:`dashboard.page_start.new_browser_page`).
    """
    ds, link, query = page.ds, page.link, page.query
    if "gates" not in ds:
        st.info(safe(ds.attrs.get("capture_note", "This rollout has no gates.")))
        for key in ("layer", "gate", "channel"):
            link.drop(key, "the rollout has no captured gates")
        return
    hidden = int(ds.sizes["hidden"])
    c1, c2, c3, c4 = st.columns([1, 1, 1.4, 1])
    layer = lab.choose_layer(page, c1)
    gate = lab.choose_gate(page, c2, "Focus gate")
    shown = _choose_reduction(link, c3, c4, hidden)
    query.update(layer=layer, gate=gate, channel=shown)
    if after_forecast and new_browser_page():
        st.caption("Drawing the gate activations…")
        report_forecast_drawn()  # its run draws them
        return
    if ds.attrs.get("capture_note"):  # some layers' gates left out (a large domain)
        st.caption(safe(ds.attrs["capture_note"]))
    if services.gates_frame_note(page.meta):
        st.caption(services.gates_frame_note(page.meta))
    lab.gates_with_equations(page, layer=layer, reduction=shown, gate=gate)
    st.caption(
        "Input, forget and output gates are sigmoids in 0–1; candidate and hidden state are tanh "
        "in −1–1; the cell state is unbounded. Gates run on the latent grid (frame ÷ patch size); "
        "the gates at a step are those computed while reading the frame shown at that step. One "
        "channel choice applies to all six panels."
    )
    chart(
        cache.gate_means_figure(page.rollout_key, layer, page.gate_step, gate, _ds=ds),
        "gate_means_chart",
    )


def _choose_reduction(link: DeepLink, where, unit_col, hidden: int):
    """Mean, max, the most varying channel or one channel: one choice for all six panels."""
    linked_channel = link.take_channel(hidden)
    if isinstance(linked_channel, str):
        st.session_state["reduction"] = linked_channel
    elif linked_channel is not None:
        st.session_state["reduction"] = "channel"
        st.session_state["hidden_channel"] = linked_channel
    options = list(REDUCTION_LABELS)
    _choose("reduction", options, state.OPENING_REDUCTION)
    reduction = where.selectbox(
        "Hidden channels", options, key="reduction", format_func=REDUCTION_LABELS.get
    )
    if reduction != "channel":
        unit_col.caption(f"{hidden} hidden channels in this layer")
        return reduction
    if st.session_state.get("hidden_channel", 0) >= hidden:
        st.session_state["hidden_channel"] = 0
    return int(
        unit_col.number_input(
            f"Channel (0–{hidden - 1})", 0, hidden - 1, step=1, key="hidden_channel"
        )
    )


def _on_probe_click() -> None:
    """Move the probe to the clicked pixel (a callback: it must never raise)."""
    try:
        event = st.session_state.get("probe_map") or {}
        points = event.get("selection", {}).get("points", [])
        grid = st.session_state.get("_probe_grid")
        if points and grid:
            col, row = figures.pixel_of(grid, points[0]["x"], points[0]["y"])
            st.session_state["probe_x"], st.session_state["probe_y"] = col, row
    except Exception as exc:  # noqa: BLE001 - a bad event must not break the page
        st.session_state["_probe_error"] = f"Could not read the clicked pixel ({exc})."


def _probe_view(ds, link: DeepLink, query: dict, step: int, channel: int) -> None:
    ny, nx = int(ds.sizes["y"]), int(ds.sizes["x"])
    for key, size, what in (("probe_x", nx, "probe column"), ("probe_y", ny, "probe row")):
        linked = link.take_int(key, 0, size - 1, what=what)
        if linked is not None:
            st.session_state[key] = linked
        if not 0 <= int(st.session_state.get(key, 0)) < size:
            st.session_state.pop(key)
    st.session_state.setdefault("probe_x", nx // 2)
    st.session_state.setdefault("probe_y", ny // 2)
    left, right = st.columns([1, 1.6])
    with left:
        a, b = st.columns(2)
        x = int(a.number_input(f"x: column (0–{nx - 1})", 0, nx - 1, step=1, key="probe_x"))
        y = int(b.number_input(f"y: row from top (0–{ny - 1})", 0, ny - 1, step=1, key="probe_y"))
        query.update(probe_x=x, probe_y=y)
        if st.session_state.get("_probe_error"):
            st.warning(safe(st.session_state.pop("_probe_error")))
        probe_map = figures.probe_map_figure(ds, step=step, channel=channel, marker=(x, y))
        st.session_state["_probe_grid"] = probe_map.layout.meta["grid"]
        chart(probe_map, "probe_map", on_select=_on_probe_click, selection_mode="points")
    with right:
        chart(figures.probe_figure(ds, y=y, x=x, channel=channel, step=step), "probe_chart")


def _metrics_view(ds, sel: Selection, axis, score_split) -> None:
    rollout_key = sel.rollout_key
    threshold = cache.DEFAULT_THRESHOLD
    domain = figures.domain_of(ds)
    if domain == "radar":
        threshold = float(
            st.number_input(
                "Rain-rate threshold for CSI / POD / FAR / FBI / FSS (mm/h; an event is ≥ it)",
                min_value=0.01, max_value=200.0,
                value=cache.DEFAULT_THRESHOLD, step=0.5, key="threshold",
            )
        )  # fmt: skip
    split_key = ("split", rollout_key[0], rollout_key[1], *rollout_key[3:], threshold)
    pooled = cache.split_scores(split_key)
    if pooled is not None:
        tables, units, n_samples = pooled
        st.caption(f"Scores pooled over all {n_samples} samples of the split (same window).")
    else:
        tables, units = cache.scores(rollout_key, threshold, _ds=ds, _data=sel.data)
        note, action = st.columns([3, 1])
        note.caption(
            f"Scores of sample {rollout_key[2]} only: one forecast window, a small and noisy "
            "sample. Score the whole split for pooled numbers."
        )
        if action.button("Score the whole split", key="score_split"):
            bar = st.progress(0.0, text="Forecasting every sample…")

            def on_sample(done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"Sample {done} of {total}")

            cache.split_scores(split_key, lambda: score_split(threshold, on_sample))
            st.rerun()
    chart(
        figures.metrics_figure(
            tables, lead=axis, units=units, frame_size=(int(ds.sizes["y"]), int(ds.sizes["x"]))
        ),
        "metrics_chart",
    )
    st.caption(
        "Solid: ConvLSTM; dashed: persistence (the last context frame repeated); "
        "dotted (radar): pysteps optical-flow extrapolation (Lucas-Kanade + semi-Lagrangian)."
        + (f" {services.SCORING_NOTE}" if domain == "radar" else "")
    )
    labels = [axis.label(axis.n_context + i) for i in range(int(ds.sizes["time"]))]
    st.dataframe(services.scores_long(tables, labels), hide_index=True)


def _export_view(ds, sel: Selection, axis, channel: int) -> None:
    rollout_key, label = sel.rollout_key, sel.data_label
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", f"{label}_s{rollout_key[2]}_{rollout_key[0]}")[:120]
    st.markdown("Downloads are built when you click (GIF/MP4 take a few seconds).")
    fps = st.select_slider(
        "Animation frame rate (frames per second)", [1, 2, 3, 5, 8, 12], value=3, key="export_fps"
    )
    a, b, c, d = st.columns(4)
    a.download_button(
        "Animation (GIF)",
        data=lambda: exports.to_gif(
            exports.animation_frames(ds, channel=channel, heading=label), fps=fps
        ),
        file_name=f"{stem}.gif",
        mime="image/gif",
        key="dl_gif",
        on_click="ignore",
    )
    b.download_button(
        "Animation (MP4)",
        data=lambda: exports.to_mp4(
            exports.animation_frames(ds, channel=channel, heading=label), fps=fps
        ),
        file_name=f"{stem}.mp4",
        mime="video/mp4",
        key="dl_mp4",
        on_click="ignore",
    )
    c.download_button(
        "Rollout with gates (NetCDF)",
        data=lambda: exports.to_netcdf(ds),
        file_name=f"{stem}.nc",
        mime="application/x-netcdf",
        key="dl_nc",
        on_click="ignore",
    )
    try:
        threshold = float(st.session_state.get("threshold", cache.DEFAULT_THRESHOLD))
        tables, _ = cache.scores(rollout_key, threshold, _ds=ds, _data=sel.data)
        labels = [axis.label(axis.n_context + i) for i in range(int(ds.sizes["time"]))]
        csv = exports.metrics_csv(services.scores_long(tables, labels))
        d.download_button(
            "Metrics (CSV)", data=csv, file_name=f"{stem}_metrics.csv", mime="text/csv",
            key="dl_csv", on_click="ignore",
        )  # fmt: skip
    except services.DashboardError as exc:
        d.caption(safe(exc))


if __name__ == "__main__":  # Streamlit runs the script as __main__; a child process that
    main()  # multiprocessing starts imports it as __mp_main__ and must not draw the page again

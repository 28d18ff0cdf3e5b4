"""Shared caches around :mod:`dashboard.services`, keyed by every setting that changes a result.

- loaded models: at most :data:`dashboard.budget.MAX_MODELS`, shared by all sessions;
- dataset arrays, uploaded files (keyed by a hash of their bytes), rollouts, scores and figures:
  :class:`dashboard.budget.ByteLRU` caches bounded in bytes (:data:`dashboard.budget.BUDGETS`),
  shared by all sessions and never copied, so callers only read what they get.
Arguments starting with ``_`` are the inputs behind a key; the named keys before them identify the
result.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import streamlit as st
import xarray as xr

from dashboard import figures, services
from dashboard.budget import BUDGETS, MAX_MODELS, MISSING, ByteLRU
from dashboard.state import (
    OPENING_GATE,
    OPENING_REDUCTION,
    OPENING_SAMPLE,
    default_window,
    preferred_checkpoint,
)

DEFAULT_THRESHOLD = 1.0
"""The metrics view's rain-rate threshold (mm/h) until the user changes it."""
WARM_UP_ENV = "CONVLSTM_LAB_WARM_UP"
"""Set to ``0`` to compute nothing ahead: neither the opening pages at start-up nor the next
samples' pages after each page (the tests do, so no background work outlives a test)."""


def _release() -> None:
    from model.runtime import release_memory

    release_memory()


_DATASETS = ByteLRU("datasets", BUDGETS["datasets"], on_evict=_release)
_UPLOADS = ByteLRU("uploads", BUDGETS["uploads"], on_evict=_release)
_ROLLOUTS = ByteLRU("rollouts", BUDGETS["rollouts"], on_evict=_release)
_SCORES = ByteLRU("scores", BUDGETS["scores"], on_evict=_release)
_FIGURES = ByteLRU("figures", BUDGETS["figures"], on_evict=_release)


def stats() -> list[dict]:
    """Entries and bytes of every shared cache (for tests and the load benchmark)."""
    return [c.stats() for c in CACHES]


def clear() -> None:
    """Drop every cached result and loaded model (tests; a server keeps its caches)."""
    for c in CACHES:
        c.clear()


@st.cache_data(show_spinner=False, ttl=600)
def catalog() -> list[services.DatasetEntry]:
    return services.dataset_catalog()


@st.cache_data(show_spinner=False, ttl=30)
def _checkpoint_scan(root: str) -> tuple[list, list]:
    return services.scan_checkpoints(root)


def checkpoints(root: str) -> list[tuple[str, dict]]:
    """Usable checkpoints ``[(name, meta), ...]`` (one scan every 30 s, shared with the next)."""
    return _checkpoint_scan(root)[0]


def unavailable_checkpoints(root: str) -> list[tuple[str, str]]:
    """Folders that failed validation ``[(name, reason), ...]``, from the same scan."""
    return _checkpoint_scan(root)[1]


def dataset(
    name: str, split: str = "test", n_samples: int | None = services.DEFAULT_N_SAMPLES
) -> xr.DataArray:
    key = (name, split, n_samples)  # n_samples None: the loader's whole split
    return _DATASETS.get_or_compute(
        key, lambda: services.load_dataset(name, split=split, n_samples=n_samples)
    )


@st.cache_resource(show_spinner=False)
def upload_reader() -> bool:
    """Start the upload sandbox's forkserver once (it imports the readers while a user picks a file)."""
    from datasets.sandbox import warm_up

    warm_up()
    return True


def upload(content: bytes, filename: str, max_mb: int = services.UPLOAD_MAX_MB) -> xr.DataArray:
    """Read an uploaded file in a child process (see :func:`dashboard.services.read_upload`).

    The file is written to a fresh temporary folder under a fixed name; only its suffix comes from
    ``filename`` (when it is one the readers know), never a path.
    """
    key = (upload_key(content, filename), max_mb)
    shown = services.display_name(filename)

    def read() -> xr.DataArray:
        with tempfile.TemporaryDirectory(prefix="convlstm-upload-") as tmp:
            path = Path(tmp) / f"upload{services.upload_suffix(filename)}"
            path.write_bytes(content)
            try:
                data = services.read_upload(path, max_mb=max_mb)
            except services.DashboardError as exc:  # name the user's file, not ours
                raise services.DashboardError(str(exc).replace(path.name, shown)) from None
        return data.assign_attrs(source=shown)

    return _UPLOADS.get_or_compute(key, read)


def upload_key(content: bytes, filename: str) -> str:
    """A key naming an upload by the hash of its bytes and its (displayed) name."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    return f"upload:{digest}:{services.display_name(filename)}"


_MODELS = ByteLRU("models", MAX_MODELS, size_of=lambda _: 1, idle_seconds=float("inf"))
CACHES = (_DATASETS, _UPLOADS, _ROLLOUTS, _SCORES, _FIGURES, _MODELS)


def model(name: str, root: str, device: str = "auto"):
    """``(network, meta)`` of a checkpoint, loaded once per server (at most ``MAX_MODELS`` kept)."""
    return _MODELS.get_or_compute(
        (name, root, device), lambda: services.load_model(name, root=root, device=device)
    )


@st.cache_resource(show_spinner=False)
def server_ready(root: str, order: tuple[str, ...]) -> bool:
    """Once per server: tune the CPU allocator, set the rollouts' torch threads
    (:func:`model.runtime.set_server_torch_threads`: one on a 2-core machine) and start
    :func:`warm_up_defaults` in a thread (the first domain's page at once, the others once the
    first page is sent)."""
    from model.runtime import set_server_torch_threads, tune_cpu_allocator

    tune_cpu_allocator()  # rollouts keep their scratch memory; pages trim after each run
    set_server_torch_threads()
    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return True
    threading.Thread(
        target=warm_up_defaults, args=(root, order), kwargs={"first_page_wait_s": 30.0},
        name="convlstm-warm-up", daemon=True,
    ).start()  # fmt: skip
    return True


def warm_up_defaults(
    root: str, order: tuple[str, ...], *, first_page_wait_s: float = 0.0
) -> list[tuple[str, str]]:
    """Compute each domain's opening page (in ``order``) before anyone asks.

    Picks what the page picks for a domain with no other choice made: the first bundled dataset
    (the default one first), the preferred compatible checkpoint
    (:func:`dashboard.state.preferred_checkpoint`), the window the page opens with
    (:func:`dashboard.state.default_window`),
    :data:`dashboard.state.OPENING_SAMPLE` from frame 0, and draws its forecast and gates figures
    (:func:`draw_page`). After the first domain's page it waits up to ``first_page_wait_s`` for
    the first page to be sent (:func:`first_page_served`), so that the other domains do not slow
    it down on a 2-core machine. A failure only means that page computes it when asked.

    Returns
    -------
    list of (str, str)
        The (dataset, checkpoint) pairs warmed.
    """
    warmed = []
    entries = services.dataset_catalog()
    for k, domain in enumerate(order):
        if k == 1:
            _FIRST_PAGE.wait(first_page_wait_s)
        names = sorted(e.name for e in entries if e.domain == domain and e.bundled)
        if not names:
            continue
        try:
            data = dataset(names[0])
            ckpt = preferred_checkpoint([n for n, _ in services.compatible_checkpoints(data, root)])
            if ckpt is None:
                continue
            net, meta = model(ckpt, root)
            context, horizon = default_window(meta, int(data.sizes["time"]))
            sample = min(OPENING_SAMPLE, int(data.sizes["sample"]) - 1)
            draw_page((ckpt, names[0], sample, 0, context, horizon), root, _data=data)
            warmed.append((names[0], ckpt))
        except Exception:  # noqa: BLE001 - warming is optional; the page reports errors
            continue
    return warmed


_FIRST_PAGE = threading.Event()


def first_page_served() -> None:
    """Called by the page after each run: the start-up warm-up may go on with other domains."""
    _FIRST_PAGE.set()


def draw_page(rollout_key: tuple, root: str, _data: xr.DataArray) -> xr.Dataset:
    """The rollout, forecast figure and gates figures a page shows for ``rollout_key`` (as
    :attr:`dashboard.app.Selection.rollout_key`) with the views' default choices; cached.

    Returns
    -------
    xarray.Dataset
        The rollout.
    """
    checkpoint, name, sample, start, context, horizon = rollout_key
    _, meta = model(checkpoint, root)
    ds = rollout(checkpoint, root, name, sample, start, context, horizon, _data=_data)
    step = int(ds.sizes.get("context_time", 0))
    forecast_figure(rollout_key, 0, step, int(meta.get("horizon") or 0) or None, _ds=ds)
    if "gates" in ds:
        layer = int(ds["layer"].values[0])
        gate_step = min(step, int(ds.sizes["step"]) - 1)
        equations = services.cell_equations(meta, fmt="text")
        gates_figure(rollout_key, layer, OPENING_REDUCTION, gate_step, OPENING_GATE, _ds=ds,
                     _equations=equations)  # fmt: skip
        gate_means_figure(rollout_key, layer, gate_step, OPENING_GATE, _ds=ds)
    return ds


_PREFETCH = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convlstm-prefetch")
_PREFETCHING: set = set()  # rollout keys queued or being drawn
_PREFETCH_LOCK = threading.Lock()


PREFETCH_AHEAD = 2
"""Samples after the one shown whose pages are drawn in the background."""


def prefetch_next_samples(
    rollout_key: tuple, root: str, _data: xr.DataArray, ahead: int = PREFETCH_AHEAD
) -> int:
    """Draw the pages of the next ``ahead`` samples (same checkpoint and window) in the
    background, one after the other, each once: a user stepping through samples then finds them
    ready (:func:`draw_page`). At most ``ahead`` pages wait in the queue over all sessions, so
    many sessions at once do not pile background work on the server.

    Returns
    -------
    int
        Pages queued (0: no next sample, all already cached or queued, or :data:`WARM_UP_ENV`
        is ``0``).
    """
    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return 0
    checkpoint, name, sample, start, context, horizon = rollout_key
    queued = 0
    for nxt in range(sample + 1, min(sample + 1 + ahead, int(_data.sizes["sample"]))):
        key = (checkpoint, name, nxt, start, context, horizon)
        if _ROLLOUTS.get((checkpoint, root, *key[1:])) is not MISSING:
            continue
        with _PREFETCH_LOCK:
            if key in _PREFETCHING or len(_PREFETCHING) >= ahead:
                continue  # queued already, or the server is busy with other prefetches
            _PREFETCHING.add(key)
        _PREFETCH.submit(_prefetch_job, key, root, _data)
        queued += 1
    return queued


def _prefetch_job(key: tuple, root: str, data: xr.DataArray) -> None:
    try:
        draw_page(key, root, _data=data)
    except Exception:  # noqa: BLE001 - the page computes (and reports) it when asked
        pass
    finally:
        with _PREFETCH_LOCK:
            _PREFETCHING.discard(key)


def rollout(
    checkpoint: str,
    root: str,
    data_key: str,
    sample: int,
    start: int,
    context: int,
    horizon: int,
    _data: xr.DataArray,
) -> xr.Dataset:
    key = (checkpoint, root, data_key, sample, start, context, horizon)

    def compute() -> xr.Dataset:
        net, meta = model(checkpoint, root)
        window = services.Window(sample=sample, start=start, context=context, horizon=horizon)
        ds = services.run_rollout(net, meta, _data, window, capture=True)
        ds.attrs["dataset"] = data_key
        _release()  # the rollout's scratch memory goes back to the OS; its result is kept
        return ds

    return _ROLLOUTS.get_or_compute(key, compute)


def inspection(
    checkpoint: str, root: str, data_key: str, sample: int, start: int, context: int,
    _data: xr.DataArray,
) -> xr.Dataset:  # fmt: skip
    """Gates of an inspect-mode checkpoint over the chosen frames (:func:`services.run_inspection`)."""
    key = ("inspect", checkpoint, root, data_key, sample, start, context)

    def compute() -> xr.Dataset:
        net, meta = model(checkpoint, root)
        window = services.Window(sample=sample, start=start, context=context, horizon=0)
        ds = services.run_inspection(net, meta, _data, window)
        ds.attrs["dataset"] = data_key
        _release()
        return ds

    return _ROLLOUTS.get_or_compute(key, compute)


def scores(rollout_key: tuple, threshold: float, _ds: xr.Dataset, _data: xr.DataArray):
    """Scores of one rollout (:func:`dashboard.services.score`); ``_data`` is the dataset array
    the rollout came from (its radar baselines read the whole domain around its crop). The
    baselines come from :func:`baselines`, once per window whatever the checkpoint or threshold."""
    return _SCORES.get_or_compute(
        ("scores", rollout_key, threshold),
        lambda: services.score(
            _ds, threshold=threshold, baselines=baselines(rollout_key, _ds=_ds, _data=_data)
        ),
    )


def baselines(rollout_key: tuple, _ds: xr.Dataset, _data: xr.DataArray) -> dict:
    """The baseline forecasts of a rollout's window (:func:`dashboard.services.baseline_forecasts`;
    radar extrapolation advects the whole domain, seconds), keyed by the window without the
    checkpoint: computed once per sample and window."""
    _, data_key, sample, start, context, horizon = rollout_key
    key = ("baselines", data_key, sample, start, context, horizon)
    return _ROLLOUTS.get_or_compute(key, lambda: services.baseline_forecasts(_ds, data=_data))


def split_scores(key: tuple, compute=None):
    """Scores pooled over a whole split (:func:`dashboard.services.score_split`), once computed.

    With ``compute`` (a no-argument callable) missing results are computed and kept; without it
    the cached result or None is returned (the page offers a button instead of working unasked).
    """
    if compute is None:
        hit = _SCORES.get(key)
        return None if hit is MISSING else hit
    return _SCORES.get_or_compute(key, compute)


def forecast_figure(
    rollout_key: tuple, channel: int, step: int, beyond: int | None, _ds: xr.Dataset
):
    """The animated forecast figure (building 24 frames of 3 heatmaps takes ~0.2 s)."""
    return _FIGURES.get_or_compute(
        ("forecast", rollout_key, channel, step, beyond),
        lambda: figures.forecast_figure(_ds, channel=channel, step=step, beyond_training=beyond),
    )


def gates_figure(
    rollout_key: tuple,
    layer: int,
    reduction,
    step: int,
    gate: str,
    _ds: xr.Dataset,
    _equations: dict | None = None,
):
    """The gates figure at one step (``_equations`` follow the checkpoint in ``rollout_key``)."""
    return _FIGURES.get_or_compute(
        ("gates", rollout_key, layer, reduction, step, gate),
        lambda: figures.gates_figure(
            _ds, layer=layer, reduction=reduction, step=step, gate=gate, equations=_equations
        ),
    )


def gate_means_figure(rollout_key: tuple, layer: int, step: int, gate: str, _ds: xr.Dataset):
    """Each gate's mean per step under the gates view (averaging a whole domain's gates takes
    ~0.3 s: kept once drawn)."""
    return _FIGURES.get_or_compute(
        ("gate_means", rollout_key, layer, step, gate),
        lambda: figures.gate_means_figure(_ds, layer=layer, step=step, gate=gate),
    )


# -- gate lab ------------------------------------------------------------------------------------
def intervention(rollout_key: tuple, root: str, edit, _data: xr.DataArray) -> xr.Dataset:
    """The rollout of ``rollout_key`` with ``edit`` (a checked GateEdit) applied, gates captured."""
    checkpoint, data_key, sample, start, context, horizon = rollout_key

    def compute() -> xr.Dataset:
        net, meta = model(checkpoint, root)
        window = services.Window(sample=sample, start=start, context=context, horizon=horizon)
        ds = services.run_rollout(net, meta, _data, window, capture=True, intervene=edit)
        ds.attrs["dataset"] = data_key
        _release()
        return ds

    return _ROLLOUTS.get_or_compute(("edit", rollout_key, root, edit), compute)


def score_change(
    rollout_key: tuple, edit, threshold: float, _original: xr.Dataset, _edited: xr.Dataset
):
    """:func:`dashboard.services.score_change` of a rollout and its intervened twin."""
    return _SCORES.get_or_compute(
        ("score_change", rollout_key, edit, threshold),
        lambda: services.score_change(_original, _edited, threshold=threshold),
    )


def attribution(
    rollout_key: tuple, root: str, lead: int, region: tuple, _data: xr.DataArray
) -> xr.Dataset:
    """Integrated gradients of one forecast region and lead (seconds; kept once computed)."""
    checkpoint, _, sample, start, context, horizon = rollout_key

    def compute() -> xr.Dataset:
        net, meta = model(checkpoint, root)
        window = services.Window(sample=sample, start=start, context=context, horizon=horizon)
        return services.attribution(net, meta, _data, window, lead=lead, region=region)

    return _SCORES.get_or_compute(("attribution", rollout_key, root, lead, region), compute)


def saturation(rollout_key: tuple, _ds: xr.Dataset) -> xr.Dataset:
    """Left/right saturation of every unit of a rollout (:func:`dashboard.services.saturation`)."""
    return _SCORES.get_or_compute(("saturation", rollout_key), lambda: services.saturation(_ds))


def memory(rollout_key: tuple, _ds: xr.Dataset) -> xr.DataArray:
    """Memory map of every layer and lead (:func:`dashboard.services.memory`)."""
    return _SCORES.get_or_compute(("memory", rollout_key), lambda: services.memory(_ds))

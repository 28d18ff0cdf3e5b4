"""The dashboard's one adapter onto :mod:`datasets` and :mod:`model` (no Streamlit here).

Pages call these functions (through the caches in :mod:`dashboard.cache`); all model math
(rollouts, normalisation, scores, baselines) happens in :mod:`model`, all file reading in
:mod:`datasets`. Swapping an implementation is a one-line change here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from datasets import vocabulary

CHECKPOINT_ROOT_ENV = "CONVLSTM_CHECKPOINTS"
DOMAINS = vocabulary.DOMAINS
DEFAULT_N_SAMPLES = 8
UPLOAD_DECODED_MAX_BYTES = 256 * 2**20
"""Largest array an upload may decode to (float32 bytes): the upload cache's whole budget."""
CAPTURE_MAX_BYTES = 256 * 2**20
"""Most float16 gate memory one dashboard rollout records (a 12+12 radar rollout needs ~150 MiB);
kept well inside the rollout cache's budget (:data:`dashboard.budget.BUDGETS`)."""
UPLOAD_MAX_MB = (
    100  # the uploader's size limit; .streamlit/config.toml server.maxUploadSize is the same
)


class DashboardError(Exception):
    """Something the user asked for cannot be shown; the message says what to do instead."""


# -- datasets ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetEntry:
    name: str
    domain: str | None
    bundled: bool
    summary: str


def dataset_catalog() -> list[DatasetEntry]:
    """Every registered dataset with its domain (from the registry; nothing is loaded)."""
    import datasets

    entries = []
    for name in datasets.list_datasets():
        info = datasets.dataset_info(name)
        entries.append(
            DatasetEntry(
                name=name,
                domain=info["domain"],
                bundled=bool(info["bundled"]),
                summary=str(info["summary"]),
            )
        )
    return entries


def load_dataset(
    name: str, *, split: str = "test", n_samples: int | None = DEFAULT_N_SAMPLES
) -> xr.DataArray:
    """A registered dataset as ``(sample, time, channel, y, x)`` float32 with units and attrs.

    Raises
    ------
    DashboardError
        Unknown name, or the dataset's own :class:`datasets.DatasetError` (message kept).
    """
    import datasets

    try:
        options = {} if n_samples is None else {"n_samples": n_samples}  # None: the whole split
        data = datasets.get_dataset(name, split=split, **options)
    except (ValueError, datasets.DatasetError) as exc:
        raise DashboardError(f"Dataset {name!r} could not be loaded: {exc}") from exc
    return _check_array(data, source=f"dataset {name!r}")


UPLOAD_SUFFIXES = (
    ".nc",
    ".nc4",
    ".zip",
    ".h5",
    ".hdf5",
    ".hdf",
    ".npy",
    ".npz",
    ".mp4",
    ".gif",
    ".avi",
    ".mov",
    ".webm",
    ".grib2",
    ".grb2",
    ".grib",
    ".grb",
    ".pgm",
    ".gz",
    ".tif",
    ".tiff",
)
"""File endings an upload may keep (they tell some readers the format); anything else is dropped."""


def upload_suffix(filename: str) -> str:
    """The suffix of an uploaded file's name if the readers know it, else ``""``."""
    suffix = Path(str(filename)).suffix.lower()
    if suffix == ".zip" and str(filename).lower().endswith(".zarr.zip"):
        return ".zarr.zip"
    return suffix if suffix in UPLOAD_SUFFIXES else ""


def display_name(filename: str, *, max_chars: int = 80) -> str:
    """An uploaded file's name for messages: the last part only, printable, at most ``max_chars``."""
    name = Path(str(filename).replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "upload"
    return name if len(name) <= max_chars else name[: max_chars - 1] + "…"


def read_upload(path: str | os.PathLike, *, max_mb: int = UPLOAD_MAX_MB) -> xr.DataArray:
    """Read a user's file with the datasets readers, in a limited child process.

    The format is chosen by content; the file may be at most ``max_mb`` MB; the reader runs in a
    child process with a memory limit and a timeout (:func:`datasets.sandbox.read_isolated`), so a
    hostile or broken file cannot take the server's memory or time.

    Raises
    ------
    DashboardError
        The reader's message (one sentence naming the file, never a server path).
    """
    from datasets import DatasetError
    from datasets.sandbox import read_isolated

    try:
        data = read_isolated(
            path, max_bytes=max_mb * 1024**2, max_result_bytes=UPLOAD_DECODED_MAX_BYTES
        )
    except DatasetError as exc:
        raise DashboardError(str(exc)) from exc
    return _check_array(data, source=Path(path).name)


@dataclass(frozen=True)
class DownloadPlan:
    """The files a "needs files" dataset still lacks in the download cache."""

    name: str
    source: str
    missing: tuple[str, ...]
    total: int


def download_plan(name: str) -> DownloadPlan | None:
    """What :func:`download_files` would fetch for dataset ``name`` (None: nothing to download)."""
    from datasets.download import cached_path, registered_downloads

    file_set = registered_downloads().get(name.lower())
    if file_set is None:
        return None
    missing = tuple(
        rel for rel in file_set.files if not cached_path(file_set.source, rel).is_file()
    )
    return DownloadPlan(name, file_set.source, missing, len(file_set.files))


def download_files(plan: DownloadPlan, on_file: Callable[[int, int, str], None]) -> int:
    """Fetch the missing files of ``plan`` into the download cache, checksums checked (pooch).

    Parameters
    ----------
    plan : DownloadPlan
        From :func:`download_plan`.
    on_file : callable
        ``on_file(done, total, relative_path)`` before each file (for a progress bar).

    Returns
    -------
    int
        Files fetched.

    Raises
    ------
    DashboardError
        A download failed (unreachable server, HTTP error, checksum mismatch); what is already
        fetched stays in the cache.
    """
    from datasets import DatasetError
    from datasets.download import fetch, registered_downloads

    file_set = registered_downloads()[plan.name.lower()]
    for done, rel in enumerate(plan.missing):
        on_file(done, len(plan.missing), rel)
        try:
            fetch(file_set.source, rel, sha256=file_set.files[rel])
        except DatasetError as exc:
            raise DashboardError(
                f"Downloading {plan.name} stopped at file {done + 1} of {len(plan.missing)} "
                f"({Path(rel).name}): {exc}"
            ) from exc
    on_file(len(plan.missing), len(plan.missing), "")
    return len(plan.missing)


def _check_array(data: xr.DataArray, *, source: str) -> xr.DataArray:
    want = ("sample", "time", "channel", "y", "x")
    if not isinstance(data, xr.DataArray) or tuple(data.dims) != want:
        dims = getattr(data, "dims", None)
        raise DashboardError(f"{source}: expected dims {want}, got {dims}")
    return data


def domain_of(data: xr.DataArray, fallback: str | None = None) -> str:
    domain = data.attrs.get("domain") or fallback or "video"
    return str(domain) if str(domain) in DOMAINS else "video"


# -- checkpoints -------------------------------------------------------------------------------
def checkpoint_root() -> Path:
    """Folder scanned for checkpoints: ``$CONVLSTM_CHECKPOINTS`` or the repository's ``checkpoints/``."""
    env = os.environ.get(CHECKPOINT_ROOT_ENV)
    if env:
        return Path(env)
    from model.checkpoint import DEFAULT_ROOT

    return Path(DEFAULT_ROOT)


def list_checkpoints(root: str | os.PathLike | None = None) -> list[tuple[str, dict]]:
    from model.checkpoint import list_checkpoints as _list

    return _list(root or checkpoint_root())


def scan_checkpoints(root: str | os.PathLike | None = None) -> tuple[list, list]:
    """One validation pass over the checkpoint folders (never raises).

    Returns
    -------
    (list, list)
        ``[(name, meta), ...]`` of usable checkpoints and ``[(name, reason), ...]`` of folders
        that failed validation, both sorted by name.
    """
    from model.checkpoint import scan_checkpoints as scan

    entries = scan(root or checkpoint_root())
    usable = [(e.name, e.meta) for e in entries if e.meta is not None]
    return usable, [(e.name, str(e.problem)) for e in entries if e.problem]


def compatible_checkpoints(data: xr.DataArray, root=None) -> list[tuple[str, dict]]:
    """Checkpoints whose channels, grid and domain fit ``data`` (per :func:`model.checkpoint.compatible`)."""
    from model.checkpoint import compatible

    return [(name, meta) for name, meta in list_checkpoints(root) if compatible(meta, data)]


def family_note(meta: dict, data: xr.DataArray) -> str | None:
    """``"Out of its family: trained on Moving MNIST digits; this is natural video."`` or None
    (:func:`model.checkpoint.family_note`)."""
    from model.checkpoint import family_note as note

    why = note(meta, data)
    return (
        None
        if why is None
        else f"Out of its family: {why}. Its forecast is shown, but it was not made for this data."
    )


def trained_on(meta: dict) -> str:
    """What a checkpoint was trained on, for the page's summary line.

    ``"6 radar events from 3 weather services"`` for a checkpoint whose ``training.events`` lists
    pysteps-data event folders (``"mch/20150515"``, ...; the card names them), else the dataset
    name it records.
    """
    from datasets.radar_io import RADAR_SOURCES

    events = (meta.get("training") or {}).get("events")
    if isinstance(events, list) and events and all(isinstance(e, str) for e in events):
        sources = [RADAR_SOURCES.get(e.split("/", 1)[0]) for e in events]
        if all(sources):
            n_services = len({source.institution for source in sources})
            return (
                f"{len(events)} radar event{'s' * (len(events) > 1)} from {n_services} weather "
                f"service{'s' * (n_services > 1)}"
            )
    return str(meta.get("dataset"))


def gates_frame_note(meta: dict) -> str | None:
    """What the gates of a checkpoint that does not work on the frames as given are computed on.

    Parameters
    ----------
    meta : dict
        The checkpoint's metadata; ``"frame": "lagrangian"`` (see :mod:`model.lagrangian`) gives a
        note, any other checkpoint ``None``.
    """
    from model.lagrangian import is_lagrangian

    if not is_lagrangian(meta):
        return None
    return (
        "This checkpoint works in a Lagrangian frame: the context is first moved with the rain "
        "(pysteps Lucas-Kanade motion) to where it stands in the last context frame, so these "
        "gates see rain that stays in place and only grows or decays; the forecast beside them "
        "is moved on along the motion."
    )


def fit_problem(meta: dict, data: xr.DataArray) -> str:
    """Why checkpoint ``meta`` does not fit ``data`` (a phrase), or ``"fits"``."""
    from model.checkpoint import compatibility_problem

    return compatibility_problem(meta, data) or "fits"


def time_step_note(meta: dict, data: xr.DataArray) -> str | None:
    """A sentence when the data states no duration per frame but the checkpoint was trained on one."""
    from datasets.timesteps import parse_time_step

    trained = meta.get("time_step")
    if (
        parse_time_step(trained) is not None
        and parse_time_step(data.attrs.get("time_step")) is None
    ):
        return (
            f"This data states no time step ({data.attrs.get('time_step', 'none')}); the checkpoint "
            f"was trained on {trained} steps. Forecasts are only meaningful if the frames are that "
            "far apart."
        )
    return None


def load_model(name: str, *, root=None, device: str = "auto"):
    """``(model, meta)`` of checkpoint ``name`` (a folder under the root)."""
    from model.checkpoint import CheckpointError, load_checkpoint

    root = Path(root or checkpoint_root())
    try:
        return load_checkpoint(root / name, device=device)
    except CheckpointError as exc:
        raise DashboardError(f"Checkpoint {name!r} could not be loaded: {exc}") from exc


def device_note() -> str:
    """A sentence saying which device rollouts use and why."""
    from model.checkpoint import pick_device

    return pick_device("auto")[1]


# -- rollouts ----------------------------------------------------------------------------------
DATA_ATTRS_KEPT = ("units", "domain", "time_step", "time_zone")
"""Attrs of the data every rollout and inspection result carries for the views (``time_zone``: the
clock of the valid times, :func:`datasets.layout.time_zone_of`)."""


@dataclass(frozen=True)
class Window:
    """Which frames of a dataset feed a rollout."""

    sample: int
    start: int
    context: int
    horizon: int


def max_start(data: xr.DataArray, *, context: int) -> int:
    """Last start frame that still leaves ``context`` frames and one frame of truth."""
    return max(0, int(data.sizes["time"]) - context - 1)


def select_window(data: xr.DataArray, window: Window) -> tuple[xr.DataArray, xr.DataArray | None]:
    """Context ``(time, channel, y, x)`` and the truth that follows (may be shorter or None)."""
    n_t = int(data.sizes["time"])
    s, c = window.start, window.context
    if not 0 <= window.sample < int(data.sizes["sample"]):
        raise DashboardError(
            f"sample {window.sample} is out of range; this data has samples 0..{data.sizes['sample'] - 1}"
        )
    if c < 1 or s < 0 or s + c > n_t:
        raise DashboardError(
            f"context of {c} frames from frame {s} does not fit a sequence of {n_t} frames; "
            "choose a shorter context or an earlier start"
        )
    seq = data.isel(sample=window.sample)
    context = seq.isel(time=slice(s, s + c))
    context.attrs = dict(data.attrs)
    end = min(n_t, s + c + window.horizon)
    truth = seq.isel(time=slice(s + c, end)) if end > s + c else None
    return context, truth


def run_rollout(
    model,
    meta: dict,
    data: xr.DataArray,
    window: Window,
    *,
    capture: bool = True,
    intervene=None,
) -> xr.Dataset:
    """Forecast the window and label the result for the views.

    Radar checkpoints forecast the **whole domain** of the data, whatever its grid and pixel size,
    with :func:`model.tiling.domain_rollout` (resampled to the checkpoint's pixels, overlapping
    tiles of its frame, blended; gates stitched over the domain); it also runs the pipeline the
    checkpoint's metadata names (e.g. a Lagrangian frame). Other checkpoints run
    :func:`model.rollout.rollout` on their own grid. ``intervene`` (a
    :class:`model.interventions.GateEdit`, checked first with :func:`make_edit`) edits gates while
    a single-grid rollout runs. Returns the rollout dataset with attrs ``checkpoint``,
    ``training_horizon``, ``dataset``, ``sample``, ``start`` added.
    """
    from model.devices import run_with_cpu_fallback
    from model.rollout import CaptureBudgetError

    context, truth = select_window(data, window)
    forecast = _forecaster(meta, context, truth, window.horizon, capture, intervene)

    capture_note = None
    try:
        try:
            ds, fallback = run_with_cpu_fallback(forecast, model)
        except CaptureBudgetError:  # too many gates to keep: the last layer's, else none
            ds, fallback, capture_note = _forecast_within_budget(forecast, model, capture)
    except (ValueError, RuntimeError) as exc:
        raise DashboardError(f"The rollout failed: {exc}") from exc
    if capture_note:
        ds.attrs["capture_note"] = capture_note
    stamps = context.coords.get("timestamp")  # real radar keeps valid times here
    if (
        stamps is not None
        and stamps.dims == ("time",)
        and np.issubdtype(stamps.dtype, np.datetime64)
    ):
        ds = ds.assign_coords(context_valid_time=("context_time", stamps.values))
        if np.issubdtype(ds["lead_time"].dtype, np.timedelta64):
            ds = ds.assign_coords(valid_time=("time", stamps.values[-1] + ds["lead_time"].values))
    if fallback:
        ds.attrs["device_note"] = fallback
    ds.attrs.update(
        checkpoint=str(meta.get("name", "")),
        training_horizon=int(meta.get("horizon") or 0),
        training_context=int(meta.get("context") or 0),
        sample=window.sample,
        start=window.start,
    )
    for key in DATA_ATTRS_KEPT:
        if key in data.attrs and key not in ds.attrs:
            ds.attrs[key] = data.attrs[key]
    return ds


def _forecast_within_budget(forecast, model, capture):
    """``(ds, fallback, note)`` when recording ``capture`` needs more than
    :data:`CAPTURE_MAX_BYTES` (a large radar domain): the last layer's gates only if they fit,
    else no gates; the note says which."""
    from model.devices import run_with_cpu_fallback
    from model.rollout import CaptureBudgetError

    layers = len(model.config.hidden_channels)
    budget = f"{CAPTURE_MAX_BYTES / 2**20:.0f} MiB"
    if capture and layers > 1:
        last = {"layers": [layers - 1]}
        try:
            ds, fallback = run_with_cpu_fallback(lambda net: forecast(net, last), model)
            note = (
                f"Only layer {layers - 1}'s gates were recorded: all {layers} layers' gates of "
                f"this rollout need more than the page's {budget}. Shorten the context or the "
                "horizon (or crop the domain) to see every layer."
            )
            return ds, fallback, note
        except CaptureBudgetError:
            pass
    ds, fallback = run_with_cpu_fallback(lambda net: forecast(net, False), model)
    note = (
        f"Gates were not recorded: this rollout's gates need more than the page's {budget}. "
        "Shorten the context or the horizon (or crop the domain) to see them."
    )
    return ds, fallback, note


def _forecaster(meta: dict, context, truth, horizon: int, capture, intervene):
    """``forecast(net, capture)``: the whole-domain rollout for radar (:func:`_tiles_domain`),
    else the single-grid rollout, with the checkpoint's normalisation and the page's budget."""
    from model.rollout import rollout

    normalizer = checkpoint_normalizer(meta)
    if _tiles_domain(meta, context, intervene):
        from model.tiling import domain_rollout

        def whole_domain(net, capture=capture):
            return domain_rollout(
                net, context, horizon, meta=meta, truth=truth, capture=capture,
                normalizer=normalizer, byte_budget=CAPTURE_MAX_BYTES,
                data_pixel_km=_stated_pixel_km(meta, context),
            )  # fmt: skip

        return whole_domain

    def single_grid(net, capture=capture):
        return rollout(
            net, context, horizon, truth=truth, capture=capture, normalizer=normalizer,
            byte_budget=CAPTURE_MAX_BYTES, intervene=intervene,
        )  # fmt: skip

    return single_grid


def _tiles_domain(meta: dict, context: xr.DataArray, intervene) -> bool:
    """Whether this rollout goes through :func:`model.tiling.domain_rollout` (every radar rollout
    of a checkpoint that forecasts; an intervention needs the checkpoint's own grid)."""
    from model.checkpoint import forecasts_any_grid

    if not forecasts_any_grid(meta, context):
        return False
    if intervene is None:
        return True
    _needs_own_grid(meta, context, "Gate interventions run")
    return False


def own_grid_problem(meta: dict, frames, what: str) -> str | None:
    """A sentence when ``frames`` (any array or dataset with ``y``/``x``) are not on the
    checkpoint's own grid, for a tool that runs the network once on the whole frame
    (``what``: e.g. "Gate interventions run"); None when they are."""
    frame = tuple((meta.get("config") or {}).get("frame_size") or ())
    shape = (int(frames.sizes["y"]), int(frames.sizes["x"]))
    if not frame or frame == shape:
        return None
    return (
        f"{what} on the checkpoint's own {frame[0]}x{frame[1]} grid; this domain is "
        f"{shape[0]}x{shape[1]} px (forecast in tiles). Use data on the checkpoint's grid "
        "(e.g. radar_synthetic) for it."
    )


def _needs_own_grid(meta: dict, context: xr.DataArray, what: str) -> None:
    """Raise :class:`DashboardError` with :func:`own_grid_problem`'s sentence, if any."""
    problem = own_grid_problem(meta, context, what)
    if problem:
        raise DashboardError(problem)


def _stated_pixel_km(meta: dict, context: xr.DataArray) -> float | None:
    """The data's pixel size when only the checkpoint states one and the grids are equal (the
    frames are taken to be the checkpoint's pixels, as a single-grid rollout takes them); None:
    :func:`model.tiling.domain_rollout` reads it from the data."""
    from model.regrid import checkpoint_pixel_km, data_pixel_size

    frame = tuple((meta.get("config") or {}).get("frame_size") or ())
    if frame != (context.sizes["y"], context.sizes["x"]) or data_pixel_size(context) is not None:
        return None
    return checkpoint_pixel_km(meta)


def checkpoint_normalizer(meta: dict):
    """The checkpoint's :class:`model.normalize.Normalizer`, or None when its metadata has none."""
    from model.normalize import Normalizer

    return Normalizer.from_metadata(meta["normalization"]) if meta.get("normalization") else None


def has_forecast_head(meta: dict) -> bool:
    """False for an inspect-mode checkpoint (an imported ConvLSTM without a forecasting head):
    it is only run over frames to show its gates (:func:`run_inspection`)."""
    from model.checkpoint import has_forecast_head as forecasts

    return forecasts(meta)


def run_inspection(model, meta: dict, data: xr.DataArray, window: Window) -> xr.Dataset:
    """Gates of the network over the context frames of ``window``; nothing is forecast.

    For inspect-mode checkpoints (:func:`has_forecast_head` False), with
    :func:`model.rollout.inspect_gates`. Returns its dataset (``context``, ``gates``) with attrs
    ``checkpoint``, ``sample``, ``start`` added.

    Raises
    ------
    DashboardError
        The frames do not fit the network, or their gates need more than
        :data:`CAPTURE_MAX_BYTES`.
    """
    from model.devices import run_with_cpu_fallback
    from model.rollout import CaptureBudgetError, inspect_gates

    context, _ = select_window(data, window)
    norm = checkpoint_normalizer(meta)
    try:
        ds, fallback = run_with_cpu_fallback(
            lambda net: inspect_gates(net, context, normalizer=norm, byte_budget=CAPTURE_MAX_BYTES),
            model,
        )
    except CaptureBudgetError as exc:
        raise DashboardError(f"The gates of these frames cannot be shown: {exc}") from exc
    except (ValueError, RuntimeError) as exc:
        raise DashboardError(f"Reading the frames failed: {exc}") from exc
    if fallback:
        ds.attrs["device_note"] = fallback
    ds.attrs.update(checkpoint=str(meta.get("name", "")), sample=window.sample, start=window.start)
    for key in DATA_ATTRS_KEPT:
        if key in data.attrs and key not in ds.attrs:
            ds.attrs[key] = data.attrs[key]
    return ds


# -- gate lab ----------------------------------------------------------------------------------
def make_edit(
    config,
    *,
    steps: int,
    layer: int,
    target: str,
    operation: str,
    value: float = 0.0,
    lo: float | None = None,
    hi: float | None = None,
    channels: tuple[int, ...] | None = None,
    region: tuple[int, int, int, int] | None = None,
    start: int = 0,
):
    """A :class:`model.interventions.GateEdit` checked against a network and rollout length.

    Parameters
    ----------
    config : ConvLSTMConfig
        The network's config (layers, hidden channels, frame and patch size).
    steps : int
        Inputs the rollout reads (context frames + horizon - 1).
    layer, target, operation, channels, region, start
        As :class:`~model.interventions.GateEdit`; ``region`` in frame pixels.
    value : float
        The new value for ``"set"``, the factor for ``"scale"`` (dimensionless).
    lo, hi : float or None
        Bounds for ``"clamp"``.

    Returns
    -------
    GateEdit

    Raises
    ------
    DashboardError
        Any problem the edit's own checks find, as one sentence saying what to change.
    """
    from model.interventions import GateEdit, Intervention

    try:
        edit = GateEdit(
            layer=layer, target=target, operation=operation, value=float(value),
            factor=float(value), lo=lo, hi=hi, channels=channels, region=region, start=start,
        )  # fmt: skip
        Intervention(edit, config=config, steps=steps)
    except ValueError as exc:
        raise DashboardError(f"This intervention cannot run: {exc}") from None
    return edit


def default_region(ds: xr.Dataset, *, fraction: float = 0.25) -> tuple[int, int, int, int]:
    """A box of ``fraction`` of the frame centred on the largest value of the last context frame
    (the heaviest rain: "this storm"), kept inside the frame; ``(y0, y1, x0, x1)`` frame pixels."""
    frame = ds["context"].isel(context_time=-1).max("channel").values  # (y, x)
    ny, nx = frame.shape
    finite = np.where(np.isfinite(frame), frame, -np.inf)
    cy, cx = np.unravel_index(int(np.argmax(finite)), frame.shape)
    if not np.isfinite(finite).any():
        cy, cx = ny // 2, nx // 2
    hy, hx = max(1, round(ny * fraction)), max(1, round(nx * fraction))
    y0 = min(max(0, int(cy) - hy // 2), ny - hy)
    x0 = min(max(0, int(cx) - hx // 2), nx - hx)
    return y0, y0 + hy, x0, x0 + hx


def score_change(
    original: xr.Dataset, edited: xr.Dataset, *, threshold: float = 1.0
) -> tuple[pd.DataFrame, dict]:
    """Every score of the original and the intervened forecast, and the change, per lead.

    Both forecasts are scored on the same pixels (:func:`model.metrics.compare`), over the leads
    with truth.

    Returns
    -------
    (pandas.DataFrame, dict)
        Columns ``lead_step``, ``score``, ``original``, ``intervened``, ``change`` (intervened
        minus original), one row per lead and score; and the unit of each score.

    Raises
    ------
    DashboardError
        No truth after the context.
    """
    from model.metrics import compare

    if "truth" not in original or not np.isfinite(original["truth"].values).any():
        raise DashboardError("No ground truth after the context: nothing to score against.")
    truth = original["truth"].values[None]
    known = np.isfinite(truth[0]).reshape(truth.shape[1], -1).any(axis=1)
    n = int(known.sum()) if known.all() else int(np.argmin(known))
    forecasts = {
        "original": original["prediction"].values[None, :n],
        "intervened": edited["prediction"].values[None, :n],
    }
    tables = compare(
        forecasts, truth[:, :n], domain=str(original.attrs.get("domain", "video")),
        thresholds=(threshold,), pixel_km=_pixel_km(original),
    )  # fmt: skip
    a, b = tables["original"], tables["intervened"]
    long = pd.DataFrame(
        {
            "lead_step": np.repeat(a.index.to_numpy(), a.shape[1]),
            "score": np.tile(a.columns.to_numpy(), a.shape[0]),
            "original": a.to_numpy().ravel(),
            "intervened": b[a.columns].to_numpy().ravel(),
        }
    )
    long["change"] = long["intervened"] - long["original"]
    units = dict(a.attrs.get("units", {}) or {})
    return long.sort_values(["score", "lead_step"], kind="stable", ignore_index=True), units


def attribution(
    model, meta: dict, data: xr.DataArray, window: Window, *, lead: int, region
) -> xr.Dataset:
    """Integrated gradients of the forecast over ``region`` at ``lead`` per context frame
    (:func:`model.gate_lab.integrated_gradients`; seconds)."""
    from model.gate_lab import integrated_gradients

    context, _ = select_window(data, window)
    _needs_own_grid(meta, context, "The attribution runs")
    normalizer = checkpoint_normalizer(meta)
    try:
        return integrated_gradients(
            model, context, lead=int(lead), region=tuple(region), normalizer=normalizer
        )
    except (ValueError, RuntimeError) as exc:
        raise DashboardError(f"The attribution failed: {exc}") from exc


def compare_runs(
    first: xr.Dataset, second: xr.Dataset, *, layer: int, names: tuple[str, str]
) -> tuple[xr.Dataset, str | None]:
    """Two checkpoints' rollouts of one window: forecasts, ``layer``'s gates and differences
    (:func:`model.gate_lab.compare_rollouts`).

    Returns
    -------
    (xarray.Dataset, str or None)
        The comparison, and a note when the gates could not be compared (forecasts only).

    Raises
    ------
    DashboardError
        The forecasts themselves differ in shape.
    """
    from model.gate_lab import compare_rollouts

    note = None
    if "gates" not in first or "gates" not in second:
        layer, note = None, "One of the rollouts has no gates: forecasts compared only."
    try:
        return compare_rollouts(first, second, layer=layer, names=names), note
    except ValueError as exc:
        if layer is None:
            raise DashboardError(f"These checkpoints cannot be compared: {exc}") from None
        note = f"Gates not compared: {exc}"
    try:
        return compare_rollouts(first, second, layer=None, names=names), note
    except ValueError as exc:
        raise DashboardError(f"These checkpoints cannot be compared: {exc}") from None


def unit_browser(
    ds: xr.Dataset, *, layer: int, step: int, gate: str, sort_by: str = "activity"
) -> tuple[pd.DataFrame, dict]:
    """Statistics of every hidden unit of a layer at one step, sorted, and the 8-bit maps of one
    gate for all of them (:func:`model.gate_lab.unit_statistics`,
    :func:`model.gate_lab.encode_unit_maps`).

    Returns
    -------
    (pandas.DataFrame, dict)
        The table (index ``channel``, in ``sort_by`` order, largest first) and the maps' JSON
        payload (``UnitMaps.to_payload``), each unit on its own range.
    """
    from model.gate_lab import encode_unit_maps, unit_statistics

    try:
        table = unit_statistics(ds, layer=layer, step=step, sort_by=sort_by)
        maps = encode_unit_maps(ds, layer=layer, step=step, gate=gate, scale="channel")
    except ValueError as exc:
        raise DashboardError(f"The unit browser cannot show this rollout: {exc}") from None
    return table, maps.to_payload()


def saturation(ds: xr.Dataset) -> xr.Dataset:
    """Left/right saturation of each unit's sigmoid gates over the rollout
    (:func:`model.gate_lab.saturation`)."""
    from model.gate_lab import saturation as compute

    try:
        return compute(ds)
    except ValueError as exc:
        raise DashboardError(f"Saturation cannot be measured here: {exc}") from None


def memory(ds: xr.Dataset) -> xr.DataArray:
    """The memory map of every layer and lead (:func:`model.gate_lab.memory_map`)."""
    from model.gate_lab import memory_map

    try:
        return memory_map(ds)
    except ValueError as exc:
        raise DashboardError(f"The memory map cannot be drawn here: {exc}") from None


def cell_equations(meta: dict, *, fmt: str = "latex") -> dict[str, str]:
    """The cell equations of a checkpoint (:func:`model.gate_lab.cell_equations`), keyed by
    symbol (``i_t``, ``f_t``, ``g_t``, ``C_t``, ``o_t``, ``H_t``); empty without a config."""
    from model.gate_lab import cell_equations as equations

    if not isinstance(meta.get("config"), dict):
        return {}
    try:
        return equations(meta, fmt=fmt)
    except (TypeError, ValueError):
        return {}


# -- scores ------------------------------------------------------------------------------------
EXTRAPOLATION_FRAMES = 3
"""Observed frames the optical-flow baseline estimates its motion from (fewer if the context is
shorter, at least 2)."""
SCORING_NOTE = (
    "Every forecast is scored on the same pixels: those where the truth and all forecasts are "
    "finite. Rain events are rain rates ≥ the threshold (CSI, POD, FAR, frequency bias FBI = "
    "(hits + false alarms) / (hits + misses), and FSS over 10 km neighbourhoods from pysteps). "
    "The baselines forecast on the whole radar domain of the source frames and are then cut to "
    "the window shown, so rain from outside the window comes in."
)
"""What the metrics view says about radar scores (:mod:`model.metrics`)."""


def whole_domain_context(
    data: xr.DataArray, window: Window, *, all_samples: bool = False
) -> xr.DataArray | None:
    """The last context frames of ``window`` over the whole radar domain they were cropped from.

    Parameters
    ----------
    data : xarray.DataArray
        The dataset array the rollout came from (its ``event``/``timestamp``/``y0_km``/``x0_km``
        coordinates locate the source files; :func:`datasets.radar.whole_domain`).
    window : Window
        The rollout window; the last ``min(3, context)`` context frames are read.
    all_samples : bool
        Every sample of ``data`` (for :func:`score_split`) instead of ``window.sample``.

    Returns
    -------
    xarray.DataArray or None
        ``(sample, time, channel, Y, X)`` with ``crop_row``/``crop_col``; None when the data is
        not a crop of a larger domain (synthetic data, uploads: their grid is all there is).

    Raises
    ------
    DashboardError
        The whole-domain files could not be read.
    """
    from datasets import DatasetError
    from datasets.radar import whole_domain

    stop = window.start + window.context
    frames = data.isel(time=slice(max(window.start, stop - EXTRAPOLATION_FRAMES), stop))
    if not all_samples:
        frames = frames.isel(sample=[window.sample])
    try:
        return whole_domain(frames)
    except DatasetError as exc:
        raise DashboardError(
            f"The extrapolation baseline needs the whole radar domain around this window, which "
            f"could not be read: {exc}"
        ) from exc


def score(
    ds: xr.Dataset,
    *,
    threshold: float = 1.0,
    data: xr.DataArray | None = None,
    baselines: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Per-lead-time scores of one rollout (one sample) and of its baselines.

    Baselines (:func:`baseline_forecasts`): persistence (last context frame repeated) for every
    domain, and for radar also pysteps optical-flow extrapolation (Lucas-Kanade motion +
    semi-Lagrangian advection), run on the whole radar domain when ``data`` (the dataset array the
    rollout came from) is a crop of a larger one (:func:`whole_domain_context`), else on the
    rollout's own (whole-domain) grid. ``baselines``: those forecasts computed before for the same
    window (they do not depend on the checkpoint; the page caches them per window). Every forecast
    is scored on the same pixels (:func:`model.metrics.compare`). Returns ``({"ConvLSTM": table,
    "persistence": table, ...}, units)`` where each table is indexed by ``lead_step`` with one
    column per score and ``units`` maps a score to its unit. Raises :class:`DashboardError` when
    there is no truth to score against.
    """
    if "truth" not in ds:
        raise DashboardError("No ground truth after the context: nothing to score against.")
    if baselines is None:
        baselines = baseline_forecasts(ds, data=data)
    return _score_tables(
        ds["prediction"].values[None],
        ds["truth"].values[None],
        ds["context"].values[None],
        domain=str(ds.attrs.get("domain", "video")),
        threshold=threshold,
        pixel_km=_pixel_km(ds),
        baselines=baselines,
    )


def baseline_forecasts(ds: xr.Dataset, *, data: xr.DataArray | None = None) -> dict:
    """The baseline forecasts of one rollout's window, ``{name: (1, lead, channel, y, x)}`` over
    the leads with truth (see :func:`score`); the same for every checkpoint run on the window.

    Raises
    ------
    DashboardError
        No truth after the context, or the whole radar domain around a crop could not be read.
    """
    if "truth" not in ds:
        raise DashboardError("No ground truth after the context: nothing to score against.")
    domain = str(ds.attrs.get("domain", "video"))
    context = ds["context"].values[None]  # (1, T, C, Y, X)
    whole = None
    if data is not None and _wants_extrapolation(domain, context.shape[1]):
        window = Window(
            sample=int(ds.attrs.get("sample", 0)),
            start=int(ds.attrs.get("start", 0)),
            context=int(ds.sizes["context_time"]),
            horizon=int(ds.sizes["time"]),
        )
        whole = whole_domain_context(data, window)
    return _baselines(context, _leads_with_truth(ds["truth"].values[None]), domain, whole)


def score_split(
    model,
    meta: dict,
    data: xr.DataArray,
    window: Window,
    *,
    threshold: float = 1.0,
    on_sample: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict, int]:
    """Scores pooled over every sample of ``data``, each forecast with the same window.

    Parameters
    ----------
    model, meta
        The loaded checkpoint (:func:`load_model`).
    data : xarray.DataArray
        ``(sample, time, channel, y, x)``: every sample is forecast (gates not recorded).
    window : Window
        Start, context and horizon; its ``sample`` is ignored.
    threshold : float
        Radar event threshold (mm/h); events are rain rates ``>= threshold``.
    on_sample : callable, optional
        ``on_sample(done, total)`` before each sample (for a progress bar).

    Returns
    -------
    (dict, dict, int)
        Tables and units as :func:`score` (pooled: errors averaged over all samples' frames, CSI/
        POD/FAR/FBI from the summed contingency counts, FSS from the summed fractions, all on the
        pixels valid in the truth and every forecast), and the number of samples.
    """
    from dataclasses import replace

    n_samples = int(data.sizes["sample"])
    parts: dict[str, list[np.ndarray]] = {"prediction": [], "truth": [], "context": []}
    domain = "video"
    for k in range(n_samples):
        if on_sample is not None:
            on_sample(k, n_samples)
        ds = run_rollout(model, meta, data, replace(window, sample=k), capture=False)
        if "truth" not in ds:
            raise DashboardError("No ground truth after the context: nothing to score against.")
        domain = str(ds.attrs.get("domain", "video"))
        for name in parts:
            parts[name].append(ds[name].values)
    if on_sample is not None:
        on_sample(n_samples, n_samples)
    stacked = {name: np.stack(arrays) for name, arrays in parts.items()}  # (S, T, C, Y, X)
    whole = None
    if _wants_extrapolation(domain, window.context):
        whole = whole_domain_context(data, window, all_samples=True)
    tables, units = _score_tables(
        stacked["prediction"],
        stacked["truth"],
        stacked["context"],
        domain=domain,
        threshold=threshold,
        whole=whole,
        pixel_km=_pixel_km(data),
    )
    return tables, units, n_samples


def _wants_extrapolation(domain: str, context_frames: int) -> bool:
    """Whether ``domain`` is scored against extrapolation and the context allows it."""
    return "extrapolation" in vocabulary.facts(domain).baselines and context_frames >= 2


def _pixel_km(array) -> float | None:
    from model.metrics import pixel_size_km

    return pixel_size_km(array)


def _leads_with_truth(truth: np.ndarray) -> int:
    """Leads from the first on where every sample of ``truth (S, T, C, Y, X)`` has a value."""
    if not np.isfinite(truth).any():
        raise DashboardError("No ground truth after the context: nothing to score against.")
    horizon = truth.shape[1]
    known = np.isfinite(truth).transpose(1, 0, 2, 3, 4).reshape(horizon, -1).any(axis=1)
    return int(known.sum()) if known.all() else int(np.argmin(known))


def _baselines(context, n: int, domain: str, whole=None) -> dict[str, np.ndarray]:
    """Persistence, all-black (video) and extrapolation (radar) over ``n`` leads, each
    ``(sample, lead, channel, y, x)``; ``whole``: the whole radar domain for the extrapolation
    (:func:`whole_domain_context`), which is then cut to the context's pixels."""
    from model.baselines import all_black, extrapolation, persistence

    forecasts = {"persistence": persistence(context, horizon=n)}
    if "all_black" in vocabulary.facts(domain).baselines:
        forecasts["all-black"] = all_black(context, horizon=n)
    if _wants_extrapolation(domain, context.shape[1]):
        frames = min(EXTRAPOLATION_FRAMES, context.shape[1])
        forecasts["extrapolation"] = extrapolation(
            context, horizon=n, n_frames=frames, domain=whole
        )
    return forecasts


def _score_tables(
    prediction, truth, context, *, domain: str, threshold: float, whole=None, pixel_km=None,
    baselines=None,
):  # fmt: skip
    """Scores of ``prediction`` and the baselines, all ``(sample, time, channel, y, x)``, over the
    leads where every sample has truth, on the pixels valid in the truth and every forecast.

    ``baselines``: :func:`_baselines` computed before (for at least these leads); else computed
    here, with ``whole`` (the last context frames over the whole radar domain,
    :func:`whole_domain_context`) for the extrapolation, or the context's own grid when None.
    """
    from model.metrics import compare

    n = _leads_with_truth(truth)
    if baselines is None:
        baselines = _baselines(context, n, domain, whole)
    forecasts = {"ConvLSTM": np.asarray(prediction)[:, :n]}
    forecasts.update({name: np.asarray(f)[:, :n] for name, f in baselines.items()})
    tables = compare(forecasts, truth[:, :n], domain=domain, thresholds=(threshold,),
                     pixel_km=pixel_km)  # fmt: skip
    units = dict(tables["ConvLSTM"].attrs.get("units", {}) or {})
    return tables, units


def scores_long(
    tables: dict[str, pd.DataFrame], lead_labels: list[str] | None = None
) -> pd.DataFrame:
    """One tidy table for the CSV export: ``lead_step, lead_time, forecast, <scores...>``."""
    frames = []
    for name, table in tables.items():
        t = table.copy()
        t.insert(0, "forecast", name)
        if lead_labels is not None:
            t.insert(0, "lead_time", [lead_labels[i - 1] for i in t.index])
        frames.append(t.reset_index())
    return pd.concat(frames, ignore_index=True)

"""Radar datasets: a bundled synthetic one and the pysteps example events, in mm/h.

Datasets (listed in :mod:`datasets.catalog`)
--------------------------------------------
``radar_synthetic``
    Bundled and offline: synthetic precipitation made with pysteps' noise generators and
    semi-Lagrangian advection (:mod:`datasets.radar_synthetic`), 128 x 128 at 1 km, 24 frames at 5
    min (12 context + 12 horizon). Labelled ``synthetic=1``.
``radar_mch``
    MeteoSwiss AQC GIF, events 20150515, 20160711, 20170131, 40 frames each at 5 min.
``radar_fmi``
    FMI PGM composites, events 20160928 and 20170509, 40 frames each at 5 min.
``radar_bom_c10``
    BoM Rainfields3 ``prcp-c10`` radar 66 on 2020-10-31, 144 frames at 10 min.
``radar_bom_cscn``
    BoM Rainfields3 ``prcp-cscn`` radar 2 on 2018-06-16, 61 frames at 6 min.
    (The two BoM products have different steps, so they are separate datasets: steps are never
    mixed.)

The real datasets read a folder laid out as pysteps-data's ``radar/`` tree (``root=``, e.g. a
checkout of github.com/pySTEPS/pysteps-data or its ``radar`` folder) or the download cache
(``download=True`` fetches the files, checked by SHA-256, from the ``pysteps-data`` source; see
:mod:`datasets.download`). Each event is read with :func:`datasets.radar_io.read_radar_sequence`
(mm/h, NaN outside the radar domain, block-averaged to ``resolution_km``, cropped to ``grid`` where
it rains most) and cut into windows of ``context + horizon`` frames.

Splits (test frames never appear in a training window)
------------------------------------------------------
Whole events go to one split where there are enough events (``radar_mch``: train 20150515, val
20170131, test 20160711; ``radar_fmi``: train 20160928). An event shared by several splits is cut
in time into consecutive, non-overlapping blocks, taken from its end: ``test`` gets the last
``max(fraction * n, window)`` frames, then ``val`` the block before it, and ``train`` the rest
(fractions 0.2/0.2/0.6 for a train/val/test event, 0.5/0.5 for a val/test event). A block that
would leave fewer than ``window = context + horizon`` frames is not made: ``val`` is dropped first,
and asking for a split without frames raises :class:`DatasetError` saying which window would fit.
Windows are cut inside a block only (stride 1 for train, ``horizon`` for val and test by default),
and the rain crop is chosen from that block's frames alone. With the default 12 + 12 frames:

==================  ===========================  ========================  =======================
dataset             train                        val                       test
==================  ===========================  ========================  =======================
``radar_mch``       20150515 (17 windows)        20170131 (2)              20160711 (2)
``radar_fmi``       20160928 (17)                none (needs <= 20 frames) 20170509, last 24 (1)
``radar_bom_c10``   frames 0-85 (63)             frames 86-114 (1)         frames 115-143 (1)
``radar_bom_cscn``  frames 0-36 (14)             none (needs <= 20 frames) frames 37-60 (1)
==================  ===========================  ========================  =======================

``n_samples`` keeps that many windows, evenly spaced. The arrays are those of
:func:`datasets.windows.sliding_windows`: ``time`` is the frame index in the window and the
``timestamp (sample, time)`` coordinate holds the real valid times.

The whole domain around a crop
------------------------------
A window is a ``grid`` x ``grid`` crop of the radar composite. :func:`whole_domain` reads the same
frames again over the whole composite (same resolution, no crop) and says where each window's crop
lies in it (``crop_row``/``crop_col``), so that baselines such as optical-flow extrapolation see the
rain outside the crop (:mod:`model.baselines`) and are then cut to the scored pixels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.download import fetch_dataset
from datasets.errors import DataNotFound, DatasetError
from datasets.manifests import MANIFESTS
from datasets.radar_io import (
    DEFAULT_CROP_THRESHOLD,
    PYSTEPS_LICENCE,
    RADAR_SOURCES,
    find_radar_files,
    parse_timestamp,
    rain_crop_origin,
    read_radar_file,
    read_radar_sequence,
)
from datasets.radar_synthetic import synthetic_precipitation
from datasets.windows import sliding_windows, take_evenly

DEFAULT_SAMPLES = {"train": 128, "val": 16, "test": 16}  # radar_synthetic
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@dataclass(frozen=True)
class RadarEvents:
    """One real radar dataset: its source, event folders and which split each event feeds."""

    name: str
    source: str  # key of datasets.radar_io.RADAR_SOURCES
    events: dict[str, tuple[str, ...]]  # folder under radar/ -> splits it feeds, in time order
    files: dict[str, str]  # manifest {relative path from the repository root: sha256}
    title: str


EVENTS: dict[str, RadarEvents] = {
    spec.name: spec
    for spec in (
        RadarEvents(
            "radar_mch",
            "mch",
            {
                "mch/20150515": ("train",),
                "mch/20170131": ("val",),
                "mch/20160711": ("test",),
            },
            MANIFESTS["radar_mch"].files,
            "MeteoSwiss radar, 3 events (pysteps-data)",
        ),
        RadarEvents(
            "radar_fmi",
            "fmi",
            {"fmi/pgm/20160928": ("train",), "fmi/pgm/20170509": ("val", "test")},
            MANIFESTS["radar_fmi"].files,
            "FMI radar, 2 events (pysteps-data)",
        ),
        RadarEvents(
            "radar_bom_c10",
            "bom",
            {"bom/prcp-c10/66/2020/10/31": ("train", "val", "test")},
            MANIFESTS["radar_bom_c10"].files,
            "BoM Rainfields3 prcp-c10, radar 66, 24 h at 10 min (pysteps-data)",
        ),
        RadarEvents(
            "radar_bom_cscn",
            "bom",
            {"bom/prcp-cscn/2/2018/06/16": ("train", "val", "test")},
            MANIFESTS["radar_bom_cscn"].files,
            "BoM Rainfields3 prcp-cscn, radar 2, 6 h at 6 min (pysteps-data)",
        ),
    )
}

# --- bundled synthetic ---------------------------------------------------------------------------


def radar_synthetic(
    *,
    split: str,
    n_samples: int | None = None,
    seed: int = 0,
    grid: int = 128,
    context: int = 12,
    horizon: int = 12,
) -> xr.DataArray:
    """Bundled synthetic precipitation (offline), mm/h at 5 min on a 1-km grid.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Independent sample streams (same seed, different split -> different samples).
    n_samples : int, optional
        Number of sequences; default 128 for train, 16 for val and test.
    seed : int
        Base seed; the result is a pure function of (seed, split, sample index, grid, frames).
    grid : int
        Side in pixels (1 km each).
    context, horizon : int
        Frames per sequence = context + horizon (default 12 + 12 = 24).

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` in mm/h, ``synthetic=1``; see
        :func:`datasets.radar_synthetic.synthetic_precipitation`.
    """
    n = DEFAULT_SAMPLES[split] if n_samples is None else int(n_samples)
    array = synthetic_precipitation(
        n_samples=n, split=split, seed=seed, grid=grid, frames=int(context) + int(horizon)
    )
    array.attrs.update(context=int(context), horizon=int(horizon))
    array.coords["timestamp"] = (
        ("sample", "time"),
        np.broadcast_to(array["time"].values, (array.sizes["sample"], array.sizes["time"])).copy(),
    )
    return array


# --- real events ---------------------------------------------------------------------------------


def load_radar_events(
    name: str,
    *,
    split: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    context: int = 12,
    horizon: int = 12,
    stride: int | None = None,
    n_samples: int | None = None,
    grid: int = 128,
    resolution_km: float = 1.0,
    crop_threshold: float = DEFAULT_CROP_THRESHOLD,
) -> xr.DataArray:
    """Windows of one split of a real radar dataset (see the module doc for the split rule).

    Parameters
    ----------
    name : str
        One of :data:`EVENTS` (``radar_mch``, ``radar_fmi``, ``radar_bom_c10``, ``radar_bom_cscn``).
    split : {"train", "val", "test"}
        Which block of the events.
    root : path-like, optional
        Folder laid out as pysteps-data's ``radar/`` tree (or the repository root holding
        ``radar/``). Without it the download cache is used.
    download : bool
        Fetch missing files from the ``pysteps-data`` source into the cache (SHA-256 checked).
    cache_dir, base_url : optional
        As in :func:`datasets.download.fetch`.
    context, horizon : int
        Frames per window = context + horizon.
    stride : int, optional
        Frames between window starts; default 1 for train, ``horizon`` for val and test.
    n_samples : int, optional
        Keep at most this many windows, evenly spaced over the split (first and last included).
    grid, resolution_km, crop_threshold
        As in :func:`datasets.radar_io.read_radar_sequence`.

    Returns
    -------
    xarray.DataArray
        float32 mm/h ``(sample, time, channel, y, x)``, ``time`` = frame index in the window,
        ``timestamp (sample, time)`` valid times, coordinate ``event (sample)``; NaN outside the
        radar domain. All windows of a split share the grid size but the crop (and so ``y``/``x``)
        may differ between events: ``y``/``x`` are those of the first event, and per-sample
        ``y0_km``/``x0_km`` give each window's upper-left pixel centre.

    Raises
    ------
    DatasetError
        Data not found (use ``root=`` or ``download=True``), unreadable files, or no frames for this
        split with this window length.
    """
    spec = EVENTS[name]
    window = int(context) + int(horizon)
    if stride is None:
        stride = 1 if split == "train" else int(horizon)
    folders = _event_folders(
        spec, root=root, download=download, cache_dir=cache_dir, base_url=base_url
    )
    parts = []
    for event, splits in spec.events.items():
        if split not in splits:
            continue
        files = find_radar_files(folders[event], source=spec.source)
        block = split_blocks(len(files), splits=splits, window=window).get(split)
        if block is None:
            continue
        seq = read_radar_sequence(
            files[block[0] : block[1]],
            source=spec.source,
            grid=grid,
            resolution_km=resolution_km,
            crop="rain",
            crop_threshold=crop_threshold,
            licence=PYSTEPS_LICENCE,
        )
        win = sliding_windows(seq, context=int(context), horizon=int(horizon), stride=int(stride))
        win = win.assign_coords(
            event=("sample", [event] * win.sizes["sample"]),
            y0_km=("sample", np.full(win.sizes["sample"], float(seq.y[0]))),
            x0_km=("sample", np.full(win.sizes["sample"], float(seq.x[0]))),
        )
        parts.append(win)
    if not parts:
        fits = [
            w
            for w in range(window - 1, 1, -1)
            if any(
                split in split_blocks(len(_names(spec, e)), splits=splits, window=w)
                for e, splits in spec.events.items()
                if split in splits
            )
        ]
        hint = f"context + horizon <= {fits[0]}" if fits else "another split"
        raise DatasetError(
            f"{name} has no {split!r} frames for context + horizon = {window}: its events "
            f"({', '.join(f'{e}: {len(_names(spec, e))} frames' for e in spec.events)}) are too "
            f"short to hold a separate block for this split. Use a shorter window ({hint})."
        )
    first = parts[0]
    parts = [
        p.assign_coords(y=first.y.values, x=first.x.values, sample=np.arange(p.sizes["sample"]))
        for p in parts
    ]
    out = xr.concat(parts, dim="sample", combine_attrs="override", join="override")
    out = take_evenly(out.assign_coords(sample=np.arange(out.sizes["sample"])), n_samples)
    step = out.attrs.get("time_step", "unknown")
    out.attrs.update(
        description=(
            f"{spec.title}: {split} split, {out.sizes['sample']} windows of {context} + {horizon} "
            f"frames at {step}; rain rate in mm/h, NaN outside the radar domain."
        ),
        split=split,
        dataset=name,
        folder="; ".join(str(folders[e]) for e in spec.events if split in spec.events[e]),
    )
    return out


def split_blocks(
    n_frames: int, *, splits: tuple[str, ...], window: int
) -> dict[str, tuple[int, int]]:
    """Frame ranges ``[start, stop)`` of each split within one event (module doc rule).

    Parameters
    ----------
    n_frames : int
        Frames in the event.
    splits : tuple of str
        The splits this event feeds, a subset of ("train", "val", "test").
    window : int
        Frames per window (context + horizon); every block holds at least one window.

    Returns
    -------
    dict
        ``{split: (start, stop)}`` for the splits that fit; consecutive, non-overlapping blocks in
        the order train, val, test.
    """
    if len(splits) == 1:
        return {splits[0]: (0, n_frames)} if n_frames >= window else {}
    total = sum(SPLIT_FRACTIONS[s] for s in splits)
    keep_for_train = window if "train" in splits else 0
    blocks: dict[str, tuple[int, int]] = {}
    stop = n_frames
    for split in ("test", "val"):  # from the end of the event, test first
        if split not in splits:
            continue
        start = stop - max(math.ceil(SPLIT_FRACTIONS[split] / total * n_frames), window)
        if start < 0 or (split == "val" and start < keep_for_train):
            continue  # does not fit (val gives way to train)
        blocks[split] = (start, stop)
        stop = start
    if "train" in splits and stop >= window:
        blocks["train"] = (0, stop)
    return blocks


def _names(spec: RadarEvents, event: str) -> list[str]:
    prefix = f"radar/{event}/"
    return [rel for rel in spec.files if rel.startswith(prefix)]


def _event_folders(
    spec: RadarEvents, *, root, download: bool, cache_dir, base_url
) -> dict[str, Path]:
    """Local folder of every event: under ``root``, or in the download cache."""
    if root is not None:
        base = Path(root).expanduser()
        if (base / "radar").is_dir():
            base = base / "radar"
        folders = {event: base / event for event in spec.events}
        missing = [str(f) for f in folders.values() if not f.is_dir()]
        if missing:
            raise DataNotFound(
                f"Dataset not found: {', '.join(missing)} missing under root={root}. root must be "
                "laid out as pysteps-data's radar/ tree; or use download=True to download it."
            )
        return folders
    paths = fetch_dataset(spec.name, download=download, cache_dir=cache_dir, base_url=base_url)
    folders = {}
    for event in spec.events:
        names = _names(spec, event)
        folders[event] = paths[names[0]].parent
    return folders


def whole_domain(
    windows: xr.DataArray,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
) -> xr.DataArray | None:
    """The frames of cropped radar windows over the whole radar domain they were cut from.

    Parameters
    ----------
    windows : xarray.DataArray
        ``(sample, time, channel, y, x)`` from :func:`load_radar_events`, or any selection of its
        samples and frames: it needs the coordinates ``event (sample)``, ``timestamp (sample,
        time)``, ``y0_km``/``x0_km (sample)`` and the attrs ``dataset`` and ``resolution_km``.
    root, download, cache_dir, base_url
        Where the files are, as given to :func:`load_radar_events` for these windows.

    Returns
    -------
    xarray.DataArray or None
        float32 mm/h ``(sample, time, channel, y, x)`` over the whole composite at the windows'
        resolution (NaN outside radar coverage), for the same samples and valid times; ``y``/``x``
        the composite's pixel centres in km; per-sample coordinates ``crop_row``/``crop_col``, the
        window's upper-left pixel in this grid (its crop is ``[crop_row : crop_row + grid,
        crop_col : crop_col + grid]``), ``event`` and ``timestamp``. None when ``windows`` are not
        cut from a known radar event dataset (no ``event`` coordinate, or ``dataset`` not in
        :data:`EVENTS`): then their own grid is the whole domain there is.

    Raises
    ------
    DatasetError
        A file of one of the valid times is missing or unreadable, or the crop is not found in
        the composite.
    """
    spec = EVENTS.get(str(windows.attrs.get("dataset", "")))
    needed = {"event", "timestamp", "y0_km", "x0_km"}
    if spec is None or not needed <= set(windows.coords) or "sample" not in windows.dims:
        return None
    windows = windows.transpose("sample", "time", "channel", "y", "x")
    folders = _event_folders(
        spec, root=root, download=download, cache_dir=cache_dir, base_url=base_url
    )
    resolution = windows.attrs.get("resolution_km")
    events = [str(e) for e in windows["event"].values]
    stamps = windows["timestamp"].transpose("sample", "time").values.astype("datetime64[ns]")
    files = {e: _files_by_time(spec, folders[e]) for e in set(events)}
    frames: dict[tuple[str, np.datetime64], xr.DataArray] = {}
    for event, row in zip(events, stamps, strict=True):
        for stamp in row:
            if (event, stamp) not in frames:
                frames[event, stamp] = _read_frame(spec, files[event], stamp, resolution)
    first = next(iter(frames.values()))
    shapes = {frame.shape for frame in frames.values()}
    if len(shapes) > 1:
        raise DatasetError(
            f"the events of {spec.name} are on different grids ({sorted(shapes)}); ask for the "
            "whole domain of one event's windows at a time"
        )
    stack = np.stack(
        [
            np.stack([frames[e, t].values for t in row])
            for e, row in zip(events, stamps, strict=True)
        ]
    )  # (S, T, Y, X)
    rows = [_index_of(first.y.values, y0, "y", first) for y0 in windows["y0_km"].values]
    cols = [_index_of(first.x.values, x0, "x", first) for x0 in windows["x0_km"].values]
    out = xr.DataArray(
        stack[:, :, None].astype(np.float32),
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "sample": windows["sample"].values,
            "time": windows["time"].values,
            "channel": windows["channel"].values,
            "y": first.y.values,
            "x": first.x.values,
            "timestamp": (
                ("sample", "time"),
                windows["timestamp"].transpose("sample", "time").values,
            ),
            "event": ("sample", windows["event"].values),
            "crop_row": ("sample", np.asarray(rows, dtype=np.int64)),
            "crop_col": ("sample", np.asarray(cols, dtype=np.int64)),
        },
        name=windows.name,
        attrs={
            **{k: v for k, v in windows.attrs.items() if k not in ("crop_row", "crop_col")},
            "description": f"{spec.title}: the whole radar domain around the windows' crops.",
        },
    )
    out.y.attrs["units"] = "km"
    out.x.attrs["units"] = "km"
    return out


def _files_by_time(spec: RadarEvents, folder: Path) -> dict[np.datetime64, Path]:
    """The radar files of ``folder`` by valid time."""
    paths = find_radar_files(folder, source=spec.source)
    return {np.datetime64(parse_timestamp(p, source=spec.source), "ns"): p for p in paths}


def _read_frame(
    spec: RadarEvents, files: dict[np.datetime64, Path], stamp: np.datetime64, resolution
) -> xr.DataArray:
    """The file valid at ``stamp`` over the whole domain, as ``(y, x)`` mm/h."""
    if stamp not in files:
        folder = next(iter(files.values())).parent if files else "the event folder"
        raise DatasetError(
            f"no {spec.source} radar file valid at {stamp} in {folder}; the windows do not come "
            "from these files (pass the root= they were loaded with)"
        )
    seq = read_radar_sequence(
        [files[stamp]],
        source=spec.source,
        grid=None,
        crop=None,
        resolution_km=None if resolution is None else float(resolution),
        licence=PYSTEPS_LICENCE,
    )
    return seq.isel(sample=0, time=0, channel=0)


def _index_of(coords: np.ndarray, value: float, name: str, grid: xr.DataArray) -> int:
    """Index of the pixel centre ``value`` (km) in ``coords``; DatasetError if none is there."""
    k = int(np.argmin(np.abs(coords - value)))
    spacing = float(grid.attrs.get("resolution_km") or 1.0)
    if abs(float(coords[k]) - float(value)) > 0.01 * spacing:
        raise DatasetError(
            f"the crop's first {name} = {value:g} km is not a pixel centre of the whole domain "
            f"({coords[0]:g} .. {coords[-1]:g} km); the windows were read at another resolution"
        )
    return k


def events_loader(name: str):
    """The loader of the real radar dataset ``name``: :func:`load_radar_events` bound to it."""

    def load(*, split: str, **options) -> xr.DataArray:
        return load_radar_events(name, split=split, **options)

    load.__name__ = name
    load.__doc__ = (
        f"{EVENTS[name].title}.\n\nOptions as in :func:`datasets.radar.load_radar_events` "
        "(root=, download=, context=, horizon=, stride=, n_samples=, grid=, resolution_km=, "
        "crop_threshold=)."
    )
    return load


__all__ = [
    "EVENTS",
    "events_loader",
    "RADAR_SOURCES",
    "find_radar_files",
    "load_radar_events",
    "parse_timestamp",
    "radar_synthetic",
    "rain_crop_origin",
    "read_radar_file",
    "read_radar_sequence",
    "sliding_windows",
    "split_blocks",
    "synthetic_precipitation",
    "whole_domain",
]

"""Leave-one-source-out (LOSO) training and scoring of Lagrangian radar checkpoints.

``python -m model.loso --data-root DIR --hold-out fmi --out runs/loso/fmi`` trains a Lagrangian
checkpoint (:mod:`model.lagrangian`) on every radar source but the held-out one;
``python -m model.evaluate CHECKPOINT --loso runs/loso`` scores each fold's checkpoint over the
whole domains of the source it never saw (:func:`score_source`) and prints the table.

Sources and time steps
----------------------
:data:`SOURCES` groups the pysteps example events by weather service: MeteoSwiss (3 events, 5 min),
FMI (2 events, 5 min) and BoM (``prcp-c10`` at 10 min, ``prcp-cscn`` at 6 min). The checkpoints
forecast 5-minute steps; BoM events are **resampled in time** to 5 minutes, never mixed at their own
steps: the frame at a time between two observations is the motion-compensated blend of both
(:func:`to_time_step`: each observation advected along the pysteps LK motion between them to
that time, weighted by closeness). Every source is read at 1 km (block means of the native grid).

Training data
-------------
Windows of ``context + horizon`` frames are cut from each event; each is moved into the Lagrangian
frame once over the whole domain (:func:`lagrangian_window`: motion field, advected context,
targets moved back) and cut into 64 x 64 tiles, keeping tiles with at least
:data:`MIN_RAIN_FRACTION` of rain in the last context frame and at most :data:`MAX_NAN_FRACTION`
invalid pixels. Tiles are cached in model space (float16) under ``runs/loso_cache`` (not in git).

Choices without the test source
-------------------------------
The postprocess of a checkpoint (:data:`POSTPROCESS_CANDIDATES`, the one list of candidates) is
chosen by :func:`select_postprocess` on the rainy windows of the checkpoint's **own training
events** (its meta's ``training.events``), never on the held-out source: each candidate finishes
the same network forecast (:func:`candidate_forecasts`), is scored against LK extrapolation, and
the largest mean margin on CSI@1 30/60 min and FSS@1 60 min among the candidates with a fair
frequency bias wins (:func:`choose_postprocess`). The choice and the validation scores it was
made on are written into the meta (``postprocess``, ``selection``) after training, or for an
existing checkpoint with ``python -m model.loso --data-root DIR --select CHECKPOINT ...``. These
windows were also in the network's training tiles: the validation is in-sample for the network.

Confidence
----------
:func:`paired_intervals` gives 90 % bootstrap intervals of ours - LK (CSI@1, FSS@1 at 30 and
60 min) per fold, resampling the test windows (:mod:`model.bootstrap`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from datasets.radar import EVENTS
from datasets.radar_io import PYSTEPS_LICENCE, find_radar_files, read_radar_sequence
from model import lagrangian
from model.losses import masked_mse, rain_weights
from model.normalize import Normalizer

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / "runs" / "loso_cache"
SOURCES = {
    "mch": ("mch/20150515", "mch/20170131", "mch/20160711"),
    "fmi": ("fmi/pgm/20160928", "fmi/pgm/20170509"),
    "bom": ("bom/prcp-c10/66/2020/10/31", "bom/prcp-cscn/2/2018/06/16"),
}
"""Weather service -> its events (folders under pysteps-data's ``radar/``)."""
SOURCE_NAMES = {"mch": "MeteoSwiss", "fmi": "FMI", "bom": "BoM"}
TIME_STEP_S = 300  # every checkpoint forecasts 5-minute steps
PIXEL_KM = 1.0
CONTEXT, HORIZON = 6, 12  # 30 min in, 60 min out
TILE = 64  # px: training tiles and the checkpoint's frame (2 shared CPU cores)
MIN_RAIN_FRACTION = 0.05  # of the last context frame's pixels at >= 0.1 mm/h
MAX_NAN_FRACTION = 0.3
NORMALIZATION = {"kind": "db", "units": "mm/h", "threshold": 0.1, "zerovalue": -15.0,
                 "scale": 10.0, "offset": 0.0}  # fmt: skip
"""dBR transform of ``radar_mch`` (model.normalize)."""


def source_of(event: str) -> str:
    """The weather service of an event folder (a key of :data:`SOURCES`)."""
    for source, events in SOURCES.items():
        if event in events:
            return source
    raise ValueError(f"unknown radar event {event!r}; known: {sum(SOURCES.values(), ())}")


def _reader_source(event: str) -> str:
    """The :mod:`datasets.radar_io` format name of an event's files."""
    return next(spec.source for spec in EVENTS.values() if event in spec.events)


def read_event(root: str | Path, event: str) -> tuple[np.ndarray, float]:
    """An event's whole-domain frames at 1 km and its time step.

    Returns
    -------
    (numpy.ndarray, float)
        ``[T, Y, X]`` float32 rain rate in mm/h (NaN outside the radar), and the step in seconds.
    """
    base = Path(root).expanduser()
    if (base / "radar").is_dir():
        base = base / "radar"
    files = find_radar_files(base / event, source=_reader_source(event))
    seq = read_radar_sequence(files, source=_reader_source(event), grid=None, crop=None,
                              resolution_km=PIXEL_KM, licence=PYSTEPS_LICENCE)  # fmt: skip
    times = seq["time"].values.astype("datetime64[s]").astype(np.int64)
    step = float(np.median(np.diff(times)))
    return seq.values[0, :, 0].astype(np.float32), step


def to_time_step(frames: np.ndarray, step_s: float, target_s: float = TIME_STEP_S) -> np.ndarray:
    """Frames ``[T, Y, X]`` (mm/h) at ``step_s`` resampled to ``target_s`` by motion-compensated
    interpolation (module docstring); unchanged when the steps agree.

    Returns ``[T', Y, X]`` float32, the first frame unchanged, every ``target_s`` after it.
    """
    if abs(step_s - target_s) < 1e-6:
        return frames
    n_out = int(math.floor((frames.shape[0] - 1) * step_s / target_s)) + 1
    out, motions = [], {}
    for k in range(n_out):
        t = k * target_s / step_s  # in input steps
        i = min(int(math.floor(t)), frames.shape[0] - 2)
        a = t - i
        if a < 1e-6:
            out.append(np.where(np.isfinite(frames[i]), frames[i], np.nan))
            continue
        if i not in motions:
            motions[i] = lagrangian.motion_field(frames[i : i + 2], n_frames=2)
        v = motions[i]  # [2, Y, X] pixels per input step
        ahead = lagrangian.advect(frames[i], a * v, 1)  # frame i moved to time t
        back = lagrangian.advect(frames[i + 1], (1 - a) * v, -1)  # frame i+1 moved back to t
        blend = (1 - a) * ahead + a * back
        invalid = ~np.isfinite(frames[i]) & ~np.isfinite(frames[i + 1])
        out.append(np.where(invalid, np.nan, blend))
    return np.stack(out).astype(np.float32)


def event_frames(root, event: str) -> np.ndarray:
    """An event at 1 km and 5-minute steps (BoM resampled in time): ``[T, Y, X]`` mm/h."""
    frames, step = read_event(root, event)
    return to_time_step(frames, step)


def window_starts(n_frames: int, stride: int) -> list[int]:
    """First frames of the ``CONTEXT + HORIZON`` windows of an event, ``stride`` apart."""
    return list(range(0, n_frames - (CONTEXT + HORIZON) + 1, stride))


def lagrangian_window(window: np.ndarray) -> dict[str, np.ndarray]:
    """A ``[CONTEXT + HORIZON, Y, X]`` window (mm/h) in the Lagrangian frame.

    Returns
    -------
    dict
        ``context`` ``[CONTEXT, Y, X]`` and ``target`` ``[HORIZON, Y, X]`` (mm/h, NaN where not
        to be scored), ``velocity`` ``[2, Y, X]`` pixels per step, ``observed_nan`` ``[Y, X]``.
    """
    settings = lagrangian.DEFAULT_MOTION
    ctx, future = window[:CONTEXT], window[CONTEXT:]
    velocity = lagrangian.motion_field(ctx, **settings)
    return {
        "context": lagrangian.to_lagrangian(ctx, velocity),
        "target": lagrangian.targets_to_lagrangian(future, velocity),
        "velocity": velocity,
        "observed_nan": ~np.isfinite(ctx[-1]),
    }


def select_tiles(window: dict, *, max_tiles: int, rng) -> list[tuple[int, int]]:
    """Upper-left corners of up to ``max_tiles`` rainy, mostly valid tiles (random)."""
    last = window["context"][-1]
    h, w = last.shape
    corners = [(y, x) for y in range(0, h - TILE + 1, TILE // 2)
               for x in range(0, w - TILE + 1, TILE // 2)]  # fmt: skip
    good = []
    for y, x in corners:
        rain = (last[y : y + TILE, x : x + TILE] >= 0.1).mean()
        nan = window["observed_nan"][y : y + TILE, x : x + TILE].mean()
        if rain >= MIN_RAIN_FRACTION and nan <= MAX_NAN_FRACTION:
            good.append((y, x))
    if len(good) > max_tiles:
        good = [good[i] for i in sorted(rng.choice(len(good), max_tiles, replace=False))]
    return good


def event_tiles(root, event: str, *, stride: int, max_tiles: int, seed: int = 0) -> np.ndarray:
    """Training tiles of one event, cached: ``[N, CONTEXT + HORIZON, TILE, TILE]`` float16 in model
    space (NaN where a target is not to be scored)."""
    key = hashlib.sha256(f"{event}|{stride}|{max_tiles}|{seed}|{CONTEXT}|{HORIZON}".encode())
    path = CACHE / f"{event.replace('/', '_')}_{key.hexdigest()[:10]}.npy"
    if path.is_file():
        return np.load(path)
    normalizer = Normalizer(**NORMALIZATION)
    rng = np.random.default_rng(seed)
    frames = event_frames(root, event)
    tiles = []
    for start in window_starts(frames.shape[0], stride):
        window = lagrangian_window(frames[start : start + CONTEXT + HORIZON])
        both = np.concatenate([window["context"], window["target"]])  # [T, Y, X] mm/h
        model = np.where(np.isfinite(both), normalizer.to_model(both), np.nan)
        for y, x in select_tiles(window, max_tiles=max_tiles, rng=rng):
            tiles.append(model[:, y : y + TILE, x : x + TILE].astype(np.float16))
    out = np.stack(tiles) if tiles else np.zeros((0, CONTEXT + HORIZON, TILE, TILE), np.float16)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


# --- scoring ------------------------------------------------------------------------------------

MIN_SCORED_RAIN = 0.002
"""A test window is scored when at least this fraction of its last context frame's valid pixels
has >= 1 mm/h (dry windows have no CSI to score)."""
LOSO_METHODS = ("convlstm", "persistence", "extrapolation")


def test_windows(frames: np.ndarray) -> list[int]:
    """Non-overlapping ``CONTEXT + HORIZON`` windows of an event that are rainy enough
    (:data:`MIN_SCORED_RAIN`)."""
    starts = []
    for start in window_starts(frames.shape[0], CONTEXT + HORIZON):
        last = frames[start + CONTEXT - 1]
        valid = np.isfinite(last)
        if valid.any() and (last[valid] >= 1.0).mean() >= MIN_SCORED_RAIN:
            starts.append(start)
    return starts


def score_source(checkpoint, root, source: str, *, thresholds=(1.0, 5.0), log=print):
    """Whole-domain scores of a checkpoint on every event of ``source``, against persistence and
    pysteps LK extrapolation (the same 3 frames, the whole domain), on the common mask.

    Returns
    -------
    (pandas.DataFrame, dict)
        Long table ``source, method, lead_step, lead_time, <radar metrics>`` pooled over the
        source's test windows; facts (windows per event, domain sizes, seconds).
    """
    from model.baselines import extrapolation, persistence
    from model.checkpoint import load_checkpoint
    from model.tiling import domain_rollout

    model, meta = load_checkpoint(checkpoint, device="cpu")
    held = (meta.get("training") or {}).get("held_out")
    if held != source:
        raise ValueError(
            f"{checkpoint} was trained with held_out={held!r}, not {source!r}: a LOSO score "
            "needs the checkpoint trained without the source it is tested on"
        )
    methods = {name: [] for name in LOSO_METHODS}
    truths, windows, shapes, t0 = [], {}, set(), time.perf_counter()
    for event in SOURCES[source]:
        frames = event_frames(root, event)
        starts = test_windows(frames)
        windows[event] = starts
        for start in starts:
            ctx = frames[start : start + CONTEXT, None]  # [Tc, 1, Y, X] mm/h
            truths.append(frames[start + CONTEXT : start + CONTEXT + HORIZON, None])
            ds = domain_rollout(model, ctx, HORIZON, meta=meta, data_pixel_km=PIXEL_KM)
            methods["convlstm"].append(ds["prediction"].values)
            methods["persistence"].append(persistence(ctx, horizon=HORIZON))
            methods["extrapolation"].append(extrapolation(ctx, horizon=HORIZON, n_frames=3))
            shapes.add(ctx.shape[-2:])
            log(f"{source} {event} window at frame {start}: {time.perf_counter() - t0:.0f} s")
    if not truths:
        raise ValueError(f"no rainy test windows in {source}'s events")
    truth = np.stack(truths)  # [S, H, 1, Y, X] (one grid per source)
    stacked = {name: np.stack(v) for name, v in methods.items()}
    table = _scored(stacked, truth, thresholds, source=source)
    events = np.repeat(list(windows), [len(v) for v in windows.values()])
    per_event = [
        _scored({k: v[events == e] for k, v in stacked.items()}, truth[events == e], thresholds,
                source=source, event=e)
        for e in windows if windows[e]
    ]  # fmt: skip
    facts = {
        "windows": {e: len(v) for e, v in windows.items()},
        "window_starts": windows,
        "domain_px": sorted(list(s) for s in shapes),
        "seconds": round(time.perf_counter() - t0, 1),
        "checkpoint": str(checkpoint),
        "trained_on": (meta.get("training") or {}).get("events"),
        "per_event": json.loads(pd.concat(per_event, ignore_index=True).to_json(orient="records")),
        "intervals": paired_intervals(
            stacked["convlstm"], stacked["extrapolation"], truth, source=source
        ),  # fmt: skip
        "postprocess": meta.get(lagrangian.POSTPROCESS_KEY),
        "selection": meta.get("selection"),
    }
    return table, facts


def _scored(methods: dict, truth: np.ndarray, thresholds, **labels):
    """Long table of :func:`model.metrics.compare` (common mask) with 5-minute lead times and
    leading label columns (``source``, ``event``)."""
    from model.evaluate import _long
    from model.metrics import compare

    table = _long(compare(methods, truth, domain="radar", thresholds=thresholds,
                          pixel_km=PIXEL_KM))  # fmt: skip
    table["lead_time"] = [f"{int(k) * TIME_STEP_S // 60} min" for k in table["lead_step"]]
    for i, (name, value) in enumerate(labels.items()):
        table.insert(i, name, value)
    return table


INTERVAL_SCORES = (("CSI", 1.0), ("FSS", 1.0))
"""Scores (and thresholds, mm/h) given bootstrap intervals of ours - extrapolation."""
INTERVAL_LEADS = (6, 12)  # lead steps: 30 and 60 min


def paired_intervals(ours, lk, truth, *, source: str, pixel_km: float = PIXEL_KM) -> list[dict]:
    """90% bootstrap intervals of ours - LK per lead of :data:`INTERVAL_LEADS` and score of
    :data:`INTERVAL_SCORES`, resampling test windows (:mod:`model.bootstrap`), on the common mask
    of truth and both forecasts (persistence is finite wherever the truth's context is).

    Parameters
    ----------
    ours, lk, truth : numpy.ndarray
        ``[S, H, 1, Y, X]`` mm/h (S windows of one grid).

    Returns
    -------
    list of dict
        Rows ``source, lead_time, score, difference, low, high, windows, resamples, level, seed``.
    """
    from model.bootstrap import SCORES, paired_interval, window_pieces
    from model.metrics import common_valid, fss_scale_px

    mask = common_valid(truth, ours, lk)  # [S, H, 1, Y, X]
    rows = []
    for lead in INTERVAL_LEADS:
        for name, threshold in INTERVAL_SCORES:
            pieces = window_pieces(ours, lk, truth, threshold=threshold, lead=lead, valid=mask,
                                   scale=fss_scale_px(pixel_km))[name]  # fmt: skip
            ci = paired_interval(pieces["ours"], pieces["theirs"], SCORES[name])
            rows.append({"source": source, "lead_time": f"{lead * TIME_STEP_S // 60} min",
                         "score": f"{name}@{threshold:g}", **ci})  # fmt: skip
    return rows


# --- choosing the postprocess from the training sources only -------------------------------------

POSTPROCESS_CANDIDATES = ("none", "cdf_match", "cdf_match_after")
"""The postprocess options a fold chooses from (:func:`choose_postprocess`), in one place.

``"cdf_match_after_inflow"`` (:data:`model.lagrangian.POSTPROCESS_OPTIONS`) was tried as a
candidate on 2026-11-30: the inner validation chose it for the MeteoSwiss and FMI folds and the
shipped model, but the LOSO table was then worse on MeteoSwiss (CSI@1 60 min 0.307 vs 0.311, FSS@1
60 min 0.610 vs 0.613, MSE 60 min 4.18 vs 4.07) and the same elsewhere (the BoM fold's validation
did not choose it), so by the rule "ship an improvement only if it is not worse on the LOSO table"
it is not a candidate; the model card states its numbers."""
SELECTION_TARGETS = (("CSI@1", "30 min"), ("CSI@1", "60 min"), ("FSS@1", "60 min"))
"""Scores (and leads) whose margin over extrapolation the selection maximises."""


def candidate_forecasts(model, meta: dict, context: np.ndarray, candidates=POSTPROCESS_CANDIDATES):
    """One whole-domain network forecast, finished by every postprocess candidate.

    The same steps as :func:`model.tiling.domain_rollout` on a Lagrangian checkpoint (motion,
    context moved, tiled forecast in that frame, moved back), with the network run once.

    Parameters
    ----------
    context : numpy.ndarray
        ``[Tc, 1, Y, X]`` mm/h at :data:`PIXEL_KM`.

    Returns
    -------
    dict of str -> numpy.ndarray
        Candidate -> ``[HORIZON, 1, Y, X]`` float32 mm/h.
    """
    from model.tiling import domain_rollout

    moved = lagrangian.LagrangianContext(context, meta)
    plain = {k: v for k, v in meta.items() if k != lagrangian.FRAME_KEY}  # the network alone
    ds = domain_rollout(model, moved.frames, HORIZON, meta=plain, data_pixel_km=PIXEL_KM)
    raw = ds["prediction"].transpose("time", "channel", "y", "x").values  # [H, 1, Y, X]
    return {c: moved.to_observed(raw, postprocess=c).astype(np.float32) for c in candidates}


def validation_table(model, meta: dict, root, events, *, candidates=POSTPROCESS_CANDIDATES,
                     baselines: dict | None = None, log=print) -> pd.DataFrame:  # fmt: skip
    """Scores of every postprocess candidate and of LK extrapolation on the rainy windows
    (:func:`test_windows`) of ``events``, the checkpoint's **training** events, per source.

    ``baselines`` caches the LK forecasts by ``(event, start)`` across checkpoints.

    Returns
    -------
    pandas.DataFrame
        Long table ``source, method, lead_step, lead_time, <radar metrics>``.
    """
    from model.baselines import extrapolation

    baselines = {} if baselines is None else baselines
    tables = []
    for source in dict.fromkeys(source_of(e) for e in events):
        methods = {name: [] for name in (*candidates, "extrapolation")}
        truths = []
        for event in (e for e in events if source_of(e) == source):
            frames = event_frames(root, event)
            for start in test_windows(frames):
                ctx = frames[start : start + CONTEXT, None]  # [Tc, 1, Y, X] mm/h
                truths.append(frames[start + CONTEXT : start + CONTEXT + HORIZON, None])
                for name, out in candidate_forecasts(model, meta, ctx, candidates).items():
                    methods[name].append(out)
                if (event, start) not in baselines:
                    baselines[(event, start)] = extrapolation(ctx, horizon=HORIZON, n_frames=3)
                methods["extrapolation"].append(baselines[(event, start)])
                log(f"validation {source} {event} window at frame {start}")
        if truths:
            stacked = {k: np.stack(v) for k, v in methods.items()}  # [S, H, 1, Y, X]
            tables.append(_scored(stacked, np.stack(truths), (1.0, 5.0), source=source))
    if not tables:
        raise ValueError(f"no rainy validation windows in {events}")
    return pd.concat(tables, ignore_index=True)


def choose_postprocess(table: pd.DataFrame, candidates=POSTPROCESS_CANDIDATES) -> dict:
    """The candidate with the largest mean margin over extrapolation on :data:`SELECTION_TARGETS`
    (mean over the validation sources, each source weighing the same), among those whose FBI@1 at
    60 min is within :data:`model.evaluate.FBI_RANGE` on every validation source (all candidates
    when none is).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`validation_table`.

    Returns
    -------
    dict
        ``chosen``, ``candidates``, ``criterion`` (in words), ``margin`` and ``bias_ok`` per
        candidate, ``scores`` (candidate -> source -> target -> score, extrapolation included).
    """
    from model.evaluate import FBI_RANGE

    low, high = FBI_RANGE
    by = table.set_index(["source", "method", "lead_time"])
    sources = list(dict.fromkeys(table.source))
    keys = [*SELECTION_TARGETS, ("FBI@1", "60 min")]
    scores = {m: {s: {f"{k} {lead}": round(float(by.loc[(s, m, lead), k]), 4) for k, lead in keys}
                  for s in sources} for m in (*candidates, "extrapolation")}  # fmt: skip
    margin, bias_ok = {}, {}
    for c in candidates:
        margin[c] = float(np.mean([
            np.mean([by.loc[(s, c, lead), k] - by.loc[(s, "extrapolation", lead), k]
                     for k, lead in SELECTION_TARGETS])
            for s in sources
        ]))  # fmt: skip
        bias_ok[c] = all(low <= by.loc[(s, c, "60 min"), "FBI@1"] <= high for s in sources)
    pool = [c for c in candidates if bias_ok[c]] or list(candidates)
    chosen = max(pool, key=lambda c: margin[c])
    return {
        "chosen": chosen,
        "candidates": list(candidates),
        "criterion": (
            "largest mean margin over LK extrapolation on CSI@1 30 min, CSI@1 60 min and FSS@1 "
            "60 min (mean over the validation sources), among the candidates with FBI@1 60 min in "
            f"{low}-{high} on every validation source; scored on the rainy non-overlapping "
            "windows of the checkpoint's own training events (never the held-out source)"
        ),
        "validation_sources": sources,
        "margin": {c: round(v, 6) for c, v in margin.items()},
        "bias_ok": bias_ok,
        "scores": scores,
    }


def select_postprocess(model, meta: dict, root, *, baselines: dict | None = None,
                       log=print) -> dict:  # fmt: skip
    """Choose the postprocess of a checkpoint from its training events (:func:`choose_postprocess`)
    and write the choice and its record into ``meta`` (``postprocess``, ``selection``).
    Returns ``meta``."""
    events = (meta.get("training") or {}).get("events") or []
    if not events:
        raise ValueError("the checkpoint's meta names no training events to validate on")
    t0 = time.perf_counter()
    table = validation_table(model, meta, root, events, baselines=baselines, log=log)
    record = choose_postprocess(table)
    record.update(validation_events=list(events), seconds=round(time.perf_counter() - t0, 1))
    meta[lagrangian.POSTPROCESS_KEY] = record["chosen"]
    meta["selection"] = record
    log(f"chosen postprocess {record['chosen']} (margins {record['margin']}, "
        f"FBI ok {record['bias_ok']})")  # fmt: skip
    return meta


# --- training ------------------------------------------------------------------------------------


def build_network(init_from: str | None):
    """A residual ConvLSTM on 64 x 64 px tiles with a zero head (it forecasts the last frame),
    its cells initialised from ``init_from`` when given (same architecture)."""
    from model.checkpoint import load_checkpoint
    from model.convlstm import ConvLSTM, ConvLSTMConfig

    if init_from:  # same architecture (frame size included)
        source, meta = load_checkpoint(init_from, device="cpu")
        config = ConvLSTMConfig.from_dict({**meta["config"], "residual": True})
        net = ConvLSTM(config=config)
        cells = {k: v for k, v in source.state_dict().items() if k.startswith("cells.")}
        net.load_state_dict(cells, strict=False)
    else:
        net = ConvLSTM(hidden_channels=(32, 32), frame_size=(TILE, TILE), patch_size=4,
                       residual=True, kernel_size=3)  # fmt: skip
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    return net


def _loss(net, batch: torch.Tensor, normalizer: Normalizer) -> torch.Tensor:
    """Balanced MSE (Shi et al. 2017 weights) of the Lagrangian forecast, model space.
    ``batch``: ``[B, T, 1, H, W]`` float32, NaN where a target is not scored."""
    ctx, target = batch[:, :CONTEXT], batch[:, CONTEXT:]  # [B, Tc, 1, H, W], [B, H, 1, H, W]
    valid = torch.isfinite(target)
    target = torch.nan_to_num(target, nan=0.0)
    forecast, _ = net(torch.nan_to_num(ctx, nan=0.0), horizon=target.shape[1])
    weight = rain_weights(normalizer.to_physical(target))
    return masked_mse(forecast, target, valid, weight)


def _augment(batch: torch.Tensor, rng) -> torch.Tensor:
    """Random flips and quarter turns (no motion is left in the Lagrangian frame to mirror)."""
    k = int(rng.integers(4))
    batch = torch.rot90(batch, k, dims=(-2, -1))
    return torch.flip(batch, dims=(-1,)) if rng.integers(2) else batch


def train(tiles: np.ndarray, *, steps: int, batch_size: int, lr: float, init_from: str | None,
          val_fraction: float = 0.1, val_every: int = 25, seed: int = 0, log=print):  # fmt: skip
    """Train on ``tiles`` ``[N, T, H, W]`` (model space); keep the weights of the best validation
    loss, the untrained zero head (= extrapolation) included.

    Returns
    -------
    (ConvLSTM, dict)
        The best network and facts (steps, best step, losses, seconds).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    normalizer = Normalizer(**NORMALIZATION)
    order = rng.permutation(len(tiles))
    n_val = max(1, int(len(tiles) * val_fraction))
    val = torch.from_numpy(tiles[order[:n_val]].astype(np.float32))[:, :, None]
    train_idx = order[n_val:]
    net = build_network(init_from)
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def val_loss() -> float:
        net.eval()
        with torch.no_grad():
            total = sum(float(_loss(net, val[i : i + 8], normalizer)) * len(val[i : i + 8])
                        for i in range(0, len(val), 8))  # fmt: skip
        net.train()
        return total / len(val)

    best = (val_loss(), 0, {k: v.clone() for k, v in net.state_dict().items()})
    history = [(0, None, best[0])]
    log(f"step 0 (zero head = extrapolation): val loss {best[0]:.5f}")
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = rng.choice(train_idx, batch_size, replace=False)
        batch = _augment(torch.from_numpy(tiles[idx].astype(np.float32))[:, :, None], rng)
        loss = _loss(net, batch, normalizer)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % val_every == 0 or step == steps:
            v = val_loss()
            history.append((step, float(loss), v))
            log(f"step {step}: train loss {float(loss):.5f}, val loss {v:.5f}, "
                f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
            if v < best[0]:
                best = (v, step, {k: t.clone() for k, t in net.state_dict().items()})
    net.load_state_dict(best[2])
    facts = {
        "steps": steps,
        "best_step": best[1],
        "best_val_loss": best[0],
        "train_tiles": int(len(train_idx)),
        "val_tiles": int(n_val),
        "history": history,
        "train_time_s": round(time.perf_counter() - t0, 1),
    }
    return net.eval(), facts


def checkpoint_meta(*, events: list[str], held_out: str, command: str, facts: dict,
                    init_from: str | None) -> dict:  # fmt: skip
    """Metadata of a Lagrangian checkpoint (``frame``, ``motion``, normalisation, route)."""
    return {
        "name": "radar_lagrangian",
        "dataset": "radar_fmi",  # model.evaluate's default data: its test split is 2017-05-09
        "domain": "radar",
        "description": (
            "ConvLSTM forecasting growth and decay in a Lagrangian frame (Ritvanen et al. 2023): "
            "pysteps LK motion from the last 3 of 6 context frames over the whole domain, context "
            "advected into the frame of the last one, residual head (zero = extrapolation), each "
            "lead advected back and post-processed as chosen on the training events "
            "(`selection`), rain below 0.1 mm/h zeroed. 30 min in, 60 min out at 5 min, 1 km."
        ),
        lagrangian.FRAME_KEY: lagrangian.LAGRANGIAN,
        lagrangian.MOTION_KEY: dict(lagrangian.DEFAULT_MOTION),
        # replaced by select_postprocess (chosen on the training events only, never a test fold)
        lagrangian.POSTPROCESS_KEY: "none",
        "units": "mm/h",
        "channels": 1,
        "channel_names": ["rain_rate"],
        "time_step": "PT5M",
        "resolution_km": PIXEL_KM,
        "dataset_options": {
            "options": {"resolution_km": PIXEL_KM},
            "train": {},
            "val": {},
            "test": {},
        },
        "context": CONTEXT,
        "horizon": HORIZON,
        "normalization": dict(NORMALIZATION),
        "synthetic": 0,
        "source": "pysteps-data example radar events: " + ", ".join(events),
        "licence": PYSTEPS_LICENCE,
        "command": command,
        "training": {
            "events": events,
            "held_out": held_out,
            "init_from": {"path": init_from} if init_from else None,
            "hardware": {
                "cpu": platform.processor() or platform.machine(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "device": "cpu",
            },
            **facts,
        },
    }


def training_events(hold_out: str | None, exclude: list[str]) -> list[str]:
    """Every event of every source but ``hold_out``, without the ``exclude``d events."""
    if hold_out is not None and hold_out not in SOURCES:
        raise ValueError(f"--hold-out {hold_out!r}: use one of {', '.join(SOURCES)}")
    for event in exclude:
        source_of(event)  # raises on an unknown event
    return [e for s, events in SOURCES.items() if s != hold_out for e in events
            if e not in exclude]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from model.cli import Parser

    parser = Parser(
        prog="python -m model.loso",
        description="Train a Lagrangian radar checkpoint on every source but one (LOSO).",
    )
    parser.add_argument("--data-root", required=True, metavar="DIR",
                        help="pysteps-data layout holding radar/")  # fmt: skip
    parser.add_argument("--hold-out", choices=sorted(SOURCES), help="source left out")
    parser.add_argument("--exclude-event", action="append", default=[], metavar="EVENT",
                        help="an event folder left out of training (repeatable)")  # fmt: skip
    parser.add_argument("--out", help="checkpoint folder to write (training)")
    parser.add_argument("--select", nargs="+", metavar="CHECKPOINT",
                        help="no training: choose the postprocess of these existing checkpoints "
                        "from their own training events and write it into their meta.json")  # fmt: skip
    parser.add_argument("--init-from", help="checkpoint whose cells start the network")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--stride", type=int, default=4, help="frames between windows")
    parser.add_argument("--max-tiles", type=int, default=6, help="tiles per window")
    return parser


def select_existing(checkpoints: list[str], root) -> Path:
    """``--select``: :func:`select_postprocess` for each checkpoint (LK forecasts shared), the
    choice written into its ``meta.json`` (weights untouched). Returns the last path."""
    from model.checkpoint import load_checkpoint, save_checkpoint

    baselines: dict = {}
    for path in checkpoints:
        model, meta = load_checkpoint(path, device="cpu")
        for key in ("device", "device_note", "path"):
            meta.pop(key, None)
        meta = select_postprocess(model, meta, root, baselines=baselines,
                                  log=lambda m: print(m, flush=True))  # fmt: skip
        out = save_checkpoint(path, model, metadata=meta)
        print(f"wrote {out}: postprocess {meta['postprocess']}", flush=True)
    return Path(checkpoints[-1])


def main(argv: list[str] | None = None) -> Path:
    """``python -m model.loso ...``; errors end it with one ``error:`` line, status 2."""
    from model.checkpoint import save_checkpoint
    from model.cli import ERRORS, one_line_errors

    @one_line_errors(*ERRORS, ValueError)
    def run() -> Path:
        args = build_parser().parse_args(argv)
        if args.steps < 0:
            raise ValueError(f"--steps {args.steps}: give 0 or more")
        if not Path(args.data_root).expanduser().is_dir():
            raise ValueError(f"--data-root {args.data_root}: no such folder")
        if args.select:
            return select_existing(args.select, args.data_root)
        if not args.out:
            raise ValueError("--out DIR is needed to train (or give --select CHECKPOINT ...)")
        events = training_events(args.hold_out, args.exclude_event)
        t0 = time.perf_counter()
        stride = {e: args.stride * (3 if "prcp-c10" in e else 1) for e in events}
        parts = [event_tiles(args.data_root, e, stride=stride[e], max_tiles=args.max_tiles)
                 for e in events]  # fmt: skip
        counts = {e: int(len(p)) for e, p in zip(events, parts, strict=True)}
        print(f"tiles per event: {counts} ({time.perf_counter() - t0:.0f} s)", flush=True)
        net, facts = train(np.concatenate(parts), steps=args.steps, batch_size=args.batch_size,
                           lr=args.lr, init_from=args.init_from,
                           log=lambda s: print(s, flush=True))  # fmt: skip
        facts.update(tiles_per_event=counts, wall_time_s=round(time.perf_counter() - t0, 1),
                     window_stride_frames=stride, max_tiles_per_window=args.max_tiles,
                     batch_size=args.batch_size, lr=args.lr, loss="balanced")  # fmt: skip
        command = "python -m model.loso " + " ".join(sys.argv[1:] if argv is None else argv)
        meta = checkpoint_meta(events=events, held_out=args.hold_out or "none", command=command,
                               facts=facts, init_from=args.init_from)  # fmt: skip
        meta = select_postprocess(net, meta, args.data_root, log=lambda m: print(m, flush=True))
        out = save_checkpoint(args.out, net, metadata=meta)
        print(json.dumps({k: v for k, v in facts.items() if k != "history"}))
        print(f"wrote {out}")
        return out

    return run()


if __name__ == "__main__":
    main()

"""Score a checkpoint and the baselines per lead time: ``python -m model.evaluate CHECKPOINT``.

For the checkpoint's dataset (or ``--dataset``) and split (``test`` by default) it forecasts every
window's ``horizon`` frames from its ``context`` frames with the checkpoint and with the baselines
of the domain (:mod:`model.baselines`), scores them all on the same pixels with
:func:`model.metrics.compare`, and writes

- ``evaluation.csv``: one row per method and lead time, pooled over all windows (columns
  ``method``, ``lead_step``, ``lead_time``, then the metrics);
- ``evaluation_events.csv``: the same per event (a leading ``event`` column), for data whose
  windows come from several events (real radar);
- ``evaluation.png``: the main metrics against lead time, one line per method;

into ``--out`` (default: ``runs/NAME/eval``). With ``--update-checkpoint`` the table also goes into
the checkpoint's ``meta.json`` (``metrics.test``) and its model card ``README.md``.

Baselines: persistence (every domain); pysteps optical-flow extrapolation (radar); the
same-hour-of-week historical mean fitted on the training split (traffic, when the data carry
timestamps).

Honest scoring (radar)
----------------------
- The baselines see the whole radar domain: when the windows are crops of a larger composite
  (:func:`datasets.radar.whole_domain` finds it), the extrapolation runs on the composite's last
  context frames and is then cut to the scored window, so rain from outside the crop comes in as
  it would in an operational nowcast (never 0 mm/h from the crop's edge).
- Every method is scored on the common mask: a pixel counts only where the truth and every
  compared forecast are finite.
- Events are rain rates ``>= t`` mm/h (:data:`model.metrics.EVENT`) in CSI/POD/FAR, frequency bias
  and FSS; FSS over 10 km neighbourhoods (:data:`model.metrics.FSS_SCALE_KM`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from datasets import DataNotFound, DatasetError, vocabulary
from model import baselines
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.cli import ERRORS, Parser, fail, one_line_errors
from model.lagrangian import is_lagrangian
from model.metrics import EVENT, FSS_SCALE_KM, compare
from model.normalize import Normalizer
from model.regrid import checkpoint_pixel_km
from model.rollout import PRECISIONS, forecast_windows, resolve_precision
from model.runtime import tune_cpu_allocator
from model.windows import data_config, load_windows

REPO_ROOT = Path(__file__).resolve().parents[1]
MAIN_METRICS = {domain: list(facts.scores) for domain, facts in vocabulary.DOMAIN_FACTS.items()}
LOWER_IS_BETTER = {"MSE", "MAE", "RMSE", "FAR"}
LOCATION_OPTIONS = ("root", "download", "cache_dir", "base_url")
"""Dataset options that say where the files are (passed on to :func:`domain_frames`)."""
EXTRAPOLATION_FRAMES = 3
"""Observed frames the optical-flow baseline estimates its motion from."""


def forecast(model, meta: dict, context: xr.DataArray, *, horizon: int, batch_size: int = 32,
             precision: str = "auto", domain: xr.DataArray | None = None) -> xr.DataArray:  # fmt: skip
    """Checkpoint forecasts in physical units, laid out like the baselines' output.

    Parameters
    ----------
    model : ConvLSTM
        From :func:`model.checkpoint.load_checkpoint`.
    meta : dict
        Its metadata (for the normalisation).
    context : xarray.DataArray
        ``(sample, time, channel, y, x)`` observed frames, physical units.
    horizon : int
        Frames to forecast.
    batch_size : int
        Windows per forward pass.
    precision : {"auto", "fp32", "bf16"}
        :func:`model.rollout.resolve_precision`; the same policy as the dashboard's rollouts.
    domain : xarray.DataArray, optional
        The context over the whole radar domain (:func:`domain_frames`, with ``crop_row`` and
        ``crop_col``). A Lagrangian checkpoint (:mod:`model.lagrangian`) forecasts there, through
        :func:`model.tiling.domain_rollout`, and is cut to each window afterwards, like the
        extrapolation baseline; without it each window is its own domain.

    Returns
    -------
    xarray.DataArray
        ``(sample, horizon, channel, y, x)`` in physical units, with the coordinates a baseline
        forecast of ``context`` would have. Where the context's last frame is NaN (invalid
        pixels), the forecast is NaN too.
    """
    template = baselines.persistence(context, horizon=horizon)
    if is_lagrangian(meta):
        physical = _lagrangian_forecast(model, meta, context, horizon, domain, precision)
    else:
        normalizer = Normalizer.from_metadata(meta.get("normalization", {"kind": "unit"}))
        physical = forecast_windows(model, np.asarray(context.values, dtype=np.float32), horizon,
                                    batch_size=batch_size, precision=precision,
                                    normalizer=normalizer)  # fmt: skip
    physical[np.isnan(template.values)] = np.nan  # keep the data's invalid pixels invalid
    return template.copy(data=physical).assign_attrs(baseline="", model=meta.get("name", ""))


def _lagrangian_forecast(model, meta, context, horizon, domain, precision) -> np.ndarray:
    """``[S, horizon, C, y, x]`` mm/h: each window forecast by :func:`model.tiling.domain_rollout`
    (which honours ``"frame": "lagrangian"``) over ``domain`` when given, then cut to the window."""
    from model.tiling import domain_rollout

    height, width = context.sizes["y"], context.sizes["x"]
    out = []
    for s in range(context.sizes["sample"]):
        if domain is None:
            frames, row, col = context.isel(sample=s), 0, 0
        else:
            frames = domain.isel(sample=s)
            row, col = int(frames["crop_row"]), int(frames["crop_col"])
        ds = domain_rollout(model, frames.transpose("time", "channel", "y", "x").values, horizon,
                            meta=meta, precision=precision, data_pixel_km=checkpoint_pixel_km(meta))  # fmt: skip
        out.append(ds["prediction"].values[..., row : row + height, col : col + width])
    return np.stack(out).astype(np.float32)


def evaluate(
    checkpoint: str | Path,
    *,
    split: str = "test",
    dataset: str | None = None,
    options: dict | None = None,
    n_samples: int | None = None,
    device: str = "auto",
    batch_size: int = 32,
    thresholds=(1.0, 5.0),
    with_baselines: bool = True,
    loader=None,
    precision: str = "auto",
    file: str | Path | None = None,
    file_split: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Per-lead-time scores of a checkpoint and the baselines.

    The checkpoint forecasts under ``precision`` (:func:`model.rollout.resolve_precision`:
    ``"auto"`` is bfloat16 autocast where the device computes it natively, as in the dashboard).

    With ``file`` (``--data PATH``) the windows are cut from that file as the checkpoint's own
    file was (:func:`model.windows.data_config`; ``file_split`` replaces its split), after the
    file is checked against the checkpoint (:func:`check_file_fits`).

    Returns
    -------
    (pandas.DataFrame, dict)
        Long table pooled over every window, with columns ``method``, ``lead_step``,
        ``lead_time`` and the metrics of the domain, every method scored on the common mask
        (:func:`model.metrics.compare`); and facts about the run: dataset, split, samples,
        ``events`` (windows per event), seconds per method, device, ``scoring`` (mask, event
        convention, FSS scale, the domain the baselines forecast on) and ``per_event`` (the
        same table per event, as records with an ``event`` key; empty without events).
    """
    model, meta = load_checkpoint(checkpoint, device=device)
    options = dict(options or {})
    if n_samples is not None:
        options["n_samples"] = n_samples
    data_cfg = data_config(meta, dataset=dataset, file=file, split=file_split)
    data = load_windows(data_cfg, split, overrides=options, loader=loader)
    if file is not None:
        check_file_fits(checkpoint, meta, data, file)
    domain = str(data.attrs.get("domain") or meta.get("domain") or "video")
    context, horizon = int(meta["context"]), int(meta["horizon"])
    ctx = data.isel(time=slice(0, context))
    truth = data.isel(time=slice(context, context + horizon))
    methods: dict[str, xr.DataArray] = {}
    seconds: dict[str, float] = {}
    baseline_domain = "the scored grid (no baseline)"

    def run(name, fn):
        t0 = time.perf_counter()
        methods[name] = fn()
        seconds[name] = round(time.perf_counter() - t0, 2)

    whole_context = None
    if is_lagrangian(meta):  # forecast over the whole domain, as the extrapolation is
        whole_context = domain_frames(ctx, _location(data_cfg, split, options))
    run("convlstm", lambda: forecast(model, meta, ctx, horizon=horizon, batch_size=batch_size,
                                     precision=precision, domain=whole_context))  # fmt: skip
    if with_baselines:
        run("persistence", lambda: baselines.persistence(ctx, horizon=horizon))
        wanted = vocabulary.facts(domain).baselines
        if "all_black" in wanted:
            run("all_black", lambda: baselines.all_black(ctx, horizon=horizon))
        if "extrapolation" in wanted:
            where = _location(data_cfg, split, options)
            whole = domain_frames(ctx.isel(time=slice(-EXTRAPOLATION_FRAMES, None)), where)
            baseline_domain = describe_domain(ctx, whole)
            run("extrapolation", lambda: baselines.extrapolation(
                ctx, horizon=horizon, n_frames=EXTRAPOLATION_FRAMES, domain=whole))  # fmt: skip
        if "historical_mean" in wanted and baselines.frame_times(ctx) is not None:
            where = {k: v for k, v in options.items() if k != "n_samples"}  # e.g. root=
            train = load_windows(data_cfg, "train", overrides=where, loader=loader)
            clim = baselines.HourOfWeekMean.fit(train)
            run("historical_mean", lambda: clim(ctx, horizon=horizon))

    result, by_event = score_table(methods, truth, domain=domain, thresholds=thresholds)
    facts = {
        "checkpoint": str(checkpoint),
        "dataset": data_cfg.source_name,
        "split": split,
        "samples": int(data.sizes["sample"]),
        "events": _event_counts(data),
        "context": context,
        "horizon": horizon,
        "domain": domain,
        "time_step": data.attrs.get("time_step"),
        "units": data.attrs.get("units"),
        "device": meta.get("device_note", ""),
        "precision": resolve_precision(precision, next(model.parameters()).device),
        "seconds": seconds,
        "scoring": scoring_facts(domain, thresholds, baseline_domain, result),
        "per_event": json.loads(by_event.to_json(orient="records")) if len(by_event) else [],
    }
    return result, facts


def domain_frames(context: xr.DataArray, where: dict) -> xr.DataArray | None:
    """The context frames over the whole radar domain they were cropped from, or None.

    :func:`datasets.radar.whole_domain` with the data location ``where`` (``root=`` ...); None
    when the windows are not a crop of a larger domain (their grid is all the data there is).
    """
    from datasets.radar import whole_domain

    return whole_domain(context, **where)


def describe_domain(context: xr.DataArray, whole: xr.DataArray | None) -> str:
    """Where the extrapolation ran, in words, for the facts and the model card."""
    height, width = int(context.sizes["y"]), int(context.sizes["x"])
    km = context.attrs.get("resolution_km")
    at = f" at {float(km):g} km" if km else ""
    if whole is None:
        return f"the data's own {height} x {width} grid{at} (no larger domain in the data)"
    big_h, big_w = int(whole.sizes["y"]), int(whole.sizes["x"])
    return (
        f"the whole radar domain ({big_h} x {big_w} px{at}), then cut to the scored "
        f"{height} x {width} window"
    )


def score_table(methods: dict, truth: xr.DataArray, *, domain: str, thresholds=(1.0, 5.0)):
    """Pooled and per-event long tables of ``methods`` against ``truth``, on the common mask.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Pooled over every window: ``method, lead_step, lead_time, <metrics>``; per event (when
        ``truth`` has an ``event (sample)`` coordinate; else empty): ``event`` first. Each table
        comes from :func:`model.metrics.compare`, so all methods count the same pixels.
    """
    pooled = _long(compare(methods, truth, domain=domain, thresholds=thresholds))
    parts = []
    if "event" in truth.coords and truth["event"].dims == ("sample",):
        events = list(dict.fromkeys(str(e) for e in truth["event"].values))
        for event in events:
            keep = np.flatnonzero(truth["event"].values.astype(str) == event)
            subset = {name: pred.isel(sample=keep) for name, pred in methods.items()}
            table = _long(compare(subset, truth.isel(sample=keep), domain=domain,
                                  thresholds=thresholds))  # fmt: skip
            table.insert(0, "event", event)
            parts.append(table)
    return pooled, (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame())


def _long(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for name, table in tables.items():
        lead = table.attrs.get("lead_time")
        table = table.reset_index()
        table.insert(0, "method", name)
        table.insert(2, "lead_time", [format_lead(v) for v in lead] if lead else table.lead_step)
        rows.append(table)
    out = pd.concat(rows, ignore_index=True)
    out.attrs = {"valid_pixels": next(iter(tables.values())).attrs.get("valid_pixels")}
    return out


def scoring_facts(domain: str, thresholds, baseline_domain: str, table: pd.DataFrame) -> dict:
    """How the scores were made, for the facts, ``meta.json`` and the model card."""
    facts = {
        "mask": "the common mask: a pixel counts only where the truth and every compared "
        "forecast are finite",
        "valid_pixels_per_lead": table.attrs.get("valid_pixels"),
    }
    if domain == "radar":
        facts.update(
            event=f"rain rate {EVENT} t mm/h (pysteps det_cat_fct counts > t)",
            thresholds_mm_h=[float(t) for t in thresholds],
            fss=f"pysteps.verification.spatialscores, {FSS_SCALE_KM:g} km neighbourhood",
            frequency_bias="FBI = (hits + false alarms) / (hits + misses) = POD / (1 - FAR)",
            baseline_domain=baseline_domain,
        )
    return facts


def _location(data_cfg, split: str, options: dict) -> dict:
    """The options of ``split`` that say where the data files are (``root=`` ...)."""
    merged = {**data_cfg.options, **getattr(data_cfg, split, {}), **options}
    return {k: merged[k] for k in LOCATION_OPTIONS if k in merged}


def _event_counts(data: xr.DataArray) -> dict[str, int]:
    """Windows per event, when the windows carry an ``event (sample)`` coordinate."""
    if "event" not in data.coords or data["event"].dims != ("sample",):
        return {}
    names, counts = np.unique(data["event"].values.astype(str), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def check_file_fits(checkpoint, meta: dict, data: xr.DataArray, file) -> None:
    """Refuse a file whose windows the checkpoint cannot read; say when it is another file.

    Raises
    ------
    DatasetError
        Channels, grid, domain or time step differ from the checkpoint's
        (:func:`model.checkpoint.compatibility_problem`).
    """
    from model.checkpoint import compatibility_problem
    from model.provenance import file_facts

    name = Path(file).name
    problem = compatibility_problem(meta, data)
    if problem:
        raise DatasetError(
            f"{name} does not fit checkpoint {Path(checkpoint).name}: {problem}; evaluate it "
            "with a checkpoint trained on data like it"
        )
    trained = meta.get("data_file") or {}
    if trained.get("sha256") and file_facts(file)["sha256"] != trained["sha256"]:
        digest = str(trained["sha256"])[:12]
        print(
            f"note: {name} is not the file {Path(checkpoint).name} was trained on "
            f"({trained.get('name')}, sha256 {digest}...); its {data.attrs.get('split')} split "
            "is cut the same way",
            file=sys.stderr,
        )


def format_lead(value) -> str:
    """A lead time for tables: ``"30 min"``, ``"2 h"``; step counts as they are."""
    if isinstance(value, pd.Timedelta):
        minutes = value.total_seconds() / 60
        return f"{minutes / 60:g} h" if minutes % 60 == 0 else f"{minutes:g} min"
    return str(value)


SKILL_SCORES = {"radar": ("CSI@1", "FSS@1")}
"""Scores checked besides the domain's main one (higher is better for these)."""


def skill_checks(table: pd.DataFrame, domain: str) -> dict[str, bool]:
    """Does the ConvLSTM beat each baseline at every lead time, on the main error score (and, for
    radar, on CSI and FSS at 1 mm/h)?"""
    keys = [vocabulary.facts(domain).main_score, *SKILL_SCORES.get(domain, ())]
    keys = [k for k in keys if k in table.columns]
    model = table[table.method == "convlstm"].set_index("lead_step")
    checks = {}
    for key in keys:
        lower = key.split("@")[0] in LOWER_IS_BETTER
        for name in table.method.unique():
            if name == "convlstm":
                continue
            other = table[table.method == name].set_index("lead_step")[key]
            better = model[key] < other if lower else model[key] > other
            checks[f"beats {name} on {key} at every lead"] = bool(better.all())
    return checks


def plot(table: pd.DataFrame, domain: str, path: Path, *, title: str = "") -> Path:
    """PNG of the main metrics against lead time, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in MAIN_METRICS.get(domain, ["MSE"]) if m in table.columns]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for name, part in table.groupby("method", sort=False):
            ax.plot(part["lead_step"], part[metric], marker="o", ms=3, label=name)
        better = "lower" if metric.split("@")[0] in LOWER_IS_BETTER else "higher"
        ax.set_title(f"{metric} ({better} is better)", fontsize=10)
        first = table[table.method == table.method.iloc[0]]
        every = max(1, len(first) // 6)
        ax.set_xticks(first["lead_step"].iloc[every - 1 :: every])
        ax.set_xticklabels(first["lead_time"].astype(str).iloc[every - 1 :: every], fontsize=8)
        ax.set_xlabel("lead time" if domain != "video" else "lead time (frames)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_card(meta: dict, table: pd.DataFrame, facts: dict) -> str:
    """Markdown model card: data and split, command, wall time and hardware, parameters, scores."""
    training = meta.get("training", {})
    hw = training.get("hardware", {})
    domain = facts["domain"]
    metrics = [m for m in table.columns if m not in ("method", "lead_step", "lead_time")]
    lines = [
        f"# {meta.get('name', 'ConvLSTM')}",
        "",
        meta.get("description", "")
        or f"ConvLSTM (Shi et al. 2015) trained on `{meta['dataset']}`.",
        "",
        "## Data and split",
        f"- dataset: `{meta['dataset']}` ({domain}, units {meta.get('units')}, time step "
        f"{meta.get('time_step')}); synthetic: {bool(meta.get('synthetic'))}",
        f"- source: {meta.get('source')}; licence: {meta.get('licence')}",
        *_data_file_lines(meta),
        f"- options per split: `{json.dumps(meta.get('dataset_options', {}))}`",
        f"- {meta['context']} frames in, {meta['horizon']} out; training samples: "
        f"{training.get('train_samples')}; test samples scored: {facts['samples']}",
        "",
        "## Training",
        f"- command: `{meta.get('command', '')}` (seed {training.get('seed')})",
        f"- steps: {training.get('steps')}, samples seen: {training.get('samples_seen')}, "
        f"processes: {training.get('world_size')}",
        f"- wall time: {training.get('wall_time_s')} s in all, {training.get('train_time_s')} s "
        f"of it training; device: {str(hw.get('device', '')).removeprefix('using ')} "
        f"(CPU: {hw.get('cpu')}, {hw.get('torch_threads')} threads; GPU: {hw.get('gpu', 'none')}; "
        f"torch {hw.get('torch')})",
        f"- git revision: {meta.get('git_revision')}",
        *_lineage_lines(training.get("init_from")),
        "",
        "## Model",
        f"- parameters: {meta.get('parameters'):,}"
        if meta.get("parameters")
        else "- parameters: ?",
        f"- architecture: `{json.dumps(meta.get('config', {}))}`",
        f"- normalisation: `{json.dumps(meta.get('normalization', {}))}`",
        "",
        f"## Evaluation on the {facts['split']} split (per lead time)",
        "",
    ]
    if facts.get("precision"):
        lines += [
            f"ConvLSTM forecasts in {facts['precision']} (model.rollout.resolve_precision).",
            "",
        ]
    lines += _scoring_lines(facts.get("scoring") or {})
    lines += [f"Pooled over all {facts['samples']} windows:", ""]
    lines += _markdown_table(table, metrics)
    lines += _per_event_lines(facts, metrics)
    lines += ["", "## Skill checks", ""]
    lines += [f"- {k}: {'yes' if v else 'NO'}" for k, v in skill_checks(table, domain).items()]
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    lines += ["", SCORES_FOOTER.get(domain, SCORES_FOOTER["video"]), ""]
    return "\n".join(lines)


SCORES_FOOTER = {
    "video": "Scores: model.metrics.compare/per_lead (MSE/MAE summed over the pixels of a frame "
    "as in OpenSTL, SSIM and PSNR averaged over frames; every method on the same pixels).",
    "radar": "Scores: model.metrics.compare/per_lead on the common mask (pixels finite in the "
    "truth and in every forecast); events are rain rates >= t mm/h in CSI/POD/FAR/FBI/FSS; FSS "
    "from pysteps.verification.spatialscores over 10 km neighbourhoods; FBI = (hits + false "
    "alarms) / (hits + misses). Baselines forecast on the whole radar domain of the source "
    "frames and are cut to the scored window afterwards.",
    "traffic": "Scores: model.metrics.compare/per_lead (RMSE and MAE in counts per interval over "
    "both flow channels; every method on the same pixels).",
}


def _scoring_lines(scoring: dict) -> list[str]:
    """Model-card bullets saying how the scores were made (mask, events, baseline domain)."""
    labels = {
        "mask": "pixels scored",
        "valid_pixels_per_lead": "pixels per lead time",
        "event": "event",
        "thresholds_mm_h": "thresholds (mm/h)",
        "fss": "FSS",
        "frequency_bias": "frequency bias",
        "baseline_domain": "extrapolation and persistence forecast on",
    }
    lines = [f"- {labels[k]}: {_plain(scoring[k])}" for k in labels if k in scoring]
    return ["How these scores were made:", "", *lines, ""] if lines else []


def _plain(value) -> str:
    """A fact for the card: lists as ``1, 5`` (one number when all entries are equal)."""
    if isinstance(value, list | tuple):
        if value and all(v == value[0] for v in value):
            value = [value[0]]
        return ", ".join(str(v) if isinstance(v, int) else f"{v:g}" for v in value)
    return str(value)


def _per_event_lines(facts: dict, metrics: list[str]) -> list[str]:
    """Model-card tables per event (one line when all windows come from one event)."""
    events = facts.get("events") or {}
    if not events:
        return []
    if len(events) == 1:
        ((name, count),) = events.items()
        return ["", f"All {count} windows come from one event ({name}): the per-event table is "
                "the pooled one."]  # fmt: skip
    per_event = pd.DataFrame(facts.get("per_event") or [])
    lines = []
    for name, part in per_event.groupby("event", sort=False):
        lines += ["", f"### Event {name} ({events.get(name, '?')} windows)", ""]
        lines += _markdown_table(part, metrics)
    return lines


def _data_file_lines(meta: dict) -> list[str]:
    """Model-card line for a checkpoint trained on a file: its name, hash and split."""
    stored = meta.get("data_file")
    if not isinstance(stored, dict):
        return []
    data = ((meta.get("training") or {}).get("config") or {}).get("data") or {}
    split = data.get("split") or "0.8,0.1,0.1 (default)"
    return [
        f"- file: `{stored.get('name')}` (sha256 {stored.get('sha256')}), split `{split}`; "
        f"evaluate with `python -m model.evaluate CHECKPOINT --data {stored.get('name')}`"
    ]


def _lineage_lines(init: dict | None, depth: int = 0) -> list[str]:
    """Model-card lines for the checkpoints training started from (fine-tuning chains)."""
    if not init:
        return []
    hw = init.get("hardware") or {}
    device = str(hw.get("device", "")).removeprefix("using ")
    lines = [
        f"{'  ' * depth}- initialised from `{init.get('path')}`, trained on `{init.get('dataset')}`"
        f" with `{init.get('command')}`: {init.get('steps')} steps, {init.get('samples_seen')} "
        f"samples, {init.get('train_time_s')} s of training on {device}"
    ]
    resized = init.get("resized")
    if isinstance(resized, dict) and resized.get("frame_size"):
        (h0, w0), (h1, w1) = resized["frame_size"]
        (gh0, gw0), (gh1, gw1) = resized.get("grid") or ((h0, w0), (h1, w1))
        lines.append(
            f"{'  ' * (depth + 1)}- grid changed from {h0}x{w0} to {h1}x{w1} pixels: per-pixel "
            f"weights ({', '.join(resized.get('parameters', []))}) resized from the {gh0}x{gw0} "
            f"to the {gh1}x{gw1} latent grid by {resized.get('method')}; convolution kernels "
            "copied as they are"
        )
    return lines + _lineage_lines(init.get("init_from"), depth + 1)


def _markdown_table(table: pd.DataFrame, metrics: list[str]) -> list[str]:
    head = ["method", "lead", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        cells = [str(row["method"]), str(row["lead_time"])]
        cells += [f"{row[m]:.4g}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def update_checkpoint(checkpoint: str | Path, table: pd.DataFrame, facts: dict) -> None:
    """Put the scores into the checkpoint's ``meta.json`` (``metrics.test``) and ``README.md``."""
    model, meta = load_checkpoint(checkpoint, device="cpu")
    for key in ("device", "device_note", "path"):
        meta.pop(key, None)
    records = json.loads(table.to_json(orient="records"))
    meta.setdefault("metrics", {})[facts["split"]] = {
        "dataset": facts["dataset"],
        "samples": facts["samples"],
        "events": facts.get("events", {}),
        "scoring": facts.get("scoring", {}),
        "per_lead": records,
        # one event: its table is the pooled one, not stored twice
        "per_event": facts.get("per_event", []) if len(facts.get("events") or {}) > 1 else [],
        "skill": skill_checks(table, facts["domain"]),
    }
    save_checkpoint(checkpoint, model, metadata=meta)
    _, meta = load_checkpoint(checkpoint, device="cpu")
    (Path(checkpoint) / "README.md").write_text(model_card(meta, table, facts))


# --- leave-one-source-out (model.loso) ----------------------------------------------------------

LOSO_HEADLINE = ("CSI@1", "CSI@5", "POD@1", "FAR@1", "FBI@1", "FSS@1", "MSE")
LOSO_LEADS = ("30 min", "60 min")
FBI_RANGE = (0.8, 1.25)
LOSO_METHODS_ORDER = ("convlstm", "extrapolation", "persistence")


def loso_evaluate(folds: str | Path, root: str | Path, *, thresholds=(1.0, 5.0), log=print):
    """Score every fold checkpoint ``folds/SOURCE`` on the whole domains of the source it was
    trained without (:func:`model.loso.score_source`).

    Returns
    -------
    (pandas.DataFrame, dict)
        Long table ``source, method, lead_step, lead_time, <metrics>``; facts per source.
    """
    from model.loso import SOURCES, score_source

    tables, facts = [], {}
    for source in SOURCES:
        path = Path(folds) / source
        if not (path / "meta.json").is_file():
            raise ValueError(f"{path}: no fold checkpoint (train it with python -m model.loso "
                             f"--hold-out {source} --out {path})")  # fmt: skip
        table, facts[source] = score_source(path, root, source, thresholds=thresholds, log=log)
        tables.append(table)
    return pd.concat(tables, ignore_index=True), facts


def loso_headline(table: pd.DataFrame) -> pd.DataFrame:
    """The 30 and 60 min rows of the LOSO table: per source and lead, ours vs the baselines."""
    rows = table[table.lead_time.isin(LOSO_LEADS)]
    keep = ["source", "lead_time", "method", *[m for m in LOSO_HEADLINE if m in table.columns]]
    return rows[keep].sort_values(["source", "lead_time"], kind="stable").reset_index(drop=True)


def loso_intervals(facts: dict) -> pd.DataFrame:
    """The bootstrap intervals of ours - extrapolation of every fold (``facts[source]
    ["intervals"]``, :func:`model.loso.paired_intervals`): ``source, lead_time, score,
    difference, low, high, windows``."""
    rows = [row for fact in facts.values() for row in fact.get("intervals") or []]
    cols = ["source", "lead_time", "score", "difference", "low", "high", "windows"]
    return pd.DataFrame(rows, columns=[*cols, "resamples", "level", "seed"])[cols]


def interval_text(row) -> str:
    """``+0.021 [-0.004, +0.047]``: a difference and its interval."""
    return f"{row['difference']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def loso_checks(table: pd.DataFrame) -> dict[str, bool]:
    """The issue's targets per source: beat extrapolation on CSI@1 at 30 and 60 min and on FSS@1
    at 60 min; frequency bias at 60 min within :data:`FBI_RANGE`."""
    checks = {}
    for source, part in table.groupby("source", sort=False):
        by = part.set_index(["method", "lead_time"])
        for key, lead in (("CSI@1", "30 min"), ("CSI@1", "60 min"), ("FSS@1", "60 min")):
            ours, lk = by.loc[("convlstm", lead), key], by.loc[("extrapolation", lead), key]
            checks[f"{source}: beats extrapolation on {key} at {lead} ({ours:.3f} vs {lk:.3f})"] = (
                bool(ours > lk)
            )
        fbi = by.loc[("convlstm", "60 min"), "FBI@1"]
        low, high = FBI_RANGE
        checks[f"{source}: frequency bias @1 mm/h at 60 min in {low}-{high} ({fbi:.2f})"] = bool(
            low <= fbi <= high
        )
    return checks


def loso_losses(table: pd.DataFrame) -> list[str]:
    """Every headline score at 30 and 60 min where the ConvLSTM is worse than extrapolation
    (FBI: farther from 1), in words."""
    out = []
    for source, part in table.groupby("source", sort=False):
        by = part.set_index(["method", "lead_time"])
        for lead in LOSO_LEADS:
            for key in (k for k in LOSO_HEADLINE if k in part.columns):
                ours, lk = by.loc[("convlstm", lead), key], by.loc[("extrapolation", lead), key]
                if key.startswith("FBI"):
                    worse = abs(ours - 1) > abs(lk - 1)
                elif key.split("@")[0] in LOWER_IS_BETTER:
                    worse = ours > lk
                else:
                    worse = ours < lk
                if worse:
                    out.append(f"{source}, {lead}: {key} {ours:.3f} vs extrapolation {lk:.3f}")
    return out


POSTPROCESS_CARD = {
    "cdf_match": (
        " Before that, each lead's Lagrangian-frame forecast gets the rain-rate distribution "
        "of the last context frame (`postprocess: cdf_match`, empirical CDF matching by "
        "rank, `model.lagrangian.match_distribution`): the network places growth and decay, "
        "the observation fixes how much rain; on a zero head it changes nothing (tested)."
    ),
    "cdf_match_after": (
        " Then each advected lead gets the rain-rate distribution of the last context frame "
        "over its valid pixels (`postprocess: cdf_match_after`, empirical CDF matching by rank "
        "after the advection, `model.lagrangian.match_after_advection`; dry pixels nearest the "
        "forecast rain get the restored rain first): the network places growth and decay, the "
        "observation fixes how much rain, and rain advected out through the domain's edge is "
        "restored. With it a zero head is no longer exactly extrapolation (same motion, the last "
        "frame's rain fraction at every lead; tested)."
    ),
    "cdf_match_after_inflow": (
        " Then the inflow band of each advected lead (pixels whose trajectory starts outside the "
        "valid domain, where the advection brings 0 mm/h) gets the last observation there, and "
        "each lead gets the rain-rate distribution of the last context frame over its valid "
        "pixels (`postprocess: cdf_match_after_inflow`, `model.lagrangian.fill_inflow` then "
        "`match_after_advection`): rain that left through the edge is restored at the inflow "
        "edge first, then next to the forecast rain. A zero head is no longer exactly "
        "extrapolation."
    ),
}
"""Route sentence of the model card per ``postprocess`` (:data:`model.lagrangian.POSTPROCESS_KEY`)."""


def loso_card(meta: dict, table: pd.DataFrame, facts: dict, folds: dict) -> str:
    """Model card of a Lagrangian checkpoint: route, commands, machine, wall time, the LOSO
    table, frequency bias at 60 min and where it loses."""
    training = meta.get("training", {})
    hw = training.get("hardware", {})
    metrics = [m for m in table.columns if m not in ("source", "method", "lead_step", "lead_time")]
    checks = loso_checks(table)
    lines = [
        f"# {meta.get('name', 'radar_lagrangian')}",
        "",
        meta.get("description", ""),
        "",
        "## Route",
        "- Lagrangian frame (Ritvanen et al. 2023), `model.lagrangian`: pysteps Lucas-Kanade "
        f"motion (`{json.dumps(meta.get('motion'))}`) over the whole domain; the context frames "
        "advected into the frame of the last one; the ConvLSTM reads them and forecasts in that "
        "frame with a residual head (`config.residual`: next frame = previous + change in dB "
        "space; a zero head is exactly LK extrapolation, tested); each lead advected forward by "
        "the motion (pysteps semi-Lagrangian, as the baseline), rain below 0.1 mm/h zeroed."
        + POSTPROCESS_CARD.get(meta.get("postprocess"), ""),
        "- The gates are those of a real ConvLSTM **in the Lagrangian frame** (the frame of the "
        "last context frame): a gate map shows where the network keeps or changes rain that "
        "moves with the flow, not where the rain is at the forecast time.",
        "- Whole domains of any size: `model.tiling.domain_rollout` tiles the network "
        f"({meta.get('frame_size')} px at {meta.get('resolution_km')} km) and reads "
        '`"frame": "lagrangian"` from this metadata; model.evaluate and the dashboard get '
        "the route through it.",
        "- Time steps: 5 min. BoM events (10 and 6 min) are resampled in time to 5 min by "
        "motion-compensated interpolation (`model.loso.to_time_step`), never mixed at their own "
        "steps; all sources read at 1 km (block means).",
        "",
        "## Training",
        f"- events: {', '.join(training.get('events', []))} (held out: "
        f"{training.get('held_out')}; FMI 2017-05-09 is left out so the dashboard's opening "
        "event is unseen)",
        f"- command: `{meta.get('command')}`",
        f"- {training.get('steps')} steps of batch {training.get('batch_size')}, lr "
        f"{training.get('lr')}, balanced MSE (Shi et al. 2017 weights) in the Lagrangian frame, "
        f"best validation step {training.get('best_step')} (step 0 = the zero head = "
        "extrapolation is a candidate); tiles per event: "
        f"`{json.dumps(training.get('tiles_per_event'))}`",
        f"- wall time {training.get('wall_time_s')} s ({training.get('train_time_s')} s "
        f"training) on CPU ({hw.get('cpu')}, {hw.get('torch_threads')} threads, torch "
        f"{hw.get('torch')}); a 2-core machine shared with other jobs",
        "",
        "## Leave-one-source-out test (whole domains)",
        "",
        "Each row comes from a model trained without the source it is tested on "
        "(`python -m model.evaluate checkpoints/radar_lagrangian --loso runs/loso --data-root "
        "DIR`). Scored on the whole radar domain of every rainy, non-overlapping 30 + 60 min "
        "window of the held-out source's events, on the common mask of truth and all three "
        "forecasts; events are rain rates >= t mm/h; FSS over 10 km; FBI = POD / (1 - FAR). "
        "Extrapolation: pysteps LK on the last 3 context frames over the same whole domain.",
        "",
    ]
    for source, fact in facts.items():
        fold = folds.get(source, {})
        lines.append(
            f"- {source}: windows per event `{json.dumps(fact.get('windows'))}`, domain "
            f"{fact.get('domain_px')} px; fold trained on {', '.join(fold.get('events', []))} "
            f"with `{fold.get('command')}` ({fold.get('wall_time_s')} s)"
        )
    lines += ["", "### 30 and 60 min", ""]
    head = loso_headline(table)
    cols = [c for c in head.columns if c not in ("source", "lead_time", "method")]
    lines += ["| source | lead | method | " + " | ".join(cols) + " |",
              "|" + "---|" * (3 + len(cols))]  # fmt: skip
    for _, row in head.iterrows():
        cells = [row.source, row.lead_time, row.method] + [f"{row[c]:.3f}" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "### Per event (30 and 60 min, CSI@1 / FSS@1 / FBI@1)", ""]
    lines += ["| source | event | windows | lead | convlstm | extrapolation | persistence |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for source, fact in facts.items():
        part = pd.DataFrame(fact.get("per_event") or [])
        if part.empty:
            continue
        for (event, lead), rows in part[part.lead_time.isin(LOSO_LEADS)].groupby(
            ["event", "lead_time"], sort=False
        ):
            by = rows.set_index("method")
            cells = [f"{by.loc[m, 'CSI@1']:.3f} / {by.loc[m, 'FSS@1']:.3f} / "
                     f"{by.loc[m, 'FBI@1']:.2f}" for m in LOSO_METHODS_ORDER]  # fmt: skip
            n = (fact.get("windows") or {}).get(event, "?")
            lines.append(f"| {source} | {event} | {n} | {lead} | " + " | ".join(cells) + " |")
    lines += _interval_lines(facts) + _selection_lines(meta, facts)
    lines += ["", "### Targets (issue 11)", ""]
    lines += [f"- {k}: {'yes' if v else 'NO'}" for k, v in checks.items()]
    lines += ["", "### Where it loses", ""]
    lines += [f"- target missed: {k}" for k, v in checks.items() if not v]
    lines += [f"- {w}" for w in loso_losses(table)] or ["- nowhere at 30 and 60 min."]
    for source, part in table.groupby("source", sort=False):
        lines += ["", f"### {source}: every lead", ""]
        lines += _markdown_table(part, metrics)
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", f"- licence of the training data: {meta.get('licence')}", ""]
    return "\n".join(lines)


def _interval_lines(facts: dict) -> list[str]:
    """Card section: the paired bootstrap intervals of ours - extrapolation."""
    from model.bootstrap import LEVEL, RESAMPLES, SEED

    intervals = loso_intervals(facts)
    if intervals.empty:
        return []
    lines = ["", f"### {LEVEL:.0%} bootstrap intervals of ours - extrapolation", "",
             f"Paired percentile bootstrap over the test windows ({RESAMPLES} resamples, seed "
             f"{SEED}, `model.bootstrap`): each resample draws the fold's windows with replacement, "
             "the same for both forecasts, and recomputes both pooled scores. Windows of one event "
             "are correlated, so these intervals are if anything too narrow.", "",
             "| source | lead | score | ours - LK [interval] | windows |", "|---|---|---|---|---|"]  # fmt: skip
    for _, row in intervals.iterrows():
        lines.append(f"| {row.source} | {row.lead_time} | {row.score} | {interval_text(row)} | "
                     f"{row.windows} |")  # fmt: skip
    unsure = [f"{r.source} {r.score} {r.lead_time}" for _, r in intervals.iterrows() if r.low <= 0]
    lines += ["", "- intervals that include 0 (no clear win): " + (", ".join(unsure) or "none")]
    return lines


def _selection_lines(meta: dict, facts: dict) -> list[str]:
    """Card section: each fold's postprocess, chosen on its own training events only."""
    from model.loso import POSTPROCESS_CANDIDATES

    lines = ["", "### Post-processing chosen without the test source", "",
             "Each checkpoint's postprocess is chosen by `model.loso.select_postprocess` from "
             f"`{', '.join(POSTPROCESS_CANDIDATES)}` on the rainy windows of **its own training "
             "events** (the fold never sees its test source while choosing); criterion: "
             f"{(meta.get('selection') or {}).get('criterion', 'n/a')}. The training events' "
             "windows were also in the network's training tiles, so these validation scores are "
             "in-sample for the network (not for the choice's test).", "",
             "| checkpoint | validated on | chosen | margin over LK per candidate | FBI@1 60 min "
             "in range |", "|---|---|---|---|---|"]  # fmt: skip
    rows = [(source, fact.get("selection")) for source, fact in facts.items()]
    rows.append(("shipped", meta.get("selection")))
    for name, record in rows:
        if not record:
            lines.append(f"| {name} | - | not chosen on training data | - | - |")
            continue
        margins = ", ".join(f"{c} {v:+.4f}" for c, v in record["margin"].items())
        ok = ", ".join(f"{c} {'yes' if v else 'no'}" for c, v in record["bias_ok"].items())
        lines.append(f"| {name} | {', '.join(record['validation_sources'])} | "
                     f"{record['chosen']} | {margins} | {ok} |")  # fmt: skip
    return lines


def _fold_facts(folds: str | Path) -> dict:
    """Each fold checkpoint's training events, command and wall time, for the card."""
    from model.loso import SOURCES

    out = {}
    for source in SOURCES:
        meta = json.loads((Path(folds) / source / "meta.json").read_text())
        training = meta.get("training", {})
        out[source] = {"events": training.get("events", []), "command": meta.get("command"),
                       "wall_time_s": training.get("wall_time_s")}  # fmt: skip
    return out


def run_loso(args) -> pd.DataFrame:
    """``--loso DIR``: print the LOSO table; with ``--update-checkpoint`` write it into the
    checkpoint's ``meta.json`` (``metrics.loso``) and model card."""
    if not args.data_root:
        fail("--loso needs --data-root DIR (the pysteps-data radar/ tree)")
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    table, facts = loso_evaluate(args.loso, args.data_root, thresholds=thresholds,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    return report_loso(args, table, facts)


def report_loso(args, table: pd.DataFrame, facts: dict) -> pd.DataFrame:
    """Print the LOSO table of :func:`loso_evaluate` (``table``, ``facts``), its intervals and
    checks, save it, and with ``args.update_checkpoint`` write it into the checkpoint's meta and
    card."""
    name = Path(args.checkpoint).resolve().name
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / name / "eval"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "loso.csv", index=False)
    (out / "loso.json").write_text(json.dumps(facts, indent=2) + "\n")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(loso_headline(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    intervals = loso_intervals(facts)
    print("90% bootstrap intervals of ours - extrapolation (test windows resampled, paired):")
    for _, row in intervals.iterrows():
        print(f"  {row.source} {row.lead_time} {row.score}: {interval_text(row)} "
              f"({row.windows} windows)")  # fmt: skip
    for source, fact in facts.items():
        print(f"{source}: postprocess {fact.get('postprocess')} "
              f"({'chosen on the training events' if fact.get('selection') else 'NOT chosen on training data'})")  # fmt: skip
    for check, ok in loso_checks(table).items():
        print(f"{check}: {'yes' if ok else 'NO'}")
    if args.update_checkpoint:
        model, meta = load_checkpoint(args.checkpoint, device="cpu")
        for key in ("device", "device_note", "path"):
            meta.pop(key, None)
        meta.setdefault("metrics", {})["loso"] = {
            "per_lead": json.loads(table.to_json(orient="records")),
            "facts": {
                k: {n: v for n, v in f.items() if n != "per_event"} for k, f in facts.items()
            },
            "checks": loso_checks(table),  # per-event tables: the card and runs/NAME/eval/loso.json
        }
        save_checkpoint(args.checkpoint, model, metadata=meta)
        card = loso_card(meta, table, facts, _fold_facts(args.loso))
        (Path(args.checkpoint) / "README.md").write_text(card)
    print(f"wrote {out / 'loso.csv'}")
    return table


def download_key(dataset: str) -> str:
    """The name ``python -m datasets.download`` knows ``dataset``'s files by (e.g. ``taxinyc``)."""
    try:
        from datasets.download import registered_downloads
        from datasets.registry import _spec

        files = _spec(dataset).files
        return next((k for k, v in registered_downloads().items() if v == files), dataset)
    except Exception:  # noqa: BLE001 - unknown name: the dataset's own name
        return dataset


def not_found_line(checkpoint, dataset: str | None, data_root: str | None, err) -> str:
    """One line for a dataset whose files are missing: where it looked and how to get them."""
    name = dataset
    if not name:
        try:
            name = json.loads((Path(checkpoint) / "meta.json").read_text())["dataset"]
        except (OSError, ValueError, KeyError, TypeError):
            name = "dataset"
    if data_root:
        return f"{name}: data not found under --data-root {data_root} ({err})"
    return (
        f"{name}: data not found in the download cache; run python -m datasets.download "
        f"{download_key(name)} or pass --data-root DIR"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m model.evaluate",
        description="Per-lead-time scores of a checkpoint and baselines on a dataset split; "
        "writes evaluation.csv and evaluation.png.",
    )
    parser.add_argument("checkpoint", help="checkpoint folder (meta.json + model.safetensors)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--dataset", help="score on another registered dataset")
    parser.add_argument("--data", metavar="PATH",
                        help="score on this file (any format model.train --data reads), cut as "
                        "the checkpoint's training file was; checked against the checkpoint")  # fmt: skip
    parser.add_argument("--data-split", metavar="SPEC", dest="data_split",
                        help="with --data: split the file this way instead of as in training "
                        "(fractions 0.8,0.1,0.1 or dates train:..2024-06-30,val:...,test:...)")  # fmt: skip
    parser.add_argument("--n-samples", type=int, help="number of windows (dataset option)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="read the data from this folder (dataset option root=); default: "
                        "the download cache (python -m datasets.download NAME)")  # fmt: skip
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                        help="auto: bfloat16 autocast where the device computes it natively")  # fmt: skip
    parser.add_argument("--thresholds", default="1,5", help="radar thresholds in mm/h (1,5)")
    parser.add_argument("--out", help="output folder (default runs/NAME/eval)")
    parser.add_argument("--loso", metavar="DIR",
                        help="leave-one-source-out mode: score the fold checkpoints DIR/mch, "
                        "DIR/fmi, DIR/bom (python -m model.loso) on the whole domains of the "
                        "source each never saw; needs --data-root")  # fmt: skip
    parser.add_argument("--update-checkpoint", action="store_true",
                        help="write the scores into meta.json and the model card README.md")  # fmt: skip
    return parser


@one_line_errors(*ERRORS, ValueError)
def main(argv: list[str] | None = None) -> pd.DataFrame:
    """``python -m model.evaluate CHECKPOINT [options]``; errors end it with one line, status 2."""
    args = build_parser().parse_args(argv)
    tune_cpu_allocator()  # process-wide: keep freed activations for reuse (model/runtime.py)
    options = {"root": args.data_root} if args.data_root else {}
    if args.loso:
        try:
            return run_loso(args)
        except (CheckpointError, ValueError, DatasetError) as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from err
    try:
        thresholds = tuple(float(t) for t in args.thresholds.split(","))
    except ValueError:
        fail(f"--thresholds {args.thresholds!r}: give numbers in mm/h separated by commas (1,5)")
    try:
        table, facts = evaluate(
            args.checkpoint,
            split=args.split,
            dataset=args.dataset,
            options=options,
            n_samples=args.n_samples,
            device=args.device,
            batch_size=args.batch_size,
            thresholds=thresholds,
            precision=args.precision,
            file=args.data,
            file_split=args.data_split,
        )
    except DataNotFound as err:
        print(not_found_line(args.checkpoint, args.dataset, args.data_root, err), file=sys.stderr)
        raise SystemExit(2) from err
    except (CheckpointError, ValueError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    name = Path(args.checkpoint).resolve().name
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / name / "eval"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "evaluation.csv", index=False)
    if facts["per_event"]:
        pd.DataFrame(facts["per_event"]).to_csv(out / "evaluation_events.csv", index=False)
    (out / "evaluation.json").write_text(json.dumps(facts, indent=2) + "\n")
    plot(table, facts["domain"], out / "evaluation.png",
         title=f"{name} on {facts['dataset']} ({facts['split']}, {facts['samples']} samples)")  # fmt: skip
    if args.update_checkpoint:
        update_checkpoint(args.checkpoint, table, facts)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for check, ok in skill_checks(table, facts["domain"]).items():
        print(f"{check}: {'yes' if ok else 'NO'}")
    print(f"wrote {out / 'evaluation.csv'} and {out / 'evaluation.png'}")
    return table


if __name__ == "__main__":
    main()

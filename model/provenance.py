"""Where a checkpoint came from: the metadata training writes next to the weights.

- :func:`checkpoint_metadata`: the ``meta.json`` entries training adds (see DESIGN.md: checkpoint
  metadata); :func:`model.checkpoint.save_checkpoint` adds the architecture and the weights' hash.
- :func:`lineage`: how the checkpoint a fine-tuning run starts from was made (nested, so a chain of
  fine-tunings keeps every ancestor).
- :func:`hardware` and :func:`git_revision`: the machine and the code revision.

No data location is ever stored: dataset options that name a folder or file (:data:`PATH_OPTIONS`,
e.g. ``root=`` from ``--data-root``) are dropped (:func:`without_paths`), the command line keeps
``--data-root DIR`` in place of the folder (:func:`scrub_command`), and ``data_source`` records only
whether a local folder was used. Evaluation finds the data in the download cache, or where
``--data-root`` says, on whichever machine it runs.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.normalize import Normalizer
    from model.train_config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]

PATH_OPTIONS = frozenset({"root", "path", "cache_dir"})
"""Dataset options that name a place on a machine: never stored in a checkpoint."""

PATH_FLAGS = frozenset({"--data-root"})
"""Command-line flags whose value is a data location: recorded as ``DIR``."""

OPTION_TABLES = ("options", "train", "val", "test")


def is_path_option(key: str, value) -> bool:
    """Does the dataset option ``key=value`` name a folder or file on this machine?"""
    return key in PATH_OPTIONS or isinstance(value, os.PathLike)


def without_paths(tables: dict) -> dict:
    """The ``[data]`` option tables (``{table: {option: value}}``) less every path option."""
    return {
        name: {k: v for k, v in dict(table).items() if not is_path_option(k, v)}
        if isinstance(table, dict)
        else table
        for name, table in tables.items()
    }


def data_source(data) -> str:
    """Where training read its data, without saying where on the machine.

    ``"local folder"`` (a path option such as ``root=``), ``"bundled"`` (generated or shipped with
    the code), ``"download cache"`` (a registered dataset that needs files), or ``"custom loader"``
    (a dataset not registered, e.g. a test's loader).
    """
    tables = [dict(getattr(data, name, {}) or {}) for name in OPTION_TABLES]
    if any(is_path_option(k, v) for table in tables for k, v in table.items()):
        return "local folder"
    try:
        from datasets import dataset_info

        return "bundled" if dataset_info(data.dataset)["bundled"] else "download cache"
    except Exception:  # noqa: BLE001 - unregistered name, or the catalog did not load
        return "custom loader"


def scrub_command(command: str) -> str:
    """``command`` with the value of each data-location flag replaced by ``DIR``."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return command
    out, hide = [], False
    for token in tokens:
        if hide:
            out.append("DIR")
            hide = False
        elif token in PATH_FLAGS:
            out.append(token)
            hide = True
        elif token.split("=", 1)[0] in PATH_FLAGS and "=" in token:
            out.append(token.split("=", 1)[0] + "=DIR")
        else:
            out.append(token)
    return " ".join(shlex.quote(t) for t in out)


def portable_path(path: str | Path) -> str:
    """A checkpoint's path for the record: relative to the repository, else its folder name."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except (ValueError, OSError):
        return path.name


def checkpoint_metadata(
    config: TrainConfig,
    array,
    normalizer: Normalizer,
    *,
    step: int,
    seed: int,
    world_size: int,
    device_note: str,
    command: str | None,
    wall_s: float,
    train_s: float,
    val: dict,
    init: dict | None = None,
) -> dict:
    """Checkpoint metadata (see DESIGN.md: checkpoint metadata).

    Parameters
    ----------
    config : TrainConfig
        What was trained; stored whole (:meth:`TrainConfig.to_dict`) under ``training.config``.
    array : xarray.DataArray
        The training split in physical units (its attrs and channel names are copied).
    normalizer : Normalizer
    step, seed, world_size : int
        Steps done, the seed, and the number of data-parallel processes.
    device_note : str
        Where training ran (see :func:`hardware`).
    command : str or None
        The command line.
    wall_s, train_s : float
        Seconds since the start (data preparation included), and of the optimisation loop.
    val : dict
        Validation scores of these weights.
    init : dict, optional
        :func:`lineage` of the checkpoint training started from.
    """
    attrs = dict(array.attrs)
    data = config.data
    return {
        "name": config.name,
        "description": config.description or "",
        "dataset": data.dataset,
        "dataset_options": without_paths({k: dict(getattr(data, k)) for k in OPTION_TABLES}),
        "data_source": data_source(data),  # never the folder itself
        "domain": attrs.get("domain"),
        "units": attrs.get("units"),
        "time_step": attrs.get("time_step"),
        "synthetic": attrs.get("synthetic"),
        "data_family": attrs.get("family"),  # what the frames show, e.g. "Moving MNIST digits"
        "source": attrs.get("source"),
        "licence": attrs.get("licence"),
        "channel_names": [str(c) for c in array.coords["channel"].values]
        if "channel" in array.coords
        else None,
        "normalization": normalizer.to_metadata(),
        "context": data.context,
        "horizon": data.horizon,
        "training": {
            "config": _config_without_paths(config.to_dict()),
            "steps": step,
            "seed": seed,
            "samples_seen": step * config.train.batch_size,
            "train_samples": "endless stream rendered on the device (train digit pool)"
            if config.train.stream
            else int(array.sizes["sample"]),
            "world_size": world_size,
            "wall_time_s": round(wall_s, 1),  # from start, data preparation included
            "train_time_s": round(train_s, 1),  # the optimisation loop alone
            "hardware": hardware(device_note),
            "init_from": init,  # the checkpoint training started from, and how it was made
        },
        "command": scrub_command(command) if command else "",
        "git_revision": git_revision(),
        "metrics": {"validation": val},
    }


def _config_without_paths(config: dict) -> dict:
    data = config.get("data")
    if isinstance(data, dict):
        config = {**config, "data": {**data, **without_paths(
            {k: data[k] for k in OPTION_TABLES if k in data})}}  # fmt: skip
    return config


def lineage(meta: dict, path: Path) -> dict:
    """How the checkpoint that training starts from was made (its own lineage nested inside)."""
    training = meta.get("training", {})
    return {
        "path": portable_path(path),
        "dataset": meta.get("dataset"),
        "command": scrub_command(meta["command"]) if meta.get("command") else meta.get("command"),
        "steps": training.get("steps"),
        "samples_seen": training.get("samples_seen"),
        "wall_time_s": training.get("wall_time_s"),
        "train_time_s": training.get("train_time_s"),
        "hardware": training.get("hardware"),
        "git_revision": meta.get("git_revision"),
        "weights_sha256": meta.get("weights_sha256"),
        "init_from": training.get("init_from"),
    }


def hardware(device_note: str = "") -> dict:
    """Where training ran: device, CPU, threads, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "device": device_note,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_revision() -> str:
    """``git rev-parse HEAD`` of the repository (``+dirty`` when files differ), or ``"unknown"``."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if len(rev) != 40 or any(c not in "0123456789abcdef" for c in rev):
        return "unknown"  # not a git checkout (e.g. a copied working tree)
    return rev + ("+dirty" if dirty else "")

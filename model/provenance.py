"""Where a checkpoint came from: the metadata training writes next to the weights.

- :func:`checkpoint_metadata`: the ``meta.json`` entries training adds (see DESIGN.md: checkpoint
  metadata); :func:`model.checkpoint.save_checkpoint` adds the architecture and the weights' hash.
- :func:`lineage`: how the checkpoint a fine-tuning run starts from was made (nested, so a chain of
  fine-tunings keeps every ancestor).
- :func:`hardware` and :func:`git_revision`: the machine and the code revision.

No data location is ever stored: dataset options that name a folder or file (:data:`PATH_OPTIONS`,
e.g. ``root=`` from ``--data-root``) are dropped (:func:`without_paths`), the command line keeps
``--data-root DIR`` in place of the folder and only the names of the files it was given
(:func:`scrub_command`), and ``data_source`` records only whether a local folder was used. A file
trained on (``data.file``, ``--data PATH``) is recorded by its name and SHA-256 alone
(:func:`file_facts`, ``data_file`` in the metadata). Evaluation finds the data in the download
cache, or where ``--data-root`` or ``--data`` says, on whichever machine it runs.
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

FILE_FLAGS = frozenset({"--data", "--out", "--run-dir", "--init-from"})
"""Command-line flags whose value is a file or folder: recorded by :func:`portable_path`."""

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

    ``"file"`` (``data.file``: see :func:`file_facts`), ``"local folder"`` (a path option such
    as ``root=``), ``"bundled"`` (generated or shipped with
    the code), ``"download cache"`` (a registered dataset that needs files), or ``"custom loader"``
    (a dataset not registered, e.g. a test's loader).
    """
    if getattr(data, "file", ""):
        return "file"
    tables = [dict(getattr(data, name, {}) or {}) for name in OPTION_TABLES]
    if any(is_path_option(k, v) for table in tables for k, v in table.items()):
        return "local folder"
    try:
        from datasets import dataset_info

        return "bundled" if dataset_info(data.dataset)["bundled"] else "download cache"
    except Exception:  # noqa: BLE001 - unregistered name, or the catalog did not load
        return "custom loader"


def scrub_command(command: str) -> str:
    """``command`` without machine paths: the value of each :data:`PATH_FLAGS` flag becomes
    ``DIR``, that of each :data:`FILE_FLAGS` flag and any other absolute path (the config file)
    its :func:`portable_path`."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return command
    out, pending = [], None
    for token in tokens:
        flag, eq, value = token.partition("=")
        if pending is not None:
            out.append(_scrubbed(pending, token))
            pending = None
        elif token in PATH_FLAGS | FILE_FLAGS:
            out.append(token)
            pending = token
        elif eq and flag in PATH_FLAGS | FILE_FLAGS:
            out.append(f"{flag}={_scrubbed(flag, value)}")
        elif token.startswith(("/", "~")):
            out.append(portable_path(token))
        else:
            out.append(token)
    return " ".join(shlex.quote(t) for t in out)


def _scrubbed(flag: str, value: str) -> str:
    return "DIR" if flag in PATH_FLAGS else (portable_path(value) if value else value)


def portable_path(path: str | Path) -> str:
    """A path for the record: relative to the repository when inside it, else its last name."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except (ValueError, OSError):
        return path.name


def file_facts(path: str | Path) -> dict:
    """What a checkpoint records of a data file: ``{"name": ..., "sha256": ...}``, never its path.

    The SHA-256 is of the file's bytes; for a folder (a Zarr store) of every file in it, in
    sorted relative order, names included.
    """
    import hashlib

    from datasets.guards import sha256_of

    path = Path(path).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(item.relative_to(path).as_posix().encode() + b"\0")
            digest.update(sha256_of(item).encode())
        return {"name": path.name, "sha256": digest.hexdigest()}
    return {"name": path.name, "sha256": sha256_of(path)}


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
    data_file: dict | None = None,
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
    data_file : dict, optional
        :func:`file_facts` of the file trained on (``data.file``); computed here when None.
        The array and axis order it was read as (``key``, ``layout``, from ``array``'s attrs)
        are added, so evaluation reads a file the same way even where they were inferred.
    """
    attrs = dict(array.attrs)
    data = config.data
    if data.file:
        read_as = {"key": attrs.get("npz_key"), "layout": attrs.get("layout")}
        data_file = {**(data_file or file_facts(data.file)),
                     **{k: str(v) for k, v in read_as.items() if v}}  # fmt: skip
    return {
        "name": config.name,
        "description": config.description or "",
        "dataset": data.source_name,
        **({"data_file": data_file} if data.file else {}),
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
    """The stored training config: no path options, the file by name, ``init_from`` portable."""
    data = config.get("data")
    if isinstance(data, dict):
        data = {**data, **without_paths({k: data[k] for k in OPTION_TABLES if k in data})}
        if data.get("file"):
            data["file"] = Path(data["file"]).name
        config = {**config, "data": data}
    train = config.get("train")
    if isinstance(train, dict) and train.get("init_from"):
        config = {**config, "train": {**train, "init_from": portable_path(train["init_from"])}}
    return config


def lineage(meta: dict, path: Path, *, resized: dict | None = None) -> dict:
    """How the checkpoint that training starts from was made (its own lineage nested inside).

    ``resized``: what :func:`model.finetune.transfer_weights` resized to the new grid (from which
    grid to which), recorded as ``"resized"``; None when the weights were copied as they are.
    """
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
        "resized": resized,
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

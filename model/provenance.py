"""Where a checkpoint came from: the metadata training writes next to the weights.

- :func:`checkpoint_metadata`: the ``meta.json`` entries training adds (see DESIGN.md: checkpoint
  metadata); :func:`model.checkpoint.save_checkpoint` adds the architecture and the weights' hash.
- :func:`lineage`: how the checkpoint a fine-tuning run starts from was made (nested, so a chain of
  fine-tunings keeps every ancestor).
- :func:`hardware` and :func:`git_revision`: the machine and the code revision.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.normalize import Normalizer
    from model.train_config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


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
        "dataset_options": {k: dict(getattr(data, k)) for k in ("options", "train", "val", "test")},
        "domain": attrs.get("domain"),
        "units": attrs.get("units"),
        "time_step": attrs.get("time_step"),
        "synthetic": attrs.get("synthetic"),
        "source": attrs.get("source"),
        "licence": attrs.get("licence"),
        "channel_names": [str(c) for c in array.coords["channel"].values]
        if "channel" in array.coords
        else None,
        "normalization": normalizer.to_metadata(),
        "context": data.context,
        "horizon": data.horizon,
        "training": {
            "config": config.to_dict(),
            "steps": step,
            "seed": seed,
            "samples_seen": step * config.train.batch_size,
            "train_samples": int(array.sizes["sample"]),
            "world_size": world_size,
            "wall_time_s": round(wall_s, 1),  # from start, data preparation included
            "train_time_s": round(train_s, 1),  # the optimisation loop alone
            "hardware": hardware(device_note),
            "init_from": init,  # the checkpoint training started from, and how it was made
        },
        "command": command or "",
        "git_revision": git_revision(),
        "metrics": {"validation": val},
    }


def lineage(meta: dict, path: Path) -> dict:
    """How the checkpoint that training starts from was made (its own lineage nested inside)."""
    training = meta.get("training", {})
    return {
        "path": str(path),
        "dataset": meta.get("dataset"),
        "command": meta.get("command"),
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

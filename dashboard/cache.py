"""Streamlit caches around :mod:`dashboard.services`, keyed by every setting that changes a result.

- ``st.cache_resource``: loaded models (one per checkpoint and device; not copied per rerun);
- ``st.cache_data``: dataset arrays, uploaded files (keyed by their bytes), rollouts and scores.
Arguments starting with ``_`` are not hashed; the named keys before them identify the result.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import streamlit as st
import xarray as xr

from dashboard import figures, services


@st.cache_data(show_spinner=False, ttl=600)
def catalog() -> list[services.DatasetEntry]:
    return services.dataset_catalog()


@st.cache_data(show_spinner=False, ttl=30)
def checkpoints(root: str) -> list[tuple[str, dict]]:
    return services.list_checkpoints(root)


@st.cache_data(show_spinner=False, max_entries=8)
def dataset(
    name: str, split: str = "test", n_samples: int = services.DEFAULT_N_SAMPLES
) -> xr.DataArray:
    return services.load_dataset(name, split=split, n_samples=n_samples)


@st.cache_data(show_spinner=False, max_entries=4)
def upload(content: bytes, filename: str, max_mb: int = services.UPLOAD_MAX_MB) -> xr.DataArray:
    """Read an uploaded file (written to a temporary file with its own suffix)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name)[-100:] or "upload.bin"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / safe  # keep the user's name and suffix for the readers' messages
        path.write_bytes(content)
        return services.read_upload(path, max_mb=max_mb)


def upload_key(content: bytes, filename: str) -> str:
    return f"upload:{hashlib.sha256(content).hexdigest()[:12]}:{filename}"


@st.cache_resource(show_spinner=False, max_entries=4)
def model(name: str, root: str, device: str = "auto"):
    return services.load_model(name, root=root, device=device)


@st.cache_data(show_spinner=False, max_entries=6)
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
    net, meta = model(checkpoint, root)
    window = services.Window(sample=sample, start=start, context=context, horizon=horizon)
    ds = services.run_rollout(net, meta, _data, window, capture=True)
    ds.attrs["dataset"] = data_key
    return ds


@st.cache_data(show_spinner=False, max_entries=16)
def scores(rollout_key: tuple, threshold: float, _ds: xr.Dataset):
    return services.score(_ds, threshold=threshold)


@st.cache_data(show_spinner=False, max_entries=32)
def forecast_figure(
    rollout_key: tuple, channel: int, step: int, beyond: int | None, _ds: xr.Dataset
):
    """The animated forecast figure (building 24 frames of 3 heatmaps takes ~0.2 s)."""
    return figures.forecast_figure(_ds, channel=channel, step=step, beyond_training=beyond)


@st.cache_data(show_spinner=False, max_entries=32)
def gates_figure(rollout_key: tuple, layer: int, reduction, step: int, gate: str, _ds: xr.Dataset):
    """The animated gates figure (reductions over all hidden channels and steps)."""
    return figures.gates_figure(_ds, layer=layer, reduction=reduction, step=step, gate=gate)

"""Synthetic rollout datasets in the schema of :func:`model.rollout.rollout` (for dashboard tests).

Values are known functions of (step, y, x) so tests can check exact pixels after the figures'
8-bit quantisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

GATES = ("input", "forget", "output", "candidate", "cell", "hidden")

DOMAIN_DEFAULTS = {
    "radar": {"units": "mm/h", "time_step": "PT5M", "channels": ["rain_rate"]},
    "traffic": {
        "units": "vehicles per interval",
        "time_step": "PT30M",
        "channels": ["inflow", "outflow"],
    },
    "video": {"units": "intensity", "time_step": None, "channels": ["intensity"]},
}


def field(domain: str, t: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """A moving blob ``(T, y, x)`` in the domain's physical range."""
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    out = []
    for k in t:
        cy, cx = ny / 2, (nx / 4 + k) % nx
        blob = np.exp(-(((yy - cy) / (ny / 6)) ** 2 + ((xx - cx) / (nx / 6)) ** 2))
        if domain == "radar":
            out.append(40.0 * blob)  # mm/h, peak 40
        elif domain == "traffic":
            out.append(300.0 * blob + 5.0)
        else:
            out.append(blob)
    return np.asarray(out, dtype=np.float32)


def synthetic_rollout(
    *,
    domain: str = "radar",
    n_context: int = 4,
    horizon: int = 4,
    size: int = 16,
    patch: int = 2,
    layers: int = 2,
    hidden: int = 3,
    gates: bool = True,
    truth: bool = True,
    nan_corner: bool = False,
) -> xr.Dataset:
    """A rollout dataset with the dims, coords and attrs of ``model.rollout.rollout``."""
    info = DOMAIN_DEFAULTS[domain]
    n_ch = len(info["channels"])
    t_ctx = np.arange(n_context)
    t_fc = np.arange(n_context, n_context + horizon)
    ctx = np.stack([field(domain, t_ctx, size, size)] * n_ch, axis=1)  # (Tc, C, y, x)
    tru = np.stack([field(domain, t_fc, size, size)] * n_ch, axis=1)  # (H, C, y, x)
    pred = (0.8 * tru).astype(np.float32)
    if nan_corner:
        ctx[:, :, :2, :2] = np.nan
        tru[:, :, :2, :2] = np.nan
    if info["time_step"]:
        lead = np.arange(1, horizon + 1) * pd.Timedelta(info["time_step"]).to_timedelta64()
    else:
        lead = np.arange(1, horizon + 1)
    data_vars = {
        "prediction": (("time", "channel", "y", "x"), pred),
        "context": (("context_time", "channel", "y", "x"), ctx),
    }
    if truth:
        data_vars["truth"] = (("time", "channel", "y", "x"), tru)
    coords = {
        "time": np.arange(n_context, n_context + horizon),
        "lead_time": ("time", lead),
        "context_time": np.arange(n_context),
        "channel": info["channels"],
        "y": np.arange(size),
        "x": np.arange(size),
    }
    if gates:
        steps = n_context + horizon - 1
        g = size // patch
        s, h, yy, xx = np.meshgrid(
            np.arange(steps), np.arange(hidden), np.arange(g), np.arange(g), indexing="ij"
        )
        base = (s + h + yy + xx) / (steps + hidden + 2 * g)  # in [0, 1)
        arr = np.empty((layers, len(GATES), steps, hidden, g, g), np.float16)
        for li in range(layers):
            for gi, name in enumerate(GATES):
                if name in ("input", "forget", "output"):
                    v = base * (0.5 + 0.5 * gi / 3)
                elif name == "cell":
                    v = 3.0 * (base - 0.5) * (li + 1)
                else:
                    v = 2.0 * base - 1.0
                arr[li, gi] = np.transpose(v, (0, 1, 2, 3)).astype(np.float16)
        data_vars["gates"] = (("layer", "gate", "step", "hidden", "gy", "gx"), arr)
        coords.update(
            layer=list(range(layers)),
            gate=list(GATES),
            step=np.arange(steps),
            phase=("step", np.where(np.arange(steps) < n_context, "context", "forecast")),
            hidden=np.arange(hidden),
            gy=np.arange(g),
            gx=np.arange(g),
        )
    attrs = {
        "units": info["units"],
        "domain": domain,
        "mode": "free",
        "horizon": horizon,
        "context_length": n_context,
        "patch_size": patch,
    }
    if info["time_step"]:
        attrs["time_step"] = info["time_step"]
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def make_checkpoint(
    root,
    name: str = "tiny_mnist",
    *,
    dataset: str = "moving_mnist",
    domain: str = "video",
    in_channels: int = 1,
    frame_size: tuple[int, int] = (64, 64),
    hidden: tuple[int, ...] = (4, 4),
    patch_size: int = 4,
    context: int = 10,
    horizon: int = 10,
    normalization: dict | None = None,
    seed: int = 0,
    peephole: bool = True,
):
    """Save a small untrained ConvLSTM checkpoint under ``root/name`` (for app tests)."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.convlstm import ConvLSTM, ConvLSTMConfig

    torch.manual_seed(seed)
    cfg = ConvLSTMConfig(
        in_channels=in_channels,
        hidden_channels=hidden,
        kernel_size=3,
        patch_size=patch_size,
        frame_size=frame_size,
        output_activation="sigmoid" if domain == "video" else "none",
        peephole=peephole,
    )
    net = ConvLSTM(config=cfg)
    meta = {
        "dataset": dataset,
        "domain": domain,
        "time_step": None,
        "data_family": "Moving MNIST digits" if dataset == "moving_mnist" else None,
        "normalization": normalization or {"kind": "unit", "units": "pixel intensity [0, 1]"},
        "context": context,
        "horizon": horizon,
        "command": "tests/dashboard_synthetic.py make_checkpoint (untrained)",
    }
    return save_checkpoint(Path(root) / name, net, metadata=meta)


def make_checkpoint_for(root, name: str, *, normalization: dict | None = None):
    """A tiny untrained checkpoint ``tiny_<name>`` that fits dataset ``name`` as it loads here.

    Returns the dataset's domain, or None when the dataset does not load offline (it needs files
    or a download), in which case no checkpoint is written.
    """
    import datasets

    try:
        data = datasets.get_dataset(name, split="test", n_samples=2)
    except Exception:  # noqa: BLE001 - needs files or a download: not for offline tests
        return None
    domain = data.attrs.get("domain") or datasets.dataset_info(name).get("domain") or "video"
    c, h, w = (int(data.sizes[d]) for d in ("channel", "y", "x"))
    n_t = int(data.sizes["time"])
    make_checkpoint(
        root,
        f"tiny_{name}",
        dataset=name,
        domain=domain,
        in_channels=c,
        frame_size=(h, w),
        hidden=(4, 4),
        patch_size=4 if h % 4 == 0 and w % 4 == 0 else 1,
        context=min(10, n_t // 2),
        horizon=min(10, n_t - n_t // 2),
        normalization=normalization,
    )
    return domain

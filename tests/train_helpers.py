"""Tiny in-memory datasets and configs for the training and evaluation tests.

Also a torchrun entry point: ``torchrun --nproc_per_node 2 tests/train_helpers.py OUT_DIR`` trains
the tiny model for a few steps and writes each rank's initial and final weights to ``OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def tiny_loader(name: str, *, split: str, n_samples: int = 8, frames: int = 6, size: int = 8, **_):
    """Loader with the ``get_dataset`` signature: a bright 2x2 square moving one pixel per frame.

    ``name`` picks the domain: ``"tiny_video"`` ([0, 1]), ``"tiny_radar"`` (mm/h, a NaN column of
    invalid pixels, PT5M), ``"tiny_traffic"`` (counts, 2 channels, hourly timestamps).
    """
    seed = {"train": 0, "val": 1, "test": 2}[split]
    rng = np.random.default_rng(seed)
    channels = 2 if name == "tiny_traffic" else 1
    values = np.zeros((n_samples, frames, channels, size, size), np.float32)
    for s in range(n_samples):
        y0, x0 = rng.integers(0, size - 2 - frames // 2, size=2)
        for t in range(frames):
            y, x = y0 + t // 2, x0 + t // 2
            values[s, t, :, y : y + 2, x : x + 2] = 1.0
    units, step, domain = "pixel intensity", "1 frame", "video"
    if name == "tiny_radar":
        values = values * 8.0
        values[..., -1] = np.nan
        units, step, domain = "mm/h", "PT5M", "radar"
    elif name == "tiny_traffic":
        values = values * 40.0 + 5.0
        units, step, domain = "trips per hour", "PT1H", "traffic"
    start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=1000 * seed)
    starts = start + pd.to_timedelta(np.arange(n_samples) * frames, unit="h")
    times = starts.values[:, None] + np.arange(frames) * np.timedelta64(1, "h")
    coords = {
        "channel": [f"c{k}" for k in range(channels)],
        "y": np.arange(size),
        "x": np.arange(size),
    }
    if name == "tiny_traffic":
        coords["valid_time"] = (("sample", "time"), times)
    return xr.DataArray(
        values,
        dims=("sample", "time", "channel", "y", "x"),
        coords=coords,
        attrs={"units": units, "time_step": step, "domain": domain, "synthetic": 1},
    )


def tiny_config(name: str = "tiny_video", **train) -> dict:
    from model.train_config import validate_config

    norm = {"tiny_video": {"kind": "unit"}, "tiny_radar": {"kind": "db", "scale": 10.0},
            "tiny_traffic": {"kind": "scale", "scale": "auto"}}[name]  # fmt: skip
    return validate_config(
        {
            "name": name,
            "data": {"dataset": name, "context": 3, "horizon": 3, "train": {"n_samples": 8}},
            "model": {"hidden_channels": [4], "kernel_size": 3, "patch_size": 2},
            "normalization": norm,
            "train": {
                "steps": 4,
                "batch_size": 4,
                "val_every": 2,
                "warmup": 1,
                "lr": 1e-2,
                **train,
            },
        }
    )


def _torchrun_main(out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from model.train import train

    result = train(
        tiny_config(),
        out_dir=out / "ckpt",
        run_dir=out / "run",
        seed=3,
        device="cpu",
        progress=False,
        keep_initial=True,
        loader=tiny_loader,
    )
    rank = int(__import__("os").environ["RANK"])
    final = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    initial = {k: v.contiguous() for k, v in result.initial_state.items()}
    save_file(final, str(out / f"final_rank{rank}.safetensors"))
    save_file(initial, str(out / f"initial_rank{rank}.safetensors"))
    print(
        f"rank {rank}: in_sync={result.in_sync} steps={result.step} threads={torch.get_num_threads()}"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _torchrun_main(Path(sys.argv[1]))

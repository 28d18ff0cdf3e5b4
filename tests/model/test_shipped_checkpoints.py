"""Every shipped checkpoint loads, matches its config and dataset, and forecasts.

One test per folder under ``checkpoints/`` (found with :func:`model.checkpoint.scan_checkpoints`,
so a new folder is tested without editing this file). A checkpoint whose dataset is bundled must
load that data: a failure there fails the test, it is never skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets import dataset_info, get_dataset, list_datasets
from model.checkpoint import DEFAULT_ROOT, compatible, load_checkpoint, scan_checkpoints
from model.convlstm import ConvLSTMConfig
from model.normalize import Normalizer
from model.rollout import rollout
from model.train_config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = scan_checkpoints(DEFAULT_ROOT)  # reads each meta.json and weight header only


def test_checkpoints_are_shipped():
    assert SHIPPED, f"no checkpoint folders under {DEFAULT_ROOT}"


def _is_subset(small: dict, big: dict) -> bool:
    return all(k in big and big[k] == v for k, v in small.items())


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_checkpoint(entry):
    assert entry.problem is None, f"checkpoints/{entry.name}: {entry.problem}"
    model, meta = load_checkpoint(DEFAULT_ROOT / entry.name, device="cpu")

    # its dataset is registered, with the checkpoint's domain
    name = meta["dataset"]
    assert name in list_datasets(), f"checkpoints/{entry.name}: dataset {name!r} not registered"
    info = dataset_info(name)
    assert meta["domain"] == info["domain"]

    # its config file agrees with meta.json
    cfg = load_config(CONFIGS / f"{entry.name}.toml")
    data = cfg["data"]
    assert cfg["name"] == entry.name
    assert (data["dataset"], data["context"], data["horizon"]) == (
        name,
        meta["context"],
        meta["horizon"],
    )
    # the architecture the config asks for, on the data grid the checkpoint was trained on
    config_arch = ConvLSTMConfig(
        **cfg["model"],
        in_channels=meta["config"]["in_channels"],
        frame_size=meta["config"]["frame_size"],
    )
    assert config_arch == model.config, (
        f"configs/{entry.name}.toml builds {config_arch}, checkpoints/{entry.name} holds "
        f"{model.config}"
    )
    options = meta["dataset_options"]
    assert _is_subset(data["options"], options["options"])
    for split in ("train", "val", "test"):
        assert _is_subset(data[split], options[split]), f"data.{split}"
    wanted_norm = {k: v for k, v in cfg["normalization"].items() if v != "auto"}
    assert _is_subset(wanted_norm, meta["normalization"])

    # a short rollout: on the bundled data's first test sample, else on a context of the right shape
    context_len, horizon = meta["context"], min(meta["horizon"], 3)
    channels, (height, width) = model.config.in_channels, model.config.frame_size
    if info["bundled"]:
        array = get_dataset(
            name, split="test", **{**options["options"], **options["test"], "n_samples": 1}
        )
        assert compatible(meta, array)
        context = array.isel(sample=0, time=slice(0, context_len))
    else:
        rng = np.random.default_rng(0)
        context = rng.random((context_len, channels, height, width), dtype=np.float32)
    ds = rollout(
        model,
        context,
        horizon,
        normalizer=Normalizer.from_metadata(meta["normalization"]),
        precision="fp32",
    )
    assert ds.prediction.shape == (horizon, model.config.channels_out, height, width)
    assert np.isfinite(ds.prediction.values).all()

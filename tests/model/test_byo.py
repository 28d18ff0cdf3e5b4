"""Bring your own file: train and evaluate on a file through the command line alone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.train import apply_data_flags, apply_overrides, build_parser
from model.train_config import ConfigError, TrainConfig
from model.windows import data_config, load_windows

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = """
[data]
file = "{file}"
context = 3
horizon = 3
split = "0.6,0.2,0.2"
reader = {{ domain = "traffic", units = "vehicles per interval" }}
[model]
hidden_channels = [4]
patch_size = 2
[normalization]
kind = "scale"
scale = "auto"
[train]
steps = 2
batch_size = 4
val_every = 2
warmup = 1
"""


def _frames(n_time=40, size=8, channels=2, seed=0) -> np.ndarray:
    """``(T, H, W, C)`` smooth moving waves plus noise: something to forecast."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(n_time), np.arange(size), np.arange(size), indexing="ij")
    wave = 10 + 5 * np.sin(0.5 * t + 0.3 * x + 0.2 * y)  # (T, H, W)
    return (wave[..., None] + rng.random((n_time, size, size, channels))).astype(np.float32)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_train_and_evaluate_a_npz_through_the_command_line_alone(tmp_path):
    work = tmp_path / "my_private_folder_5x"
    work.mkdir()
    np.savez(work / "flows.npz", flows=_frames())
    (work / "tiny.toml").write_text(TINY.format(file="elsewhere.npz"))  # --data replaces it
    done = _run("model.train", str(work / "tiny.toml"), "--data", str(work / "flows.npz"),
                "--steps", "2", "--device", "cpu", "--no-progress", "--out", str(work / "ckpt"),
                "--run-dir", str(work / "run"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "note: flows.npz: read array 'flows' (inferred" in done.stderr  # the choice is said
    text = (work / "ckpt" / "meta.json").read_text()
    assert str(work) not in text and "my_private_folder_5x" not in text  # no path, anywhere
    meta = json.loads(text)
    digest = hashlib.sha256((work / "flows.npz").read_bytes()).hexdigest()
    assert meta["data_file"] == {"name": "flows.npz", "sha256": digest, "key": "flows",
                                 "layout": "thwc"}  # fmt: skip
    assert meta["dataset"] == "flows.npz" and meta["data_source"] == "file"
    assert meta["name"] == "flows"  # named after the file trained on, not the config's file
    assert meta["training"]["config"]["data"]["file"] == "flows.npz"
    assert meta["channels"] == 2 and meta["frame_size"] == [8, 8] and meta["domain"] == "traffic"

    done = _run("model.evaluate", str(work / "ckpt"), "--data", str(work / "flows.npz"),
                "--device", "cpu", "--out", str(work / "eval"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(work / "eval" / "evaluation.csv")
    assert set(table.method) == {"convlstm", "persistence"}
    assert table.groupby("method").size().tolist() == [3, 3]  # horizon 3
    facts = json.loads((work / "eval" / "evaluation.json").read_text())
    # the test split, as in training: frames 32..39 of 40 (0.2), 8 - 6 + 1 windows
    assert facts["dataset"] == "flows.npz" and facts["samples"] == 3

    # another file on the same grid is scored, with a note that it is not the training file
    np.savez(work / "other.npz", flows=_frames(seed=1))
    done = _run("model.evaluate", str(work / "ckpt"), "--data", str(work / "other.npz"),
                "--data-split", "0.5,0.25,0.25", "--device", "cpu", "--out", str(work / "eval1"),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "note: other.npz is not the file ckpt was trained on (flows.npz" in done.stderr
    facts = json.loads((work / "eval1" / "evaluation.json").read_text())
    assert facts["samples"] == 10 - 6 + 1  # the last 0.25 of 40 frames

    # a file on another grid is refused in one line, naming both grids
    np.savez(work / "big.npz", flows=_frames(size=16))
    done = _run("model.evaluate", str(work / "ckpt"), "--data", str(work / "big.npz"),
                "--device", "cpu", "--out", str(work / "eval2"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: big.npz does not fit checkpoint ckpt: its grid is 8x8, the data's is 16x16; "
        "evaluate it with a checkpoint trained on data like it"
    )
    # without --data: the path was never stored, so it asks for it
    done = _run("model.evaluate", str(work / "ckpt"), "--device", "cpu", cwd=tmp_path)
    assert done.returncode == 2
    assert "trained on the file flows.npz" in done.stderr and "--data PATH" in done.stderr


def test_a_config_names_a_file_relative_to_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "exp"
    (folder / "data").mkdir(parents=True)
    np.savez(folder / "data" / "flows.npz", frames=_frames(n_time=30))
    (folder / "tiny.toml").write_text(TINY.format(file="data/flows.npz"))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = TrainConfig.load(folder / "tiny.toml")
    assert Path(config.data.file) == folder / "data" / "flows.npz"
    assert config.name == "flows"  # named after the file when the config gives no name
    train = load_windows(config.data, "train")
    assert train.dims == ("sample", "time", "channel", "y", "x")
    assert train.shape == (18 - 6 + 1, 6, 2, 8, 8)  # 0.6 of 30 frames, 6-frame windows
    assert train.attrs["units"] == "vehicles per interval" and train.attrs["domain"] == "traffic"
    np.testing.assert_allclose(train.values[0, :, 1], _frames(n_time=30)[:6, ..., 1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "0.5,0.5"}, "data.split: split '0.5,0.5' has 2 fraction"),
        ({"layout": "hwt"}, "data.layout='hwt'"),
        ({"options": {"root": "/x"}}, r"unknown data.options \(for a file\) keys \['root'\]"),
        ({"start": "2024-01-01"}, "data.start needs data.time_step"),
        ({"time_step": "often"}, "data.time_step='often' is no duration"),
        ({"dataset": "moving_mnist"}, "names both a dataset and a file"),
    ],
)
def test_file_config_errors_name_the_key(change, message):
    raw = {"data": {"file": "f.npz", "context": 2, "horizon": 2, **change}}
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(raw, source="my.toml")
    with pytest.raises(ConfigError, match="data.split applies to a file"):
        TrainConfig.from_dict({"data": {"dataset": "moving_mnist", "context": 2, "horizon": 2,
                                        "split": "0.8,0.1,0.1"}})  # fmt: skip


def test_data_flag_replaces_a_registered_dataset(tmp_path, capsys):
    config_path = REPO_ROOT / "configs" / "traffic_taxinyc.toml"
    argv = [str(config_path), "--data", "my flows.npz", "--split", "0.7,0.15,0.15", "--key", "x"]
    args = build_parser().parse_args(argv)
    config = apply_data_flags(apply_overrides(TrainConfig.load(config_path), args), args)
    data = config.data
    assert (data.dataset, data.file, data.split, data.key) == ("", "my flows.npz",
                                                                "0.7,0.15,0.15", "x")  # fmt: skip
    assert config.name == "my_flows"  # never the shipped checkpoint's folder
    assert data.reader == {"domain": "traffic"}  # the dataset's, unless --domain says another
    assert data.options == {} and data.val == {"stride": 6, "n_samples": 256}  # window options
    assert "options context, horizon of dataset 'taxinyc' do not apply" in capsys.readouterr().err
    video = REPO_ROOT / "configs" / "video_moving_mnist.toml"  # trains on a rendered stream
    args = build_parser().parse_args([str(video), "--data", "clip.mp4"])
    config = apply_data_flags(TrainConfig.load(video), args)
    assert not config.train.stream and config.data.reader == {"domain": "video"}
    assert "train.stream turned off" in capsys.readouterr().err
    args = build_parser().parse_args([str(config_path), "--split", "0.8,0.1,0.1"])
    with pytest.raises(ConfigError, match=r"--split '0.8,0.1,0.1'.*applies to a file"):
        apply_data_flags(TrainConfig.load(config_path), args)


def test_evaluation_cuts_a_file_as_training_did():
    meta = {
        "name": "flows",
        "dataset": "flows.npz",
        "data_source": "file",
        "data_file": {"name": "flows.npz", "sha256": "ab" * 32, "key": "flows", "layout": "thwc"},
        "context": 3,
        "horizon": 3,
        "training": {"config": {"data": {"file": "flows.npz", "split": "0.6,0.2,0.2",
                                         "reader": {"domain": "traffic"},
                                         "test": {"stride": 2, "root": "/old"}}}},
    }  # fmt: skip
    cfg = data_config(meta, file="/data/flows.npz")
    assert (cfg.file, cfg.split, cfg.key, cfg.layout) == ("/data/flows.npz", "0.6,0.2,0.2",
                                                          "flows", "thwc")  # fmt: skip
    assert cfg.reader == {"domain": "traffic"} and cfg.test == {"stride": 2}
    assert data_config(meta, file="f.npz", split="0.5,0.25,0.25").split == "0.5,0.25,0.25"
    with pytest.raises(ConfigError, match=r"trained on the file flows.npz \(sha256 abab"):
        data_config(meta)
    # a checkpoint of a registered dataset scores a file with the default split
    registered = {
        "dataset": "taxinyc",
        "context": 12,
        "horizon": 6,
        "data_source": "download cache",
    }
    cfg = data_config(registered, file="f.npz")
    assert cfg.split_text == "0.8,0.1,0.1" and cfg.layout == ""


def test_a_file_without_a_domain_asks_for_one(tmp_path):
    np.savez(tmp_path / "flows.npz", flows=_frames(n_time=12))
    raw = {"data": {"file": str(tmp_path / "flows.npz"), "context": 2, "horizon": 2}}
    with pytest.raises(ConfigError, match=r"flows.npz: the file does not say what its values"):
        load_windows(TrainConfig.from_dict(raw).data, "train")
    args = build_parser().parse_args(["c.toml", "--domain", "video"])
    config = apply_data_flags(TrainConfig.from_dict(raw), args)
    assert load_windows(config.data, "train").attrs["domain"] == "video"

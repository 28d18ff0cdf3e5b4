"""model.train: config checks, masked loss, checkpoints and logs, resume, DDP under torchrun."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_checkpoint
from model.losses import masked_mse, rain_weights
from model.normalize import Normalizer
from model.train import lr_at, train
from model.train_config import ConfigError, TrainConfig, load_config, validate_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_helpers import tiny_config, tiny_loader

REPO_ROOT = Path(__file__).resolve().parents[2]


def _log_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"context": 3, "horizon": 3}}, "dataset"),
        ({"data": {"dataset": "x", "context": 0, "horizon": 3}}, "data.context"),
        ({"train": {"mode": "sideways"}}, "train.mode"),
        ({"train": {"stepz": 3}}, "unknown train keys"),
        ({"model": {"frame_size": [8, 8]}}, "comes from the data"),
        ({"extra": {}}, "unknown sections"),
    ],
)
def test_config_errors_name_the_key(change, message):
    raw = {"data": {"dataset": "moving_mnist", "context": 3, "horizon": 3}}
    raw.update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(raw, source="my.toml")


def test_load_config_reads_toml_and_fills_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "moving_mnist"\ncontext = 10\nhorizon = 10\n')
    cfg = load_config(path)
    assert cfg["name"] == "moving_mnist"
    assert cfg["train"]["mode"] == "free"
    assert cfg["data"]["options"] == {}
    bad = tmp_path / "c.yaml"
    bad.write_text("x")
    with pytest.raises(ConfigError, match="toml or .json"):
        load_config(bad)


def test_shipped_configs_are_valid():
    configs = sorted((REPO_ROOT / "configs").glob("*.toml"))
    assert configs, "configs/ should hold one config per shipped checkpoint"
    for path in configs:
        cfg = load_config(path)
        assert cfg["name"] == path.stem


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "configs").glob("*.toml")), ids=lambda p: p.stem
)
def test_every_shipped_config_loads_into_a_train_config(path):
    config = TrainConfig.load(path)
    assert config.name == path.stem
    assert isinstance(config.train.lr, float) and isinstance(config.train.max_minutes, float)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.to_dict() == load_config(path)


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("train", {"lr": "fast"}, r"train\.lr='fast' must be a number"),
        ("train", {"steps": 2.5}, r"train\.steps=2\.5 must be an integer"),
        ("train", {"augment": 1}, r"train\.augment=1 must be true or false"),
        ("train", {"batch_size": True}, r"train\.batch_size=True must be an integer"),
        ("train", {"lr": -1.0}, r"train\.lr=-1\.0 must not be negative"),
        ("data", {"horizon": "3"}, r"data\.horizon='3' must be an integer"),
        ("data", {"option": {}}, r"unknown data keys \['option'\]; known: \['context'"),
        ("model", {"hidden": [4]}, r"unknown model keys \['hidden'\]; known: \['forget_bias'"),
        ("normalization", {"kinds": "db"}, r"unknown normalization keys \['kinds'\]; known"),
    ],
)
def test_train_config_checks_keys_and_types(section, change, message):
    raw = {"data": {"dataset": "moving_mnist", "context": 3, "horizon": 3}}
    raw[section] = {**raw.get(section, {}), **change}
    with pytest.raises(ConfigError, match=f"^my.toml: {message}"):
        TrainConfig.from_dict(raw, source="my.toml")


def test_unknown_train_key_names_the_known_ones():
    raw = {"data": {"dataset": "d", "context": 1, "horizon": 1}, "train": {"stepz": 3}}
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(raw, source="my.toml")
    assert "['stepz']" in str(err.value) and "'steps'" in str(err.value)
    assert "'max_minutes'" in str(err.value)


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, lr=1.0, warmup=10, steps=100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(0.05, abs=0.01)


def test_masked_mse_ignores_invalid_pixels():
    pred = torch.zeros(1, 1, 1, 2, 2)
    target = torch.tensor([[[[[1.0, 1.0], [1.0, 100.0]]]]])
    valid = torch.tensor([[[[[True, True], [True, False]]]]])
    assert masked_mse(pred, target, valid).item() == pytest.approx(1.0)
    assert masked_mse(pred, target, None).item() == pytest.approx((3 + 100**2) / 4)


def test_training_lowers_the_loss_and_writes_checkpoint_and_log(tmp_path):
    cfg = tiny_config("tiny_video", steps=40, val_every=20, batch_size=8, lr=2e-2)
    result = train(
        cfg,
        out_dir=tmp_path / "ckpt",
        run_dir=tmp_path / "run",
        loader=tiny_loader,
        device="cpu",
        progress=False,
        keep_initial=True,
        command="python -m model.train tiny.toml",
    )
    assert result.step == 40
    rows = _log_rows(tmp_path / "run" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert last < 0.7 * first
    assert rows[19]["val_loss"] and not rows[18]["val_loss"]
    assert float(rows[0]["samples_per_s"]) > 0

    model, meta = load_checkpoint(tmp_path / "ckpt", device="cpu")
    for key in ("dataset", "domain", "channels", "frame_size", "time_step", "normalization",
                "context", "horizon", "command", "git_revision", "metrics", "training"):  # fmt: skip
        assert key in meta, key
    assert meta["context"] == 3 and meta["horizon"] == 3
    assert meta["training"]["hardware"]["torch"] == torch.__version__
    assert meta["training"]["wall_time_s"] > 0
    assert meta["command"] == "python -m model.train tiny.toml"
    assert Normalizer.from_metadata(meta["normalization"]).kind == "unit"
    assert meta["metrics"]["validation"]["val_loss"] == pytest.approx(result.best["val_loss"])
    changed = [k for k, v in _state(model).items() if not torch.equal(v, result.initial_state[k])]
    assert changed


def test_radar_training_masks_nan_and_auto_scale_for_traffic(tmp_path):
    radar = train(tiny_config("tiny_radar"), out_dir=tmp_path / "r", run_dir=tmp_path / "rr",
                  loader=tiny_loader, device="cpu", progress=False)  # fmt: skip
    assert all(torch.isfinite(p).all() for p in radar.model.parameters())
    _, meta = load_checkpoint(tmp_path / "r", device="cpu")
    assert meta["normalization"]["kind"] == "db" and meta["units"] == "mm/h"

    train(tiny_config("tiny_traffic"), out_dir=tmp_path / "t", run_dir=tmp_path / "tr",
          loader=tiny_loader, device="cpu", progress=False)  # fmt: skip
    _, meta = load_checkpoint(tmp_path / "t", device="cpu")
    assert meta["normalization"]["scale"] == pytest.approx(45.0)  # 99.9th percentile of 5..45
    assert meta["channels"] == 2


def test_resume_continues_exactly(tmp_path):
    common = {"loader": tiny_loader, "device": "cpu", "progress": False, "seed": 5}
    straight = train(
        tiny_config(steps=4), out_dir=tmp_path / "a", run_dir=tmp_path / "ar", **common
    )
    train(tiny_config(steps=2), out_dir=tmp_path / "b", run_dir=tmp_path / "br", **common)
    resumed = train(tiny_config(steps=4), out_dir=tmp_path / "b", run_dir=tmp_path / "br",
                    resume=True, **common)  # fmt: skip
    assert resumed.step == 4
    for key, value in _state(straight.model).items():
        torch.testing.assert_close(_state(resumed.model)[key], value, rtol=0, atol=0)
    steps = [int(r["step"]) for r in _log_rows(tmp_path / "br" / "log.csv")]
    assert steps == [1, 2, 3, 4]


def test_resume_without_state_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="without --resume"):
        train(tiny_config(), run_dir=tmp_path / "none", out_dir=tmp_path / "o", resume=True,
              loader=tiny_loader, device="cpu", progress=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_torchrun_two_ranks_end_with_identical_changed_weights(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO_ROOT / "tests" / "train_helpers.py"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0 of 2 (gloo)" in proc.stderr
    final = [load_file(str(tmp_path / f"final_rank{r}.safetensors")) for r in (0, 1)]
    initial = [load_file(str(tmp_path / f"initial_rank{r}.safetensors")) for r in (0, 1)]
    for key in final[0]:
        torch.testing.assert_close(final[0][key], final[1][key], rtol=0, atol=0)
        torch.testing.assert_close(initial[0][key], initial[1][key], rtol=0, atol=0)
    assert any(not torch.equal(final[0][k], initial[0][k]) for k in final[0])
    assert (tmp_path / "ckpt" / "meta.json").is_file()  # rank 0 wrote the checkpoint


def test_augment_applies_the_same_transform_to_frames_and_mask():
    from model.train import augment_batch

    torch.manual_seed(0)
    frames = torch.arange(2 * 3 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 3, 1, 4, 4)
    valid = frames > 20
    seen = set()
    for _ in range(40):
        x, v = augment_batch(frames, valid)
        assert torch.equal(v, x > 20)  # the mask moved with the pixels
        assert sorted(x.flatten().tolist()) == sorted(frames.flatten().tolist())
        seen.add(tuple(x[0, 0, 0, 0].tolist()))
    assert len(seen) == 8  # all eight rotations/flips occur
    x, _ = augment_batch(torch.zeros(1, 1, 1, 4, 6), None)
    assert x.shape == (1, 1, 1, 4, 6)  # non-square frames keep their shape


def test_init_from_starts_at_the_source_weights_and_records_lineage(tmp_path):
    common = {"loader": tiny_loader, "device": "cpu", "progress": False}
    train(tiny_config(steps=2), out_dir=tmp_path / "src", run_dir=tmp_path / "srcrun", **common)
    source, _ = load_checkpoint(tmp_path / "src", device="cpu")
    cfg = tiny_config(steps=2, init_from=str(tmp_path / "src"))
    result = train(cfg, out_dir=tmp_path / "ft", run_dir=tmp_path / "ftrun", keep_initial=True,
                   **common)  # fmt: skip
    for key, value in source.state_dict().items():
        assert torch.equal(result.initial_state[key], value)
    _, meta = load_checkpoint(tmp_path / "ft", device="cpu")
    assert meta["training"]["init_from"]["path"] == "src"  # no machine path: the folder name
    assert meta["training"]["init_from"]["steps"] == 2

    other = tiny_config(steps=2, init_from=str(tmp_path / "src"))
    other["model"]["hidden_channels"] = [6]
    with pytest.raises(ConfigError, match=r"cannot start from this checkpoint: its hidden_chan"):
        train(other, out_dir=tmp_path / "x", run_dir=tmp_path / "xr", **common)


def test_max_minutes_stops_early_with_a_final_validation(tmp_path):
    cfg = tiny_config(steps=1000, val_every=500, max_minutes=1e-6)
    result = train(cfg, out_dir=tmp_path / "c", run_dir=tmp_path / "r", loader=tiny_loader,
                   device="cpu", progress=False)  # fmt: skip
    assert result.step < 5
    rows = _log_rows(tmp_path / "r" / "log.csv")
    assert rows[-1]["val_loss"]  # the last step validated and saved a checkpoint
    assert (tmp_path / "c" / "meta.json").is_file()


def test_balanced_rain_weights_and_weighted_mse():
    rates = torch.tensor([0.0, 1.9, 2.0, 7.0, 12.0, 45.0])
    assert rain_weights(rates).tolist() == [1.0, 1.0, 2.0, 5.0, 10.0, 30.0]
    pred = torch.zeros(1, 1, 1, 1, 2)
    target = torch.tensor([[[[[1.0, 3.0]]]]])
    weight = torch.tensor([[[[[1.0, 3.0]]]]])
    assert masked_mse(pred, target, None, weight).item() == pytest.approx((1 + 27) / 4)
    cfg = tiny_config("tiny_radar", loss="balanced")
    with pytest.raises(ConfigError, match="train.loss"):
        tiny_config("tiny_radar", loss="huber")
    assert cfg["train"]["loss"] == "balanced"


def _cli_config(tmp_path, *flags):
    from model.train import apply_overrides, build_parser

    path = tmp_path / "c.toml"
    path.write_text(
        '[data]\ndataset = "moving_mnist"\ncontext = 10\nhorizon = 10\n'
        "[train]\nlr = 1e-3\nmax_minutes = 5\nbatch_size = 8\n"
    )
    return apply_overrides(TrainConfig.load(path), build_parser().parse_args([str(path), *flags]))


def test_cli_overrides_apply_when_given_even_if_falsy(tmp_path):
    assert _cli_config(tmp_path).train.lr == pytest.approx(1e-3)  # not given: the file's value
    config = _cli_config(tmp_path, "--lr", "0", "--max-minutes", "0", "--init-from", "")
    assert config.train.lr == 0.0 and config.train.max_minutes == 0.0
    assert config.train.init_from == "" and config.train.batch_size == 8
    config = _cli_config(tmp_path, "--data-root", "/data", "--loss", "balanced", "--val-every", "3")
    assert config.data.options == {"root": "/data"}
    assert config.train.loss == "balanced" and config.train.val_every == 3
    # A falsy int flag reaches the config too, where it is checked like the file's value.
    with pytest.raises(ConfigError, match=r"--batch-size 0.*train\.batch_size must be a positive"):
        _cli_config(tmp_path, "--batch-size", "0")


def test_main_tunes_the_allocator_and_trains_the_overridden_config(tmp_path, monkeypatch):
    import model.train as train_module

    calls = {}
    monkeypatch.setattr(
        train_module.runtime, "tune_cpu_allocator", lambda: calls.setdefault("tuned", True)
    )
    monkeypatch.setattr(
        train_module, "train", lambda config, **kw: calls.update(config=config, **kw)
    )
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "moving_mnist"\ncontext = 2\nhorizon = 2\n')
    train_module.main([str(path), "--lr", "0", "--steps", "0", "--no-progress"])
    assert calls["tuned"] and calls["config"].train.lr == 0.0
    assert calls["steps"] == 0 and calls["progress"] is False
    assert calls["command"].endswith("-m model.train " + f"{path} --lr 0 --steps 0 --no-progress")


@pytest.mark.parametrize("name", ["tiny_radar", "tiny_traffic"])
def test_validate_scores_persistence_and_the_forecast_path(name):
    import numpy as np

    from model.convlstm import ConvLSTM
    from model.metrics import per_lead
    from model.rollout import forecast_windows
    from model.train import to_split, validate

    array = tiny_loader(name, split="val")  # 6 frames: 3 in, 3 out
    norm = Normalizer(kind="scale", units="", scale=40.0)
    torch.manual_seed(0)
    channels = array.sizes["channel"]
    net = ConvLSTM(in_channels=channels, hidden_channels=(4,), kernel_size=3, frame_size=(8, 8))
    scores = validate(net, to_split(array, norm), norm, context=3, horizon=3, batch_size=4)
    key = "RMSE" if name == "tiny_traffic" else "MSE"
    truth = array.values[:, 3:]
    pers = np.repeat(array.values[:, 2:3], 3, axis=1)  # the last context frame, by hand
    want = per_lead(pers, truth, domain=array.attrs["domain"])[key].mean()
    assert scores[f"val_persistence_{key}"] == pytest.approx(want)
    pred = forecast_windows(net, array.values[:, :3], 3, batch_size=4, normalizer=norm)
    got = per_lead(pred, truth, domain=array.attrs["domain"])[key].mean()
    assert scores[f"val_{key}"] == pytest.approx(got, rel=1e-4)


def test_validate_scores_the_model_and_persistence_on_the_common_mask():
    """Pixels where persistence is NaN (the last context frame invalid) count for neither score:
    by hand, the mean squared error over the pixels finite in the truth and in both forecasts."""
    import numpy as np

    from model.convlstm import ConvLSTM
    from model.rollout import forecast_windows
    from model.train import to_split, validate

    array = tiny_loader("tiny_radar", split="val").copy(deep=True)  # 6 frames: 3 in, 3 out
    array.values[:, 2, :, :3, :] = np.nan  # last context frame: 3 invalid rows
    norm = Normalizer(kind="scale", units="", scale=40.0)
    torch.manual_seed(0)
    net = ConvLSTM(in_channels=1, hidden_channels=(4,), kernel_size=3, frame_size=(8, 8))
    scores = validate(net, to_split(array, norm), norm, context=3, horizon=3, batch_size=4)
    truth = array.values[:, 3:]
    pers = np.repeat(array.values[:, 2:3], 3, axis=1)
    pred = forecast_windows(net, np.nan_to_num(array.values[:, :3]), 3, batch_size=4,
                            normalizer=norm)  # fmt: skip
    mask = np.isfinite(truth) & np.isfinite(pers) & np.isfinite(pred)
    assert not mask[:, :, :, :3].any() and mask.any()

    def mse(forecast):  # per lead over the common mask, then the mean over leads
        err = np.where(mask, forecast - truth, 0.0) ** 2
        return (err.sum(axis=(0, 2, 3, 4)) / mask.sum(axis=(0, 2, 3, 4))).mean()

    assert scores["val_persistence_MSE"] == pytest.approx(mse(pers))
    assert scores["val_MSE"] == pytest.approx(mse(pred), rel=1e-4)

"""model.moving_mnist_stream: the on-device Moving MNIST of training, and campaigns of bursts."""

import csv

import numpy as np
import pytest
import torch

from datasets.video import digit_pool
from model.moving_mnist_stream import MovingMNISTStream, reference_sequences
from model.train import train
from model.train_config import ConfigError, TrainConfig


def test_stream_equals_the_numpy_reference_bit_for_bit():
    stream = MovingMNISTStream(split="train", seed=3, device="cpu")
    got = stream.batch(start=40, size=6).numpy()  # [6, 20, 1, 64, 64]
    want = reference_sequences(split="train", seed=3, start=40, size=6)
    assert got.shape == (6, 20, 1, 64, 64)
    np.testing.assert_array_equal(got, want)
    assert got.max() == 1.0 and got.mean() > 0.01  # digits were drawn


def test_samples_depend_on_their_number_not_on_the_batch():
    stream = MovingMNISTStream(split="train", seed=0, device="cpu")
    whole = stream.batch(start=0, size=12)
    torch.testing.assert_close(stream.batch(start=4, size=5), whole[4:9], rtol=0, atol=0)
    other_seed = MovingMNISTStream(split="train", seed=1, device="cpu").batch(start=0, size=12)
    assert not torch.equal(other_seed, whole)
    assert not torch.equal(whole[0], whole[1])


def test_digits_move_two_to_five_pixels_per_frame_and_stay_inside():
    stream = MovingMNISTStream(split="train", seed=0, device="cpu", digits=1)
    frames = stream.batch(start=0, size=32)[:, :, 0]  # [32, 20, 64, 64]
    ink = frames.sum(dim=(-1, -2))
    assert (ink > 5).all()  # the digit never leaves the canvas
    ys = torch.arange(64.0)
    centre_y = (frames.sum(-1) * ys).sum(-1) / frames.sum(dim=(-1, -2))  # [32, 20]
    centre_x = (frames.sum(-2) * ys).sum(-1) / frames.sum(dim=(-1, -2))
    step = torch.hypot(centre_y.diff(dim=1), centre_x.diff(dim=1))  # pixels per frame
    assert step.max() <= 5 + 2**0.5 + 1e-4  # 5 px/frame, + rounding each axis to a pixel
    assert step.median() > 1.5


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_each_split_draws_only_from_its_own_pool(split):
    used = MovingMNISTStream(split=split, seed=0, device="cpu").digit_indices(start=0, size=4000)
    used = set(used.flatten().tolist())
    assert used <= set(digit_pool(split).tolist())
    others = [s for s in ("train", "val", "test") if s != split]
    assert not used & set().union(*(set(digit_pool(s).tolist()) for s in others))
    assert len(used) > 0.5 * len(digit_pool(split))  # the pool is really used, not a few digits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stream_gives_the_cpu_sequences():
    cpu = MovingMNISTStream(split="train", seed=7, device="cpu").batch(start=1000, size=64)
    cuda = MovingMNISTStream(split="train", seed=7, device="cuda").batch(start=1000, size=64)
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=0)


def test_stream_is_only_for_moving_mnist():
    raw = {"data": {"dataset": "radar_synthetic", "context": 3, "horizon": 3},
           "train": {"stream": True}}  # fmt: skip
    with pytest.raises(ConfigError, match="train.stream"):
        TrainConfig.from_dict(raw)
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig.from_dict({**raw, "data": {**raw["data"], "dataset": "moving_mnist"},
                               "train": {"precision": "fp8"}})  # fmt: skip


def _stream_config(steps: int) -> dict:
    return {
        "name": "stream_test",
        "data": {
            "dataset": "moving_mnist",
            "context": 2,
            "horizon": 2,
            "options": {"size": 32, "frames": 4},
            "train": {"n_samples": 4},
            "val": {"n_samples": 4},
        },  # fmt: skip
        "model": {"hidden_channels": [4], "kernel_size": 3, "patch_size": 4},
        "normalization": {"kind": "unit"},
        "train": {"steps": steps, "batch_size": 2, "val_every": 2, "warmup": 1, "stream": True},
    }


def test_streamed_training_resumes_across_bursts_like_one_run(tmp_path, monkeypatch):
    common = {"device": "cpu", "progress": False, "seed": 2}
    straight = train(_stream_config(4), out_dir=tmp_path / "a", run_dir=tmp_path / "ar", **common)
    # A burst that runs out of session time after its second step, then a resumed one.
    import model.train as train_module

    calls = iter([False, False, True])
    monkeypatch.setattr(train_module, "session_over", lambda run, minutes: next(calls, False))
    first = train(_stream_config(4), out_dir=tmp_path / "b", run_dir=tmp_path / "br",
                  session_minutes=1.0, **common)  # fmt: skip
    assert first.step == 2
    monkeypatch.undo()
    resumed = train(_stream_config(4), out_dir=tmp_path / "b", run_dir=tmp_path / "br",
                    resume=True, **common)  # fmt: skip
    assert resumed.step == 4
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    with open(tmp_path / "br" / "log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]

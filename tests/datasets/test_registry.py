"""One generic test over every registered dataset (the pysteps way), plus the registry contract.

Bundled datasets (``register(..., bundled=True)``) must load on a machine with no network and no
``../shared``; the others must either load (their files are present) or raise ``DatasetError``
saying how to get the data. conftest makes every download go to a closed port, so a loader that
tries the internet fails here instead of downloading.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from datasets import DatasetError, get_dataset, list_datasets, valid_mask
from datasets.registry import DOMAINS, SPLITS, dataset_info

REQUIRED_ATTRS = ("units", "time_step", "domain", "source", "licence", "description", "synthetic")
DIMS = ("sample", "time", "channel", "y", "x")
BUNDLED_SECONDS = 10.0  # issue 3: each bundled dataset loads in under 10 s


def _names(bundled: bool) -> list:
    names = [n for n in list_datasets() if dataset_info(n)["bundled"] is bundled]
    return names or [pytest.param(None, marks=pytest.mark.skip(reason="none registered"))]


def _load(name: str, split: str):
    """get_dataset with a small n_samples; a loader that refuses the option fails clearly."""
    try:
        return get_dataset(name, split=split, n_samples=2)
    except TypeError as exc:
        if "n_samples" in str(exc):
            pytest.fail(f"{name}: every loader must accept n_samples= (issue 3): {exc}")
        raise


def check_contract(arr, name: str) -> None:
    """Everything the registry docstring promises about a dataset array."""
    assert arr.dims == DIMS, f"{name}: dims {arr.dims}"
    assert arr.dtype == np.float32, f"{name}: dtype {arr.dtype}"
    assert all(s > 0 for s in arr.shape), f"{name}: empty dim in {arr.shape}"
    missing = [k for k in REQUIRED_ATTRS if k not in arr.attrs]
    assert not missing, f"{name}: attrs missing {missing}"
    assert arr.attrs["domain"] in DOMAINS, f"{name}: domain {arr.attrs['domain']!r}"
    assert arr.attrs["synthetic"] in (0, 1), f"{name}: synthetic must be stored as int 0/1"
    for key in ("units", "time_step", "source", "licence", "description"):
        assert isinstance(arr.attrs[key], str) and arr.attrs[key].strip(), f"{name}: attr {key}"
    registered_domain = dataset_info(name)["domain"]
    if registered_domain is not None:
        assert arr.attrs["domain"] == registered_domain
    for dim in DIMS:
        assert dim in arr.coords, f"{name}: no coordinate for {dim}"
        assert arr[dim].size == arr.sizes[dim]
    times = arr["time"].values
    if np.issubdtype(times.dtype, np.datetime64):
        assert (np.diff(times) > np.timedelta64(0)).all(), f"{name}: timestamps not increasing"
    else:
        assert (np.diff(times) > 0).all(), f"{name}: time index not increasing"
    values = arr.values
    assert not np.isinf(values).any(), f"{name}: infinite values"
    finite = np.isfinite(values)
    assert finite.any(), f"{name}: all NaN"
    if not finite.all():
        # NaN is allowed only as a documented mask of invalid pixels (e.g. outside the radar).
        assert arr.attrs["domain"] == "radar", f"{name}: NaN in a {arr.attrs['domain']} dataset"
        documented = (arr.attrs["description"] + " " + str(arr.attrs.get("mask", ""))).lower()
        assert any(w in documented for w in ("mask", "nan")), f"{name}: NaN not documented"
        np.testing.assert_array_equal(valid_mask(arr).values, finite)


@pytest.mark.parametrize("name", _names(bundled=True))
def test_bundled_dataset_loads_offline_and_meets_contract(name):
    for split in SPLITS:
        start = time.perf_counter()
        arr = _load(name, split)
        elapsed = time.perf_counter() - start
        assert elapsed < BUNDLED_SECONDS, f"{name}/{split}: {elapsed:.1f} s"
        check_contract(arr, name)
        assert arr.sizes["sample"] <= 2, f"{name}: n_samples not honoured"


@pytest.mark.parametrize("name", _names(bundled=False))
def test_downloadable_dataset_loads_or_says_how_to_get_it(name):
    try:
        arr = _load(name, "test")
    except DatasetError as exc:
        message = str(exc)
        assert len(message) > 30, f"{name}: unhelpful message {message!r}"
        hints = ("download=True", "path=", "python -m datasets.download", "../shared")
        assert any(h in message for h in hints), f"{name}: message says no way out: {message}"
        return
    check_contract(arr, name)


def test_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as info:
        get_dataset("no_such_dataset")
    for name in list_datasets():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="no_such_dataset"):
        dataset_info("no_such_dataset")


def test_unknown_split_lists_the_splits():
    with pytest.raises(ValueError, match="train, val, test"):
        get_dataset(list_datasets()[0], split="validation")


def test_names_are_case_insensitive_and_info_is_complete():
    names = list_datasets()
    assert names == sorted(names) and "moving_mnist" in names
    info = dataset_info("Moving_MNIST")
    assert info == {
        "name": "moving_mnist",
        "bundled": True,
        "domain": "video",
        "summary": info["summary"],
    }
    assert info["summary"]


def test_register_defaults_and_rejects_duplicates(monkeypatch):
    from datasets import registry

    monkeypatch.setattr(registry, "_ADDED", dict(registry._ADDED))

    @registry.register("tmp_plain", domain="video")
    def tmp_plain(*, split):
        """A loader registered with no extra arguments."""

    assert registry.dataset_info("tmp_plain")["bundled"] is False
    assert (
        registry.dataset_info("tmp_plain")["summary"]
        == "A loader registered with no extra arguments."
    )
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("TMP_PLAIN", domain="video")(tmp_plain)
    with pytest.raises(TypeError, match="domain"):
        registry.register("tmp_no_domain")  # every dataset names its domain
    with pytest.raises(ValueError, match="domain"):
        registry.register("tmp_other", domain="audio")

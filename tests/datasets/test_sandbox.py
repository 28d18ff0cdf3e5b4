"""The upload sandbox: a reader that hogs memory, loops, crashes or leaves a helper program behind
is stopped, reported in one sentence, and costs the calling process (the server) no memory."""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import pytest

from datasets import DatasetError, sandbox

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX process limits")


@pytest.fixture(scope="module", autouse=True)
def _warm():
    sandbox.warm_up()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _file(tmp_path):
    path = tmp_path / "upload.nc"
    path.write_bytes(b"x" * 64)
    return path


def test_a_valid_result_comes_back_whole(tmp_path):
    data = sandbox.read_isolated(
        _file(tmp_path), max_bytes=10**6, reader="tests.sandbox_readers:small_array"
    )
    assert data.dims == ("sample", "time", "channel", "y", "x")
    np.testing.assert_array_equal(data.values.ravel(), np.arange(120, dtype=np.float32))
    assert data.dtype == np.float32
    assert str(data["time"].values[1]).startswith("2020-01-01T00:05")
    assert list(data["channel"].values) == ["rain"]
    assert data.attrs["units"] == "mm/h" and data.attrs["time_step"] == "PT5M"


def test_memory_hog_is_stopped_and_the_server_does_not_grow(tmp_path):
    before = _peak_rss_mb()
    t0 = time.perf_counter()
    with pytest.raises(DatasetError, match="needed more than 0.2 GiB of memory") as info:
        sandbox.read_isolated(
            _file(tmp_path),
            max_bytes=10**6,
            memory_bytes=200 * 2**20,
            reader="tests.sandbox_readers:hog_memory",
        )
    elapsed = time.perf_counter() - t0
    assert elapsed < 20, elapsed  # stopped by the memory limit, well before the 60 s timeout
    assert _peak_rss_mb() - before < 50
    assert str(tmp_path) not in str(info.value)


def test_endless_reader_is_killed_at_the_timeout(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(DatasetError, match="longer than 1 s"):
        sandbox.read_isolated(
            _file(tmp_path), max_bytes=10**6, timeout_s=1.0, reader="tests.sandbox_readers:spin"
        )
    assert time.perf_counter() - t0 < 4


def test_timeout_also_kills_programs_the_reader_started(tmp_path):
    path = _file(tmp_path)
    with pytest.raises(DatasetError, match="longer than"):
        sandbox.read_isolated(
            path,
            max_bytes=10**6,
            timeout_s=6.0,  # time for the child to start its helper on a busy machine
            reader="tests.sandbox_readers:spin_with_grandchild",
        )
    pid = int(path.with_suffix(".pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().split(")")[-1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # killed, waiting to be reaped by init
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"helper program {pid} still runs after the timeout")


def test_a_crashing_reader_is_reported(tmp_path):
    with pytest.raises(DatasetError, match="stopped without an answer"):
        sandbox.read_isolated(
            _file(tmp_path), max_bytes=10**6, reader="tests.sandbox_readers:crash"
        )


def test_reader_errors_come_back_without_server_paths(tmp_path):
    path = tmp_path / "upload.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError) as info:
        sandbox.read_isolated(path, max_bytes=10**6)
    message = str(info.value)
    assert message.startswith("upload.npy")
    assert str(tmp_path) not in message


def test_real_file_is_read_like_read_any(tmp_path):
    from datasets.files import read_any

    frames = (np.random.default_rng(0).random((6, 16, 16)) * 255).astype(np.uint8)
    path = tmp_path / "frames.npy"
    np.save(path, frames)
    isolated = sandbox.read_isolated(path, max_bytes=10**6)
    direct = read_any(path, max_bytes=10**6)
    np.testing.assert_array_equal(isolated.values, direct.values)
    assert isolated.attrs == direct.attrs


def test_every_coordinate_and_its_attrs_come_back(tmp_path):
    """Windows keep their real times in ``timestamp (sample, time)``; maps their ``y``/``x`` units."""
    import h5py
    import pandas as pd
    import xarray as xr

    from datasets.files import read_any

    times = pd.date_range("2015-01-10", periods=30, freq="h")
    path = tmp_path / "flows.h5"
    with h5py.File(path, "w") as f:  # TaxiBJ layout: windows with a timestamp coordinate
        f["date"] = np.array([t.strftime("%Y%m%d%H").encode() for t in times])
        f["data"] = np.ones((30, 2, 4, 3))
    isolated = sandbox.read_isolated(path, max_bytes=10**6)
    direct = read_any(path, max_bytes=10**6)
    assert set(isolated.coords) == set(direct.coords) >= {"timestamp"}
    xr.testing.assert_identical(isolated, direct)
    rain = xr.Dataset(
        {"rain": (("time", "y", "x"), np.ones((3, 4, 5), np.float32), {"units": "mm/h"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=3, freq="5min"),
            "y": (
                "y",
                np.arange(4) * 1000.0,
                {"units": "m", "standard_name": "projection_y_coordinate"},
            ),
            "x": ("x", np.arange(5) * 1000.0, {"units": "m"}),
        },
    )
    rain.to_netcdf(tmp_path / "rain.nc", engine="h5netcdf")
    isolated = sandbox.read_isolated(tmp_path / "rain.nc", max_bytes=10**6)
    assert isolated["y"].attrs == read_any(tmp_path / "rain.nc")["y"].attrs
    assert isolated["y"].attrs["units"] == "m"


def test_a_result_over_the_limit_is_refused(tmp_path):
    with pytest.raises(DatasetError, match=r"decodes to 0 MiB \(2 x 3 x 1 x 4 x 5 float32\)"):
        sandbox.read_isolated(
            _file(tmp_path),
            max_bytes=10**6,
            max_result_bytes=100,
            reader="tests.sandbox_readers:small_array",
        )

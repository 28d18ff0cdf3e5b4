"""Host tuning: glibc's malloc thresholds are set once and can be left alone; a server's torch threads."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from model.runtime import tune_cpu_allocator

PROBE = "from model.runtime import tune_cpu_allocator; print(tune_cpu_allocator())"


def _probe(env_extra: dict) -> str:
    env = {**os.environ, **env_extra, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libc" not in (ctypes.util.find_library("c") or ""),
    reason="mallopt thresholds exist only in glibc on Linux",
)
def test_allocator_tuned_on_glibc_and_opt_out_respected():
    assert _probe({}) == "True"
    assert _probe({"CONVLSTM_LAB_KEEP_MALLOC": "1"}) == "False"
    assert tune_cpu_allocator() is tune_cpu_allocator()  # once per process (cached)


def test_engine_leaves_the_process_allocator_alone():
    """Process-wide settings belong to entry points: a CPU rollout must not tune glibc."""
    probe = (
        "import numpy as np, torch\n"
        "from model.convlstm import ConvLSTM\n"
        "from model.rollout import rollout\n"
        "from model.runtime import tune_cpu_allocator\n"
        "model = ConvLSTM(in_channels=1, hidden_channels=(4,), frame_size=(8, 8)).eval()\n"
        "with torch.no_grad():\n"
        "    model(torch.rand(1, 3, 1, 8, 8), horizon=2)\n"
        "rollout(model, np.zeros((3, 1, 8, 8), np.float32), 2)\n"
        "print(tune_cpu_allocator.cache_info().currsize)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # tune_cpu_allocator was never called


def test_entry_points_tune_the_allocator(monkeypatch):
    import bench.rollout
    import model.evaluate

    calls = []
    monkeypatch.setattr(bench.rollout, "tune_cpu_allocator", lambda: calls.append("bench"))
    monkeypatch.setattr(bench.rollout, "cold_probe", lambda *a, **k: None)
    bench.rollout.main(["--cold-probe", "radar", "default"])
    bench.rollout.main(["--cold-probe", "radar", "reference"])  # community code: glibc defaults
    assert calls == ["bench"]

    monkeypatch.setattr(model.evaluate, "tune_cpu_allocator", lambda: calls.append("evaluate"))
    with pytest.raises(SystemExit):  # no such checkpoint: the allocator is tuned before that
        model.evaluate.main(["/nonexistent/checkpoint"])
    assert calls == ["bench", "evaluate"]


def test_server_rollouts_use_one_torch_thread_on_two_cores_unless_told():
    from model.runtime import TORCH_THREADS_ENV, server_torch_threads

    assert server_torch_threads({}, cores=1) == 1
    assert server_torch_threads({}, cores=2) == 1
    assert server_torch_threads({}, cores=8) is None  # torch's own default
    assert server_torch_threads({TORCH_THREADS_ENV: "3"}, cores=2) == 3
    assert server_torch_threads({TORCH_THREADS_ENV: " "}, cores=2) == 1
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ValueError, match=TORCH_THREADS_ENV):
            server_torch_threads({TORCH_THREADS_ENV: bad}, cores=2)


def test_set_server_torch_threads_applies_the_setting(monkeypatch):
    import torch

    from model.runtime import TORCH_THREADS_ENV, set_server_torch_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(TORCH_THREADS_ENV, "1")
        assert set_server_torch_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)

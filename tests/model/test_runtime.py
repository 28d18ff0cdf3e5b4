"""Host-memory tuning: glibc's malloc thresholds are set once, and can be left alone."""

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

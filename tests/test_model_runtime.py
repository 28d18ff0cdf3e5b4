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

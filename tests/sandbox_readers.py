"""Misbehaving readers for the sandbox tests, importable by name in the sandbox's child process.

Each is called as ``reader(path, max_bytes=...)`` like :func:`datasets.files.read_any`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from datasets.files import as_dataset_array


def hog_memory(path, *, max_bytes=None):
    """Allocate (and touch) far more memory than the sandbox allows."""
    blocks = []
    for _ in range(64):
        blocks.append(np.ones(256 * 2**20, dtype=np.uint8))  # 256 MiB each, 16 GiB in all
    return blocks


def spin(path, *, max_bytes=None):
    """Never finish (a parser stuck in a loop)."""
    while True:
        time.sleep(0.01)


def spin_with_grandchild(path, *, max_bytes=None):
    """Start a long-lived helper program (as imageio starts ffmpeg), write its pid, never finish."""
    helper = subprocess.Popen(["sleep", "300"])
    Path(path).with_suffix(".pid").write_text(str(helper.pid))
    while True:
        time.sleep(0.01)


def crash(path, *, max_bytes=None):
    """Die without a word (a segfault in a C library)."""
    os._exit(139)


def small_array(path, *, max_bytes=None):
    """A valid result: what comes back must equal what the child made."""
    values = np.arange(2 * 3 * 1 * 4 * 5, dtype=np.float32).reshape(2, 3, 1, 4, 5)
    return as_dataset_array(
        values,
        units="mm/h",
        time_step="PT5M",
        domain="radar",
        source=Path(path).name,
        description="made by tests/sandbox_readers.py",
        time=np.array(["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:10"], "M8[ns]"),
        channel=["rain"],
    )


def report_main_module(path, *, max_bytes=None):
    """A tiny array whose attrs say what the child imported before reading: the parent's main
    script (``__mp_main__``) and whether the model code (``model.rollout``, torch) was loaded."""
    import sys

    main = sys.modules.get("__mp_main__")
    return as_dataset_array(
        np.zeros((1, 2, 1, 2, 2), np.float32),
        units="1",
        time_step="PT5M",
        domain="radar",
        source=Path(path).name,
        description="what the sandbox child imported",
        extra_attrs={
            "mp_main": str(getattr(main, "__file__", "")),
            "model_loaded": int("model.rollout" in sys.modules or "torch" in sys.modules),
        },
    )

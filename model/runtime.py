"""Host-memory settings that make CPU rollouts fast, applied by entry points, never by the model.

A rollout allocates and frees a few MiB of activations per layer and step (convolution outputs,
gate pre-activations, new states). glibc serves every allocation over 128 KiB with fresh pages from
``mmap`` and unmaps it on ``free``, so each of those tensors page-faults its memory in again: on
this project's 2-core CPU that was 10-25% of a radar rollout (the ``copy`` of a 4 MiB tensor took
1.25 ms instead of 0.08 ms). Raising glibc's mmap and trim thresholds keeps freed blocks in the heap
for reuse, the usual cure (PyTorch's CPU tuning guide suggests jemalloc or tcmalloc for the same
reason; those need a ``LD_PRELOAD`` and a system package, this needs neither).

The setting is process-wide, so programs opt in: ``python -m bench.rollout``,
``python -m model.evaluate`` and training call :func:`tune_cpu_allocator` at start; the network
(:mod:`model.convlstm`) does not. The dashboard leaves it alone and trims with
:func:`release_memory` after rollouts.

A server's rollouts share the CPU with the web server, the page's figure building and the
background warm-up: :func:`set_server_torch_threads` gives torch one intra-op thread where the
process may use at most :data:`FEW_CORES` cores (on this project's busy 2-core CPU, 2 threads made
the opening whole-domain rollout take 1.2-36 s, 1 thread a steady 0.4-1.7 s), else torch's own
default. ``CONVLSTM_LAB_TORCH_THREADS=N`` sets it.

The cost: up to :data:`TRIM_THRESHOLD` bytes of freed memory may stay with the process instead of
going back to the operating system. Set ``CONVLSTM_LAB_KEEP_MALLOC=1`` to leave glibc as it is.
glibc marks ``mallopt`` MT-unsafe only because it writes two word-sized parameters that other
threads' ``malloc`` read unlocked; a thread seeing the old value for a moment just uses the old
threshold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

MMAP_THRESHOLD = 256 * 2**20
"""Allocations below this many bytes come from the reusable heap instead of fresh ``mmap`` pages."""

TRIM_THRESHOLD = 512 * 2**20
"""Free memory at the top of the heap is returned to the OS only beyond this many bytes."""

FEW_CORES = 2
"""On at most this many usable cores a server's rollouts run on one torch thread."""

TORCH_THREADS_ENV = "CONVLSTM_LAB_TORCH_THREADS"
"""Torch intra-op threads of a server's rollouts (a positive integer), overriding the default."""

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def _libc_function(name: str):
    """A function of the C library (glibc), or None where there is no such function."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


@functools.cache
def tune_cpu_allocator() -> bool:
    """Set glibc's malloc thresholds once per process (see the module docstring).

    Returns
    -------
    bool
        True when the thresholds are set (now or by an earlier call); False where it does not
        apply (not Linux/glibc, or ``CONVLSTM_LAB_KEEP_MALLOC=1``).
    """
    if not sys.platform.startswith("linux") or os.environ.get("CONVLSTM_LAB_KEEP_MALLOC") == "1":
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def release_memory() -> bool:
    """Hand freed heap memory back to the operating system (glibc ``malloc_trim(0)``).

    The thresholds set by :func:`tune_cpu_allocator` keep freed blocks for the next rollout; a
    long-running server calls this after a rollout or when its caches drop entries, so that its
    resident memory follows what it actually holds. Costs a few milliseconds.

    Returns
    -------
    bool
        True when memory was released; False where glibc is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def server_torch_threads(environ=None, cores: int | None = None) -> int | None:
    """Torch threads a server's rollouts should use: ``None`` leaves torch's default.

    Parameters
    ----------
    environ : mapping, optional
        Where :data:`TORCH_THREADS_ENV` is read (default ``os.environ``).
    cores : int, optional
        Usable cores (default :func:`usable_cores`).

    Returns
    -------
    int or None
        :data:`TORCH_THREADS_ENV` when set; 1 on at most :data:`FEW_CORES` cores; else None.

    Raises
    ------
    ValueError
        :data:`TORCH_THREADS_ENV` is not a positive integer.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(TORCH_THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{TORCH_THREADS_ENV}={raw!r}: give a positive number of threads")
        return int(raw)
    return 1 if (usable_cores() if cores is None else cores) <= FEW_CORES else None


def set_server_torch_threads() -> int:
    """Apply :func:`server_torch_threads` to this process (see the module docstring).

    Returns
    -------
    int
        Torch's intra-op threads now.
    """
    import torch

    threads = server_torch_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()

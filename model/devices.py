"""GPU out-of-memory handling: recognise the error and run again on the CPU.

A forecast that does not fit the GPU (a large grid, a long horizon, another process holding the
memory) still fits the CPU's much larger memory, only slower. Loading
(:func:`model.checkpoint.load_checkpoint`) and the dashboard's rollouts
(:func:`run_with_cpu_fallback`) fall back to the CPU instead of failing.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")

CPU_FALLBACK_NOTE = "GPU out of memory; running on the CPU"
"""The device note shown to users after a fallback (``meta["device_note"]``)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says a GPU ran out of memory.

    ``torch.cuda.OutOfMemoryError``, or a ``RuntimeError`` whose message says "out of memory"
    (older PyTorch, cuDNN and MPS raise plain ``RuntimeError``). CPU allocation failures say
    "can't allocate memory" and are not matched: there is nowhere to fall back to.
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_gpu_memory() -> None:
    """Drop unreachable tensors and return cached GPU blocks to the driver (no-op without CUDA)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_cpu_fallback(fn: Callable[[nn.Module], T], model: nn.Module) -> tuple[T, str | None]:
    """Call ``fn(model)``; if the GPU runs out of memory, move ``model`` to the CPU and call again.

    Parameters
    ----------
    fn : callable
        Takes the model and does the work, e.g.
        ``lambda net: rollout(net, context, horizon, normalizer=norm)``. It must read the model's
        device from the model (as :func:`model.rollout.rollout` does), not capture a device.
    model : torch.nn.Module
        The network. After a fallback it stays on the CPU (``Module.to`` moves it in place), so a
        cached model does not hit the same wall on the next call.

    Returns
    -------
    (object, str or None)
        What ``fn`` returned, and :data:`CPU_FALLBACK_NOTE` when it ran again on the CPU (None when
        the first call succeeded). Show the note next to the result.

    Raises
    ------
    Exception
        Whatever ``fn`` raises that is not a GPU out-of-memory error, and any error of the retry
        on the CPU (it is tried once).
    """
    try:
        return fn(model), None
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
    # Outside the except block: the traceback (and the GPU tensors its frames hold) is released.
    model.to("cpu")
    free_gpu_memory()
    return fn(model), CPU_FALLBACK_NOTE


__all__ = ["CPU_FALLBACK_NOTE", "free_gpu_memory", "is_out_of_memory", "run_with_cpu_fallback"]

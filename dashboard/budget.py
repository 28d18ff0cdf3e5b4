"""Caches bounded in bytes, shared by every session of one dashboard server (no Streamlit here).

Streamlit's own caches bound the number of entries, not their size: eight cached datasets can be
8 MB or 8 GB. Each cache here has a byte budget; the least recently used entries go when a new one
would pass it, and a single result larger than its whole budget is handed back without being kept.
Results are shared, not copied: callers must not modify them (the rollout, figure and score
builders return fresh objects and the page only reads them).

Memory budget of one server (see the README): the sum of :data:`BUDGETS` (1.5 GiB) plus the
loaded models (at most :data:`MAX_MODELS`, a few MB each here) plus the Python process itself
(about 0.5 GiB with torch, xarray and Streamlit loaded). An upload is read in a child process
(:mod:`datasets.sandbox`), whose memory is returned when it exits.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

MiB = 2**20

BUDGETS = {
    "datasets": 384 * MiB,
    "uploads": 256 * MiB,
    "rollouts": 640 * MiB,
    "figures": 192 * MiB,
    "scores": 64 * MiB,
}
"""Byte budget of each shared cache (1.5 GiB in all)."""

MAX_MODELS = 4
"""Loaded checkpoints kept (models are small: the shipped ones are 0.3-4 MB of weights)."""

IDLE_SECONDS = 600.0
"""Entries not used for this long are dropped at the next cache access (10 minutes)."""


def approx_nbytes(obj: Any, *, _depth: int = 0) -> int:
    """Bytes held by ``obj``: numpy/xarray buffers exactly, containers and plotly figures roughly.

    Parameters
    ----------
    obj : object
        An ``xarray`` object, a ``numpy`` array, a ``pandas`` frame, a plotly ``Figure``, or nested
        dicts/lists/tuples of those and of strings and numbers.

    Returns
    -------
    int
        An estimate in bytes (arrays counted by ``nbytes``, strings by length, 64 bytes per other
        object); nesting deeper than 64 levels counts as 64 bytes.
    """
    if _depth > 64:
        return 64
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int) and not isinstance(obj, bool):
        return int(nbytes)
    if hasattr(obj, "memory_usage") and callable(obj.memory_usage):  # pandas
        try:
            return int(obj.memory_usage(deep=True).sum())
        except (TypeError, ValueError):
            pass
    if hasattr(obj, "to_plotly_json"):  # plotly figures: their data, layout and frames
        obj = {
            "data": getattr(obj, "_data", []),
            "layout": getattr(obj, "_layout", {}),
            "frames": [getattr(f, "_props", {}) for f in getattr(obj, "_frame_objs", ())],
        }
    if isinstance(obj, str | bytes | bytearray):
        return len(obj)
    if isinstance(obj, dict):
        return 64 + sum(
            approx_nbytes(k, _depth=_depth + 1) + approx_nbytes(v, _depth=_depth + 1)
            for k, v in obj.items()
        )
    if isinstance(obj, list | tuple | set | frozenset):
        return 64 + sum(approx_nbytes(v, _depth=_depth + 1) for v in obj)
    return 64


@dataclass
class _Entry:
    value: Any
    nbytes: int
    used: float = field(default_factory=time.monotonic)


class ByteLRU:
    """A thread-safe least-recently-used cache bounded in bytes.

    Parameters
    ----------
    name : str
        Shown in :meth:`stats`.
    max_bytes : int
        Budget; entries are evicted (least recently used first) to stay within it.
    idle_seconds : float
        Entries unused for longer are dropped at the next access.
    size_of : callable
        ``size_of(value) -> bytes`` (default :func:`approx_nbytes`).
    on_evict : callable, optional
        Called (no arguments, outside the lock) after entries were dropped, e.g. to hand freed
        memory back to the operating system.
    """

    def __init__(
        self,
        name: str,
        max_bytes: int,
        *,
        idle_seconds: float = IDLE_SECONDS,
        size_of: Callable[[Any], int] = approx_nbytes,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = int(max_bytes)
        self.idle_seconds = float(idle_seconds)
        self.size_of = size_of
        self.on_evict = on_evict
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` stored under it (computed once at a time).

        Concurrent calls for the same key wait for the first one (a model or dataset is loaded
        once, not once per session); when ``compute`` raises, nothing is stored and each waiting
        caller then tries for itself.
        """
        hit = self.get(key)
        if hit is not _MISSING:
            return hit
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self.get(key)
            if hit is not _MISSING:
                return hit
            try:
                value = compute()
                self.put(key, value)
                return value
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)

    def get(self, key: Hashable) -> Any:
        """The value stored under ``key`` (marked as used), or the sentinel ``_MISSING``."""
        dropped = self._drop_idle()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.used = time.monotonic()
                self._entries.move_to_end(key)
        if dropped and self.on_evict:
            self.on_evict()
        return _MISSING if entry is None else entry.value

    def put(self, key: Hashable, value: Any) -> bool:
        """Store ``value``; returns False (and keeps nothing) when it alone exceeds the budget."""
        nbytes = int(self.size_of(value))
        dropped = 0
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if nbytes > self.max_bytes:
                stored = False
            else:
                while self._entries and self._bytes + nbytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= evicted.nbytes
                    dropped += 1
                self._entries[key] = _Entry(value, nbytes)
                self._bytes += nbytes
                stored = True
        if dropped and self.on_evict:
            self.on_evict()
        return stored

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
        if self.on_evict:
            self.on_evict()

    def _drop_idle(self) -> int:
        now = time.monotonic()
        dropped = 0
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.used > self.idle_seconds]:
                self._bytes -= self._entries.pop(key).nbytes
                dropped += 1
        return dropped

    def stats(self) -> dict[str, int | str]:
        """``{"name", "entries", "bytes", "max_bytes"}`` for logs and tests."""
        with self._lock:
            return {
                "name": self.name,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()

MISSING = _MISSING
"""What :meth:`ByteLRU.get` returns for a key it does not hold."""

__all__ = ["BUDGETS", "MISSING", "ByteLRU", "IDLE_SECONDS", "MAX_MODELS", "approx_nbytes"]

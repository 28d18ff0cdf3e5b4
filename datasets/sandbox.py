"""Read untrusted files in a child process with a memory limit and a wall-clock timeout.

The readers in :mod:`datasets` check what a file *declares* (sizes, links to other files) before
they read it, but they sit on third-party parsers (HDF5, netCDF-C, zarr, pillow, ffmpeg) whose bugs
we cannot fix. A server that parses uploads in its own process can be taken down by one of them: a
parser that allocates gigabytes, or loops, holds the whole dashboard. :func:`read_isolated` runs
:func:`datasets.files.read_any` in a child process instead, so the worst a hostile file can do is
exhaust the child:

- the child gets an address-space limit (``RLIMIT_AS``: its size at start plus ``memory_bytes``) and
  a CPU-time limit (``RLIMIT_CPU``), and it writes no files bigger than the limit (``RLIMIT_FSIZE``);
- the parent waits at most ``timeout_s`` seconds, then kills the child's whole process group (ffmpeg
  included);
- only the finished array (or one error sentence) comes back through a pipe.

Children are forked from a *forkserver* (a clean, single-threaded process that has already imported
the readers), not from the multi-threaded server itself: forking a process with running threads
can deadlock on locks those threads held, and spawning a fresh interpreter would import numpy,
xarray and the HDF5 stack again for every file (about a second). :func:`warm_up` starts the
forkserver ahead of the first upload.

Why a process and not only the declared-size checks: the checks are the first line (plain messages,
no work done); the child is the second, for everything a parser does that no check foresaw.
"""

from __future__ import annotations

import importlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError

DEFAULT_MEMORY_BYTES = 2 * 1024**3
"""Address space a child may add to what it had at start (2 GiB: headroom over the readers' limits)."""

DEFAULT_TIMEOUT_S = 60.0
"""Wall-clock seconds a child may take to read one file."""

HEADER_MAX_BYTES = 1024**2
"""Largest status message (JSON: kind, attrs and coordinate names) accepted from a child."""

DEFAULT_READER = "datasets.files:read_any"

PRELOAD = ["datasets.files", "datasets.catalog", "datasets.untrusted"]
"""Modules the forkserver imports once, so each child starts with the readers loaded."""

_CONTEXT_LOCK = threading.Lock()
_CONTEXT: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    """The forkserver context (fork where there is no forkserver, e.g. never on Linux)."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("forkserver")
                preload = [m for m in PRELOAD if _importable(m)]
                ctx.set_forkserver_preload(preload)
            else:  # macOS and Windows: spawn (slow, but safe)
                ctx = multiprocessing.get_context("spawn")
            _CONTEXT = ctx
        return _CONTEXT


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _virtual_size() -> int | None:
    """This process's current address-space size in bytes (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _limit_child(memory_bytes: int, cpu_s: int) -> None:
    """Apply the child's resource limits (where the platform has them)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    base = _virtual_size()
    if base is not None:
        cap = base + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    big = memory_bytes
    resource.setrlimit(resource.RLIMIT_FSIZE, (big, big))


def _child(
    conn, reader: str, path: str, max_bytes: int | None, memory_bytes: int, cpu_s: int, options
):
    """Body of the child: limits, read, send ``["ok", header]`` + data or ``["error", sentence]``."""
    try:
        os.setpgid(0, 0)  # own process group: a timeout kills ffmpeg and friends too
    except OSError:
        pass
    try:
        _limit_child(memory_bytes, cpu_s)
        module, _, function = reader.partition(":")
        read = getattr(importlib.import_module(module), function)
        result_limit = options.pop("_max_result_bytes", None)
        data = read(path, max_bytes=max_bytes, **options)
        if result_limit is not None and data.nbytes > result_limit:
            raise DatasetError(
                f"{Path(path).name}: decodes to {data.nbytes / 2**20:.0f} MiB "
                f"({' x '.join(map(str, data.shape))} float32), over the limit of "
                f"{result_limit / 2**20:.0f} MiB; crop it in time or space first."
            )
        header, payload = _pack(data.load())
        conn.send_bytes(json.dumps(["ok", header]).encode())
        conn.send_bytes(payload)
    except DatasetError as exc:
        conn.send_bytes(json.dumps(["error", str(exc)]).encode())
    except MemoryError:
        conn.send_bytes(json.dumps(["memory", ""]).encode())
    except BaseException as exc:  # noqa: BLE001 - anything else is reported, never raised here
        conn.send_bytes(
            json.dumps(["error", f"could not be read ({type(exc).__name__})."]).encode()
        )
    finally:
        conn.close()


def _plain_attrs(attrs: dict) -> dict:
    """The attrs JSON can carry (str, int, float, bool), numpy scalars as Python ones."""
    return {
        str(k): v.item() if isinstance(v, np.generic) else v
        for k, v in attrs.items()
        if isinstance(v, str | int | float | bool | np.generic)
    }


def _pack(data: xr.DataArray) -> tuple[dict, bytes]:
    """A dataset array as plain parts: JSON-able header and ``.npz`` bytes (no pickle).

    Every coordinate along the array's dims travels with its attrs: the dimension coordinates and
    the others, such as ``timestamp (sample, time)`` (a window's real times) or the ``units`` of
    ``y``/``x`` (a map in metres or km); object-typed ones are left out.
    """
    arrays = {"values": np.ascontiguousarray(data.values)}
    coords = {}
    for index, (name, coord) in enumerate(data.coords.items()):
        values = np.asarray(coord.values)
        if values.dtype.kind not in "biufcmMU" or not set(coord.dims) <= set(data.dims):
            continue
        arrays[f"coord_{index}"] = values
        coords[str(name)] = {
            "key": f"coord_{index}",
            "dims": list(coord.dims),
            "attrs": _plain_attrs(coord.attrs),
        }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    header = {
        "dims": list(data.dims),
        "attrs": _plain_attrs(data.attrs),
        "name": data.name,
        "coords": coords,
    }
    return header, buffer.getvalue()


def _unpack(header: dict, payload: bytes) -> xr.DataArray:
    """Inverse of :func:`_pack`; never unpickles (``allow_pickle=False``)."""
    dims = [str(d) for d in header["dims"]]
    coords = {}
    with np.load(io.BytesIO(payload), allow_pickle=False) as parts:
        values = parts["values"]
        for name, spec in dict(header.get("coords") or {}).items():
            coord_dims = tuple(str(d) for d in spec.get("dims", ()))
            key = str(spec.get("key"))
            if key in parts.files and set(coord_dims) <= set(dims):
                coords[str(name)] = (coord_dims, parts[key], dict(spec.get("attrs") or {}))
    return xr.DataArray(
        values, dims=dims, coords=coords, attrs=dict(header["attrs"]), name=header.get("name")
    )


def warm_up() -> None:
    """Start the forkserver (imports the readers once) so the first upload is read quickly."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def read_isolated(
    path: str | os.PathLike,
    *,
    max_bytes: int | None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reader: str = DEFAULT_READER,
    max_result_bytes: int | None = None,
    **options,
) -> xr.DataArray:
    """:func:`datasets.files.read_any` in a limited child process.

    Parameters
    ----------
    path : path
        The untrusted file (or Zarr folder).
    max_bytes : int or None
        File-size limit passed to the reader (bytes).
    memory_bytes : int
        Address space (bytes) the child may add to what it had at start.
    timeout_s : float
        Seconds before the child (and its process group) is killed.
    reader : str
        ``"module:function"`` called as ``function(path, max_bytes=..., **options)`` in the child
        (default :func:`datasets.files.read_any`; a name, so nothing is pickled into the child).
    max_result_bytes : int, optional
        Largest array (bytes) accepted back; a file that decodes to more is refused.
    **options
        Passed to the reader.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``, as :func:`datasets.files.read_any` returns.

    Raises
    ------
    DatasetError
        The reader's own message, or one sentence saying that reading the file needed more memory or
        time than allowed, or that the reader crashed.
    """
    name = Path(path).name
    result_limit = int(memory_bytes)
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    cpu_s = max(1, int(timeout_s) + 1)
    proc = ctx.Process(
        target=_child,
        args=(
            send,
            reader,
            str(path),
            max_bytes,
            int(memory_bytes),
            cpu_s,
            dict(options, _max_result_bytes=max_result_bytes),
        ),
        daemon=True,
    )
    proc.start()
    send.close()
    deadline = time.monotonic() + timeout_s
    try:
        message = None
        while time.monotonic() < deadline:
            if receive.poll(min(0.2, max(0.0, deadline - time.monotonic()))):
                try:
                    message = json.loads(receive.recv_bytes(maxlength=HEADER_MAX_BYTES))
                    if message[0] == "ok":
                        message = ("ok", _unpack(message[1], receive.recv_bytes(result_limit)))
                except (EOFError, OSError, ValueError, KeyError, TypeError):
                    message = ("crash", "")
                break
            if not proc.is_alive() and not receive.poll(0):
                message = ("crash", "")
                break
    finally:
        _stop(proc)
        receive.close()
    if message is None:
        raise DatasetError(
            f"{name}: reading it took longer than {timeout_s:g} s, so it was stopped. "
            "Send a smaller or simpler file."
        )
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "memory":
        raise DatasetError(
            f"{name}: reading it needed more than {memory_bytes / 2**30:.1f} GiB of memory, so it "
            "was stopped. Crop it in time or space first."
        )
    if kind == "crash":
        code = proc.exitcode
        why = "ran out of memory or time" if code in (-signal.SIGKILL, -signal.SIGXCPU) else ""
        raise DatasetError(
            f"{name}: the reader stopped without an answer{' (' + why + ')' if why else ''}. "
            "The file is damaged or in a form this app cannot read."
        )
    payload = payload.replace(str(path), name).replace(str(Path(path).parent) + os.sep, "")
    raise DatasetError(payload if payload.startswith(name) else f"{name}: {payload}")


def _stop(proc) -> None:
    """End the child and everything it started (its own process group)."""
    if proc.pid is None:
        return
    proc.join(timeout=0.5)
    if proc.exitcode is None and sys.platform != "win32":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    elif proc.exitcode is None:
        proc.kill()
    proc.join(timeout=2)
    if sys.platform != "win32":
        try:  # a grandchild (ffmpeg) left in the group after the child exited
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


__all__ = ["DEFAULT_MEMORY_BYTES", "DEFAULT_TIMEOUT_S", "read_isolated", "warm_up"]

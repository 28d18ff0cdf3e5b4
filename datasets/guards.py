"""Guards every reader puts around a file: it exists and is not too large, errors name it, checksums.

- :func:`check_file`: a missing, empty, folder-where-a-file-is-needed or too large path is refused
  before any library opens it;
- :func:`reader_errors`: a decorator that turns whatever a library raises into one
  :class:`DatasetError` naming the file (base name only, never the server folder);
- :func:`sha256_of`: the SHA-256 of a file, read in chunks (downloads and checkpoints check it).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from datasets.errors import DatasetError
from datasets.untrusted import public_message

DEFAULT_MAX_BYTES = 200 * 1024**2  # 200 MiB: large enough for an upload, small enough for RAM


def check_file(
    path: str | os.PathLike,
    *,
    max_bytes: int | None,
    folder_ok: bool = False,
    hint: str = "Check the path (or upload the file again).",
    limit_hint: str = "Crop or subsample it first, or pass a larger max_bytes.",
) -> Path:
    """Resolve ``path`` and refuse a missing file or one larger than ``max_bytes``.

    Parameters
    ----------
    path : path
        The file (or, with ``folder_ok``, a folder such as a Zarr store: its files are summed).
    max_bytes : int or None
        Size limit (None: no limit).
    folder_ok : bool
        Accept a folder.
    hint, limit_hint : str
        What to do, appended to the message about a missing file / a file over the limit.

    Raises
    ------
    DatasetError
        Missing path, a folder where a file is needed, an empty file, or more than ``max_bytes``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path.name}: no such file (it does not exist). {hint}")
    if path.is_dir():
        if not folder_ok:
            raise DatasetError(f"{path.name}: is a folder, not a regular file; give a file.")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    elif not path.is_file():
        raise DatasetError(f"{path.name}: is not a regular file; give a file.")
    else:
        size = path.stat().st_size
    if size == 0:
        raise DatasetError(
            f"{path.name}: is empty (0 bytes); the file is truncated or not written yet."
        )
    if max_bytes is not None and size > max_bytes:
        raise DatasetError(
            f"{path.name}: {size / 1e6:.1f} MB is larger than the limit of {max_bytes / 1e6:.1f} MB. "
            + limit_hint
        )
    return path


def reader_errors(
    kind: str, *, hint: str = "check that the file is complete and in that format."
) -> Callable:
    """Decorator: any exception becomes a DatasetError naming the file (base name) and ``kind``.

    The decorated function takes the path as its first argument. A :class:`DatasetError` keeps its
    text without the server folder; ``MemoryError``/``RecursionError`` say the file is too large or
    malformed; anything else (third-party readers raise anything on malformed input) is wrapped with
    its type and message and ``hint``.
    """

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(path, *args, **kwargs):
            name = Path(path).name
            try:
                return func(path, *args, **kwargs)
            except DatasetError as exc:
                raise DatasetError(public_message(str(exc), path)) from exc.__cause__
            except (MemoryError, RecursionError) as exc:
                raise DatasetError(
                    f"{name}: too large or malformed to read as {kind} ({type(exc).__name__})."
                ) from None
            except Exception as exc:  # third-party readers raise anything on malformed input
                detail = public_message(f"{type(exc).__name__}: {exc}", path)
                raise DatasetError(
                    f"{name}: could not be read as {kind} ({detail}); {hint}"
                ) from exc

        return inner

    return wrap


def sha256_of(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Lower-case hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["DEFAULT_MAX_BYTES", "check_file", "reader_errors", "sha256_of"]

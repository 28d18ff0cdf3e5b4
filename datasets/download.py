"""Checksummed downloads of public data into a user cache dir (pooch), plus a small CLI.

Sources
-------
Every file comes from one named *source*: a base URL under which files keep the relative paths of
the public repository they come from.

=================  ==============================================================================
source             default base URL
=================  ==============================================================================
``pysteps-data``   https://github.com/pySTEPS/pysteps-data/raw/master/
                   (paths like ``radar/mch/20160711/AQC161932100V_00005.801.gif``)
``taxinyc``        https://github.com/pengzhangzhi/spatial-temporal-transformer/raw/main/data/
                   (paths like ``TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5``)
``mnist-seq``      http://www.cs.toronto.edu/~nitish/unsupervised_video/ (``mnist_test_seq.npy``)
=================  ==============================================================================

The base URL is chosen, first match wins, from: the ``base_url`` argument; the environment
variable ``CONVLSTM_LAB_BASE_URL_<SOURCE>`` with the source name upper-cased and every character
that is not a letter or digit replaced by ``_`` (``CONVLSTM_LAB_BASE_URL_PYSTEPS_DATA``,
``CONVLSTM_LAB_BASE_URL_TAXINYC``, ``CONVLSTM_LAB_BASE_URL_MNIST_SEQ``); the default above.

Files land in ``<cache>/<source>/<relative_path>`` where ``<cache>`` is the ``cache_dir`` argument,
else the environment variable ``CONVLSTM_LAB_CACHE``, else ``platformdirs.user_cache_dir(
"convlstm-lab")``. A file already in the cache with the right checksum is not downloaded again.

The files of each dataset
------------------------
The one table of what each downloadable dataset needs is :data:`datasets.manifests.MANIFESTS`
(``{name: FileSet(source, {relative_path: sha256})}``); this module reads it when imported and
checks every path and hash. Dataset loaders then call::

    paths = fetch_dataset("radar_mch", cache_dir=cache_dir, base_url=base_url,
                          download=download)   # {relative_path: Path}

- ``fetch_dataset(name, download=False)`` returns the cached paths, raising :class:`DatasetError`
  ("Dataset not found. Use download=True ...") when a file is missing; with ``download=True`` it
  fetches the missing ones.
- :func:`fetch` fetches a single file.
- :func:`register_files` adds a dataset at run time (a user's own mirror of files); built-in
  datasets are in the table, never registered.
- Hashes are lower-case hex SHA-256 (:func:`datasets.guards.sha256_of`, or
  ``python -m datasets.download --manifest DIR``); ``None`` skips the check; a source that only
  publishes another hash may give ``"md5:<hex>"``.

CLI::

    python -m datasets.download NAME [--base-url URL] [--cache-dir DIR]
    python -m datasets.download --list
    python -m datasets.download --manifest DIR [--pattern GLOB]   # prints {relative_path: sha256}
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path, PurePosixPath

from datasets.cli import EXIT_USAGE, Parser, one_line, one_line_errors
from datasets.errors import DataNotFound, DatasetError
from datasets.guards import sha256_of
from datasets.manifests import MANIFESTS, FileSet

SOURCES: dict[str, str] = {
    "pysteps-data": "https://github.com/pySTEPS/pysteps-data/raw/master/",
    "taxinyc": "https://github.com/pengzhangzhi/spatial-temporal-transformer/raw/main/data/",
    "mnist-seq": "http://www.cs.toronto.edu/~nitish/unsupervised_video/",
}
CACHE_ENV = "CONVLSTM_LAB_CACHE"
BASE_URL_ENV_PREFIX = "CONVLSTM_LAB_BASE_URL_"
DEFAULT_TIMEOUT_S = 60.0  # seconds without bytes from the server before a download is abandoned


_FILE_SETS: dict[str, FileSet] = {}


def register_files(name: str, source: str, files: dict[str, str | None]) -> None:
    """Declare, at run time, the files that dataset ``name`` downloads from ``source``.

    The built-in datasets are in :data:`datasets.manifests.MANIFESTS` and need no call.

    Parameters
    ----------
    name : str
        Name used by ``python -m datasets.download NAME`` and :func:`fetch_dataset`
        (case-insensitive; normally the registered dataset name).
    source : str
        One of :data:`SOURCES`.
    files : dict of str to (str or None)
        Relative path under the source's base URL (POSIX, no ``..``) to its lower-case hex SHA-256,
        ``"md5:<hex>"``, or None to skip the check.

    Raises
    ------
    ValueError
        Unknown source, empty or unsafe paths, malformed hash, or ``name`` registered twice with
        different files.
    """
    _check_source(source)
    if not files:
        raise ValueError(f"register_files({name!r}): no files given")
    checked = {}
    for rel, digest in files.items():
        checked[_safe_relative(rel)] = _check_hash(digest, where=f"{name!r}/{rel!r}")
    key = name.lower()
    new = FileSet(source, checked)
    if key in _FILE_SETS and _FILE_SETS[key] != new:
        raise ValueError(f"downloadable dataset {key!r} is registered twice with different files")
    _FILE_SETS[key] = new


def registered_downloads() -> dict[str, FileSet]:
    """The downloadable datasets: the manifests table plus any added with :func:`register_files`."""
    return dict(sorted(_FILE_SETS.items()))


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$CONVLSTM_LAB_CACHE``, else the user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("convlstm-lab"))


def base_url_for(source: str, base_url: str | None = None) -> str:
    """Base URL of ``source`` (argument, then environment, then default), ending in ``/``."""
    _check_source(source)
    url = base_url or os.environ.get(env_var_for(source)) or SOURCES[source]
    return url if url.endswith("/") else url + "/"


def env_var_for(source: str) -> str:
    """Name of the environment variable that overrides the base URL of ``source``."""
    return BASE_URL_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", source).upper()


def cached_path(
    source: str, relative_path: str, *, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Where :func:`fetch` stores ``relative_path`` of ``source`` (whether or not it exists)."""
    _check_source(source)
    return (
        cache_root(cache_dir) / source / Path(*PurePosixPath(_safe_relative(relative_path)).parts)
    )


def fetch(
    source: str,
    relative_path: str,
    *,
    sha256: str | None,
    base_url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download one file (or find it in the cache) and check its checksum.

    Parameters
    ----------
    source : str
        One of :data:`SOURCES` (``"pysteps-data"``, ``"taxinyc"``, ``"mnist-seq"``).
    relative_path : str
        POSIX path under the source's base URL, e.g. ``"TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5"``.
    sha256 : str or None
        Lower-case hex SHA-256 of the file (or ``"md5:<hex>"``); None downloads without a check.
    base_url : str, optional
        Overrides the source's base URL (see the module doc for the environment variable).
    cache_dir : path, optional
        Overrides the cache folder.
    progress : bool
        Show a tqdm progress bar.
    timeout : float
        Seconds to wait for the server before giving up.

    Returns
    -------
    pathlib.Path
        The local file, ``<cache>/<source>/<relative_path>``.

    Raises
    ------
    DatasetError
        HTTP error, unreachable server, checksum mismatch, or a cache folder that cannot be written;
        the message names the URL and the local file and says what to do.
    """
    import pooch
    import requests

    known_hash = _check_hash(sha256, where=relative_path)
    if known_hash is not None and ":" not in known_hash:
        known_hash = f"sha256:{known_hash}"
    target = cached_path(source, relative_path, cache_dir=cache_dir)
    url = base_url_for(source, base_url) + _safe_relative(relative_path)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    hint = (
        f"Check the network, or point {env_var_for(source)} (or base_url=) at a mirror that serves "
        f"the same paths, or put the file at {target} yourself."
    )
    try:
        path = pooch.retrieve(
            url,
            known_hash=known_hash,
            fname=target.name,
            path=target.parent,
            downloader=downloader,
            progressbar=progress,
        )
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DatasetError(f"Download of {url} failed with HTTP {status}. {hint}") from exc
    except requests.exceptions.RequestException as exc:
        raise DatasetError(
            f"Download of {url} failed ({type(exc).__name__}: {exc}). {hint}"
        ) from exc
    except ValueError as exc:  # pooch: checksum mismatch (the bad file is deleted, not kept)
        raise DatasetError(
            f"Checksum mismatch for {url} (to {target}): {str(exc).rstrip('.')}. The server sent a different file "
            "than the manifest expects: the mirror may be stale or the download corrupted. Retry, "
            "or use the original base URL; the bad file was not kept."
        ) from exc
    except OSError as exc:
        raise DatasetError(
            f"Could not write {target} while downloading {url}: {exc}. Choose a writable cache "
            f"with cache_dir= or ${CACHE_ENV}."
        ) from exc
    return Path(path)


def fetch_dataset(
    name: str,
    *,
    download: bool = True,
    base_url: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Local paths of every file declared for ``name`` with :func:`register_files`.

    Parameters
    ----------
    name : str
        A name declared with :func:`register_files` (see :func:`registered_downloads`).
    download : bool
        Fetch missing or outdated files. With False, files must already be in the cache.
    base_url, cache_dir, progress
        As in :func:`fetch`.

    Returns
    -------
    dict of str to pathlib.Path
        ``{relative_path: local path}`` in declaration order.

    Raises
    ------
    DatasetError
        Unknown name, a missing file with ``download=False``, or any download failure.
    """
    sets = registered_downloads()
    key = name.lower()
    if key not in sets:
        raise DatasetError(
            f"{name!r} has no downloadable files; downloadable datasets: "
            f"{', '.join(sorted(sets)) or '(none)'}"
        )
    file_set = sets[key]
    paths = {}
    for rel, digest in file_set.files.items():
        if download:
            paths[rel] = fetch(
                file_set.source,
                rel,
                sha256=digest,
                base_url=base_url,
                cache_dir=cache_dir,
                progress=progress,
            )
            continue
        local = cached_path(file_set.source, rel, cache_dir=cache_dir)
        if not local.is_file():
            raise DataNotFound(
                f"Dataset not found: {local} is missing. Use download=True (or run "
                f"`python -m datasets.download {key}`) to download it into {cache_root(cache_dir)}."
            )
        paths[rel] = local
    return paths


def manifest(root: str | os.PathLike, *, pattern: str = "**/*") -> dict[str, str]:
    """``{relative_path: sha256}`` of the files under ``root`` matching ``pattern``, sorted."""
    root = Path(root)
    return {
        path.relative_to(root).as_posix(): sha256_of(path)
        for path in sorted(root.glob(pattern))
        if path.is_file()
    }


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown download source {source!r}; use one of {', '.join(SOURCES)}")


def _safe_relative(relative_path: str) -> str:
    """The path as POSIX text, refusing absolute paths, ``..`` and empty names."""
    text = str(relative_path).replace("\\", "/")
    parts = PurePosixPath(text).parts
    if not parts or text.startswith("/") or any(p in ("..", ".", "") for p in parts):
        raise ValueError(
            f"relative_path {relative_path!r} must be a relative POSIX path without '..'"
        )
    return "/".join(parts)


def _check_hash(digest: str | None, *, where: str) -> str | None:
    if digest is None:
        return None
    text = str(digest).strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", text) or re.fullmatch(r"(sha256|sha1|md5):[0-9a-f]+", text):
        return text
    raise ValueError(f"{where}: {digest!r} is not a hex SHA-256 (or 'md5:<hex>')")


@one_line_errors(DatasetError, ValueError, OSError)
def main(argv: list[str] | None = None) -> int:
    """Command line: download a dataset's files, list downloadable datasets, or print a manifest.

    Returns 0 on success; a refused name or a failed download prints one line on stderr and
    returns 2 (:mod:`datasets.cli`).
    """
    parser = Parser(
        prog="python -m datasets.download",
        description="Download a dataset's public files (checked by SHA-256) into the cache.",
    )
    parser.add_argument("name", nargs="?", help="downloadable dataset (see --list)")
    parser.add_argument("--base-url", help="mirror serving the same relative paths")
    parser.add_argument("--cache-dir", help=f"cache folder (default ${CACHE_ENV} or user cache)")
    parser.add_argument("--list", action="store_true", help="list downloadable datasets")
    parser.add_argument("--manifest", metavar="DIR", help="print {relative_path: sha256} of DIR")
    parser.add_argument("--pattern", default="**/*", help="glob for --manifest (default **/*)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    if args.manifest:
        print(json.dumps(manifest(args.manifest, pattern=args.pattern), indent=1))
        return 0
    sets = registered_downloads()
    if args.list or not args.name:
        for key, file_set in sets.items():
            print(f"{key}\t{file_set.source}\t{len(file_set.files)} files")
        return 0 if args.list else 2
    if args.name.lower() not in sets:
        print(
            f"error: {args.name!r} is not downloadable; choose one of: {', '.join(sets)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        paths = fetch_dataset(
            args.name,
            download=True,
            base_url=args.base_url,
            cache_dir=args.cache_dir,
            progress=not args.quiet,
        )
    except DatasetError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    folders = sorted({str(p.parent) for p in paths.values()})
    print(f"{args.name}: {len(paths)} files ready under {', '.join(folders)}")
    return 0


for _name, _file_set in MANIFESTS.items():  # the table, checked once (paths, hashes, sources)
    register_files(_name, _file_set.source, _file_set.files)


if __name__ == "__main__":
    sys.exit(main())

"""Checks on files users bring, run before any library reads their data.

A file is refused, with one :class:`~datasets.errors.DatasetError`, when it

- names another file: HDF5 / NetCDF-4 external links, external storage, virtual datasets, links of
  any other kind than hard and soft, or filters that are not built into HDF5 (a plugin filter loads
  a shared library) (:func:`check_hdf5`);
- declares more data than the limits allow, whatever its own size: the declared shapes of every
  HDF5 dataset, Zarr array or netCDF-3 variable (:func:`check_hdf5`, :func:`check_zarr`,
  :func:`check_netcdf3_header`), the members of a zip (:func:`check_zip`), the shape of a ``.npy``
  (:func:`check_npy`), the canvas and frames of a GIF (:func:`check_gif`), the frame size of a video
  (:func:`check_video`), the decompressed size of a gzip stream (:func:`check_gzip`), and the
  float32 array a reader would return (:func:`check_decoded`).

Each check reads headers and metadata only, so refusing a file is fast and takes little memory.
Messages name the file by its base name only (never a server folder); :func:`public_message`
strips folders from messages that come from libraries.

Limits
------
==============================  ============================================================
:data:`DEFAULT_MAX_DECODED_BYTES`  512 MiB: the float32 array a reader returns, and the declared
                                  size of all arrays stored in an HDF5 file or Zarr store
:data:`MAX_CHUNK_BYTES`           64 MiB: one HDF5 / Zarr chunk (decompressed whole when read)
:data:`MAX_LINKS`                 10 000 links in an HDF5 file
:data:`MAX_ZIP_MEMBERS`           10 000 members; :data:`MAX_ZIP_RATIO` 100:1 compression
:data:`MAX_IMAGE_SIDE`            8192 pixels; :data:`MAX_IMAGE_PIXELS` 4096 x 4096 per frame
:data:`MAX_VIDEO_SIDE`            4096 pixels on either side of a video frame
:data:`MAX_GIF_PIXELS_READ`       2**28 pixels decoded over all GIF frames read (pillow)
:data:`MAX_VIDEO_PIXELS_READ`     2**30 pixels decoded over all video frames read (ffmpeg)
==============================  ============================================================
"""

from __future__ import annotations

import gzip
import json
import math
import mmap
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError
from datasets.magic import NETCDF3_MAGIC, is_gif

DEFAULT_MAX_DECODED_BYTES = 512 * 2**20  # float32 output (N*T*C*H*W*4) and declared stored arrays
MAX_CHUNK_BYTES = 64 * 2**20  # one chunk is decompressed whole; real chunks are KiB to a few MiB
MAX_LINKS = 10_000  # links in one HDF5 file; a NetCDF-4 file has tens
MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_RATIO = 100  # uncompressed : compressed, checked once a zip unpacks to more than 1 MiB
MAX_METADATA_BYTES = 2**20  # one Zarr metadata document (.zarray, zarr.json, .zmetadata)
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 4096 * 4096  # one frame; pillow composes GIF frames on an RGBA canvas (64 MiB)
MAX_VIDEO_SIDE = 4096
GIF_COMMENT_BYTES = 4096  # comment text kept by gif_info (MeteoSwiss states its product there)
MAX_GIF_PIXELS_READ = 2**28  # frames read x canvas pixels: pillow decodes ~50 Mpixel/s
MAX_VIDEO_PIXELS_READ = 2**30  # frames read x frame pixels (300 frames of 1080p is 0.62e9)
NETCDF3_HEADER_MAX_BYTES = 16 * 2**20  # headers of real files are a few KiB

# HDF5 filters built into the library or h5py; any other id is a plugin, a shared library loaded
# from HDF5_PLUGIN_PATH.
HDF5_FILTERS = {
    1: "deflate",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
}
# Zarr codecs that only decode numbers or bytes (no pickle, no JSON/msgpack objects).
ZARR_CODECS = frozenset(
    {
        "adler32", "astype", "bitround", "blosc", "bytes", "bz2", "categorize", "crc32", "crc32c",
        "delta", "endian", "fixedscaleoffset", "fletcher32", "gzip", "lz4", "lzma", "packbits",
        "quantize", "sharding_indexed", "shuffle", "transpose", "vlen-bytes", "vlen-utf8", "zlib",
        "zstd",
    }
)  # fmt: skip

_NC_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 4, 11: 8, 12: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C


# ----------------------------------------------------------------------------------------------
# Messages
# ----------------------------------------------------------------------------------------------
def public_message(text: str, path: str | os.PathLike) -> str:
    """``text`` with ``path`` replaced by its base name and its folder removed.

    Parameters
    ----------
    text : str
        A message, perhaps from a library that quotes the full path.
    path : path
        The file the message is about.

    Returns
    -------
    str
        The message without the server folder of ``path``.
    """
    path = Path(path)
    for full in {str(path), str(path.expanduser().absolute())}:
        text = text.replace(full, path.name)
    for folder in {str(path.parent), str(path.expanduser().absolute().parent)}:
        if folder not in ("", ".", os.sep):
            text = text.replace(folder + os.sep, "").replace(folder, "(folder)")
    return text


def _refuse(path, text: str) -> DatasetError:
    return DatasetError(f"{Path(path).name}: {text}")


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:,.1f} KiB"


def _product(shape) -> int:
    return math.prod(int(n) for n in shape)


# ----------------------------------------------------------------------------------------------
# The array a reader returns
# ----------------------------------------------------------------------------------------------
def check_decoded(
    path: str | os.PathLike, shape: tuple[int, ...], *, max_bytes: int | None
) -> None:
    """Refuse a float32 output of ``shape`` larger than ``max_bytes``, before allocating it.

    Parameters
    ----------
    path : path
        The file (its base name is used in the message).
    shape : tuple of int
        The output shape, e.g. ``(N, T, C, H, W)``.
    max_bytes : int or None
        Limit on ``prod(shape) * 4`` (None: no limit).

    Raises
    ------
    DatasetError
        The output would exceed ``max_bytes``.
    """
    need = _product(shape) * 4
    if max_bytes is not None and need > max_bytes:
        raise _refuse(
            path,
            f"the data {tuple(int(n) for n in shape)} would take {_mb(need)} as float32, over the "
            f"limit of {_mb(max_bytes)}; crop it to fewer frames or a smaller area first (or pass "
            "a larger max_decoded_bytes for a trusted file).",
        )


# ----------------------------------------------------------------------------------------------
# HDF5 and NetCDF-4
# ----------------------------------------------------------------------------------------------
def _other_file(path, what: str) -> DatasetError:
    return _refuse(
        path,
        f"refers to another file ({what}); files that point at other files are not accepted.",
    )


def check_hdf5(
    path: str | os.PathLike,
    *,
    max_bytes: int | None,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    max_links: int = MAX_LINKS,
) -> int:
    """Walk every link and dataset of an HDF5 (or NetCDF-4) file without reading any data.

    Links are listed with ``H5Lvisit``, which never follows external links; every hard-linked
    object is opened by its link and its creation properties are read.

    Parameters
    ----------
    path : path
        The file.
    max_bytes : int or None
        Limit on the declared size (shape x item size) of all datasets together (None: no limit).
    max_chunk_bytes : int
        Limit on one chunk (chunk shape x item size).
    max_links : int
        Limit on the number of links.

    Returns
    -------
    int
        Declared bytes of all datasets.

    Raises
    ------
    DatasetError
        Not readable as HDF5; an external link, a link of a user-defined class, a dataset with
        external storage, a virtual dataset, a filter that is not built in, a chunk larger than
        ``max_chunk_bytes``, more than ``max_links`` links, or more than ``max_bytes`` declared.
    """
    import h5py

    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError with the full path on damaged files
        raise _refuse(
            path,
            f"cannot be opened as HDF5 ({type(exc).__name__}); the file is truncated, corrupted "
            "or in another format.",
        ) from None
    with handle:
        try:
            return _walk_hdf5(handle, path, max_bytes, max_chunk_bytes, max_links)
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged object headers raise RuntimeError etc.
            raise _refuse(
                path,
                f"is a damaged HDF5 file ({type(exc).__name__} while listing its objects).",
            ) from None


def _walk_hdf5(handle, path, max_bytes: int, max_chunk_bytes: int, max_links: int) -> int:
    """Every link and dataset of an open HDF5 file, checked (see :func:`check_hdf5`)."""
    import h5py

    links: list[tuple[bytes, int]] = []

    def collect(name: bytes, info) -> int | None:
        links.append((name, info.type))
        return 1 if len(links) > max_links else None

    handle.id.links.visit(collect, info=True)
    if len(links) > max_links:
        raise _refuse(path, f"has more than {max_links:,} HDF5 links; it is not a data file.")
    total = 0
    for raw, kind in links:
        name = "/" + raw.decode("utf-8", "replace")
        if kind == h5py.h5l.TYPE_EXTERNAL:
            target_file, target = handle.id.links.get_val(raw)
            target_name = os.path.basename(target_file.decode("utf-8", "replace"))
            raise _other_file(
                path,
                f"external link {name} -> {target_name}:{target.decode('utf-8', 'replace')}",
            )
        if kind == h5py.h5l.TYPE_SOFT:
            continue  # names a path in this file; every link in this file is checked here
        if kind != h5py.h5l.TYPE_HARD:
            raise _other_file(path, f"link {name} of user-defined class {kind}")
        oid = h5py.h5o.open(handle.id, raw)
        if isinstance(oid, h5py.h5d.DatasetID):
            total += _check_hdf5_dataset(path, name, oid, max_chunk_bytes)
    if max_bytes is not None and total > max_bytes:
        raise _refuse(
            path,
            f"declares {_mb(total)} of arrays, over the limit of {_mb(max_bytes)}; crop it or "
            "subset the variables first.",
        )
    return total


def _check_hdf5_dataset(path, name: str, oid, max_chunk_bytes: int) -> int:
    """Declared bytes of one dataset; refuse external storage, virtual layout, plugin filters."""
    import h5py

    dcpl = oid.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise _other_file(path, f"virtual dataset {name}")
    if dcpl.get_external_count() > 0:
        target = os.path.basename(dcpl.get_external(0)[0].decode("utf-8", "replace"))
        raise _other_file(path, f"external storage of {name} -> {target}")
    for index in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(index)[0]
        if code not in HDF5_FILTERS:
            raise _refuse(
                path,
                f"dataset {name} uses HDF5 filter {code}, which is not built in (plugins load "
                f"shared libraries); save it with {', '.join(sorted(set(HDF5_FILTERS.values())))} "
                "compression only.",
            )
    itemsize = oid.get_type().get_size()
    shape = oid.shape or ()
    nbytes = _product(shape) * itemsize
    if layout == h5py.h5d.CHUNKED:
        chunk_bytes = _product(dcpl.get_chunk()) * itemsize
        if chunk_bytes > max_chunk_bytes:
            raise _refuse(
                path,
                f"dataset {name} has chunks of {_mb(chunk_bytes)}, over the limit of "
                f"{_mb(max_chunk_bytes)}; rechunk it smaller.",
            )
    return nbytes


# ----------------------------------------------------------------------------------------------
# Zip and Zarr
# ----------------------------------------------------------------------------------------------
def check_zip(
    path: str | os.PathLike,
    *,
    max_bytes: int | None,
    max_members: int = MAX_ZIP_MEMBERS,
    max_ratio: float = MAX_ZIP_RATIO,
) -> None:
    """Refuse a zip whose central directory declares too much (nothing is decompressed).

    Parameters
    ----------
    path : path
        The zip file.
    max_bytes : int or None
        Limit on the uncompressed size of each member and of all together.
    max_members : int
        Limit on the number of members.
    max_ratio : float
        Limit on uncompressed : compressed, of each member and of all (once over 1 MiB).

    Raises
    ------
    DatasetError
        Not a readable zip, or over one of the limits.

    Notes
    -----
    A member that decompresses to more than it declares is cut at its declared size by
    :mod:`zipfile` (and fails its CRC), so the declared sizes bound what can be read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse(path, f"is not a readable zip file ({type(exc).__name__}).") from None
    if len(infos) > max_members:
        raise _refuse(path, f"has {len(infos):,} zip members, over the limit of {max_members:,}.")
    total = packed = 0
    for info in infos:
        total, packed = total + info.file_size, packed + info.compress_size
        if max_bytes is not None and info.file_size > max_bytes:
            raise _refuse(
                path,
                f"zip member {info.filename!r} unpacks to {_mb(info.file_size)}, over the limit "
                f"of {_mb(max_bytes)}.",
            )
        if info.file_size > 2**20 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise _refuse(
                path,
                f"zip member {info.filename!r} is compressed more than {max_ratio:g}:1 "
                f"({_mb(info.compress_size)} -> {_mb(info.file_size)}); zip bombs are not accepted.",
            )
    if max_bytes is not None and total > max_bytes:
        raise _refuse(path, f"unpacks to {_mb(total)}, over the limit of {_mb(max_bytes)}.")
    if total > 2**20 and total > max_ratio * max(packed, 1):
        raise _refuse(
            path,
            f"is compressed more than {max_ratio:g}:1 ({_mb(packed)} -> {_mb(total)}); zip bombs "
            "are not accepted.",
        )


@dataclass(frozen=True)
class _ZarrArray:
    where: str
    shape: tuple[int, ...]
    itemsize: int
    chunks: tuple[int, ...] | None


def _zarr_itemsize(path, where: str, dtype) -> int:
    if isinstance(dtype, str) and dtype in ("string", "bytes") or str(dtype).startswith("variable"):
        return 16
    if isinstance(dtype, list):  # zarr v2 structured dtype: [["name", "<f4"], ...]
        dtype = [tuple(field) for field in dtype]
    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError):
        return 16  # an extension type: counted as 16 bytes per element
    if parsed.hasobject:
        raise _refuse(
            path,
            f"Zarr array {where} holds Python objects (dtype {dtype!r}), which would need "
            "unpickling; store numbers.",
        )
    return max(parsed.itemsize, 1)


def _zarr_codec_names(meta: dict) -> list[str]:
    names = []
    for key in ("compressor", "filters", "codecs"):
        value = meta.get(key)
        for codec in value if isinstance(value, list) else [value]:
            if isinstance(codec, dict):
                names.append(str(codec.get("id") or codec.get("name")))
                inner = codec.get("configuration") or {}
                if isinstance(inner, dict):
                    names += _zarr_codec_names(inner)
    return names


def _zarr_array(path, document: dict, where: str, *, is_v2: bool) -> _ZarrArray:
    """One array description (v2 ``.zarray`` keys, else v3 ``zarr.json``), checked."""
    try:
        shape = tuple(int(n) for n in document["shape"])
        if is_v2:
            chunks = tuple(int(n) for n in document["chunks"])
            itemsize = _zarr_itemsize(path, where, document["dtype"])
        else:
            grid = document.get("chunk_grid", {}).get("configuration", {})
            chunks = tuple(int(n) for n in grid.get("chunk_shape", shape))
            itemsize = _zarr_itemsize(path, where, document.get("data_type"))
    except (TypeError, ValueError, AttributeError):
        raise _refuse(path, f"Zarr array {where} has malformed metadata.") from None
    if any(n < 0 for n in shape + chunks):
        raise _refuse(path, f"Zarr array {where} declares a negative size.")
    for codec in _zarr_codec_names(document):
        if codec.removeprefix("numcodecs.") not in ZARR_CODECS:
            raise _refuse(
                path,
                f"Zarr array {where} uses codec {codec!r}, which is not accepted (known: "
                f"{', '.join(sorted(ZARR_CODECS))}).",
            )
    return _ZarrArray(where, shape, itemsize, chunks)


def _zarr_arrays(path, document, where: str, found: list[_ZarrArray]) -> None:
    """Every array description anywhere in a Zarr metadata document (consolidated included)."""
    if isinstance(document, list):
        for item in document:
            _zarr_arrays(path, item, where, found)
        return
    if not isinstance(document, dict):
        return
    is_v2 = "shape" in document and "dtype" in document and "chunks" in document
    is_v3 = document.get("node_type") == "array"
    if is_v2 or is_v3:
        found.append(_zarr_array(path, document, where, is_v2=is_v2))
    for key, value in document.items():
        if key not in ("attributes", "shape", "chunks", "fill_value") and not key.endswith(
            ".zattrs"
        ):
            _zarr_arrays(path, value, f"{where}/{key}" if is_v2 or is_v3 else key, found)


def check_zarr_metadata(
    path: str | os.PathLike,
    documents: dict[str, bytes],
    *,
    max_bytes: int | None,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> int:
    """Check the arrays Zarr metadata declares (v2 ``.zarray`` / ``.zmetadata``, v3 ``zarr.json``).

    Parameters
    ----------
    path : path
        The store (for messages).
    documents : dict of str to bytes
        Metadata documents by their name in the store.
    max_bytes : int or None
        Limit on the declared size of all arrays; the arrays of consolidated metadata and of the
        per-array documents are summed separately (each describes the whole store).
    max_chunk_bytes : int
        Limit on one chunk.

    Returns
    -------
    int
        The larger of the two declared totals.

    Raises
    ------
    DatasetError
        Malformed JSON, object dtypes, unknown codecs, or a limit exceeded.
    """
    per_array, consolidated = 0, 0
    for name, raw in documents.items():
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise _refuse(path, f"Zarr metadata {name!r} is not valid JSON.") from None
        found: list[_ZarrArray] = []
        _zarr_arrays(path, document, name, found)
        for array in found:
            chunk_bytes = _product(array.chunks or array.shape) * array.itemsize
            if chunk_bytes > max_chunk_bytes:
                raise _refuse(
                    path,
                    f"Zarr array {array.where} has chunks of {_mb(chunk_bytes)}, over the limit "
                    f"of {_mb(max_chunk_bytes)}; rechunk it smaller.",
                )
            nbytes = _product(array.shape) * array.itemsize
            if array.where == name and isinstance(document, dict) and found[0] is array:
                per_array += nbytes
            else:
                consolidated += nbytes
    total = max(per_array, consolidated)
    if max_bytes is not None and total > max_bytes:
        raise _refuse(
            path,
            f"declares {_mb(total)} of Zarr arrays, over the limit of {_mb(max_bytes)}; crop it or "
            "subset the variables first.",
        )
    return total


def _is_zarr_metadata(name: str) -> bool:
    return name.rsplit("/", 1)[-1] in (".zarray", ".zmetadata", "zarr.json")


def check_zarr(path: str | os.PathLike, *, max_bytes: int | None) -> int:
    """Check a Zarr folder or zipped Zarr store (zip limits first, then its metadata).

    Parameters
    ----------
    path : path
        A ``.zarr`` folder or a zip file.
    max_bytes : int or None
        Limit on the declared size of all arrays, and on the unpacked size of a zip.

    Returns
    -------
    int
        Declared bytes (see :func:`check_zarr_metadata`).

    Raises
    ------
    DatasetError
        See :func:`check_zip` and :func:`check_zarr_metadata`.
    """
    path = Path(path)
    documents: dict[str, bytes] = {}
    if path.is_dir():
        for item in path.rglob("*"):
            if item.is_file() and _is_zarr_metadata(item.name):
                if item.stat().st_size > MAX_METADATA_BYTES:
                    raise _refuse(path, f"Zarr metadata {item.name!r} is over {_mb(2**20)}.")
                documents[item.relative_to(path).as_posix()] = item.read_bytes()
    else:
        check_zip(path, max_bytes=max_bytes)
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if _is_zarr_metadata(info.filename):
                    if info.file_size > MAX_METADATA_BYTES:
                        raise _refuse(
                            path, f"Zarr metadata {info.filename!r} is over {_mb(2**20)}."
                        )
                    documents[info.filename] = archive.read(info)
    return check_zarr_metadata(path, documents, max_bytes=max_bytes)


# ----------------------------------------------------------------------------------------------
# netCDF-3
# ----------------------------------------------------------------------------------------------
def check_netcdf3_header(path: str | os.PathLike, *, max_bytes: int | None = None) -> int:
    """Walk a classic netCDF header (CDF-1, -2 or -5); raise ``DatasetError`` if it cannot fit.

    The netCDF C library allocates whatever a header declares before reading it: a 100-byte
    corrupted file declaring 570 million variables took 4.5 GB of memory and 9 s to fail. Here every
    declared count and length is checked against the bytes left in the file first, and the declared
    size of all variables (record variables times the record count) against ``max_bytes``.

    Parameters
    ----------
    path : path
        A file starting with ``CDF\\x01``, ``CDF\\x02`` or ``CDF\\x05``.
    max_bytes : int or None
        Limit on the declared size of all variables (None: no limit).

    Returns
    -------
    int
        Declared bytes of all variables.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        data = fh.read(min(size, NETCDF3_HEADER_MAX_BYTES))
    if not data.startswith(NETCDF3_MAGIC):
        raise _refuse(path, f"not a classic netCDF file (starts {data[:4]!r}).")
    header = _Netcdf3Header(path, data, size)
    total = header.variables_bytes()
    if max_bytes is not None and total > max_bytes:
        raise _refuse(
            path,
            f"netCDF header declares {_mb(total)} of variables ({header.numrecs:,} records), over "
            f"the limit of {_mb(max_bytes)}; crop it or subset the variables first.",
        )
    return total


class _Netcdf3Header:
    """A cursor over the bytes of a classic netCDF header that checks every declared length
    against the bytes left in the file before moving on."""

    def __init__(self, path: Path, data: bytes, size: int) -> None:
        self.path, self.data, self.size = path, data, size
        self.width = 8 if data[3] == 5 else 4  # NON_NEG counts and lengths: 64-bit in CDF-5
        self.offset_width = 4 if data[3] == 1 else 8
        self.pos = 4
        self.numrecs = 0

    def number(self, n: int) -> int:
        if self.pos + n > len(self.data):
            raise _refuse(self.path, f"netCDF header is truncated at byte {self.pos}.")
        value = int.from_bytes(self.data[self.pos : self.pos + n], "big")
        self.pos += n
        return value

    def check_fits(self, nbytes: int, what: str) -> None:
        if nbytes > self.size - self.pos:
            raise _refuse(self.path, f"netCDF header declares {what} at byte {self.pos} of a "
                                     f"{self.size}-byte file; the file is corrupt.")  # fmt: skip

    def skip(self, n: int, what: str) -> None:
        padded = n + (-n) % 4
        self.check_fits(padded, f"a {n}-byte {what}")
        self.pos += padded

    def skip_name(self) -> None:
        self.skip(self.number(self.width), "name")

    def count(self, tag: int, what: str, min_bytes: int) -> int:
        found, n = self.number(4), self.number(self.width)
        if found == 0 and n == 0:  # ABSENT
            return 0
        if found != tag:
            raise _refuse(self.path, f"netCDF header has tag {found} where {what} should be.")
        self.check_fits(n * min_bytes, f"{n} {what}")
        return n

    def type_bytes(self, what: str) -> int:
        nc_type = self.number(4)
        if nc_type not in _NC_TYPE_BYTES:
            raise _refuse(self.path, f"netCDF {what} type {nc_type} is unknown.")
        return _NC_TYPE_BYTES[nc_type]

    def attributes(self) -> None:
        for _ in range(self.count(_NC_ATTRIBUTE, "attributes", 2 * self.width + 4)):
            self.skip_name()
            item_bytes = self.type_bytes("attribute")
            self.skip(self.number(self.width) * item_bytes, "attribute")

    def dimensions(self) -> list[int]:
        lengths = []
        for _ in range(self.count(_NC_DIMENSION, "dimensions", 2 * self.width)):
            self.skip_name()
            lengths.append(self.number(self.width))  # 0: the record (unlimited) dimension
        return lengths

    def variable_bytes(self, lengths: list[int]) -> int:
        width = self.width
        self.skip_name()
        n_var_dims = self.number(width)
        self.check_fits(n_var_dims * width, f"a variable with {n_var_dims} dimensions")
        dim_ids = [self.number(width) for _ in range(n_var_dims)]
        if any(i >= len(lengths) for i in dim_ids):
            raise _refuse(self.path, "netCDF variable refers to a dimension that is not there.")
        self.attributes()
        item_bytes = self.type_bytes("variable")
        self.number(width)  # vsize
        self.number(self.offset_width)  # begin
        return _product(lengths[i] or self.numrecs for i in dim_ids) * item_bytes

    def variables_bytes(self) -> int:
        """Walk the whole header: the declared bytes of all variables."""
        self.numrecs = self.number(self.width)
        lengths = self.dimensions()
        self.attributes()
        total = 0
        for _ in range(self.count(_NC_VARIABLE, "variables", 4 * self.width + 4)):
            total += self.variable_bytes(lengths)
        return total


# ----------------------------------------------------------------------------------------------
# .npy
# ----------------------------------------------------------------------------------------------
def check_npy(
    path: str | os.PathLike, *, max_bytes: int | None = None
) -> tuple[tuple[int, ...], np.dtype]:
    """Read a ``.npy`` header only; refuse a shape the file does not hold or ``max_bytes`` exceeds.

    Parameters
    ----------
    path : path
        The file.
    max_bytes : int or None
        Limit on the declared size (shape x item size).

    Returns
    -------
    shape : tuple of int
    dtype : numpy.dtype
    """
    from numpy.lib import format as npy_format

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(fh)
            else:
                shape, _, dtype = npy_format._read_array_header(fh, version)
            offset = fh.tell()
    except (ValueError, OSError, SyntaxError, TypeError, EOFError) as exc:
        raise _refuse(path, f"has no valid .npy header ({type(exc).__name__}).") from None
    if dtype.hasobject:
        raise _refuse(path, f"dtype {dtype} holds Python objects; save numbers (never pickles).")
    declared = _product(shape) * dtype.itemsize
    held = path.stat().st_size - offset
    if declared > held:
        raise _refuse(
            path,
            f"declares an array {shape} {dtype} of {_mb(declared)} but holds {_mb(held)}; the file "
            "is truncated or corrupt.",
        )
    if max_bytes is not None and declared > max_bytes:
        raise _refuse(
            path, f"array {shape} of {_mb(declared)} is over the limit of {_mb(max_bytes)}."
        )
    return tuple(int(n) for n in shape), dtype


# ----------------------------------------------------------------------------------------------
# gzip
# ----------------------------------------------------------------------------------------------
def check_gzip(path: str | os.PathLike, *, max_bytes: int, block: int = 2**20) -> int:
    """Decompress a gzip file block by block, refusing it once it passes ``max_bytes``.

    Memory stays at one ``block``; a bomb costs the time to decompress ``max_bytes``.

    Returns
    -------
    int
        Decompressed size.

    Raises
    ------
    DatasetError
        Damaged gzip, or more than ``max_bytes`` once decompressed.
    """
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(block):
                total += len(chunk)
                if total > max_bytes:
                    raise _refuse(
                        path,
                        f"decompresses to more than {_mb(max_bytes)}, more than its header "
                        "declares; gzip bombs are not accepted.",
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise _refuse(path, f"is a damaged gzip file ({type(exc).__name__}).") from None
    return total


# ----------------------------------------------------------------------------------------------
# GIF and video
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GifInfo:
    """What a GIF declares: canvas (logical screen grown to every frame read) and frame count."""

    width: int
    height: int
    frames: int  # counted up to the limit given to gif_info
    palette: bytes = b""  # the global colour table, RGB triplets (empty when there is none)
    comment: bytes = b""  # comment extensions before the first image, at most GIF_COMMENT_BYTES


def gif_info(path: str | os.PathLike, *, max_frames: int) -> GifInfo:
    """Parse GIF blocks (no pixels decoded) up to ``max_frames`` frames.

    The canvas is the logical screen, grown to cover every frame descriptor read, as pillow does.

    Raises
    ------
    DatasetError
        Not a GIF, or truncated before its first frame.
    """
    path = Path(path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if not is_gif(data) or len(data) < 13:
            raise _refuse(path, f"not a GIF file (starts {data[:6]!r}).")
        width = int.from_bytes(data[6:8], "little")
        height = int.from_bytes(data[8:10], "little")
        pos = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
        palette = bytes(data[13:pos])
        frames, end, comment = 0, len(data), b""

        while pos < end and frames < max_frames:
            tag = data[pos]
            if tag == 0x3B:  # trailer
                break
            if tag == 0x21 and pos + 2 <= end:  # extension: label, then sub-blocks
                start, pos = pos + 2, _skip_blocks(data, pos + 2)
                if data[start - 1] == 0xFE and frames == 0:  # a comment: sub-block texts
                    comment += _sub_blocks(data, start, pos, GIF_COMMENT_BYTES - len(comment))
            elif tag == 0x2C and pos + 10 <= end:  # image descriptor
                left, top, w, h = (
                    int.from_bytes(data[pos + i : pos + i + 2], "little") for i in (1, 3, 5, 7)
                )
                width, height = max(width, left + w), max(height, top + h)
                flags = data[pos + 9]
                pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
                pos = _skip_blocks(data, pos + 1)  # LZW minimum code size, then data sub-blocks
                frames += 1
            else:
                break  # unknown block or truncated: pillow stops reading here too
    if frames == 0:
        raise _refuse(path, "the GIF has no image in it.")
    return GifInfo(width, height, frames, palette, comment)


def _skip_blocks(data, at: int) -> int:
    """Position after the GIF data sub-blocks starting at ``at`` (their zero-length terminator)."""
    end = len(data)
    while at < end:
        n = data[at]
        at += 1 + n
        if n == 0:
            break
    return at


def _sub_blocks(data, start: int, stop: int, limit: int) -> bytes:
    """The bytes of the GIF data sub-blocks in ``data[start:stop]``, at most ``limit`` of them."""
    out, at = bytearray(), start
    while at < stop and len(out) < limit:
        n = data[at]
        out += data[at + 1 : min(at + 1 + n, stop)]
        at += 1 + n
    return bytes(out[: max(limit, 0)])


def check_frames(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    frames: int,
    max_side: int,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_pixels_read: int | None = None,
    kind: str = "frame",
) -> None:
    """Refuse a frame size or a total of decoded pixels over the limits.

    Parameters
    ----------
    path : path
        The file (for messages).
    width, height : int
        Frame (or canvas) size in pixels.
    frames : int
        Frames that would be decoded.
    max_side, max_pixels : int
        Limits on one side and on ``width * height``.
    max_pixels_read : int, optional
        Limit on ``frames * width * height``.
    kind : str
        What to call the frame in messages (``"GIF canvas"``, ``"video frame"``).
    """
    if max(width, height) > max_side or width * height > max_pixels:
        raise _refuse(
            path,
            f"{kind} of {width} x {height} pixels is over the limit of {max_side} pixels a side and "
            f"{max_pixels / 1e6:.1f} million pixels; scale it down first.",
        )
    if max_pixels_read is not None and frames * width * height > max_pixels_read:
        fit = max(1, max_pixels_read // max(width * height, 1))
        raise _refuse(
            path,
            f"{frames} frames of {width} x {height} pixels are over the limit of "
            f"{max_pixels_read / 1e6:.0f} million decoded pixels; pass max_frames={fit} or less, or "
            "scale the video down first.",
        )


def check_gif(
    path: str | os.PathLike,
    *,
    max_frames: int,
    max_side: int = MAX_IMAGE_SIDE,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_pixels_read: int = MAX_GIF_PIXELS_READ,
) -> GifInfo:
    """Refuse a GIF whose canvas or decoded frames (up to ``max_frames``) are over the limits.

    Returns
    -------
    GifInfo
        Canvas and frames counted (at most ``max_frames``).
    """
    info = gif_info(path, max_frames=max_frames)
    check_frames(
        path,
        width=info.width,
        height=info.height,
        frames=info.frames,
        max_side=max_side,
        max_pixels=max_pixels,
        max_pixels_read=max_pixels_read,
        kind="GIF canvas",
    )
    return info


def check_video(
    path: str | os.PathLike,
    meta: dict,
    *,
    max_frames: int,
    max_side: int = MAX_VIDEO_SIDE,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_pixels_read: int = MAX_VIDEO_PIXELS_READ,
) -> int:
    """Refuse a video whose frame size (ffmpeg's ``size``) or decoded pixels are over the limits.

    Parameters
    ----------
    path : path
        The file (for messages).
    meta : dict
        imageio's FFMPEG metadata: ``size`` (width, height), ``fps``, ``duration``, ``nframes``.
    max_frames : int
        Frames the reader stops at.

    Returns
    -------
    int
        Frames expected to be decoded (``max_frames`` when the file does not say).

    Raises
    ------
    DatasetError
        No frame size in the metadata, or over a limit.
    """
    size = meta.get("size") or meta.get("source_size")
    try:
        width, height = (int(n) for n in size)
    except (TypeError, ValueError):
        raise _refuse(
            path, "the video states no frame size; it is not a video ffmpeg can read."
        ) from None
    frames = max_frames
    stated = meta.get("nframes")
    if not (isinstance(stated, int | float) and math.isfinite(stated) and stated > 0):
        fps, duration = meta.get("fps"), meta.get("duration")
        try:
            stated = math.ceil(float(fps) * float(duration))
        except (TypeError, ValueError, OverflowError):
            stated = None
    if stated is not None and stated > 0:
        frames = min(frames, int(stated))
    check_frames(
        path,
        width=width,
        height=height,
        frames=frames,
        max_side=max_side,
        max_pixels=max_pixels,
        max_pixels_read=max_pixels_read,
        kind="video frame",
    )
    return frames


__all__ = [
    "DEFAULT_MAX_DECODED_BYTES",
    "GifInfo",
    "check_decoded",
    "check_frames",
    "check_gif",
    "check_gzip",
    "check_hdf5",
    "check_netcdf3_header",
    "check_npy",
    "check_video",
    "check_zarr",
    "check_zarr_metadata",
    "check_zip",
    "gif_info",
    "public_message",
]

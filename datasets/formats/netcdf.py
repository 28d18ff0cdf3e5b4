"""Reader of NetCDF (3 or 4), Zarr folders and zipped Zarr stores: one variable with
``(time, y, x)`` dims (``lat``/``lon`` etc. accepted) as a dataset array."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import DEFAULT_MAX_BYTES, check_file, reader_errors
from datasets.layout import DOMAINS, FRAME_STEP, as_dataset_array, check_values
from datasets.magic import HDF5_MAGIC, NETCDF3_MAGIC, NETCDF_SUFFIXES, ZIP_MAGIC, head
from datasets.timesteps import iso_duration
from datasets.untrusted import (
    DEFAULT_MAX_DECODED_BYTES,
    check_decoded,
    check_hdf5,
    check_netcdf3_header,
    check_zarr,
)

TIME_NAMES = ("time", "t", "frame", "frames", "step", "valid_time")
Y_NAMES = ("y", "lat", "latitude", "rows", "row", "north", "nj", "yc", "projection_y_coordinate")
X_NAMES = ("x", "lon", "longitude", "cols", "col", "east", "ni", "xc", "projection_x_coordinate")
RADAR_UNITS = ("mm/h", "mm h-1", "mm hr-1", "mm/hr", "mm", "dbz", "kg m-2 s-1")


def _is_zarr_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in (".zgroup", ".zarray", "zarr.json", ".zmetadata")
    )


def _open_zarr(store) -> xr.Dataset:
    """Open a Zarr store, with or without consolidated metadata, without warning about which."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
        return xr.open_zarr(store, consolidated=None, chunks=None)


def _open_xarray(path: Path, *, max_declared: int | None) -> xr.Dataset:
    """Open NetCDF, a Zarr folder, or a zipped Zarr store as an ``xarray.Dataset``.

    The checks of :mod:`datasets.untrusted` run first (``max_declared`` bounds the declared size
    of all stored arrays): no other file is named, and nothing declared is too large.
    """
    if path.is_dir():
        if not _is_zarr_folder(path):
            raise DatasetError(
                f"{path.name}: folder is not a Zarr store (no .zgroup or zarr.json)."
            )
        check_zarr(path, max_bytes=max_declared)
        return _open_zarr(path)
    start = head(path, 8)
    if start.startswith(ZIP_MAGIC):
        import zarr

        check_zarr(path, max_bytes=max_declared)  # zip members, then every array's metadata
        with zipfile.ZipFile(path) as archive:  # bad CRCs before zarr
            broken = archive.testzip()
        if broken is not None:
            raise DatasetError(
                f"{path.name}: zip member {broken!r} is corrupt (bad CRC); zip it again."
            )
        store = zarr.storage.ZipStore(path, mode="r")
        try:
            ds = _open_zarr(store)
        except Exception:
            store.close()
            raise
        ds.set_close(store.close)
        return ds
    if start.startswith(HDF5_MAGIC):
        check_hdf5(path, max_bytes=max_declared)  # links, external storage, filters, sizes
        return xr.open_dataset(path, engine="netcdf4")
    if start.startswith(NETCDF3_MAGIC):
        check_netcdf3_header(path, max_bytes=max_declared)
        return xr.open_dataset(path, engine="scipy")
    raise DatasetError(
        f"{path.name}: not NetCDF, HDF5 or a (zipped) Zarr store (starts {start[:4]!r})."
    )


def _find_dim(dims: Iterable[str], names: tuple[str, ...]) -> str | None:
    lowered = {d.lower(): d for d in dims}
    return next((lowered[n] for n in names if n in lowered), None)


def _pick_variable(ds: xr.Dataset, variable: str | None, path: Path) -> xr.DataArray:
    if variable is not None:
        if variable not in ds.data_vars:
            raise DatasetError(
                f"{path.name}: no variable {variable!r}; variables: {', '.join(map(str, ds.data_vars))}"
            )
        return ds[variable]
    candidates = [
        name
        for name, var in ds.data_vars.items()
        if var.ndim >= 3
        and np.issubdtype(var.dtype, np.number)
        and (_find_dim(var.dims, TIME_NAMES) or _datetime_dim(var))
    ]
    if not candidates:
        raise DatasetError(
            f"{path.name}: no numeric variable with (time, y, x) dims; variables and dims: "
            + "; ".join(f"{n} {tuple(v.dims)}" for n, v in ds.data_vars.items())
        )
    if len(candidates) > 1:
        raise DatasetError(
            f"{path.name}: several variables have (time, y, x) dims: {', '.join(map(str, candidates))}."
            " Pass variable= to choose one."
        )
    return ds[candidates[0]]


def _datetime_dim(var: xr.DataArray) -> str | None:
    for dim in var.dims:
        if dim in var.coords and np.issubdtype(var.coords[dim].dtype, np.datetime64):
            return str(dim)
    return None


@reader_errors("NetCDF or Zarr")
def open_netcdf_or_zarr(
    path: str | os.PathLike,
    *,
    variable: str | None = None,
    domain: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> xr.DataArray:
    """Read a variable with ``(time, y, x)`` dims from NetCDF, a Zarr folder or a zipped Zarr.

    Parameters
    ----------
    path : path
        ``.nc`` (NetCDF 3 or 4), a ``.zarr`` folder, or a ``.zip`` / ``.zarr.zip`` store.
    variable : str, optional
        The variable; default: the only numeric variable with a time dim and two more dims.
    domain : {"radar", "traffic", "video"}, optional
        Default: the variable's or file's ``domain`` attribute, else ``"radar"`` for rain units
        (mm/h, mm, dBZ), else ``"unknown"``.
    max_bytes : int or None
        Size limit of the file or folder.
    max_decoded_bytes : int or None
        Limit on the declared size of all arrays stored in the file and on the float32 array
        returned, checked from the metadata before any data is read.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)``: the time dim (``time``, ``t``, ``frame``... or
        any datetime dim) becomes ``time``; ``y``/``lat``/``latitude``... and ``x``/``lon``/...
        (else the last two dims) become ``y`` and ``x``; one other dim becomes ``channel``, a second
        one ``sample``. Fill values become NaN (a mask, see :func:`datasets.valid_mask`).
    """
    path = check_file(path, max_bytes=max_bytes, folder_ok=True)
    with _open_xarray(path, max_declared=max_decoded_bytes) as ds:
        var = _pick_variable(ds, variable, path)
        sample_dim, time_dim, channel_dim, y_dim, x_dim = _dim_roles(var, path)
        order = [d for d in (sample_dim, time_dim, channel_dim, y_dim, x_dim) if d is not None]
        data = var.transpose(*order)
        shape = [data.sizes[d] for d in order]
        check_decoded(path, [1] * (5 - len(shape)) + shape, max_bytes=max_decoded_bytes)
        values = np.asarray(data.values, dtype=np.float32)  # loads into memory
        if sample_dim is None:
            values = values[None]
        if channel_dim is None:
            values = values[:, :, None]
        check_values(values, path=path)
        time, time_step = _time_and_step(data, time_dim)
        units = str(var.attrs.get("units", "unknown"))
        guess = var.attrs.get("domain") or ds.attrs.get("domain")
        if guess not in DOMAINS:
            guess = "radar" if units.strip().lower() in RADAR_UNITS else "unknown"

        channel_coord = None
        if channel_dim is not None and channel_dim in data.coords:
            channel_coord = [str(v) for v in data[channel_dim].values]
        array = as_dataset_array(
            values,
            units=units,
            time_step=time_step,
            domain=domain or guess,
            source=path.name,
            description=str(
                var.attrs.get("long_name") or f"variable {var.name!r} read from {path.name}"
            ),
            time=time,
            channel=channel_coord,
            y=_numeric_coord(data, y_dim),
            x=_numeric_coord(data, x_dim),
            extra_attrs={"variable": str(var.name), "original_dims": " ".join(map(str, order))},
        )
        for dim, role in ((y_dim, "y"), (x_dim, "x")):  # metres or km: the page draws km axes
            if _numeric_coord(data, dim) is not None:
                array[role].attrs.update(_coord_attrs(data[dim]))
        return array


def _dim_roles(var: xr.DataArray, path: Path) -> tuple:
    """``(sample, time, channel, y, x)`` dim names of ``var`` (``None`` for an absent one)."""
    time_dim = _datetime_dim(var) or _find_dim(var.dims, TIME_NAMES)
    if time_dim is None:
        raise DatasetError(f"{path.name}: variable {var.name!r} {var.dims} has no time dim.")
    rest = [d for d in var.dims if d != time_dim]
    y_dim, x_dim = _find_dim(rest, Y_NAMES), _find_dim(rest, X_NAMES)
    if y_dim is None or x_dim is None:
        y_dim, x_dim = rest[-2], rest[-1]
    extra = [d for d in rest if d not in (y_dim, x_dim)]
    if len(extra) > 2:
        raise DatasetError(
            f"{path.name}: variable {var.name!r} has dims {var.dims}; at most (sample, time, "
            "channel, y, x) can be read. Select the extra dims first."
        )
    channel_dim = extra[-1] if extra else None
    sample_dim = extra[0] if len(extra) == 2 else None
    return sample_dim, time_dim, channel_dim, y_dim, x_dim


def _time_and_step(data: xr.DataArray, time_dim) -> tuple:
    """``(time, time_step)``: datetime stamps (else ``None``) and their median step (ISO 8601)."""
    time = data[time_dim].values if time_dim in data.coords else None
    time_step = FRAME_STEP
    if time is not None and np.issubdtype(np.asarray(time).dtype, np.datetime64):
        steps = np.diff(np.asarray(time, dtype="datetime64[ns]")).astype("int64") / 1e9
        if len(steps) and np.all(steps > 0):
            time_step = iso_duration(float(np.median(steps)))
    elif time is not None:
        time = None
    return time, time_step


COORD_ATTRS = ("units", "standard_name", "long_name", "axis")
"""Attrs of a map coordinate kept from the file (``units`` "m": a CF projected grid in metres)."""


def _coord_attrs(coord: xr.DataArray) -> dict[str, str]:
    return {k: str(coord.attrs[k]) for k in COORD_ATTRS if k in coord.attrs}


def _numeric_coord(data: xr.DataArray, dim) -> np.ndarray | None:
    """The numeric coordinate values of ``dim``, else ``None``."""
    if dim is None or dim not in data.coords:
        return None
    vals = np.asarray(data[dim].values)
    return vals if np.issubdtype(vals.dtype, np.number) else None


def match_netcdf(path: Path, head: bytes) -> bool:
    """NetCDF-3 or zip magic, HDF5 magic with a NetCDF suffix, or a Zarr folder."""
    if not head:
        return _is_zarr_folder(path)
    name = path.name.lower()
    if head.startswith(NETCDF3_MAGIC):
        return True
    if head.startswith(HDF5_MAGIC):
        return name.endswith(NETCDF_SUFFIXES)
    if head.startswith(ZIP_MAGIC):
        return True
    return False

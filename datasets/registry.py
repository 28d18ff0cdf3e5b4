"""Registry of datasets: a dict of loaders plus a getter, in the pysteps style.

Contract of every registered loader
-----------------------------------
``loader(*, split, **options) -> xarray.DataArray``

- dims ``(sample, time, channel, y, x)``, dtype float32, physical units (never model space);
- coordinates: ``sample``, ``time`` (real timestamps as ``datetime64`` where known, else step index),
  ``channel`` (names), ``y``, ``x``;
- attrs: ``units``, ``time_step`` (ISO 8601 duration, e.g. ``"PT5M"``), ``domain`` (``"radar"``,
  ``"traffic"`` or ``"video"``), ``source``, ``licence``, ``description``, ``synthetic`` (bool, stored
  as int 0/1 so NetCDF can hold it);
- invalid pixels (e.g. outside the radar domain) are NaN in the array; :func:`valid_mask` turns them
  into the boolean mask that travels beside the data (NaN never reaches the network).
"""

from __future__ import annotations

from collections.abc import Callable

import xarray as xr

from datasets.errors import DatasetError

Loader = Callable[..., xr.DataArray]

_REGISTRY: dict[str, Loader] = {}
SPLITS = ("train", "val", "test")


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator that adds a loader to the registry under ``name`` (lower case)."""

    def wrap(loader: Loader) -> Loader:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"dataset {key!r} is registered twice")
        _REGISTRY[key] = loader
        return loader

    return wrap


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    _import_builtin()
    return sorted(_REGISTRY)


def get_dataset(name: str, *, split: str = "test", **options) -> xr.DataArray:
    """Load a registered dataset.

    Parameters
    ----------
    name : str
        Registered name (case-insensitive); see :func:`list_datasets`.
    split : {"train", "val", "test"}
        Which part of the data.
    **options
        Passed to the loader (e.g. ``n_samples``, ``seed``, ``download``).

    Returns
    -------
    xarray.DataArray
        float32, dims ``(sample, time, channel, y, x)``, with units and attrs as in the module doc.

    Raises
    ------
    ValueError
        Unknown name or split; the message lists the valid ones.
    DatasetError
        The data could not be read or validated.
    """
    _import_builtin()
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return _REGISTRY[key](split=split, **options)


def valid_mask(array: xr.DataArray) -> xr.DataArray:
    """Boolean mask of valid (finite) pixels, same dims as ``array``."""
    return array.notnull()


def _import_builtin() -> None:
    """Import the modules that register the built-in datasets (lazily, to keep imports light)."""
    import datasets.builtin  # noqa: F401


__all__ = ["DatasetError", "get_dataset", "list_datasets", "register", "valid_mask", "SPLITS"]

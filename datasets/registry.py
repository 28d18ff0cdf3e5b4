"""Registry of datasets: a dict of loaders plus a getter, in the pysteps style.

Contract of every registered loader
-----------------------------------
``loader(*, split, n_samples=None, **options) -> xarray.DataArray``; ``n_samples`` caps the number
of samples (windows) returned, so callers such as the dashboard can ask for a few cheaply.

- dims ``(sample, time, channel, y, x)``, dtype float32, physical units (never model space);
- coordinates: ``sample``, ``time`` (real timestamps as ``datetime64`` where known, else step index),
  ``channel`` (names), ``y``, ``x``;
- attrs: ``units``, ``time_step`` (ISO 8601 duration, e.g. ``"PT5M"``), ``domain`` (``"radar"``,
  ``"traffic"`` or ``"video"``), ``source``, ``licence``, ``description``, ``synthetic`` (bool, stored
  as int 0/1 so NetCDF can hold it);
- invalid pixels (e.g. outside the radar domain) are NaN in the array; :func:`valid_mask` turns them
  into the boolean mask that travels beside the data (NaN never reaches the network).

Registering
-----------
``@register(name, bundled=True, domain="video")`` above the loader. ``bundled=True`` promises that
the dataset loads on a fresh machine without network or ``../shared`` (the generic test holds it to
that); ``bundled=False`` (the default) marks one that needs files (a ``path=`` or ``download=True``)
and must then raise :class:`DatasetError` saying how to get them. :func:`dataset_info` returns what
was registered.
"""

from __future__ import annotations

from collections.abc import Callable

import xarray as xr

from datasets.errors import DatasetError

Loader = Callable[..., xr.DataArray]

_REGISTRY: dict[str, Loader] = {}
_INFO: dict[str, dict] = {}
SPLITS = ("train", "val", "test")
DOMAINS = ("radar", "traffic", "video")


def register(name: str, *, domain: str, bundled: bool = False) -> Callable[[Loader], Loader]:
    """Decorator that adds a loader to the registry under ``name`` (lower case).

    Parameters
    ----------
    name : str
        Registered name (stored lower case).
    bundled : bool
        True when the dataset works offline right after install (no network, no ``../shared``).
    domain : {"radar", "traffic", "video"}
        The domain of the arrays the loader returns (also in their ``attrs``); the dashboard
        groups datasets by it without loading them.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain {domain!r} of dataset {name!r}: use one of {', '.join(DOMAINS)}")

    def wrap(loader: Loader) -> Loader:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"dataset {key!r} is registered twice")
        _REGISTRY[key] = loader
        doc = (loader.__doc__ or "").strip()
        _INFO[key] = {
            "name": key,
            "bundled": bool(bundled),
            "domain": domain,
            "summary": doc.splitlines()[0] if doc else "",
        }
        return loader

    return wrap


def dataset_info(name: str) -> dict:
    """What was registered for ``name``: ``{"name", "bundled", "domain", "summary"}``.

    ``summary`` is the first line of the loader's docstring. Unknown name -> ``ValueError``.
    """
    _import_builtin()
    key = str(name).lower()
    if key not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return dict(_INFO[key])


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


__all__ = [
    "DOMAINS",
    "DatasetError",
    "SPLITS",
    "dataset_info",
    "get_dataset",
    "list_datasets",
    "register",
    "valid_mask",
]

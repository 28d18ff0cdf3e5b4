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
  as int 0/1 so NetCDF can hold it); ``time_zone`` (IANA name of the clock the timestamps read,
  e.g. ``"America/New_York"`` for TaxiNYC; absent means UTC, as for radar:
  :func:`datasets.layout.time_zone_of`);
- invalid pixels (e.g. outside the radar domain) are NaN in the array; :func:`valid_mask` turns them
  into the boolean mask that travels beside the data (NaN never reaches the network).

The table
---------
The built-in datasets are listed in one table, :data:`datasets.catalog.CATALOG` (a
:class:`~datasets.catalog.DatasetSpec` each: loader, domain, ``bundled``, summary, download manifest,
file format), which the catalog module builds by importing the dataset modules; nothing registers
itself on import. This module imports the catalog on first use, so ``import datasets`` (and the
readers of :mod:`datasets.files`) do not import the dataset modules. ``bundled=True`` promises that
the dataset loads on a fresh machine without network or ``../shared`` (the generic test holds it to
that); ``bundled=False`` marks one that needs files (a ``path=`` or ``download=True``) and must then
raise :class:`DatasetError` saying how to get them. :func:`dataset_info` returns what is listed.

Adding a dataset at run time
----------------------------
``@register(name, domain="video", bundled=False)`` above a loader adds it for this process (a user's
own data in a notebook or a test); built-in datasets never use it.
"""

from __future__ import annotations

from collections.abc import Callable

import xarray as xr

from datasets.errors import DatasetError
from datasets.layout import DOMAINS, SPLITS, valid_mask

Loader = Callable[..., xr.DataArray]

_ADDED: dict = {}  # name -> DatasetSpec, added at run time with register()


def _table() -> dict:
    """Built-in datasets (the catalog, imported on first use) plus those added with register()."""
    from datasets.catalog import CATALOG

    return {**CATALOG, **_ADDED}


def register(name: str, *, domain: str, bundled: bool = False) -> Callable[[Loader], Loader]:
    """Decorator that adds a loader, for this process, under ``name`` (lower case).

    Parameters
    ----------
    name : str
        Name (stored lower case); a built-in name or one added before is refused.
    bundled : bool
        True when the dataset works offline right after install (no network, no ``../shared``).
    domain : {"radar", "traffic", "video"}
        The domain of the arrays the loader returns (also in their ``attrs``); the dashboard
        groups datasets by it without loading them.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain {domain!r} of dataset {name!r}: use one of {', '.join(DOMAINS)}")

    def wrap(loader: Loader) -> Loader:
        from datasets.catalog import spec_for

        key = name.lower()
        if key in _table():
            raise ValueError(f"dataset {key!r} is registered twice")
        _ADDED[key] = spec_for(key, loader, domain=domain, bundled=bundled)
        return loader

    return wrap


def dataset_info(name: str) -> dict:
    """What is listed for ``name``: ``{"name", "bundled", "domain", "summary"}``.

    ``summary`` is the first line of the loader's docstring. Unknown name -> ``ValueError``.
    """
    return _spec(name).info()


def list_datasets() -> list[str]:
    """Names of all datasets, sorted."""
    return sorted(_table())


def get_dataset(name: str, *, split: str = "test", **options) -> xr.DataArray:
    """Load a dataset.

    Parameters
    ----------
    name : str
        Name (case-insensitive); see :func:`list_datasets`.
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
    spec = _spec(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return spec.loader(split=split, **options)


def _spec(name: str):
    table = _table()
    key = str(name).lower()
    if key not in table:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(table))}")
    return table[key]


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

"""Dataset windows cut to context + horizon frames: the one loader of training and evaluation.

Training reads each split with the options of its config's ``[data]`` section
(:class:`model.train_config.DataConfig`); evaluation reads the same windows back from a
checkpoint's metadata (:func:`data_config`: ``dataset_options`` is the ``[data]`` section stored by
:mod:`model.provenance`). Either way :func:`load_windows` asks ``datasets.get_dataset`` for a split
and keeps the first ``context + horizon`` frames of every window.
"""

from __future__ import annotations

import xarray as xr

from model.train_config import ConfigError, DataConfig

OPTION_LAYERS = ("options", "train", "val", "test")
"""The option tables of ``[data]``: ``options`` for every split, then one per split over it."""


def load_windows(
    data: DataConfig, split: str, *, overrides: dict | None = None, loader=None
) -> xr.DataArray:
    """``datasets.get_dataset`` for one split with the options of ``data``, cut to its frames.

    Parameters
    ----------
    data : DataConfig
        Dataset name, ``context`` and ``horizon``, and the option tables.
    split : {"train", "val", "test"}
    overrides : dict, optional
        Options over ``data.options`` and the split's table (e.g. ``n_samples``, ``root``).
    loader : callable, optional
        ``loader(name, split=..., **options)`` in place of ``datasets.get_dataset`` (tests).

    Returns
    -------
    xarray.DataArray
        ``(sample, time, channel, y, x)`` physical units, ``time`` = context + horizon frames.

    Raises
    ------
    ConfigError
        The windows are shorter than ``context + horizon`` (a ``ValueError``).
    """
    from datasets import get_dataset

    options = {**data.options, **getattr(data, split, {}), **(overrides or {})}
    array = (loader or get_dataset)(data.dataset, split=split, **options)
    need = data.context + data.horizon
    if array.sizes["time"] < need:
        raise ConfigError(
            f"dataset {data.dataset!r} ({split}) has {array.sizes['time']} frames per window "
            f"but context + horizon = {need}; ask the dataset for longer windows or shorten them"
        )
    return array.isel(time=slice(0, need)).transpose("sample", "time", "channel", "y", "x")


def data_config(meta: dict, *, dataset: str | None = None) -> DataConfig:
    """The ``[data]`` section a checkpoint was trained with, from its metadata.

    With another ``dataset`` than the checkpoint's, the stored options do not apply (they name
    the training data's files and sizes): only ``context`` and ``horizon`` carry over. A stored
    data location (``root=`` of checkpoints written before locations were dropped, see
    :func:`model.provenance.without_paths`) is ignored: it names a folder on the training machine,
    so the data is looked up in the download cache, or where the caller's ``root=`` says.
    """
    from model.provenance import without_paths

    name = dataset or meta["dataset"]
    stored = meta.get("dataset_options", {}) if name == meta.get("dataset") else {}
    stored = without_paths({key: dict(stored.get(key, {})) for key in OPTION_LAYERS})
    tables = {key: stored[key] for key in OPTION_LAYERS}
    return DataConfig(dataset=name, context=int(meta["context"]), horizon=int(meta["horizon"]),
                      **tables)  # fmt: skip

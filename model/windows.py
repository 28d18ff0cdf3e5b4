"""Dataset windows cut to context + horizon frames: the one loader of training and evaluation.

Training reads each split with the options of its config's ``[data]`` section
(:class:`model.train_config.DataConfig`); evaluation reads the same windows back from a
checkpoint's metadata (:func:`data_config`: ``dataset_options`` is the ``[data]`` section stored by
:mod:`model.provenance`). Either way :func:`load_windows` asks ``datasets.get_dataset`` for a split
of a registered dataset and keeps the first ``context + horizon`` frames of every window, or, for
a file (``data.file``), reads the file once (:func:`datasets.files.read_series`, which checks it
first) and cuts the split out of its time axis (:func:`datasets.splits.split_windows`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import xarray as xr

from model.train_config import FILE_WINDOW_OPTIONS, ConfigError, DataConfig

OPTION_LAYERS = ("options", "train", "val", "test")
"""The option tables of ``[data]``: ``options`` for every split, then one per split over it."""

_FILE_CACHE: dict = {}  # the last file read: {key: array}; training reads train and val from it


def load_windows(
    data: DataConfig, split: str, *, overrides: dict | None = None, loader=None
) -> xr.DataArray:
    """The windows of one split, as ``data`` says, cut to ``context + horizon`` frames.

    Parameters
    ----------
    data : DataConfig
        Dataset name or file, ``context`` and ``horizon``, and the option tables.
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
        Unknown dataset name, or windows shorter than ``context + horizon``.
    DatasetError
        The data could not be found, read or split.
    """
    if data.file:
        return file_windows(data, split, overrides=overrides)
    from datasets import get_dataset, list_datasets

    if loader is None and data.dataset.lower() not in list_datasets():
        raise ConfigError(
            f"data.dataset={data.dataset!r} is not a registered dataset; use one of "
            f"{', '.join(list_datasets())}, or name a file of your own (data.file, --data PATH)"
        )
    options = {**data.options, **getattr(data, split, {}), **(overrides or {})}
    array = (loader or get_dataset)(data.dataset, split=split, **options)
    need = data.context + data.horizon
    if array.sizes["time"] < need:
        raise ConfigError(
            f"dataset {data.dataset!r} ({split}) has {array.sizes['time']} frames per window "
            f"but context + horizon = {need}; ask the dataset for longer windows or shorten them"
        )
    return array.isel(time=slice(0, need)).transpose("sample", "time", "channel", "y", "x")


def file_windows(data: DataConfig, split: str, *, overrides: dict | None = None) -> xr.DataArray:
    """The windows of one split of ``data.file`` (see :func:`load_windows`).

    The window options are ``stride`` (default 1) and ``n_samples`` (all when absent), from
    ``data.options``, the split's table, then ``overrides``.
    """
    from datasets.splits import parse_split, split_windows

    options = {**data.options, **getattr(data, split, {}), **(overrides or {})}
    unknown = sorted(set(options) - set(FILE_WINDOW_OPTIONS))
    if unknown:
        raise ConfigError(
            f"option(s) {', '.join(unknown)} do not apply to the file {Path(data.file).name} "
            f"(its window options: {', '.join(FILE_WINDOW_OPTIONS)}); remove them"
        )
    return split_windows(
        read_file(data),
        parse_split(data.split_text),
        split,
        context=data.context,
        horizon=data.horizon,
        stride=int(options.get("stride", 1)),
        n_samples=options.get("n_samples"),
    )


def read_file(data: DataConfig) -> xr.DataArray:
    """``data.file`` read along its whole time axis, with its stated time step and start.

    The file is checked and read by :func:`datasets.files.read_series`; what it inferred (the
    ``.npz`` array, the axis order) is said on stderr. The last file read is kept, so the
    splits of one run read it once.

    Raises
    ------
    ConfigError
        Neither the file nor ``data.reader`` says the domain (radar, traffic, video).
    """
    from datasets.files import read_series
    from datasets.splits import with_time_axis
    from datasets.vocabulary import DOMAINS

    path = Path(data.file).expanduser()
    stat = path.stat() if path.exists() else None
    options = dict(data.reader)
    options.update({k: getattr(data, k) for k in ("layout", "key") if getattr(data, k)})
    key = (str(path.resolve()), stat and (stat.st_mtime_ns, stat.st_size),
           repr(sorted(options.items())), data.start, data.time_step)  # fmt: skip
    if key not in _FILE_CACHE:
        array, notes = read_series(path, **options)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if array.attrs.get("domain") not in DOMAINS:
            raise ConfigError(
                f"{path.name}: the file does not say what its values are; state the domain "
                f'(reader = {{ domain = "traffic" }} in [data], or --domain): radar (rain, mm/h), '
                "traffic (counts) or video (intensities in [0, 1]); it sets the scores and baselines"
            )
        array = with_time_axis(array, start=data.start, time_step=data.time_step)
        _FILE_CACHE.clear()
        _FILE_CACHE[key] = array
    return _FILE_CACHE[key]


def data_config(
    meta: dict, *, dataset: str | None = None, file: str | None = None, split: str | None = None
) -> DataConfig:
    """The ``[data]`` section a checkpoint was trained with, from its metadata.

    With another ``dataset`` than the checkpoint's, the stored options do not apply (they name
    the training data's files and sizes): only ``context`` and ``horizon`` carry over. A stored
    data location (``root=`` of checkpoints written before locations were dropped, see
    :func:`model.provenance.without_paths`) is ignored: it names a folder on the training machine,
    so the data is looked up in the download cache, or where the caller's ``root=`` says.

    With ``file`` (``model.evaluate --data PATH``), the file is cut as the checkpoint's file was
    (its stored split, layout, key, time axis, reader and window options), unless the checkpoint
    was trained on a registered dataset, or ``split`` says otherwise.

    Raises
    ------
    ConfigError
        The checkpoint was trained on a file and neither ``file`` nor ``dataset`` is given (its
        path is never stored); ``split`` is not a valid split.
    """
    from model.provenance import without_paths

    context, horizon = int(meta["context"]), int(meta["horizon"])
    if file is not None:
        return _file_config(meta, file, split, context=context, horizon=horizon)
    if dataset is None and meta.get("data_source") == "file":
        stored = meta.get("data_file") or {}
        raise ConfigError(
            f"checkpoint {meta.get('name', '')!r} was trained on the file "
            f"{stored.get('name', meta.get('dataset'))} (sha256 {stored.get('sha256', '?')}); "
            "its path is not stored: pass the file with --data PATH"
        )
    name = dataset or meta["dataset"]
    stored = meta.get("dataset_options", {}) if name == meta.get("dataset") else {}
    stored = without_paths({key: dict(stored.get(key, {})) for key in OPTION_LAYERS})
    tables = {key: stored[key] for key in OPTION_LAYERS}
    return DataConfig(dataset=name, context=context, horizon=horizon, **tables)


def _file_config(meta: dict, file: str, split: str | None, *, context: int, horizon: int):
    trained = ((meta.get("training") or {}).get("config") or {}).get("data") or {}
    fields = {}
    if meta.get("data_source") == "file" and isinstance(trained, dict):
        read_as = meta.get("data_file") if isinstance(meta.get("data_file"), dict) else {}
        for key in ("split", "layout", "key", "start", "time_step"):
            value = trained.get(key) or read_as.get(key)  # stated, else as inferred in training
            if isinstance(value, str) and value:
                fields[key] = value
        if isinstance(trained.get("reader"), dict):
            fields["reader"] = dict(trained["reader"])
        for table in OPTION_LAYERS:
            given = trained.get(table) if isinstance(trained.get(table), dict) else {}
            fields[table] = {k: v for k, v in given.items() if k in FILE_WINDOW_OPTIONS}
    if meta.get("domain") and not (fields.get("reader") or {}).get("domain"):
        fields["reader"] = {**fields.get("reader", {}), "domain": meta["domain"]}
    if split:
        fields["split"] = split
    return DataConfig(file=str(file), context=context, horizon=horizon, **fields)

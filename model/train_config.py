"""Training configs: one small TOML (or JSON) file per checkpoint, read into a :class:`TrainConfig`.

The file has the sections ``name``, ``description``, ``[data]`` (:class:`DataConfig`), ``[model]``
(:class:`model.convlstm.ConvLSTMConfig` fields but ``in_channels`` and ``frame_size``, which come
from the data), ``[normalization]`` (:class:`model.normalize.Normalizer` fields; ``scale = "auto"``
sets it from the training data) and ``[train]`` (:class:`TrainSettings`); see ``configs/*.toml``
and the docstring of :mod:`model.train`. Unknown keys, wrong types and bad values raise
:class:`ConfigError` naming the file, the key and what is allowed.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from model.convlstm import ConvLSTMConfig
from model.losses import LOSSES, MODES
from model.normalize import Normalizer

SECTIONS = ("name", "description", "data", "model", "normalization", "train")
FROM_DATA = ("in_channels", "frame_size")
"""ConvLSTMConfig fields set from the training data, never from the config."""


class ConfigError(ValueError):
    """A training config is missing a key or holds a bad value; the message names the file."""


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,)}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
          "dict": "a table"}  # fmt: skip


def _check_types(obj, section: str) -> None:
    """Check every field of the dataclass ``obj`` against its annotation; ints become floats."""
    for f in fields(obj):
        value, kind = getattr(obj, f.name), f.type
        if (isinstance(value, bool) and kind != "bool") or not isinstance(value, _TYPES[kind]):
            raise ConfigError(f"{section}.{f.name}={value!r} must be {_WORDS[kind]}")
        if kind == "float":
            object.__setattr__(obj, f.name, float(value))


def _known_keys(table: dict, known, section: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"unknown {section} keys {unknown}; known: {sorted(known)}")


FILE_KEYS = ("file", "split", "layout", "key", "start", "time_step", "reader")
"""``[data]`` keys of a config that names a file instead of a registered dataset."""
FILE_WINDOW_OPTIONS = ("stride", "n_samples")
"""Keys of the option tables (``options``, ``train``, ``val``, ``test``) for a file."""


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The ``[data]`` section: which data, and how many frames in and out.

    Either a registered dataset (``dataset``) or a file (``file``), never both.

    Attributes
    ----------
    dataset : str
        A name from ``datasets.list_datasets()``; ``""`` when ``file`` is given.
    context : int
        Frames read by the network (time steps of the dataset, e.g. 5 minutes each for radar).
    horizon : int
        Frames forecast; the loss covers all of them.
    options : dict
        ``datasets.get_dataset(...)`` keyword options for every split; for a file, the window
        options ``stride`` (frames between window starts, default 1) and ``n_samples``.
    train, val, test : dict
        Per-split options; they override ``options``.
    file : str
        A file (or Zarr folder) :func:`datasets.files.read_series` reads: NetCDF/Zarr, ``.npy``,
        ``.npz``, TaxiBJ-style HDF5, video, radar HDF5, a zip or folder of radar files. A relative path
        in a config file is relative to the config file's folder.
    split : str
        How the file's time axis is split (:mod:`datasets.splits`): fractions ``"0.8,0.1,0.1"``
        (the default, in time order) or dates ``"train:..2024-06-30,val:2024-07-01..2024-07-15,
        test:2024-07-16.."``.
    layout : str
        ``.npy``/``.npz`` axis order (``thw``, ``tchw``, ``thwc``, ``ntchw``,
        ``mnist_test_seq``); ``""``: inferred from the shape (and said).
    key : str
        ``.npz`` array to read; ``""``: inferred (and said).
    start : str
        Time of a timestamp-less file's first frame (``"2024-01-01T00:00"``); with ``time_step``
        it gives the frames timestamps (so dates can split it).
    time_step : str
        Time between frames of a file that does not state it (ISO 8601, ``"PT30M"``).
    reader : dict
        More reader options: ``units``, ``domain`` (``radar``, ``traffic``, ``video``: decides the
        scores and baselines), ``variable`` (NetCDF), ``size`` (video), ``interval_minutes``
        (TaxiBJ).
    """

    dataset: str = ""
    context: int
    horizon: int
    options: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    file: str = ""
    split: str = ""
    layout: str = ""
    key: str = ""
    start: str = ""
    time_step: str = ""
    reader: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_types(self, "data")
        for key in ("context", "horizon"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key} must be a positive integer")
        if bool(self.dataset) == bool(self.file):
            raise ConfigError(
                "[data] names both a dataset and a file; keep one"
                if self.dataset
                else "[data] names no data: set dataset = NAME (a registered dataset) or "
                "file = PATH (a file of your own)"
            )
        if self.file:
            self._check_file_keys()
        else:
            given = [k for k in FILE_KEYS[1:] if getattr(self, k)]
            if given:
                raise ConfigError(
                    f"data.{given[0]} applies to a file (data.file), not to the registered dataset "
                    f"{self.dataset!r}, which has its own splits and reader; remove it"
                )

    def _check_file_keys(self) -> None:
        from datasets.errors import DatasetError
        from datasets.formats.npy import NPY_LAYOUTS
        from datasets.splits import parse_split
        from datasets.timesteps import parse_time_step

        try:
            parse_split(self.split_text)
        except DatasetError as err:
            raise ConfigError(f"data.split: {err}") from None
        if self.layout and self.layout not in NPY_LAYOUTS:
            raise ConfigError(f"data.layout={self.layout!r}; use one of {', '.join(NPY_LAYOUTS)}")
        for table in ("options", "train", "val", "test"):
            _known_keys(getattr(self, table), FILE_WINDOW_OPTIONS, f"data.{table} (for a file)")
        if self.time_step and parse_time_step(self.time_step) is None:
            raise ConfigError(
                f"data.time_step={self.time_step!r} is no duration; write ISO 8601 such as "
                "'PT30M' or 'PT1H'"
            )
        if self.start:
            if not self.time_step:
                raise ConfigError("data.start needs data.time_step (the time between frames)")
            try:
                import pandas as pd

                pd.Timestamp(self.start)
            except (ValueError, TypeError):
                raise ConfigError(
                    f"data.start={self.start!r} is not a time; write '2024-01-01T00:00'"
                ) from None

    @property
    def split_text(self) -> str:
        """The file's split as written, or the default (chronological 0.8, 0.1, 0.1)."""
        from datasets.splits import DEFAULT_SPLIT

        return self.split or DEFAULT_SPLIT

    @property
    def source_name(self) -> str:
        """What the data is called in records: the dataset name, or the file's name."""
        return self.dataset or Path(self.file).name


TRAIN_PRECISIONS = ("auto", "fp32", "bf16")  # model.rollout.PRECISIONS
STREAMED_DATASET = (
    "moving_mnist"  # train.stream: model.moving_mnist_stream renders it on the device
)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The ``[train]`` section: optimiser, schedule, loss and checkpointing.

    Attributes
    ----------
    steps : int
        Optimiser steps, each on one global batch.
    batch_size : int
        Samples per step, global: split over the DDP ranks.
    lr : float
        Peak AdamW learning rate per optimiser step, reached after ``warmup`` steps; then cosine
        decay to 5% of it at ``steps`` (or when ``max_minutes`` run out). 0 freezes the weights.
    weight_decay : float
        AdamW decoupled weight decay, per step and per unit of learning rate.
    warmup : int
        Steps of linear learning-rate warm-up.
    grad_clip : float
        Largest global L2 norm of the gradient (model-space loss units); 0 turns clipping off.
    val_every : int
        Steps between validations; each one saves the latest checkpoint (and the best).
    mode : {"free", "teacher"}
        ``"free"``: loss on the free-running forecast (what is evaluated); ``"teacher"``: one-step
        loss on every frame.
    eval_batch_size : int
        Samples per forward pass during validation.
    augment : bool
        Random 90-degree rotations and flips of each batch.
    init_from : str
        Start from this checkpoint folder's weights (fine-tuning), a path relative to the
        repository root; ``""``: random initial weights.
    max_minutes : float
        Minutes of training wall time (the optimisation loop, data preparation excluded); when
        > 0, training stops when they are spent and the learning-rate decay follows the clock.
        0: no time limit.
    loss : {"mse", "balanced", "l1l2"}
        ``"balanced"`` (radar): pixels weighted by the true rain rate in mm/h,
        1 below 2 mm/h up to 30 at 30 mm/h (:func:`model.losses.rain_weights`); ``"l1l2"``: MSE +
        MAE (:func:`model.losses.batch_loss`).
    ema_decay : float
        > 0: keep an exponential moving average of the weights, ``ema += (1 - ema_decay) *
        (weights - ema)`` after every step (from the initial weights); validation, the best
        checkpoint and the validation scores use the average, ``run_dir/last`` keeps the raw
        weights training continues from. 0: off. Below 1.
    scheduled_sampling : float
        ``mode = "free"`` only: the probability, at step 0, that a fed-back forecast step reads the
        true frame instead of the prediction, falling linearly to 0 at ``steps``
        (:func:`model.losses.truth_probability`; scheduled sampling as in PredRNN). 0: off.
    precision : {"auto", "fp32", "bf16"}
        The training forward pass: ``"auto"`` runs the convolutions under bfloat16 autocast where
        the device computes bfloat16 natively (CUDA with bf16, CPUs with AVX512-BF16/AMX; 1.7x the
        float32 step on this project's CPU), float32 elsewhere; the policy of
        :func:`model.rollout.resolve_precision`.
    stream : bool
        ``moving_mnist`` only: train on an endless stream rendered on the training device
        (:class:`model.moving_mnist_stream.MovingMNISTStream`, the train digit pool, the run's
        seed) instead of the fixed ``train`` split; no sequence is seen twice.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 50
    grad_clip: float = 1.0
    val_every: int = 100
    mode: str = "free"
    eval_batch_size: int = 32
    augment: bool = False
    init_from: str = ""
    max_minutes: float = 0.0
    loss: str = "mse"
    precision: str = "auto"
    stream: bool = False
    ema_decay: float = 0.0
    scheduled_sampling: float = 0.0

    def __post_init__(self) -> None:
        _check_types(self, "train")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"train.precision={self.precision!r}; use one of {TRAIN_PRECISIONS}")
        if self.mode not in MODES:
            raise ConfigError(f"train.mode={self.mode!r}; use one of {MODES}")
        if self.loss not in LOSSES:
            raise ConfigError(f"train.loss={self.loss!r}; use one of {LOSSES}")
        for key in ("steps", "batch_size", "val_every", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be a positive integer")
        for key in ("lr", "weight_decay", "warmup", "grad_clip", "max_minutes"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key}={getattr(self, key)} must not be negative")
        self._check_sampling_and_ema()

    def _check_sampling_and_ema(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must be in [0, 1); 0 turns it off")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise ConfigError(
                f"train.scheduled_sampling={self.scheduled_sampling} must be in [0, 1]"
            )
        if self.scheduled_sampling and self.mode != "free":
            raise ConfigError(
                'train.scheduled_sampling applies to mode = "free" (teacher mode always feeds the '
                'true frames); remove it or use mode = "free"'
            )


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A whole training config: what :func:`model.train.train` runs.

    Attributes
    ----------
    name : str
        Checkpoint folder name (``checkpoints/NAME``, ``runs/NAME``); default: the dataset name.
    description : str or None
        One line for the model card; None when the file has none.
    data : DataConfig
    model : dict
        :class:`model.convlstm.ConvLSTMConfig` fields but ``in_channels`` and ``frame_size``;
        their values are checked when the network is built.
    normalization : dict
        :class:`model.normalize.Normalizer` fields; ``scale = "auto"``: the 99.9th percentile of
        the training data.
    train : TrainSettings
    """

    name: str
    description: str | None = None
    data: DataConfig
    model: dict = field(default_factory=dict)
    normalization: dict = field(default_factory=lambda: {"kind": "unit"})
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name={self.name!r} must be a non-empty string")
        if self.description is not None and not isinstance(self.description, str):
            raise ConfigError(f"description={self.description!r} must be a string")
        for key, value in (("model", self.model), ("normalization", self.normalization)):
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table, not {value!r}")
        for key in FROM_DATA:
            if key in self.model:
                raise ConfigError(f"model.{key} comes from the data; remove it")
        known_model = {f.name for f in fields(ConvLSTMConfig)} - set(FROM_DATA)
        _known_keys(self.model, known_model, "model")
        _known_keys(self.normalization, Normalizer.__dataclass_fields__, "normalization")
        if self.train.stream and self.data.dataset != STREAMED_DATASET:
            raise ConfigError(
                f"train.stream = true needs data.dataset = {STREAMED_DATASET!r} (the only dataset "
                f"rendered on the device), not {self.data.source_name!r}; remove train.stream"
            )

    @classmethod
    def from_dict(cls, raw: dict, *, source: str = "config") -> TrainConfig:
        """Build from a parsed config file; :class:`ConfigError` messages start with ``source``."""
        try:
            return cls._from_dict(copy.deepcopy(raw))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def _from_dict(cls, raw: dict) -> TrainConfig:
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown sections {unknown}; known: {list(SECTIONS)}")
        data = raw.get("data")
        if not isinstance(data, dict) or not ({"dataset", "file"} & set(data)):
            raise ConfigError(
                "[data] with a `dataset` name (registered data) or a `file` path is required"
            )
        _known_keys(data, DataConfig.__dataclass_fields__, "data")
        for key in ("context", "horizon"):
            if key not in data:
                raise ConfigError(f"data.{key} must be a positive integer")
        train = raw.get("train", {})
        if not isinstance(train, dict):
            raise ConfigError(f"[train] must be a table, not {train!r}")
        _known_keys(train, TrainSettings.__dataclass_fields__, "train")
        return cls(
            name=raw.get("name", default_name(data)),
            description=raw.get("description"),
            data=DataConfig(**data),
            model=raw.get("model", {}),
            normalization=raw.get("normalization", {"kind": "unit"}),
            train=TrainSettings(**train),
        )

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` or ``.json`` config file.

        Raises
        ------
        ConfigError
            Unreadable file, unknown suffix, not valid TOML/JSON, missing or bad keys.
        """
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the training config ({err})") from err
        try:
            if path.suffix == ".toml":
                raw = tomllib.loads(text)
            elif path.suffix == ".json":
                raw = json.loads(text)
            else:
                raise ConfigError(f"{path}: config must be .toml or .json")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()} ({err})") from err
        data = raw.get("data")
        if isinstance(data, dict) and isinstance(data.get("file"), str) and data["file"]:
            data["file"] = str(resolve_file(data["file"], path.parent))
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict:
        """JSON-ready dict with every default filled in (stored in checkpoint metadata).

        ``from_dict(to_dict())`` gives the same config; ``description`` is left out when None.
        """
        out = {"name": self.name}
        if self.description is not None:
            out["description"] = self.description
        out["data"] = asdict(self.data)
        out["model"] = copy.deepcopy(self.model)
        out["normalization"] = copy.deepcopy(self.normalization)
        out["train"] = asdict(self.train)
        return out

    @classmethod
    def coerce(cls, cfg: TrainConfig | dict, *, source: str = "config") -> TrainConfig:
        """``cfg`` itself when already a :class:`TrainConfig`, else :meth:`from_dict`."""
        return cfg if isinstance(cfg, TrainConfig) else cls.from_dict(cfg, source=source)


def default_name(data: dict) -> str:
    """The checkpoint name when a config gives none: the dataset's, or the file's stem."""
    if data.get("dataset"):
        return str(data["dataset"])
    stem = Path(str(data.get("file", ""))).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "file"


def resolve_file(file: str, folder: str | Path) -> Path:
    """``file`` (``~`` expanded) as an absolute path, relative ones taken from ``folder``."""
    path = Path(file).expanduser()
    return path if path.is_absolute() else (Path(folder) / path).resolve()


def load_config(path: str | Path) -> dict:
    """Read a training config (``.toml`` or ``.json``) as a dict with every default filled in.

    The dict form of :meth:`TrainConfig.load` (keys ``name``, ``data``, ``model``,
    ``normalization``, ``train``, and ``description`` when given).

    Raises
    ------
    ConfigError
        Unreadable file, unknown suffix, missing or bad keys.
    """
    return TrainConfig.load(path).to_dict()


def validate_config(raw: dict, *, source: str = "config") -> dict:
    """Check a config dict and fill in defaults; :class:`ConfigError` names what is wrong."""
    return TrainConfig.from_dict(raw, source=source).to_dict()

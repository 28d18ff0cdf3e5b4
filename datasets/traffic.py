"""Traffic datasets: simulated city flows (bundled) and the TaxiBJ / BikeNYC / TaxiNYC HDF5 layout.

Registered datasets
-------------------
``traffic_sumo``
    Bundled and offline: in-flow / out-flow of vehicles on a 16 x 16 grid of 100 m cells every 15
    simulated minutes, from an Eclipse SUMO simulation of a signalised grid city over 35 simulated
    days with weekday commute peaks (``datasets/data/traffic_sumo.nc``, made by
    :mod:`datasets.sumo_traffic`; SUMO is needed only to regenerate it). Labelled ``synthetic=1``.
    Units "vehicles per interval", ``time_step`` ``"PT15M"``. Split by whole days, in time order:
    train the first 25 days, val the next 5, test the last 5.
``taxinyc``
    Real New York taxi flows (Fiorini et al. 2021), ``NYC10..14_Taxi_M16x8_T60_InOut.h5``, 16 x 8
    cells, hourly, units "trips per hour". Split by year: train 2010-2012, val 2013, test 2014.
    Files come from ``root=`` (a folder holding ``TaxiNYC/``, or the ``TaxiNYC`` folder itself) or
    the download cache (``download=True``; source ``"taxinyc"`` of :mod:`datasets.download`).

Both return windows ``(sample, time, channel, y, x)`` of ``context + horizon`` frames (default
12 + 12) cut by :func:`windows`: ``time`` is the frame index in the window and the coordinate
``timestamp (sample, time)`` holds the real (for SUMO: nominal) times. Windows start every
``stride`` frames (default ``horizon``) and never cross a split boundary or a gap.

The TaxiBJ HDF5 layout
----------------------
:func:`read_taxibj` reads any file of this layout (TaxiBJ, BikeNYC, TaxiNYC): ``date`` (T,) bytes
``b'YYYYMMDDSS'`` and ``data`` (T, C, H, W) counts (C = 2: in/new-flow, out/end-flow). The slot
``SS`` counts intervals of the day; the interval is ``interval_minutes=`` or the ``_T<minutes>_``
token of the file name (``T30``: TaxiBJ's 48 half-hour slots, ``T60``: hourly), else inferred from
the slots (any slot above 24 means half hours). Slots are 1-based (DeepST convention: TaxiBJ,
BikeNYC ``01..24``) or 0-based (TaxiNYC ``00..23``): a slot 0 means 0-based, a slot equal to the
number of slots per day means 1-based; with neither, half-hour files are taken as 1-based and
hourly ones as 0-based (``report.slot_base`` says which).

Defects are detected and reported, never hidden (:class:`SeriesReport`, also in the attrs):

- **duplicated timestamps**: default policy *keep the first occurrence in file order* (later rows
  with the same timestamp are dropped); ``duplicates="last"`` keeps the last, ``"drop"`` drops all
  of them (the timestamps become gaps). The report gives the number of duplicated timestamps and of
  dropped rows, their ranges, and the largest absolute difference between a repeat and the first
  occurrence. TaxiNYC's repeats carry different values and neither copy is reliably the right one:
  compared with the same hour one and two weeks before and after, the later copy fits better in
  2010-2012 and the first copy in 2013-2014; ``"drop"`` is the cautious choice for training;
- **rows out of order** (time going backwards in the file): the series is sorted by time;
- **gaps**: missing intervals (count and ranges); frames with non-finite values are dropped and
  counted as missing too. Windows never span a gap.

Reader functions (for the fuzz tests): :func:`read_taxibj`, :func:`open_taxibj` (the
:func:`datasets.files.read_any` hook, registered for HDF5 files with ``date`` and ``data``),
:func:`parse_dates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from datasets.download import cached_path, fetch, register_files
from datasets.errors import DatasetError
from datasets.files import HDF5_MAGIC, iso_duration, register_reader
from datasets.registry import register
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_hdf5, public_message

DECLARED_BYTES = DEFAULT_MAX_DECODED_BYTES  # all arrays an HDF5 file declares (TaxiBJ16: 120 MB)

DATA_DIR = Path(__file__).resolve().parent / "data"
SUMO_PATH = DATA_DIR / "traffic_sumo.nc"
SUMO_SPLIT_DAYS = {"train": (0, 25), "val": (25, 30), "test": (30, 35)}  # [first, last) day

TAXINYC_SOURCE = "taxinyc"
TAXINYC_FILES = {
    "TaxiNYC/NYC10_Taxi_M16x8_T60_InOut.h5": (
        "09485eea7727b90273e6f4cbd9e9e18549034081eadf8d601abaa494297b8ce4"
    ),
    "TaxiNYC/NYC11_Taxi_M16x8_T60_InOut.h5": (
        "72660bb87f4e7e0035a116d59102dadeb1b328aa95c84d383a6a15b896d9e351"
    ),
    "TaxiNYC/NYC12_Taxi_M16x8_T60_InOut.h5": (
        "5b95d03f44bd07b9102431e74ee293db78048886a2d773e6c3d3b99c7c275fe9"
    ),
    "TaxiNYC/NYC13_Taxi_M16x8_T60_InOut.h5": (
        "fbb84edbeb378e7f8067bead7ede8747cf8b9e1f708c03be222f767f3ae79dc2"
    ),
    "TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5": (
        "112585137947375db1e0a7733724c0604e3774eaf8c894cdb1abe867c3b22039"
    ),
}
TAXINYC_YEARS = {"train": (2010, 2011, 2012), "val": (2013,), "test": (2014,)}
TAXINYC_LICENCE = (
    "no licence file in the source repository; cite Fiorini, Ciavotta & Maurino (2021), "
    "arXiv:2103.00983. Use for research; do not redistribute."
)
register_files("taxinyc", TAXINYC_SOURCE, TAXINYC_FILES)

DEFAULT_MAX_BYTES = 1024**3  # 1 GiB: TaxiBJ's largest file is ~80 MB as float64
FLOW_CHANNELS = ("inflow", "outflow")
DUPLICATE_POLICIES = {
    "first": (
        "keep the first occurrence in file order; later rows with the same timestamp are dropped"
    ),
    "last": (
        "keep the last occurrence in file order; earlier rows with the same timestamp are dropped"
    ),
    "drop": "drop every row of a duplicated timestamp, which then counts as missing (a gap)",
}
DUPLICATE_POLICY = DUPLICATE_POLICIES["first"]
_MAX_RANGES_IN_ATTRS = 20


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True)
class SeriesReport:
    """What :func:`read_taxibj` found wrong with a file's time axis, and what it did about it.

    Ranges are ``"start/end"`` ISO 8601 strings (both ends included).
    """

    path: str
    interval_minutes: int
    slot_base: int  # 0 or 1: the slot number of the day's first interval
    n_rows: int  # rows in the file
    n_frames: int  # frames kept (unique timestamps with finite values)
    start: str
    end: str
    n_duplicated_timestamps: int  # timestamps that occur more than once
    n_dropped_rows: int  # rows dropped by the duplicate policy
    duplicate_ranges: tuple[str, ...]
    max_duplicate_abs_diff: float  # largest |repeat - first occurrence| over all values
    n_out_of_order: int  # places where time goes backwards in file order
    n_nonfinite_frames: int  # frames dropped for NaN/inf values (counted as missing)
    n_missing: int  # missing intervals between start and end
    gap_ranges: tuple[str, ...]
    duplicate_policy: str = field(default=DUPLICATE_POLICY)

    def to_attrs(self, prefix: str = "report_") -> dict[str, str | int | float]:
        """The report as NetCDF-safe attrs (str, int, float)."""
        out: dict[str, str | int | float] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, tuple):
                shown = list(value[:_MAX_RANGES_IN_ATTRS])
                if len(value) > _MAX_RANGES_IN_ATTRS:
                    shown.append(f"... ({len(value) - _MAX_RANGES_IN_ATTRS} more)")
                value = "; ".join(shown) if shown else "none"
            out[prefix + key] = value
        return out

    def summary(self) -> str:
        """One line for logs and the dashboard."""
        return (
            f"{Path(self.path).name}: {self.n_rows} rows -> {self.n_frames} frames "
            f"{self.start} .. {self.end}; {self.n_duplicated_timestamps} duplicated timestamps "
            f"({self.n_dropped_rows} rows dropped, max |diff| {self.max_duplicate_abs_diff:g}) in "
            f"{', '.join(self.duplicate_ranges) or 'none'}; {self.n_missing} missing intervals in "
            f"{', '.join(self.gap_ranges) or 'none'}"
        )


# ----------------------------------------------------------------------------- dates


def parse_dates(
    raw, *, interval_minutes: int | None = None, source: str = "date"
) -> tuple[pd.DatetimeIndex, int, int]:
    """Parse TaxiBJ-layout date strings ``YYYYMMDDSS`` (date plus slot of the day).

    Parameters
    ----------
    raw : array-like of bytes, str or int, shape (T,)
        The ``date`` dataset, e.g. ``b'2010010100'``.
    interval_minutes : int, optional
        Minutes per slot (60 hourly, 30 TaxiBJ). Inferred when None: any slot above 24 means 30.
    source : str
        Named in error messages (the file).

    Returns
    -------
    times : pandas.DatetimeIndex, shape (T,)
        Start of each slot.
    interval_minutes : int
    slot_base : int
        0 or 1 (see the module doc).

    Raises
    ------
    DatasetError
        A value is not 10 digits, an impossible date, or a slot outside the day.
    """
    values = np.asarray(raw).reshape(-1)
    if values.size == 0:
        raise DatasetError(f"{source}: 'date' is empty; the file holds no time slots.")
    text = pd.Series([_as_text(v, source) for v in values], dtype=object)
    good = text.str.fullmatch(r"\d{10}").fillna(False).to_numpy(dtype=bool)
    if not good.all():
        i = int(np.flatnonzero(~good)[0])
        raise DatasetError(
            f"{source}: date value {values[i]!r} at row {i} is not 'YYYYMMDDSS' (8 date digits "
            f"and a 2-digit slot of the day); {int((~good).sum())} bad values in all."
        )
    days = pd.to_datetime(text.str[:8], format="%Y%m%d", errors="coerce")
    if days.isna().any():
        i = int(np.flatnonzero(days.isna().to_numpy())[0])
        raise DatasetError(f"{source}: date value {values[i]!r} at row {i} is not a real date.")
    slots = text.str[8:].astype(int).to_numpy()
    if interval_minutes is None:
        interval_minutes = 30 if slots.max() > 24 else 60
    interval_minutes = int(interval_minutes)
    if interval_minutes <= 0 or 1440 % interval_minutes:
        raise DatasetError(
            f"{source}: interval of {interval_minutes} min does not divide a day; "
            "pass interval_minutes= (e.g. 30 or 60)."
        )
    per_day = 1440 // interval_minutes
    if (slots == 0).any():
        base = 0
    elif (slots == per_day).any():
        base = 1
    else:
        base = 1 if interval_minutes == 30 else 0
    bad = (slots < base) | (slots > per_day - 1 + base)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{source}: slot {slots[i]} in date value {values[i]!r} (row {i}) is outside "
            f"{base}..{per_day - 1 + base} for {per_day} slots of {interval_minutes} min a day; "
            "pass interval_minutes= if the file name does not say it (e.g. _T30_)."
        )
    offsets = ((slots - base) * interval_minutes).astype("timedelta64[m]")
    times = pd.DatetimeIndex(days.to_numpy().astype("datetime64[ns]") + offsets)
    return times.as_unit("ns"), interval_minutes, base


def _as_text(value, source: str) -> str:
    if isinstance(value, bytes | np.bytes_):
        try:
            return value.decode("ascii").strip()
        except UnicodeDecodeError:
            raise DatasetError(f"{source}: date value {value!r} is not ASCII text.") from None
    if isinstance(value, np.integer | int):
        return str(int(value))
    return str(value).strip()


def _interval_from_name(path: Path) -> int | None:
    match = re.search(r"_T(\d+)(?:_|\.|$)", path.name)
    return int(match.group(1)) if match else None


def _ranges(times: pd.DatetimeIndex, step: pd.Timedelta) -> tuple[str, ...]:
    """Runs of consecutive ``times`` (sorted, unique) as ``"start/end"`` strings."""
    if len(times) == 0:
        return ()
    breaks = np.flatnonzero(np.diff(times.as_unit("ns").asi8) != _ns(step)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(times) - 1]])
    return tuple(f"{_iso(times[a])}/{_iso(times[b])}" for a, b in zip(starts, ends, strict=True))


def _ns(delta) -> int:
    """A time difference in integer nanoseconds (whatever unit pandas chose)."""
    return int(np.timedelta64(pd.Timedelta(delta).to_timedelta64(), "ns").astype(np.int64))


def _iso(stamp) -> str:
    return pd.Timestamp(stamp).strftime("%Y-%m-%dT%H:%M")


# ----------------------------------------------------------------------------- reader


def read_taxibj(
    path,
    *,
    interval_minutes: int | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    units: str | None = None,
    duplicates: str = "first",
) -> tuple[xr.DataArray, SeriesReport]:
    """Read a TaxiBJ-layout HDF5 file (TaxiBJ, BikeNYC, TaxiNYC) into a clean time series.

    Parameters
    ----------
    path : path
        The ``.h5`` file with datasets ``date`` (T,) and ``data`` (T, C, H, W).
    interval_minutes : int, optional
        Minutes per slot; default from the ``_T<minutes>_`` file name token, else inferred.
    max_bytes : int or None
        Refuse files (and ``data`` arrays, as float32) larger than this.
    units : str, optional
        Default ``"flow counts per <interval>"``.
    duplicates : {"first", "last", "drop"}
        Which row of a duplicated timestamp to keep (see :data:`DUPLICATE_POLICIES`).

    Returns
    -------
    series : xarray.DataArray
        float32 counts, dims ``(time, channel, y, x)``, sorted unique timestamps (datetime64),
        channels ``inflow``/``outflow`` when C = 2; attrs of the dataset contract plus the report.
    report : SeriesReport
        Duplicates, disorder and gaps found (see the module doc for the policy).

    Raises
    ------
    DatasetError
        Missing, too large, truncated or non-HDF5 file; missing ``date``/``data``; wrong dims or
        dtype; bad date strings; no finite frame. The message names the file.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates={duplicates!r}; use one of {', '.join(DUPLICATE_POLICIES)}")
    try:
        return _read_taxibj(
            Path(path),
            interval_minutes=interval_minutes,
            max_bytes=max_bytes,
            units=units,
            duplicates=duplicates,
        )
    except DatasetError as exc:  # library messages quote full paths: keep the base name only
        raise DatasetError(public_message(str(exc), path)) from exc.__cause__
    except (MemoryError, RecursionError) as exc:
        raise DatasetError(
            f"{Path(path).name}: too large or malformed to read as TaxiBJ HDF5 "
            f"({type(exc).__name__})."
        ) from None
    except Exception as exc:  # h5py and numpy raise many types on malformed files
        detail = public_message(f"{type(exc).__name__}: {exc}", path)
        raise DatasetError(
            f"{Path(path).name}: could not be read as a TaxiBJ-layout HDF5 file ({detail}); check "
            "that the file is complete and has 'date' and 'data' datasets."
        ) from exc


def _read_taxibj(
    path: Path,
    *,
    interval_minutes: int | None,
    max_bytes: int | None,
    units: str | None,
    duplicates: str,
) -> tuple[xr.DataArray, SeriesReport]:
    import h5py

    if not path.is_file():
        raise DatasetError(f"{path.name}: no such file. Check the path, or use download=True.")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise DatasetError(
            f"{path.name}: {size / 1e6:.1f} MB is larger than the limit of {max_bytes / 1e6:.1f} MB; "
            "pass a larger max_bytes if you mean it."
        )
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head != HDF5_MAGIC:
        raise DatasetError(
            f"{path.name}: not an HDF5 file (starts {head!r}); expected the TaxiBJ layout "
            "(HDF5 with 'date' and 'data')."
        )
    # No links to other files, no plugin filters, declared sizes bounded: before any data is read.
    check_hdf5(path, max_bytes=None if max_bytes is None else max(max_bytes, DECLARED_BYTES))
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(
            f"{path.name}: HDF5 file cannot be opened ({exc}); it is probably truncated or corrupted. "
            "Download it again."
        ) from exc
    with h5:
        keys = sorted(h5.keys())
        missing = [k for k in ("date", "data") if not isinstance(h5.get(k), h5py.Dataset)]
        if missing:
            raise DatasetError(
                f"{path.name}: missing dataset(s) {missing} (found {keys or 'nothing'}); the TaxiBJ "
                "layout needs 'date' (T,) and 'data' (T, C, H, W)."
            )
        date_ds, data_ds = h5["date"], h5["data"]
        if data_ds.ndim != 4 or min(data_ds.shape) < 1:
            raise DatasetError(
                f"{path.name}: 'data' has shape {data_ds.shape}; expected (T, C, H, W) with no empty "
                "dimension (e.g. (T, 2, 16, 8))."
            )
        if date_ds.ndim != 1 or date_ds.shape[0] != data_ds.shape[0]:
            raise DatasetError(
                f"{path.name}: 'date' has shape {date_ds.shape} but 'data' has {data_ds.shape[0]} rows; "
                "they must match one date per row."
            )
        if data_ds.dtype.kind not in "iuf":
            raise DatasetError(f"{path.name}: 'data' has dtype {data_ds.dtype}; expected numbers.")
        need = int(np.prod(data_ds.shape, dtype=np.int64)) * 4
        if max_bytes is not None and need > max_bytes:
            raise DatasetError(
                f"{path.name}: 'data' {data_ds.shape} needs {need / 1e6:.1f} MB as float32, over the "
                f"limit of {max_bytes / 1e6:.1f} MB; pass a larger max_bytes if you mean it."
            )
        raw_dates = date_ds[()]
        with np.errstate(over="ignore", invalid="ignore"):  # huge values -> inf -> dropped frames
            values = np.asarray(data_ds[()], dtype=np.float32)  # (T, C, H, W)

    if interval_minutes is None:
        interval_minutes = _interval_from_name(path)
    times, interval, base = parse_dates(
        raw_dates, interval_minutes=interval_minutes, source=str(path)
    )
    step = pd.Timedelta(minutes=interval)
    n_rows = len(times)

    # Duplicates: compare every repeat with the first occurrence, then apply the policy.
    stamps = times.as_unit("ns").asi8
    n_out_of_order = int((np.diff(stamps) < 0).sum())
    unique, first_index, inverse, counts = np.unique(
        stamps, return_index=True, return_inverse=True, return_counts=True
    )
    repeated = np.flatnonzero(counts[inverse] > 1)  # rows whose timestamp occurs more than once
    later = repeated[repeated != first_index[inverse[repeated]]]
    max_diff = 0.0
    if later.size:
        diffs = np.abs(values[later].astype(np.float64) - values[first_index[inverse[later]]])
        finite = np.isfinite(diffs)
        max_diff = float(diffs[finite].max()) if finite.any() else float("nan")
    dup_times = pd.DatetimeIndex(unique[counts > 1].astype("datetime64[ns]"))
    if duplicates == "first":
        order = first_index  # one row per timestamp, sorted by time
    elif duplicates == "last":
        _, last_rev = np.unique(stamps[::-1], return_index=True)
        order = n_rows - 1 - last_rev
    else:  # "drop"
        order = first_index[counts == 1]
    n_dropped = n_rows - order.size
    frames = values[order]
    kept_times = pd.DatetimeIndex(stamps[order].astype("datetime64[ns]"))
    if len(kept_times) == 0:
        raise DatasetError(f"{path}: no timestamp left after dropping the duplicated ones.")
    finite_frames = np.isfinite(frames).all(axis=(1, 2, 3))
    if not finite_frames.any():
        raise DatasetError(f"{path}: every frame has NaN or infinite values; nothing to use.")
    n_nonfinite = int((~finite_frames).sum())
    frames, kept_times = frames[finite_frames], kept_times[finite_frames]

    full = pd.date_range(kept_times[0], kept_times[-1], freq=step)
    missing = full.difference(kept_times)
    report = SeriesReport(
        path=str(path),
        interval_minutes=interval,
        slot_base=base,
        n_rows=n_rows,
        n_frames=len(kept_times),
        start=_iso(kept_times[0]),
        end=_iso(kept_times[-1]),
        n_duplicated_timestamps=len(dup_times),
        n_dropped_rows=int(n_dropped),
        duplicate_ranges=_ranges(dup_times, step),
        max_duplicate_abs_diff=max_diff,
        n_out_of_order=n_out_of_order,
        n_nonfinite_frames=n_nonfinite,
        n_missing=len(missing),
        gap_ranges=_ranges(missing, step),
        duplicate_policy=DUPLICATE_POLICIES[duplicates],
    )
    n_channels = frames.shape[1]
    channels = list(FLOW_CHANNELS) if n_channels == 2 else [f"c{i}" for i in range(n_channels)]
    per = "hour" if interval == 60 else f"{interval} minutes"
    series = xr.DataArray(
        frames,
        dims=("time", "channel", "y", "x"),
        coords={
            "time": kept_times.values.astype("datetime64[ns]"),
            "channel": channels,
            "y": np.arange(frames.shape[2]),
            "x": np.arange(frames.shape[3]),
        },
        name="flow",
        attrs={
            "units": units or f"flow counts per {per}",
            "time_step": iso_duration(interval * 60),
            "domain": "traffic",
            "source": path.name,
            "licence": "user file: licence as set by its owner",
            "description": (
                f"TaxiBJ-layout flows read from {path.name}: {report.n_frames} frames of "
                f"{interval} min; duplicates: {report.duplicate_policy}; windows never span the "
                f"{report.n_missing} missing intervals."
            ),
            "synthetic": 0,
            **report.to_attrs(),
        },
    )
    return series, report


# ----------------------------------------------------------------------------- windows


def contiguous_runs(series: xr.DataArray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of gap-free stretches of a ``(time, ...)`` series.

    A gap is a time difference other than the series' step (``attrs["time_step"]`` as an ISO 8601
    duration, else the smallest positive difference) or a frame with any non-finite value.
    """
    n = series.sizes["time"]
    if n == 0:
        return []
    times = series["time"].values
    if np.issubdtype(times.dtype, np.datetime64):
        ticks = times.astype("datetime64[ns]").astype(np.int64)
        step = _step_ns(series.attrs.get("time_step"), ticks)
    else:
        ticks = np.asarray(times, dtype=np.float64)
        diffs = np.diff(ticks)
        step = diffs[diffs > 0].min() if (diffs > 0).any() else 1
    other = [d for d in series.dims if d != "time"]
    finite = np.isfinite(series.transpose("time", *other).values).reshape(n, -1).all(axis=1)
    ok_step = np.diff(ticks) == step  # (n-1,) frame i -> i+1 continuous
    runs, start = [], None
    for i in range(n):
        if not finite[i]:
            if start is not None:
                runs.append((start, i))
            start = None
            continue
        if start is None:
            start = i
        elif not ok_step[i - 1]:
            runs.append((start, i))
            start = i
    if start is not None:
        runs.append((start, n))
    return runs


def _step_ns(time_step, ticks: np.ndarray) -> int:
    if isinstance(time_step, str) and time_step.startswith("P"):
        try:
            return _ns(pd.Timedelta(time_step))
        except ValueError:
            pass
    diffs = np.diff(ticks)
    return int(diffs[diffs > 0].min()) if (diffs > 0).any() else 1


def windows(
    series: xr.DataArray, context: int = 12, horizon: int = 12, *, stride: int = 1
) -> xr.DataArray:
    """Cut a ``(time, channel, y, x)`` series into windows that never span a gap.

    Parameters
    ----------
    series : xarray.DataArray
        dims ``(time, channel, y, x)``; ``time`` datetime64 (with ``attrs["time_step"]``) or
        numeric steps.
    context, horizon : int
        Frames given to the model and frames to forecast (>= 1 each).
    stride : int
        Frames between the starts of consecutive windows within one gap-free stretch (>= 1);
        each stretch starts its own windows at its first frame.

    Returns
    -------
    xarray.DataArray
        float32, dims ``(sample, time, channel, y, x)``: ``time`` is the frame index in the window
        (0 .. context + horizon - 1), the coordinate ``timestamp (sample, time)`` holds the times;
        attrs as the series plus ``context``, ``horizon`` and ``stride``.

    Raises
    ------
    ValueError
        context, horizon or stride below 1.
    DatasetError
        No gap-free stretch of ``context + horizon`` frames.
    """
    context, horizon, stride = int(context), int(horizon), int(stride)
    if context < 1 or horizon < 1 or stride < 1:
        raise ValueError(f"need context, horizon, stride >= 1; got {context}, {horizon}, {stride}")
    if set(series.dims) != {"time", "channel", "y", "x"}:
        raise DatasetError(
            f"{series.attrs.get('source', 'series')}: dims {series.dims}; windows() needs "
            "(time, channel, y, x)."
        )
    series = series.transpose("time", "channel", "y", "x")
    length = context + horizon
    runs = contiguous_runs(series)
    starts = np.concatenate(
        [np.arange(a, b - length + 1, stride) for a, b in runs if b - a >= length]
        or [np.zeros(0, dtype=int)]
    ).astype(int)
    if starts.size == 0:
        longest = max((b - a for a, b in runs), default=0)
        raise DatasetError(
            f"{series.attrs.get('source', 'series')}: no gap-free stretch of context + horizon = "
            f"{length} frames (longest is {longest}); ask for a shorter window."
        )
    values = series.values.astype(np.float32, copy=False)  # (T, C, H, W)
    index = starts[:, None] + np.arange(length)[None, :]  # (N, L)
    out = values[index]  # (N, L, C, H, W)
    return xr.DataArray(
        out,
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "sample": np.arange(starts.size),
            "time": np.arange(length),
            "channel": series["channel"].values,
            "y": series["y"],
            "x": series["x"],
            "timestamp": (("sample", "time"), series["time"].values[index]),
        },
        name=series.name,
        attrs={**series.attrs, "context": context, "horizon": horizon, "stride": stride},
    )


def _take(arr: xr.DataArray, n_samples: int | None) -> xr.DataArray:
    """Keep ``n_samples`` windows, evenly spaced (all when None)."""
    if n_samples is None or int(n_samples) >= arr.sizes["sample"]:
        return arr
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    pick = np.unique(np.linspace(0, arr.sizes["sample"] - 1, int(n_samples)).round().astype(int))
    return arr.isel(sample=pick).assign_coords(sample=np.arange(pick.size))


# ----------------------------------------------------------------------------- traffic_sumo


def read_sumo_series(path=None) -> xr.DataArray:
    """The bundled SUMO flows as a series ``(time, channel, y, x)``, float32, with its attrs.

    Raises
    ------
    DatasetError
        The file is missing or unreadable (the message says how to regenerate it).
    """
    path = Path(path) if path is not None else SUMO_PATH
    if not path.is_file():
        raise DatasetError(
            f"{path}: bundled SUMO traffic file missing. Reinstall the package, or regenerate it "
            "with `pip install -r requirements-sumo.txt` and `python -m datasets.sumo_traffic "
            f"--out {path}`."
        )
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            if "flow" not in ds:
                raise DatasetError(f"{path}: no 'flow' variable (found {list(ds.data_vars)}).")
            flow = ds["flow"].load()
            attrs = dict(ds.attrs)
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"{path}: could not read the SUMO traffic NetCDF ({type(exc).__name__}: {exc}); "
            "regenerate it with `python -m datasets.sumo_traffic`."
        ) from exc
    series = flow.astype(np.float32).transpose("time", "channel", "y", "x")
    series.attrs = {**attrs, "units": "vehicles per interval"}
    series.name = "flow"
    return series


@register("traffic_sumo", bundled=True, domain="traffic")
def traffic_sumo(
    *,
    split: str,
    context: int = 12,
    horizon: int = 12,
    stride: int | None = None,
    n_samples: int | None = None,
    path=None,
) -> xr.DataArray:
    """Simulated city traffic (Eclipse SUMO): vehicle in/out-flows, 16x16 cells, 15 min steps.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Whole simulated days in time order: days 0-24, 25-29, 30-34.
    context, horizon : int
        Frames per window = context + horizon (default 12 + 12 = 6 hours).
    stride : int, optional
        Frames between window starts (default ``horizon``).
    n_samples : int, optional
        Keep this many windows, evenly spaced.
    path : path, optional
        Another file written by :mod:`datasets.sumo_traffic` (default the bundled one).

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` in vehicles per interval (15 min).
    """
    series = read_sumo_series(path)
    per_day = int(pd.Timedelta(days=1) / pd.Timedelta(series.attrs.get("time_step", "PT15M")))
    n_days = series.sizes["time"] // per_day
    first, last = SUMO_SPLIT_DAYS[split]
    if n_days < SUMO_SPLIT_DAYS["test"][1]:  # a shorter regenerated file: 70/15/15 by days
        if n_days < 3:
            raise DatasetError(
                f"{path or SUMO_PATH}: {n_days} simulated days; train/val/test need at least 3 "
                "(regenerate with --days 3 or more)."
            )
        n_test = max(1, round(0.15 * n_days))
        bounds = {"train": (0, n_days - 2 * n_test), "val": (n_days - 2 * n_test, n_days - n_test)}
        first, last = bounds.get(split, (n_days - n_test, n_days))
    part = series.isel(time=slice(first * per_day, last * per_day))
    out = windows(part, context, horizon, stride=horizon if stride is None else stride)
    out.attrs.update(
        split=split,
        split_days=f"{first}-{last - 1}",
        split_policy="whole simulated days in time order: train 0-24, val 25-29, test 30-34",
    )
    return _take(out, n_samples)


# ----------------------------------------------------------------------------- taxinyc


def taxinyc_file(
    year: int,
    *,
    root=None,
    download: bool = False,
    cache_dir=None,
    base_url: str | None = None,
) -> Path:
    """Local path of the TaxiNYC file of ``year`` (2010-2014).

    Looks in ``root`` (a folder holding ``TaxiNYC/``, or that folder itself), else the download
    cache; ``download=True`` fetches it (checked by SHA-256) when it is not there.

    Raises
    ------
    DatasetError
        Unknown year, or the file is not found (the message says how to get it).
    """
    rel = f"TaxiNYC/NYC{int(year) % 100:02d}_Taxi_M16x8_T60_InOut.h5"
    if rel not in TAXINYC_FILES:
        raise DatasetError(f"TaxiNYC has years 2010-2014; {year} is not one of them.")
    if root is not None:
        root = Path(root).expanduser()
        for candidate in (root / rel, root / Path(rel).name):
            if candidate.is_file():
                return candidate
        if not download:
            raise DatasetError(
                f"TaxiNYC {year}: {Path(rel).name} not found under {root} (looked in {root / rel} "
                f"and {root / Path(rel).name}). Pass root= a folder holding TaxiNYC/ (e.g. "
                "../shared/data/traffic), or use download=True."
            )
    local = cached_path(TAXINYC_SOURCE, rel, cache_dir=cache_dir)
    if local.is_file() and not download:
        return local
    if not download:
        raise DatasetError(
            f"TaxiNYC {year}: dataset not found ({local} is missing). Use download=True (or "
            "`python -m datasets.download taxinyc`), or pass root= a folder holding TaxiNYC/."
        )
    return fetch(
        TAXINYC_SOURCE, rel, sha256=TAXINYC_FILES[rel], base_url=base_url, cache_dir=cache_dir
    )


def read_taxinyc_year(
    year: int, *, duplicates: str = "first", **where
) -> tuple[xr.DataArray, SeriesReport]:
    """One TaxiNYC year as a series ``(time, channel, y, x)`` in trips per hour, plus its report.

    ``duplicates`` is the policy of :func:`read_taxibj`; ``where`` is passed to
    :func:`taxinyc_file` (``root``, ``download``, ``cache_dir``, ``base_url``).
    """
    path = taxinyc_file(year, **where)
    series, report = read_taxibj(
        path, interval_minutes=60, units="trips per hour", duplicates=duplicates
    )
    series.attrs.update(_taxinyc_attrs())
    return series, report


def _taxinyc_attrs() -> dict[str, str | int]:
    return {
        "units": "trips per hour",
        "time_step": "PT1H",
        "domain": "traffic",
        "synthetic": 0,
        "source": (
            "TaxiNYC (Fiorini et al. 2021), NYC10..14_Taxi_M16x8_T60_InOut.h5 from GitHub "
            "pengzhangzhi/spatial-temporal-transformer data/TaxiNYC/"
        ),
        "licence": TAXINYC_LICENCE,
        "description": (
            "New York City taxi trips per hour on a 16 x 8 grid: channel inflow = new (started) "
            "trips, outflow = ended trips. Real data. Duplicated timestamps in the files carry "
            "different values (policy in attrs duplicate_policy). Every year lacks September "
            "2-30; "
            "windows never span that or any other gap."
        ),
    }


@register("taxinyc", bundled=False, domain="traffic")
def taxinyc(
    *,
    split: str,
    root=None,
    download: bool = False,
    context: int = 12,
    horizon: int = 12,
    stride: int | None = None,
    n_samples: int | None = None,
    duplicates: str = "first",
    cache_dir=None,
    base_url: str | None = None,
) -> xr.DataArray:
    """New York taxi in/out flows (real, hourly, 16x8), split by year: 2010-12 / 2013 / 2014.

    Parameters
    ----------
    split : {"train", "val", "test"}
        train 2010-2012, val 2013, test 2014.
    root : path, optional
        Folder holding ``TaxiNYC/`` (or that folder); default the download cache.
    download : bool
        Fetch missing files from the ``taxinyc`` source (SHA-256 checked).
    context, horizon : int
        Frames per window = context + horizon (default 12 + 12 hours).
    stride : int, optional
        Hours between window starts (default ``horizon``).
    n_samples : int, optional
        Keep this many windows, evenly spaced.
    duplicates : {"first", "last", "drop"}
        Policy for duplicated timestamps (see :func:`read_taxibj`).
    cache_dir, base_url
        As in :func:`datasets.download.fetch`.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` in trips per hour; attrs include each year's
        duplicate/gap report (``report_<year>``) and the totals.
    """
    where = {"root": root, "download": download, "cache_dir": cache_dir, "base_url": base_url}
    parts, reports = [], {}
    for year in TAXINYC_YEARS[split]:
        series, report = read_taxinyc_year(year, duplicates=duplicates, **where)
        parts.append(series.drop_attrs(deep=False))
        reports[year] = report
    series = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
    series.attrs = _taxinyc_attrs()
    out = windows(series, context, horizon, stride=horizon if stride is None else stride)
    out.attrs.update(
        split=split,
        years=", ".join(str(y) for y in TAXINYC_YEARS[split]),
        duplicate_policy=DUPLICATE_POLICIES[duplicates],
        dropped_duplicate_rows=sum(r.n_dropped_rows for r in reports.values()),
        missing_hours=sum(r.n_missing for r in reports.values()),
        **{f"report_{year}": r.summary() for year, r in reports.items()},
    )
    return _take(out, n_samples)


# ----------------------------------------------------------------------------- read_any hook


def open_taxibj(
    path,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    context: int = 12,
    horizon: int = 12,
    stride: int | None = None,
    interval_minutes: int | None = None,
) -> xr.DataArray:
    """:func:`datasets.files.read_any` reader: a TaxiBJ-layout file as gap-free windows.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` from :func:`windows` (stride default
        ``horizon``), with the file's report in the attrs.

    Raises
    ------
    DatasetError
        Anything :func:`read_taxibj` or :func:`windows` refuses.
    """
    series, _ = read_taxibj(path, interval_minutes=interval_minutes, max_bytes=max_bytes)
    return windows(series, context, horizon, stride=horizon if stride is None else stride)


def _looks_like_taxibj(path: Path, head: bytes) -> bool:
    """HDF5 with top-level ``date`` and ``data`` links (content, not suffix).

    Hard links must be datasets; other links (soft, external) match without being followed, so
    that :func:`read_taxibj` refuses the file with a message instead of another reader guessing.
    """
    if not head.startswith(HDF5_MAGIC):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as h5:  # links only: an external link is never followed here
            links = [h5.get(name, getlink=True) for name in ("date", "data")]
            return all(
                link is not None
                and (
                    not isinstance(link, h5py.HardLink)
                    or h5.get(name, getclass=True) is h5py.Dataset
                )
                for name, link in zip(("date", "data"), links, strict=True)
            )
    except Exception:  # unreadable: let the other readers (or read_any's error) handle it
        return False


register_reader("taxibj-hdf5", open_taxibj, suffixes=(".h5", ".hdf5"), match=_looks_like_taxibj)

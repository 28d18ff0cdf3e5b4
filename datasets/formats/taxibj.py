"""Reader of the TaxiBJ HDF5 layout (TaxiBJ, BikeNYC, TaxiNYC) into a clean time series.

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
- **time zone**: the slots count the city's local clock (TaxiBJ: Beijing, TaxiNYC and BikeNYC:
  New York) and the file does not say which city, so ``attrs["time_zone"]`` is
  :data:`datasets.layout.LOCAL_TIME`; a loader that knows the city sets its IANA zone;
- **gaps**: missing intervals (count and ranges); frames with non-finite values are dropped and
  counted as missing too. Windows never span a gap.

Functions (for the fuzz tests): :func:`read_taxibj`, :func:`open_taxibj` (the
:func:`datasets.files.read_any` reader of HDF5 files with ``date`` and ``data``, chosen by
:func:`looks_like_taxibj`), :func:`parse_dates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from datasets.errors import DatasetError
from datasets.guards import check_file, reader_errors
from datasets.layout import LOCAL_TIME, USER_LICENCE
from datasets.magic import HDF5_MAGIC, head
from datasets.timesteps import iso_duration
from datasets.untrusted import DEFAULT_MAX_DECODED_BYTES, check_hdf5
from datasets.windows import windows

DECLARED_BYTES = DEFAULT_MAX_DECODED_BYTES  # all arrays an HDF5 file declares (TaxiBJ16: 120 MB)
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
    return _read_taxibj(
        Path(path),
        interval_minutes=interval_minutes,
        max_bytes=max_bytes,
        units=units,
        duplicates=duplicates,
    )


def _read_taxibj_arrays(path: Path, *, max_bytes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The raw ``date`` column and the ``data`` rows as float32 ``(T, C, H, W)``, checked first."""
    import h5py

    check_file(
        path,
        max_bytes=max_bytes,
        hint="Check the path, or use download=True.",
        limit_hint="Pass a larger max_bytes if you mean it.",
    )
    start = head(path, 8)
    if start != HDF5_MAGIC:
        raise DatasetError(
            f"{path.name}: not an HDF5 file (starts {start!r}); expected the TaxiBJ layout "
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
    return raw_dates, values


def _duplicate_policy(
    stamps: np.ndarray, values: np.ndarray, duplicates: str
) -> tuple[np.ndarray, pd.DatetimeIndex, float]:
    """Rows kept under the ``duplicates`` policy (sorted by time), the repeated timestamps, and
    the largest difference between a repeat and the first row with its timestamp."""
    n_rows = len(stamps)
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
    return order, dup_times, max_diff


@reader_errors(
    "a TaxiBJ-layout HDF5 file",
    hint="check that the file is complete and has 'date' and 'data' datasets.",
)
def _read_taxibj(
    path: Path,
    *,
    interval_minutes: int | None,
    max_bytes: int | None,
    units: str | None,
    duplicates: str,
) -> tuple[xr.DataArray, SeriesReport]:
    raw_dates, values = _read_taxibj_arrays(path, max_bytes=max_bytes)

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
    order, dup_times, max_diff = _duplicate_policy(stamps, values, duplicates)
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
            "licence": USER_LICENCE,
            "description": (
                f"TaxiBJ-layout flows read from {path.name}: {report.n_frames} frames of "
                f"{interval} min; duplicates: {report.duplicate_policy}; windows never span the "
                f"{report.n_missing} missing intervals."
            ),
            "synthetic": 0,
            "time_zone": LOCAL_TIME,  # the city's clock (DeepST slots); the file does not say which
            **report.to_attrs(),
        },
    )
    return series, report


def open_taxibj(
    path,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    context: int = 12,
    horizon: int = 12,
    stride: int | None = None,
    interval_minutes: int | None = None,
    series: bool = False,
) -> xr.DataArray:
    """:func:`datasets.files.read_any` reader: a TaxiBJ-layout file as gap-free windows.

    Parameters
    ----------
    path : path
        The HDF5 file (``date`` and ``data``).
    max_bytes : int or None
        Size limit of the file.
    context, horizon, stride : int
        Window sizes in frames (stride default ``horizon``); unused with ``series``.
    interval_minutes : int, optional
        Minutes per slot (see :func:`read_taxibj`).
    series : bool
        Return the whole time axis as one sequence ``(1, time, channel, y, x)`` (timestamps with
        the file's gaps) instead of windows, for :mod:`datasets.splits` to cut.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` from :func:`windows`, with the file's report
        in the attrs.

    Raises
    ------
    DatasetError
        Anything :func:`read_taxibj` or :func:`windows` refuses.
    """
    frames, _ = read_taxibj(path, interval_minutes=interval_minutes, max_bytes=max_bytes)
    if series:
        return frames.expand_dims(sample=[0]).transpose("sample", "time", "channel", "y", "x")
    return windows(frames, context, horizon, stride=horizon if stride is None else stride)


def looks_like_taxibj(path: Path, head: bytes) -> bool:
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
    except Exception:  # noqa: BLE001 - unreadable: let the other readers (or read_any's error) handle it
        return False

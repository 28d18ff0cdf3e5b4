"""Traffic datasets: simulated city flows (bundled) and the TaxiBJ / BikeNYC / TaxiNYC HDF5 layout.

Datasets (listed in :mod:`datasets.catalog`)
--------------------------------------------
``traffic_sumo``
    Bundled and offline: in-flow / out-flow of vehicles on a 16 x 16 grid of 100 m cells every 15
    simulated minutes, from an Eclipse SUMO simulation of a signalised grid city over 35 simulated
    days with weekday commute peaks (``datasets/data/traffic_sumo.nc``, made by
    ``tools/sumo_traffic.py``; SUMO is needed only to regenerate it). Labelled ``synthetic=1``.
    Units "vehicles per interval", ``time_step`` ``"PT15M"``. Split by whole days, in time order:
    train the first 25 days, val the next 5, test the last 5.
``taxinyc``
    Real New York taxi flows (Fiorini et al. 2021), ``NYC10..14_Taxi_M16x8_T60_InOut.h5``, 16 x 8
    cells, hourly, units "trips per hour", timestamps in New York local time
    (:data:`TAXINYC_TIME_ZONE`). Split by year: train 2010-2012, val 2013, test 2014.
    Files come from ``root=`` (a folder holding ``TaxiNYC/``, or the ``TaxiNYC`` folder itself) or
    the download cache (``download=True``; source ``"taxinyc"`` of :mod:`datasets.download`).

Both return windows ``(sample, time, channel, y, x)`` of ``context + horizon`` frames (default
12 + 12) cut by :func:`windows`: ``time`` is the frame index in the window and the coordinate
``timestamp (sample, time)`` holds the real (for SUMO: nominal) times. Windows start every
``stride`` frames (default ``horizon``) and never cross a split boundary or a gap.

The files of the TaxiBJ HDF5 layout (TaxiBJ, BikeNYC, TaxiNYC) are read by
:mod:`datasets.formats.taxibj` (:func:`read_taxibj`: duplicates, disorder and gaps reported in a
:class:`SeriesReport`), and windows are cut by :mod:`datasets.windows`; both are re-exported here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from datasets.download import cached_path, fetch
from datasets.errors import DataNotFound, DatasetError
from datasets.formats.taxibj import (  # noqa: F401  (re-exported: their home was here)
    DEFAULT_MAX_BYTES,
    DUPLICATE_POLICIES,
    DUPLICATE_POLICY,
    FLOW_CHANNELS,
    SeriesReport,
    open_taxibj,
    parse_dates,
    read_taxibj,
)
from datasets.manifests import TAXINYC_FILES, TAXINYC_SOURCE
from datasets.timesteps import parse_time_step
from datasets.windows import contiguous_runs, take_evenly, windows  # noqa: F401  (re-exported)

DATA_DIR = Path(__file__).resolve().parent / "data"
SUMO_PATH = DATA_DIR / "traffic_sumo.nc"
SUMO_SPLIT_DAYS = {"train": (0, 25), "val": (25, 30), "test": (30, 35)}  # [first, last) day

TAXINYC_YEARS = {"train": (2010, 2011, 2012), "val": (2013,), "test": (2014,)}
TAXINYC_TIME_ZONE = "America/New_York"
"""The clock of TaxiNYC's ``date`` slots: New York local time, as in the TLC trip records it counts.
The files show it: trips bottom out at 05:00 and dip at the 16:00 shift change; on the spring
daylight-saving day 02:00 holds no trip in 2011-2014 (that hour does not exist there), and on the
autumn one 01:00 holds about 1.5 times midnight's trips (that hour happens twice)."""
TAXINYC_LICENCE = (
    "no licence file in the source repository; cite Fiorini, Ciavotta & Maurino (2021), "
    "arXiv:2103.00983. Use for research; do not redistribute."
)


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
            "with `pip install -r requirements-sumo.txt` and `python tools/sumo_traffic.py "
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
            "regenerate it with `python tools/sumo_traffic.py`."
        ) from exc
    series = flow.astype(np.float32).transpose("time", "channel", "y", "x")
    series.attrs = {**attrs, "units": "vehicles per interval"}
    series.name = "flow"
    return series


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
        Another file written by ``tools/sumo_traffic.py`` (default the bundled one).

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` in vehicles per interval (15 min).
    """
    series = read_sumo_series(path)
    per_day = int(86400 / parse_time_step(series.attrs.get("time_step", "PT15M")))
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
    return take_evenly(out, n_samples)


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
            raise DataNotFound(
                f"TaxiNYC {year}: {Path(rel).name} not found under {root} (looked in {root / rel} "
                f"and {root / Path(rel).name}). Pass root= a folder holding TaxiNYC/ (e.g. "
                "../shared/data/traffic), or use download=True."
            )
    local = cached_path(TAXINYC_SOURCE, rel, cache_dir=cache_dir)
    if local.is_file() and not download:
        return local
    if not download:
        raise DataNotFound(
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
        "time_zone": TAXINYC_TIME_ZONE,
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
    return take_evenly(out, n_samples)

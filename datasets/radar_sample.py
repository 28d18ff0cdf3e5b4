"""The bundled real radar event ``radar_fmi_sample``: FMI, 2017-05-09, 40 frames at 5 min.

A 256 x 256 km crop (about 1 km pixels, polar stereographic) of the Finnish Meteorological
Institute's radar composite during a showery afternoon, 10:45-14:00 UTC, stored in
``datasets/data/radar_fmi_20170509.nc`` (CF-1.8 NetCDF, rain rate packed as int16 of 0.01 mm/h,
zlib; under 1 MB) by ``tools/make_fmi_sample.py`` from the pysteps-data example files
(``radar/fmi/pgm/20170509``). It loads offline: no download, no ``../shared``.

Licence: FMI open data, Creative Commons Attribution 4.0 (CC BY 4.0); the attribution is
:data:`FMI_SAMPLE_ATTRIBUTION`, kept in the file's and the array's attrs.

Splits: this is one event, shown by the dashboard's opening page and used to evaluate; every split
holds the same windows (``attrs["split_policy"]`` says so). No shipped checkpoint trained on it
(``radar_mch``: MeteoSwiss; in ``radar_fmi`` this event is val/test only). Do not train on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from datasets.errors import DatasetError
from datasets.layout import UTC
from datasets.radar_io import CHANNEL
from datasets.windows import sliding_windows, take_evenly

FMI_SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "radar_fmi_20170509.nc"
FMI_SAMPLE_EVENT = "fmi/pgm/20170509"  # folder under pysteps-data's radar/
FMI_SAMPLE_SCALE = 0.01  # mm/h per int16 step in the file
FMI_SAMPLE_LICENCE = (
    "Creative Commons Attribution 4.0 International (CC BY 4.0), FMI open data licence "
    "(https://en.ilmatieteenlaitos.fi/open-data-licence)"
)
FMI_SAMPLE_ATTRIBUTION = "Contains data from the Finnish Meteorological Institute, CC BY 4.0"
MAX_FILE_BYTES = 20 * 2**20  # a file passed as path= larger than this is refused
MAX_PIXELS = 4_000_000  # per frame


def read_fmi_sample(path=None) -> xr.DataArray:
    """The bundled event as one sequence ``(sample=1, time, channel, y, x)``, mm/h, y/x in km.

    Parameters
    ----------
    path : path-like, optional
        Another file written by ``tools/make_fmi_sample.py`` (default the bundled one).

    Returns
    -------
    xarray.DataArray
        float32 rain rate in mm/h, NaN outside radar coverage; ``time`` and ``timestamp (sample,
        time)`` the valid times; ``y`` (north first) and ``x`` pixel centres in km of the
        projection in ``attrs["projection"]``; attrs as :mod:`datasets.registry` asks.

    Raises
    ------
    DatasetError
        The file is missing, too large, or not such a file (the message says how to regenerate it).
    """
    path = Path(path) if path is not None else FMI_SAMPLE_PATH
    regenerate = "regenerate it with `python -m tools.make_fmi_sample` (needs ../shared)"
    if not path.is_file():
        raise DatasetError(
            f"{path.name}: bundled FMI radar event missing; reinstall, or {regenerate}."
        )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DatasetError(
            f"{path.name}: {path.stat().st_size / 2**20:.0f} MB is not the bundled event."
        )
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            if "rain_rate" not in ds or ds["rain_rate"].dims != ("time", "y", "x"):
                raise DatasetError(
                    f"{path.name}: no rain_rate (time, y, x) variable; {regenerate}."
                )
            if ds.sizes["y"] * ds.sizes["x"] > MAX_PIXELS:
                raise DatasetError(f"{path.name}: {dict(ds.sizes)} is too large a grid.")
            rain = ds["rain_rate"].load()
            attrs = dict(ds.attrs)
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"{path.name}: could not read the FMI radar event ({type(exc).__name__}: {exc}); "
            f"{regenerate}."
        ) from exc
    times = rain["time"].values.astype("datetime64[ns]")
    values = rain.values.astype(np.float32)[None, :, None]  # (1, T, 1, Y, X) mm/h
    out = xr.DataArray(
        values,
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "sample": [0],
            "time": times,
            "timestamp": (("sample", "time"), times[None]),
            "channel": [CHANNEL],
            "y": ("y", rain["y"].values / 1000.0, {"units": "km"}),
            "x": ("x", rain["x"].values / 1000.0, {"units": "km"}),
        },
        name=CHANNEL,
        attrs={
            "units": "mm/h",
            "time_step": str(attrs.get("time_step", "PT5M")),
            "domain": "radar",
            "source": f"{attrs.get('institution', 'FMI')}: {attrs.get('original_source', '')}",
            "licence": str(attrs.get("licence", FMI_SAMPLE_LICENCE)),
            "attribution": str(attrs.get("attribution", FMI_SAMPLE_ATTRIBUTION)),
            "description": (
                f"{attrs.get('title', 'FMI radar event')}; rain rate in mm/h, NaN outside radar "
                f"coverage. {attrs.get('attribution', FMI_SAMPLE_ATTRIBUTION)}."
            ),
            "history": str(attrs.get("history", "")),
            "synthetic": 0,
            "time_zone": UTC,
            "radar_source": "fmi",
            "projection": str(attrs.get("projection", "")),
            "resolution_km": float(attrs.get("resolution_km", 1.0)),
            "folder": path.name,
        },
    )
    return out


def radar_fmi_sample(
    *,
    split: str,
    context: int = 12,
    horizon: int = 12,
    stride: int = 4,
    n_samples: int | None = None,
    path=None,
) -> xr.DataArray:
    """Bundled real radar: FMI event 2017-05-09, 256x256 km, 5 min (CC BY 4.0, offline).

    Parameters
    ----------
    split : {"train", "val", "test"}
        Every split holds the same windows of the one event (module doc: do not train on it).
    context, horizon : int
        Frames per window = context + horizon (default 12 + 12 = 2 h).
    stride : int
        Frames between window starts (default 4: five windows of 24 frames from 40).
    n_samples : int, optional
        Keep this many windows, evenly spaced.
    path : path-like, optional
        Another file written by ``tools/make_fmi_sample.py``.

    Returns
    -------
    xarray.DataArray
        float32 ``(sample, time, channel, y, x)`` in mm/h, ``time`` the frame index in the window,
        ``timestamp (sample, time)`` the valid times, ``y``/``x`` in km; NaN outside coverage.
    """
    series = read_fmi_sample(path)
    out = sliding_windows(series, context=int(context), horizon=int(horizon), stride=int(stride))
    out.attrs.update(
        split=split,
        dataset="radar_fmi_sample",
        split_policy="one bundled event: every split holds the same windows (evaluation only)",
    )
    return take_evenly(out, n_samples)


__all__ = [
    "FMI_SAMPLE_ATTRIBUTION",
    "FMI_SAMPLE_LICENCE",
    "FMI_SAMPLE_PATH",
    "radar_fmi_sample",
    "read_fmi_sample",
]

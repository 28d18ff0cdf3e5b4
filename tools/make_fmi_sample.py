"""Make the bundled real radar event ``datasets/data/radar_fmi_20170509.nc`` from pysteps-data.

Run from the repository root, with the pysteps-data ``radar/`` tree at ``../shared/data/radar``::

    python -m tools.make_fmi_sample --root ../shared/data/radar --out datasets/data/radar_fmi_20170509.nc

What it does
------------
1. Reads the 40 FMI composites of 2017-05-09 10:45-14:00 UTC (``fmi/pgm/20170509``, PGM.gz in dBZ,
   every 5 min) with the project's reader :func:`datasets.radar_io.read_radar_sequence` (pysteps'
   ``import_fmi_pgm`` + ``to_rainrate``, Z = 223 R^1.53): rain rate in mm/h on the native
   ~1 km grid, NaN outside radar coverage.
2. Crops the ``--size`` x ``--size`` px window where it rains most over the event
   (:func:`datasets.radar_io.rain_crop_origin`, pixels >= 1 mm/h summed over all frames), so a
   whole-domain forecast of it runs in about a second on a laptop CPU.
3. Writes a CF-1.8 NetCDF4 file: ``rain_rate (time, y, x)`` packed as int16 with
   ``scale_factor`` 0.01 mm/h (``_FillValue`` for NaN), zlib level 9 with shuffle; projected
   ``x``/``y`` in metres of the FMI polar stereographic grid with a ``crs`` grid mapping (PROJ
   string and WKT); ``time`` in minutes since the first frame; licence and attribution attrs.

Licence: FMI open data, CC BY 4.0 (https://en.ilmatieteenlaitos.fi/open-data-licence); the file
says "Contains data from the Finnish Meteorological Institute, CC BY 4.0".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

if __package__ in (None, ""):  # `python tools/make_fmi_sample.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.cli import Parser, one_line_errors
from datasets.errors import DatasetError
from datasets.radar_sample import (
    FMI_SAMPLE_ATTRIBUTION,
    FMI_SAMPLE_EVENT,
    FMI_SAMPLE_LICENCE,
    FMI_SAMPLE_PATH,
    FMI_SAMPLE_SCALE,
)

DEFAULT_SIZE = 256  # px (~1 km each): 3 x 3 overlapping 128-px tiles of radar_mch


def build(root: Path, *, size: int = DEFAULT_SIZE) -> xr.Dataset:
    """The bundled event as a CF dataset (see the module doc).

    Parameters
    ----------
    root : Path
        The pysteps-data ``radar/`` folder (holding ``fmi/pgm/20170509``).
    size : int
        Side of the square crop in pixels.

    Returns
    -------
    xarray.Dataset
        ``rain_rate (time, y, x)`` float32 mm/h with packing encodings set, ``crs``, attrs.
    """
    from datasets.radar_io import (
        find_radar_files,
        rain_crop_origin,
        read_radar_sequence,
    )

    folder = Path(root) / FMI_SAMPLE_EVENT
    files = find_radar_files(folder, source="fmi")
    seq = read_radar_sequence(files, source="fmi", grid=None, crop=None, resolution_km=None)
    frames = seq.isel(sample=0, channel=0)  # (time, y, x) mm/h, north at row 0
    if size > min(frames.sizes["y"], frames.sizes["x"]):
        raise DatasetError(f"--size {size} is larger than the {dict(frames.sizes)} domain")
    row, col = rain_crop_origin(frames.values, size=size)
    crop = frames.isel(y=slice(row, row + size), x=slice(col, col + size))
    rain = crop.values.astype(np.float32)  # (time, y, x)
    times = crop["time"].values.astype("datetime64[ns]")
    projection = str(seq.attrs["projection"])
    ds = xr.Dataset(
        {
            "rain_rate": (
                ("time", "y", "x"),
                rain,
                {
                    "long_name": "rain rate",
                    "standard_name": "rainfall_rate",
                    "units": "mm/h",
                    "grid_mapping": "crs",
                    "comment": "NaN (the fill value) outside radar coverage",
                },
            ),
            "crs": ((), np.int32(0), _grid_mapping(projection)),
        },
        coords={
            "time": ("time", times, {"standard_name": "time", "long_name": "valid time (UTC)"}),
            "y": ("y", crop["y"].values * 1000.0, _axis("y")),
            "x": ("x", crop["x"].values * 1000.0, _axis("x")),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "FMI radar rain rate, 2017-05-09 10:45-14:00 UTC (crop where it rains most)",
            "institution": "Finnish Meteorological Institute (FMI)",
            "source": "FMI radar reflectivity composite (lowest elevation, dBZ)",
            "licence": FMI_SAMPLE_LICENCE,
            "attribution": FMI_SAMPLE_ATTRIBUTION,
            "original_source": (
                "pysteps-data (github.com/pySTEPS/pysteps-data), radar/fmi/pgm/20170509, "
                f"{len(files)} files {files[0].name} .. {files[-1].name}"
            ),
            "history": (
                "tools/make_fmi_sample.py: read with pysteps.io.importers.import_fmi_pgm and "
                "pysteps.utils.conversion.to_rainrate (Z = 223 R^1.53) on the native grid; "
                f"cropped to {size}x{size} px at rows {row}-{row + size - 1}, columns "
                f"{col}-{col + size - 1} of the {seq.sizes['y']}x{seq.sizes['x']} composite "
                "(where pixels >= 1 mm/h are most frequent over the event); packed to int16 "
                f"with scale_factor {FMI_SAMPLE_SCALE} mm/h"
            ),
            "projection": projection,
            "resolution_km": float(seq.attrs["resolution_km"]),
            "time_step": str(seq.attrs["time_step"]),
            "crop_row": int(row),
            "crop_col": int(col),
        },
    )
    ds["rain_rate"].encoding.update(
        dtype="int16", scale_factor=FMI_SAMPLE_SCALE, add_offset=0.0, _FillValue=np.int16(-32768),
        zlib=True, complevel=9, shuffle=True, chunksizes=(1, size, size),
    )  # fmt: skip
    ds["time"].encoding.update(units=f"minutes since {str(times[0])[:19]}", dtype="int32")
    return ds


def _axis(name: str) -> dict:
    return {
        "standard_name": f"projection_{name}_coordinate",
        "long_name": f"{name} of the pixel centre (polar stereographic, FMI)",
        "units": "m",
        "axis": name.upper(),
    }


def _grid_mapping(projection: str) -> dict:
    """CF attributes of the ``crs`` variable: the PROJ string, and its WKT when pyproj reads it."""
    attrs = {"grid_mapping_name": "polar_stereographic", "proj4_params": projection}
    try:
        from pyproj import CRS

        crs = CRS.from_proj4(projection)
        attrs.update({k: v for k, v in crs.to_cf().items() if isinstance(v, (str, int, float))})
        attrs["crs_wkt"] = crs.to_wkt()
    except Exception:  # noqa: BLE001 - the PROJ string alone still places the grid
        pass
    return attrs


@one_line_errors(OSError, DatasetError)
def main(argv: list[str] | None = None) -> int:
    """``python -m tools.make_fmi_sample [--root DIR] [--out FILE] [--size PX]``."""
    parser = Parser(prog="python -m tools.make_fmi_sample", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/radar"),
                        help="pysteps-data radar/ folder (default ../shared/data/radar)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=FMI_SAMPLE_PATH, help="NetCDF to write")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="crop side in pixels")
    args = parser.parse_args(argv)
    if args.size < 32:
        parser.error(f"--size {args.size}: give at least 32 pixels")
    ds = build(args.root, size=args.size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(args.out, engine="h5netcdf")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {dict(ds.sizes)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate the bundled simulated traffic dataset ``traffic_sumo`` with Eclipse SUMO.

SUMO is an *optional* extra (``pip install -r requirements-sumo.txt``); users of the bundled file
``datasets/data/traffic_sumo.nc`` never need it. Run::

    python tools/sumo_traffic.py --out datasets/data/traffic_sumo.nc --days 35 --seed 0

What it does
------------
1. ``netgenerate --grid``: a square street grid of ``junctions x junctions`` intersections
   ``spacing_m`` apart (one lane per direction, 50 km/h), with traffic lights at every four-way
   junction (``--tls.guess`` with a threshold that four 50 km/h approaches pass and the three-way
   junctions on the border do not; those keep right of way by priority).
2. Demand with a daily profile, drawn with numpy (no ``randomTrips.py``): three trip purposes, each
   a Poisson process whose rate follows the time of day, over ``days`` simulated days (24 real
   simulated hours each, no time compression; Saturdays and Sundays have no commute peaks):

   - *inbound commute* (home -> work), weekday morning peak around 08:00;
   - *outbound commute* (work -> home), weekday evening peak around 17:30;
   - *other trips* (home or anywhere -> shops, leisure), a broad midday bump plus a night floor.

   "Work" is a downtown hotspot plus a secondary hub; "home" is everywhere else. Origins and
   destinations are street edges drawn with these spatial weights. Every day's volume is scaled by
   a random factor (sd 8 %).
3. Routes are precomputed (scipy shortest paths on the edge graph, eight randomly weighted
   variants so equal-length grid paths are shared out), then SUMO simulates each day in its own
   run: mesoscopic by default (queues per edge with junction control, i.e. traffic lights and
   right of way; ``--micro`` for the microscopic car-following model, about 5x slower). Each day
   starts from an empty network at midnight (trips last minutes and few cars drive at night), so
   days run in parallel (``--jobs``).
4. Per interval (default 15 simulated minutes) and cell:

   - channel ``inflow``: vehicles crossing into the cell + vehicles starting their trip in it;
   - channel ``outflow``: vehicles crossing out of the cell + vehicles ending their trip in it.

   Crossing times come from SUMO's vehicle route output with edge exit times (``--vehroute-output
   .exit-times``), interpolated linearly along the edge to the boundary. Each vehicle's in- and
   out-events balance, so over the whole run the in- and out-flow totals agree. Vehicles that
   SUMO teleports out of a jam are counted as if driven; their number is in the attrs.

The output is a small NetCDF (int16 counts, zlib) with dims ``(time, channel, y, x)``, coordinates
(nominal timestamps starting on a Monday, cell centres in metres) and attrs (units, time_step,
domain, synthetic=1, description, source, licence, generator settings). :mod:`datasets.traffic`
reads it without SUMO.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

if not __package__:  # run as `python tools/sumo_traffic.py`: put the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datasets.cli import Parser, fail, one_line_errors

CHANNELS = ("inflow", "outflow")
START = "2024-01-01T00:00"  # a Monday; the timestamps are nominal (simulated days)


@dataclass(frozen=True)
class SumoConfig:
    """Settings of one generator run (stored in the output attrs)."""

    days: int = 35  # simulated days of 24 h each (5 weeks; the bundled file)
    junctions: int = 16  # intersections per side of the square grid
    spacing_m: float = 100.0  # block length: distance between neighbouring intersections
    bins: int = 16  # grid cells per side of the output
    interval_s: int = 900  # binning interval in simulated seconds (900 = 15 min)
    commute_peak_per_h: float = 3200.0  # inbound commute trips per hour at the morning peak
    other_peak_per_h: float = 1800.0  # other trips per hour at the midday peak
    night_per_h: float = 240.0  # floor of other trips per hour at night
    day_volume_sd: float = 0.08  # sd of the random factor on each day's volume
    meso: bool = True  # SUMO's mesoscopic model (queues per edge, ~5x faster) instead of micro
    seed: int = 0


# ----------------------------------------------------------------------------- SUMO discovery


def sumo_home() -> Path:
    """The SUMO installation: the ``eclipse-sumo`` wheel, else ``$SUMO_HOME``.

    Raises
    ------
    RuntimeError
        SUMO is not installed; the message says how to install the optional extra.
    """
    try:
        import sumo  # the eclipse-sumo wheel

        return Path(sumo.SUMO_HOME)
    except ImportError:
        pass
    if os.environ.get("SUMO_HOME"):
        return Path(os.environ["SUMO_HOME"])
    raise RuntimeError(
        "Eclipse SUMO is not installed. It is an optional extra: "
        "`pip install -r requirements-sumo.txt` (eclipse-sumo, sumolib), "
        "or set SUMO_HOME to an existing installation."
    )


def sumo_binary(name: str) -> str:
    """Path of a SUMO executable (``netgenerate``, ``sumo``), from the SUMO install or PATH."""
    candidate = sumo_home() / "bin" / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"SUMO executable {name!r} not found under {candidate.parent} or PATH")
    return found


# ----------------------------------------------------------------------------- network


def build_network(workdir: Path, *, junctions: int, spacing_m: float) -> Path:
    """Run ``netgenerate --grid`` and return the ``.net.xml`` path."""
    net = workdir / "grid.net.xml"
    cmd = [
        sumo_binary("netgenerate"),
        "--grid",
        "--grid.number",
        str(junctions),
        "--grid.length",
        str(spacing_m),
        "--default.lanenumber",
        "1",
        "--default.speed",
        "13.89",  # m/s, 50 km/h
        "--tls.guess",
        "true",
        "--tls.guess.threshold",
        "50",  # m/s summed over incoming lanes: 4 x 13.89 passes, 3-way border junctions do not
        "--no-turnarounds",
        "true",
        "--seed",
        "0",
        "--output-file",
        str(net),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())
    return net


@dataclass(frozen=True)
class Grid:
    """Square binning grid: ``bins x bins`` cells of ``cell_m`` metres from ``(x0, y0)``."""

    x0: float
    y0: float
    cell_m: float
    bins: int

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(iy, ix) cell indices of points (clipped to the grid)."""
        ix = np.clip(np.floor((np.asarray(x) - self.x0) / self.cell_m), 0, self.bins - 1)
        iy = np.clip(np.floor((np.asarray(y) - self.y0) / self.cell_m), 0, self.bins - 1)
        return iy.astype(int), ix.astype(int)

    def centres(self) -> np.ndarray:
        """Cell centres along one axis, metres (same for x and y offsets from x0/y0)."""
        return (np.arange(self.bins) + 0.5) * self.cell_m


def make_grid(net, *, bins: int) -> Grid:
    """Binning grid over the network's junction extent, padded by half a cell on every side.

    With ``bins`` equal to the number of junctions per side, every cell is centred on one
    intersection, so no cell boundary runs through a junction.
    """
    xy = np.array([n.getCoord() for n in net.getNodes()])
    xmin, ymin = xy.min(axis=0)
    xmax, ymax = xy.max(axis=0)
    extent = max(xmax - xmin, ymax - ymin)
    cell = extent / (bins - 1)
    return Grid(x0=float(xmin - cell / 2), y0=float(ymin - cell / 2), cell_m=float(cell), bins=bins)


@dataclass(frozen=True)
class Crossings:
    """Where each edge crosses inner cell boundaries (from lane 0's geometry).

    ``edge_ptr[e]:edge_ptr[e + 1]`` indexes the crossings of edge ``e``, ordered along it.
    """

    edge_ptr: np.ndarray  # (E + 1,) int
    start_cell: np.ndarray  # (E, 2) int (iy, ix) at the start of each edge
    offset: np.ndarray  # (K,) metres from the edge start
    cell_from: np.ndarray  # (K, 2) int (iy, ix) before the crossing
    cell_to: np.ndarray  # (K, 2) int (iy, ix) after


def find_crossings(edges: list, grid: Grid) -> Crossings:
    """Offsets along every edge where it crosses an inner boundary of the binning grid."""
    lines_x = grid.x0 + grid.cell_m * np.arange(1, grid.bins)
    lines_y = grid.y0 + grid.cell_m * np.arange(1, grid.bins)
    ptr, offsets, c_from, c_to, starts = [0], [], [], [], []
    for edge in edges:
        lane = edge.getLanes()[0]
        shape = np.asarray(lane.getShape(), dtype=float)  # (P, 2) metres
        seg = np.diff(shape, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        total = seg_len.sum()
        scale = lane.getLength() / total if total > 0 else 1.0
        start = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
        starts.append(grid.cell_of(*shape[0]))
        found = []
        for p, d, s0, ln in zip(shape[:-1], seg, start, seg_len, strict=True):
            if ln == 0:
                continue
            for axis, lines in ((0, lines_x), (1, lines_y)):
                if d[axis] != 0:
                    f = (lines - p[axis]) / d[axis]
                    for fk in f[(f > 0) & (f <= 1)]:
                        before = grid.cell_of(*(p + d * (fk - 1e-3)))
                        after = grid.cell_of(*(p + d * min(fk + 1e-3, 1.0)))
                        if before != after:
                            found.append(((s0 + fk * ln) * scale, before, after))
        for off, before, after in sorted(found, key=lambda item: item[0]):
            offsets.append(off)
            c_from.append(before)
            c_to.append(after)
        ptr.append(len(offsets))
    return Crossings(
        edge_ptr=np.array(ptr),
        start_cell=np.array(starts, dtype=int).reshape(-1, 2),
        offset=np.array(offsets, dtype=float),
        cell_from=np.array(c_from, dtype=int).reshape(-1, 2),
        cell_to=np.array(c_to, dtype=int).reshape(-1, 2),
    )


def cell_at(crossings: Crossings, edge: int, pos: float) -> np.ndarray:
    """(iy, ix) of the cell ``pos`` metres along ``edge``: after every crossing at or before it."""
    cell = crossings.start_cell[edge]
    for j in range(crossings.edge_ptr[edge], crossings.edge_ptr[edge + 1]):
        if crossings.offset[j] <= pos:
            cell = crossings.cell_to[j]
    return cell


# ----------------------------------------------------------------------------- demand


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Gaussian bump on the 24-hour circle (peak 1 at ``centre`` hours)."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def demand_rates(minutes: np.ndarray, cfg: SumoConfig) -> np.ndarray:
    """Trip rates per hour for the three purposes at each simulated minute.

    Parameters
    ----------
    minutes : ndarray of int, shape (M,)
        Minutes since the start (a Monday 00:00).
    cfg : SumoConfig

    Returns
    -------
    ndarray, shape (3, M)
        Rates in trips per hour: inbound commute, outbound commute, other.
    """
    hour = (minutes % 1440) / 60.0
    weekday = (minutes // 1440) % 7 < 5
    inbound = cfg.commute_peak_per_h * _bump(hour, 8.0, 1.1) * weekday
    outbound = cfg.commute_peak_per_h * 0.9 * _bump(hour, 17.5, 1.4) * weekday
    midday = np.where(weekday, _bump(hour, 13.0, 3.0), 1.3 * _bump(hour, 14.0, 3.5))
    evening = 0.35 * _bump(hour, 20.5, 1.8)
    other = cfg.night_per_h + cfg.other_peak_per_h * (midday + evening)
    return np.stack([inbound, outbound, other])


def spatial_weights(xy01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Home and work weights of points with coordinates scaled to [0, 1].

    Returns
    -------
    home, work : ndarray, shape (N,)
        Non-negative weights (not normalised).
    """

    def blob(cx: float, cy: float, sd: float) -> np.ndarray:
        return np.exp(-0.5 * ((xy01[:, 0] - cx) ** 2 + (xy01[:, 1] - cy) ** 2) / sd**2)

    work = blob(0.58, 0.55, 0.11) + 0.6 * blob(0.22, 0.78, 0.07) + 0.05
    home = 1.0 - 0.8 * blob(0.58, 0.55, 0.16) + 0.6 * blob(0.8, 0.2, 0.15)
    return home, work


@dataclass(frozen=True)
class Trips:
    """Trip table: departure second, origin/destination edge index and positions."""

    depart: np.ndarray  # (N,) int seconds
    origin: np.ndarray  # (N,) edge index
    dest: np.ndarray  # (N,) edge index
    depart_pos: np.ndarray  # (N,) metres on the origin edge
    arrival_pos: np.ndarray  # (N,) metres on the destination edge


def make_trips(edges: list, grid: Grid, cfg: SumoConfig) -> Trips:
    """Draw the trips of ``cfg.days`` days (Poisson per minute, spatially weighted OD)."""
    rng = np.random.default_rng(cfg.seed)
    mids = np.array([_edge_midpoint(e) for e in edges])  # (E, 2) metres
    extent = grid.cell_m * grid.bins
    xy01 = (mids - [grid.x0, grid.y0]) / extent
    lengths = np.array([e.getLength() for e in edges])
    home, work = spatial_weights(xy01)
    uniform = np.ones(len(edges))
    p = {
        k: v * lengths / (v * lengths).sum() for k, v in (("h", home), ("w", work), ("u", uniform))
    }
    mix_other_o = 0.6 * p["h"] + 0.4 * p["u"]
    mix_other_d = 0.5 * p["w"] + 0.5 * p["u"]
    od = [(p["h"], p["w"]), (p["w"], p["h"]), (mix_other_o, mix_other_d)]

    minutes = np.arange(cfg.days * 1440)
    rates = demand_rates(minutes, cfg)  # (3, M) trips per hour
    day_factor = rng.lognormal(0.0, cfg.day_volume_sd, size=cfg.days)
    rates = rates * day_factor[minutes // 1440] / 60.0  # trips per minute
    depart, origin, dest = [], [], []
    for purpose, (po, pd_) in enumerate(od):
        counts = rng.poisson(rates[purpose])
        minute = np.repeat(minutes, counts)
        n = minute.size
        depart.append(minute * 60 + rng.integers(0, 60, size=n))
        o = rng.choice(len(edges), size=n, p=po)
        d = rng.choice(len(edges), size=n, p=pd_)
        same = o == d
        while same.any():
            d[same] = rng.choice(len(edges), size=int(same.sum()), p=pd_)
            same = o == d
        origin.append(o)
        dest.append(d)
    depart = np.concatenate(depart)
    order = np.argsort(depart, kind="stable")
    origin = np.concatenate(origin)[order]
    dest = np.concatenate(dest)[order]
    depart = depart[order]
    depart_pos = rng.uniform(0.05, 0.95, size=depart.size) * lengths[origin]
    arrival_pos = rng.uniform(0.05, 0.95, size=depart.size) * lengths[dest]
    return Trips(depart, origin, dest, depart_pos, arrival_pos)


def write_vehicles(
    path: Path, edge_ids: list, trips: Trips, trip_ids: np.ndarray, routes: list[list[int]]
) -> None:
    """SUMO route file: one vehicle per trip with its precomputed route (empty routes skipped)."""
    with open(path, "w") as out:
        out.write('<routes>\n  <vType id="car" vClass="passenger"/>\n')
        for i, tid in enumerate(trip_ids):
            if not routes[i]:
                continue
            edges = " ".join(edge_ids[e] for e in routes[i])
            out.write(
                f'  <vehicle id="{tid}" type="car" depart="{trips.depart[i]}" departLane="best" '
                f'departSpeed="max" departPos="{trips.depart_pos[i]:.1f}" '
                f'arrivalPos="{trips.arrival_pos[i]:.1f}"><route edges="{edges}"/></vehicle>\n'
            )
        out.write("</routes>\n")


def _edge_midpoint(edge) -> np.ndarray:
    import sumolib

    shape = edge.getShape()
    length = sumolib.geomhelper.polyLength(shape)
    return np.asarray(sumolib.geomhelper.positionAtShapeOffset(shape, length / 2))


# ----------------------------------------------------------------------------- routing


def route_tables(edges: list, *, variants: int, seed: int) -> np.ndarray:
    """Shortest-path predecessor tables on the edge graph, one per random weight variant.

    Routing once here (scipy, all pairs) replaces SUMO's router at insertion, which dominated the
    run time. Each variant scales every edge's free-flow travel time by a random factor in
    [0.8, 1.2], so trips between the same two edges do not all take one path (on a grid many paths
    tie).

    Returns
    -------
    ndarray of int32, shape (variants, E, E)
        ``pred[v, o, e]``: the edge before ``e`` on the path from edge ``o`` (-9999 if none).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    index = {e.getID(): i for i, e in enumerate(edges)}
    src, dst = [], []
    for i, e in enumerate(edges):
        for nxt in e.getOutgoing():
            if nxt.getID() in index:
                src.append(i)
                dst.append(index[nxt.getID()])
    src, dst = np.array(src), np.array(dst)
    travel = np.array([e.getLength() / e.getSpeed() for e in edges])  # (E,) seconds
    rng = np.random.default_rng(seed)
    tables = np.empty((variants, len(edges), len(edges)), dtype=np.int32)
    for v in range(variants):
        weight = travel * rng.uniform(0.8, 1.2, size=len(edges))
        graph = csr_matrix((weight[dst], (src, dst)), shape=(len(edges), len(edges)))
        _, pred = dijkstra(graph, directed=True, return_predecessors=True)
        tables[v] = pred
    return tables


def route(pred: np.ndarray, origin: int, dest: int) -> list[int]:
    """Edge indices from ``origin`` to ``dest`` (both included) using a predecessor table."""
    path = [dest]
    while path[-1] != origin:
        before = int(pred[origin, path[-1]])
        if before < 0 or len(path) > pred.shape[0]:
            return []
        path.append(before)
    return path[::-1]


# ----------------------------------------------------------------------------- simulation


@dataclass
class SimStats:
    """Numbers about one simulation run (stored in the output attrs)."""

    trips_planned: int = 0
    departed: int = 0
    arrived: int = 0
    teleports: int = 0
    boundary_crossings: int = 0
    wall_s: float = 0.0


@dataclass(frozen=True)
class _DayJob:
    """Everything one worker needs to simulate and bin one day."""

    day: int
    workdir: Path
    net_path: Path
    routes_path: Path  # .npy of route_tables()
    edge_ids: list
    edge_length: np.ndarray  # (E,) metres
    crossings: Crossings
    trips: Trips  # this day's trips only (ids are global row numbers)
    trip_ids: np.ndarray  # (N,) global trip ids
    cfg: SumoConfig


def _simulate_day(job: _DayJob) -> tuple[np.ndarray, dict]:
    """Run SUMO on one day's trips (starting from an empty network) and bin the flows.

    The day runs until its last vehicle arrives; flows after midnight land in the next day's
    intervals. Returns counts of shape (T_all, 2, bins, bins) over the whole output period and
    a dict of statistics.
    """
    import xml.etree.ElementTree as ET

    cfg = job.cfg
    trips_path = job.workdir / f"trips_{job.day:03d}.xml"
    routes_path = job.workdir / f"vehroutes_{job.day:03d}.xml"
    stats_path = job.workdir / f"stats_{job.day:03d}.xml"
    _write_day_trips(job, trips_path)
    cmd = _sumo_command(job, trips_path, routes_path, stats_path)
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env())

    n_intervals = cfg.days * 86400 // cfg.interval_s
    counts = np.zeros((n_intervals, 2, cfg.bins, cfg.bins), dtype=np.int32)
    events = _DayEvents()
    row_of = {int(t): i for i, t in enumerate(job.trip_ids)}
    edge_index = {e: i for i, e in enumerate(job.edge_ids)}
    for _, elem in ET.iterparse(routes_path):
        if elem.tag != "vehicle":
            continue
        _add_vehicle(events, job, elem, row_of[int(elem.get("id"))], edge_index)
        elem.clear()
    for channel, times, cells in ((0, events.in_t, events.in_c), (1, events.out_t, events.out_c)):
        if not times:
            continue
        k = (np.asarray(times) // cfg.interval_s).astype(int)
        cells = np.asarray(cells).reshape(-1, 2)
        keep = k < n_intervals
        np.add.at(counts[:, channel], (k[keep], cells[keep, 0], cells[keep, 1]), 1)
    teleports = 0
    stat = ET.parse(stats_path).getroot().find("teleports")
    if stat is not None:
        teleports = int(stat.get("total", 0))
    for path in (trips_path, routes_path, stats_path):
        path.unlink(missing_ok=True)
    info = {"departed": events.departed, "arrived": events.arrived, "teleports": teleports}
    info["boundary_crossings"] = events.crossings
    return counts, info


def _write_day_trips(job: _DayJob, trips_path: Path) -> None:
    """Write the day's vehicles, each on one of the precomputed route variants (seeded)."""
    pred = np.load(job.routes_path, mmap_mode="r")  # (variants, E, E)
    variant = np.random.default_rng(job.cfg.seed * 1000 + job.day).integers(
        0, pred.shape[0], len(job.trip_ids)
    )
    routes = [
        route(pred[v], int(o), int(d))
        for v, o, d in zip(variant, job.trips.origin, job.trips.dest, strict=True)
    ]
    write_vehicles(trips_path, job.edge_ids, job.trips, job.trip_ids, routes)


def _sumo_command(job: _DayJob, trips_path: Path, routes_path: Path, stats_path: Path) -> list:
    """The ``sumo`` command line of one day."""
    cfg = job.cfg
    return [
        sumo_binary("sumo"),
        "-n",
        str(job.net_path),
        "-r",
        str(trips_path),
        "--begin",
        str(job.day * 86400),
        "--step-length",
        "1",
        "--time-to-teleport",
        "300",
        "--max-depart-delay",
        "900",
        *(["--mesosim", "true", "--meso-junction-control", "true"] if cfg.meso else []),
        "--vehroute-output",
        str(routes_path),
        "--vehroute-output.exit-times",
        "true",
        "--statistic-output",
        str(stats_path),
        "--no-step-log",
        "true",
        "--no-warnings",
        "true",
        "--seed",
        str(cfg.seed * 1000 + job.day),
    ]


@dataclass
class _DayEvents:
    """In-flow and out-flow events of one day: times (s) and cells (iy, ix), and counters."""

    in_t: list = field(default_factory=list)
    in_c: list = field(default_factory=list)
    out_t: list = field(default_factory=list)
    out_c: list = field(default_factory=list)
    departed: int = 0
    arrived: int = 0
    crossings: int = 0


def _add_vehicle(events: _DayEvents, job: _DayJob, elem, row: int, edge_index: dict) -> None:
    """The events of one ``<vehicle>`` of SUMO's vehroute output: its departure, its arrival,
    and every crossing of a cell boundary on its route."""
    cr = job.crossings
    depart = float(elem.get("depart"))
    depart_pos = float(elem.get("departPos", job.trips.depart_pos[row]))
    events.in_t.append(depart)
    events.in_c.append(cell_at(cr, int(job.trips.origin[row]), depart_pos))
    events.departed += 1
    route_elem = elem.find("route")
    arrival = elem.get("arrival")
    if arrival is not None and float(arrival) >= 0:
        events.out_t.append(float(arrival))
        events.out_c.append(
            cell_at(
                cr,
                int(job.trips.dest[row]),
                float(elem.get("arrivalPos", job.trips.arrival_pos[row])),
            )
        )
        events.arrived += 1
    if route_elem is not None and route_elem.get("exitTimes"):
        _add_route_crossings(events, job, elem, row, route_elem, edge_index, depart, depart_pos)


def _add_route_crossings(
    events: _DayEvents,
    job: _DayJob,
    elem,
    row: int,
    route_elem,
    edge_index: dict,
    depart: float,
    depart_pos: float,
) -> None:
    """Cell-boundary crossings along a route, timed by interpolating within each edge."""
    cr = job.crossings
    edges = [edge_index[e] for e in route_elem.get("edges").split()]
    exits = [float(x) for x in route_elem.get("exitTimes").split()]
    enter = depart
    for k, (e, t_exit) in enumerate(zip(edges, exits, strict=False)):
        p0 = depart_pos if k == 0 else 0.0
        p1 = (
            float(elem.get("arrivalPos", job.trips.arrival_pos[row]))
            if k == len(edges) - 1
            else job.edge_length[e]
        )
        for j in range(cr.edge_ptr[e], cr.edge_ptr[e + 1]):
            off = cr.offset[j]
            if p0 < off <= p1:
                t = enter + (t_exit - enter) * (off - p0) / max(p1 - p0, 1e-6)
                events.in_t.append(t)
                events.in_c.append(cr.cell_to[j])
                events.out_t.append(t)
                events.out_c.append(cr.cell_from[j])
                events.crossings += 1
        enter = t_exit


def simulate(
    workdir: Path, cfg: SumoConfig, *, jobs: int = 2, verbose: bool = True
) -> tuple[np.ndarray, Grid, SimStats]:
    """Build the network and demand, run SUMO day by day, and bin the flows.

    Each simulated day is its own SUMO run starting from an empty network at midnight and running
    until its last trip ends (trips last minutes, and only a few vehicles drive at midnight), so
    days can run in parallel (``jobs`` processes).

    Returns
    -------
    counts : ndarray of int32, shape (T, 2, bins, bins)
        Vehicles per interval: channel 0 in-flow, channel 1 out-flow; y index 0 is the south row.
    grid : Grid
    stats : SimStats
    """
    import sumolib

    t_start = time.perf_counter()
    net_path = build_network(workdir, junctions=cfg.junctions, spacing_m=cfg.spacing_m)
    net = sumolib.net.readNet(str(net_path))
    grid = make_grid(net, bins=cfg.bins)
    edges = net.getEdges(withInternal=False)
    crossings = find_crossings(edges, grid)
    routes_path = workdir / "routes.npy"
    np.save(routes_path, route_tables(edges, variants=8, seed=cfg.seed))
    trips = make_trips(edges, grid, cfg)
    stats = SimStats(trips_planned=int(trips.depart.size))
    if verbose:
        print(
            f"network: {len(edges)} edges, {len(crossings.offset)} boundary crossings; "
            f"{trips.depart.size} trips over {cfg.days} days",
            flush=True,
        )
    edge_ids = [e.getID() for e in edges]
    edge_length = np.array([e.getLength() for e in edges])
    day_of = trips.depart // 86400
    day_jobs = []
    for day in range(cfg.days):
        rows = np.flatnonzero(day_of == day)
        day_jobs.append(
            _DayJob(
                day=day,
                workdir=workdir,
                net_path=net_path,
                routes_path=routes_path,
                edge_ids=edge_ids,
                edge_length=edge_length,
                crossings=crossings,
                trips=Trips(*(getattr(trips, f)[rows] for f in Trips.__dataclass_fields__)),
                trip_ids=rows,
                cfg=cfg,
            )
        )
    n_intervals = cfg.days * 86400 // cfg.interval_s
    counts = np.zeros((n_intervals, 2, cfg.bins, cfg.bins), dtype=np.int32)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done, (day_counts, info) in enumerate(pool.map(_simulate_day, day_jobs), start=1):
            counts += day_counts
            for key, value in info.items():
                setattr(stats, key, getattr(stats, key) + value)
            if verbose:
                print(
                    f"day {done}/{cfg.days}: {info['departed']} trips, "
                    f"{info['teleports']} teleports, {time.perf_counter() - t_start:.0f} s",
                    flush=True,
                )
    stats.wall_s = round(time.perf_counter() - t_start, 1)
    return counts, grid, stats


# ----------------------------------------------------------------------------- output


def to_dataset(counts: np.ndarray, grid: Grid, cfg: SumoConfig, stats: SimStats) -> xr.Dataset:
    """Wrap the binned counts as the NetCDF-ready dataset (variable ``flow``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sumo_version = version("eclipse-sumo")
    except PackageNotFoundError:
        sumo_version = "(version unknown)"
    if counts.max() > np.iinfo(np.int16).max:
        raise ValueError(f"counts up to {counts.max()} do not fit int16")
    step = pd.Timedelta(seconds=cfg.interval_s)
    times = pd.date_range(START, periods=counts.shape[0], freq=step)
    minutes = cfg.interval_s // 60
    description = (
        f"Simulated city traffic: Eclipse SUMO {sumo_version} "
        f"{'mesoscopic' if cfg.meso else 'microscopic'} simulation "
        f"of a {cfg.junctions}x{cfg.junctions} street grid ({cfg.spacing_m:g} m blocks, one lane "
        "each way, traffic lights at the four-way junctions) "
        f"over {cfg.days} simulated days of 24 h (no time compression; weekdays with morning and "
        "evening commute peaks, weekends without), binned to "
        f"{cfg.bins}x{cfg.bins} cells of {grid.cell_m:g} m every {minutes} simulated minutes. "
        "Channel inflow: vehicles entering a cell (crossing into it or starting a trip in it); "
        "outflow: vehicles leaving it (crossing out or ending a trip). Demand is synthetic "
        "(Poisson trips with a daily profile, downtown work hotspot, routes precomputed as "
        "shortest paths under randomly perturbed travel times); each day is a separate SUMO run "
        "starting from an empty network at midnight. Timestamps are nominal, "
        f"starting on Monday {START[:10]}. Made by tools/sumo_traffic.py."
    )
    attrs = {
        "units": "vehicles per interval",
        "time_step": f"PT{minutes}M",
        "domain": "traffic",
        "synthetic": 1,
        "description": description,
        "source": "Eclipse SUMO (https://eclipse.dev/sumo) via tools/sumo_traffic.py",
        "licence": "CC0-1.0 (generated data); SUMO itself is EPL-2.0",
        "cell_size_m": float(grid.cell_m),
        "generator": "python tools/sumo_traffic.py",
        **{f"config_{k}": int(v) if isinstance(v, bool) else v for k, v in asdict(cfg).items()},
        **{f"sim_{k}": v for k, v in asdict(stats).items()},
    }
    da = xr.DataArray(
        counts.astype(np.int16),
        dims=("time", "channel", "y", "x"),
        coords={
            "time": times,
            "channel": list(CHANNELS),
            "y": ("y", grid.centres().astype(np.float32), {"units": "m", "long_name": "northing"}),
            "x": ("x", grid.centres().astype(np.float32), {"units": "m", "long_name": "easting"}),
        },
        attrs={"units": "vehicles per interval", "long_name": "vehicle flow"},
        name="flow",
    )
    return xr.Dataset({"flow": da}, attrs=attrs)


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write with zlib compression (int16 counts, chunked by day)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    per_day = max(1, min(ds.sizes["time"], 96))
    encoding = {
        "flow": {
            "zlib": True,
            "complevel": 9,
            "shuffle": True,
            "chunksizes": (per_day, 2, ds.sizes["y"], ds.sizes["x"]),
        },
        "time": {"units": "minutes since 2024-01-01 00:00:00", "dtype": "int32"},
    }
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SUMO_HOME"] = str(sumo_home())
    return env


@one_line_errors(RuntimeError, OSError, ValueError)
def main(argv: list[str] | None = None) -> int:
    """Command line entry point; a bad option or a missing SUMO ends it with one line, status 2."""
    defaults = SumoConfig()
    parser = Parser(
        prog="python tools/sumo_traffic.py",
        description="Simulate grid-city traffic with Eclipse SUMO and bin in/out flows to NetCDF.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output NetCDF path")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--junctions", type=int, default=defaults.junctions)
    parser.add_argument("--spacing-m", type=float, default=defaults.spacing_m)
    parser.add_argument("--bins", type=int, default=defaults.bins)
    parser.add_argument("--interval-s", type=int, default=defaults.interval_s)
    parser.add_argument("--commute-peak-per-h", type=float, default=defaults.commute_peak_per_h)
    parser.add_argument("--other-peak-per-h", type=float, default=defaults.other_peak_per_h)
    parser.add_argument("--night-per-h", type=float, default=defaults.night_per_h)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--micro", action="store_true", help="microscopic simulation (slower) instead of meso"
    )
    parser.add_argument("--jobs", type=int, default=2, help="days simulated in parallel")
    parser.add_argument("--workdir", type=Path, help="keep SUMO's files here (default: temp dir)")
    args = parser.parse_args(argv)
    if 86400 % args.interval_s:
        parser.error("--interval-s must divide a day (86400 s)")
    cfg = SumoConfig(
        days=args.days,
        junctions=args.junctions,
        spacing_m=args.spacing_m,
        bins=args.bins,
        interval_s=args.interval_s,
        commute_peak_per_h=args.commute_peak_per_h,
        other_peak_per_h=args.other_peak_per_h,
        night_per_h=args.night_per_h,
        meso=not args.micro,
        seed=args.seed,
    )
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            counts, grid, stats = simulate(args.workdir, cfg, jobs=args.jobs)
        else:
            with tempfile.TemporaryDirectory(prefix="sumo_traffic_") as tmp:
                counts, grid, stats = simulate(Path(tmp), cfg, jobs=args.jobs)
    except RuntimeError as exc:
        fail(exc)
    ds = to_dataset(counts, grid, cfg, stats)
    write_netcdf(ds, args.out)
    size_kb = args.out.stat().st_size / 1024
    print(
        f"wrote {args.out} ({size_kb:.0f} KiB): {counts.shape} counts, max {counts.max()}, "
        f"{stats.departed} trips, {stats.teleports} teleports, {stats.wall_s} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

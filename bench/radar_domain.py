"""Wall time and peak memory of whole-domain radar rollouts (tiled, gates captured).

Usage::

    python -m bench.radar_domain [--domains 710x640 1000x1000] [--context 12] [--horizon 12]
                                 [--variants capture none] [--data-km 1.0] [--runs 2]
                                 [--checkpoint checkpoints/radar_mch] [--stride 64]
                                 [--tile-batch 16] [--byte-budget-mib 2048] [--device cpu]

Each domain and variant runs in a fresh process (``--child``), so its peak resident memory is its
own: the checkpoint, the input and the rollout, nothing from the other runs. It is read twice:
"peak RSS" is ``VmHWM`` of ``/proc/self/status``, the high-water mark of the process's own memory
map, which starts afresh at ``exec``; ``ru_maxrss`` is ``resource.getrusage(RUSAGE_SELF)``'s, which
Linux carries across ``exec`` from the parent (at least the parent's peak at the fork: equal to
``VmHWM`` only when the parent is smaller). So the parent stays small: the input, synthetic
precipitation (:func:`datasets.radar_synthetic.synthetic_precipitation`, 1 km, 5 min, about 2 GiB
to make at 1000 x 1000), is made once in another child (``--make-data``) and handed over, cropped
to each domain, in ``.npy`` files. ``--data-km`` relabels the pixels (e.g. 2 km, FMI-like) so that
:func:`model.tiling.domain_rollout` resamples to the checkpoint's 1 km and back, timed with the
rest.

Printed per run: tiles, wall time of the first call (cold: oneDNN builds its kernels then) and the
fastest later one (warm), the CPU time of each call (all threads; on a shared machine wall time
also counts the time other processes held the cores), peak RSS, RSS before the rollout (Python,
torch, checkpoint, input), and the bytes of the result (``Dataset.nbytes``: prediction, truth,
context and the float16 gates). tracemalloc is not used: torch's CPU allocator does not report to it, so it would miss the gates
and every activation. glibc's allocator is left as the dashboard runs it (no
:func:`model.runtime.tune_cpu_allocator`), so the RSS is what a dashboard process would see.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datasets.cli import fail
from model.cli import ERRORS, Parser, one_line_errors

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "radar_mch"


def _rss_mib() -> float:
    """Current resident set size of this process in MiB (``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mib() -> tuple[float, float]:
    """Peak RSS in MiB: ``getrusage`` (KiB on Linux) and ``VmHWM`` of this memory map."""
    rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return rusage, int(line.split()[1]) / 1024  # kB
    return rusage, float("nan")


def child(spec: dict) -> None:
    """One domain and variant in this fresh process; prints one JSON line."""
    import xarray as xr

    from model.checkpoint import load_checkpoint
    from model.tiling import domain_capture_bytes, domain_rollout

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    net, meta = load_checkpoint(spec["checkpoint"], device=spec["device"])
    values = np.load(spec["data"])  # [T, 1, H, W] mm/h
    n_ctx, km = spec["context"], spec["data_km"]
    h, w = values.shape[-2:]
    coords = {"y": (np.arange(h)[::-1] + 0.5) * km, "x": (np.arange(w) + 0.5) * km}
    frames = xr.DataArray(values, dims=("time", "channel", "y", "x"), coords=coords,
                          attrs={"units": "mm/h", "time_step": "PT5M", "domain": "radar"})  # fmt: skip
    frames.y.attrs["units"] = frames.x.attrs["units"] = "km"
    ctx, truth = frames[:n_ctx], frames[n_ctx:]
    capture = spec["variant"] == "capture"
    before = _rss_mib()
    times, cpu, ds = [], [], None
    for _ in range(spec["runs"]):
        del ds  # the previous result is not kept alive through the next run
        start, start_cpu = time.perf_counter(), time.process_time()
        ds = domain_rollout(net, ctx, spec["horizon"], meta=meta, truth=truth, capture=capture,
                            stride=spec["stride"], tile_batch=spec["tile_batch"],
                            byte_budget=spec["byte_budget"])  # fmt: skip
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    model_grid = ds.attrs.get("model_grid", [h, w])
    steps = n_ctx + spec["horizon"] - 1
    print(json.dumps({
        "tiles": ds.attrs["tiles"],
        "model_grid": model_grid,
        "gates": list(ds.gates.shape[-2:]) if "gates" in ds else None,
        "capture_mib": domain_capture_bytes(net, capture, steps, tuple(model_grid)) / 2**20,
        "cold_s": times[0],
        "warm_s": min(times[1:]) if len(times) > 1 else None,
        "cpu_s": cpu,
        "peak_rss_mib": _peak_rss_mib(),  # (getrusage, VmHWM)
        "before_mib": before,
        "result_mib": ds.nbytes / 2**20,
        "precision": ds.attrs["precision"],
    }))  # fmt: skip


def make_data(spec: dict) -> None:
    """Synthetic rain ``[T, 1, H, W]`` in mm/h (1 km, 5 min), one ``.npy`` per domain."""
    from datasets.radar_synthetic import synthetic_precipitation

    side = max(max(d) for d in spec["domains"])
    start = time.perf_counter()
    data = synthetic_precipitation(n_samples=1, split="test", seed=spec["seed"], grid=side,
                                   frames=spec["frames"]).values[0]  # fmt: skip
    for (h, w), path in zip(spec["domains"], spec["paths"], strict=True):
        np.save(path, np.ascontiguousarray(data[..., :h, :w]))
    print(json.dumps({"side": side, "seconds": time.perf_counter() - start}))


def _run_child(flag: str, spec: dict) -> dict:
    cmd = [sys.executable, "-m", "bench.radar_domain", flag, json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{flag} {spec.get('domain', '')} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _parse_domain(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"domain {text!r}: write HEIGHTxWIDTH, e.g. 710x640"
        ) from exc
    return h, w


@one_line_errors(*ERRORS)
def main(argv=None) -> None:
    parser = Parser(prog="python -m bench.radar_domain", description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", type=_parse_domain,
                        default=[(710, 640), (1000, 1000)], help="HEIGHTxWIDTH in pixels")  # fmt: skip
    parser.add_argument("--context", type=int, default=12)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--variants", nargs="+", default=["capture", "none"],
                        choices=["capture", "none"], help="gate capture: all gates, or none")  # fmt: skip
    parser.add_argument("--data-km", type=float, default=1.0,
                        help="pixel size given to the data (1: the checkpoint's, no resampling)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=2, help="calls per process (1st: cold)")
    parser.add_argument("--checkpoint", default=str(CHECKPOINT))
    parser.add_argument("--stride", type=int, default=None, help="default: half a tile")
    parser.add_argument("--tile-batch", type=int, default=16)
    parser.add_argument("--byte-budget-mib", type=float, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--make-data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag, value in (("--runs", args.runs), ("--tile-batch", args.tile_batch),
                        ("--context", args.context), ("--horizon", args.horizon)):  # fmt: skip
        if value < 1:
            fail(f"{flag} {value}: give at least 1")
    if args.child:
        child(json.loads(args.child))
        return
    if args.make_data:
        make_data(json.loads(args.make_data))
        return
    with tempfile.TemporaryDirectory(prefix="bench_domain_") as tmp:
        paths = [str(Path(tmp) / f"rain_{h}x{w}.npy") for h, w in args.domains]
        made = _run_child("--make-data", {"domains": args.domains, "paths": paths,
                                          "frames": args.context + args.horizon,
                                          "seed": args.seed})  # fmt: skip
        print(f"torch {torch.__version__}, device {args.device}, threads "
              f"{args.threads or torch.get_num_threads()}; checkpoint "
              f"{Path(args.checkpoint).name}; {args.context} -> {args.horizon} frames; synthetic "
              f"input {made['side']}x{made['side']} made in {made['seconds']:.1f} s; data pixel "
              f"{args.data_km:g} km")  # fmt: skip
        _table(args, paths)


def _table(args, paths: list[str]) -> None:
    """One fresh process per domain and variant; one line each."""
    header = (f"{'domain':>10s} {'model grid':>10s} {'capture':>7s} {'tiles':>5s} {'gates':>9s} "
              f"{'gate MiB':>8s} {'cold s':>7s} {'warm s':>7s} {'CPU s':>9s} {'peak RSS MiB':>12s} "
              f"{'ru_maxrss':>9s} {'before MiB':>10s} {'result MiB':>10s}")  # fmt: skip
    print(header)
    r = {}
    for (h, w), path in zip(args.domains, paths, strict=True):
        for variant in args.variants:
            spec = {"domain": [h, w], "variant": variant, "data": path,
                    "checkpoint": args.checkpoint, "context": args.context,
                    "horizon": args.horizon, "data_km": args.data_km, "runs": args.runs,
                    "stride": args.stride, "tile_batch": args.tile_batch,
                    "byte_budget": int(args.byte_budget_mib * 2**20),
                    "device": args.device, "threads": args.threads}  # fmt: skip
            r = _run_child("--child", spec)
            gates = "x".join(map(str, r["gates"])) if r["gates"] else "-"
            warm = f"{r['warm_s']:7.1f}" if r["warm_s"] is not None else f"{'-':>7s}"
            grid = "x".join(map(str, r["model_grid"]))
            cpu_s = "/".join(f"{c:.0f}" for c in r["cpu_s"])
            rusage, hwm = r["peak_rss_mib"]
            print(f"{f'{h}x{w}':>10s} {grid:>10s} {variant:>7s} {r['tiles']:5d} {gates:>9s} "
                  f"{r['capture_mib']:8.0f} {r['cold_s']:7.1f} {warm} {cpu_s:>9s} {hwm:12.0f} "
                  f"{rusage:9.0f} {r['before_mib']:10.0f} {r['result_mib']:10.0f}")  # fmt: skip
    print(
        f"precision {r.get('precision')}; gate MiB: the float16 whole-domain gate array "
        "(model.tiling.domain_capture_bytes); CPU s: process CPU time of each call, all threads "
        "(wall time also counts other processes holding the cores); peak RSS: VmHWM, the "
        "process's own high-water mark; ru_maxrss: getrusage's, at least the parent's peak; "
        "before: RSS before the rollout; MiB throughout"
    )


if __name__ == "__main__":
    main()

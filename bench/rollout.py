"""Rollout throughput of our engine against a community-style reference, as ratios in one run.

Usage::

    python -m bench.rollout [--configs radar video traffic] [--rounds 6] [--cold-runs 3]
                            [--compile] [--device cpu]

The reference is written the way most public ConvLSTM code is: per layer and step, one fp32 eager
convolution over ``cat([x, h])``, gates split i, f, o, g, no peepholes. It gets the same
architecture (patching, head, autoregressive feedback) and our weights (peepholes zeroed), so the
first line of each configuration checks that both compute the same forecast.

Variants (timed interleaved, round by round, so machine noise hits all alike):

- ``reference``: the community-style fp32 loop;
- ``ours fp32``: our engine in float32 (channels-last, one fused convolution per layer and step);
- ``ours default``: what the dashboard runs, ``model.rollout.rollout`` with ``precision="auto"``
  (bfloat16 autocast where the CPU/GPU supports it); for batch > 1 the same engine call batched;
- ``ours default + capture``: the same, recording all six gates/states of every layer;
- ``ours compiled`` (with ``--compile``): ``torch.compile`` of the network, compile time reported.

"cold" is the first call in a fresh Python process (no warm-up at all: oneDNN builds its kernels
and the process faults its memory in during that call), measured ``--cold-runs`` times per variant
in alternating subprocesses; the reference runs there as community code would, with glibc's
default allocator, ours as our entry points run it (allocator tuned, see ``model/runtime.py``).
"warm" is the median of interleaved rounds in one process, where every variant, the reference
included, shares the tuned allocator. frames/s counts frames read plus frames forecast per second
(batch included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model.cli import ERRORS, Parser, one_line_errors
from model.convlstm import ConvLSTM
from model.rollout import (
    CaptureSpec,
    GateRecorder,
    autocast,
    compile_network,
    forecast_windows,
    resolve_precision,
    rollout,
)
from model.runtime import tune_cpu_allocator


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark configuration (sizes from the foundation issue)."""

    name: str
    frame_size: tuple[int, int]
    channels: int
    patch: int
    hidden: tuple[int, ...]
    kernel: int
    context: int
    horizon: int
    batch: int


CONFIGS = {
    "video": BenchConfig("video", (64, 64), 1, 4, (128, 64, 64), 5, 10, 10, 1),
    "radar": BenchConfig("radar", (128, 128), 1, 2, (64, 64), 3, 12, 12, 1),
    "traffic": BenchConfig("traffic", (32, 32), 2, 1, (32, 32), 3, 12, 12, 8),
}


class ReferenceCell(nn.Module):
    """Community-style cell: one convolution over ``cat([x, h])``, gates i, f, o, g, no peepholes."""

    def __init__(self, cin: int, hid: int, k: int) -> None:
        super().__init__()
        self.hid = hid
        self.conv = nn.Conv2d(cin + hid, 4 * hid, k, padding=k // 2)

    def forward(self, x, h, c):
        z = self.conv(torch.cat([x, h], dim=1))  # [B, 4*hid, h, w]
        i, f, o, g = torch.split(z, self.hid, dim=1)
        i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c


class ReferenceNet(nn.Module):
    """Same architecture as :class:`model.convlstm.ConvLSTM`, written step by step in fp32."""

    def __init__(self, ours: ConvLSTM) -> None:
        super().__init__()
        cfg = ours.config
        self.ours = ours  # for patch/unpatch only
        self.cells = nn.ModuleList(
            ReferenceCell(c.in_channels, c.hidden_channels, cfg.kernel_size) for c in ours.cells
        )
        self.head = nn.Conv2d(ours.head.in_channels, ours.head.out_channels, 1)
        with torch.no_grad():  # copy our weights: fused conv weight = [W_x | W_h]
            for ref, cell in zip(self.cells, ours.cells, strict=True):
                ref.conv.weight.copy_(cell.fused_weight())
                ref.conv.bias.copy_(cell.input_conv.bias)
            self.head.load_state_dict(ours.head.state_dict())

    def forward(self, frames, horizon: int):
        x_seq = self.ours.patch(frames)  # [B, T, C*p*p, h, w]
        b, t, _, gh, gw = x_seq.shape
        hs = [x_seq.new_zeros(b, c.hid, gh, gw) for c in self.cells]
        cs = [z.clone() for z in hs]
        outputs = []
        y = None
        for step in range(t + horizon - 1):
            inp = x_seq[:, step] if step < t else y  # fed back while forecasting
            for layer, cell in enumerate(self.cells):
                hs[layer], cs[layer] = cell(inp, hs[layer], cs[layer])
                inp = hs[layer]
            if step >= t - 1:
                y = self.head(torch.cat(hs, dim=1))  # [B, C*p*p, h, w]
                outputs.append(y)
        out = torch.stack(outputs, dim=1)  # [B, horizon, C*p*p, h, w]
        return self.ours.unpatch(out)


def gflop(cfg: BenchConfig) -> float:
    """Multiply-adds x2 of all convolutions in one rollout (cells over T+H-1 steps, head over H)."""
    gh, gw = cfg.frame_size[0] // cfg.patch, cfg.frame_size[1] // cfg.patch
    cins = (cfg.channels * cfg.patch**2, *cfg.hidden[:-1])
    k2 = cfg.kernel**2
    per_step = sum(
        2 * (ci + h) * 4 * h * k2 * gh * gw for ci, h in zip(cins, cfg.hidden, strict=True)
    )
    head = 2 * sum(cfg.hidden) * cfg.channels * cfg.patch**2 * gh * gw
    steps = cfg.context + cfg.horizon - 1
    return cfg.batch * (steps * per_step + cfg.horizon * head) / 1e9


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def build(cfg: BenchConfig, device: torch.device) -> tuple[ConvLSTM, ReferenceNet, torch.Tensor]:
    """Our network (random weights, peepholes zeroed), the reference with the same weights, input."""
    torch.manual_seed(0)
    ours = ConvLSTM(
        in_channels=cfg.channels, hidden_channels=cfg.hidden, kernel_size=cfg.kernel,
        patch_size=cfg.patch, frame_size=cfg.frame_size, peephole=True,
    ).eval().to(device)  # fmt: skip
    with torch.no_grad():
        for cell in ours.cells:
            cell.peephole_weight.zero_()  # so the reference (no peepholes) computes the same
    ref = ReferenceNet(ours).eval().to(device)
    frames = torch.rand(cfg.batch, cfg.context, cfg.channels, *cfg.frame_size, device=device)
    return ours, ref, frames  # frames [B, T, C, H, W]


def runners(cfg: BenchConfig, ours, ref, frames, device: torch.device) -> dict:
    """The timed variants, keyed ``reference``, ``fp32``, ``default``, ``capture``."""
    spec = CaptureSpec.parse(True, len(ours.cells))
    steps = cfg.context + cfg.horizon - 1

    def run_ref():
        with torch.no_grad():
            return ref(frames, cfg.horizon)

    def run_fp32():
        with torch.no_grad():
            return ours(frames, horizon=cfg.horizon)[0]

    def run_default(capture=False):
        if cfg.batch == 1:  # what the dashboard runs, xarray result included
            rollout(ours, frames[0].cpu().numpy(), cfg.horizon, capture=capture)
            return
        # rollout() takes one sequence; batches run the forecast path it calls
        hook = None
        if capture:
            hook = GateRecorder(ours, spec, steps=steps, batch=cfg.batch, device=device).hook
        forecast_windows(ours, frames, cfg.horizon, batch_size=cfg.batch, gate_hook=hook)

    return {
        "reference": run_ref,
        "fp32": run_fp32,
        "default": run_default,
        "capture": lambda: run_default(True),
    }


def cold_probe(config: str, variant: str, device: str, rounds: int = 1) -> None:
    """Print the seconds of the first call of one variant (run in a fresh process), then the
    median of ``rounds - 1`` further calls when ``rounds > 1``."""
    dev = torch.device(device)
    ours, ref, frames = build(CONFIGS[config], dev)
    fn = runners(CONFIGS[config], ours, ref, frames, dev)[variant]
    times = [_time(fn) for _ in range(rounds)]
    print(f"{times[0]:.6f}", f"{statistics.median(times[1:]):.6f}" if rounds > 1 else "")


def _probe_command(config: str, variant: str, device: torch.device, rounds: int = 1) -> list:
    return [sys.executable, "-m", "bench.rollout", "--cold-probe", config, variant,
            "--probe-rounds", str(rounds), "--device", str(device),
            "--threads", str(torch.get_num_threads())]  # fmt: skip


def cold_times(config: str, variants: list[str], runs: int, device: torch.device) -> dict:
    """First-call seconds of each variant, each run in its own fresh process, alternating."""
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(runs):
        for variant in variants:
            cmd = _probe_command(config, variant, device)
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            times[variant].append(float(out.split()[0]))
    return {v: statistics.median(ts) for v, ts in times.items()}


def bench_config(
    cfg: BenchConfig, *, rounds: int, cold_runs: int, compile_: bool, device: torch.device
) -> None:
    precision = resolve_precision("auto", device)
    label = {
        "reference": "reference (fp32, cat-conv)",
        "fp32": "ours fp32",
        "default": f"ours default ({precision})",
        "capture": f"ours default ({precision}) + capture all",
        "compiled": f"ours compiled ({precision})",
    }
    cold = cold_times(cfg.name, ["reference", "default", "capture"], cold_runs, device)

    ours, ref, frames = build(cfg, device)  # warm rounds: every variant shares main's allocator
    variants = runners(cfg, ours, ref, frames, device)
    with torch.no_grad():
        same = (variants["reference"]() - variants["fp32"]()).abs().max().item()
        with autocast(precision, device):
            low = ours(frames, horizon=cfg.horizon)[0].float()
        full = variants["fp32"]()
        diff = (low - full).abs()
        rel_rms = (diff.pow(2).mean().sqrt() / full.pow(2).mean().sqrt()).item()

    compile_seconds = None
    if compile_:
        compiled = compile_network(ours)

        def run_compiled():
            with torch.no_grad(), autocast(precision, device):
                return compiled(frames, horizon=cfg.horizon)[0]

        compile_seconds = _time(run_compiled)  # first call compiles
        variants["compiled"] = run_compiled

    for fn in variants.values():  # warm-up round, not timed
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(_time(fn))
    warm = {k: statistics.median(ts) for k, ts in times.items()}

    frames_per_run = cfg.batch * (cfg.context + cfg.horizon)
    flops = gflop(cfg)
    print(f"\n== {cfg.name}: {cfg.frame_size[0]}x{cfg.frame_size[1]}x{cfg.channels}, patch "
          f"{cfg.patch}, hidden {'-'.join(map(str, cfg.hidden))}, kernel {cfg.kernel}, "
          f"{cfg.context}->{cfg.horizon}, batch {cfg.batch}  ({flops:.1f} GFLOP per rollout)")  # fmt: skip
    print(f"   check: max |ours fp32 - reference| = {same:.2e}")
    print(f"   {precision} vs fp32 forecast: max abs diff {diff.max().item():.3e}, "
          f"relative RMS {rel_rms:.3e}")  # fmt: skip
    print(f"   {'variant':42s} {'cold s':>8s} {'warm s':>8s} {'frames/s':>9s} {'GFLOP/s':>8s}"
          f" {'x ref cold':>10s} {'x ref warm':>10s}")  # fmt: skip
    for key, w in warm.items():
        c = cold.get(key)
        cold_s = f"{c:8.3f}" if c else f"{'-':>8s}"
        cold_x = f"{cold['reference'] / c:10.2f}" if c else f"{'-':>10s}"
        print(f"   {label[key]:42s} {cold_s} {w:8.3f} {frames_per_run / w:9.1f} "
              f"{flops / w:8.1f} {cold_x} {warm['reference'] / w:10.2f}")  # fmt: skip
    print(f"   gate capture overhead: warm {100 * (warm['capture'] / warm['default'] - 1):+.1f}%, "
          f"cold {100 * (cold['capture'] / cold['default'] - 1):+.1f}% "
          f"(medians: {rounds} rounds, {cold_runs} fresh processes)")  # fmt: skip
    if compile_seconds is not None:
        print(
            f"   compile time (first compiled call, empty inductor cache): {compile_seconds:.1f} s"
        )
    # The warm rounds above let the reference share our tuned allocator (the strict comparison);
    # community code runs in its own process with glibc's defaults:
    cmd = _probe_command(cfg.name, "reference", device, rounds=rounds + 1)
    alone = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[1])
    ratios = ", ".join(
        f"{label[k]} {alone / warm[k]:.2f}x" for k in ("default", "compiled") if k in warm
    )
    print(f"   reference alone in its own process (glibc defaults), warm {alone:.3f} s: {ratios}")


@one_line_errors(*ERRORS)
def main(argv=None) -> None:
    """``python -m bench.rollout [options]``; a bad option ends it with one line, status 2."""
    parser = Parser(prog="python -m bench.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["radar", "video", "traffic"],
                        choices=sorted(CONFIGS))  # fmt: skip
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes per variant")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--cold-probe", nargs=2, metavar=("CONFIG", "VARIANT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--probe-rounds", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag, value, least in (("--rounds", args.rounds, 1), ("--cold-runs", args.cold_runs, 0),
                               ("--threads", args.threads, 0), ("--probe-rounds", args.probe_rounds, 1)):  # fmt: skip
        if value < least:
            parser.error(f"{flag} {value}: give at least {least}")
    if args.device not in ("cpu", "cuda", "mps") and not args.device.startswith("cuda:"):
        parser.error(f"--device {args.device!r}: use cpu, cuda, cuda:N or mps")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu" and not (args.cold_probe and args.cold_probe[1] == "reference"):
        tune_cpu_allocator()  # as our entry points do; the reference alone runs without
    if args.cold_probe:
        cold_probe(*args.cold_probe, args.device, rounds=args.probe_rounds)
        return
    if args.compile and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        # an empty inductor cache, so the compile time printed is what a first run pays
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_inductor_")
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"numpy {np.__version__}")  # fmt: skip
    for name in args.configs:
        bench_config(CONFIGS[name], rounds=args.rounds, cold_runs=args.cold_runs,
                     compile_=args.compile, device=device)  # fmt: skip


if __name__ == "__main__":
    main()

"""Rollout throughput of our engine against a community-style reference, as ratios in one run.

Usage::

    python -m bench.rollout [--configs radar video traffic] [--rounds 4] [--compile] [--device cpu]

The reference is written the way most public ConvLSTM code is: per layer and step, one fp32 eager
convolution over ``cat([x, h])``, gates split i, f, o, g, no peepholes. It gets the same
architecture (patching, head, autoregressive feedback) and our weights (peepholes zeroed), so the
first line of each configuration checks that both compute the same forecast.

Variants (timed interleaved, round by round, so machine noise hits all alike):

- ``reference``: the community-style fp32 loop;
- ``ours fp32``: our engine, fp32 (batched input convolutions while encoding, fused while forecasting);
- ``ours default``: what the dashboard runs, ``model.rollout.rollout`` with ``precision="auto"``
  (bfloat16 autocast where the CPU/GPU supports it); for batch > 1 the same engine call batched;
- ``ours default + capture``: the same, recording all six gates/states of every layer;
- ``ours compiled`` (with ``--compile``): ``torch.compile`` of the network, compile time reported;
- ``ours channels-last`` (CUDA only): bf16 with channels-last weights so cuDNN picks NHWC kernels.

"cold" is the first call (no warm-up); "warm" the median of the later rounds. frames/s counts
frames read plus frames forecast per second (batch included).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model.convlstm import ConvLSTM
from model.rollout import (
    CaptureSpec,
    GateRecorder,
    compile_network,
    resolve_precision,
    rollout,
)


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


def bench_config(cfg: BenchConfig, *, rounds: int, compile_: bool, device: torch.device) -> None:
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
    precision = resolve_precision("auto", device)

    def run_ref():
        with torch.no_grad():
            return ref(frames, cfg.horizon)

    def run_fp32():
        with torch.no_grad():
            return ours(frames, horizon=cfg.horizon)[0]

    spec = CaptureSpec.parse(True, len(ours.cells))
    steps = cfg.context + cfg.horizon - 1

    def run_default(capture=False):
        if cfg.batch == 1:  # what the dashboard runs, xarray result included
            rollout(ours, frames[0].cpu().numpy(), cfg.horizon, capture=capture)
            return
        # rollout() takes one sequence; for batches time the same engine path directly
        rec = GateRecorder(ours, spec, steps=steps, batch=cfg.batch, device=device)
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            ours(frames, horizon=cfg.horizon, gate_hook=rec.hook if capture else None)

    with torch.no_grad():
        same = (run_ref() - run_fp32()).abs().max().item()
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        with autocast:
            low = ours(frames, horizon=cfg.horizon)[0].float()
        full = run_fp32()
        diff = (low - full).abs()
        rel_rms = (diff.pow(2).mean().sqrt() / full.pow(2).mean().sqrt()).item()

    variants = {
        "reference (fp32, cat-conv)": run_ref,
        "ours fp32": run_fp32,
        f"ours default ({precision})": run_default,
        f"ours default ({precision}) + capture all": lambda: run_default(True),
    }
    if device.type == "cuda":  # cuDNN NHWC kernels: channels-last weights, bf16 autocast
        ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)

        def run_channels_last():
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                return ours_cl(frames, horizon=cfg.horizon)[0]

        variants[f"ours {precision} channels-last"] = run_channels_last
    compile_seconds = None
    if compile_:
        compiled = compile_network(ours)

        def run_compiled():
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"),
            ):
                return compiled(frames, horizon=cfg.horizon)[0]

        compile_seconds = _time(run_compiled)  # first call compiles
        variants[f"ours compiled ({precision})"] = run_compiled

    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(_time(fn))

    frames_per_run = cfg.batch * (cfg.context + cfg.horizon)
    flops = gflop(cfg)
    ref_key = next(iter(variants))
    ref_cold, ref_warm = times[ref_key][0], statistics.median(times[ref_key][1:] or times[ref_key])
    print(f"\n== {cfg.name}: {cfg.frame_size[0]}x{cfg.frame_size[1]}x{cfg.channels}, patch "
          f"{cfg.patch}, hidden {'-'.join(map(str, cfg.hidden))}, kernel {cfg.kernel}, "
          f"{cfg.context}->{cfg.horizon}, batch {cfg.batch}  ({flops:.1f} GFLOP per rollout)")  # fmt: skip
    print(f"   check: max |ours fp32 - reference| = {same:.2e}")
    print(f"   {precision} vs fp32 forecast: max abs diff {diff.max().item():.3e}, "
          f"relative RMS {rel_rms:.3e}")  # fmt: skip
    print(f"   {'variant':42s} {'cold s':>8s} {'warm s':>8s} {'frames/s':>9s} {'GFLOP/s':>8s}"
          f" {'x ref cold':>10s} {'x ref warm':>10s}")  # fmt: skip
    for name, ts in times.items():
        cold, warm = ts[0], statistics.median(ts[1:] or ts)
        print(f"   {name:42s} {cold:8.3f} {warm:8.3f} {frames_per_run / warm:9.1f} "
              f"{flops / warm:8.1f} {ref_cold / cold:10.2f} {ref_warm / warm:10.2f}")  # fmt: skip
    cap_key = [k for k in times if k.endswith("capture all")][0]
    def_key = [k for k in times if k.startswith("ours default") and k != cap_key][0]
    overhead = statistics.median(times[cap_key]) / statistics.median(times[def_key]) - 1
    print(f"   gate capture overhead (median over rounds): {100 * overhead:+.1f}%")
    if compile_seconds is not None:
        print(f"   compile time (first compiled call): {compile_seconds:.1f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["radar", "video", "traffic"],
                        choices=sorted(CONFIGS))  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"numpy {np.__version__}")  # fmt: skip
    for name in args.configs:
        bench_config(CONFIGS[name], rounds=args.rounds, compile_=args.compile, device=device)


if __name__ == "__main__":
    main()

"""Training throughput on Moving MNIST: the project's training step against a plain loop, as ratios.

Usage::

    python -m bench.train_throughput [--device cpu|cuda] [--archs shipped openstl_s]
                                     [--batch 16] [--steps 4] [--rounds 2] [--compile]

Two architectures (10 -> 10 frames, 64x64, loss on the free-running forecast, AdamW):

- ``shipped``: the ``video_moving_mnist`` checkpoint's network (2 layers x 64, kernel 5, patch 4);
- ``openstl_s``: OpenSTL's ConvLSTM-S shape (4 layers x 128, kernel 5, patch 4).

Variants, timed interleaved round by round (machine noise hits all alike), same network and batch:

- ``plain fp32``: the usual eager loop: a ``DataLoader`` over a pre-generated host split, the
  batch copied to the device each step, float32;
- ``stream + precision``: what ``model.train`` runs with ``train.stream`` and ``train.precision =
  "auto"``: batches rendered on the device (:class:`model.moving_mnist_stream.MovingMNISTStream`),
  bfloat16 autocast where the device computes it natively (CUDA, AVX512-BF16 CPUs), activations
  channels-last on latent grids where that measured faster (:mod:`model.kernels`);
- ``+ compile`` (with ``--compile``): the same under ``torch.compile`` (compile time reported).

Sequences/s count training sequences (20 frames each) per second. TFLOP/s counts the convolutions
of forward and backward (3x the forward's multiply-adds x 2), the rest is small; on CUDA the
fraction of the device's dense bfloat16 peak is printed where the device is known.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from datasets.cli import fail
from model.cli import ERRORS, Parser, one_line_errors
from model.convlstm import ConvLSTM, ConvLSTMConfig
from model.losses import Objective
from model.moving_mnist_stream import MovingMNISTStream
from model.rollout import autocast, resolve_precision
from model.runtime import tune_cpu_allocator

CONTEXT, HORIZON, SIDE = 10, 10, 64


@dataclass(frozen=True)
class Arch:
    name: str
    hidden: tuple[int, ...]
    kernel: int = 5
    patch: int = 4

    def config(self) -> ConvLSTMConfig:
        return ConvLSTMConfig(in_channels=1, frame_size=(SIDE, SIDE), hidden_channels=self.hidden,
                              kernel_size=self.kernel, patch_size=self.patch,
                              output_activation="sigmoid")  # fmt: skip


ARCHS = {"shipped": Arch("shipped", (64, 64)), "openstl_s": Arch("openstl_s", (128,) * 4)}

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}
"""Dense bfloat16 tensor-core peaks (vendor data sheets) by device-name fragment."""


def flops_per_sequence(cfg: ConvLSTMConfig) -> float:
    """Convolution FLOPs of one training sequence: forward + backward = 3 x forward.

    The network reads ``context + horizon - 1`` inputs (free-running), each through every layer's
    gate convolution over ``cat([x, h])``, then the 1x1 head for each of ``horizon`` frames.
    """
    h, w = cfg.grid_size
    p2 = cfg.patch_size**2
    inputs = (cfg.in_channels * p2, *cfg.hidden_channels[:-1])
    per_step = sum(
        2 * h * w * (cin + hid) * 4 * hid * cfg.kernel_size**2
        for cin, hid in zip(inputs, cfg.hidden_channels, strict=True)
    )
    head = 2 * h * w * sum(cfg.hidden_channels) * cfg.in_channels * p2
    return 3.0 * ((CONTEXT + HORIZON - 1) * per_step + HORIZON * head)


class Variant:
    """One way of running training steps of one network; ``step()`` runs one and syncs."""

    def __init__(self, name: str, arch: Arch, device: torch.device, batch: int, *, fast: bool,
                 compiled: bool = False) -> None:  # fmt: skip
        torch.manual_seed(0)
        self.name, self.device, self.batch = name, device, batch
        self.net = ConvLSTM(config=arch.config()).to(device)
        objective = Objective(self.net, context=CONTEXT, mode="free")
        self.objective = torch.compile(objective) if compiled else objective
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=1e-4)
        self.precision = resolve_precision("auto", device) if fast else "fp32"
        self.stream = MovingMNISTStream(split="train", seed=0, device=device) if fast else None
        self.sample = 0
        if not fast:  # a host split, batches through a DataLoader as most training code does
            host = MovingMNISTStream(split="train", seed=0).batch(start=0, size=8 * batch)
            loader = DataLoader(TensorDataset(host), batch_size=batch, shuffle=True,
                                drop_last=True, pin_memory=device.type == "cuda")  # fmt: skip
            self.batches = _forever(loader)

    def next_batch(self) -> torch.Tensor:
        if self.stream is not None:
            self.sample += self.batch
            return self.stream.batch(start=self.sample, size=self.batch)  # [B, 20, 1, 64, 64]
        (frames,) = next(self.batches)
        return frames.to(self.device, non_blocking=True)  # [B, 20, 1, 64, 64]

    def step(self) -> float:
        """One optimiser step; returns its wall seconds (device synchronised)."""
        t0 = time.perf_counter()
        frames = self.next_batch()
        with autocast(self.precision, self.device):
            loss = self.objective(frames)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def _forever(loader):
    while True:
        yield from loader


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def measure(arch: Arch, device: torch.device, *, batch: int, steps: int, rounds: int,
            compiled: bool) -> list[tuple[str, float]]:  # fmt: skip
    """Median seconds per step of each variant, interleaved over ``rounds`` rounds."""
    variants = [Variant("plain fp32", arch, device, batch, fast=False),
                Variant("stream + precision", arch, device, batch, fast=True)]  # fmt: skip
    if compiled:
        variants.append(Variant("+ compile", arch, device, batch, fast=True, compiled=True))
    for v in variants:  # warm-up (oneDNN kernels, compile) outside the timing
        t0 = time.perf_counter()
        v.step()
        v.step()
        print(f"  {arch.name} {v.name}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    times = {v.name: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v.name].extend(v.step() for _ in range(steps))
    return [(v.name, statistics.median(times[v.name])) for v in variants]


def report(arch: Arch, device: torch.device, results, batch: int) -> None:
    flops = flops_per_sequence(arch.config())
    peak = peak_tflops(device)
    base = results[0][1]
    print(f"\n{arch.name} ({len(arch.hidden)} x {arch.hidden[0]}, kernel {arch.kernel}, patch "
          f"{arch.patch}), batch {batch}, {device.type}: {flops / 1e9:.1f} GFLOP per sequence")  # fmt: skip
    print(f"{'variant':<22}{'s/step':>9}{'seq/s':>9}{'TFLOP/s':>10}{'x plain':>9}"
          + (f"{'% peak':>8}" if peak else ""))  # fmt: skip
    for name, seconds in results:
        rate = batch / seconds
        tflops = rate * flops / 1e12
        line = f"{name:<22}{seconds:>9.3f}{rate:>9.1f}{tflops:>10.3f}{base / seconds:>9.2f}"
        print(line + (f"{100 * tflops / peak:>8.1f}" if peak else ""))


@one_line_errors(*ERRORS)
def main(argv: list[str] | None = None) -> None:
    parser = Parser(prog="python -m bench.train_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--batch", type=int, help="sequences per step (default 16 cpu, 256 cuda)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args(argv)
    for flag, value in (
        ("--batch", args.batch),
        ("--steps", args.steps),
        ("--rounds", args.rounds),
    ):
        if value is not None and value < 1:
            fail(f"{flag} {value}: give at least 1")
    if args.device not in ("cpu", "cuda"):
        fail(f"--device {args.device!r}: use cpu or cuda")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is visible here; use --device cpu")
    tune_cpu_allocator()
    batch = args.batch or (256 if device.type == "cuda" else 16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision of the fast "
          f"path: {resolve_precision('auto', device)}", flush=True)  # fmt: skip
    for name in args.archs:
        arch = ARCHS[name]
        results = measure(arch, device, batch=batch, steps=args.steps, rounds=args.rounds,
                          compiled=args.compile)  # fmt: skip
        report(arch, device, results, batch)


if __name__ == "__main__":
    main()

"""The engine benchmark's premise: the reference computes our forecast, and the FLOP count."""

from __future__ import annotations

import torch

from bench.rollout import CONFIGS, BenchConfig, build, gflop, runners


def test_reference_computes_the_same_forecast_as_ours():
    cfg = BenchConfig("tiny", (16, 16), 2, 2, (6, 4), 3, 3, 3, 2)
    ours, ref, frames = build(cfg, torch.device("cpu"))
    variants = runners(cfg, ours, ref, frames, torch.device("cpu"))
    expected = variants["fp32"]()
    torch.testing.assert_close(variants["reference"](), expected, rtol=0, atol=1e-5)
    assert expected.shape == (2, 3, 2, 16, 16)
    with torch.no_grad():
        ours.cells[0].peephole_weight.fill_(0.5)  # with peepholes on, ours must differ
    assert (variants["fp32"]() - expected).abs().max() > 1e-3


def test_flop_count_of_the_radar_configuration():
    cfg = CONFIGS["radar"]
    # per step: layer 0 (4 + 64) -> 256 and layer 1 (64 + 64) -> 256 channels, 3x3, 64x64 grid
    per_step = 2 * 9 * 64 * 64 * 256 * ((4 + 64) + (64 + 64))
    head = 2 * 128 * 4 * 64 * 64
    assert abs(gflop(cfg) - (23 * per_step + 12 * head) / 1e9) < 1e-9

"""Fine-tuning across grids: per-pixel weights resized, kernels copied, the lineage says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from model.checkpoint import load_checkpoint
from model.convlstm import ConvLSTM
from model.finetune import TransferError, resize_per_pixel, transfer_weights
from model.train import train
from model.train_config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_helpers import tiny_config, tiny_loader


def _source(frame_size=(12, 12), **fields) -> ConvLSTM:
    """A network with random kernels and peephole weights constant over the grid per channel."""
    torch.manual_seed(0)
    net = ConvLSTM(in_channels=1, hidden_channels=(4,), kernel_size=3, frame_size=frame_size,
                   **fields)  # fmt: skip
    with torch.no_grad():
        per_channel = 2.0 * torch.randn(3, 4, 1, 1)  # [gate, hidden, 1, 1]
        net.cells[0].peephole_weight.copy_(per_channel.expand_as(net.cells[0].peephole_weight))
        net.cells[0].input_conv.bias.normal_()
    return net.eval()


def test_resized_model_equals_the_source_far_from_the_edges():
    source = _source()  # 12 x 12
    target = ConvLSTM(config=source.config.__class__(**{**source.config.to_dict(),
                                                        "frame_size": (20, 20)})).eval()  # fmt: skip
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    resized = transfer_weights(source, target)
    assert resized["frame_size"] == [[12, 12], [20, 20]]
    assert resized["parameters"] == ["cells.0.peephole_weight"]
    torch.manual_seed(1)
    big = torch.randn(2, 2, 1, 20, 20)  # [B, T, C, H, W]: two frames in, step 1 forecast
    small = big[..., 4:16, 4:16]  # the source sees the middle 12 x 12
    with torch.no_grad():
        want, _ = source(small, horizon=1)
        got, _ = target(big, horizon=1)
        # Two steps of a 3x3 kernel reach 2 pixels: from 3 pixels in, zero padding is out of sight.
        inner_want, inner_got = want[..., 3:9, 3:9], got[..., 7:13, 7:13]
        torch.testing.assert_close(inner_got, inner_want, rtol=1e-5, atol=1e-6)
        # The comparison can fail: the same kernels without the source's peepholes differ.
        target.load_state_dict({**target.state_dict(),
                                "cells.0.peephole_weight": fresh["cells.0.peephole_weight"]})  # fmt: skip
        control, _ = target(big, horizon=1)
    assert (control[..., 7:13, 7:13] - inner_want).abs().max() > 1e-3


def test_bilinear_resize_keeps_pixel_centres():
    field = torch.randn(3, 2, 4, 5)
    up = resize_per_pixel(field, (12, 15))  # 3x: target pixel 3i + 1 sits on source pixel i
    torch.testing.assert_close(up[..., 1::3, 1::3], field)
    constant = torch.full((3, 2, 4, 4), 0.7)
    torch.testing.assert_close(resize_per_pixel(constant, (9, 7)), torch.full((3, 2, 9, 7), 0.7))
    down = resize_per_pixel(up, (4, 5))  # and back: the same grid again
    torch.testing.assert_close(down, field, rtol=0.3, atol=0.3)  # smoothed, not scrambled


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"in_channels": 2}, r"it reads 1 channel\(s\), this data has 2"),
        ({"patch_size": 2}, "its patch_size is 1"),
        ({"hidden_channels": (5,)}, "its hidden_channels is"),
    ],
)
def test_other_architectures_are_refused_clearly(fields, message):
    source = _source()
    config = {**source.config.to_dict(), "frame_size": (16, 16), **fields}
    with pytest.raises(TransferError, match=message):
        transfer_weights(source, ConvLSTM(**config))


def test_fine_tuning_on_another_grid_records_the_resize(tmp_path):
    from model.evaluate import model_card

    common = {"loader": tiny_loader, "device": "cpu", "progress": False}
    train(tiny_config(steps=2), out_dir=tmp_path / "src", run_dir=tmp_path / "r1", **common)
    source, _ = load_checkpoint(tmp_path / "src", device="cpu")
    cfg = tiny_config(steps=2, init_from=str(tmp_path / "src"))
    cfg["data"]["options"] = {"size": 16}  # 16 x 16 frames: latent grid 8 x 8 (patch 2)
    result = train(cfg, out_dir=tmp_path / "ft", run_dir=tmp_path / "r2", keep_initial=True,
                   **common)  # fmt: skip
    start = result.initial_state
    for key, value in source.state_dict().items():
        if key.endswith("peephole_weight"):
            assert start[key].shape == (3, 4, 8, 8)
            torch.testing.assert_close(start[key], resize_per_pixel(value, (8, 8)))
        else:
            assert torch.equal(start[key], value)  # kernels copied as they are
    _, meta = load_checkpoint(tmp_path / "ft", device="cpu")
    resized = meta["training"]["init_from"]["resized"]
    assert resized["frame_size"] == [[8, 8], [16, 16]] and resized["grid"] == [[4, 4], [8, 8]]
    table = pd.DataFrame({"method": ["convlstm", "persistence"], "lead_step": [1, 1],
                          "lead_time": ["1", "1"], "MSE": [1.0, 2.0]})  # fmt: skip
    card = model_card(meta, table, {"domain": "video", "split": "test", "samples": 1})
    assert "grid changed from 8x8 to 16x16 pixels" in card
    assert "from the 4x4 to the 8x8 latent grid by bilinear interpolation" in card

    other = tiny_config("tiny_traffic", steps=2, init_from=str(tmp_path / "src"))
    with pytest.raises(ConfigError, match=r"cannot start from this checkpoint: it reads 1 channel"):
        train(other, out_dir=tmp_path / "x", run_dir=tmp_path / "r3", **common)

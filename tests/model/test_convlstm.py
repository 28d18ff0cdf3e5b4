"""ConvLSTM cell and network: equations against numpy, statefulness, shapes and errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from model.convlstm import (
    CONV_GATES,
    GATES,
    ConvLSTM,
    ConvLSTMConfig,
    reorder_gates,
)
from model.kernels import memory_format_for
from model.rollout import compile_network, rollout


def _conv_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cross-correlation with zero 'same' padding. x [Cin, H, W], w [Cout, Cin, k, k] -> [Cout, H, W]."""
    k = w.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    h, wd = x.shape[1:]
    out = np.zeros((w.shape[0], h, wd))
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, dy : dy + h, dx : dx + wd]  # [Cin, H, W]
            out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], patch)
    return out


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _hand_gates(model: ConvLSTM, inputs: np.ndarray) -> np.ndarray:
    """The cell equations of Shi et al. in numpy for a 1-layer, patch-1 model.

    inputs [T, C, H, W] (what the cell reads at each step) -> [6, T, hid, H, W] in GATES order.
    """
    cell = model.cells[0]
    wx = cell.input_conv.weight.detach().double().numpy()
    b = cell.input_conv.bias.detach().double().numpy()
    wh = cell.hidden_conv.weight.detach().double().numpy()
    peep = cell.peephole_weight
    hid = cell.hidden_channels
    h = np.zeros((hid, *inputs.shape[2:]))
    c = np.zeros_like(h)
    out = []
    for x in inputs.astype(np.float64):
        z = _conv_same(x, wx) + b[:, None, None] + _conv_same(h, wh)
        zi, zf, zo, zg = np.split(z, 4)  # order i, f, o, g (CONV_GATES)
        if peep is not None:
            w_ci, w_cf, w_co = peep.detach().double().numpy()
            zi, zf = zi + w_ci * c, zf + w_cf * c
        i, f, g = _sigmoid(zi), _sigmoid(zf), np.tanh(zg)
        c = f * c + i * g
        if peep is not None:
            zo = zo + w_co * c
        o = _sigmoid(zo)
        h = o * np.tanh(c)
        out.append(np.stack([i, f, o, g, c, h]))
    return np.stack(out, axis=1)


@pytest.mark.parametrize("peephole", [True, False])
@pytest.mark.parametrize("frame_size", [(5, 6), (32, 32)], ids=["nchw-grid", "channels-last-grid"])
def test_captured_gates_equal_hand_computation(peephole, frame_size):
    torch.manual_seed(0)
    model = ConvLSTM(
        in_channels=2, hidden_channels=(3,), kernel_size=3, frame_size=frame_size, peephole=peephole
    ).eval()
    if peephole:
        with torch.no_grad():
            model.cells[0].peephole_weight.normal_(0.0, 0.5)  # non-zero so the terms matter
    context = np.random.default_rng(1).normal(size=(4, 2, *frame_size)).astype(np.float32)
    ds = rollout(model, context, 3, capture=True, precision="fp32")
    assert tuple(ds.gate.values) == GATES
    # The cell read the 4 context frames, then the first 2 predictions fed back.
    fed = np.concatenate([context, ds.prediction.values[:2]])
    expected = _hand_gates(model, fed)  # [6, T, hid, H, W]
    captured = ds.gates.sel(layer=0).values.astype(np.float64)  # [gate, step, hid, gy, gx]
    assert captured.shape == expected.shape
    np.testing.assert_allclose(captured, expected, atol=2e-3)  # float16 storage
    # the network's head reads the hidden state: predictions must follow from the gates too
    head_w = model.head.weight.detach().double().numpy()[:, :, 0, 0]
    head_b = model.head.bias.detach().double().numpy()
    first_pred = np.einsum("oc,chw->ohw", head_w, expected[5, 3]) + head_b[:, None, None]
    np.testing.assert_allclose(ds.prediction.values[0], first_pred, atol=1e-4)


def test_peephole_switch_changes_parameters_and_output():
    torch.manual_seed(0)
    with_p = ConvLSTM(in_channels=1, hidden_channels=(4,), frame_size=(8, 8), peephole=True)
    without = ConvLSTM(in_channels=1, hidden_channels=(4,), frame_size=(8, 8), peephole=False)
    assert with_p.cells[0].peephole_weight.shape == (3, 4, 8, 8)
    assert without.cells[0].peephole_weight is None
    n_with = sum(p.numel() for p in with_p.parameters())
    n_without = sum(p.numel() for p in without.parameters())
    assert n_with - n_without == 3 * 4 * 8 * 8


def test_forget_bias_initialised():
    model = ConvLSTM(in_channels=1, hidden_channels=(5, 3), frame_size=(8, 8), forget_bias=1.5)
    for cell in model.cells:
        hid = cell.hidden_channels
        bias = cell.input_conv.bias.detach()
        assert torch.all(bias[hid : 2 * hid] == 1.5)
        assert torch.all(bias[:hid] == 0) and torch.all(bias[2 * hid :] == 0)


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_same_padding_for_odd_kernels(kernel_size):
    model = ConvLSTM(
        in_channels=1, hidden_channels=(4,), kernel_size=kernel_size, frame_size=(9, 7)
    )
    forecast, state = model(torch.rand(2, 3, 1, 9, 7), horizon=2)
    assert forecast.shape == (2, 2, 1, 9, 7)
    assert state.hidden[0].shape == (2, 4, 9, 7)


@pytest.mark.parametrize("kernel_size", [2, 4, 0])
def test_even_kernel_gives_clear_error(kernel_size):
    with pytest.raises(ValueError, match=f"kernel_size={kernel_size}.*odd"):
        ConvLSTM(in_channels=1, hidden_channels=(4,), kernel_size=kernel_size)


def test_wrong_rank_gives_clear_error():
    model = ConvLSTM(in_channels=1, hidden_channels=(4,), frame_size=(8, 8))
    with pytest.raises(ValueError, match=r"rank 4.*\[B, T, C, H, W\]"):
        model(torch.rand(3, 1, 8, 8), horizon=1)
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(np.zeros((1, 3, 1, 8, 8)), horizon=1)


def test_mismatched_channels_and_grid_give_clear_errors():
    model = ConvLSTM(in_channels=2, hidden_channels=(4,), frame_size=(8, 8))
    with pytest.raises(ValueError, match="3 channels but the model expects 2"):
        model(torch.rand(1, 3, 3, 8, 8), horizon=1)
    with pytest.raises(ValueError, match=r"\(8, 9\) pixels.*\(8, 8\)"):
        model(torch.rand(1, 3, 2, 8, 9), horizon=1)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ConvLSTM(in_channels=1, hidden_channels=(4,), frame_size=(10, 10), patch_size=4)


def test_continuing_from_returned_state_equals_one_long_rollout():
    torch.manual_seed(0)
    model = ConvLSTM(
        in_channels=1, hidden_channels=(6, 4), kernel_size=3, patch_size=2, frame_size=(8, 8)
    ).eval()
    frames = torch.rand(2, 5, 1, 8, 8)
    with torch.no_grad():
        long, _ = model(frames, horizon=7)
        first, state = model(frames, horizon=3)
        rest, _ = model(first[:, -1:], horizon=4, state=state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), long, rtol=0, atol=1e-6)
    # an explicit zero state equals the default start (which skips W_h * 0 on the first step)
    with torch.no_grad():
        explicit, _ = model(frames, horizon=7, state=model.initial_state(2, like=frames))
    torch.testing.assert_close(explicit, long, rtol=0, atol=1e-6)
    # and a different state really changes the continuation
    with torch.no_grad():
        fresh, _ = model(first[:, -1:], horizon=4)
    assert (fresh - rest).abs().max() > 1e-4


def test_encoding_in_pieces_equals_encoding_at_once():
    torch.manual_seed(0)
    model = ConvLSTM(in_channels=1, hidden_channels=(4, 4), frame_size=(8, 8)).eval()
    frames = torch.rand(1, 6, 1, 8, 8)
    with torch.no_grad():
        whole, _ = model.one_step(frames)
        a, state = model.one_step(frames[:, :4])
        b, _ = model.one_step(frames[:, 4:], state=state)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=0, atol=1e-6)


def test_patching_is_space_to_depth():
    model = ConvLSTM(in_channels=1, hidden_channels=(4,), patch_size=4, frame_size=(64, 64))
    frames = torch.arange(64 * 64, dtype=torch.float32).reshape(1, 1, 1, 64, 64)
    patched = model.patch(frames)
    assert patched.shape == (1, 1, 16, 16, 16)  # Shi et al.: 64x64x1 -> 16x16x16
    assert patched[0, 0, :, 0, 0].tolist() == [r * 64 + c for r in range(4) for c in range(4)]
    torch.testing.assert_close(model.unpatch(patched), frames)


def test_sigmoid_output_in_unit_range_and_gradients_flow():
    torch.manual_seed(0)
    model = ConvLSTM(
        in_channels=1, hidden_channels=(4,), frame_size=(8, 8), output_activation="sigmoid"
    )
    forecast, _ = model(torch.rand(2, 3, 1, 8, 8), horizon=3)
    assert forecast.min() >= 0 and forecast.max() <= 1
    forecast.mean().backward()
    assert model.cells[0].hidden_conv.weight.grad.abs().sum() > 0
    assert model.cells[0].peephole_weight.grad.abs().sum() > 0


def test_reorder_gates_maps_other_layouts():
    blocks = {g: torch.full((2, 1), float(k)) for k, g in enumerate(CONV_GATES)}
    openstl = torch.cat([blocks[g] for g in ("input", "forget", "candidate", "output")])
    ours = reorder_gates(openstl, ("input", "forget", "candidate", "output"))
    torch.testing.assert_close(ours, torch.cat([blocks[g] for g in CONV_GATES]))
    keras = torch.cat([blocks[g] for g in ("input", "forget", "candidate", "output")])
    torch.testing.assert_close(reorder_gates(keras, "ifco"), ours)
    with pytest.raises(ValueError, match="must name each"):
        reorder_gates(ours, ("input", "input", "output", "candidate"))


def test_config_round_trip_and_unknown_fields():
    cfg = ConvLSTMConfig(in_channels=2, hidden_channels=[8, 4], frame_size=[16, 8], patch_size=2)
    assert ConvLSTMConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.grid_size == (8, 4)
    with pytest.raises(ValueError, match="unknown ConvLSTMConfig fields.*'layers'"):
        ConvLSTMConfig.from_dict({**cfg.to_dict(), "layers": 3})


@pytest.mark.parametrize("frame_size", [(8, 8), (64, 64)], ids=["nchw-grid", "channels-last-grid"])
def test_in_place_inference_equals_autograd_path(frame_size):
    """Inference updates the gates in place; training runs out of place: same numbers."""
    torch.manual_seed(0)
    model = ConvLSTM(
        in_channels=1, hidden_channels=(5, 4), patch_size=2, frame_size=frame_size
    ).eval()
    with torch.no_grad():
        for cell in model.cells:
            cell.peephole_weight.normal_(0.0, 0.3)
    frames = torch.rand(2, 3, 1, *frame_size)
    trained, state_grad = model(frames, horizon=3)  # autograd on: out-of-place equations
    with torch.no_grad():
        inferred, state = model(frames, horizon=3)
    torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(state.cell[1], state_grad.cell[1].detach(), rtol=0, atol=1e-6)
    expected = memory_format_for(model.config.grid_size)
    assert state.hidden[0].is_contiguous(memory_format=expected)
    assert (expected == torch.channels_last) == (frame_size == (64, 64))


@pytest.mark.skipif(
    not (shutil.which("c++") or shutil.which("g++")),
    reason="torch.compile on the CPU needs a C++ compiler (c++/g++), not found",
)
def test_compiled_network_matches_eager():
    torch.manual_seed(0)
    model = ConvLSTM(in_channels=1, hidden_channels=(6, 4), frame_size=(32, 32)).eval()
    with torch.no_grad():
        for cell in model.cells:
            cell.peephole_weight.normal_(0.0, 0.3)
    limit = torch._dynamo.config.recompile_limit
    compiled = compile_network(model)
    assert all(cell.compiled_step is None for cell in model.cells)  # the original is untouched
    context = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    eager = rollout(model, context, 3, capture=True, precision="fp32")
    fast = rollout(compiled, context, 3, capture=True, precision="fp32")
    assert torch._dynamo.config.recompile_limit == limit  # raised only inside compiled calls
    np.testing.assert_allclose(fast.prediction, eager.prediction, atol=1e-5)
    np.testing.assert_allclose(
        fast.gates.values.astype(np.float32), eager.gates.values.astype(np.float32), atol=2e-3
    )


# -- options for imported networks (model.import_weights) -----------------------------------------
def test_default_network_keeps_its_config_and_tensors():
    """Checkpoints saved before the import options read, build and save exactly as before."""
    cfg = ConvLSTMConfig(in_channels=2, hidden_channels=(3, 4), frame_size=(8, 8), patch_size=2)
    assert set(cfg.to_dict()) == {
        "in_channels", "out_channels", "hidden_channels", "kernel_size", "patch_size",
        "frame_size", "peephole", "forget_bias", "output_activation",
    }  # fmt: skip
    names = set(ConvLSTM(config=cfg).state_dict())
    assert names == {f"cells.{n}.{t}" for n in (0, 1) for t in (
        "input_conv.weight", "input_conv.bias", "hidden_conv.weight", "peephole_weight")} | {
        "head.weight", "head.bias"}  # fmt: skip
    imported = ConvLSTMConfig(hidden_channels=(3,), layer_norm=True, readout="top_layer")
    assert ConvLSTMConfig.from_dict(imported.to_dict()) == imported
    assert imported.to_dict()["layer_norm"] is True and "readout_bias" not in imported.to_dict()


def test_readout_options_choose_what_the_head_reads():
    top = ConvLSTM(hidden_channels=(5, 3), frame_size=(8, 8), readout="top_layer",
                   readout_bias=False)  # fmt: skip
    assert top.head.in_channels == 3 and top.head.bias is None
    frames = torch.rand(1, 2, 1, 8, 8)
    with torch.no_grad():
        state = top.encode(frames)
        forecast, _ = top(frames, horizon=1)
    expected = top.head(state.hidden[1])  # the top layer's H_t alone, no bias
    torch.testing.assert_close(forecast[:, 0], expected, rtol=0, atol=1e-6)
    headless = ConvLSTM(hidden_channels=(5,), frame_size=(8, 8), readout="none")
    assert headless.head is None and not headless.config.has_head
    for run in (lambda: headless(frames, horizon=1), lambda: headless.one_step(frames)):
        with pytest.raises(ValueError, match="no forecasting head.*encode"):
            run()
    for bad, match in (({"readout": "every"}, "readout='every'"),
                       ({"layer_norm": "yes"}, "layer_norm='yes' must be True or False")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            ConvLSTMConfig(**bad)


@pytest.mark.parametrize("frame_size", [(8, 8), (32, 32)], ids=["nchw-grid", "channels-last-grid"])
def test_layer_norm_cell_paths_agree(frame_size):
    """The zero-state first step (LN_h(0) = its bias), in-place inference and autograd agree
    with one another; the numbers themselves are checked against OpenSTL's cell in
    test_import_weights.py."""
    torch.manual_seed(0)
    model = ConvLSTM(hidden_channels=(4, 3), frame_size=frame_size, layer_norm=True,
                     peephole=True).eval()  # fmt: skip
    with torch.no_grad():
        for cell in model.cells:
            cell.peephole_weight.normal_(0.0, 0.3)
            for norm in (cell.input_norm, cell.hidden_norm):
                norm.weight.normal_(1.0, 0.3)
                norm.bias.normal_(0.0, 0.5)
    assert "cells.0.input_conv.bias" not in model.state_dict()  # the LayerNorms' biases serve
    frames = torch.rand(2, 3, 1, *frame_size)
    trained, _ = model(frames, horizon=2)  # autograd: out of place
    with torch.no_grad():
        inferred, _ = model(frames, horizon=2)  # in place, zero-state shortcut at step 0
        explicit, _ = model(frames, horizon=2, state=model.initial_state(2, like=frames))
    torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(inferred, explicit, rtol=0, atol=1e-6)

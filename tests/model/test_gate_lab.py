"""Gate lab: unit statistics and payload, saturation, memory map, attribution, side by side,
equations; each checked against numpy or an independent run of the network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dashboard.scales import DIVERGING_COLOURS, Scale, gate_scale
from model import gate_lab
from model.convlstm import ConvLSTM
from model.interventions import GateEdit
from model.rollout import rollout

N_CTX, HORIZON = 4, 3


def _model(*, hidden=(6, 4), frame=(16, 16), patch=2, gain=1.0, seed=0, peephole=True):
    """A small untrained network; ``gain`` scales its weights (large: saturated gates)."""
    torch.manual_seed(seed)
    model = ConvLSTM(
        in_channels=1, hidden_channels=hidden, kernel_size=3, patch_size=patch,
        frame_size=frame, peephole=peephole,
    ).eval()  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(gain)
    return model


def _context(frame=(16, 16), n=N_CTX) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, *frame)).astype(np.float32)


@pytest.fixture(scope="module")
def saturated():
    """A rollout of a network with large weights (many saturated gates), everything captured."""
    return rollout(_model(gain=6.0), _context(), HORIZON, capture=True, precision="fp32")


def test_unit_statistics_match_numpy_and_sort(saturated):
    table = gate_lab.unit_statistics(saturated, layer=1, step=5, sort_by="variance")
    g = saturated.gates.sel(layer=1).isel(step=5).values.astype(np.float64)  # [gate, hid, y, x]
    h = g[5, :4]  # layer 1 is 4 wide (the rest is NaN padding)
    assert sorted(table.index) == [0, 1, 2, 3]
    np.testing.assert_allclose(table.loc[2, "activity"], np.abs(h[2]).mean())
    np.testing.assert_allclose(table.loc[2, "variance"], h[2].var())
    sig = g[:3, 2].astype(np.float32)  # i, f, o of channel 2
    expected = ((sig < 0.1).sum() + (sig > 0.9).sum()) / sig.size
    np.testing.assert_allclose(table.loc[2, "saturation"], expected)
    assert list(table["variance"]) == sorted(table["variance"], reverse=True)
    assert list(table["rank"]) == [1, 2, 3, 4]
    by_channel = gate_lab.unit_statistics(saturated, layer=0, step=0, sort_by="channel",
                                          ascending=True)  # fmt: skip
    assert list(by_channel.index) == list(range(6))


def test_saturation_fractions_equal_a_numpy_count(saturated):
    sat = gate_lab.saturation(saturated)
    assert sat.left.dims == ("layer", "gate", "hidden")
    values = saturated.gates.values.astype(np.float32)  # [layer, gate, step, hid, y, x]
    gates = list(saturated.gate.values)
    fractions = []
    for layer, width in ((0, 6), (1, 4)):
        for gate in ("input", "forget", "output"):
            v = values[layer, gates.index(gate)]  # [step, hid, y, x]
            n = v.shape[0] * v.shape[2] * v.shape[3]
            for unit in range(width):
                left = np.count_nonzero(v[:, unit] < 0.1) / n
                right = np.count_nonzero(v[:, unit] > 0.9) / n
                assert sat.left.sel(layer=layer, gate=gate, hidden=unit) == left
                assert sat.right.sel(layer=layer, gate=gate, hidden=unit) == right
                fractions += [left, right]
    assert 0 < np.mean(fractions) < 1 and any(0 < f < 1 for f in fractions)  # a real test
    assert np.isnan(sat.left.sel(layer=1, hidden=[4, 5])).all()  # padding of the 4-wide layer
    table = gate_lab.saturation_table(sat)
    assert len(table) == 6 + 4 and "forget_right" in table.columns
    forecast = gate_lab.saturation(saturated, phase="forecast")
    v = values[0, gates.index("forget"), N_CTX:, 1]
    assert forecast.left.sel(layer=0, gate="forget", hidden=1) == np.mean(v < 0.1)


def test_unit_maps_payload_of_a_64_channel_layer_on_a_64x64_grid_fits_3_mb():
    model = _model(hidden=(64,), frame=(64, 64), patch=1)
    ds = rollout(model, _context(frame=(64, 64), n=2), 1, capture={"gates": ["cell", "forget"]})
    maps = gate_lab.encode_unit_maps(ds, layer=0, step=1, gate="cell")
    assert maps.codes.shape == (64, 64, 64) and maps.codes.dtype == np.uint8
    payload = json.dumps(maps.to_payload())
    assert maps.nbytes < 3 * 2**20 and len(payload) < 3 * 2**20
    values = ds.gates.sel(layer=0, gate="cell").values[1].astype(np.float32)
    half_step = (maps.vmax - maps.vmin)[:, None, None] / 254 / 2
    assert (np.abs(maps.decode() - values) <= half_step * 1.001 + 1e-7).all()


def test_unit_map_codes_are_the_dashboard_scale_codes(saturated):
    values = saturated.gates.sel(layer=0).isel(step=4).values.astype(np.float32)  # [gate, ...]
    per_channel = gate_lab.encode_unit_maps(saturated, layer=0, step=4, gate="cell")
    for c in range(6):
        scale = Scale(float(per_channel.vmin[c]), float(per_channel.vmax[c]), "", DIVERGING_COLOURS)
        np.testing.assert_array_equal(per_channel.codes[c], scale.encode(values[4, c]))
    for k, gate in enumerate(("input", "forget", "output", "candidate", "hidden")):
        k = [0, 1, 2, 3, 5][k]
        global_ = gate_lab.encode_unit_maps(saturated, layer=0, step=4, gate=gate, scale="global")
        np.testing.assert_array_equal(global_.codes, gate_scale(gate).encode(values[k, :6]))


def test_memory_map_is_the_cumulative_product_of_forecast_forget_gates(saturated):
    memory = gate_lab.memory_map(saturated, reduce=None)
    assert memory.dims == ("layer", "lead", "hidden", "gy", "gx")
    assert list(memory.lead.values) == [1, 2, 3]
    f = saturated.gates.sel(gate="forget").values.astype(np.float64)  # [layer, step, hid, y, x]
    layer0 = memory.sel(layer=0).values  # [lead, hid, y, x]
    np.testing.assert_array_equal(layer0[0], 1.0)
    np.testing.assert_allclose(layer0[1], f[0, N_CTX, :6], rtol=1e-6)
    np.testing.assert_allclose(layer0[2], f[0, N_CTX, :6] * f[0, N_CTX + 1, :6], rtol=1e-6)
    assert np.isnan(memory.sel(layer=1, hidden=[4, 5])).all()
    mean = gate_lab.memory_map(saturated)
    assert mean.dims == ("layer", "lead", "gy", "gx") and mean.attrs["units"] == "fraction"
    expected = (f[1, N_CTX, :4] * f[1, N_CTX + 1, :4]).mean(axis=0)
    np.testing.assert_allclose(mean.sel(layer=1, lead=3).values, expected, rtol=1e-6)


def test_memory_map_shows_a_frozen_forget_gate():
    model = _model()
    edit = GateEdit(layer=0, target="f", value=1.0, start=N_CTX)
    ds = rollout(model, _context(), HORIZON, capture={"gates": ["forget"]}, intervene=edit)
    memory = gate_lab.memory_map(ds)
    np.testing.assert_array_equal(memory.sel(layer=0).values, 1.0)  # nothing forgotten
    assert (memory.sel(layer=1, lead=3).values < 1).all()


def test_integrated_gradients_are_complete_within_one_percent():
    model = _model(gain=2.5, seed=3)
    ctx = _context()
    region = (4, 10, 2, 12)
    ig = gate_lab.integrated_gradients(model, ctx, lead=2, region=region, n_steps=48)
    assert ig.attribution.dims == ("context_time", "y", "x")
    assert ig.attribution.shape == (N_CTX, 16, 16)
    with torch.no_grad():  # f(x) - f(0) from the network itself
        x = torch.as_tensor(ctx)[None]
        f = [float(model(v, horizon=2)[0][0, 1, :, 4:10, 2:12].mean()) for v in (x, 0 * x)]
    total = float(ig.attribution.sum())
    assert abs(f[0] - f[1]) > 1e-3  # something to attribute
    assert abs(total - (f[0] - f[1])) <= 0.01 * abs(f[0] - f[1])
    assert ig.attrs["completeness_relative"] < 0.01
    np.testing.assert_allclose(ig.attrs["f_input"] - ig.attrs["f_baseline"], f[0] - f[1], rtol=1e-5)
    np.testing.assert_allclose(float(ig.share.sum()), 1.0)
    np.testing.assert_allclose(ig.contribution, ig.attribution.sum(("y", "x")), rtol=1e-6)
    assert all(p.requires_grad for p in model.parameters()) and not model.training  # restored
    coarse = gate_lab.integrated_gradients(model, ctx, lead=2, region=region, n_steps=2,
                                           method="riemann_left")  # fmt: skip
    assert coarse.attrs["completeness_relative"] > 0.01  # the network is far from linear


def test_integrated_gradients_errors():
    model = _model()
    with pytest.raises(ValueError, match="outside the 16x16 frame"):
        gate_lab.integrated_gradients(model, _context(), lead=1, region=(0, 20, 0, 4))
    with pytest.raises(ValueError, match="lead=0 must be a positive integer"):
        gate_lab.integrated_gradients(model, _context(), lead=0, region=(0, 4, 0, 4))


def test_side_by_side_of_one_network_is_exactly_zero_and_of_two_is_their_difference():
    first, second = _model(seed=0), _model(seed=1)
    ctx = _context()
    same = gate_lab.side_by_side(first, first, ctx, HORIZON, layer=1)
    assert same.prediction.dims == ("checkpoint", "time", "channel", "y", "x")
    assert same.gate_difference.dims == ("gate", "step", "hidden", "gy", "gx")
    assert float(np.abs(same.prediction_difference).max()) == 0.0
    assert np.nanmax(np.abs(same.gate_difference.values)) == 0.0
    pair = gate_lab.side_by_side(first, second, ctx, HORIZON, layer=0, names=("a", "b"))
    b = rollout(second, ctx, HORIZON, capture={"layers": [0]})
    a = rollout(first, ctx, HORIZON, capture={"layers": [0]})
    np.testing.assert_array_equal(pair.prediction_difference, b.prediction - a.prediction)
    np.testing.assert_array_equal(
        pair.gate_difference.values,
        b.gates.values[0].astype(np.float32) - a.gates.values[0].astype(np.float32),
    )
    assert list(pair.checkpoint.values) == ["a", "b"]
    assert "gates" not in gate_lab.side_by_side(first, second, ctx, HORIZON)


def test_side_by_side_refuses_layers_of_different_shapes():
    narrow, wide = _model(hidden=(6, 4)), _model(hidden=(6, 8))
    with pytest.raises(
        ValueError, match=r"layer 1 is 4 hidden channels on a 8x8 grid in 'first' but 8"
    ):
        gate_lab.side_by_side(narrow, wide, _context(), HORIZON, layer=1)
    with pytest.raises(ValueError, match="layer 2 does not exist in 'first'"):
        gate_lab.side_by_side(narrow, wide, _context(), HORIZON, layer=2)
    other_grid = _model(frame=(32, 32))
    with pytest.raises(ValueError, match="compare checkpoints of one dataset"):
        gate_lab.side_by_side(narrow, other_grid, _context(), HORIZON)
    same = gate_lab.side_by_side(narrow, wide, _context(), HORIZON, layer=0)  # layer 0 matches
    assert same.gates.sizes["hidden"] == 6


@pytest.mark.parametrize("peephole", [True, False])
def test_cell_equations_follow_the_config(peephole):
    cfg = _model(peephole=peephole).config
    latex = gate_lab.cell_equations(cfg)
    assert list(latex) == ["i_t", "f_t", "g_t", "C_t", "o_t", "H_t"]
    assert latex["C_t"] == r"C_t = f_t \circ C_{t-1} + i_t \circ g_t"
    assert latex["H_t"] == r"H_t = o_t \circ \tanh(C_t)"
    assert (r"W_{ci} \circ C_{t-1}" in latex["i_t"]) is peephole
    assert (r"W_{co} \circ C_t" in latex["o_t"]) is peephole
    assert "W_{c" not in latex["g_t"]
    text = gate_lab.cell_equations({"config": cfg.to_dict()}, fmt="text")
    expected_f = "f_t = σ(W_xf * X_t + W_hf * H_{t-1} + " + (
        "W_cf ∘ C_{t-1} + " if peephole else ""
    )
    assert text["f_t"] == expected_f + "b_f)"
    with pytest.raises(ValueError, match="fmt='html'"):
        gate_lab.cell_equations(cfg, fmt="html")


def test_clear_errors_for_missing_captures(saturated):
    plain = rollout(_model(), _context(), HORIZON)
    with pytest.raises(ValueError, match="no gates; run rollout"):
        gate_lab.saturation(plain)
    only_cell = rollout(_model(), _context(), HORIZON, capture={"layers": [1], "gates": ["cell"]})
    with pytest.raises(ValueError, match=r"gates \['hidden', 'input'"):
        gate_lab.unit_statistics(only_cell, layer=1, step=0)
    with pytest.raises(ValueError, match=r"layer 0 was not captured \(captured: \[1\]\)"):
        gate_lab.encode_unit_maps(only_cell, layer=0, step=0, gate="cell")
    with pytest.raises(
        ValueError, match="step 9 is out of range: this rollout captured steps 0..5"
    ):
        gate_lab.unit_statistics(saturated, layer=0, step=9)


def test_compare_rollouts_of_two_finished_runs_equals_side_by_side():
    first, second = _model(seed=0), _model(seed=1)
    ctx = _context()
    runs = [rollout(net, ctx, HORIZON, capture=True) for net in (first, second)]
    got = gate_lab.compare_rollouts(*runs, layer=1, names=("a", "b"))
    want = gate_lab.side_by_side(first, second, ctx, HORIZON, layer=1, names=("a", "b"))
    np.testing.assert_array_equal(got.prediction_difference, want.prediction_difference)
    np.testing.assert_array_equal(got.gate_difference.values, want.gate_difference.values)
    assert got.gates.sizes["hidden"] == 4  # the 4-wide layer, its NaN padding dropped
    same = gate_lab.compare_rollouts(runs[0], runs[0], layer=0)
    assert float(np.abs(same.prediction_difference).max()) == 0.0
    assert np.nanmax(np.abs(same.gate_difference.values)) == 0.0
    wide = rollout(_model(hidden=(6, 8)), ctx, HORIZON, capture=True)
    with pytest.raises(ValueError, match="layer 1 is 4 hidden channels on a 8x8 grid in 'first'"):
        gate_lab.compare_rollouts(runs[0], wide, layer=1)
    short = rollout(first, ctx, HORIZON - 1)
    with pytest.raises(ValueError, match="compare rollouts of one window"):
        gate_lab.compare_rollouts(runs[0], short)

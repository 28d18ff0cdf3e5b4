"""Interventions: edits inside the cell update, checked in numpy, their reach, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.checkpoint import DEFAULT_ROOT, load_checkpoint, scan_checkpoints
from model.convlstm import GATES, ConvLSTM
from model.interventions import GateEdit, Intervention, latent_region
from model.normalize import Normalizer
from model.rollout import rollout

N_CTX, HORIZON = 4, 3
IN, FORGET, OUT, CAND, CELL = 0, 1, 2, 3, 4  # positions in GATES and in a gate hook's tuple


def _model(*, frame=(16, 16), hidden=(6, 4), patch=2, kernel=3, seed=0) -> ConvLSTM:
    torch.manual_seed(seed)
    model = ConvLSTM(
        in_channels=1, hidden_channels=hidden, kernel_size=kernel, patch_size=patch,
        frame_size=frame,
    ).eval()  # fmt: skip
    with torch.no_grad():  # lively peepholes, so edits of C reach the gates
        for cell in model.cells:
            cell.peephole_weight.normal_(0.0, 0.5)
    return model


def _context(frame=(16, 16), n=N_CTX) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, *frame)).astype(np.float32)


def _float32_gates(model, context, horizon, intervene=None):
    """Run the network with a hook keeping every gate in float32: ``{(layer, step): [6 arrays]}``
    of ``[hid, gy, gx]``, and the forecast ``[horizon, C, H, W]``."""
    kept = {}

    def hook(layer, step, gates):
        kept[layer, step] = [g[0].detach().clone().numpy() for g in gates]

    with torch.no_grad():
        y, _ = model(
            torch.as_tensor(context)[None], horizon=horizon, gate_hook=hook, intervene=intervene
        )
    return kept, y[0].numpy()


def test_zero_input_gate_leaves_c_equal_f_times_previous_c_exactly():
    model = _model()
    ctx = _context()
    start = N_CTX - 1
    edit = GateEdit(layer=0, target="i", operation="set", value=0.0, start=start)
    base, _ = _float32_gates(model, ctx, HORIZON)
    gates, _ = _float32_gates(model, ctx, HORIZON, intervene=edit)
    for step in range(start, N_CTX + HORIZON - 1):
        i, f, c = (gates[0, step][k] for k in (IN, FORGET, CELL))
        c_prev = gates[0, step - 1][CELL]
        assert (i == 0).all()
        np.testing.assert_array_equal(c, f * c_prev)  # float32 product, bit for bit
        # and not by accident: without the edit the input gate adds i * g
        unedited = base[0, step]
        assert not np.array_equal(unedited[CELL], unedited[FORGET] * base[0, step - 1][CELL])
    for step in range(start):  # earlier steps untouched, every layer and gate
        for layer in (0, 1):
            for k in range(6):
                np.testing.assert_array_equal(gates[layer, step][k], base[layer, step][k])


def test_rollout_capture_shows_the_edit_and_earlier_steps_are_unchanged():
    model = _model()
    ctx = _context()
    start = N_CTX  # the first forecast feedback
    edit = GateEdit(layer=0, target="input", value=0.0, start=start)
    base = rollout(model, ctx, HORIZON, capture=True, precision="fp32")
    ds = rollout(model, ctx, HORIZON, capture=True, precision="fp32", intervene=[edit])
    i = ds.gates.sel(layer=0, gate="input").values  # [step, hidden, gy, gx] float16
    assert (i[start:] == 0).all() and (i[:start] != 0).any()
    f = ds.gates.sel(layer=0, gate="forget").values.astype(np.float64)
    c = ds.gates.sel(layer=0, gate="cell").values.astype(np.float64)
    np.testing.assert_allclose(c[start:], f[start:] * c[start - 1 : -1], rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(ds.gates.values[:, :, :start], base.gates.values[:, :, :start])
    # lead k is read after step N_CTX + k - 2: leads 1 comes before the edit, lead 2 after it
    np.testing.assert_array_equal(ds.prediction.values[0], base.prediction.values[0])
    assert not np.array_equal(ds.prediction.values[1], base.prediction.values[1])
    assert "layer 0 input set to 0" in ds.attrs["interventions"]


def _reach(model: ConvLSTM, layer: int, edit_step: int, read_step: int) -> int:
    """Latent pixels an edit at ``(layer, edit_step)`` can move, at the state read after
    ``read_step``: every convolution on the way widens it by ``k // 2``. At the edit step the
    layers above it convolve it once each; every later step can pass through every layer once
    (layer 0 reads the fed-back forecast, each layer the state below and its own)."""
    n_layers = len(model.cells)
    convs = (n_layers - 1 - layer) + n_layers * (read_step - edit_step)
    return model.config.kernel_size // 2 * convs


@pytest.mark.parametrize("precision", ["fp32", "auto"])
@pytest.mark.parametrize(("layer", "target"), [(0, "c"), (1, "h"), (0, "f")])
def test_regional_edit_stays_inside_the_receptive_field(precision, layer, target):
    model = _model(frame=(48, 48), hidden=(4, 4), patch=2)
    ctx = _context(frame=(48, 48))
    p = model.config.patch_size
    y1 = x1 = 5  # frame rows and columns 0..4: latent pixels 0..2 (patches overlapping them)
    start = N_CTX - 1
    op = {"c": {"operation": "set", "value": 3.0}, "h": {"operation": "set", "value": -1.0},
          "f": {"operation": "scale", "factor": 0.0}}[target]  # fmt: skip
    edit = GateEdit(layer=layer, target=target, region=(0, y1, 0, x1), start=start, **op)
    base = rollout(model, ctx, HORIZON, precision=precision).prediction.values
    edited = rollout(model, ctx, HORIZON, precision=precision, intervene=edit).prediction.values
    edge = -(-y1 // p)  # latent rows/columns edited: 0 .. edge - 1
    for lead in range(1, HORIZON + 1):
        reach = _reach(model, layer, start, N_CTX + lead - 2)
        changed = np.abs(edited[lead - 1, 0] - base[lead - 1, 0]) > 0  # [H, W] frame pixels
        inside = np.zeros_like(changed)
        inside[: (edge + reach) * p, : (edge + reach) * p] = True
        assert changed.any(), f"lead {lead}: the edit changed nothing"
        assert not (changed & ~inside).any(), f"lead {lead}: changed beyond {reach} latent px"
        # tight in float32: the last ring inside the reach moves too (under bfloat16 the
        # faintest changes at the front may round away)
        if precision == "fp32" and layer == 0 and target != "f":
            ring = inside.copy()
            ring[: (edge + reach - 1) * p, : (edge + reach - 1) * p] = False
            assert (changed & ring).any(), f"lead {lead}: reach {reach} is not tight"


def test_region_forms_map_onto_the_latent_grid():
    cfg = _model(frame=(16, 16), patch=4).config  # latent 4x4
    rect = latent_region((2, 5, 8, 16), cfg)  # rows 2..4 -> latent 0, 1; columns 8..15 -> 2, 3
    expected = np.zeros((4, 4), dtype=bool)
    expected[0:2, 2:4] = True
    np.testing.assert_array_equal(rect, expected)
    frame_mask = np.zeros((16, 16), dtype=bool)
    frame_mask[2:5, 8:16] = True
    np.testing.assert_array_equal(latent_region(frame_mask, cfg), expected)
    np.testing.assert_array_equal(latent_region(expected, cfg), expected)
    assert latent_region(None, cfg) is None


def test_channels_and_operations_act_where_and_how_asked():
    model = _model()
    ctx = _context()
    region = np.zeros((8, 8), dtype=bool)  # latent grid mask
    region[2:5, 1:3] = True
    start = 2
    common = {"layer": 1, "channels": [0, 2], "region": region, "start": start}
    edits = [
        GateEdit(target="o", operation="scale", factor=0.5, **common),
        GateEdit(target="g", operation="clamp", lo=-0.01, hi=0.02, **common),
        GateEdit(target="c", operation="freeze", **common),
    ]
    without_o, _ = _float32_gates(model, ctx, HORIZON, intervene=edits[1:])
    gates, _ = _float32_gates(model, ctx, HORIZON, intervene=edits)
    sel = np.zeros((4, 8, 8), dtype=bool)
    sel[[0, 2]] = region
    o_base, o = without_o[1, start][OUT], gates[1, start][OUT]
    np.testing.assert_array_equal(o[sel], (o_base * np.float32(0.5))[sel])
    np.testing.assert_array_equal(o[~sel], o_base[~sel])
    for step in range(start, N_CTX + HORIZON - 1):
        g = gates[1, step][CAND]
        assert g[sel].min() >= -0.01 and g[sel].max() <= 0.02
        np.testing.assert_array_equal(gates[1, step][CELL][sel], gates[1, start][CELL][sel])
    assert not np.array_equal(gates[1, start + 1][CELL][~sel], gates[1, start][CELL][~sel])


def test_teacher_mode_applies_edits_too():
    model = _model()
    ctx = _context(n=N_CTX + HORIZON)
    edit = GateEdit(layer=1, target="f", value=1.0, start=1)
    ds = rollout(model, ctx[:N_CTX], HORIZON, truth=ctx[N_CTX:], mode="teacher", capture=True,
                 intervene=edit)  # fmt: skip
    f = ds.gates.sel(layer=1, gate="forget").values[:, :4]
    assert (f[1:] == 1).all() and (f[0] < 1).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 0, "target": "update"}, "target 'update' is not a gate or state"),
        ({"layer": -1, "target": "f"}, "layer=-1 must be a non-negative integer"),
        ({"layer": 0, "target": "f", "operation": "zero"}, "operation 'zero' is unknown"),
        ({"layer": 0, "target": "i", "value": 1.5}, r"outside the input range \[0.0, 1.0\]"),
        ({"layer": 0, "target": "h", "value": -2}, r"outside the hidden range \[-1.0, 1.0\]"),
        ({"layer": 0, "target": "c", "operation": "clamp"}, "clamp needs lo and/or hi"),
        ({"layer": 0, "target": "c", "operation": "clamp", "lo": 1, "hi": 0}, "lo=1 > hi=0"),
        ({"layer": 0, "target": "f", "channels": []}, "selects no hidden channel"),
        ({"layer": 0, "target": "f", "start": 3, "stop": 3}, "stop=3 must be after start=3"),
        ({"layer": 0, "target": "f", "region": np.zeros((4, 4), bool)}, "selects no pixel"),
        ({"layer": 0, "target": "f", "region": (0, 1, 2)}, "neither a rectangle"),
    ],
)
def test_edit_field_errors_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GateEdit(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 2, "target": "f"}, r"edit 0 .*layer 2 does not exist; this network has 2 "),
        ({"layer": 1, "target": "f", "channels": [4]}, "channel 4 does not exist; layer 1 has 4"),
        ({"layer": 0, "target": "f", "region": (0, 17, 0, 4)}, "outside the 16x16 frame"),
        ({"layer": 0, "target": "f", "region": (4, 4, 0, 4)}, "outside the 16x16 frame or empty"),
        ({"layer": 0, "target": "f", "region": np.ones((5, 5), bool)}, "must cover the 16x16"),
        ({"layer": 0, "target": "f", "start": 6}, r"reads only 6 inputs \(steps 0..5\)"),
    ],
)
def test_edits_that_do_not_fit_the_network_are_refused_before_running(kwargs, message):
    model = _model()
    with pytest.raises(ValueError, match=message):
        rollout(model, _context(), HORIZON, intervene=GateEdit(**kwargs))


def test_target_aliases_and_descriptions():
    assert [GateEdit(layer=0, target=t).target for t in "ifogch"] == list(GATES)
    assert GateEdit(layer=0, target="Forget").target == "forget"
    edit = GateEdit(layer=1, target="f", operation="clamp", hi=0.5, channels=3, start=2, stop=4)
    assert (
        edit.describe()
        == "layer 1 forget clamped to [-inf, 0.5], channels [3], everywhere, steps 2..3"
    )
    plan = Intervention([edit], config=_model().config, steps=6)
    assert plan.latent_mask(0).sum() == 8 * 8  # one channel, every latent pixel
    with pytest.raises(ValueError, match="edit 0 is a str"):
        Intervention(["forget"], config=_model().config)


SHIPPED = [e for e in scan_checkpoints(DEFAULT_ROOT) if e.problem is None]


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_checkpoints_run_with_an_intervention(entry):
    model, meta = load_checkpoint(DEFAULT_ROOT / entry.name, device="cpu")
    cfg = model.config
    n_ctx, horizon = meta["context"], meta["horizon"]
    ctx = np.random.default_rng(1).random((n_ctx, cfg.in_channels, *cfg.frame_size))
    normalizer = Normalizer.from_metadata(meta["normalization"])
    big_h, big_w = cfg.frame_size
    edit = GateEdit(layer=len(cfg.hidden_channels) - 1, target="f", value=0.0,
                    region=(0, big_h // 2, 0, big_w // 2), start=n_ctx - 1)  # fmt: skip
    base = rollout(model, ctx, horizon, normalizer=normalizer)
    ds = rollout(model, ctx, horizon, normalizer=normalizer, intervene=edit,
                 capture={"gates": ["forget"]})  # fmt: skip
    f = ds.gates.sel(layer=edit.layer, gate="forget").values[n_ctx - 1 :]  # [step, hid, gy, gx]
    gh, gw = cfg.grid_size
    assert (f[..., : gh // 2, : gw // 2] == 0).all() and (f[..., gh // 2 :, gw // 2 :] > 0).any()
    assert not np.array_equal(ds.prediction.values, base.prediction.values)
    assert np.isfinite(ds.prediction.values).all()

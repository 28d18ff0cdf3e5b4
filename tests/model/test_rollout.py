"""Rollouts: the xarray result, capture selection and budget, modes, precision, normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from model.convlstm import GATES, ConvLSTM
from model.normalize import Normalizer
from model.rollout import (
    CaptureBudgetError,
    CaptureSpec,
    capture_bytes,
    forecast_windows,
    rollout,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ConvLSTM(
        in_channels=1, hidden_channels=(6, 4), kernel_size=3, patch_size=2, frame_size=(8, 8)
    ).eval()


@pytest.fixture
def context():
    times = pd.date_range("2024-05-01 12:00", periods=5, freq="5min")
    values = np.random.default_rng(0).gamma(0.6, 2.0, (5, 1, 8, 8)).astype(np.float32)
    return xr.DataArray(
        values,
        dims=("time", "channel", "y", "x"),
        coords={"time": times, "channel": ["rain"], "y": np.arange(8), "x": np.arange(8)},
        attrs={"units": "mm/h", "time_step": "PT5M", "domain": "radar"},
    )


def test_result_layout_and_time_coordinates(model, context):
    ds = rollout(model, context, 4, capture=True, precision="fp32")
    assert ds.prediction.dims == ("time", "channel", "y", "x")
    assert ds.prediction.shape == (4, 1, 8, 8) and ds.prediction.dtype == np.float32
    assert ds.gates.dims == ("layer", "gate", "step", "hidden", "gy", "gx")
    assert ds.gates.dtype == np.float16
    assert ds.gates.shape == (2, 6, 5 + 4 - 1, 6, 4, 4)  # widest layer 6, latent grid 8/2
    assert list(ds.phase.values).count("context") == 5
    # the narrower layer is padded with NaN past its 4 channels
    assert np.isnan(ds.gates.sel(layer=1).values[:, :, 4:]).all()
    assert not np.isnan(ds.gates.sel(layer=1).values[:, :, :4]).any()
    assert ds.time.values[0] == np.datetime64("2024-05-01T12:25")
    assert list(ds.lead_time.values.astype("timedelta64[m]").astype(int)) == [5, 10, 15, 20]
    assert ds.attrs["units"] == "mm/h" and ds.attrs["domain"] == "radar"
    assert ds.attrs["mode"] == "free" and ds.attrs["precision"] == "fp32"


def test_capture_selection_and_none(model, context):
    ds = rollout(model, context, 2, capture={"layers": [1], "gates": ["cell", "forget"]})
    assert list(ds.layer.values) == [1]
    assert list(ds.gate.values) == ["forget", "cell"]  # canonical order
    assert ds.gates.shape[3] == 4
    assert "gates" not in rollout(model, context, 2, capture=False)
    with pytest.raises(ValueError, match="layers must be in 0..1"):
        rollout(model, context, 2, capture={"layers": [5]})
    with pytest.raises(ValueError, match="gates in"):
        rollout(model, context, 2, capture={"gates": ["update"]})


def test_capture_budget_gives_clear_error(model, context):
    spec = CaptureSpec.parse(True, 2)
    need = capture_bytes(model, spec, steps=5 + 3 - 1)
    assert need == 2 * 7 * 4 * 4 * 6 * (6 + 4)
    with pytest.raises(CaptureBudgetError, match=r"needs .* MiB, over the budget"):
        rollout(model, context, 3, capture=True, byte_budget=need - 1)
    ds = rollout(model, context, 3, capture=True, byte_budget=need)
    assert ds.gates.shape[2] == 7


def test_capture_does_not_change_the_forecast(model, context):
    a = rollout(model, context, 3, capture=False, precision="fp32")
    b = rollout(model, context, 3, capture=True, precision="fp32")
    np.testing.assert_array_equal(a.prediction.values, b.prediction.values)


def test_teacher_forcing_uses_truth(model, context):
    truth = np.random.default_rng(1).gamma(0.6, 2.0, (3, 1, 8, 8)).astype(np.float32)
    free = rollout(model, context, 3, truth=truth, precision="fp32")
    teacher = rollout(model, context, 3, truth=truth, mode="teacher", precision="fp32")
    # first step reads the same context in both modes
    np.testing.assert_allclose(teacher.prediction[0], free.prediction[0], atol=1e-6)
    # later steps read the truth instead of the forecast
    assert np.abs(teacher.prediction[1:].values - free.prediction[1:].values).max() > 1e-5
    np.testing.assert_array_equal(teacher.truth.values, truth)
    with pytest.raises(ValueError, match="needs the true frames"):
        rollout(model, context, 3, mode="teacher")


def test_truth_shorter_than_horizon_is_padded(model, context):
    truth = np.ones((2, 1, 8, 8), np.float32)
    ds = rollout(model, context, 4, truth=truth)
    assert np.isnan(ds.truth.values[2:]).all() and (ds.truth.values[:2] == 1).all()


def test_bf16_default_close_to_fp32(model, context):
    norm = Normalizer(kind="db", units="mm/h", scale=10.0)
    fp32 = rollout(model, context, 4, precision="fp32", normalizer=norm)
    bf16 = rollout(model, context, 4, precision="bf16", normalizer=norm)
    assert bf16.attrs["precision"] == "bf16"
    diff = np.abs(fp32.prediction.values - bf16.prediction.values)
    assert diff.max() < 0.05 * max(1.0, float(np.abs(fp32.prediction.values).max()))


def test_nan_context_never_reaches_the_network(model, context):
    masked = context.copy()
    masked[:, :, :2, :2] = np.nan
    ds = rollout(model, masked, 2, normalizer=Normalizer(kind="db", units="mm/h", scale=10))
    assert np.isfinite(ds.prediction.values).all()


def test_plain_arrays_get_step_coordinates(model):
    ds = rollout(model, np.zeros((3, 1, 8, 8), np.float32), 2)
    assert list(ds.time.values) == [3, 4] and list(ds.lead_time.values) == [1, 2]


def test_bad_inputs(model, context):
    with pytest.raises(ValueError, match="expected \\(time, channel, y, x\\)"):
        rollout(model, np.zeros((1, 3, 1, 8, 8)), 2)
    with pytest.raises(ValueError, match="horizon=0"):
        rollout(model, context, 0)
    with pytest.raises(ValueError, match="mode"):
        rollout(model, context, 1, mode="dream")


@pytest.mark.parametrize("kind,values", [
    ("db", np.array([0.0, 0.05, 0.1, 1.0, 10.0, 100.0])),
    ("scale", np.array([0.0, 3.0, 250.0])),
    ("unit", np.array([0.0, 0.5, 1.0])),
])  # fmt: skip
def test_normalizer_round_trip(kind, values):
    norm = Normalizer(kind=kind, scale=10.0 if kind != "unit" else 1.0, threshold=0.1)
    back = norm.to_physical(norm.to_model(values))
    expected = np.where(values >= 0.1, values, 0.0) if kind == "db" else values
    np.testing.assert_allclose(back, expected, rtol=1e-6, atol=1e-9)
    if kind == "db":
        assert norm.to_model(np.array([0.0]))[0] == 0.0  # no rain is exactly 0 in model space
    t = torch.as_tensor(values, dtype=torch.float64)
    np.testing.assert_allclose(norm.to_model(t).numpy(), norm.to_model(values))
    assert Normalizer.from_metadata(norm.to_metadata()) == norm


def test_gate_names_are_the_constant(model, context):
    ds = rollout(model, context, 2, capture=True)
    assert tuple(ds.gate.values) == GATES


def test_forecast_windows_is_the_rollout_forecast_in_batches(model, context):
    norm = Normalizer(kind="db", units="mm/h", scale=10.0)
    windows = np.stack([context.values, context.values[::-1], 2 * context.values])  # [3, Tc, ...]
    batched = forecast_windows(model, windows, 3, batch_size=2, precision="fp32", normalizer=norm)
    assert batched.shape == (3, 3, 1, 8, 8) and batched.dtype == np.float32
    for k in range(3):
        one = rollout(model, windows[k], 3, precision="fp32", normalizer=norm).prediction.values
        np.testing.assert_allclose(batched[k], one, rtol=1e-5, atol=1e-6)
    # model space in and out without a normalizer; the network's mode is restored
    model.train()
    raw = forecast_windows(model, torch.from_numpy(norm.to_model(windows)), 3, precision="fp32")
    assert model.training
    np.testing.assert_allclose(norm.to_physical(raw), batched, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="one batch"):
        forecast_windows(model, windows, 3, batch_size=2, gate_hook=lambda *a: None)

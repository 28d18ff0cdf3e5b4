"""Imported checkpoints on the page: listed beside trained ones; one without a forecasting head
(ndrplz/ConvLSTM_pytorch, inspect mode) shows its gates over the data's frames and no forecast."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from dashboard import figures as F
from dashboard import services
from model.import_weights import main as import_weights
from model.rollout import inspect_gates
from tests.dashboard.test_app import APP, TIMEOUT, charts, z_of
from tests.dashboard_synthetic import make_checkpoint
from tests.model.reference_convlstms import NdrplzConvLSTM

NAME = "ndrplz_inspect"


@pytest.fixture(scope="module")
def ckpt_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_checkpoint(root, "tiny_mnist")  # a trained-here forecaster beside the import
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("download") / "convlstm.pth"
    torch.save(NdrplzConvLSTM(1, [4, 3], (3, 3), num_layers=2).state_dict(), weights)
    import_weights(["ndrplz", str(weights), "--out", str(root / NAME), "--frame-size", "64",
                    "64", "--domain", "video", "--units", "pixel intensity [0, 1]"])  # fmt: skip
    return root


@pytest.fixture(autouse=True)
def _checkpoints(ckpt_root, monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(ckpt_root))


def test_an_imported_checkpoint_without_head_shows_its_gates_and_no_forecast():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["dataset"] = "moving_mnist"
    at.query_params["checkpoint"] = NAME
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    picker = at.selectbox(key="checkpoint")
    assert set(picker.options) == {"tiny_mnist", NAME} and picker.value == NAME
    said = " ".join(i.value for i in at.info)
    assert "no forecasting head" in said and "ndrplz" in said and "10 frames" in said
    specs = charts(at)
    # no forecast, probe or metrics chart (the hidden preload chart loads plotly's code early)
    assert set(specs) == {"preload", "gates", "gate_means"}
    gates = specs["gates"]
    # one time control: the page's frame slider (last frame read by default), no slider of its own
    assert at.select_slider(key="inspect_step").value == 9
    assert "frames" not in gates and gates["layout"]["meta"]["step"] == 9

    # the panels show the network's own gates over frames 0-9 of sample 0 (8-bit codes)
    net, meta = services.load_model(NAME)
    frames = services.load_dataset("moving_mnist").isel(sample=0, time=slice(0, 10))
    expected = inspect_gates(net, frames, precision="fp32")
    names = gates["layout"]["meta"]["gates"]
    for k, trace in enumerate(gates["data"]):
        scale = F.scale_from_meta(gates["layout"]["meta"]["scales"][k])
        shown = scale.decode(z_of(trace))
        want = expected.gates.sel(layer=0, gate=names[k], step=9).astype(np.float64).mean("hidden")
        want = want.values.clip(scale.vmin, scale.vmax)  # the colour range clips outliers
        bound = 1.01 * scale.resolution(0.0) + 2e-3  # an 8-bit code bin, float16 storage
        np.testing.assert_allclose(shown, want, atol=bound, err_msg=names[k])


def test_the_forecaster_beside_it_still_forecasts():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["checkpoint"] = "tiny_mnist"
    at.run()
    assert not at.exception
    assert at.selectbox(key="checkpoint").value == "tiny_mnist"
    assert "forecast" in charts(at)
    assert not any("no forecasting head" in i.value for i in at.info)

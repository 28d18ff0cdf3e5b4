"""``python -m model.import_weights``: each source against a reference forward pass.

The references (``reference_convlstms.py``) are written from each project's published equations in
its own weight layout; their weights are random and saved the way the project saves them
(``torch.save(state_dict)``; real ``.keras``/``.h5`` files written by Keras itself in
``test_import_keras.py``). The imported network must compute the same gates (and forecasts, where
the source has a head) to 1e-5.
"""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from model.checkpoint import has_forecast_head, load_checkpoint
from model.import_weights import main
from model.importers.openstl import patch_permutation
from model.rollout import inspect_gates
from tests.model.reference_convlstms import (
    NdrplzConvLSTM,
    OpenSTLModel,
    reshape_patch,
    reshape_patch_back,
)

ATOL = 1e-5


def randomize(module: torch.nn.Module, seed: int, scale: float = 0.4) -> None:
    """Every parameter drawn from N(0, scale) (LayerNorm weights around 1), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * scale
            p.copy_(1.0 + noise if name.endswith("1.weight") else noise)


def run_cli(*args: str) -> None:
    main([str(a) for a in args])


def capture(model, frames: torch.Tensor, *, horizon: int | None = None):
    """``(forecast or None, {(step, layer): (i, f, o, g, c, h)})`` of our network."""
    record = {}

    def hook(layer, step, gates):
        record[(step, layer)] = tuple(g.detach().double().clone() for g in gates)

    with torch.no_grad():
        if horizon is None:
            model.encode(frames, gate_hook=hook)
            return None, record
        forecast, _ = model(frames, horizon=horizon, gate_hook=hook)
    return forecast, record


def assert_gates_equal(ours: dict, reference, steps: int, layers: int) -> None:
    """``reference[step][layer]`` = 6 tensors ``[B, hid, h, w]`` in GATES order."""
    assert len(ours) == steps * layers
    for step in range(steps):
        for layer in range(layers):
            for k, (a, b) in enumerate(
                zip(ours[(step, layer)], reference[step][layer], strict=True)
            ):
                np.testing.assert_allclose(
                    a.numpy(), b.detach().double().numpy(), atol=ATOL,
                    err_msg=f"step {step} layer {layer} gate {k}",
                )  # fmt: skip


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


# -- OpenSTL -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "layer_norm"])
@pytest.mark.parametrize(("channels", "patch"), [(1, 2), (2, 2)], ids=["1ch", "2ch"])
def test_openstl_import_matches_its_forward_pass(tmp_path, layer_norm, channels, patch):
    torch.manual_seed(0)
    size, pre, aft = 8, 4, 3
    ref = OpenSTLModel((3, 4), channels=channels, patch=patch, height=size, width=size,
                       filter_size=3, layer_norm=layer_norm).eval()  # fmt: skip
    randomize(ref, seed=1)
    weights = tmp_path / "convlstm_openstl.pth"
    torch.save(ref.state_dict(), weights)
    frame = [] if layer_norm else ["--frame-size", size, size]  # LayerNorms record the grid
    run_cli("openstl", weights, "--out", tmp_path / "ours", "--patch-size", patch, *frame)
    model, meta = load_checkpoint(tmp_path / "ours", device="cpu")
    cfg = model.config
    assert (cfg.layer_norm, cfg.readout, cfg.readout_bias, cfg.peephole) == (
        layer_norm, "top_layer", False, False,
    )  # fmt: skip
    assert cfg.frame_size == (size, size) and cfg.in_channels == channels

    frames = torch.rand(2, pre, channels, size, size)  # [B, T, C, H, W]
    with torch.no_grad():
        patched = reshape_patch(frames.permute(0, 1, 3, 4, 2), patch)  # [B, T, h, w, p*p*C]
        predicted, ref_gates = ref(patched, pre, aft)  # [B, pre+aft-1, h, w, p*p*C]
    expected = reshape_patch_back(predicted[:, pre - 1 :], patch).permute(0, 1, 4, 2, 3)
    forecast, ours = capture(model, frames, horizon=aft)  # [B, aft, C, H, W]
    np.testing.assert_allclose(forecast.numpy(), expected.numpy(), atol=ATOL)
    assert_gates_equal(ours, ref_gates, steps=pre + aft - 1, layers=2)


def test_openstl_patch_order_is_converted():
    # OpenSTL's patched channel (p1*p + p2)*C + c holds the pixel our (c*p + p1)*p + p2 holds
    frames = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 1, 2, 4, 4)  # C=2, 4x4
    ours = torch.nn.functional.pixel_unshuffle(frames[0], 2)[None]  # (c p1 p2): our order
    theirs = reshape_patch(frames.permute(0, 1, 3, 4, 2), 2).permute(0, 1, 4, 2, 3)
    assert not torch.equal(ours, theirs)  # they differ for more than one channel
    assert torch.equal(theirs[:, :, patch_permutation(2, 2)], ours)


def test_openstl_records_file_name_and_hash_never_the_folder(tmp_path):
    ref = OpenSTLModel((3,), channels=1, patch=1, height=6, width=6, filter_size=3,
                       layer_norm=False)  # fmt: skip
    weights = tmp_path / "secret_folder" / "w.pth"
    weights.parent.mkdir()
    torch.save(ref.state_dict(), weights)
    run_cli("openstl", weights, "--out", tmp_path / "ckpt", "--patch-size", 1,
            "--frame-size", 6, 6, "--domain", "video", "--units", "pixel intensity")  # fmt: skip
    _, meta = load_checkpoint(tmp_path / "ckpt", device="cpu")
    src = meta["imported_from"]
    assert src["file"] == "w.pth" and src["project"].startswith("OpenSTL")
    assert src["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert src["gate_order"] == ["input", "forget", "candidate", "output"]
    assert meta["domain"] == "video" and meta["units"] == "pixel intensity"
    for name in ("meta.json", "README.md"):
        text = (tmp_path / "ckpt" / name).read_text()
        assert "secret_folder" not in text and str(tmp_path) not in text, name
    card = (tmp_path / "ckpt" / "README.md").read_text()
    assert src["sha256"] in card and "w.pth" in card and "Forecast" in card


def test_openstl_without_patch_size_or_of_another_model_is_refused(tmp_path, capsys):
    ref = OpenSTLModel((3,), channels=1, patch=1, height=6, width=6, filter_size=3,
                       layer_norm=False)  # fmt: skip
    weights = tmp_path / "w.pth"
    torch.save(ref.state_dict(), weights)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("openstl", weights, "--out", tmp_path / "a", "--frame-size", 6, 6)
    assert exit_info.value.code == 2
    assert "--patch-size" in error_line(capsys)
    state = dict(ref.state_dict(), **{"cell_list.0.conv_m.0.weight": torch.zeros(3, 3, 3, 3)})
    torch.save(state, weights)  # a PredRNN-like extra convolution
    with pytest.raises(SystemExit):
        run_cli("openstl", weights, "--out", tmp_path / "b", "--patch-size", 1,
                "--frame-size", 6, 6)  # fmt: skip
    assert "conv_m" in error_line(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- ndrplz ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_ndrplz_import_is_an_inspect_mode_network_with_its_gates(tmp_path, bias):
    torch.manual_seed(0)
    ref = NdrplzConvLSTM(2, [3, 2], (3, 3), num_layers=2, bias=bias).eval()
    randomize(ref, seed=2)
    weights = tmp_path / "ndrplz.pth"
    torch.save(ref.state_dict(), weights)
    run_cli("ndrplz", weights, "--out", tmp_path / "ours", "--frame-size", 6, 7)
    model, meta = load_checkpoint(tmp_path / "ours", device="cpu")
    assert model.config.readout == "none" and model.head is None
    assert not has_forecast_head(meta) and meta["imported_from"]["mode"] == "inspect"

    frames = torch.randn(2, 5, 2, 6, 7)  # a non-square grid: H and W cannot be swapped
    with torch.no_grad():
        outputs, ref_gates = ref(frames)
    _, ours = capture(model, frames)
    by_step = [[ref_gates[layer][step] for layer in range(2)] for step in range(5)]
    assert_gates_equal(ours, by_step, steps=5, layers=2)
    with torch.no_grad():
        state = model.encode(frames)
    np.testing.assert_allclose(state.hidden[1].numpy(), outputs[1][:, -1].numpy(), atol=ATOL)
    with pytest.raises(ValueError, match="no forecasting head"):
        model(frames, horizon=2)

    ds = inspect_gates(model, frames[0].numpy(), precision="fp32")
    assert ds.attrs["mode"] == "inspect" and "prediction" not in ds and "time" not in ds.dims
    assert ds.sizes["step"] == 5 and list(ds.phase.values) == ["context"] * 5
    hidden = ds.gates.sel(layer=1, gate="hidden").values[:, :2].astype(np.float64)
    np.testing.assert_allclose(hidden, outputs[1][0].numpy(), atol=2e-3)  # float16 storage


def test_ndrplz_needs_a_frame_size_and_refuses_patching(tmp_path, capsys):
    weights = tmp_path / "ndrplz.pth"
    torch.save(NdrplzConvLSTM(1, [2], (3, 3), 1).state_dict(), weights)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("ndrplz", weights, "--out", tmp_path / "a")
    assert exit_info.value.code == 2 and "--frame-size" in error_line(capsys)
    with pytest.raises(SystemExit):
        run_cli("ndrplz", weights, "--out", tmp_path / "a", "--frame-size", 4, 4,
                "--patch-size", 2)  # fmt: skip
    assert "does not patch" in error_line(capsys)
    rectangular = NdrplzConvLSTM(1, [2], (3, 5), 1)
    torch.save(rectangular.state_dict(), weights)
    with pytest.raises(SystemExit):
        run_cli("ndrplz", weights, "--out", tmp_path / "a", "--frame-size", 4, 4)
    assert "3x5 kernel" in error_line(capsys)


# -- files that are not plain weights ----------------------------------------------------------
class Payload:
    """A pickled object that runs code when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("source", ["openstl", "ndrplz"])
def test_a_pickle_that_runs_code_is_refused(tmp_path, capsys, source):
    marker = tmp_path / "pwned"
    weights = tmp_path / "model.pth"
    with open(weights, "wb") as fh:
        pickle.dump({"cell_list.0.conv.weight": Payload(marker)}, fh)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(source, weights, "--out", tmp_path / "ckpt", "--frame-size", 4, 4,
                "--patch-size", 1)  # fmt: skip
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert "refused" in line and "model.pth" in line and "state_dict" in line
    assert str(tmp_path) not in line
    assert not marker.exists(), "importing executed code from the file"
    assert not (tmp_path / "ckpt").exists()


def test_an_existing_checkpoint_is_kept_unless_forced(tmp_path, capsys):
    weights = tmp_path / "n.pth"
    torch.save(NdrplzConvLSTM(1, [2], (3, 3), 1).state_dict(), weights)
    run_cli("ndrplz", weights, "--out", tmp_path / "ckpt", "--frame-size", 4, 4)
    before = (tmp_path / "ckpt" / "meta.json").read_text()
    with pytest.raises(SystemExit):
        run_cli("ndrplz", weights, "--out", tmp_path / "ckpt", "--frame-size", 5, 5)
    assert "--force" in error_line(capsys)
    assert (tmp_path / "ckpt" / "meta.json").read_text() == before
    run_cli("ndrplz", weights, "--out", tmp_path / "ckpt", "--frame-size", 5, 5, "--force")
    assert json.loads((tmp_path / "ckpt" / "meta.json").read_text())["frame_size"] == [5, 5]

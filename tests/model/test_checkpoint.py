"""Checkpoint format: exact round trip, refusal of code-carrying pickles, named errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from model.checkpoint import (
    CheckpointError,
    compatible,
    list_checkpoints,
    load_checkpoint,
    load_torch_weights,
    pick_device,
    save_checkpoint,
)
from model.convlstm import ConvLSTM
from model.normalize import Normalizer
from model.rollout import rollout

META = {
    "dataset": "radar_synthetic",
    "domain": "radar",
    "time_step": "PT5M",
    "normalization": Normalizer(kind="db", units="mm/h", scale=10.0).to_metadata(),
    "context": 4,
    "horizon": 3,
    "command": "python -m model.train configs/test.toml",
}


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = ConvLSTM(
        in_channels=1, hidden_channels=(6, 4), kernel_size=3, patch_size=2, frame_size=(8, 8)
    )
    with torch.no_grad():
        for cell in net.cells:
            cell.peephole_weight.normal_()
    return net.eval()


def test_round_trip_reproduces_predictions_exactly(tmp_path, model):
    save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    loaded, meta = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert meta["dataset"] == "radar_synthetic" and meta["format_version"] == 1
    assert meta["gate_order"] == ["input", "forget", "output", "candidate"]
    assert meta["config"]["hidden_channels"] == [6, 4]
    assert meta["device"] == "cpu" and "cpu" in meta["device_note"]
    frames = torch.rand(2, 4, 1, 8, 8)
    with torch.no_grad():
        a, _ = model(frames, horizon=3)
        b, _ = loaded(frames, horizon=3)
    assert torch.equal(a, b)
    ctx = np.random.default_rng(0).gamma(0.5, 2.0, (4, 1, 8, 8)).astype(np.float32)
    norm = Normalizer.from_metadata(meta["normalization"])
    r1 = rollout(model, ctx, 3, normalizer=norm, precision="fp32")
    r2 = rollout(loaded, ctx, 3, normalizer=norm, precision="fp32")
    np.testing.assert_array_equal(r1.prediction.values, r2.prediction.values)


def test_numpy_values_in_metadata_are_written_as_json(tmp_path, model):
    meta = dict(META, n_trips=np.int64(1306704), rmse=np.float32(1.5), shape=np.array([2, 3]))
    save_checkpoint(tmp_path / "ckpt", model, metadata=meta)
    _, loaded = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert loaded["n_trips"] == 1306704 and loaded["rmse"] == 1.5 and loaded["shape"] == [2, 3]
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path / "bad", model, metadata=dict(META, when=object()))


def test_pickle_with_embedded_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Evil()}, fh)
    with pytest.raises(CheckpointError, match=r"model\.pt: refused to load"):
        load_torch_weights(path)
    assert not marker.exists(), "loading executed code from the file"


def test_plain_torch_state_dict_is_accepted(tmp_path, model):
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    state = load_torch_weights(path)
    assert set(state) == set(model.state_dict())


def test_truncated_safetensors_gives_named_error(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    meta = json.loads((folder / "meta.json").read_text())
    del meta["weights_sha256"]  # so the safetensors reader itself meets the truncated file
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        load_checkpoint(folder, device="cpu")


def test_changed_weights_fail_the_checksum(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_checkpoint(folder, device="cpu")


def test_wrong_shaped_weights_give_named_error(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    meta = json.loads((folder / "meta.json").read_text())
    meta["config"]["hidden_channels"] = [8, 4]  # weights were saved for 6 channels
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: does not match.*shape"):
        load_checkpoint(folder, device="cpu")


def test_corrupt_or_missing_metadata_gives_named_error(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json: not valid JSON"):
        load_checkpoint(folder, device="cpu")
    (folder / "meta.json").unlink()
    with pytest.raises(CheckpointError, match=r"no meta\.json"):
        load_checkpoint(folder, device="cpu")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path / "nowhere", device="cpu")


def test_unknown_format_version_refused(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    meta = json.loads((folder / "meta.json").read_text())
    meta["format_version"] = 99
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version 99 is not supported"):
        load_checkpoint(folder, device="cpu")


def test_other_gate_order_is_mapped_on_load(tmp_path, model):
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata=META)
    # Rewrite the weights as if saved by OpenSTL-style code (i, f, g, o) and say so.
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    for name, t in state.items():
        if "input_conv" in name or "hidden_conv" in name:
            i, f, o, g = t.chunk(4)
            state[name] = torch.cat([i, f, g, o])
    save_file(state, str(folder / "model.safetensors"))
    meta = json.loads((folder / "meta.json").read_text())
    meta["gate_order"] = ["input", "forget", "candidate", "output"]
    del meta["weights_sha256"]
    (folder / "meta.json").write_text(json.dumps(meta))
    loaded, _ = load_checkpoint(folder, device="cpu")
    frames = torch.rand(1, 4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(frames, horizon=2)[0], loaded(frames, horizon=2)[0])


def test_registry_lists_and_matches(tmp_path, model):
    save_checkpoint(tmp_path / "b", model, metadata=META)
    save_checkpoint(tmp_path / "a", model, metadata=META)
    (tmp_path / "broken").mkdir()
    names = [name for name, _ in list_checkpoints(tmp_path)]
    assert names == ["a", "b"]
    meta = list_checkpoints(tmp_path)[0][1]
    import xarray as xr

    fits = xr.DataArray(np.zeros((1, 5, 1, 8, 8)), attrs={"domain": "radar"})
    wrong_grid = xr.DataArray(np.zeros((1, 5, 1, 16, 16)), attrs={"domain": "radar"})
    wrong_domain = xr.DataArray(np.zeros((1, 5, 1, 8, 8)), attrs={"domain": "video"})
    assert compatible(meta, fits)
    assert not compatible(meta, wrong_grid)
    assert not compatible(meta, wrong_domain)


def test_pick_device_auto_says_which(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    device, note = pick_device("auto")
    assert device == torch.device("cpu")
    assert note == "using cpu (no CUDA or MPS GPU found)"

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == (torch.device("mps"), "using mps (Apple GPU)")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU 9000")
    device, note = pick_device("auto")
    assert device == torch.device("cuda")  # cuda first, before mps
    assert note == "using cuda (Test GPU 9000)"


def test_pick_device_refuses_cuda_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("cpu") == (torch.device("cpu"), "using cpu (asked for)")
    with pytest.raises(CheckpointError, match="CUDA is not available"):
        pick_device("cuda")


def _frames(time_step, domain="radar", shape=(1, 4, 1, 8, 8)):
    import xarray as xr

    return xr.DataArray(
        np.zeros(shape, np.float32),
        dims=("sample", "time", "channel", "y", "x"),
        attrs={"time_step": time_step, "domain": domain},
    )


def test_a_mismatched_time_step_is_refused_naming_both_steps():
    from model.checkpoint import compatibility_problem, compatible

    meta = {
        "config": {"in_channels": 1, "frame_size": [8, 8]},
        "domain": "radar",
        "time_step": "PT5M",
    }
    assert compatible(meta, _frames("PT5M")) and compatible(meta, _frames(300))
    problem = compatibility_problem(meta, _frames("PT2M"))
    assert problem.startswith("it was trained on 5 min steps, the data has 2 min steps")
    assert not compatible(meta, _frames("PT2M"))
    assert not compatible(dict(meta, time_step="PT1H"), _frames("PT5M"))
    # a data set that states no duration is not refused (the page says so instead)
    assert compatible(meta, _frames("1 frame"))
    traffic = dict(meta, domain="traffic")
    assert "its grid is 8x8, the data's is 16x16" in compatibility_problem(
        traffic, _frames("PT5M", domain="traffic", shape=(1, 4, 1, 16, 16))
    )
    assert "trained on radar data, this is video data" in compatibility_problem(
        meta, _frames("PT5M", domain="video")
    )


def test_the_page_notes_a_data_set_without_a_time_step():
    from dashboard.services import time_step_note

    meta = {"time_step": "PT5M"}
    assert "trained on PT5M steps" in time_step_note(meta, _frames("1 frame"))
    assert time_step_note(meta, _frames("PT5M")) is None
    assert time_step_note({"time_step": "1 frame"}, _frames("1 frame")) is None


def test_a_radar_checkpoint_fits_radar_domains_of_other_grids_it_can_tile():
    from model.checkpoint import compatibility_problem, compatible

    meta = {
        "config": {"in_channels": 1, "frame_size": [8, 8], "patch_size": 4},
        "domain": "radar",
        "time_step": "PT5M",
        "resolution_km": 1.0,
    }
    larger = _frames("PT5M", shape=(1, 4, 1, 20, 36))
    # no pixel size on the data: refused, saying what to add
    assert "states no pixel size" in compatibility_problem(meta, larger)
    located = larger.assign_coords(
        y=("y", np.arange(20.0)[::-1] * 2000.0, {"units": "m"}),
        x=("x", np.arange(36.0) * 2000.0, {"units": "m"}),
    )
    assert compatible(meta, located)  # 2 km pixels: resampled to 1 km and tiled
    assert "smaller than one 4x4 cell" in compatibility_problem(
        meta, _frames("PT5M", shape=(1, 4, 1, 3, 30))
    )
    # a radar checkpoint without a head (inspect mode) still needs its own grid
    inspect = dict(meta, config=dict(meta["config"], readout="none"))
    assert "its grid is 8x8" in compatibility_problem(inspect, located)

"""Keras ConvLSTM2D imports, on real ``.keras`` and ``.h5`` files written by Keras 3 itself.

Keras runs here on its torch backend (``KERAS_BACKEND=torch``; ``keras`` is pinned in
requirements-dev.txt). The importer never imports Keras: it reads the files with zipfile, json and
h5py. The imported network must give Keras' own outputs, and the gates of a reference written
from Keras' ConvLSTMCell equations (``reference_convlstms.keras_stack``, itself checked against
Keras' layer outputs), to 1e-5.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - another backend chosen outside
    pytest.skip("these tests write Keras files on the torch backend", allow_module_level=True)

from model.checkpoint import has_forecast_head, load_checkpoint  # noqa: E402
from model.import_weights import main  # noqa: E402
from tests.model.reference_convlstms import keras_stack  # noqa: E402

ATOL = 1e-5
SIZE, CHANNELS, STEPS = 6, 2, 4


def convlstm_model(*, head="conv3d_1x1", sequential=False, **cell):
    """Two ConvLSTM2D layers (3 and 4 filters) over 6x6x2 frames, then ``head``, random weights."""
    keras.utils.set_random_seed(0)
    options = dict(padding="same", return_sequences=True) | cell
    layers = [
        keras.layers.ConvLSTM2D(3, 3, name="lstm_a", **options),
        keras.layers.ConvLSTM2D(4, 3, name="lstm_b", **options),
    ]
    if head == "conv3d_1x1":
        layers.append(keras.layers.Conv3D(CHANNELS, 1, activation="sigmoid", name="readout"))
    elif head == "conv3d_3x3x3":  # Keras' next-frame example: mixes time steps
        layers.append(keras.layers.Conv3D(CHANNELS, 3, padding="same", activation="sigmoid"))
    elif head == "batchnorm_between":
        layers.insert(1, keras.layers.BatchNormalization(name="bn"))
    shape = (None, SIZE, SIZE, CHANNELS)
    if sequential:
        model = keras.Sequential([keras.Input(shape), *layers])
    else:
        inputs = keras.Input(shape)
        x = inputs
        for layer in layers:
            x = layer(x)
        model = keras.Model(inputs, x)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # random biases too, so no zero hides a wrong gate order
        layer.set_weights(
            [rng.normal(0, 0.4, w.shape).astype("float32") for w in layer.get_weights()]
        )
    return model


def import_file(model, tmp_path, suffix: str, *extra) -> tuple:
    path = tmp_path / f"model{suffix}"
    model.save(path)
    out = tmp_path / f"ckpt{suffix.replace('.', '_')}"
    main(["keras", str(path), "--out", str(out), *map(str, extra)])
    return load_checkpoint(out, device="cpu")


def our_run(net, frames_last: np.ndarray):
    """Teacher-forced predictions ``[B, T, H, W, C]`` and gates ``[step][layer]`` channels-last."""
    record = {}

    def hook(layer, step, gates):
        record[(step, layer)] = [g.detach().double().permute(0, 2, 3, 1) for g in gates]

    frames = torch.from_numpy(frames_last).permute(0, 1, 4, 2, 3)  # [B, T, C, H, W]
    with torch.no_grad():
        if net.head is None:
            net.encode(frames, gate_hook=hook)
            predictions = None
        else:
            predictions = net.one_step(frames, gate_hook=hook)[0].permute(0, 1, 3, 4, 2).numpy()
    steps = frames.shape[1]
    return predictions, [[record[(s, n)] for n in range(len(net.cells))] for s in range(steps)]


def assert_same_gates(ours, reference):
    for step, (a_layers, b_layers) in enumerate(zip(ours, reference, strict=True)):
        for layer, (a, b) in enumerate(zip(a_layers, b_layers, strict=True)):
            for k, (x, y) in enumerate(zip(a, b, strict=True)):
                np.testing.assert_allclose(x.numpy(), y.numpy(), atol=ATOL,
                                           err_msg=f"step {step} layer {layer} gate {k}")  # fmt: skip


def reference_gates(model, frames):
    """Keras-equation gates, after checking the reference's hidden states against Keras'."""
    cells = [layer for layer in model.layers if isinstance(layer, keras.layers.ConvLSTM2D)]
    reference = keras_stack(frames, [tuple(layer.get_weights()) for layer in cells])
    for n, layer in enumerate(cells):  # the reference is Keras: its h equals the layer's output
        keras_h = keras.ops.convert_to_numpy(keras.Model(model.inputs, layer.output)(frames))
        ref_h = np.stack([reference[s][n][5].numpy() for s in range(frames.shape[1])], axis=1)
        np.testing.assert_allclose(ref_h, keras_h, atol=ATOL)
    return reference


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("sequential", [False, True], ids=["functional", "sequential"])
def test_keras_import_gives_keras_outputs_and_gates(tmp_path, suffix, sequential):
    model = convlstm_model(sequential=sequential)
    net, meta = import_file(model, tmp_path, suffix)
    assert has_forecast_head(meta) and net.config.readout == "top_layer"
    assert net.config.frame_size == (SIZE, SIZE) and net.config.output_activation == "sigmoid"
    assert meta["imported_from"]["file"] == f"model{suffix}"
    frames = np.random.default_rng(2).random((2, STEPS, SIZE, SIZE, CHANNELS), dtype=np.float32)
    predictions, gates = our_run(net, frames)
    keras_out = keras.ops.convert_to_numpy(model(frames))  # [B, T, H, W, C]
    np.testing.assert_allclose(predictions, keras_out, atol=ATOL)
    assert_same_gates(gates, reference_gates(model, frames))


def test_a_head_that_mixes_time_steps_gives_an_inspect_mode_import(tmp_path):
    model = convlstm_model(head="conv3d_3x3x3")
    net, meta = import_file(model, tmp_path, ".keras")
    assert not has_forecast_head(meta) and net.head is None
    assert any("mixes neighbouring pixels or time steps" in note for note in meta["notes"])
    frames = np.random.default_rng(3).random((1, STEPS, SIZE, SIZE, CHANNELS), dtype=np.float32)
    _, gates = our_run(net, frames)
    assert_same_gates(gates, reference_gates(model, frames))


def test_frame_size_comes_from_the_input_or_from_frame_size(tmp_path, capsys):
    path = tmp_path / "model.keras"
    convlstm_model().save(path)
    with pytest.raises(SystemExit):  # a size other than the model's input
        main(["keras", str(path), "--out", str(tmp_path / "a"), "--frame-size", "5", "9"])
    assert "differs from the 6x6 frames" in capsys.readouterr().err
    # Keras 2 models could take frames of any size (batch shape [None, None, None, None, C]);
    # Keras 3 fixes the size, so such a config is written here by hand
    anysize = tmp_path / "anysize.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(anysize, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][0]["config"]["batch_shape"] = [None] * 4 + [CHANNELS]
                data = json.dumps(config)
            dst.writestr(info, data)
    with pytest.raises(SystemExit):
        main(["keras", str(anysize), "--out", str(tmp_path / "b")])
    assert "--frame-size" in capsys.readouterr().err
    main(["keras", str(anysize), "--out", str(tmp_path / "b"), "--frame-size", "5", "9"])
    net, _ = load_checkpoint(tmp_path / "b", device="cpu")
    assert net.config.frame_size == (5, 9) and net.head is not None


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation='hard_sigmoid'"),
        ({"activation": "relu"}, "activation='relu'"),
        ({"padding": "valid"}, "padding='valid'"),
        ({"head": "batchnorm_between"}, "'bn' (BatchNormalization)"),
    ],
)
def test_what_the_engine_cannot_compute_is_refused_naming_layer_and_setting(
    tmp_path, capsys, options, named
):
    model = convlstm_model(**options)
    with pytest.raises(SystemExit) as exit_info:
        import_file(model, tmp_path, ".keras")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and named in err and ("'lstm_a'" in err or "'bn'" in err), err
    assert not (tmp_path / "ckpt_keras").exists()


def test_weights_only_and_damaged_files_are_refused(tmp_path, capsys):
    import h5py

    model = convlstm_model()
    weights_only = tmp_path / "only.weights.h5"
    model.save_weights(weights_only)
    with pytest.raises(SystemExit):
        main(["keras", str(weights_only), "--out", str(tmp_path / "a")])
    assert "no model_config" in capsys.readouterr().err

    legacy = tmp_path / "linked.h5"
    model.save(legacy)
    with h5py.File(legacy, "a") as h5:  # a link into another file: refused before reading
        h5["model_weights/elsewhere"] = h5py.ExternalLink("/etc/other.h5", "/data")
    with pytest.raises(SystemExit):
        main(["keras", str(legacy), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert "linked.h5" in err and "refers to another file" in err

    archive = tmp_path / "partial.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(SystemExit):
        main(["keras", str(archive), "--out", str(tmp_path / "c")])
    assert "without model.weights.h5" in capsys.readouterr().err

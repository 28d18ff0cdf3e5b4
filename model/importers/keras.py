"""Keras ``ConvLSTM2D`` stacks -> this engine, read with ``zipfile``, ``json`` and ``h5py`` only.

No TensorFlow or Keras is imported: nothing in the file is executed or deserialised as objects.

Files
-----
- ``.keras`` (Keras 3): a zip of ``config.json`` (the model config) and ``model.weights.h5``
  (``layers/KEY/cell/vars/0..2``: kernel, recurrent kernel, bias of a ConvLSTM2D;
  ``layers/KEY/vars/0..1`` of a convolution; ``KEY`` is the class name in snake case with a
  counter, ``conv_lstm2d_1``, and ``layers/KEY/vars`` holds the layer's name in its attribute
  ``name``). Its members are checked before anything is read
  (:func:`datasets.untrusted.check_zip`), and the weights file, extracted to a temporary folder,
  like any HDF5 file (:func:`datasets.untrusted.check_hdf5`).
- legacy ``.h5`` (``model.save("m.h5")``, Keras 2 and 3): the config in the root attribute
  ``model_config``, weights under ``model_weights/NAME`` as listed by its ``weight_names``.

The equations (Keras' ``ConvLSTMCell``)::

    kernel (kh, kw, C_in, 4*f), recurrent_kernel (kh, kw, f, 4*f), bias (4*f): blocks i, f, c, o
    i = σ(W_xi * x + W_hi * h + b_i);  f = σ(W_xf * x + W_hf * h + b_f)
    c = f*c + i*tanh(W_xc * x + W_hc * h + b_c);  o = σ(W_xo * x + W_ho * h + b_o)
    h = o*tanh(c)                                                  # no peepholes

with ``activation``/``recurrent_activation`` from the config. What the engine cannot compute is
refused, naming the layer and the setting: another activation (Keras 2's default
``hard_sigmoid`` included), padding other than ``"same"``, strides or dilation other than 1,
non-square or even kernels, ``go_backwards``, layers other than ConvLSTM2D between them, a
model that is not one chain of layers. ``return_sequences`` must be set on every ConvLSTM2D but the
last. A last layer that is a per-frame 1x1 convolution (``Conv3D`` with kernel 1x1x1 after
``return_sequences=True``, or ``Conv2D`` 1x1 after ``return_sequences=False``) with a linear or
sigmoid activation becomes the head (``readout="top_layer"``); any other last layer (e.g. the
3x3x3 ``Conv3D`` of Keras' next-frame example, which mixes time steps) gives an inspect-mode
checkpoint (no head), and the card says why.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datasets.errors import DatasetError
from datasets.untrusted import check_hdf5, check_zip
from model.checkpoint import CheckpointError, _parse_json
from model.convlstm import ConvLSTMConfig, reorder_gates
from model.importers.common import Imported, build, one_kernel, refuse, resolve_frame_size

GATE_ORDER = ("input", "forget", "cell", "output")
"""Keras splits kernel, recurrent kernel and bias into i, f, c (candidate), o."""
PROJECT = "Keras ConvLSTM2D (keras.layers.ConvLSTM2D)"
MAX_FILE_BYTES = 1 << 30
"""Largest declared size of a ``.keras`` zip's members and of the weights in an HDF5 file."""
MAX_CONFIG_BYTES = 16 << 20
"""Largest model config read (``config.json`` or the ``model_config`` attribute)."""
READOUT_ACTIVATIONS = {"linear": "none", "sigmoid": "sigmoid"}
"""Activations of a head layer the engine applies (Keras name -> ``output_activation``)."""


@dataclass(frozen=True)
class _Cell:
    """One ConvLSTM2D layer of the config."""

    name: str
    filters: int
    kernel: int
    use_bias: bool
    return_sequences: bool
    channels_first: bool


@dataclass(frozen=True)
class _Head:
    """A last layer usable as the 1x1 head."""

    name: str
    kind: str  # "Conv3D" or "Conv2D"
    filters: int
    use_bias: bool
    activation: str  # our output_activation


@dataclass
class _Plan:
    """What the model config says: input shape, the ConvLSTM2D chain, the head or why none."""

    cells: list[_Cell]
    frame: tuple[int, int] | None
    head: _Head | None
    no_head: str | None  # why the last layer is not a head (None: there is no last layer)


def read(
    path: str | Path,
    *,
    frame_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
) -> Imported:
    """Read a Keras model of ConvLSTM2D layers from a ``.keras`` or legacy ``.h5`` file.

    Parameters
    ----------
    path : path
        The saved model (``model.save(...)``); a weights-only file is refused (no config).
    frame_size : (int, int), optional
        ``(H, W)``; required when the model's input does not fix the frame size.
    patch_size : int, optional
        Must be None or 1: Keras' ConvLSTM2D does not patch frames.

    Returns
    -------
    Imported
        ``readout="top_layer"`` with the head found, or ``"none"`` (inspect mode).
    """
    path = Path(path)
    if patch_size not in (None, 1):
        raise refuse(path, "Keras' ConvLSTM2D does not patch frames: leave out --patch-size")
    with tempfile.TemporaryDirectory(prefix="convlstm-import-") as tmp:
        config, weights_path, layout = _open(path, Path(tmp))
        plan = parse_config(config, path)
        tensors = _read_weights(weights_path, layout, plan, path)
    return _imported(plan, tensors, frame_size, path)


# -- files -------------------------------------------------------------------------------------
def _open(path: Path, tmp: Path) -> tuple[dict, Path, str]:
    """``(model config, HDF5 weights file, "keras" | "legacy")`` of a checked file."""
    if zipfile.is_zipfile(path):
        return (*_open_keras(path, tmp), "keras")
    _check_hdf5(path, path)
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except OSError as exc:
        raise refuse(path, f"cannot be read as HDF5 ({type(exc).__name__})") from None
    if raw is None:
        raise refuse(
            path,
            "holds no model_config (a weights-only file?): save the whole model with "
            "model.save('NAME.keras') and import that",
        )
    raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(raw) > MAX_CONFIG_BYTES:
        raise refuse(path, f"its model_config is over {MAX_CONFIG_BYTES:,} bytes")
    return _json(raw, f"{path.name}: model_config", path), path, "legacy"


def _open_keras(path: Path, tmp: Path) -> tuple[dict, Path]:
    """Config and extracted weights of a ``.keras`` zip, its members checked first."""
    try:
        check_zip(path, max_bytes=MAX_FILE_BYTES)
    except DatasetError as exc:
        raise CheckpointError(str(exc), path=path) from None
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        missing = [m for m in ("config.json", "model.weights.h5") if m not in infos]
        if missing:
            raise refuse(
                path,
                f"is a zip without {' and '.join(missing)}; expected a Keras 3 model saved with "
                "model.save('NAME.keras')",
            )
        if infos["config.json"].file_size > MAX_CONFIG_BYTES:
            raise refuse(path, f"its config.json is over {MAX_CONFIG_BYTES:,} bytes")
        config = _json(archive.read("config.json"), f"{path.name}: config.json", path)
        weights = tmp / "model.weights.h5"  # a fixed name: nothing from the zip names a path
        with archive.open(infos["model.weights.h5"]) as src, open(weights, "wb") as dst:
            shutil.copyfileobj(src, dst)
    _check_hdf5(weights, path)
    return config, weights


def _check_hdf5(weights: Path, path: Path) -> None:
    """:func:`datasets.untrusted.check_hdf5`, its refusal naming the imported file."""
    try:
        check_hdf5(weights, max_bytes=MAX_FILE_BYTES)
    except DatasetError as exc:
        text = str(exc)
        raise CheckpointError(
            text if weights == path else f"{path.name}: {text}", path=path
        ) from None


def _json(raw: bytes, where: str, path: Path) -> dict:
    config = _parse_json(raw, where, path)  # UTF-8, nesting bounded
    if not isinstance(config, dict):
        raise refuse(path, "its model config is not a JSON object")
    return config


# -- config ------------------------------------------------------------------------------------
def parse_config(config: dict, path: Path) -> _Plan:
    """The ConvLSTM2D chain of a Keras model config, each setting checked.

    Parameters
    ----------
    config : dict
        ``{"class_name": "Sequential" | "Functional" | "Model", "config": {"layers": [...]}}``.
    path : Path
        The file (for messages).

    Returns
    -------
    _Plan
    """
    kind, body = config.get("class_name"), config.get("config")
    layers = body.get("layers") if isinstance(body, dict) else None
    if kind not in ("Sequential", "Functional", "Model") or not isinstance(layers, list):
        raise refuse(
            path,
            f"its config describes a {kind!r}, not a Sequential or Functional model of layers",
        )
    layers = [layer for layer in layers if isinstance(layer, dict)]
    if kind != "Sequential":
        _check_chain(layers, path)
    shape, cells, head, no_head = None, [], None, None
    for index, layer in enumerate(layers):
        cls, cfg = layer.get("class_name"), layer.get("config")
        cfg = cfg if isinstance(cfg, dict) else {}
        name = str(cfg.get("name") or layer.get("name") or f"#{index}")
        shape = shape or cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if cls == "InputLayer":
            continue
        if cls == "ConvLSTM2D" and head is None and no_head is None:
            cells.append(_cell(cfg, name, path))
        elif index == len(layers) - 1 and cells:
            head, no_head = _head(cls, cfg, name, cells[-1])
        else:
            raise refuse(
                path,
                f"layer {name!r} ({cls}) cannot be expressed by this engine: it reads a chain of "
                "ConvLSTM2D layers with at most one 1x1 readout layer after them",
            )
    if not cells:
        raise refuse(path, "its model has no ConvLSTM2D layer")
    for cell in cells[:-1]:
        if not cell.return_sequences:
            raise refuse(
                path,
                f"layer {cell.name!r} (ConvLSTM2D): return_sequences=False feeds the next layer "
                "one frame only; this engine steps every layer per frame",
            )
    return _Plan(cells, _frame_of(shape, cells[0]), head, no_head)


def _inbound(layer: dict) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 ``keras_history`` and Keras 2 nodes)."""
    names: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])  # [layer_name, node_index, tensor_index, ...]
                return
            for value in node:
                walk(value)

    walk(layer.get("inbound_nodes", []))
    return names


def _check_chain(layers: list[dict], path: Path) -> None:
    """Refuse a functional model that is not one chain (each layer reads the one before)."""
    previous = None
    for layer in layers:
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(layer.get("name") or cfg.get("name"))
        feeds = _inbound(layer)
        if layer.get("class_name") != "InputLayer" and feeds != [previous]:
            raise refuse(
                path,
                f"layer {name!r} reads {feeds or 'nothing'}, not the layer before it "
                f"({previous!r}); only a plain chain of layers can be imported",
            )
        previous = name


def _setting(cfg: dict, key: str, name: str, ok, need: str, path: Path):
    """``cfg[key]`` if ``ok(value)``; else refuse naming layer ``name`` and the setting."""
    value = cfg.get(key)
    if isinstance(value, dict):  # a serialised built-in: {"class_name": ..., "config": "tanh"}
        value = value.get("config") if isinstance(value.get("config"), str) else value
    if not ok(value):
        raise refuse(
            path,
            f"layer {name!r} (ConvLSTM2D): {key}={value!r} cannot be expressed by this engine; "
            f"it needs {need}",
        )
    return value


def _ones(value) -> bool:
    return isinstance(value, list | tuple | int) and set(np.atleast_1d(value).tolist()) == {1}


def _cell(cfg: dict, name: str, path: Path) -> _Cell:
    """A ConvLSTM2D layer's settings, each checked against what the engine computes."""
    _setting(cfg, "activation", name, lambda v: v == "tanh", "'tanh'", path)
    _setting(cfg, "recurrent_activation", name, lambda v: v == "sigmoid",
             "'sigmoid' (hard_sigmoid is a piecewise-linear clip the engine does not compute)",
             path)  # fmt: skip
    _setting(cfg, "padding", name, lambda v: v == "same", "'same' (frames keep their size)", path)
    _setting(cfg, "strides", name, _ones, "strides 1", path)
    _setting(cfg, "dilation_rate", name, _ones, "dilation 1", path)
    _setting(cfg, "go_backwards", name, lambda v: not v, "go_backwards=False", path)
    data_format = _setting(
        cfg, "data_format", name, lambda v: v in (None, "channels_last", "channels_first"),
        "'channels_last' or 'channels_first'", path,
    )  # fmt: skip
    kernel = _setting(
        cfg, "kernel_size", name,
        lambda v: isinstance(v, list | tuple) and len(v) == 2 and v[0] == v[1] and v[0] % 2 == 1,
        "a square kernel of odd size (3x3, 5x5, ...)", path,
    )  # fmt: skip
    filters = _setting(cfg, "filters", name, lambda v: isinstance(v, int) and v > 0,
                       "a positive number of filters", path)  # fmt: skip
    return _Cell(name, filters, int(kernel[0]), bool(cfg.get("use_bias", True)),
                 bool(cfg.get("return_sequences", False)),
                 data_format == "channels_first")  # fmt: skip


def _head(cls, cfg: dict, name: str, last: _Cell) -> tuple[_Head | None, str | None]:
    """``(head, None)`` for a per-frame 1x1 readout layer; ``(None, why not)`` otherwise."""
    size = cfg.get("kernel_size")
    size = list(size) if isinstance(size, list | tuple) else [size]
    shown = f"{cls} {'x'.join(map(str, size))}" if cls in ("Conv3D", "Conv2D") else str(cls)
    per_frame = (cls == "Conv3D" and len(size) == 3 and last.return_sequences) or (
        cls == "Conv2D" and len(size) == 2 and not last.return_sequences
    )
    simple = (
        per_frame
        and _ones(size)
        and _ones(cfg.get("strides", 1))
        and _ones(cfg.get("dilation_rate", 1))
        and cfg.get("groups", 1) == 1
        and isinstance(cfg.get("filters"), int)
    )
    activation = cfg.get("activation")
    if not simple or activation not in READOUT_ACTIVATIONS:
        why = "mixes neighbouring pixels or time steps" if not simple else (
            f"has activation {activation!r}"
        )  # fmt: skip
        return None, (
            f"its last layer {name!r} ({shown}) {why}, which this engine's per-frame 1x1 head "
            "cannot express: imported in inspect mode (gates only, no forecast)"
        )
    return _Head(name, cls, cfg["filters"], bool(cfg.get("use_bias", True)),
                 READOUT_ACTIVATIONS[activation]), None  # fmt: skip


def _frame_of(shape, first: _Cell) -> tuple[int, int] | None:
    """``(H, W)`` from the input's batch shape ``[None, T, H, W, C]`` (``[None, T, C, H, W]``
    channels-first); None when the model takes any frame size."""
    if not isinstance(shape, list | tuple) or len(shape) != 5:
        return None
    h, w = shape[3:5] if first.channels_first else shape[2:4]
    if all(isinstance(s, int) and s > 0 for s in (h, w)):
        return int(h), int(w)
    return None


# -- weights -----------------------------------------------------------------------------------
def _read_weights(weights: Path, layout: str, plan: _Plan, path: Path) -> dict:
    """``{layer name: {"kernel": array, ...}}`` of the cells and the head, float32."""
    import h5py

    layers = [(cell.name, "ConvLSTM2D", n) for n, cell in enumerate(plan.cells)]
    if plan.head:
        layers.append((plan.head.name, plan.head.kind, 0))
    out = {}
    try:
        with h5py.File(weights, "r") as h5:
            for name, kind, ordinal in layers:
                out[name] = (
                    _keras3_vars(h5, name, kind, ordinal, path)
                    if layout == "keras"
                    else _legacy_vars(h5, name, path)
                )
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise refuse(path, f"its weights could not be read ({type(exc).__name__})") from None
    return out


def _array(obj, where: str, path: Path) -> np.ndarray:
    import h5py

    if not isinstance(obj, h5py.Dataset) or obj.dtype.kind != "f":
        raise refuse(path, f"{where} is not an array of floating-point weights")
    return np.asarray(obj[()], dtype=np.float32)


def _keras3_key(h5, name: str, kind: str, ordinal: int) -> str:
    """The ``layers/KEY`` group of layer ``name``: the one whose ``vars`` are named ``name``,
    else Keras' own key (``conv_lstm2d``, ``conv_lstm2d_1``: class in snake case, ``ordinal``-th
    layer of that class)."""
    for key, group in h5.get("layers", {}).items():
        label = group.get("vars").attrs.get("name") if "vars" in group else None
        if (label.decode("utf-8", "replace") if isinstance(label, bytes) else label) == name:
            return key
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", kind))
    return snake.lower() + (f"_{ordinal}" if ordinal else "")


def _keras3_vars(h5, name: str, kind: str, ordinal: int, path: Path) -> dict[str, np.ndarray]:
    """``layers/KEY/cell/vars/0..2`` (a ConvLSTM2D) or ``layers/KEY/vars/0..1`` (a conv)."""
    key, is_cell = _keras3_key(h5, name, kind, ordinal), kind == "ConvLSTM2D"
    where = f"layers/{key}/cell/vars" if is_cell else f"layers/{key}/vars"
    group = h5.get(where)
    if group is None:
        raise refuse(path, f"its model.weights.h5 has no {where} for layer {name!r}")
    roles = ("kernel", "recurrent_kernel", "bias") if is_cell else ("kernel", "bias")
    return {role: _array(group[str(i)], f"{where}/{i}", path)
            for i, role in enumerate(roles) if str(i) in group}  # fmt: skip


def _legacy_vars(h5, name: str, path: Path) -> dict[str, np.ndarray]:
    """``model_weights/NAME/<weight_names>`` of a legacy file, keyed by role (kernel, ...)."""
    group = h5.get(f"model_weights/{name}")
    listed = group.attrs.get("weight_names") if group is not None else None
    if listed is None:
        raise refuse(path, f"has no weights for layer {name!r} under model_weights/")
    out = {}
    for raw in listed:
        weight = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        role = weight.rsplit("/", 1)[-1].split(":")[0]  # "conv_lstm2d/kernel:0" -> "kernel"
        out[role] = _array(group.get(weight), f"model_weights/{name}/{weight}", path)
    return out


# -- the network -------------------------------------------------------------------------------
def _imported(plan: _Plan, tensors: dict, frame_size, path: Path) -> Imported:
    """Our network from the checked plan and the weights."""
    ours, below = {}, None
    for n, cell in enumerate(plan.cells):
        below = _cell_state(cell, tensors[cell.name], n, below, ours, path)
    in_channels = tensors[plan.cells[0].name]["kernel"].shape[2]
    notes = ["Gate blocks reordered from Keras' (i, f, c, o) to (input, forget, output, "
             "candidate); kernels transposed from (kh, kw, in, out) to (out, in, kh, kw)."]  # fmt: skip
    head, no_head = plan.head, plan.no_head
    if head is not None and head.filters != in_channels:
        head, no_head = (
            None,
            (
                f"its last layer {head.name!r} gives {head.filters} channels but the model reads "
                f"{in_channels}: a forecast cannot be fed back, so it is imported in inspect mode"
            ),
        )
    if head is not None:
        ours.update(_head_state(head, tensors[head.name], plan.cells[-1].filters, path))
        notes.append(f"Head: the last layer {head.name!r} ({head.kind} 1x1, activation "
                     f"{head.activation}) reads the top ConvLSTM2D layer at every frame.")  # fmt: skip
    elif no_head:
        notes.append(no_head[0].upper() + no_head[1:] + ".")
    else:
        notes.append("No layer after the ConvLSTM2D stack: inspect mode (gates only).")
    config = ConvLSTMConfig(
        in_channels=int(in_channels),
        hidden_channels=tuple(cell.filters for cell in plan.cells),
        kernel_size=one_kernel([cell.kernel for cell in plan.cells], path),
        frame_size=resolve_frame_size(
            frame_size, plan.frame, path,
            "its input does not fix the frame size: pass --frame-size H W",
        ),
        peephole=False,
        output_activation=head.activation if head else "none",
        readout="top_layer" if head else "none",
        readout_bias=head.use_bias if head else True,
    )  # fmt: skip
    return Imported(build(config, ours, path), "keras", GATE_ORDER, notes)


def _cell_state(cell: _Cell, arrays: dict, n: int, below: int | None, ours: dict, path) -> int:
    """Layer ``n``'s tensors into ``ours`` (our names, layout, gate order); its filters."""
    kernel, recurrent = arrays.get("kernel"), arrays.get("recurrent_kernel")
    bias = arrays.get("bias")
    k, f = cell.kernel, cell.filters
    cin = kernel.shape[2] if kernel is not None and kernel.ndim == 4 else None
    wanted = {
        "kernel": (kernel, (k, k, below or cin, 4 * f)),
        "recurrent_kernel": (recurrent, (k, k, f, 4 * f)),
        "bias": (bias, (4 * f,) if cell.use_bias else None),
    }
    for role, (array, shape) in wanted.items():
        found = None if array is None else tuple(array.shape)
        if found != shape:
            raise refuse(
                path,
                f"layer {cell.name!r} (ConvLSTM2D): its {role} is {found}, the config needs "
                f"{shape}",
            )
    wx = torch.from_numpy(kernel).permute(3, 2, 0, 1)  # (kh, kw, in, 4f) -> [4f, in, kh, kw]
    wh = torch.from_numpy(recurrent).permute(3, 2, 0, 1)  # [4f, f, kh, kw]
    b = torch.from_numpy(bias) if bias is not None else torch.zeros(4 * f)
    ours[f"cells.{n}.input_conv.weight"] = reorder_gates(wx, GATE_ORDER)
    ours[f"cells.{n}.hidden_conv.weight"] = reorder_gates(wh, GATE_ORDER)
    ours[f"cells.{n}.input_conv.bias"] = reorder_gates(b, GATE_ORDER)
    return f


def _head_state(head: _Head, arrays: dict, top: int, path: Path) -> dict:
    """The head's weight ``[C, f, 1, 1]`` (and bias ``[C]``) from a 1x1 Conv3D/Conv2D kernel."""
    kernel, bias = arrays.get("kernel"), arrays.get("bias")
    if (
        kernel is None
        or kernel.size != top * head.filters
        or kernel.shape[-2:] != (top, head.filters)
    ):
        found = None if kernel is None else tuple(kernel.shape)
        raise refuse(path, f"layer {head.name!r}: its kernel is {found}, expected 1x1 from {top} "
                     f"to {head.filters} channels")  # fmt: skip
    if head.use_bias and (bias is None or tuple(bias.shape) != (head.filters,)):
        raise refuse(path, f"layer {head.name!r}: its bias is missing or not [{head.filters}]")
    weight = torch.from_numpy(kernel.reshape(top, head.filters)).T  # [C, f]
    out = {"head.weight": weight[:, :, None, None].contiguous()}  # [C, f, 1, 1]
    if head.use_bias:
        out["head.bias"] = torch.from_numpy(bias)
    return out

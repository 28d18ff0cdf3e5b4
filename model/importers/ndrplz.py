"""ndrplz/ConvLSTM_pytorch's ``ConvLSTM`` -> this engine, in inspect mode (no head).

The source, as published (``convlstm.py``)::

    cell_list.l.conv = Conv2d(C_in + hid, 4*hid, (kh, kw), padding=(kh//2, kw//2), bias=bias)
    cc_i, cc_f, cc_o, cc_g = split(conv(cat([x, h])), hid)
    i = σ(cc_i); f = σ(cc_f); o = σ(cc_o); g = tanh(cc_g)
    c = f*c + i*g;  h = o*tanh(c)                                      # no peepholes

The layers run one after the other over the whole sequence, which gives the same states as
stepping all layers per frame. ``ConvLSTM`` stacks the cells and returns their states: it has no
forecasting head, so the import is an inspect-mode checkpoint (``readout="none"``) whose gates are
captured over frames (:meth:`model.convlstm.ConvLSTM.encode`). One convolution over
``cat([x, h])`` is split into this engine's ``input_conv`` (the first ``C_in`` input channels,
with the bias) and ``hidden_conv`` (the rest). The weights do not record the frame size
(``--frame-size``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from model.convlstm import ConvLSTMConfig, reorder_gates
from model.importers.common import (
    Imported,
    build,
    count_layers,
    find_prefix,
    one_kernel,
    refuse,
    resolve_frame_size,
    square_odd_kernel,
    torch_state,
)

GATE_ORDER = ("input", "forget", "output", "candidate")
"""ndrplz splits its convolution into i, f, o, g (this engine's order too)."""
PROJECT = "ndrplz/ConvLSTM_pytorch ConvLSTM (convlstm.py)"


def read(
    path: str | Path,
    *,
    frame_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
) -> Imported:
    """Read an ndrplz ``ConvLSTM`` state dict (``.pth``) into an inspect-mode network.

    Parameters
    ----------
    path : path
        ``torch.save(convlstm.state_dict())``; a wrapping ``state_dict`` entry and one key prefix
        (the attribute holding the ConvLSTM in a larger model) are accepted.
    frame_size : (int, int)
        ``(H, W)`` of the frames to inspect (required: the weights do not record it).
    patch_size : int, optional
        Must be None or 1: ndrplz's ConvLSTM does not patch frames.

    Returns
    -------
    Imported
        A ``readout="none"`` network without peepholes.
    """
    path = Path(path)
    if patch_size not in (None, 1):
        raise refuse(path, "ndrplz's ConvLSTM does not patch frames: leave out --patch-size")
    state = torch_state(path)
    prefix = find_prefix(state, "cell_list.0.conv.weight", path, "ndrplz ConvLSTM")
    n_layers = count_layers(state, prefix, "conv.weight")
    ours, inputs, hidden, kernels = {}, [], [], []
    with_bias = f"{prefix}cell_list.0.conv.bias" in state
    for n in range(n_layers):
        below = hidden[-1] if hidden else None
        cin, tensors = _layer(state, f"{prefix}cell_list.{n}.", n, below, with_bias, path)
        ours.update({f"cells.{n}.{name}": t for name, t in tensors.items()})
        hidden.append(tensors["hidden_conv.weight"].shape[1])
        kernels.append(tensors["hidden_conv.weight"].shape[-1])
        inputs.append(cin)
    _check_leftovers(state, prefix, n_layers, path)
    frame = resolve_frame_size(
        frame_size,
        None,
        path,
        "ndrplz's weights do not record the frame size: pass --frame-size H W (the size of the "
        "frames whose gates you will inspect)",
    )
    config = ConvLSTMConfig(
        in_channels=inputs[0],
        hidden_channels=tuple(hidden),
        kernel_size=one_kernel(kernels, path),
        frame_size=frame,
        peephole=False,
        readout="none",
    )
    notes = [
        "ndrplz's gate order (i, f, o, g) is this engine's; its convolution over cat([x, h]) is "
        "split into input_conv and hidden_conv.",
        "No forecasting head (ndrplz's ConvLSTM returns states only): an inspect-mode "
        "checkpoint, whose gates are shown over frames you give it; nothing is forecast.",
    ]
    if not with_bias:
        notes.append("Built with bias=False: the gate biases are zero.")
    return Imported(build(config, ours, path), "ndrplz", GATE_ORDER, notes)


def _layer(
    state: dict, base: str, n: int, below: int | None, with_bias: bool, path: Path
) -> tuple[int, dict]:
    """Layer ``n`` (keys ``base + "conv.weight"``, ...) checked against the layer below (``below``
    hidden channels): its input channels and its tensors in this engine's names and gate order."""
    weight = state[base + "conv.weight"]  # [4*hid, C_in+hid, kh, kw]
    bias = state.get(base + "conv.bias")  # [4*hid]
    if weight.dim() != 4 or weight.shape[0] % 4:
        raise refuse(
            path,
            f"layer {n}: conv.weight {tuple(weight.shape)} is not a 2D convolution with 4 x "
            "hidden output channels",
        )
    hid = weight.shape[0] // 4
    cin = weight.shape[1] - hid
    if cin < 1 or (below is not None and cin != below):
        want = "at least one input channel" if below is None else f"{below} input channels"
        raise refuse(
            path,
            f"layer {n}: conv.weight {tuple(weight.shape)} reads {cin} input and {hid} hidden "
            f"channels, expected {want} (the hidden channels of the layer below)",
        )
    if (bias is not None) != with_bias or (bias is not None and tuple(bias.shape) != (4 * hid,)):
        raise refuse(path, f"layer {n}: conv.bias is missing, extra or not [4*hid]")
    square_odd_kernel(weight.shape[-2:], f"layer {n}", path)
    return cin, {
        "input_conv.weight": reorder_gates(weight[:, :cin], GATE_ORDER),  # [4*hid, C_in, k, k]
        "hidden_conv.weight": reorder_gates(weight[:, cin:], GATE_ORDER),  # [4*hid, hid, k, k]
        "input_conv.bias": reorder_gates(bias, GATE_ORDER) if bias is not None
        else torch.zeros(4 * hid),
    }  # fmt: skip


def _check_leftovers(state: dict, prefix: str, n_layers: int, path: Path) -> None:
    used = {f"{prefix}cell_list.{n}.conv.{t}" for n in range(n_layers) for t in ("weight", "bias")}
    extra = sorted(k for k in state if k not in used)
    if extra:
        raise refuse(
            path,
            f"holds tensors an ndrplz ConvLSTM does not have ({', '.join(extra[:4])}"
            f"{', ...' if len(extra) > 4 else ''}); save the ConvLSTM's state_dict alone",
        )

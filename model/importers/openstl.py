"""OpenSTL's ConvLSTM (``openstl.models.ConvLSTM_Model``) -> this engine.

The source, as published (``openstl/modules/convlstm_modules.py``, ``openstl/models/
convlstm_model.py``)::

    cell_list.l.conv_x = Sequential(Conv2d(C_in, 4*nh, k, padding=k//2, bias=False)
                                    [, LayerNorm([4*nh, h, w])])       # with configs.layer_norm
    cell_list.l.conv_h = Sequential(Conv2d(nh, 4*nh, k, bias=False) [, LayerNorm(...)])
    i_x, f_x, g_x, o_x = split(conv_x(x), nh);  i_h, f_h, g_h, o_h = split(conv_h(h), nh)
    i = σ(i_x + i_h); f = σ(f_x + f_h); g = tanh(g_x + g_h)
    c = f*c + i*g;  o = σ(o_x + o_h);  h = o*tanh(c)                   # no peepholes
    conv_last = Conv2d(nh_top, p*p*C, 1, bias=False)                   # reads the top layer only

Frames are patched by ``reshape_patch`` (channels-last ``[B, T, H, W, C]`` to
``[B, T, H/p, W/p, p*p*C]``: patched channel ``(p1*p + p2)*C + c``); this engine patches
``b t c (h p1) (w p2) -> b t (c p1 p2) h w`` (channel ``c*p*p + p1*p + p2``), so the input
channels of layer 0 and the output channels of ``conv_last`` are permuted
(:func:`patch_permutation`). The cell's ``_forget_bias`` is set but never used by its forward,
and each cell also builds ``conv_o`` and its own ``conv_last``, which its forward never calls:
those tensors are left out. The weights do not record the patch size (``--patch-size``); the frame
size is read from the LayerNorm shapes, or given (``--frame-size``). Convolutions run with
stride 1 (OpenSTL's default, the only one under which its states keep their size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

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

GATE_ORDER = ("input", "forget", "candidate", "output")
"""OpenSTL splits each gate convolution into i, f, g, o."""
PROJECT = "OpenSTL ConvLSTM_Model (openstl/models/convlstm_model.py)"
UNUSED = ("conv_o.", "conv_last.")
"""Built in each OpenSTL ConvLSTMCell, never used in its forward: not imported."""


def patch_permutation(channels: int, patch: int) -> Tensor:
    """For each of our patched channels ``(c p1 p2)``, the index of that pixel in OpenSTL's
    ``(p1 p2 c)`` order: ``ours = theirs[..., perm]``.

    Parameters
    ----------
    channels, patch : int
        Frame channels ``C`` and patch size ``p``.

    Returns
    -------
    Tensor
        ``[C*p*p]`` int64.
    """
    c, p1, p2 = np.meshgrid(range(channels), range(patch), range(patch), indexing="ij")
    return torch.as_tensor(((p1 * patch + p2) * channels + c).ravel(), dtype=torch.int64)


def read(
    path: str | Path,
    *,
    frame_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
) -> Imported:
    """Read an OpenSTL ``ConvLSTM_Model`` state dict (``.pth``) into a forecasting network.

    Parameters
    ----------
    path : path
        ``torch.save(model.state_dict())`` of OpenSTL's ConvLSTM (a wrapping ``state_dict`` entry
        and one key prefix such as ``model.`` are accepted).
    frame_size : (int, int), optional
        ``(H, W)`` of the frames; required when the cells have no LayerNorm (which records it).
    patch_size : int
        OpenSTL's ``patch_size`` (not recorded in the weights).

    Returns
    -------
    Imported
        A ``readout="top_layer"`` network without head bias or peepholes, ``layer_norm`` as the
        source.
    """
    path = Path(path)
    if patch_size is None:
        raise refuse(
            path,
            "OpenSTL's weights do not record the patch size: pass --patch-size P (the "
            "patch_size of its config; 4 in OpenSTL's Moving MNIST ConvLSTM, 1 for none)",
        )
    state = torch_state(path)
    prefix = find_prefix(state, "cell_list.0.conv_x.0.weight", path, "OpenSTL ConvLSTM_Model")
    layers = [_layer(state, prefix, n, path) for n in range(_count(state, prefix))]
    frame_channel = layers[0]["wx"].shape[1]
    if patch_size < 1 or frame_channel % patch_size**2:
        raise refuse(
            path,
            f"layer 0 reads {frame_channel} patched channels, not a multiple of --patch-size "
            f"{patch_size} squared; give the patch_size of the OpenSTL config",
        )
    channels = frame_channel // patch_size**2
    layer_norm = _same_layer_norm(layers, path)
    grid = tuple(layers[0]["norms"][0].shape[1:]) if layer_norm else None
    frame = resolve_frame_size(
        frame_size,
        (grid[0] * patch_size, grid[1] * patch_size) if grid else None,
        path,
        "its cells have no LayerNorm, so the weights do not record the frame size: pass "
        "--frame-size H W (the in_shape of the OpenSTL config)",
    )
    hidden = [int(layer["wh"].shape[1]) for layer in layers]
    head = _head(state, prefix, frame_channel, hidden[-1], path)
    config = ConvLSTMConfig(
        in_channels=channels,
        hidden_channels=tuple(hidden),
        kernel_size=one_kernel([layer["k"] for layer in layers], path),
        patch_size=patch_size,
        frame_size=frame,
        peephole=False,
        layer_norm=layer_norm,
        readout="top_layer",
        readout_bias=False,
    )
    perm = patch_permutation(channels, patch_size)
    ours = _our_state(layers, perm)
    ours["head.weight"] = head[perm]
    _check_leftovers(state, prefix, len(layers), path)
    notes = [
        f"Gate blocks reordered from OpenSTL's (i, f, g, o) to ({', '.join(GATE_ORDER[:2])}, "
        "output, candidate).",
        "Patched channels permuted from OpenSTL's reshape_patch order (p1 p2 c) to this "
        "engine's (c p1 p2)." if channels > 1 and patch_size > 1 else
        "Patch order: OpenSTL's (p1 p2 c) equals this engine's (c p1 p2) for one channel.",
        "Left out: conv_o and conv_last of each cell (OpenSTL builds them but its ConvLSTM "
        "forward never uses them); OpenSTL's _forget_bias is likewise unused (no forget bias).",
        "Convolutions assumed with stride 1 (OpenSTL's default; the weights do not record it).",
    ]  # fmt: skip
    return Imported(build(config, ours, path), "openstl", GATE_ORDER, notes)


def _count(state: dict, prefix: str) -> int:
    return count_layers(state, prefix, "conv_x.0.weight")


def _layer(state: dict, prefix: str, n: int, path: Path) -> dict:
    """The tensors of OpenSTL layer ``n``: ``wx``, ``wh``, ``k`` and the LayerNorms or None."""
    base = f"{prefix}cell_list.{n}."
    wx = state[base + "conv_x.0.weight"]  # [4*nh, C_in, k, k]
    wh = state.get(base + "conv_h.0.weight")  # [4*nh, nh, k, k]
    if wh is None or wx.dim() != 4 or wh.dim() != 4:
        raise refuse(path, f"layer {n} lacks conv_h.0.weight or has non-2D convolutions")
    nh = wh.shape[1]
    if wx.shape[0] != 4 * nh or tuple(wh.shape[:2]) != (4 * nh, nh):
        raise refuse(
            path,
            f"layer {n}: conv_x {tuple(wx.shape)} and conv_h {tuple(wh.shape)} are not the "
            "gate convolutions of one ConvLSTM cell (4*nh outputs, nh hidden channels)",
        )
    k = square_odd_kernel(wx.shape[-2:], f"layer {n} conv_x", path)
    if tuple(wh.shape[-2:]) != (k, k):
        raise refuse(path, f"layer {n}: conv_h's kernel differs from conv_x's")
    names = [
        base + s for s in ("conv_x.1.weight", "conv_x.1.bias", "conv_h.1.weight", "conv_h.1.bias")
    ]
    present = [name in state for name in names]
    if any(present) and not all(present):
        raise refuse(path, f"layer {n} has some LayerNorm tensors but not all four")
    norms = tuple(state[name] for name in names) if all(present) else None
    if norms and any(tuple(t.shape[:1]) != (4 * nh,) or t.dim() != 3 for t in norms):
        raise refuse(path, f"layer {n}: its LayerNorms are not [4*nh, h, w]")
    return {"wx": wx, "wh": wh, "k": k, "norms": norms}


def _same_layer_norm(layers: list[dict], path: Path) -> bool:
    """Whether the cells have LayerNorms (all or none, on one latent grid)."""
    kinds = {layer["norms"] is not None for layer in layers}
    if len(kinds) > 1:
        raise refuse(path, "some layers have LayerNorms and others not; OpenSTL sets it for all")
    if True in kinds and len({tuple(layer["norms"][0].shape[1:]) for layer in layers}) > 1:
        raise refuse(path, "its LayerNorms are built for different grids in different layers")
    return True in kinds


def _head(state: dict, prefix: str, frame_channel: int, top: int, path: Path) -> Tensor:
    """``conv_last.weight`` ``[p*p*C, nh_top, 1, 1]`` (the readout; no bias in OpenSTL)."""
    head = state.get(prefix + "conv_last.weight")
    if head is None or tuple(head.shape) != (frame_channel, top, 1, 1):
        found = None if head is None else tuple(head.shape)
        raise refuse(
            path,
            f"the readout conv_last.weight is {found}, expected {(frame_channel, top, 1, 1)} "
            "(a 1x1 convolution from the top layer to the patched frame)",
        )
    return head


def _our_state(layers: list[dict], perm: Tensor) -> dict[str, Tensor]:
    """The cells' tensors in this engine's names, gate order and patch order."""
    ours = {}
    for n, layer in enumerate(layers):
        wx = layer["wx"][:, perm] if n == 0 else layer["wx"]  # layer 0 reads patched frames
        ours[f"cells.{n}.input_conv.weight"] = reorder_gates(wx, GATE_ORDER)
        ours[f"cells.{n}.hidden_conv.weight"] = reorder_gates(layer["wh"], GATE_ORDER)
        if layer["norms"] is None:
            ours[f"cells.{n}.input_conv.bias"] = torch.zeros(layer["wx"].shape[0])  # no bias
            continue
        x_w, x_b, h_w, h_b = (reorder_gates(t, GATE_ORDER) for t in layer["norms"])
        ours.update({
            f"cells.{n}.input_norm.weight": x_w, f"cells.{n}.input_norm.bias": x_b,
            f"cells.{n}.hidden_norm.weight": h_w, f"cells.{n}.hidden_norm.bias": h_b,
        })  # fmt: skip
    return ours


def _check_leftovers(state: dict, prefix: str, n_layers: int, path: Path) -> None:
    """Refuse tensors that are neither imported nor OpenSTL's unused ones (another model)."""
    used = {prefix + "conv_last.weight"}
    for n in range(n_layers):
        base = f"{prefix}cell_list.{n}."
        used |= {base + f"{conv}.{i}.{t}" for conv in ("conv_x", "conv_h") for i in (0, 1)
                 for t in ("weight", "bias")}  # fmt: skip
        used |= {k for k in state if k.startswith(tuple(base + u for u in UNUSED))}
    extra = sorted(k for k in state if k not in used)
    if extra:
        raise refuse(
            path,
            f"holds tensors an OpenSTL ConvLSTM does not have ({', '.join(extra[:4])}"
            f"{', ...' if len(extra) > 4 else ''}); it is another OpenSTL model (PredRNN, ...) "
            "or more than the ConvLSTM: save the ConvLSTM_Model's state_dict alone",
        )

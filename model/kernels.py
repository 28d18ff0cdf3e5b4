"""Speed machinery of the ConvLSTM step: the fused convolution, in-place gates, layouts.

:mod:`model.convlstm` holds the equations; this module holds what makes them fast, mostly on a
CPU, for inference. Each piece computes the same numbers as the reference
:func:`model.convlstm.gate_update` (the tests compare them):

- One convolution per layer and step over ``cat([X_t, H_{t-1}])`` (:func:`conv_step`), the fewest
  the math allows for a recurrent cell; the first step from a zero state convolves the input part
  only (``W_h * 0 = 0``).
- Activations and states on grids of 32x32 pixels and more are kept channels-last (NHWC), the
  layout oneDNN's convolutions read and write without reordering (NCHW measured 5-45% slower
  there); smaller grids stay NCHW (:func:`memory_format_for`).
- Weights are concatenated and cast once per network call to the autocast dtype
  (:class:`StepWeights`), not once per convolution; the gate math runs in float32.
- Eager inference updates the gates in place in the convolution output (:func:`gate_update_`):
  fewer fresh buffers to fault in.
- ``tanh`` on the CPU is computed as ``2 σ(2x) - 1`` (:func:`tanh`, :func:`tanh_`): PyTorch's CPU
  ``tanh`` measured 6x slower than its ``sigmoid`` here.

Process-wide settings (glibc's allocator, :func:`model.runtime.tune_cpu_allocator`) are not made
here: entry points (``bench/rollout.py``, ``model/evaluate.py``, training) apply them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

GateEditFn = Callable[[int, Tensor], Tensor]
"""``edit(k, value) -> value``: an intervention replacing gate or state ``GATES[k]`` (0..5 for
i, f, o, g, C, H) inside the cell update; see :mod:`model.interventions`."""

GateUpdate = Callable[[Tensor, Tensor, Tensor | None], tuple[Tensor, ...]]
"""``update(z, C_{t-1}, peephole) -> (i, f, o, g, C_t, H_t)``: :func:`model.convlstm.gate_update`
(out of place) or :func:`gate_update_` (in place)."""

LAYER_NORM_EPS = 1e-5
"""``eps`` of the LayerNorms of a ``layer_norm`` cell (torch's default, which OpenSTL uses)."""

CHANNELS_LAST_MIN_PIXELS = 32 * 32
"""Latent grids with at least this many pixels run channels-last (NHWC), smaller ones NCHW.

Measured on this project's CPU (oneDNN, bfloat16): NHWC was 5-45% faster per convolution on
32x32 and 64x64 grids, NCHW 20-35% faster on 16x16 grids with 5x5 kernels."""


def memory_format_for(grid_size: tuple[int, int]) -> torch.memory_format:
    """The activation layout used for a latent grid of ``grid_size`` (h, w) pixels."""
    if grid_size[0] * grid_size[1] >= CHANNELS_LAST_MIN_PIXELS:
        return torch.channels_last
    return torch.contiguous_format


def autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The autocast dtype active for ``x``'s device, or None when autocast is off."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


@dataclass(frozen=True)
class StepWeights:
    """A cell's weights prepared for :func:`conv_step`, built once per network call.

    ``weight`` is ``cat([W_x, W_h])`` ``[4*hid, C_in + hid, k, k]`` and ``bias`` ``[4*hid]``, both in
    the compute dtype (bfloat16 under bfloat16 autocast); ``peephole`` is ``[3, hid, h, w]`` float32
    (or None), laid out like the states (:func:`memory_format_for`). ``norms``: the weights and
    biases of the two LayerNorms ``[4*hid, h, w]`` float32 of a ``layer_norm`` cell (then ``bias``
    is None and the step is :func:`layer_norm_step`), None otherwise.
    """

    weight: Tensor
    bias: Tensor | None
    peephole: Tensor | None
    norms: tuple[Tensor, Tensor, Tensor, Tensor] | None = None


def tanh(x: Tensor) -> Tensor:
    """``tanh`` out of place; in CPU inference computed as ``2 σ(2x) - 1`` (see :func:`tanh_`).

    Under ``torch.compile`` (the compiled CPU path) this took a 64x64x64 step from 0.8 to 0.5 ms.
    """
    if x.device.type == "cpu" and not torch.is_grad_enabled():
        return 2 * torch.sigmoid(2 * x) - 1
    return torch.tanh(x)


def tanh_(x: Tensor) -> Tensor:
    """``tanh`` in place, for inference; on the CPU computed as ``2 σ(2x) - 1``.

    PyTorch's CPU ``tanh`` measured 6x slower than its ``sigmoid`` here (386 vs 63 µs for 262k
    float32 values on 2 threads); the identity is exact in real arithmetic and within 2e-7 in
    float32.
    """
    if x.device.type != "cpu":
        return x.tanh_()
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def gate_update_(
    z: Tensor, c: Tensor, peephole: Tensor | None, *, edit: GateEditFn | None = None
) -> tuple[Tensor, ...]:
    """:func:`model.convlstm.gate_update` computed in place in ``z`` (eager inference).

    ``z`` ``[B, 4*hid, h, w]`` float32 is overwritten: ``i``, ``f``, ``o``, ``g`` are views into it.
    ``edit`` replaces gates and states at the same points as in ``gate_update``, with the same
    arithmetic elsewhere, so values an intervention does not touch stay bit for bit the same.
    """
    zi, zf, zo, zg = z.chunk(4, dim=1)  # each [B, hid, h, w], views into z
    if peephole is not None:
        zi.addcmul_(peephole[0], c)  # + W_ci ∘ C_{t-1}
        zf.addcmul_(peephole[1], c)  # + W_cf ∘ C_{t-1}
    i, f, g = zi.sigmoid_(), zf.sigmoid_(), tanh_(zg)
    if edit is not None:
        i, f, g = edit(0, i), edit(1, f), edit(3, g)
    c_next = (f * c).addcmul_(i, g)  # [B, hid, h, w]
    if edit is not None:
        c_next = edit(4, c_next)
    if peephole is not None:
        zo.addcmul_(peephole[2], c_next)  # + W_co ∘ C_t
    o = zo.sigmoid_()
    if edit is None:
        return i, f, o, g, c_next, tanh_(c_next.clone()).mul_(o)
    o = edit(2, o)
    return i, f, o, g, c_next, edit(5, tanh_(c_next.clone()).mul_(o))


def conv_step(
    x: Tensor,
    h: Tensor | None,
    c: Tensor,
    weight: Tensor,
    bias: Tensor,
    peephole: Tensor | None,
    *,
    update: GateUpdate,
    padding: int,
    memory_format: torch.memory_format,
    want_gates: bool = False,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...] | None]:
    """One ConvLSTM step: one convolution over ``cat([X_t, H_{t-1}])``, then the cell equations.

    This is the function :func:`model.rollout.compile_network` compiles.

    Parameters
    ----------
    x, h, c : Tensor
        ``X_t`` ``[B, C_in, h, w]``; ``H_{t-1}``, ``C_{t-1}`` ``[B, hid, h, w]`` float32.
        ``h=None`` stands for a zero ``H_{t-1}``: only the input part is convolved.
    weight, bias, peephole : Tensor
        From :class:`StepWeights`.
    update : callable
        The cell equations on the pre-activation: :func:`model.convlstm.gate_update`, or
        :func:`gate_update_` for eager inference.
    padding : int
        ``k // 2``.
    memory_format : torch.memory_format
        Layout of the convolution input.
    want_gates : bool
        Also return ``(i, f, o, g, C_t, H_t)``.

    Returns
    -------
    (Tensor, Tensor, tuple or None)
        ``H_t``, ``C_t`` ``[B, hid, h, w]`` float32, and the gates when asked.
    """
    if h is None:  # W_h * 0 = 0: the input part of the weight alone
        xh, weight = x.contiguous(memory_format=memory_format), weight[:, : x.shape[1]]
    else:
        xh = torch.cat([x, h.to(x.dtype)], dim=1).contiguous(memory_format=memory_format)
    z = F.conv2d(xh, weight, bias, padding=padding)  # [B, 4*hid, h, w]
    z = z.float()  # bfloat16 under autocast; the gate math runs in float32
    gates = update(z, c, peephole)  # (i, f, o, g, C_t, H_t)
    return gates[5], gates[4], gates if want_gates else None


def layer_norm_step(
    x: Tensor,
    h: Tensor | None,
    c: Tensor,
    weights: StepWeights,
    *,
    update: GateUpdate,
    padding: int,
    memory_format: torch.memory_format,
    want_gates: bool = False,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...] | None]:
    """One step of a ``layer_norm`` cell (OpenSTL's): ``z = LN_x(W_x * X_t) + LN_h(W_h * H_{t-1})``.

    Each convolution's output ``[B, 4*hid, h, w]`` is normalised over ``(4*hid, h, w)`` per sample
    with its own LayerNorm, so the two cannot share one convolution; then the cell equations
    (``update``). Never compiled; arguments as :func:`conv_step`, weights from :class:`StepWeights`
    with ``norms`` set. ``h=None`` (a zero ``H_{t-1}``): ``LN_h(0)`` is exactly ``LN_h``'s bias.
    """
    in_w, in_b, hid_w, hid_b = weights.norms  # each [4*hid, h, w]
    shape = tuple(in_w.shape)
    cin = x.shape[1]
    x = x.contiguous(memory_format=memory_format)
    zx = F.conv2d(x, weights.weight[:, :cin], None, padding=padding).float()  # [B, 4*hid, h, w]
    z = F.layer_norm(zx, shape, in_w, in_b, LAYER_NORM_EPS)
    if h is None:
        z = z + hid_b
    else:
        h = h.to(x.dtype).contiguous(memory_format=memory_format)
        zh = F.conv2d(h, weights.weight[:, cin:], None, padding=padding).float()
        z = z + F.layer_norm(zh, shape, hid_w, hid_b, LAYER_NORM_EPS)
    gates = update(z, c, weights.peephole)  # (i, f, o, g, C_t, H_t)
    return gates[5], gates[4], gates if want_gates else None

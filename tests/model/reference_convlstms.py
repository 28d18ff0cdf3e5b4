"""Other projects' ConvLSTMs written from their published equations, in their own weight layouts.

The importer tests (``test_import_weights.py``) save these networks' weights the way each project
does and check that the imported network computes the same gates and forecasts. Each class keeps
its source's parameter names, gate order and quirks (so its ``state_dict()`` is what a user of
that project would have), and also returns the gates of every step, in this engine's capture
order ``(i, f, o, g, C, H)``, for the comparison.

- :class:`OpenSTLCell`, :class:`OpenSTLModel`: OpenSTL's ``ConvLSTMCell`` and ``ConvLSTM_Model``
  (separate ``conv_x``/``conv_h`` without bias, optional ``LayerNorm([4*nh, h, w])`` after each,
  split i, f, g, o, no forget bias in the step, top-layer ``conv_last`` without bias, the unused
  ``conv_o``/``conv_last`` of each cell), with :func:`reshape_patch` (channels-last, patched
  channel ``(p1*p + p2)*C + c``) and :func:`reshape_patch_back`.
- :class:`NdrplzCell`, :class:`NdrplzConvLSTM`: ndrplz/ConvLSTM_pytorch (one convolution over
  ``cat([x, h])`` with bias, split i, f, o, g; layers run one after the other over the sequence).
- :func:`keras_cell_step`: Keras' ``ConvLSTMCell`` equations on its own arrays (kernel
  ``(kh, kw, in, 4f)``, recurrent kernel ``(kh, kw, f, 4f)``, bias ``(4f,)``, blocks i, f, c, o,
  channels-last states).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


# -- OpenSTL -----------------------------------------------------------------------------------
class OpenSTLCell(nn.Module):
    """OpenSTL's ``ConvLSTMCell(in_channel, num_hidden, height, width, filter_size, stride,
    layer_norm)``, stride 1."""

    def __init__(self, in_channel, num_hidden, height, width, filter_size, layer_norm):
        super().__init__()
        self.num_hidden = num_hidden
        pad = filter_size // 2
        self._forget_bias = 1.0  # set by OpenSTL, never used in its forward

        def branch(cin, cout):
            layers = [nn.Conv2d(cin, cout, filter_size, padding=pad, bias=False)]
            if layer_norm:
                layers.append(nn.LayerNorm([cout, height, width]))
            return nn.Sequential(*layers)

        self.conv_x = branch(in_channel, 4 * num_hidden)
        self.conv_h = branch(num_hidden, 4 * num_hidden)
        self.conv_o = branch(2 * num_hidden, num_hidden)  # built, never used (as in OpenSTL)
        self.conv_last = nn.Conv2d(2 * num_hidden, num_hidden, 1, bias=False)  # likewise

    def forward(self, x_t, h_t, c_t):
        i_x, f_x, g_x, o_x = torch.split(self.conv_x(x_t), self.num_hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h_t), self.num_hidden, dim=1)
        i_t = torch.sigmoid(i_x + i_h)
        f_t = torch.sigmoid(f_x + f_h)
        g_t = torch.tanh(g_x + g_h)
        c_new = f_t * c_t + i_t * g_t
        o_t = torch.sigmoid(o_x + o_h)
        h_new = o_t * torch.tanh(c_new)
        return h_new, c_new, (i_t, f_t, o_t, g_t, c_new, h_new)


class OpenSTLModel(nn.Module):
    """OpenSTL's ``ConvLSTM_Model`` at inference (``mask_true`` all zeros: predictions fed back)."""

    def __init__(self, num_hidden, *, channels, patch, height, width, filter_size, layer_norm):
        super().__init__()
        self.frame_channel = patch * patch * channels
        self.num_hidden = list(num_hidden)
        h, w = height // patch, width // patch
        self.cell_list = nn.ModuleList(
            OpenSTLCell(self.frame_channel if i == 0 else num_hidden[i - 1], nh, h, w,
                        filter_size, layer_norm)
            for i, nh in enumerate(num_hidden)
        )  # fmt: skip
        self.conv_last = nn.Conv2d(num_hidden[-1], self.frame_channel, 1, bias=False)

    def forward(self, frames: Tensor, pre: int, aft: int):
        """``frames`` ``[B, pre, h, w, p*p*C]`` (reshape_patch output) -> predictions
        ``[B, pre+aft-1, h, w, p*p*C]`` and gates ``[step][layer] = (i, f, o, g, c, h)``."""
        frames = frames.permute(0, 1, 4, 2, 3)  # [B, T, p*p*C, h, w]
        b, _, _, height, width = frames.shape
        h_t = [frames.new_zeros(b, nh, height, width) for nh in self.num_hidden]
        c_t = [z.clone() for z in h_t]
        outputs, gates = [], []
        x_gen = None
        for t in range(pre + aft - 1):
            net = frames[:, t] if t < pre else x_gen
            step = []
            for i, cell in enumerate(self.cell_list):
                h_t[i], c_t[i], g = cell(net if i == 0 else h_t[i - 1], h_t[i], c_t[i])
                step.append(g)
            gates.append(step)
            x_gen = self.conv_last(h_t[-1])
            outputs.append(x_gen)
        return torch.stack(outputs, dim=1).permute(0, 1, 3, 4, 2), gates


def reshape_patch(img: Tensor, patch: int) -> Tensor:
    """OpenSTL's ``reshape_patch``: ``[B, T, H, W, C]`` -> ``[B, T, H/p, W/p, p*p*C]``."""
    b, t, height, width, c = img.shape
    a = img.reshape(b, t, height // patch, patch, width // patch, patch, c)
    return a.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, height // patch, width // patch, -1)


def reshape_patch_back(patched: Tensor, patch: int) -> Tensor:
    """OpenSTL's ``reshape_patch_back``: the inverse of :func:`reshape_patch`."""
    b, t, h, w, ch = patched.shape
    c = ch // (patch * patch)
    a = patched.reshape(b, t, h, w, patch, patch, c)
    return a.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, h * patch, w * patch, c)


# -- ndrplz ------------------------------------------------------------------------------------
class NdrplzCell(nn.Module):
    """ndrplz's ``ConvLSTMCell(input_dim, hidden_dim, kernel_size, bias)``."""

    def __init__(self, input_dim, hidden_dim, kernel_size, bias):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.conv = nn.Conv2d(input_dim + hidden_dim, 4 * hidden_dim, kernel_size,
                              padding=(kernel_size[0] // 2, kernel_size[1] // 2), bias=bias)  # fmt: skip

    def forward(self, x, state):
        h_cur, c_cur = state
        cc_i, cc_f, cc_o, cc_g = torch.split(self.conv(torch.cat([x, h_cur], dim=1)),
                                             self.hidden_dim, dim=1)  # fmt: skip
        i, f, o, g = torch.sigmoid(cc_i), torch.sigmoid(cc_f), torch.sigmoid(cc_o), torch.tanh(cc_g)
        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next, (i, f, o, g, c_next, h_next)


class NdrplzConvLSTM(nn.Module):
    """ndrplz's ``ConvLSTM(input_dim, hidden_dim, kernel_size, num_layers, batch_first=True,
    bias)``: each layer runs over the whole sequence, then the next."""

    def __init__(self, input_dim, hidden_dim, kernel_size, num_layers, bias=True):
        super().__init__()
        self.hidden_dim = list(hidden_dim)
        self.cell_list = nn.ModuleList(
            NdrplzCell(input_dim if i == 0 else hidden_dim[i - 1], hidden_dim[i], kernel_size, bias)
            for i in range(num_layers)
        )

    def forward(self, x: Tensor):
        """``x`` ``[B, T, C, H, W]`` -> per layer the ``[B, T, hid, H, W]`` outputs, and gates
        ``[layer][step] = (i, f, o, g, c, h)``."""
        b, t, _, height, width = x.shape
        outputs, gates = [], []
        layer_input = x
        for i, cell in enumerate(self.cell_list):
            h = x.new_zeros(b, self.hidden_dim[i], height, width)
            c = h.clone()
            seq, layer_gates = [], []
            for k in range(t):
                h, c, g = cell(layer_input[:, k], (h, c))
                seq.append(h)
                layer_gates.append(g)
            layer_input = torch.stack(seq, dim=1)
            outputs.append(layer_input)
            gates.append(layer_gates)
        return outputs, gates


# -- Keras -------------------------------------------------------------------------------------
def _conv_same(x: Tensor, kernel: np.ndarray) -> Tensor:
    """Keras' 'same' 2D convolution (cross-correlation) of ``x`` ``[B, H, W, C]`` with a
    ``(kh, kw, in, out)`` kernel -> ``[B, H, W, out]``."""
    w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).double()
    y = F.conv2d(x.permute(0, 3, 1, 2), w, padding=kernel.shape[0] // 2)
    return y.permute(0, 2, 3, 1)


def keras_cell_step(x, h, c, kernel, recurrent_kernel, bias):
    """One step of Keras' ``ConvLSTMCell`` (sigmoid recurrent activation, tanh activation).

    ``x`` ``[B, H, W, C_in]``, ``h``/``c`` ``[B, H, W, f]`` float64 tensors; arrays in Keras'
    layout. Returns ``(h, c, (i, f, o, g, c, h))`` with the gates channels-last.
    """
    z = _conv_same(x, kernel) + _conv_same(h, recurrent_kernel)
    if bias is not None:
        z = z + torch.from_numpy(bias).double()
    zi, zf, zc, zo = torch.split(z, z.shape[-1] // 4, dim=-1)  # Keras' i, f, c, o
    i, f = torch.sigmoid(zi), torch.sigmoid(zf)
    g = torch.tanh(zc)
    c = f * c + i * g
    o = torch.sigmoid(zo)
    h = o * torch.tanh(c)
    return h, c, (i, f, o, g, c, h)


def keras_stack(frames: np.ndarray, layers: list[tuple]) -> list[list[tuple]]:
    """Keras ConvLSTM2D layers over ``frames`` ``[B, T, H, W, C]``: gates ``[step][layer]``.

    ``layers``: ``(kernel, recurrent_kernel, bias)`` per layer (``layer.get_weights()``).
    """
    x = torch.from_numpy(frames).double()
    b, t, height, width, _ = x.shape
    states = [(x.new_zeros(b, height, width, k.shape[-1] // 4),) * 2 for k, _, _ in layers]
    out = []
    for step in range(t):
        inp, step_gates = x[:, step], []
        for n, (kernel, recurrent, bias) in enumerate(layers):
            h, c, g = keras_cell_step(inp, *states[n], kernel, recurrent, bias)
            states[n] = (h, c)
            step_gates.append(g)
            inp = h
        out.append(step_gates)
    return out

"""Start a network from another checkpoint's weights, on another grid if need be (fine-tuning).

The weights of a :class:`model.convlstm.ConvLSTM` are of two kinds:

- convolution kernels and biases (``cells.*.input_conv``, ``cells.*.hidden_conv``, ``head``):
  the same at every pixel, so they do not depend on the grid and are copied as they are;
- the peephole weights ``cells.*.peephole_weight`` ``[3, hidden, h, w]``: one per channel and
  pixel of the latent grid (frame size / patch size). On another grid they are resized by
  bilinear interpolation (``align_corners=False``: the same area seen at another resolution,
  pixel centres kept), so a spatially smooth field stays smooth and a constant one constant (to float rounding).

Everything else must match: layers, hidden channels, kernel size, patch size, peepholes, output
activation, and the input and output channels (a channel of one dataset means nothing for
another's, so there is no sensible mapping between different counts: such a start is refused).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.convlstm import ConvLSTM

MUST_MATCH = ("hidden_channels", "kernel_size", "patch_size", "peephole", "output_activation")
"""Architecture fields a source checkpoint shares with the network it initialises."""


class TransferError(ValueError):
    """The source network's weights cannot start the target network; the message says why."""


def transfer_weights(source: ConvLSTM, target: ConvLSTM) -> dict | None:
    """Copy ``source``'s weights into ``target``, resizing per-pixel weights to its grid.

    Parameters
    ----------
    source : ConvLSTM
        The trained network (any device).
    target : ConvLSTM
        The network to initialise; its grid (``frame_size``) may differ from the source's.

    Returns
    -------
    dict or None
        ``{"frame_size": [[H, W] from, [H, W] to], "grid": [[h, w] from, [h, w] to],
        "parameters": [names resized], "method": ...}`` when weights were resized, else None.

    Raises
    ------
    TransferError
        A field of :data:`MUST_MATCH` or the channel counts differ (the message names them and
        what to do).
    """
    src, dst = source.config, target.config
    for name in MUST_MATCH:
        if getattr(src, name) != getattr(dst, name):
            raise TransferError(
                f"its {name} is {getattr(src, name)!r}, this config's [model] has "
                f"{getattr(dst, name)!r}; set model.{name} = {getattr(src, name)!r} (only the grid "
                "may differ when fine-tuning)"
            )
    for name, what in (("in_channels", "reads"), ("channels_out", "forecasts")):
        if getattr(src, name) != getattr(dst, name):
            raise TransferError(
                f"it {what} {getattr(src, name)} channel(s), this data has "
                f"{getattr(dst, name)}; channels of different data do not map onto each other, "
                "so fine-tune on data with the same channels or train from scratch (no init_from)"
            )
    state = source.state_dict()
    resized = []
    with torch.no_grad():
        for name, value in target.state_dict().items():
            weight = state[name].to(value.device, value.dtype)
            if weight.shape != value.shape:
                if not name.endswith("peephole_weight"):
                    raise TransferError(
                        f"its {name} is {tuple(weight.shape)}, this network's "
                        f"{tuple(value.shape)}; use the source's [model] settings"
                    )
                weight = resize_per_pixel(weight, tuple(value.shape[-2:]))
                resized.append(name)
            value.copy_(weight)
    if not resized:
        return None
    return {
        "frame_size": [list(src.frame_size), list(dst.frame_size)],
        "grid": [list(src.grid_size), list(dst.grid_size)],
        "parameters": resized,
        "method": "bilinear interpolation, align_corners=False",
    }


def resize_per_pixel(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of per-pixel weights ``[..., h, w]`` to ``[..., *size]``.

    Parameters
    ----------
    weight : torch.Tensor
        E.g. peephole weights ``[3, hidden, h, w]`` (dimensionless gate weights).
    size : (int, int)
        The new ``(h, w)``.

    Returns
    -------
    torch.Tensor
        ``[..., size[0], size[1]]``, same dtype; a constant field stays constant (to rounding).
    """
    lead = weight.shape[:-2]
    flat = weight.reshape(1, -1, *weight.shape[-2:]).float()  # [1, prod(lead), h, w]
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size).to(weight.dtype)


__all__ = ["MUST_MATCH", "TransferError", "resize_per_pixel", "transfer_weights"]

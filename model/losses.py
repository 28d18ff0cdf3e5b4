"""Training losses, in model space (see :class:`model.normalize.Normalizer`).

Losses live here, in training code, not in the network: :class:`model.convlstm.ConvLSTM` returns
forecasts and :class:`Objective` turns them into a loss.

- :func:`masked_mse`: (weighted) mean squared error over valid pixels; NaN pixels of the data are
  masked out and never enter it.
- :func:`rain_weights`: the balanced-MSE pixel weights of Shi et al. 2017 (``loss = "balanced"``).
- :class:`Objective`: the loss of one batch as a module (``mode = "free"`` or ``"teacher"``), so
  ``DistributedDataParallel`` can wrap it whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.convlstm import ConvLSTM

MODES = ("free", "teacher")
"""``train.mode`` values: loss on the free-running forecast, or one-step (teacher-forced) loss."""

LOSSES = ("mse", "balanced")
"""``train.loss`` values: plain MSE, or MSE weighted by :func:`rain_weights` (radar)."""


def masked_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    weight: torch.Tensor | None = None,
):
    """(Weighted) mean squared error over valid pixels (all pixels when ``valid`` is None).

    Parameters
    ----------
    prediction, target : torch.Tensor
        ``[B, T, C, H, W]`` model space.
    valid : torch.Tensor or None
        ``[B, T, C, H, W]`` bool, False at pixels that do not count.
    weight : torch.Tensor, optional
        Same shape: scales each pixel's squared error; the mean is taken over the valid pixels'
        weights, so a uniform weight gives the plain MSE.

    Returns
    -------
    torch.Tensor
        Scalar float32 loss.
    """
    err = (prediction.float() - target.float()) ** 2  # [B, T, C, H, W]
    w = torch.ones_like(err) if valid is None else valid.to(err.dtype)
    if weight is not None:
        w = w * weight.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1e-12)


RAIN_WEIGHTS = ((2.0, 2.0), (5.0, 5.0), (10.0, 10.0), (30.0, 30.0))
"""Balanced-MSE weights of Shi et al. 2017 (TrajGRU): a pixel whose true rain rate is at least
``r`` mm/h weighs ``w`` (1 below 2 mm/h), so heavy rain is not drowned by drizzle."""


def rain_weights(rate: torch.Tensor) -> torch.Tensor:
    """Balanced-MSE weights ``[...]`` from true rain rates in mm/h (see :data:`RAIN_WEIGHTS`)."""
    w = torch.ones_like(rate)
    for threshold, weight in RAIN_WEIGHTS:
        w = torch.where(rate >= threshold, torch.full_like(rate, weight), w)
    return w


class Objective(torch.nn.Module):
    """The training loss as a module, so ``DistributedDataParallel`` can wrap it whole.

    ``forward(frames [B, context + horizon, C, H, W], valid [B, T, C, H, W] or None) -> loss``,
    model space. ``mode="free"``: MSE of the free-running forecast of the last ``horizon`` frames
    from the first ``context`` (what is evaluated). ``mode="teacher"``: MSE of the one-step
    predictions of frames ``1..T-1`` from the true frames before each. ``weight_fn(target)``
    (optional) gives per-pixel loss weights from the model-space target.
    """

    def __init__(self, net: ConvLSTM, *, context: int, mode: str, weight_fn=None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; use one of {MODES}")
        self.net = net
        self.context = context
        self.mode = mode
        self.weight_fn = weight_fn

    def forward(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "free":
            horizon = frames.shape[1] - self.context
            forecast, _ = self.net(frames[:, : self.context], horizon=horizon)  # [B, H, C, H, W]
            first = self.context
        else:
            forecast, _ = self.net.one_step(frames[:, :-1])  # [B, T-1, C, H, W]
            first = 1
        target = frames[:, first:]
        mask = None if valid is None else valid[:, first:]
        weight = None if self.weight_fn is None else self.weight_fn(target)
        return masked_mse(forecast, target, mask, weight)

"""Training losses, in model space (see :class:`model.normalize.Normalizer`).

Losses live here, in training code, not in the network: :class:`model.convlstm.ConvLSTM` returns
forecasts and :class:`Objective` turns them into a loss.

- :func:`masked_mse`, :func:`masked_mae`: (weighted) mean squared / absolute error over valid
  pixels; NaN pixels of the data are masked out and never enter them.
- :func:`batch_loss`: the ``train.loss`` of a batch (``"mse"``, ``"balanced"``, ``"l1l2"``).
- :func:`rain_weights`: the balanced-MSE pixel weights of Shi et al. 2017 (``loss = "balanced"``).
- :class:`Objective`: the loss of one batch as a module (``mode = "free"`` or ``"teacher"``), so
  ``DistributedDataParallel`` can wrap it whole; in free mode it can feed true frames instead of
  predictions (scheduled sampling, :func:`truth_probability`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from model.convlstm import ConvLSTM

MODES = ("free", "teacher")
"""``train.mode`` values: loss on the free-running forecast, or one-step (teacher-forced) loss."""

LOSSES = ("mse", "balanced", "l1l2")
"""``train.loss`` values: plain MSE, MSE weighted by :func:`rain_weights` (radar), or MSE + MAE
(the L1+L2 loss of PredRNN/OpenSTL practice: the L1 part pulls toward the median, less blur)."""


def _masked_mean(
    err: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None
) -> torch.Tensor:
    """Mean of ``err`` ``[B, T, C, H, W]`` over valid pixels, each weighted (see :func:`masked_mse`)."""
    w = torch.ones_like(err) if valid is None else valid.to(err.dtype)
    if weight is not None:
        w = w * weight.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1e-12)


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
    return _masked_mean(err, valid, weight)


def masked_mae(
    prediction: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    weight: torch.Tensor | None = None,
):
    """(Weighted) mean absolute error over valid pixels; arguments as :func:`masked_mse`."""
    err = (prediction.float() - target.float()).abs()  # [B, T, C, H, W]
    return _masked_mean(err, valid, weight)


def batch_loss(
    loss: str,
    prediction: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``train.loss`` (:data:`LOSSES`) of a batch ``[B, T, C, H, W]``, model space.

    ``"mse"`` and ``"balanced"``: :func:`masked_mse` (``weight`` holds the rain weights of
    ``"balanced"``); ``"l1l2"``: :func:`masked_mse` + :func:`masked_mae`, both means over the same
    pixels (so the two terms weigh alike per pixel, as in OpenSTL's ``L1 + L2``).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r}; use one of {LOSSES}")
    mse = masked_mse(prediction, target, valid, weight)
    return mse + masked_mae(prediction, target, valid, weight) if loss == "l1l2" else mse


def truth_probability(step: int, *, start: float, steps: int) -> float:
    """Scheduled sampling (Bengio et al. 2015, PredRNN): the probability of feeding the true frame
    instead of the prediction at a fed-back step, ``start`` at step 0 falling linearly to 0 at
    ``steps``."""
    return max(0.0, start * (1.0 - step / max(1, steps)))


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

    ``forward(frames [B, context + horizon, C, H, W], valid [B, T, C, H, W] or None,
    truth_prob=0.0) -> loss``, model space. ``mode="free"``: the loss of the free-running forecast
    of the last ``horizon`` frames from the first ``context`` (what is evaluated); with
    ``truth_prob > 0`` each sequence's fed-back step takes the true frame instead of the prediction
    with that probability (scheduled sampling, :meth:`model.convlstm.ConvLSTM.forward`'s
    ``feed_truth``). ``mode="teacher"``: the loss of the one-step predictions of frames ``1..T-1``
    from the true frames before each. ``loss``: a :data:`LOSSES` name (:func:`batch_loss`);
    ``weight_fn(target)`` (optional) gives per-pixel loss weights from the model-space target.
    """

    def __init__(
        self, net: ConvLSTM, *, context: int, mode: str, weight_fn=None, loss: str = "mse"
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; use one of {MODES}")
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r}; use one of {LOSSES}")
        self.net = net
        self.context = context
        self.mode = mode
        self.weight_fn = weight_fn
        self.loss = loss

    def forward(
        self, frames: torch.Tensor, valid: torch.Tensor | None = None, truth_prob: float = 0.0
    ) -> torch.Tensor:
        if self.mode == "free":
            horizon = frames.shape[1] - self.context
            feed = None
            if truth_prob > 0:
                use = torch.rand(frames.shape[0], horizon - 1, device=frames.device) < truth_prob
                feed = (
                    frames[:, self.context : -1],
                    use,
                )  # [B, horizon-1, C, H, W], [B, horizon-1]
            forecast, _ = self.net(frames[:, : self.context], horizon=horizon, feed_truth=feed)
            first = self.context  # forecast: [B, horizon, C, H, W]
        else:
            forecast, _ = self.net.one_step(frames[:, :-1])  # [B, T-1, C, H, W]
            first = 1
        target = frames[:, first:]
        mask = None if valid is None else valid[:, first:]
        weight = None if self.weight_fn is None else self.weight_fn(target)
        return batch_loss(self.loss, forecast, target, mask, weight)

"""Interventions: edit gates and states inside the ConvLSTM cell update while a rollout runs.

An edit (:class:`GateEdit`) names a layer, a target (a gate ``i``, ``f``, ``o``, ``g`` or a state
``c``, ``h``; the project names of :data:`datasets.vocabulary.GATES` are accepted too), the hidden
channels and pixels it touches, the steps it is active and what it does:

``"set"``
    replace the value by ``value`` (within the target's range: ``[0, 1]`` for the sigmoid gates,
    ``[-1, 1]`` for ``g`` and ``h``, any finite number for ``c``);
``"scale"``
    multiply by ``factor``;
``"clamp"``
    clip to ``[lo, hi]`` (either bound may be None);
``"freeze"``
    keep the value it had at step ``start`` for every later step.

Where an edit acts (the cell equations of :mod:`model.convlstm`): ``i``, ``f``, ``g`` are edited
before ``C_t = f ∘ C_{t-1} + i ∘ g`` is formed; an edited ``C_t`` is what the output gate's
peephole, ``H_t`` and the next step read; ``o`` is edited before ``H_t = o ∘ tanh(C_t)``; an
edited ``H_t`` is what the next layer, the head and the next step read. Several edits of one
target apply in the order given.

Steps count the inputs the network read, as the ``step`` dimension of a rollout's captured gates:
``0 .. n_ctx - 1`` the context frames, then ``n_ctx ..`` the forecasts fed back. Lead time ``k``
(1-based) is read out after step ``n_ctx + k - 2``, so an edit starting at step ``n_ctx - 1``
changes every lead, one starting at ``n_ctx`` leads 2 and later.

Use::

    from model.interventions import GateEdit
    edit = GateEdit(layer=0, target="f", operation="scale", factor=0.5, start=6)
    ds = rollout(model, context, 12, capture=True, intervene=edit)   # or a list of edits

Steps and layers no edit touches run the network's fast step unchanged; an edited layer and step
runs the same arithmetic with the edit in place (:func:`model.convlstm.gate_update`, or its
in-place twin in inference), so values an edit cannot reach stay bit for bit the same as in the
run without it. Every problem with an edit is a ``ValueError`` that names the edit, the value and
what to use instead (the dashboard shows it as it is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from datasets.vocabulary import GATES

if TYPE_CHECKING:  # model.convlstm imports this module
    from model.convlstm import ConvLSTMConfig

TARGET_ALIASES: dict[str, str] = {
    "i": "input",
    "f": "forget",
    "o": "output",
    "g": "candidate",
    "c": "cell",
    "h": "hidden",
    **{name: name for name in GATES},
}
"""Accepted target names (lower case) -> the project's gate names (:data:`GATES`)."""

OPERATIONS: tuple[str, ...] = ("set", "scale", "clamp", "freeze")

TARGET_RANGES: dict[str, tuple[float, float]] = {
    "input": (0.0, 1.0),
    "forget": (0.0, 1.0),
    "output": (0.0, 1.0),
    "candidate": (-1.0, 1.0),
    "hidden": (-1.0, 1.0),
    "cell": (-math.inf, math.inf),
}
"""Range of each target's values (sigmoid gates, tanh candidate and hidden state, free cell)."""

Rectangle = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``: frame pixel rows ``y0 <= y < y1`` and columns ``x0 <= x < x1``."""


@dataclass(frozen=True, kw_only=True, repr=False)
class GateEdit:
    """One edit of a gate or state inside the cell update (see the module docstring).

    Parameters
    ----------
    layer : int
        Layer index, ``0`` the one reading the frames.
    target : str
        ``"i"``, ``"f"``, ``"o"``, ``"g"`` (gates), ``"c"``, ``"h"`` (states), or a name of
        :data:`GATES` (``"input"``, ``"forget"``, ``"output"``, ``"candidate"``, ``"cell"``,
        ``"hidden"``); stored as the :data:`GATES` name.
    operation : {"set", "scale", "clamp", "freeze"}
    value : float
        ``"set"``: the new value (dimensionless, in the target's range, :data:`TARGET_RANGES`).
    factor : float
        ``"scale"``: the multiplier.
    lo, hi : float or None
        ``"clamp"``: bounds (None: unbounded on that side; at least one is given).
    channels : sequence of int or None
        Hidden channels edited; None (or ``"all"``) for all of them.
    region : None, (y0, y1, x0, x1) or 2-D bool array
        Where: None everywhere; a rectangle in frame pixels (half-open), mapped onto every latent
        pixel whose ``patch_size x patch_size`` patch overlaps it; or a boolean mask of the frame
        ``(H, W)`` (a latent pixel is edited when any pixel of its patch is True) or of the latent
        grid ``(H / patch, W / patch)``.
    start : int
        First step edited (and, for ``"freeze"``, the step whose value is kept).
    stop : int or None
        First step no longer edited; None: to the end of the rollout.
    """

    layer: int
    target: str
    operation: str = "set"
    value: float = 0.0
    factor: float = 1.0
    lo: float | None = None
    hi: float | None = None
    channels: tuple[int, ...] | None = None
    region: Rectangle | tuple[tuple[bool, ...], ...] | None = None
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        target = TARGET_ALIASES.get(str(self.target).strip().lower())
        if target is None:
            raise ValueError(
                f"target {self.target!r} is not a gate or state; use one of i, f, o, g (gates), "
                f"c, h (states) or {', '.join(GATES)}"
            )
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "layer", _non_negative_int(self.layer, "layer"))
        object.__setattr__(self, "start", _non_negative_int(self.start, "start"))
        if self.stop is not None:
            stop = _non_negative_int(self.stop, "stop")
            if stop <= self.start:
                raise ValueError(f"stop={stop} must be after start={self.start} (None: to the end)")
            object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "channels", _channel_tuple(self.channels))
        object.__setattr__(self, "region", _region_value(self.region))
        self._check_operation()

    def _check_operation(self) -> None:
        """The operation's own numbers: known operation, finite, in range, lo <= hi."""
        op = self.operation
        if op not in OPERATIONS:
            raise ValueError(f"operation {op!r} is unknown; use one of {', '.join(OPERATIONS)}")
        lo, hi = TARGET_RANGES[self.target]
        if op == "set" and not (math.isfinite(self.value) and lo <= self.value <= hi):
            raise ValueError(
                f"value={self.value} is outside the {self.target} range [{lo}, {hi}]; set a value "
                "inside it, or use operation='scale' to push it further"
            )
        if op == "scale" and not math.isfinite(self.factor):
            raise ValueError(f"factor={self.factor} must be a finite number")
        if op == "clamp":
            bounds = [b for b in (self.lo, self.hi) if b is not None]
            if not bounds or not all(math.isfinite(b) for b in bounds):
                raise ValueError(
                    f"clamp needs lo and/or hi as finite numbers, got lo={self.lo}, hi={self.hi}"
                )
            if self.lo is not None and self.hi is not None and self.lo > self.hi:
                raise ValueError(f"clamp bounds lo={self.lo} > hi={self.hi}; swap them")

    @property
    def gate_index(self) -> int:
        """Position of the target in :data:`GATES` (and in a gate hook's tuple)."""
        return GATES.index(self.target)

    def is_active(self, step: int) -> bool:
        """Whether this edit acts at ``step``."""
        return self.start <= step and (self.stop is None or step < self.stop)

    def describe(self) -> str:
        """One line for people: what, where, when."""
        what = {
            "set": f"set to {self.value:g}",
            "scale": f"scaled by {self.factor:g}",
            "clamp": f"clamped to [{_bound(self.lo)}, {_bound(self.hi)}]",
            "freeze": f"frozen at its step-{self.start} value",
        }[self.operation]
        channels = "all channels" if self.channels is None else f"channels {list(self.channels)}"
        if self.region is None:
            where = "everywhere"
        elif _is_rectangle(self.region):
            where = "rows {}:{}, columns {}:{}".format(*self.region)
        else:
            where = f"a {len(self.region)}x{len(self.region[0])} mask"
        steps = f"steps {self.start}.." + ("" if self.stop is None else f"{self.stop - 1}")
        return f"layer {self.layer} {self.target} {what}, {channels}, {where}, {steps}"

    def __repr__(self) -> str:
        return f"GateEdit({self.describe()})"


def _bound(value: float | None) -> str:
    return "-inf" if value is None else f"{value:g}"


def _non_negative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative integer")
    return int(value)


def _channel_tuple(channels) -> tuple[int, ...] | None:
    """None / "all" -> None; a sequence of ints -> sorted unique tuple (not empty)."""
    if channels is None or (isinstance(channels, str) and channels == "all"):
        return None
    if isinstance(channels, int | np.integer):
        channels = (channels,)
    out = tuple(sorted({_non_negative_int(c, "channel") for c in channels}))
    if not out:
        raise ValueError("channels=[] selects no hidden channel; give indices, or None for all")
    return out


def _is_rectangle(region) -> bool:
    return len(region) == 4 and all(isinstance(v, int | np.integer) for v in region)


def _region_value(region):
    """None, a rectangle (4 ints) or a 2-D boolean mask (nested tuples, hashable)."""
    if region is None:
        return None
    if isinstance(region, np.ndarray | Tensor) and np.ndim(region) == 2:
        mask = np.asarray(region.cpu() if isinstance(region, Tensor) else region)
    elif isinstance(region, Sequence) and _is_rectangle(region):
        return tuple(int(v) for v in region)
    else:
        mask = np.asarray(region)
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(
            f"region of shape {mask.shape} and dtype {mask.dtype} is neither a rectangle "
            "(y0, y1, x0, x1) of frame pixels nor a 2-D boolean mask of the frame or latent grid"
        )
    if not mask.any():
        raise ValueError("the region mask selects no pixel; mark at least one pixel True")
    return tuple(tuple(bool(v) for v in row) for row in mask)


def latent_region(region, config: ConvLSTMConfig) -> np.ndarray | None:
    """A :class:`GateEdit` region as a boolean mask of the latent grid ``(h, w)`` (None: all).

    Parameters
    ----------
    region : None, (y0, y1, x0, x1) or 2-D bool array
        As :attr:`GateEdit.region`: frame pixels, or a frame or latent-grid mask.
    config : ConvLSTMConfig
        The network (frame size and patch size).

    Returns
    -------
    numpy.ndarray or None
        ``[h, w]`` bool, ``h = H / patch_size``; True where the region overlaps a latent pixel's
        patch.
    """
    region = _region_value(region)
    if region is None:
        return None
    (big_h, big_w), (h, w), p = config.frame_size, config.grid_size, config.patch_size
    if _is_rectangle(region):
        y0, y1, x0, x1 = region
        if not (0 <= y0 < y1 <= big_h and 0 <= x0 < x1 <= big_w):
            raise ValueError(
                f"region {region} is outside the {big_h}x{big_w} frame or empty: it needs "
                f"0 <= y0 < y1 <= {big_h} and 0 <= x0 < x1 <= {big_w} (frame pixels, y1 and x1 "
                "excluded)"
            )
        mask = np.zeros((h, w), dtype=bool)
        mask[y0 // p : -(-y1 // p), x0 // p : -(-x1 // p)] = True  # patches it overlaps
        return mask
    mask = np.asarray(region, dtype=bool)
    if mask.shape == (big_h, big_w):
        return mask.reshape(h, p, w, p).any(axis=(1, 3))
    if mask.shape == (h, w):
        return mask
    raise ValueError(
        f"region mask is {mask.shape[0]}x{mask.shape[1]} but must cover the {big_h}x{big_w} "
        f"frame or the {h}x{w} latent grid (patch size {p})"
    )


class Intervention:
    """Edits checked against one network and rollout length; pass it as ``intervene=``.

    Parameters
    ----------
    edits : GateEdit or iterable of GateEdit
        The edits, applied in this order where they share a target.
    config : ConvLSTMConfig
        The network the edits run in (layers, hidden channels, frame and patch size).
    steps : int, optional
        Inputs the rollout reads (context frames plus ``horizon - 1`` feedbacks); when given,
        an edit starting at or after it is an error (it would never act).

    Raises
    ------
    ValueError
        A bad layer, channel, region or start step, naming the edit (``edit 1 (layer 3 ...)``).
    """

    def __init__(
        self,
        edits: GateEdit | Iterable[GateEdit],
        *,
        config: ConvLSTMConfig,
        steps: int | None = None,
    ) -> None:
        edits = (edits,) if isinstance(edits, GateEdit) else tuple(edits)
        if not edits:
            raise ValueError("an intervention needs at least one GateEdit")
        for k, edit in enumerate(edits):
            if not isinstance(edit, GateEdit):
                raise ValueError(
                    f"edit {k} is a {type(edit).__name__}, not a model.interventions.GateEdit"
                )
        self.edits: tuple[GateEdit, ...] = edits
        self.config = config
        self.steps = steps
        self._masks = [self._check(k, edit) for k, edit in enumerate(edits)]

    def _check(self, k: int, edit: GateEdit) -> np.ndarray | None:
        """Check one edit against the network; its latent mask ``[hid, h, w]`` (None: all)."""
        cfg = self.config
        n_layers = len(cfg.hidden_channels)
        where = f"edit {k} ({edit.describe()})"
        if edit.layer >= n_layers:
            raise ValueError(
                f"{where}: layer {edit.layer} does not exist; this network has {n_layers} "
                f"layers (0..{n_layers - 1})"
            )
        hid = cfg.hidden_channels[edit.layer]
        if edit.channels is not None and edit.channels[-1] >= hid:
            raise ValueError(
                f"{where}: channel {edit.channels[-1]} does not exist; layer {edit.layer} has "
                f"{hid} hidden channels (0..{hid - 1})"
            )
        if self.steps is not None and edit.start >= self.steps:
            raise ValueError(
                f"{where}: it starts at step {edit.start} but the rollout reads only "
                f"{self.steps} inputs (steps 0..{self.steps - 1}); start earlier or forecast "
                "further"
            )
        try:
            spatial = latent_region(edit.region, cfg)  # [h, w] or None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if spatial is None and edit.channels is None:
            return None
        chosen = np.zeros(hid, dtype=bool)
        chosen[list(edit.channels) if edit.channels is not None else slice(None)] = True
        spatial = np.ones(cfg.grid_size, dtype=bool) if spatial is None else spatial
        return chosen[:, None, None] & spatial[None]  # [hid, h, w]

    def latent_mask(self, k: int) -> np.ndarray:
        """Where edit ``k`` acts: ``[hidden, h, w]`` bool on the latent grid of its layer."""
        mask = self._masks[k]
        if mask is None:
            hid = self.config.hidden_channels[self.edits[k].layer]
            return np.ones((hid, *self.config.grid_size), dtype=bool)
        return mask.copy()

    def describe(self) -> str:
        """JSON list of the edits' one-line descriptions (for ``Dataset.attrs`` and exports)."""
        return json.dumps([edit.describe() for edit in self.edits])

    def start(self) -> _Run:
        """Fresh per-pass state (frozen values); called by the network once per forward pass."""
        return _Run(self)

    def __repr__(self) -> str:
        return f"Intervention({[e.describe() for e in self.edits]})"


def resolve_edits(intervene, config: ConvLSTMConfig, *, steps: int) -> Intervention | None:
    """``intervene=`` as given to :func:`model.rollout.rollout` -> a checked :class:`Intervention`.

    Parameters
    ----------
    intervene : None, GateEdit, iterable of GateEdit or Intervention
        The edits (None or an empty list: no intervention).
    config : ConvLSTMConfig
        The network's config.
    steps : int
        Inputs the rollout reads.

    Returns
    -------
    Intervention or None
    """
    if intervene is None:
        return None
    if isinstance(intervene, Intervention):
        if intervene.config == config and intervene.steps == steps:
            return intervene
        intervene = intervene.edits
    edits = (intervene,) if isinstance(intervene, GateEdit) else tuple(intervene)
    return Intervention(edits, config=config, steps=steps) if edits else None


class _Run:
    """One forward pass of an :class:`Intervention`: the edit functions and frozen values."""

    def __init__(self, plan: Intervention) -> None:
        self._plan = plan
        self._by_layer: dict[int, list[int]] = {}
        for k, edit in enumerate(plan.edits):
            self._by_layer.setdefault(edit.layer, []).append(k)
        self._masks: dict[tuple[int, torch.device], Tensor] = {}
        self._frozen: dict[int, Tensor] = {}

    def edit_for(self, layer: int, step: int):
        """The ``edit(k, value)`` function of ``layer`` at ``step``, or None (nothing edited)."""
        edits = self._plan.edits
        active = [k for k in self._by_layer.get(layer, ()) if edits[k].is_active(step)]
        return partial(self._apply, tuple(active), step) if active else None

    def _apply(self, active: tuple[int, ...], step: int, gate: int, value: Tensor) -> Tensor:
        """Apply the active edits of target ``GATES[gate]`` to ``value`` ``[B, hid, h, w]``."""
        out = value
        for k in active:
            if self._plan.edits[k].gate_index == gate:
                out = self._edit(k, step, out)
        if out is not value and gate >= 4:  # states keep their layout (the head reads them)
            fmt = torch.channels_last if _is_channels_last(value) else torch.contiguous_format
            out = out.contiguous(memory_format=fmt)
        return out

    def _edit(self, k: int, step: int, x: Tensor) -> Tensor:
        edit = self._plan.edits[k]
        mask = self._mask(k, x)  # [1, hid, h, w] bool or None (everywhere)
        op = edit.operation
        if op == "freeze":
            if step == edit.start or k not in self._frozen:
                self._frozen[k] = x.detach().clone()  # [B, hid, h, w]
                return x
            new = self._frozen[k]
        elif op == "set":
            new = torch.full_like(x, edit.value) if mask is None else edit.value
        elif op == "scale":
            new = x * edit.factor
        else:
            new = x.clamp(edit.lo, edit.hi)
        if mask is None:
            return new if isinstance(new, Tensor) else torch.full_like(x, new)
        return torch.where(mask, new, x)

    def _mask(self, k: int, like: Tensor) -> Tensor | None:
        mask = self._plan._masks[k]
        if mask is None:
            return None
        key = (k, like.device)
        if key not in self._masks:
            self._masks[key] = torch.from_numpy(mask).to(like.device)[None]  # [1, hid, h, w]
        return self._masks[key]


def _is_channels_last(x: Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()

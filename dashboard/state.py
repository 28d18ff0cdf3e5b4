"""Deep links: the URL query string <-> widget values, with validation (no Streamlit here).

A link holds ``dataset``, ``checkpoint``, ``sample``, ``step``, ``layer``, ``gate`` and ``channel``
(plus ``view``, ``context``, ``horizon``, and each view's own keys: ``probe_x``/``probe_y`` in the
pixel probe; ``sort`` in the unit browser; ``op``, ``value``, ``lo``, ``hi``, ``units``,
``from_step`` and ``region`` in the interventions view (``region`` typed or dragged as a box on
the map there; typed in the attribution view); ``other`` in the side-by-side view). Values are accepted only when they name something that
exists (a registered dataset, a compatible checkpoint, an index in range); anything else produces a
message for the page and the default is used instead.

The defaults a page opens on (no link, no click) are written here once: :data:`OPENING_DATASET`,
:data:`OPENING_SAMPLE` and :data:`RADAR_CHECKPOINTS` (see :func:`preferred_checkpoint`), and the
gates view's :data:`OPENING_GATE` and :data:`OPENING_REDUCTION` (the server draws that page ahead).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LINK_KEYS = ("dataset", "checkpoint", "sample", "step", "layer", "gate", "channel")
EXTRA_KEYS = (
    "view", "context", "horizon", "probe_x", "probe_y", "sort", "op", "value", "lo", "hi",
    "units", "from_step", "region", "other",
)  # fmt: skip
REDUCTION_CHOICES = ("mean", "max", "variance")

OPENING_DATASET = "radar_fmi_sample"
"""The dataset a new page opens on: the bundled real radar event (FMI, 2017-05-09, offline)."""
OPENING_SAMPLE = 0
"""The sample (window) of :data:`OPENING_DATASET` a new page opens on."""
RADAR_CHECKPOINTS = ("radar_lagrangian", "radar_mch")
"""Radar checkpoints by preference: the first one shipped (and fitting the data) forecasts the
opening page and is the default for radar data. The one place to change the default."""


OPENING_GATE = "forget"
"""The gates view's focus gate until the user picks another."""
OPENING_REDUCTION = "mean"
"""How the gates view shows a layer's hidden channels until the user picks another."""


def default_window(meta: Mapping, n_time: int, context: int | None = None) -> tuple[int, int]:
    """``(context, horizon)`` in frames a page opens with for a checkpoint on data of ``n_time``
    frames: the checkpoint's training values, else 10 context frames (at most ``n_time - 1``)
    and up to 12 forecast frames that the data still holds after them.

    ``context``: the context already chosen; the default horizon then follows it.
    """
    if context is None:
        context = min(int(meta.get("context") or min(10, n_time - 1)), max(1, n_time - 1))
    horizon = int(meta.get("horizon") or max(1, min(12, n_time - context)))
    return context, horizon


def preferred_checkpoint(names: Sequence[str]) -> str | None:
    """The default among the checkpoints ``names`` that fit some data: the first of
    :data:`RADAR_CHECKPOINTS` there, else the first name (None when there is none)."""
    for name in RADAR_CHECKPOINTS:
        if name in names:
            return name
    return names[0] if names else None


@dataclass
class DeepLink:
    """Query parameters not yet applied, and the messages about rejected ones."""

    pending: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DeepLink:
        known = set(LINK_KEYS) | set(EXTRA_KEYS)
        pending = {k: str(v) for k, v in query.items() if k in known}
        unknown = sorted(k for k in query if k not in known)
        link = cls(pending=pending)
        if unknown:
            link.messages.append(
                f"Ignored unknown link parameter(s) {', '.join(unknown)}; "
                f"links accept {', '.join(LINK_KEYS + EXTRA_KEYS)}."
            )
        return link

    def has(self, key: str) -> bool:
        return key in self.pending

    def take_choice(self, key: str, options: Sequence[str], *, what: str) -> str | None:
        """The pending value of ``key`` if it is one of ``options`` (else a message; None)."""
        if key not in self.pending:
            return None
        raw = self.pending.pop(key)
        if raw in options:
            return raw
        shown = ", ".join(list(options)[:12]) + (" ..." if len(options) > 12 else "")
        self.messages.append(
            f"Link {key}={raw!r} is not a known {what}; showing the default instead "
            f"(available: {shown or 'none'})."
        )
        return None

    def take_int(self, key: str, lo: int, hi: int, *, what: str) -> int | None:
        """The pending integer value of ``key`` if ``lo <= value <= hi`` (else a message; None)."""
        if key not in self.pending:
            return None
        raw = self.pending.pop(key)
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is not None and lo <= value <= hi:
            return value
        self.messages.append(
            f"Link {key}={raw!r} is not a valid {what} (use a whole number from {lo} to {hi}); "
            "showing the default instead."
        )
        return None

    def take_channel(self, hidden: int) -> str | int | None:
        """``channel``: a reduction name or a hidden-channel index below ``hidden``."""
        if "channel" not in self.pending:
            return None
        raw = self.pending["channel"]
        if raw in REDUCTION_CHOICES:
            self.pending.pop("channel")
            return raw
        return self.take_int("channel", 0, hidden - 1, what="hidden channel (or mean/max/variance)")

    def take_float(self, key: str, *, what: str) -> float | None:
        """The pending value of ``key`` as a finite number (else a message; None)."""
        if key not in self.pending:
            return None
        raw = self.pending.pop(key)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
        self.messages.append(
            f"Link {key}={raw!r} is not a valid {what} (use a number); showing the default instead."
        )
        return None

    def take_rectangle(self, key: str, height: int, width: int) -> tuple[int, int, int, int] | None:
        """``y0,y1,x0,x1`` (frame pixels, half-open) inside a ``height x width`` frame."""
        if key not in self.pending:
            return None
        raw = self.pending.pop(key)
        try:
            return parse_rectangle(raw, height, width)
        except ValueError as exc:
            self.messages.append(f"Link {key}={raw!r} ignored: {exc}.")
            return None

    def take_channels(self, key: str, hidden: int) -> str | None:
        """A channel list (``all`` or ``0,3,5-7``) with every index below ``hidden``, as text."""
        if key not in self.pending:
            return None
        raw = self.pending.pop(key)
        try:
            return format_channels(parse_channels(raw, hidden))
        except ValueError as exc:
            self.messages.append(f"Link {key}={raw!r} ignored: {exc}.")
            return None

    def drop(self, key: str, reason: str) -> None:
        """Reject a pending value that cannot apply (e.g. a gate when there are no gates)."""
        if key in self.pending:
            raw = self.pending.pop(key)
            self.messages.append(f"Link {key}={raw!r} ignored: {reason}.")


def to_query(values: Mapping[str, object]) -> dict[str, str]:
    """Widget values -> query-string dict (None values left out), in the order of the keys."""
    return {k: str(v) for k, v in values.items() if v is not None}


def parse_channels(text: str, hidden: int | None = None) -> tuple[int, ...] | None:
    """``"all"`` -> None; ``"0, 3, 5-7"`` -> ``(0, 3, 5, 6, 7)`` (sorted, unique).

    Parameters
    ----------
    text : str
        ``all`` (or empty), or comma-separated indices and ``a-b`` ranges (inclusive).
    hidden : int, optional
        Number of hidden channels; every index must be below it.

    Raises
    ------
    ValueError
        Text that is not such a list, or an index out of range, saying what to write instead.
    """
    text = str(text).strip().lower()
    if text in ("", "all"):
        return None
    picked: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?", part)
        if match is None:
            raise ValueError(
                f"channels {text!r} is not a list of channel numbers; write all, or e.g. 0, 3, 5-7"
            )
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) else lo
        if hi < lo:
            raise ValueError(f"channel range {lo}-{hi} runs backwards; write {hi}-{lo}")
        picked.update(range(lo, hi + 1))
    if hidden is not None and max(picked) >= hidden:
        raise ValueError(
            f"channel {max(picked)} does not exist; this layer has channels 0-{hidden - 1}"
        )
    return tuple(sorted(picked))


def format_channels(channels: Sequence[int] | None) -> str:
    """:func:`parse_channels` backwards: None -> ``"all"``, ``(0, 3)`` -> ``"0,3"``."""
    return "all" if channels is None else ",".join(str(c) for c in channels)


def parse_rectangle(text: str, height: int, width: int) -> tuple[int, int, int, int]:
    """``"y0,y1,x0,x1"`` -> a rectangle of frame pixels (rows ``y0 <= y < y1``, columns likewise).

    Raises
    ------
    ValueError
        Not four whole numbers, or not a non-empty rectangle inside the ``height x width`` frame.
    """
    try:
        y0, y1, x0, x1 = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError("a region is four whole numbers y0,y1,x0,x1 (frame pixels)") from None
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise ValueError(
            f"region {y0},{y1},{x0},{x1} is empty or outside the {height}x{width} frame "
            f"(it needs 0 <= y0 < y1 <= {height} and 0 <= x0 < x1 <= {width})"
        )
    return y0, y1, x0, x1


def format_rectangle(region: Sequence[int]) -> str:
    """A rectangle as the link writes it: ``"y0,y1,x0,x1"``."""
    return ",".join(str(int(v)) for v in region)

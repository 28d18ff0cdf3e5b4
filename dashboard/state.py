"""Deep links: the URL query string <-> widget values, with validation (no Streamlit here).

A link holds ``dataset``, ``checkpoint``, ``sample``, ``step``, ``layer``, ``gate`` and ``channel``
(plus ``view``, ``context``, ``horizon``, and ``probe_x``/``probe_y`` in the pixel-probe view).
Values are accepted only when they name something that
exists (a registered dataset, a compatible checkpoint, an index in range); anything else produces a
message for the page and the default is used instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LINK_KEYS = ("dataset", "checkpoint", "sample", "step", "layer", "gate", "channel")
EXTRA_KEYS = ("view", "context", "horizon", "probe_x", "probe_y")
REDUCTION_CHOICES = ("mean", "max", "variance")


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

    def drop(self, key: str, reason: str) -> None:
        """Reject a pending value that cannot apply (e.g. a gate when there are no gates)."""
        if key in self.pending:
            raw = self.pending.pop(key)
            self.messages.append(f"Link {key}={raw!r} ignored: {reason}.")


def to_query(values: Mapping[str, object]) -> dict[str, str]:
    """Widget values -> query-string dict (None values left out), in the order of the keys."""
    return {k: str(v) for k, v in values.items() if v is not None}

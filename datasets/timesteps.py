"""Time steps: the one parser and formatter of the ``time_step`` attr (ISO 8601 or seconds).

A dataset array's ``time_step`` is an ISO 8601 duration (``"PT5M"``, ``"PT1H30M"``, ``"P1D"``), a
number of seconds, or a count of frames (``"1 frame"``, :data:`datasets.layout.FRAME_STEP`), which is
no duration at all. Every module that reads or writes one goes through these functions.

>>> parse_time_step("PT5M"), parse_time_step(600), parse_time_step("1 frame")
(300.0, 600.0, None)
>>> iso_duration(5400)
'PT1H30M'
"""

from __future__ import annotations

import math
import re

import pandas as pd

_ISO = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_time_step(value) -> float | None:
    """Seconds in a time step, or None when it is not a positive duration.

    Parameters
    ----------
    value : str, int, float or None
        An ISO 8601 duration (``"PT5M"``, ``"P1DT2H"``), a number of seconds, or another text
        pandas reads as a duration (``"5min"``). ``"1 frame"``, zero, negative or non-finite values
        and None give None.

    Returns
    -------
    float or None
        Seconds, > 0.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float) or _is_number(value):
        seconds = float(value)
    else:
        text = str(value).strip()
        match = _ISO.match(text.upper())
        if match and any(match.groups()):
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = ((d * 24 + h) * 60 + m) * 60 + s
        else:
            try:
                seconds = pd.Timedelta(text).total_seconds()
            except (ValueError, TypeError):
                return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def time_step_delta(value) -> pd.Timedelta | None:
    """:func:`parse_time_step` as a ``pandas.Timedelta`` (None when there is no duration)."""
    seconds = parse_time_step(value)
    return None if seconds is None else pd.Timedelta(seconds=seconds)


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration of a time step: 300 -> ``"PT5M"``, 3600 -> ``"PT1H"``, 86400 -> ``"P1D"``.

    Raises
    ------
    ValueError
        ``seconds`` is not positive and finite.
    """
    seconds = float(seconds)
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"time step must be positive, got {seconds} s")
    days, rest = divmod(seconds, 86400.0)
    hours, rest = divmod(rest, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    text = "P" + (f"{int(days)}D" if days else "")
    clock = ""
    clock += f"{int(hours)}H" if hours else ""
    clock += f"{int(minutes)}M" if minutes else ""
    clock += (f"{secs:g}S") if secs else ""
    return text + ("T" + clock if clock else "")


def _is_number(value) -> bool:
    """numpy scalars (integer or floating) count as numbers of seconds."""
    import numpy as np

    return isinstance(value, np.integer | np.floating)


__all__ = ["iso_duration", "parse_time_step", "time_step_delta"]

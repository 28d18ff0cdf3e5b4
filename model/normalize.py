"""Physical units <-> model space. The only place that knows how data is scaled for the network.

Kinds
-----
``"db"``
    Rain rate ``R`` (mm/h) -> ``(10 log10 R - zerovalue) / scale`` for ``R >= threshold``, else 0
    (the usual dBR transform of nowcasting, shifted so that "no rain" is exactly 0).
``"scale"``
    Counts -> ``(x - offset) / scale``.
``"unit"``
    Values already in [0, 1] (video pixel intensity): unchanged.

NaN (invalid pixels) become 0 in model space: NaN never reaches the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

KINDS = ("db", "scale", "unit")


@dataclass(frozen=True)
class Normalizer:
    """Map data between physical units and model space.

    Parameters
    ----------
    kind : {"db", "scale", "unit"}
    units : str
        Physical units of the data (e.g. ``"mm/h"``), shown to users.
    threshold : float
        ``"db"`` only: smallest rain rate in mm/h counted as rain.
    zerovalue : float
        ``"db"`` only: dBR that maps to 0 in model space (below ``10 log10(threshold)``).
    scale, offset : float
        ``"db"``: dB per model unit (``offset`` unused). ``"scale"``: ``(x - offset) / scale``.
    """

    kind: str = "unit"
    units: str = ""
    threshold: float = 0.1
    zerovalue: float = -15.0
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"normalisation kind {self.kind!r} is unknown; use one of {KINDS}")
        if self.scale <= 0:
            raise ValueError(f"normalisation scale={self.scale} must be positive")

    @classmethod
    def from_metadata(cls, data: dict) -> Normalizer:
        """Build from the ``normalization`` entry of checkpoint metadata."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown normalisation fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_metadata(self) -> dict:
        """JSON-ready dict; inverse of :meth:`from_metadata`."""
        return asdict(self)

    def to_model(self, x):
        """Physical units -> model space; NaN -> 0. Works on numpy arrays and tensors of any shape."""
        lib = torch if isinstance(x, torch.Tensor) else np
        x = lib.nan_to_num(x, nan=0.0)
        if self.kind == "unit":
            return x
        if self.kind == "scale":
            return (x - self.offset) / self.scale
        rain = x >= self.threshold
        safe = lib.where(rain, x, self.threshold)
        db = 10.0 * lib.log10(safe)
        return lib.where(rain, (db - self.zerovalue) / self.scale, 0.0 * x)

    def to_physical(self, y):
        """Model space -> physical units. Rain below the threshold becomes exactly 0 mm/h."""
        lib = torch if isinstance(y, torch.Tensor) else np
        if self.kind == "unit":
            return y
        if self.kind == "scale":
            return y * self.scale + self.offset
        rate = 10.0 ** ((y * self.scale + self.zerovalue) / 10.0)
        return lib.where(rate >= self.threshold, rate, 0.0 * rate)

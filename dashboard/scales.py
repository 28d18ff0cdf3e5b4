"""Colour scales that quantise physical values to 8-bit codes for plotly heatmaps.

A 12+12-frame rollout at 128x128 sent as float32 heatmaps weighs about 13 MB of page payload;
sent as ``uint8`` codes (plotly encodes numpy arrays as base64 typed arrays) it weighs a quarter
of that. Every heatmap in the dashboard therefore carries codes, and its colorbar is relabelled
with physical values.

Code layout of every :class:`Scale`
-----------------------------------
- ``0``: no data (NaN: invalid radar pixels, or a panel with nothing to show at that step);
- ``1``: "below range" for scales with a floor colour (no rain for radar), else the lowest bin;
- ``2..255`` (or ``1..255``): the physical range, linear or logarithmic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from datasets import vocabulary

N_CODES = 256
NO_DATA = 0
NO_DATA_COLOUR = "rgba(200, 200, 200, 0.35)"

# A standard rain-rate palette (light blue -> blue -> green -> yellow -> red -> magenta), as on
# national weather-service radar maps; positions are fractions of the log10 range 0.1..100 mm/h.
RAIN_COLOURS: tuple[tuple[float, str], ...] = (
    (0.00, "#9ecae1"),
    (0.12, "#4292c6"),
    (0.25, "#08519c"),
    (0.36, "#41ab5d"),
    (0.48, "#006d2c"),
    (0.58, "#fee391"),
    (0.68, "#fe9929"),
    (0.78, "#e31a1c"),
    (0.88, "#99000d"),
    (1.00, "#c51b8a"),
)
NO_RAIN_COLOUR = "#ffffff"
# Sequential palette for traffic counts (YlOrRd) and grayscale for video.
TRAFFIC_COLOURS: tuple[tuple[float, str], ...] = (
    (0.0, "#ffffcc"),
    (0.25, "#fed976"),
    (0.5, "#fd8d3c"),
    (0.75, "#e31a1c"),
    (1.0, "#800026"),
)
GRAY_COLOURS: tuple[tuple[float, str], ...] = ((0.0, "#000000"), (1.0, "#ffffff"))
DIVERGING_COLOURS: tuple[tuple[float, str], ...] = (
    (0.0, "#2166ac"),
    (0.25, "#67a9cf"),
    (0.5, "#f7f7f7"),
    (0.75, "#ef8a62"),
    (1.0, "#b2182b"),
)
SIGMOID_COLOURS: tuple[tuple[float, str], ...] = (
    (0.0, "#440154"),
    (0.25, "#3b528b"),
    (0.5, "#21918c"),
    (0.75, "#5ec962"),
    (1.0, "#fde725"),
)


@dataclass(frozen=True)
class Scale:
    """A mapping of physical values to 8-bit codes, with the colorscale that draws the codes.

    Parameters
    ----------
    vmin, vmax : float
        Physical range covered by the codes (values outside are clipped).
    units : str
        Physical units shown on the colorbar.
    colours : tuple of (float, str)
        Colour stops over the physical range (positions 0..1).
    log : bool
        Logarithmic spacing of the codes (rain rate); ``vmin`` must then be > 0.
    floor_colour : str or None
        When set, code 1 means "below ``vmin``" (e.g. no rain) and is drawn in this colour.
    """

    vmin: float
    vmax: float
    units: str
    colours: tuple[tuple[float, str], ...]
    log: bool = False
    floor_colour: str | None = None
    label: str = ""
    _first: int = field(init=False, repr=False, default=1)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.vmin) and math.isfinite(self.vmax)) or self.vmax <= self.vmin:
            raise ValueError(f"scale range [{self.vmin}, {self.vmax}] is empty or not finite")
        if self.log and self.vmin <= 0:
            raise ValueError(f"a logarithmic scale needs vmin > 0, got {self.vmin}")
        object.__setattr__(self, "_first", 2 if self.floor_colour else 1)

    # -- codes -------------------------------------------------------------------------------
    def _forward(self, values: np.ndarray) -> np.ndarray:
        if self.log:
            lo, hi = math.log10(self.vmin), math.log10(self.vmax)
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log10(np.maximum(values, self.vmin)) - lo) / (hi - lo)
        return (values - self.vmin) / (self.vmax - self.vmin)

    def _inverse(self, frac: np.ndarray) -> np.ndarray:
        if self.log:
            lo, hi = math.log10(self.vmin), math.log10(self.vmax)
            return 10.0 ** (lo + frac * (hi - lo))
        return self.vmin + frac * (self.vmax - self.vmin)

    def encode(self, values) -> np.ndarray:
        """Physical values (any shape) -> ``uint8`` codes of the same shape (NaN -> 0)."""
        values = np.asarray(values, dtype=np.float64)
        span = N_CODES - 1 - self._first
        frac = np.clip(self._forward(values), 0.0, 1.0)
        codes = self._first + np.rint(np.nan_to_num(frac) * span)
        if self.floor_colour:
            codes = np.where(values < self.vmin, 1, codes)
        codes = np.where(np.isfinite(values), codes, NO_DATA)
        return codes.astype(np.uint8)

    def decode(self, codes) -> np.ndarray:
        """``uint8`` codes -> physical values (NaN for no data; 0 for "below range")."""
        codes = np.asarray(codes, dtype=np.float64)
        span = N_CODES - 1 - self._first
        values = self._inverse((codes - self._first) / span)
        if self.floor_colour:
            values = np.where(codes == 1, 0.0, values)
        return np.where(codes == NO_DATA, np.nan, values)

    def resolution(self, value: float) -> float:
        """Half-width of the code bin around a physical value (the quantisation error bound)."""
        span = N_CODES - 1 - self._first
        if self.log:
            return abs(value) * (10 ** ((math.log10(self.vmax / self.vmin)) / span / 2) - 1)
        return (self.vmax - self.vmin) / span / 2

    # -- plotly ------------------------------------------------------------------------------
    def colorscale(self) -> list[list]:
        """Plotly colorscale over codes 0..255 (code 0 is the no-data colour)."""
        top = N_CODES - 1
        stops: list[list] = [[0.0, NO_DATA_COLOUR], [0.5 / top, NO_DATA_COLOUR]]
        if self.floor_colour:
            stops += [[0.5 / top, self.floor_colour], [1.5 / top, self.floor_colour]]
        start = (self._first - 0.5) / top
        for pos, colour in self.colours:
            stops.append([start + pos * (1.0 - start), colour])
        return stops

    def palette(self) -> np.ndarray:
        """The colour plotly draws for each code, as in a heatmap of :meth:`colorscale`.

        Returns
        -------
        numpy.ndarray
            ``(256, 4)`` ``uint8`` RGBA, row ``k`` the colour of code ``k`` (linear RGBA
            interpolation between the colorscale's stops, as plotly.js does).
        """
        stops = self.colorscale()
        positions = np.array([pos for pos, _ in stops])
        rgba = np.array([_rgba(colour) for _, colour in stops])  # (stops, 4) 0..255
        at = np.arange(N_CODES) / (N_CODES - 1)
        channels = [np.interp(at, positions, rgba[:, c]) for c in range(4)]
        return np.rint(np.stack(channels, axis=-1)).clip(0, 255).astype(np.uint8)

    def ticks(self, n: int = 6) -> tuple[list[int], list[str]]:
        """Colorbar tick positions (codes) and their labels in physical values."""
        if self.log:
            candidates = [
                m * 10.0**e for e in range(-3, 5) for m in (1, 2, 5) if self.vmin <= m * 10.0**e
            ]
            values = [v for v in candidates if v <= self.vmax * (1 + 1e-9)]
        else:
            values = list(_nice_ticks(self.vmin, self.vmax, n))
        codes = [int(c) for c in self.encode(np.array(values))]
        labels = [_fmt(v) for v in values]
        return codes, labels

    def coloraxis(
        self,
        *,
        title: str | None = None,
        x: float | None = None,
        title_side: str = "right",
        title_font: dict | None = None,
        **colorbar,
    ) -> dict:
        """A plotly ``coloraxis`` dict: colorscale over codes, relabelled colorbar.

        ``title_side`` is where the title sits ("right" for a vertical bar, "top" for a
        horizontal one); other keywords go to the colorbar (``orientation``, ``len``...).
        """
        tickvals, ticktext = self.ticks()
        head = {"text": title if title is not None else self.units, "side": title_side}
        if title_font:
            head["font"] = title_font
        bar = {
            "title": head,
            "tickvals": tickvals,
            "ticktext": ticktext,
            "thickness": 14,
            **colorbar,
        }
        if x is not None:
            bar["x"] = x
        return {
            "colorscale": self.colorscale(),
            "cmin": 0,
            "cmax": N_CODES - 1,
            "colorbar": bar,
        }


def _rgba(colour: str) -> tuple[float, float, float, float]:
    """``"#rrggbb"``, ``"#rgb"`` or ``"rgb(a)(r, g, b[, a])"`` -> RGBA on 0..255 (alpha too)."""
    colour = colour.strip()
    if colour.startswith("#"):
        digits = colour[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return float(r), float(g), float(b), 255.0
    inside = colour[colour.index("(") + 1 : colour.rindex(")")]
    parts = [float(v) for v in inside.split(",")]
    alpha = parts[3] if len(parts) == 4 else 1.0
    return parts[0], parts[1], parts[2], 255.0 * alpha


def _nice_ticks(lo: float, hi: float, n: int) -> np.ndarray:
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step - 1e-9) * step
    return np.arange(first, hi + step * 1e-6, step)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def nice_upper(value: float) -> float:
    """Round a positive value up to 1, 2, 2.5 or 5 times a power of ten."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= value * (1 - 1e-9):
            return m * mag
    return 10 * mag


def robust_max(*arrays, q: float = 99.5) -> float:
    """The ``q``-th percentile of the absolute finite values of all arrays (0 if none)."""
    finite = [np.abs(np.asarray(a, dtype=np.float64)) for a in arrays if a is not None]
    finite = [a[np.isfinite(a)] for a in finite]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0
    return float(np.percentile(np.concatenate([a.ravel() for a in finite]), q))


def value_scale(domain: str, *, units: str, arrays=()) -> Scale:
    """The colour scale for data values of a domain.

    radar: rain rate, log 0.1..100 mm/h with a white no-rain colour; traffic: sequential YlOrRd
    from 0 to a rounded robust maximum of ``arrays``; video (and anything else): grayscale over
    ``[0, max(1, data max)]``.
    """
    kind = vocabulary.facts(domain).colour_scale if domain in vocabulary.DOMAINS else "gray"
    if kind == "rain":
        top = max(100.0, nice_upper(robust_max(*arrays, q=99.9)))
        return Scale(
            0.1, top, units, RAIN_COLOURS, log=True, floor_colour=NO_RAIN_COLOUR, label="rain rate"
        )
    if kind == "flow":
        top = nice_upper(robust_max(*arrays) or 1.0)
        return Scale(0.0, top, units, TRAFFIC_COLOURS, label="flow")
    top = max(1.0, nice_upper(robust_max(*arrays, q=100))) if arrays else 1.0
    return Scale(0.0, top, units, GRAY_COLOURS, label="intensity")


def error_scale(*, units: str, arrays=()) -> Scale:
    """Diverging scale symmetric around 0 for prediction minus truth."""
    top = nice_upper(robust_max(*arrays, q=99.0) or 1.0)
    return Scale(-top, top, units, DIVERGING_COLOURS, label="error")


def gate_scale(gate: str, *, arrays=()) -> Scale:
    """Scale for a gate or state: sigmoid gates 0..1, tanh ones -1..1, the cell symmetric."""
    if gate in ("input", "forget", "output"):
        return Scale(0.0, 1.0, "", SIGMOID_COLOURS, label=gate)
    if gate in ("candidate", "hidden"):
        return Scale(-1.0, 1.0, "", DIVERGING_COLOURS, label=gate)
    top = nice_upper(robust_max(*arrays, q=99.5) or 1.0)
    return Scale(-top, top, "", DIVERGING_COLOURS, label=gate)

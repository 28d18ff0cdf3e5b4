"""The project's shared words, written once: dims, gates, domains and what each domain means.

Torch-free and import-free (only the standard library), at the bottom of the import graph, so
:mod:`datasets`, :mod:`model` and :mod:`dashboard` all read the same names from here:

- :data:`DIMS`: the layout of every dataset array, ``(sample, time, channel, y, x)``;
- :data:`GATES` / :data:`CONV_GATES`: the gate and state names users see, and the order of the
  ``4 * hidden`` output channels of a cell's gate convolution;
- :data:`DOMAINS` and :data:`DOMAIN_FACTS`: per domain, the units of its data, the score that
  decides "better" (checkpoint selection, skill checks), the baselines it is scored against, and
  the colour scale its frames are drawn with.
"""

from __future__ import annotations

from dataclasses import dataclass

DIMS: tuple[str, ...] = ("sample", "time", "channel", "y", "x")
"""Dims of every dataset array, in order."""

SPLITS: tuple[str, ...] = ("train", "val", "test")

GATES: tuple[str, ...] = ("input", "forget", "output", "candidate", "cell", "hidden")
"""Names (and capture order) of the gates and states users see."""

CONV_GATES: tuple[str, ...] = GATES[:4]
"""Order of the ``4 * hidden`` output channels of a cell's gate convolution: i, f, o, g."""

DOMAINS: tuple[str, ...] = ("radar", "traffic", "video")


@dataclass(frozen=True)
class DomainFacts:
    """What one domain's data means to the rest of the project.

    Attributes
    ----------
    units : str
        Units of the data values (datasets may state more precise ones in their attrs).
    main_score : str
        The score (a :func:`model.metrics.per_lead` column) that decides which forecast is better.
    scores : tuple of str
        Scores a model card and the README headline report, the main one first.
    baselines : tuple of str
        Reference forecasts it is scored against (names in :mod:`model.baselines` terms).
    colour_scale : str
        How frames are drawn: ``"rain"`` (log 0.1-100 mm/h), ``"flow"`` (sequential from 0) or
        ``"gray"`` (intensity).
    """

    units: str
    main_score: str
    scores: tuple[str, ...]
    baselines: tuple[str, ...]
    colour_scale: str


DOMAIN_FACTS: dict[str, DomainFacts] = {
    "radar": DomainFacts(
        units="mm/h",
        main_score="MSE",
        scores=("MSE", "MAE", "CSI@1", "CSI@5"),
        baselines=("persistence", "extrapolation"),
        colour_scale="rain",
    ),
    "traffic": DomainFacts(
        units="counts per interval",
        main_score="RMSE",
        scores=("RMSE", "MAE"),
        baselines=("persistence", "historical_mean"),
        colour_scale="flow",
    ),
    "video": DomainFacts(
        units="pixel intensity [0, 1]",
        main_score="MSE",
        scores=("MSE", "MAE", "SSIM", "PSNR"),
        baselines=("persistence", "all_black"),
        colour_scale="gray",
    ),
}


def facts(domain: str | None) -> DomainFacts:
    """:data:`DOMAIN_FACTS` of ``domain``; anything unknown is treated as video (intensities)."""
    return DOMAIN_FACTS.get(str(domain), DOMAIN_FACTS["video"])


__all__ = [
    "CONV_GATES",
    "DIMS",
    "DOMAINS",
    "DOMAIN_FACTS",
    "DomainFacts",
    "GATES",
    "SPLITS",
    "facts",
]

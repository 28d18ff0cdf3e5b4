"""The catalog: one table of every built-in dataset, built here from the dataset modules.

In the pysteps habit, this interface module *imports* the dataset modules (:mod:`datasets.radar`,
:mod:`datasets.radar_sample`, :mod:`datasets.traffic`, :mod:`datasets.video`) and lists their
loaders in :data:`CATALOG`; no module registers itself on import. :mod:`datasets.registry` (``get_dataset``, ``list_datasets``,
``dataset_info``) reads this table, importing this module on first use so that ``import datasets``
and the file readers of :mod:`datasets.files` stay light.

Each entry is a :class:`DatasetSpec`: the loader (contract in :mod:`datasets.registry`), its domain,
whether it is bundled (loads offline right after install; the generic test holds it to that), a
one-line summary (the loader's first docstring line), the download manifest from
:data:`datasets.manifests.MANIFESTS` (None when nothing is downloaded), and the
:func:`datasets.files.read_any` format its files are in (None when it has its own reader).

Adding a built-in dataset: write the loader in its domain module, add one ``_spec(...)`` line below
(and its files to :mod:`datasets.manifests` when it downloads any).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import xarray as xr

from datasets import radar, radar_sample, traffic, video
from datasets.layout import DOMAINS
from datasets.manifests import MANIFESTS, FileSet

Loader = Callable[..., xr.DataArray]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its name, loader and what is known about it without loading it."""

    name: str  # lower case, as users pass it to get_dataset
    loader: Loader  # loader(*, split, n_samples=None, **options) -> DataArray
    domain: str  # one of datasets.layout.DOMAINS
    bundled: bool = False  # True: loads offline right after install (no network, no ../shared)
    summary: str = ""  # one line for lists and the dashboard
    files: FileSet | None = None  # download manifest (None: nothing to download)
    reader: str | None = None  # name of the datasets.files.READERS format of its files, if any

    def __post_init__(self):
        if self.domain not in DOMAINS:
            raise ValueError(
                f"domain {self.domain!r} of dataset {self.name!r}: use one of {', '.join(DOMAINS)}"
            )

    def info(self) -> dict:
        """``{"name", "bundled", "domain", "summary"}``: what :func:`datasets.dataset_info` gives."""
        return {
            "name": self.name,
            "bundled": self.bundled,
            "domain": self.domain,
            "summary": self.summary,
        }


def spec_for(
    name: str, loader: Loader, *, domain: str, bundled: bool = False, reader: str | None = None
) -> DatasetSpec:
    """A :class:`DatasetSpec` whose summary is the loader's first docstring line and whose files
    are the manifest of ``name`` (if any)."""
    key = name.lower()
    doc = (loader.__doc__ or "").strip()
    return DatasetSpec(
        name=key,
        loader=loader,
        domain=domain,
        bundled=bool(bundled),
        summary=doc.splitlines()[0] if doc else "",
        files=MANIFESTS.get(key),
        reader=reader,
    )


CATALOG: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        spec_for("moving_mnist", video.moving_mnist, domain="video", bundled=True),
        spec_for("mnist_test_seq", video.mnist_test_seq, domain="video", reader="npy"),
        spec_for("radar_synthetic", radar.radar_synthetic, domain="radar", bundled=True),
        spec_for("radar_fmi_sample", radar_sample.radar_fmi_sample, domain="radar", bundled=True),
        *(spec_for(name, radar.events_loader(name), domain="radar") for name in radar.EVENTS),
        spec_for("traffic_sumo", traffic.traffic_sumo, domain="traffic", bundled=True),
        spec_for("taxinyc", traffic.taxinyc, domain="traffic", reader="taxibj-hdf5"),
    )
}
"""Every built-in dataset by name."""

__all__ = ["CATALOG", "DatasetSpec", "Loader", "spec_for"]

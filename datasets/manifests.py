"""The one table of download manifests: which public files each downloadable dataset needs.

:data:`MANIFESTS` maps a dataset name (what users pass to ``python -m datasets.download NAME``) to a
:class:`FileSet`: a source of :data:`datasets.download.SOURCES` and ``{relative_path: hash}`` (the
lower-case hex SHA-256, or ``"md5:<hex>"`` where the publishers give only that). This module is data:
it imports no dataset module, so :mod:`datasets.download` and the dataset modules both read it.

The radar hashes are long and live in :mod:`datasets.radar_manifest`; make new ones with
``python -m datasets.download --manifest DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets.radar_manifest import BOM_C10_FILES, BOM_CSCN_FILES, FMI_FILES, MCH_FILES


@dataclass(frozen=True)
class FileSet:
    """The files one downloadable dataset needs: ``{relative_path: sha256 or None}`` in a source."""

    source: str
    files: dict[str, str | None]


RADAR_SOURCE = "pysteps-data"

TAXINYC_SOURCE = "taxinyc"
TAXINYC_FILES = {
    "TaxiNYC/NYC10_Taxi_M16x8_T60_InOut.h5": (
        "09485eea7727b90273e6f4cbd9e9e18549034081eadf8d601abaa494297b8ce4"
    ),
    "TaxiNYC/NYC11_Taxi_M16x8_T60_InOut.h5": (
        "72660bb87f4e7e0035a116d59102dadeb1b328aa95c84d383a6a15b896d9e351"
    ),
    "TaxiNYC/NYC12_Taxi_M16x8_T60_InOut.h5": (
        "5b95d03f44bd07b9102431e74ee293db78048886a2d773e6c3d3b99c7c275fe9"
    ),
    "TaxiNYC/NYC13_Taxi_M16x8_T60_InOut.h5": (
        "fbb84edbeb378e7f8067bead7ede8747cf8b9e1f708c03be222f767f3ae79dc2"
    ),
    "TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5": (
        "112585137947375db1e0a7733724c0604e3774eaf8c894cdb1abe867c3b22039"
    ),
}

MNIST_SEQ_SOURCE = "mnist-seq"
MNIST_SEQ_FILE = "mnist_test_seq.npy"
MNIST_SEQ_HASH = "md5:be083ec986bfe91a449d63653c411eb2"  # as published with torchvision

MANIFESTS: dict[str, FileSet] = {
    "mnist_test_seq": FileSet(MNIST_SEQ_SOURCE, {MNIST_SEQ_FILE: MNIST_SEQ_HASH}),
    "radar_bom_c10": FileSet(RADAR_SOURCE, BOM_C10_FILES),
    "radar_bom_cscn": FileSet(RADAR_SOURCE, BOM_CSCN_FILES),
    "radar_fmi": FileSet(RADAR_SOURCE, FMI_FILES),
    "radar_mch": FileSet(RADAR_SOURCE, MCH_FILES),
    "taxinyc": FileSet(TAXINYC_SOURCE, TAXINYC_FILES),
}
"""Downloadable datasets by name (the names of their :mod:`datasets.catalog` entries)."""

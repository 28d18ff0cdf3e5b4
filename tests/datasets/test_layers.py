"""The datasets package has layers, not an import circle: readers and shared layers import no
dataset module; the catalog is the one place that lists datasets; the download CLI runs as is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.timesteps import iso_duration, parse_time_step

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_MODULES = {"datasets.radar", "datasets.traffic", "datasets.video", "datasets.catalog"}
LOW_LAYERS = [
    "datasets.files",
    "datasets.layout",
    "datasets.timesteps",
    "datasets.windows",
    "datasets.guards",
    "datasets.magic",
    "datasets.manifests",
    "datasets.download",
    "datasets.registry",
    "datasets",
]


def _python(*args: str) -> str:
    """stdout of a fresh interpreter run in the repository root."""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    return set(json.loads(_python("-c", code)))


@pytest.mark.parametrize("module", LOW_LAYERS)
def test_low_layers_import_no_dataset_module(module):
    assert not (_modules_after_import(module) & DOMAIN_MODULES)


def test_catalog_lists_every_dataset_once_without_registration():
    from datasets import catalog, list_datasets, registry

    assert sorted(catalog.CATALOG) == list_datasets()
    assert not registry._ADDED  # built-ins come from the table, not from register()
    for name, spec in catalog.CATALOG.items():
        assert spec.name == name and spec.summary and callable(spec.loader)
        assert spec.info() == registry.dataset_info(name)


def test_manifests_are_one_table():
    from datasets import catalog, download, manifests

    assert download.registered_downloads() == dict(sorted(manifests.MANIFESTS.items()))
    for name, file_set in manifests.MANIFESTS.items():
        assert catalog.CATALOG[name].files is file_set


def test_readers_table_order():
    from datasets import files

    assert [e.name for e in files.READERS] == [
        "taxibj-hdf5",
        "npy",
        "npz",
        "radar",
        "netcdf-zarr",
        "video",
    ]


def test_download_cli_runs_as_a_module():
    listed = _python("-m", "datasets.download", "--list")
    assert "radar_mch\tpysteps-data" in listed and "taxinyc\ttaxinyc" in listed
    assert "python -m datasets.download" in _python("-m", "datasets.download", "--help")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT5M", 300),
        ("PT1H30M", 5400),
        ("P1D", 86400),
        ("pt15m", 900),
        ("5min", 300),
        (600, 600),
        (2.5, 2.5),
        ("1 frame", None),
        (None, None),
        (0, None),
        (-5, None),
        (float("nan"), None),
        ("", None),
    ],
)
def test_parse_time_step(value, seconds):
    assert parse_time_step(value) == seconds


@pytest.mark.parametrize("seconds", [1, 90, 300, 360, 3600, 5400, 86400, 90061])
def test_iso_duration_round_trips(seconds):
    assert parse_time_step(iso_duration(seconds)) == seconds


def test_one_vocabulary_for_datasets_model_and_dashboard():
    """Dims, gates, domains and per-domain facts come from datasets.vocabulary, torch-free."""
    imported = _python(
        "-c",
        "import sys, datasets.vocabulary; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'model', 'dashboard')))",
    )
    assert imported.strip() == "[]"
    from dashboard import scales, services
    from datasets import layout, vocabulary
    from model import convlstm, evaluate, metrics

    assert convlstm.GATES is vocabulary.GATES and convlstm.CONV_GATES is vocabulary.CONV_GATES
    assert layout.DIMS is vocabulary.DIMS and layout.DOMAINS is vocabulary.DOMAINS
    assert metrics.DOMAINS is vocabulary.DOMAINS and services.DOMAINS is vocabulary.DOMAINS
    assert set(vocabulary.DOMAIN_FACTS) == set(vocabulary.DOMAINS)
    for domain, facts in vocabulary.DOMAIN_FACTS.items():
        assert evaluate.MAIN_METRICS[domain][0] == facts.main_score
    assert scales.value_scale("radar", units="mm/h").log  # the "rain" scale
    assert not scales.value_scale("traffic", units="counts").log

"""Valid times on the page name the clock of the data: New York time for TaxiNYC, "local time" for
a TaxiBJ-layout upload (the file does not say which city), UTC for radar.

The zone is recorded once, in the dataset's ``attrs["time_zone"]`` (:func:`datasets.layout.
time_zone_of`); titles, the figures' ``meta.valid_times`` and the start caption read it.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import services
from datasets.download import CACHE_ENV
from datasets.manifests import TAXINYC_FILES, TAXINYC_SOURCE
from model.checkpoint import DEFAULT_ROOT

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 240
TAXINYC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "traffic"


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _forecast(at: AppTest) -> dict:
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if spec["layout"].get("meta", {}).get("kind") == "forecast":
            return spec
    raise AssertionError("no forecast chart on the page")


def _captions(at: AppTest) -> list[str]:
    return list(dict.fromkeys(c.value for c in at.caption))  # the sidebar's too


@pytest.fixture
def shipped(monkeypatch):
    """The shipped checkpoints (traffic_taxinyc fits a 16 x 8 hourly in/out-flow grid)."""
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(DEFAULT_ROOT))
    monkeypatch.setenv("CONVLSTM_LAB_WARM_UP", "0")
    if not (Path(DEFAULT_ROOT) / "traffic_taxinyc" / "meta.json").is_file():
        pytest.fail("the shipped checkpoint traffic_taxinyc is missing")


@pytest.mark.shared
def test_taxinyc_titles_say_new_york_time_not_utc(shipped, monkeypatch, tmp_path):
    if not (TAXINYC / "TaxiNYC").is_dir():
        pytest.skip("../shared/data/traffic/TaxiNYC (the TaxiNYC files) is missing")
    for rel in TAXINYC_FILES:  # the download cache, filled with links to the shared files
        target = tmp_path / TAXINYC_SOURCE / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(TAXINYC / rel)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["dataset"] = "taxinyc"
    at.query_params["checkpoint"] = "traffic_taxinyc"
    _run(at)
    spec = _forecast(at)
    title = spec["layout"]["title"]["text"]
    times = spec["layout"]["meta"]["valid_times"]
    assert "New York time (UTC-" in title and " UTC " not in title and "UTC<" not in title, title
    assert all("New York time (UTC-" in t for t in times), times
    assert all("New York time" in f["layout"]["title"]["text"] for f in spec["frames"])
    # the offset is New York's at that moment (-5 in winter, -4 in summer)
    stamps = pd.to_datetime([t.split(" New York")[0] for t in times])
    offsets = [t.split("(UTC")[1].rstrip(")") for t in times]
    summer = [
        pd.Timestamp("2014-03-09 03:00") <= s < pd.Timestamp("2014-11-02 01:00") for s in stamps
    ]
    assert offsets == ["-4" if s else "-5" for s in summer]
    start = [c for c in _captions(at) if c.startswith("Context starts")]
    assert len(start) == 1 and "New York time (UTC-" in start[0], start


def _taxibj_file(path: Path) -> Path:
    """A TaxiBJ-layout file (hourly, 16 x 8 in/out-flows, 0-based slots) of three days."""
    times = pd.date_range("2015-01-10", periods=72, freq="h")
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["date"] = np.array([t.strftime("%Y%m%d%H").encode() for t in times])
        f["data"] = rng.poisson(30.0, size=(72, 2, 16, 8)).astype(np.float64)
    return path


def test_taxibj_upload_says_local_time_not_utc(shipped, tmp_path):
    content = _taxibj_file(tmp_path / "flows.h5").read_bytes()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    _run(at)
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value(("BJ_flows.h5", content, "application/x-hdf5"))
    _run(at)
    assert at.sidebar.selectbox(key="checkpoint").value == "traffic_taxinyc"
    spec = _forecast(at)
    title = spec["layout"]["title"]["text"]
    assert "valid 2015-01-10 " in title and "local time" in title and "UTC" not in title, title
    assert all(t.endswith(" local time") for t in spec["layout"]["meta"]["valid_times"])
    start = [c for c in _captions(at) if c.startswith("Context starts")]
    assert start == ["Context starts 2015-01-10 00:00 local time"], start

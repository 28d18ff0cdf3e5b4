"""GRIB2 uploads: read in the sandboxed child like radar HDF5; a damaged one gives one sentence.

The files are written by ecCodes (:func:`tests.datasets.test_grib.write_grib2`).
"""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import services
from tests.dashboard.test_app import (  # noqa: F401  (fixtures: a tiny checkpoint folder)
    _checkpoints,
    ckpt_root,
    run_app,
    shown,
)
from tests.datasets.test_grib import write_grib2

TIMES = ["201906011200", "201906011205", "201906011210"]


def _fields() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [np.round(rng.gamma(0.5, 4.0, size=(16, 24)), 3) for _ in TIMES]


def test_grib2_upload_reads_in_the_sandbox_as_radar(tmp_path):
    fields = _fields()
    path = write_grib2(tmp_path / "upload.grib2", fields, TIMES)
    data = services.read_upload(path)
    assert data.shape == (1, 3, 1, 16, 24)
    np.testing.assert_allclose(data.values[0, :, 0], np.stack(fields), atol=1e-3)
    assert data.attrs["domain"] == "radar" and data.attrs["units"] == "mm/h"
    assert data.attrs["time_step"] == "PT5M"
    assert services.domain_of(data) == "radar"
    assert services.upload_suffix("MRMS_PrecipRate_00.00_20190601-120000.grib2") == ".grib2"


def test_truncated_grib2_upload_is_one_sentence_without_a_server_path(tmp_path):
    path = write_grib2(tmp_path / "upload.grib2", _fields(), TIMES)
    path.write_bytes(path.read_bytes()[:-100])  # the last message loses its end
    with pytest.raises(services.DashboardError) as info:
        services.read_upload(path)
    message = str(info.value)
    assert message.startswith("upload.grib2: GRIB message 3 declares")
    assert "truncated" in message and "\n" not in message and str(tmp_path) not in message


def _statuses(at) -> list[tuple[str, str]]:
    return [(shown(s.label), s.state) for s in at.get("status")]


def test_corrupt_grib2_upload_on_the_page_says_why_and_the_status_ends(tmp_path):
    path = write_grib2(tmp_path / "x.grib2", _fields(), TIMES)
    cut = path.read_bytes()[:-100]
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value(("storm.grib2", cut, "application/octet-stream"))
    at.run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("storm.grib2: GRIB message 3 declares"), errors
    assert "truncated" in errors[0] and "upload.grib2" not in errors[0]
    assert all(state != "running" for _, state in _statuses(at)), _statuses(at)


def test_grib2_upload_on_the_page_is_read(tmp_path):
    path = write_grib2(tmp_path / "x.grib2", _fields(), TIMES)
    at = run_app()
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value(
        ("storm.grib2", path.read_bytes(), "application/octet-stream")
    )
    at.run()
    assert not at.exception
    statuses = _statuses(at)
    assert any(
        label.startswith("Read storm.grib2") and state == "complete" for label, state in statuses
    ), statuses

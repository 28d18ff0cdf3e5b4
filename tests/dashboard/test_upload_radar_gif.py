"""A single MeteoSwiss GIF upload: read as one radar frame (not video), at the time the file states,
and the page says in one sentence that a forecast needs more frames. The upload's name is never
used for a path, nor for the time."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import services
from model.checkpoint import DEFAULT_ROOT
from tests.dashboard.test_app import shown
from tests.datasets.test_radar_upload import SHARED_RADAR, write_mch_gif

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 240
HOSTILE = "../../../tmp/AQC150010000V_00005.801.gif"  # a path, and a time the file contradicts


@pytest.fixture(autouse=True)
def _shipped(monkeypatch):
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(DEFAULT_ROOT))
    monkeypatch.setenv("CONVLSTM_LAB_WARM_UP", "0")


def _upload(name: str, content: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.sidebar.radio(key="domain").set_value("upload").run()
    at.sidebar.file_uploader[0].set_value((name, content, "image/gif"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _one_sentence(at: AppTest) -> str:
    assert not at.error, [e.value for e in at.error]
    assert not at.warning, [e.value for e in at.warning]
    notes = [shown(i.value) for i in at.info]
    assert len(notes) == 1, notes
    assert not at.get("plotly_chart")  # nothing forecast, nothing animated
    states = [s.state for s in at.get("status")]
    assert states == ["complete"], states
    return notes[0]


def test_single_meteoswiss_gif_upload_says_a_forecast_needs_more_frames(tmp_path):
    content = write_mch_gif(tmp_path / "x.gif").read_bytes()
    note = _one_sentence(_upload("AQC161932045V_00005.801.gif", content))
    assert note == (
        "AQC161932045V_00005.801.gif is one radar frame (valid 2016-07-11 20:45 UTC), and a "
        "forecast needs several consecutive frames as its context: upload them together, as a "
        ".zip of the frames or one file with a time axis."
    )
    assert "video" not in note.lower()


def test_hostile_upload_name_is_neither_a_path_nor_the_time(tmp_path):
    content = write_mch_gif(tmp_path / "x.gif").read_bytes()
    target = Path("/tmp/AQC150010000V_00005.801.gif")
    existed = target.exists()
    note = _one_sentence(_upload(HOSTILE, content))
    assert note.startswith("AQC150010000V_00005.801.gif is one radar frame (valid 2016-07-11 20:45")
    assert "2015" not in note and "../" not in note and "/tmp" not in note
    assert target.exists() == existed  # nothing written where the name points


@pytest.mark.shared
def test_real_meteoswiss_gif_upload_is_one_radar_frame_at_its_time():
    if not (SHARED_RADAR / "mch").is_dir():
        pytest.skip("../shared/data/radar/mch (the pysteps MeteoSwiss example GIFs) is missing")
    original = sorted((SHARED_RADAR / "mch" / "20160711").glob("*.gif"))[3]
    assert original.name == "AQC161932100V_00005.801.gif"
    note = _one_sentence(_upload(original.name, original.read_bytes()))
    assert note.startswith(f"{original.name} is one radar frame (valid 2016-07-11 21:00 UTC)")

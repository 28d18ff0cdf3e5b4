"""Datasets that need files get a Download button with a progress bar; failures are one sentence."""

from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from datasets import download
from tests.conftest import CLOSED_URL

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def rendered(markdown: str) -> str:
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


def open_dataset(domain: str, name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.sidebar.radio(key="domain").set_value(domain).run()
    at.selectbox(key="dataset").set_value(name).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_missing_files_are_offered_for_download_and_failures_are_plain(monkeypatch):
    cache = Path(download.cache_root())
    at = open_dataset("video", "mnist_test_seq")
    info = " ".join(rendered(i.value) for i in at.info)
    assert "mnist_test_seq needs 1 of its 1 data files" in info
    assert not at.error  # no red "Dataset not found ... download=True" any more
    at.button(key="download_mnist_test_seq").click().run()
    assert not at.exception
    message = rendered(at.error[0].value)
    assert message.startswith("Downloading mnist_test_seq stopped at file 1 of 1")
    assert CLOSED_URL.rstrip("/") in message  # says which server did not answer
    assert str(cache) not in message and "/tmp" not in message


def test_download_fills_the_cache_and_the_page_opens_the_data(shared_http_server, monkeypatch):
    monkeypatch.setenv(download.env_var_for("taxinyc"), shared_http_server + "traffic/")
    at = open_dataset("traffic", "taxinyc")
    assert any("taxinyc needs" in rendered(i.value) for i in at.info)
    at.button(key="download_taxinyc").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [rendered(e.value) for e in at.error]
    assert not any("needs" in rendered(i.value) for i in at.info)
    assert at.selectbox(key="checkpoint").value == "traffic_taxinyc"
    assert at.get("plotly_chart")

"""Text from outside stays text, caches stay within their byte budgets, uploads are let go of."""

from __future__ import annotations

import io
import os
import re
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import budget, services
from dashboard.text import MAX_MESSAGE_CHARS, plain, safe, strip_paths, user_message
from tests.dashboard_synthetic import make_checkpoint

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "dashboard" / "app.py")


def rendered(markdown: str) -> str:
    """What a Markdown renderer shows for escaped text: escapes resolved, zero-width spaces gone."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


HOSTILE = [
    "[Session expired - log in](http://evil.example/login)",
    "![x](http://host.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "http://evil.example/x and www.evil.example and someone@evil.example",
    ":red[alarm] **bold** `code` $x^2$ # heading",
    "\\](http://evil.example)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_plain_round_trips_and_leaves_no_markdown(value):
    md = plain(value)
    assert rendered(md) == value
    unescaped = re.sub(r"\\.", "", md)  # what is left outside escapes
    assert not set("[]()<>!*`$:#\\_") & set(unescaped)
    for pattern in ("http://", "https://", "www.", "@evil"):
        assert pattern not in md.replace("\\", "")  # broken by a zero-width space


def test_user_message_drops_paths_banners_and_length():
    text = (
        "/srv/app/uploads/tmpab12/upload.gif: could not be read (OSError: ffmpeg version 6.1 "
        "Copyright (c) 2000-2024 the FFmpeg developers built with gcc 12 configuration: --enable-x)"
    )
    message = user_message(text)
    assert message.startswith("upload.gif: could not be read")
    assert "/srv" not in message and "ffmpeg version" not in message and "gcc" not in message
    assert len(user_message("word " * 1000)) == MAX_MESSAGE_CHARS
    assert "\n" not in user_message("line one\nTraceback (most recent call last):\n  File x")
    assert strip_paths("see /home/user/.cache/convlstm/radar/x.h5 now") == "see x.h5 now"
    assert rendered(safe("/tmp/a/b.nc: bad")) == "b.nc: bad"


def test_upload_limit_is_the_same_in_streamlit_and_the_app():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == services.UPLOAD_MAX_MB
    assert config["browser"]["gatherUsageStats"] is False


def test_upload_names_never_become_paths():
    assert services.upload_suffix("../../etc/passwd") == ""
    assert services.upload_suffix("evil.nc/../../x.npy") == ".npy"
    assert services.upload_suffix("radar.zarr.zip") == ".zarr.zip"
    assert services.upload_suffix("x.NC") == ".nc"
    assert services.display_name("C:\\Users\\me\\data.nc") == "data.nc"
    assert services.display_name("../../etc/passwd") == "passwd"
    assert services.display_name("a\x00b\u202e.nc") == "ab.nc"
    assert len(services.display_name("x" * 500 + ".nc")) == 80


# -- byte budgets -----------------------------------------------------------------------------
def test_byte_cache_evicts_least_recently_used_to_stay_in_budget():
    released = []
    cache = budget.ByteLRU("t", 3000, on_evict=lambda: released.append(1))
    for key in "abc":
        cache.put(key, np.zeros(1000, np.uint8))
    assert cache.stats()["bytes"] == 3000
    cache.get("a")  # a is now the most recent
    cache.put("d", np.zeros(1000, np.uint8))
    assert cache.get("b") is budget._MISSING and cache.get("a") is not budget._MISSING
    assert cache.stats()["bytes"] <= 3000 and released
    assert cache.put("huge", np.zeros(5000, np.uint8)) is False  # larger than the budget
    assert cache.get("huge") is budget._MISSING and cache.stats()["bytes"] <= 3000


def test_byte_cache_computes_once_for_concurrent_callers():
    cache = budget.ByteLRU("t", 10**6)
    calls = []
    gate = threading.Event()

    def compute():
        calls.append(1)
        gate.wait(2)
        return np.ones(10)

    threads = [threading.Thread(target=cache.get_or_compute, args=("k", compute)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1


def test_byte_cache_drops_idle_entries():
    cache = budget.ByteLRU("t", 10**6, idle_seconds=0.0)
    cache.put("a", np.zeros(10))
    assert cache.get("a") is budget._MISSING and cache.stats()["entries"] == 0


def test_sizes_count_arrays_datasets_and_figures():
    import plotly.graph_objects as go
    import xarray as xr

    ds = xr.Dataset({"a": ("x", np.zeros(1000, np.float32))})
    assert budget.approx_nbytes(ds) == 4000
    fig = go.Figure(
        go.Heatmap(z=np.zeros((100, 100))),
        frames=[go.Frame(data=[go.Heatmap(z=np.zeros((100, 100)))])],
    )
    assert budget.approx_nbytes(fig) >= 2 * 80_000
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert budget.approx_nbytes(deep) < 10_000  # bounded walk, no RecursionError
    assert sum(budget.BUDGETS.values()) == 1536 * budget.MiB  # the figure the README states


# -- the page ---------------------------------------------------------------------------------
@pytest.fixture()
def page(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, "tiny_mnist")
    monkeypatch.setenv(services.CHECKPOINT_ROOT_ENV, str(tmp_path))
    from dashboard import cache

    cache.clear()
    yield
    cache.clear()


def test_hostile_link_values_are_shown_as_text(page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = HOSTILE[0]
    at.query_params["gate"] = HOSTILE[1]
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any(HOSTILE[0] in rendered(w) for w in warnings)
    for w in warnings:
        assert "](http" not in w and "![" not in w  # no Markdown link or image syntax left
        assert "http://" not in w.replace("\\", "")


def test_a_rejected_upload_is_let_go_of_and_the_message_stays(page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.sidebar.radio(key="domain").set_value("upload").run()
    first = at.sidebar.file_uploader[0]
    name = "bad ![x](javascript:alert(1)) <b>.npy"
    first.set_value((name, b"\x93NUMPY broken", "application/x"))
    at.run()
    assert not at.exception
    assert at.error and name in rendered(at.error[0].value)
    assert "![" not in at.error[0].value and "<b>" not in at.error[0].value
    # a new, empty uploader replaced the one that held the rejected bytes
    uploader = at.sidebar.file_uploader[0]
    assert uploader.key != first.key and uploader.value is None
    at.run()  # the next run no longer repeats the message
    assert not at.error


def test_an_upload_is_read_in_a_child_process(page, monkeypatch):
    seen = []
    from datasets import sandbox

    real = sandbox.read_isolated
    monkeypatch.setattr(sandbox, "read_isolated", lambda *a, **k: seen.append(1) or real(*a, **k))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.sidebar.radio(key="domain").set_value("upload").run()
    buf = io.BytesIO()
    np.save(buf, (np.random.default_rng(1).random((12, 64, 64)) * 255).astype(np.uint8))
    at.sidebar.file_uploader[0].set_value(("mine.npy", buf.getvalue(), "application/x"))
    at.run()
    assert not at.exception and not at.error
    assert seen == [1]


def test_a_broken_checkpoint_folder_is_listed_not_fatal(page, tmp_path):
    bad = Path(os.environ[services.CHECKPOINT_ROOT_ENV]) / "broken"
    bad.mkdir()
    (bad / "meta.json").write_text("[" * 100_000)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    captions = " ".join(rendered(c.value) for c in at.sidebar.caption)
    assert "Unavailable: broken:" in captions
    assert at.selectbox(key="checkpoint").value == "tiny_mnist"
    assert str(tmp_path) not in captions


def test_gpu_out_of_memory_in_a_rollout_falls_back_to_the_cpu(monkeypatch, tmp_path):
    import torch

    from model.rollout import rollout as real_rollout
    from tests.dashboard_synthetic import make_checkpoint as make

    calls = []

    def flaky(net, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_rollout(net, *args, **kwargs)

    import model.rollout

    monkeypatch.setattr(model.rollout, "rollout", flaky)
    root = tmp_path
    make(root, "tiny_mnist")
    net, meta = services.load_model("tiny_mnist", root=root, device="cpu")
    data = services.load_dataset("moving_mnist", n_samples=1)
    window = services.Window(sample=0, start=0, context=10, horizon=2)
    ds = services.run_rollout(net, meta, data, window, capture=False)
    assert len(calls) == 2
    assert "GPU out of memory" in ds.attrs["device_note"]
    assert np.isfinite(ds["prediction"].values).all()


def test_a_rollout_too_large_to_record_keeps_its_forecast(monkeypatch, tmp_path):
    make_checkpoint(tmp_path, "tiny_mnist")
    monkeypatch.setattr(services, "CAPTURE_MAX_BYTES", 1024)
    net, meta = services.load_model("tiny_mnist", root=tmp_path, device="cpu")
    data = services.load_dataset("moving_mnist", n_samples=1)
    window = services.Window(sample=0, start=0, context=10, horizon=3)
    ds = services.run_rollout(net, meta, data, window, capture=True)
    assert "gates" not in ds and ds.sizes["time"] == 3
    assert "Gates were not recorded" in ds.attrs["capture_note"]


def test_an_upload_child_does_not_draw_the_page_again(tmp_path):
    """While Streamlit runs the page, ``sys.modules["__main__"]`` is ``dashboard/app.py``, and
    every sandboxed reader child imports it as ``__mp_main__``. Importing it must not run the
    page (dataset, checkpoint, rollout: seconds per upload, and pysteps left half imported)."""
    import sys
    import types

    from datasets import sandbox

    app = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
    main = types.ModuleType("__main__")
    main.__file__ = str(app)  # as Streamlit's script runner sets it
    real = sys.modules["__main__"]
    (tmp_path / "upload.npy").write_bytes(b"x")
    sys.modules["__main__"] = main
    try:
        data = sandbox.read_isolated(
            tmp_path / "upload.npy",
            max_bytes=10**6,
            reader="tests.sandbox_readers:report_main_module",
        )
    finally:
        sys.modules["__main__"] = real
    assert data.attrs["mp_main"] == str(app)  # the child did import the page's script
    assert data.attrs["model_loaded"] == 0  # but did not run it: no rollout, no torch

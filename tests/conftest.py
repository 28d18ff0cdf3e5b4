"""Shared fixtures.

- Every test runs with a private download cache (``$CONVLSTM_LAB_CACHE`` in a tmp dir) and with
  every source's base URL pointed at a closed port on 127.0.0.1, so no test can reach the internet
  or touch the user's cache by accident. Tests that download pass ``base_url=`` (or set the
  environment variable) to the local server below.
- ``shared_data``: ``../shared/data`` from the repository root; the test is skipped when it is absent.
- Hypothesis runs derandomized under ``CI`` (profile ``ci``).
- ``shared_http_server``: base URL (ending in ``/``) of a local HTTP server on 127.0.0.1 that serves
  ``../shared/data`` with the layout of the public repositories: pysteps-data files under
  ``<url>`` (``radar/...``), TaxiNYC files under ``<url>traffic/`` (``TaxiNYC/...``).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
from hypothesis import settings

from datasets import download

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
SKIP_NO_SHARED = "needs ../shared/data (real radar/traffic files), absent on this machine"

# Property tests: random in development, repeatable in CI (CI=true), where a flaky red is costly.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Port 9 ("discard") on loopback: nothing listens there, so a connection fails at once.
CLOSED_URL = "http://127.0.0.1:9/"


@pytest.fixture(autouse=True)
def _no_dashboard_warm_up(monkeypatch):
    """AppTest pages run in the test process: no start-up warm-up thread competing with them."""
    monkeypatch.setenv("CONVLSTM_LAB_WARM_UP", "0")


@pytest.fixture(autouse=True)
def _offline_downloads(tmp_path_factory, monkeypatch):
    """Private cache per test and no default base URL that leaves this machine."""
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    for source in download.SOURCES:
        monkeypatch.setenv(download.env_var_for(source), CLOSED_URL)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_NO_SHARED)
    return SHARED_DATA


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (signature of the base class)
        pass


@pytest.fixture(scope="session")
def shared_http_server(shared_data):
    """Serve ``../shared/data`` on 127.0.0.1 (random free port) for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(shared_data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="shared-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def require_browser() -> None:
    """Skip a browser test without Debian's Chromium, or fail when CI says it must be there."""
    from bench.server import CHROMIUM

    if CHROMIUM.exists():
        return
    if os.environ.get("CONVLSTM_REQUIRE_BROWSER") == "1":
        pytest.fail(
            f"{CHROMIUM} is missing and CONVLSTM_REQUIRE_BROWSER=1: install Debian chromium"
        )
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); browser test skipped")

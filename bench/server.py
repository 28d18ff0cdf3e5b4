"""A dashboard server on loopback and the Chromium settings, for benchmarks and browser tests.

One place that starts ``streamlit run dashboard/app.py`` from the repository root (so
``.streamlit/config.toml`` applies) on a free 127.0.0.1 port, waits for its health check, and always
stops it; and the Debian Chromium command line every browser run here uses (never
``playwright install``). Used by :mod:`bench.dashboard_load`, :mod:`bench.dashboard_browser` and the
browser tests.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium flags for this closed network: no background connections, no sandbox as root."""


def wait_for_page(page, script: str, predicate, what: str, timeout_s: float = 120.0):
    """The value of ``script`` in ``page`` once it is not null and ``predicate(value)`` holds.

    Polls every 20 ms (a playwright page); raises ``TimeoutError`` naming ``what`` after
    ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value is not None and predicate(value):
            return value
        page.wait_for_timeout(20)
    raise TimeoutError(f"{what} was not drawn in time")


def require_chromium() -> None:
    """End a benchmark with one ``error:`` line when Debian's Chromium is not installed."""
    from datasets.cli import fail

    if not CHROMIUM.exists():
        fail(
            f"Chromium not found at {CHROMIUM}; install Debian's chromium (apt-get install chromium)"
        )


@dataclass
class Server:
    """A running dashboard server."""

    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the server log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(
    log_path: Path, *, env: Mapping[str, str], start_timeout: float = 120.0
) -> Iterator[Server]:
    """Run the dashboard on a free 127.0.0.1 port for the ``with`` block; always stop it.

    Parameters
    ----------
    log_path : Path
        The server's stdout and stderr go here.
    env : mapping
        The server's environment (e.g. ``CONVLSTM_CHECKPOINTS``).
    start_timeout : float
        Seconds to wait for ``/_stcore/health``.

    Yields
    ------
    Server
        Port, process and log of the running server.
    """
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", LOOPBACK,
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
    ]  # fmt: skip
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, proc, start_timeout, log_path)
        yield Server(port=port, proc=proc, log=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Wait until the server answers its health check (no proxy: loopback only)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{LOOPBACK}:{port}/_stcore/health"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=2) as reply:
                if reply.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not start (exit {proc.poll()}); see {log}")
        time.sleep(0.2)


__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "LOOPBACK",
    "REPO",
    "Server",
    "dashboard_server",
    "free_port",
    "require_chromium",
    "wait_healthy",
]

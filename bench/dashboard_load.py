"""Load on the dashboard: many concurrent sessions over Streamlit's websocket, on 127.0.0.1 only.

Usage::

    python -m bench.dashboard_load [--sessions 16] [--rounds 2] [--timeout 150]
                                   [--concurrency N] [--log FILE]

Starts ``streamlit run dashboard/app.py`` from the repository root on a free loopback port with the
shipped checkpoints (``checkpoints/``), opens the default page once (warm-up), records the
server's idle resident memory, then opens ``--sessions`` pages at the same time, each a deep link to
a different rollout (the bundled datasets that have a shipped checkpoint, one sample index each,
the views Gates / Pixel probe / Metrics in turn). Further ``--rounds`` open the same links again
(cached rollouts: memory must not keep growing). It prints each session's time, charts and errors,
the median and maximum session time per round, and the server's resident memory (``VmRSS``) when
idle, at its peak during the load (sampled every 0.1 s, and ``VmHWM``) and a few seconds after each
round, against the bounds that ``tests/dashboard/test_load.py`` asserts:

- after each round: idle + the cache budgets that may legitimately stay filled
  (:data:`RETAINED_CACHES` of :data:`dashboard.budget.BUDGETS`) + :data:`AFTER_MARGIN`;
- peak: idle + :data:`PEAK_MARGIN`.

Exits with status 1 when a session failed or a bound was passed. The server is always stopped.
Nothing leaves the machine: the server listens on 127.0.0.1, every dataset download URL points
at a closed loopback port, and the client refuses any other host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from bench.server import Server, dashboard_server
from bench.streamlit_client import LOOPBACK, PageRun, open_page, open_pages
from dashboard.budget import BUDGETS
from datasets.cli import Parser, one_line_errors

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPO / "checkpoints"

PAIRS = (
    ("radar_synthetic", "radar_mch"),
    ("moving_mnist", "video_moving_mnist"),
    ("traffic_sumo", "traffic_sumo"),
)
"""(bundled dataset, shipped checkpoint compatible with it); the page rejects (with a warning) a
link whose checkpoint does not fit its dataset, which the load check then reports."""

N_SAMPLES = 8
"""Samples of a bundled dataset on the page (``dashboard.services.DEFAULT_N_SAMPLES``)."""

VIEW_CHARTS = {
    "Gates": ("forecast", "gates", "gate_means"),
    "Pixel probe": ("forecast", "probe_map", "probe"),
    "Metrics": ("forecast", "metrics"),
}
"""The plotly charts (``layout.meta.kind``) each view of the page draws."""

RETAINED_CACHES = ("datasets", "rollouts", "figures", "scores")
"""Shared caches the load fills and that keep their entries after the sessions close."""

MB = 10**6
AFTER_MARGIN = 300 * MB
"""Allowance over idle + retained cache budgets after the load (allocator slack, session state)."""
PEAK_MARGIN = 2500 * MB
"""Allowance over idle during the load."""
CLOSED_URL = "http://127.0.0.1:9/"
"""Base URL given to every dataset source: nothing listens there, a download fails at once."""


@dataclass(frozen=True)
class Plan:
    """One session: a deep link to one rollout and view."""

    dataset: str
    checkpoint: str
    sample: int
    view: str
    horizon: int | None = None

    @property
    def query(self) -> str:
        """The deep link's query string."""
        params = {
            "dataset": self.dataset,
            "checkpoint": self.checkpoint,
            "sample": self.sample,
            "view": self.view,
        }
        if self.horizon is not None:
            params["horizon"] = self.horizon
        return urlencode(params)

    @property
    def charts(self) -> tuple[str, ...]:
        """Chart kinds this view must draw."""
        return VIEW_CHARTS[self.view]


def plans(n: int, *, first_sample: int = 1) -> list[Plan]:
    """``n`` sessions, each on a different rollout (dataset, checkpoint, sample, horizon).

    Session ``i`` takes pair ``i % 3`` of :data:`PAIRS` and sample ``first_sample + i // 3``
    (sample 0 of the default dataset is the warm-up's rollout); past the last sample the horizon
    is shortened by one per round so every rollout stays distinct. Views cycle through
    :data:`VIEW_CHARTS` so each dataset gets each view.

    Parameters
    ----------
    n : int
        Number of sessions (1 to 200).
    first_sample : int
        Lowest sample index used.

    Returns
    -------
    list of Plan
    """
    if not 1 <= n <= 200:
        raise ValueError(f"sessions must be 1-200, not {n}")
    views = list(VIEW_CHARTS)
    per_round = N_SAMPLES - first_sample
    out = []
    for i in range(n):
        dataset, checkpoint = PAIRS[i % len(PAIRS)]
        k = i // len(PAIRS)
        horizon = None
        if k >= per_round:
            horizon = _train_horizon(checkpoint) - k // per_round
            if horizon < 1:
                raise ValueError(f"not enough distinct rollouts for {n} sessions")
        sample = first_sample + k % per_round
        out.append(Plan(dataset, checkpoint, sample, views[k % len(views)], horizon))
    return out


def _train_horizon(checkpoint: str) -> int:
    meta = json.loads((CHECKPOINTS / checkpoint / "meta.json").read_text())
    return int(meta["horizon"])


# -- the server -----------------------------------------------------------------------------------
def server_env(cache_dir: str) -> dict[str, str]:
    """The server's environment: shipped checkpoints, private download cache, no download URL.

    Parameters
    ----------
    cache_dir : str
        Download cache folder of the server (``$CONVLSTM_LAB_CACHE``).

    Returns
    -------
    dict
        ``os.environ`` plus those settings, with proxy variables removed.
    """
    from datasets import download

    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["CONVLSTM_CHECKPOINTS"] = str(CHECKPOINTS)
    env[download.CACHE_ENV] = cache_dir
    for source in download.SOURCES:
        env[download.env_var_for(source)] = CLOSED_URL
    return env


@contextlib.contextmanager
def load_server(log_path: Path, *, start_timeout: float = 120.0) -> Iterator[Server]:
    """The dashboard on loopback with the shipped checkpoints and a private, offline download
    cache (:func:`server_env`), for the ``with`` block (:func:`bench.server.dashboard_server`)."""
    with tempfile.TemporaryDirectory(prefix="convlstm-load-cache-") as cache:
        with dashboard_server(log_path, env=server_env(cache), start_timeout=start_timeout) as srv:
            yield srv


# -- memory ---------------------------------------------------------------------------------------
def proc_status_bytes(pid: int, key: str = "VmRSS") -> int:
    """A ``kB`` line of ``/proc/PID/status`` in bytes (``VmRSS``: resident now; ``VmHWM``: peak).

    Parameters
    ----------
    pid : int
        Process id.
    key : str
        The field.

    Returns
    -------
    int
        Bytes; 0 when the process or the field is gone.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (e.g. an upload reader), from ``/proc/PID/task/*/children``."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            out.extend(int(c) for c in (task / "children").read_text().split())
    return out


async def _sample_rss(pid: int, peak: list[int], stop: asyncio.Event, every: float = 0.1) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], proc_status_bytes(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


# -- the load -------------------------------------------------------------------------------------
@dataclass
class Round:
    """One round of concurrent sessions and the server's memory a few seconds after it."""

    runs: list[PageRun]
    wall_s: float
    after_rss: int = 0
    settle_s: float = 0.0

    def times(self) -> tuple[float, float]:
        """(median, max) session seconds."""
        secs = [r.seconds for r in self.runs] or [0.0]
        return statistics.median(secs), max(secs)


@dataclass
class LoadReport:
    """What :func:`run_load` measured (bytes and seconds).

    ``rounds[0]`` opens every planned link for the first time (each a new rollout); later rounds
    open the same links again (rollouts and figures come from the shared caches).
    """

    warmup: PageRun
    plans: list[Plan]
    rounds: list[Round]
    idle_rss: int
    peak_rss: int = 0
    hwm: int = 0
    children: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def runs(self) -> list[PageRun]:
        """The sessions of the first round."""
        return self.rounds[0].runs if self.rounds else []

    @property
    def after_rss(self) -> int:
        """Resident memory after the last round."""
        return self.rounds[-1].after_rss if self.rounds else 0

    @property
    def after_bound(self) -> int:
        """Idle + :data:`RETAINED_CACHES` budgets + :data:`AFTER_MARGIN`."""
        return self.idle_rss + sum(BUDGETS[k] for k in RETAINED_CACHES) + AFTER_MARGIN

    @property
    def peak_bound(self) -> int:
        """Idle + :data:`PEAK_MARGIN`."""
        return self.idle_rss + PEAK_MARGIN

    def summary(self) -> str:
        """Lines for a terminal or a test log."""
        lines = [
            f"warm-up (default page): {self.warmup.status} in {self.warmup.seconds:.1f} s, "
            f"{self.warmup.plotly_charts} charts",
            f"{'session query (round 1)':<78} {'status':>9} {'s':>6} {'charts':>6} {'MB':>6}",
        ]
        for run in self.runs:
            lines.append(
                f"{run.query:<78} {run.status:>9} {run.seconds:6.1f} {run.plotly_charts:6d} "
                f"{run.nbytes / MB:6.2f}"
                + (f"  errors={run.errors} exceptions={run.exceptions}" if not run.ok else "")
            )
        lines.append(f"server RSS idle (after the warm-up): {self.idle_rss / MB:.0f} MB")
        for i, rnd in enumerate(self.rounds, 1):
            med, top = rnd.times()
            what = "new rollouts" if i == 1 else "same links again, cached rollouts"
            lines.append(
                f"round {i} ({what}): {len(rnd.runs)} concurrent sessions in {rnd.wall_s:.1f} s, "
                f"median {med:.1f} s, max {top:.1f} s per session; RSS "
                f"{rnd.after_rss / MB:.0f} MB {rnd.settle_s:.1f} s after the last one closed"
            )
        lines += [
            f"server RSS peak {self.peak_rss / MB:.0f} MB (sampled every 0.1 s; VmHWM "
            f"{self.hwm / MB:.0f} MB); child processes after: {self.children}",
            f"bounds: after <= {self.after_bound / MB:.0f} MB (idle + "
            f"{'+'.join(RETAINED_CACHES)} budgets + {AFTER_MARGIN / MB:.0f} MB), "
            f"peak <= {self.peak_bound / MB:.0f} MB (idle + {PEAK_MARGIN / MB:.0f} MB)",
        ]
        lines += [f"PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


def check_run(run: PageRun, plan: Plan | None = None) -> list[str]:
    """What is wrong with one page run (empty when nothing).

    Parameters
    ----------
    run : PageRun
        The page as received.
    plan : Plan, optional
        What it asked for: its link must come back in the page's query string (no parameter
        rejected, so the rollout is the one asked for) and its view's charts must be drawn.

    Returns
    -------
    list of str
    """
    tag = run.query or "(default page)"
    out = []
    if run.status != "finished":
        out.append(f"{tag}: {run.status} {run.error}".rstrip())
    out += [f"{tag}: exception element {e!r}" for e in run.exceptions]
    out += [f"{tag}: error alert {e!r}" for e in run.errors]
    out += [f"{tag}: warning {w!r}" for w in run.warnings]
    if run.unresolved_refs:
        out.append(f"{tag}: {run.unresolved_refs} ref_hash message(s) never resolved")
    if run.plotly_charts < 1:
        out.append(f"{tag}: no plotly chart")
    if plan is not None and run.status == "finished":
        shown = {k: v[-1] for k, v in parse_qs(run.final_query or "").items()}
        for key, want in parse_qs(plan.query).items():
            if shown.get(key) != want[-1]:
                out.append(f"{tag}: page shows {key}={shown.get(key)!r}, not {want[-1]!r}")
        missing = sorted(set(plan.charts) - set(run.chart_kinds))
        if missing:
            out.append(f"{tag}: charts {missing} missing (got {run.chart_kinds})")
    return out


async def run_load(
    server: Server,
    n_sessions: int = 16,
    *,
    rounds: int = 1,
    timeout: float = 150.0,
    concurrency: int | None = None,
    settle_min_s: float = 3.0,
    settle_s: float = 10.0,
) -> LoadReport:
    """Warm up, measure idle memory, run the rounds of concurrent sessions, measure memory after.

    Parameters
    ----------
    server : Server
        From :func:`dashboard_server`.
    n_sessions : int
        Concurrent sessions per round (each a distinct rollout, see :func:`plans`).
    rounds : int
        Rounds (1-5); rounds after the first open the same links again.
    timeout : float
        Deadline of each page, seconds (the warm-up gets the same).
    concurrency : int, optional
        At most this many sessions open at once (default: all).
    settle_min_s : float
        After the last session of a round closed, wait this long before reading the memory.
    settle_s : float
        ... and then at most this long in all for it to come under
        :attr:`LoadReport.after_bound` (read every 0.5 s).

    Returns
    -------
    LoadReport
        With :attr:`LoadReport.problems` listing every failed check.
    """
    if not 1 <= rounds <= 5:
        raise ValueError(f"rounds must be 1-5, not {rounds}")
    pid = server.proc.pid
    warmup = await open_page(server.port, "", timeout=timeout)
    await asyncio.sleep(1.0)
    todo = plans(n_sessions)
    report = LoadReport(warmup, todo, [], proc_status_bytes(pid))
    batches = 1 + (n_sessions - 1) // max(1, concurrency or n_sessions)
    peak, stop = [report.idle_rss], asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, peak, stop))
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            runs = await asyncio.wait_for(
                open_pages(
                    server.port, [p.query for p in todo], timeout=timeout, concurrency=concurrency
                ),
                timeout=timeout * batches + 30,
            )
            rnd = Round(runs, time.perf_counter() - t0)
            report.rounds.append(rnd)
            t1 = time.monotonic()
            await asyncio.sleep(min(settle_min_s, settle_s))  # closed sessions' threads end
            while True:
                rnd.after_rss = proc_status_bytes(pid)
                rnd.settle_s = time.monotonic() - t1
                if rnd.after_rss <= report.after_bound or rnd.settle_s >= settle_s:
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await sampler
    report.peak_rss = max(peak[0], report.idle_rss)
    report.hwm = proc_status_bytes(pid, "VmHWM")
    report.children = len(child_pids(pid))
    report.problems = _problems(report, server)
    return report


def _problems(report: LoadReport, server: Server) -> list[str]:
    problems = check_run(report.warmup)
    for i, rnd in enumerate(report.rounds, 1):
        for plan, run in zip(report.plans, rnd.runs, strict=True):
            problems += [f"round {i}: {p}" for p in check_run(run, plan)]
        if rnd.after_rss > report.after_bound:
            problems.append(
                f"round {i}: RSS {rnd.after_rss / MB:.0f} MB {rnd.settle_s:.0f} s after the "
                f"sessions closed, over {report.after_bound / MB:.0f} MB (idle + retained cache "
                "budgets + margin)"
            )
    if len({p.query for p in report.plans}) != len(report.plans):
        problems.append("the sessions did not ask for distinct rollouts")
    if report.peak_rss > report.peak_bound:
        problems.append(
            f"peak RSS {report.peak_rss / MB:.0f} MB over idle + {PEAK_MARGIN / MB:.0f} MB"
        )
    if server.proc.poll() is not None:
        problems.append(f"the server exited ({server.proc.returncode}) during the load")
    return problems


@one_line_errors(ValueError, OSError)
def main(argv: list[str] | None = None) -> int:
    """Command line: start a server, run the load, print the report; 1 when a check failed.

    A bad option (``--sessions 0``) or a server that cannot start ends it with one line on stderr
    and status 2 (:mod:`datasets.cli`).
    """
    parser = Parser(prog="python -m bench.dashboard_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=16, help="concurrent sessions (1-200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, repeats reuse links (1-5)")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds per page")
    parser.add_argument("--concurrency", type=int, default=None, help="open at most N at once")
    parser.add_argument("--log", type=Path, default=None, help="server log file")
    args = parser.parse_args(argv)
    plans(args.sessions)  # fail early on a bad count
    with contextlib.ExitStack() as stack:
        log = args.log
        if log is None:
            log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "streamlit.log"
        with load_server(log) as server:
            print(f"server pid {server.proc.pid} on {LOOPBACK}:{server.port}; log {log}")
            report = asyncio.run(
                run_load(
                    server,
                    args.sessions,
                    rounds=args.rounds,
                    timeout=args.timeout,
                    concurrency=args.concurrency,
                )
            )
            print(report.summary())
            if report.problems:
                print("--- server log (tail) ---\n" + server.log_tail())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Browser benchmark of the dashboard as users meet it: shipped checkpoints, bundled data, Chromium.

    python -m bench.dashboard_browser [--runs 3]

Starts ``streamlit run dashboard/app.py`` on 127.0.0.1 (the repository's ``.streamlit/config.toml``,
the shipped ``checkpoints/``), drives Debian's Chromium with playwright and prints, as medians of
``--runs`` tries:

- ``cold_first_page_s``: from starting the server process to the first animated forecast drawn;
- ``warm_new_page_s``: a new browser page (a new session) on the warm server to its forecast;
- ``warm_new_page_complete_s`` (no target; printed after the four): the same page until the gate
  panels and gate means under the forecast are drawn too (they come in the page's second run);
- ``sample_change_s``: "+" on the sample of a settled page (its gates drawn too) to the new
  sample's forecast drawn (a new rollout);
- ``domain_switch_s``: a click on another domain to that domain's forecast drawn;
- ``page_ws_bytes``: bytes the opening page received over the websocket;
- ``load_average``: the machine's 1-minute load average at the start and the end (the machine is
  shared: timings at load 10 are several times those at load 1).

Targets (issue: a dashboard a presenter can trust): cold first page <= 8 s; new page <= 3 s;
sample change <= 1 s; domain switch <= 1.5 s. Results also go to
``test-artifacts/bench_dashboard_browser.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from bench.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    dashboard_server,
    require_chromium,
    wait_for_page,
)
from datasets.cli import Parser, one_line_errors

ARTIFACTS = REPO / "test-artifacts"
TARGETS = {
    "cold_first_page_s": 8.0,
    "warm_new_page_s": 3.0,
    "sample_change_s": 1.0,
    "domain_switch_s": 1.5,
}
COMPLETE = "warm_new_page_complete_s"
# The forecast chart once drawn: its plotly meta, and whether its animation frames are loaded.
JS_GATE_MEANS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(
  (gd) => gd.layout && gd.layout.meta && gd.layout.meta.kind === 'gate_means' && gd._fullLayout)
  || null"""
"""True once the gate means chart (the last chart of the opening page) is drawn."""
JS_FORECAST = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (m && m.kind === 'forecast' && gd._transitionData && gd._transitionData._frames
        && gd._transitionData._frames.length > 0) {
      return {sample: m.sample, dataset: m.dataset};
    }
  }
  return null;
}"""


def wait_forecast(page, predicate=lambda c: True) -> dict:
    """The forecast chart's meta once it is drawn and ``predicate(meta)`` holds."""
    return wait_for_page(page, JS_FORECAST, predicate, "the forecast chart")


def measure(runs: int) -> dict:
    """Run the benchmark; returns the medians, every run's values and the payload."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    values: dict[str, list[float]] = {key: [] for key in (*TARGETS, COMPLETE)}
    payload: list[int] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for run in range(runs):
            t0 = time.perf_counter()
            log = ARTIFACTS / f"bench_dashboard_server_{run}.log"
            with dashboard_server(log, env=os.environ) as server:
                url = server.url
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                received = {"bytes": 0}

                def count(ws, received=received):
                    ws.on(
                        "framereceived",
                        lambda data: received.__setitem__(
                            "bytes",
                            received["bytes"]
                            + len(data if isinstance(data, bytes) else data.encode()),
                        ),
                    )

                page.on("websocket", count)
                page.goto(url + "/")
                wait_forecast(page)
                values["cold_first_page_s"].append(time.perf_counter() - t0)
                payload.append(received["bytes"])
                page.close()
                time.sleep(8)  # the server warms the other domains in the background
                for _ in range(2):
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    t = time.perf_counter()
                    page.goto(url + "/")
                    wait_forecast(page)
                    values["warm_new_page_s"].append(time.perf_counter() - t)
                    wait_for_page(page, JS_GATE_MEANS, bool, "the gate means chart")
                    values[COMPLETE].append(time.perf_counter() - t)
                    page.close()
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url + "/")
                wait_forecast(page)
                wait_for_page(page, JS_GATE_MEANS, bool, "the gate means chart")  # page settled
                box = page.locator('[data-testid="stNumberInput"]').filter(has_text="Sample")
                for want in (1, 2):
                    t = time.perf_counter()
                    box.first.locator('button[data-testid="stNumberInputStepUp"]').click()
                    wait_forecast(page, lambda c, want=want: c["sample"] == want)
                    values["sample_change_s"].append(time.perf_counter() - t)
                    page.wait_for_timeout(300)
                shown = wait_forecast(page)["dataset"]
                for domain in ("traffic", "video", "radar"):  # the page opens on radar
                    t = time.perf_counter()
                    page.get_by_text(domain, exact=True).first.click()
                    shown = wait_forecast(page, lambda c, was=shown: c["dataset"] != was)["dataset"]
                    values["domain_switch_s"].append(time.perf_counter() - t)
                    page.wait_for_timeout(300)
                page.screenshot(path=str(ARTIFACTS / "bench_dashboard_browser.png"))
                page.close()
        browser.close()
    medians = {key: round(statistics.median(v), 2) for key, v in values.items() if v}
    return {
        "medians_s": medians,
        "targets_s": TARGETS,
        "all_s": {key: [round(x, 2) for x in v] for key, v in values.items()},
        "page_ws_bytes": int(statistics.median(payload)) if payload else None,
        "runs": runs,
    }


@one_line_errors(OSError, TimeoutError, ImportError)
def main(argv: list[str] | None = None) -> int:
    """``python -m bench.dashboard_browser [--runs N]``; problems end it with one line, status 2."""
    parser = Parser(prog="python -m bench.dashboard_browser", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh servers to measure (median)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: give at least 1")
    require_chromium()
    load_start = os.getloadavg()[0]
    result = measure(args.runs)
    result["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    (ARTIFACTS / "bench_dashboard_browser.json").write_text(json.dumps(result, indent=2))
    print(f"{'timing':22s} {'median s':>9s} {'target s':>9s}  runs")
    for key, target in TARGETS.items():
        median = result["medians_s"].get(key)
        runs = ", ".join(f"{v:.2f}" for v in result["all_s"][key])
        print(f"{key:22s} {median:9.2f} {target:9.2f}  {runs}")
    runs = ", ".join(f"{v:.2f}" for v in result["all_s"][COMPLETE])
    print(f"{'  ...until its gates':22s} {result['medians_s'][COMPLETE]:9.2f} {'-':>9s}  {runs}")
    print(f"opening page websocket payload: {result['page_ws_bytes'] / 1e6:.2f} MB")
    start, end = result["load_average"]
    print(
        f"1-minute load average: {start:.2f} at the start, {end:.2f} at the end ({os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Browser benchmark of the dashboard (run by hand, not collected by pytest).

    .venv/bin/python -m tests.bench_dashboard_browser [--hidden 64 64 --patch 2]

Writes untrained ``radar_synthetic`` checkpoints to a temporary folder, starts ``streamlit run``
on 127.0.0.1, opens a 12+12-frame radar rollout at 128x128 with the gates view open in Debian
chromium, and measures:

- ``page_ws_bytes``: bytes the page received over the websocket (the plotly JSON and the rest);
- ``forecast_spec_bytes`` / ``gates_spec_bytes``: JSON size of the two animated charts;
- ``sample_change_s``: time from clicking "+" on the sample to the new forecast drawn (median of
  several changes, each a new rollout), and the same with the rollout cached (``cached_change_s``).
Results go to ``test-artifacts/bench_dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.test_browser_dashboard import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    NORMALIZATION,
    REPO,
    _free_port,
    _wait_chart,
)

JS_SPEC_BYTES = """(kind) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const m = gd.layout && gd.layout.meta;
    if (m && m.kind === kind) {
      return JSON.stringify({data: gd.data, layout: gd.layout, frames: gd._transitionData._frames}).length;
    }
  }
  return null;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--changes", type=int, default=3)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.dashboard_synthetic import make_checkpoint

    root = Path(tempfile.mkdtemp(prefix="bench_ckpt_"))
    name = f"bench_radar_h{'x'.join(map(str, args.hidden))}_p{args.patch}"
    make_checkpoint(
        root, name, dataset="radar_synthetic", domain="radar", frame_size=(128, 128),
        hidden=tuple(args.hidden), patch_size=args.patch, context=12, horizon=12,
        normalization=NORMALIZATION["radar"],
    )  # fmt: skip
    port = _free_port()
    env = dict(os.environ, CONVLSTM_CHECKPOINTS=str(root))
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    result: dict = {"checkpoint": name, "hidden": args.hidden, "patch": args.patch}
    try:
        time.sleep(4)
        url = f"http://127.0.0.1:{port}/?dataset=radar_synthetic&checkpoint={name}&view=Gates"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2100})
            received = {"bytes": 0}

            def on_ws(ws):
                def add(payload):
                    received["bytes"] += (
                        len(payload) if isinstance(payload, bytes) else len(payload.encode())
                    )

                ws.on("framereceived", add)

            page.on("websocket", on_ws)
            t0 = time.perf_counter()
            page.goto(url)
            _wait_chart(page, "forecast", lambda c: c["n"] == 3, 300)
            _wait_chart(page, "gates", lambda c: c["n"] == 6, 300)
            page.wait_for_timeout(1500)
            result["first_page_s"] = round(time.perf_counter() - t0, 2)
            result["page_ws_bytes"] = received["bytes"]
            result["forecast_spec_bytes"] = page.evaluate(JS_SPEC_BYTES, "forecast")
            result["gates_spec_bytes"] = page.evaluate(JS_SPEC_BYTES, "gates")
            page.screenshot(path=str(ARTIFACTS / "bench_radar_gates.png"))
            box = page.locator('[data-testid="stNumberInput"]').filter(has_text="Sample").first

            def change(direction: str, want: int) -> float:
                t = time.perf_counter()
                box.locator(f'button[data-testid="stNumberInputStep{direction}"]').click()
                _wait_chart(page, "forecast", lambda c: c["meta"].get("sample") == want, 300)
                took = time.perf_counter() - t
                _wait_chart(page, "gates", lambda c: c["n"] == 6, 300)
                page.wait_for_timeout(800)
                return took

            fresh = [change("Up", k) for k in range(1, args.changes + 1)]
            cached = [change("Down", k) for k in range(args.changes - 1, -1, -1)]
            result["sample_change_s"] = [round(v, 2) for v in fresh]
            result["sample_change_median_s"] = round(statistics.median(fresh), 2)
            result["cached_change_s"] = [round(v, 2) for v in cached]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / f"bench_dashboard_{name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

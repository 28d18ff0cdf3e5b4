"""The whole-domain benchmark runs end to end and prints one row per domain and variant."""

from __future__ import annotations

import pytest

from bench.radar_domain import main


@pytest.mark.slow
def test_benchmark_prints_a_row_per_domain(capsys):
    main(["--domains", "130x140", "--context", "2", "--horizon", "2", "--runs", "1",
          "--variants", "capture", "--threads", "1"])  # fmt: skip
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("130x140"))
    # domain, model grid, capture, tiles, gates, gate MiB, cold s, warm s, CPU s, RSS ...
    assert row[:5] == ["130x140", "130x140", "capture", "4", "32x35"]
    assert row[7] == "-"  # one call: no warm time
    peak, ru_maxrss, before = (float(v) for v in row[9:12])
    assert peak > before > 100 and ru_maxrss >= peak  # VmHWM: the child's own peak

"""Every ``python -m`` command line ends a bad argument with one line on stderr and status 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "datasets", "bench", "tools")
CONFIG = """
[data]
file = "frames.npz"
context = 2
horizon = 2
"""

CASES = [
    ("model.train", ["missing.toml"], "missing.toml: cannot read the training config"),
    ("model.train", ["c.toml", "--data", "none.npz"], "none.npz: no such file"),
    ("model.train", ["c.toml", "--split", "0.5,0.5"], "split '0.5,0.5' has 2 fraction(s)"),
    ("model.train", ["c.toml", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    ("model.evaluate", ["no_checkpoint"], "'no_checkpoint': not a checkpoint folder"),
    (
        "model.import_weights",
        ["keras", "nothere.keras", "--out", "x"],
        "nothere.keras: no such file",
    ),
    ("model.evaluate", ["no_checkpoint", "--thresholds", "a,b"], "--thresholds 'a,b'"),
    ("model.evaluate", ["no_checkpoint", "--loso", "runs/loso"], "--loso needs --data-root"),
    (
        "model.loso",
        ["--data-root", "nowhere", "--out", "x"],
        "--data-root nowhere: no such folder",
    ),
    ("model.loso", ["--data-root", "."], "--out DIR is needed to train"),
    ("datasets.download", ["no_such_dataset"], "'no_such_dataset' is not downloadable"),
    ("bench.rollout", ["--rounds", "0"], "--rounds 0: give at least 1"),
    ("bench.rollout", ["--device", "toaster"], "--device 'toaster': use cpu, cuda"),
    ("bench.dashboard_load", ["--sessions", "0"], "sessions must be 1-200, not 0"),
    ("bench.dashboard_browser", ["--runs", "0"], "--runs 0: give at least 1"),
    ("bench.lab_intervention", ["--clicks", "0"], "--clicks 0: give at least 1"),
    ("bench.train_throughput", ["--steps", "0"], "--steps 0: give at least 1"),
    ("bench.video_ablation", ["--steps", "0"], "--steps 0: give at least 1"),
    ("bench.video_ablation", ["--init", "nowhere"], "--init nowhere: no checkpoint there"),
    ("bench.radar_domain", ["--runs", "0"], "--runs 0: give at least 1"),
    ("tools.sumo_traffic", ["--out", "x.nc", "--interval-s", "7"], "--interval-s must divide"),
    ("tools.make_fmi_sample", ["--size", "8"], "--size 8: give at least 32 pixels"),
]


def _command_lines() -> set[str]:
    """Modules of the project's packages that run as ``python -m PACKAGE.MODULE``."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_every_command_line_is_checked():
    assert _command_lines() == {module for module, _, _ in CASES}


@pytest.mark.slow
@pytest.mark.parametrize(("module", "argv", "says"), CASES)
def test_bad_argument_is_one_line_and_status_2(tmp_path, module, argv, says):
    (tmp_path / "c.toml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert says in lines[0]

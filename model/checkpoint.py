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

Validation
----------
Checkpoint folders may come from anywhere, so each is checked on its own, and nothing large is
allocated before the check passes (:func:`validate_checkpoint`, run by :func:`scan_checkpoints` and
:func:`load_checkpoint`):

1. ``meta.json`` and ``model.safetensors`` must be regular files inside the folder (a symlink
   pointing elsewhere is refused), at most :data:`MAX_META_BYTES` and :data:`MAX_WEIGHTS_BYTES`.
2. JSON (``meta.json`` and the safetensors header) nested deeper than :data:`MAX_JSON_DEPTH` is
   refused before it is parsed.
3. The keys this code reads have the right types (:func:`read_metadata` lists them).
4. The architecture is within these limits, and the parameter count the config implies is at
   most :data:`MAX_PARAMETERS` -- all before a torch module is built:

   ========================  =========================================================
   in/out channels           1 to :data:`MAX_CHANNELS` (256)
   hidden channels           1 to :data:`MAX_HIDDEN_CHANNELS` (1024) per layer
   layers                    1 to :data:`MAX_LAYERS` (16)
   kernel size               odd, 1 to :data:`MAX_KERNEL_SIZE` (15)
   patch size                1 to :data:`MAX_PATCH_SIZE` (64)
   frame side (H, W)         1 to :data:`MAX_FRAME_SIDE` (4096) pixels
   parameters                at most :data:`MAX_PARAMETERS` (200 million, 800 MB in float32)
   ========================  =========================================================

5. The safetensors header (8-byte little-endian length, at most :data:`MAX_HEADER_BYTES`, then
   JSON) names exactly the tensors the config implies (:func:`state_shapes`), each with a float
   dtype, that shape, and byte ranges that tile the rest of the file exactly.

Error messages name the checkpoint by its folder name (they are shown in a browser), never by a
server path; :attr:`CheckpointError.path` keeps the full path for logs.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from datasets.guards import sha256_of
from model.convlstm import CONV_GATES, READOUTS, ConvLSTM, ConvLSTMConfig, reorder_gates
from model.devices import CPU_FALLBACK_NOTE, free_gpu_memory, is_out_of_memory
from model.normalize import KINDS, Normalizer

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / "checkpoints"

MAX_META_BYTES = 1 << 20
"""Largest ``meta.json`` read (1 MiB; the shipped ones are 8-20 KB)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON objects/arrays accepted (the shipped metadata nests 5 levels)."""
MAX_HEADER_BYTES = 16 << 20
"""Largest safetensors header read (16 MiB; ours are under 10 KB)."""
MAX_CHANNELS = 256
MAX_HIDDEN_CHANNELS = 1024
MAX_LAYERS = 16
MAX_KERNEL_SIZE = 15
MAX_PATCH_SIZE = 64
MAX_FRAME_SIDE = 4096
MAX_PARAMETERS = 200_000_000
"""Most parameters a config may imply (800 MB in float32); checked before anything is built."""
MAX_WEIGHTS_BYTES = 8 + MAX_HEADER_BYTES + 8 * MAX_PARAMETERS
"""Largest ``model.safetensors`` opened: the header limit plus the parameter limit in float64."""
MAX_SEQUENCE = 100_000
"""Largest ``context``/``horizon`` (frames) accepted in metadata."""

_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
"""Safetensors dtypes accepted for weights, and their sizes in bytes."""
_CONFIG_KEYS = {
    "in_channels", "out_channels", "hidden_channels", "kernel_size", "patch_size", "frame_size",
    "peephole", "forget_bias", "output_activation", "layer_norm", "readout", "readout_bias",
    "residual",
}  # fmt: skip
_TEXT_KEYS = ("dataset", "domain", "name", "description", "units", "time_step", "source",
              "licence", "command", "git_revision")  # fmt: skip
_DICT_KEYS = ("dataset_options", "training", "metrics")
_INT_KEYS = ("channels", "parameters", "best_step")


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt, or does not match the model it describes.

    The message names the checkpoint folder (by name), the file and the problem, and says what to
    do; it is safe to show to users.

    Parameters
    ----------
    message : str
        The sentence shown to users.
    path : path, optional
        The full path of the file or folder concerned, for logs (:attr:`path`).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = Path(path) if path is not None else None


@dataclass(frozen=True)
class CheckpointEntry:
    """One folder under a checkpoint root, as listed by :func:`scan_checkpoints`.

    Attributes
    ----------
    name : str
        The folder name (what users pick).
    meta : dict or None
        The validated metadata (:func:`validate_checkpoint`); None when unavailable.
    problem : str or None
        Why the checkpoint is unavailable, one sentence for users; None when available.
    """

    name: str
    meta: dict | None
    problem: str | None

    @property
    def available(self) -> bool:
        """Whether the folder passed validation (``meta`` is set, ``problem`` is None)."""
        return self.problem is None


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
        weights_sha256=sha256_of(weights),
    )
    text = json.dumps(meta, indent=2, sort_keys=True, default=_json_default)
    (directory / META_FILE).write_text(text + "\n")
    return directory


def read_metadata(directory: str | Path) -> dict:
    """Read and validate ``meta.json`` of a checkpoint folder (no weights are read).

    Checked: the file (regular, inside the folder, at most :data:`MAX_META_BYTES`), JSON nesting
    (at most :data:`MAX_JSON_DEPTH`), ``format_version``, ``config`` (types and the limits in the
    module docstring, parameter count included), ``gate_order`` (the four gates once each), and,
    when present: ``dataset``, ``domain``, ``name``, ``description``, ``units``, ``time_step``,
    ``source``, ``licence``, ``command``, ``git_revision`` (strings or null), ``context`` and
    ``horizon`` (1 to :data:`MAX_SEQUENCE`), ``channels``, ``parameters``, ``best_step``
    (integers), ``frame_size`` (two integers), ``normalization`` (a
    :class:`~model.normalize.Normalizer` dict), ``dataset_options``, ``training``, ``metrics``
    (objects), ``notes``, ``channel_names`` (lists of strings),
    ``weights_sha256`` (64 hex digits). Other keys are kept as they are.

    Parameters
    ----------
    directory : path
        The checkpoint folder.

    Returns
    -------
    dict
        The metadata.

    Raises
    ------
    CheckpointError
        The first problem found, naming the folder and key.
    """
    folder = Path(directory)
    where = f"{folder.name}/{META_FILE}"
    raw = _read_bounded(folder, META_FILE, MAX_META_BYTES)
    meta = _parse_json(raw, where, folder / META_FILE)
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{where}: expected a JSON object, found {_json_type(meta)}; the file is corrupt",
            path=folder / META_FILE,
        )
    _check_metadata(meta, where, folder / META_FILE)
    return meta


def validate_checkpoint(directory: str | Path) -> dict:
    """Everything :func:`load_checkpoint` checks before it reads the weights, without reading them.

    :func:`read_metadata`, then the safetensors header of ``model.safetensors`` against the shapes
    the config implies (:func:`state_shapes`) and the file's size. Reads at most
    :data:`MAX_META_BYTES` + :data:`MAX_HEADER_BYTES` + 8 bytes; builds no model. The weights'
    sha256 is not checked here (that reads the whole file; :func:`load_checkpoint` does it).

    Parameters
    ----------
    directory : path
        The checkpoint folder.

    Returns
    -------
    dict
        The validated metadata.

    Raises
    ------
    CheckpointError
        The first problem found.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint {folder.name!r}: not a checkpoint folder (expected {META_FILE} and "
            f"{WEIGHTS_FILE} inside)",
            path=folder,
        )
    meta = read_metadata(folder)
    _check_weights_header(folder, ConvLSTMConfig.from_dict(meta["config"]))
    return meta


def load_checkpoint(
    directory: str | Path, *, device: str | torch.device = "auto"
) -> tuple[ConvLSTM, dict]:
    """Rebuild a model from a checkpoint folder, on ``device``, in eval mode.

    The folder is validated first (:func:`validate_checkpoint`): no model is built and no weights
    are read before the metadata and the weights' header agree and fit the limits. If moving the
    model to a GPU runs out of memory, it is loaded on the CPU instead and ``meta["device_note"]``
    says so (:data:`model.devices.CPU_FALLBACK_NOTE`).

    Parameters
    ----------
    directory : path
        Folder with ``meta.json`` and ``model.safetensors``.
    device : str or torch.device
        ``"auto"`` picks cuda, then mps, then cpu (see :func:`pick_device`).

    Returns
    -------
    (ConvLSTM, dict)
        The model and its metadata; ``meta["device"]`` and ``meta["device_note"]`` say where it
        runs, ``meta["name"]`` and ``meta["path"]`` name the folder.

    Raises
    ------
    CheckpointError
        Missing, corrupt, truncated, oversized or mismatched files; the message names the
        checkpoint folder, the file and the problem (no server path; see
        :attr:`CheckpointError.path`).
    """
    directory = Path(directory)
    meta = validate_checkpoint(directory)
    config = ConvLSTMConfig.from_dict(meta["config"])
    weights = directory / WEIGHTS_FILE
    where = f"{directory.name}/{WEIGHTS_FILE}"
    expected_hash = meta.get("weights_sha256")
    if expected_hash and sha256_of(weights) != expected_hash:
        raise CheckpointError(
            f"{where}: sha256 does not match meta.json (file changed or truncated); "
            "re-copy the checkpoint or retrain",
            path=weights,
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{where}: not a readable safetensors file ({exc}); re-copy the checkpoint or retrain",
            path=weights,
        ) from exc
    model = ConvLSTM(config=config)
    state = _to_our_gate_order(state, meta["gate_order"], where)
    _check_state_dict(model, state, where, weights)
    model.load_state_dict(state)
    del state
    dev, note = pick_device(device)
    out_of_memory = False
    try:
        model.to(dev)
    except RuntimeError as exc:
        if dev.type != "cuda" or not is_out_of_memory(exc):
            raise
        out_of_memory = True
    if out_of_memory:  # outside the except block: the traceback's GPU tensors are released
        model.to("cpu")
        free_gpu_memory()
        dev, note = torch.device("cpu"), CPU_FALLBACK_NOTE
    model.eval()
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
    except Exception as exc:  # the unpickler raises many types; all mean "refused"
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


def scan_checkpoints(root: str | Path = DEFAULT_ROOT) -> list[CheckpointEntry]:
    """Every folder under ``root``, each validated on its own: available, or why not.

    Never raises for a bad folder: an unreadable folder, a missing, oversized, deeply nested,
    mistyped or symlinked-away ``meta.json``, an architecture over the limits, or weights whose
    header does not match the config each give an entry with ``problem`` set. Folder names
    starting with ``.`` are skipped. A missing or unreadable ``root`` gives an empty list.

    Parameters
    ----------
    root : path
        The folder holding checkpoint folders.

    Returns
    -------
    list of CheckpointEntry
        Sorted by name. Show ``entry.problem`` next to unavailable ones ("unavailable: ...").
    """
    root = Path(root)
    try:
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if not e.name.startswith(".") and _is_dir(e))
    except OSError:
        return []
    entries = []
    for name in names:
        try:
            entries.append(CheckpointEntry(name, validate_checkpoint(root / name), None))
        except CheckpointError as exc:
            entries.append(CheckpointEntry(name, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad folder must never break the listing
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            entries.append(
                CheckpointEntry(
                    name, None, f"checkpoint {name!r} could not be read ({type(exc).__name__}: "
                    f"{first}); check the folder's files and permissions"
                )
            )  # fmt: skip
    return entries


def list_checkpoints(root: str | Path = DEFAULT_ROOT) -> list[tuple[str, dict]]:
    """Available checkpoints under ``root``: ``[(name, metadata), ...]`` sorted by name.

    Unavailable folders are left out; :func:`scan_checkpoints` says why.
    """
    return [(e.name, e.meta) for e in scan_checkpoints(root) if e.meta is not None]


def compatible(meta: dict, data) -> bool:
    """Whether a checkpoint fits a dataset array ``(sample, time, channel, y, x)``.

    Channels and grid must match (a radar checkpoint forecasts a radar domain of any grid and
    pixel size, tiled: :func:`forecasts_any_grid`); the domain must match when both say one; the
    time steps must be equal when both state a duration (see :func:`compatibility_problem`). Odd metadata or data
    (wrong types, missing keys) gives False, never an exception.
    """
    return compatibility_problem(meta, data) is None


def compatibility_problem(meta: dict, data) -> str | None:
    """Why a checkpoint does not fit ``data`` (one sentence), or None when it fits.

    Parameters
    ----------
    meta : dict
        Checkpoint metadata (:func:`read_metadata`).
    data : xarray.DataArray
        ``(sample, time, channel, y, x)`` with ``attrs`` ``domain`` and ``time_step``.

    Returns
    -------
    str or None
        E.g. ``"trained on 5 min steps, the data has 2 min steps"``. A data time step that is no
        duration (``"1 frame"``) or missing is not a mismatch: the page says so instead.
    """
    from datasets.timesteps import parse_time_step

    try:
        cfg = meta.get("config") if isinstance(meta, dict) else None
        if not isinstance(cfg, dict):
            return "its metadata has no architecture config"
        shape = tuple(int(s) for s in data.shape)
        frame = cfg.get("frame_size")
        channels = cfg.get("in_channels")
        if len(shape) < 3 or not isinstance(frame, list | tuple) or not _is_int(channels):
            return "its metadata or the data has no channel and grid sizes"
        if channels != shape[-3]:
            return f"it reads {channels} channel(s), the data has {shape[-3]}"
        attrs = getattr(data, "attrs", None)
        attrs = attrs if isinstance(attrs, dict) else {}
        domain = attrs.get("domain")
        if domain is not None and meta.get("domain") not in (None, domain):
            return f"it was trained on {meta.get('domain')} data, this is {domain} data"
        if tuple(frame) != shape[-2:]:
            if not forecasts_any_grid(meta, data):
                return f"its grid is {frame[0]}x{frame[1]}, the data's is {shape[-2]}x{shape[-1]}"
            problem = _domain_grid_problem(cfg, meta, data, shape)
            if problem:
                return problem
        trained = parse_time_step(meta.get("time_step"))
        given = parse_time_step(attrs.get("time_step"))
        if trained is not None and given is not None and abs(trained - given) > 1e-6 * trained:
            return (
                f"it was trained on {_duration(trained)} steps, the data has {_duration(given)} "
                "steps; resample the data in time first"
            )
        return None
    except Exception:  # noqa: BLE001 - a question about untrusted metadata never raises
        return "its metadata could not be compared with the data"


def forecasts_any_grid(meta: dict, data=None) -> bool:
    """Whether checkpoint ``meta`` forecasts domains of any size and pixel size.

    Radar checkpoints do: :func:`model.tiling.domain_rollout` resamples the data to the
    checkpoint's pixel size, tiles the domain with the checkpoint's frame and blends the tiles.
    Other checkpoints run on their training grid only. With ``data``, its ``domain`` attr must
    also be radar (or unstated).
    """
    if not isinstance(meta, dict) or meta.get("domain") != "radar" or not has_forecast_head(meta):
        return False
    attrs = getattr(data, "attrs", None)
    return not isinstance(attrs, dict) or attrs.get("domain") in (None, "radar")


def _domain_grid_problem(cfg: dict, meta: dict, data, shape: tuple[int, ...]) -> str | None:
    """Why a radar domain on another grid cannot be tiled (too small, no pixel size), or None."""
    from model.regrid import checkpoint_pixel_km, data_pixel_size

    patch = int(cfg.get("patch_size") or 1)
    if min(shape[-2:]) < patch:
        return f"the data's {shape[-2]}x{shape[-1]} grid is smaller than one {patch}x{patch} cell"
    if checkpoint_pixel_km(meta) is None:
        return None  # tiled on the data grid as it is
    try:
        size = data_pixel_size(data)
    except ValueError as exc:
        return f"the data's pixel size cannot be told ({exc})"
    if size is None:
        return (
            f"its grid is {cfg['frame_size'][0]}x{cfg['frame_size'][1]} px of "
            f"{checkpoint_pixel_km(meta):g} km and the data's {shape[-2]}x{shape[-1]} grid states "
            "no pixel size: give it y/x coordinates in km or m (or a resolution_km attribute)"
        )
    return None


def has_forecast_head(meta: dict) -> bool:
    """Whether checkpoint ``meta`` can forecast; False for an inspect-mode checkpoint.

    An imported ConvLSTM without a forecasting head (``config.readout == "none"``, see
    :mod:`model.import_weights`) only reads frames: its gates are captured over them
    (:func:`model.rollout.inspect_gates`), nothing is forecast or scored.
    """
    cfg = meta.get("config") if isinstance(meta, dict) else None
    return not (isinstance(cfg, dict) and cfg.get("readout") == "none")


def family_note(meta: dict, data) -> str | None:
    """A note when ``data`` shows another kind of content than the checkpoint was trained on.

    Such a checkpoint still *fits* (:func:`compatible`: channels, grid, domain and time step agree),
    but its forecasts say little about the data: ``"trained on Moving MNIST digits; this is
    natural video"``. None when both families are known and equal, or either is unknown (the
    ``family`` attr of the data, ``data_family`` of the metadata).
    """
    trained = meta.get("data_family") if isinstance(meta, dict) else None
    attrs = getattr(data, "attrs", None)
    given = attrs.get("family") if isinstance(attrs, dict) else None
    if not isinstance(trained, str) or not isinstance(given, str) or trained == given:
        return None
    return f"trained on {trained}; this is {given}"


def _duration(seconds: float) -> str:
    """``300 -> "5 min"``, ``3600 -> "1 h"``, ``90 -> "90 s"``."""
    for size, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def state_shapes(config: ConvLSTMConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors of ``ConvLSTM(config=config).state_dict()``, without building it.

    Parameters
    ----------
    config : ConvLSTMConfig
        The architecture.

    Returns
    -------
    dict
        ``{"cells.0.input_conv.weight": (4 * hid, C_in * p * p, k, k), ...}`` in state-dict order.
    """
    p2, k = config.patch_size**2, config.kernel_size
    shapes: dict[str, tuple[int, ...]] = {}
    layer_inputs = (config.in_channels * p2, *config.hidden_channels[:-1])
    for layer, (cin, hid) in enumerate(zip(layer_inputs, config.hidden_channels, strict=True)):
        prefix = f"cells.{layer}."
        shapes[prefix + "input_conv.weight"] = (4 * hid, cin, k, k)
        if not config.layer_norm:
            shapes[prefix + "input_conv.bias"] = (4 * hid,)
        shapes[prefix + "hidden_conv.weight"] = (4 * hid, hid, k, k)
        if config.peephole:
            shapes[prefix + "peephole_weight"] = (3, hid, *config.grid_size)
        if config.layer_norm:
            for norm in ("input_norm", "hidden_norm"):
                shapes[f"{prefix}{norm}.weight"] = (4 * hid, *config.grid_size)
                shapes[f"{prefix}{norm}.bias"] = (4 * hid, *config.grid_size)
    if config.has_head:
        read = config.hidden_channels
        read = sum(read) if config.readout == "all_layers" else read[-1]
        shapes["head.weight"] = (config.channels_out * p2, read, 1, 1)
        if config.readout_bias:
            shapes["head.bias"] = (config.channels_out * p2,)
    return shapes


def parameter_count(config: ConvLSTMConfig) -> int:
    """Parameters of ``ConvLSTM(config=config)``, computed from the config alone."""
    return sum(math.prod(shape) for shape in state_shapes(config).values())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _json_type(value) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _short(value) -> str:
    """A bounded repr of a value from an untrusted file, for messages."""
    return reprlib.repr(value)


def _read_bounded(folder: Path, filename: str, limit: int) -> bytes:
    """The bytes of ``folder/filename``: a regular file inside ``folder`` of at most ``limit`` bytes."""
    path = folder / filename
    where = f"{folder.name}/{filename}"
    with _open_checked(folder, filename, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew since it was checked
        raise CheckpointError(
            f"{where}: larger than {limit:,} bytes; not a checkpoint file", path=path
        )
    return data


def _require_present(folder: Path, filename: str) -> None:
    """Raise :class:`CheckpointError` unless ``folder/filename`` exists (a link counts)."""
    path = folder / filename
    where = f"{folder.name}/{filename}"
    try:
        os.lstat(path)
    except FileNotFoundError:
        if filename == META_FILE:
            raise CheckpointError(
                f"{where}: no {META_FILE}; a checkpoint folder needs {META_FILE} and {WEIGHTS_FILE}",
                path=path,
            ) from None
        raise CheckpointError(
            f"{where}: missing; the checkpoint has metadata but no weights", path=path
        ) from None
    except PermissionError:
        raise CheckpointError(
            f"checkpoint {folder.name!r}: the folder is not readable (permission denied); "
            "fix its permissions or remove it",
            path=folder,
        ) from None


def _require_inside(folder: Path, path: Path, where: str) -> None:
    """Raise :class:`CheckpointError` if ``path`` resolves outside ``folder`` (or loops)."""
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise CheckpointError(
            f"{where}: a link to a file outside the checkpoint folder; copy the file into the "
            "folder instead",
            path=path,
        )


def _check_opened(fh, filename: str, limit: int, where: str, path: Path) -> None:
    """Raise :class:`CheckpointError` unless the open ``fh`` is a regular file of at most
    ``limit`` bytes."""
    info = os.fstat(fh.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{where}: not a regular file", path=path)
    if info.st_size > limit:
        raise CheckpointError(
            f"{where}: {info.st_size:,} bytes, more than the {limit:,} accepted; "
            + (
                "not checkpoint metadata"
                if filename == META_FILE
                else "larger than any model within the limits of model.checkpoint"
            ),
            path=path,
        )


def _open_checked(folder: Path, filename: str, limit: int):
    """Open ``folder/filename`` for reading after checking it is a regular file inside ``folder``
    and at most ``limit`` bytes. Raises :class:`CheckpointError` naming the problem."""
    path = folder / filename
    where = f"{folder.name}/{filename}"
    _require_present(folder, filename)
    _require_inside(folder, path, where)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    except PermissionError:
        raise CheckpointError(
            f"{where}: not readable (permission denied); fix its permissions", path=path
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot be opened ({exc.strerror})", path=path) from None
    fh = os.fdopen(fd, "rb")
    try:
        _check_opened(fh, filename, limit, where, path)
    except BaseException:
        fh.close()
        raise
    return fh


_STRING = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.S)
"""A JSON string, or an unterminated one running to the end (so matching is always linear)."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of ``text`` outside strings, without parsing it.

    Exact for valid JSON, an upper bound on how deep a JSON parser recurses otherwise. Linear
    time, C speed (regex, ``bytes.translate``, numpy), no recursion.
    """
    brackets = _STRING.sub("", text).encode("utf-8", "replace").translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _parse_json(raw: bytes, where: str, path: Path):
    """JSON from untrusted bytes: UTF-8, nested at most :data:`MAX_JSON_DEPTH` levels."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{where}: not valid JSON (not UTF-8 text at byte {exc.start}); the file is corrupt",
            path=path,
        ) from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{where}: JSON nested {depth:,} levels deep, more than the {MAX_JSON_DEPTH} accepted; "
            "the file is corrupt or hostile",
            path=path,
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{where}: not valid JSON ({message}); the file is corrupt", path=path
        ) from None


def _bad_meta(meta: dict, key: str, need: str, where: str, path: Path) -> CheckpointError:
    return CheckpointError(
        f"{where}: {key} must be {need}, found {_short(meta[key])}; the file is corrupt or "
        "was written by other code (re-save it with model.checkpoint.save_checkpoint)",
        path=path,
    )


def _check_metadata(meta: dict, where: str, path: Path) -> None:
    """Types and ranges of the metadata keys this code reads; raises on the first problem."""
    version = meta.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {_short(version)} is not supported (this code reads "
            f"{FORMAT_VERSION})",
            path=path,
        )
    for key in ("config", "gate_order"):
        if key not in meta:
            raise CheckpointError(f"{where}: required key {key!r} is missing", path=path)
    _check_config(meta["config"], where, path)
    gates = meta["gate_order"]
    if not (isinstance(gates, list) and len(gates) == 4 and all(isinstance(g, str) for g in gates)):
        raise _bad_meta(meta, "gate_order", "a list of the 4 gate names", where, path)
    try:
        reorder_gates(torch.zeros(4), gates)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}", path=path) from None
    _check_meta_scalars(meta, where, path)
    _check_meta_lists(meta, where, path)
    if meta.get("normalization") is not None:
        _check_normalization(meta["normalization"], where, path)


def _check_meta_scalars(meta: dict, where: str, path: Path) -> None:
    """Text, frame-count, non-negative integer and object keys of the metadata."""
    for key in _TEXT_KEYS:
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            raise _bad_meta(meta, key, "a string", where, path)
    for key in ("context", "horizon"):
        if key in meta and not (_is_int(meta[key]) and 1 <= meta[key] <= MAX_SEQUENCE):
            raise _bad_meta(
                meta, key, f"an integer from 1 to {MAX_SEQUENCE:,} (frames)", where, path
            )
    for key in _INT_KEYS:
        if key in meta and meta[key] is not None and not (_is_int(meta[key]) and meta[key] >= 0):
            raise _bad_meta(meta, key, "a non-negative integer", where, path)
    for key in _DICT_KEYS:
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            raise _bad_meta(meta, key, "an object", where, path)


def _check_meta_lists(meta: dict, where: str, path: Path) -> None:
    """String lists, ``frame_size`` and ``weights_sha256`` of the metadata."""
    for key in ("notes", "channel_names"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise _bad_meta(meta, key, "a list of strings", where, path)
    if "frame_size" in meta and not (
        isinstance(meta["frame_size"], list)
        and len(meta["frame_size"]) == 2
        and all(_is_int(s) for s in meta["frame_size"])
    ):
        raise _bad_meta(meta, "frame_size", "two integers [H, W]", where, path)
    sha = meta.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise _bad_meta(meta, "weights_sha256", "64 lowercase hex digits", where, path)


def _bad_config(cfg: dict, key: str, need: str, where: str, path: Path) -> CheckpointError:
    return CheckpointError(
        f"{where}: config.{key} must be {need}, found {_short(cfg[key])}; fix meta.json or "
        "retrain with a network within these limits",
        path=path,
    )


def _check_config(cfg, where: str, path: Path) -> ConvLSTMConfig:
    """The architecture config: types, the module's limits, and the parameter count."""
    if not isinstance(cfg, dict):
        raise CheckpointError(
            f"{where}: config must be an object, found {_json_type(cfg)}; the file is corrupt",
            path=path,
        )
    unknown = sorted(map(str, set(cfg) - _CONFIG_KEYS))
    if unknown:
        raise CheckpointError(
            f"{where}: bad architecture config: unknown fields {_short(unknown)}; known: "
            f"{sorted(_CONFIG_KEYS)}",
            path=path,
        )
    _check_config_fields(cfg, where, path)
    try:
        config = ConvLSTMConfig.from_dict(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: bad architecture config: {exc}", path=path) from None
    n = parameter_count(config)
    if n > MAX_PARAMETERS:
        raise CheckpointError(
            f"{where}: the config implies {n:,} parameters, more than the {MAX_PARAMETERS:,} "
            "accepted; this is not a model this dashboard can run",
            path=path,
        )
    return config


def _check_config_int(
    cfg: dict,
    key: str,
    lo: int,
    hi: int,
    where: str,
    path: Path,
    *,
    odd: bool = False,
    null: bool = False,
) -> None:
    if key not in cfg or (null and cfg[key] is None):
        return
    value = cfg[key]
    if not (_is_int(value) and lo <= value <= hi and (not odd or value % 2 == 1)):
        kind = "an odd integer" if odd else "an integer"
        raise _bad_config(
            cfg, key, f"{kind} from {lo} to {hi}" + (" or null" if null else ""), where, path
        )


def _check_config_fields(cfg: dict, where: str, path: Path) -> None:
    """Types and the module's limits of each known config field present."""
    _check_config_int(cfg, "in_channels", 1, MAX_CHANNELS, where, path)
    _check_config_int(cfg, "out_channels", 1, MAX_CHANNELS, where, path, null=True)
    _check_config_int(cfg, "kernel_size", 1, MAX_KERNEL_SIZE, where, path, odd=True)
    _check_config_int(cfg, "patch_size", 1, MAX_PATCH_SIZE, where, path)
    hidden = cfg.get("hidden_channels", [])
    if "hidden_channels" in cfg and not (
        isinstance(hidden, list)
        and 1 <= len(hidden) <= MAX_LAYERS
        and all(_is_int(h) and 1 <= h <= MAX_HIDDEN_CHANNELS for h in hidden)
    ):
        raise _bad_config(
            cfg,
            "hidden_channels",
            f"1 to {MAX_LAYERS} layers of 1 to {MAX_HIDDEN_CHANNELS} channels",
            where,
            path,
        )
    frame = cfg.get("frame_size", [])
    if "frame_size" in cfg and not (
        isinstance(frame, list)
        and len(frame) == 2
        and all(_is_int(s) and 1 <= s <= MAX_FRAME_SIDE for s in frame)
    ):
        raise _bad_config(
            cfg, "frame_size", f"two integers [H, W] from 1 to {MAX_FRAME_SIDE}", where, path
        )
    if "peephole" in cfg and not isinstance(cfg["peephole"], bool):
        raise _bad_config(cfg, "peephole", "true or false", where, path)
    if "forget_bias" in cfg and not _is_number(cfg["forget_bias"]):
        raise _bad_config(cfg, "forget_bias", "a finite number", where, path)
    if "output_activation" in cfg and not isinstance(cfg["output_activation"], str):
        raise _bad_config(cfg, "output_activation", "'none' or 'sigmoid'", where, path)
    for key in ("layer_norm", "readout_bias", "residual"):
        if key in cfg and not isinstance(cfg[key], bool):
            raise _bad_config(cfg, key, "true or false", where, path)
    if "readout" in cfg and cfg["readout"] not in READOUTS:
        raise _bad_config(cfg, "readout", f"one of {list(READOUTS)}", where, path)


def _check_normalization(norm, where: str, path: Path) -> None:
    if not isinstance(norm, dict):
        raise CheckpointError(
            f"{where}: normalization must be an object, found {_json_type(norm)}", path=path
        )
    for key in ("kind", "units"):
        if key in norm and not isinstance(norm[key], str):
            raise CheckpointError(
                f"{where}: bad normalization: {key} must be a string, found {_short(norm[key])}",
                path=path,
            )
    for key in ("threshold", "zerovalue", "scale", "offset"):
        if key in norm and not _is_number(norm[key]):
            raise CheckpointError(
                f"{where}: bad normalization: {key} must be a finite number, found "
                f"{_short(norm[key])}",
                path=path,
            )
    try:
        Normalizer.from_metadata(norm)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{where}: bad normalization: {exc} (kinds: {KINDS})", path=path
        ) from None


class _Unreadable:
    """Builds the "not a readable safetensors file" error of one weights file."""

    def __init__(self, where: str, path: Path) -> None:
        self.where, self.path = where, path

    def __call__(self, problem: str) -> CheckpointError:
        return CheckpointError(
            f"{self.where}: not a readable safetensors file ({problem}); re-copy the checkpoint or "
            "retrain",
            path=self.path,
        )


def _check_weights_header(folder: Path, config: ConvLSTMConfig) -> None:
    """The safetensors header of ``folder/model.safetensors`` against ``config``, and the file size.

    Format: 8-byte little-endian header length ``n``, ``n`` bytes of JSON
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the
    tensor bytes, offsets counted from the end of the header.
    """
    path = folder / WEIGHTS_FILE
    where = f"{folder.name}/{WEIGHTS_FILE}"
    unreadable = _Unreadable(where, path)
    raw, n, size = _read_weights_header(folder, unreadable)
    header = _parse_json(raw, where, path)
    if not isinstance(header, dict):
        raise unreadable(f"the header is {_json_type(header)}, not an object")
    extra_meta = header.pop("__metadata__", None)
    if extra_meta is not None and not (
        isinstance(extra_meta, dict) and all(isinstance(v, str) for v in extra_meta.values())
    ):
        raise unreadable("__metadata__ must map names to strings")
    ranges, problems = _tensor_ranges(header, state_shapes(config), unreadable)
    if problems:
        raise CheckpointError(
            f"{where}: does not match meta.json: " + "; ".join(problems), path=path
        )
    _check_tensor_layout(ranges, n, size, unreadable)


def _read_weights_header(folder: Path, unreadable: _Unreadable) -> tuple[bytes, int, int]:
    """The raw JSON header of ``folder/model.safetensors``, its length and the file size."""
    with _open_checked(folder, WEIGHTS_FILE, MAX_WEIGHTS_BYTES) as fh:
        size = os.fstat(fh.fileno()).st_size
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise unreadable(f"truncated: {size} bytes")
        n = int.from_bytes(prefix, "little")
        if n > MAX_HEADER_BYTES:
            raise unreadable(
                f"header length {n:,} bytes, more than the {MAX_HEADER_BYTES:,} accepted"
            )
        if 8 + n > size:
            raise unreadable(f"truncated: the header needs {8 + n:,} bytes, the file has {size:,}")
        raw = fh.read(n)
    return raw, n, size


def _tensor_ranges(
    header: dict, expected: dict, unreadable: _Unreadable
) -> tuple[list[tuple[int, int]], list[str]]:
    """Byte ranges of the expected tensors, and how the header differs from ``expected``."""
    problems = []
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing:
        problems.append(f"missing tensors {_short(missing)}")
    if extra:
        problems.append(f"unexpected tensors {_short(extra)}")
    ranges = []
    for name in (k for k in expected if k in header):
        problem, byte_range = _tensor_range(name, header[name], expected[name], unreadable)
        if problem is not None:
            problems.append(problem)
        else:
            ranges.append(byte_range)
    return ranges, problems


def _tensor_range(
    name: str, entry, expected_shape: tuple, unreadable: _Unreadable
) -> tuple[str | None, tuple[int, int] | None]:
    """``(problem, None)`` for a tensor that does not match, else ``(None, (begin, end))``."""
    if not isinstance(entry, dict):
        raise unreadable(f"entry {name!r} is {_json_type(entry)}, not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _DTYPE_BYTES:
        return f"{name} has dtype {_short(dtype)}, expected one of {sorted(_DTYPE_BYTES)}", None
    if not (isinstance(shape, list) and all(_is_int(s) and s >= 0 for s in shape)):
        raise unreadable(f"entry {name!r} has shape {_short(shape)}")
    if tuple(shape) != expected_shape:
        return f"{name} has shape {tuple(shape)}, config needs {expected_shape}", None
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_int(o) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise unreadable(f"entry {name!r} has data_offsets {_short(offsets)}")
    nbytes = math.prod(shape) * _DTYPE_BYTES[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise unreadable(f"entry {name!r} covers {offsets[1] - offsets[0]} bytes, needs {nbytes}")
    return None, (offsets[0], offsets[1])


def _check_tensor_layout(
    ranges: list[tuple[int, int]], n: int, size: int, unreadable: _Unreadable
) -> None:
    """The tensors tile the data section with no gap or overlap, and it fills the file."""
    end = 0
    for begin, stop in sorted(ranges):
        if begin != end:
            raise unreadable("tensor byte ranges overlap or leave gaps")
        end = stop
    if 8 + n + end != size:
        state = "truncated" if 8 + n + end > size else "trailing bytes"
        raise unreadable(
            f"{state}: the header describes {8 + n + end:,} bytes, the file has {size:,}"
        )


def _to_our_gate_order(state: dict, gate_order, where: str) -> dict:
    """Reorder gate blocks of weights stored in another gate order into :data:`CONV_GATES`."""
    if list(gate_order) == list(CONV_GATES):
        return state
    try:
        out = dict(state)
        gate_blocks = (["input_conv"], ["hidden_conv"], ["input_norm"], ["hidden_norm"])
        for name, tensor in state.items():
            if name.split(".")[-2:-1] in gate_blocks:
                out[name] = reorder_gates(tensor, gate_order, dim=0)
        return out
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc


def _check_state_dict(model: ConvLSTM, state: dict, where: str, path: Path) -> None:
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
        raise CheckpointError(
            f"{where}: does not match meta.json: " + "; ".join(problems), path=path
        )


def _json_default(value):
    """JSON for the numpy scalars and arrays that dataset attrs and metrics often carry."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value {value!r} ({type(value).__name__}) is not JSON-serialisable")


__all__ = [
    "CheckpointEntry",
    "CheckpointError",
    "FORMAT_VERSION",
    "compatibility_problem",
    "family_note",
    "compatible",
    "forecasts_any_grid",
    "has_forecast_head",
    "list_checkpoints",
    "load_checkpoint",
    "load_torch_weights",
    "parameter_count",
    "pick_device",
    "read_metadata",
    "save_checkpoint",
    "scan_checkpoints",
    "state_shapes",
    "validate_checkpoint",
]

"""What every importer shares: the result type, file-named errors, and shape checks.

Errors are :class:`~model.checkpoint.CheckpointError` (the one error type of :mod:`model` for
weights), each naming the imported file by its name (never its folder), what was wrong and what
to do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from datasets.untrusted import public_message
from model.checkpoint import CheckpointError, load_torch_weights
from model.convlstm import ConvLSTM, ConvLSTMConfig


@dataclass
class Imported:
    """A network read from another project's file, in this engine's layout.

    Attributes
    ----------
    model : ConvLSTM
        The network, gates in :data:`model.convlstm.CONV_GATES` order.
    source : str
        The importer's name (``"openstl"``, ``"ndrplz"``, ``"keras"``).
    gate_order : tuple of str
        The order of the four gate blocks in the source's weights (mapped with
        :func:`model.convlstm.reorder_gates`).
    notes : list of str
        What the import mapped, converted or left out, in sentences (for ``meta.json`` and the
        model card).
    """

    model: ConvLSTM
    source: str
    gate_order: tuple[str, ...]
    notes: list[str] = field(default_factory=list)


def refuse(path: str | Path, text: str) -> CheckpointError:
    """A :class:`CheckpointError` ``"NAME: text"`` naming the file by its name only."""
    return CheckpointError(f"{Path(path).name}: {text}", path=path)


def torch_state(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a PyTorch file, read with ``torch.load(weights_only=True)``.

    A file that would run code when unpickled (a pickled model object, a training checkpoint
    with custom classes) is refused by :func:`model.checkpoint.load_torch_weights`; the message
    then says how to re-save plain weights.
    """
    try:
        with warnings.catch_warnings():  # torch's note on newer pickle protocols is noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = load_torch_weights(path)
    except CheckpointError as exc:
        if exc.__cause__ is None:  # read, but not a dict of tensors
            raise CheckpointError(public_message(str(exc), path), path=path) from None
        raise refuse(
            path,
            f"refused to load: not a plain file of weights ({type(exc.__cause__).__name__}); "
            "reading it would run code from the file or need its project's classes. Re-save the "
            "network's weights alone in trusted code: torch.save(model.state_dict(), "
            "'weights.pth')",
        ) from None
    return {str(k): v.detach().to(torch.float32) for k, v in state.items()}


def find_prefix(state: dict, suffix: str, path: Path, what: str) -> str:
    """The one key prefix before ``suffix`` in ``state`` (``""``, ``"model."``, ...).

    Raises
    ------
    CheckpointError
        No key ends with ``suffix`` (not a ``what`` state dict), or several prefixes do.
    """
    prefixes = sorted({k[: -len(suffix)] for k in state if k.endswith(suffix)})
    if not prefixes:
        shown = ", ".join(sorted(state)[:6]) or "none"
        raise refuse(
            path,
            f"no {what} weights found (no tensor named '...{suffix}'; its tensors: {shown}"
            f"{', ...' if len(state) > 6 else ''}); is this the state dict of a {what}?",
        )
    if len(prefixes) > 1:
        raise refuse(
            path,
            f"holds {len(prefixes)} networks (tensor prefixes {prefixes}); save the one to import "
            "alone: torch.save(net.state_dict(), 'weights.pth')",
        )
    return prefixes[0]


def count_layers(state: dict, prefix: str, key: str) -> int:
    """Layers ``0, 1, ...`` for which ``f"{prefix}cell_list.{l}.{key}"`` is in ``state``."""
    n = 0
    while f"{prefix}cell_list.{n}.{key}" in state:
        n += 1
    return n


def square_odd_kernel(shape: tuple[int, int], where: str, path: Path) -> int:
    """The kernel size ``k`` of a ``(k, k)`` kernel; refuse other kernels naming ``where``."""
    kh, kw = (int(s) for s in shape)
    if kh != kw or kh % 2 == 0:
        raise refuse(
            path,
            f"{where} has a {kh}x{kw} kernel; this engine runs square kernels of odd size (1, 3, "
            "5, ...) with 'same' padding only",
        )
    return kh


def one_kernel(kernels: list[int], path: Path) -> int:
    """The kernel size shared by every layer; refuse per-layer sizes (one ``kernel_size``)."""
    if len(set(kernels)) != 1:
        raise refuse(
            path,
            f"its layers use kernel sizes {kernels}; this engine runs one kernel size for every "
            "layer",
        )
    return kernels[0]


def resolve_frame_size(
    given: tuple[int, int] | None, found: tuple[int, int] | None, path: Path, hint: str
) -> tuple[int, int]:
    """The frame size ``(H, W)``: the one the file records, or ``--frame-size``; they must agree."""
    if given is not None:
        given = (int(given[0]), int(given[1]))
        if found is not None and given != tuple(found):
            raise refuse(
                path,
                f"--frame-size {given[0]} {given[1]} differs from the {found[0]}x{found[1]} frames "
                "its weights were built for; leave out --frame-size or give those",
            )
        return given
    if found is None:
        raise refuse(path, hint)
    return (int(found[0]), int(found[1]))


def build(config: ConvLSTMConfig, state: dict[str, Tensor], path: Path) -> ConvLSTM:
    """A :class:`ConvLSTM` of ``config`` holding exactly ``state``, in eval mode.

    Raises
    ------
    CheckpointError
        The config is outside the engine's range, or a tensor is missing, left over, misshapen
        or not finite (an importer bug or a damaged file).
    """
    try:
        model = ConvLSTM(config=config)
    except ValueError as exc:
        raise refuse(path, f"its network cannot be built here: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        wrong = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
        raise refuse(
            path,
            "its tensors do not form the network they describe ("
            + "; ".join(f"{k}: {found.get(k)} for {expected.get(k)}" for k in wrong[:4])
            + "); the file is damaged or not of this kind",
        )
    bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise refuse(path, f"tensors {bad[:4]} hold NaN or infinite values")
    model.load_state_dict({k: v.contiguous() for k, v in state.items()})
    return model.eval()

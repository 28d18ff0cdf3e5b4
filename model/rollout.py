"""Multi-step rollouts with optional gate capture, returned as one ``xarray.Dataset``.

Everything the dashboard shows, exports or scores comes from this object:

- ``prediction (time, channel, y, x)`` float32, physical units;
- ``truth (time, channel, y, x)`` when given (NaN where unknown or invalid);
- ``context (context_time, channel, y, x)`` the observed frames;
- ``gates (layer, gate, step, hidden, y, x)`` float16 when captured, at the latent grid
  (frame size / patch size). ``step`` runs over every input the network read: the context frames,
  then the ``horizon - 1`` frames fed back (free-running) or the true frames (teacher-forced);
  its coordinate ``phase`` says "context" or "forecast". Layers narrower than the widest captured
  one are padded with NaN along ``hidden``.
- coordinates ``lead_time (time)`` (timedelta64 when the time step is known, else steps) and
  ``time`` (timestamps when the context has them, else step index).

Capture memory is bounded by ``byte_budget``: a request over it raises :class:`CaptureBudgetError`
saying how many bytes it needs and how to ask for less (fewer layers, gates or steps).

:func:`forecast_windows` is the one place a network runs free on windows: :func:`rollout` (one
window, the dashboard), training validation (:func:`model.train.validate`) and checkpoint scores
(:func:`model.evaluate.evaluate`, the model cards) all call it.

:func:`inspect_gates` reads frames without forecasting: the gates of a network without a
forecasting head (an inspect-mode import, :mod:`model.import_weights`), as a dataset with
``context`` and ``gates`` only (no ``time`` dimension).

Precision policy (:func:`resolve_precision`), the same for all of them: ``"auto"`` runs the
convolutions under bfloat16 autocast where the device computes bfloat16 natively (CUDA with bf16,
CPUs with AVX512-BF16/AMX), float32 elsewhere; the gate math always runs in float32
(:mod:`model.kernels`). bfloat16 halves the CPU forecast time (Moving MNIST, 64 windows: 6.8 s
-> 3.5 s) and moves the scores little: at most 1.3e-4 relative in MSE per lead (Moving MNIST), 2.4e-3
in RMSE (SUMO traffic). CUDA validation and evaluation already ran in bfloat16, so scores were
never hardware-independent; one policy makes the dashboard, the validation log and the model
cards agree on one machine, and the cards say which precision they used.
``precision="fp32"`` gives float32 numbers where they are wanted.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from datasets.timesteps import time_step_delta
from model.convlstm import GATES, ConvLSTM
from model.interventions import resolve_edits
from model.kernels import conv_step
from model.normalize import Normalizer

DEFAULT_BYTE_BUDGET = 512 * 2**20  # 512 MiB of float16 gates (a 12+12 radar rollout needs ~150 MiB)
MODES = ("free", "teacher")
PRECISIONS = ("auto", "fp32", "bf16")


class CaptureBudgetError(ValueError):
    """Gate capture would need more memory than the byte budget allows."""


@dataclass(frozen=True)
class CaptureSpec:
    """Which layers and gates to record (names from :data:`model.convlstm.GATES`)."""

    layers: tuple[int, ...]
    gates: tuple[str, ...]

    @classmethod
    def parse(cls, capture, n_layers: int) -> CaptureSpec | None:
        """``True`` (everything), ``False``/``None`` (nothing) or ``{"layers": [...], "gates": [...]}``."""
        if capture is None or capture is False:
            return None
        if capture is True:
            return cls(tuple(range(n_layers)), GATES)
        if not isinstance(capture, dict):
            raise ValueError("capture must be True, False or {'layers': [...], 'gates': [...]}")
        layers = tuple(int(i) for i in capture.get("layers", range(n_layers)))
        gates = tuple(capture.get("gates", GATES))
        bad_layers = [i for i in layers if not 0 <= i < n_layers]
        bad_gates = [g for g in gates if g not in GATES]
        if bad_layers or bad_gates or not layers or not gates:
            raise ValueError(
                f"capture {capture!r}: layers must be in 0..{n_layers - 1} and gates in {GATES}"
            )
        # keep the canonical order so dims read the same everywhere
        return cls(tuple(sorted(set(layers))), tuple(g for g in GATES if g in gates))


def capture_bytes(model: ConvLSTM, spec: CaptureSpec, steps: int, batch: int = 1) -> int:
    """Bytes of float16 gate buffers for ``spec`` over ``steps`` steps."""
    h, w = model.config.grid_size
    hid = model.config.hidden_channels
    return 2 * batch * steps * h * w * len(spec.gates) * sum(hid[i] for i in spec.layers)


class GateRecorder:
    """Records gates into one preallocated float16 block while the network runs.

    :attr:`gates` is ``[B, layer, gate, step, hidden, h, w]`` (layers and gates as in ``spec``), a
    view of a block stored hidden-last (``[..., h, w, hidden]``), the channels-last layout the
    network computes in, so each copy is a straight cast. Narrower layers are padded with NaN
    along ``hidden``. Pass :attr:`hook` as ``gate_hook``.
    """

    def __init__(
        self, model: ConvLSTM, spec: CaptureSpec, *, steps: int, batch: int, device
    ) -> None:
        h, w = model.config.grid_size
        widths = [model.config.hidden_channels[i] for i in spec.layers]
        shape = (batch, len(spec.layers), len(spec.gates), steps, h, w, max(widths))
        block = torch.empty(shape, dtype=torch.float16, device=device)
        for k, hid in enumerate(widths):
            block[:, k, ..., hid:].fill_(float("nan"))  # padding of narrower layers only
        self.gates = block.permute(0, 1, 2, 3, 6, 4, 5)  # [B, layer, gate, step, hidden, h, w]
        self._views = {  # layer -> [B, gate, step, hid, h, w] view into the block
            layer: self.gates[:, k, :, :, :hid]
            for k, (layer, hid) in enumerate(zip(spec.layers, widths, strict=True))
        }
        self._gate_index = [GATES.index(g) for g in spec.gates]

    def hook(self, layer: int, step: int, gates: tuple[torch.Tensor, ...]) -> None:
        """``gate_hook`` for :class:`ConvLSTM`: copy this step's gates (cast to float16)."""
        view = self._views.get(layer)
        if view is not None:
            for j, g in enumerate(self._gate_index):
                view[:, j, step].copy_(gates[g])  # [B, hid, h, w] -> float16


def compile_network(model: ConvLSTM) -> ConvLSTM:
    """An optional compiled copy of ``model``: each cell step is a ``torch.compile`` graph.

    The step (concatenation, convolution and the cell equations) is compiled once per layer
    shape, a few seconds each on a small CPU (see ``bench/rollout.py``), and the gate math is then
    fused into one loop; the rollout loop itself stays in Python. Compiling the whole unrolled
    network instead took 81 s and ran slower here. :func:`rollout` accepts the result in place
    of ``model``. The dashboard does not use it, so no page load ever pays the compile time.

    Dynamo's recompile limit is raised only while the copy's compiled functions run (a
    ``torch._dynamo.config.patch`` around each call, about 16 µs), never for the whole process:
    other ``torch.compile`` users keep their limit.

    Parameters
    ----------
    model : ConvLSTM
        The network; it is copied (weights included), not changed.

    Returns
    -------
    ConvLSTM
        The copy, for inference (``torch.no_grad``).
    """
    compiled = copy.deepcopy(model)
    # One graph per layer shape, input dtype and capture choice, all of the one function
    # conv_step: a 3-layer network alone needs 8, dynamo's default recompile limit.
    limit = 16 * max(len(model.cells), 1)
    # Keep the layout the network chose (memory_format_for); inductor would force channels-last,
    # 20-35% slower for the video model's 16x16 grid with 5x5 kernels here.
    options = {"layout_optimization": False}
    step = _with_recompile_limit(torch.compile(conv_step, dynamic=False, options=options), limit)
    for cell in compiled.cells:
        cell.compiled_step = step
    readout = torch.compile(compiled._readout, dynamic=False, options=options)
    compiled._readout = _with_recompile_limit(readout, limit)
    return compiled


def _with_recompile_limit(fn: Callable, limit: int) -> Callable:
    """``fn`` run with dynamo's recompile limit at least ``limit`` (dynamo reads it when it
    compiles, lazily inside the call), the process-wide setting restored after each call."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        wanted = max(torch._dynamo.config.recompile_limit, limit)
        with torch._dynamo.config.patch(recompile_limit=wanted):
            return fn(*args, **kwargs)

    return call


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where the device computes bfloat16 natively, else ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; use one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else "fp32"
    return "fp32"


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of a resolved ``precision`` (``"bf16"`` on, ``"fp32"`` off)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def forecast_windows(
    net: ConvLSTM,
    context,
    horizon: int,
    *,
    batch_size: int = 32,
    precision: str = "auto",
    normalizer: Normalizer | None = None,
    gate_hook=None,
    intervene=None,
) -> np.ndarray:
    """Free-running forecasts of a batch of windows, in batches, under one precision policy.

    Parameters
    ----------
    net : ConvLSTM
        The network (its device is used; it runs in eval mode, its mode is restored after).
    context : numpy.ndarray or torch.Tensor
        ``[S, Tc, C, H, W]`` observed frames: physical units when ``normalizer`` is given, model
        space otherwise.
    horizon : int
        Frames to forecast.
    batch_size : int
        Windows per forward pass.
    precision : {"auto", "fp32", "bf16"}
        See :func:`resolve_precision` (the module docstring says why ``"auto"``).
    normalizer : Normalizer, optional
        Physical units <-> model space; without it input and output are in model space.
    gate_hook : callable, optional
        Passed to the network (gate capture); needs every window in one batch.
    intervene : GateEdit, list of GateEdit or Intervention, optional
        Edits inside the cell updates (:mod:`model.interventions`), the same for every window.

    Returns
    -------
    numpy.ndarray
        ``[S, horizon, C, H, W]`` float32 on the CPU, in the units of ``context``.
    """
    n = context.shape[0]
    if gate_hook is not None and n > batch_size:
        raise ValueError(
            f"gate_hook needs every window in one batch: {n} > batch_size={batch_size}"
        )
    device = next(net.parameters()).device
    precision = resolve_precision(precision, device)
    intervene = resolve_edits(intervene, net.config, steps=context.shape[1] + horizon - 1)
    was_training = net.training
    net.eval()
    out = []
    try:
        for start in range(0, n, batch_size):
            chunk = context[start : start + batch_size]  # [b, Tc, C, H, W]
            if normalizer is not None:
                chunk = normalizer.to_model(chunk)
            x = torch.as_tensor(chunk, dtype=torch.float32).to(device)
            with autocast(precision, device):
                y, _ = net(x, horizon=horizon, gate_hook=gate_hook, intervene=intervene)
            # y: [b, horizon, C, H, W]
            out.append(y.float().cpu())
    finally:
        net.train(was_training)
    forecast = torch.cat(out).numpy()
    if normalizer is not None:
        forecast = normalizer.to_physical(forecast)
    return np.asarray(forecast, dtype=np.float32)


@torch.no_grad()
def rollout(
    model: ConvLSTM,
    context,
    horizon: int,
    *,
    truth=None,
    capture=False,
    mode: str = "free",
    normalizer: Normalizer | None = None,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
    precision: str = "auto",
    time_step: str | None = None,
    intervene=None,
) -> xr.Dataset:
    """Forecast ``horizon`` frames after ``context`` and gather everything about it.

    Parameters
    ----------
    model : ConvLSTM
        The network (its device is used).
    context : xarray.DataArray or array-like
        Observed frames ``(time, channel, y, x)`` in physical units. A DataArray's ``time``
        coordinate and attrs (``units``, ``time_step``, ``domain``...) carry into the result.
    horizon : int
        Frames to forecast.
    truth : xarray.DataArray or array-like, optional
        The frames that followed, ``(time, channel, y, x)``; may be shorter than ``horizon``
        (padded with NaN). Required for ``mode="teacher"``.
    capture : bool or dict
        Gates to record: ``True`` for all, or ``{"layers": [0], "gates": ["forget", "cell"]}``.
    mode : {"free", "teacher"}
        ``"free"`` feeds predictions back (a real forecast). ``"teacher"`` feeds the true frames
        and predicts one step ahead each time (for comparison).
    normalizer : Normalizer, optional
        Physical units <-> model space (from the checkpoint); identity when omitted.
    byte_budget : int
        Most bytes gate capture may use; above it :class:`CaptureBudgetError` is raised.
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` runs convolutions in bfloat16 autocast where the hardware supports it (the
        policy of every forecast, see the module docstring).
    time_step : str, optional
        ISO 8601 step (e.g. ``"PT5M"``); defaults to ``context.attrs["time_step"]``.
    intervene : GateEdit, list of GateEdit or Intervention, optional
        Edits of gates and states inside the cell updates (:mod:`model.interventions`), steps
        numbered as the ``step`` dimension of the gates; captured gates show the edited values.
        Checked before anything runs (``ValueError`` naming the edit). Without it the rollout
        runs the fast step; edited layers and steps run an eager step with the edit in place.

    Returns
    -------
    xarray.Dataset
        See the module docstring; ``attrs["interventions"]`` (JSON list of the edits in words)
        when ``intervene`` is given.
    """
    normalizer = normalizer or Normalizer()
    attrs = dict(getattr(context, "attrs", {}))
    time_step = time_step or attrs.get("time_step")
    ctx, tru = _checked_inputs(context, truth, horizon, mode)  # [Tc, C, H, W], [<=H, C, H, W]
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    n_ctx = ctx.shape[0]
    steps = n_ctx + horizon - 1
    spec = CaptureSpec.parse(capture, len(model.cells))
    edits = resolve_edits(intervene, model.config, steps=steps)
    recorder = _recorder(model, spec, steps, byte_budget, device)
    hook = recorder.hook if recorder is not None else None
    if mode == "free":
        prediction = forecast_windows(model, ctx[None], horizon, batch_size=1, precision=precision,
                                      normalizer=normalizer, gate_hook=hook,
                                      intervene=edits)[0]  # fmt: skip
    else:
        prediction = _teacher_forecast(model, ctx, tru, horizon, normalizer, precision, hook, edits)
    data_vars, coords = _frame_variables(context, ctx, tru, prediction, horizon, time_step)
    if recorder is not None:
        _add_gates(data_vars, coords, recorder, spec, n_ctx)
    attrs.update(
        mode=mode,
        precision=precision,
        device=str(device),
        horizon=horizon,
        context_length=n_ctx,
        patch_size=model.config.patch_size,
    )
    if time_step:
        attrs["time_step"] = time_step
    if edits is not None:
        attrs["interventions"] = edits.describe()
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


@torch.no_grad()
def inspect_gates(
    model: ConvLSTM,
    context,
    *,
    capture=True,
    normalizer: Normalizer | None = None,
    byte_budget: int = DEFAULT_BYTE_BUDGET,
    precision: str = "auto",
    time_step: str | None = None,
) -> xr.Dataset:
    """Run the network over ``context`` and record its gates, forecasting nothing.

    The one way to look inside a network without a forecasting head (``readout="none"``); any
    network works, its head unused.

    Parameters
    ----------
    model : ConvLSTM
        The network (its device is used).
    context : xarray.DataArray or array-like
        Frames ``(time, channel, y, x)`` in physical units; a DataArray's attrs carry over.
    capture : bool or dict
        Gates to record, as in :func:`rollout`; ``True`` (all) by default. Must record some.
    normalizer, byte_budget, precision, time_step
        As in :func:`rollout`.

    Returns
    -------
    xarray.Dataset
        ``context (context_time, channel, y, x)`` and ``gates (layer, gate, step, hidden, gy,
        gx)`` float16, one step per frame (``phase`` "context" throughout); ``attrs["mode"]`` is
        ``"inspect"``.

    Raises
    ------
    ValueError
        ``capture`` records nothing, or the frames do not fit the network.
    CaptureBudgetError
        The gates need more than ``byte_budget`` bytes.
    """
    normalizer = normalizer or Normalizer()
    attrs = dict(getattr(context, "attrs", {}))
    time_step = time_step or attrs.get("time_step")
    ctx = _as_frames(context, "context")  # [Tc, C, H, W] physical
    spec = CaptureSpec.parse(capture, len(model.cells))
    if spec is None:
        raise ValueError("inspect_gates records gates: pass capture=True or a selection")
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    n_ctx = ctx.shape[0]
    recorder = _recorder(model, spec, n_ctx, byte_budget, device)
    x = torch.as_tensor(normalizer.to_model(ctx), dtype=torch.float32, device=device)[None]
    with autocast(precision, device):
        model.encode(x, gate_hook=recorder.hook)  # x: [1, Tc, C, H, W]
    data_vars = {"context": (("context_time", "channel", "y", "x"), ctx.astype(np.float32))}
    coords = {
        "context_time": _context_times(context, n_ctx),
        "channel": _coord(context, "channel", ctx.shape[1]),
        "y": _coord(context, "y", ctx.shape[2]),
        "x": _coord(context, "x", ctx.shape[3]),
    }
    _add_gates(data_vars, coords, recorder, spec, n_ctx)
    attrs.update(mode="inspect", precision=precision, device=str(device), context_length=n_ctx,
                 patch_size=model.config.patch_size)  # fmt: skip
    if time_step:
        attrs["time_step"] = time_step
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _checked_inputs(context, truth, horizon: int, mode: str):
    """Context ``[Tc, C, H, W]`` and truth ``[<=H, C, H, W]`` (or None) as float arrays, checked."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; use one of {MODES}")
    if horizon < 1:
        raise ValueError(f"horizon={horizon} must be at least 1")
    ctx = _as_frames(context, "context")  # [T, C, H, W] physical
    tru = _as_frames(truth, "truth")[:horizon] if truth is not None else None
    if mode == "teacher" and tru is None:
        raise ValueError("mode='teacher' needs the true frames: pass truth=")
    if mode == "teacher" and tru.shape[0] < horizon:
        raise ValueError(f"mode='teacher' needs {horizon} true frames, got {tru.shape[0]}")
    return ctx, tru


def _recorder(model: ConvLSTM, spec, steps: int, byte_budget: int, device):
    """A :class:`GateRecorder` for ``spec`` (None: no capture) within ``byte_budget`` bytes."""
    if spec is None:
        return None
    need = capture_bytes(model, spec, steps)
    if need > byte_budget:
        raise CaptureBudgetError(
            f"capturing {len(spec.gates)} gates of layers {list(spec.layers)} over {steps} "
            f"steps needs {need / 2**20:.0f} MiB, over the budget of "
            f"{byte_budget / 2**20:.0f} MiB: capture fewer layers or gates, shorten the "
            "rollout, or raise byte_budget"
        )
    return GateRecorder(model, spec, steps=steps, batch=1, device=device)


def _teacher_forecast(
    model, ctx, tru, horizon, normalizer, precision, hook, edits=None
) -> np.ndarray:
    """One-step-ahead forecasts fed with the true frames: ``[H, C, H, W]`` physical."""
    device = next(model.parameters()).device
    n_ctx = ctx.shape[0]
    seq = np.concatenate([ctx, tru[: horizon - 1]])  # [Tc+H-1, C, Hpx, Wpx]
    x = torch.as_tensor(normalizer.to_model(seq), dtype=torch.float32, device=device)[None]
    with autocast(precision, device):
        one_step, _ = model.one_step(x, gate_hook=hook, intervene=edits)
    forecast = one_step[0, n_ctx - 1 :].float().cpu().numpy()  # [H, C, Hpx, Wpx]
    return normalizer.to_physical(forecast).astype(np.float32)


def _frame_variables(context, ctx, tru, prediction, horizon: int, time_step):
    """``prediction``, ``context`` and ``truth`` (NaN-padded) with their coordinates."""
    n_ctx = ctx.shape[0]
    times, lead = _forecast_coords(context, n_ctx, horizon, time_step)
    data_vars = {
        "prediction": (("time", "channel", "y", "x"), prediction),
        "context": (("context_time", "channel", "y", "x"), ctx.astype(np.float32)),
    }
    if tru is not None:
        padded = np.full(prediction.shape, np.nan, dtype=np.float32)
        padded[: tru.shape[0]] = tru
        data_vars["truth"] = (("time", "channel", "y", "x"), padded)
    coords = {
        "time": times,
        "lead_time": ("time", lead),
        "context_time": _context_times(context, n_ctx),
        "channel": _coord(context, "channel", ctx.shape[1]),
        "y": _coord(context, "y", ctx.shape[2]),
        "x": _coord(context, "x", ctx.shape[3]),
    }
    return data_vars, coords


def _add_gates(data_vars: dict, coords: dict, recorder, spec, n_ctx: int) -> None:
    """The recorded gates of the first window and their coordinates (:func:`gate_variables`)."""
    gates = recorder.gates[0].cpu().numpy()  # [layer, gate, step, hidden, gy, gx] float16
    data_vars["gates"], gate_coords = gate_variables(gates, spec, n_ctx)
    coords.update(gate_coords)


def gate_variables(gates: np.ndarray, spec: CaptureSpec, n_ctx: int) -> tuple[tuple, dict]:
    """``gates`` as the rollout dataset's ``gates`` variable, and its coordinates.

    Parameters
    ----------
    gates : numpy.ndarray
        ``[layer, gate, step, hidden, gy, gx]`` float16, as captured (one window, or stitched).
    spec : CaptureSpec
        The layers and gates captured.
    n_ctx : int
        Context frames: steps before it are ``phase = "context"``, the rest ``"forecast"``.
    """
    steps, widest, gh, gw = gates.shape[2:]
    coords = {
        "layer": list(spec.layers),
        "gate": list(spec.gates),
        "step": np.arange(steps),
        "phase": ("step", np.where(np.arange(steps) < n_ctx, "context", "forecast")),
        "hidden": np.arange(widest),
        "gy": np.arange(gh),
        "gx": np.arange(gw),
    }
    return (("layer", "gate", "step", "hidden", "gy", "gx"), gates), coords


def _as_frames(data, name: str) -> np.ndarray:
    """DataArray or array-like ``(time, channel, y, x)`` -> float32 numpy ``[T, C, H, W]``."""
    if isinstance(data, xr.DataArray):
        if "sample" in data.dims:
            if data.sizes["sample"] != 1:
                raise ValueError(f"{name} holds {data.sizes['sample']} samples; select one")
            data = data.isel(sample=0)
        wanted = ("time", "channel", "y", "x")
        if set(data.dims) != set(wanted):
            raise ValueError(f"{name} has dims {data.dims}; expected {wanted}")
        data = data.transpose(*wanted).values
    arr = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data, np.float32)
    if arr.ndim != 4:
        raise ValueError(f"{name} has shape {arr.shape}; expected (time, channel, y, x)")
    return arr


def _coord(data, dim: str, size: int) -> tuple:
    """``(dim, values, attrs)`` of the input's coordinate (its ``units``, e.g. metres, kept), else
    the index ``0 .. size - 1``."""
    if isinstance(data, xr.DataArray) and dim in data.coords:
        return dim, data.coords[dim].values, dict(data.coords[dim].attrs)
    return dim, np.arange(size), {}


def _context_times(context, n_ctx: int):
    if isinstance(context, xr.DataArray) and "time" in context.coords:
        return context.coords["time"].values
    return np.arange(n_ctx)


def _forecast_coords(context, n_ctx: int, horizon: int, time_step) -> tuple[Iterable, Iterable]:
    """Forecast times (timestamps or step index) and lead times (timedelta or steps)."""
    steps = np.arange(1, horizon + 1)
    delta = time_step_delta(time_step)
    lead = steps * delta.to_timedelta64() if delta is not None else steps
    times = _context_times(context, n_ctx)
    if delta is not None and np.issubdtype(np.asarray(times).dtype, np.datetime64):
        return np.asarray(times)[-1] + lead, lead
    return n_ctx - 1 + steps, lead

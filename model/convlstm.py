"""ConvLSTM cell and multi-layer forecasting network (Shi et al. 2015, arXiv:1506.04214).

Cell equations (``*`` convolution, ``∘`` Hadamard product, peephole terms optional)::

    i_t = σ(W_xi * X_t + W_hi * H_{t-1} + W_ci ∘ C_{t-1} + b_i)
    f_t = σ(W_xf * X_t + W_hf * H_{t-1} + W_cf ∘ C_{t-1} + b_f)
    g_t = tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)            # "candidate"
    C_t = f_t ∘ C_{t-1} + i_t ∘ g_t
    o_t = σ(W_xo * X_t + W_ho * H_{t-1} + W_co ∘ C_t + b_o)
    H_t = o_t ∘ tanh(C_t)

The step runs one convolution over ``cat([X_t, H_{t-1}])`` (``W_x`` and ``W_h`` side by side),
then :func:`gate_update`, the equations above written out. What makes it fast (layouts, weights
cast once per call, in-place gates for inference) lives in :mod:`model.kernels`.

Options that other projects' ConvLSTMs need (:mod:`model.import_weights`), all off by default so
the default network and its checkpoints are unchanged:

- ``layer_norm``: OpenSTL's cell, ``z = LN_x(W_x * X_t) + LN_h(W_h * H_{t-1})`` with one
  ``LayerNorm([4*hid, h, w])`` per convolution (their biases replace ``b``), then the equations;
- ``readout``: the 1x1 head reads every layer's ``H_t`` (``"all_layers"``, Shi et al.), the top
  layer's only (``"top_layer"``: OpenSTL, Keras), or there is no head (``"none"``: a network that
  is only inspected, its gates captured over frames given to :meth:`ConvLSTM.encode`);
- ``readout_bias``: the head's bias (OpenSTL's ``conv_last`` has none);
- ``residual``: the head forecasts a change, ``frame_{t+1} = X_t + head(H_t)`` (model space), so
  a zero head forecasts the last input frame again (:mod:`model.lagrangian`: in a Lagrangian frame
  that is exactly optical-flow extrapolation, and training learns growth and decay from there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial

import torch
from einops import rearrange
from torch import Tensor, nn

from datasets.vocabulary import CONV_GATES, GATES  # noqa: F401 - GATES: the engine's vocabulary too
from model import kernels
from model.interventions import GateEdit, Intervention, resolve_edits
from model.kernels import StepWeights, autocast_dtype, conv_step, memory_format_for

# GATES: the gate and state names users see (capture order); CONV_GATES: the order of the
# ``4 * hidden`` output channels of a cell's gate convolution (i, f, o, g). Written once, in
# datasets/vocabulary.py; importers of other layouts (OpenSTL i,f,g,o; Keras i,f,c,o) map onto
# CONV_GATES with :func:`reorder_gates`.

READOUTS = ("all_layers", "top_layer", "none")
"""What the 1x1 head reads: every layer's ``H_t`` (Shi et al.), the top layer's, or no head."""
IMPORT_FIELDS = {
    "layer_norm": False,
    "readout": "all_layers",
    "readout_bias": True,
    "residual": False,
}
"""Config fields added after the first checkpoints (imported networks, the residual head), with
the defaults that leave the network as before; written to checkpoints only when not default."""
NO_HEAD = (
    "this network has no forecasting head (readout='none', e.g. an imported ConvLSTM without "
    "one): it cannot forecast; capture its gates over frames with encode(frames, gate_hook=...) "
    "or model.rollout.inspect_gates"
)

GateHook = Callable[[int, int, tuple[Tensor, ...]], None]
"""``hook(layer, step, (i, f, o, g, c, h))``, each ``[B, hidden, h, w]``; called once per step."""

LAYER_NORM_EPS = kernels.LAYER_NORM_EPS  # of the layer_norm option's LayerNorms (OpenSTL's)

GateEditFn = kernels.GateEditFn
"""``edit(k, value) -> value``: replaces gate or state ``GATES[k]`` inside the cell update."""

Edits = Intervention | GateEdit | Sequence[GateEdit] | None
"""What ``intervene=`` takes: see :mod:`model.interventions`."""


def reorder_gates(weight: Tensor, source_order: Sequence[str], *, dim: int = 0) -> Tensor:
    """Reorder the four gate blocks of a weight or bias into :data:`CONV_GATES` order.

    Parameters
    ----------
    weight : Tensor
        Gate-convolution weight ``[4 * hidden, ...]`` or bias ``[4 * hidden]`` whose blocks along
        ``dim`` follow ``source_order``.
    source_order : sequence of str
        The four gate names in the source's order, e.g. ``("input", "forget", "candidate",
        "output")`` for OpenSTL. ``"cell"`` and ``"c"`` are accepted for the candidate (Keras).
    dim : int
        Axis holding the ``4 * hidden`` channels.

    Returns
    -------
    Tensor
        Same shape, blocks in :data:`CONV_GATES` order.
    """
    aliases = {"i": "input", "f": "forget", "o": "output", "g": "candidate", "c": "candidate",
               "cell": "candidate", "candidate": "candidate", "input": "input",
               "forget": "forget", "output": "output"}  # fmt: skip
    names = [aliases.get(str(n).lower()) for n in source_order]
    if sorted(filter(None, names)) != sorted(CONV_GATES) or len(names) != 4:
        raise ValueError(
            f"gate order {tuple(source_order)!r} must name each of {CONV_GATES} once "
            "(aliases i/f/o/g, c or cell for the candidate)"
        )
    blocks = weight.chunk(4, dim=dim)
    return torch.cat([blocks[names.index(g)] for g in CONV_GATES], dim=dim)


@dataclass(frozen=True)
class ConvLSTMConfig:
    """Architecture of a :class:`ConvLSTM`; stored in every checkpoint so loading needs only the file."""

    in_channels: int = 1
    out_channels: int | None = None  # None: same as in_channels (forecast the input variables)
    hidden_channels: tuple[int, ...] = (64, 64)  # one entry per stacked layer
    kernel_size: int = 3  # odd, 'same' padding
    patch_size: int = 1  # space-to-depth factor; Shi et al. turn 64x64x1 into 16x16x16 with 4
    frame_size: tuple[int, int] = (64, 64)  # (H, W) in pixels; peephole weights are per pixel
    peephole: bool = True  # the W_c∘C Hadamard terms of Shi et al.
    forget_bias: float = 1.0  # initial forget-gate bias: start by remembering
    output_activation: str = "none"  # "none" or "sigmoid" (for data in [0, 1])
    # Fields below were added for imported networks (model.import_weights); to_dict writes them
    # only when they differ from these defaults, so older checkpoints read and save unchanged.
    layer_norm: bool = False  # OpenSTL: LayerNorm([4*hid, h, w]) after each gate convolution
    readout: str = "all_layers"  # head reads all layers' H_t, "top_layer" only, or "none" (no head)
    readout_bias: bool = True  # bias of the 1x1 head (OpenSTL's conv_last has none)
    residual: bool = False  # head forecasts the change from the last input frame (model space)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_channels", tuple(int(h) for h in self.hidden_channels))
        object.__setattr__(self, "frame_size", tuple(int(s) for s in self.frame_size))
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size={self.kernel_size} is not supported: 'same' padding needs an odd "
                "kernel size (1, 3, 5, ...)"
            )
        if self.in_channels < 1 or not self.hidden_channels or min(self.hidden_channels) < 1:
            raise ValueError(
                f"in_channels={self.in_channels} and hidden_channels={self.hidden_channels} "
                "must be positive and name at least one layer"
            )
        if self.patch_size < 1 or any(s % self.patch_size for s in self.frame_size):
            raise ValueError(
                f"frame_size={self.frame_size} must be divisible by patch_size={self.patch_size}"
            )
        if self.output_activation not in ("none", "sigmoid"):
            raise ValueError(
                f"output_activation={self.output_activation!r}; use 'none' or 'sigmoid'"
            )
        if self.readout not in READOUTS:
            raise ValueError(f"readout={self.readout!r}; use one of {READOUTS}")
        for name in ("layer_norm", "readout_bias", "residual"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")

    @property
    def channels_out(self) -> int:
        """Channels of the forecast frames."""
        return self.out_channels or self.in_channels

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) of the latent grid the cells run on: frame size divided by the patch size."""
        return (self.frame_size[0] // self.patch_size, self.frame_size[1] // self.patch_size)

    @property
    def has_head(self) -> bool:
        """Whether the network forecasts (False: ``readout="none"``, its gates are only inspected)."""
        return self.readout != "none"

    def to_dict(self) -> dict:
        """JSON-ready dict (lists for tuples); the :data:`IMPORT_FIELDS` only when not default."""
        d = asdict(self)
        for name, default in IMPORT_FIELDS.items():
            if d[name] == default:
                del d[name]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict) -> ConvLSTMConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ConvLSTMConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class ConvLSTMState:
    """Recurrent state of every layer: ``hidden[l]`` and ``cell[l]`` are ``[B, hidden_l, h, w]``."""

    hidden: list[Tensor] = field(default_factory=list)
    cell: list[Tensor] = field(default_factory=list)

    def detach(self) -> ConvLSTMState:
        """A copy cut from the autograd graph (for truncated backpropagation)."""
        return ConvLSTMState([h.detach() for h in self.hidden], [c.detach() for c in self.cell])


def gate_update(
    z: Tensor, c: Tensor, peephole: Tensor | None, *, edit: GateEditFn | None = None
) -> tuple[Tensor, ...]:
    """The cell equations (module docstring) from the pre-activation ``z`` of the gate convolution.

    Parameters
    ----------
    z : Tensor
        ``W_x * X_t + W_h * H_{t-1} + b`` ``[B, 4*hid, h, w]`` float32, blocks in
        :data:`CONV_GATES` order (i, f, o, g).
    c : Tensor
        ``C_{t-1}`` ``[B, hid, h, w]``.
    peephole : Tensor or None
        ``[3, hid, h, w]``: ``W_ci``, ``W_cf``, ``W_co``.
    edit : callable, optional
        ``edit(k, value)`` replaces gate ``GATES[k]`` where the equations produce it
        (:mod:`model.interventions`): ``i``, ``f``, ``g`` before ``C_t`` is formed, ``C_t``
        before ``o_t`` (peephole) and ``H_t`` read it, ``o_t`` before ``H_t``, ``H_t`` last.

    Returns
    -------
    tuple of Tensor
        ``(i, f, o, g, C_t, H_t)``, each ``[B, hid, h, w]``, in :data:`GATES` order. Out of place,
        for autograd and ``torch.compile``; :func:`model.kernels.gate_update_` is the in-place
        twin eager inference runs.
    """
    tanh = kernels.tanh  # torch.tanh; in CPU inference 2σ(2x) - 1 (within 2e-7, faster)
    zi, zf, zo, zg = z.unflatten(1, (4, -1)).unbind(1)  # each [B, hid, h, w]
    if peephole is not None:
        zi = zi + peephole[0] * c  # + W_ci ∘ C_{t-1}
        zf = zf + peephole[1] * c  # + W_cf ∘ C_{t-1}
    i, f, g = torch.sigmoid(zi), torch.sigmoid(zf), tanh(zg)
    if edit is not None:
        i, f, g = edit(0, i), edit(1, f), edit(3, g)
    c_next = f * c + i * g  # [B, hid, h, w]
    if edit is not None:
        c_next = edit(4, c_next)
    if peephole is not None:
        zo = zo + peephole[2] * c_next  # + W_co ∘ C_t
    o = torch.sigmoid(zo)
    if edit is not None:
        o = edit(2, o)
    h_next = o * tanh(c_next)  # [B, hid, h, w]
    if edit is not None:
        h_next = edit(5, h_next)
    return i, f, o, g, c_next, h_next


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer: its weights and one time step (:meth:`fused_step`).

    :class:`ConvLSTM` runs the layers over a sequence; a cell has no sequence ``forward`` of its own.

    Parameters
    ----------
    in_channels, hidden_channels : int
        Channels of the input ``X_t`` and of the states ``H_t``, ``C_t``.
    kernel_size : int
        Odd size of both convolutions ('same' padding).
    grid_size : (int, int)
        (h, w) of the states; sets the shape of the per-pixel peephole weights.
    peephole : bool
        Include the ``W_ci∘C``, ``W_cf∘C``, ``W_co∘C`` terms.
    forget_bias : float
        Initial bias of the forget gate.
    layer_norm : bool
        OpenSTL's cell: ``LayerNorm([4*hid, h, w])`` after each of the two convolutions
        (``input_norm``, ``hidden_norm``), whose biases replace the convolution bias.

    Notes
    -----
    The weights are stored as two convolutions (``input_conv`` with the bias, ``hidden_conv``
    without), the layout of the checkpoints; the step runs them as one convolution over
    ``cat([X_t, H_{t-1}])`` with :meth:`step_weights` (two, each normalised, with ``layer_norm``).
    States and activations use the layout of :func:`memory_format_for` the grid.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int,
        grid_size: tuple[int, int],
        peephole: bool = True,
        forget_bias: float = 1.0,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd for 'same' padding")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.padding = kernel_size // 2
        self.memory_format = memory_format_for(grid_size)
        self.input_conv = nn.Conv2d(
            in_channels, 4 * hidden_channels, kernel_size, padding=self.padding, bias=not layer_norm
        )
        self.hidden_conv = nn.Conv2d(
            hidden_channels, 4 * hidden_channels, kernel_size, padding=self.padding, bias=False
        )
        if peephole:
            # W_ci, W_cf, W_co: one weight per channel and pixel, as in the paper.
            self.peephole_weight = nn.Parameter(torch.zeros(3, hidden_channels, *grid_size))
        else:
            self.register_parameter("peephole_weight", None)
        self.input_norm = self.hidden_norm = None
        if layer_norm:  # normalised over [4*hid, h, w] per sample, as OpenSTL's cell
            self.input_norm = nn.LayerNorm([4 * hidden_channels, *grid_size], eps=LAYER_NORM_EPS)
            self.hidden_norm = nn.LayerNorm([4 * hidden_channels, *grid_size], eps=LAYER_NORM_EPS)
        bias = self.input_norm.bias if layer_norm else self.input_conv.bias  # b of the equations
        with torch.no_grad():
            bias.zero_()
            bias[hidden_channels : 2 * hidden_channels] = forget_bias
        self.compiled_step: Callable | None = None  # set by model.rollout.compile_network

    def fused_weight(self) -> Tensor:
        """``cat([W_x, W_h])`` along input channels, for one convolution over ``cat([X, H])``."""
        return torch.cat([self.input_conv.weight, self.hidden_conv.weight], dim=1)

    def step_weights(self, dtype: torch.dtype | None = None) -> StepWeights:
        """Weights for :meth:`fused_step`, cast to ``dtype`` (the autocast dtype) when given."""
        weight = self.fused_weight()  # [4*hid, C_in+hid, k, k]
        bias = self.input_conv.bias  # [4*hid], None with layer_norm
        if dtype is not None:
            weight = weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        weight = weight.contiguous(memory_format=self.memory_format)  # the activations' layout
        peephole = self.peephole_weight  # [3, hid, h, w]
        if peephole is not None:
            peephole = peephole.contiguous(memory_format=self.memory_format)
        norms = None
        if self.input_norm is not None:  # float32: the normalisation runs in float32
            norms = (self.input_norm.weight, self.input_norm.bias,
                     self.hidden_norm.weight, self.hidden_norm.bias)  # fmt: skip
        return StepWeights(weight, bias, peephole, norms)

    def fused_step(
        self,
        x: Tensor,
        state: tuple[Tensor, Tensor],
        weights: StepWeights,
        *,
        want_gates: bool = False,
        edit: GateEditFn | None = None,
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...] | None]:
        """Advance one time step.

        Parameters
        ----------
        x : Tensor
            ``X_t`` ``[B, C_in, h, w]``.
        state : (Tensor, Tensor)
            ``(H_{t-1}, C_{t-1})``, each ``[B, hidden, h, w]``; ``H_{t-1} = None`` means zeros.
        weights : StepWeights
            From :meth:`step_weights`.
        want_gates : bool
            Also return ``(i, f, o, g, C_t, H_t)``.
        edit : callable, optional
            An intervention's :data:`GateEditFn` for this step (see :func:`gate_update`); the
            step then runs eagerly (never the compiled graph), with the same arithmetic.

        Returns
        -------
        (Tensor, Tensor, tuple or None)
            ``H_t``, ``C_t`` ``[B, hidden, h, w]`` and the gates when asked.
        """
        h, c = state
        compiled = self.compiled_step if edit is None and weights.norms is None else None
        step = compiled or (conv_step if weights.norms is None else kernels.layer_norm_step)
        # eager inference updates the gates in place; autograd and compiled graphs out of place
        in_place = compiled is None and not torch.is_grad_enabled()
        update = kernels.gate_update_ if in_place else gate_update
        if edit is not None:
            update = partial(update, edit=edit)
        if weights.norms is not None:  # OpenSTL's normalised cell: eager, two convolutions
            return step(
                x, h, c, weights, update=update,
                padding=self.padding, memory_format=self.memory_format, want_gates=want_gates,
            )  # fmt: skip
        return step(
            x, h, c, weights.weight, weights.bias, weights.peephole,
            update=update,
            padding=self.padding, memory_format=self.memory_format, want_gates=want_gates,
        )  # fmt: skip


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM forecaster: encode observed frames, then predict frames autoregressively.

    Every layer's hidden state is concatenated and mapped by a 1x1 convolution to the next frame
    (Shi et al. 2015 predict from all states of the forecasting network; ``readout="top_layer"``
    reads the top layer only, ``"none"`` builds no head: :meth:`encode` only). Frames are
    optionally patched (space-to-depth) before the cells and un-patched after the head.

    Parameters
    ----------
    config : ConvLSTMConfig, optional
        The architecture; or give its fields as keyword arguments.
    **fields
        Fields of :class:`ConvLSTMConfig` (``in_channels``, ``hidden_channels``, ...).
    """

    def __init__(self, *, config: ConvLSTMConfig | None = None, **fields) -> None:
        super().__init__()
        if config is not None and fields:
            raise ValueError("give either config= or keyword fields, not both")
        self.config = config if config is not None else ConvLSTMConfig(**fields)
        cfg = self.config
        p2 = cfg.patch_size**2
        layer_inputs = (cfg.in_channels * p2, *cfg.hidden_channels[:-1])
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                in_channels=cin,
                hidden_channels=hid,
                kernel_size=cfg.kernel_size,
                grid_size=cfg.grid_size,
                peephole=cfg.peephole,
                forget_bias=cfg.forget_bias,
                layer_norm=cfg.layer_norm,
            )
            for cin, hid in zip(layer_inputs, cfg.hidden_channels, strict=True)
        )
        read = sum(cfg.hidden_channels) if cfg.readout == "all_layers" else cfg.hidden_channels[-1]
        self.head = (
            nn.Conv2d(read, cfg.channels_out * p2, kernel_size=1, bias=cfg.readout_bias)
            if cfg.has_head
            else None
        )

    # ----------------------------------------------------------------------------------------
    # shapes
    def patch(self, frames: Tensor) -> Tensor:
        """``[B, T, C, H, W]`` -> ``[B, T, C*p*p, H/p, W/p]`` (space-to-depth)."""
        p = self.config.patch_size
        return rearrange(frames, "b t c (h p1) (w p2) -> b t (c p1 p2) h w", p1=p, p2=p)

    def unpatch(self, latent: Tensor) -> Tensor:
        """``[B, T, C*p*p, h, w]`` -> ``[B, T, C, h*p, w*p]`` (depth-to-space)."""
        p = self.config.patch_size
        return rearrange(latent, "b t (c p1 p2) h w -> b t c (h p1) (w p2)", p1=p, p2=p)

    def check_frames(self, frames: Tensor) -> None:
        """Raise ``ValueError`` naming the problem if ``frames`` is not ``[B, T, C_in, H, W]``."""
        _check_rank(frames, "frames")
        cfg = self.config
        if frames.shape[2] != cfg.in_channels:
            raise ValueError(
                f"frames have {frames.shape[2]} channels but the model expects "
                f"{cfg.in_channels} (shape {tuple(frames.shape)} is read as [B, T, C, H, W])"
            )
        if tuple(frames.shape[3:]) != cfg.frame_size:
            raise ValueError(
                f"frames are {tuple(frames.shape[3:])} pixels but the model was built for "
                f"{cfg.frame_size}; crop or resample the data to the model grid"
            )
        if frames.shape[1] < 1:
            raise ValueError("frames must hold at least one time step")

    def initial_state(self, batch: int, *, like: Tensor) -> ConvLSTMState:
        """Zero state for ``batch`` sequences on ``like``'s device (float32, layout of the grid)."""
        h, w = self.config.grid_size
        fmt = memory_format_for((h, w))
        hidden = []
        for hid in self.config.hidden_channels:
            zeros = torch.zeros(batch, hid, h, w, dtype=torch.float32, device=like.device)
            hidden.append(zeros.contiguous(memory_format=fmt))  # [B, hid, h, w]
        return ConvLSTMState(hidden=hidden, cell=[z.clone() for z in hidden])

    def _readout(self, hidden: Sequence[Tensor]) -> Tensor:
        """Head over the concatenated hidden states ``[N, sum(hid), h, w]`` (or the top layer's
        ``[N, hid, h, w]``, ``readout="top_layer"``) -> frame ``[N, C*p*p, h, w]``."""
        if self.config.readout == "top_layer":
            y = self.head(hidden[-1])  # [N, C*p*p, h, w]
        else:
            y = self.head(torch.cat(list(hidden), dim=1))
        return torch.sigmoid(y) if self.config.output_activation == "sigmoid" else y

    def _forecast(self, hidden: Sequence[Tensor], previous: Tensor) -> Tensor:
        """The next latent frame ``[N, C*p*p, h, w]``: the head's output, plus ``previous`` (the
        last input frame on the latent grid) when the head is residual."""
        y = self._readout(hidden)
        return y + previous.to(y.dtype) if self.config.residual else y

    def _require_head(self) -> None:
        if self.head is None:
            raise ValueError(NO_HEAD)

    # ----------------------------------------------------------------------------------------
    # running
    def _step_weights(self, like: Tensor) -> list[StepWeights]:
        """Every cell's :class:`StepWeights`, cast to the autocast dtype active for ``like``."""
        dtype = autocast_dtype(like)
        return [cell.step_weights(dtype) for cell in self.cells]

    def _step(
        self,
        x: Tensor,
        state: ConvLSTMState,
        weights: list[StepWeights],
        hook: GateHook | None,
        step: int,
        *,
        zero_start: bool = False,
        edits=None,
    ) -> ConvLSTMState:
        """Advance every layer by one step on input ``x`` ``[B, C*p*p, h, w]`` (latent grid).

        ``zero_start``: ``state`` is the zero state, so each layer convolves its input part only
        (``W_h * 0 = 0``). ``edits``: a started intervention (:meth:`Intervention.start`), or
        None.
        """
        new_state = ConvLSTMState()
        for layer, (cell, weight) in enumerate(zip(self.cells, weights, strict=True)):
            h = None if zero_start else state.hidden[layer]
            edit = edits.edit_for(layer, step) if edits is not None else None
            h, c, gates = cell.fused_step(
                x, (h, state.cell[layer]), weight, want_gates=hook is not None, edit=edit
            )
            if hook is not None:
                hook(layer, step, gates)
            new_state.hidden.append(h)  # [B, hid, h, w]
            new_state.cell.append(c)
            x = h
        return new_state

    def _encode(
        self,
        frames: Tensor,
        state: ConvLSTMState | None,
        hook: GateHook | None,
        *,
        keep_hidden: bool = False,
        edits=None,
    ) -> tuple[list[list[Tensor]], ConvLSTMState, list[StepWeights]]:
        """Read the observed frames ``[B, T, C, H, W]`` step by step, from ``state`` or zeros.

        Returns the hidden states of every layer at every step (a list over ``T`` of lists over
        layers of ``[B, hid, h, w]``) when ``keep_hidden``, else an empty list; the state after
        the last frame; and the step weights, cast once per call, for the steps that follow.
        Step by step, only one step's activations are alive at a time. ``edits``: as in
        :meth:`_step`.
        """
        zero_start = state is None
        if zero_start:
            state = self.initial_state(frames.shape[0], like=frames)
        weights = self._step_weights(frames)
        x = self.patch(frames)  # [B, T, C*p*p, h, w]
        fmt = memory_format_for(self.config.grid_size)
        kept = []
        for k in range(x.shape[1]):
            x_t = x[:, k].contiguous(memory_format=fmt)  # [B, C*p*p, h, w]
            first = zero_start and k == 0
            state = self._step(x_t, state, weights, hook, k, zero_start=first, edits=edits)
            if keep_hidden:
                kept.append(state.hidden)
        return kept, state, weights

    def forward(
        self,
        frames: Tensor,
        *,
        horizon: int,
        state: ConvLSTMState | None = None,
        gate_hook: GateHook | None = None,
        intervene: Edits = None,
        feed_truth: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, ConvLSTMState]:
        """Read ``frames`` and forecast ``horizon`` frames, feeding each prediction back.

        Parameters
        ----------
        frames : Tensor
            Observed frames ``[B, T, C, H, W]`` (model space), ``T >= 1``.
        horizon : int
            Number of frames to forecast (``>= 1``).
        state : ConvLSTMState, optional
            State to continue from (as returned by an earlier call); zeros when omitted.
        gate_hook : callable, optional
            ``hook(layer, step, (i, f, o, g, C, H))`` called at every layer and step; steps are
            numbered from 0 over the ``T`` observed frames then the ``horizon - 1`` fed-back ones.
        intervene : GateEdit, sequence of GateEdit or Intervention, optional
            Edits of gates and states inside the cell updates (:mod:`model.interventions`),
            steps numbered as for ``gate_hook``; ``ValueError`` if one does not fit this network.
            Layers and steps no edit touches run the fast step unchanged.
        feed_truth : (Tensor, Tensor), optional
            Training only (scheduled sampling): ``(truth [B, horizon - 1, C, H, W], use [B,
            horizon - 1] bool)``; fed-back step ``k`` reads ``truth[:, k]`` (the true frame after
            ``forecast[:, k]``) instead of ``forecast[:, k]`` for the sequences where ``use[:, k]``.

        Returns
        -------
        forecast : Tensor
            ``[B, horizon, C_out, H, W]``: ``forecast[:, 0]`` follows ``frames[:, -1]``.
        state : ConvLSTMState
            State after the last input; continue with
            ``self(forecast[:, -1:], horizon=k, state=state)`` to extend the same rollout.
        """
        self._require_head()
        self.check_frames(frames)
        if horizon < 1:
            raise ValueError(f"horizon={horizon} must be at least 1")
        t = frames.shape[1]
        intervene = resolve_edits(intervene, self.config, steps=t + horizon - 1)
        edits = intervene.start() if intervene is not None else None
        _, state, weights = self._encode(frames, state, gate_hook, edits=edits)
        last = self.patch(frames[:, -1:])[:, 0]  # [B, C*p*p, h, w]: the base of a residual head
        latents = [self._forecast(state.hidden, last)]  # [B, C*p*p, h, w]
        truth, use = self._truth_feed(feed_truth, frames, horizon)
        for k in range(horizon - 1):
            # the prediction is fed back on the latent grid: patch(unpatch(y)) == y
            x = latents[-1]  # [B, C*p*p, h, w]
            if truth is not None:
                x = torch.where(use[:, k, None, None, None], truth[:, k].to(x.dtype), x)
            state = self._step(x, state, weights, gate_hook, t + k, edits=edits)
            latents.append(self._forecast(state.hidden, x))
        forecast = self.unpatch(torch.stack(latents, dim=1))  # [B, horizon, C, H, W]
        return forecast.contiguous(), state

    def _truth_feed(
        self, feed_truth: tuple[Tensor, Tensor] | None, frames: Tensor, horizon: int
    ) -> tuple[Tensor | None, Tensor | None]:
        """Check :meth:`forward`'s ``feed_truth``; returns ``(truth on the latent grid
        [B, horizon - 1, C*p*p, h, w], use [B, horizon - 1] bool)`` or ``(None, None)``."""
        if feed_truth is None:
            return None, None
        truth, use = feed_truth
        b = frames.shape[0]
        self.check_frames(truth)
        if truth.shape[:2] != (b, horizon - 1) or tuple(use.shape) != (b, horizon - 1):
            raise ValueError(
                f"feed_truth needs truth [{b}, {horizon - 1}, C, H, W] and use [{b}, "
                f"{horizon - 1}], not {tuple(truth.shape)} and {tuple(use.shape)}"
            )
        return self.patch(truth), use.to(torch.bool)

    def one_step(
        self,
        frames: Tensor,
        *,
        state: ConvLSTMState | None = None,
        gate_hook: GateHook | None = None,
        intervene: Edits = None,
    ) -> tuple[Tensor, ConvLSTMState]:
        """Teacher-forced one-step predictions.

        Parameters
        ----------
        frames : Tensor
            ``[B, T, C, H, W]`` (model space).
        state, gate_hook, intervene
            As in :meth:`forward`.

        Returns
        -------
        predictions : Tensor
            ``[B, T, C_out, H, W]``: ``predictions[:, t]`` predicts ``frames[:, t + 1]`` from the
            true frames up to ``t``.
        state : ConvLSTMState
            State after the last frame.
        """
        self._require_head()
        self.check_frames(frames)
        b, t = frames.shape[:2]
        intervene = resolve_edits(intervene, self.config, steps=t)
        edits = intervene.start() if intervene is not None else None
        kept, state, _ = self._encode(frames, state, gate_hook, keep_hidden=True, edits=edits)
        per_layer = zip(*kept, strict=True)  # layer -> its T states [B, hid, h, w]
        hidden = [torch.stack(seq, dim=1).flatten(0, 1) for seq in per_layer]  # [B*T, hid, h, w]
        y = self._readout(hidden).unflatten(0, (b, t))  # [B, T, C*p*p, h, w]
        if self.config.residual:
            y = y + self.patch(frames).to(y.dtype)  # change from each input frame
        return self.unpatch(y).contiguous(), state  # [B, T, C, H, W]

    def encode(
        self,
        frames: Tensor,
        *,
        state: ConvLSTMState | None = None,
        gate_hook: GateHook | None = None,
        intervene: Edits = None,
    ) -> ConvLSTMState:
        """Read ``frames`` without forecasting: the only way to run a network without a head.

        Parameters
        ----------
        frames : Tensor
            Observed frames ``[B, T, C, H, W]`` (model space), ``T >= 1``.
        state, gate_hook, intervene
            As in :meth:`forward` (steps numbered from 0 over the ``T`` frames).

        Returns
        -------
        ConvLSTMState
            The state after the last frame (``hidden[l]``, ``cell[l]``: ``[B, hid_l, h, w]``).
        """
        self.check_frames(frames)
        intervene = resolve_edits(intervene, self.config, steps=frames.shape[1])
        edits = intervene.start() if intervene is not None else None
        _, state, _ = self._encode(frames, state, gate_hook, edits=edits)
        return state


def _check_rank(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, T, C, H, W], got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} (rank {x.dim()}); expected rank 5 "
            "[B, T, C, H, W]: add a batch axis with x[None] for a single sequence"
        )

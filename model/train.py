"""Train a ConvLSTM on any registered dataset: ``python -m model.train CONFIG [options]``.

One small config file (TOML or JSON) per checkpoint, under ``configs/``
(:class:`model.train_config.TrainConfig`)::

    name = "video_moving_mnist"          # checkpoint folder name
    [data]
    dataset = "moving_mnist"             # a name from datasets.list_datasets()
    context = 10                         # frames read
    horizon = 10                         # frames forecast (the loss covers all of them)
    options = { }                        # get_dataset(...) options for every split
    train = { n_samples = 2000 }         # per-split options (override `options`)
    val = { n_samples = 64 }
    test = { n_samples = 256 }
                                         # or a file of your own instead of `dataset`:
                                         # file = "flows.npz", split = "0.8,0.1,0.1" (or dates),
                                         # layout, key, reader = { domain = "traffic" }; see
                                         # model.train_config.DataConfig and datasets.splits
    [model]                              # model.convlstm.ConvLSTMConfig fields
    hidden_channels = [64, 64]           # in_channels / frame_size come from the data
    patch_size = 4
    output_activation = "sigmoid"
    [normalization]                      # model.normalize.Normalizer fields; scale = "auto"
    kind = "unit"                        # ("scale" kind): 99.9th percentile of the training data
    [train]
    steps = 3000                         # optimiser steps (global batch each)
    batch_size = 16                      # global batch, split over the DDP ranks
    lr = 1e-3                            # AdamW, linear warm-up then cosine decay
    weight_decay = 0.0
    warmup = 100
    grad_clip = 1.0
    val_every = 200                      # validation + checkpoint every N steps
    mode = "free"                        # "free": loss on the free-running forecast (what is
                                         # evaluated); "teacher": one-step loss on every frame
    augment = false                      # random 90-degree rotations and flips of each batch
    init_from = ""                       # start from this checkpoint's weights (fine-tuning),
                                         # a path relative to the repository root
    max_minutes = 0                      # > 0: stop after this much training wall time; the
                                         # learning-rate decay then follows the clock
    loss = "mse"                         # "balanced" (radar): pixels weighted by true rain rate,
                                         # 1 below 2 mm/h up to 30 at 30 mm/h (Shi et al. 2017);
                                         # "l1l2": MSE + MAE (PredRNN/OpenSTL practice)
    ema_decay = 0.0                      # > 0: validate and keep an EMA of the weights
    scheduled_sampling = 0.0             # free mode: P(feed the true frame) at step 0, -> 0

Loss: mean squared error in model space (see :class:`model.normalize.Normalizer`) over the
forecast frames, on valid pixels only (NaN pixels of the data never enter it); ``loss = "balanced"``
weights each pixel by its true rain rate (:func:`model.losses.rain_weights`), ``loss = "l1l2"``
adds the mean absolute error (:func:`model.losses.batch_loss`). The log's ``grad_norm`` column is
the gradient's global L2 norm before clipping (``grad_clip``).

Outputs: the best checkpoint by validation loss in ``checkpoints/NAME/`` (``model.safetensors`` and
``meta.json`` via :func:`model.checkpoint.save_checkpoint`), and in ``runs/NAME/`` the CSV log
(``log.csv``), the latest checkpoint (``last/``) and the optimiser state (``train_state.pt``) that
``--resume`` continues from.

A file on the command line: ``python -m model.train CONFIG --data PATH [--split SPEC] [--layout
AXES] [--key NAME] [--domain DOMAIN]`` trains on the file with the config's model, normalisation
and schedule (:func:`apply_data_flags`); ``--init-from`` a checkpoint of another grid fine-tunes
it there (:mod:`model.finetune`).

Data parallel: launched by ``torchrun --nproc_per_node N -m model.train CONFIG``, each process
trains on its share of every global batch (``DistributedSampler``) and gradients are averaged by
``DistributedDataParallel`` (gloo on CPU, nccl on GPU). Only rank 0 validates and writes files.
On CUDA the training forward pass runs under bfloat16 autocast; validation forecasts use the
precision policy of every forecast (:func:`model.rollout.forecast_windows`, ``"auto"``).

Layout: the config file is read into a :class:`model.train_config.TrainConfig` (fields, units and
checks there); losses are in :mod:`model.losses`, checkpoint metadata in :mod:`model.provenance`.
:func:`train` is a short loop over the parts below: :func:`set_up` (data, normaliser, network,
optimiser), :func:`resume_run`, :func:`prepare_batches`, :func:`train_step`,
:func:`validate_and_save` and :class:`RunLog`; :data:`OVERRIDES` maps command-line flags to fields.
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from datasets import vocabulary
from datasets.splits import DEFAULT_SPLIT
from datasets.vocabulary import DOMAINS
from model import runtime
from model.checkpoint import load_checkpoint, pick_device, save_checkpoint
from model.cli import ERRORS, Parser, one_line_errors
from model.convlstm import ConvLSTM, ConvLSTMConfig
from model.finetune import TransferError, transfer_weights
from model.losses import LOSSES, Objective, masked_mse, rain_weights, truth_probability
from model.moving_mnist_stream import MovingMNISTStream
from model.normalize import Normalizer
from model.provenance import checkpoint_metadata, file_facts, lineage
from model.rollout import forecast_windows, resolve_precision
from model.train_config import FILE_WINDOW_OPTIONS, ConfigError, TrainConfig, default_name
from model.windows import OPTION_LAYERS, load_windows

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# data
@dataclass
class Split:
    """One dataset split in model space, held in memory.

    Attributes
    ----------
    frames : torch.Tensor
        ``[N, T, C, H, W]`` float32 model space (NaN replaced by 0), ``T = context + horizon``.
    valid : torch.Tensor or None
        ``[N, T, C, H, W]`` bool, False at invalid (NaN) pixels; None when every pixel is valid.
    array : xarray.DataArray
        The dataset array in physical units (for coordinates, attrs and physical scoring).
    """

    frames: torch.Tensor
    valid: torch.Tensor | None
    array: object

    def __len__(self) -> int:
        return self.frames.shape[0]


def make_normalizer(normalization: dict, train_array) -> Normalizer:
    """Normalizer from the config's ``[normalization]``; ``scale = "auto"``: from the training data."""
    fields = dict(normalization)
    fields.setdefault("units", str(train_array.attrs.get("units", "")))
    if fields.get("scale") == "auto":
        values = np.asarray(train_array.values, dtype=np.float64)
        values = values[np.isfinite(values)]
        fields["scale"] = float(max(np.percentile(values, 99.9), 1e-6)) if values.size else 1.0
    try:
        return Normalizer(**fields)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[normalization]: {err}") from None


def to_split(array, normalizer: Normalizer) -> Split:
    """Physical-unit DataArray -> :class:`Split` in model space."""
    values = np.asarray(array.values, dtype=np.float32)  # [N, T, C, H, W]
    finite = np.isfinite(values)
    frames = torch.from_numpy(np.asarray(normalizer.to_model(values), dtype=np.float32))
    valid = None if finite.all() else torch.from_numpy(finite)
    return Split(frames=frames, valid=valid, array=array)


def augment_batch(frames: torch.Tensor, valid: torch.Tensor | None):
    """Apply one random element of the dihedral group (rotations by 90 degrees, flips) to a batch.

    ``frames [B, T, C, H, W]`` and ``valid`` get the same transform; non-square frames only get
    flips. Uses the global torch RNG (so ``--resume`` reproduces it).
    """
    k, flip = torch.randint(0, 4, ()).item(), torch.randint(0, 2, ()).item()
    if frames.shape[-1] != frames.shape[-2]:
        k = 2 * (k % 2)  # 0 or 180 degrees keep the shape

    def op(x):
        if x is None:
            return None
        x = torch.rot90(x, k, dims=(-2, -1)) if k else x
        return x.flip(-1) if flip else x

    return op(frames), op(valid)


# ------------------------------------------------------------------------------------------------
# distributed helpers
@dataclass
class Dist:
    """Where this process sits in a torchrun launch (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> tuple[Dist, torch.device, str]:
    """Start ``torch.distributed`` when launched by torchrun; pick this process's device."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        d = Dist(
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
        use_cuda = torch.cuda.is_available() and device_request in ("auto", "cuda")
        if use_cuda:
            torch.cuda.set_device(d.local_rank)
            device = torch.device("cuda", d.local_rank)
            note = f"using cuda:{d.local_rank} ({torch.cuda.get_device_name(d.local_rank)})"
        else:
            device, note = torch.device("cpu"), "using cpu"
            # Share the cores among the ranks instead of oversubscribing them.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.world))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return d, device, f"{note}; rank {d.rank} of {d.world} ({dist.get_backend()})"
    device, note = pick_device(device_request)
    return Dist(), device, note


def _elapsed(t0: float, ddp: Dist) -> float:
    """Seconds since ``t0``, the same on every rank (the slowest rank's clock)."""
    elapsed = time.perf_counter() - t0
    if ddp.world > 1:
        t = torch.tensor([elapsed], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        elapsed = float(t.item())
    return elapsed


def weights_in_sync(model: torch.nn.Module) -> bool:
    """True when every rank holds the same weights (compares each rank with rank 0)."""
    if not dist.is_initialized():
        return True
    flat = torch.cat([p.detach().float().reshape(-1).cpu() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    same = torch.tensor([int(torch.equal(flat, ref))])
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


# ------------------------------------------------------------------------------------------------
# evaluation during training
def validate(
    net: ConvLSTM,
    split: Split,
    normalizer: Normalizer,
    *,
    context: int,
    horizon: int,
    batch_size: int,
    precision: str = "auto",
) -> dict:
    """Validation loss (model space), physical scores of the model and of persistence, both on
    the common finite mask of the truth and both forecasts (a pixel where the last context frame
    is NaN counts for neither).

    The forecasts come from :func:`model.rollout.forecast_windows` under ``precision``, the policy
    the evaluation and the dashboard use.
    """
    from model.baselines import persistence
    from model.metrics import compare

    pred = forecast_windows(net, split.frames[:, :context], horizon, batch_size=batch_size,
                            precision=precision)  # fmt: skip  # [N, horizon, C, H, W] model space
    target = split.frames[:, context:]
    mask = None if split.valid is None else split.valid[:, context:]
    loss = float(masked_mse(torch.from_numpy(pred), target, mask))
    truth = np.asarray(split.array.values[:, context:], dtype=np.float32)
    physical = normalizer.to_physical(pred)
    domain = str(split.array.attrs.get("domain", "video"))
    key = vocabulary.facts(domain).main_score
    pers = persistence(split.array.values[:, :context], horizon=horizon)  # [N, horizon, C, H, W]
    # both on the common finite mask of the truth and every forecast (model.metrics.compare)
    tables = compare({"model": physical, "persistence": pers}, truth, domain=domain)
    model_scores, pers_scores = tables["model"], tables["persistence"]
    return {
        "val_loss": loss,
        f"val_{key}": float(model_scores[key].mean()),
        f"val_persistence_{key}": float(pers_scores[key].mean()),
    }


def score_key(scores: dict) -> str:
    """The physical score in :func:`validate`'s result (``"val_MSE"`` or ``"val_RMSE"``)."""
    return next(
        k for k in scores if k.startswith("val_") and "persistence" not in k and k != "val_loss"
    )


# ------------------------------------------------------------------------------------------------
# training
@dataclass
class TrainResult:
    """What :func:`train` returns (rank 0 has the checkpoint paths)."""

    model: ConvLSTM
    step: int
    best: dict = field(default_factory=dict)
    checkpoint: Path | None = None
    initial_state: dict | None = None
    in_sync: bool = True
    wall_s: float = 0.0


def lr_at(step: int, *, lr: float, warmup: int, steps: int, fraction: float | None = None) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 5% of ``lr`` at ``steps``.

    ``fraction`` (of a time budget used, 0..1) moves the decay on when time, not steps, runs out.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    if fraction is not None:
        progress = max(progress, min(1.0, fraction))
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Run:
    """One training run's state between steps: built by :func:`set_up`, moved on by
    :func:`train_step`, saved by :func:`validate_and_save`.

    ``steps`` is the step training stops after: ``train.steps`` (or the ``steps`` argument of
    :func:`train`), lowered when ``train.max_minutes`` run out. ``objective`` and ``sampler`` are
    set by :func:`prepare_batches`, after a resume has loaded the weights.
    """

    config: TrainConfig
    ddp: Dist
    device: torch.device
    device_note: str
    normalizer: Normalizer
    train_split: Split
    val_split: Split | None
    net: ConvLSTM
    optimizer: torch.optim.Optimizer
    out_dir: Path
    run_dir: Path
    seed: int
    steps: int
    command: str | None = None
    init_summary: dict | None = None
    data_file: dict | None = None  # name and sha256 of data.file (never its path)
    initial_state: dict | None = None
    objective: torch.nn.Module | None = None
    sampler: DistributedSampler | None = None
    local_batch: int = 1
    step: int = 0
    best: dict = field(default_factory=lambda: {"val_loss": math.inf})
    t_start: float = field(default_factory=time.perf_counter)
    t_train: float = field(default_factory=time.perf_counter)
    train_s_before: float = 0.0  # training seconds of earlier sessions of a resumed run

    def train_seconds(self, now: float) -> float:
        """Seconds of the optimisation loop over every session of this run."""
        return self.train_s_before + now - self.t_train

    stream: MovingMNISTStream | None = None
    ema: ConvLSTM | None = None  # the moving average of the weights (train.ema_decay > 0)
    grad_norm: torch.Tensor | None = None  # the last step's gradient norm, before clipping

    @property
    def validated(self) -> ConvLSTM:
        """The weights validation scores and the best checkpoint keeps: the EMA when on."""
        return self.ema if self.ema is not None else self.net

    @property
    def autocast(self) -> bool:
        """bfloat16 autocast of the training forward pass: ``train.precision`` resolved by
        :func:`model.rollout.resolve_precision` (``"auto"``: where the device computes bfloat16
        natively, CUDA or a CPU with AVX512-BF16/AMX), the policy validation forecasts use too."""
        return resolve_precision(self.config.train.precision, self.device) == "bf16"

    @property
    def state_file(self) -> Path:
        """Optimiser state, step, best scores and RNG state that ``--resume`` continues from."""
        return self.run_dir / "train_state.pt"


# set-up -----------------------------------------------------------------------------------------
def load_data(
    config: TrainConfig, ddp: Dist, loader=None
) -> tuple[Normalizer, Split, Split | None]:
    """The normaliser and the training split (every rank), the validation split (rank 0)."""
    train_array = load_windows(config.data, "train", loader=loader)
    normalizer = make_normalizer(config.normalization, train_array)
    train_split = to_split(train_array, normalizer)
    val_split = None
    if ddp.main:
        val_split = to_split(load_windows(config.data, "val", loader=loader), normalizer)
    return normalizer, train_split, val_split


def build_network(config: TrainConfig, split: Split, device: torch.device) -> ConvLSTM:
    """A freshly initialised ConvLSTM for the config's ``[model]`` and the data's channels and grid."""
    _, _, channels, height, width = split.frames.shape  # [N, T, C, H, W]
    try:
        model_cfg = ConvLSTMConfig(
            **{**config.model, "in_channels": channels, "frame_size": (height, width)}
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"[model] does not fit the data ({channels} channel(s) of {height}x{width} from "
            f"{config.data.source_name}): {err}"
        ) from None
    return ConvLSTM(config=model_cfg).to(device)


def init_weights(net: ConvLSTM, init_from: str, ddp: Dist) -> dict:
    """Copy the weights of checkpoint ``init_from`` into ``net``; returns its :func:`lineage`.

    The checkpoint may have another grid: per-pixel weights are resized to ``net``'s
    (:func:`model.finetune.transfer_weights`) and the lineage says from which grid to which.

    Raises
    ------
    ConfigError
        The checkpoint's architecture or channels differ from ``net``'s beyond the grid.
    """
    init_path = Path(init_from)
    init_path = init_path if init_path.is_absolute() else REPO_ROOT / init_path
    source, source_meta = load_checkpoint(init_path, device="cpu")
    try:
        resized = transfer_weights(source, net)
    except TransferError as err:
        raise ConfigError(
            f"train.init_from={init_from}: cannot start from this checkpoint: {err}"
        ) from None
    if ddp.main:
        how = ""
        if resized:
            (h0, w0), (h1, w1) = resized["frame_size"]
            how = f"; per-pixel weights resized from {h0}x{w0} to {h1}x{w1}"
        print(f"initialised from {init_path.name} ({source_meta.get('dataset')}){how}",
              file=sys.stderr)  # fmt: skip
    return lineage(source_meta, init_path, resized=resized)


def set_up(
    config: TrainConfig,
    ddp: Dist,
    device: torch.device,
    device_note: str,
    *,
    out_dir: Path,
    run_dir: Path,
    seed: int,
    steps: int,
    resume: bool = False,
    keep_initial: bool = False,
    command: str | None = None,
    loader=None,
) -> Run:
    """Data, normaliser, network (seeded, or from ``train.init_from``) and AdamW optimiser."""
    torch.manual_seed(seed)
    normalizer, train_split, val_split = load_data(config, ddp, loader)
    net = build_network(config, train_split, device)
    init_summary = None
    if config.train.init_from and not resume:
        init_summary = init_weights(net, config.train.init_from, ddp)
    initial = None
    if keep_initial:
        initial = {k: v.detach().clone().cpu() for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    ema = make_ema(net) if config.train.ema_decay else None
    return Run(config=config, ddp=ddp, device=device, device_note=device_note,
               normalizer=normalizer, train_split=train_split, val_split=val_split, net=net,
               optimizer=optimizer, out_dir=out_dir, run_dir=run_dir, seed=seed, steps=steps,
               command=command, init_summary=init_summary, initial_state=initial, ema=ema,
               data_file=file_facts(config.data.file) if config.data.file else None)  # fmt: skip


def make_ema(net: ConvLSTM) -> ConvLSTM:
    """A frozen copy of ``net`` that :func:`update_ema` moves toward ``net`` after each step."""
    ema = copy.deepcopy(net).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: ConvLSTM, net: ConvLSTM, decay: float) -> None:
    """``ema += (1 - decay) * (net - ema)`` for every parameter; buffers are copied."""
    ema_params = list(ema.parameters())
    torch._foreach_lerp_(ema_params, [p.detach() for p in net.parameters()], 1.0 - decay)
    for mine, theirs in zip(ema.buffers(), net.buffers(), strict=True):
        mine.copy_(theirs)


def resume_run(run: Run) -> None:
    """Load the latest weights, optimiser state, step, best scores and RNG state of ``run_dir``."""
    if not run.state_file.is_file():
        raise ConfigError(f"--resume: {run.state_file} not found; train without --resume first")
    loaded, _ = load_checkpoint(run.run_dir / "last", device="cpu")
    run.net.load_state_dict(loaded.state_dict())
    state = torch.load(run.state_file, map_location="cpu", weights_only=True)
    run.optimizer.load_state_dict(state["optimizer"])
    run.step, run.best = int(state["step"]), dict(state["best"])
    torch.set_rng_state(state["torch_rng"])
    run.train_s_before = float(state.get("train_s", 0.0))
    if run.ema is not None:  # a run that turns EMA on at a resume starts it from the weights
        run.ema.load_state_dict(state.get("ema") or run.net.state_dict())
    if run.ddp.main:
        print(f"resuming from step {run.step} ({run.state_file})", file=sys.stderr)


def _physical_rain_weights(target: torch.Tensor, *, normalizer: Normalizer) -> torch.Tensor:
    """:func:`rain_weights` of a model-space target (converted to mm/h first)."""
    return rain_weights(normalizer.to_physical(target.float()))


def prepare_batches(run: Run) -> None:
    """The loss module (DDP-wrapped on more than one rank) and this rank's batch sampler."""
    settings = run.config.train
    weight_fn = None
    if settings.loss == "balanced":
        weight_fn = functools.partial(_physical_rain_weights, normalizer=run.normalizer)
    objective = Objective(run.net, context=run.config.data.context, mode=settings.mode,
                          weight_fn=weight_fn, loss=settings.loss)  # fmt: skip
    if run.ddp.world > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        objective = DistributedDataParallel(objective, device_ids=ids)
    run.objective = objective
    run.local_batch = max(1, settings.batch_size // run.ddp.world)
    if settings.stream:
        _, frames, _, height, _ = run.train_split.frames.shape  # [N, T, C, H, W]
        options = {**run.config.data.options, **run.config.data.train}
        run.stream = MovingMNISTStream(split="train", seed=run.seed, device=run.device,
                                       frames=frames, size=height,
                                       digits=int(options.get("digits", 2)))  # fmt: skip
    run.sampler = DistributedSampler(
        range(len(run.train_split)),
        num_replicas=run.ddp.world,
        rank=run.ddp.rank,
        shuffle=True,
        seed=run.seed,
        drop_last=True,
    )


def batch_indices(sampler: DistributedSampler, local_batch: int, *, start: int):
    """Yield ``(epoch, indices)`` of this rank's batch for steps ``start``, ``start + 1``, ...

    Each epoch is the sampler's order for that epoch (shuffled with ``seed + epoch``), cut into
    ``len(sampler) // local_batch`` batches (at least one); a resumed run picks up mid-epoch.
    """
    per_epoch = max(1, len(sampler) // local_batch)
    step = start
    while True:
        epoch = step // per_epoch
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(step % per_epoch, per_epoch):
            yield epoch, torch.tensor(order[b * local_batch : (b + 1) * local_batch])
        step = (epoch + 1) * per_epoch


# one step ---------------------------------------------------------------------------------------
def time_used(run: Run) -> float | None:
    """Fraction of ``train.max_minutes`` spent (None without a limit); once all of it is spent,
    the coming step becomes the last one."""
    budget_s = 60.0 * run.config.train.max_minutes
    if not budget_s:
        return None
    fraction = _elapsed(run.t_train, run.ddp) / budget_s
    if fraction >= 1.0:
        run.steps = run.step + 1
    return fraction


def session_over(run: Run, session_minutes: float) -> bool:
    """True once ``session_minutes`` (> 0) of training wall time are spent in this process.

    Unlike ``train.max_minutes`` this leaves the learning-rate schedule alone: it follows
    ``train.steps``, and ``--resume`` continues it in a later session (a campaign of bursts).
    """
    return session_minutes > 0 and _elapsed(run.t_train, run.ddp) >= 60.0 * session_minutes


def train_step(run: Run, idx: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """One optimiser step on the samples ``idx`` of the training split.

    Returns
    -------
    loss : torch.Tensor
        Scalar loss of the batch (before the step).
    lr : float
        Learning rate used.
    samples : int
        Samples in this rank's batch.
    """
    settings, split = run.config.train, run.train_split
    if run.stream is not None:  # rendered on the device; sample numbers follow the step
        first = run.step * run.local_batch * run.ddp.world + run.ddp.rank * run.local_batch
        x, v = run.stream.batch(start=first, size=run.local_batch), None  # [b, T, 1, H, W]
    else:
        x = split.frames[idx].to(run.device, non_blocking=True)  # [b, T, C, H, W]
        v = None if split.valid is None else split.valid[idx].to(run.device)
    if settings.augment:
        x, v = augment_batch(x, v)
    lr = lr_at(run.step, lr=settings.lr, warmup=settings.warmup, steps=run.steps,
               fraction=time_used(run))  # fmt: skip
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    truth_prob = truth_probability(run.step, start=settings.scheduled_sampling, steps=run.steps)
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.autocast):
        loss = run.objective(x, v, truth_prob=truth_prob)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.grad_norm = clip_gradients(list(run.net.parameters()), settings.grad_clip)
    run.optimizer.step()
    if run.ema is not None:
        update_ema(run.ema, run.net, settings.ema_decay)
    run.step += 1
    return loss, lr, x.shape[0]


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale the gradients of ``params`` so their global L2 norm is at most ``max_norm`` (0: leave
    them); returns the norm before clipping (scalar tensor)."""
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


# validate and save ------------------------------------------------------------------------------
def validate_and_save(run: Run) -> dict:
    """Validate (rank 0), save ``run_dir/last``, the best checkpoint in ``out_dir`` when the
    validation loss improved, and the state ``--resume`` needs. Returns the scores.

    With ``train.ema_decay`` the moving average is validated and kept as the best checkpoint;
    ``run_dir/last`` holds the raw weights and ``train_state.pt`` the average."""
    scores = validate(run.validated, run.val_split, run.normalizer, context=run.config.data.context,
                      horizon=run.config.data.horizon,
                      batch_size=run.config.train.eval_batch_size)  # fmt: skip
    now = time.perf_counter()
    meta = checkpoint_metadata(run.config, run.train_split.array, run.normalizer, step=run.step,
                               seed=run.seed, world_size=run.ddp.world,
                               device_note=run.device_note, command=run.command,
                               wall_s=now - run.t_start, train_s=run.train_seconds(now), val=scores,
                               init=run.init_summary, data_file=run.data_file)  # fmt: skip
    save_checkpoint(run.run_dir / "last", run.net, metadata=meta)
    if scores["val_loss"] < run.best["val_loss"]:
        run.best = dict(scores, step=run.step)
        save_checkpoint(run.out_dir, run.validated, metadata=dict(meta, best_step=run.step))
    state = {"optimizer": run.optimizer.state_dict(), "step": run.step, "best": run.best,
             "torch_rng": torch.get_rng_state(), "train_s": run.train_seconds(now)}  # fmt: skip
    if run.ema is not None:
        state["ema"] = run.ema.state_dict()
    torch.save(state, run.state_file)
    return scores


# log --------------------------------------------------------------------------------------------
class RunLog:
    """``run_dir/log.csv``: one row per step, validation columns filled on validation steps.

    Also the samples-per-second window (reset after each validation) and the progress bar.
    Rank 0 writes; the other ranks only count.
    """

    HEADER = ["step", "epoch", "loss", "lr", "samples_per_s", "val_loss", "val_score",
              "val_persistence", "wall_s", "grad_norm"]  # fmt: skip

    def __init__(self, run: Run, *, append: bool, progress: bool) -> None:
        from tqdm import tqdm

        self.file = self.writer = None
        if run.ddp.main:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            if append:
                self.upgrade_header(run.run_dir / "log.csv")
            self.file = open(run.run_dir / "log.csv", "a" if append else "w", newline="")  # noqa: SIM115
            self.writer = csv.writer(self.file)
            if not append:
                self.writer.writerow(self.HEADER)
            split = run.train_split
            print(
                f"{run.config.name}: {len(split)} training samples {tuple(split.frames.shape[1:])}, "
                f"{sum(p.numel() for p in run.net.parameters()):,} parameters, "
                f"{run.device_note}, global batch {run.local_batch * run.ddp.world}",
                file=sys.stderr,
            )
        self.bar = tqdm(total=run.steps, initial=run.step, disable=not (progress and run.ddp.main),
                        unit="step")  # fmt: skip
        self.restart_window()

    @classmethod
    def upgrade_header(cls, path: Path) -> None:
        """Give the log of an earlier version (fewer columns, the same first ones) today's header,
        so the rows a resumed run appends match it; older rows leave the new columns empty."""
        if not path.is_file():
            return
        lines = path.read_text().splitlines(keepends=True)
        old = lines[0].strip().split(",") if lines else []
        if old != cls.HEADER and old == cls.HEADER[: len(old)]:
            path.write_text(",".join(cls.HEADER) + "\n" + "".join(lines[1:]))

    def restart_window(self) -> None:
        """Start a new samples-per-second window (after validation, which it should not count)."""
        self.seen, self.t_window = 0, time.perf_counter()

    def step(self, run: Run, *, epoch: int, loss: torch.Tensor, lr: float, samples: int) -> list:
        """Count a step's samples (all ranks) and show it; returns its log row (no val columns)."""
        self.seen += samples * run.ddp.world
        elapsed = time.perf_counter() - self.t_window
        rate = self.seen / elapsed if elapsed > 0 else 0.0
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss.item():.4g}", samples_s=f"{rate:.1f}", lr=f"{lr:.2g}")
        norm = "" if run.grad_norm is None else f"{float(run.grad_norm):.4g}"
        return [run.step, epoch, f"{loss.item():.6g}", f"{lr:.3g}", f"{rate:.2f}", "", "", "",
                f"{time.perf_counter() - run.t_start:.1f}", norm]  # fmt: skip

    def validation(self, row: list, scores: dict) -> None:
        """Fill ``row``'s validation columns and print them."""
        key = score_key(scores)
        row[5:8] = [f"{scores['val_loss']:.6g}", f"{scores[key]:.6g}",
                    f"{scores[key.replace('val_', 'val_persistence_')]:.6g}"]  # fmt: skip
        self.bar.write(
            f"step {row[0]}: val loss {scores['val_loss']:.4g}, {key[4:]} "
            f"{scores[key]:.4g} (persistence {row[7]})"
        )

    def write(self, row: list) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()


# the loop ---------------------------------------------------------------------------------------
def end_of_step(run: Run, log: RunLog, row: list) -> None:
    """Every ``val_every`` steps and after the last: validate and save (rank 0), then sync ranks.
    Rank 0 logs every step."""
    is_val = run.step % run.config.train.val_every == 0 or run.step == run.steps
    if run.ddp.main:
        if is_val:
            log.validation(row, validate_and_save(run))
        log.write(row)
    if is_val and run.ddp.world > 1:
        dist.barrier()
    if is_val:
        log.restart_window()


def finish(run: Run, log: RunLog) -> TrainResult:
    """Close the log, check that the ranks agree, and say what was trained."""
    log.close()
    in_sync = weights_in_sync(run.net)
    if run.ddp.main and run.ddp.world > 1:
        print(f"weights identical on all {run.ddp.world} ranks: {in_sync}", file=sys.stderr)
    return TrainResult(
        model=run.net,
        step=run.step,
        best=run.best,
        checkpoint=run.out_dir if run.ddp.main else None,
        initial_state=run.initial_state,
        in_sync=in_sync,
        wall_s=time.perf_counter() - run.t_start,
    )


def train(
    cfg: TrainConfig | dict,
    *,
    out_dir: str | Path | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str = "auto",
    steps: int | None = None,
    progress: bool = True,
    keep_initial: bool = False,
    command: str | None = None,
    loader=None,
    session_minutes: float = 0.0,
) -> TrainResult:
    """Train a ConvLSTM as the config says; see the module docstring for files and parallelism.

    Parameters
    ----------
    cfg : TrainConfig or dict
        The config (a dict is read with :meth:`TrainConfig.from_dict`).
    out_dir : path, optional
        Where the best checkpoint goes (default ``checkpoints/NAME``).
    run_dir : path, optional
        Log, latest checkpoint and optimiser state (default ``runs/NAME``).
    resume : bool
        Continue from ``run_dir``'s latest checkpoint and optimiser state.
    seed : int
        Seeds weights, batch order and everything random in training.
    device : {"auto", "cuda", "mps", "cpu"}
    steps : int, optional
        Overrides ``train.steps`` (the config recorded in the checkpoint keeps its value).
    progress : bool
        Show a tqdm progress bar (rank 0).
    keep_initial : bool
        Keep a copy of the initial weights in the result (for tests).
    command : str, optional
        The command line recorded in the metadata.
    loader : callable, optional
        Replaces ``datasets.get_dataset`` (same signature); for tests.
    session_minutes : float
        > 0: stop after this many minutes of training in this process, saving the state
        ``resume`` continues from; the learning-rate schedule is not shortened (see
        :func:`session_over`).

    Returns
    -------
    TrainResult
    """
    t_start = time.perf_counter()
    config = TrainConfig.coerce(cfg)
    out_dir = Path(out_dir) if out_dir is not None else REPO_ROOT / "checkpoints" / config.name
    run_dir = Path(run_dir) if run_dir is not None else REPO_ROOT / "runs" / config.name
    ddp, device_t, device_note = init_distributed(device)
    try:
        run = set_up(config, ddp, device_t, device_note, out_dir=out_dir, run_dir=run_dir,
                     seed=seed, steps=config.train.steps if steps is None else int(steps),
                     resume=resume, keep_initial=keep_initial, command=command,
                     loader=loader)  # fmt: skip
        run.t_start = t_start
        if resume:
            resume_run(run)
        prepare_batches(run)
        log = RunLog(run, append=resume, progress=progress)
        batches = batch_indices(run.sampler, run.local_batch, start=run.step)
        run.t_train = time.perf_counter()
        run.objective.train()
        while run.step < run.steps and not session_over(run, session_minutes):
            epoch, idx = next(batches)
            loss, lr, samples = train_step(run, idx)
            end_of_step(run, log, log.step(run, epoch=epoch, loss=loss, lr=lr, samples=samples))
        if run.step < run.steps and run.step % run.config.train.val_every and run.ddp.main:
            validate_and_save(run)  # the session ended between validations: keep its steps
        return finish(run, log)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------
# command line
@dataclass(frozen=True)
class Override:
    """A command-line flag that sets one config field (see :data:`OVERRIDES`)."""

    flag: str  # e.g. "--lr"
    section: str  # "train" (a TrainSettings field) or "data.options" (a get_dataset option)
    key: str
    type: type
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        """The argparse attribute: ``--max-minutes`` -> ``max_minutes``."""
        return self.flag.removeprefix("--").replace("-", "_")


OVERRIDES = (
    Override("--batch-size", "train", "batch_size", int, "override train.batch_size (global)"),
    Override("--val-every", "train", "val_every", int, "override train.val_every"),
    Override("--max-minutes", "train", "max_minutes", float, "override train.max_minutes"),
    Override("--init-from", "train", "init_from", str, "override train.init_from (checkpoint folder)"),
    Override("--loss", "train", "loss", str, "override train.loss", choices=LOSSES),
    Override("--lr", "train", "lr", float, "override train.lr (peak learning rate per step)"),
    Override("--grad-clip", "train", "grad_clip", float, "override train.grad_clip (0: off)"),
    Override("--ema-decay", "train", "ema_decay", float, "override train.ema_decay (0: off)"),
    Override("--scheduled-sampling", "train", "scheduled_sampling", float,
             "override train.scheduled_sampling (P(true frame fed back) at step 0; 0: off)"),
    Override("--data-root", "data.options", "root", str,
             "set the dataset option root= (real data folders)"),
)  # fmt: skip
"""Flags that override config fields. Each applies when given, whatever its value (``--lr 0``,
``--max-minutes 0``), and the result is checked like the file. ``--steps`` is no config override:
it stops training early and the checkpoint keeps the file's ``train.steps``."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m model.train",
        description="Train a ConvLSTM on a registered dataset or a file of your own, from a config "
        "file (configs/*.toml). Data-parallel with `torchrun --nproc_per_node N -m model.train "
        "CONFIG`.",
    )
    parser.add_argument("config", help="training config (.toml or .json)")
    parser.add_argument("--out", help="checkpoint folder (default checkpoints/NAME)")
    parser.add_argument("--run-dir", help="log and resume folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from --run-dir")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--steps", type=int, help="train this many steps instead of train.steps")
    for o in OVERRIDES:
        parser.add_argument(o.flag, type=o.type, choices=o.choices, help=o.help)
    data = parser.add_argument_group(
        "a file of your own (NetCDF/Zarr, .npy, .npz, TaxiBJ-style HDF5, video, radar files)"
    )
    data.add_argument("--data", metavar="PATH",
                      help="train on this file instead of the config's data (set data.file); a "
                      "config that named a dataset then names the checkpoint after the file")  # fmt: skip
    data.add_argument("--split", metavar="SPEC",
                      help="split of the file's time axis (data.split): fractions train,val,test "
                      f"in time order ({DEFAULT_SPLIT}, the default) or dates "
                      "(train:..2024-06-30,val:2024-07-01..2024-07-15,test:2024-07-16..)")  # fmt: skip
    data.add_argument("--layout", metavar="AXES",
                      help=".npy/.npz axis order (data.layout): thw, tchw, thwc, ntchw, "
                      "mnist_test_seq; default: inferred from the shape")  # fmt: skip
    data.add_argument("--key", help=".npz array to read (data.key); default: inferred")
    data.add_argument("--domain", choices=DOMAINS,
                      help="what the file's values are (data.reader.domain): radar (mm/h), "
                      "traffic (counts), video ([0, 1]); sets the scores and baselines; default: "
                      "the domain of the dataset the config named, else the file's own")  # fmt: skip
    parser.add_argument("--session-minutes", type=float, default=0.0,
                        help="stop after this many training minutes, schedule unchanged; continue "
                        "later with --resume (a campaign of bursts)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def apply_overrides(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """``config`` with every :data:`OVERRIDES` flag given in ``args`` (not None) applied.

    Raises
    ------
    ConfigError
        An override gives a bad value (``--batch-size 0``); the message names the flag.
    """
    given = [(o, getattr(args, o.dest)) for o in OVERRIDES if getattr(args, o.dest) is not None]
    train = {o.key: value for o, value in given if o.section == "train"}
    options = {o.key: value for o, value in given if o.section == "data.options"}
    try:
        return replace(
            config,
            train=replace(config.train, **train),
            data=replace(config.data, options={**config.data.options, **options}),
        )
    except ConfigError as err:
        flags = " ".join(f"{o.flag} {value!r}" for o, value in given)
        raise ConfigError(f"command line ({flags}): {err}") from None


DATA_FLAGS = ("data", "split", "layout", "key", "domain")
"""Command-line flags that set ``[data]`` fields (``--data`` sets ``file``, ``--domain``
``reader.domain``)."""


def apply_data_flags(config: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """``config`` with ``--data``, ``--split``, ``--layout``, ``--key`` and ``--domain`` applied.

    ``--data PATH`` over a config that names a registered dataset replaces the dataset by the
    file: the option tables keep only the window options (``stride``, ``n_samples``; the others
    are said and dropped), the file takes the dataset's domain (``--domain`` says another),
    ``train.stream`` is turned off (it renders Moving MNIST), and the checkpoint is named after the file (so is it when its name came from the config's own
    file).

    Raises
    ------
    ConfigError
        A bad value, or ``--split``/``--layout``/``--key`` without a file; the message names the
        flag.
    """
    given = {f: getattr(args, f, None) for f in DATA_FLAGS if getattr(args, f, None) is not None}
    if not given:
        return config
    data, name = config.data, config.name
    changes = {("file" if f == "data" else f): v for f, v in given.items() if f != "domain"}
    reader = dict(data.reader)
    if "data" in given and data.dataset:
        tables = {t: getattr(data, t) for t in OPTION_LAYERS}
        dropped = sorted({k for table in tables.values() for k in table} - set(FILE_WINDOW_OPTIONS))
        if dropped:
            print(f"note: --data: options {', '.join(dropped)} of dataset {data.dataset!r} do not "
                  "apply to a file; dropped", file=sys.stderr)  # fmt: skip
        changes.update(dataset="", **{t: {k: v for k, v in table.items()
                                          if k in FILE_WINDOW_OPTIONS}
                                      for t, table in tables.items()})  # fmt: skip
        name = default_name({"file": given["data"]})
        if dataset_domain(data.dataset):
            reader["domain"] = dataset_domain(data.dataset)
    elif "data" in given and name == default_name({"file": data.file}):
        name = default_name({"file": given["data"]})  # the name came from the replaced file
    if "domain" in given:
        reader["domain"] = given["domain"]
    if reader != data.reader:
        changes["reader"] = reader
    settings = config.train
    if "data" in given and settings.stream:
        print("note: --data: train.stream turned off (it renders Moving MNIST, not a file)",
              file=sys.stderr)  # fmt: skip
        settings = replace(settings, stream=False)
    try:
        return replace(config, name=name, data=replace(data, **changes), train=settings)
    except ConfigError as err:
        flags = " ".join(f"--{f} {v!r}" for f, v in given.items())
        raise ConfigError(f"command line ({flags}): {err}") from None


def dataset_domain(name: str) -> str | None:
    """The domain of registered dataset ``name`` (None when it is not registered)."""
    from datasets import dataset_info

    try:
        return dataset_info(name)["domain"]
    except ValueError:
        return None


@one_line_errors(*ERRORS)
def main(argv: list[str] | None = None) -> TrainResult:
    """``python -m model.train CONFIG [options]`` (also under torchrun).

    The project's errors (:data:`model.cli.ERRORS`) end it with one line on stderr and exit
    status 2.
    """
    runtime.tune_cpu_allocator()  # the engine no longer does it: fast CPU rollouts in training
    args = build_parser().parse_args(argv)
    config = apply_data_flags(apply_overrides(TrainConfig.load(args.config), args), args)
    launcher = "torchrun" if "WORLD_SIZE" in os.environ else sys.executable
    command = " ".join(
        [Path(launcher).name, "-m", "model.train", *map(shlex.quote, argv or sys.argv[1:])]
    )
    return train(
        config,
        out_dir=args.out,
        run_dir=args.run_dir,
        resume=args.resume,
        seed=args.seed,
        device=args.device,
        steps=args.steps,
        progress=not args.no_progress,
        command=command,
        session_minutes=args.session_minutes,
    )


if __name__ == "__main__":
    main()

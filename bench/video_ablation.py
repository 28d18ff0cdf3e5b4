"""What helps the Moving MNIST checkpoint: short runs from the same weights, scored alike.

Usage::

    python -m bench.video_ablation [--steps 150] [--batch-size 16] [--variants mse l1l2 ...]
                                   [--threads 1] [--out runs/video_ablation] [--rescore]

Every variant is one :func:`model.train.train` run of the campaign's config
(``configs/video_moving_mnist.toml``: streamed sequences, bfloat16 autocast where the CPU has it)
for the same number of steps, from the same starting weights (``--init``, default the shipped
checkpoint), with the same seed (so the same stream of training sequences) unless the variant
says otherwise, a short warm-up (a tenth of the steps) and the config's cosine decay. What differs
is one training option (:data:`VARIANTS`). Each run's final raw weights, the baseline run's EMA of
the weights (row ``mse+ema``, decay :data:`EMA`: same trajectory, so no extra run) and the
starting weights are then scored on the same validation sequences (the config's ``val`` split,
digits held apart from training): MSE and MAE per frame, SSIM (means over the 10 leads), lead-1
SSIM against persistence's; the table gives each variant's ratio to the baseline ``mse``, the
paired standard error of its per-sequence MSE difference to ``mse``, and the median gradient norm
before clipping. ``mse_seed1`` is the baseline on another seed (other training sequences): the
spread of two identical recipes, the noise any other difference must beat.

The results go to ``OUT/results.json``; the wall time and the CPU time of the whole run (this
process and its threads, :func:`os.times`) are printed at the end. ``--rescore`` trains nothing
and scores the runs an earlier, perhaps cut-short, call left in ``OUT`` (``OUT/rescored.json``).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from datasets.cli import fail
from model.baselines import persistence
from model.checkpoint import load_checkpoint
from model.cli import ERRORS, Parser, one_line_errors
from model.metrics import per_lead
from model.rollout import forecast_windows
from model.runtime import tune_cpu_allocator
from model.train import REPO_ROOT, train
from model.train_config import TrainConfig
from model.windows import load_windows

CONFIG = "configs/video_moving_mnist.toml"
BASELINE = "mse"
EMA = 0.98
"""EMA decay of the baseline run: the average (row ``mse+ema``) comes from the same trajectory as the
raw weights (row ``mse``), since the average does not feed back into training."""


@dataclass(frozen=True)
class Variant:
    """One training recipe: ``changes`` to the config's ``[train]`` and the run's ``seed``."""

    name: str
    note: str
    changes: dict = field(default_factory=dict)
    seed: int = 0


VARIANTS = {
    v.name: v
    for v in (
        Variant("mse", "baseline: the campaign's recipe (MSE, grad_clip 1)", {"ema_decay": EMA}),
        Variant("mse_seed1", "baseline on seed 1 (other training sequences): the noise", seed=1),
        Variant("l1l2", "loss MSE + MAE", {"loss": "l1l2"}),
        Variant(
            "clip_0.1",
            "gradient clipped at norm 0.1 (the campaign's 1 is rarely reached)",
            {"grad_clip": 0.1},
        ),
        Variant(
            "sched_sampling",
            "scheduled sampling, P(true frame) 0.5 -> 0",
            {"scheduled_sampling": 0.5},
        ),  # fmt: skip
    )
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def score(net, frames: np.ndarray, context: int) -> dict:
    """Scores of ``net``'s free-running forecasts of ``frames`` ``[S, T, 1, H, W]`` in [0, 1].

    Returns
    -------
    dict
        ``MSE``, ``MAE`` (per frame, summed over its pixels), ``SSIM`` (means over the leads),
        ``SSIM_lead1``, and ``seq_MSE`` (``[S]`` per-sequence MSE per frame, for paired errors).
    """
    truth = frames[:, context:]  # [S, horizon, 1, H, W]
    pred = forecast_windows(net, frames[:, :context], truth.shape[1], batch_size=64)  # same shape
    table = per_lead(pred, truth, domain="video")
    return {
        "MSE": float(table["MSE"].mean()),
        "MAE": float(table["MAE"].mean()),
        "SSIM": float(table["SSIM"].mean()),
        "SSIM_lead1": float(table["SSIM"].iloc[0]),
        "seq_MSE": ((pred - truth) ** 2).sum(axis=(2, 3, 4)).mean(axis=1),  # [S]
    }


def persistence_lead1_ssim(frames: np.ndarray, context: int) -> float:
    """Lead-1 SSIM of repeating the last observed frame (:func:`model.baselines.persistence`)."""
    last = persistence(frames[:, :context], horizon=1)  # [S, 1, 1, H, W]
    return float(per_lead(last, frames[:, context : context + 1], domain="video")["SSIM"].iloc[0])


def median_grad_norm(log_csv: Path) -> float | None:
    """Median of the ``grad_norm`` column of a run's ``log.csv`` (None when it has none)."""
    with open(log_csv) as f:
        norms = [float(r["grad_norm"]) for r in csv.DictReader(f) if r.get("grad_norm")]
    return statistics.median(norms) if norms else None


def run_variant(config: TrainConfig, variant: Variant, *, steps: int, out: Path) -> Path:
    """Train ``variant`` for ``steps`` steps; returns its checkpoint folder (validated at the end)."""
    settings = replace(config.train, steps=steps, val_every=steps, max_minutes=0.0,
                       warmup=max(1, steps // 10), **variant.changes)  # fmt: skip
    flags = " ".join(f"{k}={v}" for k, v in variant.changes.items())
    train(replace(config, train=settings), out_dir=out / variant.name / "best",
          run_dir=out / variant.name / "run", seed=variant.seed, device="cpu", progress=False,
          command=f"bench.video_ablation {variant.name} ({flags or 'baseline'})")  # fmt: skip
    return out / variant.name / "best"


def paired_error(seq: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the per-sequence difference ``seq - base`` (``[S]`` each)."""
    diff = seq - base
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))


def table_lines(rows: list[dict], persistence_ssim1: float) -> list[str]:
    """The results as a Markdown table, ratios to the :data:`BASELINE` row."""
    base = next(r for r in rows if r["variant"] == BASELINE)
    lines = ["| variant | steps | train s | MSE | MAE | SSIM | lead-1 SSIM | MSE / mse | "
             "MAE / mse | SSIM / mse | MSE - mse (paired s.e.) | median grad norm |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        diff, se = paired_error(r["seq_MSE"], base["seq_MSE"])
        norm = "" if r["grad_norm"] is None else f"{r['grad_norm']:.3g}"
        lines.append(
            f"| {r['variant']} | {r['steps']} | {r['train_s']:.0f} | {r['MSE']:.1f} | "
            f"{r['MAE']:.1f} | {r['SSIM']:.3f} | {r['SSIM_lead1']:.3f} | "
            f"{r['MSE'] / base['MSE']:.3f} | {r['MAE'] / base['MAE']:.3f} | "
            f"{r['SSIM'] / base['SSIM']:.3f} | {diff:+.2f} ({se:.2f}) | {norm} |"
        )
    lines.append(f"| persistence | | | | | | {persistence_ssim1:.3f} | | | | | |")
    return lines


def ablation(config: TrainConfig, names: list[str], *, steps: int, init: str, out: Path,
             frames: np.ndarray, facts: dict, rescore: bool = False) -> list[dict]:  # fmt: skip
    """Score the starting weights, then train and score every variant in ``names``; after each,
    ``OUT/results.json`` holds ``facts`` and the rows so far (a cut-short run keeps them).

    ``rescore``: train nothing; score the runs an earlier call left in ``out`` (variants without
    one are skipped), with the steps of their logs and the training seconds of the earlier
    ``results.json``."""
    context = config.data.context
    start, _ = load_checkpoint(REPO_ROOT / init, device="cpu")
    rows = [dict(score(start, frames, context), variant="start", steps=0, train_s=0.0,
                 grad_norm=None, note="the starting weights, untrained")]  # fmt: skip
    config = replace(config, train=replace(config.train, init_from=init))
    earlier = earlier_train_seconds(out) if rescore else {}
    for name in names:
        variant = VARIANTS[name]
        t0 = time.perf_counter()
        if rescore:
            folder = out / name / "best"
            if not (folder / "model.safetensors").is_file():
                print(f"{name}: no run in {out}; skipped", flush=True)
                continue
            steps, train_s = logged_steps(out / name / "run" / "log.csv"), earlier.get(name, 0.0)
        else:
            folder = run_variant(config, variant, steps=steps, out=out)
            train_s = time.perf_counter() - t0
        scored = [(name, folder.parent / "run" / "last", variant.note)]  # the raw weights
        if variant.changes.get("ema_decay"):
            scored.append((f"{name}+ema", folder, f"EMA of the weights of {name}, decay "
                           f"{variant.changes['ema_decay']}"))  # fmt: skip
        for label, weights, note in scored:
            net, _ = load_checkpoint(weights, device="cpu")
            row = dict(score(net, frames, context), variant=label, steps=steps, train_s=train_s,
                       grad_norm=median_grad_norm(out / name / "run" / "log.csv"), note=note)  # fmt: skip
            rows.append(row)
            write_results(out, dict(facts, rows=rows), rescore=rescore)
            print(f"{label}: MSE {row['MSE']:.1f}, MAE {row['MAE']:.1f}, SSIM {row['SSIM']:.3f}, "
                  f"lead-1 SSIM {row['SSIM_lead1']:.3f} ({train_s:.0f} s)", flush=True)  # fmt: skip
    return rows


def earlier_train_seconds(out: Path) -> dict[str, float]:
    """Training seconds per variant in ``OUT/results.json`` (empty when there is none)."""
    path = out / "results.json"
    if not path.is_file():
        return {}
    return {r["variant"]: float(r["train_s"]) for r in json.loads(path.read_text())["rows"]}


def logged_steps(log_csv: Path) -> int:
    """The last step in a run's ``log.csv``."""
    with open(log_csv) as f:
        return max(int(r["step"]) for r in csv.DictReader(f))


def write_results(out: Path, facts: dict, *, rescore: bool = False) -> None:
    """``OUT/results.json`` (``OUT/rescored.json`` for ``--rescore``, which keeps the first):
    ``facts`` with the rows (per-sequence MSEs left out)."""
    rows = [{k: v for k, v in r.items() if k != "seq_MSE"} for r in facts["rows"]]
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("rescored.json" if rescore else "results.json")
    path.write_text(json.dumps(dict(facts, rows=rows), indent=1))


@one_line_errors(*ERRORS)
def main(argv: list[str] | None = None) -> list[dict]:
    parser = Parser(prog="python -m bench.video_ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per variant")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step (16)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help=f"which recipes (default all; {BASELINE} always runs first)")  # fmt: skip
    parser.add_argument("--init", default="checkpoints/video_moving_mnist",
                        help="starting weights of every variant (a checkpoint folder)")  # fmt: skip
    parser.add_argument("--config", default=CONFIG, help=f"training config (default {CONFIG})")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", default="runs/video_ablation", help="runs and results.json")
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: score the runs an earlier call left in --out")  # fmt: skip
    args = parser.parse_args(argv)
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):  # fmt: skip
        if value < 1:
            fail(f"{flag} {value}: give at least 1")
    if not (REPO_ROOT / args.init / "model.safetensors").is_file():
        fail(f"--init {args.init}: no checkpoint there (model.safetensors)")
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    config = TrainConfig.load(REPO_ROOT / args.config)
    config = replace(config, train=replace(config.train, batch_size=args.batch_size))
    val = load_windows(config.data, "val")
    frames = np.asarray(val.values, dtype=np.float32)  # [S, T, 1, H, W] in [0, 1]
    names = [BASELINE, *[n for n in args.variants if n != BASELINE]]
    out = Path(args.out)
    pers = persistence_lead1_ssim(frames, config.data.context)
    facts = {"steps": args.steps, "batch_size": args.batch_size, "init": args.init,
             "threads": args.threads, "val_sequences": int(frames.shape[0]),
             "persistence_SSIM_lead1": pers}  # fmt: skip
    rows = ablation(config, names, steps=args.steps, init=args.init, out=out, frames=frames,
                    facts=facts, rescore=args.rescore)  # fmt: skip
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    what = "rescored runs" if args.rescore else f"variants x {args.steps} steps"
    print(f"\n{len(rows) - 1} {what} at batch {args.batch_size}, from "
          f"{args.init}; scored on {frames.shape[0]} validation sequences; {args.threads} "
          f"thread(s), torch {torch.__version__}")  # fmt: skip
    print("\n".join(table_lines(rows, pers)))
    print(f"\nwall time {wall:.0f} s, CPU time {cpu:.0f} s")
    write_results(out, dict(facts, rows=rows, wall_s=wall, cpu_s=cpu), rescore=args.rescore)
    return rows


if __name__ == "__main__":
    main()

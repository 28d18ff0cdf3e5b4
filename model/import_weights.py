"""Import a ConvLSTM trained by another project as a checkpoint of this one.

::

    python -m model.import_weights {openstl,ndrplz,keras} FILE --out checkpoints/NAME
        [--frame-size H W] [--patch-size P] [--domain D] [--dataset NAME] [--time-step STEP]
        [--units TEXT] [--scale S] [--offset O] [--context N] [--horizon N]
        [--description TEXT] [--force]

writes ``checkpoints/NAME/`` like a trained checkpoint (``model.safetensors`` and ``meta.json``
by :func:`model.checkpoint.save_checkpoint`, the model card ``README.md``), which the engine and
the dashboard then run like their own.

========  ===============================================  ==============================
source    file                                             becomes
========  ===============================================  ==============================
openstl   OpenSTL ``ConvLSTM_Model`` state dict (``.pth``)  a forecaster (top-layer head)
ndrplz    ndrplz/ConvLSTM_pytorch ``ConvLSTM`` state dict  inspect mode (it has no head)
keras     Keras ``.keras`` or legacy ``.h5`` of ConvLSTM2D  a forecaster with a 1x1 head,
                                                           else inspect mode
========  ===============================================  ==============================

Each reader (:mod:`model.importers`) maps the source's gate order onto
:data:`model.convlstm.CONV_GATES` with :func:`model.convlstm.reorder_gates`, and the source's
architecture onto :class:`model.convlstm.ConvLSTMConfig` options (``layer_norm``, ``readout``,
``readout_bias``, ``peephole=False``); what it cannot express is refused, naming the layer and the
setting. Nothing in a file is executed: PyTorch files are read with ``torch.load(weights_only=
True)`` (a pickle that would run code is refused), Keras files with ``zipfile``, ``json`` and
``h5py`` after :func:`datasets.untrusted.check_zip` and :func:`datasets.untrusted.check_hdf5`.

An **inspect-mode** checkpoint (``config.readout == "none"``, see
:func:`model.checkpoint.has_forecast_head`) forecasts nothing: the dashboard runs it over the
context frames with gate capture (:func:`model.rollout.inspect_gates`) and shows the gates only.

The metadata records the source project, the file's name, size and sha256 (``imported_from``),
never its folder. Errors end the command with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from datasets.guards import sha256_of
from datasets.vocabulary import DOMAINS
from model.checkpoint import (
    META_FILE,
    CheckpointError,
    has_forecast_head,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from model.importers import keras, ndrplz, openstl
from model.importers.common import Imported
from model.normalize import Normalizer
from model.provenance import git_revision, portable_path

IMPORTERS: dict[str, Callable[..., Imported]] = {
    "openstl": openstl.read,
    "ndrplz": ndrplz.read,
    "keras": keras.read,
}
"""Source name -> reader ``read(path, *, frame_size=None, patch_size=None) -> Imported``."""
PROJECTS = {"openstl": openstl.PROJECT, "ndrplz": ndrplz.PROJECT, "keras": keras.PROJECT}
"""Source name -> the project and class the weights come from, in words."""


def read_weights(
    source: str,
    path: str | Path,
    *,
    frame_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
) -> Imported:
    """Read another project's weights into a network of this engine (nothing is written).

    Parameters
    ----------
    source : {"openstl", "ndrplz", "keras"}
        Which project wrote ``path`` (see the module docstring).
    path : path
        The file.
    frame_size : (int, int), optional
        ``(H, W)`` of the frames, when the file does not record it.
    patch_size : int, optional
        OpenSTL's ``patch_size`` (required there; None or 1 elsewhere).

    Returns
    -------
    Imported
        The network (eval mode), the source's gate order, and notes on what was mapped.

    Raises
    ------
    CheckpointError
        The file is missing, unsafe, of another kind, or describes what the engine cannot run.
    ValueError
        ``source`` is unknown.
    """
    reader = IMPORTERS.get(str(source).lower())
    if reader is None:
        raise ValueError(f"source {source!r} is unknown; use one of {sorted(IMPORTERS)}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name}: no such file", path=path)
    return reader(path, frame_size=frame_size, patch_size=patch_size)


def import_metadata(imported: Imported, path: str | Path, *, facts: dict | None = None) -> dict:
    """``meta.json`` entries of an import (``save_checkpoint`` adds config, gate order, hash).

    Parameters
    ----------
    imported : Imported
        What :func:`read_weights` returned.
    path : path
        The imported file: its name, size and sha256 are recorded, never its folder.
    facts : dict, optional
        What the user states: ``name``, ``description``, ``domain``, ``dataset``, ``time_step``,
        ``normalization`` (a :class:`~model.normalize.Normalizer` dict), ``context``,
        ``horizon``, ``command``; None values are left out.
    """
    path = Path(path)
    config = imported.model.config
    facts = {k: v for k, v in (facts or {}).items() if v is not None}
    mode = "forecast" if config.has_head else "inspect"
    meta = {
        "description": f"{PROJECTS[imported.source]} imported from {path.name} ({mode} mode).",
        "normalization": Normalizer().to_metadata(),
        "imported_from": {
            "source": imported.source,
            "project": PROJECTS[imported.source],
            "file": path.name,
            "bytes": path.stat().st_size,
            "sha256": sha256_of(path),
            "gate_order": list(imported.gate_order),
            "mode": mode,
        },
        "notes": list(imported.notes),
        "git_revision": git_revision(),
    }
    meta.update(facts)
    if "units" not in meta and meta["normalization"].get("units"):
        meta["units"] = meta["normalization"]["units"]
    return meta


def model_card(meta: dict) -> str:
    """The ``README.md`` of an imported checkpoint (``meta`` as :func:`read_metadata` returns)."""
    src = meta.get("imported_from", {})
    inspect = src.get("mode") == "inspect"
    config = meta.get("config", {})
    lines = [
        f"# {meta.get('name', 'imported ConvLSTM')}",
        "",
        str(meta.get("description", "")),
        "",
        "## Source",
        f"- project: {src.get('project')}",
        f"- file: `{src.get('file')}` ({src.get('bytes', 0):,} bytes, sha256 "
        f"`{src.get('sha256')}`); where it was read from is not recorded",
        f"- gate order in the file: {', '.join(src.get('gate_order', []))}; mapped onto "
        f"{', '.join(meta.get('gate_order', []))} (model.convlstm.reorder_gates)",
        f"- command: `{meta.get('command', '')}` at git revision {meta.get('git_revision')}",
        "",
        "## Mode",
        "Inspect mode: no forecasting head. The dashboard runs it over the context frames you "
        "choose and shows its gates; nothing is forecast or scored."
        if inspect
        else "Forecast: reads the context frames, then feeds each predicted frame back, as the "
        "checkpoints trained here.",
        "",
        "## Model",
        f"- parameters: {meta.get('parameters', 0):,}",
        f"- architecture: `{json.dumps(config, sort_keys=True)}`",
        f"- normalisation: `{json.dumps(meta.get('normalization', {}), sort_keys=True)}`",
        f"- stated data: domain {meta.get('domain') or 'not stated'}, dataset "
        f"{meta.get('dataset') or 'not stated'}, time step {meta.get('time_step') or 'not stated'}"
        f"; offered for data with {config.get('in_channels')} channel(s) on a "
        f"{'x'.join(map(str, config.get('frame_size', [])))} grid",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in meta.get("notes", [])],
        "",
        "## Scores",
        "",
        "None: imported weights bring no scores of this project." + _scoring_hint(meta),
        "",
    ]
    return "\n".join(lines)


def _scoring_hint(meta: dict) -> str:
    """How to score a forecasting import (evaluation reads ``context`` and ``horizon``)."""
    if not has_forecast_head(meta):
        return ""
    command = (
        f" Score it with `python -m model.evaluate checkpoints/{meta.get('name', 'NAME')} "
        f"--dataset {meta.get('dataset') or 'DATASET'}`"
    )
    if meta.get("context") and meta.get("horizon"):
        return command + "."
    return command + " once imported with --context and --horizon, which evaluation reads."


def import_checkpoint(
    source: str,
    path: str | Path,
    out: str | Path,
    *,
    frame_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
    facts: dict | None = None,
    force: bool = False,
) -> Path:
    """Read ``path`` and write the checkpoint folder ``out`` (weights, metadata, model card).

    Parameters
    ----------
    source, path, frame_size, patch_size
        As :func:`read_weights`.
    out : path
        The checkpoint folder (``checkpoints/NAME``); its name becomes the checkpoint's.
    facts : dict, optional
        As :func:`import_metadata`.
    force : bool
        Replace a checkpoint already in ``out``.

    Returns
    -------
    Path
        ``out``, which :func:`model.checkpoint.load_checkpoint` has loaded back.
    """
    out = Path(out)
    if (out / META_FILE).exists() and not force:
        raise CheckpointError(
            f"{portable_path(out)} already holds a checkpoint; choose another --out or pass "
            "--force to replace it",
            path=out,
        )
    imported = read_weights(source, path, frame_size=frame_size, patch_size=patch_size)
    meta = import_metadata(imported, path, facts={"name": out.name, **(facts or {})})
    save_checkpoint(out, imported.model, metadata=meta)
    (out / "README.md").write_text(model_card(read_metadata(out)))
    load_checkpoint(out, device="cpu")  # what the dashboard will do: it must pass
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.import_weights",
        description="Import a ConvLSTM trained by OpenSTL, ndrplz/ConvLSTM_pytorch or Keras as a "
        "checkpoint folder (model.safetensors, meta.json, README.md).",
    )
    parser.add_argument("source", choices=sorted(IMPORTERS), help="the project that wrote FILE")
    parser.add_argument("file", help="the weights: .pth state dict (openstl, ndrplz), "
                        ".keras or .h5 (keras)")  # fmt: skip
    parser.add_argument("--out", required=True, help="checkpoint folder, e.g. checkpoints/NAME")
    parser.add_argument("--frame-size", nargs=2, type=int, metavar=("H", "W"),
                        help="frame size in pixels, when the file does not record it")  # fmt: skip
    parser.add_argument("--patch-size", type=int, metavar="P",
                        help="OpenSTL's patch_size (required for openstl)")  # fmt: skip
    parser.add_argument("--domain", choices=list(DOMAINS), help="what the frames show")
    parser.add_argument("--dataset", help="registered dataset it was trained on, if any")
    parser.add_argument("--time-step", help="time between frames, ISO 8601 (PT5M) or '1 frame'")
    parser.add_argument("--units", help="physical units of the frames, shown to users")
    parser.add_argument("--scale", type=float,
                        help="the source's input scaling: model input = (x - offset) / scale")  # fmt: skip
    parser.add_argument("--offset", type=float, help="see --scale (default 0)")
    parser.add_argument("--context", type=int, help="context frames it was trained with")
    parser.add_argument("--horizon", type=int, help="frames it was trained to forecast")
    parser.add_argument("--description", help="one sentence for the model card")
    parser.add_argument("--force", action="store_true", help="replace a checkpoint in --out")
    return parser


def _facts(args: argparse.Namespace) -> dict:
    """The user's statements about the data, as metadata."""
    if args.scale is not None or args.offset is not None:
        norm = Normalizer("scale", args.units or "", scale=args.scale or 1.0,
                          offset=args.offset or 0.0)  # fmt: skip
    else:
        norm = Normalizer("unit", args.units or "")
    return {
        "description": args.description,
        "domain": args.domain,
        "dataset": args.dataset,
        "time_step": args.time_step,
        "units": args.units,
        "normalization": norm.to_metadata(),
        "context": args.context,
        "horizon": args.horizon,
        "command": _command(args),
    }


def _command(args: argparse.Namespace) -> str:
    """The command line, with the file's name in place of its path."""
    words = ["python", "-m", "model.import_weights", args.source, Path(args.file).name,
             "--out", portable_path(args.out)]  # fmt: skip
    if args.frame_size:
        words += ["--frame-size", *map(str, args.frame_size)]
    for flag in ("patch_size", "domain", "dataset", "time_step", "units", "scale", "offset",
                 "context", "horizon"):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            words += [f"--{flag.replace('_', '-')}", str(value)]
    return " ".join(shlex.quote(w) for w in words)


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    try:
        out = import_checkpoint(
            args.source,
            args.file,
            args.out,
            frame_size=tuple(args.frame_size) if args.frame_size else None,
            patch_size=args.patch_size,
            facts=_facts(args),
            force=args.force,
        )
    except (CheckpointError, ValueError, OSError) as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a hostile file may break a library: one line, no traceback
        _fail(f"{Path(args.file).name} could not be imported ({type(exc).__name__}: {exc})")
    meta = read_metadata(out)
    mode = meta["imported_from"]["mode"]
    print(f"wrote {portable_path(out)} ({mode} mode, {meta['parameters']:,} parameters); "
          f"see its README.md")  # fmt: skip
    return out


def _fail(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    main()

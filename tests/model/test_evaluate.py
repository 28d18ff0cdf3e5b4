"""model.evaluate: per-lead tables for a checkpoint and the baselines, CSV/PNG, model card."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import evaluate as ev
from model.checkpoint import load_checkpoint
from model.metrics import per_lead
from model.train import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_helpers import tiny_config, tiny_loader


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One tiny trained checkpoint per domain."""
    root = tmp_path_factory.mktemp("ckpts")
    for name in ("tiny_video", "tiny_radar", "tiny_traffic"):
        train(tiny_config(name, steps=2, val_every=2), out_dir=root / name, run_dir=root / f"run_{name}",
              loader=tiny_loader, device="cpu", progress=False)  # fmt: skip
    return root


@pytest.mark.parametrize(
    ("name", "methods", "metrics"),
    [
        ("tiny_video", ["convlstm", "persistence", "all_black"], ["MSE", "MAE", "SSIM", "PSNR"]),
        ("tiny_radar", ["convlstm", "persistence", "extrapolation"], ["MSE", "CSI@1", "FAR@5"]),
        ("tiny_traffic", ["convlstm", "persistence", "historical_mean"], ["RMSE", "MAE"]),
    ],
)
def test_evaluate_scores_model_and_domain_baselines(checkpoints, name, methods, metrics):
    table, facts = ev.evaluate(checkpoints / name, device="cpu", loader=tiny_loader)
    assert list(table.method.unique()) == methods
    assert set(metrics) <= set(table.columns)
    assert table.groupby("method").size().tolist() == [3] * len(methods)  # horizon 3
    assert facts["samples"] == 8 and facts["split"] == "test"
    # The persistence rows equal per_lead on the last context frame repeated (computed here).
    data = tiny_loader(name, split="test")
    truth = data.values[:, 3:6]
    pers = np.repeat(data.values[:, 2:3], 3, axis=1)
    expected = per_lead(pers, truth, domain=facts["domain"])
    got = table[table.method == "persistence"].set_index("lead_step")[expected.columns]
    pd.testing.assert_frame_equal(got, expected, check_names=False)


def test_model_forecast_matches_checkpoint_rollout(checkpoints):
    from model.normalize import Normalizer
    from model.rollout import rollout

    model, meta = load_checkpoint(checkpoints / "tiny_radar", device="cpu")
    data = tiny_loader("tiny_radar", split="test", n_samples=2)
    normalizer = Normalizer.from_metadata(meta["normalization"])
    for precision in ("fp32", "auto"):  # "auto": the one policy, the same in both
        fc = ev.forecast(model, meta, data.isel(time=slice(0, 3)), horizon=3, precision=precision)
        single = rollout(model, data.isel(sample=1, time=slice(0, 3)), 3, normalizer=normalizer,
                         precision=precision)  # fmt: skip
        ref = single.prediction.values
        got = fc.isel(sample=1).values
        valid = np.isfinite(got)
        assert not valid[..., -1].any()  # the invalid column stays invalid
        np.testing.assert_allclose(got[valid], ref[valid], rtol=1e-5, atol=1e-6)


def test_scores_record_the_precision_of_the_dashboard(checkpoints):
    import torch

    from model.rollout import resolve_precision

    _, facts = ev.evaluate(checkpoints / "tiny_video", device="cpu", loader=tiny_loader,
                           with_baselines=False)  # fmt: skip
    assert facts["precision"] == resolve_precision("auto", torch.device("cpu"))
    _, facts = ev.evaluate(checkpoints / "tiny_video", device="cpu", loader=tiny_loader,
                           with_baselines=False, precision="fp32")  # fmt: skip
    assert facts["precision"] == "fp32"


def test_cli_writes_csv_png_and_model_card(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "load_windows", _tiny_windows)
    out = tmp_path / "eval"
    table = ev.main([str(checkpoints / "tiny_traffic"), "--out", str(out), "--device", "cpu",
                     "--update-checkpoint"])  # fmt: skip
    csv_table = pd.read_csv(out / "evaluation.csv")
    assert list(csv_table.columns[:3]) == ["method", "lead_step", "lead_time"]
    assert len(csv_table) == len(table) == 9
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, meta = load_checkpoint(checkpoints / "tiny_traffic", device="cpu")
    test = meta["metrics"]["test"]
    assert len(test["per_lead"]) == 9
    assert set(test["skill"]) == {
        "beats persistence on RMSE at every lead",
        "beats historical_mean on RMSE at every lead",
    }
    card = (checkpoints / "tiny_traffic" / "README.md").read_text()
    assert "## Evaluation on the test split" in card and "historical_mean" in card
    assert "parameters: 1,976" in card
    assert json.loads((out / "evaluation.json").read_text())["domain"] == "traffic"


def test_skill_checks_compare_every_lead():
    table = pd.DataFrame(
        {
            "method": ["convlstm"] * 2 + ["persistence"] * 2,
            "lead_step": [1, 2, 1, 2],
            "MSE": [1.0, 3.0, 2.0, 2.5],
        }  # fmt: skip
    )
    assert ev.skill_checks(table, "video") == {"beats persistence on MSE at every lead": False}
    table.loc[1, "MSE"] = 2.4
    assert ev.skill_checks(table, "video") == {"beats persistence on MSE at every lead": True}


def test_radar_skill_checks_add_csi_and_fss_where_higher_is_better():
    table = pd.DataFrame(
        {
            "method": ["convlstm"] * 2 + ["extrapolation"] * 2,
            "lead_step": [1, 2, 1, 2],
            "MSE": [1.0, 1.0, 2.0, 2.0],  # lower is better: the model wins
            "CSI@1": [0.5, 0.4, 0.6, 0.3],  # higher is better: it loses at lead 1
            "FSS@1": [0.9, 0.8, 0.7, 0.6],
        }
    )
    assert ev.skill_checks(table, "radar") == {
        "beats extrapolation on MSE at every lead": True,
        "beats extrapolation on CSI@1 at every lead": False,
        "beats extrapolation on FSS@1 at every lead": True,
    }


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ev.main([str(tmp_path / "nope")])
    assert "not a checkpoint folder" in capsys.readouterr().err


_real_windows = ev.load_windows


def _tiny_windows(data, split, **kwargs):
    return _real_windows(data, split, **{**kwargs, "loader": tiny_loader})


def test_checkpoint_windows_use_its_stored_options_for_its_own_dataset_only():
    from model.windows import data_config, load_windows

    meta = {"dataset": "d", "context": 2, "horizon": 1,
            "dataset_options": {"options": {"a": 1}, "train": {}, "val": {},
                                "test": {"n_samples": 3}}}  # fmt: skip
    seen = []

    def loader(name, *, split, **options):
        seen.append((name, split, options))
        return tiny_loader("tiny_video", split=split, **options)

    data = load_windows(data_config(meta), "test", overrides={"root": "x"}, loader=loader)
    assert seen[-1] == ("d", "test", {"a": 1, "n_samples": 3, "root": "x"})
    assert (data.sizes["sample"], data.sizes["time"]) == (3, 3)  # cut to context + horizon
    load_windows(data_config(meta, dataset="other"), "test", loader=loader)
    assert seen[-1] == ("other", "test", {})
    with pytest.raises(ValueError, match=r"'d' \(test\) has 6 frames .* context \+ horizon = 7"):
        load_windows(data_config(dict(meta, horizon=5)), "test", loader=loader)


def _folder_loader(name, *, split, root=None, **options):
    """tiny_loader that needs its folder: ``root=`` holding ``frames.txt``, else not found."""
    from datasets import DataNotFound

    if root is None or not (Path(root) / "frames.txt").is_file():
        raise DataNotFound(f"Dataset not found: nothing under root={root}")
    return tiny_loader(name, split=split, **options)


def test_checkpoint_stores_no_data_location_and_evaluates_after_a_move(tmp_path, monkeypatch):
    import shutil

    from model.windows import data_config

    data_dir = tmp_path / "my_private_data_folder_7q"
    data_dir.mkdir()
    (data_dir / "frames.txt").write_text("tiny")
    cfg = tiny_config("tiny_traffic", steps=2, val_every=2)
    cfg["data"]["options"] = {"root": str(data_dir)}
    cfg["data"]["test"] = {"root": "../relative/my_private_data_folder_7q"}
    train(cfg, out_dir=tmp_path / "ckpt", run_dir=tmp_path / "run", loader=_folder_loader,
          device="cpu", progress=False,
          command=f"python -m model.train c.toml --data-root {data_dir}")  # fmt: skip
    text = (tmp_path / "ckpt" / "meta.json").read_text()
    assert data_dir.name not in text and str(tmp_path) not in text
    meta = json.loads(text)
    assert meta["data_source"] == "local folder"
    assert "root" not in meta["dataset_options"]["options"]
    assert "root" not in meta["training"]["config"]["data"]["options"]
    assert meta["command"] == "python -m model.train c.toml --data-root DIR"

    moved = tmp_path / "elsewhere" / "ckpt"  # the repository moved to another machine
    shutil.copytree(tmp_path / "ckpt", moved)
    windows = ev.load_windows
    monkeypatch.setattr(ev, "load_windows", lambda data, split, **kw: windows(
        data, split, **{**kw, "loader": _folder_loader}))  # fmt: skip
    table = ev.main([str(moved), "--data-root", str(data_dir), "--device", "cpu",
                     "--out", str(tmp_path / "eval")])  # fmt: skip
    assert set(table.method) == {"convlstm", "persistence", "historical_mean"}

    # an old checkpoint's stored root is ignored: the data is looked up in the cache instead
    old = dict(meta, dataset_options={"options": {"root": "../shared/data", "n": 1}})
    assert data_config(old).options == {"n": 1}


def test_missing_data_is_one_line_on_how_to_get_it(checkpoints, tmp_path, monkeypatch, capsys):
    windows = ev.load_windows
    monkeypatch.setattr(ev, "load_windows", lambda data, split, **kw: windows(
        data, split, **{**kw, "loader": _folder_loader}))  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        ev.main([str(checkpoints / "tiny_video"), "--device", "cpu", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "tiny_video: data not found in the download cache; run python -m datasets.download "
        "tiny_video or pass --data-root DIR\n"
    )
    with pytest.raises(SystemExit):
        ev.main([str(checkpoints / "tiny_video"), "--data-root", str(tmp_path / "none"),
                 "--device", "cpu", "--out", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("tiny_video: data not found under --data-root ") and err.count("\n") == 1


def _padded_domain(context, pad=4):
    """A larger 'whole domain' around tiny radar context frames: rain all around the crop."""
    import xarray as xr

    values = np.pad(context.values, [(0, 0)] * 3 + [(pad, pad)] * 2, constant_values=6.0)
    return xr.DataArray(
        values,
        dims=("sample", "time", "channel", "y", "x"),
        coords={
            "crop_row": ("sample", [pad] * values.shape[0]),
            "crop_col": ("sample", [pad] * values.shape[0]),
        },  # fmt: skip
    )


def test_radar_extrapolation_forecasts_on_the_whole_domain(checkpoints, monkeypatch):
    calls, seen = [], {}
    real = ev.baselines.extrapolation

    def domain_frames(context, where):
        calls.append((context.sizes["time"], where))
        return _padded_domain(context)

    def spy(context, **kwargs):
        seen.update(kwargs)
        return real(context, **kwargs)

    monkeypatch.setattr(ev, "domain_frames", domain_frames)
    monkeypatch.setattr(ev.baselines, "extrapolation", spy)
    table, facts = ev.evaluate(checkpoints / "tiny_radar", device="cpu", loader=tiny_loader,
                               options={"root": "/data/here"})  # fmt: skip
    assert calls == [(3, {"root": "/data/here"})]  # the last 3 context frames, where the data is
    assert seen["domain"].sizes["y"] == 16 and seen["n_frames"] == 3
    assert facts["scoring"]["baseline_domain"].startswith("the whole radar domain (16 x 16 px)")
    # rain all around the crop flows in: the extrapolation is not the crop-only one
    data = tiny_loader("tiny_radar", split="test")
    crop_only = real(data.isel(time=slice(0, 3)), horizon=3)
    ext = table[table.method == "extrapolation"].set_index("lead_step")
    alone = per_lead(crop_only, data.isel(time=slice(3, 6)), domain="radar")
    assert not np.allclose(ext["MSE"], alone["MSE"])


def test_radar_scores_use_the_common_mask_of_every_method(checkpoints, monkeypatch):
    real = ev.baselines.extrapolation

    def holey(context, **kwargs):  # a baseline without a forecast at pixel (0, 0)
        out = real(context, **kwargs)
        out[..., 0, 0] = np.nan
        return out

    monkeypatch.setattr(ev.baselines, "extrapolation", holey)
    table, facts = ev.evaluate(checkpoints / "tiny_radar", device="cpu", loader=tiny_loader)
    data = tiny_loader("tiny_radar", split="test")
    truth = data.values[:, 3:6]
    common = np.isfinite(truth)
    common[..., 0, 0] = False
    per_method = table.groupby("method")["MSE"].size()
    assert per_method.tolist() == [3, 3, 3]
    assert facts["scoring"]["valid_pixels_per_lead"] == [int(common[:, k].sum()) for k in range(3)]
    pers = np.repeat(data.values[:, 2:3], 3, axis=1)
    expected = per_lead(pers, truth, domain="radar", valid=common)
    got = table[table.method == "persistence"].set_index("lead_step")[expected.columns]
    pd.testing.assert_frame_equal(got, expected, check_names=False)
    assert facts["scoring"]["event"].startswith("rain rate >= t mm/h")


def _two_event_loader(name, *, split, **options):
    data = tiny_loader(name, split=split, **options)
    events = ["2016-a"] * 4 + ["2017-b"] * (data.sizes["sample"] - 4)
    return data.assign_coords(event=("sample", events))


def test_per_event_and_pooled_tables_and_card(checkpoints, tmp_path):
    import shutil

    ckpt = tmp_path / "tiny_radar"
    shutil.copytree(checkpoints / "tiny_radar", ckpt)
    table, facts = ev.evaluate(ckpt, device="cpu", loader=_two_event_loader)
    assert facts["events"] == {"2016-a": 4, "2017-b": 4}
    per_event = pd.DataFrame(facts["per_event"])
    assert list(per_event.columns[:4]) == ["event", "method", "lead_step", "lead_time"]
    assert len(per_event) == 2 * len(table)
    data = tiny_loader("tiny_radar", split="test")
    for event, rows in (("2016-a", slice(0, 4)), ("2017-b", slice(4, 8))):
        truth = data.values[rows, 3:6]
        pers = np.repeat(data.values[rows, 2:3], 3, axis=1)
        want = per_lead(pers, truth, domain="radar")["MSE"].to_numpy()
        got = per_event[(per_event.event == event) & (per_event.method == "persistence")]
        np.testing.assert_allclose(got["MSE"].to_numpy(), want)
    # pooled MSE is the mean over both events' pixels (equal counts here: the mean of the two)
    for method in table.method.unique():
        pooled = table[table.method == method]["MSE"].to_numpy()
        parts = per_event[per_event.method == method]
        a, b = (parts[parts.event == e]["MSE"].to_numpy() for e in ("2016-a", "2017-b"))
        np.testing.assert_allclose(pooled, (a + b) / 2)
    model_rows = per_event[per_event.method == "convlstm"].groupby("event")["MSE"].sum()
    assert model_rows["2016-a"] != pytest.approx(model_rows["2017-b"])  # the events do differ
    ev.update_checkpoint(ckpt, table, facts)
    card = (ckpt / "README.md").read_text()
    assert "### Event 2016-a (4 windows)" in card and "### Event 2017-b (4 windows)" in card
    assert "FBI@1" in card and "FSS@5" in card
    assert "- event: rain rate >= t mm/h" in card
    assert "- pixels scored: the common mask" in card
    assert "extrapolation and persistence forecast on: the data's own 8 x 8 grid" in card
    _, meta = load_checkpoint(ckpt, device="cpu")
    assert meta["metrics"]["test"]["events"] == {"2016-a": 4, "2017-b": 4}
    assert len(meta["metrics"]["test"]["per_event"]) == len(per_event)

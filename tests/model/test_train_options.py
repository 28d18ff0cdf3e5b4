"""model.train options of issue 15: L1+L2 loss, EMA of weights, gradient clipping, scheduled
sampling (their config keys, command-line flags and effects)."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.convlstm import ConvLSTM
from model.losses import Objective, batch_loss, masked_mae, masked_mse, truth_probability
from model.train import (
    apply_overrides,
    build_parser,
    clip_gradients,
    make_ema,
    train,
    update_ema,
)
from model.train_config import ConfigError, TrainConfig, validate_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_helpers import tiny_config, tiny_loader


def _tiny_net(seed: int = 0) -> ConvLSTM:
    torch.manual_seed(seed)
    return ConvLSTM(in_channels=1, frame_size=(8, 8), hidden_channels=[4], kernel_size=3,
                    patch_size=2, output_activation="sigmoid")  # fmt: skip


def test_l1l2_is_mse_plus_mae_over_the_valid_pixels():
    pred = torch.zeros(1, 1, 1, 2, 2)
    target = torch.tensor([[[[[1.0, 0.5], [0.0, 9.0]]]]])
    valid = torch.tensor([[[[[True, True], [True, False]]]]])
    assert masked_mae(pred, target, valid).item() == pytest.approx(1.5 / 3)
    assert masked_mse(pred, target, valid).item() == pytest.approx(1.25 / 3)
    assert batch_loss("l1l2", pred, target, valid).item() == pytest.approx(2.75 / 3)
    assert batch_loss("mse", pred, target, valid).item() == pytest.approx(1.25 / 3)
    with pytest.raises(ValueError, match="loss='l3'"):
        batch_loss("l3", pred, target, valid)


def test_objective_l1l2_scores_the_free_forecast_with_both_terms():
    net = _tiny_net()
    frames = torch.rand(2, 5, 1, 8, 8)  # [B, T, C, H, W]
    forecast, _ = net(frames[:, :3], horizon=2)
    want = masked_mse(forecast, frames[:, 3:], None) + masked_mae(forecast, frames[:, 3:], None)
    got = Objective(net, context=3, mode="free", loss="l1l2")(frames)
    torch.testing.assert_close(got, want)


def test_feeding_every_true_frame_gives_the_teacher_forced_predictions():
    net = _tiny_net()
    frames = torch.rand(3, 7, 1, 8, 8)  # [B, T, C, H, W]
    context, horizon = 3, 4
    truth = frames[:, context:-1]  # [B, horizon - 1, C, H, W]
    all_true = torch.ones(3, horizon - 1, dtype=torch.bool)
    fed, _ = net(frames[:, :context], horizon=horizon, feed_truth=(truth, all_true))
    teacher, _ = net.one_step(frames[:, :-1])  # [B, T-1, C, H, W]
    torch.testing.assert_close(fed, teacher[:, context - 1 :], rtol=1e-5, atol=1e-6)
    free, _ = net(frames[:, :context], horizon=horizon)
    none_true = torch.zeros_like(all_true)
    unfed, _ = net(frames[:, :context], horizon=horizon, feed_truth=(truth, none_true))
    torch.testing.assert_close(unfed, free, rtol=0, atol=0)
    # Only the second sequence fed at step 1: the first keeps its free forecast.
    one = none_true.clone()
    one[1, 1] = True
    mixed, _ = net(frames[:, :context], horizon=horizon, feed_truth=(truth, one))
    torch.testing.assert_close(mixed[0], free[0], rtol=0, atol=0)
    assert not torch.allclose(mixed[1, 2:], free[1, 2:])
    with pytest.raises(ValueError, match="feed_truth needs"):
        net(frames[:, :context], horizon=horizon, feed_truth=(truth[:, :1], all_true))


def test_truth_probability_falls_linearly_to_zero():
    probs = [truth_probability(s, start=0.5, steps=100) for s in (0, 50, 100, 150)]
    assert probs == pytest.approx([0.5, 0.25, 0.0, 0.0])
    assert truth_probability(10, start=0.0, steps=100) == 0.0


def test_update_ema_moves_a_share_of_the_way_to_the_weights():
    ema, net = _tiny_net(0), _tiny_net(1)
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, net, 0.75)
    for old, new, target in zip(before, ema.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * target)
    frozen = make_ema(net)
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    assert all(p.requires_grad for p in net.parameters())


def test_clip_gradients_returns_the_norm_and_clips_only_when_asked():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    assert clip_gradients([p], 0.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([3.0, 4.0]))
    assert clip_gradients([p], 1.0).item() == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]))


def test_ema_run_keeps_the_average_as_best_and_resumes_it_exactly(tmp_path):
    common = {"loader": tiny_loader, "device": "cpu", "progress": False, "seed": 3}
    cfg = tiny_config(steps=4, val_every=2, ema_decay=0.5)
    train(cfg, out_dir=tmp_path / "a", run_dir=tmp_path / "ar", **common)
    train(tiny_config(steps=2, val_every=2, ema_decay=0.5), out_dir=tmp_path / "b",
          run_dir=tmp_path / "br", **common)  # fmt: skip
    train(cfg, out_dir=tmp_path / "b", run_dir=tmp_path / "br", resume=True, **common)
    straight = torch.load(tmp_path / "ar" / "train_state.pt", weights_only=True)["ema"]
    resumed = torch.load(tmp_path / "br" / "train_state.pt", weights_only=True)["ema"]
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
    raw = load_file(tmp_path / "ar" / "last" / "model.safetensors")
    assert any(not torch.equal(raw[k], straight[k]) for k in raw)  # last: the raw weights

    single = tiny_config(steps=4, val_every=4, ema_decay=0.5)  # one validation, at the end
    train(single, out_dir=tmp_path / "c", run_dir=tmp_path / "cr", **common)
    best = load_file(tmp_path / "c" / "model.safetensors")
    ema = torch.load(tmp_path / "cr" / "train_state.pt", weights_only=True)["ema"]
    for key, value in best.items():
        torch.testing.assert_close(value, ema[key], rtol=0, atol=0)


def test_scheduled_sampling_and_l1l2_runs_train_and_log_the_gradient_norm(tmp_path):
    import csv

    cfg = tiny_config(steps=3, val_every=3, scheduled_sampling=1.0, loss="l1l2", grad_clip=0.0)
    result = train(cfg, out_dir=tmp_path / "o", run_dir=tmp_path / "r", loader=tiny_loader,
                   device="cpu", progress=False, keep_initial=True)  # fmt: skip
    state = result.model.state_dict()
    assert any(not torch.equal(state[k], v) for k, v in result.initial_state.items())
    with open(tmp_path / "r" / "log.csv") as f:
        norms = [float(r["grad_norm"]) for r in csv.DictReader(f)]
    assert len(norms) == 3 and all(n > 0 for n in norms)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ema_decay": 1.0}, "train.ema_decay=1.0 must be in"),
        ({"scheduled_sampling": 1.5}, "train.scheduled_sampling=1.5"),
        ({"scheduled_sampling": 0.5, "mode": "teacher"}, "applies to mode"),
        ({"loss": "l3"}, "train.loss='l3'"),
    ],
)
def test_bad_option_values_name_the_key(change, message):
    raw = tiny_config()
    raw["train"].update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(raw)


def test_flags_set_the_new_options(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "moving_mnist"\ncontext = 10\nhorizon = 10\n')
    flags = ["--loss", "l1l2", "--ema-decay", "0.99", "--grad-clip", "0",
             "--scheduled-sampling", "0.5"]  # fmt: skip
    config = apply_overrides(TrainConfig.load(path), build_parser().parse_args([str(path), *flags]))
    assert config.train.loss == "l1l2" and config.train.ema_decay == pytest.approx(0.99)
    assert config.train.grad_clip == 0.0 and config.train.scheduled_sampling == pytest.approx(0.5)


def test_resuming_a_log_without_grad_norm_upgrades_its_header(tmp_path):
    import csv

    common = {"loader": tiny_loader, "device": "cpu", "progress": False}
    train(tiny_config(steps=2), out_dir=tmp_path / "o", run_dir=tmp_path / "r", **common)
    log = tmp_path / "r" / "log.csv"
    lines = log.read_text().splitlines()
    old = [",".join(line.split(",")[:-1]) for line in lines]  # as the earlier version wrote it
    log.write_text("\n".join(old) + "\n")
    train(tiny_config(steps=4), out_dir=tmp_path / "o", run_dir=tmp_path / "r", resume=True,
          **common)  # fmt: skip
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(None not in r for r in rows)  # no row longer than the header
    assert not rows[0]["grad_norm"] and float(rows[3]["grad_norm"]) > 0

"""The Lagrangian route (model.lagrangian): transform in and out, the zero-residual identity, and
the checkpoint metadata honoured by model.tiling.domain_rollout."""

import numpy as np
import pytest
import torch

from model import lagrangian
from model.baselines import extrapolation
from model.convlstm import ConvLSTM
from model.normalize import Normalizer
from model.tiling import domain_rollout

DB = {"kind": "db", "units": "mm/h", "threshold": 0.1, "zerovalue": -15.0, "scale": 10.0}


def moving_blobs(frames: int, *, shift=(1, 2), size=(48, 56), seed=0) -> np.ndarray:
    """``[T, Y, X]`` mm/h: smooth rain moving ``shift`` (dy, dx) pixels per frame."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform([12, 10], [h - 20, w - 30], size=(4, 2))
    out = []
    for t in range(frames):
        field = np.zeros((h, w))
        for cy, cx in centres:
            y, x = cy + shift[0] * t, cx + shift[1] * t
            field += 8.0 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 18.0)
        out.append(np.where(field >= 0.05, field, 0.0))
    return np.stack(out).astype(np.float32)


def residual_model(frame=(16, 16)) -> ConvLSTM:
    torch.manual_seed(0)
    net = ConvLSTM(hidden_channels=(4,), frame_size=frame, patch_size=4, residual=True)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    return net.eval()


def test_a_uniform_shift_round_trips():
    """Frames moving uniformly are one frame in the Lagrangian frame, and moving that frame back
    out gives the frames that follow (away from the borders rain enters through)."""
    velocity = np.zeros((2, 48, 56))
    velocity[0], velocity[1] = 2.0, 1.0  # x, y pixels per step
    seq = moving_blobs(9)
    moved = lagrangian.to_lagrangian(seq[:5], velocity)
    inner = (slice(8, None), slice(12, None))  # rain from outside the domain enters at y, x < 8, 12
    for frame in moved:
        np.testing.assert_allclose(frame[inner], seq[4][inner], atol=1e-4)
    back = lagrangian.from_lagrangian(np.repeat(moved[-1:], 4, axis=0), velocity, floor=0.0)
    np.testing.assert_allclose(back[:, 10:, 16:], seq[5:, 10:, 16:], atol=1e-4)
    targets = lagrangian.targets_to_lagrangian(seq[5:], velocity)
    np.testing.assert_allclose(targets[:, :38, :40], np.repeat(seq[4:5, :38, :40], 4, 0), atol=1e-4)
    assert np.isnan(targets[-1, -1, -1])  # its trajectory starts outside the domain


def test_zero_residual_is_lk_extrapolation_of_the_last_frame():
    """An untrained (zero-head) residual network in the Lagrangian frame forecasts exactly what
    pysteps LK extrapolation of the last frame does (rain under 0.1 mm/h removed first)."""
    seq = moving_blobs(10, size=(40, 48))
    seq[:, :3, :5] = np.nan  # outside the radar
    context = seq[:6, None]  # [T, C, Y, X]
    meta = {"frame": "lagrangian", "normalization": DB}
    ds = domain_rollout(residual_model(), context, 4, meta=meta, precision="fp32")
    floored = np.where(np.isnan(context) | (context >= 0.1), context, 0.0)
    expected = extrapolation(floored, horizon=4, n_frames=3)  # [H, C, Y, X]
    expected = np.where(np.isnan(expected) | (expected >= 0.1), expected, 0.0)
    got = ds["prediction"].values
    assert np.isnan(got[:, 0, :3, :5]).all() and np.isfinite(got[:, 0, 3:]).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, equal_nan=True)
    assert np.nanmax(np.abs(got[-1] - got[0])) > 1.0  # it moved: not persistence
    assert ds.attrs["frame"] == "lagrangian"
    np.testing.assert_array_equal(ds["context"].values, context)  # shown as observed


def test_meta_without_the_frame_runs_the_plain_network():
    seq = moving_blobs(8, size=(40, 48))[:6, None]
    net = residual_model()
    plain = domain_rollout(net, seq, 3, meta={"normalization": DB}, precision="fp32")
    lag = domain_rollout(net, seq, 3, meta={"frame": "lagrangian", "normalization": DB},
                         precision="fp32")  # fmt: skip
    assert "frame" not in plain.attrs
    # plain residual network with a zero head: persistence of the last frame (floored)
    last = np.where(seq[-1] >= 0.1, seq[-1], 0.0)
    np.testing.assert_allclose(plain["prediction"].values[-1], last, rtol=1e-4, atol=1e-4)
    assert not np.allclose(lag["prediction"].values[-1], last, atol=1e-2)


def test_residual_head_adds_the_last_input_frame():
    net = residual_model()
    with torch.no_grad():
        net.head.bias.fill_(0.25)
    frames = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        out, _ = net(frames, horizon=3)
        teacher, _ = net.one_step(frames)
    np.testing.assert_allclose(out[:, 0].numpy(), (frames[:, -1] + 0.25).numpy(), atol=1e-6)
    np.testing.assert_allclose(out[:, 2].numpy(), (frames[:, -1] + 0.75).numpy(), atol=1e-5)
    np.testing.assert_allclose(teacher.numpy(), (frames + 0.25).numpy(), atol=1e-6)
    assert net.config.to_dict()["residual"] is True
    assert "residual" not in ConvLSTM(frame_size=(16, 16)).config.to_dict()


def test_motion_settings_come_from_the_meta():
    assert lagrangian.motion_settings({}) == {"method": "LK", "n_frames": 3}
    assert lagrangian.motion_settings({"motion": {"n_frames": 4}})["n_frames"] == 4
    assert not lagrangian.is_lagrangian({"frame": "eulerian"})
    with pytest.raises(ValueError, match="n_frames"):
        lagrangian.motion_field(np.zeros((2, 8, 8)), n_frames=3)


def test_normalizer_floor_matches_the_rain_floor():
    assert Normalizer(**DB).threshold == lagrangian.RAIN_FLOOR


def test_distribution_matching_keeps_ranks_and_takes_the_reference_values():
    reference = np.array([[0.0, 1.0], [4.0, np.nan]])
    field = np.array([[3.0, 2.0], [1.0, 9.0]])  # ranked opposite to the reference
    valid = np.isfinite(reference)
    out = lagrangian.match_distribution(field, reference, valid)
    np.testing.assert_array_equal(out, [[4.0, 1.0], [0.0, 9.0]])  # invalid pixel left alone
    same = lagrangian.match_distribution(reference, reference, valid)
    np.testing.assert_array_equal(same[valid], reference[valid])


def test_zero_residual_with_distribution_matching_is_still_extrapolation():
    seq = moving_blobs(10, size=(40, 48))
    context = np.where(seq[:6] >= 0.1, seq[:6], 0.0)[:, None]  # [T, C, Y, X]
    meta = {"frame": "lagrangian", "normalization": DB, "postprocess": "cdf_match"}
    ds = domain_rollout(residual_model(), context, 4, meta=meta, precision="fp32")
    expected = extrapolation(context, horizon=4, n_frames=3)
    expected = np.where(expected >= 0.1, expected, 0.0)
    np.testing.assert_allclose(ds["prediction"].values, expected, rtol=1e-4, atol=1e-4)
    assert ds.attrs["postprocess"] == "cdf_match"
    with pytest.raises(ValueError, match="postprocess"):
        domain_rollout(residual_model(), context, 2, meta={**meta, "postprocess": "magic"})


def test_evaluate_forecasts_a_crop_on_its_whole_domain():
    """model.evaluate.forecast of a Lagrangian checkpoint on a crop runs over the whole domain and
    is then cut, like the extrapolation baseline (rain enters the crop from around it)."""
    import xarray as xr

    from model.evaluate import forecast

    seq = moving_blobs(9, size=(40, 48))
    seq = np.where(seq >= 0.1, seq, 0.0)[None, :6, None]  # [S, T, C, Y, X]
    whole = xr.DataArray(seq, dims=("sample", "time", "channel", "y", "x"),
                         coords={"crop_row": ("sample", [8]), "crop_col": ("sample", [16])})  # fmt: skip
    crop = whole.isel(y=slice(8, 24), x=slice(16, 32)).drop_vars(["crop_row", "crop_col"])
    meta = {"frame": "lagrangian", "normalization": DB, "resolution_km": 1.0}
    got = forecast(residual_model(), meta, crop, horizon=3, precision="fp32", domain=whole)
    expected = extrapolation(crop, horizon=3, n_frames=3, domain=whole).values
    expected = np.where(expected >= 0.1, expected, 0.0)
    np.testing.assert_allclose(got.values, expected, rtol=1e-4, atol=1e-4)
    alone = forecast(residual_model(), meta, crop, horizon=3, precision="fp32")
    assert not np.allclose(alone.values, got.values, atol=1e-3)  # the crop alone lacks inflow


def test_matching_after_advection_restores_the_rain_that_left_through_the_edge():
    """``cdf_match_after``: each advected lead gets the last frame's values over its valid pixels,
    so its rain fraction is the last frame's, although rain leaves the domain; the default
    (``cdf_match``, before the advection) loses it, as extrapolation does."""
    seq = moving_blobs(10, size=(40, 48), shift=(2, 3))
    seq[:, :3, :5] = np.nan  # outside the radar
    context = np.where(np.isnan(seq[:6]) | (seq[:6] >= 0.1), seq[:6], 0.0)[:, None]  # [T, C, Y, X]
    last = context[-1, 0]  # [Y, X]
    valid = np.isfinite(last)
    meta = {"frame": "lagrangian", "normalization": DB}
    before = domain_rollout(residual_model(), context, 4, precision="fp32",
                            meta={**meta, "postprocess": "cdf_match"})  # fmt: skip
    after = domain_rollout(residual_model(), context, 4, precision="fp32",
                           meta={**meta, "postprocess": "cdf_match_after"})  # fmt: skip
    wet = (last[valid] >= 0.1).mean()
    got = after["prediction"].values[:, 0]  # [H, Y, X]
    assert np.isnan(got[:, ~valid]).all() and np.isfinite(got[:, valid]).all()
    for lead in got:
        assert (lead[valid] >= 0.1).mean() == pytest.approx(wet, abs=1e-12)
        np.testing.assert_allclose(np.sort(lead[valid]), np.sort(last[valid]), rtol=1e-6)
    lost = (before["prediction"].values[-1, 0][valid] >= 0.1).mean()
    assert lost < wet - 0.02  # the default loses rain through the edge at the last lead
    assert after.attrs["postprocess"] == "cdf_match_after"
    assert "after the advection" in after.attrs["route"]


def test_restored_rain_grows_next_to_the_forecast_rain():
    """The dry pixels that receive restored rain are those nearest the advected rain."""
    reference = np.zeros((20, 20))
    reference[5:9, 5:9] = 2.0  # 16 wet pixels
    advected = np.zeros((1, 20, 20))
    advected[0, 6:8, 6:8] = 3.0  # 4 wet pixels left after the advection
    out = lagrangian.match_after_advection(advected, reference)[0]
    # the 12 dry pixels at distance 1 and sqrt(2) of the 2 x 2 rain: the reference's square
    np.testing.assert_array_equal(out >= 0.1, reference >= 0.1)
    dry_reference = np.zeros((6, 6))
    np.testing.assert_array_equal(
        lagrangian.match_after_advection(advected[:, :6, :6], dry_reference), np.zeros((1, 6, 6))
    )


def test_unknown_postprocess_names_the_options():
    context = moving_blobs(8, size=(40, 48))[:6, None]
    meta = {"frame": "lagrangian", "normalization": DB, "postprocess": "magic"}
    with pytest.raises(ValueError, match="cdf_match_after"):
        domain_rollout(residual_model(), context, 2, meta=meta)


def test_inflow_band_gets_the_last_observation_before_the_matching():
    """``cdf_match_after_inflow``: pixels whose trajectory starts outside the domain get the last
    observation there (rain at the upstream edge stays), so restored rain sits at the inflow
    edge; the rest of the lead is the advected forecast."""
    velocity = np.zeros((2, 12, 12))
    velocity[0] = 2.0  # 2 px per step towards +x: rain enters at x = 0, 1 after one step
    valid = np.ones((12, 12), bool)
    band = lagrangian.inflow_band(velocity, valid, 2)
    assert band[0, :, :2].all() and not band[0, :, 2:].any()
    assert band[1, :, :4].all() and not band[1, :, 4:].any()
    valid[:, 10:] = False  # invalid pixels upstream count as outside too
    velocity[0] = -2.0
    assert lagrangian.inflow_band(velocity, valid, 1)[0, :, 8:].all()
    last = np.zeros((12, 12))
    last[:, :3] = 4.0  # rain along the inflow edge
    advected = np.zeros((2, 12, 12))
    advected[:, 5, 6] = 1.0
    filled = lagrangian.fill_inflow(advected, last, band)
    np.testing.assert_array_equal(filled[1, :, :4], np.broadcast_to(last[:, :4], (12, 4)))
    assert filled[1, 5, 6] == 1.0 and filled[1, 0, 6] == 0.0
    out = lagrangian.match_after_advection(filled, last)  # 36 wet pixels of 4 mm/h in the last
    assert (out[0] >= 0.1).sum() == 36 and (out[0][:, :2] >= 0.1).all()

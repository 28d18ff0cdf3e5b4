"""Hand-computed cases for model.metrics."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

from model import metrics
from model.metrics import contingency, per_lead, ssim_frame


def test_radar_contingency_counts_by_hand():
    # One sample, 2 lead times, 1 channel, 2x3 pixels; threshold 1 mm/h.
    truth = np.array(
        [
            [[[0.0, 2.0, 3.0], [0.5, 1.0, np.nan]]],  # lead 1
            [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],  # lead 2
        ]
    )
    pred = np.array(
        [
            [[[1.5, 0.2, 4.0], [0.0, 1.0, 9.0]]],
            [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        ]
    )
    table = contingency(pred, truth, threshold=1.0)
    # Lead 1 (the NaN pixel is out): hits (3,4),(1,1); misses (2,0.2); false alarm (0,1.5);
    # correct negative (0.5,0).
    assert table.loc[1].to_dict() == {
        "hits": 2,
        "misses": 1,
        "false_alarms": 1,
        "correct_negatives": 1,
    }
    assert table.loc[2, "correct_negatives"] == 6
    scores = per_lead(pred, truth, domain="radar", thresholds=(1.0,))
    assert scores.loc[1, "CSI@1"] == pytest.approx(2 / 4)
    assert scores.loc[1, "POD@1"] == pytest.approx(2 / 3)
    assert scores.loc[1, "FAR@1"] == pytest.approx(1 / 3)
    # No events at lead 2: every categorical score is undefined.
    assert np.isnan(scores.loc[2, ["CSI@1", "POD@1", "FAR@1"]].to_numpy(dtype=float)).all()
    # MSE/MAE on the 5 valid pixels of lead 1.
    err = np.array([1.5, -1.8, 1.0, -0.5, 0.0])
    assert scores.loc[1, "MSE"] == pytest.approx(np.mean(err**2))
    assert scores.loc[1, "MAE"] == pytest.approx(np.mean(np.abs(err)))
    assert scores.attrs["valid_pixels"] == [5, 6]
    assert list(scores.index) == [1, 2]
    assert scores.index.name == "lead_step"


def test_radar_threshold_is_inclusive_and_columns_named_per_threshold():
    truth = np.full((1, 1, 1, 1, 2), 5.0)
    pred = np.array([5.0, 4.9]).reshape(1, 1, 1, 1, 2)
    scores = per_lead(pred, truth, domain="radar", thresholds=(1.0, 5.0))
    assert scores.loc[1, "CSI@5"] == pytest.approx(0.5)  # 5.0 >= 5 is an event
    assert scores.loc[1, "CSI@1"] == pytest.approx(1.0)
    assert {"CSI@1", "POD@1", "FAR@1", "CSI@5", "POD@5", "FAR@5"} <= set(scores.columns)


def test_valid_mask_excludes_pixels():
    truth = np.zeros((2, 1, 4, 4))
    pred = np.zeros((2, 1, 4, 4))
    pred[:, :, 0, 0] = 10.0  # large error on a pixel we mask out
    valid = np.ones((4, 4), dtype=bool)
    valid[0, 0] = False
    masked = per_lead(pred, truth, domain="radar", valid=valid)
    unmasked = per_lead(pred, truth, domain="radar")
    assert masked["MSE"].tolist() == [0.0, 0.0]
    assert unmasked.loc[1, "MSE"] == pytest.approx(100 / 16)


def test_video_openstl_mse_sums_over_frame_and_averages_over_samples():
    truth = np.zeros((2, 3, 1, 8, 8))
    pred = np.zeros_like(truth)
    pred[0, :, 0, :2, :2] = 0.5  # sample 0: 4 pixels off by 0.5 -> 4 * 0.25 = 1.0 per frame
    pred[1, :, 0, 0, 0] = 1.0  # sample 1: 1 pixel off by 1 -> 1.0 per frame
    scores = per_lead(pred, truth, domain="video")
    assert scores["MSE"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert scores["MAE"].tolist() == pytest.approx([(2.0 + 1.0) / 2] * 3)
    # PSNR per frame: sample 0 mse 1/64, sample 1 mse 1/64 -> 10 log10(64).
    assert scores["PSNR"].tolist() == pytest.approx([10 * np.log10(64)] * 3)
    assert list(scores.columns) == ["MSE", "MAE", "SSIM", "PSNR"]


def test_ssim_identical_is_one_and_noise_lowers_it():
    rng = np.random.default_rng(0)
    image = rng.random((32, 32))
    assert ssim_frame(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1)
    assert ssim_frame(image, noisy) < 0.9


def test_ssim_of_two_constant_images_matches_formula():
    # Constant images: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.6
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim_frame(np.full((20, 20), a), np.full((20, 20), b))
    assert got == pytest.approx(expected, rel=1e-9)


def test_traffic_rmse_mae():
    truth = np.zeros((1, 2, 2, 2, 2))
    pred = np.zeros_like(truth)
    pred[0, 0, 0, 0, 0] = 4.0  # lead 1: one error of 4 over 8 values
    pred[0, 1] = 1.0  # lead 2: every value off by 1
    scores = per_lead(pred, truth, domain="traffic")
    assert scores.loc[1, "RMSE"] == pytest.approx(np.sqrt(16 / 8))
    assert scores.loc[1, "MAE"] == pytest.approx(4 / 8)
    assert scores.loc[2, "RMSE"] == pytest.approx(1.0)
    assert list(scores.columns) == ["RMSE", "MAE"]


def test_accepts_xarray_and_one_sample_layout_and_keeps_lead_time():
    values = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    pred = xr.DataArray(
        values + 1,
        dims=("time", "channel", "y", "x"),
        coords={"lead_time": ("time", pd.to_timedelta([5, 10], unit="min"))},
    )
    truth = xr.DataArray(values, dims=("time", "channel", "y", "x"))
    scores = per_lead(pred, truth, domain="traffic")
    assert scores["RMSE"].tolist() == pytest.approx([1.0, 1.0])
    assert scores.attrs["lead_time"] == [pd.Timedelta(minutes=5), pd.Timedelta(minutes=10)]
    assert scores.attrs["n_samples"] == 1


def test_xarray_dims_in_other_order_are_transposed():
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 1, 4, 5))
    b = rng.random((2, 3, 1, 4, 5))
    dims = ("sample", "time", "channel", "y", "x")
    ref = per_lead(a, b, domain="radar")
    swapped = xr.DataArray(a, dims=dims).transpose("x", "time", "y", "sample", "channel")
    got = per_lead(swapped, xr.DataArray(b, dims=dims), domain="radar")
    pd.testing.assert_frame_equal(ref, got)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domain": "weather"}, "unknown domain"),
        ({"domain": "radar", "truth": np.zeros((1, 3, 1, 2, 2))}, "same number of lead times"),
        ({"domain": "radar", "valid": np.ones((3, 3), bool)}, "does not broadcast"),
    ],
)
def test_errors_name_the_problem(kwargs, message):
    args = {"prediction": np.zeros((1, 2, 1, 2, 2)), "truth": np.zeros((1, 2, 1, 2, 2))}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        per_lead(**args)


def test_bad_rank_is_rejected():
    with pytest.raises(ValueError, match="expected"):
        metrics.as_5d(np.zeros((3, 3)))


# -- the event convention, frequency bias, FSS and the common mask ---------------------------------
def test_event_convention_is_at_least_the_threshold_in_every_radar_score():
    """One hand-computed case pins ``value >= t``: the pixels equal to 1.0 are events."""
    truth = np.array([1.0, 2.0, 0.0, 0.0, 0.5]).reshape(1, 1, 1, 1, 5)
    pred = np.array([1.0, 0.0, 1.0, 3.0, 0.5]).reshape(1, 1, 1, 1, 5)
    # events: truth [1, 1, 0, 0, 0], forecast [1, 0, 1, 1, 0] -> H=1, M=1, F=2, CN=1
    assert metrics.EVENT == ">="
    table = contingency(pred, truth, threshold=1.0)
    assert table.loc[1].to_dict() == {
        "hits": 1,
        "misses": 1,
        "false_alarms": 2,
        "correct_negatives": 1,
    }
    scores = per_lead(pred, truth, domain="radar", thresholds=(1.0,), pixel_km=10.0)  # 1 px
    assert scores.loc[1, "CSI@1"] == pytest.approx(1 / 4)
    assert scores.loc[1, "POD@1"] == pytest.approx(1 / 2)
    assert scores.loc[1, "FAR@1"] == pytest.approx(2 / 3)
    # frequency bias (H + F) / (H + M) = 3 / 2, which is also POD / (1 - FAR)
    assert scores.loc[1, "FBI@1"] == pytest.approx(3 / 2)
    assert scores.loc[1, "FBI@1"] == pytest.approx(0.5 / (1 - 2 / 3))
    # FSS at 1 px: 1 - sum((f - o)^2) / (sum f^2 + sum o^2) = 1 - 3 / (3 + 2)
    assert scores.attrs["fss_scale_px"] == 1
    assert scores.loc[1, "FSS@1"] == pytest.approx(1 - 3 / 5)
    # the units say the convention, so tables and figures can print it
    assert scores.attrs["units"]["CSI@1"] == "1 (event: rain rate >= 1 mm/h)"
    assert "rain rate >= 1 mm/h" in scores.attrs["units"]["FSS@1"]


def test_pysteps_det_cat_fct_counts_above_the_threshold_ours_at_or_above():
    from pysteps.verification.detcatscores import det_cat_fct

    rng = np.random.default_rng(3)
    obs = np.round(rng.gamma(0.6, 3.0, (40, 40)), 1)  # rounded: many values equal 1.0 exactly
    fct = np.round(rng.gamma(0.6, 3.0, (40, 40)), 1)
    assert (obs == 1.0).any() and (fct == 1.0).any()
    ours = per_lead(fct[None, None], obs[None, None], domain="radar", thresholds=(1.0,))
    below = np.nextafter(1.0, 0.0)  # "> just below 1" is ">= 1"
    theirs = det_cat_fct(fct, obs, below, scores=["CSI", "POD", "FAR", "BIAS"])
    assert ours.loc[1, "CSI@1"] == pytest.approx(theirs["CSI"])
    assert ours.loc[1, "POD@1"] == pytest.approx(theirs["POD"])
    assert ours.loc[1, "FAR@1"] == pytest.approx(theirs["FAR"])
    assert ours.loc[1, "FBI@1"] == pytest.approx(theirs["BIAS"])
    strict = det_cat_fct(fct, obs, 1.0, scores=["CSI"])["CSI"]
    assert ours.loc[1, "CSI@1"] != pytest.approx(strict)  # the conventions differ at t


def test_fss_is_pysteps_fss_for_one_field_at_10_km():
    from pysteps.verification.spatialscores import fss as pysteps_fss

    rng = np.random.default_rng(4)
    obs = ndimage.gaussian_filter(rng.random((64, 64)), 3) * 10
    fct = np.roll(obs, 3, axis=1)
    for pixel_km, scale in ((1.0, 10), (2.0, 5)):
        table = per_lead(fct[None, None], obs[None, None], domain="radar", thresholds=(5.0,),
                         pixel_km=pixel_km)  # fmt: skip
        assert table.attrs["fss_scale_px"] == scale
        assert table.loc[1, "FSS@5"] == pytest.approx(pysteps_fss(fct, obs, 5.0, scale))
        assert f"10 km = {scale} px" in table.attrs["units"]["FSS@5"]
    # the pixel size comes from the arrays' resolution_km when not given
    da = xr.DataArray(fct[None, None], dims=("time", "channel", "y", "x"),
                      attrs={"resolution_km": 2.0})  # fmt: skip
    assert per_lead(da, obs[None, None], domain="radar").attrs["fss_scale_px"] == 5


def test_fss_pools_the_sums_of_all_samples_not_their_mean():
    truth = np.zeros((2, 1, 1, 1, 3))
    pred = np.zeros_like(truth)
    truth[0, ..., 0] = pred[0, ..., 0] = 2.0  # sample 0: one event, matched (num 0, den 2)
    pred[1, ..., 1] = 2.0  # sample 1: a false alarm, nothing observed (num 1, den 1)
    table = per_lead(pred, truth, domain="radar", thresholds=(1.0,), pixel_km=10.0)
    assert table.loc[1, "FSS@1"] == pytest.approx(1 - 1 / 3)  # the mean of 1 and 0 would be 0.5
    none = per_lead(np.zeros((1, 1, 1, 2, 2)), np.zeros((1, 1, 1, 2, 2)), domain="radar")
    assert np.isnan(none.loc[1, "FSS@1"])  # no event anywhere: undefined


def test_compare_scores_every_forecast_on_the_common_mask():
    truth = np.array([[[[1.0, 2.0, 3.0, np.nan]]]])  # (time, channel, y, x): 1 x 1 x 1 x 4
    a = np.array([[[[1.0, 2.0, 9.0, 5.0]]]])  # finite everywhere
    b = np.array([[[[2.0, np.nan, 3.0, 5.0]]]])  # its NaN removes pixel 1 for everyone
    assert metrics.common_valid(truth, a, b).reshape(-1).tolist() == [True, False, True, False]
    tables = metrics.compare({"a": a, "b": b}, truth, domain="radar", thresholds=(1.0,))
    assert list(tables) == ["a", "b"]
    assert tables["a"].attrs["valid_pixels"] == tables["b"].attrs["valid_pixels"] == [2]
    # a on pixels 0 and 2 only: errors 0 and 6 (alone, pixel 1 would count too: MSE 36 / 3)
    assert tables["a"].loc[1, "MSE"] == pytest.approx(36 / 2)
    assert per_lead(a, truth, domain="radar").loc[1, "MSE"] == pytest.approx(36 / 3)
    assert tables["b"].loc[1, "MSE"] == pytest.approx(1 / 2)
    for domain in ("traffic", "video"):  # the other domains keep their scores on the same mask
        got = metrics.compare({"a": a, "b": b}, truth, domain=domain)
        assert got["a"].attrs["valid_pixels"] == [2]

"""Hand-computed cases for model.metrics."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

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

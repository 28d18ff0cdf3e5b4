"""Paired bootstrap intervals (model.bootstrap) on hand-checkable cases."""

import numpy as np
import pytest

from model import bootstrap
from model.metrics import contingency, fss, sample_contingency, sample_fss_sums


def test_two_windows_give_the_hand_computed_interval():
    """Window 1: ours 1 hit, LK 1 miss (CSI 1 vs 0); window 2: both 1 hit, 1 false alarm (0.5 vs
    0.5). A resample holds w1 twice (p 1/4: difference 1 - 0), w1 and w2 (p 1/2: pooled ours
    2/3, LK 1/3), or w2 twice (p 1/4: difference 0); the 5th and 95th percentiles are 0 and 1."""
    ours = np.array([[1, 0, 0], [1, 0, 1]], float)  # hits, misses, false alarms
    lk = np.array([[0, 1, 0], [1, 0, 1]], float)
    ci = bootstrap.paired_interval(ours, lk, bootstrap.csi_from_pieces)
    # all windows: ours 2 / (2 + 0 + 1) = 2/3, LK 1 / (1 + 1 + 1) = 1/3
    assert ci["difference"] == pytest.approx(1 / 3)
    assert ci["low"] == pytest.approx(0.0) and ci["high"] == pytest.approx(1.0)
    assert (ci["windows"], ci["level"], ci["seed"]) == (2, 0.9, 0)
    again = bootstrap.paired_interval(ours, lk, bootstrap.csi_from_pieces)
    assert again == ci  # seeded


def test_identical_forecasts_have_a_zero_interval_and_pooling_is_by_counts():
    pieces = np.array([[9, 1, 0], [0, 1, 0]], float)
    ci = bootstrap.paired_interval(pieces, pieces, bootstrap.csi_from_pieces)
    assert ci["low"] == ci["high"] == ci["difference"] == 0.0
    # pooled CSI of the two windows is 9 / 11, not the mean of 0.9 and 0
    assert bootstrap.csi_from_pieces(pieces.sum(0)) == pytest.approx(9 / 11)
    with pytest.raises(ValueError, match="paired pieces"):
        bootstrap.paired_interval(pieces, pieces[:1], bootstrap.csi_from_pieces)


def test_window_pieces_sum_to_the_pooled_scores():
    rng = np.random.default_rng(1)
    truth = rng.gamma(0.5, 2.0, size=(3, 4, 1, 20, 20))
    ours, lk = truth * rng.uniform(0.5, 1.5, truth.shape), np.roll(truth, 2, axis=-2)
    pieces = bootstrap.window_pieces(ours, lk, truth, threshold=1.0, scale=5, lead=2)
    table = contingency(ours[:, 1:2], truth[:, 1:2], threshold=1.0)
    h, m, f = pieces["CSI"]["ours"].sum(0)
    assert (h, m, f) == tuple(table.loc[1, ["hits", "misses", "false_alarms"]])
    got = bootstrap.fss_from_pieces(pieces["FSS"]["theirs"].sum(0))
    assert got == pytest.approx(fss(lk, truth, threshold=1.0, scale=5)[1])
    counts = sample_contingency(ours, truth, threshold=1.0)
    assert counts["hits"].shape == (3, 4)
    num, den = sample_fss_sums(ours, truth, threshold=1.0, scale=5)
    assert num.shape == den.shape == (3, 4) and (den >= num / 2).all()

"""Leave-one-source-out pieces (model.loso, model.evaluate's --loso mode) on small synthetic cases;
real-data scoring needs ../shared/data."""

import numpy as np
import pandas as pd
import pytest

from model import evaluate, loso
from tests.model.test_lagrangian import moving_blobs


def test_time_resampling_moves_rain_along_the_motion():
    """10-minute frames of rain moving 4 px per step resampled to 5 minutes: the frame in between
    is the rain moved 2 px (motion-compensated), not a blend of two positions."""
    seq = moving_blobs(7, shift=(0, 2), size=(48, 64))  # 2 px per 5 min
    ten = seq[::2]  # [4, Y, X]: 10-minute steps, 4 px per step
    five = loso.to_time_step(ten, 600.0, 300.0)
    assert five.shape[0] == 7
    np.testing.assert_array_equal(five[::2], ten)  # observed times kept as they are
    inner = (slice(None), slice(12, 52))
    err = np.abs(five[3][inner] - seq[3][inner]).max()
    blend = np.abs(0.5 * (ten[1] + ten[2])[inner] - seq[3][inner]).max()
    assert err < 0.25 * blend


def test_time_resampling_leaves_matching_steps_alone():
    seq = moving_blobs(3, size=(48, 56))
    assert loso.to_time_step(seq, 300.0, 300.0) is seq


def test_training_events_leave_out_the_source_and_events():
    events = loso.training_events("fmi", [])
    assert not any(e.startswith("fmi/") for e in events)
    final = loso.training_events(None, ["fmi/pgm/20170509"])
    assert "fmi/pgm/20160928" in final and "fmi/pgm/20170509" not in final
    assert {loso.source_of(e) for e in final} == {"mch", "fmi", "bom"}
    with pytest.raises(ValueError, match="unknown radar event"):
        loso.training_events(None, ["nowhere/2020"])


def _table(ours_csi, lk_csi, fbi):
    rows = []
    for method, csi in (("convlstm", ours_csi), ("extrapolation", lk_csi), ("persistence", 0.1)):
        for lead in ("30 min", "60 min"):
            rows.append({"source": "fmi", "method": method, "lead_step": 6 if lead[0] == "3" else 12,
                         "lead_time": lead, "CSI@1": csi, "FSS@1": csi, "FBI@1": fbi})  # fmt: skip
    return pd.DataFrame(rows)


def test_loso_checks_compare_with_extrapolation_and_the_bias_range():
    good = evaluate.loso_checks(_table(0.5, 0.4, 1.1))
    assert len(good) == 4 and all(good.values())
    bad = evaluate.loso_checks(_table(0.3, 0.4, 1.5))
    assert not any(bad.values())
    head = evaluate.loso_headline(_table(0.5, 0.4, 1.1))
    assert set(head.lead_time) == {"30 min", "60 min"} and len(head) == 6


def test_windows_need_rain_in_the_last_context_frame():
    frames = np.zeros((40, 32, 32), np.float32)
    frames[23] = 2.0  # the last context frame of the second window only
    assert loso.test_windows(frames) == [18]


def test_loso_mode_needs_the_fold_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="no fold checkpoint"):
        evaluate.loso_evaluate(tmp_path, tmp_path)


def test_scores_carry_their_labels_and_five_minute_leads():
    rng = np.random.default_rng(0)
    truth = rng.gamma(0.5, 2.0, size=(2, 3, 1, 24, 24)).astype(np.float32)
    methods = {"convlstm": truth * 0.9, "extrapolation": np.roll(truth, 5, axis=-1)}
    table = loso._scored(methods, truth, (1.0, 5.0), source="mch", event="mch/20160711")
    assert list(table.columns[:3]) == ["source", "event", "method"]
    assert list(table.lead_time[:3]) == ["5 min", "10 min", "15 min"]
    ours = table[table.method == "convlstm"]
    assert (ours["CSI@1"] > table[table.method == "extrapolation"]["CSI@1"].values).all()


def test_the_card_describes_every_postprocess_option():
    """Each postprocess a checkpoint may name has its route sentence; the after-advection one
    says that a zero head is then no longer extrapolation."""
    from model.lagrangian import POSTPROCESS_OPTIONS

    assert set(evaluate.POSTPROCESS_CARD) == set(POSTPROCESS_OPTIONS) - {"none"}
    assert "no longer exactly extrapolation" in evaluate.POSTPROCESS_CARD["cdf_match_after"]
    assert "changes nothing" in evaluate.POSTPROCESS_CARD["cdf_match"]

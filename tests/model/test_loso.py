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


def test_candidate_forecasts_equal_the_checkpoint_rollout_for_each_postprocess():
    """The network run once and finished by each candidate gives what a checkpoint naming that
    candidate forecasts through model.tiling.domain_rollout."""
    import torch

    from model.lagrangian import POSTPROCESS_OPTIONS
    from model.tiling import domain_rollout
    from tests.model.test_lagrangian import DB, residual_model

    net = residual_model((16, 16))
    torch.manual_seed(1)
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.1)  # a non-zero head: the candidates differ
    seq = moving_blobs(10, size=(40, 48), shift=(2, 3))
    seq[:, :3, :5] = np.nan  # outside the radar
    context = seq[:6, None]  # [Tc, 1, Y, X]
    meta = {"frame": "lagrangian", "normalization": DB, "resolution_km": 1.0}
    assert loso.candidate_forecasts(net, meta, context).keys() == set(loso.POSTPROCESS_CANDIDATES)
    got = loso.candidate_forecasts(net, meta, context, candidates=POSTPROCESS_OPTIONS)
    for name, forecast in got.items():
        ref = domain_rollout(net, context, loso.HORIZON, meta={**meta, "postprocess": name},
                             data_pixel_km=1.0)["prediction"].values  # fmt: skip
        np.testing.assert_array_equal(forecast, ref.astype(np.float32))
    assert not np.array_equal(got["none"], got["cdf_match_after"], equal_nan=True)


def _validation(margins: dict, fbi: dict) -> pd.DataFrame:
    """A validation table: per candidate a CSI@1/FSS@1 margin over extrapolation (0.3) and an
    FBI@1, the same on two sources."""
    rows = []
    for source in ("mch", "bom"):
        for method, margin in {**margins, "extrapolation": 0.0}.items():
            for lead in ("30 min", "60 min"):
                rows.append({"source": source, "method": method, "lead_time": lead,
                             "CSI@1": 0.3 + margin, "FSS@1": 0.5 + margin,
                             "FBI@1": fbi.get(method, 1.0)})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_postprocess_is_chosen_by_margin_among_candidates_with_a_fair_bias():
    table = _validation({"a": 0.02, "b": 0.05, "c": 0.01}, {"b": 0.6})
    record = loso.choose_postprocess(table, candidates=("a", "b", "c"))
    assert record["chosen"] == "a"  # b has the largest margin but FBI 0.6 at 60 min
    assert record["margin"]["b"] == pytest.approx(0.05)
    assert record["bias_ok"] == {"a": True, "b": False, "c": True}
    assert record["scores"]["b"]["bom"]["FBI@1 60 min"] == 0.6
    assert "training events" in record["criterion"]
    none_fair = loso.choose_postprocess(_validation({"a": 0.02, "b": 0.05}, {"a": 2, "b": 2}),
                                        candidates=("a", "b"))  # fmt: skip
    assert none_fair["chosen"] == "b"  # no candidate meets the bias range: the margin decides


def test_select_postprocess_validates_on_the_training_events_only(monkeypatch):
    """The held-out source's events are never read while choosing."""
    seen = []

    def fake_frames(root, event):
        seen.append(event)
        return np.zeros((20, 8, 8), np.float32)  # dry: no window

    monkeypatch.setattr(loso, "event_frames", fake_frames)
    meta = {"training": {"events": loso.training_events("fmi", []), "held_out": "fmi"}}
    with pytest.raises(ValueError, match="no rainy validation windows"):
        loso.select_postprocess(None, meta, "root")
    assert seen and not any(e.startswith("fmi/") for e in seen)
    with pytest.raises(ValueError, match="no training events"):
        loso.select_postprocess(None, {"training": {}}, "root")


def test_paired_intervals_cover_the_30_and_60_minute_leads():
    rng = np.random.default_rng(0)
    truth = rng.gamma(0.5, 2.0, size=(5, loso.HORIZON, 1, 24, 24)).astype(np.float32)
    rows = loso.paired_intervals(truth, np.roll(truth, 3, axis=-1), truth, source="mch")
    assert [(r["lead_time"], r["score"]) for r in rows] == [
        ("30 min", "CSI@1"),
        ("30 min", "FSS@1"),
        ("60 min", "CSI@1"),
        ("60 min", "FSS@1"),
    ]
    for row in rows:  # a perfect forecast against a shifted one: every resample favours ours
        assert 0 < row["low"] <= row["difference"] <= row["high"] and row["windows"] == 5


def test_the_card_prints_the_intervals_and_each_folds_selection():
    rows = loso.paired_intervals(*_three_fields(), source="fmi")
    record = loso.choose_postprocess(_validation({"none": 0.0, "cdf_match": 0.01}, {}),
                                     candidates=("none", "cdf_match"))  # fmt: skip
    facts = {"fmi": {"windows": {"fmi/pgm/20160928": 3}, "intervals": rows, "selection": record}}
    meta = {"name": "radar_lagrangian", "selection": record, "training": {}}
    card = evaluate.loso_card(meta, _table(0.5, 0.4, 1.1), facts, {})
    assert "90% bootstrap intervals of ours - extrapolation" in card
    line = next(x for x in card.splitlines() if x.startswith("| fmi | 60 min | CSI@1 |"))
    ci = rows[2]
    assert f"{ci['difference']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]" in line
    assert "| fmi | mch, bom | cdf_match |" in card and "| shipped | mch, bom | cdf_match |" in card
    assert "intervals that include 0 (no clear win): none" in card


def _three_fields():
    """Ours (the truth itself), LK (shifted) and the truth: ``[3, HORIZON, 1, 24, 24]`` mm/h."""
    truth = np.random.default_rng(2).gamma(0.5, 2.0, size=(3, loso.HORIZON, 1, 24, 24))
    return truth, np.roll(truth, 3, axis=-1), truth

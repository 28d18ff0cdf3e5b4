"""bench.video_ablation: paired errors and the table's ratios to the baseline."""

import numpy as np
import pytest

from bench.video_ablation import BASELINE, VARIANTS, paired_error, table_lines


def _row(name, mse, mae, ssim, seq):
    return {"variant": name, "steps": 10, "train_s": 5.0, "MSE": mse, "MAE": mae, "SSIM": ssim,
            "SSIM_lead1": ssim + 0.01, "seq_MSE": np.asarray(seq, float), "grad_norm": 0.25}  # fmt: skip


def test_paired_error_is_the_mean_and_standard_error_of_the_differences():
    mean, se = paired_error(np.array([3.0, 5.0, 7.0]), np.array([1.0, 2.0, 3.0]))
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(np.std([2.0, 3.0, 4.0], ddof=1) / np.sqrt(3))


def test_table_gives_ratios_to_the_baseline_row():
    rows = [_row("start", 120.0, 270.0, 0.4, [1, 2, 3]), _row(BASELINE, 100.0, 200.0, 0.5, [1, 1, 1]),
            _row("l1l2", 110.0, 150.0, 0.6, [2, 2, 2])]  # fmt: skip
    lines = table_lines(rows, 0.7)
    l1l2 = next(line for line in lines if line.startswith("| l1l2 "))
    assert "| 1.100 | 0.750 | 1.200 | +1.00 (0.00) | 0.25 |" in l1l2
    base = next(line for line in lines if line.startswith(f"| {BASELINE} "))
    assert "| 1.000 | 1.000 | 1.000 | +0.00 (0.00) |" in base
    assert lines[-1].split("|")[7].strip() == "0.700"  # persistence in the lead-1 SSIM column


def test_every_variant_changes_one_train_option_of_the_baseline():
    from model.train_config import TrainSettings

    fields = set(TrainSettings.__dataclass_fields__)
    base = VARIANTS[BASELINE].changes
    assert set(base) == {"ema_decay"}  # scored apart; it does not change the trajectory
    for v in VARIANTS.values():
        assert set(v.changes) <= fields, v.name
        changed = {k for k, value in v.changes.items() if base.get(k) != value}
        assert len(changed) == (0 if v.name in (BASELINE, "mse_seed1") else 1), v.name


def test_rescore_reads_the_steps_of_a_log_and_the_earlier_training_seconds(tmp_path):
    import json

    from bench.video_ablation import earlier_train_seconds, logged_steps, write_results

    assert earlier_train_seconds(tmp_path) == {}
    (tmp_path / "log.csv").write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")
    assert logged_steps(tmp_path / "log.csv") == 3
    write_results(tmp_path, {"rows": [_row(BASELINE, 1.0, 2.0, 0.5, [1.0])]})
    assert earlier_train_seconds(tmp_path) == {BASELINE: 5.0}
    write_results(tmp_path, {"rows": [_row("l1l2", 1.0, 2.0, 0.5, [1.0])]}, rescore=True)
    assert earlier_train_seconds(tmp_path) == {BASELINE: 5.0}  # results.json kept
    rescored = json.loads((tmp_path / "rescored.json").read_text())
    assert [r["variant"] for r in rescored["rows"]] == ["l1l2"] and "seq_MSE" not in rescored[
        "rows"
    ][0]

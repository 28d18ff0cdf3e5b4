"""Deep-link parsing: only known names and in-range indices are accepted."""

from dashboard.state import DeepLink, to_query


def test_valid_values_are_taken_and_removed():
    link = DeepLink.from_query({"dataset": "radar_synthetic", "sample": "3", "gate": "forget"})
    assert link.take_choice("dataset", ["moving_mnist", "radar_synthetic"], what="dataset") == (
        "radar_synthetic"
    )
    assert link.take_int("sample", 0, 7, what="sample") == 3
    assert link.take_choice("gate", ["input", "forget"], what="gate") == "forget"
    assert link.pending == {} and link.messages == []


def test_unknown_names_give_a_message_and_no_value():
    link = DeepLink.from_query({"dataset": "../../etc/passwd", "checkpoint": "nope"})
    assert link.take_choice("dataset", ["moving_mnist"], what="dataset") is None
    assert link.take_choice("checkpoint", [], what="checkpoint") is None
    assert len(link.messages) == 2
    assert "'../../etc/passwd' is not a known dataset" in link.messages[0]
    assert "available: moving_mnist" in link.messages[0]
    assert "available: none" in link.messages[1]


def test_out_of_range_and_non_numbers_are_refused():
    link = DeepLink.from_query({"sample": "99", "step": "abc", "layer": "-1"})
    assert link.take_int("sample", 0, 7, what="sample") is None
    assert link.take_int("step", 0, 23, what="step") is None
    assert link.take_int("layer", 0, 1, what="layer") is None
    assert len(link.messages) == 3
    assert "from 0 to 7" in link.messages[0]


def test_channel_accepts_reductions_and_indices():
    assert DeepLink.from_query({"channel": "variance"}).take_channel(64) == "variance"
    assert DeepLink.from_query({"channel": "12"}).take_channel(64) == 12
    bad = DeepLink.from_query({"channel": "64"})
    assert bad.take_channel(64) is None and "hidden channel" in bad.messages[0]


def test_unknown_parameters_are_reported_and_missing_ones_ignored():
    link = DeepLink.from_query({"foo": "1"})
    assert "foo" in link.messages[0]
    assert link.take_int("sample", 0, 3, what="sample") is None
    assert len(link.messages) == 1


def test_drop_and_to_query():
    link = DeepLink.from_query({"gate": "forget"})
    link.drop("gate", "no gates")
    assert "no gates" in link.messages[0]
    assert to_query({"dataset": "x", "sample": 2, "layer": None}) == {"dataset": "x", "sample": "2"}


def test_default_window_is_the_checkpoints_training_window_else_fits_the_data():
    from dashboard.state import default_window

    assert default_window({"context": 6, "horizon": 12}, 40) == (6, 12)
    assert default_window({"context": 30, "horizon": 12}, 20) == (19, 12)  # context within data
    assert default_window({}, 40) == (10, 12)
    assert default_window({}, 15) == (10, 5)  # the horizon the data still holds
    assert default_window({}, 15, context=3) == (3, 12)  # the horizon follows a chosen context

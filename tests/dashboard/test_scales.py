"""8-bit colour scales: codes round-trip to physical values within one bin."""

import numpy as np
import pytest

from dashboard.scales import NO_DATA, error_scale, gate_scale, nice_upper, value_scale


def test_nice_upper():
    assert [nice_upper(v) for v in (0.7, 3.0, 7.0, 120.0)] == [1.0, 5.0, 10.0, 200.0]


@pytest.mark.parametrize(
    ("domain", "values"),
    [
        ("radar", [0.1, 0.5, 1.0, 3.3, 10.0, 47.0, 100.0]),
        ("traffic", [0.0, 12.0, 150.0, 299.0]),
        ("video", [0.0, 0.25, 0.5, 1.0]),
    ],
)
def test_codes_round_trip_within_one_bin(domain, values):
    scale = value_scale(
        domain, units="u", arrays=(np.array([0.0, 300.0 if domain == "traffic" else 1.0]),)
    )
    v = np.array(values)
    back = scale.decode(scale.encode(v))
    tol = np.array([scale.resolution(x) for x in v]) * 1.01 + 1e-9
    assert np.all(np.abs(back - v) <= tol), (back, v)


def test_radar_no_rain_and_no_data_codes():
    scale = value_scale("radar", units="mm/h")
    codes = scale.encode(np.array([np.nan, 0.0, 0.05, 0.1, 200.0]))
    assert codes[0] == NO_DATA
    assert codes[1] == 1 and codes[2] == 1  # below 0.1 mm/h: the no-rain colour
    assert codes[3] == 2
    assert codes[4] == 255  # clipped at the top of the scale
    assert np.isnan(scale.decode(codes)[0]) and scale.decode(codes)[1] == 0.0


def test_colorscale_reserves_no_data_and_no_rain_colours():
    scale = value_scale("radar", units="mm/h")
    stops = scale.colorscale()
    assert stops[0][0] == 0.0 and stops[-1][0] == pytest.approx(1.0)
    assert all(a[0] <= b[0] for a, b in zip(stops, stops[1:], strict=False))
    assert "#ffffff" in [s[1] for s in stops[2:4]]


def test_ticks_label_physical_values():
    scale = value_scale("radar", units="mm/h")
    vals, text = scale.ticks()
    assert "1" in text and "10" in text and "100" in text
    assert len(vals) == len(text) and all(v >= 2 for v in vals)
    decoded = scale.decode(np.array(vals[text.index("10")]))
    assert decoded == pytest.approx(10.0, rel=0.03)


def test_error_scale_is_symmetric_and_gate_ranges():
    e = error_scale(units="mm/h", arrays=(np.array([-3.0, 7.0]),))
    assert e.vmin == -e.vmax
    assert e.vmax >= 6.9
    assert gate_scale("forget").vmin == 0.0 and gate_scale("forget").vmax == 1.0
    assert gate_scale("hidden").vmin == -1.0
    cell = gate_scale("cell", arrays=(np.array([-4.2, 3.0]),))
    assert cell.vmax >= 4.2 and cell.vmin == -cell.vmax


def test_empty_range_is_refused():
    from dashboard.scales import Scale

    with pytest.raises(ValueError, match="empty"):
        Scale(1.0, 1.0, "u", ((0, "#000"), (1, "#fff")))

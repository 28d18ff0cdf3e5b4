"""Whole-domain rollouts: tiles, blending, stitched gates, resampling to the checkpoint's pixel size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from model.convlstm import ConvLSTM, ConvLSTMConfig
from model.regrid import (
    AxisMap,
    GridResampler,
    PixelSize,
    apply_separable,
    checkpoint_pixel_km,
    data_pixel_size,
)
from model.rollout import CaptureBudgetError, rollout
from model.tiling import domain_capture_bytes, domain_rollout, plan_tiles, tiled_rollout
from tests.conftest import REPO_ROOT

RADAR_MCH = REPO_ROOT / "checkpoints" / "radar_mch"


@pytest.fixture
def model():
    """Tiny network on 8x8 frames, patch 2, with random per-pixel peepholes (tile position
    matters, as in a trained checkpoint)."""
    torch.manual_seed(0)
    net = ConvLSTM(
        in_channels=1, hidden_channels=(3, 2), kernel_size=3, patch_size=2, frame_size=(8, 8)
    )
    with torch.no_grad():
        for cell in net.cells:
            cell.peephole_weight.normal_(0, 0.5)
    return net.eval()


def frames(n_time: int, ny: int, nx: int, *, seed: int = 0, km: float | None = 1.0):
    """Rain-like frames ``(time, channel, y, x)``, with km coordinates when ``km`` is given."""
    values = np.random.default_rng(seed).gamma(0.6, 2.0, (n_time, 1, ny, nx)).astype(np.float32)
    coords = {"time": pd.date_range("2024-05-01 12:00", periods=n_time, freq="5min"),
              "channel": ["rain"]}  # fmt: skip
    if km is not None:
        coords["y"] = ((np.arange(ny) + 0.5) * km)[::-1]
        coords["x"] = (np.arange(nx) + 0.5) * km
    array = xr.DataArray(values, dims=("time", "channel", "y", "x"), coords=coords,
                         attrs={"units": "mm/h", "time_step": "PT5M", "domain": "radar"})  # fmt: skip
    if km is not None:
        array.y.attrs["units"] = array.x.attrs["units"] = "km"
    return array


def constant_model(value: float, hidden=(3, 2)) -> ConvLSTM:
    """A network whose forecast is ``value`` everywhere and whose gates are the same at every
    pixel: all weights zero, random biases, head bias ``value``."""
    torch.manual_seed(1)
    net = ConvLSTM(in_channels=1, hidden_channels=hidden, patch_size=2, frame_size=(8, 8))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for cell in net.cells:
            cell.input_conv.bias.normal_(0, 1)
        net.head.bias.fill_(value)
    return net.eval()


# --- tiles and weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("domain,tile,patch,stride", [
    ((8, 8), (8, 8), 2, None),
    ((21, 37), (8, 8), 2, None),
    ((21, 37), (8, 8), 2, 6),
    ((21, 37), (8, 8), 2, 2),  # a pixel under up to 4 tiles per axis
    ((710, 640), (128, 128), 4, None),
    ((5, 3), (8, 8), 1, 8),  # smaller than a tile
])  # fmt: skip
def test_blend_weights_are_a_positive_partition_of_unity(domain, tile, patch, stride):
    layout = plan_tiles(domain, tile, patch=patch, stride=stride)
    ph, pw = layout.padded
    assert ph >= domain[0] and pw >= domain[1] and ph % patch == 0 and pw % patch == 0
    assert layout.starts_y[-1] + tile[0] == ph  # the last tile is flush with the (padded) border
    assert all(s % patch == 0 for s in layout.starts_y + layout.starts_x)
    for latent in (False, True):
        scale = patch if latent else 1
        wy, wx = layout.weights(0, latent=latent), layout.weights(1, latent=latent)
        total = np.zeros((ph // scale, pw // scale))
        for y0, x0 in layout.origins:
            iy, ix = layout.starts_y.index(y0), layout.starts_x.index(x0)
            w = np.outer(wy[iy], wx[ix])
            assert (w > 0).all()
            ly, lx = y0 // scale, x0 // scale
            total[ly : ly + w.shape[0], lx : lx + w.shape[1]] += w
        np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-12)


def test_regular_overlaps_need_no_normalisation():
    """Two sin² ramps over one overlap already sum to 1 (the windows are a Tukey partition)."""
    layout = plan_tiles((24, 8), (8, 8), stride=4)
    assert layout.starts_y == (0, 4, 8, 12, 16)
    middle = layout.weights(0)[2]
    ramp = np.sin(0.5 * np.pi * (np.arange(4) + 0.5) / 4) ** 2
    np.testing.assert_allclose(middle, np.concatenate([ramp, ramp[::-1]]), atol=1e-12)


def test_bad_layouts_say_what_fits():
    with pytest.raises(ValueError, match=r"stride=3 must be a multiple of the patch size 2"):
        plan_tiles((20, 20), (8, 8), patch=2, stride=3)
    with pytest.raises(ValueError, match=r"from 2 to 8 \(the tile\)"):
        plan_tiles((20, 20), (8, 8), patch=2, stride=10)
    with pytest.raises(ValueError, match="smaller than one latent cell"):
        plan_tiles((1, 20), (8, 8), patch=2)


# --- tiled rollouts ------------------------------------------------------------------------------


def test_one_tile_domain_equals_the_plain_rollout(model):
    ctx, truth = frames(5, 8, 8), frames(3, 8, 8, seed=1)
    plain = rollout(model, ctx, 3, truth=truth, capture=True, precision="fp32")
    tiled = tiled_rollout(model, ctx, 3, truth=truth, capture=True, precision="fp32")
    assert set(tiled.data_vars) == set(plain.data_vars)
    for name in plain.data_vars:
        assert tiled[name].dims == plain[name].dims and tiled[name].dtype == plain[name].dtype
    np.testing.assert_allclose(tiled.prediction, plain.prediction, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(tiled.gates.values, plain.gates.values)
    np.testing.assert_array_equal(tiled.truth.values, plain.truth.values)
    for name in ("time", "lead_time", "y", "x", "step", "phase", "layer", "gate"):
        np.testing.assert_array_equal(tiled[name].values, plain[name].values)
    assert tiled.attrs["tiles"] == 1 and tiled.attrs["tile_padding"] == [0, 0]
    assert {k: tiled.attrs[k] for k in plain.attrs} == plain.attrs


def test_pixels_under_one_tile_are_that_tiles_rollout(model):
    """Columns 0-3 only tile 0 covers, columns 12-13 only the flush last tile (corner x=6)."""
    ctx = frames(4, 8, 14)
    layout = plan_tiles((8, 14), (8, 8), patch=2, stride=4)
    assert layout.starts_x == (0, 4, 6)
    tiled = tiled_rollout(model, ctx, 3, capture=True, stride=4, precision="fp32")
    first = rollout(model, ctx[..., 0:8], 3, capture=True, precision="fp32")
    last = rollout(model, ctx[..., 6:14], 3, capture=True, precision="fp32")
    pred = tiled.prediction.values
    np.testing.assert_allclose(pred[..., :4], first.prediction.values[..., :4], atol=1e-6)
    np.testing.assert_allclose(pred[..., 12:], last.prediction.values[..., 6:], atol=1e-6)
    gates = tiled.gates.values  # latent columns 0-1 (tile 0 only) and 6 (last tile only)
    # float16 gates: the batched tile convolution may round one value a float16 step apart
    np.testing.assert_allclose(gates[..., :2], first.gates.values[..., :2], rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(gates[..., 6:], last.gates.values[..., 3:], rtol=2e-3, atol=1e-5)
    # in between, the blend differs from either tile alone
    assert np.abs(pred[..., 5] - first.prediction.values[..., 5]).max() > 1e-4


def test_tile_batches_do_not_change_the_result(model):
    ctx = frames(4, 19, 23)
    one = tiled_rollout(model, ctx, 2, capture=True, tile_batch=1, precision="fp32")
    many = tiled_rollout(model, ctx, 2, capture=True, tile_batch=7, precision="fp32")
    assert one.attrs["tiles"] > 7
    np.testing.assert_allclose(one.prediction, many.prediction, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        one.gates.values.astype(np.float32), many.gates.values.astype(np.float32), atol=2e-3
    )


@pytest.mark.parametrize("stride", [2, 6, None])
def test_a_field_every_tile_forecasts_alike_comes_out_unchanged(stride):
    net = constant_model(2.5)
    plain = rollout(net, frames(3, 8, 8), 2, capture=True, precision="fp32")
    ds = tiled_rollout(net, frames(3, 21, 37), 2, capture=True, stride=stride, precision="fp32")
    np.testing.assert_allclose(ds.prediction.values, 2.5, rtol=1e-6)
    # gates are the same at every latent cell: the stitched ones match the plain rollout's
    expect = plain.gates.values[..., :1, :1].astype(np.float32)  # [layer, gate, step, hidden, 1, 1]
    got = ds.gates.values.astype(np.float32)
    valid = ~np.isnan(expect)
    assert got.shape[-2:] == (10, 18)
    np.testing.assert_allclose(
        np.where(valid, got, 0), np.where(valid, np.broadcast_to(expect, got.shape), 0),
        rtol=2e-3, atol=1e-3,
    )  # fmt: skip
    assert np.isnan(got[1, :, :, 2:]).all()  # the narrower layer's padding stays NaN


def test_stitched_gates_have_the_domains_latent_shape(model):
    ctx = frames(4, 30, 23)
    ds = tiled_rollout(model, ctx, 2, capture={"layers": [0], "gates": ["forget", "cell"]})
    assert ds.gates.dims == ("layer", "gate", "step", "hidden", "gy", "gx")
    assert ds.gates.shape == (1, 2, 5, 3, 15, 11) and ds.gates.dtype == np.float16
    assert np.isfinite(ds.gates.values).all()
    assert ds.prediction.shape == (2, 1, 30, 23) and np.isfinite(ds.prediction.values).all()
    # gate_y/gate_x: latent cell centres in the data's coordinates (km, y decreasing)
    np.testing.assert_allclose(ds.gate_x.values[:2], [1.0, 3.0])
    np.testing.assert_allclose(ds.gate_y.values[:2], [29.0, 27.0])
    assert ds.attrs["tile_padding"] == [0, 1]  # 23 -> 24: a multiple of the patch


def test_a_domain_smaller_than_the_tile_is_padded(model):
    ds = tiled_rollout(model, frames(4, 5, 6), 2, capture=True, precision="fp32")
    assert ds.prediction.shape == (2, 1, 5, 6) and ds.gates.shape[-2:] == (2, 3)
    assert ds.attrs["tile_padding"] == [3, 2]
    padded = frames(4, 5, 6).pad(y=(0, 3), x=(0, 2))  # NaN, as the tiling pads
    plain = rollout(model, padded.values, 2, precision="fp32")
    np.testing.assert_allclose(
        ds.prediction.values, plain.prediction.values[..., :5, :6], atol=1e-6
    )


def test_capture_budget_counts_the_domain(model):
    ctx = frames(4, 20, 20)
    need = domain_capture_bytes(model, True, 4 + 3 - 1, (20, 20))
    assert need == 2 * 2 * 6 * 6 * 3 * 10 * 10  # fp16, layers, gates, steps, widest, gy, gx
    with pytest.raises(CaptureBudgetError, match=r"20x20 px domain .* over the budget"):
        tiled_rollout(model, ctx, 3, capture=True, byte_budget=need - 1)
    ds = tiled_rollout(model, ctx, 3, capture=True, byte_budget=need)
    assert ds.gates.nbytes == need


def test_radar_capture_sizes_in_the_docs():
    """The figures stated in model/tiling.py for radar_mch (12 + 12 frames, all gates)."""
    config = ConvLSTMConfig.from_dict(json.loads((RADAR_MCH / "meta.json").read_text())["config"])
    net = ConvLSTM(config=config)
    mib = [domain_capture_bytes(net, True, 23, d) / 2**20 for d in ((710, 640), (1000, 1000))]
    assert [round(m) for m in mib] == [477, 1053]


def test_channel_mismatch_is_explained(model):
    with pytest.raises(ValueError, match="2 channel.* the model reads 1"):
        tiled_rollout(model, np.zeros((3, 2, 9, 9), np.float32), 2)


# --- pixel sizes and resampling ------------------------------------------------------------------


def smooth(ny: int, nx: int, km: float, wavelength_km: float = 40.0) -> np.ndarray:
    """A smooth positive field ``[ny, nx]`` sampled at pixel centres ``km`` apart."""
    y = (np.arange(ny) + 0.5) * km
    x = (np.arange(nx) + 0.5) * km
    k = 2 * np.pi / wavelength_km
    return (2.0 + np.sin(k * y)[:, None] * np.cos(0.7 * k * x)[None, :]).astype(np.float32)


@pytest.mark.parametrize("data_km", [0.5, 0.7, 2.0])
def test_resampling_round_trip_keeps_a_smooth_field(data_km):
    n = int(round(120 / data_km))
    field = smooth(n, n + 6, data_km)
    grid = GridResampler.for_pixel_size(field.shape, PixelSize(data_km, data_km, "test"), 1.0)
    assert grid.model_shape == (round(n * data_km), round((n + 6) * data_km))
    model_grid = grid.to_model(field)
    # on the model grid, the same field sampled at 1 km (centred grids: compare the interior)
    back = grid.to_data(model_grid)
    assert back.shape == field.shape
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(back[inner] - field[inner]).max() < 0.02  # amplitude 1, wavelength 40 km
    assert abs(model_grid.mean() - field.mean()) < 0.01


def test_area_weights_are_block_means_for_integer_factors_and_exact_overlaps_otherwise():
    field = np.random.default_rng(0).random((2, 12, 18)).astype(np.float32)
    grid = GridResampler.for_pixel_size((12, 18), PixelSize(0.5, 0.5, "test"), 1.0)
    blocks = field.reshape(2, 6, 2, 9, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(grid.to_model(field), blocks, rtol=1e-6)
    # 0.75 km -> 1 km along one axis: target cell 0 covers source 0 (0.75) and 1/3 of source 1
    op = AxisMap.for_sizes(4, 0.75, 1.0).to_model().toarray()
    np.testing.assert_allclose(op[0, :2], [0.75, 0.25], rtol=1e-6)
    np.testing.assert_allclose(op.sum(axis=1), 1.0, rtol=1e-6)


def test_invalid_pixels_carry_no_weight():
    field = np.ones((1, 4, 4), np.float32) * 3.0
    field[0, 0, 0] = np.nan  # 1 of 4 in the first 2x2 block: the mean of the rest
    field[0, 2:, 2:] = np.nan
    field[0, 2, 2] = 5.0  # 1 of 4 valid: under half, NaN
    grid = GridResampler.for_pixel_size((4, 4), PixelSize(1.0, 1.0, "test"), 2.0)
    out = grid.to_model(field)[0]
    assert out[0, 0] == pytest.approx(3.0) and np.isnan(out[1, 1])
    assert np.isfinite(out[0, 1]) and np.isfinite(out[1, 0])


def test_apply_separable_keeps_leading_axes():
    op = AxisMap.for_sizes(6, 1.0, 2.0).to_model()
    out = apply_separable(op, op, np.ones((2, 3, 6, 6), np.float32))
    assert out.shape == (2, 3, 3, 3) and np.allclose(out, 1.0)


def test_pixel_size_from_coordinates_and_attrs():
    km = frames(1, 4, 5, km=2.0)
    assert (data_pixel_size(km).dy_km, data_pixel_size(km).dx_km) == (2.0, 2.0)
    metres = km.assign_coords(y=km.y * 1000, x=km.x * 500)
    metres.y.attrs["units"] = metres.x.attrs["units"] = "m"
    size = data_pixel_size(metres)
    assert (size.dy_km, size.dx_km) == (2.0, 1.0)
    index = frames(1, 4, 5, km=None).assign_coords(y=np.arange(4), x=np.arange(5))
    assert data_pixel_size(index) is None
    index.attrs["resolution_km"] = 0.5
    assert data_pixel_size(index).dx_km == 0.5
    assert data_pixel_size(np.zeros((1, 1, 4, 5))) is None
    irregular = km.assign_coords(x=[0.0, 1.0, 2.0, 4.0, 5.0])
    irregular.x.attrs["units"] = "km"
    with pytest.raises(ValueError, match="not evenly spaced"):
        data_pixel_size(irregular)


def test_latlon_grid_gets_the_local_scale_at_its_centre():
    lat = np.linspace(48.0, 46.0, 201)  # 0.01 deg, north at row 0
    lon = np.linspace(6.0, 10.0, 401)
    data = xr.DataArray(np.zeros((1, 1, 201, 401), np.float32),
                        dims=("time", "channel", "y", "x"), coords={"y": lat, "x": lon})  # fmt: skip
    data.y.attrs["units"] = "degrees_north"
    data.x.attrs["units"] = "degrees_east"
    size = data_pixel_size(data)
    deg_km = 6371.0088 * np.pi / 180
    assert size.dy_km == pytest.approx(0.01 * deg_km, rel=1e-6)
    assert size.dx_km == pytest.approx(0.01 * deg_km * np.cos(np.radians(47.0)), rel=1e-6)
    expect = 1 - np.cos(np.radians(48.0)) / np.cos(np.radians(47.0))  # the poleward edge
    assert size.scale_error == pytest.approx(expect, rel=1e-6)
    assert "latitude/longitude" in size.method


def test_checkpoint_pixel_size_from_metadata():
    meta = json.loads((RADAR_MCH / "meta.json").read_text())
    assert checkpoint_pixel_km(meta) == 1.0  # dataset_options.options.resolution_km
    assert checkpoint_pixel_km({"resolution_km": 2.0, "dataset": "radar_mch"}) == 2.0
    assert checkpoint_pixel_km({"dataset": "radar_synthetic"}) == 1.0
    assert checkpoint_pixel_km({"dataset": "radar_fmi", "dataset_options": {}}) == 1.0
    assert checkpoint_pixel_km({"dataset": "moving_mnist"}) is None


def test_domain_rollout_resamples_to_the_checkpoint_and_back():
    net = constant_model(2.5)
    ctx = frames(3, 12, 10, km=2.0)  # 2 km data for a 1 km checkpoint
    truth = frames(2, 12, 10, km=2.0, seed=3)
    ds = domain_rollout(net, ctx, 2, meta={"resolution_km": 1.0}, truth=truth, capture=True,
                        precision="fp32")  # fmt: skip
    assert ds.prediction.shape == (2, 1, 12, 10)
    np.testing.assert_allclose(ds.prediction.values, 2.5, rtol=1e-6)
    np.testing.assert_array_equal(ds.truth.values, truth.values)  # the data grid, untouched
    np.testing.assert_array_equal(ds.context.values, ctx.values)
    np.testing.assert_array_equal(ds.x.values, ctx.x.values)
    assert ds.attrs["model_grid"] == [24, 20] and ds.attrs["data_pixel_km"] == [2.0, 2.0]
    assert ds.gates.shape[-2:] == (12, 10)  # 24x20 model px / patch 2
    # latent cell 0 spans model px 0-1 = 2 km = data pixel 0: centred on x = 1 km
    np.testing.assert_allclose(ds.gate_x.values[:2], [1.0, 3.0])
    assert "area-weighted" in ds.attrs["regrid"] and "bilinear" in ds.attrs["regrid"]


def test_latlon_data_is_forecast_at_the_checkpoints_pixel_size(model):
    """0.018 x 0.025 deg at 47 N is about 2 x 1.9 km: the 1 km model grid is twice as fine."""
    ctx = frames(3, 10, 12)
    ctx = ctx.assign_coords(y=47.09 - 0.018 * np.arange(10), x=6.0 + 0.025 * np.arange(12))
    ctx.y.attrs["units"], ctx.x.attrs["units"] = "degrees_north", "degrees_east"
    ctx = ctx.transpose("time", "y", "x", "channel")  # any order of the dims
    ds = domain_rollout(model, ctx, 2, model_pixel_km=1.0, capture=True, precision="fp32")
    assert ds.prediction.dims == ("time", "channel", "y", "x")
    assert ds.prediction.shape == (2, 1, 10, 12) and np.isfinite(ds.prediction.values).all()
    assert ds.attrs["model_grid"] == [20, 23]  # 10 x 2.00 km, 12 x 1.90 km at 1 km
    assert "latitude/longitude" in ds.attrs["regrid"]
    assert 46.9 < ds.gate_y.values.min() < ds.gate_y.values.max() < 47.1  # degrees


def test_domain_rollout_at_the_checkpoints_pixel_size_is_the_tiled_rollout(model):
    ctx = frames(4, 19, 23)
    a = domain_rollout(model, ctx, 2, meta={"resolution_km": 1.0}, precision="fp32")
    b = tiled_rollout(model, ctx, 2, precision="fp32")
    np.testing.assert_array_equal(a.prediction.values, b.prediction.values)
    assert a.attrs["regrid"].startswith("none")
    video = domain_rollout(model, ctx.values, 2, meta={"dataset": "moving_mnist"})
    assert "states no pixel size" in video.attrs["regrid"]


def test_domain_rollout_needs_the_datas_pixel_size(model):
    with pytest.raises(ValueError, match="pass data_pixel_km="):
        domain_rollout(model, np.zeros((3, 1, 9, 9), np.float32), 2, model_pixel_km=1.0)
    ds = domain_rollout(
        model, np.zeros((3, 1, 9, 9), np.float32), 2, model_pixel_km=1.0, data_pixel_km=0.5
    )
    assert ds.attrs["model_grid"] == [4, 4] and ds.prediction.shape == (2, 1, 9, 9)


# --- the shipped radar checkpoint ----------------------------------------------------------------


def test_radar_mch_forecasts_a_200_by_180_domain():
    from datasets.radar_synthetic import synthetic_precipitation
    from model.checkpoint import load_checkpoint

    net, meta = load_checkpoint(RADAR_MCH, device="cpu")
    seq = synthetic_precipitation(n_samples=1, grid=200, frames=8).isel(sample=0)[..., :180]
    ctx, truth = seq[:4], seq[4:]
    ds = domain_rollout(net, ctx, 4, meta=meta, truth=truth, capture={"layers": [1]},
                        precision="fp32")  # fmt: skip
    assert ds.prediction.shape == (4, 1, 200, 180) and ds.attrs["tiles"] == 6
    assert ds.gates.shape == (1, 6, 7, 32, 50, 45)
    pred = ds.prediction.values
    assert np.isfinite(pred).all() and pred.min() >= 0 and 0.01 < pred.mean() < 50
    # rows 0-63 and columns 0-51 are under the first tile alone (corners y 0, 64, 72; x 0, 52)
    plain = rollout(net, ctx[..., :128, :128], 4, precision="fp32",
                    normalizer=_normalizer(meta))  # fmt: skip
    np.testing.assert_allclose(pred[..., :64, :52], plain.prediction.values[..., :64, :52],
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def _normalizer(meta):
    from model.normalize import Normalizer

    return Normalizer.from_metadata(meta["normalization"])


@pytest.mark.shared
@pytest.mark.slow
def test_radar_mch_forecasts_the_whole_meteoswiss_composite(shared_data):
    """The real 640 x 710 km composite, NaN outside the radar's reach (skipped without
    ../shared/data): every pixel forecast, the truth's NaN kept for scoring."""
    from datasets.radar_io import find_radar_files, read_radar_sequence
    from model.checkpoint import load_checkpoint

    files = find_radar_files(shared_data / "radar" / "mch" / "20160711", source="mch")
    seq = read_radar_sequence(files[10:13], source="mch", grid=None, resolution_km=None, crop=None)
    seq = seq.isel(sample=0)
    assert seq.shape == (3, 1, 640, 710) and np.isnan(seq.values).mean() > 0.2
    net, meta = load_checkpoint(RADAR_MCH, device="cpu")
    ds = domain_rollout(net, seq[:2], 1, meta=meta, truth=seq[2:],
                        capture={"layers": [0], "gates": ["forget"]})  # fmt: skip
    assert ds.attrs["tiles"] == 99 and ds.attrs["regrid"].startswith("none")
    assert ds.gates.shape == (1, 1, 2, 32, 160, 177)
    assert np.isfinite(ds.prediction.values).all()
    np.testing.assert_array_equal(np.isnan(ds.truth.values), np.isnan(seq[2:].values))
    assert ds.time.values[0] == seq.time.values[2]  # real valid times

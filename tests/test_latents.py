import numpy as np
import pytest

from hsicodec.layers.network.latents import (
    LatentLayout,
    axis_interp,
    local_coords,
    node_range,
    pixel_latents,
    upsample,
    upsample_transpose,
)

LAYOUT = LatentLayout.from_config({"levels": [[8, 3, "linear"], [4, 2, "nearest"]], "coord_cell": 8})


def test_linear_matches_torch_interpolate_when_divisible():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    rows = axis_interp(0, 16, 4, 4, "linear")
    cols = axis_interp(0, 20, 4, 5, "linear")
    ours = upsample(g, rows, cols)
    ref = (
        torch.nn.functional.interpolate(
            torch.from_numpy(g).permute(2, 0, 1)[None], scale_factor=4, mode="bilinear", align_corners=False
        )[0]
        .permute(1, 2, 0)
        .numpy()
    )
    assert np.abs(ours - ref).max() < 1e-5


def test_transpose_is_adjoint():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(3, 4, 2)).astype(np.float32)
    rows, cols = axis_interp(0, 11, 4, 3, "linear"), axis_interp(0, 13, 4, 4, "linear")
    y = rng.normal(size=(11, 13, 2)).astype(np.float32)
    lhs = float(np.sum(upsample(g, rows, cols) * y))
    rhs = float(np.sum(g * upsample_transpose(y, rows, cols, (3, 4))))
    assert abs(lhs - rhs) < 1e-3


def test_window_equals_crop_of_full():
    rng = np.random.default_rng(2)
    h, w = 21, 19
    grids = [
        rng.normal(size=(*LAYOUT.grid_shape(i, h, w), lv.channels)).astype(np.float32)
        for i, lv in enumerate(LAYOUT.levels)
    ]
    full = pixel_latents(LAYOUT, grids, h, w, 0, h, 0, w).reshape(h, w, -1)
    win = pixel_latents(LAYOUT, grids, h, w, 5, 12, 3, 17).reshape(7, 14, -1)
    assert np.array_equal(full[5:12, 3:17], win)
    assert LAYOUT.count(h, w) == sum(g.size for g in grids)


def test_nearest_is_piecewise_constant_and_node_range():
    i0, i1, t = axis_interp(0, 10, 4, 3, "nearest")
    assert list(i0) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2] and np.all(t == 0)
    assert node_range(4, 8, 4, 3, "nearest") == (1, 2)
    assert node_range(0, 4, 4, 3, "linear") == (0, 2)


def test_local_coords_in_range():
    x = local_coords(LAYOUT, 0, 16, 0, 16, 16, 16)
    assert x.shape == (256, 2) and x.min() > -1 and x.max() < 1
    assert np.allclose(x[0], [-1 + 1 / 8, -1 + 1 / 8])
    whole = LatentLayout.from_config({"levels": [[0, 4, "nearest"]], "coord_cell": 0})
    g = local_coords(whole, 0, 10, 0, 20, 10, 20)
    assert np.allclose(g[0], [-0.9, -0.95]) and np.allclose(g[-1], [0.9, 0.95])
    assert whole.grid_shape(0, 123, 45) == (1, 1)
    assert np.all(axis_interp(0, 50, 0, 1, "nearest")[0] == 0)


def test_bad_layout_refused():
    with pytest.raises(ValueError):
        LatentLayout.from_config({"levels": [[0, 3, "linear"]], "coord_cell": 8})
    with pytest.raises(ValueError):
        LatentLayout.from_config({"levels": [[4, 3, "cubic"]], "coord_cell": 8})

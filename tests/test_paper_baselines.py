"""The paper's comparison set (issue #10): real files, rate met, decodable from bytes alone."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib import resources
from typing import Any, Callable

import numpy as np
import pytest

pytest.importorskip("imagecodecs")

from hsicodec.evaluation import inr  # noqa: E402
from hsicodec.evaluation import paper_baselines as P  # noqa: E402
from hsicodec.metrics import bpppb, max_abs_error, psnr, sam_degrees  # noqa: E402

STEPS = 25  # quick INR fits


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    path = resources.files("hsicodec.data") / "jasper_ridge_crop64.npy"
    with resources.as_file(path) as p:
        return np.ascontiguousarray(np.load(p)[:16, :16, :20])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _run(name: str, cube: np.ndarray, target: float):
    if name.startswith("inr"):
        fit: Callable[..., Any] = P.BASELINES[name]  # the INR baselines also take steps=
        return fit(cube, target, steps=STEPS)
    return P.BASELINES[name](cube, target)


# per codec a target reachable on the 16x16x20 crop, and one that is not
TARGETS = {"inr_fp32": 2.0, "inr_fp16": 2.0, "inr_sampling": 2.0, "pca_dct": 0.5, "jpeg_per_band": 3.0}
UNREACHABLE = {"inr_fp32": 0.2, "inr_fp16": 0.1, "inr_sampling": 0.2, "jpeg_per_band": 0.5}


def test_registry_and_labels():
    assert set(P.BASELINES) == {"inr_fp32", "inr_fp16", "inr_sampling", "pca_dct", "jpeg_per_band"}
    assert P.LABELS == {
        "inr_fp32": "INR",
        "inr_fp16": "INR (HP)",
        "inr_sampling": "INR + pixel sampling",
        "pca_dct": "PCA-DCT",
        "jpeg_per_band": "JPEG",
    }


def test_import_needs_no_torch():
    code = "import sys, hsicodec.evaluation.paper_baselines; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", list(TARGETS))
def test_meets_target_and_decodes_from_bytes(name, cube):
    target = TARGETS[name]
    res = _run(name, cube, target)
    assert res.reachable, res.note
    assert res.codec == name and res.blob is not None and res.n_bytes == len(res.blob)
    assert res.bpppb == pytest.approx(bpppb(len(res.blob), cube.shape))
    assert res.bpppb <= target
    dec = P.decode_baseline(name, bytes(res.blob))
    assert dec.shape == cube.shape and dec.dtype == cube.dtype
    assert psnr(cube, dec) == pytest.approx(res.psnr)
    assert sam_degrees(cube, dec) == pytest.approx(res.sam)
    assert max_abs_error(cube, dec) == pytest.approx(res.max_abs_error)
    assert math.isfinite(res.psnr) and res.psnr > 10.0
    assert res.encode_s > 0 and res.decode_s > 0
    assert "blob" not in res.to_dict()
    # deterministic given the cube
    again = _run(name, cube, target)
    assert again.blob == res.blob


@pytest.mark.parametrize("name", ["pca_dct", "jpeg_per_band"])
def test_classical_land_close_below_target(name, cube):
    res = _run(name, cube, TARGETS[name])
    assert res.bpppb > 0.85 * TARGETS[name]


@pytest.mark.parametrize("name", list(UNREACHABLE))
def test_unreachable_reported(name, cube):
    res = _run(name, cube, UNREACHABLE[name])
    assert not res.reachable and res.blob is None
    assert "cannot reach" in res.note
    assert res.n_bytes > 0 and res.bpppb > UNREACHABLE[name]
    assert math.isnan(res.psnr)


def test_inr_fp16_smaller_at_equal_net(cube):
    fit = inr.fit_inr(cube, 8, 2, steps=5)
    b32, b16 = inr.pack_inr(cube, fit, False), inr.pack_inr(cube, fit, True)
    assert len(b16) < len(b32)
    assert len(b32) == inr.inr_file_size(cube.shape, cube.dtype, 8, 2, False)
    assert len(b16) == inr.inr_file_size(cube.shape, cube.dtype, 8, 2, True)
    d32, d16 = inr.decode_inr(b32), inr.decode_inr(b16)
    assert abs(psnr(cube, d32) - psnr(cube, d16)) < 1.0  # half precision barely changes the fit


def test_inr_net_is_largest_below_target(cube):
    res = _run("inr_fp32", cube, 2.0)
    w, d = res.params["width"], res.params["depth"]
    target_bytes = int(2.0 * cube.size / 8)
    assert res.n_bytes == inr.inr_file_size(cube.shape, cube.dtype, w, d, False) <= target_bytes
    sizes = [inr.inr_file_size(cube.shape, cube.dtype, ww, dd, False) for ww in inr.INR_WIDTHS for dd in inr.INR_DEPTHS]
    assert max(s for s in sizes if s <= target_bytes) == res.n_bytes
    assert res.params["steps"] == STEPS


def test_inr_fp16_picks_bigger_net(cube):
    r32, r16 = _run("inr_fp32", cube, 2.0), _run("inr_fp16", cube, 2.0)
    assert r16.params["n_params"] > r32.params["n_params"]
    assert r16.params["precision"] == "fp16"


def test_inr_sampling_compares_with_full_fit(cube):
    full = _run("inr_fp32", cube, 2.0)
    res = _run("inr_sampling", cube, 2.0)
    assert res.params["sample_fraction"] == pytest.approx(P.SAMPLE_FRACTION, abs=0.01)
    assert res.params["width"] == full.params["width"] and res.params["steps"] == full.params["steps"]
    assert res.params["speedup_vs_full"] > 0
    assert res.params["psnr_change_vs_full_db"] == pytest.approx(res.psnr - full.psnr, abs=1e-3)


def test_inr_decoder_rejects_trailing_bytes(cube):
    fit = inr.fit_inr(cube, 4, 2, steps=2)
    with pytest.raises(ValueError):
        inr.decode_inr(inr.pack_inr(cube, fit, False) + b"\0")


def test_float_cube_round_trip():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:12, 0:14] / 14.0
    cube = np.sin(3 * xx + yy)[..., None] * np.linspace(0.5, 1.5, 10) + rng.normal(0, 0.01, (12, 14, 10))
    cube = cube.astype(np.float32)
    for name, target in (("pca_dct", 2.0), ("jpeg_per_band", 6.0)):
        res = _run(name, cube, target)
        assert res.reachable, res.note
        dec = P.decode_baseline(name, res.blob)
        assert dec.dtype == np.float32 and psnr(cube, dec) == pytest.approx(res.psnr)

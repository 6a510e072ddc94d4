"""The map layer's optional post filter (codec.pf): its wire format, a deterministic decode, round trips
with and without it, and malformed parameters refused with HsimHeaderError."""

from __future__ import annotations

import numpy as np
import pytest

import hsicodec
from hsicodec.codec.cube import compress
from hsicodec.coding.spectral import reconstruct
from hsicodec.errors import HsimHeaderError
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.layers.maps import postfilter as pf
from hsicodec.layers.maps.postfit import fit_filter
from hsicodec.layers.maps.stagefit import decoded_parts, with_post_bytes


def _set_pf(data: bytes, value) -> bytes:
    hs = decode_hsim(data)
    header = {k: v for k, v in hs.header.items() if k != "sections"}
    header["codec"] = {**header["codec"], "pf": value}
    return encode_hsim(header, list(hs.sections.items()))


def test_pack_round_trip():
    ints = np.array([0, 1, -1, 2, -2, 7, -100, 4000, 0, 0])
    assert np.array_equal(pf.unpack(pf.pack(ints), len(ints), "x"), ints)
    assert pf.pack(np.zeros(8, np.int64)) == b"\xff"  # eight 1-bit zeros


def test_ring_features_leave_constants():
    maps = np.full((7, 9, 3), 2.5)
    assert all(np.array_equal(f, np.zeros_like(maps)) for f in pf.ring_features(maps))


def test_round_trip_with_filter_is_deterministic(crop_cube, crop_plain):
    maps, mean, basis, norm = decoded_parts(crop_plain, crop_cube.shape[2])
    fit = fit_filter(maps, crop_cube, mean, basis, norm, lam=0.0)
    assert fit is not None and fit.saving > 0
    data = with_post_bytes(crop_plain, {"pf": fit.data})
    assert len(data) == len(crop_plain) + len(fit.data) + 5  # the key and its bytes, nothing else changed
    one, two = hsicodec.decompress(data)[0], hsicodec.decompress(data)[0]
    assert np.array_equal(one, two)
    want = reconstruct(fit.post.apply(maps), norm, mean, basis, (0, crop_cube.shape[2]))
    np.testing.assert_allclose(one, want, rtol=0, atol=1e-9 * float(np.abs(crop_cube).max()))
    win = hsicodec.decompress(data, window=(5, 7, 20, 11))[0]
    np.testing.assert_array_equal(win, one[5:25, 7:18])
    err = lambda rec: float(np.mean((rec - crop_cube) ** 2))  # noqa: E731
    assert err(one) < err(hsicodec.decompress(crop_plain)[0])  # least squares taps only lower the error


def test_files_without_filter_unchanged(crop_cube, crop_plain):
    assert "pf" not in decode_hsim(crop_plain).header["codec"]
    assert compress(crop_cube, bpppb=0.05, layer="maps", post_filter=False) == crop_plain


def test_compress_with_post_filter_at_equal_bits(crop_cube, crop_plain):
    data = compress(crop_cube, bpppb=0.05, layer="maps", post_filter=True)
    assert len(data) <= int(0.05 * crop_cube.size / 8)
    rec = hsicodec.decompress(data)[0]
    mse = lambda r: float(np.mean((r - crop_cube) ** 2))  # noqa: E731
    assert mse(rec) <= mse(hsicodec.decompress(crop_plain)[0])  # kept only where it measures better


@pytest.mark.parametrize(
    "value",
    [
        b"",  # too short
        b"\x01",
        "ab",  # not bytes
        7,
        bytes([0, 10]) + b"\xff",  # m = 0
        bytes([200, 10]) + b"\xff" * 200,  # more maps than the file has
        bytes([1, 10]),  # taps missing
        bytes([1, 10, 0xF8, 0x00]),  # a byte left after the five taps
        bytes([1, 10, 0xF9]),  # nonzero padding
        bytes([1, 10, 0x00, 0x00, 0x00, 0x00]),  # a code over the prefix limit
        bytes([1, 10 | 0x40, 0xF8]),  # an unknown shared filter
    ],
)
def test_malformed_filter_raises(crop_plain, value):
    with pytest.raises(HsimHeaderError, match="pf"):
        hsicodec.decompress(_set_pf(crop_plain, value))


def test_filter_without_maps_raises(crop_plain):
    from hsicodec.layers.maps.layer import MapLayer

    with pytest.raises(HsimHeaderError, match="pf"):
        MapLayer().parse({"sp": {}, "pf": b"\x01\x00\xf8"}, {"shape": [4, 4, 4]}, None)


def test_shared_taps_reproducible(tmp_path):
    """tools/train_postfilter.py is a closed form: two runs give the same shared taps, bit for bit (two training
    scenes at one rate: ~10 s; skipped without the training cubes)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = json.loads((root / "hsicodec" / "models" / "hsi-grid-v1.json").read_text())
    data = next(
        (d for d in ((root / cfg["data_dir"]).resolve(), Path("/work/shared/data/hsi")) if d.is_dir()), root / "none"
    )
    scenes = [s for s in cfg["train_scenes"] if (data / f"{s}.npy").exists()][:2]
    if len(scenes) < 2:
        pytest.skip("the training scenes are not available")
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({**cfg, "train_scenes": scenes, "data_dir": str(data)}))
    outs = []
    for i in range(2):
        out = tmp_path / f"taps{i}.json"
        cmd = [sys.executable, str(root / "tools" / "train_postfilter.py"), "--config", str(config), "--rates", "0.01"]
        subprocess.run([*cmd, "--json", str(out)], check=True, capture_output=True)
        outs.append(json.loads(out.read_text()))
    assert outs[0]["taps"] == outs[1]["taps"] and outs[0]["train_scenes"] == scenes
    assert not set(scenes) & set(cfg["val_scenes"])


def _reference(maps: np.ndarray, own: np.ndarray, cross: np.ndarray | None) -> np.ndarray:
    """spec/hsim.md 10.10 written out pixel by pixel (a slow, crop_plain reading of the formula)."""
    h, w, k = maps.shape

    def at(j, r, c):  # half-sample symmetric extension
        r = -r - 1 if r < 0 else (2 * h - r - 1 if r >= h else r)
        c = -c - 1 if c < 0 else (2 * w - c - 1 if c >= w else c)
        return maps[r, c, j]

    def ring(j, r, c, a, b):
        offs = {(sa * a, sb * b) for sa in (1, -1) for sb in (1, -1)} | {
            (sa * b, sb * a) for sa in (1, -1) for sb in (1, -1)
        }
        return sum(at(j, r + dr, c + dc) for dr, dc in sorted(offs)) - len(offs) * maps[r, c, j]

    out = maps.copy()
    for j in range(len(own)):
        for r in range(h):
            for c in range(w):
                v = maps[r, c, j]
                for t, (a, b) in enumerate(pf.ORBITS):
                    v += own[j, t] * ring(j, r, c, a, b)
                if cross is not None and j > 0:
                    for t, (a, b) in enumerate(pf.ORBITS):
                        v += cross[j, t] * ring(0, r, c, a, b)
                out[r, c, j] = v
    return out


@pytest.mark.parametrize("m, with_cross", [(1, False), (3, True), (6, True)])
def test_filter_matches_spec_formula(m, with_cross):
    rng = np.random.default_rng(m)
    maps = rng.normal(size=(9, 7, 7))
    own, cross = rng.normal(size=(m, 5)) * 0.1, rng.normal(size=(m, 5)) * 0.1
    cross[0] = 0
    got = pf.apply_taps(maps, own, cross if with_cross else None)
    np.testing.assert_allclose(got, _reference(maps, own, cross if with_cross else None), rtol=0, atol=1e-12)
    assert np.array_equal(got, pf.apply_taps(maps, own, cross if with_cross else None))  # deterministic


@pytest.mark.parametrize("shape", [(37, 29, 6), (1, 1, 2), (2, 3, 4), (1, 9, 3), (12, 1, 5)])
@pytest.mark.parametrize("with_cross", [False, True])
def test_native_filter_equals_numpy_bit_for_bit(shape, with_cross):
    pytest.importorskip("hsicodec._native")
    rng = np.random.default_rng(sum(shape))
    maps = rng.normal(size=shape) * rng.uniform(0.1, 10, shape[2])
    m = min(shape[2], 4)
    own, cross = rng.normal(0, 0.05, (m, 5)), rng.normal(0, 0.05, (m, 5))
    cross[0] = 0
    cr = cross if with_cross else None
    native, ref = pf.apply_taps(maps, own, cr), pf.apply_taps(maps, own, cr, backend="numpy")
    assert np.array_equal(native, ref)  # the reference's order of operations, no fused multiply-adds

"""The scale benchmark (tools/bench_scale.py) on a tiny synthetic cube: scene building, the lean
PCA + JPEG 2000 anchor (same bytes as the anchor's), and one end-to-end run with its report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import bench_scale  # noqa: E402


def synthetic(h: int = 40, w: int = 36, c: int = 24, seed: int = 0) -> np.ndarray:
    """Three smooth endmember spectra mixed by smooth abundances, with noise; uint16."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, c)
    em = np.stack([1000 + 800 * np.sin(3 * x + p) + 300 * x for p in (0.0, 1.3, 2.6)])
    rr, cc = np.mgrid[0:h, 0:w] / 10.0
    ab = np.stack([np.sin(rr + 0.3 * k) * np.cos(cc - 0.2 * k) + 1.5 for k in range(3)], axis=-1)
    cube = ab @ em + rng.normal(0, 5, (h, w, c))
    return np.clip(np.rint(cube), 0, 65535).astype(np.uint16)


def test_scene_building(tmp_path):
    src = synthetic(10, 7, 12)
    for n, size in [(10, 27), (7, 5), (3, 3)]:
        want = np.pad(np.arange(n), (0, max(0, size - n)), mode="symmetric")[:size]
        assert np.array_equal(bench_scale.mirror_index(n, size), want)
    sub, how = bench_scale.resample_bands(src, 9)
    assert sub.shape[2] == 9 and "values untouched" in how
    assert np.array_equal(sub[..., 0], src[..., 0]) and np.array_equal(sub[..., -1], src[..., -1])
    up, how = bench_scale.resample_bands(src, 23)
    assert up.shape[2] == 23 and up.dtype == src.dtype and "interpolated" in how
    assert np.array_equal(up[..., 0], src[..., 0]) and np.array_equal(up[..., -1], src[..., -1])
    bench_scale.build_scene(src, (25, 16, 12), tmp_path / "s.npy")
    got = np.load(tmp_path / "s.npy")
    assert np.array_equal(got, np.pad(src, ((0, 15), (0, 9), (0, 0)), mode="symmetric"))
    assert bench_scale.pick_source(189, {"a": 198, "b": 205}) == "a"
    assert bench_scale.pick_source(224, {"a": 198, "b": 205}) == "b"
    assert bench_scale.parse_size("1024x512x189") == (1024, 512, 189)


def test_lean_pca_is_the_anchor():
    pytest.importorskip("imagecodecs")
    from hsicodec.evaluation.anchors import pca as anc
    from hsicodec.metrics import psnr

    cube = synthetic()
    ref, lean = anc._PCAModel(cube), bench_scale.LeanPCAModel(cube)
    ic = anc._imagecodecs()
    for k, d in [(3, 50.0), (6, 5.0)]:
        blob = bench_scale.pca_encode(lean, k, d, "j2k")
        assert blob == anc._pca_encode(ref, k, d, 1.0, ic)  # the anchor's bitstream, byte for byte
        full = bench_scale.pca_decode(blob, "j2k")
        assert np.array_equal(full, anc._pca_decode(blob))
        q = bench_scale.quality(cube, full)
        assert q["psnr"] == pytest.approx(psnr(cube, full), abs=1e-9)
        win = bench_scale.pca_decode(blob, "j2k", window=(5, 7, 10, 12))
        assert np.array_equal(win, full[5:15, 7:19])
        assert bench_scale.pca_decode(blob, "j2k", reduce=2).shape == (10, 9, cube.shape[2])
    blob, params = bench_scale.pca_anchor(cube, 0.5, "j2k")
    assert blob is not None and len(blob) <= 0.5 * cube.size / 8 and params["k"] >= 1
    assert params["k_search"] == "whole scene"
    blob, params = bench_scale.pca_anchor(cube, 0.5, "j2k", k_crop=16)  # k on the centre 16 x 16 crop
    assert params["k_search"] == "centre 16x16 crop" and 0.99 * 0.5 * cube.size / 8 <= len(blob) <= 0.5 * cube.size / 8
    if getattr(getattr(ic, "HTJ2K", None), "available", False):
        blob, _ = bench_scale.pca_anchor(cube, 0.5, "htj2k")
        assert blob is not None and len(blob) <= 0.5 * cube.size / 8
        assert bench_scale.pca_decode(blob, "htj2k", reduce=2).shape == (10, 9, cube.shape[2])


def test_targets_ratios():
    def scene(name, shape, **t):
        res = {c: {op: {"seconds": t.get(f"{c}_{op}", 1.0)} for op in bench_scale.OPS} for c in bench_scale.CODECS}
        return {"name": name, "shape": shape, "results": res}

    big = scene("2048x2048x224", [2048, 2048, 224], pca_jpeg2000_decompress=9.0, hsicodec_reduce=0.1)
    small = scene("145x145x220", [145, 145, 220], hsicodec_compress=0.25)
    got = {(t["target"][:12], t["scene"]): t for t in bench_scale.targets([big, small], 0.05)}
    assert got[("decompress ≥", "2048x2048x224")]["ratio"] == 9.0 and got[("decompress ≥", "2048x2048x224")]["met"]
    assert got[("145 × 145 × ", "145x145x220")]["met"] and got[("--reduce 2 ≤", "2048x2048x224")]["ratio"] == 0.1
    assert ("decompress ≥", "145x145x220") not in got  # the decode target names the big scenes only


def test_end_to_end_tiny_run(tmp_path):
    pytest.importorskip("imagecodecs")
    pytest.importorskip("rasterio")
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "synth.npy", synthetic())
    out = tmp_path / "scale"
    argv = ["--data", str(data), "--scenes", "synth", "--sizes", "48x40x20", "--rate", "0.5", "--repeat", "1"]
    argv += ["--tile", "32"]  # the tiled path big scenes take by default
    assert bench_scale.main([*argv, "--out", str(out), "--work", str(tmp_path / "work"), "--keep"]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    (sc,) = doc["scenes"]
    assert sc["shape"] == [48, 40, 20] and sc["source"] == "synth" and sc["spatial"].startswith("mirrored")
    for codec, steps in sc["results"].items():
        for op in bench_scale.OPS:
            assert "error" not in steps[op], (codec, op, steps[op])
            assert steps[op]["seconds"] > 0 and steps[op]["peak_rss_mb"] > 10
        assert steps["window"]["exact_shape"]
        if codec != "geotiff_deflate":
            assert steps["compress"]["bpppb"] <= 0.5 + 1e-12 and steps["decompress"]["psnr"] > 20
    assert sc["results"]["geotiff_deflate"]["decompress"]["psnr"] == float("inf")
    assert sc["results"]["hsicodec"]["compress"]["tiles"]["count"] == 4
    assert len(doc["targets"]) == 5 and all(t["met"] in (True, False) for t in doc["targets"])
    md = out.with_suffix(".md").read_text()
    assert "## Targets" in md and "## 48x40x20" in md and "| PCA + JPEG 2000 |" in md
    assert md.count("**met**") + md.count("**not met**") == 5
    out.with_suffix(".md").unlink()
    assert bench_scale.main(["--render", str(out.with_suffix(".json"))]) == 0
    assert out.with_suffix(".md").read_text() == md
    # two runs joined: both scenes, largest first, targets over both, each run listed
    second = dict(doc, when="later", scenes=[dict(sc, name="96x80x20", shape=[96, 80, 20])])
    (tmp_path / "second.json").write_text(json.dumps(second))
    both = tmp_path / "both"
    assert bench_scale.main(["--merge", str(out.with_suffix(".json")), str(tmp_path / "second.json"),
                             "--out", str(both)]) == 0  # fmt: skip
    joined = json.loads(both.with_suffix(".json").read_text())
    assert [s["name"] for s in joined["scenes"]] == ["96x80x20", "48x40x20"] and len(joined["runs"]) == 2
    assert joined["targets"] == bench_scale.targets(joined["scenes"], joined["rate"])
    assert "Run 2: later, scenes 96x80x20" in both.with_suffix(".md").read_text()
    again = dict(doc, when="again", scenes=[dict(sc, window=[9, 9, 9, 9])])  # a later run measures it again
    merged = bench_scale.merged([doc, second, again])
    assert [s["name"] for s in merged["scenes"]] == ["96x80x20", "48x40x20"] and len(merged["runs"]) == 3
    assert merged["scenes"][1]["window"] == [9, 9, 9, 9]
    # the kept files decoded again, the two codecs alternately: the decode target takes the median ratio
    redo = tmp_path / "redo.json"
    redo.write_text(out.with_suffix(".json").read_text())
    assert bench_scale.main(["--redecode", str(redo), "--rounds", "2", "--repeat", "1",
                             "--work", str(tmp_path / "work")]) == 0  # fmt: skip
    rounds = json.loads(redo.read_text())["scenes"][0]["decode_rounds"]
    assert len(rounds["hsicodec"]) == len(rounds["pca_jpeg2000"]) == len(rounds["ratios"]) == 2
    (dec,) = [t for t in json.loads(redo.read_text())["targets"] if t["target"].startswith("decompress")]
    assert dec["ratio"] == pytest.approx(float(np.median(rounds["ratios"]))) and "alternating" in dec["what"]
    assert "Decode measured again in 2 alternating rounds" in redo.with_suffix(".md").read_text()
    # compressed again, the two codecs alternately (PCA + JPEG 2000 at the parameters found): the compress targets
    # take the median ratio, the 145^2 one (here the smallest scene) the median hsicodec time
    (work_scene,) = (tmp_path / "work").glob("scene_*.npy")
    work_scene.unlink()  # the scene is built again where it is gone
    redo.write_text(out.with_suffix(".json").read_text())
    assert bench_scale.main(["--recompress", str(redo), "--rounds", "2", "--work", str(tmp_path / "work"),
                             "--data", str(data)]) == 0  # fmt: skip
    again = json.loads(redo.read_text())
    rounds = again["scenes"][0]["compress_rounds"]
    assert len(rounds["hsicodec"]) == len(rounds["pca_jpeg2000"]) == len(rounds["ratios"]) == 2
    assert all(v > 0 for v in rounds["hsicodec"] + rounds["pca_jpeg2000"])
    comp = [t for t in again["targets"] if t["target"].startswith("compress")]
    assert comp[0]["ratio"] == pytest.approx(float(np.median(rounds["ratios"]))) and "alternating" in comp[0]["what"]
    (small,) = [t for t in again["targets"] if t["target"].startswith("145")]
    assert small["ratio"] == pytest.approx(float(np.median(rounds["hsicodec"])))
    assert "Compress measured again in 2 alternating rounds" in redo.with_suffix(".md").read_text()

"""Tests of hsicodec.evaluation.evaluate: one codec at one rate, comparisons, tables and plots.

Tiny cubes (16x16 to 24x24 pixels, <= 30 bands) and one or two rates keep them fast.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from hsicodec import metrics
from hsicodec.errors import OptionError
from hsicodec.evaluation import anchors
from hsicodec.evaluation import evaluate as ev

pytest.importorskip("imagecodecs")


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (np.cumsum(rng.normal(size=(24, 24, 30)), axis=2) * 40 + 2000).astype(np.uint16)


def _row(codec, target, bpppb, psnr, kind="anchor", reachable=True):
    return {
        "codec": codec,
        "kind": kind,
        "target_bpppb": target,
        "bpppb": bpppb,
        "psnr": psnr,
        "reachable": reachable,
        "sam": 1.0,
        "max_abs_error": 2.0,
        "encode_s": 0.1,
        "decode_s": 0.01,
        "bytes": 10,
        "threads": 1,
        "params": {},
        "note": "",
    }


# --------------------------------------------------------------------------- registry


def test_registry_merges_anchors_and_paper_baselines():
    reg = ev.codec_registry()
    for name in anchors.ANCHORS:
        assert reg[name] is anchors.ANCHORS[name]
    try:
        from hsicodec.evaluation.paper_baselines import BASELINES
    except ImportError:
        assert set(reg) == set(anchors.ANCHORS) and not ev.baseline_names()
    else:
        assert set(reg) == set(anchors.ANCHORS) | set(BASELINES)
        assert ev.baseline_names() == frozenset(set(BASELINES) - set(anchors.ANCHORS))


def test_registry_without_paper_baselines(monkeypatch):
    monkeypatch.setitem(sys.modules, "hsicodec.evaluation.paper_baselines", None)  # import -> ImportError
    assert set(ev.codec_registry()) == set(anchors.ANCHORS)
    assert ev.baseline_names() == frozenset()


# --------------------------------------------------------------------------- metrics


def test_psnr_over_valid_values_leaves_nodata_out():
    """docs/metrics.md: R = max - min of the original over the valid values, MSE over every valid value."""
    orig = np.array([[[10.0, 20.0], [30.0, 65535.0]]])
    dec = np.array([[[11.0, 20.0], [29.0, 65535.0]]])
    valid = orig != 65535.0
    expect = 10 * math.log10(20.0**2 / (2.0 / 3.0))  # R = 30 - 10, MSE = (1 + 0 + 1) / 3
    assert metrics.psnr(orig, dec, valid=valid) == pytest.approx(expect)
    assert metrics.psnr(orig, dec, valid=valid) == pytest.approx(metrics.psnr(orig[valid], dec[valid]))
    assert metrics.psnr(orig, dec) == pytest.approx(10 * math.log10(65525.0**2 / 0.5))  # every value counts
    assert metrics.psnr(orig, dec, valid=np.ones(orig.shape, bool)) == metrics.psnr(orig, dec)
    nan = np.where(valid, orig, np.nan)  # non-finite values of the original never count
    assert metrics.psnr(nan, dec) == pytest.approx(expect)
    with pytest.raises(ValueError, match="valid mask"):
        metrics.psnr(orig, dec, valid=np.ones(3, bool))


# --------------------------------------------------------------------------- one codec, one rate


def test_run_codec_row_is_measured_like_method(cube):
    row = ev.run_codec("pca_jpeg2000", cube, 0.5, repeat=1)
    assert row["reachable"] and row["kind"] == "anchor" and row["threads"] == 1
    assert row["bpppb"] <= 0.5
    assert row["bpppb"] == pytest.approx(8 * row["bytes"] / cube.size)
    assert row["psnr"] > 20 and row["sam"] >= 0 and row["max_abs_error"] > 0
    assert row["encode_s"] >= 0 and row["decode_s"] >= 0
    # the same anchor run directly gives the same measured point
    r = anchors.run_anchor("pca_jpeg2000", cube, 0.5)
    back = anchors.decode_anchor("pca_jpeg2000", r.blob)
    assert row["bytes"] == len(r.blob)
    assert row["psnr"] == pytest.approx(metrics.psnr(cube, back))


def test_run_codec_restores_timing_repeats(cube):
    before = anchors.TIMING_REPEATS
    ev.run_codec("sperr_3d", cube, 0.5, repeat=3)
    assert anchors.TIMING_REPEATS == before


def test_run_codec_unreachable_and_failing(cube, monkeypatch):
    row = ev.run_codec("zfp", cube, 1e-4, repeat=1)
    assert row["reachable"] is False and "reach" in row["note"]
    assert math.isnan(row["psnr"])

    def boom(c, t):
        raise RuntimeError("library exploded")

    monkeypatch.setitem(anchors.ANCHORS, "boom", boom)
    row = ev.run_codec("boom", cube, 0.1)
    assert row["reachable"] is False and "library exploded" in row["note"]


def test_run_codec_rejects_bad_names_and_rates(cube):
    with pytest.raises(OptionError, match="unknown codec"):
        ev.run_codec("nope", cube, 0.1)
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(OptionError):
            ev.run_codec("sperr_3d", cube, bad)
    with pytest.raises(OptionError):
        ev.run_codec("sperr_3d", np.zeros((4, 4, 2, 2)), 0.1)


def test_run_hsicodec_measures_the_real_file(cube, monkeypatch):
    """bpppb from the whole .hsim, PSNR/SAM/max error of its independent decode."""
    import hsicodec.codec.api as codec

    seen = []
    real = codec.compress

    def spy(*a, **kw):
        data = real(*a, **kw)
        if kw.get("model") is None:  # the outer call (model=None tries each bundled model)
            seen.append(data)
        return data

    monkeypatch.setattr(codec, "compress", spy)
    row = ev.run_hsicodec(cube, 0.5, effort="fast", repeat=2, encode_repeat=2)
    assert row["reachable"] and row["codec"] == "hsicodec-fast" and row["kind"] == "hsicodec"
    assert len(seen) == 2 and seen[0] == seen[1] and row["note"] == ""
    data = seen[0]
    back, _ = codec.decompress(data)
    assert row["bytes"] == len(data)
    assert row["bpppb"] == pytest.approx(8 * len(data) / cube.size) and row["bpppb"] <= 0.5
    assert row["psnr"] == pytest.approx(metrics.psnr(cube, back))
    assert row["sam"] == pytest.approx(metrics.sam_degrees(cube, back))
    assert row["max_abs_error"] == pytest.approx(metrics.max_abs_error(cube, back))
    assert row["params"]["effort"] == "fast" and row["threads"] >= 1


def test_run_hsicodec_unreachable_rate_is_a_row(cube):
    row = ev.run_hsicodec(cube, 1e-4, effort="fast", repeat=1)
    assert row["reachable"] is False and "below the smallest file" in row["note"]


def test_evaluate_cube_runs_everything_and_checks_first(cube):
    seen = []
    rows = ev.evaluate_cube(cube, [0.5], efforts=["fast"], anchors=["sperr_3d"], repeat=1, on_row=seen.append)
    assert [r["codec"] for r in rows] == ["hsicodec-fast", "sperr_3d"] and seen == rows
    with pytest.raises(OptionError, match="unknown codec"):
        ev.evaluate_cube(cube, [0.5], efforts=["fast"], anchors=["sperr_3d", "nope"])
    with pytest.raises(OptionError):
        ev.evaluate_cube(cube, [0.5], efforts=["slow"], anchors=[])
    with pytest.raises(OptionError):
        ev.evaluate_cube(cube, [], efforts=["fast"], anchors=[])
    with pytest.raises(Exception, match="no-such-model"):
        ev.evaluate_cube(cube, [0.5], efforts=["fast"], anchors=[], model="no-such-model")


# --------------------------------------------------------------------------- comparisons


def test_psnr_at_interpolates_in_log_rate_and_falls_back():
    rows = [
        _row("a", 0.01, 0.01, 30.0),
        _row("a", 0.1, 0.1, 40.0),
        _row("a", 1.0, float("nan"), float("nan"), reachable=False),
    ]
    assert ev.psnr_at(rows, "a", math.sqrt(0.01 * 0.1)) == pytest.approx(35.0)
    assert ev.psnr_at(rows, "a", 0.01) == pytest.approx(30.0)
    assert ev.psnr_at(rows, "a", 0.5) is None  # outside, and no reachable point for that target
    # a codec landing just under its target: the target row is used (never favours the codec)
    rows2 = [_row("b", 0.05, 0.049, 33.0)]
    assert ev.psnr_at(rows2, "b", 0.05) == pytest.approx(33.0)
    assert ev.psnr_at(rows2, "b", 0.02) is None
    assert ev.psnr_at(rows, "missing", 0.05) is None


def test_psnr_gaps_sign():
    rows = [
        _row("ours", 0.01, 0.01, 30.0, "hsicodec"),
        _row("ours", 0.1, 0.1, 40.0, "hsicodec"),
        _row("pca_jpeg2000", 0.01, 0.01, 33.0),
        _row("pca_jpeg2000", 0.1, 0.1, 41.0),
    ]
    g = ev.psnr_gaps(rows, ["ours"], [0.01, 0.1, 0.5])
    assert [x["gap_db"] for x in g[:2]] == [pytest.approx(-3.0), pytest.approx(-1.0)]
    assert g[2]["gap_db"] is None and g[0]["reference"] == "pca_jpeg2000"


def test_rate_at_and_bits_saved():
    """The reference reaches 35 dB at 10^-1.5 ≈ 0.032 bpppb (log-rate linear between 30 @ 0.01 and 40 @
    0.1); a codec with 35 dB at 0.01 saves 1 − 0.01 / 0.032 of its bits, one with less PSNR spends more."""
    ref = [_row("pca_jpeg2000", 0.01, 0.01, 30.0), _row("pca_jpeg2000", 0.1, 0.1, 40.0)]
    assert ev.rate_at(ref, "pca_jpeg2000", 35.0) == pytest.approx(10**-1.5)
    assert ev.rate_at(ref, "pca_jpeg2000", 45.0) is None and ev.rate_at(ref, "missing", 35.0) is None
    good = ref + [_row("ours", 0.01, 0.01, 35.0, "hsicodec"), _row("ours", 0.1, 0.1, 40.0, "hsicodec")]
    g = ev.psnr_gaps(good, ["ours"], [0.01, 0.1])
    assert g[0]["rate_saving"] == pytest.approx(1 - 0.01 / 10**-1.5)
    assert g[1]["rate_saving"] == pytest.approx(0.0)
    worse = ref + [_row("ours", 0.1, 0.1, 35.0, "hsicodec")]
    assert ev.psnr_gaps(worse, ["ours"], [0.1])[0]["rate_saving"] == pytest.approx(1 - 0.1 / 10**-1.5)
    flat = [_row("pca_jpeg2000", 0.01, 0.01, 30.0), _row("pca_jpeg2000", 0.1, 0.1, 30.0)]
    assert ev.rate_at(flat, "pca_jpeg2000", 30.0) is None  # not rising: no rate for a PSNR


# --------------------------------------------------------------------------- output


def test_format_table_text_and_markdown():
    rows = [_row("pca_jpeg2000", 0.05, 0.0498, 41.234), _row("zfp", 0.05, float("nan"), float("nan"), reachable=False)]
    rows[1]["note"] = "cannot reach 0.05 bpppb: " + "x" * 200
    text = ev.format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["codec", "target", "bpppb"]
    assert "41.23" in lines[1] and "unreachable" in lines[2] and lines[2].endswith("...")
    md = ev.format_table(rows, style="markdown")
    mlines = md.splitlines()
    assert len({line.count("|") for line in mlines}) == 1  # same number of cells on every line
    assert "x" * 200 in md
    with pytest.raises(OptionError):
        ev.format_table(rows, style="html")


def test_row_to_json_is_strict_json():
    row = _row("zfp", 0.05, float("nan"), float("inf"), reachable=False)
    row["params"] = {"k": np.int64(3), "x": np.float32(0.5)}
    out = json.loads(json.dumps(ev.row_to_json(row), allow_nan=False))
    assert out["bpppb"] is None and out["psnr"] == "inf" and out["params"] == {"k": 3, "x": 0.5}


def test_plot_rd_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        _row("hsicodec-default", 0.01, 0.0099, 30.0, "hsicodec"),
        _row("hsicodec-default", 0.1, 0.099, 38.0, "hsicodec"),
        _row("pca_jpeg2000", 0.01, 0.01, 33.0),
        _row("pca_jpeg2000", 0.1, 0.1, 41.0),
        _row("zfp", 0.01, float("nan"), float("nan"), reachable=False),
    ]
    out = ev.plot_rd(
        rows, tmp_path / "rd.png", title="t", references=[{"label": "paper", "bpppb": 0.008, "psnr": 36.6}]
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OptionError, match="not supported"):
        ev.plot_rd(rows, tmp_path / "rd.xyz")
    with pytest.raises(OptionError, match="does not exist"):
        ev.check_plot_path(tmp_path / "missing" / "rd.png")
    with pytest.raises(OptionError, match="directory"):
        ev.check_plot_path(tmp_path)


def test_public_api_reexported():
    import hsicodec

    assert hsicodec.evaluate_cube is ev.evaluate_cube and hsicodec.plot_rd is ev.plot_rd
    assert hsicodec.codec_registry is ev.codec_registry

"""Error-bounded anchors (hsicodec.evaluation.anchors.lossless), the harness's max-error mode and
``hsicodec eval --max-errors``: bounds hold, lossless is bit-exact, bytes are counted, bad input is refused.

Tiny synthetic cubes (12 x 10 pixels, 7 bands) keep every codec under a few tens of milliseconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

pytest.importorskip("imagecodecs")

from hsicodec.cli.main import cli  # noqa: E402
from hsicodec.errors import OptionError  # noqa: E402
from hsicodec.evaluation import anchors as A  # noqa: E402
from hsicodec.evaluation import evaluate as ev  # noqa: E402
from hsicodec.evaluation.anchors import lossless as L  # noqa: E402
from hsicodec.evaluation.anchors.container import _pack_header  # noqa: E402
from hsicodec.metrics import bpppb  # noqa: E402

NAMES = list(L.BOUNDED_ANCHORS)


def _cube(dtype, h=12, w=10, c=7, seed=0) -> np.ndarray:
    """Correlated spectra (a random walk along the bands) in the range of ``dtype``; the integer
    cubes touch both ends of their range, so the near-lossless decoders' clipping is exercised."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(h, w, c)), axis=2) + rng.normal(size=(h, w, 1)) * 3
    walk = (walk - walk.min()) / (walk.max() - walk.min())
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (walk * 0.8 + 0.05).astype(dt)
    lo, hi = {"uint8": (0, 255), "uint16": (0, 9000), "int16": (-300, 6000), "int32": (0, 100)}[dt.name]
    return np.rint(lo + walk * (hi - lo)).astype(dt)


DTYPES = ["uint8", "uint16", "int16", "float32"]
CUBES = {d: _cube(d) for d in DTYPES}
INT_BOUNDS = [0, 1, 2.5, 7]
FLOAT_BOUNDS = [0, 1e-3, 0.03]
CASES = [
    (name, d, e)
    for name in NAMES
    for d in DTYPES
    for e in (FLOAT_BOUNDS if d == "float32" else INT_BOUNDS)
    if L.bounded_support(name, np.dtype(d), e) is None
]


@pytest.mark.parametrize(("name", "dtype", "bound"), CASES)
def test_bound_holds_and_the_bytes_decode_alone(name, dtype, bound):
    cube = CUBES[dtype]
    r = L.run_bounded_anchor(name, cube, bound)
    assert r.codec == name and r.max_error == bound
    assert r.blob is not None and r.decoded is not None
    assert r.decoded.shape == cube.shape and r.decoded.dtype == cube.dtype
    err = float(np.max(np.abs(r.decoded.astype(np.float64) - cube.astype(np.float64))))
    assert err <= bound and r.max_abs_error == err
    if bound == 0:
        np.testing.assert_array_equal(r.decoded, cube)  # lossless is bit-exact
        assert r.psnr == math.inf
    # the file decodes from its bytes alone, through both registries, to what was measured
    np.testing.assert_array_equal(L.decode_bounded(name, r.blob), r.decoded)
    np.testing.assert_array_equal(A.decode_anchor(name, r.blob), r.decoded)
    assert r.n_bytes == len(r.blob) and r.bpppb == pytest.approx(bpppb(r.n_bytes, cube.shape))
    assert r.raw_bytes == cube.nbytes and r.encode_s > 0 and r.decode_s > 0
    assert r.encode_mbps == pytest.approx(cube.nbytes / 1e6 / r.encode_s)
    d = r.to_dict()
    assert "blob" not in d and "decoded" not in d and d["n_bytes"] == r.n_bytes


def test_every_anchor_and_dtype_is_covered():
    """Each anchor runs on every dtype it takes, lossless ones at 0 and the others above 0."""
    assert {c[0] for c in CASES} == set(NAMES)
    for name in ("geotiff_deflate", "jpeg2000_reversible", "jpegxl_lossless"):
        assert {(d, e) for n, d, e in CASES if n == name} == {(d, 0) for d in ("uint8", "uint16", "int16")}
    for name in ("sz3_abs", "sperr_pwe", "lerc"):
        assert any(n == name and d == "float32" and e > 0 for n, d, e in CASES)
    assert ("lerc", "float32", 0) in CASES  # LERC is lossless on floats too


def test_integer_codecs_use_the_rounding_slack():
    """On an integer cube the float codecs code at floor(E) + 0.49: the decoded integers still meet E."""
    cube = CUBES["uint16"]
    for name in ("sz3_abs", "sperr_pwe"):
        r = L.run_bounded_anchor(name, cube, 2)
        assert r.params["tolerance"] == pytest.approx(2.49)
        assert r.max_abs_error <= 2


def test_near_lossless_files_shrink_as_the_bound_grows():
    cube = _cube("uint16", 24, 20, 12, seed=3)
    for name in ("jpegls", "spectral_jpegls", "lerc", "sz3_abs", "sperr_pwe"):
        sizes = [L.run_bounded_anchor(name, cube, e).n_bytes for e in (1, 8, 64)]
        assert sizes[0] > sizes[1] > sizes[2], (name, sizes)


def test_spectral_predictor_pays_off_on_correlated_bands():
    """Bands that are gain/offset copies of each other: the spectral anchor codes little more than band 0."""
    rng = np.random.default_rng(5)
    base = np.cumsum(np.cumsum(rng.normal(size=(32, 32)), 0), 1)
    base = (base - base.min()) * 10 + 100
    cube = np.stack([base * (1 + 0.05 * b) + 20 * b for b in range(10)], -1)
    cube = np.rint(cube + rng.normal(0, 1, cube.shape)).astype(np.uint16)
    for bound in (0, 2):
        spec = L.spectral_jpegls(cube, bound)
        plain = L.jpegls(cube, bound)
        assert spec.max_abs_error <= bound
        assert spec.n_bytes < 0.8 * plain.n_bytes


def test_spectral_stores_its_parameters():
    """Per band: gain, offset, residual offset and (but for the last band) the stream's length."""
    cube = CUBES["int16"]
    r = L.spectral_jpegls(cube, 0)
    blob = r.blob
    head = _pack_header(cube.shape, cube.dtype)
    assert blob.startswith(head)
    pos, streams = len(head), 0
    for b in range(cube.shape[2]):
        for _ in range(3):
            _, pos = L._read_zz(blob, pos)
        s, pos = L._next_stream(blob, pos, b == cube.shape[2] - 1)
        assert s[:2] == b"\xff\xd8"  # a JPEG-LS stream (SOI)
        streams += len(s)
    assert pos == len(blob) and r.n_bytes > streams + len(head)


def test_jpegls_spiff_header_is_dropped_and_the_stream_still_decodes():
    import imagecodecs

    img = (np.arange(30 * 20).reshape(30, 20) % 301).astype(np.uint16)
    full = bytes(imagecodecs.jpegls_encode(img))
    short = L._strip_spiff(full)
    assert len(short) < len(full) and b"SPIFF" in full and b"SPIFF" not in short
    np.testing.assert_array_equal(imagecodecs.jpegls_decode(short), img)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_geotiff_is_a_gdal_deflate_predictor_file():
    pytest.importorskip("rasterio")
    from rasterio.io import MemoryFile

    r = L.geotiff_deflate(CUBES["uint16"])
    assert r.blob[:4] in (b"II*\x00", b"MM\x00*")
    with MemoryFile(r.blob) as mf, mf.open() as ds:
        assert ds.count == 7 and ds.dtypes[0] == "uint16" and ds.profile["tiled"]
        assert ds.tags(ns="IMAGE_STRUCTURE") == {"COMPRESSION": "DEFLATE", "INTERLEAVE": "PIXEL", "PREDICTOR": "2"}


def test_a_decoder_off_the_bound_raises():
    cube = CUBES["uint8"]

    def bad_decode(blob):
        out = cube.copy()
        out[0, 0, 0] ^= 4
        return out

    with pytest.raises(L.BoundError, match="max error 1"):
        L._bounded("fake", cube, 1.0, [("v", [1.0], lambda k: b"x")], bad_decode, {})
    with pytest.raises(L.BoundError):  # lossless means bit-exact
        L._bounded("fake", cube, 0.0, [("v", [0.0], lambda k: b"x")], bad_decode, {})
    # the first tolerance that holds wins; looser ones that do not are reported
    calls = []

    def decode(blob):
        return bad_decode(blob) if blob == b"loose" else cube.copy()

    r = L._bounded(
        "fake", cube, 1.0, [("v", [1.4, 1.0], lambda k: calls.append(k) or (b"loose" if k > 1 else b"ok"))], decode, {}
    )
    assert calls[:2] == [1.4, 1.0] and r.params["tolerance"] == 1.0 and "tries" in r.params


@pytest.mark.parametrize(
    ("name", "cube", "bound", "match"),
    [
        ("geotiff_deflate", CUBES["uint16"], 1, "lossless only"),
        ("jpegxl_lossless", CUBES["uint16"], 0.5, "lossless only"),
        ("sz3_abs", CUBES["uint16"], 0, "lossy only"),
        ("sperr_pwe", CUBES["float32"], 0, "lossy only"),
        ("jpegls", CUBES["float32"], 0, "integer cubes only"),
        ("spectral_jpegls", CUBES["float32"], 1e-3, "integer cubes only"),
        ("jpeg2000_reversible", _cube("int32"), 0, "at most 16 bits"),
        ("jpegls", CUBES["uint16"], -1, ">= 0"),
        ("lerc", CUBES["uint16"], float("nan"), ">= 0"),
        ("lerc", CUBES["uint16"], math.inf, ">= 0"),
        ("lerc", CUBES["uint16"], "two", "not a number"),
        ("lerc", CUBES["uint16"][:, :, 0], 0, "cube"),
        ("sz3_abs", np.full((4, 4, 3), np.nan, np.float32), 1, "NaN"),
        ("lerc", np.zeros((4, 4, 3), np.int64), 0, "dtype"),
    ],
)
def test_malformed_input_is_an_option_error(name, cube, bound, match):
    with pytest.raises(OptionError, match=match):
        L.run_bounded_anchor(name, cube, bound)


def test_unknown_names_and_bounds():
    with pytest.raises(OptionError, match="known"):
        L.run_bounded_anchor("nope", CUBES["uint8"], 0)
    with pytest.raises(OptionError):
        L.decode_bounded("nope", b"")
    with pytest.raises(OptionError):
        L.bounded_support("nope", np.uint8, 0)
    assert ev.check_max_errors(["0", 1, "2.5", 1.0]) == [0.0, 1.0, 2.5]
    for bad in ([], ["x"], [-1], [float("nan")], [math.inf]):
        with pytest.raises(OptionError):
            ev.check_max_errors(bad)
    # the rate-target registry is untouched (its tests run every anchor at a rate)
    assert not set(L.BOUNDED_ANCHORS) & set(A.ANCHORS)


# --------------------------------------------------------------------------- the harness


def _no_max_error(cube, *, bpppb=None, effort="default", threads=0):  # compress before the mode existed
    raise AssertionError("not reached: the signature says there is no max_error")


def test_evaluate_bounds_rows_and_notes(monkeypatch):
    import hsicodec.codec.api as api

    monkeypatch.setattr(api, "compress", _no_max_error)
    cube = CUBES["int16"]
    notes: list = []
    seen: list = []
    rows = ev.evaluate_bounds(
        cube, [0, 2], anchors=["jpegls", "geotiff_deflate", "sz3_abs"], repeat=1, notes=notes, on_row=seen.append
    )
    assert seen == rows
    assert [(r["codec"], r["max_error"]) for r in rows] == [
        ("jpegls", 0.0),
        ("geotiff_deflate", 0.0),
        ("jpegls", 2.0),
        ("sz3_abs", 2.0),
    ]
    for r in rows:
        assert r["reachable"] and r["bound_ok"] and r["max_abs_error"] <= r["max_error"]
        assert r["kind"] == "anchor" and r["threads"] == 1 and r["bytes"] > 0
        assert r["encode_mbps"] == pytest.approx(cube.nbytes / 1e6 / r["encode_s"])
    assert ev.HSICODEC_NO_MAX_ERROR in notes
    assert any("lossless only" in n for n in notes) and any("lossy only" in n for n in notes)
    json.dumps([ev.row_to_json(r) for r in rows])  # JSON-ready (inf PSNR as "inf")
    text = ev.format_bound_table(rows)
    assert text.splitlines()[0].split()[:3] == ["codec", "bound", "bpppb"] and "inf" in text
    md = ev.format_bound_table(rows, style="markdown")
    assert md.startswith("| codec | bound |") and md.count("\n") == len(rows) + 1
    with pytest.raises(OptionError):
        ev.evaluate_bounds(cube, [0], anchors=["pca_jpeg2000"])
    with pytest.raises(OptionError):
        ev.format_bound_table(rows, style="html")


def test_hsicodec_rows_once_compress_takes_max_error(monkeypatch):
    """With a stand-in compress that accepts max_error the rows appear, are decoded and checked."""
    import hsicodec.codec.api as api

    cube = CUBES["uint16"]
    shift = {"by": 0}

    def compress(cube_, *, max_error=None, effort="default", threads=0, **kw):
        return b"HS" + np.asarray(cube_, np.uint16).tobytes()

    def decompress(data, threads=0):
        out = np.frombuffer(data[2:], np.uint16).reshape(cube.shape).copy()
        out[0, 0, 0] += shift["by"]
        return out, None

    monkeypatch.setattr(api, "compress", compress)
    monkeypatch.setattr(api, "decompress", decompress)
    assert ev.hsicodec_has_max_error()
    rows = ev.evaluate_bounds(cube, [0, 3], anchors=[], repeat=1)
    assert [(r["codec"], r["kind"], r["bound_ok"]) for r in rows] == [("hsicodec-default", "hsicodec", True)] * 2
    assert rows[0]["bytes"] == cube.nbytes + 2 and rows[0]["psnr"] == math.inf
    shift["by"] = 2  # off by 2: fine at 3, not at 0
    rows = ev.evaluate_bounds(cube, [0, 3], anchors=[], repeat=1)
    assert [r["bound_ok"] for r in rows] == [False, True] and "BOUND VIOLATED" in rows[0]["note"]

    def broken(cube_, *, max_error=None, **kw):
        raise ImportError("half-built")

    monkeypatch.setattr(api, "compress", broken)
    (row,) = ev.evaluate_bounds(cube, [1], anchors=[], repeat=1)
    assert not row["reachable"] and "half-built" in row["note"]


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def scene(isolated_registry: Path) -> Path:
    """A tiny uint16 cube in an isolated registry (as tests/test_eval_cli.py)."""
    p = isolated_registry / "scene.npy"
    np.save(p, CUBES["uint16"])
    return p


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, ["eval", *[str(a) for a in args]], catch_exceptions=False)


def test_cli_max_errors_table_and_progress(scene):
    r = run(scene, "--max-errors", "0,2", "--max-errors", "4", "-a", "jpegls,lerc,sz3_abs", "-e", "none", "--repeat", 1)
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    assert "error-bounded mode" in out[0]
    assert out[1].split()[:7] == ["codec", "bound", "bpppb", "max", "err", "PSNR", "dB"]
    body = [line.split() for line in out[2:] if line and not line.startswith("note:")]
    assert [(b[0], b[1]) for b in body] == [
        ("jpegls", "0"),
        ("lerc", "0"),
        ("jpegls", "2"),
        ("lerc", "2"),
        ("sz3_abs", "2"),
        ("jpegls", "4"),
        ("lerc", "4"),
        ("sz3_abs", "4"),
    ]
    assert all(float(b[3]) <= float(b[1]) for b in body)  # max err <= bound
    assert "note: sz3_abs is lossy only (max error > 0)" in out
    lines = r.stderr.splitlines()
    assert len(lines) == 8 and lines[0].startswith("hsicodec: eval: [1/8] scene jpegls max error 0: ")


def test_cli_max_errors_json(scene):
    r = run(scene, "--max-errors", "0,1", "--anchors", "all", "--efforts", "none", "--repeat", 1, "--json")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    d = json.loads(r.stdout)
    assert d["max_errors"] == [0.0, 1.0] and d["raw_bytes"] == CUBES["uint16"].nbytes
    assert {row["codec"] for row in d["rows"]} == set(L.BOUNDED_ANCHORS)
    assert all(row["bound_ok"] and row["max_abs_error"] <= row["max_error"] for row in d["rows"])
    assert all(row["psnr"] == "inf" for row in d["rows"] if row["max_error"] == 0)


def test_cli_without_hsicodec_mode_says_so(scene, monkeypatch):
    import hsicodec.codec.api as api

    monkeypatch.setattr(api, "compress", _no_max_error)
    r = run(scene, "--max-errors", "0", "--anchors", "jpegls", "--repeat", 1, "-q")
    assert r.exit_code == 0, r.output
    assert f"note: {ev.HSICODEC_NO_MAX_ERROR}" in r.stdout.splitlines()
    assert "hsicodec-default" not in r.stdout


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--max-errors", "-1"], "--max-errors"),
        (["--max-errors", "1,x"], "not a number"),
        (["--max-errors", "nan"], "--max-errors"),
        (["--max-errors", "1", "--rates", "0.1"], "--rates and --max-errors"),
        (["--max-errors", "1", "--anchors", "pca_jpeg2000"], "unknown error-bounded anchor"),
        (["--max-errors", "1", "--anchors", "none", "--efforts", "none"], "nothing to evaluate"),
        (["--max-errors", "1", "--efforts", "bogus"], "--efforts"),
        (["--max-errors", "1", "--plot", "x.png"], "--plot"),
    ],
)
def test_cli_malformed_max_errors_are_usage_errors(scene, args, match):
    r = run(scene, *args)
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.splitlines()
    assert line.startswith("hsicodec: error: ") and match in line


def test_cli_lists_the_error_bounded_anchors():
    r = run("--list-codecs")
    assert r.exit_code == 0
    listed = dict(line.split("\t") for line in r.stdout.splitlines())
    for name in L.BOUNDED_ANCHORS:
        assert listed[name].startswith("error-bounded anchor")


def test_real_crop_if_available():
    path = Path("/work/shared/data/hsi/jasper_ridge.npy")
    if not path.exists():
        pytest.skip("shared data not available")
    cube = np.load(path, mmap_mode="r")[:32, :32, 60:100].copy()
    lossless = L.spectral_jpegls(cube, 0)
    np.testing.assert_array_equal(lossless.decoded, cube)
    assert lossless.bpppb < L.jpegls(cube, 0).bpppb  # the spectral predictor helps on real bands
    near = L.spectral_jpegls(cube, 4)
    assert near.max_abs_error <= 4 and near.bpppb < lossless.bpppb

"""The coefficient-map layer: CDF 9/7, context classes, entropy coding, header validation."""

import numpy as np
import pytest

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import cdf97_forward, cdf97_inverse, subbands, wavelet_levels
from hsicodec.errors import HsimHeaderError
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps import pricing


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 2), (3, 17), (37, 23), (64, 64), (100, 101)])
@pytest.mark.parametrize("levels", [0, 1, 3, 5])
def test_cdf97_is_invertible(shape, levels):
    lv = wavelet_levels(*shape, levels)
    x = np.random.default_rng(sum(shape)).normal(size=shape + (2,))
    c = cdf97_forward(x, lv)
    assert c.shape == x.shape
    np.testing.assert_allclose(cdf97_inverse(c, lv), x, atol=1e-12)


def test_cdf97_compacts_a_smooth_map():
    r, c = np.mgrid[0:64, 0:64] / 64.0
    smooth = np.sin(3 * r) + np.cos(2 * c) + r * c
    co = cdf97_forward(smooth, 4)
    ll = co[:4, :4]
    assert np.sum(ll**2) > 0.97 * np.sum(co**2)
    # linear ramps have (near) zero detail coefficients inside the image: the 9/7 has 4 vanishing moments
    ramp = cdf97_forward(np.add.outer(np.arange(32.0), np.arange(32.0)), 1)
    assert np.abs(ramp[2:14, 18:30]).max() < 1e-9


def test_subbands_tile_the_map_in_coding_order():
    for h, w, lv in [(37, 23, 3), (100, 100, 5), (5, 1, 2)]:
        seen = np.zeros((h, w), int)
        bands = subbands(h, w, lv)
        for _, _, rs, cs in bands:
            seen[rs, cs] += 1
        assert (seen == 1).all()
        assert bands[0][:2] == (0, 0) and [b[0] for b in bands] == sorted(b[0] for b in bands)


def _maps(h, w, k, seed=0):
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(r / (3 + j)) * np.cos(c / (4 + j)) / (j + 1) for j in range(k)], axis=2)
    return base + 0.02 * rng.normal(size=(h, w, k))


@pytest.mark.parametrize("h,w,k", [(1, 1, 1), (3, 17, 2), (40, 36, 5), (64, 48, 1)])
@pytest.mark.parametrize("q", [-160, -64])
def test_maps_round_trip(h, w, k, q):
    maps = _maps(h, w, k)
    lv = coefmaps.map_levels(h, w)
    data, p, deq = coefmaps.encode_maps(maps, q, lv)
    p2 = coefmaps.parse_params(p.to_header(), h, w, 255)
    np.testing.assert_array_equal(coefmaps.decode_maps(data, p2, h, w), deq)
    # the error is a fraction of the step: the layer really codes the maps
    assert np.sqrt(np.mean((deq - maps) ** 2)) < p.step


def test_finer_steps_cost_more_and_err_less():
    maps = _maps(48, 48, 3)
    lv = coefmaps.map_levels(48, 48)
    sizes, errs = [], []
    for q in (-32, -96, -160):
        data, _, deq = coefmaps.encode_maps(maps, q, lv)
        sizes.append(len(data))
        errs.append(float(np.mean((deq - maps) ** 2)))
    assert sizes[0] < sizes[1] < sizes[2] and errs[0] > errs[1] > errs[2]


def test_ideal_code_length_matches_the_stream():
    maps = _maps(64, 64, 4, seed=3)
    lv = coefmaps.map_levels(64, 64)
    tr = coefmaps.Transformed.of(maps, lv)
    sym, _, rho = coefmaps.quantize(tr, -96, 4)
    data, _ = coefmaps.encode_symbols(sym, -96, lv, rho)
    bits = coefmaps.code_bits(sym, lv)
    assert abs(len(data) - bits / 8) < 0.02 * len(data) + 8


def test_contexts_pay():
    """Coding with the fitted class offsets is cheaper than with all offsets zero."""
    maps = _maps(64, 64, 4, seed=5)
    lv = coefmaps.map_levels(64, 64)
    sym, _, _ = coefmaps.quantize(coefmaps.Transformed.of(maps, lv), -96, 4)
    cls, grp = coefmaps.all_classes(sym, lv)
    with_ctx = coefmaps.fit_codes(sym, cls, grp, 4 * (lv + 1))[2]
    without = coefmaps.fit_codes(sym, np.zeros_like(cls), grp, 4 * (lv + 1))[2]
    assert with_ctx < without


def test_context_class_formula():
    """Spec 10.5 by hand: t = 2|previous map| + |parent| + |siblings|, class = thresholds reached."""
    h = w = 8
    lv = 2
    sym = np.zeros((2, h, w), np.int64)
    bands = subbands(h, w, lv)
    # bands: LL(2x2), g1 HL [0:2,2:4], LH [2:4,0:2], HH [2:4,2:4], g2 HL [0:4,4:8], LH [4:8,0:4], HH [4:8,4:8]
    sym[0, 0, 2] = 3  # map 0, group-1 HL at (0, 0): parent of group-2 HL (0..1, 0..1)
    sym[0, 0, 4] = -5  # map 0, group-2 HL (0, 0): sibling of group-2 LH (0, 0) and HH (0, 0)
    sym[0, 4, 0] = 2  # map 0, group-2 LH (0, 0): sibling of HH (0, 0)
    cls, _ = coefmaps.all_classes(sym, lv, checker=False)
    assert cls[0, 0, 4] == 2 and cls[0, 0, 5] == 2 and cls[0, 1, 5] == 2  # t = 3
    assert cls[0, 0, 6] == 0  # another parent (0, 1), which is zero
    assert cls[0, 4, 0] == 3  # LH: t = |HL sibling| = 5
    assert cls[0, 4, 4] == 3  # HH: t = 5 + 2 = 7
    assert cls[1, 0, 4] == 4  # map 1 at the same place: t = 2 * 5 = 10
    assert cls[0, 0, 0] == 0 and len(bands) == 7


def _header(k=2, lv=3, **kw):
    h = {"k": k, "q": -64, "wt": lv, "ma": 3, "ls": bytes(k * (lv + 1)), "co": bytes(26), "ro": 4}
    h.update(kw)
    return h


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 0},
        {"k": 300},
        {"q": 600},
        {"wt": 9},
        {"wt": 7},
        {"ma": -1},
        {"ro": 17},
        {"ls": b"\x00"},
        {"co": b"\x00" * 6},
        {"zz": 1},
        {"ro": 2.0},
        {"ls": "ab"},
    ],
)
def test_parse_params_refuses_bad_headers(bad):
    hdr = _header()
    hdr.update(bad)
    with pytest.raises(HsimHeaderError):
        coefmaps.parse_params(hdr, 20, 20, 255)


def test_parse_params_refuses_more_maps_than_bands():
    with pytest.raises(HsimHeaderError):
        coefmaps.parse_params(_header(k=5, ls=bytes(20)), 20, 20, 4)


def test_corrupt_streams_are_refused():
    maps = _maps(32, 32, 2)
    lv = coefmaps.map_levels(32, 32)
    data, p, _ = coefmaps.encode_maps(maps, -96, lv)
    for bad in (data[:-4], data + b"\x00\x00\x00\x01", data[:-1], b""):
        with pytest.raises(HsimHeaderError):
            coefmaps.decode_symbols(bad, p, 32, 32)


def test_reconstruction_offset_is_least_squares():
    maps = _maps(64, 64, 2, seed=9)
    lv = coefmaps.map_levels(64, 64)
    tr = coefmaps.Transformed.of(maps, lv)
    sym, a, rho = coefmaps.quantize(tr, -64, 2)
    mag = np.abs(sym)
    nz = mag > 0
    errs = [np.sum((mag[nz] - r / 32 - a[nz]) ** 2) for r in range(17)]
    assert abs(int(np.argmin(errs)) - rho) <= 1


def test_checkerboard_classes_by_hand():
    """Spec 10.5, scheme "checkerboard": first pass by t alone (classes 0..12), second pass by t plus the
    four first-pass neighbours (classes 13..25); FINE_EDGES thresholds."""
    t = np.zeros((4, 4), np.int64)
    t[1, 2] = 3
    absq = np.zeros((4, 4), np.int64)
    absq[0, 0] = 5  # first pass ((0 + 0) even)
    absq[1, 1] = 2  # first pass
    absq[0, 1] = 9  # second pass: never read as a neighbour
    cls = coefmaps.checker_classes(t, absq)
    assert cls[0, 0] == 0 and cls[1, 1] == 0  # first pass: t = 0
    assert cls[0, 1] == 13 + 5  # neighbours 5 + 2 = 7 → thresholds 1,2,3,4,6 reached
    assert cls[1, 0] == 13 + 5
    assert cls[1, 2] == 13 + 4  # t 3 + neighbour |(1,1)| 2 = 5 → 1,2,3,4 reached
    assert cls[2, 1] == 13 + 2  # neighbour (1,1): 2
    assert cls[3, 2] == 13 and cls[3, 3] == 0 and cls[2, 2] == 0


@pytest.mark.parametrize("h,w,k", [(1, 1, 1), (2, 3, 2), (17, 9, 3), (64, 48, 5)])
def test_checkerboard_streams_round_trip(h, w, k):
    maps = _maps(h, w, k, seed=h + w)
    lv = coefmaps.map_levels(h, w)
    for q in (-160, -64, 32):
        data, p, deq = coefmaps.encode_maps(maps, q, lv)
        assert p.checker and len(p.to_header()["co"]) == coefmaps.CHECKER_CLASSES
        np.testing.assert_array_equal(coefmaps.decode_maps(data, p, h, w), deq)


def test_checkerboard_beats_the_plain_scheme():
    maps = _maps(64, 64, 4, seed=11)
    lv = coefmaps.map_levels(64, 64)
    sym, _, _ = coefmaps.quantize(coefmaps.Transformed.of(maps, lv), -96, 4)
    plain = coefmaps.fit_codes(
        sym, *coefmaps.all_classes(sym, lv, checker=False), 4 * (lv + 1), n_classes=coefmaps.PLAIN_CLASSES
    )[2]
    assert coefmaps.code_bits(sym, lv) < plain


def test_rdoq_trades_bits_for_error_at_its_slope():
    """RDOQ only lowers magnitudes; at slope 0 nothing changes, at a real slope the ideal bits fall and
    bits saved × slope exceed the squared error added."""
    maps = _maps(48, 40, 3, seed=9)
    lv = coefmaps.map_levels(48, 40)
    tr = coefmaps.Transformed.of(maps, lv)
    sym, a, rho = coefmaps.quantize(tr, -64, 3, 0.5)
    assert np.array_equal(coefmaps.rdoq(sym, a, rho, lv, 1.0, 0.0), sym)
    lam = 0.3
    out = coefmaps.rdoq(sym, a, rho, lv, 1.0, lam)
    assert np.all(np.abs(out) <= np.abs(sym)) and np.all(out * sym >= 0) and not np.array_equal(out, sym)

    def err(s):
        m = np.abs(s)
        return float(np.sum((a - np.where(m > 0, m - rho / coefmaps.RECON_DEN, 0.0)) ** 2))

    saved = coefmaps.code_bits(sym, lv) - coefmaps.code_bits(out, lv)
    assert saved > 0 and lam * saved > err(out) - err(sym)


def _numpy_classes(sym, lv, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(coefmaps, "_native_classes", lambda: None)
        return coefmaps.all_classes(sym, lv)


@pytest.mark.parametrize(
    "k,h,w,levels",
    [(1, 1, 1, 0), (1, 1, 9, 3), (3, 7, 5, 2), (4, 33, 30, 5), (2, 64, 48, 5), (5, 13, 64, 4), (2, 40, 141, 4)],
)
@pytest.mark.parametrize("scale", [0.3, 4.0, 1e6])
def test_native_classes_equal_the_numpy_reference(k, h, w, levels, scale, monkeypatch):
    """csrc/context_classes.cpp (the encoder's pricing) and activity/checker_classes (the decoder) agree
    exactly, capped activities (|q| near 2^20) and degenerate subbands included; wide subbands take most
    columns 8 at a time (row_classes' AVX2 path, its terms saturated), their ends one at a time."""
    if coefmaps._native_classes() is None:
        pytest.skip("native extension not built")
    lv = wavelet_levels(h, w, levels)
    sym = np.random.default_rng(k * h + w).laplace(0, scale, (k, h, w)).astype(np.int64)
    sym = np.clip(sym, -(1 << 20), 1 << 20)
    cls, grp = coefmaps.all_classes(sym, lv)
    ref_cls, ref_grp = _numpy_classes(sym, lv, monkeypatch)
    np.testing.assert_array_equal(cls, ref_cls)
    np.testing.assert_array_equal(grp, ref_grp)
    stats = coefmaps.cell_stats(sym, lv)  # the pricing's fused classes + counts
    with monkeypatch.context() as m:
        _numpy_only(m)
        ref = coefmaps.cell_stats(sym, lv)
        ref_base, ref_off, ref_bits = coefmaps.fit_codes(sym, ref_cls, ref_grp, k * (lv + 1))
    for got, want in zip(stats, ref):
        np.testing.assert_array_equal(got, want)
    absq = np.abs(sym).astype(np.int32)
    for threads in (1, 2, 3):  # maps split over threads: the same cells whatever the split
        one = coefmaps._native_stats()(absq, *coefmaps._native_layout(h, w, lv), lv + 1, threads)
        for got, want in zip(one, ref):
            np.testing.assert_array_equal(got.reshape(want.shape), want)
    base, off, bits = coefmaps.fit_codes_from_stats(*stats, float(np.abs(sym).max()))  # C++ fit_scale_codes
    assert base == ref_base and np.array_equal(off, ref_off) and bits == ref_bits


def test_row_classes_vector_and_plain_paths_agree():
    """HSICODEC_SIMD=generic (a fresh process: read once) keeps row_classes on its plain loop; the classes,
    the pricing's cell statistics and the coded map stream are those of the AVX2 path, bit for bit."""
    if coefmaps._native_classes() is None:
        pytest.skip("native extension not built")
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from hsicodec.coding.wavelet import wavelet_levels\n"
        "from hsicodec.layers.maps import coding as cm\n"
        "rng = np.random.default_rng(5)\n"
        "sym = (rng.laplace(0, 3, (3, 70, 131)) * rng.choice([1, 40, 5000], (3, 70, 131))).astype(np.int64)\n"
        "lv = wavelet_levels(70, 131, 4)\n"
        "cls, grp = cm.all_classes(sym, lv)\n"
        "n, n0, tot = cm.cell_stats(sym, lv)\n"
        "data, _ = cm.encode_symbols(sym, 0, lv, 3)\n"
        "sys.stdout.write(str(hash((cls.tobytes(), n.tobytes(), n0.tobytes(), tot.tobytes(), bytes(data)))))\n"
    )
    import hsicodec

    root = os.path.dirname(os.path.dirname(os.path.abspath(hsicodec.__file__)))
    outs = []
    for simd in ("", "generic"):
        env = dict(os.environ, HSICODEC_SIMD=simd, PYTHONHASHSEED="0")
        env["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout)
    assert outs[0] == outs[1]


def _numpy_only(m):
    """Inside a monkeypatch context: every C++ twin of coefmaps off (the numpy references)."""
    m.setattr(coefmaps, "_native_function", lambda name: None)


@pytest.mark.parametrize("k,h,w,levels", [(1, 1, 1, 0), (3, 7, 5, 2), (4, 33, 30, 5), (6, 64, 48, 5)])
@pytest.mark.parametrize("q,deadzone", [(-120, 0.5), (-60, 0.4), (0, 0.3), (-1100, 0.5)])
def test_native_price_equals_the_numpy_reference(k, h, w, levels, q, deadzone, monkeypatch):
    """checker_price (quantizer, classes and counts fused in C++) gives the cells, ρ and max |q| of
    quantize + cell_stats exactly and their squared error up to summation order. At a step so fine that |q|
    is past 2^31 (q = −1100) the C++ refuses and the numpy path answers."""
    if coefmaps._native_function("checker_price") is None:
        pytest.skip("native extension not built")
    rng = np.random.default_rng(k + h * w)
    maps = rng.laplace(size=(h, w, k)) * np.exp(-np.arange(k) / 2.0)
    lv = wavelet_levels(h, w, levels)
    tr = coefmaps.Transformed.of(maps, lv)
    got = pricing.price(tr, q, k, deadzone)
    with monkeypatch.context() as m:
        _numpy_only(m)
        want = pricing.price(tr, q, k, deadzone)
    sym, a, rho = coefmaps.quantize(tr, q, k, deadzone)
    for x, y in ((got.n, want.n), (got.n0, want.n0), (got.tot, want.tot)):
        np.testing.assert_array_equal(x, y)
    assert got.rho == want.rho == rho and got.max_abs == want.max_abs == int(np.abs(sym).max())
    m_ = np.abs(sym)
    direct = float(np.sum((a - np.where(m_ > 0, m_ - rho / coefmaps.RECON_DEN, 0.0)) ** 2))
    assert got.sq_error == pytest.approx(direct, rel=1e-9, abs=1e-12)
    assert want.sq_error == pytest.approx(direct, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 7])
def test_native_price_is_the_same_in_any_number_of_runs(k, monkeypatch):
    """checker_price splits the maps into one run per thread, each run quantizing the map before it again:
    the same cells, sums and max |q| for 1, 2 and 3 threads, equal to the numpy reference."""
    nat = coefmaps._native_function("checker_price")
    if nat is None:
        pytest.skip("native extension not built")
    h, w = 96, 80  # k · h · w past 2^15 from k = 5 on: threads
    rng = np.random.default_rng(k)
    maps = rng.laplace(size=(h, w, k)) * np.exp(-np.arange(k) / 3.0)
    lv = wavelet_levels(h, w, 4)
    tr = coefmaps.Transformed.of(maps, lv)
    steps = coefmaps._step_map(h, w, lv, 2.0 ** (-3.0))
    layout = coefmaps._native_layout(h, w, lv)
    runs = [nat(tr.coeffs, steps, 0.4, *layout, lv + 1, threads) for threads in (1, 2, 3)]
    for other in runs[1:]:
        for got, want in zip(other, runs[0]):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    with monkeypatch.context() as m:
        _numpy_only(m)
        want = pricing.price_maps(tr, -3 * coefmaps.STEPS_PER_OCTAVE, 0, k, 0.4)
    got = pricing.price_maps(tr, -3 * coefmaps.STEPS_PER_OCTAVE, 0, k, 0.4)
    for x, y in ((got.n, want.n), (got.n0, want.n0), (got.tot, want.tot), (got.max_abs, want.max_abs)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(got.sums, want.sums, rtol=1e-12, atol=1e-9)


def test_native_fit_refuses_bad_tables():
    fit = coefmaps._native_function("fit_scale_codes")
    if fit is None:
        pytest.skip("native extension not built")
    n = np.ones((2, 3))
    lens = np.ones(4)  # the code-length tables l0, l1, lt
    with pytest.raises(ValueError, match="alike"):
        fit(n, np.ones((2, 2)), n, lens, lens, lens, 4, 1)
    with pytest.raises(ValueError, match="window"):
        fit(n, n, n, lens, np.ones(3), lens, 4, 1)
    with pytest.raises(ValueError, match="pad"):
        fit(n, n, n, lens, lens, lens, -1, 1)


def test_native_classes_refuse_a_bad_layout():
    nat = coefmaps._native_classes()
    if nat is None:
        pytest.skip("native extension not built")
    absq = np.zeros((1, 4, 4), np.int32)
    with pytest.raises(ValueError, match="outside"):
        nat(absq, [(0, 0, 0, 5, 0, 4)], [-1])
    with pytest.raises(ValueError, match="earlier"):
        nat(absq, [(0, 0, 0, 2, 0, 2), (1, 1, 0, 2, 2, 4)], [-1, 1])
    with pytest.raises(ValueError, match="one parent"):
        nat(absq, [(0, 0, 0, 2, 0, 2)], [])


@pytest.mark.parametrize("native", [True, False])
def test_prices_of_maps_priced_in_runs_equal_pricing_them_at_once(native, monkeypatch):
    """A search prices a step's maps in runs as k grows (map j's classes read map j − 1, priced along): the
    first k of them sum to exactly the price of the k maps at once, for any k up to what was priced."""
    if not native:
        _numpy_only(monkeypatch)
    rng = np.random.default_rng(5)
    maps = rng.laplace(size=(40, 36, 9)) * np.exp(-np.arange(9) / 2.0)
    tr = coefmaps.Transformed.of(maps, wavelet_levels(40, 36, 3))
    q = -40
    parts = pricing.price_maps(tr, q, 0, 3, 0.4).extended(pricing.price_maps(tr, q, 3, 4, 0.4))
    parts = parts.extended(pricing.price_maps(tr, q, 4, 9, 0.4))
    assert parts.maps == 9
    for k in (1, 3, 4, 7, 9):
        got, want = pricing.price_of(parts, k), pricing.price(tr, q, k, 0.4)
        for x, y in ((got.n, want.n), (got.n0, want.n0), (got.tot, want.tot)):
            np.testing.assert_array_equal(x, y)
        assert (got.rho, got.sq_error, got.max_abs) == (want.rho, want.sq_error, want.max_abs)


@pytest.mark.parametrize("q,deadzone", [(-120, 0.5), (-60, 0.4), (0, 0.3)])
def test_native_quantizer_equals_the_numpy_reference(q, deadzone, monkeypatch):
    """quantize_maps (C++) gives numpy's symbols, |c / step| and ρ bit for bit (ρ from the nonzeros'
    excesses in C order, summed by numpy as the reference sums them); without magnitudes it skips them."""
    if coefmaps._native_function("quantize_maps") is None:
        pytest.skip("native extension not built")
    rng = np.random.default_rng(abs(q))
    maps = rng.laplace(size=(37, 29, 5)) * np.exp(-np.arange(5) / 2.0)
    maps[0, 0, 0] = -0.0
    tr = coefmaps.Transformed.of(maps, wavelet_levels(37, 29, 4))
    got = coefmaps.quantize(tr, q, 5, deadzone)
    with monkeypatch.context() as m:
        _numpy_only(m)
        want = coefmaps.quantize(tr, q, 5, deadzone)
    assert got[0].dtype == want[0].dtype == np.int64
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]
    sym, a, rho = coefmaps.quantize(tr, q, 5, deadzone, magnitudes=False)
    assert a is None and rho == want[2] and np.array_equal(sym, want[0])
    # the excesses themselves (ρ rounds them away), in C order, over planes of several vector chunks
    steps = coefmaps._step_map(37, 29, tr.levels, entropy.step_from_exponent(q, coefmaps.STEPS_PER_OCTAVE))
    _, excess, _ = coefmaps._native_function("quantize_maps")(tr.coeffs, steps, float(deadzone), False)
    mag = np.floor(want[1] + deadzone)
    np.testing.assert_array_equal(excess, (mag - want[1])[mag > 0])

"""The C++ kernels (hsicodec._native) against the numpy reference and torch autograd.

Every test runs on each instruction set this machine supports (generic, avx2,
avx512), selected with the private helper ``_native._set_simd_level``; the
accuracy and determinism tests run with and without the optional linear skip
S (y += φ Sᵀ).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

nat = pytest.importorskip("hsicodec._native")

from siren_cases import make_inputs, make_weights  # noqa: E402

from hsicodec.layers.network import siren  # noqa: E402
from hsicodec.layers.network.siren import SirenWeights, forward_numpy, loss_grad_phi_numpy  # noqa: E402

LEVELS = list(nat.available_simd_levels())


@pytest.fixture(params=LEVELS)
def level(request):
    used = nat._set_simd_level(request.param)
    assert used == request.param
    yield used
    nat._set_simd_level("")


def native_forward(w: SirenWeights, x, phi, threads=1):
    return nat.siren_forward(
        x,
        phi,
        list(w.hidden_w),
        list(w.hidden_b),
        w.out_w,
        w.out_b,
        w.meta_w,
        w.meta_b,
        w.shift == "inside",
        threads,
        w.skip_w,
    )


def native_loss_grad(w: SirenWeights, x, phi, target, cw, pw, threads=1):
    return nat.siren_loss_grad_phi(
        x,
        phi,
        target,
        cw,
        pw,
        list(w.hidden_w),
        list(w.hidden_b),
        w.out_w,
        w.out_b,
        w.meta_w,
        w.meta_b,
        w.shift == "inside",
        threads,
        w.skip_w,
    )


# (K, d, m, C, n_in, N)
CASES = [
    (3, 64, 32, 16, 2, 1000),  # default model, N not a multiple of the tile
    (3, 64, 32, 224, 2, 300),  # many output channels
    (2, 13, 5, 205, 3, 257),  # odd width, odd C
    (1, 13, 1, 1, 3, 1),  # K=1, m=1, C=1, N=1
    (1, 8, 3, 7, 2, 97),
    (4, 20, 17, 3, 2, 193),
    (2, 128, 64, 31, 2, 130),
    (3, 16, 8, 16, 3, 96),  # exactly one tile on every instruction set
]
SHIFTS = ["inside", "outside"]
SKIPS = pytest.mark.parametrize("skip", [False, True], ids=["noskip", "skip"])


def case_id(c):
    return "K{}-d{}-m{}-C{}-in{}-N{}".format(*c)


@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_numpy(level, case, shift, skip):
    K, d, m, C, n_in, N = case
    rng = np.random.default_rng(zlib.crc32(repr((case, shift, skip)).encode()))
    w = make_weights(rng, K, d, m, C, n_in, shift, skip=skip)
    x, phi = make_inputs(rng, w, N)
    ref = forward_numpy(w, x, phi)
    got = native_forward(w, x, phi)
    assert got.dtype == np.float32 and got.shape == (N, C)
    assert np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - ref)))
    assert err <= 1e-5, f"max abs error {err:.3g} on {level}"


@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_grad_matches_numpy(level, case, shift, skip):
    K, d, m, C, n_in, N = case
    rng = np.random.default_rng(1 + zlib.crc32(repr((case, shift, skip)).encode()))
    w = make_weights(rng, K, d, m, C, n_in, shift, skip=skip)
    x, phi = make_inputs(rng, w, N)
    target = rng.normal(0.0, 1.0, (N, C)).astype(np.float32)
    cw = rng.uniform(0.0, 2.0, C).astype(np.float32)
    pw = (rng.uniform(0.0, 1.0, N) * (rng.uniform(size=N) > 0.2)).astype(np.float32)
    pw[0] = 1.0
    loss0, g0 = loss_grad_phi_numpy(w, x, phi, target, cw, pw)
    loss1, g1 = native_loss_grad(w, x, phi, target, cw, pw)
    assert isinstance(loss1, float)
    assert g1.dtype == np.float32 and g1.shape == (N, m)
    assert abs(loss1 - loss0) <= 1e-4 * abs(loss0)
    scale = float(np.max(np.abs(g0)))
    assert float(np.max(np.abs(g1 - g0))) <= 1e-4 * scale
    assert float(np.linalg.norm(g1 - g0)) <= 1e-4 * float(np.linalg.norm(g0))
    # pixels with zero weight get exactly zero gradient
    assert np.all(g1[pw == 0] == 0)


torch = None


def _torch():
    global torch
    if torch is None:
        torch = pytest.importorskip("torch")
    return torch


def torch_loss_grad(w: SirenWeights, x, phi, target, cw, pw):
    """The same network in float64 torch, differentiated with autograd."""
    th = _torch()
    t = lambda a: th.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    phi_t = t(phi).requires_grad_(True)
    beta = phi_t @ t(w.meta_w).T + t(w.meta_b)
    d = w.width
    h = t(x)
    for i, (wi, bi) in enumerate(zip(w.hidden_w, w.hidden_b)):
        z = h @ t(wi).T + t(bi)
        b = beta[:, i * d : (i + 1) * d]
        h = th.sin(z + b) if w.shift == "inside" else th.sin(z) + b
    y = h @ t(w.out_w).T + t(w.out_b)
    if w.skip_w is not None:
        y = y + phi_t @ t(w.skip_w).T
    loss = (t(pw)[:, None] * t(cw)[None, :] * (y - t(target)) ** 2).sum()
    loss.backward()
    return float(loss.detach()), phi_t.grad.numpy()


@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[5]], ids=case_id)
def test_loss_grad_matches_torch_autograd(level, case, shift, skip):
    K, d, m, C, n_in, N = case
    rng = np.random.default_rng(2 + zlib.crc32(repr((case, shift, skip)).encode()))  # not hash(): salted per run
    w = make_weights(rng, K, d, m, C, n_in, shift, skip=skip)
    x, phi = make_inputs(rng, w, N)
    target = rng.normal(0.0, 1.0, (N, C)).astype(np.float32)
    cw = rng.uniform(0.5, 1.5, C).astype(np.float32)
    pw = rng.uniform(0.5, 1.5, N).astype(np.float32)
    loss_t, g_t = torch_loss_grad(w, x, phi, target, cw, pw)
    loss_n, g_n = native_loss_grad(w, x, phi, target, cw, pw)
    # float32 residuals y - t cancel: the loss is compared to the size of its terms too (a one-pixel,
    # one-band case whose output lands near its target has a loss of 1e-5 and a relative error of 1e-4)
    scale = float(np.sum(pw[:, None] * cw[None, :] * (1.0 + target.astype(np.float64) ** 2)))
    assert abs(loss_n - loss_t) <= 1e-4 * abs(loss_t) + 1e-7 * scale
    assert float(np.linalg.norm(g_n - g_t)) <= 1e-4 * float(np.linalg.norm(g_t))
    assert float(np.max(np.abs(g_n - g_t))) <= 1e-4 * float(np.max(np.abs(g_t)))


@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
def test_results_independent_of_thread_count(level, shift, skip):
    rng = np.random.default_rng(3)
    w = make_weights(rng, 3, 24, 9, 37, 2, shift, skip=skip)
    n = 10 * nat.tile_pixels() + 17
    x, phi = make_inputs(rng, w, n)
    target = rng.normal(0.0, 1.0, (n, w.n_out)).astype(np.float32)
    cw = rng.uniform(0.0, 1.0, w.n_out).astype(np.float32)
    pw = rng.uniform(0.0, 1.0, n).astype(np.float32)
    y1 = native_forward(w, x, phi, threads=1)
    l1, g1 = native_loss_grad(w, x, phi, target, cw, pw, threads=1)
    for threads in (2, 3, 7, 0, -1):
        assert np.array_equal(native_forward(w, x, phi, threads=threads), y1)
        l2, g2 = native_loss_grad(w, x, phi, target, cw, pw, threads=threads)
        assert l2 == l1
        assert np.array_equal(g2, g1)


@pytest.fixture
def small_tiles():
    """Smallest legal tile: many tiles (and ragged ones) even for small N."""
    t = nat._set_tile_pixels(1)
    yield t
    nat._set_tile_pixels(0)


@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
def test_small_tiles_many_threads(level, small_tiles, shift, skip):
    rng = np.random.default_rng(7)
    w = make_weights(rng, 2, 13, 6, 9, 3, shift, skip=skip)
    n = 7 * small_tiles + 5
    x, phi = make_inputs(rng, w, n)
    target = rng.normal(0.0, 1.0, (n, w.n_out)).astype(np.float32)
    cw = rng.uniform(0.0, 1.0, w.n_out).astype(np.float32)
    pw = rng.uniform(0.0, 1.0, n).astype(np.float32)
    y1 = native_forward(w, x, phi, threads=1)
    assert np.max(np.abs(y1 - forward_numpy(w, x, phi))) <= 1e-5
    l1, g1 = native_loss_grad(w, x, phi, target, cw, pw, threads=1)
    l0, g0 = loss_grad_phi_numpy(w, x, phi, target, cw, pw)
    assert abs(l1 - l0) <= 1e-4 * abs(l0)
    assert np.max(np.abs(g1 - g0)) <= 1e-4 * np.max(np.abs(g0))
    for threads in (2, 5, 64):
        assert np.array_equal(native_forward(w, x, phi, threads=threads), y1)
        l2, g2 = native_loss_grad(w, x, phi, target, cw, pw, threads=threads)
        assert l2 == l1 and np.array_equal(g2, g1)


def test_concurrent_calls_from_python_threads():
    import threading

    rng = np.random.default_rng(8)
    w = make_weights(rng, 3, 32, 8, 20, 2)
    x, phi = make_inputs(rng, w, 3000)
    want = native_forward(w, x, phi, threads=1)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(native_forward(w, x, phi, threads=3))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20 and all(np.array_equal(r, want) for r in results)


def test_simd_env_override():
    import os
    import subprocess
    import sys

    import hsicodec

    code = "from hsicodec import _native as n; print(n.simd_level())"
    root = os.path.dirname(os.path.dirname(os.path.abspath(hsicodec.__file__)))
    env = dict(
        os.environ, HSICODEC_SIMD="generic", PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "generic"


def test_simd_level_and_threads():
    assert nat.simd_level() in ("avx512", "avx2", "generic")
    assert nat.simd_level() == LEVELS[-1] or nat.simd_level() in LEVELS
    assert "generic" in LEVELS
    assert nat.default_threads() >= 1
    assert nat.tile_pixels() >= 1


def test_sine_accuracy(level):
    # |x| <= 1000: the range reduction must stay accurate far from zero
    assert nat.vsin_max_error(-1000.0, 1000.0, 2_000_001) <= 1e-6
    assert nat.vcos_max_error(-1000.0, 1000.0, 2_000_001) <= 1e-6
    assert nat.vsin_max_error(-4.0, 4.0, 400_001) <= 2e-7
    assert nat.vcos_max_error(-4.0, 4.0, 400_001) <= 2e-7
    x = np.array([0.0, -0.0, np.pi / 2, -np.pi / 2, np.pi, 1e-30, 3.0, -123.456, 999.9], np.float32)
    s, c = nat._sincos(x)
    assert np.max(np.abs(s - np.sin(x.astype(np.float64)))) <= 1e-6
    assert np.max(np.abs(c - np.cos(x.astype(np.float64)))) <= 1e-6
    assert s[0] == 0.0 and c[0] == 1.0
    # far outside any sane pre-activation range: still bounded and accurate (libm path)
    assert nat.vsin_max_error(-1e8, 1e8, 100_001) <= 1e-6
    assert nat.vcos_max_error(-3e38, 3e38, 100_001) <= 1e-6
    s, c = nat._sincos(np.array([np.inf, -np.inf, np.nan], np.float32))
    assert np.all(np.isnan(s)) and np.all(np.isnan(c))


@SKIPS
def test_dispatcher_uses_native(skip):
    rng = np.random.default_rng(4)
    w = make_weights(rng, 2, 16, 4, 5, 2, "outside", skip=skip)
    x, phi = make_inputs(rng, w, 50)
    y = siren.forward(w, x, phi, backend="native", threads=2)
    assert np.max(np.abs(y - forward_numpy(w, x, phi))) <= 1e-5
    target = rng.normal(size=(50, 5)).astype(np.float32)
    loss, g = siren.loss_grad_phi(w, x, phi, target, backend="native")
    loss0, g0 = loss_grad_phi_numpy(w, x, phi, target)
    assert abs(loss - loss0) <= 1e-4 * abs(loss0)
    assert np.max(np.abs(g - g0)) <= 1e-4 * np.max(np.abs(g0))


def test_empty_and_converted_inputs():
    rng = np.random.default_rng(5)
    w = make_weights(rng, 2, 16, 4, 5, 2)
    x, phi = make_inputs(rng, w, 0)
    assert native_forward(w, x, phi).shape == (0, 5)
    loss, g = native_loss_grad(w, x, phi, np.zeros((0, 5), np.float32), np.ones(5, np.float32), np.ones(0, np.float32))
    assert loss == 0.0 and g.shape == (0, 4)
    # float64 and non-contiguous inputs are converted (a copy), not rejected
    x, phi = make_inputs(rng, w, 40)
    xx = np.asfortranarray(x.astype(np.float64))
    pp = np.concatenate([phi, phi], axis=1)[:, : w.latent_dim]
    assert not pp.flags.c_contiguous
    assert np.array_equal(native_forward(w, xx, pp), native_forward(w, x, phi))


def test_shape_errors_raise_value_error():
    rng = np.random.default_rng(6)
    w = make_weights(rng, 2, 16, 4, 5, 2)
    x, phi = make_inputs(rng, w, 10)
    hw, hb = list(w.hidden_w), list(w.hidden_b)
    ok = (x, phi, hw, hb, w.out_w, w.out_b, w.meta_w, w.meta_b, True, 1)

    def call(**kw):
        names = ["x", "phi", "hw", "hb", "ow", "ob", "mw", "mb", "inside", "threads"]
        args = dict(zip(names, ok))
        args.update(kw)
        return nat.siren_forward(*[args[n] for n in names])

    call()  # sanity
    bad = [
        dict(x=x[:, :1]),  # n_in mismatch
        dict(x=x[:5]),  # N mismatch with phi
        dict(x=x[:, 0].copy()),  # 1-D
        dict(phi=phi[:, :3]),  # m mismatch
        dict(hw=[]),  # K = 0
        dict(hb=hb[:1]),  # list lengths differ
        dict(hw=[hw[0], hw[1][:, :7]]),  # hidden layer shape
        dict(hb=[hb[0], hb[1][:7]]),
        dict(ow=w.out_w[:, :7]),  # output width
        dict(ob=w.out_b[:3]),
        dict(mw=w.meta_w[:5]),  # meta rows != K*d
        dict(mb=w.meta_b[:5]),
        dict(ow=w.out_w[None]),  # 3-D
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            call(**kw)
    target = np.zeros((10, 5), np.float32)
    cw, pw = np.ones(5, np.float32), np.ones(10, np.float32)
    rest = (hw, hb, w.out_w, w.out_b, w.meta_w, w.meta_b, True, 1)
    nat.siren_loss_grad_phi(x, phi, target, cw, pw, *rest)
    for t, c, p in [
        (target[:9], cw, pw),
        (target[:, :4], cw, pw),
        (target, cw[:4], pw),
        (target, cw, pw[:9]),
        (target, cw, pw[:, None]),
    ]:
        with pytest.raises(ValueError):
            nat.siren_loss_grad_phi(x, phi, t, c, p, *rest)


def test_skip_argument_semantics():
    """skip_w omitted == None; a zero skip changes nothing; the skip is exactly additive-linear."""
    rng = np.random.default_rng(9)
    w = make_weights(rng, 2, 16, 6, 5, 2)
    x, phi = make_inputs(rng, w, 300)
    target = rng.normal(size=(300, 5)).astype(np.float32)
    cw, pw = np.ones(5, np.float32), rng.uniform(0.0, 1.0, 300).astype(np.float32)
    args = (list(w.hidden_w), list(w.hidden_b), w.out_w, w.out_b, w.meta_w, w.meta_b, True, 2)
    y_old = nat.siren_forward(x, phi, *args)  # the pre-skip call signature
    assert np.array_equal(nat.siren_forward(x, phi, *args, None), y_old)
    assert np.array_equal(nat.siren_forward(x, phi, *args, skip_w=None), y_old)
    zero = np.zeros((5, 6), np.float32)
    assert np.array_equal(nat.siren_forward(x, phi, *args, zero), y_old)
    l_old, g_old = nat.siren_loss_grad_phi(x, phi, target, cw, pw, *args)
    l_z, g_z = nat.siren_loss_grad_phi(x, phi, target, cw, pw, *args, skip_w=zero)
    assert l_z == l_old and np.array_equal(g_z, g_old)
    # y(S) - y(0) = φ Sᵀ; float64 / non-contiguous S is converted like the other arguments
    s = rng.normal(0.0, 0.3, (5, 6))
    y_s = nat.siren_forward(x, phi, *args, np.asfortranarray(s))
    assert np.max(np.abs((y_s - y_old) - phi @ s.astype(np.float32).T)) <= 1e-5
    assert np.array_equal(y_s, nat.siren_forward(x, phi, *args, s.astype(np.float32)))


def test_skip_shape_errors_raise_value_error():
    rng = np.random.default_rng(10)
    w = make_weights(rng, 2, 16, 4, 5, 2)
    x, phi = make_inputs(rng, w, 10)
    target = np.zeros((10, 5), np.float32)
    cw, pw = np.ones(5, np.float32), np.ones(10, np.float32)
    rest = (list(w.hidden_w), list(w.hidden_b), w.out_w, w.out_b, w.meta_w, w.meta_b, True, 1)
    for bad in [
        np.zeros((5, 3), np.float32),
        np.zeros((4, 4), np.float32),
        np.zeros((4, 5), np.float32),
        np.zeros(20, np.float32),
        np.zeros((1, 5, 4), np.float32),
        np.zeros((0, 4), np.float32),
    ]:
        with pytest.raises(ValueError):
            nat.siren_forward(x, phi, *rest, bad)
        with pytest.raises(ValueError):
            nat.siren_loss_grad_phi(x, phi, target, cw, pw, *rest, bad)
    # even when there is nothing to compute
    x0, phi0 = make_inputs(rng, w, 0)
    with pytest.raises(ValueError):
        nat.siren_forward(x0, phi0, *rest, np.zeros((5, 3), np.float32))


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("bad", [1e9, np.inf, np.nan])
def test_range_checked_tiles_give_the_same_results(level, shift, bad):
    """A tile whose sine arguments may pass the fast range (one pixel's latents huge, inf or NaN) takes the
    checked sine: every other pixel of that tile comes out bit for bit as without it, finite values stay
    finite, and the unchecked tiles are untouched."""
    rng = np.random.default_rng(11)
    w = make_weights(rng, 3, 24, 6, 5, 2, shift, skip=True)
    x, phi = make_inputs(rng, w, 300)
    y = native_forward(w, x, phi)
    phi_bad = phi.copy()
    phi_bad[5, 2] = bad
    y_bad = native_forward(w, x, phi_bad)
    keep = np.arange(300) != 5
    np.testing.assert_array_equal(y_bad[keep], y[keep])
    if np.isfinite(bad):
        assert np.all(np.isfinite(y_bad[5]))
    assert np.max(np.abs(y - forward_numpy(w, x, phi))) <= 1e-5


# -- the coefficient-map decoder's kernels: fused dequantize + CDF 9/7 synthesis, fused mean + cast --------


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 7), (2, 17, 9), (5, 40, 33)])
@pytest.mark.parametrize("recon", [0, 5, 16])
def test_native_dequantize_matches_reference(shape, recon):
    from hsicodec.layers.maps.coding import MapParams, dequantize, dequantize_reference, map_levels

    k, h, w = shape
    levels = map_levels(h, w)
    sym = np.random.default_rng(sum(shape) + recon).integers(-40, 41, size=shape) * (np.arange(w) % 3 > 0)
    p = MapParams(k, -40, levels, 40, bytes(k * (levels + 1)), np.zeros(26, np.int64), recon)
    got, want = dequantize(sym, p, h, w), dequantize_reference(sym, p, h, w)
    assert got.shape == (h, w, k) and np.array_equal(got, want)  # the same roundings: bit for bit
    assert np.array_equal(dequantize(sym.astype(np.int32), p, h, w), want)  # the decoder's int32, uncopied


def _fused_cast(vals: np.ndarray, dtype: str, nb: int = 9, threads: int = 2) -> np.ndarray:
    """nat.reconstruct_cast with k = 1, a basis of ones and a zero mean: each value of ``vals`` cast to
    ``dtype`` in all ``nb`` bands of its pixel (the SIMD lanes and the scalar tail)."""
    out = np.empty((vals.size, 1, nb), dtype)
    assert nat.reconstruct_cast(vals.reshape(-1, 1, 1), 1.0, np.ones((1, nb)), np.zeros(nb), out, threads) == 0
    return out


@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"])
def test_fused_cast_matches_cast_to_dtype(dtype):
    from hsicodec.io.cast import cast_to_dtype

    rng = np.random.default_rng(9)
    vals = rng.normal(size=(300, 7)) * 10.0 ** rng.integers(0, 12, size=(300, 7))
    vals[0] = [0.5, 1.5, 2.5, -0.5, -2.5, 2.0**53 + 2, np.inf]  # ties to even, whole beyond 2^52, inf
    vals[1] = [-np.inf, 1e300, -1e300, 3.4e38 * 2, 127.5, 255.5, -128.5]
    vals[2] = [65535.5, 65534.5, -32768.5, 32767.5, 4294967295.5, -2147483648.5, 2147483647.5]
    want = cast_to_dtype(vals.reshape(-1, 1, 1), np.dtype(dtype))
    for nb in (1, 4, 9, 21):
        got = _fused_cast(vals, dtype, nb)
        assert np.array_equal(got, np.broadcast_to(want, got.shape))


def test_fused_cast_counts_nan_and_refuses_odd_outputs():
    vals = np.zeros(600)
    vals[5] = vals[599] = np.nan
    out = np.empty((600, 1, 3), np.uint16)
    assert nat.reconstruct_cast(vals.reshape(-1, 1, 1), 1.0, np.ones((1, 3)), np.ones(3), out, 3) == 6
    f = np.empty((600, 1, 3), np.float32)
    nat.reconstruct_cast(vals.reshape(-1, 1, 1), 1.0, np.ones((1, 3)), np.ones(3), f, 1)
    assert np.isnan(f[5, 0, 1]) and f[0, 0, 0] == 1.0
    with pytest.raises(ValueError):
        nat.reconstruct_cast(vals.reshape(-1, 1, 1), 1.0, np.ones((1, 3)), np.ones(3), f.astype(np.float16), 1)
    with pytest.raises(ValueError):  # bands of a pixel not next to each other
        nat.reconstruct_cast(vals.reshape(-1, 1, 1), 1.0, np.ones((1, 3)), np.ones(3), out[:, :, ::-1], 1)


def test_fused_reconstruction_writes_a_window_and_does_not_depend_on_threads():
    rng = np.random.default_rng(4)
    coeffs, basis, mean = rng.normal(size=(40, 37, 6)), rng.normal(size=(6, 23)), rng.uniform(500, 900, 23)
    whole = np.empty((40, 37, 23), np.uint16)
    nat.reconstruct_cast(coeffs, 40.0, basis, mean, whole, 1)
    big = np.zeros((50, 60, 23), np.uint16)
    nat.reconstruct_cast(coeffs, 40.0, basis, mean, big[5:45, 11:48], 3)
    assert np.array_equal(big[5:45, 11:48], whole)
    assert not big[:5].any() and not big[:, :11].any() and not big[:, 48:].any()


@pytest.mark.skipif("avx512" not in LEVELS, reason="no AVX-512F on this CPU")
@pytest.mark.parametrize("dtype", ["u2", "i2", "f8", "u1"])
def test_fused_reconstruction_avx512_equals_avx2(dtype, monkeypatch):
    """The AVX-512 reconstruction kernels (32 bands of four pixels a step, 16-bit outputs finished 16 values
    a step, tails under masks) give the AVX2 kernels' bytes and NaN count: every band count around the vector
    widths, pixel counts that leave 3, 2, 1 or 0 pixels after the last four, NaN, infinities and values beyond
    the dtype's range."""
    rng = np.random.default_rng(12)
    for nb in (1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 189, 224):
        for k, (h, w) in zip((0, 1, 5, 16), ((7, 9), (2, 31), (1, 61), (8, 8))):
            coeffs = rng.normal(size=(h, w, k)) * 10.0 ** rng.integers(0, 5, size=(h, w, k))
            if k:
                coeffs[0, 2, 0], coeffs[-1, 3, k - 1], coeffs[0, 0, 0] = np.nan, np.inf, -np.inf
            basis, mean = rng.normal(size=(k, nb)), rng.uniform(-300, 300, nb)
            got = []
            for simd in ("avx2", "avx512"):
                monkeypatch.setenv("HSICODEC_SIMD", simd)
                out = np.full((h, w, nb), 7, dtype)
                got.append((out, nat.reconstruct_cast(coeffs, 3.0, basis, mean, out, 2)))
            assert np.array_equal(got[0][0], got[1][0], equal_nan=dtype == "f8") and got[0][1] == got[1][1]
            assert got[0][1] > 0 if k and dtype != "f8" else True


@pytest.mark.parametrize("dtype", ["u2", "i2", "f4", "f8", "i8", "u1"])
@pytest.mark.parametrize("native", [True, False])
def test_reconstruct_cast_matches_reconstruct_then_cast(dtype, native, monkeypatch):
    """The fused C++ reconstruction against numpy's (BLAS product, then cast): equal on this machine (its
    sums are OpenBLAS's AVX2 ones, FMAs in order); the stated tolerance is one unit of an integer output (a
    value on a rounding tie) and 1e-12 relative for floats."""
    from hsicodec.codec.decode import RECONSTRUCT_BLOCK, reconstruct_cast
    from hsicodec.coding.spectral import reconstruct
    from hsicodec.coding.wavelet import NATIVE_ENV
    from hsicodec.io.cast import cast_to_dtype

    if not native:
        monkeypatch.setenv(NATIVE_ENV, "0")
    rng = np.random.default_rng(11)
    h, w, k, c = 3, RECONSTRUCT_BLOCK // 3 * 2 + 7, 5, 23  # two blocks and a tail
    coeffs = rng.normal(size=(h, w, k))
    basis, mean = rng.normal(size=(k, c)), rng.uniform(50, 150, c)
    for bands in ((0, c), (4, 17)):
        for kk in (k, 0):
            want = cast_to_dtype(reconstruct(coeffs[..., :kk], 40.0, mean, basis[:kk], bands), np.dtype(dtype))
            got = reconstruct_cast(coeffs[..., :kk], 40.0, mean, basis[:kk], bands, np.dtype(dtype))
            assert got.dtype == want.dtype and got.shape == want.shape
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            if np.dtype(dtype).kind == "f":
                assert diff.max() <= 1e-12 * np.abs(want).max()
            else:
                assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000


@pytest.mark.parametrize("name", ["maps_33x30x66_uint16", "geo_12x16x50_float32", "tiled_40x36x50_uint16"])
def test_decode_with_native_wavelet_equals_the_numpy_path(name, monkeypatch):
    from pathlib import Path

    from hsicodec.codec.api import decompress
    from hsicodec.coding.wavelet import NATIVE_ENV

    path = Path(__file__).resolve().parents[1] / "spec" / "vectors" / f"{name}.hsim"
    fast, _ = decompress(path)
    monkeypatch.setenv(NATIVE_ENV, "0")
    ref, _ = decompress(path)
    assert fast.dtype == ref.dtype and np.array_equal(fast, ref, equal_nan=True)

"""The lossless lattice coder (hsicodec.layers.predictive.coder, csrc/lattice_coder.cpp).

Round trips on random and structured cubes, the native encoder against the pure Python reference
(identical bytes), partial decodes (row blocks and band_stop) against slices of a full decode, and
malformed streams (truncated, wrong block table, trailing bytes, values past max_value, random damage),
which must raise HsimHeaderError and nothing else.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from hsicodec.errors import HsimHeaderError
from hsicodec.layers.predictive import coder

HAS_NATIVE = coder.native_available()
needs_native = pytest.mark.skipif(not HAS_NATIVE, reason="the native extension is not built")
DATA = "/work/shared/data/hsi"


def _smooth(h: int, w: int, c: int, seed: int = 0, noise: int = 3, base: int = 1000) -> np.ndarray:
    """A spatially and spectrally smooth cube with a little noise (like a real scene)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bands = [base + 60 * np.sin(yy / 3 + z / 5) + 40 * np.cos(xx / 4 - z / 7) + 15 * z for z in range(c)]
    u = np.stack(bands, axis=2) + rng.integers(-noise, noise + 1, (h, w, c))
    return np.clip(np.round(u), 0, None).astype(np.int64)


def _random(h: int, w: int, c: int, max_value: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, max_value + 1, size=(h, w, c), dtype=np.int64)


def _edges(h: int, w: int, c: int, max_value: int, seed: int = 0) -> np.ndarray:
    """Only 0 and max_value: residuals at the ends of the mapping."""
    return np.random.default_rng(seed).integers(0, 2, size=(h, w, c)).astype(np.int64) * max_value


def _cases() -> list[tuple[str, np.ndarray, int, int]]:
    """(name, cube, max_value, rows_per_block): small enough for the Python reference."""
    return [
        ("1x1x1", np.array([[[3]]]), 5, 32),
        ("1x1x1 zero range", np.zeros((1, 1, 1), np.int64), 0, 1),
        ("constant", np.full((6, 7, 5), 9), 9, 4),
        ("constant zero", np.zeros((5, 4, 6), np.int64), 0, 2),
        ("constant max", np.full((4, 5, 3), 2**31 - 1), 2**31 - 1, 3),
        ("edges 0 / max", _edges(6, 5, 7, 1000), 1000, 4),
        ("edges 31-bit", _edges(5, 4, 6, 2**31 - 1, seed=1), 2**31 - 1, 2),
        ("edges 2^26 - 1 (int32 path)", _edges(6, 5, 9, 2**26 - 1, seed=4), 2**26 - 1, 3),
        ("edges 2^26 (int64 path)", _edges(6, 5, 9, 2**26, seed=4), 2**26, 3),
        ("random 2^26 - 1", _random(5, 6, 9, 2**26 - 1, seed=5), 2**26 - 1, 2),
        ("random 16-bit", _random(5, 7, 9, 65535), 65535, 2),
        ("random binary", _random(7, 6, 5, 1, seed=2), 1, 3),
        ("random 31-bit", _random(4, 5, 6, 2**31 - 1, seed=3), 2**31 - 1, 3),
        ("single row", _smooth(1, 17, 9), 3000, 32),
        ("single column", _smooth(13, 1, 8), 3000, 4),
        ("rows_per_block does not divide", _smooth(11, 6, 8), 3000, 4),
        ("rows_per_block 1", _smooth(4, 5, 7), 3000, 1),
        ("many bands", _smooth(3, 4, 150, noise=2), 5000, 2),
        ("smooth 8x9x14", _smooth(8, 9, 14, seed=5), 2000, 3),
        ("noisy smooth", _smooth(9, 8, 10, seed=6, noise=200), 4000, 32),
        ("2 columns", _smooth(7, 2, 9, seed=7), 3000, 3),
        # blocks of >= 128 samples per band: the encoder's training pass runs
        ("trained 16x12x9", _smooth(16, 12, 9, seed=12, noise=6), 3000, 12),
        ("trained random", _random(9, 16, 7, 4095, seed=13), 4095, 9),
        ("trained 31-bit", _edges(8, 17, 6, 2**31 - 1, seed=14), 2**31 - 1, 8),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,u,max_value,rpb", CASES, ids=IDS)
def test_reference_round_trip(name, u, max_value, rpb):
    data = coder.encode_reference(u, max_value, rpb)
    back = coder.decode_reference(data, u.shape, max_value, rpb)
    assert back.dtype == np.int32 and back.shape == u.shape
    np.testing.assert_array_equal(back, u)


@needs_native
@pytest.mark.parametrize("name,u,max_value,rpb", CASES, ids=IDS)
def test_native_equals_reference(name, u, max_value, rpb):
    ref = coder.encode_reference(u, max_value, rpb)
    for threads in (1, 2, 0):
        assert coder.encode(u, max_value, rpb, threads=threads) == ref
    back = coder.decode(ref, u.shape, max_value, rpb, threads=2)
    np.testing.assert_array_equal(back, u)


@needs_native
def test_native_equals_reference_on_real_data():
    path = os.path.join(DATA, "jasper_ridge.npy")
    if not os.path.exists(path):
        pytest.skip("no real cube here")
    u = np.load(path)[20:33, 40:52, 30:50].astype(np.int64)
    u -= u.min()
    m = int(u.max())
    # blocks of 11 rows (132 samples per band: trained weights) and 2 rows (24: not trained)
    ref = coder.encode_reference(u, m, 11)
    assert coder.encode(u, m, 11) == ref
    np.testing.assert_array_equal(coder.decode(ref, u.shape, m, 11), u)


@needs_native
@pytest.mark.parametrize("seed", range(6))
def test_native_round_trip_random_shapes(seed):
    rng = np.random.default_rng(100 + seed)
    h, w, c = (int(v) for v in rng.integers(1, 40, 3))
    m = int(rng.choice([1, 255, 4095, 65535, 2**20, 2**31 - 1]))
    rpb = int(rng.integers(1, 20))
    u = _random(h, w, c, m, seed) if seed % 2 else np.minimum(_smooth(h, w, c, seed), m)
    data = coder.encode(u, m, rpb)
    np.testing.assert_array_equal(coder.decode(data, u.shape, m, rpb), u)
    assert coder.encode(u, m, rpb, threads=1) == data


@needs_native
def test_native_larger_cube_and_threads():
    u = _smooth(70, 50, 30, seed=9, noise=20)
    m = int(u.max())
    data = coder.encode(u, m, 16, threads=4)
    assert data == coder.encode(u, m, 16, threads=1)
    np.testing.assert_array_equal(coder.decode(data, u.shape, m, 16, threads=3), u)


def test_empty_cubes():
    for shape in [(0, 4, 3), (3, 0, 2), (2, 3, 0)]:
        u = np.zeros(shape, np.int64)
        data = coder.encode_reference(u, 7, 2)
        assert coder.decode_reference(data, shape, 7, 2).shape == shape
        if HAS_NATIVE:
            assert coder.encode(u, 7, 2) == data
            assert coder.decode(data, shape, 7, 2).shape == shape


# ----------------------------------------------------------------------------------------------
# partial decodes


def _windows(h: int, rpb: int) -> list[tuple[int, int]]:
    return [(0, h), (0, 1), (h - 1, h), (rpb - 1, min(h, rpb + 1)), (min(h, rpb), h), (2, 2), (0, 0), (h, h)]


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_partial_decode_equals_slice(backend):
    if backend == "native" and not HAS_NATIVE:
        pytest.skip("the native extension is not built")
    u = _smooth(11, 6, 9, seed=3)
    m, rpb = int(u.max()), 4
    data = coder.encode_reference(u, m, rpb)
    dec = coder.decode_reference if backend == "reference" else coder.decode
    full = dec(data, u.shape, m, rpb)
    np.testing.assert_array_equal(full, u)
    for r0, r1 in _windows(11, rpb):
        for bs in (0, 1, 4, 9, None):
            part = dec(data, u.shape, m, rpb, rows=(r0, r1), band_stop=bs)
            np.testing.assert_array_equal(part, full[r0:r1, :, : (9 if bs is None else bs)])


@needs_native
def test_native_block_decode():
    from hsicodec import _native as nat

    u = _smooth(23, 9, 12, seed=4)
    m, rpb = int(u.max()), 5
    data = coder.encode(u, m, rpb)
    for lo, hi in [(0, 5), (1, 3), (4, 5), (2, 2), (0, 1)]:
        for bs in (1, 7, 12):
            part = nat.lattice_decode(data, 23, 9, 12, m, rpb, lo, hi, bs)
            np.testing.assert_array_equal(part, u[lo * rpb : min(23, hi * rpb), :, :bs])
    with pytest.raises(ValueError):
        nat.lattice_decode(data, 23, 9, 12, m, rpb, 3, 2, 12)
    with pytest.raises(ValueError):
        nat.lattice_decode(data, 23, 9, 12, m, rpb, 0, 6, 12)
    with pytest.raises(ValueError):
        nat.lattice_decode(data, 23, 9, 12, m, rpb, 0, 5, 13)


# ----------------------------------------------------------------------------------------------
# argument checks


def test_bad_arguments():
    u = _smooth(4, 4, 3)
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(u, int(u.max()) - 1)
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(u - 2000, 5000)
    with pytest.raises(ValueError, match="integers"):
        coder.encode(u.astype(np.float64), 5000)
    with pytest.raises(ValueError):
        coder.encode(u[0], 5000)
    with pytest.raises(ValueError, match="rows_per_block"):
        coder.encode(u, 5000, 0)
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(u, 2**31)
    data = coder.encode(u, 5000, 2)
    with pytest.raises(ValueError, match="rows"):
        coder.decode(data, u.shape, 5000, 2, rows=(3, 5))
    with pytest.raises(ValueError, match="band_stop"):
        coder.decode(data, u.shape, 5000, 2, band_stop=4)
    with pytest.raises(ValueError):
        coder.decode(data, (4, 4), 5000, 2)


def test_falls_back_on_the_reference(monkeypatch):
    u = _smooth(5, 4, 6)
    m = int(u.max())
    ref = coder.encode_reference(u, m, 2)
    monkeypatch.setattr(coder, "_native", lambda: None)
    assert coder.encode(u, m, 2) == ref
    np.testing.assert_array_equal(coder.decode(ref, u.shape, m, 2, rows=(1, 4), band_stop=3), u[1:4, :, :3])


# ----------------------------------------------------------------------------------------------
# stream size


@pytest.mark.parametrize("value", [0, 1234, 65535])
def test_constant_cube_is_tiny(value):
    shape = (64, 48, 40)
    u = np.full(shape, value)
    if HAS_NATIVE:
        data = coder.encode(u, 65535, 16)
    else:
        shape = (8, 8, 10)
        u = np.full(shape, value)
        data = coder.encode_reference(u, 65535, 16)
    nblk = -(-shape[0] // 16)
    n = int(np.prod(shape))
    # block table, then per block 4 coder bytes and the adaptive probabilities learning that every
    # residual is 0 (under 150 bytes), then ~0.003 bit per value (the probability floor)
    assert len(data) <= 4 + 4 * nblk + 150 * nblk + n // 1000, len(data)


@needs_native
def test_smooth_cube_beats_raw_bits():
    u = _smooth(40, 40, 30, noise=3)
    data = coder.encode(u, 65535, 32)
    assert len(data) * 8 / u.size < 4.5  # noise of 7 levels: ~2.8 bits of entropy; raw would be 16


# ----------------------------------------------------------------------------------------------
# malformed streams


def _sample_stream():
    u = _smooth(9, 5, 6, seed=8)
    m, rpb = int(u.max()), 4
    return u, m, rpb, coder.encode_reference(u, m, rpb)


def _decoders():
    out = [coder.decode_reference]
    if HAS_NATIVE:
        out.append(coder.decode)
    return out


@pytest.mark.parametrize("dec", _decoders(), ids=lambda f: f.__name__)
def test_truncated_streams_raise(dec):
    u, m, rpb, data = _sample_stream()
    step = 1 if dec is coder.decode else 7
    for n in list(range(0, len(data), step)) + [len(data) - 1]:
        with pytest.raises(HsimHeaderError):
            dec(data[:n], u.shape, m, rpb)


@pytest.mark.parametrize("dec", _decoders(), ids=lambda f: f.__name__)
def test_block_table_errors(dec):
    u, m, rpb, data = _sample_stream()
    nblk = 3
    lengths = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "little") for i in range(nblk)]
    body = data[4 + 4 * nblk :]

    def stream(count, lens, payload=body):
        return count.to_bytes(4, "little") + b"".join(v.to_bytes(4, "little") for v in lens) + payload

    bad = [
        stream(2, lengths[:2]),  # too few blocks
        stream(4, lengths + [0]),  # too many blocks
        stream(0xFFFFFFFF, lengths),  # absurd count: refused before any allocation
        stream(nblk, [lengths[0] + 1, lengths[1] - 1, lengths[2]]),  # boundary moved
        stream(nblk, [lengths[1], lengths[0], lengths[2]]),  # lengths swapped
        stream(nblk, [lengths[0], lengths[1], lengths[2] + 1]),  # declares more than there is
        stream(nblk, [lengths[0], lengths[1], lengths[2] - 1]),  # one byte undeclared (trailing)
        stream(nblk, [0xFFFFFFFF] * 3),
        data + b"\x00",  # trailing byte
        data + b"\x01\x02\x03",
        b"",
        b"\x03\x00",
    ]
    for s in bad:
        with pytest.raises(HsimHeaderError):
            dec(s, u.shape, m, rpb)
    # the same stream read with another shape or block size
    for shape, r in [((13, 5, 6), rpb), ((9, 5, 6), 3), ((9, 5, 6), 5)]:
        with pytest.raises(HsimHeaderError):
            dec(data, shape, m, r)


@pytest.mark.parametrize("dec", _decoders(), ids=lambda f: f.__name__)
def test_trailing_bytes_inside_a_block_raise(dec):
    u, m, rpb, data = _sample_stream()
    nblk = 3
    lengths = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "little") for i in range(nblk)]
    off = 4 + 4 * nblk
    blocks = []
    for v in lengths:
        blocks.append(data[off : off + v])
        off += v
    for b in range(nblk):
        padded = list(blocks)
        padded[b] = padded[b] + b"\x00\x00"
        s = nblk.to_bytes(4, "little") + b"".join(len(x).to_bytes(4, "little") for x in padded) + b"".join(padded)
        with pytest.raises(HsimHeaderError, match="trailing"):
            dec(s, u.shape, m, rpb)


@pytest.mark.parametrize("dec", _decoders(), ids=lambda f: f.__name__)
def test_values_past_max_value_raise(dec):
    # a stream of values up to 1000 read as if max_value were smaller
    u = _edges(6, 5, 4, 1000, seed=3)
    data = coder.encode_reference(u, 1000, 3)
    for m in (0, 1, 999):
        with pytest.raises(HsimHeaderError):
            dec(data, u.shape, m, 3)


@needs_native
def test_fuzz_native():
    rng = np.random.default_rng(1234)
    u = _smooth(12, 7, 10, seed=11, noise=30)
    m, rpb = int(u.max()), 5
    data = bytearray(coder.encode(u, m, rpb))
    t0 = time.perf_counter()
    outcomes = {"error": 0, "decoded": 0}
    for trial in range(3000):
        s = bytearray(data)
        kind = trial % 4
        if kind == 0:  # flip bits in the payload
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(16, len(s)))
                s[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # random bytes anywhere
            i = int(rng.integers(0, len(s)))
            s[i] = int(rng.integers(0, 256))
        elif kind == 2:  # cut or grow
            n = int(rng.integers(0, len(s) + 8))
            s = s[:n] if n <= len(s) else s + bytes(rng.integers(0, 256, n - len(s), dtype=np.uint8))
        else:  # garbage after a valid table
            s = s[:16] + bytes(rng.integers(0, 256, len(s) - 16, dtype=np.uint8))
        bs = int(rng.integers(0, 11))
        try:
            out = coder.decode(bytes(s), u.shape, m, rpb, band_stop=bs)
        except HsimHeaderError:
            outcomes["error"] += 1
            continue
        outcomes["decoded"] += 1
        assert out.shape == (12, 7, bs)
        assert out.size == 0 or (out.min() >= 0 and out.max() <= m)
    assert outcomes["error"] > 1000
    assert time.perf_counter() - t0 < 60


def _outcome(dec, data, shape, m, rpb):
    try:
        return dec(data, shape, m, rpb)
    except HsimHeaderError:
        return None


@pytest.mark.parametrize("trained", [False, True], ids=["small blocks", "trained blocks"])
def test_fuzz_reference(trained):
    rng = np.random.default_rng(99)
    if trained:  # 12 x 12 blocks: the weight changes are not all zero
        u = _smooth(24, 12, 5, seed=21, noise=8)
        m, rpb = int(u.max()), 12
        data = coder.encode_reference(u, m, rpb)
    else:
        u, m, rpb, data = _sample_stream()
    table = 4 + 4 * (-(-u.shape[0] // rpb))
    refused = 0
    for _ in range(40):
        s = bytearray(data)
        i = int(rng.integers(table, len(s)))
        s[i] ^= 1 << int(rng.integers(0, 8))
        out = _outcome(coder.decode_reference, bytes(s), u.shape, m, rpb)
        if out is None:
            refused += 1
        else:
            assert out.shape == u.shape and out.min() >= 0 and out.max() <= m
        if HAS_NATIVE:  # both decoders refuse the same damaged streams and agree on the others
            nat = _outcome(coder.decode, bytes(s), u.shape, m, rpb)
            assert (nat is None) == (out is None)
            if out is not None:
                np.testing.assert_array_equal(nat, out)
    assert refused > 0


# ----------------------------------------------------------------------------------------------
# real cubes (native)


@needs_native
@pytest.mark.slow
@pytest.mark.parametrize("scene", ["jasper_ridge", "pavia_centre", "abu_urban_5"])
def test_real_cube_round_trip(scene):
    path = os.path.join(DATA, scene + ".npy")
    if not os.path.exists(path):
        pytest.skip("no real cube here")
    a = np.load(path).astype(np.int64)
    u = a - a.min()
    m = int(u.max())
    data = coder.encode(u, m)
    assert len(data) * 8 / u.size < 7.0
    np.testing.assert_array_equal(coder.decode(data, u.shape, m), u)
    part = coder.decode(data, u.shape, m, rows=(40, 70), band_stop=50)
    np.testing.assert_array_equal(part, u[40:70, :, :50])


INT_DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64]


@needs_native
@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_encode_reads_any_integer_dtype_with_an_offset(dtype):
    """The coder reads a cube in its own dtype less an offset: the bytes of its int32 indices."""
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), -(2**20)), min(int(info.max), 2**20)
    rng = np.random.default_rng(zlib_seed(np.dtype(dtype).name))
    cube = rng.integers(lo, hi + 1, size=(9, 7, 5)).astype(dtype)
    cube[0, 0, 0], cube[-1, -1, -1] = lo, hi  # the ends of the range
    offset = int(cube.min())
    u = cube.astype(np.int64) - offset
    ref = coder.encode_reference(u, int(u.max()), 4)
    assert coder.encode(cube, int(u.max()), 4, threads=2, offset=offset) == ref
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(cube, int(u.max()) - 1, 4, offset=offset)  # one value past the top
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(cube, int(u.max()), 4, offset=offset + 1)  # one value below 0


@needs_native
@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_decode_into_writes_windows_in_the_output_dtype(dtype):
    """decode_into gives offset + step * u of any window, in out's dtype, as a slice of a full decode."""
    u = _smooth(23, 11, 9, seed=21, noise=5, base=10)
    top = int(u.max())
    info = np.iinfo(dtype)
    step = max(1, min(3, (int(info.max) - int(info.min)) // (top + 1)))
    offset = int(info.min)
    data = coder.encode(u, top, 5)
    full = coder.decode(data, u.shape, top, 5).astype(np.int64)
    rng = np.random.default_rng(zlib_seed("window" + np.dtype(dtype).name))
    windows = [(0, 0, 0, 23, 11, 9), (0, 0, 0, 0, 11, 9), (22, 10, 8, 1, 1, 1)]
    for _ in range(6):
        r0, c0, a = (int(rng.integers(0, n)) for n in u.shape)
        windows.append((r0, c0, a, int(rng.integers(0, 23 - r0 + 1)), int(rng.integers(1, 11 - c0 + 1)),
                        int(rng.integers(1, 9 - a + 1))))  # fmt: skip
    for r0, c0, a, h, w, nb in windows:
        out = np.empty((h, w, nb), dtype)
        coder.decode_into(data, u.shape, top, 5, out, (r0, c0, a), offset=offset, step=step, threads=2)
        want = offset + step * full[r0 : r0 + h, c0 : c0 + w, a : a + nb]
        np.testing.assert_array_equal(out.astype(np.int64), want)
    with pytest.raises(ValueError, match="outside"):
        coder.decode_into(data, u.shape, top, 5, np.empty((2, 2, 2), dtype), (22, 0, 0))


def zlib_seed(text: str) -> int:
    """A seed from a name that is the same in every process (hash() of a str is salted)."""
    import zlib

    return zlib.crc32(text.encode())


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("step", [1, 3, 9, 33])
def test_encode_measured_finds_the_indices_and_the_remainders(dtype, step):
    """The coder divides by the step itself: the bytes of the explicit indices, and the exact sums of the
    remainders and of their squares (the lattice points' squared error follows from them)."""
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), -(2**20)), min(int(info.max), 2**20)
    rng = np.random.default_rng(zlib_seed(f"measured{np.dtype(dtype).name}{step}"))
    cube = rng.integers(lo, hi + 1, size=(11, 6, 5)).astype(dtype)
    offset = int(cube.min()) - (step // 2)  # as an error bound E = step // 2 sets it
    t = cube.astype(np.int64) - offset
    idx, rem = np.divmod(t, step)
    top = int(idx.max())
    data, s1, s2 = coder.encode_measured(cube, top, 4, threads=2, offset=offset, step=step)
    assert data == coder.encode_reference(idx, top, 4)
    assert (s1, s2) == ((int(rem.sum()), int((rem * rem).sum())) if step > 1 else (0, 0))
    assert coder.encode(cube, top, 4, offset=offset, step=step) == data
    with pytest.raises(ValueError, match="max_value"):
        coder.encode(cube, top - 1, 4, offset=offset, step=step)

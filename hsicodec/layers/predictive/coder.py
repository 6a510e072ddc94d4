"""Lossless coder for integer cubes: the entropy-coding engine of the predictive layer.

A cube ``u`` (rows, cols, bands) of integers ``0 <= u <= max_value < 2**31`` becomes a byte stream
(spec/predictive.md, section 1) and back, exactly. The rows are cut into blocks of
``rows_per_block`` rows, each coded on its own, band after band: every sample is predicted from its
causal neighbours and the same place in up to 6 earlier bands (CCSDS 123.0-B-2 style, adapted by
sign-error LMS; each band starts from weights the encoder fitted to it in a training pass and sent as
a small change), and the mapped residual is coded by an adaptive binary range coder. Blocks decode in
parallel, a window of rows decodes only the blocks it touches, and ``band_stop`` decodes only the
first bands (a band depends only on earlier ones).

:func:`encode` and :func:`decode` run the C++ extension (``hsicodec._native.lattice_encode`` /
``lattice_decode``) when it is built and fall back on :func:`encode_reference` /
:func:`decode_reference`, a pure Python transcription that writes and reads the identical bytes
(slow: meant for tests and tiny cubes). Every malformed stream raises
:class:`hsicodec.errors.HsimHeaderError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Union

import numpy as np

from hsicodec.errors import HsimHeaderError

__all__ = ["decode", "decode_reference", "encode", "encode_reference", "native_available"]

Buffer = Union[bytes, bytearray, memoryview]

MAX_VALUE_LIMIT = 2**31 - 1
MAX_SAMPLES = 2**40

# format constants: spec/predictive.md 1.4 - 1.6 (csrc/lattice_coder.cpp uses the same)
PREV = 6  # earlier bands in the prediction
OMEGA = 16  # weight resolution (fractional bits)
ONE = 1 << OMEGA
WEIGHT_LIM = 1 << (OMEGA + 2)
STEP0, STEP1, STEP_LOG = 7, 10, 5  # weight step exponent min(STEP1, STEP0 + (i >> STEP_LOG))
TRAIN_STEP = 5  # the encoder's training pass: constant step exponent, ...
TRAIN_ROWS = 2  # ... over every TRAIN_ROWS-th row of the band, ...
TRAIN_MIN = 128  # ... run on bands of at least this many samples in the block (else no change)
WEIGHT_Q = 10  # a band's initial weights are multiples of 2^WEIGHT_Q
WEIGHT_LIM_Q = WEIGHT_LIM >> WEIGHT_Q
SIDE_EXP = 9  # weight changes: Exp-Golomb exponents 0..8
EMA = 4  # running mean of the mapped residuals, times 2^EMA
PROB_BITS = 12
MOVE_BITS = 7
TOP = 1 << 24
N_CTX = 96
UNARY_CTX = 12
Q_MAX = 24
ESC_MAX = 31
TREE_BITS = 2
HALF = 1 << 15  # initial probability state (P(0) = 1/2)


# --------------------------------------------------------------------------------------------
# the binary range coder


class _Encoder:
    """LZMA's range encoder without its always-zero first byte (probabilities are 16-bit states), and the
    bypass part, where raw bits are packed most significant first."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.low = 0
        self.range = 0xFFFFFFFF
        self.cache = 0
        self.pending = 1
        self.first = True
        self.bypass = bytearray()
        self.bacc = 0  # pending bypass bits: the low bn < 8 bits
        self.bn = 0

    def bit(self, probs: list[int], j: int, b: int) -> None:
        p = probs[j]
        bound = (self.range >> PROB_BITS) * (p >> 4)
        if b:
            self.low += bound
            self.range -= bound
            probs[j] = p - (p >> MOVE_BITS)
        else:
            self.range = bound
            probs[j] = p + ((65536 - p) >> MOVE_BITS)
        while self.range < TOP:
            self.range <<= 8
            self._shift_low()

    def raw(self, v: int, n: int) -> None:
        self.bacc = (self.bacc << n) | v
        self.bn += n
        while self.bn >= 8:
            self.bn -= 8
            self.bypass.append((self.bacc >> self.bn) & 0xFF)
        self.bacc &= (1 << self.bn) - 1

    def finish(self) -> bytes:
        """The block: u32 length of the range-coder part, that part, the bypass part."""
        for _ in range(5):
            self._shift_low()
        if self.bn:
            self.bypass.append((self.bacc << (8 - self.bn)) & 0xFF)
        return len(self.out).to_bytes(4, "little") + bytes(self.out) + bytes(self.bypass)

    def _shift_low(self) -> None:
        low = self.low
        if (low & 0xFFFFFFFF) < 0xFF000000 or (low >> 32) != 0:
            carry = low >> 32
            temp = self.cache
            while True:
                self._put((temp + carry) & 0xFF)
                temp = 0xFF
                self.pending -= 1
                if self.pending == 0:
                    break
            self.cache = (low >> 24) & 0xFF
        self.pending += 1
        self.low = (low & 0x00FFFFFF) << 8

    def _put(self, b: int) -> None:
        if self.first:
            if b != 0:  # pragma: no cover - cannot happen (the first byte of LZMA's coder is always 0)
                raise AssertionError("range coder lead byte is not zero")
            self.first = False
            return
        self.out.append(b)


class _Decoder:
    def __init__(self, data: bytes, start: int, end: int) -> None:
        if end - start < 4:
            raise HsimHeaderError(f"truncated ({end - start} bytes)")
        a = int.from_bytes(data[start : start + 4], "little")
        if a > end - start - 4:
            raise HsimHeaderError(f"the range-coder part ({a} bytes) exceeds the block")
        self.data = data
        self.pos = start + 4
        self.end = start + 4 + a
        self.overrun = 0
        self.range = 0xFFFFFFFF
        self.code = 0
        self.bpos = self.end
        self.bend = end
        self.bacc = 0
        self.bn = 0
        for _ in range(4):
            self.code = ((self.code << 8) | self._next()) & 0xFFFFFFFF

    def _next(self) -> int:
        if self.pos < self.end:
            b = self.data[self.pos]
            self.pos += 1
            return b
        self.overrun += 1
        return 0

    def bit(self, probs: list[int], j: int) -> int:
        p = probs[j]
        bound = (self.range >> PROB_BITS) * (p >> 4)
        if self.code >= bound:
            self.code -= bound
            self.range -= bound
            probs[j] = p - (p >> MOVE_BITS)
            b = 1
        else:
            self.range = bound
            probs[j] = p + ((65536 - p) >> MOVE_BITS)
            b = 0
        while self.range < TOP:
            self.range <<= 8
            self.code = ((self.code << 8) | self._next()) & 0xFFFFFFFF
        return b

    def raw(self, n: int) -> int:
        while self.bn < n:
            if self.bpos < self.bend:
                b = self.data[self.bpos]
            else:
                b = 0
                self.overrun += 1
            self.bpos += 1
            self.bacc = (self.bacc << 8) | b
            self.bn += 8
        self.bn -= n
        v = self.bacc >> self.bn
        self.bacc &= (1 << self.bn) - 1
        return v

    def at_end(self) -> bool:
        """Both parts consumed exactly (the bypass part to its last byte, whose unused bits are 0)."""
        return not self.overrun and self.pos == self.end and self.bpos == self.bend and self.bacc == 0


# --------------------------------------------------------------------------------------------
# the entropy model


class _Model:
    def __init__(self) -> None:
        self.unary = [HALF] * (N_CTX * UNARY_CTX)
        self.tree = [HALF] * (N_CTX * 2 * (1 << TREE_BITS))
        self.esc = [HALF] * (ESC_MAX + 1)
        self.side = [[HALF] * (2 + SIDE_EXP + 1) for _ in range(4)]


def _encode_residual(rc: _Encoder, m: _Model, c: int, k: int, d: int) -> None:
    q = d >> k
    ub = c * UNARY_CTX
    for i in range(min(q, Q_MAX)):
        rc.bit(m.unary, ub + min(i, UNARY_CTX - 1), 1)
    if q < Q_MAX:
        rc.bit(m.unary, ub + min(q, UNARY_CTX - 1), 0)
    else:
        r = q - Q_MAX + 1
        n = r.bit_length() - 1
        for i in range(n):
            rc.bit(m.esc, i, 1)
        rc.bit(m.esc, n, 0)
        rc.raw(r - (1 << n), n)
    t = min(k, TREE_BITS)
    tb = (c * 2 + (1 if q else 0)) << TREE_BITS
    node = 1
    for i in range(k - 1, k - t - 1, -1):
        b = (d >> i) & 1
        rc.bit(m.tree, tb + node, b)
        node = node * 2 + b
    rest = k - t
    if rest > 0:
        rc.raw(d & ((1 << rest) - 1), rest)


def _decode_residual(rc: _Decoder, m: _Model, c: int, k: int, dmax: int) -> int:
    ub = c * UNARY_CTX
    q = 0
    while q < Q_MAX and rc.bit(m.unary, ub + min(q, UNARY_CTX - 1)):
        q += 1
    if q == Q_MAX:
        n = 0
        while rc.bit(m.esc, n):
            n += 1
            if n > ESC_MAX:
                raise HsimHeaderError("escape code too long")
        q = Q_MAX + ((1 << n) | rc.raw(n)) - 1
    if q > (dmax >> k):
        raise HsimHeaderError("value past max_value")
    t = min(k, TREE_BITS)
    tb = (c * 2 + (1 if q else 0)) << TREE_BITS
    low = 0
    node = 1
    for i in range(k - 1, k - t - 1, -1):
        b = rc.bit(m.tree, tb + node)
        low |= b << i
        node = node * 2 + b
    rest = k - t
    if rest > 0:
        low |= rc.raw(rest)
    d = (q << k) | low
    if d > dmax:
        raise HsimHeaderError("value past max_value")
    return d


# --------------------------------------------------------------------------------------------
# one block


def _local_sum(s: list[int], bz: int, i: int, x: int, y: int, width: int) -> int:
    """sigma of the sample at (y, x) (index i in its band, band start bz); not for the first sample."""
    if y == 0:
        return 4 * s[bz + i - 1]
    n = bz + i - width
    if width == 1:
        return 4 * s[n]
    if x == 0:
        return 2 * (s[n] + s[n + 1])
    if x == width - 1:
        return s[bz + i - 1] + s[n - 1] + 2 * s[n]
    return s[bz + i - 1] + s[n - 1] + s[n] + s[n + 1]


def _lms_update(w: list[int], U: list[int], norm: int, step: int, up: bool) -> None:
    """Normalised sign-error LMS: w_j += or -= (U_j * 2^OMEGA) >> (bitlen(norm) + step), clipped."""
    sh = norm.bit_length() + step
    for j in range(len(U)):
        inc = (U[j] * ONE) >> sh
        v = w[j] + inc if up else w[j] - inc
        w[j] = min(max(v, -WEIGHT_LIM), WEIGHT_LIM - 1)


def _train(s: list[int], bz: int, rows: int, width: int, dp: list[list[int]], weights: list[int]) -> list[int]:
    """The encoder's training pass over a band: the weights the LMS ends with (constant step)."""
    npv = len(dp)
    w = weights[:npv]
    for i in range(1, rows * width):
        y, x = divmod(i, width)
        if y % TRAIN_ROWS:
            continue
        U = [dp[j][i] for j in range(npv)]
        norm = sum(abs(v) for v in U)
        if norm == 0:
            continue
        sigma = _local_sum(s, bz, i, x, y, width)
        dhat = sum(w[j] * U[j] for j in range(npv))
        _lms_update(w, U, norm, TRAIN_STEP, (4 * s[bz + i] - sigma) * ONE >= dhat)
    return w


def _initial_weights(rc: _Encoder | _Decoder, m: _Model, weights: list[int], trained: list[int] | None) -> None:
    """Replace the band's p weights by its initial weights, writing (encoder) or reading their changes."""
    for j in range(len(weights)):
        base = weights[j] >> WEIGHT_Q
        p = m.side[min(j, 3)]
        if isinstance(rc, _Decoder):
            change = 0
            if rc.bit(p, 0):
                neg = rc.bit(p, 1)
                n = 0
                while rc.bit(p, 2 + n):
                    n += 1
                    if n >= SIDE_EXP:
                        raise HsimHeaderError("weight change too large")
                mag = (1 << n) | rc.raw(n)
                change = -mag if neg else mag
            if not -WEIGHT_LIM_Q <= base + change < WEIGHT_LIM_Q:
                raise HsimHeaderError("initial weight out of range")
        else:
            assert trained is not None
            change = (trained[j] >> WEIGHT_Q) - base
            rc.bit(p, 0, 1 if change else 0)
            if change:
                rc.bit(p, 1, 1 if change < 0 else 0)
                mag = abs(change)
                n = mag.bit_length() - 1
                for q in range(n):
                    rc.bit(p, 2 + q, 1)
                rc.bit(p, 2 + n, 0)
                rc.raw(mag - (1 << n), n)
        weights[j] = (base + change) << WEIGHT_Q


def _code_block(
    rc: _Encoder | _Decoder, s: list[int], rows: int, width: int, nb: int, max_value: int, decoding: bool
) -> None:
    """Code bands [0, nb) of a block held band-major in the flat list s (read, or written when decoding)."""
    M = max_value
    plane = rows * width
    ring = PREV + 1
    diff = [[0] * plane for _ in range(min(nb, ring))]
    dprev = [0] * plane
    dcur = [0] * plane
    model = _Model()
    weights = [ONE * 7 // 8] + [0] * (PREV - 1)
    S = 8 << EMA
    mid = (M + 1) >> 1
    for z in range(nb):
        bz = z * plane
        dz = diff[z % ring]
        npv = min(z, PREV)
        dp = [diff[(z - 1 - j) % ring] for j in range(npv)]
        if npv:
            band_w = weights[:npv]
            trained = None
            if not decoding:
                trained = _train(s, bz, rows, width, dp, band_w) if plane >= TRAIN_MIN else band_w[:]
            _initial_weights(rc, model, band_w, trained)
            weights[:npv] = band_w
        dprev, dcur = dcur, dprev
        for y in range(rows):
            for x in range(width):
                i = y * width + x
                first = y == 0 and x == 0
                sigma = 0 if first else _local_sum(s, bz, i, x, y, width)
                # prediction (doubled)
                dhat = 0
                if first:
                    s2 = 2 * (s[bz - plane] if z > 0 else mid)
                else:
                    for j in range(npv):
                        dhat += weights[j] * dp[j][i]
                    s2 = min(max(((dhat + sigma * ONE) >> (OMEGA + 1)) + 1, 0), 2 * M + 1)
                shat = s2 >> 1
                theta = min(shat, M - shat)
                # activity class and Golomb bucket
                p0 = dprev[i]
                pl = dprev[i - 1] if x > 0 else p0
                pr = dprev[i + 1] if x + 1 < width else p0
                pu = dprev[i - width] if y > 0 else p0
                pd = dprev[i + width] if y + 1 < rows else p0
                cw = dcur[i - 1] if x > 0 else p0
                cn = dcur[i - width] if y > 0 else cw
                V = 2 * S + ((4 * p0 + pl + pr + pu + pd + 2 * cw + 2 * cn) << EMA)
                L = V.bit_length()
                c = min(2 * L + ((V >> (L - 2)) & 1) if L >= 2 else L, N_CTX - 1)
                k = max(0, L - 1 - EMA - 3)
                if decoding:
                    assert isinstance(rc, _Decoder)
                    d = _decode_residual(rc, model, c, k, M)
                    if d > 2 * theta:
                        delta = d - theta if shat == theta else theta - d
                    elif s2 & 1:
                        delta = (d + 1) >> 1 if d & 1 else -(d >> 1)
                    else:
                        delta = -((d + 1) >> 1) if d & 1 else d >> 1
                    v = shat + delta
                    s[bz + i] = v
                else:
                    assert isinstance(rc, _Encoder)
                    v = s[bz + i]
                    delta = v - shat
                    ad = abs(delta)
                    if ad > theta:
                        d = ad + theta
                    elif s2 & 1:
                        d = 2 * delta - 1 if delta > 0 else -2 * delta
                    else:
                        d = -2 * delta - 1 if delta < 0 else 2 * delta
                    _encode_residual(rc, model, c, k, d)
                dcur[i] = d
                S += d - (S >> EMA)
                if first:
                    dz[i] = 0
                    continue
                dc = 4 * v - sigma
                dz[i] = dc
                U = [dp[j][i] for j in range(npv)]
                norm = sum(abs(v) for v in U)
                if norm == 0:
                    continue
                band_w = weights[:npv]
                _lms_update(band_w, U, norm, min(STEP1, STEP0 + (i >> STEP_LOG)), dc * ONE >= dhat)
                weights[:npv] = band_w


# --------------------------------------------------------------------------------------------
# the block table and the checks shared by both back ends


def _num_blocks(height: int, rows_per_block: int) -> int:
    return -(-height // rows_per_block)


def _check_params(shape: Sequence[int], max_value: int, rows_per_block: int) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"lattice coder: shape must be (rows, cols, bands), got {tuple(shape)}")
    H, W, C = (int(v) for v in shape)
    if min(H, W, C) < 0:
        raise ValueError(f"lattice coder: negative dimension in {tuple(shape)}")
    if H * W * C > MAX_SAMPLES:
        raise ValueError("lattice coder: cube too large (over 2^40 values)")
    if not 0 <= int(max_value) <= MAX_VALUE_LIMIT:
        raise ValueError(f"lattice coder: max_value must be in [0, 2^31 - 1], got {max_value}")
    if int(rows_per_block) <= 0:
        raise ValueError(f"lattice coder: rows_per_block must be positive, got {rows_per_block}")
    return H, W, C


def _check_cube(u: np.ndarray, max_value: int, rows_per_block: int) -> np.ndarray:
    a = np.asarray(u)
    if a.ndim != 3:
        raise ValueError(f"lattice coder: u must be (rows, cols, bands), got {a.ndim} dimensions")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"lattice coder: u must hold integers, got {a.dtype}")
    _check_params(a.shape, max_value, rows_per_block)
    if a.size and (int(a.min()) < 0 or int(a.max()) > int(max_value)):
        raise ValueError(f"lattice coder: values must lie in [0, max_value = {max_value}]")
    return np.ascontiguousarray(a, dtype=np.int32)


def _block_table(data: Buffer, nblk: int) -> tuple[bytes, list[int]]:
    """The stream as bytes and the byte offset of each block (and of the end); HsimHeaderError if malformed."""
    buf = bytes(data)
    size = len(buf)
    if size < 4:
        raise HsimHeaderError(f"lattice stream: truncated block table ({size} bytes)")
    n = int.from_bytes(buf[0:4], "little")
    if n != nblk:
        raise HsimHeaderError(f"lattice stream: {n} blocks, the shape implies {nblk}")
    table = 4 + 4 * nblk
    if size < table:
        raise HsimHeaderError("lattice stream: truncated block table")
    off = [table]
    for b in range(nblk):
        off.append(off[-1] + int.from_bytes(buf[4 + 4 * b : 8 + 4 * b], "little"))
    if off[-1] < size:
        raise HsimHeaderError(f"lattice stream: {size - off[-1]} trailing bytes after the blocks")
    if off[-1] > size:
        raise HsimHeaderError(
            f"lattice stream: truncated (the block table declares {off[-1]} bytes, the stream has {size})"
        )
    return buf, off


def _window(shape: tuple[int, int, int], rows_per_block: int, rows: tuple[int, int] | None, band_stop: int | None):
    H, W, C = shape
    r0, r1 = (0, H) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= r0 <= r1 <= H:
        raise ValueError(f"lattice coder: rows ({r0}, {r1}) outside [0, {H}]")
    bs = C if band_stop is None else int(band_stop)
    if not 0 <= bs <= C:
        raise ValueError(f"lattice coder: band_stop {bs} outside [0, {C}]")
    lo = r0 // rows_per_block
    hi = lo if r1 == r0 else _num_blocks(r1, rows_per_block)
    return r0, r1, bs, lo, hi


# --------------------------------------------------------------------------------------------
# the reference


def encode_reference(u: np.ndarray, max_value: int, rows_per_block: int = 32) -> bytes:
    """The lattice stream of u (pure Python; the same bytes as the native encoder)."""
    a = _check_cube(u, max_value, rows_per_block)
    H, W, C = a.shape
    rpb = int(rows_per_block)
    blocks = []
    for b in range(_num_blocks(H, rpb)):
        blk = a[b * rpb : (b + 1) * rpb]
        rc = _Encoder()
        _code_block(rc, blk.transpose(2, 0, 1).ravel().tolist(), blk.shape[0], W, C, int(max_value), False)
        blocks.append(rc.finish())
    head = len(blocks).to_bytes(4, "little") + b"".join(len(b).to_bytes(4, "little") for b in blocks)
    return head + b"".join(blocks)


def decode_reference(
    data: Buffer,
    shape: Sequence[int],
    max_value: int,
    rows_per_block: int = 32,
    rows: tuple[int, int] | None = None,
    band_stop: int | None = None,
) -> np.ndarray:
    """Rows [r0, r1) (all when rows is None) and bands [0, band_stop) of a lattice stream, pure Python."""
    H, W, C = _check_params(shape, max_value, rows_per_block)
    rpb = int(rows_per_block)
    r0, r1, bs, lo, hi = _window((H, W, C), rpb, rows, band_stop)
    buf, off = _block_table(data, _num_blocks(H, rpb))
    parts = []
    for b in range(lo, hi):
        R = min(rpb, H - b * rpb)
        s = [0] * (bs * R * W)
        try:
            rc = _Decoder(buf, off[b], off[b + 1])
            _code_block(rc, s, R, W, bs, int(max_value), True)
            if rc.overrun:
                raise HsimHeaderError("truncated")
            if bs == C and not rc.at_end():
                raise HsimHeaderError("trailing bytes")
        except HsimHeaderError as exc:
            raise HsimHeaderError(f"lattice stream: block {b}: {exc}") from None
        parts.append(np.array(s, dtype=np.int32).reshape(bs, R, W).transpose(1, 2, 0))
    out = np.concatenate(parts, axis=0) if parts else np.zeros((0, W, bs), np.int32)
    return np.ascontiguousarray(out[r0 - lo * rpb : r1 - lo * rpb])


# --------------------------------------------------------------------------------------------
# the public calls


def _native() -> ModuleType | None:
    try:
        from hsicodec import _native  # type: ignore[attr-defined]
    except ImportError:
        import warnings

        warnings.warn(
            "the native extension hsicodec._native is not built: the lattice coder runs its pure Python "
            "reference (very slow); install a C++ compiler and reinstall to build it",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    if not hasattr(_native, "lattice_decode_into"):  # an extension built before the lattice coder took any dtype
        return None
    return _native


def native_available() -> bool:
    """True when the C++ extension with the lattice coder is built and imports."""
    try:
        from hsicodec import _native  # type: ignore[attr-defined]
    except ImportError:
        return False
    return hasattr(_native, "lattice_encode")


def encode(
    u: np.ndarray, max_value: int, rows_per_block: int = 32, threads: int = 0, offset: int = 0, step: int = 1
) -> bytes:
    """The lattice stream of the indices floor((u - offset) / step) of the integer cube u (rows, cols, bands),
    which must lie in [0, max_value], max_value < 2^31 (u - offset >= 0).

    u may have any integer dtype (the native coder reads it as it is: no index copy of the cube).
    threads <= 0: all cores (the bytes do not depend on it).
    """
    return encode_measured(u, max_value, rows_per_block, threads, offset, step, sums=False)[0]


def encode_measured(
    u: np.ndarray,
    max_value: int,
    rows_per_block: int = 32,
    threads: int = 0,
    offset: int = 0,
    step: int = 1,
    sums: bool = True,
) -> tuple[bytes, int, int]:
    """:func:`encode`, and (with ``sums``) the sum of the remainders r = u - offset - step · index and of
    their squares, exact integers (0, 0 for step 1 or without ``sums``): the squared error of the lattice
    points follows from them without a pass over the cube."""
    nat = _native()
    a = np.asarray(u)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"lattice coder: u must hold integers, got {a.dtype}")
    offset, step = int(offset), int(step)
    if step < 1:
        raise ValueError(f"lattice coder: step must be >= 1, got {step}")
    if nat is not None and _native_int(a) and -(2**62) < offset < 2**62 and step < 2**32:
        if a.ndim != 3:
            raise ValueError(f"lattice coder: u must be (rows, cols, bands), got {a.ndim} dimensions")
        _check_params(a.shape, max_value, rows_per_block)
        a = np.ascontiguousarray(a)  # the native coder checks the range itself
        out = nat.lattice_encode(a, int(max_value), int(rows_per_block), int(threads), offset, step, bool(sums))
        return (bytes(out[0]), int(out[1]), int(out[2])) if sums else (bytes(out), 0, 0)
    t = np.asarray(a, np.int64) - offset
    if t.size and int(t.min()) < 0:
        raise ValueError(f"lattice coder: values must lie in [0, max_value = {max_value}]")
    idx, rem = np.divmod(t, step)
    s1, s2 = (int(rem.sum()), int(np.sum(rem * rem))) if sums and step > 1 else (0, 0)
    idx = _check_cube(idx, max_value, rows_per_block)
    data = encode_reference(idx, max_value, rows_per_block) if nat is None else bytes(
        nat.lattice_encode(idx, int(max_value), int(rows_per_block), int(threads))
    )  # fmt: skip
    return data, s1, s2


def _native_int(a: np.ndarray) -> bool:
    """An integer dtype the native coder reads and writes as it is."""
    return a.dtype.kind in "iu" and (a.dtype.itemsize <= 4 or a.dtype == np.int64)


def decode(
    data: Buffer,
    shape: Sequence[int],
    max_value: int,
    rows_per_block: int = 32,
    rows: tuple[int, int] | None = None,
    band_stop: int | None = None,
    threads: int = 0,
) -> np.ndarray:
    """Rows [r0, r1) (all when rows is None) and bands [0, band_stop) (all when None) of a lattice stream.

    Returns int32 (r1 - r0, cols, band_stop). Only the row blocks the window touches are decoded, and
    only their first band_stop bands. shape, max_value and rows_per_block are those given to encode.
    A malformed stream raises HsimHeaderError.
    """
    H, W, C = _check_params(shape, max_value, rows_per_block)
    rpb = int(rows_per_block)
    r0, r1, bs, lo, hi = _window((H, W, C), rpb, rows, band_stop)
    nat = _native()
    if nat is None:
        return decode_reference(data, (H, W, C), max_value, rpb, (r0, r1), bs)
    if not isinstance(data, (bytes, bytearray)):
        data = memoryview(data).cast("B")
    out = nat.lattice_decode(data, H, W, C, int(max_value), rpb, lo, hi, bs, int(threads))
    return out[r0 - lo * rpb : r1 - lo * rpb]


def decode_into(
    data: Buffer,
    shape: Sequence[int],
    max_value: int,
    rows_per_block: int,
    out: np.ndarray,
    origin: tuple[int, int, int] = (0, 0, 0),
    offset: int = 0,
    step: int = 1,
    threads: int = 0,
) -> np.ndarray:
    """Decode the window that ``out`` (rows, cols, bands) covers from ``origin`` straight into ``out`` as
    offset + step · u, in ``out``'s integer dtype: no int32 copy of the cube and no conversion pass. The caller
    makes sure every lattice value fits that dtype. Only the row blocks and bands the window needs are decoded."""
    H, W, C = _check_params(shape, max_value, rows_per_block)
    r0, c0, a = (int(v) for v in origin)
    rh, cw, nb = out.shape
    if not (0 <= r0 and r0 + rh <= H and 0 <= c0 and c0 + cw <= W and 0 <= a and a + nb <= C):
        raise ValueError(f"lattice coder: window {out.shape} at {origin} outside the cube {(H, W, C)}")
    nat = _native()
    if nat is None or not _native_int(out) or not out.flags.c_contiguous:
        u = decode(data, (H, W, C), max_value, rows_per_block, rows=(r0, r0 + rh), band_stop=a + nb, threads=threads)
        out[...] = (int(offset) + int(step) * u[:, c0 : c0 + cw, a:].astype(np.int64)).astype(out.dtype)
        return out
    if not isinstance(data, (bytes, bytearray)):
        data = memoryview(data).cast("B")
    nat.lattice_decode_into(data, H, W, C, int(max_value), int(rows_per_block), out, r0, c0, a, int(offset),
                            int(step), int(threads))  # fmt: skip
    return out

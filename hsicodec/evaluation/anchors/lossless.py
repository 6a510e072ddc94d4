"""Error-bounded anchors: lossless and near-lossless yardsticks (max abs error <= E; E = 0 is lossless).

Each anchor takes a cube and a bound E >= 0 (original units) and returns a
:class:`BoundedResult`: the self-contained byte string, the cube really decoded
from those bytes alone, and what was measured on it.  The decoded cube's max abs
error is checked against E (bit-exact at E = 0) and :class:`BoundError` is raised
if it is over; codecs whose own bound is computed in floating point (LERC, SZ3,
SPERR) are re-encoded at a slightly tighter internal tolerance first, and only
fail if that does not hold either.

Byte accounting as in :mod:`hsicodec.evaluation.anchors`: every byte the decoder
reads (our 4-7 byte shape/dtype header, per-band lengths, offsets, predictor
parameters, the codecs' own headers).  Encoder banners a decoder never reads are
stripped (J2K COM segments, the optional JPEG-LS SPIFF header) and JPEG XL is
written as a bare codestream (no ISOBMFF container).  Rates are ``bpppb = 8 *
n_bytes / (H * W * C)``.  ``encode_s`` / ``decode_s`` time the final encode and
one decode (median of :data:`hsicodec.evaluation.anchors.TIMING_REPEATS` runs),
single-threaded; the tries of tighter tolerances or of layouts are not timed.

On integer cubes the decoder rounds to integers, so a float codec may use the
internal tolerance floor(E) + 0.49 and still meet E after rounding (a value
within floor(E) + 0.49 of an integer x rounds to within floor(E) of it).

Anchors (keys of :data:`BOUNDED_ANCHORS`), with the bounds and cubes each codes
("ints": 8- or 16-bit integer cubes):

``geotiff_deflate`` (E = 0, ints)
    GeoTIFF as GDAL writes it (rasterio, in memory): DEFLATE, horizontal predictor 2,
    tiled; GDAL's defaults otherwise (256 x 256 tiles, pixel interleave, zlevel 6).
``lerc`` (any E; integer and float cubes)
    LERC (Esri lerc 4) of the whole cube, bands as LERC's depth, maxZError = E.
``jpeg2000_reversible`` (E = 0, ints)
    JPEG 2000 5/3 reversible, the bands as the components of one codestream (the
    layout of ``jpeg2000_per_band``).
``jpegls`` (any E, ints)
    JPEG-LS (CharLS) per band, NEAR = floor(E).
``jpegxl_lossless`` (E = 0, ints)
    JPEG XL modular lossless per band, effort 7.
``sz3_abs`` (E > 0; integer and float cubes)
    SZ3, absolute error bound; the smaller of the (H, W, C) and (C, H, W) layouts.
``sperr_pwe`` (E > 0; integer and float cubes)
    SPERR, point-wise error bound, (C, H, W) layout.
``spectral_jpegls`` (any E, ints)
    Each band predicted from the previous *decoded* band by a least-squares gain and
    offset (quantised, stored), the residual in JPEG-LS with NEAR = floor(E).

Known limit: imagecodecs' JPEG-LS writes 8 bits per sample for uint8 input and 16
for uint16 (no way to ask for 12 or 13), so the JPEG-LS anchors code 16-bit
samples unless a band's values (after the offset) fit in 8 bits.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from hsicodec.errors import OptionError
from hsicodec.evaluation.anchors.common import _check_cube, _imagecodecs, _j2k_resolutions, _strip_j2k_comments
from hsicodec.evaluation.anchors.container import _pack_header, _read_varint, _to_dtype, _unpack_header, _varint
from hsicodec.evaluation.anchors.result import _timing_repeats
from hsicodec.evaluation.anchors.volumetric import _LAYOUT_NAMES, _LAYOUTS, _float_blob, _float_dtype, _float_parse
from hsicodec.metrics import bpppb as _bpppb
from hsicodec.metrics import max_abs_error, psnr

__all__ = [
    "BOUNDED_ANCHORS",
    "BOUNDED_DECODERS",
    "BoundError",
    "BoundedResult",
    "bounded_support",
    "check_max_errors",
    "decode_bounded",
    "run_bounded_anchor",
    "geotiff_deflate",
    "lerc",
    "jpeg2000_reversible",
    "jpegls",
    "jpegxl_lossless",
    "sz3_abs",
    "sperr_pwe",
    "spectral_jpegls",
]


class BoundError(RuntimeError):
    """An anchor's decoded cube is further from the original than the bound it was asked for."""


@dataclass
class BoundedResult:
    """One error-bounded anchor run, measured on the cube really decoded from ``blob``."""

    codec: str
    #: the bound asked for (0 = lossless)
    max_error: float
    n_bytes: int
    bpppb: float
    psnr: float
    #: measured on the decoded cube; <= max_error
    max_abs_error: float
    encode_s: float
    decode_s: float
    #: bytes of the raw cube (the MB/s figures are of these)
    raw_bytes: int
    params: dict = field(default_factory=dict)
    note: str = ""
    blob: bytes | None = field(default=None, repr=False, compare=False)
    decoded: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def encode_mbps(self) -> float:
        return self.raw_bytes / 1e6 / self.encode_s if self.encode_s > 0 else math.inf

    @property
    def decode_mbps(self) -> float:
        return self.raw_bytes / 1e6 / self.decode_s if self.decode_s > 0 else math.inf

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("blob", None)
        d.pop("decoded", None)
        d["encode_mbps"], d["decode_mbps"] = self.encode_mbps, self.decode_mbps
        for key, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[key] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return d


@dataclass(frozen=True)
class _Spec:
    lossless: bool  # codes E = 0
    near: bool  # codes E > 0
    floats: bool  # takes float cubes
    int_bits: int  # largest integer dtype it takes, in bits (0: no integers)


# --------------------------------------------------------------------------- checks and the measuring driver


def _check_bound(max_error) -> float:
    try:
        e = float(max_error)
    except (TypeError, ValueError):
        raise OptionError(f"max error {max_error!r} is not a number") from None
    if not (math.isfinite(e) and e >= 0):
        raise OptionError(f"max error {max_error!r} is not a finite number >= 0 (0 = lossless)")
    return e


def check_max_errors(values) -> list:
    """Max abs error bounds as floats (finite, >= 0; duplicates dropped, order kept), else OptionError."""
    out: list = []
    for v in [values] if isinstance(values, (int, float, str)) else values:
        e = _check_bound(v)
        if e not in out:
            out.append(e)
    if not out:
        raise OptionError("no max errors given")
    return out


def bounded_support(name: str, dtype, max_error: float) -> str | None:
    """Why anchor ``name`` cannot code a cube of ``dtype`` at bound ``max_error`` (None: it can)."""
    spec = _SPECS.get(name)
    if spec is None:
        raise OptionError(f"unknown error-bounded anchor {name!r}; known: {', '.join(BOUNDED_ANCHORS)}")
    dt = np.dtype(dtype)
    if max_error == 0 and not spec.lossless:
        return f"{name} is lossy only (max error > 0)"
    if max_error > 0 and not spec.near:
        return f"{name} is lossless only (max error 0)"
    if dt.kind == "f" and not spec.floats:
        return f"{name} codes integer cubes only, not {dt.name}"
    if dt.kind in "ui" and 8 * dt.itemsize > spec.int_bits:
        return f"{name} codes integer cubes of at most {spec.int_bits} bits, not {dt.name}"
    return None


def _inputs(name: str, cube, max_error) -> tuple[np.ndarray, float]:
    cube = _check_cube(cube)
    bound = _check_bound(max_error)
    why = bounded_support(name, cube.dtype, bound)
    if why:
        raise OptionError(why)
    return cube, bound


def _timed(fn: Callable, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _bounded(
    name: str, cube: np.ndarray, bound: float, variants: list, decode: Callable[[bytes], np.ndarray], params: dict
) -> BoundedResult:
    """``variants``: (label, internal tolerances loosest first, encode(tolerance) -> bytes).

    Encode each variant at its loosest internal tolerance that decodes within ``bound``, keep the
    smallest file, time it and measure it.  Raise :class:`BoundError` when no tolerance holds."""
    best = None
    tried = []
    for label, knobs, encode in variants:
        for knob in knobs:
            blob, te = _timed(lambda k=knob, enc=encode: bytes(enc(k)))
            dec, td = _timed(decode, blob)
            if dec.shape != cube.shape or dec.dtype != cube.dtype:
                raise BoundError(f"{name}: decoder returned {dec.shape} {dec.dtype} for {cube.shape} {cube.dtype}")
            err = max_abs_error(cube, dec)
            ok = np.array_equal(dec, cube) if bound == 0 else err <= bound
            tried.append(f"{label} at {knob:.9g}: {len(blob)} B, max error {err:.9g}")
            if ok:
                if best is None or len(blob) < len(best[1]):
                    best = (label, blob, dec, knob, encode, [te], [td])
                break
    if best is None:
        raise BoundError(f"{name}: no setting decodes within max error {bound:g} ({'; '.join(tried)})")
    label, blob, dec, knob, encode, enc_times, dec_times = best
    note = ""
    for _ in range(_timing_repeats() - 1):
        again, te = _timed(lambda: bytes(encode(knob)))
        enc_times.append(te)
        if again != blob:
            note = "re-encode was not bit-identical"
        dec_times.append(_timed(decode, blob)[1])
    params = {**params, "tolerance": knob}
    if len(variants) > 1:
        params["variant"] = label
    if len(tried) > len(variants):
        params["tries"] = "; ".join(tried)
    return BoundedResult(
        codec=name,
        max_error=bound,
        n_bytes=len(blob),
        bpppb=_bpppb(len(blob), cube.shape),
        psnr=psnr(cube, dec),
        max_abs_error=max_abs_error(cube, dec),
        encode_s=float(statistics.median(enc_times)),
        decode_s=float(statistics.median(dec_times)),
        raw_bytes=int(cube.nbytes),
        params=params,
        note=note,
        blob=blob,
        decoded=dec,
    )


def _float_tolerances(cube: np.ndarray, bound: float, work: np.dtype) -> list:
    """Internal tolerances of a float codec for ``bound``, loosest first (see the module docstring)."""
    if cube.dtype.kind in "ui":
        e = math.floor(bound)
        return [e + 0.49, e + 0.25] + ([float(e)] if e > 0 else [])
    if bound == 0:
        return [0.0]
    ulp = float(np.spacing(np.asarray(np.max(np.abs(cube)), work)))
    return [t for t in (bound, bound - 2 * ulp, bound - 64 * ulp, 0.5 * bound) if t > 0]


def _offset(cube: np.ndarray) -> int:
    """Integer offset taking the cube to >= 0 (its minimum), stored as a zigzag varint."""
    return int(cube.min())


def _zz(v: int) -> bytes:
    return _varint(2 * v if v >= 0 else -2 * v - 1)


def _read_zz(buf: bytes, pos: int) -> tuple[int, int]:
    u, pos = _read_varint(buf, pos)
    return ((u >> 1) if not u & 1 else -((u + 1) >> 1)), pos


def _streams_blob(head: bytes, streams: list) -> bytes:
    """Streams with varint lengths (the last one's is implied)."""
    out = [head]
    for i, s in enumerate(streams):
        out.append(_varint(len(s)) if i < len(streams) - 1 else b"")
        out.append(bytes(s))
    return b"".join(out)


def _next_stream(blob: bytes, pos: int, last: bool) -> tuple[bytes, int]:
    n, pos = (len(blob) - pos, pos) if last else _read_varint(blob, pos)
    return blob[pos : pos + n], pos + n


# --------------------------------------------------------------------------- GeoTIFF


def _geotiff_bytes(cube: np.ndarray) -> bytes:
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    h, w, c = cube.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as mf:
            opts = {"compress": "deflate", "predictor": 2, "tiled": True}
            with mf.open(driver="GTiff", width=w, height=h, count=c, dtype=cube.dtype.name, **opts) as ds:
                ds.write(np.ascontiguousarray(cube.transpose(2, 0, 1)))
            return bytes(mf.getbuffer())


def _geotiff_decode(blob: bytes) -> np.ndarray:
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(bytes(blob)) as mf, mf.open() as ds:
            return np.ascontiguousarray(ds.read().transpose(1, 2, 0))


def geotiff_deflate(cube, max_error=0) -> BoundedResult:
    """GeoTIFF as GDAL writes it with ``COMPRESS=DEFLATE PREDICTOR=2 TILED=YES`` (lossless only).

    The file itself is the byte string (it carries shape and dtype); every other
    creation option is GDAL's default (256 x 256 tiles, pixel interleave, zlevel 6).
    """
    cube, bound = _inputs("geotiff_deflate", cube, max_error)
    return _bounded(
        "geotiff_deflate",
        cube,
        bound,
        [("deflate+predictor 2", [0.0], lambda _: _geotiff_bytes(cube))],
        _geotiff_decode,
        {"interleave": "pixel"},
    )


# --------------------------------------------------------------------------- LERC


def _lerc_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    return _to_dtype(np.asarray(ic.lerc_decode(blob[pos:])).reshape(shape), dtype)


def lerc(cube, max_error=0) -> BoundedResult:
    """LERC 2 (imagecodecs / Esri lerc) of the whole cube, bands as LERC's depth, maxZError = E.

    Integer cubes: maxZError = floor(E) (LERC is lossless on integers below 0.5);
    float cubes: E, or a few ulps less if LERC's float arithmetic overshoots E.
    """
    ic = _imagecodecs()
    cube, bound = _inputs("lerc", cube, max_error)
    arr = np.ascontiguousarray(cube.astype(np.float32) if cube.dtype == np.float16 else cube)
    knobs = [float(math.floor(bound))] if cube.dtype.kind in "ui" else _float_tolerances(cube, bound, arr.dtype)
    head = _pack_header(cube.shape, cube.dtype)
    return _bounded(
        "lerc",
        cube,
        bound,
        [("depth = bands", knobs, lambda k: head + bytes(ic.lerc_encode(arr, level=k)))],
        _lerc_decode,
        {},
    )


# --------------------------------------------------------------------------- JPEG 2000 reversible


def _j2k_rev_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    return np.asarray(ic.jpeg2k_decode(blob[pos:])).reshape(shape).astype(dtype)


def jpeg2000_reversible(cube, max_error=0) -> BoundedResult:
    """JPEG 2000 (OpenJPEG) 5/3 reversible, lossless only: the bands are the components of ONE
    codestream (no MCT, up to 6 resolutions, COM banner stripped), the layout of ``jpeg2000_per_band``."""
    ic = _imagecodecs()
    cube, bound = _inputs("jpeg2000_reversible", cube, max_error)
    h, w, c = cube.shape
    img = np.ascontiguousarray(cube if c > 1 else cube[:, :, 0])

    def enc(_):
        cs = ic.jpeg2k_encode(
            img,
            codecformat="J2K",
            reversible=True,
            mct=False,
            planar=False if c > 1 else None,
            resolutions=_j2k_resolutions(h, w),
        )
        return _pack_header(cube.shape, cube.dtype) + _strip_j2k_comments(cs)

    return _bounded(
        "jpeg2000_reversible", cube, bound, [("5/3 multicomponent", [0.0], enc)], _j2k_rev_decode, {"layout": "mc"}
    )


# --------------------------------------------------------------------------- JPEG-LS and JPEG XL per band


def _strip_spiff(cs: bytes) -> bytes:
    """Drop the optional SPIFF header (APP8 segments) CharLS writes before the frame: no decoder needs it."""
    cs = bytes(cs)
    out, pos = bytearray(cs[:2]), 2
    while pos + 4 <= len(cs) and cs[pos] == 0xFF and cs[pos + 1] != 0xDA:
        seg = int.from_bytes(cs[pos + 2 : pos + 4], "big")
        if cs[pos + 1] != 0xE8:
            out += cs[pos : pos + 2 + seg]
        pos += 2 + seg
        if cs[pos : pos + 2] == b"\xff\xd8":  # the SOI that follows the SPIFF directory's end
            pos += 2
    return bytes(out + cs[pos:])


def _jls_encode(u: np.ndarray, near: int, ic) -> bytes:
    """One band of values >= 0 (<= 65535) in JPEG-LS: 8-bit samples when they fit, else 16-bit."""
    dt = np.uint8 if int(u.max()) <= 255 and near <= 127 else np.uint16
    return _strip_spiff(ic.jpegls_encode(np.ascontiguousarray(u.astype(dt)), level=near))


def _near(bound: float) -> int:
    """JPEG-LS NEAR for ``bound`` on an integer cube: floor(E), at most 255 (JPEG-LS's limit;
    :func:`_jls_encode` codes 16-bit samples when NEAR > 127, where 8 bits would allow less)."""
    return int(min(math.floor(bound), 255))


def _decode_bands(blob: bytes, decode_one: Callable[[bytes], Any]) -> np.ndarray:
    """A per-band blob (header, offset, one stream per band) decoded band by band with ``decode_one``."""
    shape, dtype, pos = _unpack_header(blob)
    lo, pos = _read_zz(blob, pos)
    out = np.empty(shape, np.int64)
    for b in range(shape[2]):
        s, pos = _next_stream(blob, pos, b == shape[2] - 1)
        out[:, :, b] = np.asarray(decode_one(s)).reshape(shape[:2])
    return _to_dtype(out + lo, dtype)


def _jpegls_decode(blob: bytes) -> np.ndarray:
    return _decode_bands(blob, _imagecodecs().jpegls_decode)


def jpegls(cube, max_error=0) -> BoundedResult:
    """JPEG-LS (CharLS) of each band, lossless at E = 0, near-lossless with NEAR = floor(E) above.

    The cube's minimum is subtracted (stored) so signed cubes code as unsigned samples.
    """
    ic = _imagecodecs()
    cube, bound = _inputs("jpegls", cube, max_error)
    near = _near(bound)
    lo = _offset(cube)
    u = cube.astype(np.int64) - lo

    def enc(_):
        streams = [_jls_encode(u[:, :, b], near, ic) for b in range(cube.shape[2])]
        return _streams_blob(_pack_header(cube.shape, cube.dtype) + _zz(lo), streams)

    return _bounded("jpegls", cube, bound, [("per band", [float(near)], enc)], _jpegls_decode, {"near": near})


def _jxl_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    return _decode_bands(blob, lambda s: ic.jpegxl_decode(s, numthreads=1))


def jpegxl_lossless(cube, max_error=0) -> BoundedResult:
    """JPEG XL (libjxl) modular lossless of each band, effort 7, bare codestreams (lossless only).

    The cube's minimum is subtracted (stored) so signed cubes code as unsigned samples.
    """
    ic = _imagecodecs()
    cube, bound = _inputs("jpegxl_lossless", cube, max_error)
    lo = _offset(cube)
    u = cube.astype(np.int64) - lo
    dt = np.uint8 if int(u.max()) <= 255 else np.uint16

    def enc(_):
        streams = [
            ic.jpegxl_encode(
                np.ascontiguousarray(u[:, :, b].astype(dt)), lossless=True, effort=7, usecontainer=False, numthreads=1
            )
            for b in range(cube.shape[2])
        ]
        return _streams_blob(_pack_header(cube.shape, cube.dtype) + _zz(lo), streams)

    return _bounded("jpegxl_lossless", cube, bound, [("per band", [0.0], enc)], _jxl_decode, {"effort": 7})


# --------------------------------------------------------------------------- SZ3 and SPERR


def _sz3_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, perm, lshape, _, stream = _float_parse(blob)
    arr = np.asarray(ic.sz3_decode(stream, lshape, _float_dtype(dtype)), np.float64)
    return _to_dtype(arr.transpose(np.argsort(perm)), dtype)


def sz3_abs(cube, max_error) -> BoundedResult:
    """SZ3 with an absolute error bound (E > 0): both the (H, W, C) and the (C, H, W) layouts are
    coded and the smaller file kept.  Tolerance: floor(E) + 0.49 on integer cubes, E on floats."""
    ic = _imagecodecs()
    cube, bound = _inputs("sz3_abs", cube, max_error)
    fdt = _float_dtype(cube.dtype)
    variants = []
    for layout in (0, 1):
        arr = np.ascontiguousarray(cube.transpose(_LAYOUTS[layout]).astype(fdt))

        def enc(k, arr=arr, layout=layout):
            return _float_blob(cube, layout, 2, ic.sz3_encode(arr, mode="abs", abs=k))

        variants.append((_LAYOUT_NAMES[layout], _float_tolerances(cube, bound, fdt), enc))
    return _bounded("sz3_abs", cube, bound, variants, _sz3_decode, {})


def _sperr_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, perm, lshape, _, stream = _float_parse(blob)
    arr = np.asarray(ic.sperr_decode(stream, numthreads=1), np.float64).reshape(lshape)
    return _to_dtype(arr.transpose(np.argsort(perm)), dtype)


def sperr_pwe(cube, max_error) -> BoundedResult:
    """SPERR (3-D CDF 9/7 + SPECK + outlier coding) in point-wise-error mode (E > 0), (C, H, W)
    layout (the best for ``sperr_3d``).  Tolerance: floor(E) + 0.49 on integer cubes, E on floats."""
    ic = _imagecodecs()
    cube, bound = _inputs("sperr_pwe", cube, max_error)
    h, w, c = cube.shape
    layout = 1 if c > 1 else (0 if h > 1 else 2)  # SPERR 0.8.4 aborts on a slowest axis of length 1
    if cube.shape[_LAYOUTS[layout][0]] < 2:
        raise OptionError("sperr_pwe cannot code a volume whose every axis but one has length 1")
    fdt = _float_dtype(cube.dtype)
    arr = np.ascontiguousarray(cube.transpose(_LAYOUTS[layout]).astype(fdt))

    def enc(k):
        return _float_blob(cube, layout, 2, ic.sperr_encode(arr, k, "pwe", numthreads=1))

    knobs = _float_tolerances(cube, bound, fdt)
    return _bounded("sperr_pwe", cube, bound, [(_LAYOUT_NAMES[layout], knobs, enc)], _sperr_decode, {})


# --------------------------------------------------------------------------- spectral predictor + JPEG-LS

#: the predictor's gain is stored in units of 2**-_GAIN_BITS
_GAIN_BITS = 15
_GAIN_MAX = 1 << 24


def _predict(prev: np.ndarray | None, gain_q: int, offset: int) -> np.ndarray | int:
    """round(gain * prev) + offset in integer arithmetic (the decoder's exact formula)."""
    if prev is None or gain_q == 0:
        return offset
    return ((gain_q * prev + (1 << (_GAIN_BITS - 1))) >> _GAIN_BITS) + offset


def _fit_gain(prev: np.ndarray, x: np.ndarray) -> tuple[int, int]:
    """Least-squares gain (quantised) and offset (the best one for that gain) of x against prev."""
    p = prev.astype(np.float64).ravel()
    xv = x.astype(np.float64).ravel()
    pc = p - p.mean()
    var = float(np.dot(pc, pc))
    gain = float(np.dot(pc, xv - xv.mean())) / var if var > 0 else 0.0
    gain_q = int(np.clip(round(gain * (1 << _GAIN_BITS)), -_GAIN_MAX, _GAIN_MAX))
    offset = int(round(float(np.mean(x - _predict(prev, gain_q, 0)))))
    return gain_q, offset


def _spectral_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    info = np.iinfo(dtype)
    out = np.empty(shape, np.int64)
    prev = None
    for b in range(shape[2]):
        gain_q, pos = _read_zz(blob, pos)
        offset, pos = _read_zz(blob, pos)
        rmin, pos = _read_zz(blob, pos)
        s, pos = _next_stream(blob, pos, b == shape[2] - 1)
        u = np.asarray(ic.jpegls_decode(s)).reshape(shape[:2]).astype(np.int64)
        prev = np.clip(_predict(prev, gain_q, offset) + rmin + u, info.min, info.max)
        out[:, :, b] = prev
    return out.astype(dtype)


def _spectral_encode(cube: np.ndarray, near: int, ic) -> tuple[bytes, int]:
    """The closed loop: each band predicted from the previous band as the decoder will have it."""
    info = np.iinfo(cube.dtype)
    x_all = cube.astype(np.int64)
    head = [_pack_header(cube.shape, cube.dtype)]
    streams = []
    prev = None
    fallbacks = 0
    for b in range(cube.shape[2]):
        x = x_all[:, :, b]
        gain_q, offset = _fit_gain(prev, x) if prev is not None else (0, 0)
        r = x - _predict(prev, gain_q, offset)
        if int(r.max()) - int(r.min()) > 65535:  # JPEG-LS codes <= 16 bits: code the band itself
            gain_q, offset, r = 0, 0, x
            fallbacks += 1
        rmin = int(r.min())
        s = _jls_encode(r - rmin, near, ic)
        u = r - rmin if near == 0 else np.asarray(ic.jpegls_decode(s)).reshape(x.shape).astype(np.int64)
        prev = np.clip(_predict(prev, gain_q, offset) + rmin + u, info.min, info.max)
        streams.append(_zz(gain_q) + _zz(offset) + _zz(rmin) + (_varint(len(s)) if b < cube.shape[2] - 1 else b""))
        streams.append(s)
    return b"".join(head + streams), fallbacks


def spectral_jpegls(cube, max_error=0) -> BoundedResult:
    """Spectral prediction + JPEG-LS: band b is predicted as round(g_b * X'_{b-1}) + o_b from the
    previous band X' *as decoded* (closed loop, so the bound does not drift); g_b is the least-squares
    gain (stored in units of 2**-15) and o_b the best offset for it; the residual, offset to >= 0,
    is one JPEG-LS image with NEAR = floor(E).  Per band the file stores g_b, o_b, the residual's
    offset (zigzag varints) and the stream's length; band 0 is coded as itself."""
    ic = _imagecodecs()
    cube, bound = _inputs("spectral_jpegls", cube, max_error)
    near = _near(bound)
    fallbacks = [0]

    def enc(_):
        blob, fallbacks[0] = _spectral_encode(cube, near, ic)
        return blob

    res = _bounded(
        "spectral_jpegls", cube, bound, [("previous band", [float(near)], enc)], _spectral_decode, {"near": near}
    )
    if fallbacks[0]:
        res.params["bands_without_prediction"] = fallbacks[0]
    return res


# --------------------------------------------------------------------------- registry

BOUNDED_ANCHORS: dict = {
    "geotiff_deflate": geotiff_deflate,
    "lerc": lerc,
    "jpeg2000_reversible": jpeg2000_reversible,
    "jpegls": jpegls,
    "jpegxl_lossless": jpegxl_lossless,
    "sz3_abs": sz3_abs,
    "sperr_pwe": sperr_pwe,
    "spectral_jpegls": spectral_jpegls,
}

_SPECS = {
    "geotiff_deflate": _Spec(lossless=True, near=False, floats=False, int_bits=16),
    "lerc": _Spec(lossless=True, near=True, floats=True, int_bits=32),
    "jpeg2000_reversible": _Spec(lossless=True, near=False, floats=False, int_bits=16),
    "jpegls": _Spec(lossless=True, near=True, floats=False, int_bits=16),
    "jpegxl_lossless": _Spec(lossless=True, near=False, floats=False, int_bits=16),
    "sz3_abs": _Spec(lossless=False, near=True, floats=True, int_bits=32),
    "sperr_pwe": _Spec(lossless=False, near=True, floats=True, int_bits=32),
    "spectral_jpegls": _Spec(lossless=True, near=True, floats=False, int_bits=16),
}

BOUNDED_DECODERS: dict = {
    "geotiff_deflate": _geotiff_decode,
    "lerc": _lerc_decode,
    "jpeg2000_reversible": _j2k_rev_decode,
    "jpegls": _jpegls_decode,
    "jpegxl_lossless": _jxl_decode,
    "sz3_abs": _sz3_decode,
    "sperr_pwe": _sperr_decode,
    "spectral_jpegls": _spectral_decode,
}


def run_bounded_anchor(name: str, cube, max_error) -> BoundedResult:
    """Run the error-bounded anchor called ``name`` (a key of :data:`BOUNDED_ANCHORS`) at bound ``max_error``."""
    try:
        fn = BOUNDED_ANCHORS[name]
    except KeyError:
        raise OptionError(f"unknown error-bounded anchor {name!r}; known: {', '.join(BOUNDED_ANCHORS)}") from None
    return fn(cube, max_error)


def decode_bounded(name: str, blob: bytes) -> np.ndarray:
    """Decode a file written by error-bounded anchor ``name`` from its bytes alone."""
    try:
        dec = BOUNDED_DECODERS[name]
    except KeyError:
        raise OptionError(f"unknown error-bounded anchor {name!r}; known: {', '.join(BOUNDED_DECODERS)}") from None
    return dec(bytes(blob))

"""JPEG 2000 / HTJ2K of the bands without a spectral transform: the ``jpeg2000_per_band``,
``jpeg2000_separate`` and ``htj2k_per_band`` anchors."""

from __future__ import annotations

import math
import struct
import time
from typing import Callable

import numpy as np

from hsicodec.evaluation.anchors.common import (
    _check_cube,
    _check_target,
    _f32_floor,
    _imagecodecs,
    _inputs,
    _j2k_resolutions,
    _strip_j2k_comments,
    _value_range,
)
from hsicodec.evaluation.anchors.container import _pack_header, _read_varint, _to_dtype, _unpack_header, _varint
from hsicodec.evaluation.anchors.result import AnchorResult, _finish
from hsicodec.evaluation.anchors.search import _COUNTER, _search
from hsicodec.metrics import bpppb as _bpppb

_U16_PEAK = 65535.0


def _u16_mapping(cube: np.ndarray):
    """Offset and maximal gain mapping the cube onto the full uint16 range."""
    lo = float(cube.min())
    rng = float(cube.max()) - lo
    g_max = _U16_PEAK / rng if rng > 0 else 1.0
    return lo, g_max


def _to_u16(cube: np.ndarray, lo: float, g: float) -> np.ndarray:
    return np.clip(np.rint((cube.astype(np.float64) - lo) * g), 0, _U16_PEAK).astype(np.uint16)


def _level_and_gain(d_target: float, g_max: float):
    """OpenJPEG integer PSNR level L and gain g <= g_max such that its target MSE
    65535**2 / 10**(L/10) (uint16 units) is d_target * g**2 (d_target in original units)."""
    peak2 = _U16_PEAK**2
    l_real = 10.0 * math.log10(peak2 / (d_target * g_max * g_max))
    level = min(max(int(math.ceil(l_real)), 1), 99)
    g = math.sqrt(peak2 / (d_target * 10.0 ** (level / 10.0)))
    return level, _f32_floor(min(g, g_max))


def _j2k_mc_encode(cube: np.ndarray, d_target: float, ic) -> bytes:
    h, w, c = cube.shape
    lo, g_max = _u16_mapping(cube)
    level, g = _level_and_gain(d_target, g_max)
    u = _to_u16(cube, lo, g)
    img = np.ascontiguousarray(u) if c > 1 else np.ascontiguousarray(u[:, :, 0])
    cs = ic.jpeg2k_encode(
        img,
        level=level,
        codecformat="J2K",
        reversible=False,
        mct=False,
        planar=False if c > 1 else None,
        resolutions=_j2k_resolutions(h, w),
    )
    return _pack_header(cube.shape, cube.dtype) + struct.pack("<df", lo, g) + _strip_j2k_comments(cs)


def _j2k_mc_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    lo, g = struct.unpack_from("<df", blob, pos)
    pos += 12
    u = ic.jpeg2k_decode(blob[pos:]).astype(np.float64).reshape(shape)
    return _to_dtype(u / g + lo, dtype)


def _j2k_sep_encode(cube: np.ndarray, d_target: float, ic) -> bytes:
    h, w, c = cube.shape
    lo, g_max = _u16_mapping(cube)
    level, g = _level_and_gain(d_target, g_max)
    u = _to_u16(cube, lo, g)
    out = [_pack_header(cube.shape, cube.dtype), struct.pack("<df", lo, g)]
    res = _j2k_resolutions(h, w)
    for b in range(c):
        cs = _strip_j2k_comments(
            ic.jpeg2k_encode(
                np.ascontiguousarray(u[:, :, b]), level=level, codecformat="J2K", reversible=False, resolutions=res
            )
        )
        out.append(_varint(len(cs)) if b < c - 1 else b"")  # last length is implied
        out.append(cs)
    return b"".join(out)


def _j2k_sep_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    lo, g = struct.unpack_from("<df", blob, pos)
    pos += 12
    h, w, c = shape
    u = np.empty(shape, np.float64)
    for b in range(c):
        if b < c - 1:
            n, pos = _read_varint(blob, pos)
        else:
            n = len(blob) - pos
        u[:, :, b] = ic.jpeg2k_decode(blob[pos : pos + n])
        pos += n
    return _to_dtype(u / g + lo, dtype)


def _d_range(cube: np.ndarray):
    """Bracket of target MSEs (original units) for the JPEG 2000 searches."""
    var = float(np.var(cube.astype(np.float64)))
    r = _value_range(cube)
    hi = max(var, r * r / 4.0, 1e-30) * 4.0
    return hi * 1e-12, hi


def jpeg2000_per_band(cube, target_bpppb) -> AnchorResult:
    """JPEG 2000 of the bands, no spectral transform, at <= ``target_bpppb``.

    The C bands are the C components of ONE J2K codestream (OpenJPEG, 9/7
    irreversible, no MCT, up to 6 resolutions, COM banner stripped): headers are
    shared and OpenJPEG's PCRD allocates the bits over all code-blocks of all
    bands at one distortion-rate slope (this beat one codestream per band, see
    :func:`jpeg2000_separate`, at every rate we measured).  The cube is mapped
    to uint16 with a stored offset and gain (gain <= full uint16 range), which
    turns OpenJPEG's integer-dB PSNR knob into a continuous MSE target; search
    = bisection / regula falsi on that target.
    """
    return _j2k_band_anchor(
        "jpeg2000_per_band", cube, target_bpppb, _j2k_mc_encode, _j2k_mc_decode, "multicomponent", iters=20
    )


def jpeg2000_separate(cube, target_bpppb) -> AnchorResult:
    """One JPEG 2000 codestream per band, every band with the same MSE target.

    Same mapping and knob as :func:`jpeg2000_per_band`; band streams are
    concatenated with varint lengths.  Each band pays its own ~100-byte
    J2K header, which dominates at low rates.
    """
    return _j2k_band_anchor(
        "jpeg2000_separate", cube, target_bpppb, _j2k_sep_encode, _j2k_sep_decode, "one codestream per band", iters=14
    )


def _j2k_band_anchor(
    name: str, cube, target_bpppb, encode: Callable, decode: Callable, layout: str, iters: int
) -> AnchorResult:
    """Band-wise JPEG 2000 driven to the target by bisection on the MSE target (both layouts)."""
    ic = _imagecodecs()
    cube, target, target_bytes = _inputs(cube, target_bpppb)
    h, w, c = cube.shape
    t0 = time.perf_counter()
    count0 = _COUNTER[0]
    lo, hi = _d_range(cube)
    knob, blob = _search(
        lambda d: encode(cube, d, ic), lo, hi, target_bytes, quality_increases_with_knob=False, iters=iters
    )
    search_s = time.perf_counter() - t0
    if knob is None:
        return _finish(
            name, cube, target, None, None, decode, {"layout": layout}, search_s, smallest=blob, count0=count0
        )
    return _finish(
        name,
        cube,
        target,
        blob,
        lambda: encode(cube, knob, ic),
        decode,
        {"layout": layout, "d_target": knob},
        search_s,
        count0=count0,
    )


def _htj2k_encode(cube: np.ndarray, delta: float, ic) -> bytes:
    """``delta``: base quantisation step in original units.  OpenJPH's step is
    relative to the 16-bit range and capped at 1.0 by imagecodecs; beyond that
    the gain of the uint16 mapping is lowered instead."""
    h, w, c = cube.shape
    lo, g_max = _u16_mapping(cube)
    q = delta * g_max / (_U16_PEAK + 1.0)
    g = g_max
    if q > 1.0:
        q, g = 1.0, (_U16_PEAK + 1.0) / delta
    g = _f32_floor(g)
    u = _to_u16(cube, lo, g)
    img = np.ascontiguousarray(u.transpose(2, 0, 1)) if c > 1 else np.ascontiguousarray(u[:, :, 0])
    cs = ic.htj2k_encode(
        img, level=q, planar=True if c > 1 else None, reversible=False, resolutions=_j2k_resolutions(h, w) - 1
    )
    return _pack_header(cube.shape, cube.dtype) + struct.pack("<df", lo, g) + _strip_j2k_comments(cs)


def _htj2k_decode(blob: bytes) -> np.ndarray:
    ic = _imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    lo, g = struct.unpack_from("<df", blob, pos)
    pos += 12
    u = ic.htj2k_decode(blob[pos:], planar=True).astype(np.float64)
    u = u.reshape(shape[2], shape[0], shape[1]).transpose(1, 2, 0)
    return _to_dtype(u / g + lo, dtype)


def htj2k_per_band(cube, target_bpppb) -> AnchorResult:
    """High-Throughput JPEG 2000 (OpenJPH via imagecodecs), bands as components
    of one codestream, 9/7 irreversible, cube mapped to the full uint16 range.

    OpenJPH has no post-compression rate control: the knob is the base
    irreversible quantisation step in original units (log-scale search); it
    becomes OpenJPH's relative step (capped at 1.0 by imagecodecs) and, past
    that cap, a lower gain of the uint16 mapping.
    """
    ic = _imagecodecs()
    cube = _check_cube(cube)
    target = _check_target(target_bpppb)
    h, w, c = cube.shape
    if not hasattr(ic, "htj2k_encode") or not getattr(getattr(ic, "HTJ2K", None), "available", False):
        return AnchorResult(
            "htj2k_per_band",
            target,
            float("nan"),
            0,
            float("nan"),
            float("nan"),
            float("nan"),
            float("nan"),
            float("nan"),
            {},
            reachable=False,
            note="this imagecodecs build has no HTJ2K encoder",
        )
    t0 = time.perf_counter()
    count0 = _COUNTER[0]
    target_bytes = int(math.floor(target * h * w * c / 8.0))
    r = _value_range(cube)
    knob, blob = _search(
        lambda q: _htj2k_encode(cube, q, ic),
        r * 1e-7,
        r * 1e3,
        target_bytes,
        quality_increases_with_knob=False,
        iters=20,
    )
    search_s = time.perf_counter() - t0
    if knob is None:
        return _finish(
            "htj2k_per_band",
            cube,
            target,
            None,
            None,
            _htj2k_decode,
            {"layout": "multicomponent"},
            search_s,
            smallest=blob,
            note=(
                f"cannot reach {target:g} bpppb: even a quantisation step of 1000x "
                f"the value range still needs {_bpppb(len(blob), cube.shape):.4g} "
                f"bpppb (codestream overhead of {c} components)"
            ),
            count0=count0,
        )
    return _finish(
        "htj2k_per_band",
        cube,
        target,
        blob,
        lambda: _htj2k_encode(cube, knob, ic),
        _htj2k_decode,
        {"layout": "multicomponent", "step": knob},
        search_s,
        count0=count0,
    )

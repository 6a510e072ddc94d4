"""Plumbing shared by the anchors: the optional codec library, input checks,
small numeric helpers and J2K main-header trimming."""

from __future__ import annotations

import math

import numpy as np

from hsicodec.errors import OptionError
from hsicodec.evaluation.anchors.container import _DTYPE_CODE


def _imagecodecs():
    try:
        import imagecodecs  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionError(
            "the classical-codec anchors need the optional 'imagecodecs' package (pip install 'hsicodec[bench]')"
        ) from exc
    return imagecodecs


def _check_cube(cube) -> np.ndarray:
    cube = np.asarray(cube)
    if cube.ndim != 3 or min(cube.shape) < 1:
        raise OptionError(f"an anchor needs a (rows, cols, bands) cube, got shape {cube.shape}")
    if cube.dtype not in _DTYPE_CODE:
        raise OptionError(f"unsupported cube dtype {cube.dtype}")
    if cube.dtype.kind == "f" and not np.all(np.isfinite(cube)):
        raise OptionError("the anchors need a cube without NaN/inf values")
    return cube


def _check_target(target_bpppb) -> float:
    t = float(target_bpppb)
    if not math.isfinite(t) or t <= 0:
        raise OptionError(f"target bpppb must be a positive number, got {target_bpppb!r}")
    return t


def _strip_j2k_comments(cs: bytes) -> bytes:
    """Drop COM segments from a J2K main header (an encoder banner the decoder never needs).

    Only the main header (SOC ... first SOT) is touched; tile-part lengths (Psot)
    do not cover it, so the codestream stays valid.
    """
    cs = bytes(cs)
    if cs[:2] != b"\xff\x4f":
        return cs
    out = bytearray(cs[:2])
    pos = 2
    while pos + 4 <= len(cs):
        marker = cs[pos : pos + 2]
        if marker in (b"\xff\x90", b"\xff\x93", b"\xff\xd9"):  # SOT / SOD / EOC: header ends
            break
        seg_len = int.from_bytes(cs[pos + 2 : pos + 4], "big")
        if marker != b"\xff\x64":  # keep everything but COM
            out += cs[pos : pos + 2 + seg_len]
        pos += 2 + seg_len
    out += cs[pos:]
    return bytes(out)


def _inputs(cube, target_bpppb) -> tuple[np.ndarray, float, int]:
    """The checked cube, the checked target and the byte budget it gives the whole file."""
    cube = _check_cube(cube)
    target = _check_target(target_bpppb)
    return cube, target, int(math.floor(target * cube.size / 8.0))


def _f32_floor(x: float) -> float:
    """Largest float32 value <= x (scales are stored as float32; never exceed a cap)."""
    f = np.float32(x)
    if float(f) > x:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _j2k_resolutions(h: int, w: int) -> int:
    """OpenJPEG default is 6 resolutions; fewer for tiny images."""
    return int(max(1, min(6, int(math.log2(max(1, min(h, w)))) + 1)))


def _value_range(cube: np.ndarray) -> float:
    r = float(cube.max()) - float(cube.min())
    return r if r > 0 else 1.0

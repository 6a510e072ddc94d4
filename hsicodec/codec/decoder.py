"""`.hsim` sections + base model → cube (whole or a window). Never imports torch.

Pipeline: entropy-decode the spectral side information and the latent
grids, interpolate each window pixel's latent, evaluate the modulated SIREN
(native kernel when built, numpy otherwise) for the first k outputs, and map
the k normalised coefficients back to bands: X = (Y σ) B + μ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.spectral import decode_spectral
from hsicodec.coding.wavelet import haar_inverse, subband_groups, wavelet_levels
from hsicodec.errors import HsimHeaderError, HsimLimitError, OptionError, header_int
from hsicodec.format import compact
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.network import siren
from hsicodec.layers.network.latents import local_coords, pixel_latents
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.rotation import n_angles, rotation_from_codes

CODEC_NAME = "grid"
CODEC_VERSION = 5
CODEC_KEYS = frozenset({"id", "k", "norm", "q", "qo", "ma", "ls", "sp", "wt", "ct", "rl"})
ROW_BLOCK = 64  # pixel rows evaluated per network call (bounds peak memory)


STEPS_PER_OCTAVE = 8  # latent quantization step = 2^(q / 8)
MAX_WAVELET_LEVELS = 8  # codec key "wt": Haar levels applied to each latent grid before quantization


@dataclass
class CodecParams:
    """The validated ``codec`` map of a header (see spec/hsim.md, codec ``grid``)."""

    k: int
    norm: float
    steps: list  # per level
    max_abs: int
    scale_codes: bytes  # one per (level, channel, subband group)
    spectral: dict
    wavelet: int = 0  # Haar levels of the latent grids (0: the grids are quantized directly)
    rotations: list | None = None  # per level, the channel rotation Q (coded = grid @ Q); None: identity
    maps: coefmaps.MapParams | None = None  # the coefficient-map layer (section "r"), if any
    split: int | None = None  # compact form (v5): bytes of the spectral stream at the head of section "c"

    @property
    def components(self) -> int:
        """Principal components the file reconstructs: the network's k and the map layer's, whichever is more."""
        return max(self.k, self.maps.k if self.maps is not None else 0)


def parse_codec(header: dict, model: CodecModel | None) -> CodecParams:
    """Validate the header's codec map against the model; HsimHeaderError names the bad key.

    ``model`` None: the header names no base model, so it may only use the
    coefficient-map layer (k = 0, PCA spectral stage, no latent keys)."""
    c = header.get("codec")
    if not isinstance(c, dict):
        raise HsimHeaderError("header key 'codec': expected a map")
    if c.get("id") != CODEC_NAME:
        raise HsimHeaderError(f"header key 'codec.id': unsupported codec {c.get('id')!r}")

    c, split = compact.unpack_codec(c, coefmaps.MAX_MAPS, coefmaps.MAX_LEVELS)

    def integer(key, lo, hi):
        return header_int(c, "codec", key, lo, hi)

    unknown = sorted(str(key) for key in c if key not in CODEC_KEYS)
    if unknown:
        raise HsimHeaderError(
            f"header key 'codec': unknown key(s) {', '.join(unknown)} "
            f"(a newer codec version? this decoder reads grid version {CODEC_VERSION})"
        )
    if model is None:
        extra = sorted(key for key in ("q", "qo", "ma", "ls", "ct") if key in c)
        if c.get("k", 0) != 0 or extra:
            raise HsimHeaderError(
                "header key 'model' is missing: only a file without network latents "
                f"(codec.k = 0{', no ' + ', '.join(extra) if extra else ''}) decodes without one"
            )
        if not isinstance(c.get("sp"), dict) or c["sp"].get("m", "pca") != "pca":
            raise HsimHeaderError("header key 'model' is missing: a file without one needs the PCA spectral stage")
    n_levels = len(model.layout.levels) if model is not None else 0
    k = integer("k", 0, model.n_out if model is not None else 0) if "k" in c else 0
    if split is not None and k:
        raise HsimHeaderError(
            "header key 'codec.rl': the compact form (an array) is for files without network latents (k = 0)"
        )
    if k == 0:  # no network latents: their quantizer keys (and k itself) may be left out
        c = {"q": 0, "qo": [0] * n_levels, "ma": 0, "ls": b"", **c}
    q = integer("q", -512, 512)
    max_abs = integer("ma", 0, entropy.MAX_ABS_LIMIT)
    norm = c.get("norm")
    if type(norm) not in (int, float) or not np.isfinite(norm) or norm < 0:
        raise HsimHeaderError(f"header key 'codec.norm': expected a non-negative number, got {norm!r}")
    wt = c.get("wt", 0)
    if type(wt) is not int or not 0 <= wt <= MAX_WAVELET_LEVELS:
        raise HsimHeaderError(f"header key 'codec.wt': expected an int in 0..{MAX_WAVELET_LEVELS}, got {wt!r}")
    shape = header.get("shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(type(v) is int and v > 0 for v in shape)):
        raise HsimHeaderError("header key 'shape': expected three positive ints")
    codes = c.get("ls")
    n_codes = n_scale_codes(model, shape[0], shape[1], wt) if k else 0
    if not isinstance(codes, bytes) or len(codes) != n_codes:
        raise HsimHeaderError(f"header key 'codec.ls': expected {n_codes} latent scale codes")
    spectral = c.get("sp")
    if not isinstance(spectral, dict):
        raise HsimHeaderError("header key 'codec.sp': expected a map")
    qo = c.get("qo")
    if not isinstance(qo, list) or len(qo) != n_levels or any(type(o) is not int or not -64 <= o <= 64 for o in qo):
        raise HsimHeaderError(f"header key 'codec.qo': expected {n_levels} ints in -64..64")
    steps = [entropy.step_from_exponent(q + o, STEPS_PER_OCTAVE) for o in qo]
    rot = c.get("ct")
    rotations = None
    if rot is not None:
        n_rot = sum(n_angles(lv.channels) for lv in model.layout.levels)
        if not isinstance(rot, bytes) or len(rot) != n_rot:
            raise HsimHeaderError(f"header key 'codec.ct': expected {n_rot} rotation angle bytes")
        rotations = level_rotations(model, rot)
    maps = None
    if "rl" in c:
        if spectral.get("m", "pca") != "pca":
            raise HsimHeaderError("header key 'codec.rl': a coefficient-map layer needs the PCA spectral stage")
        maps = coefmaps.parse_params(c["rl"], shape[0], shape[1], min(shape[2], coefmaps.MAX_MAPS))
    return CodecParams(k, float(norm), steps, max_abs, codes, spectral, wt, rotations, maps, split)


def level_rotations(model: CodecModel, codes: bytes) -> list:
    """Each latent level's channel rotation from the header's angle bytes (level by level);
    None for a level too wide to be rotated."""
    out, pos = [], 0
    for lv in model.layout.levels:
        n = n_angles(lv.channels)
        out.append(rotation_from_codes(codes[pos : pos + n], lv.channels) if n or lv.channels == 1 else None)
        pos += n
    return out


def n_scale_codes(model: CodecModel, height: int, width: int, wavelet: int) -> int:
    """Number of latent scale codes: one per (level, channel, subband group)."""
    return sum(
        lv.channels * (wavelet_levels(*model.layout.grid_shape(i, height, width), wavelet) + 1)
        for i, lv in enumerate(model.layout.levels)
    )


def symbol_scales(model: CodecModel, codes: bytes, height: int, width: int, wavelet: int = 0) -> np.ndarray:
    """Per-symbol Laplace scales in stream order (level, row, col, channel).

    Codes run level by level, channel by channel, and within a channel over its
    subband groups 0..J (lowpass first; J = 0 without the wavelet).
    """
    out, pos = [], 0
    for i, lv in enumerate(model.layout.levels):
        gh, gw = model.layout.grid_shape(i, height, width)
        j = wavelet_levels(gh, gw, wavelet)
        n = lv.channels * (j + 1)
        s = np.array([entropy.scale_from_code(b) for b in codes[pos : pos + n]], np.float64).reshape(lv.channels, j + 1)
        out.append(s.T[subband_groups(gh, gw, j)].ravel())
        pos += n
    return np.concatenate(out) if out else np.zeros(0)


def decode_latents(data: bytes, model: CodecModel, p: CodecParams, height: int, width: int) -> list:
    """Entropy-decode and dequantize the latent grids (inverting the Haar transform and the
    channel rotation when the file uses them)."""
    sym = entropy.laplace_decode(data, symbol_scales(model, p.scale_codes, height, width, p.wavelet), p.max_abs)
    grids, pos = [], 0
    for i, lv in enumerate(model.layout.levels):
        gh, gw = model.layout.grid_shape(i, height, width)
        n = gh * gw * lv.channels
        g = (sym[pos : pos + n].astype(np.float32) * np.float32(p.steps[i])).reshape(gh, gw, lv.channels)
        if p.wavelet:
            g = haar_inverse(g, wavelet_levels(gh, gw, p.wavelet))
        if p.rotations is not None and p.rotations[i] is not None:
            g = np.asarray(g, np.float64) @ p.rotations[i].T
        grids.append(np.asarray(g, np.float32))
        pos += n
    return grids


def synthesize(
    model: CodecModel,
    grids: list,
    k: int,
    height: int,
    width: int,
    window: tuple,
    *,
    backend: str = "auto",
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Normalised coefficients (h, w, k) of a window from dequantized grids."""
    r0, c0, h, w = window
    out = np.empty((h, w, k), np.float32)
    if k == 0:
        return out
    weights = model.truncated(k)
    for a in range(r0, r0 + h, ROW_BLOCK):
        b = min(a + ROW_BLOCK, r0 + h)
        phi = pixel_latents(model.layout, grids, height, width, a, b, c0, c0 + w)
        x = local_coords(model.layout, a, b, c0, c0 + w, height, width)
        out[a - r0 : b - r0] = siren.forward(weights, x, phi, backend=backend, threads=threads).reshape(b - a, w, k)
        if progress is not None:
            progress((b - r0) / h)
    return out


def reconstruct(coeffs: np.ndarray, norm: float, mean: np.ndarray, basis: np.ndarray, bands: tuple) -> np.ndarray:
    """Band values (h, w, nb) float64 from normalised coefficients, for bands [a, b)."""
    a, b = bands
    h, w, k = coeffs.shape
    flat = coeffs.reshape(h * w, k).astype(np.float64) * norm
    vals = flat @ basis[:, a:b] + mean[a:b] if k else np.broadcast_to(mean[a:b], (h * w, b - a)).copy()
    return vals.reshape(h, w, b - a)


def reconstruct_bands(
    coeffs: np.ndarray, scale: float, offset: float, band_map: np.ndarray, bands: tuple
) -> np.ndarray:
    """Band values (h, w, nb) float64 for the plain method: outputs picked by the band map, rescaled."""
    a, b = bands
    return coeffs[..., band_map[a:b]].astype(np.float64) * scale + offset


def parse_band_map(sp: dict, n_bands: int, n_out: int) -> np.ndarray:
    """The band map of an "id"-mode header (identity when absent), validated."""
    bm = sp.get("bm")
    if bm is None:
        if n_bands > n_out:
            raise HsimHeaderError(f"header key 'codec.sp': {n_bands} bands but the model has {n_out} outputs")
        return np.arange(n_bands)
    if not isinstance(bm, list) or len(bm) != n_bands or any(type(v) is not int or not 0 <= v < n_out for v in bm):
        raise HsimHeaderError(f"header key 'codec.sp.bm': expected {n_bands} ints in 0..{n_out - 1}")
    return np.asarray(bm, np.int64)


def check_window(shape: tuple, window: tuple | None, bands: tuple | None) -> tuple[tuple, tuple]:
    """Validate a (row, col, h, w) window and [a, b) band range against the cube shape."""
    hgt, wid, c = shape
    win = (0, 0, hgt, wid) if window is None else tuple(int(v) for v in window)
    if len(win) != 4:
        raise OptionError(f"window {win}: expected 4 values (row, col, height, width)")
    r0, c0, h, w = win
    if r0 < 0 or c0 < 0 or h < 1 or w < 1 or r0 + h > hgt or c0 + w > wid:
        raise OptionError(f"window {win} (row, col, height, width) does not fit the {hgt}x{wid} image")
    bnd = (0, c) if bands is None else tuple(int(v) for v in bands)
    if len(bnd) != 2:
        raise OptionError(f"bands {bnd}: expected 2 values (start, stop)")
    if not 0 <= bnd[0] < bnd[1] <= c:
        raise OptionError(f"bands {bnd[0]}:{bnd[1]} do not fit the {c} bands of the cube")
    return win, bnd


# bytes the decoder allocates per latent symbol (scales, symbols, dequantized grid, temporaries),
# per window pixel and output (float32 coefficients, float64 rescale) and per window value (float64
# values, masked copy, dtype cast): a deliberate over-estimate of the peak, checked before decoding
_BYTES_PER_LATENT = 32
_BYTES_PER_COEFF = 16
_BYTES_PER_VALUE = 32


def decode_bytes_needed(header: dict, model: CodecModel | None, k: int, window: tuple, bands: tuple) -> int:
    """Estimate of the peak memory :func:`decode_sections` (plus mask and cast) needs for a window."""
    hgt, wid, c = (int(v) for v in header["shape"])
    n_lat = model.layout.count(hgt, wid) if k and model is not None else 0
    rl = header["codec"].get("rl")
    k_maps = rl.get("k") if isinstance(rl, dict) else rl[0] if isinstance(rl, list) and rl else 0
    n_maps = hgt * wid * k_maps if type(k_maps) is int and k_maps > 0 else 0
    pixels = window[2] * window[3]
    values = pixels * (bands[1] - bands[0])
    mask = hgt * wid * c // 4 if "mask" in header else 0  # whole-cube bit mask inflated to bool + bytes
    return _BYTES_PER_LATENT * (n_lat + n_maps) + _BYTES_PER_COEFF * pixels * k + _BYTES_PER_VALUE * values + mask


def decode_sections(
    header: dict,
    read_section: Callable[[str], bytes],
    model: CodecModel | None,
    *,
    window: tuple | None = None,
    bands: tuple | None = None,
    backend: str = "auto",
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
    limits: Limits | None = None,
) -> np.ndarray:
    """Decode a window of the cube as float64 in original units (before the dtype cast).

    The memory the decode needs is estimated first and refused (HsimLimitError)
    beyond ``limits.max_decode_bytes``; ``limits`` defaults to those of the
    :class:`HsimReader` whose ``section`` method is ``read_section``, else the defaults.
    """
    hgt, wid, c = (int(v) for v in header["shape"])
    win, bnd = check_window((hgt, wid, c), window, bands)
    p = parse_codec(header, model)
    if limits is None:
        owner = getattr(read_section, "__self__", None)
        limits = owner.limits if isinstance(owner, HsimReader) else DEFAULT_LIMITS
    need = decode_bytes_needed(header, model, p.components, win, bnd)
    if need > limits.max_decode_bytes:
        raise HsimLimitError(
            f"decoding a {win[2]}x{win[3]}x{bnd[1] - bnd[0]} window of this {hgt}x{wid}x{c} cube needs about "
            f"{need / 2**30:.3g} GiB, over the limit of {limits.max_decode_bytes / 2**30:.3g} GiB "
            f"(Limits.max_decode_bytes; decode a smaller window or raise the limit)"
        )
    try:
        return _decode(header, read_section, model, p, hgt, wid, c, win, bnd, backend, threads, progress)
    except MemoryError as exc:
        raise HsimLimitError(
            f"not enough memory to decode a {win[2]}x{win[3]}x{bnd[1] - bnd[0]} window of this {hgt}x{wid}x{c} "
            f"cube ({exc}); decode a smaller window"
        ) from None


def _decode(header, read_section, model, p, hgt, wid, c, win, bnd, backend, threads, progress) -> np.ndarray:
    grids = decode_latents(read_section("l"), model, p, hgt, wid) if p.k else []
    mode = p.spectral.get("m", "pca")
    if mode != (model.spectral if model is not None else "pca"):
        raise HsimHeaderError(f"header key 'codec.sp.m': {mode!r} does not match the model's spectral stage")
    if mode == "id":
        off = p.spectral.get("off")
        if type(off) not in (int, float) or not np.isfinite(off):
            raise HsimHeaderError("header key 'codec.sp.off': expected a finite number")
        bm = parse_band_map(p.spectral, c, model.n_out)
        if p.k == 0:
            return np.full((win[2], win[3], bnd[1] - bnd[0]), float(off))
        need = int(bm[bnd[0] : bnd[1]].max()) + 1
        if need > p.k:
            raise HsimHeaderError("header key 'codec.k': smaller than the band map needs")
        coeffs = synthesize(model, grids, need, hgt, wid, win, backend=backend, threads=threads, progress=progress)
        return reconstruct_bands(coeffs, p.norm, float(off), bm, bnd)
    kt = p.components
    if p.split is not None:  # compact form: one section "c", the spectral stream first
        body = read_section("c")
        if p.split > len(body):
            raise HsimHeaderError(
                f"header key 'codec.sp': spectral stream of {p.split} bytes does not fit section 'c' of {len(body)}"
            )
        sdata, rdata = body[: p.split], body[p.split :]
    else:
        sdata, rdata = read_section("s"), (read_section("r") if p.maps is not None else b"")
    mean, basis = decode_spectral(sdata, p.spectral, c, kt)
    coeffs = np.zeros((win[2], win[3], kt), np.float64)
    if p.k:
        coeffs[..., : p.k] = synthesize(
            model, grids, p.k, hgt, wid, win, backend=backend, threads=threads, progress=progress
        )
    if p.maps is not None:
        maps = coefmaps.decode_maps(rdata, p.maps, hgt, wid)
        coeffs[..., : p.maps.k] += maps[win[0] : win[0] + win[2], win[1] : win[1] + win[3]]
    return reconstruct(coeffs, p.norm, mean, basis, bnd)

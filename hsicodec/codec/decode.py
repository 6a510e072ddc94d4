"""`.hsim` sections + base model → cube (whole or a window). Never imports torch or encoder code.

The codec's part of decoding: validate the header's ``grid`` codec map, ask every layer the file
uses (:mod:`hsicodec.layers.registry`) for its coefficients on the window, add them, and map the
coefficients back to bands through the spectral stage: X = (Y σ) B + μ (or, for the paper's plain
models, pick and rescale the model outputs of the bands).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from hsicodec.coding.reduce import aligned_window, block_mean, check_reduce
from hsicodec.coding.shared import SharedSpectral
from hsicodec.coding.spectral import decode_spectral, reconstruct, reconstruct_bands
from hsicodec.coding.wavelet import native_wavelet
from hsicodec.errors import HsicodecError, HsimHeaderError, HsimLimitError, OptionError
from hsicodec.format import compact
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits
from hsicodec.format.grid import BASE_KEYS, CODEC_NAME, CODEC_VERSION, COMPACT_SECTION, SPECTRAL_SECTION
from hsicodec.io.cast import cast_to_dtype
from hsicodec.layers.base import DecodeContext, Decoded
from hsicodec.layers.maps.coding import MAX_LEVELS, MAX_MAPS
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.registry import LAYERS, layer_keys

if TYPE_CHECKING:
    from typing import TypeGuard  # Python >= 3.10: annotations only


@dataclass
class GridParams:
    """The validated ``codec`` map of a header (spec/hsim.md, codec ``grid``): the codec's own keys and, per
    layer the file uses (in registry order), that layer's parsed parameters."""

    codec: dict  # the codec map, compact form unpacked
    norm: float
    spectral: dict | None  # None: the file's layers give band values, no spectral stage
    layers: dict = field(default_factory=dict)  # layer name → its parameters
    split: int | None = None  # compact form (v5): bytes of the spectral stream at the head of section "c"

    @property
    def components(self) -> int:
        """Principal components the file reconstructs: the most any of its layers uses."""
        return max((LAYERS[name].components(p) for name, p in self.layers.items()), default=0)

    def params(self, name: str) -> Any:
        """A layer's parameters, None when the file does not use it."""
        return self.layers.get(name)


def _is_number(value: object) -> TypeGuard[int | float]:
    """Whether a header value is a number: an int or a float as msgpack decodes them (not a bool)."""
    return type(value) in (int, float)


def parse_codec(header: dict, model: CodecModel | None) -> GridParams:
    """Validate the header's codec map against the model; HsimHeaderError names the bad key.

    ``model`` None: the header names no base model, so it may only use layers that need none and
    the PCA spectral stage."""
    c = header.get("codec")
    if not isinstance(c, dict):
        raise HsimHeaderError("header key 'codec': expected a map")
    if c.get("id") != CODEC_NAME:
        raise HsimHeaderError(f"header key 'codec.id': unsupported codec {c.get('id')!r}")
    c, split = compact.unpack_codec(c, MAX_MAPS, MAX_LEVELS)
    unknown = sorted(str(key) for key in c if key not in BASE_KEYS | layer_keys())
    if unknown:
        raise HsimHeaderError(
            f"header key 'codec': unknown key(s) {', '.join(unknown)} "
            f"(a newer codec version? this decoder reads grid version {CODEC_VERSION})"
        )
    has_spectral = "sp" in c or "norm" in c  # files of layers that give band values need no spectral stage
    norm = c.get("norm", 0.0)
    if not _is_number(norm) or not np.isfinite(norm) or norm < 0:
        raise HsimHeaderError(f"header key 'codec.norm': expected a non-negative number, got {norm!r}")
    shape = header.get("shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(type(v) is int and v > 0 for v in shape)):
        raise HsimHeaderError("header key 'shape': expected three positive ints")
    spectral = c.get("sp")
    if has_spectral and not isinstance(spectral, dict):
        raise HsimHeaderError("header key 'codec.sp': expected a map")
    if model is None:  # a layer that needs a model names the keys a model-less file may not use
        for lay in LAYERS.values():
            if lay.needs_model:
                lay.parse(c, header, None)
    if split is not None and any(lay.needs_model and not lay.keys.isdisjoint(c) for lay in LAYERS.values()):
        raise HsimHeaderError(
            "header key 'codec.rl': the compact form (an array) is for files without network latents (k = 0)"
        )
    layers = {}
    for name, layer in LAYERS.items():
        p = layer.parse(c, header, model)
        if p is not None:
            layers[name] = p
    if not has_spectral and (not layers or any(LAYERS[n].output == "coefficients" for n in layers)):
        raise HsimHeaderError("header key 'codec.sp': expected a map")
    if model is None and spectral is not None and spectral.get("m", "pca") != "pca":
        raise HsimHeaderError("header key 'model' is missing: a file without one needs the PCA spectral stage")
    return GridParams(c, float(norm), spectral, layers, split)


def describe(header: dict, model: CodecModel | None) -> dict:
    """The file's spectral stage and layers in words and plain numbers (``hsicodec info``)."""
    p = parse_codec(header, model)
    return {
        "spectral": {"mode": p.spectral.get("m", "pca"), "components": p.components} if p.spectral else None,
        "layers": {name: LAYERS[name].describe(lp) for name, lp in p.layers.items()},
    }


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


# bytes the decoder allocates per window pixel and output (float32 coefficients, float64 rescale) and per
# window value (float64 values, masked copy, dtype cast): a deliberate over-estimate of the peak, checked
# before decoding (each layer adds its own, Layer.decode_bytes)
_BYTES_PER_COEFF = 16
_BYTES_PER_VALUE = 32


def decode_bytes_needed(ctx: DecodeContext, p: GridParams, window: tuple, bands: tuple) -> int:
    """Estimate of the peak memory :func:`decode_sections` (plus mask and cast) needs for a window."""
    hgt, wid, c = ctx.shape
    pixels = window[2] * window[3]
    values = pixels * (bands[1] - bands[0])
    mask = hgt * wid * c // 4 if "mask" in ctx.header else 0  # whole-cube bit mask inflated to bool + bytes
    layers = sum(LAYERS[name].decode_bytes(lp, ctx) for name, lp in p.layers.items())
    return layers + _BYTES_PER_COEFF * pixels * p.components + _BYTES_PER_VALUE * values + mask


def _section_reader(read_section: Callable[[str], bytes], p: GridParams) -> Callable[[str], bytes]:
    """The file's sections as the layers see them: in the compact form, section "c" holds the spectral
    stream (the first ``split`` bytes) and the coefficient-map stream "r" (the rest)."""
    if p.split is None:
        return read_section
    body = read_section(COMPACT_SECTION)
    split = p.split
    if split > len(body):
        raise HsimHeaderError(
            f"header key 'codec.sp': spectral stream of {split} bytes does not fit section 'c' of {len(body)}"
        )
    parts = {SPECTRAL_SECTION: body[:split], "r": body[split:]}

    def read(name: str) -> bytes:
        return parts[name] if name in parts else read_section(name)

    return read


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
    reduce: int = 0,
    shared: SharedSpectral | None = None,
    dtype: np.dtype | None = None,
    nodata: float | int | None = None,
    memo: dict | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a window of the cube in original units, before the dtype cast: float64, or the file's own
    integer dtype where the layers give whole values that fit it (the predictive layer on integer cubes).
    With ``dtype`` the values may come back already cast to it (:func:`hsicodec.io.cast.cast_to_dtype` with
    ``nodata``, fused into the spectral reconstruction: :func:`reconstruct_cast`); what is not is for the
    caller to cast. ``out``: where such a cast is written (the result is then ``out`` itself: a caller
    checks ``result is out``), a window of the caller's cube, so the pixels are not copied again.

    ``reduce`` n > 0: the window's reduced image, 2^n times smaller on each side
    (:mod:`hsicodec.coding.reduce`: the window widened to whole blocks; the layers' own reduced parts where
    every layer of the file gives one, :func:`own_reduce`, else block means).
    ``shared``: the shared spectral stage a file that names one (``codec.sp.x``) is decoded with (its
    tiled file's, or its zarr array's; :mod:`hsicodec.coding.shared`).
    ``memo``: a dict kept across the windows of one file, where layers keep what they decode of the whole
    file (``DecodeContext.memo``; a tile decoded in strips then decodes its maps once).

    The memory the decode needs is estimated first and refused (HsimLimitError)
    beyond ``limits.max_decode_bytes``; ``limits`` defaults to those of the
    :class:`HsimReader` whose ``section`` method is ``read_section``, else the defaults.
    """
    hgt, wid, c = (int(v) for v in header["shape"])
    win, bnd = check_window((hgt, wid, c), window, bands)
    reduce = check_reduce(reduce)
    win = aligned_window(win, (hgt, wid), reduce)[0]
    p = parse_codec(header, model)
    if limits is None:
        owner = getattr(read_section, "__self__", None)
        limits = owner.limits if isinstance(owner, HsimReader) else DEFAULT_LIMITS
    ctx = DecodeContext(header, p.codec, (hgt, wid, c), read_section, model, p.components, bnd, backend, threads,
                        progress, reduce, shared, memo)  # fmt: skip
    need = decode_bytes_needed(ctx, p, win, bnd)
    if need > limits.max_decode_bytes:
        raise HsimLimitError(
            f"decoding a {win[2]}x{win[3]}x{bnd[1] - bnd[0]} window of this {hgt}x{wid}x{c} cube needs about "
            f"{need / 2**30:.3g} GiB, over the limit of {limits.max_decode_bytes / 2**30:.3g} GiB "
            f"(Limits.max_decode_bytes; decode a smaller window or raise the limit)"
        )
    try:
        return _decode(ctx, p, win, bnd, None if dtype is None else np.dtype(dtype), nodata, out)
    except MemoryError as exc:
        raise HsimLimitError(
            f"not enough memory to decode a {win[2]}x{win[3]}x{bnd[1] - bnd[0]} window of this {hgt}x{wid}x{c} "
            f"cube ({exc}); decode a smaller window"
        ) from None


def _decode(
    ctx: DecodeContext,
    p: GridParams,
    win: tuple,
    bnd: tuple,
    dtype: np.dtype | None = None,
    nodata: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    model = ctx.model
    out_win = aligned_window(win, ctx.shape, ctx.reduce)[1] if ctx.reduce else win
    if p.spectral is None:  # layers that give the band values themselves
        _, residual = _layer_parts(ctx, p, win, 0)
        assert residual is not None
        return residual
    mode = p.spectral.get("m", "pca")
    if mode != (model.spectral if model is not None else "pca"):
        raise HsimHeaderError(f"header key 'codec.sp.m': {mode!r} does not match the model's spectral stage")
    ctx.read_section = _section_reader(ctx.read_section, p)
    if mode == "id":  # the paper's plain models: the network's outputs are the bands
        assert model is not None
        off = p.spectral.get("off")
        if not _is_number(off) or not np.isfinite(off):
            raise HsimHeaderError("header key 'codec.sp.off': expected a finite number")
        bm = parse_band_map(p.spectral, ctx.shape[2], model.n_out)
        if p.components == 0:
            return np.full((out_win[2], out_win[3], bnd[1] - bnd[0]), float(off))
        ctx.components = int(bm[bnd[0] : bnd[1]].max()) + 1
        if ctx.components > p.components:
            raise HsimHeaderError("header key 'codec.k': smaller than the band map needs")
        coeffs, residual = _layer_parts(ctx, p, win, ctx.components)
        values = reconstruct_bands(coeffs, p.norm, float(off), bm, bnd)
    else:
        mean, basis = _spectral_stage(ctx, p)
        coeffs, residual = _layer_parts(ctx, p, win, p.components)
        if residual is None and dtype is not None:
            if out is not None and (out.shape != coeffs.shape[:2] + (bnd[1] - bnd[0],) or out.dtype != dtype):
                out = None
            return reconstruct_cast(coeffs, p.norm, mean, basis, bnd, dtype, nodata, ctx.threads, out)
        values = reconstruct(coeffs, p.norm, mean, basis, bnd)
    return values + residual if residual is not None else values


#: pixels a block of the reference path of :func:`reconstruct_cast` at least: float64 temporaries of a few tens of MB
RECONSTRUCT_BLOCK = 16384
_CAST_NATIVE = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"})  # output dtypes the C++ kernel takes


def reconstruct_cast(
    coeffs: np.ndarray,
    norm: float,
    mean: np.ndarray,
    basis: np.ndarray,
    bands: tuple,
    dtype: np.dtype,
    nodata: Any = None,
    threads: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``cast_to_dtype(reconstruct(coeffs, norm, mean, basis, bands), dtype, nodata)``, written into ``out``
    (h, w, nb) when given (a window of a larger cube: pixels contiguous, any row stride) and returned.

    C++ where the extension has it (``reconstruct_cast`` of csrc/spectral_cast.cpp): product, mean, rounding,
    clipping and cast fused pixel by pixel, threaded, no float64 cube formed; its sums are BLAS's, to the last
    bit where BLAS uses fused multiply-adds in order (OpenBLAS's AVX2 kernels; tested), else within one unit of
    an integer output. NaN values (never from a valid file) are redone the reference way."""
    h, w, _ = coeffs.shape
    a, b = bands
    if out is None:
        out = np.empty((h, w, b - a), dtype)
    nat = native_wavelet("reconstruct_cast") if dtype.isnative and dtype.str[1:] in _CAST_NATIVE else None
    if nat is not None and _pixels_contiguous(out):
        sub = np.ascontiguousarray(basis[:, a:b], np.float64)
        mu = np.ascontiguousarray(mean[a:b], np.float64)
        if not nat(np.ascontiguousarray(coeffs, np.float64), float(norm), sub, mu, out, int(threads)):
            return out
    rows = max(1, RECONSTRUCT_BLOCK // max(w, 1))  # the reference, block of rows by block of rows
    for r in range(0, h, rows):
        out[r : r + rows] = cast_to_dtype(reconstruct(coeffs[r : r + rows], norm, mean, basis, bands), dtype, nodata)
    return out


def _pixels_contiguous(a: np.ndarray) -> bool:
    """Whether ``a`` (h, w, nb) has each pixel's bands, and each row's pixels, next to each other."""
    size = a.dtype.itemsize
    h, w, nb = a.shape
    return (
        a.flags.writeable
        and (nb < 2 or a.strides[2] == size)
        and (w < 2 or a.strides[1] == nb * size)
        and (h < 2 or a.strides[0] >= 0)
    )


def _spectral_stage(ctx: DecodeContext, p: GridParams) -> tuple[np.ndarray, np.ndarray]:
    """The file's mean and basis: its own (section ``s``, or the head of ``c``), or the first k of the shared
    stage it names (which must be the one given: same digest, enough components)."""
    assert p.spectral is not None
    ref = p.spectral.get("x")
    if ref is None:
        return decode_spectral(ctx.read_section(SPECTRAL_SECTION), p.spectral, ctx.shape[2], p.components)
    shared = ctx.shared
    if shared is None:
        raise HsimHeaderError(
            "header key 'codec.sp': this file uses a shared spectral stage (a tile or chunk of a larger "
            "file or array): decode it through its tiled file or its zarr array"
        )
    if not isinstance(ref, bytes) or ref != shared.digest:
        raise HsimHeaderError("header key 'codec.sp.x': the shared spectral stage given is not the one this file uses")
    if shared.n_bands != ctx.shape[2] or p.components > shared.k:
        raise HsimHeaderError(
            f"header key 'codec.sp.x': the shared stage has {shared.k} components of {shared.n_bands} bands, "
            f"this file needs {p.components} of {ctx.shape[2]}"
        )
    mean, basis = shared.decode()
    return mean, basis[: p.components]


def own_reduce(p: GridParams) -> bool:
    """Whether every layer of the file gives its reduced part itself (``Layer.reduces``): then a reduced read
    asks them for it; otherwise every layer decodes at full resolution and the codec takes block means of
    each part, so that one reduced image never mixes the two estimates."""
    return all(getattr(LAYERS[name], "reduces", False) for name in p.layers)


def reduced_by_layers(header: dict) -> bool:
    """Whether a reduced read of an untiled file is given by its layers themselves (:func:`own_reduce`),
    decided from its header alone: False for a file that names a base model (its layers are not known without
    it) or whose codec map does not parse (the decode then says why)."""
    if "model" in header:
        return False
    try:
        return own_reduce(parse_codec(header, None))
    except HsicodecError:
        return False


def _layer_parts(ctx: DecodeContext, p: GridParams, win: tuple, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The sum of the layers' coefficients (h, w, k) on the window, and of their band values (None: none);
    with ``ctx.reduce`` the window's reduced image of each (the layers' own where every layer of the file
    ``reduces``, :func:`own_reduce`; else the block means of each full-resolution part)."""
    out = aligned_window(win, ctx.shape, ctx.reduce)[1] if ctx.reduce else win
    shape = (out[2], out[3], k)
    coeffs: np.ndarray | None = None
    own = False  # whether coeffs is this function's array (else a layer's, which is not written to)
    residual = None
    means = bool(ctx.reduce) and not own_reduce(p)
    layer_ctx = dataclasses.replace(ctx, reduce=0) if means else ctx  # block means: full-resolution parts
    for name, lp in p.layers.items():
        layer = LAYERS[name]
        part = layer.decode(lp, layer_ctx, win)
        if means:
            part = Decoded(
                None if part.coeffs is None else block_mean(part.coeffs, ctx.reduce),
                None if part.values is None else block_mean(part.values, ctx.reduce),
            )
        if part.coeffs is not None:
            if coeffs is None and part.coeffs.shape == shape and part.coeffs.dtype == np.float64:
                coeffs = part.coeffs  # the one layer of coefficients (the usual file): taken as it is
            else:
                if not own:
                    coeffs = np.zeros(shape, np.float64) if coeffs is None else np.array(coeffs, copy=True)
                    own = True
                assert coeffs is not None
                coeffs[..., : part.coeffs.shape[2]] += part.coeffs
        if part.values is not None:
            residual = part.values if residual is None else residual + part.values
    return (np.zeros(shape, np.float64) if coeffs is None else coeffs), residual

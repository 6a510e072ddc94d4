"""One cube ⇄ one untiled `.hsim`: the model, the mask and the encoder around a scene, and the untiled decode.

Tiled files (:mod:`hsicodec.codec.tiled`) are made of such files; :mod:`hsicodec.codec.api` picks the path.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Union

import numpy as np

from hsicodec._version import __version__
from hsicodec.codec.blas import uses_one_blas_thread
from hsicodec.codec.decode import check_window, decode_sections
from hsicodec.codec.mask import decode_mask, encode_mask, fill_invalid, fill_value, invalid_mask
from hsicodec.codec.memory import uses_codec_pages
from hsicodec.coding.reduce import aligned_window, block_all, check_reduce
from hsicodec.coding.shared import SharedSpectral
from hsicodec.errors import HsicodecError, HsimHeaderError, OptionError
from hsicodec.format.container import HsimReader, encode_hsim  # noqa: F401  (re-exported for users)
from hsicodec.io.raster import GeoInfo, cast_to_dtype
from hsicodec.layers.base import one_target
from hsicodec.layers.network.model import CodecModel, codec_model
from hsicodec.models.registry import Registry, default_registry

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_MODEL = "hsi-grid-v1"
# compress(model=None) tries these bundled models and keeps the better file (a per-file RD choice):
# the plain model wins at very low rates on some scenes, the adaptive grid model elsewhere
AUTO_MODELS = ("hsi-grid-v1", "hsi-plain-v1")


def load_codec_model(ref: str | None = None, registry: Registry | None = None) -> CodecModel:
    """Resolve a model id, prefix or alias (default: the bundled default model)."""
    reg = registry or default_registry()
    return codec_model(reg.load(ref or DEFAULT_MODEL))


def _model_by_hash(sha: str, registry: Registry | None) -> CodecModel:
    reg = registry or default_registry()
    return codec_model(reg.load_by_hash(sha))


@uses_codec_pages
@uses_one_blas_thread
def compress(
    cube: np.ndarray,
    *,
    geo: GeoInfo | None = None,
    model: str | None = None,
    bpppb: float | None = None,
    psnr: float | None = None,
    max_error: float | None = None,
    lossless: bool = False,
    effort: str | int = "default",
    progress: Callable[[float], None] | None = None,
    tags: dict | None = None,
    threads: int = 0,
    registry: Registry | None = None,
    stats: dict | None = None,
    backend: str = "auto",
    created_by: bool = False,
    band_map=None,
    wavelengths=None,
    nodata: float | None = None,
    layer: str | None = None,
    latent_codings: tuple | None = None,
    or_smallest: bool = False,
    shared_spectral: SharedSpectral | None = None,
    post_filter: bool = False,
    synthesis: bool = False,
    learned_entropy: bool = False,
    recon_table: bool = True,
) -> bytes:
    """Compress a (rows, cols, bands) cube to `.hsim` bytes.

    ``bpppb`` lands at or under the target (OptionError where even the smallest file is larger,
    unless ``or_smallest``: then the smallest file); ``psnr`` reaches at least the target
    where some layer can (else OptionError); ``max_error`` E keeps every value within E of the
    original (checked by a real decode before the bytes are returned), ``lossless`` is E = 0
    (bit-exact; integer cubes); none of them: 0.05 bpppb, or the smallest file where the cube
    allows none that small (a 1x1 cube, a small chip): the default never fails, and
    ``stats["target_fallback"]`` says "smallest file" when it fell back. ``stats``, if
    given, is filled with the encoder's figures (k, step, psnr, times).
    ``band_map`` / ``wavelengths`` match bands to the outputs of a plain
    (non-adaptive) model; PCA-adaptive models ignore them. NaN, ±Inf and
    ``nodata`` values (default: the geo metadata's) are kept as an exact mask
    and decode to the nodata value (NaN without one). ``model=None`` (or
    "auto") encodes with each of :data:`AUTO_MODELS` and keeps the file with the
    higher PSNR (rate target) or the smaller size (quality target).
    ``layer`` ("auto", "maps", "network" or any registered layer, :mod:`hsicodec.layers.registry`)
    codes with that layer alone; "auto" (default) chooses per file: the cheapest layer that meets the
    target below effort max, the best of all at max, and the best of all whenever ``model`` names a
    model (so that model's network competes for the file); "all" always tries every layer. ``latent_codings`` (names of
    :data:`hsicodec.codec.encode.CODINGS`) restricts the layers and codings the encoder may
    choose from, for ablations, e.g. ``("haar+klt",)`` for the network's latents with one coding.
    ``shared_spectral`` (:class:`~hsicodec.coding.shared.SharedSpectral`): a spectral stage stored
    elsewhere, once for many files (a tiled file's, a zarr array's); a map-layer file then names it
    instead of carrying its own, and decodes only with it (``decompress(..., shared_spectral=)``).
    ``post_filter``: the map layer may add its post filter (:mod:`hsicodec.layers.maps.postfilter`) to a
    rate-targeted file, where it measures better at the same size. ``synthesis``: likewise its nonlinear
    synthesis (:mod:`hsicodec.layers.maps.synthesis`: a shared network, bundled hsi-synth-v1, over the decoded
    maps; such files decode only where that network is installed).
    ``learned_entropy``: the map layer codes its symbols under the learned entropy model
    (:mod:`hsicodec.layers.maps.lem`, header ``ec = 2``) where it saves bytes; such files decode only where
    the model (bundled: hsi-lem-v1) is installed.
    ``recon_table`` False: the map layer puts one offset back in every nonzero coefficient's bin instead of the
    trained reconstruction table's (spec/hsim.md 10.13; 0.02–0.1 dB lower), for readers before grid version 9.
    """

    cube = np.asarray(cube)
    if cube.ndim == 2:
        cube = cube[:, :, None]
    if cube.ndim != 3:
        raise OptionError(f"expected a (rows, cols, bands) cube, got {cube.ndim} dimensions")
    if cube.dtype.kind not in "uif" or cube.dtype == np.float16:
        raise OptionError(
            f"unsupported cube dtype {cube.dtype}" + ("; convert it to float32" if cube.dtype == np.float16 else "")
        )
    bpppb, psnr, max_error = one_target(bpppb, psnr, max_error, lossless)
    if model in (None, "auto"):
        return _compress_auto(
            cube,
            registry=registry,
            stats=stats,
            progress=progress,
            geo=geo,
            bpppb=bpppb,
            psnr=psnr,
            max_error=max_error,
            effort=effort,
            tags=tags,
            threads=threads,
            backend=backend,
            created_by=created_by,
            band_map=band_map,
            wavelengths=wavelengths,
            nodata=nodata,
            layer=layer,
            latent_codings=latent_codings,
            or_smallest=or_smallest,
            shared_spectral=shared_spectral,
            post_filter=post_filter,
            synthesis=synthesis,
            learned_entropy=learned_entropy,
            recon_table=recon_table,
        )
    if layer in (None, "auto") and latent_codings is None:
        layer = "all"  # a model named by the caller: its network layer competes for every file
    return _compress_model(
        cube, model, geo=geo, bpppb=bpppb, psnr=psnr, max_error=max_error, effort=effort, progress=progress, tags=tags,
        threads=threads, registry=registry, stats=stats, backend=backend, created_by=created_by,
        band_map=band_map, wavelengths=wavelengths, nodata=nodata, layer=layer, latent_codings=latent_codings,
        or_smallest=or_smallest, shared_spectral=shared_spectral, post_filter=post_filter, synthesis=synthesis,
        learned_entropy=learned_entropy, recon_table=recon_table,
    )  # fmt: skip


def _compress_model(
    cube: np.ndarray,
    model: str,
    *,
    geo: GeoInfo | None,
    bpppb: float | None,
    psnr: float | None,
    max_error: float | None,
    effort: str | int,
    progress: Callable[[float], None] | None,
    tags: dict | None,
    threads: int,
    registry: Registry | None,
    stats: dict | None,
    backend: str,
    created_by: bool,
    band_map,
    wavelengths,
    nodata: float | None,
    layer: str | None,
    latent_codings: tuple | None,
    or_smallest: bool = False,
    shared_spectral: SharedSpectral | None = None,
    post_filter: bool = False,
    synthesis: bool = False,
    learned_entropy: bool = False,
    recon_table: bool = True,
) -> bytes:
    """:func:`compress` with one model (a validated cube)."""
    from hsicodec.codec.encode import encode

    cm = load_codec_model(model, registry)
    header: dict[str, Any] = {"shape": [int(v) for v in cube.shape], "dtype": cube.dtype.name, "model": cm.sha256}
    nodata = nodata if nodata is not None else (geo.nodata if geo is not None else None)
    original = cube
    mask = invalid_mask(cube, nodata)
    extra: tuple = ()
    if mask is not None:
        fill = float(nodata) if nodata is not None else float("nan")
        header["mask"] = {"fill": fill}
        extra = (("m", encode_mask(mask)),)
        cube = fill_invalid(cube, mask)
    if created_by:
        header["created_by"] = CREATED_BY
    if geo is not None and not geo.is_empty():
        header["geo"] = geo.to_header()
    if tags:
        header["tags"] = {str(k): str(v) for k, v in tags.items()}
    if wavelengths is None and geo is not None and geo.wavelengths:
        wavelengths = geo.wavelengths
    data, st = encode(
        cube,
        cm,
        bpppb=bpppb,
        psnr=psnr,
        max_error=max_error,
        effort=effort,
        base_header=header,
        threads=threads,
        progress=progress,
        backend=backend,
        band_map=band_map,
        wavelengths=wavelengths,
        extra_sections=extra,
        valid=None if mask is None else ~mask,
        layer=layer,
        latent_codings=latent_codings,
        or_smallest=or_smallest,
        shared_spectral=shared_spectral,
        post_filter=post_filter,
        synthesis=synthesis,
        learned_entropy=learned_entropy,
        recon_table=recon_table,
    )
    if max_error is not None:
        _check_bound(data, original, mask, max_error, registry)
    if stats is not None:
        stats.update(st)
        uses_model = bool(st.get("needs_model"))  # a file of a layer that needs no model names none
        stats["model"] = cm.sha256 if uses_model else None
        stats["model_alias"] = cm.alias if uses_model else None
    return data


def _check_bound(data: bytes, original: np.ndarray, mask: np.ndarray | None, max_error: float, registry) -> None:
    """Decode the file for real and check every valid value against the bound (masked ones are restored
    exactly by the mask); an error here is a bug, never a file that breaks its promise."""
    with HsimReader(data) as reader:
        back, _ = decompress_untiled(reader, registry=registry)
    if max_error == 0 and mask is None and back.dtype == original.dtype and original.dtype.kind in "iub":
        if not np.array_equal(back, original):
            raise HsicodecError("internal error: the decoded file is not bit-exact; please report it")
        return
    worst = _worst_error(back, original, mask)
    if not worst <= max_error:
        raise HsicodecError(f"internal error: the decoded file is {worst:g} off the original, over --max-error "
                            f"{max_error:g}; please report it")  # fmt: skip


def _worst_error(back: np.ndarray, original: np.ndarray, mask: np.ndarray | None) -> float:
    """The largest |back - original| over the valid values, a few rows at a time (exact integers without
    float copies of both cubes; bounded memory)."""
    if back.size == 0:
        return 0.0
    exact = original.dtype.kind in "iub" and original.dtype.itemsize <= 4 and back.dtype == original.dtype
    wide = np.int32 if exact and original.dtype.itemsize <= 2 else np.int64
    rows = max(1, (1 << 20) // max(back[0].size, 1))
    worst = 0.0
    for a in range(0, back.shape[0], rows):
        b, o = back[a : a + rows], original[a : a + rows]
        d = np.subtract(b, o, dtype=wide) if exact else b.astype(np.float64) - o.astype(np.float64)
        if mask is not None:
            d = d[~mask[a : a + rows]]
        if d.size:
            worst = max(worst, float(d.max()), -float(d.min()))
    return worst


def _compress_auto(
    cube: np.ndarray,
    *,
    registry: Registry | None,
    stats: dict | None,
    progress: Callable[[float], None] | None,
    psnr: float | None,
    max_error: float | None,
    **kwargs,
) -> bytes:
    """Encode with every installed AUTO_MODELS model and keep the best file."""
    reg = registry or default_registry()
    models = []
    for alias in AUTO_MODELS:
        try:
            reg.resolve(alias)
            models.append(alias)
        except HsicodecError:
            continue
    if not models:
        models = [DEFAULT_MODEL]  # raises the registry's clear "not found" below
    best: tuple[bytes, dict] | None = None
    first_error: OptionError | None = None
    for i, alias in enumerate(models):
        part = (lambda f, i=i: progress((i + f) / len(models))) if progress else None
        st: dict = {}
        try:
            data = _compress_model(
                cube, alias, registry=registry, stats=st, progress=part, psnr=psnr, max_error=max_error, **kwargs
            )
        except OptionError as exc:  # this model cannot serve the cube or the target
            first_error = first_error or exc
            continue
        if _better_auto(data, st, best, by_size=psnr is not None or max_error is not None):
            best = (data, st)
        if st.get("first_wins") and not st.get("needs_model") and st.get("target_fallback") is None:
            break  # below effort max a map-layer file ends the choice: the other models' latents lose to it
    if best is None:
        assert first_error is not None  # every model raised OptionError (other errors propagate)
        raise first_error
    if stats is not None:
        stats.update(best[1])
        stats["auto_models"] = models
    return best[0]


def _better_auto(data: bytes, st: dict, best: tuple[bytes, dict] | None, *, by_size: bool) -> bool:
    """Whether one model's file beats the best so far: for quality targets and bounds the smaller file, for a
    rate the higher PSNR; but a file that met the rate beats one that fell back to the smallest file, and of two
    fallbacks the smaller wins (it is the nearer to the rate)."""
    if best is None:
        return True
    fell, best_fell = st.get("target_fallback") is not None, best[1].get("target_fallback") is not None
    if fell != best_fell:
        return not fell
    if by_size or fell:
        return len(data) < len(best[0])
    return bool(st["psnr"] > best[1]["psnr"])


def decompress_untiled(
    reader: HsimReader,
    *,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    backend: str = "auto",
    registry: Registry | None = None,
    progress: Callable[[float], None] | None = None,
    reduce: int = 0,
    shared_spectral: SharedSpectral | None = None,
    memo: dict | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, GeoInfo]:
    """Decode an untiled `.hsim` (an open reader) to (cube in its original dtype, geo metadata).
    ``reduce`` n: the reduced image, 2^n times smaller (:mod:`hsicodec.coding.reduce`);
    ``shared_spectral``: the shared stage a file that names one is decoded with;
    ``memo``: a dict for decoding several windows of the same reader (:func:`decode_sections`; its checksum
    is then verified once);
    ``out``: an array of the decoded window's shape and dtype (a window of the caller's cube) the pixels are
    written into, and which is returned: the spectral stage casts straight into it."""
    if memo is None or not memo.get("verified"):
        reader.verify()  # whole-file CRC32C: any changed byte is an error, never wrong pixels
        if memo is not None:
            memo["verified"] = True
    header = reader.header
    shape = tuple(int(v) for v in header["shape"])
    reduce = check_reduce(reduce)
    if reduce and window is None:
        window = (0, 0, shape[0], shape[1])
    if reduce:  # whole blocks: the geo origin and the mask follow the widened window
        window = aligned_window(check_window(shape, window, bands)[0], shape, reduce)[0]
    cm = _model_by_hash(header["model"], registry) if "model" in header else None  # a file of no model's layer
    geo = GeoInfo.from_header(header.get("geo"), n_bands=shape[2])
    dtype = np.dtype(header["dtype"])
    values = decode_sections(
        header, reader.section, cm, window=window, bands=bands, backend=backend, threads=threads, progress=progress,
        reduce=reduce, shared=shared_spectral, dtype=None if "mask" in header else dtype, nodata=geo.nodata,
        memo=memo, out=None if "mask" in header else out,
    )  # fmt: skip
    if "mask" in header:
        values = _apply_mask(values, header, reader.section("m"), window, bands, reduce)
    done = values.dtype == dtype and values.flags.writeable and "mask" not in header  # cast in decode_sections
    cube = values if done else cast_to_dtype(values, dtype, geo.nodata)
    if out is not None and cube is not out:
        out[...] = cube
        cube = out
    if window is not None or bands is not None:
        r0, c0, h, w = window if window is not None else (0, 0, values.shape[0], values.shape[1])
        a, b = bands if bands is not None else (0, shape[2])
        f = 1 << reduce
        geo = geo.subset(slice(r0, r0 + h, f), slice(c0, c0 + w, f), slice(a, b))
    return cube, geo


def _apply_mask(
    values: np.ndarray, header: dict, data: bytes, window: tuple | None, bands: tuple | None, reduce: int = 0
) -> np.ndarray:
    """Put the header's fill value back at every masked position of the decoded window (reduced reads: where
    every value of the block is masked)."""
    m = header["mask"]
    if not isinstance(m, dict):
        raise HsimHeaderError("header key 'mask': expected a map")
    fill = fill_value(m.get("fill"))
    shape = tuple(int(v) for v in header["shape"])
    mask = decode_mask(data, shape)
    r0, c0, h, w = window if window is not None else (0, 0, shape[0], shape[1])
    a, b = bands if bands is not None else (0, shape[2])
    values = np.array(values, np.float64)
    masked = block_all(mask[r0 : r0 + h, c0 : c0 + w, a:b], reduce)
    _keep_off_fill(values, ~masked, fill, np.dtype(header["dtype"]))
    values[masked] = fill
    return values


def _keep_off_fill(values: np.ndarray, valid: np.ndarray, fill: float, dtype: np.dtype) -> None:
    """Move valid values that would cast to the fill value to the nearest value on their side (integers:
    fill ± 1, inward at the ends of the range), so that after the cast the fill marks exactly the masked
    positions."""
    if np.isnan(fill):
        return
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        hit = valid & (np.clip(np.rint(values), info.min, info.max) == fill)
        up = (values >= fill) if fill < info.max else np.zeros_like(hit)
        up |= fill <= info.min
        values[hit & up] = fill + 1
        values[hit & ~up] = fill - 1
    else:
        f = dtype.type(fill)
        hit = valid & (values.astype(dtype) == f)
        values[hit] = np.where(
            values[hit] >= fill, np.nextafter(f, dtype.type(np.inf)), np.nextafter(f, dtype.type(-np.inf))
        )


CREATED_BY = f"hsicodec {__version__}"

"""The scene analysis every layer starts from: values, spectral stage, normalised targets, effort."""

from __future__ import annotations

import numpy as np

from hsicodec.codec.memory import float64_buffer
from hsicodec.coding.products import in_threads, worker_threads
from hsicodec.coding.spectral import Analysis, block_moments, pca_stride, scene_pca
from hsicodec.errors import OptionError
from hsicodec.layers.maps.search import MAP_K_MAX as MAP_COMPONENTS
from hsicodec.layers.network.model import CodecModel

EFFORTS = {"fast": (None, 0), "default": (12, 0), "max": (12, 300)}
DEFAULT_BPPPB = 0.05
MAX_ABS_VALUE = 1e150


def effort_name(effort: str | int) -> str:
    """The named level of an effort: fast, default or max; a number 0–100 names the level of its third
    (0–33 fast, 34–66 default, 67–100 max), so numeric efforts are monotone in time and quality."""
    if isinstance(effort, str) and effort.isdigit():
        effort = int(effort)
    if isinstance(effort, int) and not isinstance(effort, bool):
        if not 0 <= effort <= 100:
            raise OptionError(f"effort {effort} out of range 0..100")
        return "fast" if effort <= 33 else "default" if effort <= 66 else "max"
    if effort not in EFFORTS:
        raise OptionError(f"effort must be fast, default, max or 0..100, not {effort!r}")
    return str(effort)


def effort_steps(effort: str | int, model: CodecModel) -> tuple[int, int]:
    """(inner steps, Adam fine-tuning steps) for an effort name or number (0–100, see :func:`effort_name`)."""
    inner, adam = EFFORTS[effort_name(effort)]
    return (model.inner_steps if inner is None else max(inner, model.inner_steps)), adam


def resolve_band_map(model: CodecModel, n_bands: int, band_map=None, wavelengths=None) -> np.ndarray:
    """Model output channel of every band: explicit map, else nearest model wavelength, else identity."""
    if band_map is not None:
        bm = np.asarray(band_map, np.int64).ravel()
        if bm.shape != (n_bands,) or bm.min() < 0 or bm.max() >= model.n_out or len(set(bm.tolist())) != n_bands:
            raise OptionError(f"band map must give {n_bands} distinct outputs in 0..{model.n_out - 1}")
        return bm
    model_wl = model.config.get("wavelengths")
    if wavelengths is not None and model_wl:
        wl = np.asarray(wavelengths, np.float64)
        mw = np.asarray(model_wl, np.float64)
        if wl.shape != (n_bands,):
            raise OptionError(f"{len(wl)} wavelengths given for {n_bands} bands")
        bm = np.abs(wl[:, None] - mw[None, :]).argmin(axis=1)
        if len(set(bm.tolist())) != n_bands:
            raise OptionError("several bands match the same model wavelength; give an explicit band map")
        return bm
    if n_bands > model.n_out:
        raise OptionError(
            f"the cube has {n_bands} bands but model {model.alias or model.sha256[:12]} "
            f"outputs only {model.n_out}; use a model with spectral adaptation"
        )
    return np.arange(n_bands)


#: values from which :func:`float64_with_sums` converts on several threads (each faults its share of the pages in)
PARALLEL_CAST_VALUES = 1 << 22


def float64_with_sums(a: np.ndarray) -> tuple[np.ndarray, tuple | None, tuple | None]:
    """A (H, W, C) cube as float64 (itself where it is one), its
    :attr:`~hsicodec.coding.spectral.Analysis.sums` about its first pixel and, for an 8- or 16-bit integer
    cube, :func:`~hsicodec.coding.spectral.scene_pca`'s moments (its sums are then integers below 2^53,
    exact in any order: the PCA's, to the bit). A large cube is converted in parts on up to 4 threads (numpy
    releases the GIL there; most of the time is the kernel mapping the new array's pages in, which threads do
    side by side), each part summed while it is in cache; a small one at once, with no sums (None: its users
    take them in a pass of their own)."""
    threads = worker_threads()
    if a.dtype == np.float64 or a.size < PARALLEL_CAST_VALUES or threads < 2 or not a.flags.c_contiguous:
        return (a if a.dtype == np.float64 else a.astype(np.float64)), None, None
    out = float64_buffer(a.shape)  # a tile runner's scratch: pages faulted in by the tile before
    c = a.shape[-1]
    dst, src = out.reshape(-1, c), a.reshape(-1, c)
    shift = src[0].astype(np.float64)
    exact = a.dtype.kind in "iu" and a.dtype.itemsize <= 2  # |z| < 2^16: Σ zᵀz over ≤ 2^16 pixels < 2^48
    stride = pca_stride(len(src)) if exact else 0
    parts = 4 * threads
    bounds = [(i * len(src) // parts, (i + 1) * len(src) // parts) for i in range(parts)]

    def part(ab: tuple[int, int]) -> tuple:
        np.copyto(dst[ab[0] : ab[1]], src[ab[0] : ab[1]], casting="unsafe")
        return block_moments(dst[ab[0] : ab[1]], shift, stride, -ab[0] % stride if stride else 0)

    done = in_threads(part, bounds)  # in part order: the same sums whatever the threads' timing
    total, squares = np.zeros(c), 0.0
    gram, sampled = np.zeros((c, c)), np.zeros(c)
    for tot, sq, g, t in done:
        total += tot
        squares += sq
        if stride:
            gram += g
            sampled += t
    moments = (shift, gram, sampled, len(range(0, len(src), stride))) if stride else None
    return out, (shift, total, squares), moments


def analyse(cube: np.ndarray, model: CodecModel, band_map=None, wavelengths=None, spectral: bool = True) -> Analysis:
    """Spectral stage and normalised targets of a cube. ``spectral`` False: the values alone (mode "values",
    for layers that code band values; no PCA is fitted; an integer cube stays integers, no float copy)."""
    if not spectral:
        values = np.asarray(cube)
        values = values if values.dtype.kind in "iu" else values.astype(np.float64, copy=False)
        h, w, c = values.shape
        rng = float(values.max()) - float(values.min()) if values.size else 0.0
        return Analysis(values, None, np.zeros((h, w, 0), np.float32), rng, "values")
    src = np.asarray(cube)
    values, sums, moments = float64_with_sums(src)
    h, w, c = values.shape
    rng = float(np.float64(src.max()) - np.float64(src.min()))  # as of the float64 values: conversion keeps order
    if model.spectral == "id":
        bm = resolve_band_map(model, c, band_map, wavelengths)
        off, scl = float(values.min()), (rng if rng > 0 else 1.0)
        y = np.zeros((h * w, model.n_out), np.float32)
        y[:, bm] = (values.reshape(-1, c) - off) / scl
        return Analysis(values, None, y.reshape(h, w, model.n_out), rng, "id", off, scl, bm)
    fit = scene_pca(values.reshape(-1, c), max(model.n_out, MAP_COMPONENTS), moments)  # one PCA for both layers

    def targets() -> np.ndarray:
        y = np.zeros((h * w, model.n_out), np.float32)
        basis = fit.basis[: model.n_out]
        if fit.total_std > 0:
            y[:, : basis.shape[0]] = (values.reshape(-1, c) - fit.mean) @ basis.T / fit.total_std
        return y.reshape(h, w, model.n_out)

    return Analysis(values, fit, targets, rng, sums=sums)

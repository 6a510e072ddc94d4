"""Cube → `.hsim` header + sections: spectral adaptation, latent fit, quantization, rate control.

Steps:
1. PCA of the scene (mean + principal spectra): the network models the
   normalised coefficient maps, so any band count works with one model.
2. Fit the latent grids of the whole scene: the meta-learned inner loop from
   zero (learned per-level step sizes); at ``max`` effort longer inner loops
   and a rate–distortion refinement of the latents.
3. Choose the number of components k and the latent quantization step Δ for
   the rate target (bisection on the exact file size), quantize the grids' Haar
   coefficients (:mod:`hsicodec.coding.wavelet`), entropy code them with one Laplace
   scale per (level, channel, subband group).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hsicodec.codec.decoder import (
    CODEC_NAME,
    STEPS_PER_OCTAVE,
    level_rotations,
    reconstruct,
    reconstruct_bands,
    symbol_scales,
    synthesize,
)
from hsicodec.coding import entropy
from hsicodec.coding.spectral import SpectralFit, encode_spectral, fit_pca, matched_exponents
from hsicodec.coding.wavelet import haar_forward, haar_inverse, subband_groups, wavelet_levels
from hsicodec.errors import OptionError
from hsicodec.format.container import encode_hsim
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.rotation import klt_codes, n_angles
from hsicodec.metrics import psnr as psnr_metric

EFFORTS = {"fast": (None, 0), "default": (12, 0), "max": (12, 300)}
K_CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
DEFAULT_BPPPB = 0.05
MAX_ABS_VALUE = 1e150
TRAIN_CROP_PIXELS = 32 * 32  # inner-loop loss weight per pixel, as in meta-training
FIT_ROW_BLOCK = 128


@dataclass
class Analysis:
    """A cube prepared for fitting: float64 values, spectral stage, normalised targets.

    ``mode`` "pca": targets are the scene's normalised principal-component maps.
    ``mode`` "id" (the paper's plain method): targets are the bands themselves,
    scaled to [0, 1] and placed on the model outputs given by ``band_map``.
    """

    values: np.ndarray  # (H, W, C) float64
    pca: SpectralFit | None
    targets: np.ndarray  # (H, W, n_out) float32
    value_range: float
    mode: str = "pca"
    offset: float = 0.0
    scale: float = 1.0
    band_map: np.ndarray | None = None  # (C,) model output of every band ("id" mode)

    @property
    def norm(self) -> float:
        return float(self.pca.total_std) if self.mode == "pca" else self.scale

    @property
    def constant(self) -> bool:
        """No variation worth a latent: the mean spectrum (or the offset) says it all."""
        if self.mode == "pca":
            return self.value_range == 0.0 or self.norm <= 1e-9 * (float(np.abs(self.pca.mean).max()) + 1e-30)
        return self.value_range == 0.0


def effort_steps(effort: str | int, model: CodecModel) -> tuple[int, int]:
    """(inner steps, Adam fine-tuning steps) for an effort name or number (0–100)."""
    if isinstance(effort, str) and effort.isdigit():
        effort = int(effort)
    if isinstance(effort, int) and not isinstance(effort, bool):
        if not 0 <= effort <= 100:
            raise OptionError(f"effort {effort} out of range 0..100")
        return max(model.inner_steps, 12 if effort >= 25 else model.inner_steps), int(effort * 6)
    if effort not in EFFORTS:
        raise OptionError(f"effort must be fast, default, max or 0..100, not {effort!r}")
    inner, adam = EFFORTS[effort]
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


def analyse(cube: np.ndarray, model: CodecModel, band_map=None, wavelengths=None) -> Analysis:
    """Spectral stage and normalised targets of a cube."""
    values = np.asarray(cube, np.float64)
    h, w, c = values.shape
    rng = float(values.max() - values.min())
    if model.spectral == "id":
        bm = resolve_band_map(model, c, band_map, wavelengths)
        off, scl = float(values.min()), (rng if rng > 0 else 1.0)
        y = np.zeros((h * w, model.n_out), np.float32)
        y[:, bm] = (values.reshape(-1, c) - off) / scl
        return Analysis(values, None, y.reshape(h, w, model.n_out), rng, "id", off, scl, bm)
    fit = fit_pca(values.reshape(-1, c), max(model.n_out, MAP_COMPONENTS))  # one PCA for both layers
    y = np.zeros((h * w, model.n_out), np.float32)
    basis = fit.basis[: model.n_out]
    if fit.total_std > 0:
        y[:, : basis.shape[0]] = (values.reshape(-1, c) - fit.mean) @ basis.T / fit.total_std
    return Analysis(values, fit, y.reshape(h, w, model.n_out), rng)


MAP_COMPONENTS = 32  # principal components the coefficient-map layer may code (hsicodec.layers.maps.search)
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8  # the RD refinement's Adam
LATENT_WAVELET = 4  # Haar levels applied to each latent grid before quantization (codec key "wt")
PLAIN_CODING_PIXELS = 64 * 64  # below this many pixels the plain latent coding is tried too
MAX_INNER_STEPS = (24, 48)  # effort max also tries these longer inner loops and keeps the best file


def _level_gradient_scale(model: CodecModel, h: int, w: int) -> list[float]:
    """A whole-image latent (cell 0) covered one training crop: rescale its gradient to that pixel count."""
    crop = int(model.config.get("train_crop", 32))
    return [(crop * crop) / float(h * w) if lv.cell == 0 else 1.0 for lv in model.layout.levels]


def fit_latents(
    model: CodecModel,
    targets: np.ndarray,
    inner_steps: int,
    channel_weight: np.ndarray | None = None,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
    backend: str = "auto",
    start: list | None = None,
) -> list[np.ndarray]:
    """Fit the scene's latent grids: the meta-learned SGD steps from zero latents (or, with
    ``start``, more steps after those that gave ``start``).

    Torch-free: gradients with respect to the per-pixel latents come from
    :func:`hsicodec.layers.network.siren.loss_grad_phi` (native kernel or numpy) and flow back
    to the grids through the interpolation's adjoint. ``backend="torch"`` uses
    the torch twin instead (for cross-checking).
    """
    if backend == "torch":
        if start is not None:
            raise OptionError("the torch twin of the latent fit starts from zero only")
        return fit_latents_torch(model, targets, inner_steps, channel_weight, threads, progress)
    from hsicodec.layers.network import siren
    from hsicodec.layers.network.latents import GridOperator, local_coords

    h, w, n_out = targets.shape
    layout = model.layout
    op = GridOperator(layout, h, w)
    x = local_coords(layout, 0, h, 0, w, h, w)
    t = np.ascontiguousarray(targets.reshape(h * w, n_out))
    cw = np.ones(n_out, np.float32) if channel_weight is None else np.asarray(channel_weight, np.float32)
    cw = cw / TRAIN_CROP_PIXELS
    grids = (
        [np.zeros(shape, np.float32) for shape in op.shapes]
        if start is None
        else [np.array(g, np.float32) for g in start]
    )
    scales = _level_gradient_scale(model, h, w)
    for s in range(inner_steps):
        _, g_phi = siren.loss_grad_phi(model.weights, x, op(grids), t, cw, None, backend=backend, threads=threads)
        grids = [g - lr * sc * d for g, lr, sc, d in zip(grids, model.inner_lrs, scales, op.adjoint(g_phi))]
        if progress:
            progress((s + 1) / inner_steps)
    return [g.astype(np.float32) for g in grids]


def fit_latents_torch(
    model: CodecModel,
    targets: np.ndarray,
    inner_steps: int,
    channel_weight: np.ndarray | None = None,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
) -> list[np.ndarray]:
    """The torch twin of :func:`fit_latents` (same steps, autograd gradients)."""
    import torch

    from hsicodec.layers.network.torchnet import GridSampler, coords_tensor

    if threads > 0:
        torch.set_num_threads(threads)
    h, w, n_out = targets.shape
    layout = model.layout
    net = _torch_net(model)
    tgt = torch.from_numpy(targets)
    cw = torch.ones(n_out) if channel_weight is None else torch.tensor(np.asarray(channel_weight, np.float32))
    weight = cw / TRAIN_CROP_PIXELS
    blocks = []
    for a in range(0, h, FIT_ROW_BLOCK):
        b = min(a + FIT_ROW_BLOCK, h)
        blocks.append(
            (
                GridSampler(layout, h, w, row0=a, rows=b - a, full_height=h, full_width=w),
                coords_tensor(layout, a, b - a, 0, w, h, w)[None],
                tgt[a:b][None],
            )
        )
    grids = [torch.zeros(1, *layout.grid_shape(i, h, w), lv.channels) for i, lv in enumerate(layout.levels)]
    lrs = [torch.from_numpy(np.array(lr)) * sc for lr, sc in zip(model.inner_lrs, _level_gradient_scale(model, h, w))]
    for s in range(inner_steps):
        gs = [g.detach().requires_grad_(True) for g in grids]
        for sampler, co, t in blocks:
            (((net(co, sampler(gs)) - t) ** 2) * weight).sum().backward()
        grids = [g.detach() - lr * g.grad for g, lr in zip(gs, lrs)]
        if progress:
            progress((s + 1) / inner_steps)
    return [g[0].numpy().astype(np.float32) for g in grids]


def _torch_net(model: CodecModel):
    """A torch module computing exactly the model's folded-weight SIREN (ω = 1)."""
    import torch

    from hsicodec.layers.network.torchnet import ModSiren

    wts = model.weights
    net = ModSiren(
        wts.n_in,
        wts.width,
        wts.depth,
        wts.latent_dim,
        wts.n_out,
        w0=1.0,
        w_hidden=1.0,
        shift=wts.shift,
        skip=wts.skip_w is not None,
    )
    with torch.no_grad():
        for lin, a, b in zip(net.hidden, wts.hidden_w, wts.hidden_b):
            lin.weight.copy_(torch.from_numpy(np.array(a)))
            lin.bias.copy_(torch.from_numpy(np.array(b)))
        net.out.weight.copy_(torch.from_numpy(np.array(wts.out_w)))
        net.out.bias.copy_(torch.from_numpy(np.array(wts.out_b)))
        net.meta.weight.copy_(torch.from_numpy(np.array(wts.meta_w)))
        net.meta.bias.copy_(torch.from_numpy(np.array(wts.meta_b)))
        if wts.skip_w is not None:
            net.skip.weight.copy_(torch.from_numpy(np.array(wts.skip_w)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@dataclass
class LatentCoding:
    """How the latent grids are coded: per level, a channel rotation Q (coded = grid @ Q),
    then ``wavelet`` Haar levels; both orthonormal. ``levels`` holds (J, subband groups, Q)."""

    wavelet: int
    rotation_codes: bytes | None
    levels: list

    def params(self) -> dict:
        out: dict = {}
        if self.wavelet:
            out["wt"] = int(self.wavelet)
        if self.rotation_codes is not None:
            out["ct"] = self.rotation_codes
        return out

    def to_coeffs(self, i: int, grid: np.ndarray) -> np.ndarray:
        j, _, rot = self.levels[i]
        c = np.asarray(grid, np.float64)
        if rot is not None:
            c = c @ rot
        return haar_forward(c, j) if j else c

    def to_grid(self, i: int, coeffs: np.ndarray) -> np.ndarray:
        j, _, rot = self.levels[i]
        g = haar_inverse(coeffs, j) if j else np.asarray(coeffs, np.float64)
        return g @ rot.T if rot is not None else g


def latent_coding(
    model: CodecModel, grids: list | None, h: int, w: int, wavelet: int = LATENT_WAVELET, rotate: bool = True
) -> LatentCoding:
    """The coding of a scene's latents: Haar levels per grid and, with ``rotate``, each
    level's KLT channel rotation fitted to ``grids`` (quantized to its angle bytes)."""
    rot_codes = None
    rotations: list = [None] * len(model.layout.levels)
    if rotate and grids:
        rot_codes = b"".join(klt_codes(g.reshape(-1, g.shape[-1])) if n_angles(g.shape[-1]) else b"" for g in grids)
        rotations = level_rotations(model, rot_codes)
    levels = []
    for i in range(len(model.layout.levels)):
        gh, gw = model.layout.grid_shape(i, h, w)
        j = wavelet_levels(gh, gw, wavelet)
        levels.append((j, subband_groups(gh, gw, j), rotations[i]))
    return LatentCoding(wavelet, rot_codes, levels)


def quantize_latents(
    model: CodecModel,
    grids: list,
    q: int,
    h: int,
    w: int,
    offsets: list | None = None,
    coding: LatentCoding | None = None,
) -> tuple[bytes, dict, list]:
    """Quantize level l's coefficients (see :class:`LatentCoding`) with step
    Δ_l = 2^((q + o_l)/8), choose the Laplace scale per (level, channel, subband group)
    that codes it in the fewest bits, entropy code.

    Returns (stream, codec params, dequantized grids).
    """
    offsets = list(offsets) if offsets is not None else [0] * len(grids)
    coding = coding if coding is not None else latent_coding(model, grids, h, w)
    steps = [entropy.step_from_exponent(q + o, STEPS_PER_OCTAVE) for o in offsets]
    qs = [np.round(coding.to_coeffs(i, g) / st).astype(np.int64) for i, (g, st) in enumerate(zip(grids, steps))]
    max_abs = int(max((np.abs(x).max() for x in qs if x.size), default=0))
    if max_abs > entropy.MAX_ABS_LIMIT:
        raise OptionError("quantization step too small for the latent range")
    codes = b"".join(
        entropy.best_scale_codes(x, np.arange(x.shape[-1]) * (j + 1) + groups[..., None], x.shape[-1] * (j + 1))
        for x, (j, groups, _) in zip(qs, coding.levels)
    )
    sym = np.concatenate([x.ravel() for x in qs])
    data = entropy.laplace_encode(sym, symbol_scales(model, codes, h, w, coding.wavelet), max_abs)
    deq = [coding.to_grid(i, x * st).astype(np.float32) for i, (x, st) in enumerate(zip(qs, steps))]
    params = {"q": int(q), "qo": [int(o) for o in offsets], "ma": max_abs, "ls": codes}
    params.update(coding.params())
    return data, params, deq


def _group_mean_abs(v: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-symbol mean |v| over its (subband group, channel): the Laplace scale estimate."""
    c = v.shape[-1]
    ids = (groups[..., None] * c + np.arange(c)).ravel()
    sums = np.bincount(ids, np.abs(v).ravel(), n_groups * c)
    counts = np.maximum(np.bincount(ids, minlength=n_groups * c), 1)
    return (sums / counts)[ids].reshape(v.shape)


def level_step_offsets(
    model: CodecModel, grids: list, targets: np.ndarray, threads: int = 0, backend: str = "auto"
) -> list[int]:
    """Per-level step offsets (1/8 octaves) that equalise the distortion–rate slope across levels.

    For uniform quantization the distortion a level adds is n_l g_l Δ_l² / 12, with
    g_l the mean squared sensitivity of the output to one of its latents; with a
    rate of about −n_l log2 Δ_l the optimum is Δ_l ∝ 1 / sqrt(g_l). g_l is measured
    on this scene by injecting small noise into one level at a time.
    """
    h, w, n_out = targets.shape
    base = synthesize(model, grids, n_out, h, w, (0, 0, h, w), threads=threads, backend=backend)
    rng = np.random.default_rng(0)
    gains = []
    for i, g in enumerate(grids):
        eps = 1e-3
        noisy = list(grids)
        noisy[i] = (g + rng.normal(0.0, eps, g.shape)).astype(np.float32)
        out = synthesize(model, noisy, n_out, h, w, (0, 0, h, w), threads=threads, backend=backend)
        gains.append(max(float(np.sum((out.astype(np.float64) - base) ** 2)) / (g.size * eps * eps), 1e-30))
    ref = gains[0]
    return [int(np.clip(np.round(STEPS_PER_OCTAVE * 0.5 * np.log2(ref / gl)), -64, 64)) for gl in gains]


def _laplace_bits_grad(v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """d bits / dv of the quantized Laplace mass −log2(F(v+½) − F(v−½)) at (noisy) positions v.

    Closed form and stable: outside |v| ≤ ½ the code length is linear in |v|.
    """
    av = np.abs(v)
    a_in = np.exp(-(0.5 + av) / b)
    c_in = np.exp(-(0.5 - np.minimum(av, 0.5)) / b)
    p_in = np.maximum(1.0 - 0.5 * a_in - 0.5 * c_in, 1e-12)
    g_out = np.sign(v) / (b * np.log(2))
    g_in = -np.sign(v) * (0.5 / b) * (a_in - c_in) / (p_in * np.log(2))
    return np.where(av > 0.5, g_out, g_in)


def rd_refine(
    model: CodecModel,
    grids: list,
    targets: np.ndarray,
    channel_weight: np.ndarray,
    q: int,
    offsets: list,
    lam: float,
    steps: int,
    threads: int = 0,
    backend: str = "auto",
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    coding: LatentCoding | None = None,
) -> list[np.ndarray]:
    """Rate–distortion optimisation of the latents: min D + λ·R at fixed steps Δ_l.

    Adam in quantization units v = W(g Q) / Δ_l (``coding``: Q the channel rotation,
    W the Haar transform; both orthonormal, so the gradient maps across the same way). The first 80 % of
    the steps see additive uniform noise (the usual differentiable proxy of
    rounding), the rest hard-rounded latents with a straight-through gradient. R is
    the code length under the per-(level, channel, subband group) Laplace prior the
    entropy coder will use (scales refitted every step); D is the fit's weighted
    squared error.
    """
    from hsicodec.layers.network import siren
    from hsicodec.layers.network.latents import GridOperator, local_coords

    h, w, n_out = targets.shape
    op = GridOperator(model.layout, h, w)
    x = local_coords(model.layout, 0, h, 0, w, h, w)
    t = np.ascontiguousarray(targets.reshape(h * w, n_out))
    cw = np.asarray(channel_weight, np.float32) / TRAIN_CROP_PIXELS
    deltas = [entropy.step_from_exponent(q + o, STEPS_PER_OCTAVE) for o in offsets]
    coding = coding if coding is not None else latent_coding(model, grids, h, w)
    v = [coding.to_coeffs(i, g) / d for i, (g, d) in enumerate(zip(grids, deltas))]
    m = [np.zeros_like(a) for a in v]
    s2 = [np.zeros_like(a) for a in v]
    rng = np.random.default_rng(seed)
    lr = 0.05
    for it in range(steps):
        hard = it >= int(0.8 * steps)
        vt = [np.round(a) if hard else a + rng.uniform(-0.5, 0.5, a.shape) for a in v]
        g_lat = [coding.to_grid(i, a * d).astype(np.float32) for i, (a, d) in enumerate(zip(vt, deltas))]
        _, g_phi = siren.loss_grad_phi(model.weights, x, op(g_lat), t, cw, None, backend=backend, threads=threads)
        d_grads = op.adjoint(g_phi)
        c1, c2 = 1 - ADAM_B1 ** (it + 1), 1 - ADAM_B2 ** (it + 1)
        for i, (j, groups, _) in enumerate(coding.levels):
            b = np.maximum(_group_mean_abs(np.round(v[i]), groups, j + 1), entropy.MIN_SCALE)
            g = coding.to_coeffs(i, d_grads[i]) * deltas[i] + lam * _laplace_bits_grad(vt[i], b)
            m[i] = ADAM_B1 * m[i] + (1 - ADAM_B1) * g
            s2[i] = ADAM_B2 * s2[i] + (1 - ADAM_B2) * g * g
            v[i] = v[i] - lr * (m[i] / c1) / (np.sqrt(s2[i] / c2) + ADAM_EPS)
        if progress:
            progress((it + 1) / steps)
    return [coding.to_grid(i, np.round(a) * d).astype(np.float32) for i, (a, d) in enumerate(zip(v, deltas))]


@dataclass
class Candidate:
    """One fully built file for a (k, Δ) choice."""

    data: bytes
    k: int
    step: int  # latent step exponent q (Δ = 2^(q/8))
    psnr: float = float("nan")


STEP_GRID = list(range(6 * STEPS_PER_OCTAVE, -14 * STEPS_PER_OCTAVE - 1, -1))  # step exponents, coarse → fine


class RateSearch:
    """Chooses (k, Δ) for a rate or quality target from one latent fit.

    Latent bytes depend only on Δ and spectral bytes only on k, so both are
    tabulated; the distortion of every k at a given Δ comes from one network
    evaluation, in coefficient space (the basis is orthonormal, so the band-space
    error is the coefficient error plus the energy of the dropped components).
    Only the chosen candidate is decoded and measured exactly.
    """

    def __init__(
        self,
        model: CodecModel,
        an: Analysis,
        grids: list,
        base_header: dict,
        threads: int = 0,
        backend: str = "auto",
        offsets: list | None = None,
        extra_sections: tuple = (),
        coding: LatentCoding | None = None,
        valid: np.ndarray | None = None,
    ):
        self.model, self.an, self.grids, self.base, self.threads = model, an, grids, base_header, threads
        self.extra_sections = list(extra_sections)
        self.backend = backend
        self.h, self.w, self.c = an.values.shape
        self._spec_cache: dict = {}
        self._coef_cache: dict = {}
        self._lat_cache: dict = {}
        self.valid = valid
        self.coding = coding if coding is not None else latent_coding(model, grids, self.h, self.w)
        self.offsets = (
            offsets
            if offsets is not None
            else (level_step_offsets(model, grids, an.targets, threads, backend) if grids else None)
        )

    # -- side information and streams
    def spectral(self, k: int):
        """Spectral side information for k components, precision matched to the PCA residual."""
        if self.an.mode == "id":
            sp = {"m": "id", "off": self.an.offset}
            if not np.array_equal(self.an.band_map, np.arange(self.c)):
                sp["bm"] = [int(v) for v in self.an.band_map]
            return b"", sp, None, None
        if k not in self._spec_cache:
            fit = self.an.pca
            resid = fit.dropped_variance(k) / self.c
            me, be = matched_exponents(fit, k, max(resid, (fit.total_std**2 / self.c) * 1e-5, 1e-12))
            self._spec_cache[k] = encode_spectral(fit.mean, fit.basis[:k], me, be)
        return self._spec_cache[k]

    def latents(self, step: int):
        if step not in self._lat_cache:
            self._lat_cache[step] = quantize_latents(
                self.model, self.grids, step, self.h, self.w, self.offsets, self.coding
            )
        return self._lat_cache[step]

    def build(self, k: int, step: int) -> tuple[bytes, list]:
        sdata, sparams, _, _ = self.spectral(k)
        codec = {"id": CODEC_NAME, "k": k, "norm": self.an.norm, "sp": sparams}
        sections = [("s", sdata)] if self.an.mode == "pca" else []
        deq = []
        if k:
            ldata, lparams, deq = self.latents(step)
            codec.update(lparams)
            sections.append(("l", ldata))
        else:
            codec.update({"q": 0, "qo": [0] * len(self.model.layout.levels), "ma": 0, "ls": b""})
        header = dict(self.base)
        header["codec"] = codec
        return encode_hsim(header, sections + self.extra_sections), deq

    # -- distortion
    def coef_sq_errors(self, step: int) -> np.ndarray:
        """Mean squared error of every normalised coefficient channel at step Δ (all n_out)."""
        if step not in self._coef_cache:
            try:
                deq = self.latents(step)[2]
            except OptionError:
                return np.full(self.model.n_out, np.inf)
            n = self.model.n_out
            pred = synthesize(
                self.model, deq, n, self.h, self.w, (0, 0, self.h, self.w), threads=self.threads, backend=self.backend
            )
            err = (pred.astype(np.float64) - self.an.targets) ** 2
            if self.valid is None:
                self._coef_cache[step] = np.mean(err, axis=(0, 1))
            else:  # pixels weighted by their share of valid values
                wt = self.valid.mean(axis=2)
                self._coef_cache[step] = np.tensordot(wt, err, axes=([0, 1], [0, 1])) / max(float(wt.sum()), 1e-30)
        return self._coef_cache[step]

    def predicted_psnr(self, k: int, step: int) -> float:
        if self.an.mode == "id" and k == 0:  # constant cube: the offset is exact
            return float("inf")
        if self.an.mode == "id":
            mse = self.an.scale**2 * float(np.mean(self.coef_sq_errors(step)[self.an.band_map]))
        else:
            fit = self.an.pca
            mse = fit.total_std**2 * float(np.sum(self.coef_sq_errors(step)[:k])) if k else 0.0
            mse += fit.dropped_variance(k)
            mse /= self.c
        if mse <= 0:
            return float("inf")
        return 10 * np.log10(max(self.an.value_range, 1e-30) ** 2 / mse)

    def measure(self, k: int, step: int) -> Candidate:
        data, deq = self.build(k, step)
        _, _, mean, basis = self.spectral(k)
        coeffs = synthesize(
            self.model, deq, k, self.h, self.w, (0, 0, self.h, self.w), threads=self.threads, backend=self.backend
        )
        if self.an.mode == "id" and k == 0:
            rec = np.full(self.an.values.shape, self.an.offset)
        elif self.an.mode == "id":
            rec = reconstruct_bands(coeffs, self.an.scale, self.an.offset, self.an.band_map, (0, self.c))
        else:
            rec = reconstruct(coeffs, self.an.pca.total_std, mean, basis, (0, self.c))
        if self.valid is not None:  # quality of the values the file keeps, not of the filled-in ones
            return Candidate(data, k, step, psnr_metric(self.an.values[self.valid], rec[self.valid]))
        return Candidate(data, k, step, psnr_metric(self.an.values, rec))

    # -- search
    def size(self, k: int, step: int) -> float:
        try:
            return len(self.build(k, step)[0])
        except OptionError:  # step too fine for the latent range: treat as too large
            return float("inf")

    def finest_step(self, k: int, budget: int) -> int | None:
        """Finest grid step whose file fits the budget, refined by bisection on exact sizes."""
        if not k:
            return 0 if self.size(0, 0) <= budget else None
        if self.size(k, STEP_GRID[0]) > budget:
            return None
        lo_i, hi_i = 0, len(STEP_GRID) - 1  # STEP_GRID[lo_i] fits
        if self.size(k, STEP_GRID[hi_i]) <= budget:
            return STEP_GRID[hi_i]
        while hi_i - lo_i > 1:
            mid = (lo_i + hi_i) // 2
            if self.size(k, STEP_GRID[mid]) <= budget:
                lo_i = mid
            else:
                hi_i = mid
        return STEP_GRID[lo_i]

    def for_bpppb(self, target: float) -> Candidate:
        """Best predicted quality at or under the target; among (k, Δ) choices that land within
        10 % of it when any does (so the rate asked for is the rate delivered)."""
        budget = int(np.floor(target * self.h * self.w * self.c / 8.0))
        scored = []
        for k in self.k_candidates():
            step = self.finest_step(k, budget)
            if step is not None:
                scored.append((self.predicted_psnr(k, step), k, step, self.size(k, step)))
        if not scored:
            smallest = min(self.size(k, STEP_GRID[0]) for k in self.k_candidates())
            raise OptionError(
                f"--bpppb {target} is below the smallest file this cube allows "
                f"({8 * smallest / (self.h * self.w * self.c):.5f} bpppb)"
            )
        close = [s for s in scored if s[3] >= 0.9 * budget]
        _, k, step, _ = max(close or scored)
        return self.measure(k, step)

    def for_psnr(self, target: float) -> Candidate:
        """Smallest file predicted to reach the target; the prediction is checked by a real
        decode, refining Δ (then trying the next smallest k) until it holds."""
        feasible = []
        best_seen = -np.inf
        for k in self.k_candidates():
            fine = STEP_GRID[-1]
            best_seen = max(best_seen, self.predicted_psnr(k, fine))
            if self.predicted_psnr(k, fine) < target:
                continue
            lo_i, hi_i = 0, len(STEP_GRID) - 1  # coarsest index that may reach the target
            if self.predicted_psnr(k, STEP_GRID[0]) >= target:
                hi_i = 0
            while hi_i - lo_i > 1:
                mid = (lo_i + hi_i) // 2
                if self.predicted_psnr(k, STEP_GRID[mid]) >= target:
                    hi_i = mid
                else:
                    lo_i = mid
            feasible.append((self.size(k, STEP_GRID[hi_i]), k, hi_i))
        if not feasible:
            raise OptionError(
                f"--psnr {target} dB is above what this model reaches on this cube "
                f"(about {best_seen:.2f} dB); use a higher --effort or a --bpppb target"
            )
        reached = -np.inf
        for _, k, i in sorted(feasible):
            cand = self.measure(k, STEP_GRID[i])
            tries = 0
            while cand.psnr < target and i + 1 < len(STEP_GRID) and tries < 8:  # the prediction is close
                i += 1
                tries += 1
                cand = self.measure(k, STEP_GRID[i])
            if cand.psnr >= target:
                return cand
            reached = max(reached, cand.psnr)
        # e.g. the side information's precision, or masked values, which the prediction leaves out
        raise OptionError(
            f"--psnr {target} dB is above what this model reaches on this cube "
            f"(at best {reached:.2f} dB); use a --bpppb target"
        )

    def slope(self, k: int, q: int) -> float:
        """−dD/dR at (k, q) in fit units per bit (for the RD refinement's λ)."""
        n_fit = self.h * self.w / TRAIN_CROP_PIXELS
        cw = self.channel_weight(k)

        def dist(qq):
            return n_fit * float(np.sum(self.coef_sq_errors(qq) * cw))

        qa, qb = q - 2, q + 2
        dr = 8.0 * (self.size(k, qa) - self.size(k, qb))
        dd = dist(qb) - dist(qa)
        return max(dd / dr, 0.0) if np.isfinite(dr) and dr > 0 else 0.0

    def channel_weight(self, k: int) -> np.ndarray:
        cw = np.zeros(self.model.n_out)
        if self.an.mode == "id":
            cw[self.an.band_map] = 1.0
        else:
            cw[:k] = 1.0
        return cw

    def k_candidates(self) -> list:
        if self.an.constant:
            return [0]
        if self.an.mode == "id":
            return [int(self.an.band_map.max()) + 1]
        kmax = min(self.model.n_out, self.c, len(self.an.pca.comp_std))
        return [k for k in K_CANDIDATES if k <= kmax] or [kmax]


def _better(a: Candidate, b: Candidate, for_rate: bool) -> bool:
    """For a rate target the higher PSNR wins; for a quality target the smaller file."""
    return a.psnr > b.psnr if for_rate else len(a.data) < len(b.data)


LATENT_CODINGS = {"haar+klt": (LATENT_WAVELET, True), "haar": (LATENT_WAVELET, False), "plain": (0, False)}
MAP_CODING = "maps"  # the coefficient-map layer alone (:mod:`hsicodec.layers.maps.coding`), no network latents
CODINGS = tuple(LATENT_CODINGS) + (MAP_CODING,)
#: what ``compress --layer`` offers: the network's latents only (the paper's method and its
#: extensions), the coefficient-map layer only, or (None) the better of the two per file
LAYERS = {"auto": None, "network": ("haar+klt", "plain"), "maps": (MAP_CODING,)}
MAP_DEADZONES = (0.4, 0.5)  # map-layer rounding thresholds: the first at default effort, both at max (with RDOQ
# the threshold matters little: 0.35–0.5 were within 0.02 dB on Jasper Ridge and Pavia Centre)


def _map_search(
    model: CodecModel,
    an: Analysis,
    header: dict,
    extra_sections: tuple,
    valid,
    bpppb,
    psnr,
    thorough: bool,
    required: bool,
) -> Candidate | None:
    """Best coefficient-map-layer file for the target (None if it cannot meet it, unless ``required``)."""
    from hsicodec.layers.maps.search import SPECTRAL_BETAS, MapSearch  # noqa: PLC0415 - mapsearch builds on this module

    best = None
    deadzones = MAP_DEADZONES if thorough else MAP_DEADZONES[:1]
    scene = MapSearch(model, an, header, extra_sections, valid, betas=SPECTRAL_BETAS if thorough else ())
    for dz in deadzones:
        s = scene.with_deadzone(dz)
        try:
            cand = s.for_bpppb(bpppb) if bpppb is not None else s.for_psnr(psnr)
        except OptionError:
            if required and best is None and dz == deadzones[-1]:
                raise
            continue
        if best is None or _better(cand, best, bpppb is not None):
            best = cand
    return best


def _search(
    model: CodecModel,
    an: Analysis,
    grids: list,
    header: dict,
    threads: int,
    backend: str,
    extra_sections: tuple,
    bpppb: float | None,
    psnr: float | None,
    valid: np.ndarray | None = None,
    names: tuple | None = None,
) -> tuple[Candidate, RateSearch]:
    """Best file for the target over the latent codings (:data:`LATENT_CODINGS`): by default
    wavelet + rotation, and for small images also plain symbols (which win where the side
    information of the others outweighs their saving)."""
    best = None
    h, w = an.values.shape[:2]
    if names is None:
        names = ("haar+klt", "plain") if h * w < PLAIN_CODING_PIXELS else ("haar+klt",)
    codings = [latent_coding(model, grids, h, w, *LATENT_CODINGS[n]) for n in names]
    offsets = None  # the per-level steps do not depend on the coding: measured once
    for coding in codings:
        s = RateSearch(
            model,
            an,
            grids,
            header,
            threads,
            backend,
            offsets=offsets,
            extra_sections=extra_sections,
            coding=coding,
            valid=valid,
        )
        offsets = s.offsets
        try:
            cand = s.for_bpppb(bpppb) if bpppb is not None else s.for_psnr(psnr)
        except OptionError:
            if best is None and coding is codings[-1]:
                raise
            continue
        if best is None or _better(cand, best[0], bpppb is not None):
            best = (cand, s)
    return best


def encode(
    cube: np.ndarray,
    model: CodecModel,
    *,
    bpppb: float | None = None,
    psnr: float | None = None,
    effort: str | int = "default",
    base_header: dict | None = None,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
    backend: str = "auto",
    band_map=None,
    wavelengths=None,
    extra_sections: tuple = (),
    valid: np.ndarray | None = None,
    latent_codings: tuple | None = None,
) -> tuple[bytes, dict]:
    """Encode a (H, W, C) cube; returns the `.hsim` bytes and encoding statistics.

    ``latent_codings`` (names of :data:`LATENT_CODINGS`) restricts how the latents may be
    coded, for ablations; by default the encoder chooses.

    ``valid`` (bool, the cube's shape): the values the quality is measured on, when
    some were masked and filled in before encoding (the file's mask restores them).
    """
    if bpppb is not None and psnr is not None:
        raise OptionError("give either a bpppb or a psnr target, not both")
    if bpppb is not None and not (np.isfinite(bpppb) and bpppb > 0):
        raise OptionError(f"--bpppb must be a positive number, not {bpppb}")
    if psnr is not None and not (np.isfinite(psnr) and psnr > 0):
        raise OptionError(f"--psnr must be a positive number of dB, not {psnr}")
    if bpppb is None and psnr is None:
        bpppb = DEFAULT_BPPPB
    cube = np.asarray(cube)
    if cube.ndim != 3 or min(cube.shape) < 1:
        raise OptionError(f"expected a (rows, cols, bands) cube, got shape {cube.shape}")
    if cube.dtype.kind == "f" and not np.all(np.isfinite(cube)):
        raise OptionError("the cube holds NaN or infinite values; mask them (nodata) before compressing")
    if cube.size and float(np.max(np.abs(cube.astype(np.float64)))) > MAX_ABS_VALUE:
        raise OptionError(f"values beyond ±{MAX_ABS_VALUE:g} cannot be coded (their squared errors overflow)")
    t0 = time.perf_counter()
    inner_steps, adam_steps = effort_steps(effort, model)
    an = analyse(cube, model, band_map, wavelengths)
    cw = None
    if an.mode == "id":
        cw = np.zeros(model.n_out, np.float32)
        cw[an.band_map] = 1.0
    if latent_codings is not None and (not latent_codings or not set(latent_codings) <= set(CODINGS)):
        raise OptionError(f"latent codings must be among {', '.join(CODINGS)}")
    use_maps = an.mode == "pca" and not an.constant and (latent_codings is None or MAP_CODING in latent_codings)
    grid_codings = None if latent_codings is None else tuple(n for n in latent_codings if n != MAP_CODING)
    sbackend = "numpy" if backend == "torch" else backend
    best = search = None
    layer, maps_first = "grid", False
    if use_maps and latent_codings is None and not adam_steps:
        # below effort max the map layer goes first and alone: the network's latents lost to it by 3–5 dB on
        # every validation scene, so fitting them would only cost time; they remain the fallback
        try:
            best = _map_search(model, an, base_header or {}, extra_sections, valid, bpppb, psnr, False, True)
            layer, grid_codings, maps_first = MAP_CODING, (), True
        except OptionError:
            use_maps = False
    skip_grids = grid_codings == ()
    t_fit0 = time.perf_counter()
    grids = (
        fit_latents(
            model,
            an.targets,
            inner_steps,
            cw,
            threads=threads,
            progress=(lambda f: progress(0.2 * f)) if progress else None,
            backend=backend,
        )
        if not an.constant and not skip_grids
        else []
    )
    t_fit = time.perf_counter() - t_fit0
    if grid_codings != ():
        best, search = _search(
            model, an, grids, base_header or {}, threads, sbackend, extra_sections, bpppb, psnr, valid, grid_codings
        )
    if use_maps and layer != MAP_CODING:
        cand = _map_search(
            model, an, base_header or {}, extra_sections, valid, bpppb, psnr, adam_steps > 0, required=best is None
        )
        if cand is not None and (best is None or _better(cand, best, bpppb is not None)):
            best, search, adam_steps, layer = cand, None, 0, MAP_CODING
    if best is None:
        raise OptionError(
            "the coefficient-map layer needs a model with a PCA spectral stage and a non-constant cube"
            if grid_codings == ()
            else "no coding could meet the target"
        )
    if adam_steps and grids and best.k:
        # longer inner loops, then rate–distortion refinement of the best fit at its operating point
        g, done = grids, inner_steps
        for n in (n for n in MAX_INNER_STEPS if n > inner_steps):
            g, done = fit_latents(model, an.targets, n - done, cw, threads=threads, backend=sbackend, start=g), n
            cand, s_n = _search(
                model, an, g, base_header or {}, threads, sbackend, extra_sections, bpppb, psnr, valid, grid_codings
            )
            if cand.k and _better(cand, best, bpppb is not None):
                best, grids, search, inner_steps = cand, g, s_n, n
        if progress:
            progress(0.3)
        lam = search.slope(best.k, best.step)
        refined = rd_refine(
            model,
            grids,
            an.targets,
            search.channel_weight(best.k),
            best.step,
            search.offsets,
            lam,
            adam_steps,
            threads=threads,
            backend=sbackend,
            progress=(lambda f: progress(0.3 + 0.6 * f)) if progress else None,
            coding=search.coding,
        )
        search2 = RateSearch(
            model,
            an,
            refined,
            base_header or {},
            threads,
            sbackend,
            search.offsets,
            extra_sections,
            search.coding,
            valid,
        )
        cand = search2.for_bpppb(bpppb) if bpppb is not None else search2.for_psnr(psnr)
        if _better(cand, best, bpppb is not None):
            best = cand
    if progress:
        progress(1.0)
    stats = {
        "k": best.k,
        "step": entropy.step_from_exponent(best.step, STEPS_PER_OCTAVE),
        "q": best.step,
        "psnr": best.psnr,
        "bytes": len(best.data),
        "bpppb": 8.0 * len(best.data) / cube.size,
        "fit_seconds": t_fit,
        "seconds": time.perf_counter() - t0,
        "inner_steps": inner_steps,
        "adam_steps": adam_steps,
        "layer": layer,
        "maps_first": maps_first,
    }
    return best.data, stats

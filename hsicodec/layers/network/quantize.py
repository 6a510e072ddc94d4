"""The network layer's latent coding: channel rotation, Haar levels, quantization, entropy coding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import haar_forward, haar_inverse, subband_groups, wavelet_levels
from hsicodec.errors import OptionError
from hsicodec.layers.network.decode import synthesize
from hsicodec.layers.network.layout import STEPS_PER_OCTAVE, level_rotations, symbol_scales
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.rotation import klt_codes, n_angles

LATENT_WAVELET = 4  # Haar levels applied to each latent grid before quantization (codec key "wt")


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

"""A base model as the codec uses it: SIREN weights, latent layout and inner-loop settings.

Built from a :class:`hsicodec.models.modelfile.ModelFile` (numpy only, no torch), with
every shape checked so a malformed model is a clear :class:`ModelFormatError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.errors import ModelFormatError
from hsicodec.layers.network.latents import LatentLayout
from hsicodec.layers.network.siren import SirenWeights
from hsicodec.models.modelfile import ModelFile

SUPPORTED_ARCHS = ("modsiren-grid",)


@dataclass(frozen=True)
class CodecModel:
    """Everything the encoder and decoder need from a base-model file."""

    sha256: str
    alias: str | None
    weights: SirenWeights
    layout: LatentLayout
    inner_lrs: tuple  # per level, (channels,) float32
    inner_steps: int
    config: dict
    card: dict
    spectral: str = "pca"  # "pca" (per-scene adaptation) or "id" (outputs are bands, the paper's plain method)

    @property
    def n_out(self) -> int:
        return self.weights.n_out

    def truncated(self, k: int) -> SirenWeights:
        """Weights computing only the first k outputs (the components a file uses)."""
        w = self.weights
        skip = None if w.skip_w is None else np.ascontiguousarray(w.skip_w[:k])
        return SirenWeights(
            w.hidden_w,
            w.hidden_b,
            np.ascontiguousarray(w.out_w[:k]),
            np.ascontiguousarray(w.out_b[:k]),
            w.meta_w,
            w.meta_b,
            w.shift,
            skip,
        )


def _get(arrays: dict, name: str) -> np.ndarray:
    if name not in arrays:
        raise ModelFormatError(f"model has no array '{name}'")
    a = arrays[name]
    if a.dtype != np.float32:
        raise ModelFormatError(f"model array '{name}' is {a.dtype}, expected float32")
    ndim = 2 if name.endswith(".weight") else 1  # weights are matrices; biases and step sizes vectors
    if a.ndim != ndim:
        raise ModelFormatError(f"model array '{name}' has shape {a.shape}, expected {ndim} dimension(s)")
    return np.ascontiguousarray(a)


def codec_model(mf: ModelFile) -> CodecModel:
    """Interpret a model file; raises ModelFormatError when it is not a usable base model."""
    cfg = mf.config
    arch = cfg.get("arch")
    if arch not in SUPPORTED_ARCHS:
        raise ModelFormatError(f"model {mf.sha256[:12]}: unsupported architecture {arch!r}")
    try:
        depth = int(cfg["depth"])
        layout = LatentLayout.from_config(cfg["latent"])
        inner_steps = int(cfg.get("inner_steps", 3))
        shift = str(cfg.get("shift", "inside"))
        spectral = str(cfg.get("spectral", "pca"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"model {mf.sha256[:12]}: bad config ({exc})") from exc
    if spectral not in ("pca", "id"):
        raise ModelFormatError(f"model {mf.sha256[:12]}: unknown spectral stage {spectral!r}")
    if not 1 <= depth <= 64 or not 0 <= inner_steps <= 1000:
        raise ModelFormatError(f"model {mf.sha256[:12]}: depth/inner_steps out of range")
    a = mf.arrays
    w = SirenWeights(
        tuple(_get(a, f"hidden.{i}.weight") for i in range(depth)),
        tuple(_get(a, f"hidden.{i}.bias") for i in range(depth)),
        _get(a, "out.weight"),
        _get(a, "out.bias"),
        _get(a, "meta.weight"),
        _get(a, "meta.bias"),
        shift,
        _get(a, "skip.weight") if "skip.weight" in a else None,
    )
    try:
        w.validate()
    except ValueError as exc:
        raise ModelFormatError(f"model {mf.sha256[:12]}: {exc}") from exc
    if w.n_in != 2 or w.latent_dim != layout.latent_dim:
        raise ModelFormatError(f"model {mf.sha256[:12]}: network input does not match its latent layout")
    lrs = tuple(_get(a, f"inner.lr.{i}") for i in range(len(layout.levels)))
    for lv, lr in zip(layout.levels, lrs):
        if lr.shape != (lv.channels,):
            raise ModelFormatError(f"model {mf.sha256[:12]}: inner-loop step sizes do not match the layout")
    return CodecModel(mf.sha256, mf.alias, w, layout, lrs, inner_steps, dict(cfg), dict(mf.card), spectral)

"""The layer protocol: what every coding layer offers the codec, and the objects that cross it.

A coding layer turns a prepared scene (:class:`Scene`: the spectral stage, the normalised
targets, the mask) into a whole `.hsim` file for a rate or quality :class:`Target`
(:class:`Encoded`: its header keys, its sections and the distortion measured on a real
reconstruction), and turns its sections back into normalised coefficient maps or band
values for a window (:class:`Decoded`). The codec (:mod:`hsicodec.codec`) prepares the
scene, asks the layers for files and keeps the best one (:func:`hsicodec.codec.encode.best_of`);
it never looks inside a layer. :mod:`hsicodec.layers.registry` lists the layers.

Layers import their encoders lazily (:meth:`Layer.encoder`), so the decoding path never
loads encoder code or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import numpy as np

from hsicodec.errors import OptionError
from hsicodec.format.container import decode_hsim, encode_hsim

if TYPE_CHECKING:  # the codec's scene analysis; only its attributes are used here
    from hsicodec.coding.spectral import Analysis
    from hsicodec.layers.network.model import CodecModel

Sections = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Target:
    """A rate target (bpppb: the whole file at or under it), a quality target (PSNR in dB: at least it) or an
    error bound (max_error: every value within it, in the cube's units; 0 = lossless)."""

    bpppb: float | None = None
    psnr: float | None = None
    max_error: float | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.bpppb, self.psnr, self.max_error)) != 1:
            raise OptionError("give one target: a bpppb, a psnr or a max error")

    @property
    def for_rate(self) -> bool:
        return self.bpppb is not None

    def budget(self, n_values: int) -> int:
        """Bytes a file of ``n_values`` cube values may take under the rate target."""
        assert self.bpppb is not None
        return int(np.floor(self.bpppb * n_values / 8.0))

    def better(self, a: Encoded, b: Encoded) -> bool:
        """For a rate target the higher PSNR wins; for a quality target or an error bound the smaller file
        (ties: ``b``)."""
        return a.psnr > b.psnr if self.for_rate else len(a.data) < len(b.data)

    def met(self, e: Encoded, n_values: int) -> bool:
        """Whether a file meets a rate or quality target (an error bound is met by construction)."""
        return len(e.data) <= self.budget(n_values) if self.for_rate else e.psnr >= (self.psnr or 0.0)


def one_target(
    bpppb: float | None, psnr: float | None, max_error: float | None, lossless: bool = False
) -> tuple[float | None, float | None, float | None]:
    """The caller's targets with ``lossless`` as a max error of 0; OptionError when more than one is given.
    (None for all three: the encoder's default rate applies.)"""
    if lossless:
        if max_error not in (None, 0):
            raise OptionError("lossless is max_error 0: give one of them")
        max_error = 0.0
    if sum(v is not None for v in (bpppb, psnr, max_error)) > 1:
        raise OptionError("give one target: --bpppb, --psnr or --max-error (--lossless), not several")
    return bpppb, psnr, max_error


@dataclass
class Encoded:
    """One layer's complete file for a target: the bytes, the operating point and the measured PSNR.

    ``header`` and ``sections`` read back what the file holds (the layer's header keys are
    ``header["codec"]``)."""

    data: bytes
    k: int  # principal components (or model outputs) the layer codes
    step: int  # the layer's step exponent
    psnr: float = float("nan")  # measured on the decoded file's reconstruction (valid values only)
    layer: str = ""
    stats: dict = field(default_factory=dict)  # the layer's own figures (e.g. inner steps)

    @property
    def header(self) -> dict:
        return dict(decode_hsim(self.data).header)

    @property
    def sections(self) -> Sections:
        return list(decode_hsim(self.data).sections.items())


@dataclass
class Scene:
    """A cube prepared for the layers, and what every file of it carries.

    ``analysis``: values (float64), spectral stage (PCA fit or the plain mode's band map),
    normalised targets. ``valid``: the values the quality is measured on (None: all).
    ``base_header``: shape, dtype, model, mask, geo, tags. ``extra_sections``: sections every
    file carries (the mask). ``inner_steps`` / ``adam_steps``: the effort. ``options``: per
    layer name, the options the caller gave that layer (e.g. the network's latent codings)."""

    analysis: Analysis
    model: CodecModel | None
    base_header: dict
    extra_sections: tuple = ()
    valid: np.ndarray | None = None
    inner_steps: int = 0
    adam_steps: int = 0
    threads: int = 0
    backend: str = "auto"
    progress: Callable[[float], None] | None = None
    options: dict = field(default_factory=dict)

    @property
    def thorough(self) -> bool:
        """Effort max: every layer is encoded and refined, not only the cheapest that meets the target."""
        return self.adam_steps > 0

    @property
    def shape(self) -> tuple[int, int, int]:
        h, w, c = self.analysis.values.shape
        return int(h), int(w), int(c)

    @property
    def n_values(self) -> int:
        return int(self.analysis.values.size)

    def file(self, codec: dict, sections: Sections, *, model: bool = True, extra: bool = True) -> bytes:
        """A whole `.hsim` file of this scene with the header's ``codec`` map and the layer's sections
        (then the mask). ``model`` False: the file names no base model (a layer that needs none)."""
        header = dict(self.base_header) if model else {k: v for k, v in self.base_header.items() if k != "model"}
        header["codec"] = codec
        return encode_hsim(header, list(sections) + (list(self.extra_sections) if extra else []))


@runtime_checkable
class LayerEncoder(Protocol):
    """One scene's encoder for a layer (it may keep fits between calls)."""

    def encode(self, target: Target) -> Encoded:
        """The layer's best file for the target; OptionError when the layer cannot meet it."""
        ...

    def improve(self, target: Target, best: Encoded) -> Encoded | None:
        """At effort max, more work on the layer's file when it is the best so far (None: nothing to add)."""
        ...

    def estimate(self, target: Target) -> float | None:
        """A cheap prediction of the layer's file for the target (PSNR for a rate target, bytes for the
        others), or None when the layer makes none: below effort max the codec codes with a layer after
        the first that met the target only when its prediction beats that file."""
        ...


@dataclass
class DecodeContext:
    """What a layer's decoder gets besides its own header keys: the file, the model, the run settings.

    ``components``: coefficient channels the codec reconstructs (the most any layer of the
    file uses, or what the band map needs)."""

    header: dict
    codec: dict  # the header's codec map (compact form already unpacked)
    shape: tuple[int, int, int]
    read_section: Callable[[str], bytes]
    model: CodecModel | None
    components: int = 0
    bands: tuple[int, int] = (0, 0)  # the band range [a, b) being decoded
    backend: str = "auto"
    threads: int = 0
    progress: Callable[[float], None] | None = None
    reduce: int = 0  # reduced-resolution level n (hsicodec.coding.reduce): layers with ``reduces`` honour it
    shared: Any = None  # the shared spectral stage (hsicodec.coding.shared.SharedSpectral) a file may name
    # what a layer decoded of the whole file, kept for the next window of the same file (a tile decoded in row
    # strips decodes its maps once); None: nothing kept
    memo: dict | None = None


@dataclass
class Decoded:
    """A layer's part of a window: normalised coefficients (h, w, k), added to the other layers' before the
    spectral stage, and/or band values (h, w, bands) in original units, added after it (a residual; float64,
    or an integer array of exact whole values)."""

    coeffs: np.ndarray | None = None
    values: np.ndarray | None = None


@runtime_checkable
class Layer(Protocol):
    """A coding layer. ``keys``: the header ``codec`` keys it owns (its sections are its own business);
    ``needs_model``: whether its files name a base model; ``cost``: relative encode time (below effort
    max the codec tries the cheapest layer first and keeps the first file that meets the target).
    Optional ``reduces``: True when ``decode`` gives the reduced part itself for ``ctx.reduce`` > 0 (the
    codec asks for it only when every layer of the file does; otherwise it decodes every layer with
    ``ctx.reduce`` 0 and takes block means of each part, :mod:`hsicodec.coding.reduce`)."""

    name: str
    keys: frozenset
    needs_model: bool
    cost: float
    requires: str  # what ``applicable`` asks of a scene, for the error when no layer can code it
    alone_options: Any  # the options the layer takes when a caller forces it alone (None: its defaults)
    output: str  # "coefficients" (added before the spectral stage) or "values" (band values, no spectral stage)
    bounds_error: bool  # whether it can keep every value within a max-error target

    def applicable(self, scene: Scene) -> bool:
        """Whether this layer can code the scene at all (e.g. it needs a PCA spectral stage)."""
        ...

    def encoder(self, scene: Scene) -> LayerEncoder:
        """An encoder for the scene (imported lazily: decoding never loads encoder code)."""
        ...

    def parse(self, codec: dict, header: dict, model: CodecModel | None) -> Any:
        """The layer's validated parameters from the header's codec map, or None when the file does not use
        the layer; HsimHeaderError names a bad key."""
        ...

    def components(self, params: Any) -> int:
        """Coefficient channels the layer's parameters decode to."""
        ...

    def decode_bytes(self, params: Any, ctx: DecodeContext) -> int:
        """Bytes the layer's decoder allocates beyond the window's coefficients, over-estimated (the codec
        refuses a decode whose estimate passes ``Limits.max_decode_bytes``)."""
        ...

    def describe(self, params: Any) -> dict:
        """The layer's parameters in words and plain numbers (for ``hsicodec info``)."""
        ...

    def decode(self, params: Any, ctx: DecodeContext, window: tuple) -> Decoded:
        """The layer's part of the window (row, col, height, width) and band range ``ctx.bands``."""
        ...


def search_step(build: Callable[[int], Encoded], target: Target, n_values: int, coarse: int, fine: int) -> Encoded:
    """Rate control for a layer with one quality knob: the step exponent q in [fine, coarse], files
    growing and quality rising as q falls. For a rate target the finest q whose file fits; for a
    quality target the coarsest q that reaches it (bisection on real files). OptionError when even
    the extreme step misses the target."""
    if target.for_rate:
        if not target.met(build(coarse), n_values):
            raise OptionError(f"--bpppb {target.bpppb} is below the smallest file this layer writes")
        lo, hi = fine, coarse  # hi meets the target
        if target.met(build(lo), n_values):
            return build(lo)
    else:
        if not target.met(build(fine), n_values):
            raise OptionError(f"--psnr {target.psnr} dB is above what this layer reaches on this cube")
        lo, hi = coarse, fine  # hi meets the target, lo may too
        if target.met(build(lo), n_values):
            return build(lo)
    while abs(hi - lo) > 1:
        mid = (lo + hi) // 2
        if target.met(build(mid), n_values):
            hi = mid
        else:
            lo = mid
    return build(hi)


def psnr_of(values: np.ndarray, rec: np.ndarray, valid: np.ndarray | None) -> float:
    """PSNR of a reconstruction over the valid values (the codec's metric, :func:`hsicodec.metrics.psnr`)."""
    from hsicodec.metrics import psnr

    if valid is not None:
        return psnr(values[valid], rec[valid])
    return psnr(values, rec)


__all__ = [
    "Target",
    "one_target",
    "Encoded",
    "Scene",
    "LayerEncoder",
    "Layer",
    "DecodeContext",
    "Decoded",
    "search_step",
    "psnr_of",
    "Sections",
]

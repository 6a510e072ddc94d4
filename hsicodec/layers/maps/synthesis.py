"""The coefficient-map layer's optional nonlinear spectral synthesis: a shared network over the decoded maps.

Header key ``codec.ns`` (bytes; spec/hsim.md, "coefficient-map layer: nonlinear synthesis"). A shared,
meta-learned, shift-modulated sine network g (:class:`SynthesisModel`, named in the header by the first 8
bytes of its sha256; bundled: ``hsi-synth-v1``, trained on the training scenes by
``tools/train_synthesis.py``) turns each pixel's first ``k_in`` decoded maps into D features; the file
codes the network's S shifts and a readout C ((D + 1) × m) that corrects the first m maps:

    u = (Ŷ_0 / σ_0, …, Ŷ_{k_in−1} / σ_{k_in−1})        σ_j: std of decoded map j over the whole map
    h1 = sin(w0 · (W1 u + b1 + M1 s)),  h2 = sin(W2 h1 + b2 + M2 s),  F = W3 h2 + b3
    Ŷ'_j = Ŷ_j + Σ_d F_d C_{d,j} + C_{D,j},   j < m

so the decoded maps are the network's per-pixel modulations and the readout is a nonlinear correction of
the coded components (nothing outside the file's basis). The shifts are int8 multiples of 1/32; the
readout is integer multiples of δ = 2^(−e/2) (zigzag, order-0 Exp-Golomb, as the post filter's taps).
The network runs in float32 on the fused SIREN kernel (w0 and the shifts folded into its first layers;
its numpy reference without the extension), the readout in float64: a lossy reconstruction, so
backends and platforms may differ in the last bits of the features. The synthesis runs before the post
filter, which then filters the corrected maps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hsicodec.errors import HsimHeaderError, ModelFormatError
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.postfilter import MAX_EXPONENT, pack, unpack
from hsicodec.layers.network import siren
from hsicodec.layers.network.siren import SirenWeights

KEY = "ns"
KIND = "map-synthesis-siren"
DEFAULT_ALIAS = "hsi-synth-v1"
ID_BYTES = cm.MODEL_ID_BYTES
SHIFT_STEP = 1.0 / 32  # shifts: int8 multiples of this
BLOCK = 65536  # pixels per network evaluation: bounded temporaries
_ARRAYS = ("l1.weight", "l1.bias", "l2.weight", "l2.bias", "out.weight", "out.bias", "mod.weight", "log_lr")


@dataclass(frozen=True)
class SynthesisModel:
    """A validated synthesis network (float32 arrays) and its meta-learned inner-loop step sizes."""

    w1: np.ndarray  # (width, k_in)
    b1: np.ndarray
    w2: np.ndarray  # (width, width)
    b2: np.ndarray
    w3: np.ndarray  # (D, width)
    b3: np.ndarray
    mod: np.ndarray  # (2 width, S)
    log_lr: np.ndarray  # (S,)
    w0: float
    sha256: str

    @property
    def k_in(self) -> int:
        return int(self.w1.shape[1])

    @property
    def width(self) -> int:
        return int(self.w1.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.w3.shape[0])

    @property
    def n_shifts(self) -> int:
        return int(self.mod.shape[1])

    @property
    def macs_per_pixel(self) -> int:
        """Multiply-adds per pixel of g (the readout adds (D + 1) per corrected map)."""
        return int(self.w1.size + self.w2.size + self.w3.size)

    def inputs(self, maps: np.ndarray) -> np.ndarray:
        """(N, k_in) float32 inputs of decoded maps (H, W, k): :func:`map_inputs`."""
        return map_inputs(maps, self.k_in)

    def siren(self, shifts: np.ndarray) -> SirenWeights:
        """g under the shifts as the SIREN kernel's weights: w0 and the shifts folded into the first layers
        (sin(w0 (W1 u + b1 + M1 s)) = sin((w0 W1) u + w0 (b1 + M1 s))), no latent (a zero φ)."""
        m = self.mod @ np.asarray(shifts, np.float32)
        w, f32 = self.width, np.float32
        zero = np.zeros((2 * w, 1), f32)
        return SirenWeights(
            hidden_w=((self.w0 * self.w1).astype(f32), self.w2),
            hidden_b=((self.w0 * (self.b1 + m[:w])).astype(f32), (self.b2 + m[w:]).astype(f32)),
            out_w=self.w3, out_b=self.b3, meta_w=zero, meta_b=np.zeros(2 * w, f32), shift="inside",
        )  # fmt: skip

    def features(self, u: np.ndarray, shifts: np.ndarray, backend: str = "auto") -> np.ndarray:
        """g(u, s): (N, D) float32 features (the fused SIREN kernel where built, else its numpy reference),
        a block of pixels at a time."""
        weights = self.siren(shifts)
        out = np.empty((u.shape[0], self.n_features), np.float32)
        for i in range(0, u.shape[0], BLOCK):
            x = np.ascontiguousarray(u[i : i + BLOCK], np.float32)
            out[i : i + BLOCK] = siren.forward(weights, x, np.zeros((len(x), 1), np.float32), backend=backend)
        return out


def map_inputs(maps: np.ndarray, k_in: int) -> np.ndarray:
    """(N, k_in) float32 network inputs of decoded maps (H, W, k): each of the first k_in maps over its std
    (float64, over the whole map), zero-padded; what the network was trained on and what it decodes with."""
    n = min(maps.shape[2], k_in)
    y = np.asarray(maps[..., :n], np.float64).reshape(-1, n)
    u = np.zeros((y.shape[0], k_in), np.float32)
    if y.shape[0]:
        u[:, :n] = y / np.maximum(y.std(axis=0), 1e-12)
    return u


def model_config(k_in: int, width: int, n_features: int, n_shifts: int, w0: float) -> dict:
    return {"kind": KIND, "k_in": k_in, "width": width, "features": n_features, "shifts": n_shifts, "w0": w0}


def from_model_file(mf) -> SynthesisModel:
    """Validate a :class:`hsicodec.models.modelfile.ModelFile` as a synthesis network (ModelFormatError if not)."""
    cfg, tag = mf.config, f"model {mf.sha256[:12]}"
    if cfg.get("kind") != KIND or cfg.get("act", "sine") != "sine":
        raise ModelFormatError(f"{tag}: not a {KIND} model (kind {cfg.get('kind')!r}, activation {cfg.get('act')!r})")
    try:
        k_in, width, d, s = (int(cfg[key]) for key in ("k_in", "width", "features", "shifts"))
        w0 = float(cfg["w0"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{tag}: config needs k_in, width, features, shifts and w0 ({exc})") from None
    if not (1 <= k_in <= 64 and 1 <= width <= 1024 and 1 <= d <= 64 and 1 <= s <= 64 and 0 < w0 <= 100):
        raise ModelFormatError(f"{tag}: config out of range")
    shapes = {"l1.weight": (width, k_in), "l1.bias": (width,), "l2.weight": (width, width), "l2.bias": (width,),
              "out.weight": (d, width), "out.bias": (d,), "mod.weight": (2 * width, s), "log_lr": (s,)}  # fmt: skip
    arrays = {}
    for name in _ARRAYS:
        a = mf.arrays.get(name)
        if a is None or a.dtype != np.float32 or a.shape != shapes[name] or not np.all(np.isfinite(a)):
            raise ModelFormatError(f"{tag}: array {name!r} must be finite float32 of shape {shapes[name]}")
        arrays[name] = np.ascontiguousarray(a)
    a = arrays
    return SynthesisModel(a["l1.weight"], a["l1.bias"], a["l2.weight"], a["l2.bias"], a["out.weight"], a["out.bias"],
                          a["mod.weight"], a["log_lr"], w0=float(np.float32(w0)), sha256=mf.sha256)  # fmt: skip


@functools.lru_cache(maxsize=4)
def _resolve(ident: bytes) -> SynthesisModel:
    from hsicodec.models.registry import load_by_id_prefix

    return from_model_file(load_by_id_prefix(ident, "synthesis network"))


def resolve(ident: bytes) -> SynthesisModel:
    """The network a header names (registry: bundled, user directory, HSICODEC_MODEL_PATH)."""
    return _resolve(bytes(ident))


def default_model() -> SynthesisModel:
    """The bundled network the encoder uses (``hsicodec/models/hsi-synth-v1.hsmodel``)."""
    from hsicodec.models.registry import default_registry

    return from_model_file(default_registry().load(DEFAULT_ALIAS))


@dataclass(frozen=True)
class Synthesis:
    """A file's synthesis: the network, its shifts (S,) and readout (D + 1, m) float64, the readout exponent."""

    model: SynthesisModel
    shifts: np.ndarray
    readout: np.ndarray
    exponent: int

    @property
    def m(self) -> int:
        """Maps corrected: the first m."""
        return int(self.readout.shape[1])

    def correction(self, maps: np.ndarray) -> np.ndarray:
        """The correction (H·W, m) float64 of decoded maps (H, W, k)."""
        f = self.model.features(self.model.inputs(maps), self.shifts).astype(np.float64)
        return f @ self.readout[:-1] + self.readout[-1]

    def apply(self, maps: np.ndarray) -> np.ndarray:
        """The corrected maps (H, W, k) float64 (a new array)."""
        out = np.array(maps, np.float64)
        h, w, _ = out.shape
        if h * w:
            out[..., : self.m] += self.correction(out).reshape(h, w, self.m)
        return out


def encode_synthesis(ident: bytes, shift_ints: np.ndarray, readout_ints: np.ndarray, exponent: int) -> bytes:
    """The ``codec.ns`` bytes: m, e, the model id, the int8 shifts and the readout integers ((D + 1), m)."""
    m = int(readout_ints.shape[1])
    if not (1 <= m <= 255 and 0 <= exponent <= MAX_EXPONENT and len(ident) == ID_BYTES):
        raise ValueError("synthesis: m in 1..255, exponent in 0..31, an 8-byte model id")
    shifts = np.asarray(shift_ints, np.int64)
    if np.abs(shifts).max(initial=0) > 127:
        raise ValueError("synthesis: shifts are int8")
    return bytes([m, exponent]) + bytes(ident) + shifts.astype(np.int8).tobytes() + pack(readout_ints.T)


def parse_synthesis(value: object, k: int) -> Synthesis:
    """Validate ``codec.ns`` of a k-map file (the network it names is loaded); HsimHeaderError names what is wrong."""
    where = f"codec.{KEY}"
    if not isinstance(value, bytes) or len(value) < 2 + ID_BYTES:
        raise HsimHeaderError(f"header key '{where}': expected at least {2 + ID_BYTES} bytes")
    m, exponent = value[0], value[1]
    if not 1 <= m <= k:
        raise HsimHeaderError(f"header key '{where}': corrects {m} maps, the file has {k}")
    if exponent > MAX_EXPONENT:
        raise HsimHeaderError(f"header key '{where}': readout exponent {exponent} is over {MAX_EXPONENT}")
    model = resolve(value[2 : 2 + ID_BYTES])
    s0 = 2 + ID_BYTES
    s1 = s0 + model.n_shifts
    if len(value) < s1:
        raise HsimHeaderError(f"header key '{where}': the shifts end early")
    shifts = np.frombuffer(value[s0:s1], np.int8).astype(np.float64) * SHIFT_STEP
    d1 = model.n_features + 1
    ints = unpack(value[s1:], d1 * m, where)
    readout = ints.reshape(m, d1).T * 2.0 ** (-exponent / 2)
    return Synthesis(model, shifts, readout, exponent)

"""A spectral stage shared by many small files: one mean and basis per scene (tiles) or per array (zarr chunks).

A small tile or chunk carrying its own mean spectrum and principal spectra pays for them in every file:
at 0.05 bpppb a 64 × 64 × 200 chunk spends 12–15 % of its bytes on them. A shared stage is stored once
(in the tiled `.hsim` file's header and section ``sp``, or in the zarr codec's configuration) and each
file names it by an 8-byte digest (header ``codec.sp`` = ``{"x": digest}``, spec/hsim.md 10.8): its maps
are the projections on the shared basis, and it sends no spectral bytes of its own.

The shared stage is the PCA of a sample of the scene's pixels, quantized finely (its error is 60 dB
under the scene's variance per value, negligible at any rate) and coded like a file's own
(:func:`hsicodec.coding.spectral.encode_spectral`).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from hsicodec.coding.spectral import SpectralFit, decode_spectral, encode_spectral, matched_exponents, pca_of_moments
from hsicodec.errors import HsimError, HsimHeaderError, OptionError

SHARED_K = 32  #: principal spectra a shared stage holds (a file uses the first k of them)
PRECISION_DB = 60.0  #: the shared stage's quantization error, under the scene's variance per value
DIGEST_BYTES = 8
MAX_SAMPLE_PIXELS = 1 << 16  #: pixels per tile that :meth:`PixelMoments.add` keeps (evenly strided)


@dataclass(frozen=True)
class SharedSpectral:
    """A coded mean spectrum and ``k`` principal spectra of ``n_bands`` bands (``params``: the coded form's
    me, be, ma, sc and bd, as :func:`encode_spectral` returns them; ``data``: its stream)."""

    n_bands: int
    k: int
    params: dict
    data: bytes
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def digest(self) -> bytes:
        """The 8 bytes that name this stage in the files that use it (sha256 of its coded form)."""
        p = self.params
        head = struct.pack("<IHiiI", self.n_bands, self.k, p["me"], p["be"], p["ma"])
        blob = b"hsim-sp" + head + bytes(p["sc"]) + bytes(p.get("bd", b"")) + self.data
        return hashlib.sha256(blob).digest()[:DIGEST_BYTES]

    def decode(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (C,), basis (k, C)) float64, as every decoder of its files sees them."""
        if "mb" not in self._cache:
            self._cache["mb"] = decode_spectral(self.data, self.params, self.n_bands, self.k)
        return self._cache["mb"]

    @classmethod
    def from_fit(cls, fit: SpectralFit, k: int = SHARED_K, precision_db: float = PRECISION_DB) -> SharedSpectral:
        """Quantize and code the first ``k`` components of a PCA fit, their error ``precision_db`` under
        the variance per value."""
        c = fit.mean.size
        k = int(min(k, fit.basis.shape[0]))
        per_value = max(fit.total_std**2 / max(c, 1), 1e-30)
        me, be = matched_exponents(fit, k, per_value * 10.0 ** (-precision_db / 10.0))
        while True:
            try:
                data, params, _, _ = encode_spectral(fit.mean, fit.basis[:k], me, be)
                break
            except OptionError:  # symbols past the coder's range: a coarser step
                me, be = me + 4, be + 4
        return cls(c, k, params, data)

    # -- stored forms
    def to_header(self) -> dict:
        """The map a tiled file's ``tiles.sp`` holds (its stream is section ``sp``)."""
        p = self.params
        out = {"n": self.n_bands, "k": self.k, "me": p["me"], "be": p["be"], "ma": p["ma"], "sc": bytes(p["sc"])}
        if p.get("bd"):
            out["bd"] = bytes(p["bd"])
        return out

    @classmethod
    def from_header(cls, m: object, data: bytes, n_bands: int, key: str = "tiles.sp") -> SharedSpectral:
        """Inverse of :meth:`to_header` (validated: HsimHeaderError names the bad key)."""
        if not isinstance(m, dict):
            raise HsimHeaderError(f"header key '{key}': expected a map")
        n, k = m.get("n"), m.get("k")
        if n != n_bands or type(n) is not int:
            raise HsimHeaderError(f"header key '{key}.n': expected {n_bands} bands, got {n!r}")
        if type(k) is not int or not 1 <= k <= min(n_bands, 255):
            raise HsimHeaderError(f"header key '{key}.k': expected an int in 1..{min(n_bands, 255)}, got {k!r}")
        params = {name: m.get(name) for name in ("me", "be", "ma", "sc")}
        if "bd" in m:
            params["bd"] = m["bd"]
        for name in ("me", "be", "ma"):
            if type(params[name]) is not int:
                raise HsimHeaderError(f"header key '{key}.{name}': expected an int")
        if not isinstance(params["sc"], bytes) or ("bd" in params and not isinstance(params["bd"], bytes)):
            raise HsimHeaderError(f"header key '{key}.sc' / '{key}.bd': expected bytes")
        if not isinstance(data, (bytes, bytearray)):
            raise HsimHeaderError(f"section of '{key}': expected bytes")
        shared = cls(n_bands, k, params, bytes(data))
        try:
            shared.decode()  # every check decode_spectral makes, now: a bad stage fails at open, not per tile
        except (HsimError, ValueError) as exc:
            raise HsimHeaderError(f"header key '{key}': {exc}") from None
        return shared

    def to_config(self) -> dict:
        """A JSON-able map (the zarr codec's configuration): the header form with bytes as hex / base64."""
        h = self.to_header()
        out = {key: (v.hex() if isinstance(v, bytes) else v) for key, v in h.items()}
        out["data"] = base64.b64encode(self.data).decode("ascii")
        return out

    @classmethod
    def from_config(cls, m: dict, n_bands: int | None = None) -> SharedSpectral:
        """Inverse of :meth:`to_config` (OptionError on a malformed map)."""
        try:
            h = {key: (bytes.fromhex(v) if key in ("sc", "bd") else v) for key, v in m.items() if key != "data"}
            data = base64.b64decode(m["data"], validate=True)
            return cls.from_header(h, data, int(n_bands if n_bands is not None else h["n"]), key="spectral")
        except (KeyError, TypeError, ValueError, HsimHeaderError) as exc:
            raise OptionError(f"shared spectral stage: malformed configuration ({exc})") from None


class PixelMoments:
    """Running mean and second moments of pixel spectra (float64), for the PCA of a whole scene read
    tile by tile: memory of one C × C matrix, whatever the scene size."""

    def __init__(self, n_bands: int) -> None:
        self.n = 0
        self.s1 = np.zeros(n_bands)
        self.s2 = np.zeros((n_bands, n_bands))

    def add(self, block: np.ndarray, invalid: np.ndarray | None = None) -> None:
        """Add the pixels of an (h, w, C) block (an even sample of at most :data:`MAX_SAMPLE_PIXELS`),
        leaving out pixels with any invalid value."""
        h, w, c = block.shape
        stride = max(1, int(np.ceil(np.sqrt(h * w / MAX_SAMPLE_PIXELS))))
        px = np.asarray(block[::stride, ::stride], np.float64).reshape(-1, c)
        if invalid is not None:
            px = px[~invalid[::stride, ::stride].reshape(-1, c).any(axis=1)]
        if px.size:
            self.n += len(px)
            self.s1 += px.sum(axis=0)
            self.s2 += px.T @ px

    def fit(self, k: int = SHARED_K, precision_db: float = PRECISION_DB) -> SharedSpectral:
        """The shared stage of the pixels added (OptionError when none were)."""
        return SharedSpectral.from_fit(self.pca(k), k, precision_db)

    def fit_within(self, max_bytes: float) -> SharedSpectral | None:
        """The stage with the most components at the finest precision (precision first: a coarse basis
        costs every file of the scene) whose stream and header map take at most ``max_bytes``; None when
        even 16 components at 50 dB take more (a small scene: a stage poorer than that loses dBs to the
        tiles' own, 4 dB on a 150 × 150 scene at 0.05 bpppb)."""
        fit = self.pca(SHARED_K)
        for db in (PRECISION_DB, 50.0):
            for k in (32, 24, 16):
                stage = SharedSpectral.from_fit(fit, k, db)
                if len(stage.data) + len(stage.params["sc"]) + 32 <= max_bytes:
                    return stage
        return None

    def pca(self, k: int = SHARED_K) -> SpectralFit:
        """The PCA (first k components) of the pixels added (OptionError when none were)."""
        if self.n == 0:
            raise OptionError("no valid pixel to fit a shared spectral stage on")
        mean = self.s1 / self.n
        return pca_of_moments(mean, self.s2 / self.n - np.outer(mean, mean), min(k, 255))


def shared_fit(shared: SharedSpectral, values: np.ndarray) -> SpectralFit:
    """The SpectralFit of a cube's values (H, W, C) on a shared stage: its mean and basis, and the cube's
    own energy about that mean along each basis vector (so a rate search predicts the dropped variance
    on this cube, not on the scene the stage was fitted on)."""
    mean, basis = shared.decode()
    x = values.reshape(-1, values.shape[-1]) - mean
    n = max(len(x), 1)
    total = float(np.einsum("ij,ij->", x, x)) / n
    proj = x @ basis.T
    comp = np.sqrt(np.einsum("ij,ij->j", proj, proj) / n)
    return SpectralFit(mean, basis, comp, float(np.sqrt(max(total, 1e-30))))

"""The shift-modulated SIREN: numpy reference, with dispatch to the native kernels.

Semantics (every backend implements exactly this; frequencies ω are folded into
the weights when a model file is written, so no backend needs to know them):

    β      = φ W_Mᵀ + b_M                      (per pixel, K·d values)
    h_0    = x                                  (pixel input, n_in values)
    z_i    = h_{i-1} W_iᵀ + b_i                 i = 1..K
    h_i    = sin(z_i + β_i)       if shift == "inside"   (COIN++)
    h_i    = sin(z_i) + β_i       if shift == "outside"  (paper eq. 1)
    y      = h_K W_oᵀ + b_o (+ φ Sᵀ)            (C_out values; S the optional linear skip)

with shapes W_1: (d, n_in), W_i: (d, d), W_o: (C_out, d), W_M: (K·d, m).
The "pixel input" x is typically the pixel's normalised coordinates; φ is the
pixel's latent vector (a patch latent broadcast to its pixels, or an
interpolated latent-grid feature).

The masked squared-error loss used by the encoder's inner loop is

    L = Σ_n p_n Σ_c w_c (y_nc − t_nc)²

and :func:`loss_grad_phi` returns L and ∂L/∂φ (the network frozen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHIFT_MODES = ("inside", "outside")


@dataclass(frozen=True)
class SirenWeights:
    """Float32 weights of one modulated SIREN, frequencies already folded in."""

    hidden_w: tuple  # K arrays: (d, n_in), then (d, d)
    hidden_b: tuple  # K arrays: (d,)
    out_w: np.ndarray  # (C_out, d)
    out_b: np.ndarray  # (C_out,)
    meta_w: np.ndarray  # (K*d, m)
    meta_b: np.ndarray  # (K*d,)
    shift: str = "inside"
    skip_w: np.ndarray | None = None  # (C_out, m) linear path from φ to the outputs, or None

    @property
    def depth(self) -> int:
        return len(self.hidden_w)

    @property
    def width(self) -> int:
        return int(self.hidden_w[0].shape[0])

    @property
    def n_in(self) -> int:
        return int(self.hidden_w[0].shape[1])

    @property
    def latent_dim(self) -> int:
        return int(self.meta_w.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.out_w.shape[0])

    def macs_per_pixel(self) -> int:
        """Multiply-adds per evaluated pixel (meta network + SIREN)."""
        d, k = self.width, self.depth
        skip = self.latent_dim * self.n_out if self.skip_w is not None else 0
        return self.latent_dim * k * d + self.n_in * d + (k - 1) * d * d + d * self.n_out + skip

    def validate(self) -> None:
        """Raise ValueError when shapes are inconsistent."""
        k, d = self.depth, self.width
        if k < 1 or len(self.hidden_b) != k:
            raise ValueError("SIREN needs K >= 1 hidden layers with one bias each")
        if self.shift not in SHIFT_MODES:
            raise ValueError(f"shift must be one of {SHIFT_MODES}, not {self.shift!r}")
        for i, (w, b) in enumerate(zip(self.hidden_w, self.hidden_b)):
            want = (d, self.n_in if i == 0 else d)
            if w.shape != want or b.shape != (d,):
                raise ValueError(f"hidden layer {i}: W {w.shape}, b {b.shape}, expected W {want}, b ({d},)")
        if self.out_w.shape[1] != d or self.out_b.shape != (self.out_w.shape[0],):
            raise ValueError(f"output layer: W {self.out_w.shape}, b {self.out_b.shape} do not fit width {d}")
        if self.meta_w.shape[0] != k * d or self.meta_b.shape != (k * d,):
            raise ValueError(f"meta network: W {self.meta_w.shape}, b {self.meta_b.shape}, expected ({k * d}, m)")
        if self.skip_w is not None and self.skip_w.shape != (self.n_out, self.latent_dim):
            raise ValueError(f"skip: W {self.skip_w.shape}, expected ({self.n_out}, {self.latent_dim})")
        extra = () if self.skip_w is None else (self.skip_w,)
        for a in (*self.hidden_w, *self.hidden_b, self.out_w, self.out_b, self.meta_w, self.meta_b, *extra):
            if a.dtype != np.float32:
                raise ValueError("SIREN weights must be float32")


def forward_numpy(weights: SirenWeights, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Reference forward pass: x (N, n_in), φ (N, m) float32 → y (N, C_out) float32."""
    beta = phi @ weights.meta_w.T + weights.meta_b
    d = weights.width
    h = x
    for i, (w, b) in enumerate(zip(weights.hidden_w, weights.hidden_b)):
        z = h @ w.T + b
        bi = beta[:, i * d : (i + 1) * d]
        h = np.sin(z + bi) if weights.shift == "inside" else np.sin(z) + bi
    y = h @ weights.out_w.T + weights.out_b
    if weights.skip_w is not None:
        y = y + phi @ weights.skip_w.T
    return y.astype(np.float32, copy=False)


def loss_grad_phi_numpy(
    weights: SirenWeights,
    x: np.ndarray,
    phi: np.ndarray,
    target: np.ndarray,
    channel_weight: np.ndarray | None = None,
    pixel_weight: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Reference masked squared error and its gradient with respect to φ."""
    n = x.shape[0]
    cw = np.ones(weights.n_out, np.float32) if channel_weight is None else channel_weight
    pw = np.ones(n, np.float32) if pixel_weight is None else pixel_weight
    d = weights.width
    beta = phi @ weights.meta_w.T + weights.meta_b
    h = x
    pre = []  # arguments of the sines
    for i, (w, b) in enumerate(zip(weights.hidden_w, weights.hidden_b)):
        z = h @ w.T + b
        bi = beta[:, i * d : (i + 1) * d]
        a = z + bi if weights.shift == "inside" else z
        pre.append(a)
        h = np.sin(a) if weights.shift == "inside" else np.sin(a) + bi
    y = h @ weights.out_w.T + weights.out_b
    if weights.skip_w is not None:
        y = y + phi @ weights.skip_w.T
    r = y - target
    wr = r * cw[None, :] * pw[:, None]
    loss = float(np.sum(wr * r, dtype=np.float64))
    g_h = (2.0 * wr) @ weights.out_w
    g_beta = np.empty_like(beta)
    for i in range(weights.depth - 1, -1, -1):
        g_a = g_h * np.cos(pre[i])
        g_beta[:, i * d : (i + 1) * d] = g_a if weights.shift == "inside" else g_h
        if i > 0:
            g_h = g_a @ weights.hidden_w[i]
    g_phi = g_beta @ weights.meta_w
    if weights.skip_w is not None:
        g_phi = g_phi + (2.0 * wr) @ weights.skip_w
    g_phi = g_phi.astype(np.float32, copy=False)
    return loss, g_phi


def _native():
    try:
        from hsicodec import _native  # type: ignore[attr-defined]
    except ImportError:
        import warnings

        warnings.warn(
            "the native extension hsicodec._native is not built: using the numpy path (slower); "
            "install a C++ compiler and reinstall to build it",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _native


def native_available() -> bool:
    """True when the C++ extension was built and imports."""
    import importlib.util

    return importlib.util.find_spec("hsicodec._native") is not None


def _native_cuda():
    """The optional CUDA extension (built with HSICODEC_CUDA=1), or None."""
    try:
        from hsicodec import _native_cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _native_cuda


def cuda_available() -> bool:
    """True when the CUDA extension was built, imports and sees at least one GPU."""
    mod = _native_cuda()
    return mod is not None and mod.device_count() > 0


def cuda_module():
    """The CUDA extension, or BackendError saying why backend "cuda" cannot run here."""
    from hsicodec.errors import BackendError

    mod = _native_cuda()
    if mod is None:
        raise BackendError(
            "backend 'cuda': the CUDA extension hsicodec._native_cuda is not built "
            "(reinstall with HSICODEC_CUDA=1 and nvcc on the PATH, e.g. 'make cuda')"
        )
    if mod.device_count() < 1:
        raise BackendError("backend 'cuda': no CUDA device is available (no GPU or no driver)")
    return mod


def forward(
    weights: SirenWeights, x: np.ndarray, phi: np.ndarray, *, backend: str = "auto", threads: int = 0
) -> np.ndarray:
    """Forward pass on the fastest available backend ("auto", "native" or "numpy"), or on "cuda".

    "auto" never picks the GPU: "cuda" runs the fused CUDA kernel (hsicodec._native_cuda)
    on the current device and raises :class:`~hsicodec.errors.BackendError` where it cannot.
    """
    x = np.ascontiguousarray(x, np.float32)
    phi = np.ascontiguousarray(phi, np.float32)
    if backend == "cuda":
        return cuda_module().siren_forward(
            x,
            phi,
            list(weights.hidden_w),
            list(weights.hidden_b),
            weights.out_w,
            weights.out_b,
            weights.meta_w,
            weights.meta_b,
            weights.shift == "inside",
            0,
            weights.skip_w,
        )
    nat = _native() if backend in ("auto", "native") else None
    if backend == "native" and nat is None:
        raise RuntimeError("the native extension hsicodec._native is not built")
    if nat is not None:
        return nat.siren_forward(
            x,
            phi,
            list(weights.hidden_w),
            list(weights.hidden_b),
            weights.out_w,
            weights.out_b,
            weights.meta_w,
            weights.meta_b,
            weights.shift == "inside",
            int(threads),
            weights.skip_w,
        )
    return forward_numpy(weights, x, phi)


def loss_grad_phi(
    weights: SirenWeights,
    x: np.ndarray,
    phi: np.ndarray,
    target: np.ndarray,
    channel_weight: np.ndarray | None = None,
    pixel_weight: np.ndarray | None = None,
    *,
    backend: str = "auto",
    threads: int = 0,
) -> tuple[float, np.ndarray]:
    """Masked squared error and ∂/∂φ on the fastest available backend ("cuda": as "auto", no GPU gradient)."""
    if backend == "cuda":
        backend = "auto"
    x = np.ascontiguousarray(x, np.float32)
    phi = np.ascontiguousarray(phi, np.float32)
    target = np.ascontiguousarray(target, np.float32)
    cw = np.ascontiguousarray(np.ones(weights.n_out) if channel_weight is None else channel_weight, np.float32)
    pw = np.ascontiguousarray(np.ones(x.shape[0]) if pixel_weight is None else pixel_weight, np.float32)
    nat = _native() if backend in ("auto", "native") else None
    if backend == "native" and nat is None:
        raise RuntimeError("the native extension hsicodec._native is not built")
    if nat is not None:
        return nat.siren_loss_grad_phi(
            x,
            phi,
            target,
            cw,
            pw,
            list(weights.hidden_w),
            list(weights.hidden_b),
            weights.out_w,
            weights.out_b,
            weights.meta_w,
            weights.meta_b,
            weights.shift == "inside",
            int(threads),
            weights.skip_w,
        )
    return loss_grad_phi_numpy(weights, x, phi, target, cw, pw)

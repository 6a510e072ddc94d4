"""The nonlinear synthesis' encoder, without torch: the network's shifts by its meta-learned inner loop
(hand-written gradients), the readout by least squares, both coded by rate–distortion.

See :mod:`hsicodec.layers.maps.synthesis` for what the decoder does with them. The equal-bits decision (a
file with the synthesis against one without at the same size) is
:func:`hsicodec.layers.maps.stagefit.post_filtered`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.layers.maps import synthesis as ns
from hsicodec.layers.maps.postfit import EXPONENTS, KEY_OVERHEAD, _bits, fit_residual

RIDGE = 1e-4  # the ridge of the readout inside the inner loop's loss (as in training)
INNER = 3  # meta-learned steps from zero shifts (learned step sizes: the model's log_lr)
REFINE = 40  # Adam steps after them, keeping the best shifts seen
ADAM_LR = 0.02
PIX = 8192  # pixels the shifts are fitted on (a seeded random choice)
MAX_CORRECTED = 16  # maps the readout may correct
SEED = 0


@dataclass
class SynthFit:
    """A coded synthesis: its ``codec.ns`` bytes, the synthesis, and the predicted squared-error saving."""

    data: bytes
    synth: ns.Synthesis
    saving: float


def _params(model: ns.SynthesisModel, dtype) -> dict:
    names = ("w1", "b1", "w2", "b2", "w3", "b3", "mod")
    return {n: np.asarray(getattr(model, n), dtype) for n in names}


def loss_and_gradient(
    model: ns.SynthesisModel, u: np.ndarray, r: np.ndarray, s: np.ndarray
) -> tuple[float, np.ndarray]:
    """log(‖r − P r‖² / ‖r‖²) for the ridge projection P onto the centred features g(u, s) (the training loss),
    and its gradient in the shifts s. The network's passes run in the dtype of u (float32 is twice as fast
    and ample for a fit), the projection in float64."""
    dt = np.float32 if u.dtype == np.float32 else np.float64
    p = _params(model, dt)
    w = model.width
    m = p["mod"] @ np.asarray(s, dt)
    z1 = u @ p["w1"].T + (p["b1"] + m[:w])
    h1 = np.sin(model.w0 * z1)
    z2 = h1 @ p["w2"].T + (p["b2"] + m[w:])
    h2 = np.sin(z2)
    f = (h2 @ p["w3"].T + p["b3"]).astype(np.float64)
    f = f - f.mean(axis=0)
    d = f.shape[1]
    gram = f.T @ f
    rho = RIDGE * (np.trace(gram) / d + 1e-12)
    fr = f.T @ r
    a = np.linalg.solve(gram + rho * np.eye(d), fr)
    explained = float(np.sum(fr * a))
    total = float(np.sum(r * r))
    aat = a @ a.T
    de_df = 2 * r @ a.T - 2 * f @ aat - (2 * RIDGE / d) * np.trace(aat) * f
    g_f = -(de_df - de_df.mean(axis=0)) / max(total - explained, 1e-300)
    g_z2 = (g_f.astype(dt) @ p["w3"]) * np.cos(z2)
    g_z1 = (g_z2 @ p["w2"]) * (model.w0 * np.cos(model.w0 * z1))
    grad = p["mod"][:w].T @ g_z1.sum(axis=0, dtype=np.float64) + p["mod"][w:].T @ g_z2.sum(axis=0, dtype=np.float64)
    return float(np.log(max(total - explained, 1e-300) / max(total, 1e-300))), np.asarray(grad, np.float64)


def fit_shifts(model: ns.SynthesisModel, u: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The file's shifts as int8 integers: the meta-learned inner steps from zero, then Adam steps keeping the
    best, on up to :data:`PIX` seeded random pixels of inputs u (N, k_in) and targets r (N, k)."""
    idx = np.random.default_rng(SEED).permutation(len(u))[:PIX]
    u, r = np.asarray(u[idx], np.float32), np.asarray(r[idx], np.float64)
    s = np.zeros(model.n_shifts)
    lr = np.exp(np.asarray(model.log_lr, np.float64))
    for _ in range(INNER):
        s = s - lr * loss_and_gradient(model, u, r, s)[1]
    best_loss, best = np.inf, s.copy()
    mom, var = np.zeros_like(s), np.zeros_like(s)
    for t in range(1, REFINE + 2):
        loss, grad = loss_and_gradient(model, u, r, s)
        if loss < best_loss:
            best_loss, best = loss, s.copy()
        if t > REFINE:
            break
        mom = 0.9 * mom + 0.1 * grad
        var = 0.999 * var + 0.001 * grad * grad
        s = s - ADAM_LR * (mom / (1 - 0.9**t)) / (np.sqrt(var / (1 - 0.999**t)) + 1e-8)
    return np.clip(np.round(best / ns.SHIFT_STEP), -127, 127).astype(np.int64)


def choose_readout(
    g_phi: np.ndarray, p_full: np.ndarray, g_b: np.ndarray, norm: float, lam: float, header_bytes: int
) -> tuple | None:
    """The best (net saving, saving, m, e, integers (D + 1, m)) for features with Gram matrix G_Φ, cross terms
    P = Φᵀ R Bᵀ (D + 1, k) and basis Gram G_B, over the corrected maps m and the readout step e; None where
    nothing saves more than it costs (λ per bit)."""
    best: tuple | None = None
    k = p_full.shape[1]
    reg = 1e-12 * max(float(np.trace(g_phi)), 1e-300) * np.eye(len(g_phi))
    for m in range(1, min(k, MAX_CORRECTED) + 1):
        pm, gb = p_full[:, :m], g_b[:m, :m]
        c = np.linalg.solve(g_phi + reg, np.linalg.solve(gb.T, pm.T).T) / norm
        for e in EXPONENTS:
            ints = np.round(c / 2.0 ** (-e / 2)).astype(np.int64)
            if np.abs(ints).max(initial=0) >= 1 << 22:
                continue
            cq = ints * 2.0 ** (-e / 2)
            saving = float(2 * norm * np.sum(cq * pm) - norm**2 * np.sum(cq * (g_phi @ cq @ gb)))
            nbytes = header_bytes + (_bits(ints) + 7) // 8 + KEY_OVERHEAD
            gain = saving - lam * 8 * nbytes
            if best is None or gain > best[0]:
                best = (gain, saving, m, e, ints)
    return best if best is not None and best[0] > 0 else None


def fit_synthesis(
    maps: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    basis: np.ndarray,
    norm: float,
    lam: float,
    valid=None,
    model: ns.SynthesisModel | None = None,
) -> SynthFit | None:
    """The synthesis of decoded maps (H, W, k) that saves the most squared error of the cube x (H, W, C)
    (reconstructed as (maps σ) B + μ) net of λ per bit; None where none saves more than it costs."""
    model = model or ns.default_model()
    fitted = fit_residual(maps, x, mean, basis, norm, valid)
    if fitted is None:
        return None
    idx, scale, resid = fitted
    g_b = basis @ basis.T
    resid_b = resid @ basis.T  # (N, k): R Bᵀ
    target = np.linalg.solve(g_b, resid_b.T).T / norm  # the residual's coordinates on the basis, map units
    u = model.inputs(maps)[idx]  # inputs over the whole maps, as the decoder forms them
    shift_ints = fit_shifts(model, u, target)
    shifts = shift_ints * ns.SHIFT_STEP
    phi = np.ones((len(idx), model.n_features + 1))
    phi[:, :-1] = model.features(u, shifts)
    hdr = 2 + ns.ID_BYTES + model.n_shifts
    best = choose_readout(phi.T @ phi * scale, phi.T @ resid_b * scale, g_b, norm, lam, hdr)
    if best is None:
        return None
    _, saving, m, e, ints = best
    ident = bytes.fromhex(model.sha256[: 2 * ns.ID_BYTES])
    data = ns.encode_synthesis(ident, shift_ints, ints, e)
    return SynthFit(data, ns.Synthesis(model, shifts, ints * 2.0 ** (-e / 2), e), saving)

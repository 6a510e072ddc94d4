"""The network layer's latent fit: the meta-learned inner loop from zero latents, and the RD refinement."""

from __future__ import annotations

from typing import Callable

import numpy as np

from hsicodec.coding import entropy
from hsicodec.errors import OptionError
from hsicodec.layers.network.layout import STEPS_PER_OCTAVE
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.quantize import LatentCoding, latent_coding

TRAIN_CROP_PIXELS = 32 * 32  # inner-loop loss weight per pixel, as in meta-training
FIT_ROW_BLOCK = 128
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8  # the RD refinement's Adam


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
    cw: np.ndarray = np.ones(n_out, np.float32) if channel_weight is None else np.asarray(channel_weight, np.float32)
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
        grids = []
        for g, lr in zip(gs, lrs):
            assert g.grad is not None  # backward() reached every grid
            grids.append(g.detach() - lr * g.grad)
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
        for lin, a, b in zip(net._hidden_linears(), wts.hidden_w, wts.hidden_b):
            lin.weight.copy_(torch.from_numpy(np.array(a)))
            lin.bias.copy_(torch.from_numpy(np.array(b)))
        net.out.weight.copy_(torch.from_numpy(np.array(wts.out_w)))
        net.out.bias.copy_(torch.from_numpy(np.array(wts.out_b)))
        net.meta.weight.copy_(torch.from_numpy(np.array(wts.meta_w)))
        net.meta.bias.copy_(torch.from_numpy(np.array(wts.meta_b)))
        if wts.skip_w is not None:
            assert net.skip is not None  # built with skip=True above
            net.skip.weight.copy_(torch.from_numpy(np.array(wts.skip_w)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _group_mean_abs(v: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-symbol mean |v| over its (subband group, channel): the Laplace scale estimate."""
    c = v.shape[-1]
    ids = (groups[..., None] * c + np.arange(c)).ravel()
    sums = np.bincount(ids, np.abs(v).ravel(), n_groups * c)
    counts = np.maximum(np.bincount(ids, minlength=n_groups * c), 1)
    return (sums / counts)[ids].reshape(v.shape)


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


def _laplace_bits(v: np.ndarray, b: np.ndarray) -> float:
    """Code length in bits of integer symbols v under the quantized Laplace masses of scales b."""
    av = np.abs(v)
    p = np.where(av > 0, 0.5 * np.exp(-(av - 0.5) / b) * (1.0 - np.exp(-1.0 / b)), 1.0 - np.exp(-0.5 / b))
    return float(-np.sum(np.log2(np.maximum(p, 1e-300))))


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
    check: int = 10,
) -> list[np.ndarray]:
    """Rate–distortion optimisation of the latents: min D + λ·R at fixed steps Δ_l.

    Adam in quantization units v = W(g Q) / Δ_l (``coding``: Q the channel rotation,
    W the Haar transform; both orthonormal, so the gradient maps across the same way), every step
    on latents with additive uniform noise (the usual differentiable proxy of rounding). R is the
    code length under the per-(level, channel, subband group) Laplace prior the entropy coder will
    use (scales refitted every step); D is the fit's weighted squared error. Every ``check`` steps
    (and at the start) the rounded latents' true D + λ·R is measured and the best rounded latents are
    returned, so the result never costs more than rounding the start. (No straight-through phase on
    hard-rounded latents: there Adam moves every coefficient across rounding boundaries at once, and D
    rose above the start's even at λ = 0.)
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

    def to_grids(vals: list) -> list:
        return [coding.to_grid(i, a * d).astype(np.float32) for i, (a, d) in enumerate(zip(vals, deltas))]

    def cost(vals: list) -> float:  # D + λ·R of the rounded latents
        r = [np.round(a) for a in vals]
        dist, _ = siren.loss_grad_phi(model.weights, x, op(to_grids(r)), t, cw, None, backend=backend, threads=threads)
        bits = sum(
            _laplace_bits(a, np.maximum(_group_mean_abs(a, groups, j + 1), entropy.MIN_SCALE))
            for a, (j, groups, _) in zip(r, coding.levels)
        )
        return dist + lam * bits

    best_cost, best_v = cost(v), [np.round(a) for a in v]
    for it in range(steps):
        vt = [a + rng.uniform(-0.5, 0.5, a.shape) for a in v]
        phi = op(to_grids(vt))
        _, g_phi = siren.loss_grad_phi(model.weights, x, phi, t, cw, None, backend=backend, threads=threads)
        d_grads = op.adjoint(g_phi)
        c1, c2 = 1 - ADAM_B1 ** (it + 1), 1 - ADAM_B2 ** (it + 1)
        for i, (j, groups, _) in enumerate(coding.levels):
            b = np.maximum(_group_mean_abs(np.round(v[i]), groups, j + 1), entropy.MIN_SCALE)
            g = coding.to_coeffs(i, d_grads[i]) * deltas[i] + lam * _laplace_bits_grad(vt[i], b)
            m[i] = ADAM_B1 * m[i] + (1 - ADAM_B1) * g
            s2[i] = ADAM_B2 * s2[i] + (1 - ADAM_B2) * g * g
            v[i] = v[i] - lr * (m[i] / c1) / (np.sqrt(s2[i] / c2) + ADAM_EPS)
        if (it + 1) % check == 0 or it + 1 == steps:
            c = cost(v)
            if c < best_cost:
                best_cost, best_v = c, [np.round(a) for a in v]
        if progress:
            progress((it + 1) / steps)
    return to_grids(best_v)

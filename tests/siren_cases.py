"""Random SIREN models and inputs shared by the kernel tests (tests/test_native.py, tests/test_cuda.py)."""

from __future__ import annotations

import numpy as np

from hsicodec.layers.network.siren import SirenWeights


def make_weights(rng, K=3, d=48, m=28, C=16, n_in=2, shift="inside", skip=False, meta_scale=0.05) -> SirenWeights:
    """Random SIREN at initialisation scale (first layer U(-1/n_in, 1/n_in) * 30; the shipping shape by default).

    skip: add a random (C, m) linear skip S scaled so that φ Sᵀ (φ ~ N(0, 1)) is
    about as large as the SIREN's output.
    """
    lim = np.sqrt(6.0 / d)
    hw = [rng.uniform(-1.0 / n_in, 1.0 / n_in, (d, n_in)) * 30.0]
    hw += [rng.uniform(-lim, lim, (d, d)) for _ in range(K - 1)]
    hb = [rng.uniform(-0.5, 0.5, d) for _ in range(K)]
    ow = rng.uniform(-lim, lim, (C, d))
    ob = rng.uniform(-0.1, 0.1, C)
    mw = rng.normal(0.0, meta_scale, (K * d, m))
    mb = rng.normal(0.0, meta_scale, K * d)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    sw = f32(rng.normal(0.0, 0.5 / np.sqrt(m), (C, m))) if skip else None
    return SirenWeights(
        tuple(f32(w) for w in hw), tuple(f32(b) for b in hb), f32(ow), f32(ob), f32(mw), f32(mb), shift, sw
    )


def make_inputs(rng, w: SirenWeights, n: int):
    """Coordinates U(-1, 1) and latents N(0, 1) of n pixels, float32."""
    x = rng.uniform(-1.0, 1.0, (n, w.n_in)).astype(np.float32)
    phi = rng.normal(0.0, 1.0, (n, w.latent_dim)).astype(np.float32)
    return x, phi

"""Per-file channel rotations of the latent grids, coded as 8-bit Givens angles.

The channels of a latent level are strongly correlated (the meta-learned inner
loop moves them together), so coding them one by one wastes bits. The encoder
rotates each level's channels onto their principal axes (a KLT) before the
Haar transform and quantization; the file carries the rotation as
n(n − 1)/2 Givens angles of one byte each, and both sides rebuild the same
orthonormal matrix from those bytes. Orthonormal, so errors and gradients keep
their energy across the rotation.
"""

from __future__ import annotations

import numpy as np

ANGLE_STEPS = 256  # one byte per angle: θ = (b − 128) · 2π / 256
MAX_ROTATION_CHANNELS = 16  # wider levels are not rotated (their angles would cost more than they save)


def n_angles(n: int) -> int:
    """Angle bytes a level of n channels has in a file: n(n − 1)/2, none above
    :data:`MAX_ROTATION_CHANNELS` channels (such a level is not rotated)."""
    return n * (n - 1) // 2 if n <= MAX_ROTATION_CHANNELS else 0


def _pairs(n: int) -> list:
    """(row i, column j) of the entry each rotation zeroes, in elimination order."""
    return [(i, j) for j in range(n - 1) for i in range(n - 1, j, -1)]


def rotation_from_codes(codes: bytes, n: int) -> np.ndarray:
    """The n × n orthonormal matrix of ``n_angles(n)`` angle bytes (identity for n ≤ 1)."""
    q = np.eye(n)
    for (i, _j), b in reversed(list(zip(_pairs(n), codes))):
        th = (int(b) - 128) * 2.0 * np.pi / ANGLE_STEPS
        c, s = np.cos(th), np.sin(th)
        qi, qk = q[i - 1].copy(), q[i].copy()
        q[i - 1], q[i] = c * qi - s * qk, s * qi + c * qk
    return q


def codes_from_rotation(rot: np.ndarray) -> bytes:
    """Angle bytes of a rotation (det +1) by Givens elimination, each angle rounded to a byte."""
    r = np.array(rot, np.float64, copy=True)
    n = r.shape[0]
    out = bytearray()
    for i, j in _pairs(n):
        a, b = r[i - 1, j], r[i, j]
        th = np.arctan2(b, a)
        code = int(np.round(th * ANGLE_STEPS / (2 * np.pi))) + 128
        code = code % ANGLE_STEPS
        out.append(code)
        th = (code - 128) * 2.0 * np.pi / ANGLE_STEPS
        c, s = np.cos(th), np.sin(th)
        ri, rk = r[i - 1].copy(), r[i].copy()
        r[i - 1], r[i] = c * ri + s * rk, -s * ri + c * rk
    return bytes(out)


def klt_codes(samples: np.ndarray) -> bytes:
    """Angle bytes of the rotation onto the principal axes of (N, n) samples, strongest first."""
    x = np.asarray(samples, np.float64)
    n = x.shape[1]
    if n <= 1 or x.shape[0] < 2:
        return bytes([128] * n_angles(n))
    _, vecs = np.linalg.eigh(np.cov(x.T))
    vecs = vecs[:, ::-1]
    if np.linalg.det(vecs) < 0:
        vecs[:, -1] = -vecs[:, -1]
    return codes_from_rotation(vecs)

"""Latent layouts: where latent vectors sit in the image and how pixels read them.

A layout is a list of levels. Level ``l`` holds a grid of latent vectors with
``channels`` values each, one node per ``cell`` × ``cell`` pixels. A pixel's
latent φ is the concatenation over levels of its level feature:

* ``nearest``: the vector of the cell the pixel lies in (the paper's
  one-latent-per-patch; with ``cell`` ≥ image size, one latent per image);
* ``linear``: bilinear interpolation between the four nearest nodes, nodes at
  the cell centres, clamped at the edges (Cool-chic / C3 style latent grids).

``cell = 0`` means one node for the whole image (the paper's setting).
The SIREN's pixel input is the pixel's position inside its ``coord_cell`` block,
mapped to [-1, 1]²; ``coord_cell = 0`` means the position in the whole image.
Everything here is index arithmetic on numpy arrays; the torch encoder and
trainer use the same indices (see :func:`axis_interp`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

INTERP_MODES = ("nearest", "linear")


@dataclass(frozen=True)
class LatentLevel:
    """One grid of latents: one node per ``cell`` pixels along each axis."""

    cell: int
    channels: int
    interp: str = "linear"


@dataclass(frozen=True)
class LatentLayout:
    """The latent levels of a model and the block size of its coordinate input."""

    levels: tuple
    coord_cell: int

    @property
    def latent_dim(self) -> int:
        return sum(lv.channels for lv in self.levels)

    def grid_shape(self, level: int, height: int, width: int) -> tuple[int, int]:
        cell = self.levels[level].cell
        if cell == 0:
            return (1, 1)
        return (-(-height // cell), -(-width // cell))

    def count(self, height: int, width: int) -> int:
        """Total number of latent values for an image of this size."""
        return sum(int(np.prod(self.grid_shape(i, height, width))) * lv.channels for i, lv in enumerate(self.levels))

    def to_config(self) -> dict:
        return {"levels": [[lv.cell, lv.channels, lv.interp] for lv in self.levels], "coord_cell": self.coord_cell}

    @classmethod
    def from_config(cls, cfg: dict) -> LatentLayout:
        levels = tuple(LatentLevel(int(c), int(ch), str(mode)) for c, ch, mode in cfg["levels"])
        for lv in levels:
            if (
                lv.cell < 0
                or lv.channels < 1
                or lv.interp not in INTERP_MODES
                or (lv.cell == 0 and lv.interp != "nearest")
            ):
                raise ValueError(f"invalid latent level {lv}")
        if not levels or int(cfg["coord_cell"]) < 0:
            raise ValueError("a latent layout needs at least one level and coord_cell >= 0")
        return cls(levels, int(cfg["coord_cell"]))


def axis_interp(start: int, stop: int, cell: int, n_nodes: int, interp: str):
    """Per-pixel node indices and weights along one axis for pixels ``start..stop-1``.

    Returns (i0, i1, t): the feature of pixel p is (1 - t[p]) g[i0[p]] + t[p] g[i1[p]].
    """
    p = np.arange(start, stop, dtype=np.int64)
    if cell == 0:  # one node for the whole image
        z = np.zeros(len(p), np.int64)
        return z, z, np.zeros(len(p), np.float32)
    if interp == "nearest":
        i0 = np.minimum(p // cell, n_nodes - 1)
        return i0, i0, np.zeros(len(p), np.float32)
    u = (p + 0.5) / cell - 0.5
    f = np.floor(u)
    t = (u - f).astype(np.float32)
    i0 = f.astype(np.int64)
    i1 = i0 + 1
    i0 = np.clip(i0, 0, n_nodes - 1)
    i1 = np.clip(i1, 0, n_nodes - 1)
    return i0, i1, t


def node_range(start: int, stop: int, cell: int, n_nodes: int, interp: str) -> tuple[int, int]:
    """Grid rows (or columns) ``[lo, hi)`` that pixels ``start..stop-1`` read."""
    i0, i1, _ = axis_interp(start, stop, cell, n_nodes, interp)
    return int(i0.min()), int(i1.max()) + 1


def upsample(grid: np.ndarray, rows: tuple, cols: tuple) -> np.ndarray:
    """Interpolate a (gh, gw, ch) grid at the pixels described by axis_interp tuples → (h, w, ch)."""
    r0, r1, rt = rows
    c0, c1, ct = cols
    a = grid[r0] * (1 - rt)[:, None, None] + grid[r1] * rt[:, None, None]
    return (a[:, c0] * (1 - ct)[None, :, None] + a[:, c1] * ct[None, :, None]).astype(np.float32, copy=False)


def upsample_transpose(grad: np.ndarray, rows: tuple, cols: tuple, grid_shape: tuple) -> np.ndarray:
    """Adjoint of :func:`upsample`: scatter a (h, w, ch) gradient back onto the (gh, gw, ch) grid."""
    r0, r1, rt = rows
    c0, c1, ct = cols
    gh, gw = grid_shape
    ch = grad.shape[2]
    tmp = np.zeros((grad.shape[0], gw, ch), np.float64)
    # numpy's stubs type at()'s indices as an int array only; at runtime it takes any index expression
    np.add.at(tmp, (slice(None), c0), grad * (1 - ct)[None, :, None])  # type: ignore[arg-type]
    np.add.at(tmp, (slice(None), c1), grad * ct[None, :, None])  # type: ignore[arg-type]
    out = np.zeros((gh, gw, ch), np.float64)
    np.add.at(out, r0, tmp * (1 - rt)[:, None, None])
    np.add.at(out, r1, tmp * rt[:, None, None])
    return out.astype(np.float32)


def local_coords(
    layout: LatentLayout, row0: int, row1: int, col0: int, col1: int, height: int, width: int
) -> np.ndarray:
    """(h·w, 2) SIREN inputs for a pixel window of a height × width image.

    The position inside the pixel's coord_cell block in [-1, 1] (coord_cell 0:
    inside the whole image).
    """
    cc = layout.coord_cell
    if cc == 0:
        ry = (np.arange(row0, row1) + 0.5) / height * 2.0 - 1.0
        rx = (np.arange(col0, col1) + 0.5) / width * 2.0 - 1.0
    else:
        ry = ((np.arange(row0, row1) % cc) + 0.5) / cc * 2.0 - 1.0
        rx = ((np.arange(col0, col1) % cc) + 0.5) / cc * 2.0 - 1.0
    yy, xx = np.meshgrid(ry, rx, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float32)


def pixel_latents(
    layout: LatentLayout,
    grids: Sequence[np.ndarray],
    height: int,
    width: int,
    row0: int,
    row1: int,
    col0: int,
    col1: int,
) -> np.ndarray:
    """(h·w, m) latent of every pixel of a window, from full-image grids."""
    feats = []
    for lv, g in zip(layout.levels, grids):
        gh, gw = g.shape[:2]
        rows = axis_interp(row0, row1, lv.cell, gh, lv.interp)
        cols = axis_interp(col0, col1, lv.cell, gw, lv.interp)
        feats.append(upsample(g, rows, cols))
    h, w = row1 - row0, col1 - col0
    return np.concatenate(feats, axis=2).reshape(h * w, -1)


def interp_matrix(start: int, stop: int, cell: int, n_nodes: int, interp: str):
    """Sparse (pixels × nodes) matrix of the 1-D interpolation weights of :func:`axis_interp`."""
    from scipy import sparse

    i0, i1, t = axis_interp(start, stop, cell, n_nodes, interp)
    n = stop - start
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([i0, i1])
    vals = np.concatenate([1.0 - t, t]).astype(np.float32)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n_nodes))


class GridOperator:
    """Linear map between a layout's grids and per-pixel latents of one window, with its adjoint.

    Separable sparse interpolation: F = U_h G U_wᵀ per channel. Used by the
    torch-free encoder (gradients flow back through :meth:`adjoint`).
    """

    def __init__(
        self,
        layout: LatentLayout,
        height: int,
        width: int,
        row0: int = 0,
        row1: int | None = None,
        col0: int = 0,
        col1: int | None = None,
    ):
        row1 = height if row1 is None else row1
        col1 = width if col1 is None else col1
        self.layout, self.h, self.w = layout, row1 - row0, col1 - col0
        self.shapes, self.mats = [], []
        for i, lv in enumerate(layout.levels):
            gh, gw = layout.grid_shape(i, height, width)
            self.shapes.append((gh, gw, lv.channels))
            uh = interp_matrix(row0, row1, lv.cell, gh, lv.interp)
            uw = interp_matrix(col0, col1, lv.cell, gw, lv.interp)
            self.mats.append((uh, uw, uh.T.tocsr(), uw.T.tocsr()))

    def __call__(self, grids: Sequence[np.ndarray]) -> np.ndarray:
        """(h·w, m) float32 latents from grids."""
        out = np.empty((self.h, self.w, self.layout.latent_dim), np.float32)
        pos = 0
        for (gh, gw, ch), (uh, uw, _, _), g in zip(self.shapes, self.mats, grids):
            a = uh @ g.reshape(gh, gw * ch)  # (h, gw*ch)
            a = a.reshape(self.h, gw, ch).transpose(1, 0, 2).reshape(gw, self.h * ch)
            b = (uw @ a).reshape(self.w, self.h, ch).transpose(1, 0, 2)
            out[:, :, pos : pos + ch] = b
            pos += ch
        return out.reshape(self.h * self.w, -1)

    def adjoint(self, grad: np.ndarray) -> list[np.ndarray]:
        """Grid gradients from a (h·w, m) gradient with respect to the per-pixel latents."""
        g3 = grad.reshape(self.h, self.w, -1)
        out, pos = [], 0
        for (gh, gw, ch), (_, _, uht, uwt) in zip(self.shapes, self.mats):
            part = np.ascontiguousarray(g3[:, :, pos : pos + ch]).transpose(1, 0, 2).reshape(self.w, self.h * ch)
            a = (uwt @ part).reshape(gw, self.h, ch).transpose(1, 0, 2).reshape(self.h, gw * ch)
            out.append(np.asarray(uht @ a, np.float32).reshape(gh, gw, ch))
            pos += ch
        return out

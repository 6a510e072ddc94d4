"""Torch twin of the modulated SIREN and latent grids, for training and the torch encoder.

Only :mod:`hsicodec.train.meta` and the torch encoder path import this module; the
decoder never does. :meth:`ModSiren.export` folds the sine frequencies into the
weights and returns the :class:`hsicodec.layers.network.siren.SirenWeights` the numpy and
native backends evaluate, so all backends compute the same function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from hsicodec.layers.network.latents import LatentLayout, axis_interp
from hsicodec.layers.network.siren import SirenWeights


class ModSiren(nn.Module):
    """SIREN with shift modulations β = W_M φ + b_M (paper eq. 1 / COIN++)."""

    def __init__(
        self,
        n_in: int,
        width: int,
        depth: int,
        latent_dim: int,
        n_out: int,
        w0: float = 30.0,
        w_hidden: float = 30.0,
        shift: str = "inside",
        skip: bool = False,
    ):
        super().__init__()
        self.width, self.depth, self.shift = width, depth, shift
        self.w0, self.w_hidden = float(w0), float(w_hidden)
        hidden = [nn.Linear(n_in if i == 0 else width, width) for i in range(depth)]
        self.hidden = nn.ModuleList(hidden)
        self.out = nn.Linear(width, n_out)
        self.meta = nn.Linear(latent_dim, depth * width)
        self.skip = nn.Linear(latent_dim, n_out, bias=False) if skip else None
        with torch.no_grad():
            for i, lin in enumerate(hidden):
                bound = 1.0 / lin.in_features if i == 0 else math.sqrt(6.0 / lin.in_features) / self.w_hidden
                lin.weight.uniform_(-bound, bound)
                lin.bias.uniform_(-bound, bound)
            nn.init.normal_(self.meta.weight, std=0.1 / math.sqrt(max(latent_dim, 1)))
            self.meta.bias.zero_()

    def _hidden_linears(self) -> list[nn.Linear]:
        """The hidden layers as nn.Linear (iterating a ModuleList gives plain Modules to a type checker)."""
        return [cast(nn.Linear, lin) for lin in self.hidden]

    def omegas(self) -> list[float]:
        return [self.w0] + [self.w_hidden] * (self.depth - 1)

    def forward(self, x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        beta = self.meta(phi)
        h = x
        for i, (lin, om) in enumerate(zip(self.hidden, self.omegas())):
            b = beta[..., i * self.width : (i + 1) * self.width]
            z = lin(h)
            h = torch.sin(om * (z + b)) if self.shift == "inside" else torch.sin(om * z) + b
        y = self.out(h)
        return y if self.skip is None else y + self.skip(phi)

    def export(self) -> SirenWeights:
        """Float32 weights with frequencies folded in (see hsicodec.layers.network.siren)."""
        oms = self.omegas()
        f = lambda t: np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))  # noqa: E731
        hw = tuple(f(lin.weight * om) for lin, om in zip(self._hidden_linears(), oms))
        hb = tuple(f(lin.bias * om) for lin, om in zip(self._hidden_linears(), oms))
        scale = torch.tensor([om if self.shift == "inside" else 1.0 for om in oms for _ in range(self.width)])
        mw = f(self.meta.weight * scale[:, None])
        mb = f(self.meta.bias * scale)
        skip = None if self.skip is None else f(self.skip.weight)
        return SirenWeights(hw, hb, f(self.out.weight), f(self.out.bias), mw, mb, self.shift, skip)


class GridSampler:
    """Precomputed gather indices turning per-level grids into per-pixel latents for one window."""

    def __init__(
        self,
        layout: LatentLayout,
        height: int,
        width: int,
        row0: int = 0,
        col0: int = 0,
        rows: int | None = None,
        cols: int | None = None,
        full_height: int | None = None,
        full_width: int | None = None,
    ):
        rows = height if rows is None else rows
        cols = width if cols is None else cols
        fh = height if full_height is None else full_height
        fw = width if full_width is None else full_width
        self.layout, self.h, self.w = layout, rows, cols
        self.idx = []
        for i, lv in enumerate(layout.levels):
            gh, gw = layout.grid_shape(i, fh, fw)
            r = axis_interp(row0, row0 + rows, lv.cell, gh, lv.interp)
            c = axis_interp(col0, col0 + cols, lv.cell, gw, lv.interp)
            self.idx.append(tuple(torch.from_numpy(np.asarray(a)) for a in (*r, *c)))

    def __call__(self, grids: Sequence[torch.Tensor]) -> torch.Tensor:
        """grids[l]: (B, gh, gw, ch) → (B, h, w, m)."""
        feats = []
        for g, (r0, r1, rt, c0, c1, ct) in zip(grids, self.idx):
            rt = rt[None, :, None, None]
            ct = ct[None, None, :, None]
            a = g[:, r0] * (1 - rt) + g[:, r1] * rt
            feats.append(a[:, :, c0] * (1 - ct) + a[:, :, c1] * ct)
        return torch.cat(feats, dim=-1)


def coords_tensor(
    layout: LatentLayout, row0: int, rows: int, col0: int, cols: int, height: int, width: int
) -> torch.Tensor:
    """(rows, cols, 2) SIREN input coordinates for a window of a height × width image."""
    from hsicodec.layers.network.latents import local_coords

    return torch.from_numpy(local_coords(layout, row0, row0 + rows, col0, col0 + cols, height, width)).reshape(
        rows, cols, 2
    )

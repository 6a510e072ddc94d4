"""The tile geometry of a tiled `.hsim` file (format 1.1, spec/hsim.md section 11): which tile covers which
pixels, the header key ``tiles`` and its checks, the tile sections."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hsicodec.codec.mask import invalid_mask
from hsicodec.coding.shared import PixelMoments, SharedSpectral
from hsicodec.errors import HsimHeaderError, HsimLimitError, OptionError
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits

CODEC_ID = "tiled"
#: (major, minor) written into tiled files: 1.1 adds the optional ``tiles`` key and codec ``tiled``.
FORMAT_VERSION = (1, 1)
#: tile side used when a scene is tiled without an explicit size.
DEFAULT_TILE = 512
#: compress_file tiles inputs with more values (rows x cols x bands) than this unless told otherwise.
AUTO_TILE_VALUES = 1 << 26
#: reader limit on the values of one tile (tile rows x tile cols x bands): the memory one tile needs.
MAX_TILE_VALUES = 1 << 28


def is_tiled(header: Mapping) -> bool:
    """True when a header describes a tiled file (codec id ``"tiled"``)."""
    c = header.get("codec") if isinstance(header, Mapping) else None
    return isinstance(c, Mapping) and c.get("id") == CODEC_ID


def section_name(i: int) -> str:
    """Section name of tile ``i`` (row-major index): ``t0``, ``t1``, ..."""
    return f"t{i}"


def _is_int(v: Any) -> bool:
    return type(v) is int


@dataclass(frozen=True)
class TileGrid:
    """The tile geometry of a scene: tile ``i`` = (r, c) = divmod(i, cols) covers rows
    ``r*tile_h .. min((r+1)*tile_h, height)`` and columns ``c*tile_w .. min((c+1)*tile_w, width)``."""

    height: int
    width: int
    bands: int
    tile_h: int
    tile_w: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile_h)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile_w)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def reducible(self, reduce: int) -> bool:
        """Whether every tile holds whole 2^reduce × 2^reduce blocks (tile sides multiples of 2^reduce
        along each axis that has more than one tile): what a reduced read of the file needs."""
        f = 1 << reduce
        return not ((self.rows > 1 and self.tile_h % f) or (self.cols > 1 and self.tile_w % f))

    @classmethod
    def for_shape(cls, shape: Iterable[int], tile: int | tuple) -> TileGrid:
        """The grid of tiles of side ``tile`` (or ``(tile_h, tile_w)``), clamped to the scene."""
        h, w, c = (int(v) for v in shape)
        th, tw = (tile, tile) if isinstance(tile, (int, np.integer)) else tuple(tile)
        if isinstance(th, bool) or isinstance(tw, bool) or int(th) < 1 or int(tw) < 1:
            raise OptionError(f"tile size must be a positive number of pixels, got {tile!r}")
        return cls(h, w, c, min(int(th), h), min(int(tw), w))

    def bounds(self, i: int) -> tuple[int, int, int, int]:
        """(row, col, height, width) of tile ``i``."""
        r, c = divmod(i, self.cols)
        r0, c0 = r * self.tile_h, c * self.tile_w
        return r0, c0, min(self.tile_h, self.height - r0), min(self.tile_w, self.width - c0)

    def intersecting(self, window: tuple) -> list[int]:
        """Row-major indices of the tiles a (row, col, height, width) window touches."""
        r0, c0, h, w = window
        ra, rb = r0 // self.tile_h, (r0 + h - 1) // self.tile_h
        ca, cb = c0 // self.tile_w, (c0 + w - 1) // self.tile_w
        return [r * self.cols + c for r in range(ra, rb + 1) for c in range(ca, cb + 1)]

    def to_header(self, fill: float | None = None) -> dict:
        d: dict = {"size": [self.tile_h, self.tile_w], "grid": [self.rows, self.cols]}
        if fill is not None:
            d["fill"] = fill
        return d

    def check(self, limits: Limits = DEFAULT_LIMITS, max_tile_values: int = MAX_TILE_VALUES) -> None:
        """Refuse a tile count or tile size over the limits (raises HsimLimitError)."""
        if self.count > limits.max_sections:
            raise HsimLimitError(
                f"header key 'tiles': {self.rows}x{self.cols} = {self.count} tiles exceeds the "
                f"limit of {limits.max_sections} (one section per tile)"
            )
        values = self.tile_h * self.tile_w * self.bands
        if values > max_tile_values:
            raise HsimLimitError(
                f"header key 'tiles': a {self.tile_h}x{self.tile_w}x{self.bands} tile holds "
                f"{values} values, exceeds the limit of {max_tile_values}"
            )

    @classmethod
    def from_header(
        cls, header: Mapping, limits: Limits = DEFAULT_LIMITS, max_tile_values: int = MAX_TILE_VALUES
    ) -> TileGrid:
        """Validate a tiled header's ``tiles`` map against its ``shape`` and the limits.

        Every check is arithmetic on header values: nothing is allocated per tile before
        the tile count is known to be within ``limits.max_sections``.
        """
        h, w, c = (int(v) for v in header["shape"])
        t = header.get("tiles")
        if not isinstance(t, Mapping):
            raise HsimHeaderError(f"header key 'tiles': expected a map (required with codec 'tiled'), got {t!r:.80}")
        size, grid = t.get("size"), t.get("grid")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v >= 1 for v in size)):
            raise HsimHeaderError(f"header key 'tiles.size': expected 2 positive ints, got {size!r:.80}")
        if not (isinstance(grid, list) and len(grid) == 2 and all(_is_int(v) and v >= 1 for v in grid)):
            raise HsimHeaderError(f"header key 'tiles.grid': expected 2 positive ints, got {grid!r:.80}")
        th, tw = size
        if th > h or tw > w:
            raise HsimHeaderError(f"header key 'tiles.size': {th}x{tw} is larger than the {h}x{w} scene")
        g = cls(h, w, c, th, tw)
        if [g.rows, g.cols] != grid:
            raise HsimHeaderError(
                f"header key 'tiles.grid': {grid} does not match {g.rows}x{g.cols} tiles of {th}x{tw} over {h}x{w}"
            )
        g.check(limits, max_tile_values)
        fill = t.get("fill")
        if fill is not None and (isinstance(fill, bool) or not isinstance(fill, (int, float))):
            raise HsimHeaderError(f"header key 'tiles.fill': expected a number, got {fill!r:.80}")
        return g


def _fill_of(header: Mapping) -> float | None:
    fill = header["tiles"].get("fill")
    return None if fill is None else float(fill)


def _check_tile_sections(reader: HsimReader, grid: TileGrid) -> dict:
    """name -> length of every tile section; all must be present (HsimHeaderError otherwise)."""
    spans = reader.section_spans
    out = {}
    for i in range(grid.count):
        name = section_name(i)
        if name not in spans:
            raise HsimHeaderError(f"header key 'sections': tile {i} (section {name!r}) is missing")
        out[name] = spans[name][1]
    if any(n == 0 for n in out.values()) and _fill_of(reader.header) is None:
        raise HsimHeaderError("header key 'tiles.fill': required when a tile section is empty")
    return out


#: the section holding a shared spectral stage's stream (header ``tiles.sp``, spec/hsim.md 10.8)
SHARED_SECTION = "sp"


def shared_stage(reader: HsimReader) -> SharedSpectral | None:
    """A tiled file's shared spectral stage (header ``tiles.sp``, section ``sp``), None when it has none."""
    tiles = reader.header.get("tiles")
    m = tiles.get("sp") if isinstance(tiles, Mapping) else None
    if m is None:
        return None
    if SHARED_SECTION not in reader.section_spans:
        raise HsimHeaderError(f"header key 'tiles.sp': section {SHARED_SECTION!r} is missing")
    shape = reader.header.get("shape")
    n_bands = int(shape[2]) if isinstance(shape, list) and len(shape) == 3 and type(shape[2]) is int else -1
    return SharedSpectral.from_header(m, reader.section(SHARED_SECTION), n_bands)


def scene_stage(reader, grid: TileGrid, nodata, max_bytes: float) -> SharedSpectral | None:
    """The scene's shared spectral stage: the PCA of a sample of every tile's valid pixels (a first pass
    over the tiles; memory of one tile and one bands × bands matrix), as precise as ``max_bytes``
    allows. None when no pixel is valid or no stage fits (a small scene: its tiles keep their own)."""
    moments = PixelMoments(grid.bands)
    for i in range(grid.count):
        r0, c0, h, w = grid.bounds(i)
        block = reader.read(r0, c0, h, w)
        moments.add(block, invalid_mask(block, nodata))
        del block
    return moments.fit_within(max_bytes) if moments.n else None

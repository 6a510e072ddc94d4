"""Do files stay the same? Bytes and PSNR of files at a grid of rates, saved or compared.

A speed change that should not change any file (a faster kernel, a split product, a shared buffer) is checked
with this: save the figures before it, compare after it::

    python tools/same_files.py --out /tmp/before.json
    # ... the change ...
    python tools/same_files.py --out /tmp/after.json --against /tmp/before.json

Each validation scene (never seen in training: jasper_ridge, pavia_centre, abu_urban_5) is compressed at
every ``--rates`` bpppb with :func:`hsicodec.compress` (default effort) and at ``--max-rates`` (0.02) at effort
max (whose search takes paths of its own: a speed change there once cost it 0.15 dB), and decoded; with
``--tiles SCENE.npy``
the scene's 512 x 512 tiles (up to ``--max-tiles``) are compressed alone at ``--tile-rate`` (0.05) bpppb too:
the tile size of a tiled file, whose encoder takes the big-cube paths (the threaded conversion, the PCA's
sample stride, the split products). Prints one line per file (bytes, PSNR dB; the difference where it differs
from ``--against``) and exits 1 when any file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.metrics import psnr

HERE = Path(__file__).resolve().parent
VALIDATION = ("jasper_ridge", "pavia_centre", "abu_urban_5")
RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
MAX_RATES = (0.02,)  # effort max (its own search paths: every β, RDOQ, finer builds, the stages): ~10 s a file
TILE = 512


def figures(
    data: Path, scenes: tuple, rates: tuple, tiles: Path | None, max_tiles: int, tile_rate: float, max_rates: tuple = ()
) -> dict:
    """{name: [bytes, PSNR rounded to 1e-4 dB]} of every file."""
    out: dict = {}
    for name in scenes:
        cube = np.load(data / f"{name}.npy")
        for effort, suffix, at in (("default", "", rates), ("max", " max", max_rates)):
            for rate in at:
                blob = hsicodec.compress(cube, bpppb=rate, effort=effort)
                out[f"{name}@{rate:g}{suffix}"] = [len(blob), round(float(psnr(cube, hsicodec.decompress(blob)[0])), 4)]
    if tiles is not None:
        big = np.load(tiles, mmap_mode="r")
        corners = [(r, c) for r in range(0, big.shape[0], TILE) for c in range(0, big.shape[1], TILE)]
        for r, c in corners[:max_tiles]:
            tile = np.ascontiguousarray(big[r : r + TILE, c : c + TILE])
            blob = hsicodec.compress(tile, bpppb=tile_rate)
            out[f"{tiles.stem}[{r},{c}]@{tile_rate:g}"] = [
                len(blob),
                round(float(psnr(tile, hsicodec.decompress(blob)[0])), 4),
            ]
    return out


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "hsi")
    ap.add_argument("--scenes", nargs="+", default=list(VALIDATION))
    ap.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    ap.add_argument("--max-rates", type=float, nargs="*", default=list(MAX_RATES), help="rates at effort max")
    ap.add_argument("--tiles", type=Path, help="a big scene (.npy, rows x cols x bands) whose 512^2 tiles to add")
    ap.add_argument("--max-tiles", type=int, default=4)
    ap.add_argument("--tile-rate", type=float, default=0.05, help="bpppb of the tiles")
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    ap.add_argument("--against", type=Path, help="a saved JSON to compare with")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    scenes, rates, max_rates = tuple(args.scenes), tuple(args.rates), tuple(args.max_rates)
    got = figures(args.data, scenes, rates, args.tiles, args.max_tiles, args.tile_rate, max_rates)
    if args.out:
        args.out.write_text(json.dumps(got, indent=0) + "\n")
    base = json.loads(args.against.read_text()) if args.against else {}
    differ = 0
    for name, (size, db) in got.items():
        note = ""
        if name in base and base[name] != [size, db]:
            differ += 1
            note = f"   differs: {db - base[name][1]:+.4f} dB, {size - base[name][0]:+d} bytes"
        print(f"{name:>44} {size:>9} B {db:9.4f} dB{note}")
    print(f"{len(got)} files, {differ} differ from {args.against}" if args.against else f"{len(got)} files")
    print(f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

"""Reduced-resolution decoding: its speed against a full decode, and what it gives against block means.

Builds (or reuses) a scene of real spectra as tools/bench_scale.py does (default 1024 x 1024 x 189 from
jasper_ridge), compresses it once at --bpppb with the default layer and tiling (``compress_file``), then in
this one process times a full ``decompress`` and a ``decompress(reduce=N)``, alternating, --repeat times
each (medians), and prints their ratio. It then prints the PSNR against the 2^N block means of the
original cube of the reduced read, and of the rounded block means of the full decode (what a reduced
read gave before it decoded only the coarse levels), and the PSNR between those two.

    python tools/bench_reduce.py [--size 1024x1024x189] [--bpppb 0.05] [--reduce 2] [--repeat 3] [--tile N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale  # noqa: E402  (the scene builder: tools/ is not a package)

import hsicodec  # noqa: E402
from hsicodec.coding.reduce import block_mean  # noqa: E402
from hsicodec.metrics import psnr  # noqa: E402


def _chunked_block_mean(cube: np.ndarray, n: int) -> np.ndarray:
    """block_mean of a (memory-mapped) cube, band chunk by band chunk (float64 temporaries stay small)."""
    parts = [block_mean(np.asarray(cube[:, :, b : b + 16]), n) for b in range(0, cube.shape[2], 16)]
    return np.concatenate(parts, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=bench_scale.parse_size, default=(1024, 1024, 189), help="ROWSxCOLSxBANDS")
    ap.add_argument("--data", type=Path, default=bench_scale.DATA, help="folder of the source *.npy scenes")
    ap.add_argument("--bpppb", type=float, default=0.05)
    ap.add_argument("--reduce", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tile", type=int, help="tile size (default: compress_file's: 512 above 2**26 values; 0: none)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hsicodec-bench-reduce")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    info = bench_scale.scene_for(tuple(args.size), args.data, bench_scale.SOURCES, args.work, print)
    tag = "x".join(map(str, args.size))
    path = args.work / f"scene_{tag}_{args.bpppb}_{'auto' if args.tile is None else args.tile}.hsim"
    if not path.exists():
        st = hsicodec.compress_file(info["path"], path, bpppb=args.bpppb, tile=args.tile, force=True)
        print(f"compressed {tag} at {st['bpppb']:.4f} bpppb in {st['total_seconds']:.1f} s (tiles: {st.get('tiles')})")
    n = args.reduce
    hsicodec.decompress(path, window=(0, 0, 8, 8))  # warm-up: imports, caches
    full_t, red_t = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        full, _ = hsicodec.decompress(path)
        t1 = time.perf_counter()
        red, _ = hsicodec.decompress(path, reduce=n)
        full_t.append(t1 - t0)
        red_t.append(time.perf_counter() - t1)
    tf, tr = statistics.median(full_t), statistics.median(red_t)
    print(f"{tag} at {args.bpppb} bpppb, {hsicodec.file_info(path)['file_bytes']} bytes: full decode {tf:.3f} s, "
          f"reduce {n} {tr:.3f} s (median of {args.repeat}): ratio {tr / tf:.3f}")  # fmt: skip
    orig_means = _chunked_block_mean(np.load(info["path"], mmap_mode="r"), n)
    full_means = _chunked_block_mean(full, n)
    old = np.rint(full_means)  # the previous reduced read: block means of the full decode, rounded
    print(f"PSNR against the original's {1 << n}x{1 << n} block means: reduce {n} {psnr(orig_means, red):.2f} dB, "
          f"block means of the full decode {psnr(orig_means, old):.2f} dB; reduce {n} against the block means of "
          f"the full decode {psnr(full_means, red):.2f} dB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

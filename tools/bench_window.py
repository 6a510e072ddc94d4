"""Window decoding cost against window size (random access into a `.hsim`).

Encodes one scene once, then decodes square windows of growing size and the
full cube (median of --repeat runs each); prints a table and writes
bench/window.json. The cost should grow with the window's pixel count.

    python tools/bench_window.py [--scene jasper_ridge] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hsicodec.codec.api import compress, decompress

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="jasper_ridge")
    ap.add_argument("--bpppb", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cube = np.load(DATA / f"{args.scene}.npy")
    data = compress(cube, bpppb=args.bpppb, model="hsi-grid-v1")
    h, w, _ = cube.shape
    full = None
    rows = []
    for size in [8, 16, 32, 64, min(h, w)]:
        win = (0, 0, min(size, h), min(size, w))
        decompress(data, window=win)  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            decompress(data, window=win)
            times.append(time.perf_counter() - t0)
        rows.append({"window": f"{win[2]}x{win[3]}", "pixels": win[2] * win[3], "decode_s": statistics.median(times)})
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        full, _ = decompress(data)
        times.append(time.perf_counter() - t0)
    rows.append({"window": f"full {h}x{w}", "pixels": h * w, "decode_s": statistics.median(times)})
    print(f"{args.scene} {cube.shape}, {len(data)} bytes")
    print(f"{'window':>14} {'pixels':>8} {'decode ms':>10}")
    for r in rows:
        print(f"{r['window']:>14} {r['pixels']:>8} {r['decode_s'] * 1000:>10.2f}")
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "window.json").write_text(
        json.dumps({"scene": args.scene, "bytes": len(data), "rows": rows}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

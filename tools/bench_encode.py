"""Encode/decode speed on a 145 × 145 × 220 cube (the Indian Pines size), models loaded once.

The cube is real data resampled to that size: a 145 × 145 crop of ABU beach-1
(AVIRIS, 188 bands) with its spectra linearly resampled to 220 bands.
Prints a table and writes bench/encode.json: compress time per effort and
decompress time (median of --repeat runs), the inner-loop step of the native
kernel vs torch autograd, and the threads used.

    python tools/bench_encode.py [--repeat 3] [--efforts fast default max]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from hsicodec import metrics
from hsicodec.codec.api import compress, decompress, load_codec_model
from hsicodec.layers.network.siren import native_available

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"

T = TypeVar("T")


def test_cube() -> np.ndarray:
    src = np.load(DATA / "abu_beach_1.npy")[:145, :145].astype(np.float64)
    x_old = np.linspace(0.0, 1.0, src.shape[2])
    x_new = np.linspace(0.0, 1.0, 220)
    flat = src.reshape(-1, src.shape[2])
    out = np.empty((flat.shape[0], 220))
    for i in range(flat.shape[0]):
        out[i] = np.interp(x_new, x_old, flat[i])
    return np.clip(np.round(out), -32768, 32767).astype(np.int16).reshape(145, 145, 220)


def median_time(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall-clock time of `repeat` (>= 1) calls of fn, and the last call's result."""
    times: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def step_ratio(cube: np.ndarray, repeat: int) -> dict:
    """One inner-loop gradient step on the whole cube: native kernel vs torch autograd."""
    from hsicodec.codec.analysis import analyse
    from hsicodec.layers.network.fit import fit_latents

    cm = load_codec_model()
    an = analyse(cube, cm)
    out = {}
    for backend in ("native", "numpy", "torch"):
        if backend == "native" and not native_available():
            continue
        if backend == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                continue
        fit_latents(cm, an.targets, 1, backend=backend)  # warm-up
        t, _ = median_time(partial(fit_latents, cm, an.targets, 3, backend=backend), repeat)
        out[backend] = t / 3
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--efforts", nargs="*", default=["fast", "default", "max"])
    ap.add_argument("--bpppb", type=float, default=0.05)
    args = ap.parse_args()
    cube = test_cube()
    load_codec_model()  # load once, outside the timings
    rows = []
    threads = os.cpu_count()
    for eff in args.efforts:
        rep = 1 if eff == "max" else args.repeat
        t_enc, data = median_time(partial(compress, cube, bpppb=args.bpppb, effort=eff), rep)
        t_dec, (rec, _) = median_time(partial(decompress, data), args.repeat)
        q = metrics.quality_report(cube, rec, len(data))
        rows.append({"effort": eff, "compress_s": t_enc, "decompress_s": t_dec, "runs": rep, **q})
    steps = step_ratio(cube, args.repeat)
    result = {
        "cube": "145x145x220 int16 (ABU beach-1 crop, resampled)",
        "threads": threads,
        "native": native_available(),
        "rows": rows,
        "inner_step_s": steps,
        "native_vs_torch_step": (steps["torch"] / steps["native"]) if "torch" in steps and "native" in steps else None,
    }
    print(f"145x145x220 cube, {threads} threads, native kernel: {native_available()}")
    print(f"{'effort':>8} {'compress s':>11} {'decompress s':>13} {'bpppb':>8} {'PSNR dB':>8}")
    for r in rows:
        print(
            f"{r['effort']:>8} {r['compress_s']:>11.2f} {r['decompress_s']:>13.3f} {r['bpppb']:>8.4f} {r['psnr']:>8.2f}"
        )
    print("inner-loop step: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in steps.items()))
    if result["native_vs_torch_step"]:
        print(f"native step is {result['native_vs_torch_step']:.1f}x faster than a torch autograd step")
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "encode.json").write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

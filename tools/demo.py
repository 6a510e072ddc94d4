"""Demo: compress and decompress the bundled sample cube with the CLI, print rate, quality, times.

The sample is a 64×64×198 crop of Jasper Ridge (AVIRIS), a scene the bundled
model never saw in training.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hsicodec import metrics
from hsicodec.data import sample_path


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hsicodec.cli", *args], check=True)
    return time.perf_counter() - t0


def main() -> None:
    src = sample_path()
    cube = np.load(src)
    print(f"sample: {src.name} {cube.shape[0]}x{cube.shape[1]}x{cube.shape[2]} {cube.dtype}")
    print(
        f"{'target':>8} {'bytes':>7} {'bpppb':>8} {'PSNR dB':>8} {'SAM deg':>8} {'max err':>8} {'comp s':>7} "
        f"{'decomp s':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        targets = [(str(t), ["--bpppb", str(t)]) for t in (0.02, 0.05, 0.1)]
        targets += [("E<=4", ["--max-error", "4"]), ("lossless", ["--lossless"])]
        for target, option in targets:
            hsim = Path(tmp) / f"sample_{target}.hsim"
            out = Path(tmp) / f"sample_{target}.npy"
            tc = run(["compress", str(src), str(hsim), *option, "--quiet"])
            td = run(["decompress", str(hsim), str(out), "--quiet"])
            rec = np.load(out)
            q = metrics.quality_report(cube, rec, hsim.stat().st_size)
            print(
                f"{target:>8} {q['bytes']:>7} {q['bpppb']:>8.4f} {q['psnr']:>8.2f} {q['sam']:>8.3f} "
                f"{q['max_abs_error']:>8.0f} {tc:>7.2f} {td:>8.2f}"
            )
    print("times are whole CLI runs (process start and model load included); see tools/bench_rd.py for codec times")


if __name__ == "__main__":
    main()

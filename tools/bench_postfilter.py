"""The map layer's post filter at equal bits on the validation scenes (issue #21, point 3).

python tools/bench_postfilter.py [--scenes jasper_ridge ...] [--rates 0.005 0.01 ...]

For each scene and rate, the default encoder with and without ``post_filter`` is run at the target and
at 1.06 × the target; PSNR (hsicodec.metrics, METHOD.md section 4: the whole file counted) is
interpolated linearly in log bpppb to the exact rate, so both variants are compared at equal total
bits (the filter's header bytes included). Decode times: median of 5 whole-file decodes of each
variant's file at the target, on this machine's cores. Writes bench/postfilter.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec import metrics
from hsicodec.codec.cube import compress
from hsicodec.format.container import decode_hsim

SCENES = ("jasper_ridge", "pavia_centre", "abu_urban_5")  # validation: never used to fit anything
RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
ABOVE = 1.06
ROOT = Path(__file__).resolve().parents[1]


def _point(cube: np.ndarray, rate: float, post: bool) -> tuple[float, float, bytes, float]:
    t0 = time.perf_counter()
    data = compress(cube, bpppb=rate, post_filter=post)
    enc_s = time.perf_counter() - t0
    rec = hsicodec.decompress(data)[0]
    return 8 * len(data) / cube.size, metrics.psnr(cube, rec), data, enc_s


def _at(points: list, rate: float) -> float:
    """PSNR at exactly ``rate`` from two (bpppb, psnr) points, linear in log bpppb."""
    (r1, p1), (r2, p2) = sorted(points)
    if r2 <= r1 * (1 + 1e-9):
        return max(p1, p2)
    return p1 + (p2 - p1) * (np.log(rate) - np.log(r1)) / (np.log(r2) - np.log(r1))


def _decode_times(off: bytes, on: bytes, runs: int = 7) -> dict:
    """Median whole-file decode seconds of both files (runs interleaved, so load on the machine hits both
    alike), and of the map layer's parts of the filtered file: its maps' decode and its filter alone."""
    from hsicodec.layers.maps.postfilter import parse_post
    from hsicodec.layers.maps.postfit import decoded_parts

    times: dict = {"off": [], "on": [], "maps": [], "filter": []}
    codec = decode_hsim(on).header["codec"]
    c = int(decode_hsim(on).header["shape"][2])
    for _ in range(runs):
        for name, data in (("off", off), ("on", on)):
            t0 = time.perf_counter()
            hsicodec.decompress(data)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        parts = decoded_parts(on, c)
        times["maps"].append(time.perf_counter() - t0)
        if parts is not None and "pf" in codec:
            t0 = time.perf_counter()
            parse_post(codec["pf"], parts[0].shape[2], 0).apply(parts[0])
            times["filter"].append(time.perf_counter() - t0)
    return {key: statistics.median(v) if v else 0.0 for key, v in times.items()}


def run(scenes, rates, data_dir: Path) -> dict:
    out: dict = {"date": date.today().isoformat(), "machine": f"{platform.machine()}", "scenes": {}}
    for scene in scenes:
        cube = np.load(data_dir / f"{scene}.npy")
        rows = []
        for rate in rates:
            row: dict = {"rate": rate}
            files = {}
            for name, post in (("off", False), ("on", True)):
                a = _point(cube, rate, post)
                files[name] = a[2]
                b = _point(cube, rate * ABOVE, post)
                pf = decode_hsim(a[2]).header["codec"].get("pf")
                row[name] = {
                    "psnr": float(_at([(a[0], a[1]), (b[0], b[1])], rate)),
                    "bpppb": a[0],
                    "psnr_at_target": a[1],
                    "filter_bytes": 0 if pf is None else len(pf),
                    "encode_s": a[3],
                }
            dt = _decode_times(files["off"], files["on"])
            row["off"]["decode_s"], row["on"]["decode_s"] = dt["off"], dt["on"]
            row["maps_decode_s"], row["filter_s"] = dt["maps"], dt["filter"]
            row["gain_db"] = row["on"]["psnr"] - row["off"]["psnr"]
            row["decode_ratio"] = row["on"]["decode_s"] / row["off"]["decode_s"]
            row["map_layer_ratio"] = (dt["maps"] + dt["filter"]) / dt["maps"]
            rows.append(row)
            print(
                f"{scene} {rate:g}: {row['off']['psnr']:.2f} -> {row['on']['psnr']:.2f} dB "
                f"({row['gain_db']:+.3f}; filter {row['on']['filter_bytes']} B; decode x{row['decode_ratio']:.2f}, "
                f"map layer x{row['map_layer_ratio']:.3f})",
                flush=True,
            )
        out["scenes"][scene] = {"shape": list(cube.shape), "rows": rows}
    return out


def markdown(res: dict) -> str:
    rates = [r["rate"] for r in next(iter(res["scenes"].values()))["rows"]]
    lines = [
        "# Post filter over the decoded maps at equal bits",
        "",
        f"Generated by `python tools/bench_postfilter.py` ({res['date']}, {res['machine']}). Validation scenes "
        "only; PSNR interpolated to the exact rate (whole file counted, filter bytes included); "
        "gain = with − without; x = decode time with / without: whole file (median of 7 interleaved decodes), "
        "and in the table below the map layer alone (its maps' decode + the filter, / the maps' decode).",
        "",
        "| scene | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|" + "---|" * len(rates),
    ]
    for scene, s in res["scenes"].items():
        cells = [f"{r['gain_db']:+.3f} dB ({r['on']['filter_bytes']} B, x{r['decode_ratio']:.2f})" for r in s["rows"]]
        lines.append(f"| {scene} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| scene | rate | without dB | with dB | filter bytes | encode s without / with | map layer decode x |",
        "|---|---|---|---|---|---|---|",
    ]
    for scene, s in res["scenes"].items():
        for r in s["rows"]:
            lines.append(
                f"| {scene} | {r['rate']:g} | {r['off']['psnr']:.3f} | {r['on']['psnr']:.3f} | "
                f"{r['on']['filter_bytes']} | {r['off']['encode_s']:.1f} / {r['on']['encode_s']:.1f} | "
                f"{r['map_layer_ratio']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hsi")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "postfilter")
    args = ap.parse_args()
    res = run(args.scenes, args.rates, args.data)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

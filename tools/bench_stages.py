"""The map layer's optional stages at equal bits on the validation scenes (issue #21, points 2 and 3).

python tools/bench_stages.py [--scenes jasper_ridge ...] [--rates 0.005 0.01 ...] [--variants ...]
    [--scale-scene /tmp/hsicodec-bench-scale/scene_1024x1024x189_jasper_ridge.npy]

Variants (each a set of ``compress`` options): ``synthesis`` (the nonlinear synthesis, codec.ns),
``post_filter`` (codec.pf), ``synthesis+post_filter`` and ``all`` (both with the learned entropy model).
For each scene and rate, the default encoder without and with each variant is run at the target and at
1.06 × the target; PSNR (hsicodec.metrics, METHOD.md section 4: the whole file counted) is interpolated
linearly in log bpppb to the exact rate, so the variants are compared at equal total bits (their header
bytes included). Decode times: median of 7 whole-file decodes of each file at the target, interleaved with
the default file's, on this machine's cores; "map layer x" = (the maps' decode + the stages) / the maps'
decode. Writes bench/stages.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
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
VARIANTS = {
    "synthesis": {"synthesis": True},
    "post_filter": {"post_filter": True},
    "synthesis+post_filter": {"synthesis": True, "post_filter": True},
    "all": {"synthesis": True, "post_filter": True, "learned_entropy": True},
}
ROOT = Path(__file__).resolve().parents[1]


def _point(cube: np.ndarray, rate: float, options: dict) -> tuple[float, float, bytes, float]:
    t0 = time.perf_counter()
    data = compress(cube, bpppb=rate, **options)
    enc_s = time.perf_counter() - t0
    rec = hsicodec.decompress(data)[0]
    return 8 * len(data) / cube.size, metrics.psnr(cube, rec), data, enc_s


def _at(points: list, rate: float) -> float:
    """PSNR at exactly ``rate`` from two (bpppb, psnr) points, linear in log bpppb."""
    (r1, p1), (r2, p2) = sorted(points)
    if r2 <= r1 * (1 + 1e-9):
        return max(p1, p2)
    return p1 + (p2 - p1) * (np.log(rate) - np.log(r1)) / (np.log(r2) - np.log(r1))


def _stage_bytes(data: bytes) -> int:
    codec = decode_hsim(data).header["codec"]
    return sum(len(codec.get(key, b"")) for key in ("ns", "pf"))


def _decode_times(off: bytes, on: bytes, runs: int = 7) -> dict:
    """Median whole-file decode seconds of both files (runs interleaved, so load on the machine hits both
    alike), and of the map layer's parts of the second: its maps' decode alone, and with its stages."""
    from hsicodec.format import compact
    from hsicodec.layers.maps import coding as coefmaps
    from hsicodec.layers.maps.coding import parse_params
    from hsicodec.layers.maps.stagefit import decoded_parts
    from hsicodec.layers.maps.stages import apply_stages, with_stages

    times: dict = {"off": [], "on": [], "maps": [], "stages": []}
    header = decode_hsim(on).header
    h, w, c = (int(v) for v in header["shape"])
    codec = compact.unpack_codec(header["codec"], coefmaps.MAX_MAPS, coefmaps.MAX_LEVELS)[0]
    for _ in range(runs):
        for name, data in (("off", off), ("on", on)):
            t0 = time.perf_counter()
            hsicodec.decompress(data)
            times[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        parts = decoded_parts(on, c)
        times["maps"].append(time.perf_counter() - t0)
        if parts is not None:
            t0 = time.perf_counter()
            apply_stages(parts[0], with_stages(parse_params(codec["rl"], h, w, min(c, coefmaps.MAX_MAPS)), codec))
            times["stages"].append(time.perf_counter() - t0)
    return {key: statistics.median(v) if v else 0.0 for key, v in times.items()}


def scale_row(path: Path, rate: float, variants: list[str], size: int = 512) -> dict:
    """Encode and decode time at a real tile size: the top-left size² tile of the cube in ``path`` (e.g. the
    1024² scene of tools/bench_scale.py), the default file against each variant's (decode: median of 7,
    interleaved; encode: one, after a warm-up)."""
    cube = np.ascontiguousarray(np.load(path, mmap_mode="r")[:size, :size])
    compress(cube[:16, :16])  # models and caches loaded
    out: dict = {"path": str(path), "shape": list(cube.shape), "rate": rate, "variants": {}}
    files = {}
    for name in ["off", *variants]:
        bpppb, psnr, data, enc_s = _point(cube, rate, {} if name == "off" else VARIANTS[name])
        files[name] = data
        out["variants"][name] = {"psnr": psnr, "bpppb": bpppb, "encode_s": enc_s, "stage_bytes": _stage_bytes(data)}
    offs = []
    for name in variants:
        dt = _decode_times(files["off"], files[name])
        out["variants"][name]["decode_s"] = dt["on"]
        out["variants"][name]["decode_ratio"] = dt["on"] / dt["off"]
        offs.append(dt["off"])
        out["variants"]["off"]["decode_s"] = statistics.median(offs)  # over every pairing
        print(f"{size}^2 tile {name}: decode x{dt['on'] / dt['off']:.2f}", flush=True)
    return out


def run(scenes, rates, variants, data_dir: Path) -> dict:
    out: dict = {"date": date.today().isoformat(), "machine": f"{platform.machine()}", "variants": variants,
                 "scenes": {}}  # fmt: skip
    for scene in scenes:
        cube = np.load(data_dir / f"{scene}.npy")
        rows = []
        for rate in rates:
            row: dict = {"rate": rate}
            files = {}
            for name in ["off", *variants]:
                options = {} if name == "off" else VARIANTS[name]
                a = _point(cube, rate, options)
                files[name] = a[2]
                b = _point(cube, rate * ABOVE, options)
                row[name] = {
                    "psnr": float(_at([(a[0], a[1]), (b[0], b[1])], rate)),
                    "bpppb": a[0],
                    "psnr_at_target": a[1],
                    "stage_bytes": _stage_bytes(a[2]),
                    "encode_s": a[3],
                }
            for name in variants:
                dt = _decode_times(files["off"], files[name])
                v = row[name]
                v["decode_ratio"] = dt["on"] / dt["off"]
                v["map_layer_ratio"] = (dt["maps"] + dt["stages"]) / dt["maps"]
                v["gain_db"] = v["psnr"] - row["off"]["psnr"]
                print(
                    f"{scene} {rate:g} {name}: {row['off']['psnr']:.2f} -> {v['psnr']:.2f} dB ({v['gain_db']:+.3f}; "
                    f"stages {v['stage_bytes']} B; decode x{v['decode_ratio']:.2f}, "
                    f"map layer x{v['map_layer_ratio']:.3f})",
                    flush=True,
                )
            rows.append(row)
        out["scenes"][scene] = {"shape": list(cube.shape), "rows": rows}
    return out


def markdown(res: dict) -> str:
    rates = [r["rate"] for r in next(iter(res["scenes"].values()))["rows"]]
    lines = [
        "# The map layer's optional stages at equal bits",
        "",
        f"Generated by `python tools/bench_stages.py --variants {' '.join(res['variants'])}"
        + (f" --scale-scene {res['scale']['path']}" if "scale" in res else "")
        + f"` ({res['date']}, "
        f"{res['machine']}). Validation scenes only; PSNR interpolated to the exact rate (whole file counted, the "
        "stages' bytes included); gain = with − without (the default file); x = whole-file decode time with / "
        "without (median of 7 interleaved decodes). Variants: synthesis = `synthesis=True` (codec.ns), post_filter "
        "= `post_filter=True` (codec.pf), all = both + `learned_entropy=True`. The encoder keeps a stage only "
        "where it measures better at the same size, so a gain is never much below zero.",
    ]
    for name in res["variants"]:
        lines += ["", f"## {name}", "", "| scene | " + " | ".join(f"{r:g}" for r in rates) + " |",
                  "|---|" + "---|" * len(rates)]  # fmt: skip
        for scene, s in res["scenes"].items():
            cells = [
                f"{r[name]['gain_db']:+.3f} dB ({r[name]['stage_bytes']} B, x{r[name]['decode_ratio']:.2f})"
                for r in s["rows"]
            ]
            lines.append(f"| {scene} | " + " | ".join(cells) + " |")
    if "scale" in res:
        sc = res["scale"]
        lines += ["", f"## At a real tile size: {sc['shape'][0]}² × {sc['shape'][2]} at {sc['rate']:g} bpppb", "",
                  f"The top-left tile of `{Path(sc['path']).name}` (`--scale-scene`; run by "
                  f"`{sc.get('command', '')}`); "
                  "decode: median of 7 interleaved whole-file decodes; encode: one, warm.", "",
                  "| variant | PSNR dB | bpppb | stage bytes | encode s | decode s | decode x |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, v in sc["variants"].items():
            ratio = f"{v['decode_ratio']:.2f}" if "decode_ratio" in v else "1"
            lines.append(f"| {'default' if name == 'off' else name} | {v['psnr']:.3f} | {v['bpppb']:.4f} | "
                         f"{v['stage_bytes']} | {v['encode_s']:.1f} | {v['decode_s']:.3f} | {ratio} |")  # fmt: skip
    lines += [
        "",
        "## Every point",
        "",
        "| scene | rate | variant | dB at the rate | gain | stage bytes | encode s (default / variant) | map layer x |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scene, s in res["scenes"].items():
        for r in s["rows"]:
            off = r["off"]
            lines.append(f"| {scene} | {r['rate']:g} | default | {off['psnr']:.3f} | | | {off['encode_s']:.1f} | |")
            for name in res["variants"]:
                v = r[name]
                lines.append(
                    f"| {scene} | {r['rate']:g} | {name} | {v['psnr']:.3f} | {v['gain_db']:+.3f} | "
                    f"{v['stage_bytes']} | {off['encode_s']:.1f} / {v['encode_s']:.1f} | {v['map_layer_ratio']:.3f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hsi")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--scale-scene", type=Path, default=None, help="a large cube (.npy): also time a 512² tile of it")
    ap.add_argument("--scale-only", action="store_true", help="only the --scale-scene row, added to the last run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "stages")
    args = ap.parse_args()
    if args.scale_only:  # keep the validation rows of the last run
        res = json.loads(args.out.with_suffix(".json").read_text())
    else:
        res = run(args.scenes, args.rates, args.variants, args.data)
    if args.scale_scene is not None:
        res["scale"] = scale_row(args.scale_scene, 0.05, args.variants)
        res["scale"]["command"] = "python tools/bench_stages.py " + " ".join(sys.argv[1:])
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

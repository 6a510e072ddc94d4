#!/usr/bin/env python
"""Side information of small chunks, with their own spectral stage and with one shared stage (issue #22).

Every full 64 x 64 chunk of each scene is compressed at the rate target twice: as a file of its own (its
mean and principal spectra inside), and on one spectral stage fitted on the whole scene and stored once
(hsicodec.coding.shared, as the zarr codec's ``with_shared_basis`` and ``--shared-basis`` tiles do). Printed
and written to bench/shared.json and bench/shared.md: per scene, the median share of a chunk's bytes that
is not its coefficient-map stream (header, container, spectral stage), the mean PSNR at equal rate, and
the stage's own size (stored once per scene or array).

    python tools/bench_shared.py                                   # validation scenes and abu_beach_1, 0.05 bpppb
    python tools/bench_shared.py --scenes jasper_ridge --bpppb 0.1 --chunk 32
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import hsicodec  # noqa: E402
from hsicodec.codec.decode import parse_codec  # noqa: E402
from hsicodec.coding.shared import PixelMoments  # noqa: E402
from hsicodec.format.container import HsimReader  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hsi"
SCENES = ("jasper_ridge", "pavia_centre", "abu_urban_5", "abu_beach_1")


def side_share(data: bytes) -> float:
    """The share of a file's bytes that is not its coefficient-map stream (1.0 for other layers' files)."""
    with HsimReader(data) as r:
        if "c" not in r.section_names:
            return 1.0
        p = parse_codec(r.header, None)
        return 1.0 - (len(r.section("c")) - (p.split or 0)) / len(data)


def bench_scene(name: str, chunk: int, rate: float) -> dict:
    cube = np.load(DATA / f"{name}.npy")
    moments = PixelMoments(cube.shape[2])
    moments.add(cube)
    stage = moments.fit()
    rows: dict[str, list] = {"own": [], "shared": []}
    for r0 in range(0, cube.shape[0] - chunk + 1, chunk):
        for c0 in range(0, cube.shape[1] - chunk + 1, chunk):
            part = np.ascontiguousarray(cube[r0 : r0 + chunk, c0 : c0 + chunk])
            for kind, shared in (("own", None), ("shared", stage)):
                data = hsicodec.compress(part, bpppb=rate, shared_spectral=shared)
                back, _ = hsicodec.decompress(data, shared_spectral=shared)
                rows[kind].append((side_share(data), hsicodec.psnr(part, back), len(data)))
    out: dict = {"scene": name, "shape": list(cube.shape), "chunks": len(rows["own"]), "stage_bytes": len(stage.data)}
    for kind, r in rows.items():
        a = np.asarray(r)
        out[kind] = {"side_median": float(np.median(a[:, 0])), "side_max": float(a[:, 0].max()),
                     "psnr_mean": float(a[:, 1].mean()), "bytes_mean": float(a[:, 2].mean())}  # fmt: skip
    out["psnr_gain_db"] = out["shared"]["psnr_mean"] - out["own"]["psnr_mean"]
    return out


def markdown(doc: dict) -> str:
    lines = [
        "# Side information of small chunks: own spectral stage vs one shared stage",
        "",
        f"`python tools/bench_shared.py` ({doc['chunk']} x {doc['chunk']} chunks at {doc['bpppb']} bpppb, every "
        "full chunk of each scene; the shared stage: 32 principal spectra fitted on the whole scene, stored once). "
        "Side information = the share of a chunk file's bytes that is not its coefficient-map stream.",
        "",
        "| scene | chunks | side, own: median (max) | side, shared: median (max) | PSNR own | PSNR shared | gain dB | "
        "stage bytes (once) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in doc["scenes"]:
        o, h = s["own"], s["shared"]
        lines.append(
            f"| {s['scene']} | {s['chunks']} | {o['side_median']:.1%} ({o['side_max']:.1%}) | "
            f"{h['side_median']:.1%} ({h['side_max']:.1%}) | {o['psnr_mean']:.2f} | {h['psnr_mean']:.2f} | "
            f"{s['psnr_gain_db']:+.2f} | {s['stage_bytes']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--bpppb", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "shared.json")
    args = ap.parse_args(argv)
    doc = {"chunk": args.chunk, "bpppb": args.bpppb, "scenes": []}
    for name in args.scenes:
        s = bench_scene(name, args.chunk, args.bpppb)
        doc["scenes"].append(s)
        print(f"{name:14s} side own {s['own']['side_median']:.1%} shared {s['shared']['side_median']:.1%}  "
              f"PSNR {s['own']['psnr_mean']:.2f} -> {s['shared']['psnr_mean']:.2f} dB ({s['psnr_gain_db']:+.2f})",
              flush=True)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

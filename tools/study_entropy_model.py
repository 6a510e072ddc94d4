"""Measure the learned entropy model (``ec = 2``) against the 26 context classes (``ec = 1``) on real maps.

    python tools/study_entropy_model.py [--model hsicodec/models/hsi-lem-v1.hsmodel] [--rates 0.01 0.05 0.2]
        [--train] [--repeats 3] [--json bench/entropy_model.json]

For every validation scene of the grid model's card (and with ``--train`` every training scene) and
rate: the map layer's quantized symbols of the default-effort file (``hsicodec.compress``, cached like
``tools/train_entropy_model.py`` does) are coded both ways with the same quantization, so the comparison
is at equal distortion:

* ``ec = 1``: the encoder's stream (26 classes, fitted base codes and offsets);
* ``ec = 2``: :func:`hsicodec.layers.maps.lem_coder.encode` with the model (mix weights chosen per file;
  it falls back to ``ec = 1`` where the model saves less than its header bytes), plus the header bytes it
  adds (model id, mix weights, their msgpack entries): the real cost of the variant;
* ``net only``: the ideal code length under the coder's tables with every mix weight 4 (the network's
  codes wherever it is evaluated), to show what the per-file mixing adds;

and the map stream's decode time both ways (C++, median of ``--repeats``, 1 thread and all cores).

``--files R [R ...]``: also compress each validation scene at those rates with and without
``learned_entropy`` and time the whole ``hsicodec.decompress`` of both files (1 thread, CPU time, median of
``--repeats``): what the default-path rule (≤ 2× today's decode time) is about.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import lem, lem_coder
from hsicodec.models.modelfile import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_map_coder import timed  # noqa: E402  (medians of wall-clock and CPU seconds)
from train_entropy_model import CARD, DATA, collect  # noqa: E402  (the same files as training: one cache)

ROOT = Path(__file__).resolve().parents[1]


def one_file(sym: np.ndarray, levels: int, model: lem.EntropyModel, repeats: int) -> dict:
    """Bytes and decode times of one file's symbols under ec = 1 and ec = 2."""
    k, h, w = sym.shape
    ec1, p1 = cm.encode_symbols(sym, 0, levels, 0)
    ec2, p2 = lem_coder.encode(sym, 0, levels, 0, model)
    extra = lem.ID_BYTES + len(p2.mix) + lem_coder.HEADER_BYTES if p2.coder == cm.EC_LEARNED else 0
    np.testing.assert_array_equal(lem_coder.decode(ec2, p2, h, w) if p2.coder == cm.EC_LEARNED else sym, sym)
    all_net = lem_coder.codes(sym, p1, model, bytes([lem.MIX_DEN] * (levels + 1)))
    net_bits = float(lem_coder.table_bits(all_net, np.abs(sym)).sum())
    row = {
        "k": k,
        "symbols": int(sym.size),
        "ec1_bytes": len(ec1),
        "ec2_bytes": len(ec2) + extra,
        "ec2_used": p2.coder == cm.EC_LEARNED,
        "mix": list(p2.mix),
        "net_only_bytes": net_bits / 8 + lem.ID_BYTES + lem_coder.HEADER_BYTES,
        "ec1_ideal_bytes": float(lem_coder.table_bits(lem.class_codes(sym, p1), np.abs(sym)).sum()) / 8,
    }
    if repeats:
        for threads in (1, 0):
            one = timed(lambda t=threads: cm.decode_symbols(ec1, p1, h, w, t), repeats)
            two = timed(lambda t=threads: lem_coder.decode(ec2, p2, h, w, t), repeats) if row["ec2_used"] else one
            row[f"ec1_decode_s_t{threads}"], row[f"ec1_decode_cpu_s_t{threads}"] = one
            row[f"ec2_decode_s_t{threads}"], row[f"ec2_decode_cpu_s_t{threads}"] = two
    return row


def whole_files(scenes: list, rates: list, repeats: int) -> list:
    """Whole-file decode times (CPU s, 1 thread) of each scene's file with and without the learned model."""
    out = []
    for name in scenes:
        cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
        for rate in rates:
            plain = hsicodec.compress(cube, bpppb=rate)
            learned = hsicodec.compress(cube, bpppb=rate, learned_entropy=True)
            t1 = timed(lambda d=plain: hsicodec.decompress(d, threads=1), repeats)[1]
            t2 = timed(lambda d=learned: hsicodec.decompress(d, threads=1), repeats)[1]
            out.append({"scene": name, "rate": rate, "bytes": len(plain), "learned_bytes": len(learned),
                        "decode_cpu_s": t1, "learned_decode_cpu_s": t2})  # fmt: skip
            print(f"{name:14s} {rate:6g} whole decode {1000 * t1:7.1f} ms → {1000 * t2:7.1f} ms ({t2 / t1:.2f}×)")
    return out


def markdown(rows: list, model: lem.EntropyModel) -> list:
    out = [
        f"Model `{model.sha256[:16]}` ({model.hidden} hidden units, {model.macs_per_symbol} multiply-adds per "
        "evaluated symbol). Map-stream bytes at equal quantization (the default-effort file's symbols); "
        "saved = 1 − ec2 / ec1 (header bytes of ec = 2 included); decode = the map stream alone, C++, 1 thread, "
        "CPU time (median).",
        "",
        "| scene | role | bpppb | k | ec = 1 B | ec = 2 B | saved | net only (no mixing) | mix weights | "
        "decode ec = 1 | decode ec = 2 | × |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t1, t2 = r.get("ec1_decode_cpu_s_t1"), r.get("ec2_decode_cpu_s_t1")
        times = f"{1000 * t1:.1f} ms | {1000 * t2:.1f} ms | {t2 / t1:.1f}" if t1 else " | | "
        saved, net = (100 * (1 - r[key] / r["ec1_bytes"]) for key in ("ec2_bytes", "net_only_bytes"))
        out.append(
            f"| {r['scene']} | {r['role']} | {r['rate']:g} | {r['k']} | {r['ec1_bytes']} | {r['ec2_bytes']} | "
            f"{saved:+.2f} % | {net:+.2f} % | {''.join(map(str, r['mix'])) or '(ec = 1)'} | {times} |"
        )
    for role in ("validation", "train"):
        sel = [r for r in rows if r["role"] == role]
        if sel:
            a, b = sum(r["ec1_bytes"] for r in sel), sum(r["ec2_bytes"] for r in sel)
            out.append(f"\nAll {role} files: {a} → {b} bytes, {100 * (1 - b / a):+.2f} %.")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "hsicodec" / "models" / "hsi-lem-v1.hsmodel")
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.05, 0.2])
    ap.add_argument("--train", action="store_true", help="also the training scenes")
    ap.add_argument("--repeats", type=int, default=3, help="decode timings (0: none)")
    ap.add_argument("--files", nargs="*", type=float, default=[], help="rates of the whole-file decode timing")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    model = lem.from_model_file(load_model(args.model))
    card = json.loads(CARD.read_text())
    plan = [("validation", s) for s in card["val_scenes"]] + (
        [("train", s) for s in card["train_scenes"]] if args.train else []
    )
    rows = []
    for role, name in plan:
        data = collect([name], args.rates)
        for rate in args.rates:
            sym, levels = data[(name, rate)]
            row = {"scene": name, "role": role, "rate": rate, **one_file(sym, levels, model, args.repeats)}
            rows.append(row)
            saved = 100 * (1 - row["ec2_bytes"] / row["ec1_bytes"])
            print(f"{name:14s} {role:10s} {rate:6g} ec1 {row['ec1_bytes']:7d} B  ec2 {row['ec2_bytes']:7d} B  "
                  f"{saved:+6.2f} %  mix {row['mix']}", flush=True)  # fmt: skip
    print("\n".join(markdown(rows, model)))
    files = whole_files(card["val_scenes"], args.files, max(args.repeats, 1)) if args.files else []
    if args.json:
        command = "python tools/study_entropy_model.py " + " ".join(sys.argv[1:])
        doc = {"model": model.sha256, "command": command, "rows": rows, "files": files}
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

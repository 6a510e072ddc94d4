"""What the maps' local cross-correlation could buy the coefficient-map layer (issue #21: better contexts, a
better synthesis; an offline study, nothing of it is in the codec).

    python tools/study_cross_map.py [--rates 0.005 0.01 0.02 0.05 0.1 0.2] [--json bench/cross_map.json]

The principal-component maps are uncorrelated over the scene, but not locally: where the scene's spectra lean
away from the global principal axes, map j's wavelet coefficients follow map i's with a sign and a ratio that
hold over a neighbourhood. Two ways a decoder could use that, measured on the symbols of each validation
scene's default-effort file (``hsicodec.compress``), so at that file's own distortion and size:

1. **A sign context** (bits). Every nonzero symbol pays one raw bit for its sign today. For each nonzero symbol
   of map j ≥ 1, from what the decoder has before it (maps in order, subbands coarse to fine, two checkerboard
   passes: spec/hsim.md 10.5): per earlier map i the local regression weight w_i = Σ q_j q_i / (Σ q_i² + 1)
   over the parent subband's 3 × 3 window, the co-located 3 × 3 windows of the level's earlier siblings and,
   for a second-pass symbol, its subband's first-pass symbols in the 5 × 5 window; the prediction
   p = Σ_i w_i q_i; whether the sign is p's (p = 0 counts as "+") coded by an adaptive binary model per |p|
   bin (Krichevsky–Trofimov counts from ½, nothing in the header). With every earlier map, or the first two
   only. (Until 2026-12-06 a symbol with p = 0 counted as "not p's sign" whatever its sign, so a bin holding
   many of them looked nearly free: the saving was overstated, most on Pavia Centre, where map j's symbols
   often sit where the earlier maps' are zero. A bit-exact C++ coder of these contexts, built and measured
   that day, confirmed the corrected figures.)
2. **A cross-map estimate of the zeros** (distortion). After decoding every map is known: for each
   coefficient quantized to zero, p = Σ_{i≠j} w_i ĉ_i from the dequantized maps (w_i over the 5 × 5 window,
   regularised by a quarter step), clipped to the zero bin and scaled by one factor per level group (the
   encoder's least-squares fit, 3 bits each, counted). With every other map, or maps 0, j − 1, j + 1 only.

"worth" = the saving as dB at equal bits along the default codec's own RD curve in ``bench/rd.json`` (linear
in log rate between its points; n/a outside them), to set beside the gap to PCA + JPEG 2000; for part 2 the
PSNR gain less what the factors' bits would have bought. Writes the .json and a .md beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.codec.analysis import analyse
from hsicodec.codec.cube import load_codec_model
from hsicodec.coding import entropy
from hsicodec.evaluation.evaluate import psnr_at
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.encode import MAP_DEADZONES
from hsicodec.layers.maps.search import MapSearch
from hsicodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_report import write_report  # noqa: E402
from train_entropy_model import CARD, DATA, map_stream  # noqa: E402  (a file's map stream and parameters)

ROOT = Path(__file__).resolve().parents[1]
EDGES = (0.1, 0.3, 0.6, 1.0, 2.0, 4.0)  # |prediction| bins of the sign model: 0.1 and below is "no opinion"
ZERO_BIN = 1.0 - MAP_DEADZONES[0]  # |c| / step below it is a zero at the default effort's rounding threshold
FACTOR_BITS = 3  # each level group's factor in eighths, 0..7/8


def box(x: np.ndarray, r: int) -> np.ndarray:
    """Σ of x over the (2r + 1)² window around each entry (zero outside), by cumulative sums."""
    p = np.pad(x, r)
    c = np.zeros((p.shape[0] + 1, p.shape[1] + 1))
    c[1:, 1:] = p.cumsum(0).cumsum(1)
    n = 2 * r + 1
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


def _kt_length(ones: int, zeros: int) -> float:
    """Bits of any binary sequence with these counts under the Krichevsky–Trofimov estimator."""
    from math import lgamma, log, pi

    return -(lgamma(ones + 0.5) + lgamma(zeros + 0.5) - log(pi) - lgamma(ones + zeros + 1)) / log(2)


def sign_bits(sym: np.ndarray, levels: int, first_maps: int | None = None) -> tuple[int, float]:
    """(signs of maps ≥ 1, their adaptive code length in bits) with predictions from the earlier maps (all,
    or the first ``first_maps``)."""
    k, h, w = sym.shape
    bands, parents = cm._stream_layout(h, w, levels)
    q = sym.astype(np.float64)
    bins, agree = [], []
    for j in range(1, k):
        for b, (_grp, ori, rs, cs) in enumerate(bands):
            qj = q[j, rs, cs]
            if not qj.any():
                continue
            rows, cols = qj.shape
            late = cm.second_pass(rows, cols)
            pred = np.zeros((rows, cols))
            for i in range(j if first_maps is None else min(j, first_maps)):
                qi = q[i, rs, cs]
                s, d = np.zeros((rows, cols)), np.zeros((rows, cols))
                if b in parents:
                    _, _, prs, pcs = bands[parents[b]]
                    pj, pi = q[j, prs, pcs], q[i, prs, pcs]
                    s += cm._gather(box(pj * pi, 1), rows, cols, 2)
                    d += cm._gather(box(pi * pi, 1), rows, cols, 2)
                for sib in range(b - ori + 1, b) if ori >= 2 else ():
                    _, _, srs, scs = bands[sib]
                    sj, si = q[j, srs, scs], q[i, srs, scs]
                    s += cm._gather(box(sj * si, 1), rows, cols, 1)
                    d += cm._gather(box(si * si, 1), rows, cols, 1)
                fj, fi = np.where(late, 0.0, qj), np.where(late, 0.0, qi)  # the first pass precedes the second
                s += np.where(late, box(fj * fi, 2), 0.0)
                d += np.where(late, box(fi * fi, 2), 0.0)
                pred += s / (d + 1.0) * qi
            nz = qj != 0
            bins.append(np.digitize(np.abs(pred[nz]), EDGES))
            agree.append((qj[nz] > 0) == (pred[nz] >= 0))  # no prediction (0): "+", as good as a coin
    if not bins:
        return 0, 0.0
    a, bb = np.concatenate(agree), np.concatenate(bins)
    total = 0.0
    for b in range(len(EDGES) + 1):
        x = a[bb == b]
        if x.size:
            total += _kt_length(int(x.sum()), int(x.size - x.sum()))
    return int(a.size), total


def zero_estimate(sym: np.ndarray, coeffs: np.ndarray, rho: int, q: int, levels: int, near: bool) -> tuple:
    """(map-domain squared error before, after, factor bits) of the cross-map estimate of the zeros;
    ``near``: from maps 0, j − 1 and j + 1 only."""
    k, h, w = sym.shape
    step = cm._step_map(h, w, levels, entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE))
    chat = cm.dequantized(sym, rho, step)
    groups = np.zeros((h, w), np.int64)
    for g, _, rs, cs in cm.subbands(h, w, levels):
        groups[rs, cs] = g
    reg = 25 * (0.25 * step) ** 2
    clipped = np.zeros_like(chat)
    for j in range(k):
        pred = np.zeros((h, w))
        for i in sorted({0, j - 1, j + 1} & set(range(k))) if near else range(k):
            if i != j:
                pred += box(chat[j] * chat[i], 2) / (box(chat[i] ** 2, 2) + reg) * chat[i]
        clipped[j] = np.where(sym[j] == 0, np.clip(pred, -ZERO_BIN * step, ZERO_BIN * step), 0.0)
    new = chat.copy()
    for g in range(levels + 1):  # one factor per level group, shared by the maps: least squares, in eighths
        m = (sym == 0) & (groups == g)[None]
        x, y = clipped[m], coeffs[m]
        xx = float(x @ x)
        factor = min(max(round(8 * float(x @ y) / xx), 0), 2**FACTOR_BITS - 1) / 8 if xx > 0 else 0.0
        new[m] = factor * x
    true = cm.cdf97_inverse_reference(np.moveaxis(coeffs, 0, 2), levels)
    before = float(np.sum((cm.cdf97_inverse_reference(np.moveaxis(chat, 0, 2), levels) - true) ** 2))
    after = float(np.sum((cm.cdf97_inverse_reference(np.moveaxis(new, 0, 2), levels) - true) ** 2))
    return before, after, FACTOR_BITS * (levels + 1)


def worth_db(scene: dict, rate: float, saved: float) -> float | None:
    """dB at equal bits that ``saved`` (a fraction of the file) buys along the default curve of bench/rd.json
    (:func:`hsicodec.evaluation.evaluate.psnr_at`; None where either rate is outside the measured points)."""
    here, more = (psnr_at(scene["rows"], "hsicodec-default", r) for r in (rate, rate / (1.0 - saved)))
    return None if here is None or more is None else more - here


def one_file(cube: np.ndarray, search: MapSearch, rate: float, rd: dict) -> dict:
    """Both parts of the study for the default file of ``cube`` at ``rate``; ``search``: the encoder's map
    search of ``cube`` (its own maps and coefficients)."""
    blob = hsicodec.compress(cube, bpppb=rate)
    stream, mp, h, w = map_stream(blob)
    sym, levels = np.asarray(cm.decode_symbols(stream, mp, h, w), np.int64), mp.levels
    k, q, rho = mp.k, mp.q, mp.recon
    again, _, _ = search._symbols(k, q)
    file_bits = 8.0 * len(blob)
    row: dict = {
        "rate": rate,
        "bpppb": 8 * len(blob) / cube.size,
        "maps": k,
        "psnr": psnr(cube, hsicodec.decompress(blob)[0]),
    }
    row["symbols_reproduced"] = bool(np.array_equal(again, sym))  # the coefficients are the file's own
    for key, first in (("signs_all", None), ("signs_first2", 2)):
        n, bits = sign_bits(sym, levels, first)
        saved = (n - bits) / file_bits
        row |= {"signs": n, f"{key}_saved": saved, f"{key}_db": worth_db(rd, row["bpppb"], saved)}
    mse = (float(cube.max()) - float(cube.min())) ** 2 / 10 ** (row["psnr"] / 10)
    for key, near in (("zeros_all", False), ("zeros_near", True)):
        before, after, bits = zero_estimate(sym, search.tr.coeffs[:k], rho, q, levels, near)
        less = (before - after) * search.norm**2 / cube.size  # per value, in the cube's units
        gain = float(10 * np.log10(mse / (mse - less)))
        cost = worth_db(rd, row["bpppb"], bits / file_bits)
        row |= {f"{key}_error_less": 1 - after / before, f"{key}_gain_db": gain}
        row[f"{key}_db"] = None if cost is None else gain - cost
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "cross_map.json")
    args = ap.parse_args()
    rd = {s["scene"]: s for s in json.loads((ROOT / "bench" / "rd.json").read_text())["scenes"]}
    rows = []
    for name in json.loads(CARD.read_text())["val_scenes"]:
        cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
        search = MapSearch(None, analyse(cube, load_codec_model()), {})  # one analysis for every rate
        for rate in args.rates:
            row = {"scene": name} | one_file(cube, search, rate, rd[name])
            rows.append(row)
            differ = "" if row["symbols_reproduced"] else "  (the symbols differ from the file's)"
            print(
                f"{name:14s} {rate:6g} k {row['maps']:3d}  signs {100 * row['signs_all_saved']:5.2f} % of the file"
                f"  zeros {row['zeros_all_gain_db']:+.3f} dB{differ}",
                flush=True,
            )
    write_report(args.json, "study_cross_map.py", {"rows": rows}, markdown)
    return 0


def markdown(doc: dict) -> list:
    def db(v):
        return "n/a" if v is None else f"{v:+.2f}"

    out = [
        "# The maps' local cross-correlation: a sign context and a cross-map estimate of the zeros",
        "",
        f"Generated by `{doc['command']}` ({doc['date']}, {doc['machine']}). Issue #21 (better contexts, a better"
        " synthesis): an offline study on the validation scenes' default-effort files, nothing of it in the"
        " codec; the method is in the script's docstring. *signs*: bits saved by an adaptive sign model from"
        " the earlier maps, as % of the file and as dB at equal bits along the default curve (`bench/rd.json`;"
        " n/a outside its rates). *zeros*: PSNR gain of a decoder-side estimate of the zero coefficients from"
        " the other maps, net of its header bits. Every earlier / other map, and the cheaper variant (first two"
        " maps; maps 0, j − 1, j + 1).",
        "",
        "| scene | bpppb | maps | signs: saved | dB | first two: saved | dB | zeros: dB (net) | 3 maps: dB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        out.append(
            f"| {r['scene']} | {r['rate']:g} | {r['maps']} | {100 * r['signs_all_saved']:.2f} % |"
            f" {db(r['signs_all_db'])} | {100 * r['signs_first2_saved']:.2f} % | {db(r['signs_first2_db'])} |"
            f" {r['zeros_all_gain_db']:+.3f} ({db(r['zeros_all_db'])}) |"
            f" {r['zeros_near_gain_db']:+.3f} ({db(r['zeros_near_db'])}) |"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())

"""How much of each validation scene's principal-component maps is spatially white (issue #21: why the levers
measured there gain least where the gap to PCA + JPEG 2000 is narrowest; an offline study).

    python tools/study_noise_share.py [--rates 0.01 0.02 0.05 0.1] [--maps 24] [--json bench/noise_share.json]

A map's *fine share* is the part of its energy (each CDF 9/7 coefficient weighted by its subband's synthesis
energy, as the codec's quantizer weighs it) in the finest level's three detail subbands. Spatially white noise
puts about three quarters there (the reference printed beside the scenes is measured on white maps of the
scene's size); a natural image's first components a few percent. Where a scene's maps are close to white,
neither a transform nor a context model can code them in fewer bits than another good transform coder: white
Gaussian noise has no structure for either to use, and PCA + JPEG 2000 spends its bits on the same maps.

Per rate, from each scene's default-effort file (``hsicodec.compress``): the maps it codes (k), the share of
its squared error that is the variance of the components it drops (``SpectralFit.dropped_variance``), the
mean fine share of the next four maps (those more bits would add) and the share of the map stream's ideal
bits (``hsicodec.layers.maps.coding.code_bits``, map by map) spent on maps with a fine share over one half.
Writes the .json and a .md beside it.
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
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.search import MapSearch
from hsicodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_report import write_report  # noqa: E402
from train_entropy_model import CARD, DATA, map_stream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOISY = 0.5  # a map with more than this fine share counts as noise-like


def fine_share(coeffs: np.ndarray, levels: int) -> np.ndarray:
    """Fine share (k,) of maps' CDF 9/7 coefficients (k, H, W): their weighted energy in the finest level's
    details over all of it."""
    k, h, w = coeffs.shape
    gain = np.empty((h, w))
    for grp, ori, rs, cs in cm.subbands(h, w, levels):
        gain[rs, cs] = cm.cdf97_subband_gain(grp, ori, levels)
    e = coeffs**2 * gain
    lh, lw = (h + 1) // 2, (w + 1) // 2
    total = e.sum(axis=(1, 2))
    return np.where(total > 0, 1.0 - e[:, :lh, :lw].sum(axis=(1, 2)) / np.maximum(total, 1e-300), 0.0)


def white_share(h: int, w: int, levels: int, n: int = 8, seed: int = 0) -> float:
    """Mean fine share of n white Gaussian maps of h × w."""
    noise = np.random.default_rng(seed).normal(size=(h, w, n))
    return float(fine_share(np.moveaxis(cm.cdf97_forward(noise, levels), 2, 0), levels).mean())


def map_bits(sym: np.ndarray, levels: int) -> np.ndarray:
    """Ideal bits (k,) of each map of symbols (k, H, W) under the codes the encoder fits, as the increase of the
    first j + 1 maps' total over the first j's (a map's classes read the one before it)."""
    totals = [0.0] + [cm.code_bits(sym[: j + 1], levels) for j in range(len(sym))]
    return np.diff(totals)


def one_scene(name: str, rates, n_maps: int) -> dict:
    cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
    search = MapSearch(None, analyse(cube, load_codec_model()), {})
    search._extend(min(n_maps, search.kmax))
    shares = fine_share(search.tr.coeffs[:n_maps], search.levels)
    out: dict = {
        "scene": name,
        "shape": list(cube.shape),
        "fine_share": shares.tolist(),
        "white": white_share(search.h, search.w, search.levels),
        "rows": [],
    }
    value_range = float(cube.max()) - float(cube.min())
    for rate in rates:
        blob = hsicodec.compress(cube, bpppb=rate)
        stream, mp, h, w = map_stream(blob)
        sym = np.asarray(cm.decode_symbols(stream, mp, h, w), np.int64)
        k = mp.k
        quality = psnr(cube, hsicodec.decompress(blob)[0])
        mse = value_range**2 / 10 ** (quality / 10)
        bits = map_bits(sym, mp.levels)
        noisy = np.zeros(k, bool)
        noisy[: min(k, len(shares))] = shares[:k] > NOISY
        out["rows"].append(
            {
                "rate": rate,
                "bpppb": 8 * len(blob) / cube.size,
                "psnr": quality,
                "maps": k,
                "dropped_share": search.fit.dropped_variance(k) / cube.shape[2] / mse,
                "next_fine_share": float(shares[k : k + 4].mean()) if k + 4 <= len(shares) else None,
                "noisy_bit_share": float(bits[noisy].sum() / bits.sum()) if bits.sum() > 0 else 0.0,
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.02, 0.05, 0.1])
    ap.add_argument("--maps", type=int, default=24, help="maps whose fine share is reported")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "noise_share.json")
    args = ap.parse_args()
    scenes = []
    for name in json.loads(CARD.read_text())["val_scenes"]:
        scenes.append(one_scene(name, args.rates, args.maps))
        s = scenes[-1]
        print(f"{name}: fine share " + " ".join(f"{v:.2f}" for v in s["fine_share"]) + f" (white {s['white']:.2f})")
        for r in s["rows"]:
            print(
                f"  {r['rate']:g}: k {r['maps']}  dropped {r['dropped_share']:.2f} of the error  "
                f"noise-like maps {r['noisy_bit_share']:.2f} of the map bits",
                flush=True,
            )
    write_report(args.json, "study_noise_share.py", {"noisy": NOISY, "scenes": scenes}, markdown)
    return 0


def markdown(doc: dict) -> list:
    n = len(doc["scenes"][0]["fine_share"]) if doc["scenes"] else 0
    out = [
        "# How white the validation scenes' principal-component maps are",
        "",
        f"Generated by `{doc['command']}` ({doc['date']}, {doc['machine']}). Issue #21: an offline study, the"
        " method in the script's docstring. *Fine share*: the part of a map's energy in the finest wavelet"
        " level's details (white noise: the *white* column, about 0.73; a natural image: a few hundredths).",
        "",
        "| scene | white | " + " | ".join(f"map {j}" for j in range(n)) + " |",
        "|---|---|" + "---|" * n,
    ]
    for s in doc["scenes"]:
        out.append(f"| {s['scene']} | {s['white']:.2f} | " + " | ".join(f"{v:.2f}" for v in s["fine_share"]) + " |")
    out += [
        "",
        "The default files: *dropped* = share of the file's squared error that is the variance of the"
        " components it does not code; *next maps* = mean fine share of the four maps more bits would add;"
        f" *noise-like bits* = share of the map stream's ideal bits spent on maps with a fine share over"
        f" {doc['noisy']}.",
        "",
        "| scene | bpppb | PSNR | maps | dropped | next maps | noise-like bits |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in doc["scenes"]:
        for r in s["rows"]:
            nxt = "n/a" if r["next_fine_share"] is None else f"{r['next_fine_share']:.2f}"
            out.append(
                f"| {s['scene']} | {r['bpppb']:.4f} | {r['psnr']:.2f} | {r['maps']} | {r['dropped_share']:.2f} |"
                f" {nxt} | {r['noisy_bit_share']:.2f} |"
            )
    return out


if __name__ == "__main__":
    sys.exit(main())

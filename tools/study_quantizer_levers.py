"""Three levers on the coefficient maps' quantizer and spectral transform, measured with the real map coder
(issue #21: Session 19's verdict said a gain on noise-like scenes would have to be "a quantizer's gain, not a
model's"; an offline study, nothing of it is in the codec).

    python tools/study_quantizer_levers.py [--rates 0.005 0.01 0.02 0.05 0.1] [--json bench/quantizer_levers.json]

On each validation scene's default file without the reconstruction table (``recon_table=False``: its own
maps, step exponent q and coefficients), against the same maps quantized as the file quantizes them
(rounding threshold 0.4, one least-squares reconstruction offset ρ):

* **Per-level spectral rotation.** At each wavelet level with at least ``MIN_COEFFS`` coefficients a map (the
  finest one or two), the k coded maps are rotated by the KLT of their coefficients at that level (sorted by
  energy), coded, and rotated back by the decoder. One global PCA is optimal for the pixels, not for each
  spatial frequency band: edges and sensor noise have other spectral covariances than the large areas. The
  rotation travels as k(k − 1)/2 Givens angles of ``ANGLE_BITS`` bits a level (the encoder rotates with the
  quantized angles, so the decoder's inverse is exact).
* **Per-map steps at equal slope.** Each map's step exponent moves by a few 1/32 octaves where that lowers
  squared error + λ · bits at the uniform step's own slope λ (two greedy sweeps; what JPEG 2000's
  post-compression rate–distortion optimisation does per code block). One byte a map.
* **Reconstruction offsets per context class, coded.** The least-squares offset of each (|q| = 1, 2, ≥ 3;
  context class) cell instead of the file's one ρ, coded per file (5 bits a cell used). (The trained table
  the codec now ships, ``rl.rt`` = 1, spec/hsim.md 10.13, needs no bytes: ``tools/train_recon_table.py
  --validate`` measures it.)

Beside them, per scene, the *stripe share* of its first principal-component maps (:func:`stripe_share`): the
energy of their column and row means (less a 5-tap moving average), which a pushbroom sensor's striping
would raise and a per-column term could code cheaply; white noise gives about 0.8 / rows (columns).

"dB" is the PSNR gain at the file's size: the squared error saved (the maps' inverse transform against the
unquantized maps', as tools/study_learned_lifting.py measures) plus what the bytes saved buy along the default
curve of ``bench/rd.json`` (tools/study_cross_map.py ``worth_db``; n/a beyond its measured points). Writes the
.json and a .md beside it.
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
from hsicodec.coding.wavelet import cdf97_inverse_reference
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.encode import MAP_DEADZONES
from hsicodec.layers.maps.search import MapSearch
from hsicodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_cross_map import worth_db  # noqa: E402
from study_report import signed_db as _db  # noqa: E402
from study_report import write_report  # noqa: E402
from train_entropy_model import CARD, DATA, map_stream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEADZONE = MAP_DEADZONES[0]  # the default effort's rounding threshold
MIN_COEFFS = 2000  # a level is rotated when each map has at least this many coefficients there
ANGLE_BITS = 8
STEP_MOVES = (-8, -4, 4, 8, 12, 16)  # per-map step exponent offsets tried (1/32 octave)
OFFSET_BITS = 5
MAG_BINS = 3  # offsets per |q| = 1, 2, ≥ 3


def givens(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(angles, signs) of an orthogonal r (n × n): the Givens rotations that reduce it to diag(signs)."""
    a, angles = np.array(r, np.float64), []
    n = len(a)
    for j in range(n):
        for i in range(n - 1, j, -1):
            t = float(np.arctan2(a[i, j], a[i - 1, j]))
            c, s = np.cos(t), np.sin(t)
            a[[i - 1, i], :] = np.array([[c, s], [-s, c]]) @ a[[i - 1, i], :]
            angles.append(t)
    return np.array(angles), np.where(np.diag(a) < 0, -1.0, 1.0)


def from_givens(angles: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """The orthogonal matrix :func:`givens` took apart (exactly orthogonal for any angles)."""
    n = len(signs)
    a = np.diag(signs)
    pairs = [(j, i) for j in range(n) for i in range(n - 1, j, -1)]
    for (_j, i), t in zip(reversed(pairs), reversed(list(angles)), strict=True):
        c, s = np.cos(t), np.sin(t)
        a[[i - 1, i], :] = np.array([[c, -s], [s, c]]) @ a[[i - 1, i], :]
    return a


def quantized_angles(angles: np.ndarray, bits: int) -> np.ndarray:
    """Angles in (−π, π] rounded to 2^bits levels."""
    unit = np.pi / 2 ** (bits - 1)
    return np.round(angles / unit) * unit


def _level_boxes(h: int, w: int, levels: int) -> dict:
    """Level group → its subbands' (rows, cols) slices."""
    out: dict = {}
    for grp, _, rs, cs in cm.subbands(h, w, levels):
        out.setdefault(grp, []).append((rs, cs))
    return out


def level_rotations(c: np.ndarray, levels: int, min_coeffs: int = MIN_COEFFS, bits: int = ANGLE_BITS) -> tuple:
    """({level group: rotation (k × k)}, side bits) for coefficients c (k, H, W): each level with at least
    ``min_coeffs`` coefficients a map gets the KLT of its coefficients, from quantized Givens angles."""
    k, h, w = c.shape
    out, side = {}, 0
    for grp, boxes in _level_boxes(h, w, levels).items():
        x = np.concatenate([c[:, rs, cs].reshape(k, -1) for rs, cs in boxes], axis=1)
        if k < 2 or x.shape[1] < min_coeffs:
            continue
        v = np.linalg.eigh(x @ x.T)[1][:, ::-1]
        angles, signs = givens(v.T)
        out[grp] = from_givens(quantized_angles(angles, bits), signs)
        side += len(angles) * bits
    return out, side


def rotate(c: np.ndarray, levels: int, rotations: dict, inverse: bool = False) -> np.ndarray:
    """c (k, H, W) with each rotated level's coefficients multiplied by its rotation (or its transpose)."""
    k, h, w = c.shape
    out = c.copy()
    for grp, boxes in _level_boxes(h, w, levels).items():
        if grp in rotations:
            r = rotations[grp].T if inverse else rotations[grp]
            for rs, cs in boxes:
                out[:, rs, cs] = np.einsum("ij,jhw->ihw", r, c[:, rs, cs])
    return out


def map_steps(shape: tuple, levels: int, exponents) -> np.ndarray:
    """Per-coefficient steps (k, H, W) for each map's step exponent."""
    k, h, w = shape
    return np.stack(
        [cm._step_map(h, w, levels, entropy.step_from_exponent(int(e), cm.STEPS_PER_OCTAVE)) for e in exponents]
    )


def quantize(c: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(symbols, |c| / step, ρ) as the default file quantizes: threshold 0.4, least-squares ρ."""
    u = c / steps
    a = np.abs(u)
    mag = np.floor(a + DEADZONE)
    nz = mag > 0
    return (np.sign(u) * mag).astype(np.int64), a, cm._recon_offset(float(np.sum(mag[nz] - a[nz])), int(nz.sum()))


def coded(c: np.ndarray, q: int, levels: int, exponents=None) -> tuple[np.ndarray, int, np.ndarray, int]:
    """(symbols, map stream bytes under the real coder, dequantized coefficients, ρ) of c at exponent q (or
    per-map ``exponents``)."""
    steps = map_steps(c.shape, levels, [q] * len(c) if exponents is None else exponents)
    sym, _, rho = quantize(c, steps)
    return sym, len(cm.encode_symbols(sym, q, levels, rho)[0]), cm.dequantized(sym, rho, steps), rho


def pixel_error(dec: np.ndarray, truth: np.ndarray, levels: int) -> float:
    """Squared error of the maps decoded coefficients (k, H, W) synthesise against ``truth`` (H, W, k)."""
    return float(np.sum((cdf97_inverse_reference(np.moveaxis(dec, 0, 2), levels) - truth) ** 2))


def steps_cost(c: np.ndarray, q: int, levels: int, lam: float, exps: list) -> float:
    """Subband-weighted squared error + λ · 8 · bytes of coefficients c (k, H, W) at per-map step exponents."""
    h, w = c.shape[1:]
    gain = np.empty((h, w))
    for grp, ori, rs, cs in cm.subbands(h, w, levels):
        gain[rs, cs] = cm.cdf97_subband_gain(grp, ori, levels)
    _, nbytes, dec, _ = coded(c, q, levels, exps)
    return float(np.sum(gain * (c - dec) ** 2)) + lam * 8 * nbytes


def greedy_steps(c: np.ndarray, q: int, levels: int, lam: float, sweeps: int = 2) -> list:
    """Per-map step exponents lowering :func:`steps_cost` from the uniform q (moves of :data:`STEP_MOVES`)."""
    exps = [q] * len(c)
    best = steps_cost(c, q, levels, lam, exps)
    for _ in range(sweeps):
        for j in range(len(c)):
            for move in STEP_MOVES:
                trial = exps[:j] + [exps[j] + move] + exps[j + 1 :]
                got = steps_cost(c, q, levels, lam, trial)
                if got < best - 1e-9:
                    best, exps = got, trial
    return exps


def offset_cells(sym: np.ndarray, levels: int) -> np.ndarray:
    """Each coefficient's (|q| bin, context class) cell index (−1 for zeros)."""
    classes, _ = cm.all_classes(sym, levels)
    m = np.abs(sym)
    return np.where(m > 0, (np.minimum(m, MAG_BINS) - 1) * 1000 + classes, -1)


def fit_offsets(cells: np.ndarray, sym: np.ndarray, a: np.ndarray) -> dict:
    """Least-squares offset (units of a step, in 1/32, 0 … 1/2) of each cell: the mean of |q| − |c|/step."""
    m = np.abs(sym)
    out = {}
    for cell in np.unique(cells[cells >= 0]):
        sel = cells == cell
        out[int(cell)] = float(np.clip(np.round(cm.RECON_DEN * np.mean(m[sel] - a[sel])), 0, cm.RECON_DEN // 2))
    return out


def with_offsets(sym: np.ndarray, steps: np.ndarray, cells: np.ndarray, table: dict, rho: int) -> np.ndarray:
    """Dequantized coefficients with each cell's offset from ``table`` (the file's ρ for cells it lacks)."""
    off = np.full(sym.shape, float(rho))
    for cell, value in table.items():
        off[cells == cell] = value
    m = np.abs(sym).astype(np.float64)
    return np.sign(sym) * np.where(m > 0, m - off / cm.RECON_DEN, 0.0) * steps


def stripe_share(cube: np.ndarray, maps: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) stripe shares (maps,) of the cube's first principal-component maps: the energy of each
    map's column (row) means less their 5-tap moving average, times the rows (columns) they average, over the
    map's energy."""
    h, w, b = cube.shape
    x = cube.reshape(-1, b).astype(np.float64)
    x -= x.mean(axis=0)
    m = (x @ np.linalg.eigh(x.T @ x)[1][:, ::-1][:, :maps]).reshape(h, w, -1)
    total = np.maximum((m**2).sum(axis=(0, 1)), 1e-300)

    def high(v: np.ndarray) -> np.ndarray:  # along axis 0
        smooth = np.stack([np.convolve(c, np.ones(5) / 5, mode="same") for c in v.T], axis=1)
        return v - smooth

    cols = (high(m.mean(axis=0)) ** 2).sum(axis=0) * h / total
    rows = (high(m.mean(axis=1)) ** 2).sum(axis=0) * w / total
    return cols, rows


def one_file(cube: np.ndarray, search: MapSearch, rate: float, rd: dict) -> dict:
    """The three levers on the default file of ``cube`` at ``rate`` (without the reconstruction table)."""
    blob = hsicodec.compress(cube, bpppb=rate, recon_table=False)
    _, mp, _, _ = map_stream(blob)
    k, q, levels = mp.k, mp.q, mp.levels
    search._extend(k)
    c = search.tr.coeffs[:k]
    truth = cdf97_inverse_reference(np.moveaxis(c, 0, 2), levels)
    row: dict = {"rate": rate, "bpppb": 8 * len(blob) / cube.size, "maps": k}
    row["psnr"] = psnr(cube, hsicodec.decompress(blob)[0])
    mse = (float(cube.max()) - float(cube.min())) ** 2 / 10 ** (row["psnr"] / 10)
    scale = search.norm**2 / cube.size  # map-domain squared error → the cube's mean squared error

    sym0, b0, dec0, rho0 = coded(c, q, levels)
    e0 = pixel_error(dec0, truth, levels)
    row["is_the_file"] = bool(np.array_equal(sym0, search._symbols(k, q)[0])) and rho0 == mp.recon

    def db(error: float, extra_bytes: float) -> float | None:  # at the file's size
        gain = float(10 * np.log10(mse / max(mse - (e0 - error) * scale, 1e-300)))
        worth = worth_db(rd, row["bpppb"], -extra_bytes / len(blob))
        return None if worth is None else gain + worth

    rotations, side = level_rotations(c, levels)
    _, b1, dec1, _ = coded(rotate(c, levels, rotations), q, levels)
    e1 = pixel_error(rotate(dec1, levels, rotations, inverse=True), truth, levels)
    row["rotation"] = {
        "levels": len(rotations),
        "side_bytes": side / 8,
        "bytes": b1 - b0,
        "db": db(e1, b1 - b0 + side / 8),
    }

    _, lo, dlo, _ = coded(c, q + 4, levels)
    _, hi, dhi, _ = coded(c, q - 4, levels)
    lam = max((pixel_error(dlo, truth, levels) - pixel_error(dhi, truth, levels)) / max(8 * (hi - lo), 1e-9), 0.0)
    exps = greedy_steps(c, q, levels, lam)
    _, b2, dec2, _ = coded(c, q, levels, exps)
    row["steps"] = {
        "moves": [e - q for e in exps],
        "bytes": b2 - b0,
        "db": db(pixel_error(dec2, truth, levels), b2 - b0 + k),
    }

    steps = map_steps(c.shape, levels, [q] * k)
    _, a, _ = quantize(c, steps)
    cells = offset_cells(sym0, levels)
    own = fit_offsets(cells, sym0, a)
    e3 = pixel_error(with_offsets(sym0, steps, cells, own, rho0), truth, levels)
    row["offsets"] = {"cells": len(own), "db": db(e3, len(own) * OFFSET_BITS / 8), "db_free": db(e3, 0.0)}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.05, 0.1])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "quantizer_levers.json")
    args = ap.parse_args()
    card = json.loads(CARD.read_text())
    rd = {s["scene"]: s for s in json.loads((ROOT / "bench" / "rd.json").read_text())["scenes"]}
    rows, stripes = [], []
    for name in card["val_scenes"]:
        cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
        cols, lines = stripe_share(cube)
        stripes.append({"scene": name, "columns": cols.tolist(), "rows": lines.tolist(),
                        "white": [0.8 / cube.shape[0], 0.8 / cube.shape[1]]})  # fmt: skip
        print(f"{name}: stripe share at most {cols.max():.3f} (columns), {lines.max():.3f} (rows)", flush=True)
        search = MapSearch(None, analyse(cube, load_codec_model()), {})
        for rate in args.rates:
            rows.append({"scene": name} | one_file(cube, search, rate, rd[name]))
            r = rows[-1]
            print(
                f"{name} {rate:g}: k {r['maps']}  rotation {_db(r['rotation']['db'])}  steps {_db(r['steps']['db'])}"
                f"  offsets {_db(r['offsets']['db'])} (before their bytes {_db(r['offsets']['db_free'])})",
                flush=True,
            )
    figures = {"min_coeffs": MIN_COEFFS, "angle_bits": ANGLE_BITS, "rows": rows, "stripes": stripes}
    write_report(args.json, "study_quantizer_levers.py", figures, markdown)
    return 0


def markdown(doc: dict) -> list:
    out = [
        "# Three levers on the quantizer and the spectral transform, with the real map coder",
        "",
        f"Generated by `{doc['command']}` ({doc['date']}, {doc['machine']}). Issue #21: an offline study, the"
        " method in the script's docstring. Each cell: dB at the default file's size (squared error saved plus"
        " what the bytes saved buy along the default curve of `bench/rd.json`), side information counted;"
        " *is the file*: the study's baseline quantization reproduces the file's symbols and ρ.",
        "",
        "| scene | bpppb | maps | is the file | per-level rotation (levels, side bytes) | per-map steps |"
        " offsets per class, coded (cells) | the same before their bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        rot, st, off = r["rotation"], r["steps"], r["offsets"]
        out.append(
            f"| {r['scene']} | {r['bpppb']:.4f} | {r['maps']} | {'yes' if r['is_the_file'] else 'no'} |"
            f" {_db(rot['db'])} ({rot['levels']}, {rot['side_bytes']:.0f}) | {_db(st['db'])} |"
            f" {_db(off['db'])} ({off['cells']}) | {_db(off['db_free'])} |"
        )
    out += ["", "Stripe shares of the first 16 principal-component maps (largest; white noise in brackets):", ""]
    for st in doc.get("stripes", []):
        out.append(
            f"- {st['scene']}: columns {max(st['columns']):.3f} ({st['white'][0]:.3f}),"
            f" rows {max(st['rows']):.3f} ({st['white'][1]:.3f})"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())

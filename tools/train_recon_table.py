"""Train the coefficient-map layer's reconstruction table (hsi-recon-v1; spec/hsim.md 10.13,
:mod:`hsicodec.layers.maps.recon`) on the training scenes and measure it on the validation scenes.

    python tools/train_recon_table.py [--out hsicodec/models/hsi-recon-v1.hsmodel] [--validate]

For each training scene (the grid model card's ``train_scenes``) and rate of :data:`RATES`, the default map
search (effort default, no table: what the table is fitted to does not depend on it) picks k maps and a step;
their symbols s and magnitudes a = |c| / step are pooled per table cell, and each cell's code is the
least-squares offset, clip(round(32 · mean(|s| − a)) + 8, 0, 24). No randomness: the table is a function of
the data and the codec at this commit (``--check`` says whether the bundled file is what this run makes).

``--validate`` adds, per validation scene and rate, the PSNR gain of the table (with the file's least-squares
shift) over the one offset ρ at the same symbols, from the maps' coefficient-domain error (exact for the
CDF 9/7 up to its near-orthogonality); it goes into the model card. Prints the sha256 of the file written,
the one ``hsicodec.layers.maps.recon.TABLES`` must name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hsicodec.codec.analysis import analyse
from hsicodec.codec.cube import load_codec_model
from hsicodec.coding import entropy
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import recon
from hsicodec.layers.maps.search import MapSearch
from hsicodec.models.modelfile import decode_model, encode_model, sha256_bytes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
CARD = ROOT / "hsicodec" / "models" / "hsi-grid-v1.json"
OUT = ROOT / "hsicodec" / "models" / f"{recon.DEFAULT_ALIAS}.hsmodel"
RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def default_symbols(cube: np.ndarray, rates=RATES):
    """(rate, search, file PSNR, k, q, symbols, magnitudes |c| / step) of the default map search of ``cube`` (no
    table) at each rate."""
    header = {"shape": list(cube.shape), "dtype": cube.dtype.name}
    search = MapSearch(None, analyse(cube, load_codec_model()), header)
    for rate in rates:
        enc = search.for_bpppb(rate)
        k, q = int(enc.k), int(enc.step)
        sym, a, _ = cm.quantize(search.tr, q, k, search.deadzone, magnitudes=True)
        yield rate, search, enc.psnr, k, q, sym, a


def fit_table(scenes: list, rates=RATES, data_dir: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """(codes (24,) uint8, symbols per cell (24,)) of the scenes' default files, pooled."""
    sums, counts = np.zeros(recon.CELLS), np.zeros(recon.CELLS, np.int64)
    for name in scenes:
        cube = np.load(data_dir / f"{name}.npy", allow_pickle=False)
        for _, search, _, _, _, sym, a in default_symbols(cube, rates):
            c = recon.cells(sym, search.levels)
            nz = c >= 0
            np.add.at(sums, c[nz], (np.abs(sym) - a)[nz])
            np.add.at(counts, c[nz], 1)
        print(f"  {name}: {int(counts.sum())} nonzero symbols so far", flush=True)
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    codes = np.clip(np.round(cm.RECON_DEN * mean) + recon.CODE_ZERO, 0, recon.MAX_CODE)
    return codes.astype(np.uint8), counts


def gain_db(search: MapSearch, cube: np.ndarray, psnr: float, q: int, sym: np.ndarray, a: np.ndarray, codes) -> float:
    """PSNR gain of the table with the file's shift over ρ at the same symbols: the map error saved, against
    the file's whole squared error (maps, dropped components, spectral side information)."""
    nz = sym != 0
    m = np.abs(sym).astype(np.float64)
    excess = float(np.sum(m[nz] - a[nz]))
    rho = cm._recon_offset(excess, int(nz.sum()))
    shift, _ = recon.table_shift(sym, excess, search.levels, codes)
    off = recon.table_codes(sym, search.levels, codes, shift).astype(np.float64) - recon.CODE_ZERO
    step = entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE)
    before = float(np.sum((a - np.where(nz, m - rho / cm.RECON_DEN, 0.0)) ** 2))
    after = float(np.sum((a - np.where(nz, m - off / cm.RECON_DEN, 0.0)) ** 2))
    scale = (step * search.norm) ** 2 / cube.size  # Σ g (Δ/√g)² e² = Δ² Σ e², in the cube's units per value
    mse = (float(cube.max()) - float(cube.min())) ** 2 / 10 ** (psnr / 10)
    return float(10 * np.log10(mse / max(mse - (before - after) * scale, 1e-300)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--data", type=Path, default=DATA, help="folder of the scenes (.npy)")
    ap.add_argument("--validate", action="store_true", help="measure on the validation scenes (into the card)")
    ap.add_argument("--check", action="store_true", help="only say whether --out is what this run makes")
    args = ap.parse_args()
    grid = json.loads(CARD.read_text())
    codes, counts = fit_table(grid["train_scenes"], data_dir=args.data)
    print("codes " + " ".join(str(int(c)) for c in codes))
    card: dict = {
        "alias": recon.DEFAULT_ALIAS,
        "description": "trained reconstruction offsets of the coefficient-map layer (spec/hsim.md 10.13)",
        "script": "tools/train_recon_table.py",
        "train_scenes": grid["train_scenes"],
        "val_scenes": grid["val_scenes"],
        "rates": list(RATES),
        "symbols_per_cell": counts.tolist(),
    }
    if args.validate:
        rows = []
        for name in grid["val_scenes"]:
            cube = np.load(args.data / f"{name}.npy", allow_pickle=False)
            for rate, search, psnr, _, q, sym, a in default_symbols(cube):
                db = gain_db(search, cube, psnr, q, sym, a, codes)
                rows.append({"scene": name, "rate": rate, "db": round(db, 4)})
                print(f"  {name} {rate:g}: {rows[-1]['db']:+.3f} dB", flush=True)
        card["validation_db"] = rows
    data = encode_model({"codes": codes}, recon.model_config(), card)
    if args.check:
        have = recon.from_model_file(decode_model(args.out.read_bytes())) if args.out.exists() else None
        same = have is not None and have.codes.tolist() == codes.tolist()
        print("the bundled table is what this run makes" if same else "the bundled table differs from this run's")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out} sha256 {sha256_bytes(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hash the files the encoder writes on the validation scenes: a before/after check that a change moves nothing.

Compresses every validation scene (the shipped model card's ``val_scenes``) at the rates
``tools/bench_rd.py`` runs (effort default at each rate of its validation plan, effort max
at the rates the plan gives it), plus a quality target, the network layer alone and effort
fast, and records the sha256 of every file. ``--out`` writes the hashes as JSON;
``--check FILE`` compares against an earlier run and exits 1 on any difference.

    python tools/hash_outputs.py --out /tmp/before.json
    python tools/hash_outputs.py --check /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import hsicodec

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hsi"
RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
MAX_RATES = (0.01, 0.02, 0.05, 0.1)


def cases(quick: bool) -> list[tuple[str, dict[str, Any]]]:
    """(label, compress keyword arguments) of every file to hash on one scene."""
    out: list[tuple[str, dict[str, Any]]] = [(f"default@{r}", {"bpppb": r}) for r in RATES]
    out += [("psnr40", {"psnr": 40.0}), ("fast@0.05", {"bpppb": 0.05, "effort": "fast"})]
    out += [("network@0.02", {"bpppb": 0.02, "latent_codings": ("haar+klt", "plain")})]
    if not quick:
        out += [(f"max@{r}", {"bpppb": r, "effort": "max"}) for r in MAX_RATES]
    return out


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the hashes here (JSON)")
    ap.add_argument("--check", type=Path, help="compare with the hashes of an earlier run")
    ap.add_argument("--quick", action="store_true", help="leave out effort max (~1 min instead of ~5)")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    card = json.loads((ROOT / "hsicodec" / "models" / "hsi-grid-v1.json").read_text())
    hashes: dict = {}
    for scene in card["val_scenes"]:
        cube = np.load(args.data / f"{scene}.npy")
        for label, kw in cases(args.quick):
            try:
                data = hsicodec.compress(cube, **kw)
                digest = hashlib.sha256(data).hexdigest()
            except hsicodec.HsicodecError as exc:
                digest = f"error: {exc}"
            hashes[f"{scene}/{label}"] = digest
            print(f"{scene:14s} {label:14s} {digest[:16]}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    if args.check:
        old = json.loads(args.check.read_text())
        diff = [k for k in hashes if k in old and old[k] != hashes[k]]
        missing = [k for k in hashes if k not in old]
        for k in diff:
            print(f"CHANGED {k}: {old[k][:16]} -> {hashes[k][:16]}")
        print(
            f"{len(hashes) - len(diff) - len(missing)} identical, {len(diff)} changed, "
            f"{len(missing)} not in {args.check}"
        )
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Recompute a model file's validation RD and write it into its model card (arrays unchanged).

    python tools/recard_model.py hsicodec/models/hsi-grid-v1.hsmodel [--data ../shared/data/hsi]

The file's sha256 changes (the card is part of it); regenerate the test
vectors afterwards (`make vectors`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsicodec.models.modelfile import load_model, save_model
from hsicodec.train.meta import validation_rd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi")
    args = ap.parse_args()
    mf = load_model(args.model)
    arrays = {k: v.copy() for k, v in mf.arrays.items()}
    card = dict(mf.card)
    card["validation"] = validation_rd(arrays, mf.config, args.data, list(card.get("val_scenes", [])))
    for row in card["validation"]:
        print(row)
    sha = save_model(args.model, arrays, mf.config, card, force=True)
    print(f"{args.model}: sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

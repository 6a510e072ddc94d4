"""Reproduce a shipped model from its committed config (bit-for-bit from the seed).

python tools/train_shipped.py hsicodec/models/hsi-grid-v1.json OUT.hsmodel

A config with a "script" key names the training script of a model that is not a base model (the
learned entropy model, hsi-lem-v1.json; the nonlinear synthesis, hsi-synth-v1.json): that script is run
with the config's "args" and ``--out OUT``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hsicodec.train.meta import config_from_json, train_model, validation_rd

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", help="folder of training cubes (default: the config's data_dir)")
    ap.add_argument("--checkpoint", type=Path, help="checkpoint file for resume")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    spec = json.loads(args.config.read_text())
    if "script" in spec:  # a model with its own training script
        if args.out.exists() and not args.force:
            print(f"{args.out} exists (use --force)", file=sys.stderr)
            return 1
        cmd = [sys.executable, str(ROOT / spec["script"]), *spec.get("args", []), "--out", str(args.out)]
        if args.data:
            cmd += ["--data", args.data]
        return subprocess.call(cmd, cwd=ROOT)
    cfg = config_from_json(args.config)
    if args.data:
        cfg.data_dir = args.data
    alias = args.config.stem
    t0 = time.time()

    def progress(step: int, rec: dict) -> None:
        val = " ".join(f"{k[9:]} {v:.2f} dB" for k, v in rec.items() if k.startswith("val_psnr_"))
        if step % 100 == 0 or step == cfg.steps or val:
            print(f"step {step}/{cfg.steps} loss {rec['loss']:.5f} {time.time() - t0:.0f}s {val}", flush=True)

    def validate(arrays: dict, config: dict) -> list:
        print("validation RD on the held-out scenes ...", flush=True)
        return validation_rd(arrays, config, Path(cfg.data_dir), cfg.val_scenes)

    sha = train_model(
        cfg,
        args.out,
        alias=alias,
        force=args.force,
        progress=progress,
        checkpoint=args.checkpoint,
        validate=validate if cfg.val_scenes else None,
        description="Meta-learned modulated SIREN over multi-resolution latent grids; "
        "per-scene PCA spectral adaptation (any band count).",
    )
    print(f"{args.out} sha256 {sha} ({time.time() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

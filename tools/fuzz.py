#!/usr/bin/env python
"""Run one coverage-guided fuzz target (atheris / libFuzzer) for a while and report.

    python tools/fuzz.py TARGET --seconds N [--corpus DIR] [--fresh] [--jobs 1]

Targets (harnesses in tests/fuzz/):

    container      .hsim container reader, raw and with re-sealed CRCs      (fuzz_container.py)
    decode         full hsicodec.decompress of mutated files, CRCs resealed (fuzz_decode.py, mode reseal)
    decode-raw     full hsicodec.decompress of mutated files as they are    (fuzz_decode.py, mode raw)
    decode-struct  structure-aware header/section edits, re-encoded         (fuzz_decode.py, mode struct)
    model          .hsmodel reader + model interpretation + a tiny decode    (fuzz_model.py)
    model-struct   seed models with edited shapes/dtypes/config, re-encoded  (fuzz_model.py, mode struct)

The corpus grows in ``tmp/fuzz/TARGET/corpus`` (``--fresh`` starts from the
seeds in tests/fuzz/seeds/ again); crashing inputs land in
``tmp/fuzz/TARGET/artifacts/``. Exit status 0 when no finding, 1 otherwise.
The last line printed is a JSON summary (runs, seconds, coverage, findings).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "tests" / "fuzz"
TARGETS = {
    "container": ("fuzz_container.py", "hsim", {}),
    "decode": ("fuzz_decode.py", "hsim", {"HSIM_FUZZ_MODE": "reseal"}),
    "decode-raw": ("fuzz_decode.py", "hsim", {"HSIM_FUZZ_MODE": "raw"}),
    "decode-struct": ("fuzz_decode.py", "struct", {"HSIM_FUZZ_MODE": "struct"}),
    "model": ("fuzz_model.py", "model", {}),
    "model-struct": ("fuzz_model.py", "struct", {"HSIM_FUZZ_MODE": "struct"}),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=sorted(TARGETS))
    ap.add_argument("--seconds", type=int, default=300, help="run time (default 300)")
    ap.add_argument("--corpus", type=Path, help="working corpus folder (default tmp/fuzz/TARGET/corpus)")
    ap.add_argument("--fresh", action="store_true", help="empty the working corpus first")
    ap.add_argument("--work", type=Path, help="working folder (default tmp/fuzz/TARGET)")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take (default 10)")
    ap.add_argument("--rss-mb", type=int, default=3072, help="memory limit of the fuzzing process (MiB)")
    ap.add_argument("--max-len", type=int, default=4096, help="largest input libFuzzer builds")
    ap.add_argument("-q", "--quiet", action="store_true", help="only print the summary")
    args = ap.parse_args(argv)

    script, seeds, env_extra = TARGETS[args.target]
    work = args.work or ROOT / "tmp" / "fuzz" / args.target
    corpus = args.corpus or work / "corpus"
    artifacts = work / "artifacts"
    if args.fresh and corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    dirs = [str(corpus)]
    if seeds == "struct":  # the struct mode's inputs are choice bytes: start from a few short ones
        for i in range(10):
            (corpus / f"seed{i}").write_bytes(bytes([i, 1, 2, 3, i, 5, 6, 7]))
    else:
        dirs.append(str(FUZZ / "seeds" / seeds))
    cmd = [
        sys.executable,
        str(FUZZ / script),
        *dirs,
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_mb}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **env_extra}
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    elapsed = time.time() - t0
    log = proc.stdout
    (work / "last.log").write_text(log)
    if not args.quiet:
        print(log[-6000:])
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"cov: (\d+) ft: (\d+)", log)
    found = sorted(str(p) for p in set(artifacts.iterdir()) - before)
    summary = {
        "target": args.target,
        "runs": int(runs[-1]) if runs else None,
        "seconds": round(elapsed, 1),
        "cov": int(cov[-1][0]) if cov else None,
        "ft": int(cov[-1][1]) if cov else None,
        "corpus_files": len(list(corpus.iterdir())),
        "exit_code": proc.returncode,
        "findings": found,
    }
    print(json.dumps(summary))
    return 0 if proc.returncode == 0 and not found else 1


if __name__ == "__main__":
    sys.exit(main())

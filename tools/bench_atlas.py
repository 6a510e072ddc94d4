"""The learned peer ``atlas-hsi`` (PyPI; CUDA only) on our scenes, or the reason it was not run.

ATLAS (low-rank spectral Gaussian splatting, Rempel & Qureshi 2026) trains one
representation per cube on an NVIDIA GPU; its kernel is CUDA-only.  This tool

* probes what is needed: ``pip download --no-deps atlas-hsi`` (does the package
  exist and what does it require), a CUDA device for torch, ``nvidia-smi``,
  ``/dev/nvidia*``, and whether ``atlas`` is importable;
* when a CUDA device *and* an installed ``atlas`` are there, runs it on each
  scene at a few operating points and measures as docs/metrics.md defines (see
  :func:`run_atlas`); otherwise it writes only the reason.

It never installs anything.  Output: bench/atlas.json, read by
tools/bench_rd.py into bench/rd.md / rd.json.

    python tools/bench_atlas.py                    # probe (with pip download) and run if possible
    python tools/bench_atlas.py --no-download      # probe without touching the network

The CUDA path follows the package's documented CLI (``atlas init`` / ``atlas
train`` / ``atlas decompress``, 0.1.0a2) and has NOT been run here (no GPU).
ATLAS clips each cube at 0 and divides each band by its maximum; we undo that
with the per-band maxima, stored as float32 and counted in the rate, so bpppb
is ``8 * (bytes of compressed.atlas + 4 * bands) / (H * W * C)`` and PSNR /
SAM / max error are ours, in original units (ATLAS's own PSNR is a mean
per-band PSNR on normalised data, not comparable).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
PACKAGE = "atlas-hsi"
#: Gaussians per 100x100 pixels at the operating points tried (ATLAS's README:
#: 600-2750 for Jasper Ridge 100x100); scaled with the pixel count
POINTS_PER_1E4_PIXELS = (600, 1500, 2750)


def _tail(text: str, n: int = 6) -> list:
    return [line for line in text.strip().splitlines() if line.strip()][-n:]


def pip_download_check(timeout: float = 300.0) -> dict:
    """Run ``pip download --no-deps atlas-hsi -d <tmp>`` with this interpreter; what happened."""
    with tempfile.TemporaryDirectory(prefix="atlas-dl-") as d:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", d]
        shown = f"pip download --no-deps {PACKAGE} -d {d}"
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"command": shown, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out = {
            "command": shown,
            "returncode": p.returncode,
            "ok": p.returncode == 0,
            "output_tail": _tail(p.stdout + "\n" + p.stderr),
        }
        wheels = sorted(Path(d).glob("*.whl")) + sorted(Path(d).glob("*.tar.gz"))
        if wheels:
            w = wheels[0]
            blob = w.read_bytes()
            out.update({"file": w.name, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
            if w.suffix == ".whl":
                with zipfile.ZipFile(w) as z:
                    meta = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
                    text = z.read(meta).decode("utf-8", "replace") if meta else ""
                    out["kernels"] = sorted(n for n in z.namelist() if n.endswith(".so") or n.endswith(".cu"))
                out["requires"] = [
                    ln.split(":", 1)[1].strip()
                    for ln in text.splitlines()
                    if ln.startswith("Requires-Dist:") and "extra ==" not in ln
                ]
                out["says"] = [ln.strip() for ln in text.splitlines() if "NVIDIA GPU" in ln or "needs an NVIDIA" in ln][
                    :2
                ]
        return out


def cuda_check() -> dict:
    """Is there a CUDA device torch can use (and any sign of an NVIDIA driver)?"""
    info: dict = {
        "nvidia_smi": shutil.which("nvidia-smi"),
        "dev_nvidia": sorted(glob.glob("/dev/nvidia*")),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    try:
        import torch
    except ImportError:
        info.update({"torch": None, "cuda_available": False, "device_count": 0})
        return info
    info.update(
        {
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cuda_available": bool(torch.cuda.is_available()),
            "device_count": int(torch.cuda.device_count()),
        }
    )
    if info["cuda_available"]:
        info["device"] = torch.cuda.get_device_name(0)
    return info


def probe(download: bool = True) -> dict:
    """Everything that decides whether ATLAS can run here, and the reason if not."""
    res: dict = {
        "package": PACKAGE,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    res["pip_download"] = pip_download_check() if download else {"skipped": True}
    res["cuda"] = cuda_check()
    res["atlas_importable"] = importlib.util.find_spec("atlas") is not None
    reasons = []
    cu = res["cuda"]
    if not cu["cuda_available"]:
        reasons.append(
            f"no CUDA device: torch {cu.get('torch')} (CUDA build: {cu.get('torch_cuda')}) reports "
            f"torch.cuda.is_available() = False, device_count = {cu.get('device_count')}; "
            f"nvidia-smi {'at ' + cu['nvidia_smi'] if cu['nvidia_smi'] else 'not on PATH'}; "
            f"/dev/nvidia* {'present' if cu['dev_nvidia'] else 'absent'}"
        )
    dl = res["pip_download"]
    if not dl.get("skipped"):
        if dl.get("ok"):
            says = f' Its metadata says: "{dl["says"][0]}"' if dl.get("says") else ""
            reasons.append(
                f"`{dl['command']}` succeeded ({dl.get('file')}, {dl.get('bytes')} bytes, "
                f"sha256 {str(dl.get('sha256'))[:16]}...), but the package's kernel is CUDA-only "
                f"(prebuilt {', '.join(Path(k).name for k in dl.get('kernels', []) if k.endswith('.so'))})"
                f".{says}"
            )
        else:
            reasons.append(f"`{dl['command']}` failed: {dl.get('error') or ' / '.join(dl.get('output_tail', []))}")
    if not res["atlas_importable"]:
        reasons.append(
            "atlas is not installed in this environment (not installed on purpose: it needs a "
            "CUDA build of torch>=2.10 and would replace the CPU torch of .venv)"
        )
    res["can_run"] = bool(cu["cuda_available"] and res["atlas_importable"])
    res["reason"] = "; ".join(reasons) if not res["can_run"] else ""
    return res


def _atlas_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("atlas")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "atlas.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)


def run_atlas(scene: Path, work: Path, iterations: int = 8000) -> list:
    """Train/encode/decode ``scene`` with ATLAS at each operating point; rows as hsicodec.evaluation.evaluate's.

    Needs CUDA and an installed ``atlas``.  Rank: ATLAS's default (10 for Jasper
    Ridge, else 12); pipeline: its recommended D3 + two-stage QAT schedule.
    """
    from hsicodec import metrics

    cube = np.load(scene)
    h, w, c = cube.shape
    band_max = np.clip(cube.astype(np.float64), 0, None).reshape(-1, c).max(axis=0).astype(np.float32)
    rank = 10 if "jasper" in scene.stem else 12
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"{scene.stem}.npy"
    shutil.copyfile(scene, src)
    _atlas_cli("init", "--input", str(src), "--rank", str(rank), "--init-dir", str(work / "init"), cwd=work)
    rows = []
    for per in POINTS_PER_1E4_PIXELS:
        n = max(50, int(round(per * h * w / 1e4)))
        out_dir = work / f"run_{n}"
        t0 = time.perf_counter()
        _atlas_cli(
            "train",
            "--input",
            str(src),
            "--rank",
            str(rank),
            "--init-dir",
            str(work / "init"),
            "--num_points",
            str(n // 2),
            "--max_num_points",
            str(n),
            "--grow_stop_iter",
            str(iterations // 3),
            "--iterations",
            str(iterations),
            "--qat_start",
            str(iterations // 2),
            "--prune_interval",
            "100",
            "--endmember_lr",
            "1e-4",
            "--sam_weight",
            "0.05",
            "--cholesky_bits",
            "8",
            "--output-dir",
            str(out_dir),
            cwd=work,
        )
        enc_s = time.perf_counter() - t0
        bit = sorted(out_dir.rglob("compressed.atlas"))[-1]
        recon_path = work / f"recon_{n}.npy"
        t0 = time.perf_counter()
        _atlas_cli("decompress", str(bit), "-o", str(recon_path), cwd=work)
        dec_s = time.perf_counter() - t0
        rec = np.load(recon_path).astype(np.float64) * band_max.astype(np.float64)
        if np.dtype(cube.dtype).kind in "ui":
            info = np.iinfo(cube.dtype)
            rec = np.clip(np.rint(rec), info.min, info.max)
        n_bytes = bit.stat().st_size + 4 * c
        q = metrics.quality_report(cube, rec, n_bytes)
        rows.append(
            {
                "codec": "atlas-hsi",
                "kind": "peer",
                "target_bpppb": None,
                "reachable": True,
                "bpppb": q["bpppb"],
                "bytes": n_bytes,
                "psnr": q["psnr"],
                "sam": q["sam"],
                "max_abs_error": q["max_abs_error"],
                "encode_s": enc_s,
                "decode_s": dec_s,
                "threads": None,
                "params": {"gaussians": n, "rank": rank, "iterations": iterations},
                "note": "GPU; whole-process times (training is the encoder)",
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "scenes", nargs="*", help="scene names in ../shared/data/hsi or .npy paths (default: every scene there)"
    )
    ap.add_argument("--no-download", action="store_true", help="skip the pip download probe")
    ap.add_argument("--iterations", type=int, default=8000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "atlas.json"))
    args = ap.parse_args()
    res = probe(download=not args.no_download)
    if res["can_run"]:
        paths = [Path(s) if Path(s).exists() else DATA / f"{s}.npy" for s in args.scenes] or sorted(DATA.glob("*.npy"))
        res["scenes"] = []
        with tempfile.TemporaryDirectory(prefix="atlas-run-") as tmp:
            for p in paths:
                res["scenes"].append({"scene": p.stem, "rows": run_atlas(p, Path(tmp) / p.stem, args.iterations)})
    else:
        print(f"atlas-hsi not run: {res['reason']}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

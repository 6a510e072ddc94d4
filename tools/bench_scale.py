"""Scale benchmark (issue #19, point 5): where hsicodec stands on big scenes, against the classical anchors.

For each scene size (default 1024x1024x189, 2048x2048x224 and 145x145x220) a scene of real spectra is
built from a validation scene of the data folder (one no bundled model trained on): its bands are
subset (evenly spaced original bands, values untouched) when the source has at least as many, else
linearly interpolated along the band index, and it is mirrored (``np.pad(mode="symmetric")``) up to
the size. Four codecs run on it, one run:

* ``hsicodec``: :func:`hsicodec.compress_file` of the scene's ``.npy`` at ``--rate`` bpppb, default
  effort and default tiling (512 x 512 tiles above 2**26 values, as the CLI); whole decode with
  :func:`hsicodec.decompress`, a 64 x 64 window with ``decompress(path, window=...)``, and
  ``decompress(path, reduce=2)``.
* ``pca_jpeg2000``: the anchor of :mod:`hsicodec.evaluation.anchors.pca` (its bitstream, its rate control:
  the choice of k and the bisection on the distortion target), run by row chunks so that a 2048^2 scene
  fits in memory (same bytes as the anchor where the cube is one chunk). Above 512 x 512 pixels k is
  chosen on the centre 512 x 512 crop and only the distortion target is searched on the whole scene
  (``--k-crop``). Its compress time is one encode at the chosen parameters, PCA included (the anchor's
  ``encode_s``); the rate search is reported apart. OpenJPEG has no region or
  reduced-resolution decode in imagecodecs: a window or ``reduce 2`` decodes every component map whole
  and reconstructs only the pixels asked for (``reduce``: 4 x 4 block means of the maps).
* ``pca_htj2k``: the same PCA stage with HTJ2K (OpenJPH) maps; OpenJPH has no rate control, the knob
  (the distortion target) sets its quantisation step; ``reduce 2`` skips two resolutions.
* ``geotiff_deflate``: a tiled (256 x 256) DEFLATE GeoTIFF with predictor 2 (hsicodec's own GeoTIFF
  layout), lossless; ``reduce 2`` reads the whole file and takes 4 x 4 block means (it has no overviews;
  rasterio's average resampling on read took over 200 s for 189 bands, one band at a time).

Every step (compress, decompress, window, reduce) of every codec runs in a fresh process, whose peak
RSS (VmHWM, read after the timed runs and before the quality pass) is that step's alone. Times are
wall clock inside the process (imports and model loading excluded by a warm-up), median of
``--repeat`` runs (compress: ``--compress-repeat``).
Throughput is over the raw cube bytes. PSNR/SAM are measured on the decoded cube (by row chunks).
Writes ``<out>.json`` and ``<out>.md`` with each target of the issue as met / not met.

    python tools/bench_scale.py                      # the full run (make bench-scale)
    python tools/bench_scale.py --quick               # small sizes, bench/scale_quick.{json,md} (~7 min)
    python tools/bench_scale.py --sizes 512x512x189 --rate 0.05 --repeat 3
    python tools/bench_scale.py --render bench/scale.json   # rewrite bench/scale.md from the JSON only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

DATA = ROOT.parent / "shared" / "data" / "hsi"
SIZES = ["1024x1024x189", "2048x2048x224", "145x145x220"]
QUICK_SIZES = ["128x128x189", "256x256x224", "145x145x220"]
#: validation scenes (held out by every bundled model): the source of each size is the one with the
#: band count closest to it (ties: the first)
SOURCES = ["jasper_ridge", "abu_urban_5"]
CODECS = ["hsicodec", "pca_jpeg2000", "pca_htj2k", "geotiff_deflate"]
OPS = ["compress", "decompress", "window", "reduce"]
WINDOW = 64
REDUCE = 2
CHUNK_VALUES = 1 << 24  # values per row chunk of the lean PCA passes (~128 MiB of float64)
LABELS = {
    "hsicodec": "hsicodec (default effort)",
    "pca_jpeg2000": "PCA + JPEG 2000",
    "pca_htj2k": "PCA + HTJ2K",
    "geotiff_deflate": "GeoTIFF DEFLATE 256² (lossless)",
}


# --------------------------------------------------------------------------- scenes


def parse_size(text: str) -> tuple[int, int, int]:
    """``"1024x1024x189"`` -> (1024, 1024, 189)."""
    parts = [int(v) for v in text.lower().split("x")]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"a scene size is ROWSxCOLSxBANDS, got {text!r}")
    return parts[0], parts[1], parts[2]


def pick_source(bands: int, sources: dict[str, int]) -> str:
    """The source scene whose band count is closest to ``bands`` (ties: the first listed)."""
    return min(sources, key=lambda name: abs(sources[name] - bands))


def resample_bands(cube: np.ndarray, bands: int) -> tuple[np.ndarray, str]:
    """``cube`` with ``bands`` bands: evenly spaced original bands if it has enough, else linear
    interpolation along the band index (rounded to the dtype); returns (cube, how)."""
    c = cube.shape[2]
    if bands == c:
        return cube, "all bands"
    if bands < c:
        idx = np.unique(np.round(np.linspace(0, c - 1, bands)).astype(int))
        return cube[:, :, idx], f"{bands} of {c} bands (evenly spaced, values untouched)"
    pos = np.linspace(0, c - 1, bands)
    i0 = np.minimum(np.floor(pos).astype(int), c - 2)
    f = pos - i0
    x = cube.astype(np.float64)
    out = x[:, :, i0] * (1 - f) + x[:, :, i0 + 1] * f
    if cube.dtype.kind in "ui":
        info = np.iinfo(cube.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(cube.dtype), f"{c} bands linearly interpolated to {bands}"


def mirror_index(n: int, size: int) -> np.ndarray:
    """Source indices of ``np.pad(..., (0, size - n), mode="symmetric")`` along one axis (or a crop)."""
    j = np.arange(size) % (2 * n)
    return np.where(j < n, j, 2 * n - 1 - j)


def build_scene(src: np.ndarray, shape: tuple[int, int, int], path: Path) -> str:
    """Write the (rows, cols, bands) scene mirrored from ``src`` to ``path`` (.npy, by row blocks)."""
    sub, how = resample_bands(np.asarray(src), shape[2])
    rows, cols = mirror_index(sub.shape[0], shape[0]), mirror_index(sub.shape[1], shape[1])
    tmp = path.with_suffix(".part.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=sub.dtype, shape=shape)
    step = max(1, (1 << 26) // (shape[1] * shape[2]))
    for r0 in range(0, shape[0], step):
        out[r0 : r0 + step] = sub[rows[r0 : r0 + step]][:, cols]
    out.flush()
    del out
    os.replace(tmp, path)
    return how


def scene_for(shape: tuple[int, int, int], data: Path, sources: Sequence[str], work: Path, log) -> dict:
    """Build (or reuse) the scene file of ``shape``; returns its description."""
    avail = {}
    for name in sources:
        p = data / f"{name}.npy"
        if p.exists():
            avail[name] = int(np.load(p, mmap_mode="r").shape[2])
    if not avail:
        raise SystemExit(f"none of the source scenes {list(sources)} is in {data}")
    name = pick_source(shape[2], avail)
    tag = "x".join(map(str, shape))
    path = work / f"scene_{tag}_{name}.npy"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return json.loads(meta.read_text())
    log(f"[{tag}] building the scene from {name}")
    src = np.load(data / f"{name}.npy")
    how = build_scene(src, shape, path)
    info = {
        "name": tag,
        "shape": list(shape),
        "dtype": src.dtype.name,
        "source": name,
        "source_shape": list(src.shape),
        "bands": how,
        "spatial": "crop" if shape[0] <= src.shape[0] and shape[1] <= src.shape[1] else "mirrored (symmetric)",
        "path": str(path),
        "raw_bytes": int(np.prod(shape)) * src.dtype.itemsize,
    }
    meta.write_text(json.dumps(info, indent=1))
    return info


# --------------------------------------------------------------------------- lean PCA + JPEG 2000 / HTJ2K


def _chunks(n: int, per_row: int) -> list[slice]:
    step = max(1, CHUNK_VALUES // max(1, per_row))
    return [slice(i, min(n, i + step)) for i in range(0, n, step)]


class LeanPCAModel:
    """:class:`hsicodec.evaluation.anchors.pca._PCAModel` computed by row chunks (float64 per chunk only)."""

    def __init__(self, cube: np.ndarray) -> None:
        h, w, c = cube.shape
        self.shape, self.dtype = cube.shape, cube.dtype
        self.x = cube.reshape(-1, c)  # the original samples; float64 per chunk when used
        n = self.x.shape[0]
        parts = _chunks(n, c)
        self.mu = sum(self.x[s].astype(np.float64).sum(axis=0) for s in parts) / n
        cov = np.zeros((c, c))
        peak = 0.0
        for s in parts:
            xc = self.x[s].astype(np.float64) - self.mu
            cov += xc.T @ xc
            peak = max(peak, float(np.max(np.abs(self.x[s].astype(np.float64)))))
        from hsicodec.evaluation.anchors.pca import principal_axes

        self.evals, self.evecs = principal_axes(cov / n)
        self.peak = float(np.float32(peak)) or 1.0
        self.total_var = float(self.evals.sum()) / c


def pca_encode(model: LeanPCAModel, k: int, d_target: float, coder: str, beta: float = 1.0, threads: int = 0) -> bytes:
    """The anchor's ``_pca_encode`` by row chunks; ``coder`` "j2k" (OpenJPEG, PSNR level + gain: the
    anchor's bitstream) or "htj2k" (OpenJPH, quantisation step from ``d_target``, full int16 gain)."""
    from hsicodec.evaluation.anchors import pca as anc
    from hsicodec.evaluation.anchors.common import _f32_floor, _j2k_resolutions, _strip_j2k_comments
    from hsicodec.evaluation.anchors.container import _pack_header, _varint

    ic = anc._imagecodecs()
    h, w, c = model.shape
    n = h * w
    side, mu_q, v_q = anc.pca_side_info(model, k, d_target, beta)
    proj = np.linalg.pinv(v_q.T)
    y = np.empty((n, k))
    for s in _chunks(n, c):
        y[s] = (model.x[s].astype(np.float64) - mu_q) @ proj
    ymax = float(np.max(np.abs(y))) or 1.0
    s_max = anc._J2K_PEAK / ymax
    if coder == "j2k":
        level, g = anc._j2k_level_and_scale(d_target, c / k, s_max)
        g = _f32_floor(g)
    else:  # per-value MSE d  <=>  coefficient step sqrt(12 d C / k); OpenJPH's step is relative to 2**16
        delta = math.sqrt(12.0 * d_target * c / k)
        g = _f32_floor(s_max)
        q = delta * g / 65536.0
        if q > 1.0:
            q, g = 1.0, _f32_floor(65536.0 / delta)
    yq = np.clip(np.rint(y * g), -anc._J2K_PEAK, anc._J2K_PEAK).astype(np.int16)
    del y
    if coder == "j2k":
        img = np.ascontiguousarray(yq.reshape(h, w, k)) if k > 1 else np.ascontiguousarray(yq.reshape(h, w))
        kw = {"numthreads": threads} if threads > 1 else {}
        cs = ic.jpeg2k_encode(
            img, level=level, codecformat="J2K", reversible=False, mct=False, planar=False if k > 1 else None,
            resolutions=_j2k_resolutions(h, w), **kw,
        )  # fmt: skip
    else:
        img = np.ascontiguousarray(yq.reshape(h, w, k).transpose(2, 0, 1)) if k > 1 else yq.reshape(h, w)
        cs = ic.htj2k_encode(
            img, level=q, planar=True if k > 1 else None, reversible=False, resolutions=_j2k_resolutions(h, w) - 1
        )
    head = _pack_header(model.shape, model.dtype) + struct.pack("<Bff", k, model.peak, g) + _varint(len(side))
    return head + side + _strip_j2k_comments(cs)


def pca_decode(
    blob: bytes, coder: str, *, window: Sequence[int] | None = None, reduce: int = 0, threads: int = 0
) -> np.ndarray:
    """Decode a :func:`pca_encode` file (whole, a window, or 2^reduce smaller) by row chunks."""
    from hsicodec.evaluation.anchors import pca as anc
    from hsicodec.evaluation.anchors.container import _read_varint, _to_dtype, _unpack_header
    from hsicodec.evaluation.anchors.vectors import _BitReader, _decode_vectors

    ic = anc._imagecodecs()
    shape, dtype, pos = _unpack_header(blob)
    h, w, c = shape
    k, peak, g = struct.unpack_from("<Bff", blob, pos)
    pos += struct.calcsize("<Bff")
    n_side, pos = _read_varint(blob, pos)
    vecs = _decode_vectors(_BitReader(blob[pos : pos + n_side]), k + 1, c, [peak] + [1.0] * k)
    mu, v = vecs[0], np.stack(vecs[1:], axis=1)
    cs = blob[pos + n_side :]
    if coder == "htj2k":
        maps = ic.htj2k_decode(cs, planar=True, **({"skipres": reduce} if reduce else {}))
        maps = maps.reshape(k, maps.shape[-2], maps.shape[-1]).transpose(1, 2, 0)
    else:
        maps = ic.jpeg2k_decode(cs, **({"numthreads": threads} if threads > 1 else {}))
        maps = maps.reshape(h, w, k)
        if reduce:  # no reduced-resolution decode in imagecodecs' OpenJPEG: block means of the maps
            f = 1 << reduce
            m = maps.astype(np.float64)
            rows, cols = np.arange(0, h, f), np.arange(0, w, f)
            m = np.add.reduceat(np.add.reduceat(m, rows, axis=0), cols, axis=1)
            cnt = np.minimum(f, h - rows)[:, None, None] * np.minimum(f, w - cols)[None, :, None]
            maps = m / cnt
    if window is not None:
        r0, c0, wh, ww = (int(t) for t in window)
        maps = maps[r0 : r0 + wh, c0 : c0 + ww]
    mh, mw = maps.shape[:2]
    flat = maps.reshape(-1, k)
    out = np.empty((mh * mw, c), dtype)
    basis = v.T / g
    for s in _chunks(mh * mw, c):
        out[s] = _to_dtype(mu + flat[s].astype(np.float64) @ basis, dtype)
    return out.reshape(mh, mw, c)


def quality(orig: np.ndarray, dec: np.ndarray) -> dict:
    """PSNR (hsicodec.metrics' definition), SAM and max abs error, by row chunks."""
    a2, b2 = orig.reshape(-1, orig.shape[2]), dec.reshape(-1, dec.shape[2])
    lo, hi, sse, sam, nsam, mae = math.inf, -math.inf, 0.0, 0.0, 0, 0.0
    for s in _chunks(a2.shape[0], a2.shape[1]):
        a, b = a2[s].astype(np.float64), b2[s].astype(np.float64)
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        d = (a - b).ravel()
        sse += float(np.dot(d, d))
        mae = max(mae, float(np.max(np.abs(d))))
        den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        ok = den > 0
        sam += float(np.sum(np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1)[ok] / den[ok], -1, 1)))))
        nsam += int(ok.sum())
    mse = sse / a2.size
    rng = (hi - lo) or 1.0
    return {
        "psnr": 10 * math.log10(rng * rng / mse) if mse > 0 else math.inf,
        "sam": sam / nsam if nsam else 0.0,
        "max_abs_error": mae,
    }


def _chunked_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(quality(a, b)["psnr"])


def pca_anchor(
    cube: np.ndarray, target: float, coder: str, threads: int = 0, k_crop: int = 0
) -> tuple[bytes | None, dict]:
    """The ``pca_jpeg2000`` anchor's rate control (k chosen by :func:`_choose_components`, then the
    distortion target refined to within 0.3 % under the budget) over the lean encoder; (blob, params).

    ``k_crop`` N > 0 and a scene over N x N pixels: k (and a starting distortion target) are chosen
    that way on the centre N x N crop, and only the distortion target is then searched on the whole
    scene (each trial encode of a 2048^2 scene takes seconds; the full search would take most of an hour).
    """
    from hsicodec.evaluation.anchors import pca as anc
    from hsicodec.evaluation.anchors.search import _search

    h, w, c = cube.shape
    target_bytes = int(math.floor(target * cube.size / 8.0))
    crop: np.ndarray | None = None
    sub: dict = {}
    if k_crop > 0 and h * w > k_crop * k_crop:
        ch, cw = min(h, k_crop), min(w, k_crop)
        r0, c0 = (h - ch) // 2, (w - cw) // 2
        crop = np.ascontiguousarray(cube[r0 : r0 + ch, c0 : c0 + cw])
        blob, sub = pca_anchor(crop, target, coder, threads)
        if blob is None:
            return None, sub
    model = LeanPCAModel(cube)
    kmax = min(c, h * w)
    ks = [k for k in anc._PCA_KS if 1 <= k <= kmax] or [1]
    d_hi = max(model.total_var, 1e-12) * 4.0
    d_lo = d_hi * 1e-9

    def enc(k: int, d: float) -> bytes:
        return pca_encode(model, k, d, coder, threads=threads)

    def dec(blob: bytes) -> np.ndarray:
        return pca_decode(blob, coder, threads=threads)

    if crop is not None:
        k = int(sub["k"])
        d, blob = _search(
            lambda dd: enc(k, dd), d_lo, d_hi, target_bytes, quality_increases_with_knob=False, iters=18,
            start=sub["d_target"], rel_tol=0.003,
        )  # fmt: skip
        if d is None:
            return None, {"ks": ks}
        return blob, {**sub, "d_target": d, "k_search": f"centre {crop.shape[0]}x{crop.shape[1]} crop"}
    saved = anc.psnr  # _choose_components measures metrics.psnr (float64 copies): the chunked one here
    anc.psnr = _chunked_psnr  # type: ignore[assignment]
    try:
        best_k, results, _ = anc._choose_components(ks, kmax, enc, dec, cube, target_bytes, d_lo, d_hi, 0.015)
    finally:
        anc.psnr = saved  # type: ignore[assignment]
    if best_k is None:
        return None, {"ks": ks}
    p, d, blob = results[best_k]
    d2, blob2 = _search(
        lambda dd: enc(best_k, dd), d_lo, d_hi, target_bytes, quality_increases_with_knob=False, iters=12,
        start=d, rel_tol=0.003, walk=0.02,
    )  # fmt: skip
    if d2 is not None and len(blob2) > len(blob) and quality(cube, dec(blob2))["psnr"] >= p:
        d, blob = d2, blob2
    psnr_by_k = {k: round(r[0], 3) for k, r in sorted(results.items()) if r is not None}
    return blob, {"k": best_k, "d_target": d, "psnr_by_k": psnr_by_k, "k_search": "whole scene"}


# --------------------------------------------------------------------------- one step in a fresh process


def _median_time(fn: Callable[[], object], repeat: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(max(1, repeat)):
        out = None  # the previous run's result is freed first: peak RSS is one run's, not two
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _write_geotiff(cube: np.ndarray, path: Path) -> None:
    import rasterio

    h, w, c = cube.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": c, "dtype": cube.dtype.name, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 2, "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, h, 256):
            block = np.ascontiguousarray(np.asarray(cube[r0 : r0 + 256]).transpose(2, 0, 1))
            ds.write(block, window=((r0, r0 + block.shape[1]), (0, w)))


def run_step(job: dict) -> dict:
    """One (codec, step) on one scene, in this process; returns its measurements."""
    codec, op, rep = job["codec"], job["op"], int(job["repeat"])
    src, dst = Path(job["scene"]), Path(job["file"])
    threads = int(job.get("threads") or os.cpu_count() or 1)
    orig = np.load(src, mmap_mode="r")
    h, w, c = orig.shape
    r0, c0, wh, ww = job["window"]
    res: dict = {"codec": codec, "op": op}
    coder = "j2k" if codec == "pca_jpeg2000" else "htj2k"
    if codec == "hsicodec":
        import hsicodec

        if op == "compress":
            hsicodec.compress(np.ascontiguousarray(orig[:16, :16]))  # loads the models (default target)
            stats: dict = {}

            def compress_once() -> object:
                stats.clear()
                stats.update(hsicodec.compress_file(src, dst, bpppb=job["rate"], tile=job.get("tile"), force=True))
                return None

            res["seconds"], res["times"], _ = _median_time(compress_once, rep)
            res["tiles"] = stats.get("tiles")
            res["psnr_estimate"] = stats.get("psnr")
        else:
            kw = {"window": (r0, c0, wh, ww)} if op == "window" else {"reduce": REDUCE} if op == "reduce" else {}
            hsicodec.decompress(dst, window=(0, 0, min(8, h), min(8, w)))  # warm-up (models, caches)
            res["seconds"], res["times"], out = _median_time(lambda: hsicodec.decompress(dst, **kw)[0], rep)
    elif codec in ("pca_jpeg2000", "pca_htj2k"):
        if op == "compress":
            t0 = time.perf_counter()
            cube = np.ascontiguousarray(orig)
            res["read_s"] = time.perf_counter() - t0
            blob: bytes | None
            if job.get("params"):  # --recompress: the parameters an earlier run's search found; a warm-up as
                params, blob = job["params"], None  # hsicodec's (a tiny crop), not the search's hot heap
                pca_encode(LeanPCAModel(np.ascontiguousarray(cube[:16, :16])), 1, 1.0, coder)
            else:
                t0 = time.perf_counter()
                blob, params = pca_anchor(cube, job["rate"], coder, threads, int(job.get("k_crop", 0)))
                res["search_s"] = time.perf_counter() - t0
                if blob is None:
                    return {**res, "reachable": False, "note": f"cannot reach {job['rate']} bpppb"}
            k, d = params["k"], params["d_target"]
            res["params"] = params
            res["seconds"], res["times"], again = _median_time(
                lambda: pca_encode(LeanPCAModel(cube), k, d, coder, threads=threads), rep
            )
            assert isinstance(again, bytes)
            if blob is not None:
                res["deterministic"] = again == blob
            dst.write_bytes(blob if blob is not None else again)
        else:
            kw = {"window": (r0, c0, wh, ww)} if op == "window" else {"reduce": REDUCE} if op == "reduce" else {}

            def decode_once() -> np.ndarray:
                return pca_decode(dst.read_bytes(), coder, threads=threads, **kw)

            tiny = np.ascontiguousarray(orig[:8, :8])  # warm-up (imports, thread pools) on a tiny file
            warm = pca_encode(LeanPCAModel(tiny), 1, 1.0, coder)
            pca_decode(warm, coder, threads=threads, reduce=REDUCE if op == "reduce" else 0)
            res["seconds"], res["times"], out = _median_time(decode_once, rep)
    else:  # geotiff_deflate
        import rasterio

        from hsicodec.coding.reduce import block_mean
        from hsicodec.io.cast import cast_to_dtype

        if op == "compress":
            res["seconds"], res["times"], _ = _median_time(lambda: _write_geotiff(orig, dst), rep)
        else:

            def read_once() -> np.ndarray:
                with rasterio.open(dst) as ds:
                    if op == "window":
                        return ds.read(window=((r0, r0 + wh), (c0, c0 + ww)))
                    if op == "reduce":  # no overviews: the whole read, then block means (as hsicodec reduces)
                        whole = np.moveaxis(ds.read(), 0, -1)
                        strip = 64 << REDUCE  # rows: whole blocks, float64 for one strip at a time
                        parts = [block_mean(whole[r : r + strip], REDUCE) for r in range(0, h, strip)]
                        return np.moveaxis(cast_to_dtype(np.concatenate(parts), whole.dtype), -1, 0)
                    return ds.read()

            with rasterio.open(dst) as ds:  # warm-up (GDAL drivers)
                ds.read(1, window=((0, 1), (0, 1)))
            res["seconds"], res["times"], out = _median_time(read_once, rep)
            if op != "reduce":
                out = np.moveaxis(np.asarray(out), 0, -1)
    res["peak_rss_mb"] = _vmhwm_mb()  # before the quality pass below reads the original
    if op == "compress":
        n = dst.stat().st_size
        res.update({"bytes": n, "bpppb": 8.0 * n / orig.size})
    elif op == "decompress":
        res.update(quality(orig, np.asarray(out)))
    elif op == "window":
        win = np.asarray(out)
        res["exact_shape"] = list(win.shape) == [wh, ww, c]
    res["threads"] = threads
    return res


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")  # pragma: no cover


def measured(job: dict, timeout: float | None = None) -> dict:
    """Run :func:`run_step` in a fresh process; adds its peak RSS (VmHWM) and CPU seconds."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return {"codec": job["codec"], "op": job["op"], "error": f"timed out after {timeout} s"}
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, etext = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode != 0 or not text.strip():
        return {"codec": job["codec"], "op": job["op"], "error": etext.strip().splitlines()[-1:] or ["failed"]}
    res = json.loads(text.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


def worker_main(spec: str) -> int:
    job = json.loads(spec)
    res = run_step(job)
    res.setdefault("peak_rss_mb", _vmhwm_mb())
    ru = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF)
    res["cpu_s"] = ru.ru_utime + ru.ru_stime
    print(json.dumps(res, default=float))
    return 0


# --------------------------------------------------------------------------- the run and the report

FILE_EXT = {"hsicodec": ".hsim", "pca_jpeg2000": ".pcaj2k", "pca_htj2k": ".pcahtj2k", "geotiff_deflate": ".tif"}


def bench_scene(info: dict, args, log) -> dict:
    h, w, c = info["shape"]
    win = [min(h // 3, h - min(WINDOW, h)), min(w // 3, w - min(WINDOW, w)), min(WINDOW, h), min(WINDOW, w)]
    big = h * w * c > (1 << 26)
    rep_c = args.compress_repeat if args.compress_repeat is not None else (1 if big else 3)
    rows = {}
    for codec in args.codecs:
        f = Path(args.work) / f"{info['name']}_{info['source']}{FILE_EXT[codec]}"
        steps = {}
        for op in OPS:
            job = {
                "codec": codec, "op": op, "scene": info["path"], "file": str(f), "rate": args.rate,
                "repeat": rep_c if op == "compress" else args.repeat, "window": win, "threads": args.threads,
                "k_crop": args.k_crop,
                "tile": args.tile,
            }  # fmt: skip
            log(f"[{info['name']}] {codec} {op}")
            steps[op] = r = measured(job, args.timeout)
            if "error" in r:
                log(f"  failed: {r['error']}")
                if op == "compress":
                    break
        rows[codec] = steps
        if not args.keep:
            f.unlink(missing_ok=True)
    return {**info, "window": win, "compress_repeat": rep_c, "results": rows, "loadavg": list(os.getloadavg())}


def _get(scene: dict, codec: str, op: str, key: str = "seconds") -> float | None:
    r = scene["results"].get(codec, {}).get(op, {})
    v = r.get(key)
    return float(v) if isinstance(v, (int, float)) and "error" not in r else None


def targets(scenes: list, rate: float) -> list[dict]:
    """Each target of issue #19 point 5 with its measured ratio (None: not measured)."""
    out = []

    def add(name: str, scene: dict, ratio: float | None, limit: float, le: bool, what: str) -> None:
        met = None if ratio is None else (ratio <= limit if le else ratio >= limit)
        out.append({"target": name, "scene": scene["name"], "ratio": ratio, "limit": limit, "le": le, "what": what,
                    "met": met})  # fmt: skip

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    if not scenes:
        return out
    largest = max(scenes, key=lambda s: s["shape"][0] * s["shape"][1])
    small = [s for s in scenes if s["shape"] == [145, 145, 220]]
    smallest = small[0] if small else min(scenes, key=lambda s: s["shape"][0] * s["shape"][1])
    big = [s for s in scenes if s is not smallest] or scenes  # the 1024^2 and 2048^2 scenes
    for s in big:
        rounds, plain = s.get("decode_rounds"), s.get("decode_rounds_no_huge_pages")
        if plain and plain["ratios"]:  # the stricter reading, beside the target's own
            add(f"decompress ≥ 3× faster than PCA + JPEG 2000 at {rate:g} bpppb (neither with huge pages)", s,
                statistics.median(plain["ratios"]), 3.0, False,
                f"as below, `--no-huge-pages`: median of {len(plain['ratios'])} alternating rounds")  # fmt: skip
        if rounds and rounds["ratios"]:
            n = len(rounds["ratios"])
            add(f"decompress ≥ 3× faster than PCA + JPEG 2000 at {rate:g} bpppb", s,
                statistics.median(rounds["ratios"]), 3.0, False,
                f"PCA+J2K decode s / hsicodec decode s, median of {n} alternating rounds")  # fmt: skip
            continue
        add(f"decompress ≥ 3× faster than PCA + JPEG 2000 at {rate:g} bpppb", s,
            ratio(_get(s, "pca_jpeg2000", "decompress"), _get(s, "hsicodec", "decompress")), 3.0, False,
            "PCA+J2K decode s / hsicodec decode s")  # fmt: skip
    for s in scenes:
        if (rounds := s.get("compress_rounds")) and rounds["ratios"]:
            add("compress (default effort) no slower than PCA + JPEG 2000", s, statistics.median(rounds["ratios"]),
                1.0, True, f"hsicodec compress s / PCA+J2K encode s (final parameters), median of "
                f"{len(rounds['ratios'])} alternating rounds")  # fmt: skip
            continue
        add("compress (default effort) no slower than PCA + JPEG 2000", s,
            ratio(_get(s, "hsicodec", "compress"), _get(s, "pca_jpeg2000", "compress")), 1.0, True,
            "hsicodec compress s / PCA+J2K encode s (final parameters, rate search not counted)")  # fmt: skip
    small_rounds = [v for v in (smallest.get("compress_rounds") or {}).get("hsicodec", []) if v]
    add("145 × 145 × 220 default compress ≤ 0.3 s", smallest,
        statistics.median(small_rounds) if small_rounds else _get(smallest, "hsicodec", "compress"), 0.3, True,
        f"hsicodec compress s (absolute){', median of the alternating rounds' if small_rounds else ''}")  # fmt: skip
    for s in big:
        add("64 × 64 window ≤ 3× the tiled GeoTIFF read", s,
            ratio(_get(s, "hsicodec", "window"), _get(s, "geotiff_deflate", "window")), 3.0, True,
            "hsicodec window s / GeoTIFF window s (each opens the file)")  # fmt: skip
    add("--reduce 2 ≤ 1/8 of the full decode", largest,
        ratio(_get(largest, "hsicodec", "reduce"), _get(largest, "hsicodec", "decompress")), 0.125, True,
        "hsicodec reduce-2 s / hsicodec full decode s")  # fmt: skip
    return out


def merged(docs: list[dict]) -> dict:
    """One document of the scenes of several runs (largest first, as a run lists them; a scene a later run
    measured again is that run's), with their targets; ``runs`` keeps each run's time, wall clock, load and
    scenes."""
    runs = [{"when": d["when"], "wall_s": d["wall_s"], "machine": d["machine"],
             "scenes": [s["name"] for s in d["scenes"]]} for d in docs]  # fmt: skip
    latest = {s["name"]: s for d in docs for s in d["scenes"]}
    scenes = sorted(latest.values(), key=lambda s: -s["shape"][0] * s["shape"][1])
    doc = {**docs[0], "scenes": scenes, "runs": runs, "wall_s": sum(d["wall_s"] for d in docs)}
    doc["targets"] = targets(scenes, doc["rate"])
    return doc


def _fmt(v, spec: str, none: str = "–") -> str:
    if v is None:
        return none
    if isinstance(v, float) and math.isinf(v):
        return "∞ (lossless)"
    return format(v, spec)


def _rounds_lines(scene: dict) -> list[str]:
    """The scene's alternating decode rounds (``--redecode``, with and without huge pages) and compress rounds
    (``--recompress``), as paragraphs."""
    fmt = lambda v: ", ".join(_fmt(x, ".2f") for x in v)  # noqa: E731
    runs = lambda n: "one run" if n == 1 else f"median of {n} runs"  # noqa: E731
    kept = " (the target uses their median; the table keeps the first run's)"
    paragraphs = (
        ("decode_rounds", "Decode measured again in {n} alternating rounds (`--redecode`: hsicodec, then PCA + JPEG "
         "2000, each a fresh process, {runs}; ", kept),
        ("decode_rounds_no_huge_pages", "The same with `--no-huge-pages` (numpy asks for no transparent huge pages in "
         "either codec: hsicodec's own allocations, which take them only where the kernel has free 2 MiB blocks, "
         "then get none either; ", ""),
        ("compress_rounds", "Compress measured again in {n} alternating rounds (`--recompress`: hsicodec, then PCA + "
         "JPEG 2000's encode at the parameters its search found, each a fresh process warmed up on a tiny crop, "
         "{runs}; ", kept.replace("target uses their median", "targets use their medians")),
    )  # fmt: skip
    lines = []
    for r in scene.get("reruns", []):
        names = ", ".join(LABELS.get(c, c) for c in r["codecs"])
        lines += [f"Measured again on {r['when']} (`--rerun`, every step): {names}.", ""]
    for key, head, tail in paragraphs:
        if r := scene.get(key):
            lines += [
                head.format(n=len(r["ratios"]), runs=runs(r.get("repeat", 1)))
                + f"{r['when']}): hsicodec {fmt(r['hsicodec'])} s, PCA + JPEG 2000 {fmt(r['pca_jpeg2000'])} s, "
                f"ratios {fmt(r['ratios'])}{tail}.",
                "",
            ]
    return lines


def rerun(doc: dict, args, log) -> None:
    """``--rerun``: the ``--codecs`` measured again (every step) on the .json's scenes; their rows replace the
    old ones and the scene notes when (``reruns``)."""
    args.work.mkdir(parents=True, exist_ok=True)
    for scene in doc["scenes"]:
        if args.sizes and tuple(scene["shape"]) not in {tuple(t) for t in args.sizes}:
            continue
        info = {k: v for k, v in scene.items() if k not in ("results", "loadavg", "window", "compress_repeat")}
        rows = bench_scene(info, args, log)["results"]
        scene["results"].update(rows)
        scene.setdefault("reruns", []).append({"codecs": list(rows), "when": time.strftime("%Y-%m-%d %H:%M")})


def _alternating(name: str, jobs: dict, args, log) -> dict:
    """Each codec's job (codec → job) run ``args.rounds`` times, the codecs alternately, each run a fresh process
    (this shared machine serves fresh memory at very different speeds from minute to minute; alternating puts
    the codecs in the same minutes): codec → seconds of each round (None where it failed). A compress job's
    file is removed after each run."""
    got: dict = {c: [] for c in jobs}
    for i in range(args.rounds):
        for codec, job in jobs.items():
            log(f"[{name}] round {i + 1}: {codec} {job['op']}")
            r = measured(job, args.timeout)
            if "error" in r:
                log(f"  failed: {r['error']}")
            got[codec].append(r.get("seconds"))
            if job["op"] == "compress":
                Path(job["file"]).unlink(missing_ok=True)
    return got


def _rounds(got: dict, num: str, den: str, repeat: int) -> dict:
    """The rounds of :func:`_alternating` with the ratio num / den of each round both measured."""
    pairs = [(a, b) for a, b in zip(got[num], got[den]) if a and b]
    return {**got, "ratios": [a / b for a, b in pairs], "repeat": repeat, "when": time.strftime("%Y-%m-%d %H:%M")}


def _wanted(scene: dict, args) -> bool:
    return not args.sizes or tuple(scene["shape"]) in {tuple(z) for z in args.sizes}


def redecode(doc: dict, args, log) -> None:
    """Decode each scene's kept hsicodec and PCA + JPEG 2000 files again in alternating rounds
    (:func:`_alternating`), into the scene's ``decode_rounds``."""
    for s in filter(lambda sc: _wanted(sc, args), doc["scenes"]):
        files = {c: Path(args.work) / f"{s['name']}_{s['source']}{FILE_EXT[c]}" for c in ("hsicodec", "pca_jpeg2000")}
        if not all(f.exists() for f in files.values()):
            log(f"[{s['name']}] no kept files in {args.work} (run with --keep): not measured again")
            continue
        jobs = {c: {"codec": c, "op": "decompress", "scene": s["path"], "file": str(f), "rate": doc["rate"],
                    "repeat": args.repeat, "window": s["window"], "threads": args.threads}
                for c, f in files.items()}  # fmt: skip
        key = "decode_rounds_no_huge_pages" if args.no_huge_pages else "decode_rounds"
        s[key] = _rounds(_alternating(s["name"], jobs, args, log), "pca_jpeg2000", "hsicodec", args.repeat)


def recompress(doc: dict, args, log) -> None:
    """Compress each scene again with hsicodec and PCA + JPEG 2000 (at the parameters the run's search found) in
    alternating rounds (:func:`_alternating`), into the scene's ``compress_rounds``."""
    for s in filter(lambda sc: _wanted(sc, args), doc["scenes"]):
        params = s["results"].get("pca_jpeg2000", {}).get("compress", {}).get("params")
        if not params:
            log(f"[{s['name']}] PCA + JPEG 2000 has no parameters in this run: not measured again")
            continue
        if not Path(s["path"]).exists():
            s["path"] = scene_for(tuple(s["shape"]), args.data, [s["source"]], args.work, log)["path"]
        rep = int(s.get("compress_repeat") or 1)
        jobs = {c: {"codec": c, "op": "compress", "scene": s["path"], "rate": doc["rate"], "repeat": rep,
                    "file": str(Path(args.work) / f"{s['name']}_{s['source']}_recompress{FILE_EXT[c]}"),
                    "window": s["window"], "threads": args.threads, "tile": args.tile,
                    "params": params if c != "hsicodec" else None}
                for c in ("hsicodec", "pca_jpeg2000")}  # fmt: skip
        s["compress_rounds"] = _rounds(_alternating(s["name"], jobs, args, log), "hsicodec", "pca_jpeg2000", rep)


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "# Scale benchmark (tools/bench_scale.py)",
        "",
        f"{doc['when']}, {m['cpus']} CPUs ({m['platform']}), shared with other jobs (load average "
        f"{m['loadavg_before']} before, {m['loadavg_after']} after); rate target {doc['rate']:g} bpppb; "
        f"median of {doc['repeat']} runs (compress: see each scene); wall {doc['wall_s']:.0f} s."
        + (" **Quick sizes: indicative only.**" if doc.get("quick") else ""),
        *[
            f"Run {i + 1}: {r['when']}, scenes {', '.join(r['scenes'])}, wall {r['wall_s']:.0f} s, load average "
            f"{r['machine']['loadavg_before']} before, {r['machine']['loadavg_after']} after (each scene's codecs "
            "ran side by side in one run; the header above is run 1's; a scene measured again is the later run's)."
            for i, r in enumerate(doc.get("runs", []))
        ],
        "",
        "Each step runs in its own process (peak RSS = its VmHWM); times exclude imports and model loading.",
        "Throughput in MB/s of the raw cube. hsicodec: `compress_file` from `.npy` (reading included), default",
        "effort and tiling, all cores; OpenJPEG with all cores (`numthreads`), OpenJPH single-threaded.",
        "PCA encode = one encode at the rate-searched parameters, PCA included (the search is listed apart;",
        f"above {doc.get('k_crop', 512)}² pixels its k is chosen on the centre crop of that size).",
        "OpenJPEG offers no region or reduced decode here: its window and reduce decode every map whole.",
        "",
        "## Targets",
        "",
        "| target | scene | measured | ratio | limit | status |",
        "|---|---|---|---|---|---|",
    ]
    for t in doc["targets"]:
        status = "not measured" if t["met"] is None else ("**met**" if t["met"] else "**not met**")
        lim = f"{'≤' if t['le'] else '≥'} {t['limit']:g}"
        lines.append(f"| {t['target']} | {t['scene']} | {t['what']} | {_fmt(t['ratio'], '.3g')} | {lim} | {status} |")
    for s in doc["scenes"]:
        lines += [
            "",
            f"## {s['name']} ({s['dtype']}, {s['raw_bytes'] / 1e6:.0f} MB raw)",
            "",
            f"Real spectra from `{s['source']}` {tuple(s['source_shape'])} (validation scene): {s['bands']}; "
            f"spatially {s['spatial']}. Window {s['window']} (row, col, h, w); compress runs: "
            f"{s['compress_repeat']}.",
            "",
            "| codec | bpppb | PSNR dB | SAM ° | compress s | MB/s | decompress s | MB/s | 64² window ms "
            "| reduce 2 s | peak RSS MB (comp / dec / win / red) | notes |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines[-3:-3] = _rounds_lines(s)
        for codec, steps in s["results"].items():
            cp, dc = steps.get("compress", {}), steps.get("decompress", {})
            mb = s["raw_bytes"] / 1e6
            notes = []
            if "search_s" in cp:
                pr = cp.get("params", {})
                notes.append(f"rate search {cp['search_s']:.1f} s ({pr.get('k_search')}), k={pr.get('k')}")
            tl = cp.get("tiles")
            if isinstance(tl, dict) and tl.get("count"):
                notes.append(f"{tl['count']} tiles of {'x'.join(map(str, tl.get('size', [])))}")
            for op in OPS:
                if "error" in steps.get(op, {}):
                    notes.append(f"{op} failed: {steps[op]['error']}")
            if codec == "pca_htj2k" and not doc.get("htj2k_available", True):
                notes.append("no HTJ2K in this imagecodecs build")
            rss = " / ".join(_fmt(steps.get(op, {}).get("peak_rss_mb"), ".0f") for op in OPS)
            tc, td = _get(s, codec, "compress"), _get(s, codec, "decompress")
            tw = _get(s, codec, "window")
            lines.append(
                f"| {LABELS[codec]} | {_fmt(cp.get('bpppb'), '.4f')} | {_fmt(dc.get('psnr'), '.2f')} "
                f"| {_fmt(dc.get('sam'), '.3f')} | {_fmt(tc, '.3f')} | {_fmt(mb / tc if tc else None, '.1f')} "
                f"| {_fmt(td, '.3f')} | {_fmt(mb / td if td else None, '.1f')} | {_fmt(tw and tw * 1e3, '.1f')} "
                f"| {_fmt(_get(s, codec, 'reduce'), '.3f')} | {rss} | {'; '.join(notes)} |"
            )
    return "\n".join(lines) + "\n"


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def _update_run(path: Path, step: Callable[[dict, Any, Callable[[str], None]], None], args) -> int:
    """A run's .json measured into by ``step`` (``--redecode``, ``--recompress``, ``--rerun``): its targets
    taken again, the .json and .md rewritten."""
    doc = json.loads(path.read_text())
    step(doc, args, _log)
    doc["targets"] = targets(doc["scenes"], doc["rate"])
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    path.with_suffix(".md").write_text(markdown(doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="+", type=parse_size, help=f"scene sizes RxCxB (default {' '.join(SIZES)})")
    ap.add_argument("--scenes", nargs="+", default=SOURCES, help="source scenes of real spectra (validation scenes)")
    ap.add_argument("--data", type=Path, default=DATA, help="folder of the *.npy scenes (default ../shared/data/hsi)")
    ap.add_argument("--codecs", nargs="+", default=CODECS, choices=CODECS)
    ap.add_argument("--rate", type=float, default=0.05, help="bpppb target of hsicodec and the PCA anchors")
    ap.add_argument("--repeat", type=int, default=3, help="runs per decode / window / reduce (median)")
    ap.add_argument("--compress-repeat", type=int, help="runs per compress (default 3, 1 above 2**26 values)")
    ap.add_argument(
        "--k-crop",
        type=int,
        default=512,
        help="PCA anchors: choose k on the centre NxN crop of bigger scenes (0: never)",
    )
    ap.add_argument("--tile", type=int, help="hsicodec tile size (default: the CLI's, 512 above 2**26 values)")
    ap.add_argument("--threads", type=int, default=0, help="threads (0: every CPU)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per step before it is killed")
    ap.add_argument("--quick", action="store_true", help=f"small sizes ({' '.join(QUICK_SIZES)}) for a smoke test")
    ap.add_argument(
        "--out", type=Path, help="writes OUT.json and OUT.md (default bench/scale, --quick: bench/scale_quick)"
    )
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hsicodec-bench-scale")
    ap.add_argument("--keep", action="store_true", help="keep the compressed files in --work")
    ap.add_argument("--render", type=Path, help="rewrite the .md (and targets) of this .json only; no codec runs")
    ap.add_argument(
        "--redecode", type=Path,
        help="decode the kept files (--work, from a run with --keep) of this .json's scenes (--sizes: only those) "
        "again, hsicodec and PCA + JPEG 2000 alternately, --rounds times; the decode target takes the median "
        "ratio; rewrites the .json and .md",
    )  # fmt: skip
    ap.add_argument(
        "--recompress", type=Path,
        help="a run's .json: compress each scene again, hsicodec and PCA + JPEG 2000 (at the parameters that run's "
        "search found) alternately, --rounds times, each a fresh process; the compress targets take the median "
        "ratio; rewrites the .json and .md",
    )  # fmt: skip
    ap.add_argument(
        "--rerun", type=Path,
        help="measure the --codecs (all four steps) again on this .json's scenes (--sizes: only those) and put "
        "their rows in its place; the other codecs' rows and the rounds stay; rewrites the .json and .md",
    )  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of --redecode and --recompress")
    ap.add_argument(
        "--no-huge-pages", action="store_true",
        help="--redecode with NUMPY_MADVISE_HUGEPAGE=0 for every step (neither codec's numpy arrays get transparent "
        "huge pages: hsicodec's, which take them only where the kernel has free 2 MiB blocks, then get none either); "
        "kept apart from the target's rounds",
    )  # fmt: skip
    ap.add_argument(
        "--merge", type=Path, nargs="+",
        help="join the scenes of these runs' .json files into --out (.json and .md; each scene keeps its own "
        "run, the header lists the runs); no codec runs",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.render:
        doc = json.loads(args.render.read_text())
        doc["targets"] = targets(doc["scenes"], doc["rate"])
        args.render.write_text(json.dumps(doc, indent=1, default=float) + "\n")
        args.render.with_suffix(".md").write_text(markdown(doc))
        return 0
    if args.recompress:
        args.work.mkdir(parents=True, exist_ok=True)
        return _update_run(args.recompress, recompress, args)
    if args.rerun:
        return _update_run(args.rerun, rerun, args)
    if args.redecode:
        if args.no_huge_pages:
            os.environ["NUMPY_MADVISE_HUGEPAGE"] = "0"  # read by numpy at import: the step processes inherit it
        return _update_run(args.redecode, redecode, args)
    args.out = args.out or ROOT / "bench" / ("scale_quick" if args.quick else "scale")
    if args.merge:
        docs = [json.loads(f.read_text()) for f in args.merge]
        doc = merged(docs)
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
        args.out.with_suffix(".md").write_text(markdown(doc))
        return 0
    sizes = args.sizes or [parse_size(t) for t in (QUICK_SIZES if args.quick else SIZES)]
    args.work.mkdir(parents=True, exist_ok=True)

    imagecodecs: Any = None
    try:
        import imagecodecs

        htj2k = bool(getattr(getattr(imagecodecs, "HTJ2K", None), "available", False))
    except ImportError:
        htj2k = False
    codecs = [cd for cd in args.codecs if imagecodecs is not None or not cd.startswith("pca")]
    args.codecs = [cd for cd in codecs if cd != "pca_htj2k" or htj2k]
    t0, load0 = time.perf_counter(), list(os.getloadavg())
    scenes = []
    for shape in sizes:
        info = scene_for(shape, args.data, args.scenes, args.work, _log)
        scenes.append(bench_scene(info, args, _log))
    doc = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rate": args.rate,
        "repeat": args.repeat,
        "quick": bool(args.quick),
        "htj2k_available": htj2k,
        "k_crop": args.k_crop,
        "imagecodecs": getattr(imagecodecs, "__version__", None),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(v, 2) for v in load0],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        },
        "wall_s": time.perf_counter() - t0,
        "scenes": scenes,
    }
    doc["targets"] = targets(scenes, args.rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    text = markdown(doc)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

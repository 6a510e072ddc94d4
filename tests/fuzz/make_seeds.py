"""Write the fuzz seed corpus: small valid ``.hsim`` files and model files (deterministic).

    python tests/fuzz/make_seeds.py            # (re)writes tests/fuzz/seeds/{hsim,model}/

``.hsim`` seeds cover both bundled models (hsi-grid-v1: PCA + latent grids;
hsi-plain-v1: band outputs), integer and float dtypes, masks (NaN and nodata),
a constant cube (no latent section), a 1x1 cube, geo metadata and a tiled
(format 1.1) file. Model seeds
are a tiny valid ``modsiren-grid`` model of each spectral kind (fast to mutate
and fully interpretable by :func:`hsicodec.layers.network.model.codec_model`) and the bundled
hsi-grid-v1 file. The files are checked in; running this again on the same
machine reproduces them byte for byte.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import hsicodec  # noqa: E402
from hsicodec.data import sample_path  # noqa: E402
from hsicodec.io.raster import GeoInfo  # noqa: E402
from hsicodec.models.modelfile import encode_model  # noqa: E402
from hsicodec.models.registry import bundled_models_dir  # noqa: E402


def hsim_seeds() -> dict[str, bytes]:
    s = np.load(sample_path())
    out: dict[str, bytes] = {}
    c = lambda a: np.ascontiguousarray(a)  # noqa: E731
    out["grid_8x8x16_u16"] = hsicodec.compress(c(s[:8, :8, :16]), model="hsi-grid-v1", psnr=30, effort="fast")
    out["grid_5x7x3_u16"] = hsicodec.compress(c(s[:5, :7, :3]), model="hsi-grid-v1", psnr=30, effort="fast")
    f = (c(s[:9, :6, :12]) / 1e4).astype(np.float32)
    f[1, 2, :] = np.nan
    f[3, 3, 4] = np.inf
    out["grid_9x6x12_f32_nan"] = hsicodec.compress(f, model="hsi-grid-v1", psnr=30, effort="fast")
    n = c(s[:6, :6, :5]).astype(np.int16)
    n[0, :, :] = -1
    out["grid_6x6x5_i16_nodata"] = hsicodec.compress(n, model="hsi-grid-v1", psnr=30, effort="fast", nodata=-1)
    out["grid_const_4x5x3_u8"] = hsicodec.compress(np.full((4, 5, 3), 7, np.uint8), model="hsi-grid-v1", psnr=30)
    out["grid_1x1x4_f64"] = hsicodec.compress(np.arange(4.0).reshape(1, 1, 4), model="hsi-grid-v1", psnr=30)
    geo = GeoInfo(
        crs_wkt='LOCAL_CS["fuzz"]',
        transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
        wavelengths=[400.0 + 10 * i for i in range(6)],
        band_names=[f"b{i}" for i in range(6)],
    )
    out["grid_7x5x6_geo"] = hsicodec.compress(
        c(s[:7, :5, :6]), model="hsi-grid-v1", psnr=30, effort="fast", geo=geo, tags={"k": "v"}
    )
    out["plain_8x8x198_u16"] = hsicodec.compress(c(s[:8, :8]), model="hsi-plain-v1", bpppb=2.0, effort="fast")
    m = c(s[:4, :4, :3]).astype(np.float32)
    m[2, 1, 1] = np.nan
    out["plain_4x4x3_f32_nan"] = hsicodec.compress(m, model="hsi-plain-v1", bpppb=100.0, effort="fast")
    out["plain_const_3x3x2_u16"] = hsicodec.compress(np.full((3, 3, 2), 9, np.uint16), model="hsi-plain-v1", psnr=30)
    # the coefficient-map layer alone, its stream in the layer's rANS coder (grid v8, spec/hsim.md 10.9)
    out["maps_ec1_12x10x9_u16"] = hsicodec.compress(c(s[:12, :10, ::22]), layer="maps", bpppb=3.0, effort="fast")
    # the predictive layer (lossless and error-bounded files)
    out["pred_9x7x5_u16_lossless"] = hsicodec.compress(c(s[:9, :7, :5]), lossless=True)
    out["pred_6x6x5_i16_e2_nodata"] = hsicodec.compress(n, max_error=2, nodata=-1)
    with tempfile.TemporaryDirectory() as d:  # a tiled file (format 1.1, hsicodec.codec.tiled): 3x3 tiles of 8x8
        np.save(f"{d}/t.npy", c(s[:20, :18, :6]))
        hsicodec.compress_file(f"{d}/t.npy", f"{d}/t.hsim", tile=8, model="hsi-grid-v1", psnr=30, effort="fast")
        out["tiled_20x18x6_t8"] = Path(f"{d}/t.hsim").read_bytes()
        # its tiles on one shared spectral stage (spec/hsim.md 10.8): header tiles.sp, section sp, sp = [D]
        hsicodec.compress_file(f"{d}/t.npy", f"{d}/s.hsim", tile=8, shared_basis=True, layer="maps", bpppb=40.0)
        out["tiled_shared_20x18x6_t8"] = Path(f"{d}/s.hsim").read_bytes()
    return out


def tiny_model(spectral: str = "pca") -> bytes:
    """A minimal valid modsiren-grid model (width 4, depth 2, 2 latent levels)."""
    rng = np.random.default_rng(1)
    d, n_out = 4, (3 if spectral == "pca" else 5)
    levels: list[list[Any]] = [[2, 2, "linear"], [0, 1, "nearest"]]
    m = sum(lv[1] for lv in levels)

    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    arrays = {
        "hidden.0.weight": f(d, 2),
        "hidden.0.bias": f(d),
        "hidden.1.weight": f(d, d),
        "hidden.1.bias": f(d),
        "out.weight": f(n_out, d),
        "out.bias": f(n_out),
        "meta.weight": f(2 * d, m),
        "meta.bias": f(2 * d),
        "inner.lr.0": f(2),
        "inner.lr.1": f(1),
    }
    if spectral == "pca":
        arrays["skip.weight"] = f(n_out, m)
    config = {
        "arch": "modsiren-grid",
        "depth": 2,
        "width": d,
        "n_out": n_out,
        "shift": "inside",
        "latent": {"levels": levels, "coord_cell": 4},
        "inner_steps": 1,
        "spectral": spectral,
    }
    return encode_model(arrays, config, {"alias": f"tiny-{spectral}", "description": "fuzz seed"})


def model_seeds() -> dict[str, bytes]:
    return {
        "tiny_pca.hsmodel": tiny_model("pca"),
        "tiny_id.hsmodel": tiny_model("id"),
        "hsi-grid-v1.hsmodel": (bundled_models_dir() / "hsi-grid-v1.hsmodel").read_bytes(),
    }


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for kind, seeds in (("hsim", hsim_seeds()), ("model", model_seeds())):
        d = HERE / "seeds" / kind
        d.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            fn = d / (name if "." in name else name + ".hsim")
            fn.write_bytes(data)
            print(f"{fn.relative_to(HERE)}: {len(data)} bytes")


if __name__ == "__main__":
    main()

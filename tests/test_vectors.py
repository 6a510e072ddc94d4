"""The spec's test vectors decode to their recorded arrays and rebuild byte-identically."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsicodec.codec.api import decompress

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "spec" / "vectors"
NAMES = sorted(p.stem for p in VECTORS.glob("*.hsim"))


def test_there_are_at_least_three_vectors():
    assert len(NAMES) >= 3


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_to_recorded_array(name):
    dec, _ = decompress(VECTORS / f"{name}.hsim", backend="numpy", threads=1)
    want_hash = (VECTORS / f"{name}.sha256").read_text().split()[0]
    ref = np.load(VECTORS / f"{name}.npy")
    assert dec.shape == ref.shape and dec.dtype == ref.dtype
    got = hashlib.sha256(np.ascontiguousarray(dec, dec.dtype.newbyteorder("<")).tobytes()).hexdigest()
    if got != want_hash:
        # float rounding may differ on another CPU/BLAS: allow one unit (integers) or 1e-5 relative (floats)
        tol = 1 if dec.dtype.kind in "ui" else 1e-5 * float(np.abs(ref).max())
        assert np.abs(dec.astype(np.float64) - ref.astype(np.float64)).max() <= tol


LEGACY = sorted(p.stem for p in (VECTORS / "legacy").glob("*.hsim"))


@pytest.mark.parametrize("name", LEGACY)
def test_files_of_earlier_codec_versions_still_decode(name):
    """Vectors an earlier encoder wrote (the current one writes another form) decode to their arrays."""
    dec, _ = decompress(VECTORS / "legacy" / f"{name}.hsim", backend="numpy", threads=1)
    ref = np.load(VECTORS / "legacy" / f"{name}.npy")
    assert dec.shape == ref.shape and dec.dtype == ref.dtype
    assert np.abs(dec.astype(np.float64) - ref.astype(np.float64)).max() <= (1 if ref.dtype.kind in "ui" else 0)


@pytest.mark.parametrize("name", NAMES)
def test_vector_decodes_on_every_backend(name):
    ref = np.load(VECTORS / f"{name}.npy").astype(np.float64)
    dec, _ = decompress(VECTORS / f"{name}.hsim")
    tol = 1 if np.load(VECTORS / f"{name}.npy").dtype.kind in "ui" else 1e-4 * float(np.abs(ref).max())
    assert np.abs(dec.astype(np.float64) - ref).max() <= tol


@pytest.fixture(scope="module")
def rebuilt() -> dict:
    """``tools/make_vectors.py --check`` in a fresh process (it pins OpenBLAS's kernels before numpy loads):
    name → "identical" or "DIFFERENT"."""
    p = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)


@pytest.mark.parametrize("name", NAMES)
def test_vector_rebuilds_byte_identically(name, rebuilt):
    assert rebuilt.get(name) == "identical"


def test_geo_vector_keeps_metadata():
    _, geo = decompress(VECTORS / "geo_12x16x50_float32.hsim")
    assert geo.crs_wkt and "32611" in geo.crs_wkt
    assert geo.transform == (17.0, 0.0, 575000.0, 0.0, -17.0, 4140000.0)
    assert geo.wavelengths[:2] == [400.0, 440.0]

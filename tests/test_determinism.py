"""Determinism: same cube and options -> byte-identical .hsim, whatever the thread count;
decoding gives identical arrays across thread counts. Both bundled models."""

from __future__ import annotations

import numpy as np
import pytest

import hsicodec
from hsicodec.data import sample_path

THREADS = (1, 2, 4)


@pytest.fixture(scope="module")
def cube():
    return np.ascontiguousarray(np.load(sample_path())[:20, :18, :40])


@pytest.mark.parametrize(
    "model, target", [("hsi-grid-v1", {"psnr": 32}), ("hsi-plain-v1", {"bpppb": 1.0}), ("hsi-grid-v1", {"bpppb": 0.5})]
)
def test_encode_is_byte_identical_across_runs_and_threads(cube, model, target):
    files = {t: hsicodec.compress(cube, model=model, effort="fast", threads=t, **target) for t in THREADS}
    again = hsicodec.compress(cube, model=model, effort="fast", threads=THREADS[0], **target)
    assert again == files[THREADS[0]]
    assert len(set(files.values())) == 1, {t: len(d) for t, d in files.items()}


@pytest.mark.parametrize("model", ["hsi-grid-v1", "hsi-plain-v1"])
def test_decode_is_identical_across_threads_and_backends(cube, model):
    data = hsicodec.compress(cube, model=model, effort="fast", bpppb=1.0)
    outs = [hsicodec.decompress(data, threads=t)[0] for t in THREADS]
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    win = [hsicodec.decompress(data, threads=t, window=(3, 2, 9, 7), bands=(5, 11))[0] for t in THREADS]
    for w in win:
        assert np.array_equal(w, outs[0][3:12, 2:9, 5:11])


def test_encode_is_identical_with_a_mask(cube):
    c = cube.astype(np.float32)
    c[1, 2, :] = np.nan
    files = {hsicodec.compress(c, model="hsi-grid-v1", effort="fast", psnr=30, threads=t) for t in THREADS}
    assert len(files) == 1


def test_spec_vectors_decode_identically_across_threads():
    from pathlib import Path

    vec = Path(__file__).resolve().parents[1] / "spec" / "vectors"
    for f in sorted(vec.glob("*.hsim")):
        outs = [hsicodec.decompress(f, threads=t)[0] for t in THREADS]
        assert all(np.array_equal(o, outs[0]) for o in outs[1:]), f.name

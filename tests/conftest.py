"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hsicodec.models.registry import reset_default_registry


@pytest.fixture
def isolated_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The bundled models only (an empty user dir and one empty HSICODEC_MODEL_PATH dir), no debug
    tracebacks, tmp_path as the working directory; yields tmp_path."""
    (tmp_path / "modelpath").mkdir()
    monkeypatch.setenv("HSICODEC_DATA_DIR", str(tmp_path / "userdata"))
    monkeypatch.setenv("HSICODEC_MODEL_PATH", str(tmp_path / "modelpath"))
    monkeypatch.delenv("HSICODEC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    reset_default_registry()
    yield tmp_path
    reset_default_registry()


@pytest.fixture(scope="module")
def crop_cube():
    """A 48 × 40 × 60 float64 crop of the bundled sample: the map layer's stage tests code it."""
    import numpy as np

    from hsicodec.data import sample_path

    return np.load(sample_path())[:48, :40, :60].astype(np.float64)


@pytest.fixture(scope="module")
def crop_plain(crop_cube) -> bytes:
    """The map layer's file of :func:`crop_cube` at 0.05 bpppb, without stages."""
    from hsicodec.codec.cube import compress

    return compress(crop_cube, bpppb=0.05, layer="maps")

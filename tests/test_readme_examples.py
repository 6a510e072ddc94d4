"""The README's "Use with zarr" and "Use with xarray" examples run as written.

Each example is a fenced python block whose first line is ``# README-example: NAME``;
it runs in a temporary directory holding ``scene.npy`` (a crop of the bundled sample).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import hsicodec
from hsicodec.data import sample_path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n# README-example: (\S+)\n(.*?)^```", re.S | re.M)


def readme_examples() -> dict[str, str]:
    """NAME -> code of every marked python block of the README."""
    found: dict[str, str] = {}
    for name, body in BLOCK.findall(README.read_text(encoding="utf-8")):
        assert name not in found, f"two README examples named {name!r}"
        found[name] = f"# README-example: {name}\n{body}"
    return found


def run_example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run one example in tmp_path next to scene.npy; returns its namespace."""
    cube = np.load(sample_path())[:, :, :48]  # 64 x 64 x 48 uint16: small and quick
    np.save(tmp_path / "scene.npy", cube)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"readme_{name}"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification")
        exec(compile(readme_examples()[name], f"README.md[{name}]", "exec"), namespace)
    namespace["_cube"] = cube
    return namespace


def test_examples_are_marked():
    assert {"zarr", "xarray"} <= set(readme_examples())


def test_zarr_example(tmp_path, monkeypatch):
    pytest.importorskip("zarr")
    ns = run_example("zarr", tmp_path, monkeypatch)
    cube = ns["_cube"]
    for back in (ns["back"], ns["back2"]):
        assert back.shape == cube.shape and back.dtype == cube.dtype
        assert hsicodec.psnr(cube, back) >= 33.0
    assert (tmp_path / "scene.zarr" / "zarr.json").is_file() and (tmp_path / "scene_v2.zarr" / ".zarray").is_file()


def test_xarray_example(tmp_path, monkeypatch):
    pytest.importorskip("xarray")
    pytest.importorskip("dask")
    ns = run_example("xarray", tmp_path, monkeypatch)
    assert ns["crop"].shape == (16, 16, 10)
    np.testing.assert_allclose(ns["mean_spectrum"].values, ns["full"].mean(axis=(0, 1)))
    assert hsicodec.psnr(ns["_cube"], ns["full"]) >= 35.0

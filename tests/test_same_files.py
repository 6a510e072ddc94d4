"""tools/same_files.py: files' bytes and PSNR (default effort and effort max), saved and compared."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import same_files  # noqa: E402


def test_saves_compares_and_fails_on_a_difference(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    cube = (rng.random((20, 24, 10)) * 900 + np.arange(10) * 50).astype(np.uint16)
    np.save(tmp_path / "tiny.npy", cube)
    np.save(tmp_path / "big.npy", np.concatenate([cube, cube], axis=1))
    base = tmp_path / "base.json"
    args = [
        "--data",
        str(tmp_path),
        "--scenes",
        "tiny",
        "--rates",
        "0.5",
        "1",
        "--tiles",
        str(tmp_path / "big.npy"),
        "--tile-rate",
        "1",
        "--max-rates",
        "1",
    ]
    assert same_files.main([*args, "--out", str(base)]) == 0
    saved = json.loads(base.read_text())
    assert set(saved) == {"tiny@0.5", "tiny@1", "tiny@1 max", "big[0,0]@1"} and all(v[0] > 0 for v in saved.values())
    assert same_files.main([*args, "--against", str(base)]) == 0
    assert "0 differ" in capsys.readouterr().out
    saved["tiny@1"][0] += 1
    base.write_text(json.dumps(saved))
    assert same_files.main([*args, "--against", str(base)]) == 1
    assert "tiny@1" in capsys.readouterr().out.split("differs")[0].splitlines()[-1]

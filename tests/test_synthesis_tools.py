"""tools/train_synthesis.py (issue #21, point 2; offline): its projection loss, inputs, seeding and model file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import train_synthesis as ts  # noqa: E402


def test_unexplained_is_least_squares():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(500, 4))
    r = f @ rng.normal(size=(4, 30)) * 0.3 + rng.normal(size=(500, 30))
    got = float(ts.unexplained(torch.tensor(f), torch.tensor(r)))
    fc = f - f.mean(axis=0)
    w = np.linalg.lstsq(fc, r, rcond=None)[0]
    want = float(np.sum((r - fc @ w) ** 2) / np.sum(r**2))
    assert got == pytest.approx(want, rel=1e-3)


def test_inputs_pad_and_normalise():
    maps = np.random.default_rng(2).normal(size=(6, 7, 3)) * np.array([5.0, 2.0, 0.5])
    u = ts.inputs(maps)
    assert u.shape == (42, ts.K_IN) and u.dtype == np.float32
    assert np.allclose(u[:, :3].std(axis=0), 1.0, atol=1e-5) and not u[:, 3:].any()


def test_training_is_seeded_and_saves_without_pickle(tmp_path):
    rng = np.random.default_rng(3)
    tasks = [
        {"u": torch.tensor(rng.normal(size=(1100, ts.K_IN)).astype(np.float32)),
         "r": torch.tensor(rng.normal(size=(1100, 12)).astype(np.float32)), "k": 4}
        for _ in range(4)
    ]  # fmt: skip
    nets = [ts.train(tasks, 3, 4, "sine", 3, seed=0, lr=1e-3) for _ in range(2)]
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.equal(a, b)
    path = tmp_path / "s.hsmodel"
    ts.save(nets[0], path, {"features": 3, "shifts": 4, "act": "sine"})
    back = ts.load(path)
    for a, b in zip(nets[0].state_dict().values(), back.state_dict().values()):
        assert torch.equal(a, b)
    assert b"pickle" not in path.read_bytes()


def test_training_scenes_exclude_validation():
    import json

    card = json.loads((Path(ts.ROOT) / "hsicodec" / "models" / "hsi-grid-v1.json").read_text())
    assert not set(ts.train_scenes()) & set(card["val_scenes"])

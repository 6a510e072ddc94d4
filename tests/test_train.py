"""Meta-training: determinism, checkpoint/resume, masked plain mode, model files it writes."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hsicodec.errors import TrainingError  # noqa: E402
from hsicodec.layers.network.model import codec_model  # noqa: E402
from hsicodec.models.modelfile import load_model  # noqa: E402
from hsicodec.train.meta import TrainConfig, config_from_json, meta_train, train_model  # noqa: E402


@pytest.fixture()
def data(tmp_path):
    rng = np.random.default_rng(0)
    for name, bands in (("a", 12), ("b", 9)):
        ends = rng.uniform(0, 1000, size=(3, bands))
        ab = rng.dirichlet(np.ones(3), size=(40, 40))
        np.save(tmp_path / f"{name}.npy", (ab @ ends).astype(np.uint16))
    return tmp_path


def small_cfg(data, **kw):
    base = dict(
        data_dir=str(data),
        train_scenes=["a"],
        val_scenes=["b"],
        steps=4,
        val_every=2,
        width=8,
        depth=2,
        n_out=6,
        levels=[[8, 2, "linear"], [4, 1, "linear"]],
        coord_cell=8,
        crop=16,
        batch=2,
        val_crop=16,
        skip=True,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_training_is_deterministic_from_the_seed(data, tmp_path):
    a = train_model(small_cfg(data), tmp_path / "a.hsmodel", alias="t")
    b = train_model(small_cfg(data), tmp_path / "b.hsmodel", alias="t")
    ma, mb = load_model(tmp_path / "a.hsmodel"), load_model(tmp_path / "b.hsmodel")
    for k in ma.arrays:
        assert np.array_equal(ma.arrays[k], mb.arrays[k])
    c = train_model(small_cfg(data, seed=1), tmp_path / "c.hsmodel", alias="t")
    assert c != a
    del b


def test_validation_is_reported_and_model_is_usable(data, tmp_path):
    net, inner, history = meta_train(small_cfg(data))
    assert [h["step"] for h in history] == [2, 4]
    assert all(np.isfinite(h["val_psnr_b"]) for h in history)
    train_model(small_cfg(data), tmp_path / "m.hsmodel", alias="tiny")
    cm = codec_model(load_model(tmp_path / "m.hsmodel"))
    assert cm.n_out == 6 and cm.layout.latent_dim == 3 and cm.weights.skip_w is not None
    assert cm.card["train_scenes"] == ["a"] and cm.card["val_scenes"] == ["b"]


def test_checkpoint_resume_continues_from_its_step(data, tmp_path):
    ck = tmp_path / "ck.pt"
    meta_train(small_cfg(data, steps=2), checkpoint=ck)
    seen = []
    meta_train(small_cfg(data, steps=4), progress=lambda s, r: seen.append(s), checkpoint=ck)
    assert seen == [3, 4]


def test_plain_mode_masks_missing_bands(data):
    net, _, history = meta_train(small_cfg(data, spectral="id", n_out=14, train_scenes=["a", "b"], val_scenes=[]))
    assert net.out.out_features == 14


def test_bad_configs_are_training_errors(data, tmp_path):
    with pytest.raises(TrainingError):
        meta_train(small_cfg(data, train_scenes=[]))
    with pytest.raises(TrainingError):
        meta_train(small_cfg(data, train_scenes=["missing"]))
    with pytest.raises(TrainingError):
        meta_train(small_cfg(data, crop=64))
    bad = tmp_path / "bad.json"
    bad.write_text('{"nonsense_key": 1}')
    with pytest.raises(TrainingError):
        config_from_json(bad)


def test_shipped_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for p in (root / "hsicodec" / "models").glob("*.json"):
        spec = json.loads(p.read_text())
        if "script" in spec:  # reproduced by its own training script (tools/train_shipped.py runs it)
            assert (root / spec["script"]).is_file() and (root / "hsicodec" / "models" / f"{p.stem}.hsmodel").is_file()
            assert all(isinstance(a, str) for a in spec["args"])
            continue
        cfg = config_from_json(p)
        assert cfg.train_scenes and cfg.val_scenes and not set(cfg.train_scenes) & set(cfg.val_scenes)

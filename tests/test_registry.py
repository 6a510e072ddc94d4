"""Tests of the content-addressed base-model registry (hsicodec.models.registry).

Every test points HSICODEC_DATA_DIR and HSICODEC_MODEL_PATH at temporary
directories, so the real user data dir is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import hsicodec.models.registry as registry_module
from hsicodec.errors import (
    ModelFormatError,
    ModelHashMismatchError,
    ModelNotFoundError,
    OutputExistsError,
)
from hsicodec.models.modelfile import encode_model, save_model, sha256_bytes
from hsicodec.models.registry import (
    ModelEntry,
    Registry,
    default_registry,
    reset_default_registry,
    user_models_dir,
)


@pytest.fixture
def env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    path1 = tmp_path / "p1"
    path2 = tmp_path / "p2"
    for d in (path1, path2):
        d.mkdir()
    monkeypatch.setenv("HSICODEC_DATA_DIR", str(data))
    monkeypatch.setenv("HSICODEC_MODEL_PATH", os.pathsep.join([str(path1), str(path2)]))
    # an empty stand-in for the package's bundled models, so the tests see only their own files
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(registry_module, "bundled_models_dir", lambda: bundled)
    reset_default_registry()
    yield {"user": data / "models", "p1": path1, "p2": path2, "tmp": tmp_path, "bundled": bundled}
    reset_default_registry()


def _model(seed: int, alias=None) -> bytes:
    card = {"description": f"model {seed}"}
    if alias:
        card["alias"] = alias
    return encode_model(
        {"w": np.full((4, 3), seed, np.float32), "b": np.arange(seed % 5, dtype=np.int32)},
        {"width": 3, "seed": seed},
        card,
    )


def _write(folder: Path, name: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return sha256_bytes(data)


def test_default_locations(env):
    r = Registry()
    locs = r.locations()
    assert locs[0] == ("bundled", registry_module.bundled_models_dir())
    assert locs[1] == ("user", env["user"]) == ("user", user_models_dir())
    assert locs[2:] == [("path", env["p1"]), ("path", env["p2"])]
    assert default_registry() is default_registry()


def test_model_path_unset_and_single_file(env, monkeypatch):
    monkeypatch.delenv("HSICODEC_MODEL_PATH")
    r = Registry()
    assert [s for s, _ in r.locations()] == ["bundled", "user"]
    sha = "ab" * 32
    with pytest.raises(ModelNotFoundError) as ei:
        r.load_by_hash(sha)
    msg = str(ei.value)
    assert sha in msg and "HSICODEC_MODEL_PATH (unset)" in msg
    assert str(registry_module.bundled_models_dir()) in msg and str(env["user"]) in msg
    # a single file as a path entry (any name)
    f = env["tmp"] / "single.bin"
    data = _model(1)
    f.write_bytes(data)
    monkeypatch.setenv("HSICODEC_MODEL_PATH", str(f))
    r = Registry()
    assert r.load_by_hash(sha256_bytes(data)).sha256 == sha256_bytes(data)


def test_resolve_by_hash_prefix_alias(env):
    d1, d2 = _model(1, "alpha"), _model(2)
    s1 = _write(env["p1"], "alpha.hsmodel", d1)
    s2 = _write(env["p2"], "other.hsmodel", d2)
    r = Registry()
    entries = r.list()
    assert [e.sha256 for e in entries] == [s1, s2]
    assert all(isinstance(e, ModelEntry) and e.source == "path" for e in entries)
    assert entries[0].alias == "alpha" and entries[1].alias is None
    assert entries[0].size == len(d1) and entries[0].card["description"] == "model 1"
    assert r.resolve(s1).path == env["p1"] / "alpha.hsmodel"
    assert r.resolve(s2.upper()).sha256 == s2
    assert r.resolve(s2[:8]).sha256 == s2
    assert r.resolve("alpha").sha256 == s1
    m = r.load("alpha")
    assert m.sha256 == s1 and m.alias == "alpha"
    np.testing.assert_array_equal(m.arrays["w"], np.full((4, 3), 1, np.float32))
    assert r.load(s2[:10]).sha256 == s2
    assert r.load_by_hash(s2) is r.load(s2)  # cached by sha256
    with pytest.raises(ModelNotFoundError, match="too short"):
        r.resolve(s1[:7])
    with pytest.raises(ModelNotFoundError, match="alpha"):  # lists known aliases
        r.resolve("beta")


def test_ambiguous_prefix(env, monkeypatch):
    # Two ids sharing 8 hex digits would take ~2**16 tries to find, so find two that share
    # the first digit and lower the minimum prefix length for the check.
    import hsicodec.models.registry as reg

    models = {}
    seed = 0
    while True:
        d = _model(seed)
        s = sha256_bytes(d)
        if s[0] in models:
            other = models[s[0]]
            break
        models[s[0]] = (seed, d)
        seed += 1
    _write(env["p1"], "x.hsmodel", other[1])
    _write(env["p2"], "y.hsmodel", d)
    r = Registry()
    with monkeypatch.context() as mp:
        mp.setattr(reg, "MIN_PREFIX", 1)
        with pytest.raises(ModelNotFoundError, match="ambiguous") as ei:
            r.resolve(s[0])
        assert s in str(ei.value) and sha256_bytes(other[1]) in str(ei.value)
    # the same model twice is not ambiguous
    _write(env["p2"], "y2.hsmodel", d)
    assert Registry().resolve(s[:8]).sha256 == s


def test_missing_hash_message(env):
    _write(env["p1"], "a.hsmodel", _model(1))
    r = Registry()
    sha = "3fa2" + "0" * 58 + "c9"
    with pytest.raises(ModelNotFoundError) as ei:
        r.load_by_hash(sha)
    msg = str(ei.value)
    assert sha in msg
    for _, p in r.locations():
        assert str(p) in msg
    assert "bundled" in msg and "user" in msg
    with pytest.raises(ModelNotFoundError, match="not a sha256"):
        r.load_by_hash("xyz")


def test_tampered_file_is_never_used(env):
    data = _model(3, "gamma")
    r = Registry()
    entry = r.add(_save_tmp(env, data))
    sha = entry.sha256
    assert entry.path.name == f"gamma-{sha[:12]}.hsmodel"
    # Change one array byte: still a valid model file, but a different id.
    raw = bytearray(entry.path.read_bytes())
    raw[len(raw) - 128] ^= 0x01
    entry.path.write_bytes(bytes(raw))
    reset_default_registry()  # drop the in-memory model cache
    with pytest.raises(ModelHashMismatchError) as ei:
        Registry().load_by_hash(sha)
    msg = str(ei.value)
    assert sha in msg and sha256_bytes(bytes(raw)) in msg and str(entry.path) in msg


def test_tampered_after_listing_same_stat(env):
    """The stat cache says the file is fine, but load re-hashes and refuses it."""
    data = _model(4, "delta")
    s = _write(env["p1"], "delta.hsmodel", data)
    p = env["p1"] / "delta.hsmodel"
    r = Registry()
    assert r.resolve("delta").sha256 == s  # probes and caches (path, mtime, size)
    st = p.stat()
    raw = bytearray(data)
    raw[len(raw) - 128] ^= 0x01
    with open(p, "r+b") as f:  # same inode, same size, same mtime
        f.write(raw)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ModelHashMismatchError, match="refusing"):
        r.load(s)


def _save_tmp(env, data: bytes) -> Path:
    src = env["tmp"] / f"src-{sha256_bytes(data)[:8]}.hsmodel"
    src.write_bytes(data)
    return src


def test_add_copies_and_is_idempotent(env):
    data = _model(5, "eps")
    src = _save_tmp(env, data)
    r = Registry()
    e1 = r.add(src)
    assert e1.source == "user" and e1.path.parent == env["user"]
    assert e1.path.read_bytes() == data and e1.alias == "eps"
    mtime = e1.path.stat().st_mtime_ns
    e2 = r.add(src)
    assert e2.path == e1.path and e2.sha256 == e1.sha256
    assert e1.path.stat().st_mtime_ns == mtime
    assert len(list(env["user"].glob("*.hsmodel"))) == 1
    assert r.resolve("eps").source == "user"
    # no alias -> <sha12>-<sha12>
    e3 = r.add(_save_tmp(env, _model(6)))
    assert e3.path.name == f"{e3.sha256[:12]}-{e3.sha256[:12]}.hsmodel"
    # invalid file is refused and nothing is copied
    bad = env["tmp"] / "bad.hsmodel"
    bad.write_bytes(b"\x89HSMODL\nnonsense")
    with pytest.raises(ModelFormatError, match="bad.hsmodel"):
        r.add(bad)
    assert len(list(env["user"].glob("*.hsmodel"))) == 2
    # a corrupted file at the destination name needs force
    e1.path.write_bytes(b"junk")
    with pytest.raises(OutputExistsError):
        r.add(src)
    e4 = r.add(src, force=True)
    assert e4.path == e1.path and e4.path.read_bytes() == data


def test_verify_reports_corrupt(env):
    good = _model(7, "good")
    sg = _write(env["p1"], "good.hsmodel", good)
    (env["p1"] / "corrupt.hsmodel").write_bytes(good[:-70])
    _write(env["p2"], f"misnamed-{'0' * 12}.hsmodel", _model(8))
    (env["p2"] / "notes.txt").write_text("ignored")
    r = Registry()
    assert [e.sha256 for e in r.list()] == [sg, sha256_bytes(_model(8))]  # corrupt one skipped
    res = r.verify()
    assert len(res) == 3
    by_name = {(x.path if isinstance(x, ModelEntry) else x).name: (x, err) for x, err in res}
    assert by_name["good.hsmodel"][1] is None
    assert isinstance(by_name["corrupt.hsmodel"][0], Path)
    assert "end of the file" in by_name["corrupt.hsmodel"][1]
    assert "named for" in by_name[f"misnamed-{'0' * 12}.hsmodel"][1]


def test_search_order_user_wins(env):
    d_user, d_path = _model(10, "same"), _model(11, "same")
    r = Registry()
    e_user = r.add(_save_tmp(env, d_user))
    _write(env["p1"], "same.hsmodel", d_path)
    r = Registry()
    assert r.resolve("same").sha256 == e_user.sha256
    assert r.resolve("same").source == "user"
    assert r.load("same").sha256 == sha256_bytes(d_user)
    # the path one is still reachable by id
    assert r.resolve(sha256_bytes(d_path)).source == "path"
    # and between path entries, the earlier one wins
    _write(env["p1"], "x.hsmodel", _model(12, "pathalias"))
    _write(env["p2"], "y.hsmodel", _model(13, "pathalias"))
    assert Registry().resolve("pathalias").path.parent == env["p1"]


def test_same_file_listed_once(env, monkeypatch):
    data = _model(14)
    _write(env["p1"], "m.hsmodel", data)
    monkeypatch.setenv("HSICODEC_MODEL_PATH", os.pathsep.join([str(env["p1"]), str(env["p1"] / "m.hsmodel")]))
    assert len(Registry().list()) == 1


def test_custom_locations_and_save_model(env):
    d = env["tmp"] / "custom"
    d.mkdir()
    sha = save_model(d / "c.hsmodel", {"w": np.zeros(2, np.float32)}, {}, {"alias": "custom"})
    r = Registry([("bundled", d)])
    assert r.locations() == [("bundled", d)]
    assert r.resolve("custom").sha256 == sha
    with pytest.raises(Exception, match="no 'user' location"):
        r.add(d / "c.hsmodel")


def test_user_dir_falls_back_to_platformdirs(monkeypatch):
    import platformdirs

    monkeypatch.delenv("HSICODEC_DATA_DIR", raising=False)
    assert user_models_dir() == Path(platformdirs.user_data_dir("hsicodec")) / "models"
    monkeypatch.setenv("HSICODEC_DATA_DIR", "")  # empty counts as unset
    assert user_models_dir() == Path(platformdirs.user_data_dir("hsicodec")) / "models"


def test_entry_hashable(env):
    _write(env["p1"], "a.hsmodel", _model(20, "hashme"))
    e = Registry().resolve("hashme")
    assert e in {e} and e == Registry().resolve("hashme")

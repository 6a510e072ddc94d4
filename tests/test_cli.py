"""Tests of the ``hsicodec`` command line (hsicodec.cli.main).

Every test points HSICODEC_DATA_DIR and HSICODEC_MODEL_PATH at temporary
directories, so the real user data dir is never touched. Most tests use
click's CliRunner; a few run ``python -m hsicodec.cli`` in a subprocess to check
the real exit code and that stderr is exactly one line without a traceback.

Tests of compress/decompress/info need ``hsicodec.codec.api`` and a real base model:
a tiny one is meta-trained once per session (a few seconds; needs torch), and
those tests are skipped when either is unavailable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from hsicodec import __version__
from hsicodec.cli.main import BandsType, EffortType, WindowType, cli
from hsicodec.errors import HsimError, RasterError
from hsicodec.models.modelfile import encode_model, save_model, sha256_bytes
from hsicodec.models.registry import reset_default_registry

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated registry: empty user dir and one empty HSICODEC_MODEL_PATH dir."""
    data = tmp_path / "userdata"
    mpath = tmp_path / "modelpath"
    mpath.mkdir()
    monkeypatch.setenv("HSICODEC_DATA_DIR", str(data))
    monkeypatch.setenv("HSICODEC_MODEL_PATH", str(mpath))
    monkeypatch.delenv("HSICODEC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    reset_default_registry()
    yield {"tmp": tmp_path, "user": data / "models", "path": mpath}
    reset_default_registry()


def run(*args: str, **kw):
    """Invoke the CLI in-process; stderr is kept apart from stdout."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def run_proc(*args: str, env_extra: dict | None = None, timeout: float = 120):
    """Run ``python -m hsicodec.cli`` in a subprocess (inherits the isolated registry env)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("HSICODEC_DEBUG", None)
    e.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "hsicodec.cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )


def assert_one_error_line(stderr: str, prefix: str = "hsicodec: error: ") -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr!r}"
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def tiny_model_bytes(seed: int = 1, alias: str | None = "tiny") -> bytes:
    card = {"description": f"test model {seed}"}
    if alias:
        card["alias"] = alias
    return encode_model({"w": np.full((4, 3), seed, np.float32)}, {"arch": "test", "seed": seed}, card)


@pytest.fixture
def npy_cube(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    cube = (np.cumsum(rng.normal(size=(24, 24, 30)), axis=2) * 40 + 2000).astype(np.uint16)
    p = tmp_path / "cube.npy"
    np.save(p, cube)
    return p


@pytest.fixture(scope="session")
def codec_model_file(tmp_path_factory) -> Path:
    """A tiny but real base model (meta-trained for 2 steps on a synthetic cube)."""
    pytest.importorskip("torch")
    pytest.importorskip("hsicodec.codec.api")
    from hsicodec.train.meta import TrainConfig, train_model

    d = tmp_path_factory.mktemp("codec_model")
    rng = np.random.default_rng(1)
    np.save(d / "scene.npy", (np.cumsum(rng.normal(size=(32, 32, 20)), axis=2) * 30 + 1000).astype(np.uint16))
    cfg = TrainConfig(
        data_dir=str(d),
        train_scenes=["scene"],
        width=16,
        depth=2,
        n_out=4,
        crop=16,
        batch=2,
        inner_steps=2,
        steps=2,
        val_every=2,
        levels=[[8, 4, "linear"], [4, 2, "linear"]],
        coord_cell=8,
        threads=1,
    )
    out = d / "cli-test-model.hsmodel"
    train_model(cfg, out, alias="cli-test")
    return out


@pytest.fixture
def codec_env(env, codec_model_file):
    """Isolated registry holding the tiny real model (alias ``cli-test``)."""
    (env["path"] / codec_model_file.name).write_bytes(codec_model_file.read_bytes())
    reset_default_registry()
    return env


# --------------------------------------------------------------------------- help / version


def test_version():
    r = run("--version")
    assert r.exit_code == 0
    assert r.stdout.strip() == f"hsicodec {__version__}"


@pytest.mark.parametrize(
    "cmd",
    [
        [],
        ["compress"],
        ["decompress"],
        ["info"],
        ["models"],
        ["models", "list"],
        ["models", "show"],
        ["models", "verify"],
        ["models", "add"],
        ["train"],
    ],
)
def test_help(cmd):
    r = run(*cmd, "--help")
    assert r.exit_code == 0, r.output
    assert "Usage: hsicodec" in r.stdout
    if cmd and cmd != ["models", "list"] and cmd != ["models", "verify"]:
        assert "Example" in r.stdout


def test_compress_help_mentions_units_and_defaults():
    text = run("compress", "--help").stdout
    for needle in ("bits per pixel per band", "--psnr", "dB", "fast", "0-100", "--force", "[default: default]"):
        assert needle in text


def test_no_command_shows_help():
    r = run()
    assert r.exit_code == 2
    assert "Commands:" in r.output


# --------------------------------------------------------------------------- option parsing


@pytest.mark.parametrize("text,expected", [("0,0,1,1", (0, 0, 1, 1)), (" 3, 4 ,10,20", (3, 4, 10, 20))])
def test_window_parse_ok(text, expected):
    assert WindowType().convert(text, None, None) == expected


@pytest.mark.parametrize("text,expected", [("0:1", (0, 1)), ("10:60", (10, 60))])
def test_bands_parse_ok(text, expected):
    assert BandsType().convert(text, None, None) == expected


@pytest.mark.parametrize(
    "text,expected", [("fast", "fast"), ("MAX", "max"), ("default", "default"), ("0", 0), ("100", 100)]
)
def test_effort_parse_ok(text, expected):
    assert EffortType().convert(text, None, None) == expected


@pytest.mark.parametrize(
    "window", ["1,2,3", "1,2,3,4,5", "a,b,c,d", "-1,0,2,2", "0,0,0,5", "0,0,5,0", "1.5,0,2,2", "", "0;0;2;2"]
)
def test_bad_window(env, window):
    r = run("decompress", "x.hsim", "out.npy", "--window", window)
    assert r.exit_code == 2
    line = assert_one_error_line(r.stderr)
    assert "--window" in line and "--help" in line
    assert not Path("out.npy").exists()


@pytest.mark.parametrize("bands", ["5:2", "3:3", "a:b", "-3", "-1:4", "1:2:3", "1.0:2"])
def test_bad_bands(env, bands):
    r = run("decompress", "x.hsim", "out.npy", "--bands", bands)
    assert r.exit_code == 2
    assert "--bands" in assert_one_error_line(r.stderr)


@pytest.mark.parametrize("effort", ["slow", "101", "-1", "1.5"])
def test_bad_effort(env, npy_cube, effort):
    r = run("compress", npy_cube, "out.hsim", "--effort", effort)
    assert r.exit_code == 2
    assert "--effort" in assert_one_error_line(r.stderr)


@pytest.mark.parametrize("opts", [["--bpppb", "0"], ["--bpppb", "-1"], ["--psnr", "nan"], ["--bpppb", "x"]])
def test_bad_rate(env, npy_cube, opts):
    r = run("compress", npy_cube, "out.hsim", *opts)
    assert r.exit_code == 2
    assert_one_error_line(r.stderr)


def test_bpppb_and_psnr_exclusive(env, npy_cube):
    r = run("compress", npy_cube, "out.hsim", "--bpppb", "0.1", "--psnr", "30")
    assert r.exit_code == 2
    assert "mutually exclusive" in assert_one_error_line(r.stderr)
    assert not Path("out.hsim").exists()


# --------------------------------------------------------------------------- error policy (subprocess)


def test_proc_missing_input(env):
    p = run_proc("compress", "missing.npy", "out.hsim")
    assert p.returncode == 1
    assert "missing.npy" in assert_one_error_line(p.stderr)
    assert p.stdout == ""
    assert not (env["tmp"] / "out.hsim").exists()


def test_proc_unreadable_input(env):
    (env["tmp"] / "notes.tif").write_text("this is not a GeoTIFF\n")
    p = run_proc("compress", "notes.tif", "out.hsim")
    assert p.returncode == 1
    assert "notes.tif" in assert_one_error_line(p.stderr)
    assert not (env["tmp"] / "out.hsim").exists()


def test_proc_existing_output_kept(env, npy_cube):
    out = env["tmp"] / "out.hsim"
    out.write_bytes(b"precious")
    p = run_proc("compress", npy_cube, out)
    assert p.returncode == 1
    assert "exists" in assert_one_error_line(p.stderr)
    assert out.read_bytes() == b"precious"
    p = run_proc("decompress", "whatever.hsim", out)
    assert p.returncode == 1
    assert "--force" in assert_one_error_line(p.stderr)
    assert out.read_bytes() == b"precious"


def test_proc_bad_window(env):
    p = run_proc("decompress", "x.hsim", "out.tif", "--window", "0,0,10")
    assert p.returncode == 2
    assert "--window" in assert_one_error_line(p.stderr)


def test_proc_bpppb_with_psnr(env, npy_cube):
    p = run_proc("compress", npy_cube, "out.hsim", "--bpppb", "0.1", "--psnr", "30")
    assert p.returncode == 2
    assert "mutually exclusive" in assert_one_error_line(p.stderr)


def test_proc_info_not_hsim(env, npy_cube, tmp_path):
    """info describes any raster the CLI reads; a file that is neither .hsim nor a raster is one clear line."""
    p = run_proc("info", npy_cube)
    assert p.returncode == 0 and p.stderr == ""
    junk = tmp_path / "notes.txt"
    junk.write_text("not a raster")
    p = run_proc("info", str(junk))
    assert p.returncode == 1
    assert "notes.txt" in assert_one_error_line(p.stderr)
    assert p.stdout == ""


def test_proc_info_missing(env):
    p = run_proc("info", "nope.hsim")
    assert p.returncode == 1
    assert "nope.hsim" in assert_one_error_line(p.stderr)


def test_proc_models_show_unknown(env):
    p = run_proc("models", "show", "deadbeef00")
    assert p.returncode == 1
    assert "deadbeef00" in assert_one_error_line(p.stderr)


def test_proc_unknown_command(env):
    p = run_proc("compres", "a", "b")
    assert p.returncode == 2
    assert_one_error_line(p.stderr)


# --------------------------------------------------------------------------- error policy (in-process)


@pytest.fixture
def broken_info(monkeypatch):
    """Make `hsicodec info` raise whatever the test sets."""
    codec = pytest.importorskip("hsicodec.codec.api")
    box = {}

    def file_info(path):
        raise box["exc"]

    monkeypatch.setattr(codec, "file_info", file_info)
    return box


@pytest.mark.parametrize(
    "exc,code,needle",
    [
        (HsimError("bad section at byte 12"), 1, "bad section at byte 12"),
        (RasterError("multi\nline\nmessage"), 1, "multi line message"),
        (PermissionError(13, "Permission denied", "/x/y.hsim"), 1, "/x/y.hsim: Permission denied"),
        (OSError(28, "No space left on device"), 1, "No space left on device"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_errors_become_one_line(env, broken_info, exc, code, needle):
    broken_info["exc"] = exc
    r = CliRunner().invoke(cli, ["info", "x.hsim"])
    assert r.exit_code == code
    assert needle in assert_one_error_line(r.stderr)
    assert r.stdout == ""


def test_internal_error(env, broken_info, monkeypatch):
    broken_info["exc"] = ZeroDivisionError("boom")
    r = CliRunner().invoke(cli, ["info", "x.hsim"])
    assert r.exit_code == 3
    line = assert_one_error_line(r.stderr, "hsicodec: internal error: ")
    assert "ZeroDivisionError: boom" in line and "HSICODEC_DEBUG" in line
    monkeypatch.setenv("HSICODEC_DEBUG", "1")
    r = CliRunner().invoke(cli, ["info", "x.hsim"])
    assert r.exit_code == 3
    assert "Traceback" in r.stderr and "ZeroDivisionError" in r.stderr
    assert r.stderr.splitlines()[-1].startswith("hsicodec: internal error: ZeroDivisionError: boom")


def test_main_entry_point(env, monkeypatch, capsys):
    from hsicodec.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(["models", "show", "nosuchalias"])
    assert ei.value.code == 1
    assert_one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0


# --------------------------------------------------------------------------- models


def test_models_list_only_bundled_in_empty_env(env):
    r = run("models", "list", "--json")
    assert r.exit_code == 0
    entries = json.loads(r.stdout)
    assert all(e["source"] == "bundled" for e in entries)
    assert any(e["alias"] == "hsi-grid-v1" for e in entries)


def test_models_add_list_show_verify(env):
    src = env["tmp"] / "mine.hsmodel"
    sha = save_model(
        src,
        {"w": np.arange(12, dtype=np.float32).reshape(4, 3)},
        {"arch": "test", "width": 3},
        {"alias": "mine", "description": "my test model"},
    )
    r = run("models", "add", src)
    assert r.exit_code == 0, r.output
    assert sha in r.stdout and "mine" in r.stdout
    installed = list(env["user"].glob("*.hsmodel"))
    assert len(installed) == 1 and sha256_bytes(installed[0].read_bytes()) == sha
    # adding again is a no-op
    r = run("models", "add", src)
    assert r.exit_code == 0 and len(list(env["user"].glob("*.hsmodel"))) == 1
    # a second model through HSICODEC_MODEL_PATH
    other = tiny_model_bytes(7, alias="other")
    (env["path"] / "other.hsmodel").write_bytes(other)

    r = run("models", "list")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "ALIAS", "SIZE", "SOURCE", "PATH"]
    assert any(sha[:12] in ln and "mine" in ln and "user" in ln for ln in lines[1:])
    assert any(sha256_bytes(other)[:12] in ln and "other" in ln and "path" in ln for ln in lines[1:])

    listed = json.loads(run("models", "list", "--json").stdout)
    by_alias = {e["alias"]: e for e in listed}
    assert by_alias["mine"]["sha256"] == sha and by_alias["mine"]["source"] == "user"
    assert by_alias["other"]["size"] == len(other)

    for ref in ("mine", sha, sha[:10]):
        shown = json.loads(run("models", "show", ref, "--json").stdout)
        assert shown["sha256"] == sha
        assert shown["card"]["description"] == "my test model"
        assert shown["config"] == {"arch": "test", "width": 3}
        assert shown["arrays"] == {"w": {"shape": [4, 3], "dtype": "float32"}}
    text = run("models", "show", "mine").stdout
    assert sha in text and "my test model" in text and "arch: test" in text

    r = run("models", "verify")
    assert r.exit_code == 0, r.output
    ok = [ln for ln in r.stdout.splitlines() if ln.startswith("ok")]
    assert len([ln for ln in ok if "/hsicodec/models/" not in ln]) == 2  # besides the bundled models


def test_models_verify_reports_bad_files(env):
    (env["path"] / "good.hsmodel").write_bytes(tiny_model_bytes(1, alias="good"))
    (env["path"] / "junk.hsmodel").write_bytes(b"not a model at all")
    # a valid model whose name claims another id
    (env["path"] / f"renamed-{'0' * 12}.hsmodel").write_bytes(tiny_model_bytes(2, alias="renamed"))
    r = run("models", "verify")
    assert r.exit_code == 1
    bad = [ln for ln in r.stdout.splitlines() if ln.startswith("BAD")]
    assert len(bad) == 2
    assert any("junk.hsmodel" in ln for ln in bad)
    assert any("renamed-" in ln for ln in bad)
    assert any(ln.startswith("ok") and "good" in ln for ln in r.stdout.splitlines())
    assert_one_error_line(r.stderr)
    # list skips the junk file
    assert "junk" not in run("models", "list").stdout


def test_models_add_invalid(env):
    (env["tmp"] / "junk.hsmodel").write_bytes(b"\x89HSMODL\n garbage")
    r = run("models", "add", "junk.hsmodel")
    assert r.exit_code == 1
    assert "junk.hsmodel" in assert_one_error_line(r.stderr)
    r = run("models", "add", "missing.hsmodel")
    assert r.exit_code == 1
    assert "missing.hsmodel" in assert_one_error_line(r.stderr)
    assert not env["user"].exists() or not list(env["user"].iterdir())


def test_models_show_ambiguous_or_short(env):
    r = run("models", "show", "abc")
    assert r.exit_code == 1
    assert_one_error_line(r.stderr)


# --------------------------------------------------------------------------- train


def test_train_without_torch(env, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    monkeypatch.delitem(sys.modules, "hsicodec.train.meta", raising=False)
    monkeypatch.delitem(sys.modules, "hsicodec.train", raising=False)
    monkeypatch.delitem(sys.modules, "hsicodec.layers.network.torchnet", raising=False)
    import hsicodec

    monkeypatch.delattr(hsicodec, "train", raising=False)  # a submodule imported earlier stays an attribute
    (tmp_path / "d").mkdir()
    r = run("train", "--data", tmp_path / "d", "--out", tmp_path / "m.hsmodel")
    assert r.exit_code == 1
    assert "training needs torch: pip install 'hsicodec[train]'" in assert_one_error_line(r.stderr)


def test_train_refuses_existing_output_before_training(env, tmp_path):
    (tmp_path / "m.hsmodel").write_bytes(b"old")
    r = run("train", "--data", tmp_path, "--out", tmp_path / "m.hsmodel")
    assert r.exit_code == 1
    assert "exists" in assert_one_error_line(r.stderr)
    assert (tmp_path / "m.hsmodel").read_bytes() == b"old"


def test_train_usage_errors(env, tmp_path):
    r = run("train", "--out", tmp_path / "m.hsmodel")
    assert r.exit_code == 2 and "--data" in assert_one_error_line(r.stderr)
    r = run("train", "--data", tmp_path, "--out", tmp_path / "m.hsmodel", "--alias", "deadbeefcafe")
    assert r.exit_code == 2 and "--alias" in assert_one_error_line(r.stderr)


def test_train_tiny(env, tmp_path):
    pytest.importorskip("torch")
    data = tmp_path / "cubes"
    data.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b", "held"):
        np.save(data / f"{name}.npy", rng.normal(size=(20, 20, 12)).astype(np.float32))
    cfg = tmp_path / "tiny.json"
    cfg.write_text(
        json.dumps(
            {
                "width": 8,
                "depth": 2,
                "n_out": 3,
                "crop": 16,
                "batch": 2,
                "inner_steps": 1,
                "steps": 50,
                "val_every": 2,
                "levels": [[8, 2, "linear"]],
                "coord_cell": 8,
                "threads": 1,
            }
        )
    )
    out = tmp_path / "sensor.hsmodel"
    r = run(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--config",
        cfg,
        "--val",
        "held",
        "--steps",
        "2",
        "--seed",
        "5",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    sha = r.stdout.strip()
    assert sha == sha256_bytes(out.read_bytes())
    assert r.stderr == ""
    from hsicodec.models.modelfile import load_model

    card = load_model(out).card
    assert card["alias"] == "sensor"
    assert card["train_scenes"] == ["a", "b"] and card["val_scenes"] == ["held"]
    assert card["train_config"]["steps"] == 2 and card["train_config"]["seed"] == 5
    assert card["train_config"]["width"] == 8
    # the model can be installed and listed
    assert run("models", "add", out).exit_code == 0
    assert "sensor" in run("models", "list").stdout


# --------------------------------------------------------------------------- codec round trips


def test_roundtrip_npy(codec_env, npy_cube):
    out = codec_env["tmp"] / "cube.hsim"
    r = run("compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1", "--layer", "network")
    assert r.exit_code == 0, r.output
    summary = r.stdout.strip()
    assert len(summary.splitlines()) == 1
    assert "24x24x30" in summary and "bpppb" in summary and "cli-test" in summary
    size = out.stat().st_size
    assert f"{size:,} bytes" in summary

    r = run("info", out)
    assert r.exit_code == 0, r.output
    assert "24x24x30" in r.stdout and "uint16" in r.stdout and "cli-test" in r.stdout
    info = json.loads(run("info", out, "--json").stdout)
    assert info["shape"] == [24, 24, 30] and info["dtype"] == "uint16" and info["file_bytes"] == size
    assert info["bpppb"] == pytest.approx(8 * size / (24 * 24 * 30))

    dec = codec_env["tmp"] / "back.npy"
    r = run("decompress", out, dec)
    assert r.exit_code == 0, r.output
    back = np.load(dec)
    assert back.shape == (24, 24, 30) and back.dtype == np.uint16

    win = codec_env["tmp"] / "win.npy"
    r = run("decompress", out, win, "--window", "2,3,10,7", "--bands", "4:9", "--threads", "1")
    assert r.exit_code == 0, r.output
    w = np.load(win)
    assert w.shape == (10, 7, 5) and w.dtype == np.uint16
    assert np.array_equal(w, back[2:12, 3:10, 4:9])

    # window outside the image: one-line error, no output
    r = run("decompress", out, codec_env["tmp"] / "bad.npy", "--window", "20,20,10,10")
    assert r.exit_code == 1
    assert_one_error_line(r.stderr)
    assert not (codec_env["tmp"] / "bad.npy").exists()


def test_compress_json_and_force(codec_env, npy_cube):
    out = codec_env["tmp"] / "cube.hsim"
    out.write_bytes(b"old")
    r = run("compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1")
    assert r.exit_code == 1
    assert out.read_bytes() == b"old"
    r = run("compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1", "--force", "--json")
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    assert stats["bytes"] == out.stat().st_size
    assert stats["shape"] == [24, 24, 30] and stats["dtype"] == "uint16"
    assert stats["bpppb"] <= 1.0
    assert out.read_bytes()[:4] == b"\x89HSI"
    r = run("compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1", "-f", "-q")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""

    dec = codec_env["tmp"] / "back.npy"
    dec.write_bytes(b"old")
    assert run("decompress", out, dec).exit_code == 1
    assert dec.read_bytes() == b"old"
    r = run("decompress", out, dec, "--force", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["shape"] == [24, 24, 30]
    assert np.load(dec).shape == (24, 24, 30)


def test_unknown_model(codec_env, npy_cube):
    r = run("compress", npy_cube, "x.hsim", "--model", "no-such-model")
    assert r.exit_code == 1
    assert "no-such-model" in assert_one_error_line(r.stderr)
    assert not Path("x.hsim").exists()


def test_decompress_model_not_installed(codec_env, npy_cube, monkeypatch):
    out = codec_env["tmp"] / "cube.hsim"
    assert (
        run(
            "compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1", "--layer", "network"
        ).exit_code
        == 0
    )
    empty = codec_env["tmp"] / "empty"
    empty.mkdir()
    monkeypatch.setenv("HSICODEC_MODEL_PATH", str(empty))
    reset_default_registry()
    r = run("info", out)
    assert r.exit_code == 0 and "NOT INSTALLED" in r.stdout
    r = run("decompress", out, "back.npy")
    assert r.exit_code == 1
    assert "not found" in assert_one_error_line(r.stderr)


def test_map_layer_file_needs_no_model(codec_env, npy_cube, monkeypatch):
    out = codec_env["tmp"] / "maps.hsim"
    assert run("compress", npy_cube, out, "--bpppb", "1", "--layer", "maps").exit_code == 0
    empty = codec_env["tmp"] / "empty-registry"
    empty.mkdir()
    monkeypatch.setenv("HSICODEC_MODEL_PATH", str(empty))
    reset_default_registry()
    r = run("info", out)
    assert r.exit_code == 0 and "model: none" in r.stdout and "NOT INSTALLED" not in r.stdout
    r = run("decompress", out, codec_env["tmp"] / "maps.npy")
    assert r.exit_code == 0, r.output
    assert np.load(codec_env["tmp"] / "maps.npy").shape == (24, 24, 30)


def test_roundtrip_geotiff_keeps_geo(codec_env):
    from rasterio.crs import CRS

    from hsicodec.io.raster import GeoInfo, read_cube, write_cube

    rng = np.random.default_rng(2)
    cube = (np.cumsum(rng.normal(size=(24, 24, 30)), axis=2) * 40 + 2000).astype(np.uint16)
    geo = GeoInfo(
        crs_wkt=CRS.from_epsg(32633).to_wkt(),
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        nodata=0,
        wavelengths=[400.0 + 10 * i for i in range(30)],
        fwhm=[10.0] * 30,
        wavelength_units="nm",
        band_names=[f"b{i}" for i in range(30)],
    )
    src = codec_env["tmp"] / "scene.tif"
    write_cube(src, cube, geo)
    out = codec_env["tmp"] / "scene.hsim"
    r = run("compress", src, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1")
    assert r.exit_code == 0, r.output

    info = json.loads(run("info", out, "--json").stdout)
    assert info["geo"]["transform"] == list(geo.transform)
    assert CRS.from_wkt(info["geo"]["crs"]) == CRS.from_epsg(32633)
    text = run("info", out).stdout
    assert "geo:" in text and "transform" in text and "wavelengths" in text

    back_path = codec_env["tmp"] / "back.tif"
    r = run("decompress", out, back_path)
    assert r.exit_code == 0, r.output
    back, bgeo = read_cube(back_path)
    assert back.shape == cube.shape and back.dtype == cube.dtype
    assert CRS.from_wkt(bgeo.crs_wkt) == CRS.from_epsg(32633)
    assert tuple(bgeo.transform) == pytest.approx(geo.transform)
    assert bgeo.wavelengths == pytest.approx(geo.wavelengths)
    assert bgeo.nodata == 0 and bgeo.band_names == geo.band_names

    win_path = codec_env["tmp"] / "win.img"
    r = run("decompress", out, win_path, "--window", "4,6,8,10", "--bands", "5:15", "--format", "envi")
    assert r.exit_code == 0, r.output
    w, wgeo = read_cube(win_path)
    assert w.shape == (8, 10, 10)
    assert tuple(wgeo.transform) == pytest.approx((30.0, 0.0, 500000.0 + 6 * 30, 0.0, -30.0, 4100000.0 - 4 * 30))
    assert wgeo.wavelengths == pytest.approx(geo.wavelengths[5:15])
    assert np.array_equal(w, back[4:12, 6:16, 5:15])


def test_proc_compress_quiet(codec_env, npy_cube):
    """One real process end to end: exit 0, nothing printed with --quiet, a valid file."""
    out = codec_env["tmp"] / "p.hsim"
    p = run_proc("compress", npy_cube, out, "--model", "cli-test", "--effort", "fast", "--bpppb", "1", "--quiet")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    p = run_proc("info", out)
    assert p.returncode == 0 and "24x24x30" in p.stdout


def test_band_map_option_parsing(tmp_path):
    from hsicodec.cli.main import _number_list

    assert _number_list("1, 2,3", int, "--band-map") == [1, 2, 3]
    f = tmp_path / "bm.txt"
    f.write_text("4 5\n6\n")
    assert _number_list(str(f), int, "--band-map") == [4, 5, 6]
    assert _number_list("400.5,410", float, "--wavelengths") == [400.5, 410.0]
    with pytest.raises(click.BadParameter):
        _number_list("1,x", int, "--band-map")


def test_band_map_reaches_a_plain_model(env, tmp_path):
    """--band-map is stored in the file and used by a plain (band-output) model."""
    pytest.importorskip("torch")
    from hsicodec.models.registry import reset_default_registry
    from hsicodec.train.meta import TrainConfig, train_model

    cfg = TrainConfig(
        data_dir=str(tmp_path),
        train_scenes=["a"],
        steps=1,
        n_out=12,
        spectral="id",
        width=8,
        depth=1,
        levels=[[8, 2, "nearest"]],
        coord_cell=8,
        crop=8,
        batch=1,
    )
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((10, 10, 6)).astype(np.float32))
    train_model(cfg, env["path"] / "plain.hsmodel", alias="plain-tiny")
    reset_default_registry()
    src = tmp_path / "c.npy"
    np.save(src, (np.random.default_rng(1).random((9, 9, 4)) * 100).astype(np.uint16))
    r = run(
        "compress",
        src,
        tmp_path / "c.hsim",
        "--model",
        "plain-tiny",
        "--layer",
        "network",
        "--band-map",
        "3,5,7,9",
        "--bpppb",
        "300",
        "--json",
    )
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", tmp_path / "c.hsim", "--json").stdout)
    assert info["codec"]["sp"]["bm"] == [3, 5, 7, 9]
    r = run("compress", src, tmp_path / "d.hsim", "--model", "plain-tiny", "--band-map", "3,3,7,9")
    assert r.exit_code == 1 and "band map" in assert_one_error_line(r.stderr)


# --------------------------------------------------------------------------- eval (issue #6)


def test_eval_table_json_and_plot(env, npy_cube):
    """hsicodec and an anchor at the same rate; table, --json and --plot."""
    pytest.importorskip("imagecodecs")
    pytest.importorskip("matplotlib")
    r = run(
        "eval",
        npy_cube,
        "--rates",
        "0.5",
        "--anchors",
        "pca_jpeg2000,zfp",
        "--efforts",
        "fast",
        "--repeat",
        "1",
        "--json",
        "--plot",
        "rd.png",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["shape"] == [24, 24, 30] and out["rates"] == [0.5]
    rows = {row["codec"]: row for row in out["rows"]}
    assert set(rows) == {"hsicodec-fast", "pca_jpeg2000", "zfp"}
    for name in ("hsicodec-fast", "pca_jpeg2000"):
        row = rows[name]
        assert row["reachable"] and row["target_bpppb"] == 0.5 and row["bpppb"] <= 0.5
        assert row["bpppb"] == pytest.approx(8 * row["bytes"] / (24 * 24 * 30))
        for key in ("psnr", "sam", "max_abs_error", "encode_s", "decode_s"):
            assert isinstance(row[key], float)
    assert out["gaps"] and out["gaps"][0]["reference"] == "pca_jpeg2000"
    assert Path("rd.png").read_bytes()[:4] == b"\x89PNG"

    r = run("eval", npy_cube, "-r", "0.5", "-r", "1e-5", "--anchors", "sperr_3d", "--efforts", "fast", "--repeat", "1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "24x24x30" in lines[0]
    assert lines[1].split()[:4] == ["codec", "target", "bpppb", "PSNR"]
    assert sum("unreachable" in line for line in lines) == 2  # both codecs at 1e-5
    assert any(line.startswith("hsicodec-fast") and "0.5" in line for line in lines)


@pytest.mark.parametrize(
    "opts,code,needle",
    [
        (["--anchors", "nope"], 2, "--anchors"),
        (["--rates", "-1"], 2, "--rates"),
        (["--rates", "abc"], 2, "--rates"),
        (["--efforts", "slow"], 2, "--efforts"),
        (["--efforts", "none", "--anchors", "none"], 2, "nothing to evaluate"),
        (["--plot", "missing_dir/rd.png"], 1, "does not exist"),
        (["--plot", "rd.txt2"], 1, "not supported"),
    ],
)
def test_eval_bad_options(env, npy_cube, opts, code, needle):
    r = run("eval", npy_cube, *opts)
    assert r.exit_code == code, r.output
    assert needle in assert_one_error_line(r.stderr)
    assert r.stdout == ""


def test_eval_bad_input_and_help(env):
    r = run("eval", "missing.npy")
    assert r.exit_code == 1 and "missing.npy" in assert_one_error_line(r.stderr)
    r = run("eval")
    assert r.exit_code == 2 and "IN" in assert_one_error_line(r.stderr)
    text = run("eval", "--help").stdout
    for needle in ("Example", "--rates", "--anchors", "--efforts", "--plot", "--json", "--var", "--band-first"):
        assert needle in text
    names = run("eval", "--list-codecs").stdout
    assert "pca_jpeg2000\tanchor" in names


def test_proc_eval_bad_raster_one_line(env, tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    p = run_proc("eval", bad)
    assert p.returncode == 1
    assert_one_error_line(p.stderr)


# --------------------------------------------------------------------------- output files: modes, names, folders


def _umask(mask: int):
    import contextlib

    @contextlib.contextmanager
    def ctx():
        old = os.umask(mask)
        try:
            yield
        finally:
            os.umask(old)

    return ctx()


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=oct)
def test_output_files_follow_the_umask(env, npy_cube, mask):
    """Like cp and GDAL: every file compress and decompress create gets 0o666 & ~umask, not 0600."""
    pytest.importorskip("hsicodec.codec.api")
    out = env["tmp"] / "m"
    out.mkdir()
    with _umask(mask):
        r = run("compress", npy_cube, out / "c.hsim", "-m", "hsi-grid-v1", "--psnr", "30", "-e", "fast", "-q")
        assert r.exit_code == 0, r.output
        for name in ("d.tif", "d.npy", "d.img"):
            r = run("decompress", out / "c.hsim", out / name, "-q")
            assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["c.hsim", "d.hdr", "d.img", "d.npy", "d.tif"]
    modes = {n: oct((out / n).stat().st_mode & 0o777) for n in names}
    assert modes == {n: oct(0o666 & ~mask) for n in names}


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_proc_missing_output_directory(env, npy_cube, command):
    src = npy_cube if command == "compress" else "whatever.hsim"
    dst = env["tmp"] / "nodir" / ("x.hsim" if command == "compress" else "x.tif")
    p = run_proc(command, src, dst)
    assert p.returncode == 1
    line = assert_one_error_line(p.stderr)
    assert "does not exist" in line and str(env["tmp"] / "nodir") in line
    assert ".part" not in line
    assert not (env["tmp"] / "nodir").exists()


@pytest.mark.parametrize("ext", [".tif", ".TIFF", ".npy", ".img", ".hdr", ".mat", ".png", ".jpg", ".jpeg"])
def test_compress_refuses_a_raster_output_name(env, npy_cube, ext):
    from hsicodec.errors import OptionError

    dst = env["tmp"] / f"out{ext}"
    r = run("compress", npy_cube, dst, "-m", "hsi-grid-v1", "--psnr", "30")
    assert r.exit_code == 1
    assert "compress writes a .hsim file" in assert_one_error_line(r.stderr) and "*.hsim" in r.stderr
    assert not dst.exists()
    codec = pytest.importorskip("hsicodec.codec.api")
    with pytest.raises(OptionError, match=r"name the output \*\.hsim"):
        codec.compress_file(npy_cube, dst, model="hsi-grid-v1", psnr=30)
    assert not dst.exists()
    assert sorted(p.name for p in env["tmp"].iterdir() if p.name.endswith(".part")) == []


def test_force_wording_cli_and_api(env, npy_cube):
    """The CLI says --force, the API force=True; never both in one message."""
    from hsicodec.cli.common import _cli_message
    from hsicodec.errors import OutputExistsError
    from hsicodec.io.atomic import check_writable

    out = env["tmp"] / "out.hsim"
    out.write_bytes(b"precious")
    for args in (("compress", npy_cube, out), ("decompress", "whatever.hsim", npy_cube)):
        r = run(*args)
        assert r.exit_code == 1
        line = assert_one_error_line(r.stderr)
        assert "pass --force to overwrite it" in line and "force=True" not in line, line
    with pytest.raises(OutputExistsError) as e:
        check_writable(out)
    assert "pass force=True to overwrite it" in str(e.value) and "--force" not in str(e.value)
    # a message that names both (the model registry's) reads as the CLI's
    both = OutputExistsError("x exists but does not hold model y; pass --force (force=True) to replace it")
    assert _cli_message(both) == "x exists but does not hold model y; pass --force to replace it"
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["out.png", "out"])
def test_decompress_unknown_output_lists_only_writable_formats(env, npy_cube, name):
    """The refusal names only what decompress writes (no .mat), and comes before any decoding."""
    pytest.importorskip("hsicodec.codec.api")
    r = run("compress", npy_cube, "c.hsim", "-m", "hsi-grid-v1", "--psnr", "30", "-e", "fast", "-q")
    assert r.exit_code == 0, r.output
    if name == "out.png":
        (env["tmp"] / "out.hdr").write_text("ENVI\n")  # a header beside out.png does not make it ENVI data
    r = run("decompress", "c.hsim", name)
    assert r.exit_code == 1
    line = assert_one_error_line(r.stderr)
    assert ".tif" in line and ".npy" in line and ".hdr/.img" in line and ".mat" not in line, line
    assert not (env["tmp"] / name).exists()
    if name == "out.png":
        assert (env["tmp"] / "out.hdr").read_text() == "ENVI\n"

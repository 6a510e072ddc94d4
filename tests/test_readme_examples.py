"""Every example of the README and of ``hsicodec ... --help`` runs as written.

* The README's "Use with zarr" and "Use with xarray" examples: each is a fenced python block whose first
  line is ``# README-example: NAME``; it runs in a temporary directory holding ``scene.npy`` (a crop of
  the bundled sample).
* Every command line of the README's other fenced blocks (lines that start with ``hsicodec `` or ``rio ``)
  and every command of the ``Examples:`` (``Example:``, ``Typical use:``) section of every command's
  ``--help`` (read from the click command objects) runs and exits 0, each its own test case named by the
  command text. Each runs in a fresh temporary directory holding the input files it names (made by
  :func:`prepare` from crops of the bundled sample: GeoTIFF with CRS and transform, ``.npy``, ``.mat`` with
  the variable ``--var`` names, ``.hsim`` made by compressing, a model file, a folder of cubes for
  ``train``, a folder per ``batch`` pattern), with an isolated model registry.

Lines that show alternatives are expanded explicitly by :func:`expand`, never skipped:

* ``[--json]``: the command without and with the bracketed part;
* ``hsicodec models list | show ID | verify``: one command per subcommand of the group;
* a comment ``# or --psnr 40, --effort max``: one more command per alternative, the option replacing the
  option of its kind (the targets ``--bpppb``, ``--psnr``, ``--lossless``, ``--max-error`` replace one
  another) or else added; words in parentheses after it, ``(every value within 4)``, explain it;
* a comment naming file types, ``# GeoTIFF, ENVI (.hdr/.img) or .npy``: one more command per extension,
  given to OUT.

Shell syntax the examples use is carried out here: ``> FILE`` writes the command's stdout to FILE (checked
to be JSON after ``--json``), ``| jq .KEY`` is checked in Python (stdout is JSON with KEY). Anything
else fails the test. What a test machine may lack: ``--backend cuda`` is skipped without a CUDA device;
``--scheduler tcp://HOST:PORT`` runs against a local Dask scheduler started here (its address replaces
the example's placeholder). The ``train`` examples (``hsicodec train``, ``torchrun ... train``) meta-train
with torch for 20 steps: ~2-3 s each on 2 idle cores (torchrun ~10 s: process start-up), far longer when
the cores are shared, so they are marked slow. ``eval`` inputs are the smallest crop (it encodes with
every codec at every rate, three timing runs each).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

import hsicodec
from hsicodec.cli.main import cli
from hsicodec.data import sample_path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n# README-example: (\S+)\n(.*?)^```", re.S | re.M)


# --------------------------------------------------------------------------- the README's python examples


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
    assert {"zarr", "xarray", "reduce", "dataset"} <= set(readme_examples())


@pytest.mark.parametrize("name", [n for n in readme_examples() if n not in ("zarr", "xarray")])
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_other_python_examples_run(name, tmp_path, monkeypatch):
    """The README's other marked python blocks (reduced reads, hsicodec.open) run as written; their own
    asserts check what they show."""
    run_example(name, tmp_path, monkeypatch)


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


# --------------------------------------------------------------------------- collecting the command lines

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
PROGRAMS = ("hsicodec", "rio")  # a README line starting with one of these is an example
HELP_HEADER = re.compile(r"^(\s*)(?:Examples?|Typical use):\s*$")
COMMENT = re.compile(r"\s+#(?:\s+(.*))?$")
#: the target options (one per command): an alternative target replaces the command's
TARGET_OPTIONS = ("--bpppb", "--psnr", "--lossless", "--max-error")


def readme_lines() -> dict[str, list[str]]:
    """Command line -> where it is ("README.md:LINE"), for every example line of the README's fenced blocks."""
    text = README.read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for m in FENCE.finditer(text):
        first = text.count("\n", 0, m.start(1)) + 1
        for i, line in enumerate(m.group(1).splitlines()):
            if line.strip().split(" ", 1)[0] in PROGRAMS:
                found.setdefault(line.strip(), []).append(f"README.md:{first + i}")
    return found


def walk(group: click.Group, path: tuple[str, ...] = ("hsicodec",)) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(command path, command) of the group and of every command below it."""
    yield path, group
    for name, sub in sorted(group.commands.items()):
        if isinstance(sub, click.Group):
            yield from walk(sub, (*path, name))
        else:
            yield (*path, name), sub


def help_examples(text: str) -> list[str]:
    """The command lines of the examples sections of one help text."""
    found, indent = [], None
    for line in text.splitlines():
        header = HELP_HEADER.match(line)
        if header:
            indent = len(header.group(1))
        elif indent is not None:
            if line.strip() and len(line) - len(line.lstrip()) > indent:
                found.append(line.strip())
            else:
                indent = None
    return found


def help_lines() -> dict[str, list[str]]:
    """Command line -> where it is ("hsicodec models --help"), for every example of every command's help."""
    found: dict[str, list[str]] = {}
    for path, command in walk(cli):
        for line in help_examples(command.help or ""):
            found.setdefault(line, []).append(f"{' '.join(path)} --help")
    return found


def split_comment(line: str) -> tuple[str, str]:
    """(command, trailing '# comment' text or '')."""
    m = COMMENT.search(line)
    return (line[: m.start()].rstrip(), (m.group(1) or "").strip()) if m else (line.strip(), "")


def leaf(args: list[str]) -> tuple[tuple[str, ...], click.Command, list[str]]:
    """The subcommand path, command and remaining arguments of an hsicodec argument list."""
    command: click.Command = cli
    path: list[str] = []
    args = list(args)
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        path.append(args[0])
        command = command.commands[args.pop(0)]
    return tuple(path), command, args


def parse(args: list[str]) -> tuple[tuple[str, ...], dict]:
    """The subcommand path and the parameters click makes of an hsicodec argument list (without 'hsicodec')."""
    path, command, rest = leaf(args)
    ctx = command.make_context(" ".join(("hsicodec", *path)), rest, resilient_parsing=True)
    return path, ctx.params


def _alternatives(cmd: str) -> list[str]:
    """``hsicodec models list | show ID | verify``: one command per alternative subcommand of the group.

    A ``|`` followed by anything that is not a subcommand of the group (``| jq .geo``) is a shell pipe and
    stays (see :func:`test_example_runs`).
    """
    parts = [p.strip() for p in cmd.split(" | ")]
    first = shlex.split(parts[0])
    if len(parts) == 1 or first[0] != "hsicodec":
        return [cmd]
    path = leaf(first[1:])[0]
    group = cli if len(path) < 2 else leaf(first[1 : len(path)])[1]
    assert isinstance(group, click.Group)
    if not all(p.split(" ", 1)[0] in group.commands for p in parts[1:]):
        return [cmd]
    prefix = " ".join(["hsicodec", *path[:-1]])
    return [parts[0], *(f"{prefix} {p}" for p in parts[1:])]


def _with_option(tokens: list[str], option: list[str]) -> list[str]:
    """hsicodec tokens with ``option`` (name and values) replacing the option of its kind, or else added."""
    kind = TARGET_OPTIONS if option[0] in TARGET_OPTIONS else (option[0],)
    arity = {  # option name -> how many values follow it
        name: 0 if p.is_flag or p.count else p.nargs
        for p in leaf(tokens[1:])[1].params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }
    for i, t in enumerate(tokens):
        if t in kind:
            return [*tokens[:i], *option, *tokens[i + 1 + arity[t] :]]
    return [*tokens, *option]


def _comment_variants(cmd: str, comment: str) -> list[str]:
    """The extra commands a trailing comment names: '# or --psnr 40, --effort max', '# ... (.hdr/.img) or .npy'.

    In '# or --max-error 4 (every value within 4)' the words in parentheses explain the alternative.
    """
    tokens = shlex.split(cmd)
    out = []
    m = re.fullmatch(r"or (--.*)", comment)
    if m:
        for alternative in re.sub(r"\s*\([^()]*\)", "", m.group(1)).split(","):
            out.append(shlex.join(_with_option(tokens, shlex.split(alternative))))
    extensions = re.findall(r"(?<![\w.])\.([a-z][a-z0-9]*)\b", comment)
    if extensions and tokens[0] == "hsicodec":
        dst = parse(tokens[1:])[1].get("dst")
        assert dst is not None, f"{cmd!r}: its comment names file types but the command has no OUT"
        i = tokens.index(str(dst))
        out += [shlex.join([*tokens[:i], str(Path(dst).with_suffix("." + e)), *tokens[i + 1 :]]) for e in extensions]
    return out


def expand(line: str) -> list[str]:
    """The commands an example line stands for (see the module docstring)."""
    cmd, comment = split_comment(line)
    variants = [cmd]
    while any("[" in v for v in variants):  # "[--json]": without, then with
        more = []
        for v in variants:
            m = re.search(r"\s*\[([^\[\]]+)\]", v)
            head, tail = (v[: m.start()], v[m.end() :]) if m else (v, "")
            more += [v] if m is None else [head + tail, f"{head} {m.group(1)}{tail}"]
        variants = more
    variants = [w for v in variants for w in _alternatives(v)]
    if comment:
        variants += _comment_variants(variants[0], comment)
    return list(dict.fromkeys(variants))


def all_examples() -> dict[str, list[str]]:
    """Expanded command -> where its example line is, README first, then the help texts."""
    found: dict[str, list[str]] = {}
    for lines in (readme_lines(), help_lines()):
        for line, where in lines.items():
            for cmd in expand(line):
                found.setdefault(cmd, []).extend(where)
    return found


EXAMPLES = all_examples()


def test_examples_are_found():
    readme = {c for line in readme_lines() for c in expand(line)}
    helps = {c for line in help_lines() for c in expand(line)}
    assert readme and helps
    assert {"hsicodec compress scene.tif scene.hsim --bpppb 0.05", "hsicodec info scene.hsim"} <= readme
    # the alternatives are expanded, not dropped
    assert {"hsicodec info scene.hsim --json", "hsicodec models verify", "hsicodec models add my.hsmodel"} <= readme
    assert "hsicodec compress scene.tif scene.hsim --psnr 40" in readme
    assert "hsicodec compress scene.tif scene.hsim --bpppb 0.05 --effort max" in readme
    # the help texts of the group, its commands and the commands of its subgroups are read
    places = {w for where in help_lines().values() for w in where}
    assert {"hsicodec --help", "hsicodec compress --help", "hsicodec models --help"} <= places
    assert "hsicodec models add --help" in places
    for cmd in EXAMPLES:
        assert not re.search(r"[\[\]{}]|\.\.\.", cmd), f"unexpanded alternatives in {cmd!r}"
        tokens = shlex.split(cmd)
        assert tokens[0] in (*PROGRAMS, "torchrun"), cmd
        for op in ("|", ">"):
            if op in tokens:
                assert op == ">" or tokens[tokens.index(op) + 1] == "jq", f"shell syntax this test cannot run: {cmd!r}"


# --------------------------------------------------------------------------- the input files an example names

SHAPE = (64, 64, 40)  # a compress input: 0.05 bpppb of it is reachable (1.3 kB), encoded in well under a second
EVAL_SHAPE = (32, 32, 40)  # eval runs every codec at every rate (3 timing runs each): the smallest crop
TRAIN_SHAPE = (32, 32, 40)  # a training cube: one crop of the default config (crop 32)
#: the examples' --config file: a short run, one thread per process (torchrun starts several)
TRAIN_CONFIG = {"seed": 1, "width": 32, "depth": 3, "n_out": 12, "steps": 20, "val_every": 10, "threads": 1}


def cube(shape: tuple[int, int, int], offset: int = 0) -> np.ndarray:
    """A uint16 cube of this shape from the bundled 64 x 64 x 198 sample (mirrored where it is larger)."""
    h, w, c = shape
    a = np.load(sample_path())[:, :, :c]
    a = np.pad(a, ((0, max(0, h + offset - a.shape[0])), (0, max(0, w + offset - a.shape[1])), (0, 0)), "symmetric")
    return np.ascontiguousarray(a[offset : offset + h, offset : offset + w])


def write_geotiff(path: Path, a: np.ndarray) -> None:
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    profile = dict(driver="GTiff", height=a.shape[0], width=a.shape[1], count=a.shape[2], dtype=a.dtype.name)
    with rasterio.open(path, "w", crs="EPSG:32610", transform=from_origin(580000, 4140000, 20, 20), **profile) as d:
        d.write(np.moveaxis(a, 2, 0))


@cache
def hsim_bytes(shape: tuple[int, int, int]) -> bytes:
    """A .hsim file of a GeoTIFF of this shape (so it carries CRS, transform and the band wavelengths of the
    sample, AVIRIS: 380 nm on in steps of about 9.5 nm)."""
    import tempfile

    from rasterio.transform import from_origin

    with tempfile.TemporaryDirectory() as d:
        wl = [float(v) for v in np.linspace(380.0, 2500.0, 224)[: shape[2]]]
        geo = hsicodec.GeoInfo(crs_wkt="EPSG:32610", transform=tuple(from_origin(580000, 4140000, 20, 20))[:6],
                               wavelengths=wl, wavelength_units="nm")  # fmt: skip
        hsicodec.write_cube(Path(d) / "scene.tif", cube(shape), geo)
        hsicodec.compress_file(Path(d) / "scene.tif", Path(d) / "scene.hsim", bpppb=0.1, effort="fast")
        return (Path(d) / "scene.hsim").read_bytes()


def write_model(path: Path) -> None:
    """A valid model file aliased as its stem: the bundled hsi-grid-v1 under another name."""
    from hsicodec.models.modelfile import load_model, save_model
    from hsicodec.models.registry import bundled_models_dir

    m = load_model(bundled_models_dir() / "hsi-grid-v1.hsmodel")
    save_model(path, m.arrays, m.config, {**m.card, "alias": path.stem, "description": "a copy, for the examples"})


def make_input(path: Path, shape: tuple[int, int, int] = SHAPE, var: str | None = None, offset: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        write_geotiff(path, cube(shape, offset))
    elif suffix == ".npy":
        np.save(path, cube(shape, offset))
    elif suffix == ".mat":
        import scipy.io

        scipy.io.savemat(path, {var or "cube": cube(shape, offset)})
    elif suffix == ".hsim":
        path.write_bytes(hsim_bytes(shape))
    elif suffix == ".hsmodel":
        write_model(path)
    else:
        pytest.fail(f"no input file of type {suffix!r} ({path.name}) can be made for the examples")


def make_glob(tmp: Path, pattern: str, shape: tuple[int, int, int]) -> None:
    """Two files matching a batch pattern (one in a subfolder when it has '**')."""
    parts = Path(pattern).parts
    i = next(k for k, p in enumerate(parts) if any(ch in p for ch in "*?["))
    base = tmp.joinpath(*parts[:i])
    suffix = Path(pattern).suffix
    make_input(base / f"a{suffix}", shape)
    make_input((base / "sub" if "**" in parts else base) / f"b{suffix}", shape, offset=8)
    assert len(glob.glob(str(tmp / pattern), recursive=True)) == 2, pattern


def prepare(tmp: Path, path: tuple[str, ...], params: dict) -> None:
    """Write into tmp the input files an hsicodec command (its path and click parameters) reads."""
    if path == ("models", "add"):
        write_model(tmp / params["file"])
    elif path == ("train",):
        data = tmp / (params.get("data_dir") or "cubes")
        config = params.get("config_file")
        if config is not None:
            (tmp / config).write_text(json.dumps(TRAIN_CONFIG))
        names = [*(params.get("train_names") or ("scene1", "scene2")), *params.get("val_names", ())]
        for k, name in enumerate(dict.fromkeys(names)):
            make_input(data / f"{name.removesuffix('.npy')}.npy", TRAIN_SHAPE, offset=8 * k)
    elif path == ("batch",):
        for pattern in params["patterns"]:
            make_glob(tmp, pattern, SHAPE)
    else:
        src = params.get("src") or params.get("file")
        if src is None:
            return
        shape = EVAL_SHAPE if path == ("eval",) else SHAPE
        window, bands = params.get("window"), params.get("bands")
        if window is not None:  # a scene the window fits in
            shape = (max(shape[0], window[0] + window[2]), max(shape[1], window[1] + window[3]), shape[2])
        if bands is not None:
            shape = (shape[0], shape[1], max(shape[2], bands[1]))
        make_input(tmp / src, shape, params.get("var"))


# --------------------------------------------------------------------------- running one example


@pytest.fixture
def env(isolated_registry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated registry (empty user dir and one empty HSICODEC_MODEL_PATH dir) and a work dir."""
    work = isolated_registry / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """The address of a local Dask scheduler (with one in-process worker) for the examples' --scheduler."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def jq_check(stdout: str, program: list[str]) -> None:
    """``| jq .KEY[.KEY...]``: stdout is JSON and holds the path."""
    assert len(program) == 1 and re.fullmatch(r"(\.\w+)+", program[0]), f"jq filter not understood: {program}"
    value: Any = json.loads(stdout)
    for key in program[0].split(".")[1:]:
        assert isinstance(value, dict) and key in value, f"jq {program[0]}: no {key!r} in the output"
        value = value[key]


def run_tokens(tokens: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run one program's argument list: hsicodec in-process, anything else as a subprocess."""
    if tokens[0] == "hsicodec":
        r = CliRunner().invoke(cli, tokens[1:])
        err = r.stderr
        if r.exc_info is not None and not isinstance(r.exception, SystemExit):
            err += "".join(traceback.format_exception(*r.exc_info))
        return r.exit_code, r.stdout, err
    program = Path(sys.executable).parent / tokens[0]
    exe = str(program) if program.exists() else shutil.which(tokens[0])
    if exe is None:
        pytest.fail(f"{tokens[0]} is not installed")
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    p = subprocess.run([exe, *tokens[1:]], cwd=cwd, env=e, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def hsicodec_args(tokens: list[str]) -> list[str] | None:
    """The hsicodec arguments of a command line (``hsicodec ...`` or ``torchrun ... -m hsicodec.cli ...``)."""
    if tokens[0] == "hsicodec":
        return tokens[1:]
    if tokens[0] == "torchrun" and "hsicodec.cli" in tokens:
        return tokens[tokens.index("hsicodec.cli") + 1 :]
    return None


def params_for(cmd: str) -> list[Any]:
    """The test case of one command: slow when it meta-trains (torch; torchrun starts worker processes)."""
    args = hsicodec_args(shlex.split(cmd)) or []
    marks = [pytest.mark.slow] if args[:1] == ["train"] else []
    return [pytest.param(cmd, id=cmd, marks=marks)]


@pytest.mark.parametrize("cmd", [p for cmd in EXAMPLES for p in params_for(cmd)])
def test_example_runs(cmd: str, env: Path, request: pytest.FixtureRequest) -> None:
    tokens = shlex.split(cmd)
    tail: list[str] = []
    for op in ("|", ">"):
        if op in tokens:
            tail = tokens[tokens.index(op) :]
            tokens = tokens[: tokens.index(op)]
    args = hsicodec_args(tokens)
    if args is not None:
        path, params = parse(args)
        if params.get("backend") == "cuda":
            from hsicodec.layers.network.siren import cuda_available

            if not cuda_available():
                pytest.skip("--backend cuda needs the CUDA extension and a CUDA device; none here")
        if params.get("scheduler"):  # the example's address is a placeholder for the user's cluster
            i = tokens.index(params["scheduler"])
            tokens[i] = request.getfixturevalue("dask_scheduler")
        prepare(env, path, params)
    elif tokens[:2] == ["rio", "hsim"]:  # the rio plugin: its INPUT (the first argument), made like hsicodec's
        prepare(env, ("rio", tokens[2]), {"src": tokens[3]})
    code, stdout, stderr = run_tokens(tokens, env)
    assert code == 0, f"{cmd!r} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    if tail[:1] == [">"]:
        (env / tail[1]).write_text(stdout)
        if "--json" in tokens:
            json.loads(stdout)
    elif tail[:2] == ["|", "jq"]:
        jq_check(stdout, tail[2:])

"""One way down: no import cycles inside hsicodec, modules of one job (≤ 800 lines), and a decoding path that
needs neither torch nor any encoder module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hsicodec"
MAX_LINES = 800
#: modules only the encoder needs (scene analysis, latent fit and search, map search, training)
ENCODER_MODULES = (
    "hsicodec.codec.encode",
    "hsicodec.codec.analysis",
    "hsicodec.layers.network.encode",
    "hsicodec.layers.network.fit",
    "hsicodec.layers.network.search",
    "hsicodec.layers.network.quantize",
    "hsicodec.layers.network.torchnet",
    "hsicodec.layers.maps.encode",
    "hsicodec.layers.maps.search",
    "hsicodec.layers.predictive.encode",
    "hsicodec.train",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """hsicodec modules a module imports anywhere in its body (lazy imports in functions included)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in known:  # a name inside a module: the module
                n = n.rpartition(".")[0]
            if n.startswith("hsicodec") and n != me and not me.startswith(n + "."):
                out.add(n)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycles_inside_hsicodec():
    known = modules()
    graph = {name: {m for m in imports_of(p, known) if m != "hsicodec"} for name, p in known.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    # and nothing below the public package imports the package itself (its __init__ re-exports them)
    assert not [n for n, p in known.items() if n != "hsicodec" and "hsicodec" in imports_of(p, known)]


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layers_stay_below_the_codec():
    """The format, the models, the shared coding blocks and the layers never import the codec, the
    integrations, evaluation, training or the CLI; the container imports no other concern at all."""
    known = modules()
    above = ("hsicodec.codec", "hsicodec.integrations", "hsicodec.evaluation", "hsicodec.train", "hsicodec.cli")
    for name, p in known.items():
        if name.startswith(("hsicodec.layers", "hsicodec.format", "hsicodec.coding", "hsicodec.models")):
            bad = sorted(m for m in imports_of(p, known) if m.startswith(above))
            assert not bad, f"{name} imports {bad}"
        if name.startswith("hsicodec.format"):
            bad = sorted(m for m in imports_of(p, known) if not m.startswith(("hsicodec.format", "hsicodec.errors")))
            assert not bad, f"{name} imports {bad}"


def test_raster_io_is_a_leaf():
    """Reading and writing rasters needs nothing of the codec: hsicodec.io imports only itself and the errors
    (and the container, for writing `.hsim` files)."""
    known = modules()
    for name, p in known.items():
        if name.startswith("hsicodec.io"):
            ok = ("hsicodec.io", "hsicodec.errors") + (
                ("hsicodec.format.container",) if name.endswith("hsimfile") else ()
            )
            bad = sorted(m for m in imports_of(p, known) if not m.startswith(ok))
            assert not bad, f"{name} imports {bad}"


def test_no_module_is_over_800_lines():
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


DECODE_EVERY_VECTOR = """
import sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path, target=None):
        if name in BLOCKED or any(name.startswith(b + '.') for b in BLOCKED):
            raise ImportError(name + ' is blocked in this test')
sys.meta_path.insert(0, Block())
from pathlib import Path
import numpy as np
import hsicodec
n = 0
for p in sorted(Path({vectors!r}).rglob('*.hsim')):
    out, _ = hsicodec.decompress(p)
    ref = np.load(p.with_suffix('.npy'))
    assert out.shape == ref.shape and out.dtype == ref.dtype, p
    assert np.abs(out.astype(np.float64) - ref.astype(np.float64)).max() <= (1 if ref.dtype.kind in 'ui' else 1e-4), p
    n += 1
loaded = sorted(m for m in sys.modules if m in BLOCKED or m.split('.')[0] == 'torch')
print(n, loaded)
"""


@pytest.mark.parametrize("blocked", [("torch",), ("torch", *ENCODER_MODULES)], ids=["no-torch", "no-encoder"])
def test_every_vector_decodes_with_torch_and_the_encoder_blocked(blocked):
    code = DECODE_EVERY_VECTOR.format(blocked=list(blocked), vectors=str(ROOT / "spec" / "vectors"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    n, loaded = p.stdout.split(" ", 1)
    assert int(n) >= 6 and loaded.strip() == "[]"

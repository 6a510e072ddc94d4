"""Coverage-guided fuzzing of the whole decode path: ``hsicodec.decompress`` (atheris).

Modes (environment variable ``HSIM_FUZZ_MODE``):

* ``reseal`` (default): the input is a mutated ``.hsim`` file whose checksums
  are recomputed (:func:`common.reseal`) before decoding, so mutations of the
  msgpack header, the ``codec`` keys, the mask and the entropy-coded payload
  get past the CRCs and reach the decoder;
* ``raw``: the input is decoded as is (what a user opening a damaged file sees);
* ``struct``: structure-aware -- the input bytes drive a
  ``FuzzedDataProvider`` that picks one of the seed files, applies a few
  header-value / section edits and re-encodes a well-formed container with
  :func:`encode_hsim`, so nearly every input reaches ``parse_codec`` and the
  entropy decoder.

A decode may fail only with an ``HsicodecError``; a successful decode must
return the header's shape and dtype, and a window decode must equal the
corresponding crop of the full decode (up to float noise).

Run through ``tools/fuzz.py decode|decode-raw|decode-struct --seconds N``.
"""

import math
import os
import sys

import atheris

with atheris.instrument_imports(include=["hsicodec"]):
    import numpy as np

    import hsicodec
    from hsicodec.errors import HsicodecError, HsimError
    from hsicodec.format.container import HsimReader, decode_hsim, encode_hsim

sys.path.insert(0, os.path.dirname(__file__))
from common import FUZZ_LIMITS, reseal, seed_files, set_memory_limit  # noqa: E402

MODE = os.environ.get("HSIM_FUZZ_MODE", "reseal")
SEEDS = [decode_hsim(p.read_bytes()) for p in seed_files("hsim")]


def decode(data: bytes) -> None:
    try:
        reader = HsimReader(data, FUZZ_LIMITS)
    except HsimError:
        return
    try:
        cube, geo = hsicodec.decompress(reader)
    except HsicodecError:
        return
    h = reader.header
    assert cube.shape == tuple(h["shape"]) and cube.dtype == np.dtype(h["dtype"]), (cube.shape, cube.dtype)
    # a window of the first pixel row / band must equal the crop of the full decode
    hh, ww, cc = cube.shape
    win = (hh // 2, ww // 3, max(hh - hh // 2, 1), 1)
    part, _ = hsicodec.decompress(HsimReader(data, FUZZ_LIMITS), window=win, bands=(cc - 1, cc))
    full = cube[win[0] : win[0] + win[2], win[1] : win[1] + win[3], cc - 1 : cc]
    if cube.dtype.kind == "f":
        ok = np.allclose(part, full, rtol=1e-5, atol=1e-6 * (1 + np.nanmax(np.abs(full), initial=0)), equal_nan=True)
    else:
        ok = bool(np.all(np.abs(part.astype(np.float64) - full.astype(np.float64)) <= 1))
    if not ok and np.all(np.isfinite(full.astype(np.float64))) and np.max(np.abs(full), initial=0) < 1e30:
        raise AssertionError(f"window {win} differs from the crop of the full decode")


INTS = [
    0,
    1,
    -1,
    2,
    3,
    7,
    8,
    16,
    63,
    64,
    127,
    128,
    255,
    256,
    511,
    512,
    513,
    1 << 16,
    1 << 20,
    (1 << 20) + 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    1 << 62,
    -(1 << 63),
    (1 << 64) - 1,
]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, 1e300, math.inf, -math.inf, math.nan, 2.0**60]


def value(fdp: atheris.FuzzedDataProvider, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind == 0:
        return fdp.PickValueInList(INTS)
    if kind == 1:
        return fdp.ConsumeIntInRange(-600, 600)
    if kind == 2:
        return fdp.PickValueInList(FLOATS)
    if kind == 3:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))
    if kind == 5:
        return fdp.PickValueInList([None, True, False, "pca", "id", "grid", "uint8", "float32", "int64"])
    if kind == 6 and depth < 3:
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    if kind == 7 and depth < 3:
        return {
            fdp.PickValueInList(["m", "off", "bm", "me", "be", "ma", "sc", "fill", "x"]): value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 4))
        }
    if kind == 8:
        return fdp.ConsumeFloat()
    return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))


def edit_header(fdp: atheris.FuzzedDataProvider, node) -> None:
    """Walk into the header at random and replace, add, delete or tweak one value."""
    for _ in range(4):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        k = fdp.PickValueInList(keys)
        child = node[k]
        if isinstance(child, (dict, list)) and fdp.ConsumeBool():
            node = child
            continue
        op = fdp.ConsumeIntInRange(0, 4)
        if op == 0 and isinstance(node, dict):
            del node[k]
        elif op == 1 and type(child) is int:
            node[k] = child + fdp.ConsumeIntInRange(-3, 3)
        elif op == 2 and isinstance(child, bytes) and child:
            b = bytearray(child)
            b[fdp.ConsumeIntInRange(0, len(b) - 1)] = fdp.ConsumeIntInRange(0, 255)
            node[k] = bytes(b[: fdp.ConsumeIntInRange(0, len(b) + 1)])
        elif op == 3 and isinstance(child, list) and child:
            del child[fdp.ConsumeIntInRange(0, len(child) - 1)]
        else:
            node[k] = value(fdp)
        return


def struct_input(data: bytes):
    fdp = atheris.FuzzedDataProvider(data)
    seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    header = {k: v for k, v in __import__("copy").deepcopy(seed.header).items() if k != "sections"}
    sections = dict(seed.sections)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        what = fdp.ConsumeIntInRange(0, 5)
        if what <= 2:
            edit_header(fdp, header)
        elif what == 3 and sections:
            name = fdp.PickValueInList(sorted(sections))
            b = bytearray(sections[name])
            op = fdp.ConsumeIntInRange(0, 3)
            if op == 0 and b:
                b[fdp.ConsumeIntInRange(0, len(b) - 1)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
            elif op == 1:
                del b[fdp.ConsumeIntInRange(0, len(b)) :]
            elif op == 2:
                b += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
            else:
                b = bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)))
            sections[name] = bytes(b)
        elif what == 4 and sections:
            del sections[fdp.PickValueInList(sorted(sections))]
        else:
            sections[fdp.PickValueInList(["l", "s", "m", "x"])] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
    try:
        return encode_hsim(header, sections, FUZZ_LIMITS)
    except (HsimError, TypeError):
        return None


def TestOneInput(data: bytes) -> None:
    if MODE == "struct":
        built = struct_input(data)
        if built is not None:
            decode(built)
    elif MODE == "raw":
        decode(data)
    else:
        decode(reseal(data))


def main() -> None:
    set_memory_limit()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Coverage-guided fuzzing of the base-model reader (atheris).

The input is a model file: :func:`decode_model` parses it (bounded msgpack,
array table, dtypes, offsets), :func:`codec_model` interprets it (config,
names, shapes, dtypes against the architecture), and a model that passes both
must decode a tiny stream matching its own layout (SIREN evaluation on the
native kernel included). Every rejection must be a ``ModelError`` (or an
``HsimError`` for the synthetic stream); the reader must never import pickle
or evaluate anything.

With ``HSIM_FUZZ_MODE=struct`` (``tools/fuzz.py model-struct``) the input
bytes instead drive edits of a seed model's arrays and config -- another
shape, dtype or ndim, a missing or extra array, a changed config value -- and
the result is re-encoded with :func:`encode_model`, so nearly every input is a
well-formed file whose *content* is inconsistent.

Run through ``tools/fuzz.py model|model-struct --seconds N``.
"""

import os
import sys

import atheris

with atheris.instrument_imports(include=["hsicodec"]):
    from hsicodec.codec.decode import decode_sections
    from hsicodec.errors import HsimError, ModelError
    from hsicodec.layers.network.model import codec_model
    from hsicodec.models.modelfile import decode_model, encode_model

sys.path.insert(0, os.path.dirname(__file__))
from common import FUZZ_LIMITS, seed_files, set_memory_limit  # noqa: E402

SHAPE = [5, 3, 2]
MODE = os.environ.get("HSIM_FUZZ_MODE", "raw")
SEEDS = [decode_model(p.read_bytes()) for p in seed_files("model") if "tiny" in p.name]
DTYPES = ["float32", "float64", "float16", "int32", "uint8", "int64"]
CONFIG_VALUES = [
    0,
    1,
    2,
    3,
    -1,
    64,
    65,
    1001,
    2.5,
    None,
    "x",
    "id",
    "pca",
    "outside",
    [],
    {},
    [[0, 1, "nearest"]],
    [[2, 0, "linear"]],
    [[-1, 2, "linear"]],
    [[0, 2, "linear"]],
    {"levels": [], "coord_cell": 0},
]


def struct_model(data: bytes):
    import copy

    import numpy as np

    fdp = atheris.FuzzedDataProvider(data)
    mf = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
    arrays, config = dict(mf.arrays), copy.deepcopy(mf.config)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        op = fdp.ConsumeIntInRange(0, 5)
        name = fdp.PickValueInList(sorted(arrays)) if arrays else "x"
        if op == 0 and arrays:
            del arrays[name]
        elif op == 1 and name in arrays:
            shape = [fdp.ConsumeIntInRange(0, 9) for _ in range(fdp.ConsumeIntInRange(0, 3))]
            arrays[name] = np.resize(arrays[name], shape).astype(arrays[name].dtype)
        elif op == 2 and name in arrays:
            arrays[name] = arrays[name].astype(fdp.PickValueInList(DTYPES))
        elif op == 3 and name in arrays:
            a = arrays[name].copy()
            if a.size and a.dtype.kind == "f":
                a.flat[fdp.ConsumeIntInRange(0, a.size - 1)] = fdp.PickValueInList([np.nan, np.inf, 1e30, 0.0])
            arrays[name] = a
        elif op == 4:
            key = fdp.PickValueInList(["depth", "width", "n_out", "shift", "spectral", "inner_steps", "arch", "latent"])
            config[key] = fdp.PickValueInList(CONFIG_VALUES)
        else:
            lat = config.get("latent")
            if isinstance(lat, dict):
                lat[fdp.PickValueInList(["levels", "coord_cell"])] = fdp.PickValueInList(CONFIG_VALUES)
    try:
        return encode_model(arrays, config, mf.card)
    except ModelError:
        return None


def TestOneInput(data: bytes) -> None:
    if MODE == "struct":
        data = struct_model(data)
        if data is None:
            return
    try:
        cm = codec_model(decode_model(data))
    except ModelError:
        return
    k = min(cm.n_out, 2)
    codec = {
        "id": "grid",
        "k": k,
        "norm": 1.0,
        "q": 0,
        "qo": [0] * len(cm.layout.levels),
        "ma": 0,
        "ls": bytes(cm.layout.latent_dim if k else 0),
    }
    if cm.spectral == "pca":
        codec["sp"] = {"me": 0, "be": 0, "ma": 0, "sc": bytes(k + 1)}
    else:
        codec["sp"] = {"m": "id", "off": 0.0, "bm": [i % k for i in range(SHAPE[2])]}
    header = {"shape": SHAPE, "dtype": "float32", "model": cm.sha256, "codec": codec}
    try:
        out = decode_sections(header, {"l": b"", "s": b""}.__getitem__, cm, limits=FUZZ_LIMITS)
    except (HsimError, ModelError):
        return
    assert out.shape == tuple(SHAPE), out.shape


def main() -> None:
    set_memory_limit()
    # tripwire: the model reader must never unpickle
    import pickle

    def _no(*a, **k):
        raise AssertionError("the model reader called pickle")

    pickle.loads = pickle.load = pickle.Unpickler = _no  # type: ignore[assignment,misc]
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

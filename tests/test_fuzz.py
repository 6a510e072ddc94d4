"""Hostile and damaged inputs: the fuzz harnesses' short run, their helpers, and the regressions they found.

The long runs are ``python tools/fuzz.py TARGET --seconds N`` (see tests/fuzz/).
Here each target runs for a few seconds in its own process (atheris needs one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import msgpack
import numpy as np
import pytest

import hsicodec
from hsicodec.errors import HsicodecError, HsimChecksumError, HsimError, HsimLimitError, ModelFormatError
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits, decode_hsim

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))
from common import FUZZ_LIMITS, reseal, seed_files  # noqa: E402

SHORT_RUN = {"container": 10, "decode": 12, "decode-struct": 12, "model": 6, "model-struct": 8}  # seconds


@pytest.mark.parametrize("target", sorted(SHORT_RUN))
def test_fuzz_short_run(target, tmp_path):
    pytest.importorskip("atheris")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "fuzz.py"),
            target,
            "--seconds",
            str(SHORT_RUN[target]),
            "--work",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    log = (tmp_path / "last.log").read_text()
    assert r.returncode == 0 and not summary["findings"], log[-4000:]
    assert summary["runs"] and summary["runs"] > 100, log[-2000:]


# --------------------------------------------------------------------------- the harness helpers


def test_seed_corpus_is_valid():
    for p in seed_files("hsim"):
        cube, _ = hsicodec.decompress(HsimReader(p.read_bytes(), FUZZ_LIMITS))
        assert cube.shape == tuple(decode_hsim(p.read_bytes()).header["shape"])
    from hsicodec.layers.network.model import codec_model
    from hsicodec.models.modelfile import decode_model

    assert {codec_model(decode_model(p.read_bytes())).spectral for p in seed_files("model")} == {"pca", "id"}


def test_reseal_gets_a_damaged_file_past_every_checksum():
    data = seed_files("hsim")[0].read_bytes()
    assert reseal(data) == data
    h = decode_hsim(data)
    name = "l" if "l" in h.sections else next(iter(h.sections))
    off = HsimReader(data).section_spans[name][0]
    bad = bytearray(data)
    bad[off] ^= 0x10  # a payload byte: section and trailer CRCs now wrong
    with pytest.raises(HsimChecksumError):
        decode_hsim(bytes(bad))
    fixed = decode_hsim(reseal(bytes(bad)))  # every CRC right again, the damage kept
    assert fixed.sections[name][0] == h.sections[name][0] ^ 0x10
    try:  # ... and the decoder behind the checksums must refuse it cleanly or decode it: never crash
        hsicodec.decompress(reseal(bytes(bad)))
    except HsicodecError:
        pass


# --------------------------------------------------------------------------- limits through decompress


def _with_shape(shape) -> bytes:
    """A real grid-model file whose header declares another shape, every checksum right."""
    h = decode_hsim((ROOT / "tests/fuzz/seeds/hsim/grid_8x8x16_u16.hsim").read_bytes())
    hdr = dict(h.header)
    hdr["shape"] = list(shape)
    codec = dict(hdr["codec"])
    if codec.get("k"):  # the number of latent scale codes may depend on the grid size (wavelet subbands)
        from hsicodec.codec.api import _model_by_hash
        from hsicodec.layers.network import layout

        cm = _model_by_hash(hdr["model"], None)
        n = (
            layout.n_scale_codes(cm, shape[0], shape[1], codec.get("wt", 0))
            if hasattr(layout, "n_scale_codes")
            else cm.layout.latent_dim
        )
        codec["ls"] = (codec["ls"] * n)[:n]
    if "rl" in codec:  # at most one map per band
        from hsicodec.format import compact

        v4, stream_len = compact.unpack_codec(codec, 255, 8)
        rl = dict(v4["rl"])
        rl["k"] = min(rl["k"], shape[2])
        rl["ls"] = bytes(rl["k"] * (rl["wt"] + 1))
        sp = {**v4["sp"], "sc": v4["sp"]["sc"][: rl["k"] + 1], "bd": v4["sp"]["bd"][: rl["k"]]}
        codec = (
            compact.pack_codec({**v4, "rl": rl, "sp": sp}, stream_len) if stream_len is not None else {**v4, "rl": rl}
        )
    hdr["codec"] = codec
    raw = msgpack.packb(
        {
            **{k: v for k, v in hdr.items() if k != "sections"},
            "sections": [[n, len(b), 0] for n, b in h.sections.items()],
        },
        use_bin_type=True,
    )
    import struct

    body = b"\x89HSIM\r\n\x1a" + struct.pack("<HHII", 1, 0, len(raw), 0) + raw + b"".join(h.sections.values())
    return reseal(body + b"\0\0\0\0")


def _peak(fn) -> tuple[BaseException | None, int]:
    err: BaseException | None
    tracemalloc.start()
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        err = exc
    else:
        err = None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err, peak


@pytest.mark.parametrize(
    "shape, error",
    [
        ((10**6, 10**6, 10**4), "values exceeds the limit"),  # container: H*W*C > max_values
        ((2**21, 4, 4), "rows/columns"),  # container: max_dim
        ((4, 4, 2**17), "bands exceeds"),  # container: max_bands
        ((2**17, 2**17, 1), "max_decode_bytes"),  # valid-looking: 2^34 values, ~2^36 latents
        ((2**20, 2**14, 1), "max_decode_bytes"),
        ((4096, 4096, 1024), "max_decode_bytes"),  # exactly max_values: the decoded cube is 128 GiB
    ],
)
def test_absurd_and_huge_valid_looking_shapes_refused_before_allocation(shape, error):
    data = _with_shape(shape)
    err, peak = _peak(lambda: hsicodec.decompress(data))
    assert isinstance(err, HsimLimitError) and error in str(err), err
    assert peak < 4 << 20, peak  # refused from the header alone (the model weights are cached/loaded lazily)


def test_decode_limit_is_adjustable_by_the_caller():
    data = _with_shape((300, 300, 16))  # ~100 MiB to decode: fine by default, refused under a tight limit
    need_err, peak = _peak(lambda: hsicodec.decompress(HsimReader(data, Limits(max_decode_bytes=16 << 20))))
    assert isinstance(need_err, HsimLimitError) and "max_decode_bytes" in str(need_err)
    assert peak < 4 << 20
    with pytest.raises(HsimLimitError, match="values exceeds the limit of 1000"):
        hsicodec.decompress(HsimReader(data, Limits(max_values=1000)))
    assert DEFAULT_LIMITS.max_decode_bytes == 1 << 34


def test_absurd_section_length_refused_before_allocation():
    h = decode_hsim((ROOT / "tests/fuzz/seeds/hsim/grid_8x8x16_u16.hsim").read_bytes())
    hdr = {k: v for k, v in h.header.items() if k != "sections"}
    raw = msgpack.packb({**hdr, "sections": [["l", 2**30, 0]]}, use_bin_type=True)
    import struct

    data = reseal(b"\x89HSIM\r\n\x1a" + struct.pack("<HHII", 1, 0, len(raw), 0) + raw + b"\0" * 100)
    err, peak = _peak(lambda: hsicodec.decompress(data))
    assert isinstance(err, HsimError) and "declares 1073741824 bytes" in str(err), err
    assert peak < 1 << 20


def test_memory_error_while_decoding_is_an_hsim_error(monkeypatch):
    from hsicodec.codec import decode

    def boom(*a, **k):
        raise MemoryError("simulated")

    monkeypatch.setattr(decode, "_decode", boom)
    with pytest.raises(HsimLimitError, match="not enough memory"):
        hsicodec.decompress(seed_files("hsim")[0].read_bytes())


# --------------------------------------------------------------------------- regressions found by fuzzing


def test_entropy_stream_with_unused_words_refused():
    from hsicodec.coding import entropy

    sym = np.array([1, -2, 0, 3, 0, 0, 1], np.int32)
    sc = np.full(sym.size, 1.0)
    data = entropy.laplace_encode(sym, sc, 4)
    assert np.array_equal(entropy.laplace_decode(data, sc, 4), sym)
    for bad in (data + b"\1\0\0\0", b"\7\0\0\0" + data):
        with pytest.raises(HsimError, match="does not end after its 7 symbols"):
            entropy.laplace_decode(bad, sc, 4)
    with pytest.raises(HsimError):  # fewer symbols declared than coded
        entropy.laplace_decode(data, sc[:3], 4)


def test_model_array_with_wrong_number_of_dimensions_is_a_clear_error():
    # found by tools/fuzz.py model-struct: a 1-D hidden.0.weight crashed shape validation with IndexError
    from hsicodec.layers.network.model import codec_model
    from hsicodec.models.modelfile import decode_model, encode_model

    mf = decode_model((ROOT / "tests/fuzz/seeds/model/tiny_pca.hsmodel").read_bytes())
    for name, arr in (
        ("hidden.0.weight", np.zeros(8, np.float32)),
        ("out.bias", np.zeros((3, 1), np.float32)),
        ("meta.weight", np.zeros((), np.float32)),
        ("inner.lr.0", np.zeros((2, 1), np.float32)),
    ):
        arrays = {**mf.arrays, name: arr}
        with pytest.raises(ModelFormatError, match=f"'{name}'.*dimension"):
            codec_model(decode_model(encode_model(arrays, mf.config, mf.card)))

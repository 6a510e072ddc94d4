"""Coverage-guided fuzzing of the ``.hsim`` container reader (atheris).

Each input is tried twice: as is (the checksums catch almost every mutation
early) and resealed (:func:`common.reseal` fixes every CRC, so the mutation
reaches the bounded msgpack parser, the header validation and the layout
checks). Both the in-memory reader (:func:`decode_hsim`) and the random-access
reader (:class:`HsimReader`: sections, verify) must agree, and may reject an
input only with an :class:`HsimError`. An accepted file must re-encode to a
file that decodes to the same header and sections.

Run through ``tools/fuzz.py container --seconds N``.
"""

import sys

import atheris
import msgpack

with atheris.instrument_imports(include=["hsicodec"]):
    import hsicodec.format.container as ct
    from hsicodec.errors import HsimError

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import reseal, set_memory_limit  # noqa: E402

# small limits too, so the limit checks themselves are on the fuzzed paths
TIGHT = ct.Limits(
    max_header_bytes=256,
    max_sections=3,
    max_section_bytes=200,
    max_file_bytes=600,
    max_values=500,
    max_dim=30,
    max_bands=250,
    max_depth=4,
)


def check(data: bytes, limits: ct.Limits) -> None:
    try:
        got = ct.decode_hsim(data, limits)
    except HsimError:
        got = None
    try:
        with ct.HsimReader(data, limits) as r:
            secs = {name: r.section(name) for name in r.section_names}
            r.verify()
            hdr = r.header
    except HsimError as exc:
        if got is not None:
            raise AssertionError("decode_hsim accepted a file HsimReader refuses") from exc
        return
    if got is None:
        raise AssertionError("HsimReader accepted a file decode_hsim refuses")

    def same(a, b) -> bool:  # NaN-safe
        return msgpack.packb(a, use_bin_type=True) == msgpack.packb(b, use_bin_type=True)

    assert secs == got.sections and same(hdr, got.header)
    again = ct.decode_hsim(ct.encode_hsim(got.header, list(got.sections.items()), limits), limits)
    assert same(again.header, got.header) and again.sections == got.sections


def TestOneInput(data: bytes) -> None:
    for limits in (ct.DEFAULT_LIMITS, TIGHT):
        check(data, limits)
        check(reseal(data), limits)


def main() -> None:
    set_memory_limit()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

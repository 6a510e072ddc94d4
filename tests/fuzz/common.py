"""Shared pieces of the fuzz harnesses (tests/fuzz/fuzz_*.py).

* :func:`reseal` recomputes every CRC32C of a (mutated) ``.hsim`` file -- the
  header CRC in the preamble, each section's CRC in the header's index and the
  trailer -- so that mutations reach the msgpack header parser, the codec-key
  validation and the entropy decoder instead of failing at the first checksum.
* :data:`FUZZ_LIMITS` are tighter container limits for fuzzing: a mutated shape
  may legitimately ask for a huge (but valid) decode; fuzzing looks for wrong
  behaviour, not for how long a 2^34-value cube takes.  The limit checks
  themselves are exercised with the default limits by tests/test_container.py
  and tests/test_fuzz.py.
* :func:`accepted` says whether an exception is an acceptable rejection.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import msgpack

from hsicodec.errors import HsicodecError
from hsicodec.format.container import MAGIC, PREAMBLE_SIZE, Limits

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"

# small enough that any decode a mutated header can ask for runs in well under a second
FUZZ_LIMITS = Limits(max_values=1 << 16, max_dim=1 << 12, max_bands=1 << 10, max_decode_bytes=64 << 20)


def accepted(exc: BaseException) -> bool:
    """An input may be refused only with one of hsicodec's own errors."""
    return isinstance(exc, HsicodecError)


def _lenient_header(buf: bytes):
    try:
        return msgpack.unpackb(
            buf,
            raw=False,
            strict_map_key=False,
            max_str_len=len(buf),
            max_bin_len=len(buf),
            max_array_len=len(buf),
            max_map_len=len(buf),
            max_ext_len=len(buf),
        )
    except Exception:
        return None


def reseal(data: bytes) -> bytes:
    """Make every checksum of a (possibly damaged) ``.hsim`` file right again.

    The preamble, header bytes and payload are left as they are, except that
    when the header is a map whose ``sections`` index is well formed, each
    entry's CRC is replaced by the CRC of the bytes it points at (which
    re-encodes the header with msgpack). Then the header CRC (preamble bytes
    16..20) and the trailer (last 4 bytes) are recomputed.
    """
    if len(data) < PREAMBLE_SIZE + 4 or data[:8] != MAGIC:
        return data
    (hlen,) = struct.unpack_from("<I", data, 12)
    if PREAMBLE_SIZE + hlen > len(data) - 4:  # the header runs into the trailer: fix the trailer only
        return _trailer_only(bytearray(data))
    head = data[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen]
    rest = data[PREAMBLE_SIZE + hlen : -4]
    hdr = _lenient_header(head)
    if isinstance(hdr, dict) and isinstance(hdr.get("sections"), list):
        index = hdr["sections"]
        pos, changed, ok = 0, False, True
        for entry in index:
            if not (isinstance(entry, list) and len(entry) == 3 and type(entry[1]) is int and entry[1] >= 0):
                ok = False
                break
            chunk = rest[pos : pos + entry[1]]
            if len(chunk) == entry[1]:
                crc = crc32c.crc32c(chunk)
                if entry[2] != crc:
                    entry[2], changed = crc, True
            pos += entry[1]
        if ok and changed:
            try:
                head = msgpack.packb(hdr, use_bin_type=True)
            except Exception:
                pass
    out = bytearray(data[:PREAMBLE_SIZE]) + head + rest
    struct.pack_into("<II", out, 12, len(head), crc32c.crc32c(head))
    out += struct.pack("<I", crc32c.crc32c(out))
    return bytes(out)


def _trailer_only(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, len(buf) - 4, crc32c.crc32c(bytes(buf[:-4])))
    return bytes(buf)


def seed_files(kind: str) -> list[Path]:
    """The checked-in seed corpus of one kind ("hsim" or "model")."""
    return sorted((SEEDS / kind).glob("*"))


def set_memory_limit(gib: float = 6.0) -> None:
    """Cap the address space so a runaway allocation is a MemoryError (a finding), not an OOM kill."""
    import resource

    lim = int(gib * (1 << 30))
    try:
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    except (ValueError, OSError):  # pragma: no cover
        pass

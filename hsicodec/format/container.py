"""The ``.hsim`` container: bytes <-> (header dict, named payload sections).

Layout (format 1.0, all integers little-endian; normative text in ``spec/hsim.md``)::

    preamble  20 bytes   magic(8) | major u16 | minor u16 | header length u32 | CRC32C(header) u32
    header    L bytes    one msgpack map with string keys
    payload   sum(len)   the sections' bytes, concatenated in the order of header["sections"]
    trailer   4 bytes    CRC32C over every byte before it

The container knows nothing of networks: ``header["codec"]`` is an opaque map
and the sections are opaque byte strings.  It validates the keys it owns
(``shape``, ``dtype``, ``model``, ``codec``, ``sections``, ``geo``, ``tags``,
``created_by``), passes every other key through untouched, and checks every
declared length and count against :class:`Limits` *and* against the bytes
actually present before allocating or reading anything.

Every problem with a file raises a subclass of :class:`hsicodec.errors.HsimError`
whose message says what is wrong and where.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

import crc32c as _crc32c
import msgpack

from hsicodec.errors import (
    HsimChecksumError,
    HsimError,
    HsimHeaderError,
    HsimLimitError,
    HsimMagicError,
    HsimTruncatedError,
    HsimVersionError,
)
from hsicodec.format.boundedpack import unpackb_bounded

__all__ = [
    "MAGIC",
    "VERSION",
    "PREAMBLE_SIZE",
    "TRAILER_SIZE",
    "DTYPES",
    "Limits",
    "DEFAULT_LIMITS",
    "Hsim",
    "HsimTrailingDataError",
    "encode_hsim",
    "decode_hsim",
    "validate_header",
    "read_hsim",
    "HsimReader",
]

MAGIC: bytes = b"\x89HSIM\r\n\x1a"
VERSION: tuple[int, int] = (1, 0)
PREAMBLE_SIZE = 20
TRAILER_SIZE = 4

_PREAMBLE = struct.Struct("<8sHHII")
_TRAILER = struct.Struct("<I")
assert _PREAMBLE.size == PREAMBLE_SIZE and len(MAGIC) == 8

#: dtypes a cube may have (``header["dtype"]``).
DTYPES: frozenset[str] = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64"}
)

_MODEL_RE = re.compile(r"[0-9a-f]{64}")
_U32_MAX = 2**32 - 1
_CHUNK = 1 << 20  # streaming read size for HsimReader.verify


class HsimTrailingDataError(HsimError):
    """The file holds more bytes than its preamble, header, sections and trailer account for."""


@dataclass(frozen=True)
class Limits:
    """Hard limits a reader enforces before allocating anything (caller-adjustable)."""

    max_header_bytes: int = 1 << 20  #: header length L
    max_sections: int = 65536  #: entries in the section index
    max_section_bytes: int = 1 << 30  #: length of one section
    max_file_bytes: int = 1 << 32  #: whole file (and sum of section lengths)
    max_values: int = 2**34  #: H * W * C
    max_dim: int = 2**20  #: H and W each
    max_bands: int = 2**16  #: C
    max_depth: int = 32  #: nesting depth of the header (top-level map = 1)
    max_decode_bytes: int = 1 << 34  #: memory one decode (latent grids + decoded window) may need


DEFAULT_LIMITS = Limits()


@dataclass
class Hsim:
    """A decoded container."""

    header: dict  #: the full header, "sections" index included
    sections: dict[str, bytes]  #: section name -> bytes, in index order
    version: tuple[int, int]  #: (major, minor) read from the file


# --------------------------------------------------------------------------- helpers


def _short(value: Any, limit: int = 80) -> str:
    """repr() of a (possibly hostile) value, cut to ``limit`` characters."""
    try:
        text = repr(value)
    except Exception:  # pragma: no cover - defensive
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    """True for a real int (bool is not an int here)."""
    return type(value) is int


def _check_depth(obj: Any, max_depth: int, where: str = "header") -> None:
    """Reject containers nested deeper than ``max_depth`` and maps with non-str keys."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, where)]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                raise HsimHeaderError(f"{path}: nesting deeper than {max_depth} levels")
            for k, v in node.items():
                if type(k) is not str:
                    raise HsimHeaderError(f"{path}: map key {_short(k)} is not a string")
                if isinstance(v, (dict, list)):
                    stack.append((v, depth + 1, f"{path}[{k!r}]" if len(path) < 200 else path))
        elif isinstance(node, list):
            if depth > max_depth:
                raise HsimHeaderError(f"{path}: nesting deeper than {max_depth} levels")
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    stack.append((v, depth + 1, f"{path}[{i}]" if len(path) < 200 else path))


def _pairs_to_dict(pairs: list) -> dict:
    """msgpack object_pairs_hook: build a dict, refusing duplicate keys."""
    out: dict = {}
    for k, v in pairs:
        if type(k) is not str:
            raise HsimHeaderError(f"header map key {_short(k)} is not a string")
        if k in out:
            raise HsimHeaderError(f"header map has duplicate key {k!r}")
        out[k] = v
    return out


def _unpack_header(buf: Any, limits: Limits) -> dict:
    """Unpack the header bytes with bounded sizes; return the top-level map."""
    n = len(buf)
    try:
        obj = unpackb_bounded(buf, _pairs_to_dict)
    except HsimError:
        raise
    except msgpack.ExtraData:
        raise HsimHeaderError(
            f"header (bytes {PREAMBLE_SIZE}..{PREAMBLE_SIZE + n}): extra bytes after the msgpack map"
        ) from None
    except msgpack.OutOfData:
        raise HsimHeaderError(f"header (bytes {PREAMBLE_SIZE}..{PREAMBLE_SIZE + n}): msgpack data ends early") from None
    except Exception as exc:  # FormatError, StackError, ValueError, UnicodeDecodeError, ...
        if isinstance(exc, ValueError) and "incomplete input" in str(exc):
            raise HsimHeaderError(
                f"header (bytes {PREAMBLE_SIZE}..{PREAMBLE_SIZE + n}): msgpack data ends early"
            ) from None
        raise HsimHeaderError(
            f"header (bytes {PREAMBLE_SIZE}..{PREAMBLE_SIZE + n}) is not valid msgpack: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(obj, dict):
        raise HsimHeaderError(f"header is a msgpack {type(obj).__name__}, expected a map")
    _check_depth(obj, limits.max_depth)
    return obj


def _normalize(obj: Any, depth: int, limits: Limits, path: str) -> Any:
    """Turn a caller's header into plain msgpack-able Python values (encode side)."""
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, Mapping):
        if depth > limits.max_depth:
            raise HsimHeaderError(f"{path}: nesting deeper than {limits.max_depth} levels")
        out = {}
        for k, v in obj.items():
            if type(k) is not str:
                raise HsimHeaderError(f"{path}: map key {_short(k)} is not a string")
            out[k] = _normalize(v, depth + 1, limits, f"{path}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        if depth > limits.max_depth:
            raise HsimHeaderError(f"{path}: nesting deeper than {limits.max_depth} levels")
        return [_normalize(v, depth + 1, limits, f"{path}[{i}]") for i, v in enumerate(obj)]
    # numpy scalars / arrays (without importing numpy): scalars have .item(), arrays .tolist()
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):
        if getattr(obj, "shape", None) == ():
            return _normalize(obj.item(), depth, limits, path)
        return _normalize(obj.tolist(), depth, limits, path)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    raise HsimHeaderError(f"{path}: value of type {type(obj).__name__} cannot be stored in a header")


# --------------------------------------------------------------------------- header


def validate_header(header: Mapping, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check the keys the container owns; raise HsimHeaderError / HsimLimitError.

    Unknown keys are tolerated. Does not check the section index against a file
    size (the readers do that).
    """
    if not isinstance(header, Mapping):
        raise HsimHeaderError(f"header is a {type(header).__name__}, expected a map")
    for key in ("shape", "dtype", "codec", "sections"):
        if key not in header:
            raise HsimHeaderError(f"header key {key!r} is missing (required)")

    shape = header["shape"]
    if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape):
        raise HsimHeaderError(f"header key 'shape': expected 3 positive ints, got {_short(shape)}")
    h, w, c = shape
    if h > limits.max_dim or w > limits.max_dim:
        raise HsimLimitError(
            f"header key 'shape': {_short(list(shape))} exceeds the limit of {limits.max_dim} rows/columns"
        )
    if c > limits.max_bands:
        raise HsimLimitError(f"header key 'shape': {c} bands exceeds the limit of {limits.max_bands}")
    if h * w * c > limits.max_values:
        raise HsimLimitError(
            f"header key 'shape': {h}x{w}x{c} = {h * w * c} values exceeds the limit of {limits.max_values}"
        )

    dtype = header["dtype"]
    if type(dtype) is not str or dtype not in DTYPES:
        raise HsimHeaderError(f"header key 'dtype': expected one of {', '.join(sorted(DTYPES))}, got {_short(dtype)}")

    model = header.get("model")  # absent: the codec needs no base model
    if "model" in header and (type(model) is not str or not _MODEL_RE.fullmatch(model)):
        raise HsimHeaderError(f"header key 'model': expected 64 lowercase hex characters (sha256), got {_short(model)}")

    if not isinstance(header["codec"], Mapping):
        raise HsimHeaderError(f"header key 'codec': expected a map, got {_short(header['codec'])}")

    if "geo" in header and header["geo"] is not None and not isinstance(header["geo"], Mapping):
        raise HsimHeaderError(f"header key 'geo': expected a map or nil, got {_short(header['geo'])}")

    if "tags" in header:
        tags = header["tags"]
        if not isinstance(tags, Mapping):
            raise HsimHeaderError(f"header key 'tags': expected a map of str to str, got {_short(tags)}")
        for k, v in tags.items():
            if type(k) is not str or type(v) is not str:
                raise HsimHeaderError(
                    f"header key 'tags': expected a map of str to str, got entry {_short(k)}: {_short(v)}"
                )

    if "created_by" in header and type(header["created_by"]) is not str:
        raise HsimHeaderError(f"header key 'created_by': expected a str, got {_short(header['created_by'])}")

    _validate_index(header["sections"], limits)


def _validate_index(index: Any, limits: Limits) -> None:
    if not isinstance(index, (list, tuple)):
        raise HsimHeaderError(f"header key 'sections': expected an array, got {_short(index)}")
    if len(index) > limits.max_sections:
        raise HsimLimitError(f"header key 'sections': {len(index)} sections exceeds the limit of {limits.max_sections}")
    seen: set[str] = set()
    total = 0
    for i, entry in enumerate(index):
        where = f"header key 'sections' entry {i}"
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise HsimHeaderError(f"{where}: expected [name, length, crc32c], got {_short(entry)}")
        name, length, crc = entry
        if type(name) is not str or not 1 <= len(name) <= 64 or not all(0x20 <= ord(ch) <= 0x7E for ch in name):
            raise HsimHeaderError(f"{where}: name must be 1..64 printable ASCII characters, got {_short(name)}")
        if name in seen:
            raise HsimHeaderError(f"{where}: duplicate section name {name!r}")
        seen.add(name)
        if not _is_int(length) or length < 0:
            raise HsimHeaderError(f"{where} ({name!r}): length must be an int >= 0, got {_short(length)}")
        if length > limits.max_section_bytes:
            raise HsimLimitError(
                f"{where} ({name!r}): {length} bytes exceeds the section limit of {limits.max_section_bytes}"
            )
        if not _is_int(crc) or not 0 <= crc <= _U32_MAX:
            raise HsimHeaderError(f"{where} ({name!r}): crc32c must be a u32, got {_short(crc)}")
        total += length
    if total > limits.max_file_bytes:
        raise HsimLimitError(
            f"header key 'sections': {total} payload bytes exceeds the file limit of {limits.max_file_bytes}"
        )


# --------------------------------------------------------------------------- encode


def _section_pairs(sections: Sequence[tuple[str, bytes]] | Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    items: Iterable = sections.items() if isinstance(sections, Mapping) else sections
    out: list[tuple[str, bytes]] = []
    for item in items:
        try:
            name, data = item
        except (TypeError, ValueError):
            raise TypeError(f"sections must be (name, bytes) pairs, got {_short(item)}") from None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"section {_short(name)}: expected bytes, got {type(data).__name__}")
        out.append((name, bytes(data)))
    return out


def pack_head(header: Mapping, limits: Limits = DEFAULT_LIMITS, version: tuple = VERSION, hint: str = "") -> bytes:
    """Preamble + msgpack header of a file whose header (section index included) is final;
    the header is refused over ``limits.max_header_bytes`` (``hint`` says what to do then)."""
    try:
        hbytes = msgpack.packb(header, use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:
        raise HsimHeaderError(f"header cannot be encoded as msgpack: {exc}") from None
    if len(hbytes) > limits.max_header_bytes:
        raise HsimLimitError(
            f"header is {len(hbytes)} bytes, exceeds the limit of {limits.max_header_bytes}"
            + (f" ({hint})" if hint else "")
        )
    return _PREAMBLE.pack(MAGIC, version[0], version[1], len(hbytes), _crc32c.crc32c(hbytes)) + hbytes


def encode_hsim(
    header: Mapping,
    sections: Sequence[tuple[str, bytes]] | Mapping[str, bytes],
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Build a ``.hsim`` file in memory.

    The section index (``header["sections"]``) is built here from ``sections``;
    one the caller passes is ignored and replaced. The index is always the last
    header key; the others keep their insertion order, so equal input gives
    byte-identical output (and re-encoding a decoded file reproduces it).
    Tuples become arrays; numpy scalars/arrays become plain numbers/arrays.
    """
    if not isinstance(header, Mapping):
        raise TypeError(f"header must be a mapping, got {type(header).__name__}")
    pairs = _section_pairs(sections)
    hdr = _normalize({k: v for k, v in header.items() if k != "sections"}, 1, limits, "header")
    for name, _ in pairs:
        if type(name) is not str:
            raise HsimHeaderError(f"header key 'sections': section name {_short(name)} is not a str")
    hdr["sections"] = [[name, len(data), _crc32c.crc32c(data)] for name, data in pairs]
    validate_header(hdr, limits)
    head = pack_head(hdr, limits)
    total = len(head) + sum(len(d) for _, d in pairs) + TRAILER_SIZE
    if total > limits.max_file_bytes:
        raise HsimLimitError(f"file would be {total} bytes, exceeds the limit of {limits.max_file_bytes}")
    out = bytearray(head)
    for _, data in pairs:
        out += data
    out += _TRAILER.pack(_crc32c.crc32c(out))
    return bytes(out)


# --------------------------------------------------------------------------- decode core


@dataclass
class _Layout:
    version: tuple[int, int]
    header: dict
    header_len: int
    spans: dict[str, tuple[int, int, int]]  # name -> (offset, length, crc32c), offsets absolute
    payload_end: int  # offset of the trailer


def _parse(read_at: Callable[[int, int], Any], size: int, limits: Limits) -> _Layout:
    """Read and check preamble, header and section layout (not the payload checksums).

    ``read_at(offset, n)`` must return exactly ``n`` bytes (the caller has
    ``size`` bytes); it is only called after the range is known to exist.
    """
    if size > limits.max_file_bytes:
        raise HsimLimitError(f"file is {size} bytes, exceeds the limit of {limits.max_file_bytes}")
    head = bytes(read_at(0, min(size, PREAMBLE_SIZE)))
    n_magic = min(len(head), len(MAGIC))
    if head[:n_magic] != MAGIC[:n_magic]:
        raise HsimMagicError(f"not a .hsim file: bytes 0..{n_magic} are {head[:n_magic]!r}, expected magic {MAGIC!r}")
    if size < PREAMBLE_SIZE:
        raise HsimTruncatedError(f"truncated at byte {size}: the preamble needs {PREAMBLE_SIZE} bytes")
    _, major, minor, hlen, hcrc = _PREAMBLE.unpack(head)
    if major != VERSION[0]:
        raise HsimVersionError(
            f"unsupported .hsim format version {major}.{minor}: this reader reads "
            f"{VERSION[0]}.x (up to {VERSION[0]}.{VERSION[1]} fully)"
        )
    if hlen > limits.max_header_bytes:
        raise HsimLimitError(
            f"preamble (byte 12) declares a {hlen}-byte header, exceeds the limit of {limits.max_header_bytes}"
        )
    remain = size - PREAMBLE_SIZE
    if hlen > remain:
        raise HsimTruncatedError(f"truncated at byte {size}: the header declares {hlen} bytes, {remain} remain")
    hbuf = read_at(PREAMBLE_SIZE, hlen)
    got = _crc32c.crc32c(hbuf)
    if got != hcrc:
        raise HsimChecksumError(
            f"checksum mismatch in header (bytes {PREAMBLE_SIZE}..{PREAMBLE_SIZE + hlen}): "
            f"stored {hcrc:#010x}, computed {got:#010x}"
        )
    header = _unpack_header(hbuf, limits)
    validate_header(header, limits)

    offset = PREAMBLE_SIZE + hlen
    spans: dict[str, tuple[int, int, int]] = {}
    for name, length, crc in header["sections"]:
        remain = size - offset
        if length > remain:
            raise HsimTruncatedError(
                f"truncated at byte {size}: section {name!r} (at byte {offset}) declares {length} bytes, "
                f"{remain} remain"
            )
        spans[name] = (offset, length, crc)
        offset += length
    remain = size - offset
    if remain < TRAILER_SIZE:
        raise HsimTruncatedError(
            f"truncated at byte {size}: the trailer (at byte {offset}) needs {TRAILER_SIZE} bytes, {remain} remain"
        )
    if remain > TRAILER_SIZE:
        raise HsimTrailingDataError(
            f"{remain - TRAILER_SIZE} unexpected byte(s): the sections end at byte {offset} and the "
            f"trailer at byte {offset + TRAILER_SIZE}, but the file is {size} bytes"
        )
    return _Layout((major, minor), header, hlen, spans, offset)


def _check_section(name: str, data: Any, span: tuple[int, int, int]) -> None:
    off, length, crc = span
    got = _crc32c.crc32c(data)
    if got != crc:
        raise HsimChecksumError(
            f"checksum mismatch in section {name!r} (bytes {off}..{off + length}): "
            f"stored {crc:#010x}, computed {got:#010x}"
        )


def _check_trailer(stored: int, computed: int, end: int) -> None:
    if stored != computed:
        raise HsimChecksumError(
            f"checksum mismatch in file trailer (bytes 0..{end}, trailer at byte {end}): "
            f"stored {stored:#010x}, computed {computed:#010x}"
        )


def decode_hsim(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Hsim:
    """Parse a whole ``.hsim`` file held in memory; check every limit and checksum."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_hsim needs bytes, got {type(data).__name__}")
    mv = memoryview(data).cast("B")
    size = len(mv)
    layout = _parse(lambda off, n: mv[off : off + n], size, limits)
    sections: dict[str, bytes] = {}
    for name, span in layout.spans.items():
        off, length, _ = span
        chunk = mv[off : off + length]
        _check_section(name, chunk, span)
        sections[name] = bytes(chunk)
    end = layout.payload_end
    (stored,) = _TRAILER.unpack(mv[end : end + TRAILER_SIZE])
    _check_trailer(stored, _crc32c.crc32c(mv[:end]), end)
    return Hsim(header=layout.header, sections=sections, version=layout.version)


# --------------------------------------------------------------------------- files


def read_hsim(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> Hsim:
    """Read and fully decode a ``.hsim`` file (its size is checked before it is read)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limits.max_file_bytes:
            raise HsimLimitError(f"{path}: file is {size} bytes, exceeds the limit of {limits.max_file_bytes}")
        data = f.read(limits.max_file_bytes + 1)
    return decode_hsim(data, limits)


class HsimReader:
    """Random access to a ``.hsim`` file: reads preamble and header, then sections on demand.

    ``source`` is a path, a seekable binary stream (the container starts at its
    current position and runs to the end of the stream; the stream is not
    closed by :meth:`close`), or bytes. The constructor checks the preamble,
    the header checksum, the header and that the section index matches the
    file size; :meth:`section` checks that section's CRC32C; :meth:`verify`
    streams the whole file and checks every checksum. Not thread-safe.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._own = False
        self._f: Any = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._f = io.BytesIO(source)
            self._own = True
        elif isinstance(source, (str, os.PathLike)):
            self._f = open(source, "rb")
            self._own = True
        elif hasattr(source, "read") and hasattr(source, "seek"):
            self._f = source
            if hasattr(source, "seekable") and not source.seekable():
                raise TypeError("HsimReader needs a seekable binary stream")
        else:
            raise TypeError(f"HsimReader needs a path, a binary stream or bytes, got {type(source).__name__}")
        try:
            self._base = self._f.tell()
            end = self._f.seek(0, os.SEEK_END)
            self.file_size: int = end - self._base
            self.limits = limits
            layout = _parse(self._read_at, self.file_size, limits)
        except BaseException:
            self.close()
            raise
        self._layout = layout
        self.header: dict = layout.header
        self.version: tuple[int, int] = layout.version
        self.section_names: list[str] = list(layout.spans)

    # -- internals
    def _read_at(self, offset: int, n: int) -> bytes:
        self._f.seek(self._base + offset)
        data = self._f.read(n)
        if data is None or len(data) != n:
            got = 0 if data is None else len(data)
            raise HsimTruncatedError(
                f"truncated at byte {offset + got}: expected {n} bytes at byte {offset}, "
                f"read {got} (file changed while open?)"
            )
        return data

    # -- public
    @property
    def section_spans(self) -> dict[str, tuple[int, int]]:
        """Section name -> (byte offset in the file, length)."""
        return {name: (off, length) for name, (off, length, _) in self._layout.spans.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._layout.spans

    def section(self, name: str) -> bytes:
        """Read one section (seek + one read) and check its CRC32C."""
        span = self._layout.spans.get(name)
        if span is None:
            have = ", ".join(repr(n) for n in self.section_names[:20])
            raise HsimHeaderError(f"no section named {name!r} in the section index (have: {have})")
        off, length, _ = span
        data = self._read_at(off, length)
        _check_section(name, data, span)
        return data

    def verify(self) -> None:
        """Stream the whole file in chunks; check the header, every section and the trailer CRC."""
        layout = self._layout
        total = 0
        head_len = PREAMBLE_SIZE + layout.header_len
        head = self._read_at(0, head_len)
        total = _crc32c.crc32c(head, total)
        got = _crc32c.crc32c(head[PREAMBLE_SIZE:])
        (stored_hcrc,) = struct.unpack_from("<I", head, 16)
        if got != stored_hcrc:
            raise HsimChecksumError(
                f"checksum mismatch in header (bytes {PREAMBLE_SIZE}..{head_len}): file changed while open?"
            )
        for name, span in layout.spans.items():
            off, length, crc = span
            sec = 0
            pos = off
            while pos < off + length:
                n = min(_CHUNK, off + length - pos)
                chunk = self._read_at(pos, n)
                sec = _crc32c.crc32c(chunk, sec)
                total = _crc32c.crc32c(chunk, total)
                pos += n
            if sec != crc:
                raise HsimChecksumError(
                    f"checksum mismatch in section {name!r} (bytes {off}..{off + length}): "
                    f"stored {crc:#010x}, computed {sec:#010x}"
                )
        end = layout.payload_end
        (stored,) = _TRAILER.unpack(self._read_at(end, TRAILER_SIZE))
        _check_trailer(stored, total, end)

    def close(self) -> None:
        """Close the underlying file if this reader opened it."""
        if self._own and self._f is not None:
            self._f.close()
        self._f = None if self._own else self._f
        self._own = False

    def __enter__(self) -> HsimReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"HsimReader(version={self.version[0]}.{self.version[1]}, size={self.file_size}, "
            f"sections={len(self.section_names)})"
        )

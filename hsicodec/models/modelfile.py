"""Base-model files (``.hsmodel``): named arrays + config + model card, no pickle.

Layout (all integers little-endian)::

    offset 0   magic     8 bytes  b"\\x89HSMODL\\n"
    offset 8   major     u16      1
    offset 10  minor     u16      0
    offset 12  L         u32      length of the msgpack header
    offset 16  header    L bytes  msgpack map {"arrays": ..., "config": ..., "card": ...}
               padding   zero bytes up to the next multiple of 64 (= data start)
    data start arrays    raw C-order little-endian bytes; each array at a 64-byte
                         aligned offset (relative to the data start), zero padding
                         between arrays and after the last one, so the file length
                         is a multiple of 64.

``header["arrays"]`` maps an array name to ``{"dtype", "shape", "offset", "nbytes"}``.
``header["config"]`` (network architecture, quantisation prior, ...) and
``header["card"]`` (human model card: alias, description, training scenes, ...) are
maps that this module does not interpret, except ``card["alias"]`` which, when
present, must be a short name (letters, digits, ``._-``; not a bare hex string of 8+
characters, which would read as a hash prefix).

The encoder is deterministic: arrays are laid out in sorted name order and every
map in config/card is written with sorted keys, so the same content always gives
the same bytes and hence the same sha256 (the model id).

The reader is strict and bounded (see :class:`ModelLimits`): every size is checked
before anything is allocated, the data region must be exactly covered by the
declared arrays plus zero padding, and nothing is ever evaluated or unpickled.
Every failure raises :class:`hsicodec.errors.ModelFormatError` naming the key or
array and the byte offset.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from hsicodec.errors import ModelError, ModelFormatError, ModelNotFoundError
from hsicodec.format.boundedpack import unpackb_bounded
from hsicodec.io.atomic import PathLike, check_writable, write_bytes_atomic

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "EXTENSION",
    "ALIGN",
    "ALLOWED_DTYPES",
    "ModelLimits",
    "DEFAULT_LIMITS",
    "ModelFile",
    "encode_model",
    "decode_model",
    "save_model",
    "load_model",
    "read_model_bytes",
    "sha256_bytes",
    "check_alias",
]

MAGIC = b"\x89HSMODL\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
EXTENSION = ".hsmodel"
ALIGN = 64
_PREAMBLE = struct.Struct("<8sHHI")  # magic, major, minor, header length
PREAMBLE_SIZE = _PREAMBLE.size  # 16

#: dtype name in the header -> little-endian numpy dtype
ALLOWED_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
    )
}
_DTYPE_NAME_BY_KIND = {(dt.kind, dt.itemsize): name for name, dt in ALLOWED_DTYPES.items()}

_HEADER_KEYS = ("arrays", "config", "card")
_ARRAY_KEYS = frozenset(("dtype", "shape", "offset", "nbytes"))
_ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_HEX_RE = re.compile(r"[0-9a-fA-F]{8,}\Z")
_MAX_NESTING = 64


@dataclass(frozen=True)
class ModelLimits:
    """Reader (and writer) bounds; anything larger is refused before allocation."""

    max_header_bytes: int = 1 << 20  # 1 MiB of msgpack header
    max_arrays: int = 4096
    max_ndim: int = 8
    max_total_bytes: int = 512 << 20  # sum of array nbytes
    max_name_len: int = 256

    @property
    def max_file_bytes(self) -> int:
        """Largest possible valid file under these limits (preamble, header, padding, data)."""
        return _align(PREAMBLE_SIZE + self.max_header_bytes) + self.max_total_bytes + ALIGN * (self.max_arrays + 1)


DEFAULT_LIMITS = ModelLimits()


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def sha256_bytes(data: bytes) -> str:
    """Lower-case hex sha256 of ``data`` (the id of a model file)."""
    return hashlib.sha256(data).hexdigest()


def check_alias(alias: Any, where: str = "card['alias']") -> str:
    """Validate a model alias; return it or raise ModelFormatError."""
    if not isinstance(alias, str):
        raise ModelFormatError(f"{where} must be a string, got {type(alias).__name__}")
    if not _ALIAS_RE.match(alias):
        raise ModelFormatError(
            f"{where} {alias!r} is not a valid alias (1-64 characters from A-Z a-z 0-9 . _ -,"
            " starting with a letter or digit)"
        )
    if _HEX_RE.match(alias):
        raise ModelFormatError(
            f"{where} {alias!r} looks like a sha256 prefix; an alias must not be a bare hex string"
            " of 8 or more characters"
        )
    return alias


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A decoded base-model file. Arrays are read-only, native-endian."""

    config: dict
    card: dict
    arrays: dict[str, np.ndarray]
    sha256: str

    @property
    def alias(self) -> str | None:
        a = self.card.get("alias")
        return a if isinstance(a, str) and a else None

    def __repr__(self) -> str:  # arrays can be big: keep the repr short
        return f"ModelFile(sha256={self.sha256[:12]}..., alias={self.alias!r}, arrays={sorted(self.arrays)})"


# --------------------------------------------------------------------- encode


def _canonical(value: Any, where: str, depth: int = 0) -> Any:
    """Convert config/card values to plain msgpack types with sorted map keys."""
    if depth > _MAX_NESTING:
        raise ModelFormatError(f"{where}: nested deeper than {_MAX_NESTING} levels")
    if value is None or isinstance(value, (bool, str, bytes)):
        return value
    if isinstance(value, int):
        if not -(1 << 63) <= value < (1 << 64):
            raise ModelFormatError(f"{where}: integer {value} does not fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _canonical(value.item(), where, depth)
    if isinstance(value, Mapping):
        out = {}
        for k in value:
            if not isinstance(k, str):
                raise ModelFormatError(f"{where}: map key {k!r} is not a string")
        for k in sorted(value):
            out[k] = _canonical(value[k], f"{where}[{k!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise ModelFormatError(
        f"{where}: values of type {type(value).__name__} cannot be stored in a model file"
        " (use None, bool, int, float, str, bytes, lists and string-keyed maps;"
        " put arrays in `arrays`)"
    )


def _check_name(name: Any, limits: ModelLimits, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ModelFormatError(f"{where}: array name {name!r} must be a non-empty string")
    if len(name) > limits.max_name_len:
        raise ModelFormatError(f"{where}: array name {name[:40]!r}... longer than {limits.max_name_len}")
    return name


def encode_model(
    arrays: Mapping[str, np.ndarray],
    config: Mapping,
    card: Mapping,
    limits: ModelLimits = DEFAULT_LIMITS,
) -> bytes:
    """Serialise arrays + config + card into model-file bytes (deterministic)."""
    if not isinstance(arrays, Mapping):
        raise ModelFormatError("arrays must be a mapping name -> numpy array")
    if not isinstance(config, Mapping):
        raise ModelFormatError("config must be a mapping")
    if not isinstance(card, Mapping):
        raise ModelFormatError("card must be a mapping")
    if len(arrays) > limits.max_arrays:
        raise ModelFormatError(f"{len(arrays)} arrays exceed the limit of {limits.max_arrays}")
    if "alias" in card:
        check_alias(card["alias"])
    for name in arrays:
        _check_name(name, limits, "arrays")

    entries: dict[str, dict] = {}
    blobs = []
    pos = 0
    total = 0
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        key = (a.dtype.kind, a.dtype.itemsize)
        dname = _DTYPE_NAME_BY_KIND.get(key)
        if dname is None or a.dtype.fields is not None:
            raise ModelFormatError(
                f"array {name!r}: dtype {a.dtype} is not allowed (allowed: {', '.join(ALLOWED_DTYPES)})"
            )
        if a.ndim > limits.max_ndim:
            raise ModelFormatError(f"array {name!r}: {a.ndim} dimensions exceed the limit of {limits.max_ndim}")
        raw = a.astype(ALLOWED_DTYPES[dname], copy=False).tobytes(order="C")
        total += len(raw)
        if total > limits.max_total_bytes:
            raise ModelFormatError(f"arrays exceed the limit of {limits.max_total_bytes} bytes in total")
        offset = _align(pos)
        if raw:
            blobs.append((offset, raw))
            pos = offset + len(raw)
        entries[name] = {
            "dtype": dname,
            "shape": [int(d) for d in a.shape],
            "offset": offset if raw else _align(pos),
            "nbytes": len(raw),
        }

    header_obj = {
        "arrays": entries,
        "card": _canonical(card, "card"),
        "config": _canonical(config, "config"),
    }
    try:
        header = msgpack.packb(header_obj, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as e:  # pragma: no cover - _canonical catches these
        raise ModelFormatError(f"cannot encode the model header: {e}") from None
    if len(header) > limits.max_header_bytes:
        raise ModelFormatError(
            f"model header is {len(header)} bytes, over the limit of {limits.max_header_bytes} (config/card too large?)"
        )
    data_start = _align(PREAMBLE_SIZE + len(header))
    out = bytearray(data_start + _align(pos))
    _PREAMBLE.pack_into(out, 0, MAGIC, FORMAT_MAJOR, FORMAT_MINOR, len(header))
    out[PREAMBLE_SIZE : PREAMBLE_SIZE + len(header)] = header
    for offset, raw in blobs:
        out[data_start + offset : data_start + offset + len(raw)] = raw
    return bytes(out)


# --------------------------------------------------------------------- decode


def _is_int(x: Any) -> bool:
    return type(x) is int  # not bool


def _check_zero(buf: bytes, start: int, end: int, what: str) -> None:
    if end > start and buf.count(0, start, end) != end - start:
        raise ModelFormatError(f"non-zero bytes in {what} at offset {start}..{end}")


def _parse_array_entry(name: Any, spec: Any, limits: ModelLimits, hdr_off: int):
    where = f"header['arrays'][{name!r}] (header at offset {hdr_off})"
    _check_name(name, limits, "header['arrays']")
    if not isinstance(spec, dict):
        raise ModelFormatError(f"{where} must be a map, got {type(spec).__name__}")
    keys = set(spec)
    if keys != _ARRAY_KEYS:
        missing = sorted(_ARRAY_KEYS - keys)
        extra = sorted(map(str, keys - _ARRAY_KEYS))
        raise ModelFormatError(f"{where}: missing keys {missing}, unknown keys {extra}")
    dname = spec["dtype"]
    if not isinstance(dname, str) or dname not in ALLOWED_DTYPES:
        raise ModelFormatError(f"{where}: dtype {dname!r} is not allowed (allowed: {', '.join(ALLOWED_DTYPES)})")
    dtype = ALLOWED_DTYPES[dname]
    shape = spec["shape"]
    if not isinstance(shape, list):
        raise ModelFormatError(f"{where}: shape must be a list of integers")
    if len(shape) > limits.max_ndim:
        raise ModelFormatError(f"{where}: {len(shape)} dimensions exceed the limit of {limits.max_ndim}")
    count = 1
    for d in shape:
        if not _is_int(d) or d < 0:
            raise ModelFormatError(f"{where}: shape {shape!r} has an invalid dimension {d!r}")
        if d > limits.max_total_bytes:
            raise ModelFormatError(f"{where}: dimension {d} exceeds the limit of {limits.max_total_bytes}")
        count *= d  # python ints: exact, and bounded (<= 8 factors of <= 2**29)
    offset, nbytes = spec["offset"], spec["nbytes"]
    if not _is_int(offset) or offset < 0:
        raise ModelFormatError(f"{where}: offset {offset!r} must be a non-negative integer")
    if not _is_int(nbytes) or nbytes < 0:
        raise ModelFormatError(f"{where}: nbytes {nbytes!r} must be a non-negative integer")
    if nbytes != count * dtype.itemsize:
        raise ModelFormatError(
            f"{where}: nbytes {nbytes} != prod(shape {shape}) * itemsize {dtype.itemsize} = {count * dtype.itemsize}"
        )
    if offset % ALIGN:
        raise ModelFormatError(f"{where}: offset {offset} is not a multiple of {ALIGN}")
    return dtype, tuple(shape), count, offset, nbytes


def decode_model(data: bytes, limits: ModelLimits = DEFAULT_LIMITS) -> ModelFile:
    """Parse and validate model-file bytes. Raises ModelFormatError on any defect."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"decode_model expects bytes, got {type(data).__name__}")
    n = len(data)
    if n > limits.max_file_bytes:
        raise ModelFormatError(f"model file is {n} bytes, over the limit of {limits.max_file_bytes}")
    if n < PREAMBLE_SIZE:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            raise ModelFormatError("not a model file: bad magic at offset 0")
        raise ModelFormatError(f"truncated model file: {n} bytes, the preamble needs {PREAMBLE_SIZE} (offset 0)")
    magic, major, minor, hlen = _PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise ModelFormatError(f"not a model file: bad magic {magic!r} at offset 0 (expected {MAGIC!r})")
    if major != FORMAT_MAJOR:
        raise ModelFormatError(
            f"unsupported model format version {major}.{minor} at offset 8 (this reader knows {FORMAT_MAJOR}.x)"
        )
    if hlen > limits.max_header_bytes:
        raise ModelFormatError(f"header length {hlen} at offset 12 exceeds the limit of {limits.max_header_bytes}")
    if hlen == 0:
        raise ModelFormatError("header length at offset 12 is 0")
    hend = PREAMBLE_SIZE + hlen
    data_start = _align(hend)
    if hend > n:
        raise ModelFormatError(f"truncated model file: header ends at offset {hend}, file has {n} bytes")
    if data_start > n:
        raise ModelFormatError(f"truncated model file: header padding ends at offset {data_start}, file has {n} bytes")
    try:
        header = unpackb_bounded(data[PREAMBLE_SIZE:hend])
    except Exception as e:  # msgpack raises several types (ExtraData, ValueError, ...)
        raise ModelFormatError(f"invalid msgpack header at offset {PREAMBLE_SIZE}: {type(e).__name__}: {e}") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"header at offset {PREAMBLE_SIZE} must be a map, got {type(header).__name__}")
    for key in _HEADER_KEYS:
        if key not in header:
            raise ModelFormatError(f"header at offset {PREAMBLE_SIZE}: missing key {key!r}")
        if not isinstance(header[key], dict):
            raise ModelFormatError(
                f"header[{key!r}] at offset {PREAMBLE_SIZE} must be a map, got {type(header[key]).__name__}"
            )
    if minor == FORMAT_MINOR:  # later minors may add optional keys; 1.0 files may not
        extra = sorted(map(str, set(header) - set(_HEADER_KEYS)))
        if extra:
            raise ModelFormatError(f"header at offset {PREAMBLE_SIZE}: unknown keys {extra}")
    card, config, specs = header["card"], header["config"], header["arrays"]
    if "alias" in card:
        check_alias(card["alias"], "header['card']['alias']")
    _check_zero(data, hend, data_start, "header padding")

    if len(specs) > limits.max_arrays:
        raise ModelFormatError(f"header declares {len(specs)} arrays, over the limit of {limits.max_arrays}")
    region = n - data_start
    parsed = {}
    total = 0
    for name, spec in specs.items():
        dtype, shape, count, offset, nbytes = _parse_array_entry(name, spec, limits, PREAMBLE_SIZE)
        total += nbytes
        if total > limits.max_total_bytes:
            raise ModelFormatError(f"arrays exceed the limit of {limits.max_total_bytes} bytes in total")
        if offset + nbytes > region:
            raise ModelFormatError(
                f"array {name!r}: bytes {data_start + offset}..{data_start + offset + nbytes}"
                f" extend past the end of the file ({n} bytes; truncated?)"
            )
        parsed[name] = (dtype, shape, count, offset, nbytes)

    # Coverage: non-empty arrays sorted by offset must tile the data region, each at
    # the next aligned offset after the previous one, with zero padding only.
    pos = 0
    prev = None
    for name, (_, _, _, offset, nbytes) in sorted(
        ((k, v) for k, v in parsed.items() if v[4] > 0), key=lambda kv: (kv[1][3], kv[0])
    ):
        if offset < pos:
            raise ModelFormatError(
                f"array {name!r} at offset {data_start + offset} overlaps array {prev!r}"
                f" (which ends at offset {data_start + pos})"
            )
        if offset != _align(pos):
            raise ModelFormatError(
                f"unreferenced bytes at offset {data_start + pos}..{data_start + offset} before array {name!r}"
            )
        _check_zero(data, data_start + pos, data_start + offset, f"padding before array {name!r}")
        pos = offset + nbytes
        prev = name
    end = _align(pos)
    if region < end:
        raise ModelFormatError(
            f"truncated model file: padding after array {prev!r} should end at offset {data_start + end},"
            f" file has {n} bytes"
        )
    if region > end:
        raise ModelFormatError(f"trailing bytes after the last array: offset {data_start + end}..{n} is not referenced")
    _check_zero(data, data_start + pos, n, "final padding")

    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, shape, count, offset, _nbytes) in sorted(parsed.items()):
        if count == 0:
            arr = np.zeros(shape, dtype=dtype.newbyteorder("="))
        else:
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=data_start + offset).reshape(shape)
            if not arr.dtype.isnative or not arr.flags.aligned:
                arr = arr.astype(dtype.newbyteorder("="))
        arr.flags.writeable = False
        arrays[name] = arr
    return ModelFile(config=config, card=card, arrays=arrays, sha256=sha256_bytes(data))


# --------------------------------------------------------------------- files


def read_model_bytes(path: PathLike, limits: ModelLimits = DEFAULT_LIMITS) -> bytes:
    """Read a model file, refusing files larger than any valid model before reading.

    FileNotFoundError -> ModelNotFoundError; other OS errors -> ModelError.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise ModelFormatError(f"{p}: {size} bytes, over the model-file limit of {limits.max_file_bytes}")
            data = f.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise ModelNotFoundError(f"model file {p} not found") from None
    except IsADirectoryError:
        raise ModelError(f"{p} is a directory, not a model file") from None
    except OSError as e:
        raise ModelError(f"cannot read model file {p}: {e.strerror or e}") from None
    if len(data) > limits.max_file_bytes:
        raise ModelFormatError(f"{p}: over the model-file limit of {limits.max_file_bytes} bytes")
    return data


def load_model(path: PathLike, limits: ModelLimits = DEFAULT_LIMITS) -> ModelFile:
    """Read and validate a model file. The error message names the file."""
    data = read_model_bytes(path, limits)
    try:
        return decode_model(data, limits)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None


def save_model(
    path: PathLike,
    arrays: Mapping[str, np.ndarray],
    config: Mapping,
    card: Mapping,
    force: bool = False,
) -> str:
    """Encode and write a model file atomically; return its sha256 (the model id)."""
    check_writable(path, force)  # fail before the (possibly slow) encode
    data = encode_model(arrays, config, card)
    write_bytes_atomic(path, data, force=force)
    return sha256_bytes(data)

"""Exception hierarchy of hsicodec.

Every error a user can cause (bad file, bad option, missing model) is a
subclass of :class:`HsicodecError`, so the CLI can turn it into one line on
stderr and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations


class HsicodecError(Exception):
    """Base class of every error hsicodec raises on purpose."""


# --- .hsim container -------------------------------------------------------


class HsimError(HsicodecError):
    """A `.hsim` file is malformed, corrupt, unsupported or exceeds a limit.

    Messages say what is wrong and where (byte offset or header key).
    """


class HsimTruncatedError(HsimError):
    """The file ends before a structure it declares."""


class HsimMagicError(HsimError):
    """The file does not start with the `.hsim` magic bytes."""


class HsimVersionError(HsimError):
    """The file's major format version is not one this reader knows."""


class HsimChecksumError(HsimError):
    """A checksum over the header, a section or the whole file does not match."""


class HsimLimitError(HsimError):
    """A declared size or count exceeds a reader limit (refused before allocation)."""


class HsimHeaderError(HsimError):
    """A header key is missing, has the wrong type, or an invalid value."""


# --- base models -----------------------------------------------------------


class ModelError(HsicodecError):
    """A base-model file is malformed, missing or does not match its hash."""


class ModelFormatError(ModelError):
    """A base-model file is not a valid model file (bad magic, shapes, dtypes...)."""


class ModelNotFoundError(ModelError):
    """No registry location holds a model with the requested id or alias."""


class ModelHashMismatchError(ModelError):
    """A model file's bytes do not hash to the sha256 it is looked up by."""


# --- everything else -------------------------------------------------------


class RasterError(HsicodecError):
    """An input raster cannot be read, or an output raster cannot be written."""


class OptionError(HsicodecError):
    """An option or argument is invalid (bad window, bad rate target, ...)."""


class OutputExistsError(HsicodecError):
    """The output path exists and overwriting was not requested (``force``)."""


class TrainingError(HsicodecError):
    """Meta-training cannot run with the given data or configuration."""


class RemoteError(HsicodecError, OSError):
    """A remote source (URL) cannot be read consistently: an HTTP error, a timeout, a dropped
    connection, a response that is not the requested byte range, or a file that changed between
    requests. Raised instead of ever decoding bytes that may be wrong."""


class BackendError(HsicodecError, RuntimeError):
    """A compute backend that was asked for explicitly cannot run here (e.g. "cuda" without a GPU)."""


def header_int(m: dict, where: str, key: str, lo: int, hi: int) -> int:
    """``m[key]`` if it is an int in lo..hi, else HsimHeaderError naming ``where.key``."""
    v = m.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise HsimHeaderError(f"header key '{where}.{key}': expected an int in {lo}..{hi}, got {v!r}")
    return v

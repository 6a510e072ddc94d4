"""numcodecs / zarr codec: every chunk is stored as a complete `.hsim` file.

``HsimCodec`` is a :class:`numcodecs.abc.Codec` (``codec_id = "hsim"``,
registered through the ``numcodecs.codecs`` entry point). It is lossy, so it
needs the chunk as an array: ``encode`` takes a (rows, cols, bands) or
(rows, cols) numeric array and ``decode`` gives it back with the same shape,
dtype and memory order (the `.hsim` header carries them).

zarr 3 (format 3) takes it as the array → bytes ``serializer``:
:class:`HsimZarr3Codec` (metadata name ``numcodecs.hsim``) wraps it through zarr's
numcodecs compatibility layer (``zarr.codecs.numcodecs``) and fills ``nodata``
with the array's fill value, so the padding of partial edge chunks is masked
(restored exactly) instead of being fitted. zarr format 2 takes ``HsimCodec``
itself as the ``compressor``. Rate and quality targets apply per chunk.

Chunks whose values are all equal (or all NaN / nodata) are stored exactly as a
fully masked `.hsim` file, whatever the target.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from hsicodec.codec.api import compress, decompress
from hsicodec.codec.mask import encode_mask, invalid_mask
from hsicodec.coding.shared import SHARED_K, PixelMoments, SharedSpectral
from hsicodec.errors import HsimHeaderError, OptionError
from hsicodec.format.container import HsimReader, decode_hsim, encode_hsim

__all__ = ["HsimCodec"]

_EFFORTS = ("fast", "default", "max")
# header tags that restore what the .hsim header does not hold itself
_TAG_SHAPE, _TAG_DTYPE, _TAG_ORDER = "hsim_codec.shape", "hsim_codec.dtype", "hsim_codec.order"
_TAG_CROP = "hsim_codec.crop"  # "row0,col0,rows,cols,fill": only the valid values' bounding box is coded
_STORED_DTYPES = frozenset(
    ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"]
)


def _number(name: str, value: Any) -> float | None:
    """A positive finite float option (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptionError(f"HsimCodec: {name} must be a number, got {value!r}")
    if not (math.isfinite(float(value)) and value > 0):
        raise OptionError(f"HsimCodec: {name} must be a positive finite number, got {value!r}")
    return float(value)


class HsimCodec(Codec):
    """Hyperspectral codec for (rows, cols, bands) chunks, lossy, error-bounded or lossless; see the module docstring.

    ``bpppb`` (bits per value), ``psnr`` (dB) or ``max_error`` (every value within it, in the
    array's units; 0: lossless, integer arrays) is the per-chunk target (none: 0.05 bpppb);
    ``model`` a model id/alias (None: the better bundled model per chunk); ``effort`` "fast",
    "default", "max" or 0..100; ``nodata`` a value kept exactly as a mask (NaN and ±Inf always
    are); ``threads`` for the encoder and decoder (0: all cores). ``spectral``: a spectral stage
    shared by every chunk, stored once in this configuration (:meth:`with_shared_basis` fits one on a
    sample of the array; :mod:`hsicodec.coding.shared`): small chunks then carry no mean and basis of
    their own, and decode only with this configuration.
    """

    codec_id = "hsim"

    def __init__(
        self,
        bpppb: float | None = None,
        psnr: float | None = None,
        model: str | None = None,
        effort: str | int = "default",
        nodata: float | None = None,
        threads: int = 0,
        max_error: float | None = None,
        spectral: dict | None = None,
    ) -> None:
        self.bpppb = _number("bpppb", bpppb)
        self.psnr = _number("psnr", psnr)
        self.max_error = None if max_error is None else float(max_error)
        if self.max_error is not None and (isinstance(max_error, bool) or not self.max_error >= 0):
            raise OptionError(f"HsimCodec: max_error must be a number >= 0, got {max_error!r}")
        if sum(v is not None for v in (self.bpppb, self.psnr, self.max_error)) > 1:
            raise OptionError("HsimCodec: give either a bpppb, a psnr or a max_error target, not both")
        if model is not None and not isinstance(model, str):
            raise OptionError(f"HsimCodec: model must be a model id or alias (str) or None, got {model!r}")
        self.model = model
        if isinstance(effort, bool) or not (effort in _EFFORTS or (isinstance(effort, int) and 0 <= effort <= 100)):
            raise OptionError(f"HsimCodec: effort must be fast, default, max or 0..100, not {effort!r}")
        self.effort = effort
        if nodata is not None:
            if isinstance(nodata, bool) or not isinstance(nodata, (int, float, np.integer, np.floating)):
                raise OptionError(f"HsimCodec: nodata must be a number, got {nodata!r}")
            nodata = nodata.item() if isinstance(nodata, np.generic) else nodata
        self.nodata = nodata
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise OptionError(f"HsimCodec: threads must be an int >= 0, got {threads!r}")
        self.threads = threads
        self.spectral = None if spectral is None else dict(spectral)
        self._shared = None if spectral is None else SharedSpectral.from_config(spectral)

    @classmethod
    def with_shared_basis(cls, sample: np.ndarray, k: int = SHARED_K, **config: Any) -> HsimCodec:
        """A codec whose chunks share one spectral stage: the PCA (``k`` components) of ``sample``, a
        (rows, cols, bands) array of the data (the whole array, or a representative part of it)."""
        cube = np.asarray(sample)
        if cube.ndim != 3 or 0 in cube.shape:
            raise OptionError(f"HsimCodec.with_shared_basis: expected a (rows, cols, bands) sample, got {cube.shape}")
        moments = PixelMoments(cube.shape[2])
        moments.add(cube, invalid_mask(cube, config.get("nodata")))
        return cls(spectral=moments.fit(k).to_config(), **config)

    def get_config(self) -> dict:
        """JSON-able configuration; ``from_config`` / ``numcodecs.get_codec`` rebuild the codec."""
        return {
            "id": self.codec_id,
            "bpppb": self.bpppb,
            "psnr": self.psnr,
            "model": self.model,
            "effort": self.effort,
            "nodata": self.nodata,
            "threads": self.threads,
            "max_error": self.max_error,
            **({"spectral": self.spectral} if self.spectral is not None else {}),
        }

    @classmethod
    def from_config(cls, config: dict) -> HsimCodec:
        """Inverse of :meth:`get_config` (the ``id`` key is optional)."""
        config = dict(config)
        codec_id = config.pop("id", cls.codec_id)
        if codec_id != cls.codec_id:
            raise OptionError(f"HsimCodec: config is for codec {codec_id!r}, not 'hsim'")
        known = {"bpppb", "psnr", "model", "effort", "nodata", "threads", "max_error", "spectral"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise OptionError(f"HsimCodec: unknown config keys {unknown} (known: {sorted(known)})")
        return cls(**config)

    # -- encode
    def encode(self, buf: Any) -> bytes:
        """A (rows, cols, bands) or (rows, cols) numeric array → the bytes of a `.hsim` file."""
        arr = _chunk_array(buf)
        tags: dict[str, str] = {}
        if arr.ndim == 2:
            tags[_TAG_SHAPE] = ",".join(str(v) for v in arr.shape)
        if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
            tags[_TAG_ORDER] = "F"
        native = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
        if native.name not in _STORED_DTYPES:  # float16: stored as float32
            native = np.dtype(np.float32)
        if native != arr.dtype:
            tags[_TAG_DTYPE] = arr.dtype.str
        cube = np.ascontiguousarray(arr.reshape(arr.shape[0], arr.shape[1], -1), dtype=native)
        uniform = _uniform_value(cube, self.nodata)
        if uniform is not None:
            return self._encode_uniform(cube, uniform, tags)
        mask = invalid_mask(cube, self.nodata)
        if mask is not None:  # e.g. the padding of a partial edge chunk: code the valid box only
            rows, cols = np.flatnonzero(~mask.all(axis=(1, 2))), np.flatnonzero(~mask.all(axis=(0, 2)))
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            if (r1 - r0, c1 - c0) != cube.shape[:2]:
                fill = float(self.nodata) if self.nodata is not None else float("nan")
                tags[_TAG_CROP] = f"{r0},{c0},{cube.shape[0]},{cube.shape[1]},{fill!r}"
                cube = np.ascontiguousarray(cube[r0:r1, c0:c1])
        try:
            return compress(
                cube,
                model=self.model,
                bpppb=self.bpppb,
                psnr=self.psnr,
                max_error=self.max_error,
                effort=self.effort,
                threads=self.threads,
                nodata=self.nodata,
                tags=tags or None,
                shared_spectral=self._shared_for(cube),
            )
        except OptionError:
            if self.psnr is None or (self.model in (None, "auto") and self.effort == "max"):
                raise
            # a quality target the chosen model misses on this chunk (e.g. a mostly padded edge
            # chunk): every bundled model at the highest effort before giving up
            return compress(
                cube,
                model=None,
                psnr=self.psnr,
                effort="max",
                threads=self.threads,
                nodata=self.nodata,
                tags=tags or None,
            )

    def _shared_for(self, cube: np.ndarray) -> SharedSpectral | None:
        """The shared stage for a chunk of this many bands (a stage of other bands: an OptionError)."""
        if self._shared is not None and self._shared.n_bands != cube.shape[2]:
            raise OptionError(
                f"HsimCodec: the shared spectral stage has {self._shared.n_bands} bands, the chunk {cube.shape[2]}"
            )
        return self._shared

    def _encode_uniform(self, cube: np.ndarray, value: float, tags: dict) -> bytes:
        """An exact file for a chunk of one value: any base file of the shape, fully masked."""
        base = decode_hsim(
            compress(
                np.ones(cube.shape, cube.dtype),
                model=self.model,
                psnr=20.0,
                effort="fast",
                threads=self.threads,
                tags=tags or None,
            )
        )
        header = {k: v for k, v in base.header.items() if k != "sections"}
        header["mask"] = {"fill": value}
        sections = list(base.sections.items()) + [("m", encode_mask(np.ones(cube.shape, bool)))]
        return encode_hsim(header, sections)

    # -- decode
    def decode(self, buf: Any, out: np.ndarray | None = None) -> np.ndarray:
        """`.hsim` bytes → the array ``encode`` was given (same shape, dtype and order); fills ``out`` if given."""
        data = ensure_contiguous_ndarray(buf).view(np.uint8).tobytes()
        with HsimReader(data) as reader:
            cube, _ = decompress(reader, threads=self.threads, shared_spectral=self._shared)
            tags = reader.header.get("tags") or {}
        arr = _restore(_uncrop(cube, tags), tags)
        if out is not None:
            return ndarray_copy(arr, out)
        return arr


def _chunk_array(buf: Any) -> np.ndarray:
    """The chunk as a numeric ndarray of 2 or 3 dimensions, else a clear OptionError."""
    if isinstance(buf, (bytes, bytearray)):
        raise OptionError(
            "HsimCodec.encode needs the chunk as an array with its shape, got raw bytes "
            "(a lossy codec cannot be a bytes → bytes compressor after other codecs)"
        )
    arr = np.asarray(buf)
    if arr.dtype.kind not in "uif":
        raise OptionError(f"HsimCodec: unsupported dtype {arr.dtype} (integer or float data only)")
    if arr.ndim not in (2, 3):
        raise OptionError(f"HsimCodec: expected a (rows, cols, bands) or (rows, cols) chunk, got shape {arr.shape}")
    if arr.size == 0:
        raise OptionError(f"HsimCodec: cannot encode an empty chunk of shape {arr.shape}")
    return arr


def _uniform_value(cube: np.ndarray, nodata: float | None) -> float | None:
    """The fill of a chunk holding one value only (NaN / nodata when every value is invalid), else None."""
    mask = invalid_mask(cube, nodata)
    if mask is not None and mask.all():
        return float(nodata) if nodata is not None else float("nan")
    if mask is not None:
        return None
    first = cube.flat[0]
    value = first.item()
    if not np.all(cube == first) or float(value) != value:  # huge int64 values: not exact as a float fill
        return None
    return float(value)


def _uncrop(cube: np.ndarray, tags: Any) -> np.ndarray:
    """Place a cropped chunk back into its full extent, the rest filled as ``encode`` recorded."""
    if not isinstance(tags, dict) or _TAG_CROP not in tags:
        return cube
    try:
        *box, fill = str(tags[_TAG_CROP]).split(",")
        r0, c0, rows, cols = (int(v) for v in box)
        fill_value = float(fill)
    except ValueError as exc:
        raise HsimHeaderError(f"header key 'tags.{_TAG_CROP}': {exc}") from None
    if not (
        0 <= r0
        and 0 <= c0
        and r0 + cube.shape[0] <= rows
        and c0 + cube.shape[1] <= cols
        and rows * cols * cube.shape[2] <= 1 << 31
    ):
        raise HsimHeaderError(f"header key 'tags.{_TAG_CROP}': box does not fit the decoded chunk")
    if cube.dtype.kind != "f" and not np.isfinite(fill_value):
        fill_value = 0.0
    out = np.full((rows, cols, cube.shape[2]), fill_value, dtype=cube.dtype)
    out[r0 : r0 + cube.shape[0], c0 : c0 + cube.shape[1]] = cube
    return out


def _restore(cube: np.ndarray, tags: Any) -> np.ndarray:
    """Undo what ``encode`` recorded in the tags: 2-D shape, original dtype, Fortran order."""
    if not isinstance(tags, dict):
        raise HsimHeaderError("header key 'tags': expected a map")
    arr = cube
    if _TAG_SHAPE in tags:
        try:
            shape = tuple(int(v) for v in str(tags[_TAG_SHAPE]).split(","))
            arr = arr.reshape(shape)
        except ValueError as exc:
            raise HsimHeaderError(f"header key 'tags.{_TAG_SHAPE}': {exc}") from None
    if _TAG_DTYPE in tags:
        try:
            dtype = np.dtype(str(tags[_TAG_DTYPE]))
        except TypeError as exc:
            raise HsimHeaderError(f"header key 'tags.{_TAG_DTYPE}': {exc}") from None
        arr = arr.astype(dtype)
    if tags.get(_TAG_ORDER) == "F":
        arr = np.asfortranarray(arr)
    return arr


# --------------------------------------------------------------------------- zarr 3

try:  # zarr >= 3.1.3: numcodecs compatibility layer (numcodecs.zarr3 is deprecated in its favour)
    from zarr.codecs.numcodecs import _NumcodecsArrayBytesCodec
    from zarr.registry import register_codec as _register_zarr_codec
except ImportError:  # no zarr, or zarr 2: HsimCodec still works as a numcodecs / zarr 2 compressor
    _NumcodecsArrayBytesCodec = None  # type: ignore[misc,assignment]  # optional zarr 3 base class

if _NumcodecsArrayBytesCodec is not None:

    class HsimZarr3Codec(_NumcodecsArrayBytesCodec, codec_name="hsim"):  # type: ignore[misc,valid-type]
        """zarr 3 array → bytes codec (``serializer=``) running :class:`HsimCodec` on each chunk.

        Takes the same options as HsimCodec; ``nodata`` defaults to the array's
        (finite) fill value so padded edge chunks are masked, not fitted.
        """

        def __init__(self, **codec_config: Any) -> None:
            HsimCodec.from_config(codec_config)  # validate the options now, not at the first chunk
            super().__init__(**codec_config)

        def evolve_from_array_spec(self, array_spec: Any) -> HsimZarr3Codec:
            if self.codec_config.get("nodata") is not None:
                return self
            fill = array_spec.fill_value
            fill = fill.item() if isinstance(fill, np.generic) else fill
            if isinstance(fill, (int, float)) and not isinstance(fill, bool) and math.isfinite(fill):
                return HsimZarr3Codec(**{**self.codec_config, "nodata": fill})
            return self

        def validate(self, *, shape: tuple, dtype: Any, chunk_grid: Any) -> None:
            native = dtype.to_native_dtype()
            if native.kind not in "uif":
                raise OptionError(f"HsimZarr3Codec: unsupported dtype {native} (integer or float data only)")
            if len(shape) not in (2, 3):
                raise OptionError(
                    f"HsimZarr3Codec: expected a (y, x, band) or (y, x) array, got {len(shape)} dimensions"
                )

    _register_zarr_codec("numcodecs.hsim", HsimZarr3Codec, qualname="hsicodec.integrations.zarr_codec.HsimZarr3Codec")
    __all__ += ["HsimZarr3Codec"]

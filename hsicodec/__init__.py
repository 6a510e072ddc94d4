"""hsicodec: hyperspectral image compression with meta-learned implicit neural representations.

Public API::

    data = hsicodec.compress(cube, bpppb=0.05)        # (rows, cols, bands) array → .hsim bytes
    cube, geo = hsicodec.decompress(data)             # back, in the original dtype
    hsicodec.compress_file("in.tif", "out.hsim")     # rasters in, atomic files out
    hsicodec.decompress_file("out.hsim", "back.tif")
    with hsicodec.open("out.hsim") as ds:            # rasterio-style reads (paths and URLs)
        block = ds.read([5, 9], window=((0, 64), (0, 64)))
"""

from hsicodec._version import __version__ as __version__
from hsicodec.codec.api import (
    DEFAULT_MODEL,
    compress,
    compress_file,
    decompress,
    decompress_file,
    file_info,
    load_codec_model,
)
from hsicodec.errors import (
    BackendError,
    HsicodecError,
    HsimChecksumError,
    HsimError,
    HsimHeaderError,
    HsimLimitError,
    HsimMagicError,
    HsimTruncatedError,
    HsimVersionError,
    ModelError,
    ModelFormatError,
    ModelHashMismatchError,
    ModelNotFoundError,
    OptionError,
    OutputExistsError,
    RasterError,
    RemoteError,
    TrainingError,
)
from hsicodec.evaluation.evaluate import (  # noqa: E402,F401
    codec_registry,
    evaluate_cube,
    format_table,
    plot_rd,
    psnr_gaps,
    run_codec,
    run_hsicodec,
)
from hsicodec.format.container import Hsim, HsimReader, Limits, decode_hsim, encode_hsim, read_hsim
from hsicodec.integrations.dataset import open_dataset as open  # noqa: A001  (rasterio-style: hsicodec.open)
from hsicodec.io.hsimfile import write_hsim  # noqa: E402
from hsicodec.io.raster import GeoInfo, read_cube, write_cube  # noqa: E402
from hsicodec.metrics import bpppb, max_abs_error, psnr, quality_report, sam_degrees  # noqa: E402
from hsicodec.models.registry import Registry, default_registry  # noqa: E402

__all__ = [
    "compress",
    "decompress",
    "compress_file",
    "decompress_file",
    "file_info",
    "open",
    "load_codec_model",
    "DEFAULT_MODEL",
    "Hsim",
    "HsimReader",
    "Limits",
    "encode_hsim",
    "decode_hsim",
    "read_hsim",
    "write_hsim",
    "GeoInfo",
    "read_cube",
    "write_cube",
    "Registry",
    "default_registry",
    "bpppb",
    "psnr",
    "sam_degrees",
    "max_abs_error",
    "quality_report",
    "HsicodecError",
    "HsimError",
    "HsimTruncatedError",
    "HsimMagicError",
    "HsimVersionError",
    "HsimChecksumError",
    "HsimLimitError",
    "HsimHeaderError",
    "ModelError",
    "ModelFormatError",
    "ModelNotFoundError",
    "ModelHashMismatchError",
    "RasterError",
    "OptionError",
    "OutputExistsError",
    "TrainingError",
    "BackendError",
    "RemoteError",
]


def __getattr__(name: str):
    """``hsicodec.HsimCodec`` imports numcodecs on first use only (the core package does not need it)."""
    if name == "HsimCodec":
        from hsicodec.integrations.zarr_codec import HsimCodec

        return HsimCodec
    raise AttributeError(f"module 'hsicodec' has no attribute {name!r}")

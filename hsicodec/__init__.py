"""hsicodec: hyperspectral image compression with meta-learned implicit neural representations."""

from hsicodec.errors import (
    HsicodecError, HsimChecksumError, HsimError, HsimHeaderError, HsimLimitError, HsimMagicError,
    HsimTruncatedError, HsimVersionError, ModelError, ModelFormatError, ModelHashMismatchError,
    ModelNotFoundError, OptionError, OutputExistsError, RasterError, TrainingError,
)

__version__ = "0.1.0"

"""The ``grid`` codec's header constants (spec/hsim.md section 10): what every encoder and decoder agrees on.

A ``grid`` file holds a spectral stage (a mean and principal spectra, header key ``sp``, section
``s``) and one or more coding layers, each owning its own header keys and sections
(:mod:`hsicodec.layers`). The keys here are the ones the codec itself owns.
"""

from __future__ import annotations

CODEC_NAME = "grid"
CODEC_VERSION = 8
#: header ``codec`` keys owned by the codec rather than by a layer: its id, the normalisation of the
#: coefficients and the spectral stage
BASE_KEYS = frozenset({"id", "norm", "sp"})
SPECTRAL_SECTION = "s"
#: the compact form (codec v5, files without network latents): the spectral stream and the
#: coefficient-map stream in one section, the spectral stream first (spec/hsim.md section 10.6)
COMPACT_SECTION = "c"

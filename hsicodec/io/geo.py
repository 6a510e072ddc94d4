"""GeoInfo: georeferencing and spectral metadata of a cube, and its `.hsim` header form.

:meth:`GeoInfo.to_header` / :meth:`GeoInfo.from_header` convert to and from the compact
map stored in `.hsim` headers; :meth:`GeoInfo.subset` gives the metadata of a window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hsicodec.errors import HsimHeaderError, OptionError
from hsicodec.io.checks import _is_real

_HEADER_KEYS = ("crs", "transform", "nodata", "band_names", "wavelengths", "fwhm", "wavelength_units", "units")


def _py_number(x: Any) -> float | int:
    """A numpy or Python real number as a plain Python int or float."""
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(x)


@dataclass
class GeoInfo:
    """Georeferencing and spectral metadata of a cube; every field optional.

    ``transform`` is the affine pixel→map transform in rasterio/``Affine``
    order ``(a, b, c, d, e, f)``: ``x = a*col + b*row + c``, ``y = d*col + e*row + f``.
    Per-band lists (``band_names``, ``wavelengths``, ``fwhm``) have one entry per band.
    """

    crs_wkt: str | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    nodata: float | int | None = None
    band_names: list[str] | None = None
    wavelengths: list[float] | None = None
    fwhm: list[float] | None = None
    wavelength_units: str | None = None
    units: str | None = None

    def is_empty(self) -> bool:
        """True when no field is set."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_header(self) -> dict:
        """A compact msgpack-able map of the set fields (keys: ``crs``, ``transform``, ``nodata``,
        ``band_names``, ``wavelengths``, ``fwhm``, ``wavelength_units``, ``units``)."""
        out: dict[str, Any] = {}
        if self.crs_wkt is not None:
            out["crs"] = str(self.crs_wkt)
        if self.transform is not None:
            out["transform"] = [float(v) for v in self.transform]
        if self.nodata is not None:
            out["nodata"] = _py_number(self.nodata)
        if self.band_names is not None:
            out["band_names"] = [str(v) for v in self.band_names]
        if self.wavelengths is not None:
            out["wavelengths"] = [float(v) for v in self.wavelengths]
        if self.fwhm is not None:
            out["fwhm"] = [float(v) for v in self.fwhm]
        if self.wavelength_units is not None:
            out["wavelength_units"] = str(self.wavelength_units)
        if self.units is not None:
            out["units"] = str(self.units)
        return out

    @classmethod
    def from_header(cls, d: Mapping | None, *, n_bands: int | None = None) -> GeoInfo:
        """Build a GeoInfo from a :meth:`to_header` map (``None`` → empty GeoInfo).

        Types and lengths are checked (per-band lists must agree with each other and,
        when given, with ``n_bands``); a bad value raises
        :class:`~hsicodec.errors.HsimHeaderError` naming the key.  Unknown keys are ignored.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise HsimHeaderError(f"geo header must be a map, got {type(d).__name__}")

        def bad(key: str, what: str) -> HsimHeaderError:
            return HsimHeaderError(f"geo header key {key!r}: {what}")

        def text(key: str) -> str | None:
            v = d.get(key)
            if v is None:
                return None
            if not isinstance(v, str):
                raise bad(key, f"expected a string, got {type(v).__name__}")
            return v

        def numbers(key: str, *, finite: bool = False) -> list[float] | None:
            v = d.get(key)
            if v is None:
                return None
            if not isinstance(v, (list, tuple)):
                raise bad(key, f"expected a list of numbers, got {type(v).__name__}")
            for i, x in enumerate(v):
                if not _is_real(x):
                    raise bad(key, f"item {i} is {type(x).__name__}, expected a number")
                if finite and not math.isfinite(float(x)):
                    raise bad(key, f"item {i} is not finite ({x!r})")
            return [float(x) for x in v]

        crs = text("crs")
        transform = numbers("transform", finite=True)
        if transform is not None and len(transform) != 6:
            raise bad("transform", f"expected 6 numbers, got {len(transform)}")
        nodata = d.get("nodata")
        if nodata is not None:
            if not _is_real(nodata):
                raise bad("nodata", f"expected a number, got {type(nodata).__name__}")
            nodata = _py_number(nodata)
        names = d.get("band_names")
        if names is not None:
            if not isinstance(names, (list, tuple)):
                raise bad("band_names", f"expected a list of strings, got {type(names).__name__}")
            for i, x in enumerate(names):
                if not isinstance(x, str):
                    raise bad("band_names", f"item {i} is {type(x).__name__}, expected a string")
            names = list(names)
        wavelengths = numbers("wavelengths")
        fwhm = numbers("fwhm")
        lengths = {
            k: len(v) for k, v in (("band_names", names), ("wavelengths", wavelengths), ("fwhm", fwhm)) if v is not None
        }
        if n_bands is not None:
            for k, n in lengths.items():
                if n != n_bands:
                    raise bad(k, f"has {n} entries for {n_bands} bands")
        elif len(set(lengths.values())) > 1:
            k = sorted(lengths)[-1]
            raise bad(
                k, "per-band lists differ in length: " + ", ".join(f"{name}={n}" for name, n in sorted(lengths.items()))
            )
        return cls(
            crs_wkt=crs,
            transform=tuple(transform) if transform is not None else None,  # type: ignore[arg-type]
            nodata=nodata,
            band_names=names,
            wavelengths=wavelengths,
            fwhm=fwhm,
            wavelength_units=text("wavelength_units"),
            units=text("units"),
        )

    def subset(self, rows: slice, cols: slice, bands: slice) -> GeoInfo:
        """The GeoInfo of ``cube[rows, cols, bands]`` (window decoding).

        The transform origin moves to the window's first pixel (a positive step scales
        the pixel size); per-band lists are sliced with ``bands``.  Row/column starts
        must be non-negative (``None`` = 0) and steps positive.
        """

        def start_step(s: slice, name: str) -> tuple[int, int]:
            if not isinstance(s, slice):
                raise OptionError(f"{name} must be a slice, got {type(s).__name__}")
            start = 0 if s.start is None else int(s.start)
            step = 1 if s.step is None else int(s.step)
            if start < 0:
                raise OptionError(f"{name} window start must be >= 0, got {start}")
            if step <= 0:
                raise OptionError(f"{name} window step must be > 0, got {step}")
            return start, step

        r0, rs = start_step(rows, "row")
        c0, cs = start_step(cols, "column")
        if not isinstance(bands, slice):
            raise OptionError(f"bands must be a slice, got {type(bands).__name__}")
        transform = None
        if self.transform is not None:
            a, b, c, d, e, f = (float(v) for v in self.transform)
            transform = (a * cs, b * rs, a * c0 + b * r0 + c, d * cs, e * rs, d * c0 + e * r0 + f)

        def cut(v: list | None) -> list | None:
            return None if v is None else list(v)[bands]

        return GeoInfo(
            crs_wkt=self.crs_wkt,
            transform=transform,
            nodata=self.nodata,
            band_names=cut(self.band_names),
            wavelengths=cut(self.wavelengths),
            fwhm=cut(self.fwhm),
            wavelength_units=self.wavelength_units,
            units=self.units,
        )

"""Build the optional C++ extension ``hsicodec._native``.

If no C++ compiler (or pybind11) is available, the package still installs and
runs on its numpy reference path; the build step says so once.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

ext_modules = []
try:
    from pybind11.setup_helpers import Pybind11Extension

    extra = ["-O3", "-fno-math-errno", "-ffp-contract=fast"]
    if os.environ.get("HSICODEC_NATIVE_MARCH", "") == "native":
        extra.append("-march=native")
    ext_modules.append(
        Pybind11Extension(
            "hsicodec._native",
            sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp")),
            include_dirs=["csrc"],
            depends=sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith((".h", ".inl"))),
            cxx_std=17,
            extra_compile_args=extra + ["-pthread"],
            extra_link_args=["-pthread"],
        )
    )
except ImportError:  # pragma: no cover - pybind11 missing
    sys.stderr.write("hsicodec: pybind11 not found; installing without the native extension (numpy path)\n")


class OptionalBuildExt(build_ext):
    """Build the extension if possible; never fail the install because of it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing or broken
            sys.stderr.write(f"hsicodec: native extension not built ({exc}); using the numpy path\n")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            sys.stderr.write(f"hsicodec: native extension not built ({exc}); using the numpy path\n")


setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

"""Build the optional C++ extension ``hsicodec._native``.

If no C++ compiler (or pybind11) is available, the package still installs and
runs on its numpy reference path; the build step says so once.

With ``HSICODEC_CUDA=1`` and ``nvcc`` found (PATH, ``$NVCC``, ``$CUDA_HOME``), the
optional CUDA kernel ``hsicodec._native_cuda`` (csrc/cuda/) is built too: the .cu
files by nvcc (``HSICODEC_CUDA_ARCH`` overrides the ``-gencode`` flags), linked
with the CUDA runtime (static when available).  A failure there prints one line
and never fails the install.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

ext_modules = []
try:
    from pybind11.setup_helpers import Pybind11Extension

    extra = ["-O3", "-fno-math-errno", "-ffp-contract=fast"]
    sources = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp"))
    include_dirs = ["csrc"]
    try:  # hsicodec's numpy memory handler (csrc/numpy_alloc.cpp) needs numpy's C headers
        import numpy

        include_dirs.append(numpy.get_include())
        extra.append("-DHSICODEC_NUMPY_ALLOC")
    except ImportError:  # pragma: no cover - numpy missing at build time
        sources.remove(os.path.join("csrc", "numpy_alloc.cpp"))
    if os.environ.get("HSICODEC_NATIVE_MARCH", "") == "native":
        extra.append("-march=native")
    ext_modules.append(
        Pybind11Extension(
            "hsicodec._native",
            sources,
            include_dirs=include_dirs,
            depends=sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith((".h", ".inl"))),
            cxx_std=17,
            extra_compile_args=extra + ["-pthread"],
            extra_link_args=["-pthread"],
        )
    )
except ImportError:  # pragma: no cover - pybind11 missing
    sys.stderr.write("hsicodec: pybind11 not found; installing without the native extension (numpy path)\n")


CUDA_ARCH_DEFAULT = "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=[sm_90,compute_90]"
CUDA_DIR = os.path.join("csrc", "cuda")


def _find_nvcc():
    """Path of nvcc ($NVCC, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin) or None."""
    cands = [os.environ.get("NVCC"), shutil.which("nvcc")]
    cands += [os.path.join(os.environ[v], "bin", "nvcc") for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    cands.append("/usr/local/cuda/bin/nvcc")
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def _cuda_lib_dir(nvcc, probe):
    """The CUDA runtime's library folder of the toolkit nvcc belongs to (nvcc may be a wrapper script)."""
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")]
    roots.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", probe, "-o", os.devnull], capture_output=True, text=True,
                             timeout=60)
        m = re.search(r"^#\$ TOP=(.*)$", out.stdout + out.stderr, re.M)
        if m:
            roots.append(os.path.normpath(m.group(1).strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    for root in filter(None, roots):
        for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib"),
                    os.path.join("targets", "sbsa-linux", "lib")):
            d = os.path.join(root, sub)
            if os.path.isfile(os.path.join(d, "libcudart_static.a")) or os.path.isfile(os.path.join(d, "libcudart.so")):
                return d
    return None


if os.environ.get("HSICODEC_CUDA", "") == "1" and ext_modules:
    NVCC = _find_nvcc()
    if NVCC is None:
        sys.stderr.write("hsicodec: HSICODEC_CUDA=1 but nvcc was not found; CUDA extension not built\n")
    else:
        ext_modules.append(
            Pybind11Extension(
                "hsicodec._native_cuda",
                [os.path.join(CUDA_DIR, "cuda_module.cpp")],
                include_dirs=[CUDA_DIR, "csrc"],
                depends=sorted(os.path.join(CUDA_DIR, f) for f in os.listdir(CUDA_DIR) if f.endswith((".cu", ".h")))
                + [os.path.join("csrc", "siren_checks.h")],
                cxx_std=17,
                extra_compile_args=["-O2"],
            )
        )


def _build_cuda_objects(cmd, ext):
    """Compile csrc/cuda/*.cu with nvcc; set the extension's objects and CUDA runtime libraries."""
    sources = sorted(os.path.join(CUDA_DIR, f) for f in os.listdir(CUDA_DIR) if f.endswith(".cu"))
    lib_dir = _cuda_lib_dir(NVCC, sources[0])
    if lib_dir is None:
        raise RuntimeError(f"no CUDA runtime library found next to {NVCC}")
    arch = shlex.split(os.environ.get("HSICODEC_CUDA_ARCH", "") or CUDA_ARCH_DEFAULT)
    out_dir = os.path.join(cmd.build_temp, "cuda")
    os.makedirs(out_dir, exist_ok=True)
    objects = []
    for src in sources:
        obj = os.path.join(out_dir, os.path.splitext(os.path.basename(src))[0] + ".o")
        args = [NVCC, "-c", src, "-o", obj, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-I", CUDA_DIR, *arch]
        sys.stderr.write("hsicodec: " + " ".join(shlex.quote(a) for a in args) + "\n")
        res = subprocess.run(args, capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr or res.stdout).strip().splitlines()
            raise RuntimeError(f"nvcc failed on {src}: {last[-1] if last else res.returncode}")
        objects.append(obj)
    ext.extra_objects = objects
    ext.library_dirs = [lib_dir]
    if os.path.isfile(os.path.join(lib_dir, "libcudart_static.a")) and os.environ.get("HSICODEC_CUDA_STATIC", "1") != "0":
        ext.libraries = ["cudart_static", "dl", "rt", "pthread"]
    else:
        ext.libraries = ["cudart"]
        ext.runtime_library_dirs = [lib_dir]


class OptionalBuildExt(build_ext):
    """Build the extension if possible; never fail the install because of it."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing or broken
            sys.stderr.write(f"hsicodec: native extension not built ({exc}); using the numpy path\n")

    def build_extension(self, ext):
        if ext.name == "hsicodec._native_cuda":
            try:
                _build_cuda_objects(self, ext)
                super().build_extension(ext)
            except Exception as exc:
                sys.stderr.write(f"hsicodec: CUDA extension not built ({exc})\n")
            return
        try:
            super().build_extension(ext)
        except Exception as exc:
            sys.stderr.write(f"hsicodec: native extension not built ({exc}); using the numpy path\n")


setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

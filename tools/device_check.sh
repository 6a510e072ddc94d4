#!/usr/bin/env bash
# Build and check the CUDA kernel on a lent GPU machine (a fresh, offline image with
# python3 + torch + nvcc + a driver).  Run from the repository root:
#
#   bash tools/device_check.sh            # device tool: carry ["tmp/device_wheels"]
#
# tmp/device_wheels (ignored by git) holds the cp312 wheels the offline image lacks, fetched here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux1_x86_64 \
#     -d tmp/device_wheels constriction==0.5.0 crc32c==2.9.post0 platformdirs==4.14.9
# Steps, each under a timeout (~8 min in all):
# a venv over the image's packages, the build with HSICODEC_CUDA=1 (sm_90 + PTX),
# pytest tests/test_cuda.py tests/test_native.py, tools/bench_decode.py --cuda.
# Logs and bench/decode_cuda.json go to $OUT (default /tmp/hsicodec-device-out).  PYTHON, WHEELS and
# BUILD_TIMEOUT override the interpreter, the wheel folder and the build's limit (dry runs).
set -uo pipefail
OUT="${OUT:-/tmp/hsicodec-device-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1
export PYTHONUNBUFFERED=1
T0=$SECONDS
step() { echo; echo "== [$((SECONDS - T0)) s] $*"; }

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nvcc --version | tail -n 2 || true
BASE_PY="${PYTHON:-$(command -v python3)}"
WHEELS="${WHEELS:-tmp/device_wheels}"
"$BASE_PY" -c "import sys, torch, numpy; print('python', sys.version.split()[0], '| torch', torch.__version__,
'cuda', torch.version.cuda, torch.cuda.is_available(), '| numpy', numpy.__version__)" || true

step venv
VENV=/tmp/hsicodec-venv
rm -rf "$VENV"
if "$BASE_PY" -m venv --without-pip "$VENV"; then
    PY="$VENV/bin/python"
    SITE=$("$PY" -c 'import site; print(site.getsitepackages()[0])')
    # python3 may itself be a venv: --system-site-packages would not see its packages, a .pth does
    "$BASE_PY" -c "import site; print('\n'.join(site.getsitepackages()))" > "$SITE/image-site.pth"
else  # no venv module: the image's python with a private site folder
    PY="$BASE_PY"
    SITE=/tmp/hsicodec-site
    mkdir -p "$SITE"
    export PYTHONPATH="$SITE"
fi
if ls "$WHEELS"/*.whl > /dev/null 2>&1; then
    "$BASE_PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 1
fi
"$PY" -c "import numpy, pybind11, pytest, setuptools, torch, constriction, crc32c, msgpack, scipy, click
print('dependencies ok')" || { echo "missing dependencies (carry tmp/device_wheels)"; exit 1; }

step "build (HSICODEC_CUDA=1)"
export HSICODEC_CUDA=1
export HSICODEC_CUDA_ARCH="${HSICODEC_CUDA_ARCH:--gencode=arch=compute_90,code=[sm_90,compute_90]}"
rm -f hsicodec/_native*.so
timeout "${BUILD_TIMEOUT:-300}" "$PY" setup.py build_ext --inplace -j 4 > "$OUT/build.log" 2>&1
echo "build exit $?"
grep -E "^hsicodec:|error" "$OUT/build.log" | head -n 20
"$PY" -c "import hsicodec._native as n, hsicodec._native_cuda as c
print('native', n.simd_level(), '| cuda devices', c.device_count(), *map(c.device_name, range(c.device_count())))" \
    || exit 1

step tests
export HSICODEC_DATA_DIR=/tmp/hsicodec-data
PER_TEST=()
"$PY" -c "import pytest_timeout" 2> /dev/null && PER_TEST=(--timeout 120)
timeout 240 "$PY" -m pytest tests/test_cuda.py tests/test_native.py -q -m "not slow" -p no:cacheprovider \
    ${PER_TEST[@]+"${PER_TEST[@]}"} > "$OUT/pytest.log" 2>&1
echo "pytest exit $?"
tail -n 40 "$OUT/pytest.log"

step "bench (tools/bench_decode.py --cuda)"
timeout 150 "$PY" tools/bench_decode.py --cuda > "$OUT/bench.log" 2>&1
echo "bench exit $?"
cat "$OUT/bench.log"
cp bench/decode_cuda.json "$OUT/" 2> /dev/null || echo "no bench/decode_cuda.json"

step done
sleep 1  # let tee flush the log

"""The optional CUDA forward kernel (hsicodec._native_cuda) and the "cuda" backend.

* everywhere: backend="cuda" without the extension or without a GPU is a clear
  BackendError (a RuntimeError and an HsicodecError), "auto" never picks the GPU,
  and the CLI says so in one line;
* where the extension is built (no GPU needed): the kernel's own tile code, run on
  the CPU by ``_emulate_forward``, against the numpy reference;
* where a GPU is visible: the kernel against numpy and the C++ kernel (<= 1e-5 max
  abs), its host-array chunking, device pointers from torch, and a whole decode;
* slow, where nvcc is on the PATH: csrc/cuda/*.cu compiles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from siren_cases import make_inputs, make_weights

from hsicodec.errors import BackendError, HsicodecError
from hsicodec.layers.network import siren
from hsicodec.layers.network.siren import SirenWeights, forward_numpy

try:
    from hsicodec import _native_cuda as cuda  # type: ignore[attr-defined]
except ImportError:
    cuda = None

try:
    from hsicodec import _native as nat  # type: ignore[attr-defined]
except ImportError:
    nat = None

HAVE_GPU = cuda is not None and cuda.device_count() > 0
needs_ext = pytest.mark.skipif(cuda is None, reason="hsicodec._native_cuda is not built (HSICODEC_CUDA=1)")
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="no CUDA extension or no CUDA device")
ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-5


def wargs(w: SirenWeights):
    return (list(w.hidden_w), list(w.hidden_b), w.out_w, w.out_b, w.meta_w, w.meta_b, w.shift == "inside")


# (K, d, m, C, n_in, N)
CASES = [
    (3, 48, 28, 16, 2, 1000),  # the shipping shape, N not a multiple of the 64-pixel tile
    (4, 64, 64, 205, 2, 130),  # hsi-plain-v1's shape
    (3, 64, 32, 224, 2, 300),  # many output channels
    (2, 13, 5, 205, 3, 257),  # odd width, odd C
    (1, 13, 1, 1, 3, 1),  # K=1, m=1, C=1, N=1
    (1, 8, 3, 7, 2, 97),
    (4, 20, 17, 3, 2, 193),
    (2, 33, 40, 30, 2, 65),  # width 33 -> a 48-wide pass, C not a multiple of 4
    (2, 100, 24, 256, 2, 70),  # d > 64: chunked hidden layers, C = 256
]
SHIFTS = ["inside", "outside"]
SKIPS = pytest.mark.parametrize("skip", [False, True], ids=["noskip", "skip"])
VARIANTS = ["", "chunked", "staged", "chunked-staged"]


def case_id(c):
    return "K{}-d{}-m{}-C{}-in{}-N{}".format(*c)


@pytest.fixture(params=VARIANTS, ids=lambda v: v or "auto")
def variant(request):
    assert cuda._set_variant(request.param) == request.param
    yield request.param
    cuda._set_variant("")


# --------------------------------------------------------------------------- everywhere


class _FakeCuda:
    """Stands in for hsicodec._native_cuda: device_count() as given; the kernel must not run."""

    def __init__(self, devices: int):
        self.devices = devices

    def device_count(self) -> int:
        return self.devices

    def siren_forward(self, *a, **k):
        raise AssertionError("the CUDA kernel must not be called")


def test_cuda_backend_without_extension_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(siren, "_native_cuda", lambda: None)
    rng = np.random.default_rng(0)
    w = make_weights(rng, K=1, d=8, m=3, C=4)
    x, phi = make_inputs(rng, w, 5)
    assert not siren.cuda_available()
    with pytest.raises(BackendError, match="not built") as err:
        siren.forward(w, x, phi, backend="cuda")
    assert isinstance(err.value, RuntimeError) and isinstance(err.value, HsicodecError)
    assert "HSICODEC_CUDA=1" in str(err.value)


def test_cuda_backend_without_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(siren, "_native_cuda", lambda: _FakeCuda(0))
    rng = np.random.default_rng(1)
    w = make_weights(rng, K=1, d=8, m=3, C=4)
    x, phi = make_inputs(rng, w, 5)
    assert not siren.cuda_available()
    with pytest.raises(BackendError, match="no CUDA device"):
        siren.forward(w, x, phi, backend="cuda")


@pytest.mark.parametrize("backend", ["auto", "native", "numpy"])
def test_other_backends_never_use_cuda(monkeypatch, backend):
    monkeypatch.setattr(siren, "_native_cuda", lambda: _FakeCuda(1))
    if backend == "native" and not siren.native_available():
        pytest.skip("no C++ extension")
    rng = np.random.default_rng(2)
    w = make_weights(rng, K=2, d=16, m=4, C=5, skip=True)
    x, phi = make_inputs(rng, w, 70)
    got = siren.forward(w, x, phi, backend=backend)
    assert float(np.max(np.abs(got - forward_numpy(w, x, phi)))) <= TOL


def test_loss_grad_with_cuda_backend_uses_the_cpu(monkeypatch):
    monkeypatch.setattr(siren, "_native_cuda", lambda: None)
    rng = np.random.default_rng(3)
    w = make_weights(rng, K=2, d=16, m=4, C=5)
    x, phi = make_inputs(rng, w, 40)
    t = rng.normal(size=(40, 5)).astype(np.float32)
    loss, g = siren.loss_grad_phi(w, x, phi, t, backend="cuda")
    loss0, g0 = siren.loss_grad_phi_numpy(w, x, phi, t)
    assert abs(loss - loss0) <= 1e-4 * abs(loss0)
    assert float(np.max(np.abs(g - g0))) <= 1e-4 * float(np.max(np.abs(g0)))


@pytest.fixture(scope="module")
def network_file():
    """A small .hsim with network latents (the SIREN runs when it is decoded)."""
    import hsicodec
    from hsicodec.data import sample_path

    cube = np.ascontiguousarray(np.load(sample_path())[:24, :20])
    data = hsicodec.compress(cube, bpppb=0.2, effort="fast", layer="network")
    assert "model" in hsicodec.HsimReader(data).header
    return data


def test_decompress_with_cuda_backend_unavailable_raises(network_file, monkeypatch):
    import hsicodec

    monkeypatch.setattr(siren, "_native_cuda", lambda: None)
    with pytest.raises(BackendError, match="cuda"):
        hsicodec.decompress(network_file, backend="cuda")


def test_cli_backend_cuda_unavailable_is_one_line(network_file, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hsicodec.cli.main import cli

    monkeypatch.setattr(siren, "_native_cuda", lambda: None)
    src = tmp_path / "s.hsim"
    src.write_bytes(network_file)
    r = CliRunner().invoke(cli, ["decompress", "--backend", "cuda", str(src), str(tmp_path / "o.npy")])
    assert r.exit_code != 0
    text = r.output  # stdout and stderr
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cuda" in lines[0] and "Traceback" not in text
    assert not (tmp_path / "o.npy").exists()


def test_cli_backend_choices_listed():
    from click.testing import CliRunner

    from hsicodec.cli.main import cli

    r = CliRunner().invoke(cli, ["decompress", "--help"])
    assert r.exit_code == 0 and "--backend" in r.output and "cuda" in r.output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on the PATH")
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """csrc/cuda/*.cu compile (syntax and template instantiation; nothing runs)."""
    arch = os.environ.get("HSICODEC_CUDA_ARCH", "-gencode=arch=compute_90,code=sm_90").split()
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    assert sources
    for src in sources:
        cmd = [
            "nvcc",
            "-c",
            str(src),
            "-o",
            str(tmp_path / (src.stem + ".o")),
            "-std=c++17",
            "-O3",
            "-Xcompiler",
            "-fPIC",
            "-I",
            str(src.parent),
            *arch,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-4000:]
        assert (tmp_path / (src.stem + ".o")).stat().st_size > 0


# --------------------------------------------------------------------------- extension built (CPU emulation)


@needs_ext
def test_device_count_is_an_int_and_names_check_the_index():
    n = cuda.device_count()
    assert isinstance(n, int) and n >= 0
    with pytest.raises(IndexError):
        cuda.device_name(n)
    for i in range(n):
        assert isinstance(cuda.device_name(i), str) and cuda.device_name(i)


# the kernel's tile code run on the CPU (wherever the extension is built), and the kernel itself on a GPU
RUNNERS = [pytest.param("emulated", marks=needs_ext), pytest.param("gpu", marks=needs_gpu)]


@pytest.mark.parametrize("runner", RUNNERS)
@SKIPS
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_kernel_matches_numpy(runner, variant, case, shift, skip):
    K, d, m, C, n_in, N = case
    rng = np.random.default_rng([*case, SHIFTS.index(shift), int(skip)])
    w = make_weights(rng, K, d, m, C, n_in, shift, skip)
    x, phi = make_inputs(rng, w, N)
    run = cuda._emulate_forward if runner == "emulated" else cuda.siren_forward
    got = run(x, phi, *wargs(w), 0, w.skip_w)
    assert got.dtype == np.float32 and got.shape == (N, C)
    assert np.all(np.isfinite(got))
    err = float(np.max(np.abs(got - forward_numpy(w, x, phi))))
    assert err <= TOL, f"max abs error vs numpy {err:.3g}"
    if runner == "gpu":
        if nat is not None:
            ref = nat.siren_forward(x, phi, *wargs(w), 0, w.skip_w)
            assert float(np.max(np.abs(got - ref))) <= TOL
        assert np.array_equal(siren.forward(w, x, phi, backend="cuda"), got)


def exact_sine_model(x: np.ndarray):
    """K=1 model whose sine arguments are exactly x * (1, 2, -1, 0.5): float32 rounding cannot differ."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    w = SirenWeights(
        (f32([[1.0], [2.0], [-1.0], [0.5]]),),
        (f32(np.zeros(4)),),
        f32(np.eye(4)[:3]),
        f32(np.zeros(3)),
        f32(np.zeros((4, 1))),
        f32(np.zeros(4)),
        "inside",
        None,
    )
    return w, f32(x.reshape(-1, 1)), f32(np.zeros((x.size, 1)))


HUGE = np.array([0.0, 1.5, -3.0e2, 1.0e6, 1048577.0, -3.0e7, 1.0e12, 1.0e38, 123456789.0, -2.0e20], np.float32)


@pytest.mark.parametrize("runner", RUNNERS)
def test_huge_arguments_take_the_exact_sine(runner, variant):
    w, x, phi = exact_sine_model(HUGE)
    run = cuda._emulate_forward if runner == "emulated" else cuda.siren_forward
    got = run(x, phi, *wargs(w), 0, None)
    assert float(np.max(np.abs(got - forward_numpy(w, x, phi)))) <= 1e-6


@needs_ext
def test_bad_shapes_are_value_errors():
    rng = np.random.default_rng(6)
    w = make_weights(rng, K=2, d=16, m=4, C=3)
    x, phi = make_inputs(rng, w, 10)
    with pytest.raises(ValueError, match="phi has shape"):
        cuda.siren_forward(x, phi[:, :3], *wargs(w), 0, None)
    with pytest.raises(ValueError, match="x has shape"):
        cuda._emulate_forward(x[:, :1], phi, *wargs(w), 0, None)
    with pytest.raises(ValueError, match="skip_w has shape"):
        cuda.siren_forward(x, phi, *wargs(w), 0, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="hidden_w is empty"):
        cuda.siren_forward(x, phi, [], [], w.out_w, w.out_b, w.meta_w, w.meta_b, True)
    with pytest.raises(ValueError, match="variant"):
        cuda._set_variant("fastest")


@needs_ext
@pytest.mark.skipif(HAVE_GPU, reason="checks the no-GPU path")
def test_without_gpu_the_kernel_raises_runtime_error():
    rng = np.random.default_rng(7)
    w = make_weights(rng, K=1, d=8, m=2, C=2)
    x, phi = make_inputs(rng, w, 3)
    with pytest.raises(RuntimeError, match="CUDA"):
        cuda.siren_forward(x, phi, *wargs(w), 0, None)


# --------------------------------------------------------------------------- on a GPU


@needs_gpu
def test_cuda_empty_and_large_inputs():
    rng = np.random.default_rng(8)
    w = make_weights(rng, skip=True)
    x, phi = make_inputs(rng, w, 0)
    assert cuda.siren_forward(x, phi, *wargs(w), 0, w.skip_w).shape == (0, 16)
    n = 3_000_017  # more than one 512 MB chunk of the host-array path, odd tail
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    phi = rng.normal(0, 1, (n, 28)).astype(np.float32)
    got = cuda.siren_forward(x, phi, *wargs(w), 0, w.skip_w)
    rows = np.concatenate([np.arange(0, 64), rng.integers(0, n, 2000), np.arange(n - 64, n)])
    ref = forward_numpy(w, x[rows], phi[rows])
    assert float(np.max(np.abs(got[rows] - ref))) <= TOL
    if nat is not None:
        assert float(np.max(np.abs(got - nat.siren_forward(x, phi, *wargs(w), 0, w.skip_w)))) <= TOL


@needs_gpu
def test_cuda_model_on_torch_device_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    rng = np.random.default_rng(9)
    w = make_weights(rng, skip=True)
    x, phi = make_inputs(rng, w, 4097)
    model = cuda.SirenModel(*wargs(w), w.skip_w)
    info = model.info()
    assert info["blocks"] >= 1 and info["warps_per_block"] >= 1 and info["hidden_block"] == 48
    xt, pt = torch.from_numpy(x).cuda(), torch.from_numpy(phi).cuda()
    yt = torch.empty((x.shape[0], 16), dtype=torch.float32, device="cuda")
    model.forward_ptr(xt.data_ptr(), pt.data_ptr(), yt.data_ptr(), x.shape[0], torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    assert float(np.max(np.abs(yt.cpu().numpy() - forward_numpy(w, x, phi)))) <= TOL
    assert np.array_equal(model.forward(x, phi), cuda.siren_forward(x, phi, *wargs(w), 0, w.skip_w))


@needs_gpu
def test_decode_with_cuda_backend_matches_native(network_file):
    import hsicodec

    ref, _ = hsicodec.decompress(network_file, backend="native" if nat is not None else "numpy")
    got, _ = hsicodec.decompress(network_file, backend="cuda")
    assert got.shape == ref.shape and got.dtype == ref.dtype == np.uint16
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert int(diff.max()) <= 1  # ~1e-6 apart before the cast: at most a rounding step
    assert float(np.mean(diff > 0)) <= 0.01

// Python bindings of the CUDA SIREN forward kernel (hsicodec._native_cuda).
//
//   siren_forward(x, phi, hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, threads=0,
//                 skip_w=None)      -- the argument list of hsicodec._native.siren_forward; threads is ignored
//   SirenModel(hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, skip_w=None)
//       .forward(x, phi), .forward_ptr(x_ptr, phi_ptr, y_ptr, n, stream=0), .info()
//   device_count(), device_name(i)
// plus the test helpers _emulate_forward (the kernel's tile code on the CPU) and _set_variant.
//
// Shape errors raise ValueError with the messages of hsicodec._native; CUDA failures
// raise RuntimeError with the CUDA error string.  The GIL is released during device work.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "siren_checks.h"
#include "siren_cuda.h"

namespace py = pybind11;
using farr = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

using hsi_checks::fail;

// Validated model arrays (kept alive while a Model is built from their pointers).
struct Checked {
    hsi_cuda::Dims D;
    std::vector<const float*> hw, hb;
    hsi_cuda::ModelArrays arrays;
};

Checked check_model(const std::vector<farr>& hw, const std::vector<farr>& hb, const farr& ow, const farr& ob,
                    const farr& mw, const farr& mb, bool shift_inside, const std::optional<farr>& skip) {
    const hsi_checks::SirenShape S = hsi_checks::check_model(hw, hb, ow, ob, mw, mb);
    Checked c;
    c.D.K = S.K;
    c.D.d = S.d;
    c.D.n_in = S.n_in;
    c.D.m = S.m;
    c.D.C = S.C;
    c.D.inside = shift_inside;
    c.D.skip = skip.has_value();
    for (int i = 0; i < S.K; ++i) {
        c.hw.push_back(hw[i].data());
        c.hb.push_back(hb[i].data());
    }
    c.arrays.out_w = ow.data();
    c.arrays.out_b = ob.data();
    c.arrays.meta_w = mw.data();
    c.arrays.meta_b = mb.data();
    c.arrays.skip_w = hsi_checks::check_skip(skip, S);
    return c;
}

std::int64_t check_inputs(const farr& x, const farr& phi, const hsi_cuda::Dims& D) {
    return hsi_checks::check_inputs(x, phi, hsi_checks::SirenShape{D.K, D.d, D.n_in, D.m, D.C});
}

std::unique_ptr<hsi_cuda::Model> build(const std::vector<farr>& hw, const std::vector<farr>& hb, const farr& ow,
                                       const farr& ob, const farr& mw, const farr& mb, bool shift_inside,
                                       const std::optional<farr>& skip) {
    Checked c = check_model(hw, hb, ow, ob, mw, mb, shift_inside, skip);
    c.arrays.hidden_w = c.hw.data();
    c.arrays.hidden_b = c.hb.data();
    return std::make_unique<hsi_cuda::Model>(c.D, c.arrays);
}

py::array_t<float> run_forward(hsi_cuda::Model& model, const farr& x, const farr& phi, bool emulate) {
    const hsi_cuda::Dims& D = model.dims();
    const std::int64_t N = check_inputs(x, phi, D);
    py::array_t<float> y({static_cast<py::ssize_t>(N), static_cast<py::ssize_t>(D.C)});
    if (N == 0 || D.C == 0) return y;
    const float* xp = x.data();
    const float* pp = phi.data();
    float* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (emulate)
            model.emulate(xp, pp, yp, N);
        else
            model.forward(xp, pp, yp, N);
    }
    return y;
}

py::array_t<float> siren_forward(const farr& x, const farr& phi, const std::vector<farr>& hidden_w,
                                 const std::vector<farr>& hidden_b, const farr& out_w, const farr& out_b,
                                 const farr& meta_w, const farr& meta_b, bool shift_inside, int /*threads*/,
                                 const std::optional<farr>& skip_w, bool emulate) {
    auto model = build(hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, skip_w);
    return run_forward(*model, x, phi, emulate);
}

}  // namespace

PYBIND11_MODULE(_native_cuda, mod) {
    mod.doc() = "hsicodec fused CUDA SIREN forward kernel (optional; built with HSICODEC_CUDA=1)";
    mod.def("siren_forward",
            [](const farr& x, const farr& phi, const std::vector<farr>& hw, const std::vector<farr>& hb,
               const farr& ow, const farr& ob, const farr& mw, const farr& mb, bool inside, int threads,
               const std::optional<farr>& skip) {
                return siren_forward(x, phi, hw, hb, ow, ob, mw, mb, inside, threads, skip, false);
            },
            py::arg("x"), py::arg("phi"), py::arg("hidden_w"), py::arg("hidden_b"), py::arg("out_w"),
            py::arg("out_b"), py::arg("meta_w"), py::arg("meta_b"), py::arg("shift_inside"), py::arg("threads") = 0,
            py::arg("skip_w") = py::none(),
            "SIREN forward pass on the current CUDA device: x (N, n_in), phi (N, m) float32 host arrays -> "
            "y (N, C_out) float32.\nthreads is accepted for compatibility with hsicodec._native and ignored.\n"
            "skip_w: None or the (C_out, m) linear skip S (y += phi S^T).");
    mod.def("_emulate_forward",
            [](const farr& x, const farr& phi, const std::vector<farr>& hw, const std::vector<farr>& hb,
               const farr& ow, const farr& ob, const farr& mw, const farr& mb, bool inside, int threads,
               const std::optional<farr>& skip) {
                return siren_forward(x, phi, hw, hb, ow, ob, mw, mb, inside, threads, skip, true);
            },
            py::arg("x"), py::arg("phi"), py::arg("hidden_w"), py::arg("hidden_b"), py::arg("out_w"),
            py::arg("out_b"), py::arg("meta_w"), py::arg("meta_b"), py::arg("shift_inside"), py::arg("threads") = 0,
            py::arg("skip_w") = py::none(),
            "Test helper: siren_forward computed on the CPU by the kernel's own tile code (no GPU needed).");

    py::class_<hsi_cuda::Model>(mod, "SirenModel",
                                "A SIREN's weights laid out for the kernel (uploaded to the device on first use).")
        .def(py::init(&build), py::arg("hidden_w"), py::arg("hidden_b"), py::arg("out_w"), py::arg("out_b"),
             py::arg("meta_w"), py::arg("meta_b"), py::arg("shift_inside"), py::arg("skip_w") = py::none())
        .def("forward", [](hsi_cuda::Model& m, const farr& x, const farr& phi) { return run_forward(m, x, phi, false); },
             py::arg("x"), py::arg("phi"), "Forward pass on host arrays (blocks until done).")
        .def("forward_ptr",
             [](hsi_cuda::Model& m, std::uintptr_t x, std::uintptr_t phi, std::uintptr_t y, std::int64_t n,
                std::uintptr_t stream) {
                 if (n < 0) fail("n must be >= 0");
                 if (n > 0 && ((m.dims().n_in > 0 && !x) || (m.dims().m > 0 && !phi) || !y))
                     fail("null device pointer");
                 py::gil_scoped_release nogil;
                 m.forward_device(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(phi),
                                  reinterpret_cast<float*>(y), n, stream);
             },
             py::arg("x_ptr"), py::arg("phi_ptr"), py::arg("y_ptr"), py::arg("n"), py::arg("stream") = 0,
             "Enqueue the forward pass on device pointers of C-contiguous float32 arrays x (n, n_in), phi (n, m),\n"
             "y (n, C_out) (e.g. torch CUDA tensors' data_ptr()) on `stream` (a cudaStream_t as an int; 0 = the\n"
             "legacy default stream). Returns without waiting.")
        .def("info", [](hsi_cuda::Model& m) {
                 hsi_cuda::KernelInfo k;
                 {
                     py::gil_scoped_release nogil;
                     k = m.info();
                 }
                 py::dict d;
                 d["device"] = k.device;
                 d["hidden_block"] = k.hidden_block;
                 d["staged"] = k.staged;
                 d["warps_per_block"] = k.warps_per_block;
                 d["blocks"] = k.blocks;
                 d["shared_bytes"] = k.shared_bytes;
                 d["registers"] = k.registers;
                 d["local_bytes"] = k.local_bytes;
                 d["pixels_per_warp_tile"] = k.pixels_per_warp_tile;
                 return d;
             },
             "Launch configuration on the current device (hidden_block 0: chunked hidden layers).")
        .def_property_readonly("n_out", [](const hsi_cuda::Model& m) { return m.dims().C; });

    mod.def("device_count", &hsi_cuda::device_count, "Number of CUDA devices (0 without a driver or a GPU).");
    mod.def("device_name", &hsi_cuda::device_name, py::arg("i") = 0, "Name of CUDA device i.");
    mod.def("_set_variant", [](const std::string& v) {
        hsi_cuda::set_variant(v);
        return hsi_cuda::variant();
    }, py::arg("variant"),
            "Test helper: kernel variant of models built from now on: '' (automatic), 'chunked', 'staged',\n"
            "'chunked-staged'. Returns the variant set.");
}

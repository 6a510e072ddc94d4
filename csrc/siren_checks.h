// Argument checks shared by the SIREN bindings (native_module.cpp, cuda/cuda_module.cpp): array shapes
// against the model's, with one ValueError per problem that names the array and both shapes.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hsi_checks {

namespace py = pybind11;
using farr = py::array_t<float, py::array::c_style | py::array::forcecast>;

[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

inline void need_shape(const py::array& a, const char* name, std::initializer_list<py::ssize_t> want) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(want.size());
    py::ssize_t i = 0;
    for (auto w : want) {
        if (!ok) break;
        ok = a.shape(i++) == w;
    }
    if (!ok) {
        std::string ws = "(";
        i = 0;
        for (auto w : want) ws += (i++ ? ", " : "") + std::to_string(w);
        if (want.size() == 1) ws += ",";
        fail(std::string(name) + " has shape " + shape_str(a) + ", expected " + ws + ")");
    }
}

inline void need_2d(const py::array& a, const char* name) {
    if (a.ndim() != 2) fail(std::string(name) + " must be 2-D, got shape " + shape_str(a));
}

// The network's sizes, read off and checked against its weight arrays.
struct SirenShape {
    int K, d, n_in, m, C;
};

inline SirenShape check_model(const std::vector<farr>& hw, const std::vector<farr>& hb, const farr& ow,
                              const farr& ob, const farr& mw, const farr& mb) {
    SirenShape D{};
    D.K = static_cast<int>(hw.size());
    if (D.K < 1) fail("SIREN needs K >= 1 hidden layers (hidden_w is empty)");
    if (hb.size() != hw.size())
        fail("hidden_b has " + std::to_string(hb.size()) + " arrays, hidden_w has " + std::to_string(hw.size()));
    need_2d(hw[0], "hidden_w[0]");
    D.d = static_cast<int>(hw[0].shape(0));
    D.n_in = static_cast<int>(hw[0].shape(1));
    if (D.d < 1) fail("hidden width must be >= 1");
    for (int i = 0; i < D.K; ++i) {
        const std::string wi = "hidden_w[" + std::to_string(i) + "]", bi = "hidden_b[" + std::to_string(i) + "]";
        need_shape(hw[i], wi.c_str(), {D.d, i == 0 ? D.n_in : D.d});
        need_shape(hb[i], bi.c_str(), {D.d});
    }
    need_2d(ow, "out_w");
    D.C = static_cast<int>(ow.shape(0));
    need_shape(ow, "out_w", {D.C, D.d});
    need_shape(ob, "out_b", {D.C});
    need_2d(mw, "meta_w");
    D.m = static_cast<int>(mw.shape(1));
    need_shape(mw, "meta_w", {static_cast<py::ssize_t>(D.K) * D.d, D.m});
    need_shape(mb, "meta_b", {static_cast<py::ssize_t>(D.K) * D.d});
    return D;
}

// The optional linear skip: None, or (C, m).  Returns null for None.
inline const float* check_skip(const std::optional<farr>& skip, const SirenShape& D) {
    if (!skip) return nullptr;
    need_shape(*skip, "skip_w", {D.C, D.m});
    return skip->data();
}

// x (N, n_in) and phi (N, m) → N.
inline std::int64_t check_inputs(const farr& x, const farr& phi, const SirenShape& D) {
    need_2d(x, "x");
    const std::int64_t N = x.shape(0);
    need_shape(x, "x", {N, D.n_in});
    need_shape(phi, "phi", {N, D.m});
    return N;
}

}  // namespace hsi_checks

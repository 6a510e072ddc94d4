// CDF 9/7 wavelet (JPEG 2000 irreversible lifting) on (H, W, k) float64 arrays, in place, Mallat layout:
// the C++ twin of _cdf97_split / _cdf97_merge / cdf97_forward / cdf97_inverse in hsicodec/coding/wavelet.py.
//
//   cdf97_forward_inplace(a, levels, threads)        a: (H, W, k) float64, C-contiguous, overwritten
//   cdf97_inverse_inplace(a, levels, threads)
//   cdf97_dequantize_inverse(sym, steps, offset, levels, threads, codes=None) -> (H, W, k) float64
//       sym (k, H, W) int32 or int64, steps (H, W) float64: maps = inverse(sign(q) (|q| - offset) step), fused
//
// Every value goes through the same operations in the same order as the numpy reference (lifting steps
// x += c * (y0 + y1), then division / multiplication by K), so without FMA contraction (the default x86-64
// build: no -mfma) the results are bit-identical to it; with FMA (-march=native) they agree to ~1e-15
// relative.  Whole-sample symmetric extension at both ends; a line of fewer than 2 samples is left as is.
//
// Each 1-D pass lifts many lines at once: the lines' samples are gathered into a buffer of
// (n positions) x (L lanes), evens first then odds, the lanes being contiguous doubles (a strip of
// columns x maps for the vertical pass, a block of rows x maps for the horizontal one), so the inner
// loops run over L contiguous lanes and vectorise.  Strips / row blocks are shared among threads; the
// result does not depend on the thread count.  The GIL is released while computing.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "parallel.h"

namespace py = pybind11;

namespace {

constexpr double kA = -1.586134342059924;
constexpr double kB = -0.052980118572961;
constexpr double kG = 0.882911075530934;
constexpr double kD = 0.443506852043971;
constexpr double kK = 1.230174104914001;
constexpr int kMaxLevels = 32;

// f(unit, the worker's line buffer)
template <class F>
void parallel_for(int64_t n, int threads, F&& f) {
    hsicodec_native::parallel_for_state<std::vector<double>>(n, threads, f);
}

// x[i] (+/-)= c * (y[i] + y[i + 1]) for i < nx, y[ny] mirrored to y[ny - 1] (ny == nx): the predict steps.
template <bool Sub>
inline void lift_next(double* __restrict x, const double* __restrict y, int64_t nx, int64_t ny, int64_t L, double c) {
    for (int64_t i = 0; i < nx; ++i) {
        double* xi = x + i * L;
        const double* y0 = y + i * L;
        const double* y1 = (i + 1 < ny) ? y0 + L : y0;
        for (int64_t j = 0; j < L; ++j) {
            if (Sub)
                xi[j] = xi[j] - c * (y0[j] + y1[j]);
            else
                xi[j] = xi[j] + c * (y0[j] + y1[j]);
        }
    }
}

// x[i] (+/-)= c * (y[i - 1] + y[i]) for i < nx, y[-1] = y[0] and y[ny] = y[ny - 1]: the update steps.
template <bool Sub>
inline void lift_prev(double* __restrict x, const double* __restrict y, int64_t nx, int64_t ny, int64_t L, double c) {
    for (int64_t i = 0; i < nx; ++i) {
        double* xi = x + i * L;
        const double* y0 = y + (i > 0 ? i - 1 : 0) * L;
        const double* y1 = y + (i < ny ? i : ny - 1) * L;
        for (int64_t j = 0; j < L; ++j) {
            if (Sub)
                xi[j] = xi[j] - c * (y0[j] + y1[j]);
            else
                xi[j] = xi[j] + c * (y0[j] + y1[j]);
        }
    }
}

inline void analysis_lift(double* s, double* t, int64_t ns, int64_t nd, int64_t L) {
    lift_next<false>(t, s, nd, ns, L, kA);
    lift_prev<false>(s, t, ns, nd, L, kB);
    lift_next<false>(t, s, nd, ns, L, kG);
    lift_prev<false>(s, t, ns, nd, L, kD);
}

inline void synthesis_lift(double* s, double* t, int64_t ns, int64_t nd, int64_t L) {
    lift_prev<true>(s, t, ns, nd, L, kD);
    lift_next<true>(t, s, nd, ns, L, kG);
    lift_prev<true>(s, t, ns, nd, L, kB);
    lift_next<true>(t, s, nd, ns, L, kA);
}

// One set of lines for a 1-D pass: n positions along the transformed axis, position p's samples are
// `chunks` runs of `len` contiguous doubles at base + p * pstride + c * cstride (c < chunks).
struct Lines {
    double* base;
    int64_t n, pstride, chunks, len, cstride;
};

// Gather one line set into buf (n x L, L = chunks * len), lift, scatter back (Mallat order when forward).
template <bool Forward>
void lift_lines(const Lines& ln, double* buf) {
    const int64_t n = ln.n, L = ln.chunks * ln.len;
    const int64_t ns = (n + 1) / 2, nd = n / 2;
    double* s = buf;
    double* t = buf + ns * L;
    for (int64_t p = 0; p < n; ++p) {  // forward: x[2i] -> s[i], x[2i+1] -> t[i]; inverse: c[i] in order
        double* dst = Forward ? ((p & 1) ? t + (p / 2) * L : s + (p / 2) * L) : buf + p * L;
        const double* src = ln.base + p * ln.pstride;
        for (int64_t c = 0; c < ln.chunks; ++c) std::memcpy(dst + c * ln.len, src + c * ln.cstride, ln.len * 8);
    }
    if (Forward) {
        analysis_lift(s, t, ns, nd, L);
        for (int64_t j = 0; j < ns * L; ++j) s[j] = s[j] / kK;
        for (int64_t j = 0; j < nd * L; ++j) t[j] = t[j] * kK;
    } else {
        for (int64_t j = 0; j < ns * L; ++j) s[j] = s[j] * kK;
        for (int64_t j = 0; j < nd * L; ++j) t[j] = t[j] / kK;
        synthesis_lift(s, t, ns, nd, L);
    }
    for (int64_t p = 0; p < n; ++p) {  // forward: Mallat order as in buf; inverse: interleave s, t
        const double* src = Forward ? buf + p * L : ((p & 1) ? t + (p / 2) * L : s + (p / 2) * L);
        double* dst = ln.base + p * ln.pstride;
        for (int64_t c = 0; c < ln.chunks; ++c) std::memcpy(dst + c * ln.cstride, src + c * ln.len, ln.len * 8);
    }
}

constexpr int64_t kBufferDoubles = 32768;  // a line set's buffer: 256 KiB, about an L2 share

// One 1-D level along axis 0 (vertical) of the h x w region of a (H, W, k) array.
template <bool Forward>
void pass_rows(double* a, int64_t W, int64_t k, int64_t h, int64_t w, int threads) {
    if (h < 2) return;
    const int64_t span = w * k;  // contiguous doubles of one region row
    int64_t strip = std::max<int64_t>(16, kBufferDoubles / h);
    strip = (strip + 7) / 8 * 8;
    strip = std::min(strip, span);
    const int64_t units = (span + strip - 1) / strip;
    parallel_for(units, threads, [&](int64_t u, std::vector<double>& buf) {
        const int64_t j0 = u * strip, len = std::min(strip, span - j0);
        buf.resize(static_cast<size_t>(h * len));
        lift_lines<Forward>(Lines{a + j0, h, W * k, 1, len, 0}, buf.data());
    });
}

// One 1-D level along axis 1 (horizontal) of the h x w region.
template <bool Forward>
void pass_cols(double* a, int64_t W, int64_t k, int64_t h, int64_t w, int threads) {
    if (w < 2) return;
    int64_t rows = std::max<int64_t>(1, (32 + k - 1) / k);  // at least 32 lanes when k is small
    rows = std::min(rows, std::max<int64_t>(1, kBufferDoubles / (w * k)));
    rows = std::min(rows, h);
    const int64_t units = (h + rows - 1) / rows;
    parallel_for(units, threads, [&](int64_t u, std::vector<double>& buf) {
        const int64_t r0 = u * rows, nr = std::min(rows, h - r0);
        buf.resize(static_cast<size_t>(w * nr * k));
        lift_lines<Forward>(Lines{a + r0 * W * k, w, k, nr, k, W * k}, buf.data());
    });
}

std::vector<std::pair<int64_t, int64_t>> regions(int64_t H, int64_t W, int levels) {
    std::vector<std::pair<int64_t, int64_t>> out;
    int64_t h = H, w = W;
    for (int i = 0; i < levels; ++i) {
        out.emplace_back(h, w);
        h = (h + 1) / 2;
        w = (w + 1) / 2;
    }
    return out;
}

void forward(double* a, int64_t H, int64_t W, int64_t k, int levels, int threads) {
    for (auto [h, w] : regions(H, W, levels)) {
        pass_rows<true>(a, W, k, h, w, threads);
        pass_cols<true>(a, W, k, h, w, threads);
    }
}

void inverse(double* a, int64_t H, int64_t W, int64_t k, int levels, int threads) {
    auto regs = regions(H, W, levels);
    for (auto it = regs.rbegin(); it != regs.rend(); ++it) {
        pass_cols<false>(a, W, k, it->first, it->second, threads);
        pass_rows<false>(a, W, k, it->first, it->second, threads);
    }
}

using darr = py::array_t<double, py::array::c_style>;

void check_levels(int levels) {
    if (levels < 0 || levels > kMaxLevels) throw std::invalid_argument("cdf97: levels must be in 0..32");
}

// (H, W, k) of a 2-D or 3-D C-contiguous float64 array.
void shape3(const py::buffer_info& bi, int64_t& H, int64_t& W, int64_t& k) {
    if (bi.ndim != 2 && bi.ndim != 3) throw std::invalid_argument("cdf97: expected an (H, W) or (H, W, k) array");
    H = bi.shape[0];
    W = bi.shape[1];
    k = bi.ndim == 3 ? bi.shape[2] : 1;
}

template <bool Forward>
void transform_inplace(darr a, int levels, int threads) {
    check_levels(levels);
    auto bi = a.request(true);
    int64_t H, W, k;
    shape3(bi, H, W, k);
    if (H * W * k == 0) return;
    double* p = static_cast<double*>(bi.ptr);
    py::gil_scoped_release nogil;
    if (Forward)
        forward(p, H, W, k, levels, threads);
    else
        inverse(p, H, W, k, levels, threads);
}

template <class Sym>  // int32 (what map_decode gives) or int64 (the reference's symbols): no converted copy
py::array_t<double> dequantize_inverse(py::array_t<Sym, py::array::c_style> sym, darr steps, double offset, int levels,
                                       int threads, py::object codes) {
    check_levels(levels);
    auto sb = sym.request();
    auto tb = steps.request();
    if (sb.ndim != 3) throw std::invalid_argument("cdf97_dequantize_inverse: symbols must be (k, H, W)");
    const int64_t k = sb.shape[0], H = sb.shape[1], W = sb.shape[2];
    if (tb.ndim != 2 || tb.shape[0] != H || tb.shape[1] != W)
        throw std::invalid_argument("cdf97_dequantize_inverse: steps must be (H, W)");
    // codes: the reconstruction table's offset code of every symbol (spec/hsim.md 10.13), (code - 8) / 32 of a step
    py::array_t<uint8_t, py::array::c_style> code_arr;
    const uint8_t* cd = nullptr;
    if (!codes.is_none()) {
        code_arr = codes.cast<py::array_t<uint8_t, py::array::c_style>>();
        if (code_arr.ndim() != 3 || code_arr.shape(0) != k || code_arr.shape(1) != H || code_arr.shape(2) != W)
            throw std::invalid_argument("cdf97_dequantize_inverse: codes must be (k, H, W) like the symbols");
        cd = code_arr.data();
    }
    py::array_t<double> out({H, W, k});
    if (H * W * k == 0) return out;
    const Sym* q = static_cast<const Sym*>(sb.ptr);
    const double* st = static_cast<const double*>(tb.ptr);
    double* o = static_cast<double*>(out.request(true).ptr);
    {
        py::gil_scoped_release nogil;
        constexpr int64_t kCols = 64;  // a row's columns in blocks: the (cols x k) output block stays in L1/L2
        parallel_for(H, threads, [&](int64_t r, std::vector<double>&) {
            for (int64_t c0 = 0; c0 < W; c0 += kCols) {
                const int64_t c1 = std::min(W, c0 + kCols);
                for (int64_t m = 0; m < k; ++m) {
                    const Sym* qr = q + (m * H + r) * W;
                    const uint8_t* cr = cd ? cd + (m * H + r) * W : nullptr;
                    // numpy: sign(q) * where(|q| > 0, |q| - offset, 0) * step, the same roundings
                    auto put = [&](int64_t c, double off) {
                        const int64_t v = qr[c];
                        const double mag = v < 0 ? -static_cast<double>(v) : static_cast<double>(v);
                        const double x = v > 0 ? (mag - off) : v < 0 ? -(mag - off) : 0.0;
                        o[(r * W + c) * k + m] = x * st[r * W + c];
                    };
                    if (cr) {  // a code's offset, (code - 8) / 32 of a step: exact in binary
                        for (int64_t c = c0; c < c1; ++c) put(c, static_cast<double>(static_cast<int>(cr[c]) - 8) * 0.03125);
                    } else {
                        for (int64_t c = c0; c < c1; ++c) put(c, offset);
                    }
                }
            }
        });
        inverse(o, H, W, k, levels, threads);
    }
    return out;
}

}  // namespace

void register_wavelet97(py::module_& mod) {
    mod.def("cdf97_forward_inplace", &transform_inplace<true>, py::arg("a").noconvert(), py::arg("levels"),
            py::arg("threads") = 0,
            "CDF 9/7 analysis of an (H, W) or (H, W, k) C-contiguous float64 array in place (Mallat layout).");
    mod.def("cdf97_inverse_inplace", &transform_inplace<false>, py::arg("a").noconvert(), py::arg("levels"),
            py::arg("threads") = 0, "CDF 9/7 synthesis in place (inverse of cdf97_forward_inplace).");
    const char* doc =
        "Maps (H, W, k) = synthesis of sign(q) (|q| - offset) step from symbols (k, H, W) int32 or int64 and "
        "steps (H, W); with codes ((k, H, W) uint8) each symbol's offset is (code - 8) / 32 instead.";
    mod.def("cdf97_dequantize_inverse", &dequantize_inverse<int64_t>, py::arg("sym"), py::arg("steps"),
            py::arg("offset"), py::arg("levels"), py::arg("threads") = 0, py::arg("codes") = py::none(), doc);
    mod.def("cdf97_dequantize_inverse", &dequantize_inverse<int32_t>, py::arg("sym"), py::arg("steps"),
            py::arg("offset"), py::arg("levels"), py::arg("threads") = 0, py::arg("codes") = py::none(),
            doc);  // an int32 array: no copy
}

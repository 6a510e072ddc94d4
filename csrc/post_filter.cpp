// The coefficient-map layer's post filter (codec.pf, spec/hsim.md 10.10).
//
//   post_filter_apply(maps, out, own, cross, threads)
//       maps (H, W, k) float64 C-contiguous, read only; out, of the same shape and a separate array holding a
//       copy of maps, gets the corrected maps: for j < m = own.shape[0],
//       Y'_j = Y_j + sum_t own[j, t] L_t(Y_j) + [cross given, j >= 1] sum_t cross[j, t] L_t(Y_0)
//       with L_t the ring Laplacians of hsicodec.layers.maps.postfilter.ORBITS over the maps *before*
//       correction, outside the map by half-sample symmetric extension (numpy's pad mode "symmetric").
//
// Every value is computed in the numpy reference's order (hsicodec.layers.maps.postfilter.apply_taps):
// a ring's offsets added in ascending (dy, dx) order from zero, minus count * Y; then the own terms
// t = 0..4, then the cross terms, each a product added to the running value. No fused multiply-adds
// (fp-contract off), so the result equals the reference bit for bit. Rows of the output are split over
// threads; every ring is read from maps, never from out.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "parallel.h"

#pragma STDC FP_CONTRACT OFF

namespace py = pybind11;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

namespace {

constexpr int N_ORBITS = 5;
constexpr int RADIUS = 2;

struct Orbit {
    int count;
    std::array<std::array<int, 2>, 8> off;  // (dy, dx), ascending
};

// ORBITS = ((0, 1), (1, 1), (0, 2), (1, 2), (2, 2)): the distinct offsets (±a, ±b), (±b, ±a), sorted.
const std::array<Orbit, N_ORBITS>& orbits() {
    static const std::array<Orbit, N_ORBITS> table = [] {
        std::array<Orbit, N_ORBITS> t{};
        const int ab[N_ORBITS][2] = {{0, 1}, {1, 1}, {0, 2}, {1, 2}, {2, 2}};
        for (int o = 0; o < N_ORBITS; ++o) {
            std::vector<std::array<int, 2>> v;
            const int a = ab[o][0], b = ab[o][1];
            for (int sa : {1, -1})
                for (int sb : {1, -1}) {
                    v.push_back({sa * a, sb * b});
                    v.push_back({sa * b, sb * a});
                }
            std::sort(v.begin(), v.end());
            v.erase(std::unique(v.begin(), v.end()), v.end());
            t[o].count = static_cast<int>(v.size());
            for (size_t i = 0; i < v.size(); ++i) t[o].off[i] = v[i];
        }
        return t;
    }();
    return table;
}

// numpy's "symmetric" padding: index i of a length-n axis, reflected with period 2n.
inline int64_t reflect(int64_t i, int64_t n) {
    const int64_t p = 2 * n;
    int64_t r = i % p;
    if (r < 0) r += p;
    return r >= n ? p - 1 - r : r;
}

// One output row, the maps innermost (contiguous: the compiler vectorises over j without reordering any
// value's own sums). acc, l0 and v are the worker's scratch rows of m values.
struct Scratch {
    std::vector<double> acc, l0, v;
};

__attribute__((optimize("fp-contract=off"))) void filter_row(const double* src, double* dst, int64_t h, int64_t w,
                                                             int64_t k, int64_t r, int64_t m, const double* own,
                                                             const double* cross, Scratch& s) {
    const auto& orb = orbits();
    s.acc.resize(m);
    s.l0.resize(N_ORBITS);
    s.v.resize(m);
    double* acc = s.acc.data();
    double* v = s.v.data();
    std::array<int64_t, 2 * RADIUS + 1> rows{};
    for (int d = -RADIUS; d <= RADIUS; ++d) rows[d + RADIUS] = reflect(r + d, h);
    for (int64_t c = 0; c < w; ++c) {
        std::array<int64_t, 2 * RADIUS + 1> cols{};
        for (int d = -RADIUS; d <= RADIUS; ++d) cols[d + RADIUS] = reflect(c + d, w);
        const double* y = src + (r * w + c) * k;
        for (int64_t j = 0; j < m; ++j) v[j] = y[j];
        for (int t = 0; t < N_ORBITS; ++t) {
            for (int64_t j = 0; j < m; ++j) acc[j] = 0.0;
            for (int i = 0; i < orb[t].count; ++i) {
                const int64_t rr = rows[orb[t].off[i][0] + RADIUS], cc = cols[orb[t].off[i][1] + RADIUS];
                const double* nb = src + (rr * w + cc) * k;
                for (int64_t j = 0; j < m; ++j) acc[j] += nb[j];
            }
            const double cnt = static_cast<double>(orb[t].count);
            for (int64_t j = 0; j < m; ++j) {
                const double ring = acc[j] - cnt * y[j];
                if (j == 0) s.l0[t] = ring;
                const double prod = ring * own[j * N_ORBITS + t];
                v[j] += prod;
            }
        }
        if (cross != nullptr)
            for (int t = 0; t < N_ORBITS; ++t)
                for (int64_t j = 1; j < m; ++j) {
                    const double prod = s.l0[t] * cross[j * N_ORBITS + t];
                    v[j] += prod;
                }
        double* out = dst + (r * w + c) * k;
        for (int64_t j = 0; j < m; ++j) out[j] = v[j];
    }
}

void post_filter_apply(py::array_t<double, py::array::c_style> maps, py::array_t<double, py::array::c_style> out,
                       const F64Array& own, py::object cross_obj, int threads) {
    if (maps.ndim() != 3) throw std::invalid_argument("post_filter_apply: maps must be (H, W, k)");
    const int64_t h = maps.shape(0), w = maps.shape(1), k = maps.shape(2);
    if (out.ndim() != 3 || out.shape(0) != h || out.shape(1) != w || out.shape(2) != k)
        throw std::invalid_argument("post_filter_apply: out must have the shape of maps");
    if (out.data() == maps.data()) throw std::invalid_argument("post_filter_apply: out must not be maps");
    if (own.ndim() != 2 || own.shape(1) != N_ORBITS || own.shape(0) > k)
        throw std::invalid_argument("post_filter_apply: own taps must be (m, 5) with m <= k");
    const int64_t m = own.shape(0);
    F64Array cross;
    const double* cp = nullptr;
    if (!cross_obj.is_none()) {
        cross = F64Array::ensure(cross_obj);
        if (!cross || cross.ndim() != 2 || cross.shape(0) != m || cross.shape(1) != N_ORBITS)
            throw std::invalid_argument("post_filter_apply: cross taps must be (m, 5)");
        cp = cross.data();
    }
    if (m == 0 || h == 0 || w == 0) return;
    const double* src = maps.data();
    double* dst = out.mutable_data();
    const double* op = own.data();
    {
        py::gil_scoped_release release;
        hsicodec_native::parallel_for_state<Scratch>(
            h, threads, [&](int64_t r, Scratch& s) { filter_row(src, dst, h, w, k, r, m, op, cp, s); });
    }
}

}  // namespace

void register_post_filter(py::module_& mod) {
    mod.def("post_filter_apply", &post_filter_apply, py::arg("maps"), py::arg("out"), py::arg("own"),
            py::arg("cross"), py::arg("threads") = 0,
            "The map layer's post filter of maps (H, W, k) float64 into out (a copy of maps): own taps (m, 5), "
            "cross taps (m, 5) or None; equal to hsicodec.layers.maps.postfilter.apply_taps bit for bit.");
}

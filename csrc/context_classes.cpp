// The coefficient-map layer's encoder hot path (spec/hsim.md 10.5), for a whole set of known symbols:
//   * context classes of scheme "checkerboard" (checker_classes_all),
//   * per-cell statistics of those classes (checker_cell_stats),
//   * both fused with the dead-zone quantizer, for one step of the rate search (checker_price),
//   * the scale-code fit from the cell statistics (fit_scale_codes).
// hsicodec/coefmaps.py is the reference (activity, checker_classes, quantize, _cell_counts,
// fit_codes_from_stats); tests/test_coefmaps.py checks that both agree exactly.
//
// Classes and statistics of map j need only maps j - 1 and j, so the maps are split over threads; every
// map's cells are its own, and every sum is taken in a fixed order inside one map, so results do not depend
// on the thread count.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include "cpu_features.h"
#include "map_layout.h"

namespace py = pybind11;

namespace {

using namespace hsi_layout;

using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Calls sink(band, flat index, class) for every symbol of plane `cur` (prev: the previous map or nullptr).
template <class Sink>
void plane_classes(const int32_t* cur, const int32_t* prev, const int32_t* nb_cur, const int32_t* nb_prev, int64_t w,
                   const Layout& L, Sink&& sink) {
    const int64_t wide = widest(L);
    std::vector<int32_t> zeros(wide, 0);
    std::vector<uint8_t> cls(wide);
    for (size_t bi = 0; bi < L.bands.size(); ++bi) {
        const Band& b = L.bands[bi];
        for (int64_t r = 0; r < b.rows(); ++r) {
            row_classes(cur, prev, nb_cur, nb_prev, w, L, bi, r, zeros.data(), cls.data());
            const int64_t row = (b.r0 + r) * w + b.c0;
            for (int64_t c = 0; c < b.cols(); ++c) sink(b, row + c, static_cast<int>(cls[c]));
        }
    }
}

// f(j0, j1) for contiguous runs of maps covering [0, k), one run per thread (up to `threads`, <= 0: all cores).
template <class F>
void for_runs(int64_t k, int64_t values, int threads, F&& f) {
    int64_t nt = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
    nt = std::min<int64_t>(nt, k);
    if (values < (int64_t(1) << 15)) nt = 1;  // not worth a thread
    if (nt <= 1) {
        if (k > 0) f(int64_t(0), k);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(nt);
    auto run = [&](int64_t t) {
        try {
            f(k * t / nt, k * (t + 1) / nt);
        } catch (...) {
            errors[t] = std::current_exception();
        }
    };
    int64_t started = 1;  // run 0 is the calling thread's
    for (; started < nt; ++started) {
        try {
            pool.emplace_back(run, started);
        } catch (const std::system_error&) {
            break;  // no more threads: this thread does the runs left
        }
    }
    run(0);
    for (int64_t t = started; t < nt; ++t) run(t);
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

// f(j) for every map j in [0, k), the maps split into runs over up to `threads` threads (<= 0: all cores).
template <class F>
void for_maps(int64_t k, int64_t values, int threads, F&& f) {
    for_runs(k, values, threads, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) f(j);
    });
}

// Per (group, class) cell statistics of one map: its |symbols| cur and their neighbour sums nb_cur, with the
// previous map's (prev, nb_prev; nullptr for the first map), into pn, pn0, pt (one map's cells). Neighbouring
// symbols mostly share a cell, so the counts are kept in kWays copies (by column): one copy would chain every
// update on the one before. Count and zero count share one word (each < 2^32: a plane has fewer values).
void plane_stats(const int32_t* cur, const int32_t* prev, const int32_t* nb_cur, const int32_t* nb_prev, int64_t hw,
                 int64_t w, const Layout& L, int64_t groups_per_map, double* pn, double* pn0, double* pt) {
    constexpr int64_t kWays = 4;
    if (hw >= (int64_t(1) << 32)) throw std::invalid_argument("a map of 2^32 values or more");
    const int64_t cells = groups_per_map * 2 * kPassClasses;
    std::vector<uint64_t> nn(kWays * cells, 0);  // count + (zero count << 32)
    std::vector<int64_t> tot(kWays * cells, 0);
    const int64_t wide = widest(L);
    std::vector<int32_t> zeros(wide, 0);
    std::vector<uint8_t> cls(wide);
    for (size_t bi = 0; bi < L.bands.size(); ++bi) {
        const Band& b = L.bands[bi];
        const int64_t base = b.grp * 2 * kPassClasses, cols = b.cols();
        for (int64_t r = 0; r < b.rows(); ++r) {
            row_classes(cur, prev, nb_cur, nb_prev, w, L, bi, r, zeros.data(), cls.data());
            const int32_t* v = cur + (b.r0 + r) * w + b.c0;
            uint64_t* __restrict pn_ = nn.data();
            int64_t* __restrict pt_ = tot.data();
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t cell = (c & (kWays - 1)) * cells + base + cls[c];
                pn_[cell] += 1 + (uint64_t(v[c] == 0) << 32);
                pt_[cell] += v[c];
            }
        }
    }
    for (int64_t c = 0; c < cells; ++c) {
        uint64_t n = 0, n0 = 0;
        int64_t t = 0;
        for (int64_t way = 0; way < kWays; ++way) {
            n += nn[way * cells + c] & 0xffffffffu;
            n0 += nn[way * cells + c] >> 32;
            t += tot[way * cells + c];
        }
        pn[c] = static_cast<double>(n);
        pn0[c] = static_cast<double>(n0);
        pt[c] = static_cast<double>(t);
    }
}

void check_groups(const Layout& L, int64_t groups_per_map) {
    for (const auto& b : L.bands)
        if (b.grp >= groups_per_map) throw std::invalid_argument("a subband's group is past groups_per_map");
}

// The (n, n0, tot) arrays of the cell statistics and the filling of them.
struct CellStats {
    py::array_t<double> n, n0, tot;
    double *pn, *pn0, *pt;
    explicit CellStats(int64_t cells)
        : n(cells), n0(cells), tot(cells), pn(n.mutable_data()), pn0(n0.mutable_data()), pt(tot.mutable_data()) {}
    // From |symbols| a (k maps of hw values) and their neighbour sums nb; runs without the GIL.
    void fill(const int32_t* a, const int32_t* nb, int64_t k, int64_t hw, int64_t w, const Layout& L,
              int64_t groups_per_map, int threads) {
        const int64_t cells = groups_per_map * 2 * kPassClasses;
        for_maps(k, k * hw, threads, [&](int64_t j) {
            plane_stats(a + j * hw, j > 0 ? a + (j - 1) * hw : nullptr, nb + j * hw, j > 0 ? nb + (j - 1) * hw : nullptr,
                        hw, w, L, groups_per_map, pn + j * cells, pn0 + j * cells, pt + j * cells);
        });
    }
};

py::array_t<uint8_t> checker_classes_all(const I32Array& absq, const LayoutIn& bands_in,
                                         const std::vector<int64_t>& parents, int threads) {
    if (absq.ndim() != 3) throw std::invalid_argument("absq must be (k, H, W)");
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, false);
    py::array_t<uint8_t> out({k, h, w});
    uint8_t* o = out.mutable_data();
    const int32_t* a = absq.data();
    {
        py::gil_scoped_release release;
        std::fill(o, o + k * hw, uint8_t(0));
        std::vector<int32_t> nb(k * hw, 0);
        for_maps(k, k * hw, threads, [&](int64_t j) { plane_neighbours(a + j * hw, w, L, nb.data() + j * hw); });
        for_maps(k, k * hw, threads, [&](int64_t j) {
            const int32_t* cur = a + j * hw;
            uint8_t* oj = o + j * hw;
            plane_classes(cur, j > 0 ? cur - hw : nullptr, nb.data() + j * hw, j > 0 ? nb.data() + (j - 1) * hw : nullptr,
                          w, L, [&](const Band&, int64_t i, int cls) { oj[i] = static_cast<uint8_t>(cls); });
        });
    }
    return out;
}

// Per (map, level group, class) cell: symbol count, zero count and sum of |q| (what fit_codes needs).
py::tuple checker_cell_stats(const I32Array& absq, const LayoutIn& bands_in, const std::vector<int64_t>& parents,
                             int64_t groups_per_map, int threads) {
    if (absq.ndim() != 3) throw std::invalid_argument("absq must be (k, H, W)");
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, false);
    check_groups(L, groups_per_map);
    CellStats st(k * groups_per_map * 2 * kPassClasses);
    const int32_t* a = absq.data();
    {
        py::gil_scoped_release release;
        std::vector<int32_t> nb(k * hw, 0);
        for_maps(k, k * hw, threads, [&](int64_t j) { plane_neighbours(a + j * hw, w, L, nb.data() + j * hw); });
        st.fill(a, nb.data(), k, hw, w, L, groups_per_map, threads);
    }
    return py::make_tuple(st.n, st.n0, st.tot);
}

// coeffs (k, H, W) and per-coefficient steps (H, W), as the dead-zone quantizers below take them.
void check_coeffs_steps(const F64Array& coeffs, const F64Array& steps) {
    if (coeffs.ndim() != 3) throw std::invalid_argument("coeffs must be (k, H, W)");
    if (steps.ndim() != 2 || steps.shape(0) != coeffs.shape(1) || steps.shape(1) != coeffs.shape(2))
        throw std::invalid_argument("steps must be (H, W) like the coefficients");
}

// a = |c / s| and mag = floor(a + deadzone) of n values: exact IEEE operations, so the AVX2 pass (4 at a time) and
// the plain one give the same numbers.
void abs_floor(const double* __restrict c, const double* __restrict s, double deadzone, int64_t n, double* __restrict a,
               double* __restrict mag) {
    for (int64_t i = 0; i < n; ++i) {
        a[i] = std::fabs(c[i] / s[i]);
        mag[i] = std::floor(a[i] + deadzone);
    }
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
__attribute__((target("avx2"))) void abs_floor_avx2(const double* c, const double* s, double deadzone, int64_t n,
                                                    double* a, double* mag) {
    const __m256d sign = _mm256_set1_pd(-0.0), dz = _mm256_set1_pd(deadzone);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_andnot_pd(sign, _mm256_div_pd(_mm256_loadu_pd(c + i), _mm256_loadu_pd(s + i)));
        _mm256_storeu_pd(a + i, v);
        _mm256_storeu_pd(mag + i, _mm256_round_pd(_mm256_add_pd(v, dz), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
    }
    abs_floor(c + i, s + i, deadzone, n - i, a + i, mag + i);
}
#endif

// abs_floor by AVX2 where it is in use (hsicodec_native::use_avx2; the same numbers either way).
void abs_floor_best(const double* c, const double* s, double deadzone, int64_t n, double* a, double* mag) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    static const bool avx2 = hsicodec_native::use_avx2();
    if (avx2) {
        abs_floor_avx2(c, s, deadzone, n, a, mag);
        return;
    }
#endif
    abs_floor(c, s, deadzone, n, a, mag);
}

// What quantize_plane reports of a plane: past the context arithmetic's int32 (or NaN), the largest |q|, the
// nonzero count, Σ (|q| − a) and Σ (|q| − a)² over the nonzeros and Σ a² over the zeros (checker_price's sums).
struct PlaneSums {
    bool over;
    int32_t max_abs;
    int64_t nonzeros;
    double e1, e2, z2;
};

// The dead-zone quantizer of one plane (mag = floor(|c / step| + deadzone)) into q and its PlaneSums, the sums
// taken in index order. Chunks of a vector pass (the divisions and floors) and a pass of branch-free sums
// (adding 0.0 leaves a sum as it was): the results of the plain loop, bit for bit.
PlaneSums quantize_plane(const double* c, const double* s, double deadzone, int64_t hw, int32_t* q) {
    constexpr int64_t kChunk = 256;
    double a[kChunk], mag[kChunk];
    bool bad = false;
    int32_t top = 0;
    int64_t count = 0;
    double s1 = 0.0, s2 = 0.0, sz = 0.0;
    for (int64_t i0 = 0; i0 < hw; i0 += kChunk) {
        const int64_t n = std::min(kChunk, hw - i0);
        abs_floor_best(c + i0, s + i0, deadzone, n, a, mag);
        for (int64_t i = 0; i < n; ++i) {
            const bool over = !(mag[i] < 2147483647.0);
            bad |= over;
            const auto m = static_cast<int32_t>(over ? 0.0 : mag[i]);
            q[i0 + i] = m;
            top = std::max(top, m);
            const bool nz = m > 0;
            const double e = mag[i] - a[i];
            count += nz;
            s1 += nz ? e : 0.0;
            s2 += nz ? e * e : 0.0;
            sz += nz ? 0.0 : a[i] * a[i];
        }
    }
    return PlaneSums{bad, top, count, s1, s2, sz};
}

// One step of the rate search: the dead-zone quantizer of coefficients c (k, H, W) at per-coefficient steps
// (H, W) (coefmaps.quantize: mag = floor(|c / step| + deadzone)), then checker_cell_stats of the |symbols|,
// without materialising anything in Python.  Also per map: [nonzero count, sum of (mag - a) over nonzeros,
// sum of (mag - a)^2 over nonzeros, sum of a^2 over zeros] with a = |c / step|, and its largest |symbol|.
py::tuple checker_price(const F64Array& coeffs, const F64Array& steps, double deadzone, const LayoutIn& bands_in,
                        const std::vector<int64_t>& parents, int64_t groups_per_map, int threads) {
    check_coeffs_steps(coeffs, steps);
    const int64_t k = coeffs.shape(0), h = coeffs.shape(1), w = coeffs.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, false);
    check_groups(L, groups_per_map);
    CellStats st(k * groups_per_map * 2 * kPassClasses);
    py::array_t<double> sums({k, int64_t(4)});
    double* ps = sums.mutable_data();
    const double* c = coeffs.data();
    const double* s = steps.data();
    std::vector<int32_t> maxabs(k, 0);
    std::vector<char> overflow(k, 0);
    {
        py::gil_scoped_release release;
        const int64_t cells = groups_per_map * 2 * kPassClasses;
        // each thread a run of maps, with the symbols and neighbour sums of the map before kept from the step
        // before (the run's first map quantizes its predecessor again): a few planes of memory, not k
        for_runs(k, k * hw, threads, [&](int64_t j0, int64_t j1) {
            std::unique_ptr<int32_t[]> planes(new int32_t[4 * hw]);  // every value is written before it is read
            int32_t *q_prev = planes.get(), *q_cur = q_prev + hw, *nb_prev = q_cur + hw, *nb_cur = nb_prev + hw;
            if (j0 > 0) {
                if (quantize_plane(c + (j0 - 1) * hw, s, deadzone, hw, q_prev).over) return;  // its run reports it
                plane_neighbours(q_prev, w, L, nb_prev);
            }
            for (int64_t j = j0; j < j1; ++j) {
                const PlaneSums p = quantize_plane(c + j * hw, s, deadzone, hw, q_cur);
                if (p.over) {
                    overflow[j] = 1;
                    return;
                }
                maxabs[j] = p.max_abs;
                ps[j * 4 + 0] = static_cast<double>(p.nonzeros);
                ps[j * 4 + 1] = p.e1;
                ps[j * 4 + 2] = p.e2;
                ps[j * 4 + 3] = p.z2;
                plane_neighbours(q_cur, w, L, nb_cur);
                plane_stats(q_cur, j > 0 ? q_prev : nullptr, nb_cur, j > 0 ? nb_prev : nullptr, hw, w, L, groups_per_map,
                            st.pn + j * cells, st.pn0 + j * cells, st.pt + j * cells);
                std::swap(q_prev, q_cur);
                std::swap(nb_prev, nb_cur);
            }
        });
    }
    if (std::find(overflow.begin(), overflow.end(), 1) != overflow.end())
        throw std::overflow_error("a quantized coefficient is past 2^31 (or not finite)");
    return py::make_tuple(st.n, st.n0, st.tot, sums, py::array_t<int32_t>(k, maxabs.data()));
}

// coefmaps.quantize in one pass: u = c / step, a = |u|, mag = floor(a + deadzone), symbols sign(u) mag
// (k, H, W) int64; the excesses mag - a of the nonzero symbols in C order (for the caller's sum, the
// reference's order); a itself when asked (else None). The same IEEE operations as numpy's, element by element.
py::tuple quantize_maps(const F64Array& coeffs, const F64Array& steps, double deadzone, bool want_a, int threads) {
    check_coeffs_steps(coeffs, steps);
    const int64_t k = coeffs.shape(0), h = coeffs.shape(1), w = coeffs.shape(2), hw = h * w;
    py::array_t<int64_t> sym({k, h, w});
    py::array_t<double> a_out(want_a ? std::vector<int64_t>{k, h, w} : std::vector<int64_t>{0});
    int64_t* q = sym.mutable_data();
    double* pa = want_a ? a_out.mutable_data() : nullptr;
    const double* c = coeffs.data();
    const double* s = steps.data();
    std::vector<std::vector<double>> excess(static_cast<size_t>(k));
    {
        py::gil_scoped_release release;
        for_maps(k, k * hw, threads, [&](int64_t j) {
            constexpr int64_t kChunk = 256;
            double a_buf[kChunk], mag[kChunk];
            const double* cj = c + j * hw;
            int64_t* qj = q + j * hw;
            std::vector<double>& ej = excess[j];
            ej.resize(static_cast<size_t>(hw));
            double* pe = ej.data();
            int64_t ne = 0;
            for (int64_t i0 = 0; i0 < hw; i0 += kChunk) {
                const int64_t n = std::min(kChunk, hw - i0);
                double* a = pa ? pa + j * hw + i0 : a_buf;
                abs_floor_best(cj + i0, s + i0, deadzone, n, a, mag);
                for (int64_t i = 0; i < n; ++i) {
                    // u = c / s is > 0 (< 0) where |u| > 0 and the signs of c and s agree (differ); NaN: neither
                    const bool nonzero = a[i] > 0;
                    const bool negative = std::signbit(cj[i0 + i]) != std::signbit(s[i0 + i]);
                    qj[i0 + i] = static_cast<int64_t>(nonzero ? (negative ? -mag[i] : mag[i]) : 0.0);
                    pe[ne] = mag[i] - a[i];  // kept where mag > 0 (written past the count otherwise)
                    ne += mag[i] > 0;
                }
            }
            ej.resize(static_cast<size_t>(ne));
        });
    }
    size_t total = 0;
    for (const auto& e : excess) total += e.size();
    py::array_t<double> ex(static_cast<int64_t>(total));
    double* pe = ex.mutable_data();
    for (const auto& e : excess) pe = std::copy(e.begin(), e.end(), pe);
    return py::make_tuple(sym, ex, want_a ? py::object(a_out) : py::object(py::none()));
}

// out[i] += row[i] for i < n: the fit's cost sums (each entry its own sum, so any vector width gives the same
// values), in AVX2 where it is in use (hsicodec_native::use_avx2; the baseline build has 2-wide SSE2).
using AddRow = void (*)(double* __restrict, const double* __restrict, int64_t);

void add_row_plain(double* __restrict out, const double* __restrict row, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] + row[i];
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
__attribute__((target("avx2"))) void add_row_avx2(double* __restrict out, const double* __restrict row, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = out[i] + row[i];
}
#endif

AddRow pick_add_row() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    if (hsicodec_native::use_avx2()) return add_row_avx2;
#endif
    return add_row_plain;
}

// The code fit of coefmaps.fit_codes_from_stats with the same arithmetic, operation for operation (no
// contraction into fused multiply-adds, sums in numpy's order), so both give the same codes:
// cell cost T[g][c][x] = n0 l0[x] + (n - n0) l1[x] + tot lt[x] for code index x of the window; coordinate
// descent alternates each group's base index (offsets fixed) and each class's offset in -pad..pad (bases
// fixed), indices clipped to the window. Returns (base index per group, offset per class, each group's cost).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
__attribute__((optimize("fp-contract=off"))) py::tuple fit_scale_codes(const F64Array& n_in, const F64Array& n0_in,
                                                                      const F64Array& tot_in, const F64Array& l0,
                                                                      const F64Array& l1, const F64Array& lt, int pad,
                                                                      int iterations) {
    if (n_in.ndim() != 2 || n0_in.ndim() != 2 || tot_in.ndim() != 2 || n0_in.shape(0) != n_in.shape(0) ||
        tot_in.shape(0) != n_in.shape(0) || n0_in.shape(1) != n_in.shape(1) || tot_in.shape(1) != n_in.shape(1))
        throw std::invalid_argument("n, n0 and tot must be (groups, classes) alike");
    const int64_t G = n_in.shape(0), C = n_in.shape(1), m = l0.size();
    if (l1.size() != m || lt.size() != m || m < 1) throw std::invalid_argument("l0, l1 and lt must be one non-empty window");
    if (pad < 0 || pad > 1024 || iterations < 0) throw std::invalid_argument("bad pad or iterations");
    py::array_t<int64_t> base_out(G), off_out(C);
    py::array_t<double> cost_out(G);
    const double *n = n_in.data(), *n0 = n0_in.data(), *tot = tot_in.data();
    const double *pl0 = l0.data(), *pl1 = l1.data(), *plt = lt.data();
    int64_t* pb = base_out.mutable_data();
    int64_t* po = off_out.mutable_data();
    double* pc = cost_out.mutable_data();
    {
        py::gil_scoped_release release;
        static const AddRow add_row = pick_add_row();
        const int64_t width = m + 2 * pad;  // edge-replicated window: index x stands for code clip(x - pad, 0, m - 1)
        // Only cells holding symbols have a table: an empty cell costs exactly 0 at every code, and adding
        // 0.0 leaves every sum as it is, so skipping them changes nothing.
        std::vector<int64_t> row_of(G * C, -1);
        std::vector<std::vector<int64_t>> live(G);  // per group: its non-empty classes, in order
        int64_t rows = 0;
        for (int64_t g = 0; g < G; ++g)
            for (int64_t cl = 0; cl < C; ++cl)
                if (n[g * C + cl] != 0.0) {
                    row_of[g * C + cl] = rows++;
                    live[g].push_back(cl);
                }
        std::unique_ptr<double[]> T(new double[rows * width]);  // every entry is written below
        for (int64_t g = 0; g < G; ++g)
            for (int64_t cl : live[g]) {
                const int64_t cell = g * C + cl;
                const double a = n0[cell], b = n[cell] - n0[cell], t = tot[cell];
                double* row = T.get() + row_of[cell] * width;
                for (int64_t x = 0; x < m; ++x) {
                    const double p = a * pl0[x];
                    const double q = b * pl1[x];
                    const double r = t * plt[x];
                    const double pq = p + q;
                    row[pad + x] = pq + r;
                }
                for (int64_t x = 0; x < pad; ++x) {
                    row[x] = row[pad];
                    row[pad + m + x] = row[pad + m - 1];
                }
            }
        std::vector<char> used(C, 0);
        for (int64_t cl = 0; cl < C; ++cl) {
            double s = 0.0;  // numpy: n.sum(axis=0) > 0, sequential over groups
            for (int64_t g = 0; g < G; ++g) s += n[g * C + cl];
            used[cl] = s > 0;
        }
        std::vector<int64_t> off(C, 0), base(G, 0);
        std::vector<double> bc(G * m), cost(C * (2 * pad + 1));
        auto base_costs = [&]() {  // bc[g][x] = sum over classes (in order) of T[g][c][pad + off[c] + x]
            std::fill(bc.begin(), bc.end(), 0.0);
            for (int64_t g = 0; g < G; ++g) {
                double* out = bc.data() + g * m;
                for (int64_t cl : live[g]) {
                    const double* row = T.get() + row_of[g * C + cl] * width + pad + off[cl];
                    add_row(out, row, m);
                }
            }
        };
        auto argmin_bases = [&]() {
            for (int64_t g = 0; g < G; ++g) {
                const double* row = bc.data() + g * m;
                int64_t best = 0;
                for (int64_t x = 1; x < m; ++x)
                    if (row[x] < row[best]) best = x;
                base[g] = best;
            }
        };
        const int64_t span = 2 * pad + 1;
        for (int it = 0; it < iterations; ++it) {
            base_costs();
            argmin_bases();
            std::fill(cost.begin(), cost.end(), 0.0);
            for (int64_t g = 0; g < G; ++g)
                for (int64_t cl : live[g]) {
                    const double* row = T.get() + row_of[g * C + cl] * width + base[g];
                    double* out = cost.data() + cl * span;
                    add_row(out, row, span);
                }
            for (int64_t cl = 0; cl < C; ++cl) {
                if (!used[cl]) {
                    off[cl] = 0;
                    continue;
                }
                const double* row = cost.data() + cl * span;
                int64_t best = 0;
                for (int64_t o = 1; o < span; ++o)
                    if (row[o] < row[best]) best = o;
                off[cl] = best - pad;
            }
        }
        base_costs();
        argmin_bases();
        for (int64_t g = 0; g < G; ++g) {
            pb[g] = base[g];
            pc[g] = bc[g * m + base[g]];
        }
        for (int64_t cl = 0; cl < C; ++cl) po[cl] = off[cl];
    }
    return py::make_tuple(base_out, off_out, cost_out);
}

}  // namespace

void register_context_classes(py::module_& mod) {
    mod.def("checker_classes_all", &checker_classes_all, py::arg("absq"), py::arg("bands"), py::arg("parents"),
            py::arg("threads") = 0,
            "Scheme 'checkerboard' context classes (k, H, W) uint8 of known |symbols| absq (k, H, W) int32;\n"
            "bands: (group, orientation, row0, row1, col0, col1) in coding order, parents: parent index or -1.\n"
            "threads <= 0: all cores (the result does not depend on it).");
    mod.def("checker_cell_stats", &checker_cell_stats, py::arg("absq"), py::arg("bands"), py::arg("parents"),
            py::arg("groups_per_map"), py::arg("threads") = 0,
            "(n, n0, tot) float64 (k * groups_per_map * 26,): per (map, level group, class) cell the symbol\n"
            "count, zero count and sum of |q| of known |symbols| absq (k, H, W) int32 (same layout as\n"
            "checker_classes_all).");
    mod.def("checker_price", &checker_price, py::arg("coeffs"), py::arg("steps"), py::arg("deadzone"), py::arg("bands"),
            py::arg("parents"), py::arg("groups_per_map"), py::arg("threads") = 0,
            "Dead-zone quantization of coeffs (k, H, W) float64 at steps (H, W) fused with checker_cell_stats:\n"
            "(n, n0, tot, sums (k, 4), max |q| (k,)), sums per map = [nonzeros, sum(mag - a), sum((mag - a)^2) over\n"
            "nonzeros, sum(a^2) over zeros], a = |c / step|. OverflowError past 2^31.");
    mod.def("quantize_maps", &quantize_maps, py::arg("coeffs"), py::arg("steps"), py::arg("deadzone"),
            py::arg("want_a"), py::arg("threads") = 0,
            "Dead-zone quantization of coeffs (k, H, W) float64 at steps (H, W): (symbols int64, the excesses\n"
            "floor(a + deadzone) - a of the nonzero symbols in C order, a = |c / step| (k, H, W) or None).");
    mod.def("fit_scale_codes", &fit_scale_codes, py::arg("n"), py::arg("n0"), py::arg("tot"), py::arg("l0"),
            py::arg("l1"), py::arg("lt"), py::arg("pad"), py::arg("iterations"),
            "Coordinate-descent fit of coefmaps.fit_codes_from_stats over a window of codes whose code lengths\n"
            "are l0, l1, lt (m,): (base index per group, offset per class, each group's cost in bits).");
}

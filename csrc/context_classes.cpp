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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

constexpr int64_t kEdges[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
constexpr int kPassClasses = 13;
constexpr int64_t kTop = 64;                 // t at or past the last edge: the last class
constexpr int64_t kCap = int64_t(1) << 30;   // activities are capped here (as in the reference)
constexpr int64_t kNbCap = int64_t(1) << 30; // neighbour sums saturate here: any t >= kTop has the last class

struct FineLut {
    uint8_t v[kTop + 1];
    FineLut() {
        for (int64_t t = 0; t <= kTop; ++t) {
            int c = 0;
            for (int64_t e : kEdges) c += (t >= e);
            v[t] = static_cast<uint8_t>(c);
        }
    }
};
const FineLut kFine;

struct Band {
    int64_t grp, ori, r0, r1, c0, c1;
    int64_t rows() const { return r1 - r0; }
    int64_t cols() const { return c1 - c0; }
    bool empty() const { return rows() == 0 || cols() == 0; }
};

struct Layout {
    std::vector<Band> bands;
    std::vector<const Band*> parent, sib1, sib2;  // nullptr: none (or an empty subband)
};

using LayoutIn = std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>;
using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

Layout checked_layout(int64_t h, int64_t w, const LayoutIn& bands_in, const std::vector<int64_t>& parents) {
    Layout L;
    for (const auto& t : bands_in) {
        Band b{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t), std::get<5>(t)};
        if (b.r0 < 0 || b.r1 > h || b.c0 < 0 || b.c1 > w || b.r0 > b.r1 || b.c0 > b.c1 || b.ori < 0 || b.ori > 3 ||
            b.grp < 0)
            throw std::invalid_argument("subband outside the maps");
        L.bands.push_back(b);
    }
    if (parents.size() != L.bands.size()) throw std::invalid_argument("one parent index per subband");
    const auto n = static_cast<int64_t>(L.bands.size());
    for (int64_t i = 0; i < n; ++i) {
        if (parents[i] >= i) throw std::invalid_argument("a parent must be an earlier subband");
        if (L.bands[i].ori >= 2 && i < L.bands[i].ori - 1) throw std::invalid_argument("siblings must be earlier subbands");
        const Band* par = parents[i] >= 0 && !L.bands[parents[i]].empty() ? &L.bands[parents[i]] : nullptr;
        const Band* s1 = L.bands[i].ori >= 2 ? &L.bands[i - 1] : nullptr;  // LH: HL; HH: HL and LH
        const Band* s2 = L.bands[i].ori == 3 ? &L.bands[i - 2] : nullptr;
        L.parent.push_back(par);
        L.sib1.push_back(s1 && !s1->empty() ? s1 : nullptr);
        L.sib2.push_back(s2 && !s2->empty() ? s2 : nullptr);
    }
    return L;
}

// nb[i] = |N| + |S| + |W| + |E| of every symbol of plane m inside its own subband (0 outside it), saturated
void plane_neighbours(const int32_t* m, int64_t w, const Layout& L, int32_t* nb) {
    for (const Band& b : L.bands) {
        const int64_t rows = b.rows(), cols = b.cols();
        for (int64_t r = 0; r < rows; ++r) {
            const int32_t* row = m + (b.r0 + r) * w + b.c0;
            const int32_t* up = r > 0 ? row - w : nullptr;
            const int32_t* down = r + 1 < rows ? row + w : nullptr;
            int32_t* out = nb + (b.r0 + r) * w + b.c0;
            for (int64_t c = 0; c < cols; ++c) {
                int64_t s = 0;
                if (up) s += up[c];
                if (down) s += down[c];
                if (c > 0) s += row[c - 1];
                if (c + 1 < cols) s += row[c + 1];
                out[c] = static_cast<int32_t>(std::min(s, kNbCap));
            }
        }
    }
}

// Calls sink(band, flat index, class) for every symbol of plane `cur` (prev: the previous map or nullptr).
template <class Sink>
void plane_classes(const int32_t* cur, const int32_t* prev, const int32_t* nb_cur, const int32_t* nb_prev, int64_t w,
                   const Layout& L, Sink&& sink) {
    for (size_t bi = 0; bi < L.bands.size(); ++bi) {
        const Band& b = L.bands[bi];
        const Band *par = L.parent[bi], *sib1 = L.sib1[bi], *sib2 = L.sib2[bi];
        for (int64_t r = 0; r < b.rows(); ++r) {
            const int64_t row = (b.r0 + r) * w + b.c0;
            const int64_t prow = par ? (par->r0 + std::min(r / 2, par->rows() - 1)) * w + par->c0 : 0;
            const int64_t s1row = sib1 ? (sib1->r0 + std::min(r, sib1->rows() - 1)) * w + sib1->c0 : 0;
            const int64_t s2row = sib2 ? (sib2->r0 + std::min(r, sib2->rows() - 1)) * w + sib2->c0 : 0;
            for (int64_t c = 0; c < b.cols(); ++c) {
                const int64_t i = row + c;
                int64_t t = prev ? 2 * int64_t(prev[i]) + nb_prev[i] / 4 : 0;
                if (par) {
                    const int64_t pi = prow + std::min(c / 2, par->cols() - 1);
                    t += cur[pi] + nb_cur[pi] / 4;
                }
                if (sib1) t += cur[s1row + std::min(c, sib1->cols() - 1)];
                if (sib2) t += cur[s2row + std::min(c, sib2->cols() - 1)];
                t = std::min(t, kCap);
                const bool late = (r + c) & 1;
                if (late) t += nb_cur[i];  // all four neighbours are first-pass symbols
                sink(b, i, static_cast<int>(kFine.v[std::min(t, kTop)]) + (late ? kPassClasses : 0));
            }
        }
    }
}

// f(j) for every map j in [0, k), the maps split over up to `threads` threads (<= 0: all cores).
template <class F>
void for_maps(int64_t k, int64_t values, int threads, F&& f) {
    int64_t nt = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
    nt = std::min<int64_t>(nt, k);
    if (values < (int64_t(1) << 15)) nt = 1;  // not worth a thread
    if (nt <= 1) {
        for (int64_t j = 0; j < k; ++j) f(j);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(nt);
    for (int64_t t = 0; t < nt; ++t)
        pool.emplace_back([&, t] {
            try {
                for (int64_t j = t; j < k; j += nt) f(j);
            } catch (...) {
                errors[t] = std::current_exception();
            }
        });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

// Per (map, group, class) cell statistics of planes a (k, h, w) with their neighbour sums nb.
void plane_stats(const int32_t* a, const int32_t* nb, int64_t j, int64_t hw, int64_t w, const Layout& L,
                 int64_t groups_per_map, double* pn, double* pn0, double* pt) {
    const int64_t cells = groups_per_map * 2 * kPassClasses;
    std::vector<int64_t> n(cells, 0), n0(cells, 0), tot(cells, 0);
    const int32_t* cur = a + j * hw;
    plane_classes(cur, j > 0 ? cur - hw : nullptr, nb + j * hw, j > 0 ? nb + (j - 1) * hw : nullptr, w, L,
                  [&](const Band& b, int64_t i, int cls) {
                      const int64_t cell = b.grp * 2 * kPassClasses + cls;
                      const int32_t v = cur[i];
                      n[cell] += 1;
                      n0[cell] += v == 0;
                      tot[cell] += v;
                  });
    for (int64_t c = 0; c < cells; ++c) {
        pn[j * cells + c] = static_cast<double>(n[c]);
        pn0[j * cells + c] = static_cast<double>(n0[c]);
        pt[j * cells + c] = static_cast<double>(tot[c]);
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
        for_maps(k, k * hw, threads, [&](int64_t j) { plane_stats(a, nb, j, hw, w, L, groups_per_map, pn, pn0, pt); });
    }
};

py::array_t<uint8_t> checker_classes_all(const I32Array& absq, const LayoutIn& bands_in,
                                         const std::vector<int64_t>& parents, int threads) {
    if (absq.ndim() != 3) throw std::invalid_argument("absq must be (k, H, W)");
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2), hw = h * w;
    const Layout L = checked_layout(h, w, bands_in, parents);
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
    const Layout L = checked_layout(h, w, bands_in, parents);
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

// One step of the rate search: the dead-zone quantizer of coefficients c (k, H, W) at per-coefficient steps
// (H, W) (coefmaps.quantize: mag = floor(|c / step| + deadzone)), then checker_cell_stats of the |symbols|,
// without materialising anything in Python.  Also per map: [nonzero count, sum of (mag - a) over nonzeros,
// sum of (mag - a)^2 over nonzeros, sum of a^2 over zeros] with a = |c / step|, and its largest |symbol|.
py::tuple checker_price(const F64Array& coeffs, const F64Array& steps, double deadzone, const LayoutIn& bands_in,
                        const std::vector<int64_t>& parents, int64_t groups_per_map, int threads) {
    check_coeffs_steps(coeffs, steps);
    const int64_t k = coeffs.shape(0), h = coeffs.shape(1), w = coeffs.shape(2), hw = h * w;
    const Layout L = checked_layout(h, w, bands_in, parents);
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
        std::vector<int32_t> absq(k * hw), nb(k * hw, 0);
        for_maps(k, k * hw, threads, [&](int64_t j) {
            const double* cj = c + j * hw;
            int32_t* qj = absq.data() + j * hw;
            int64_t nnz = 0;
            double e1 = 0.0, e2 = 0.0, z2 = 0.0;
            int32_t mx = 0;
            for (int64_t i = 0; i < hw; ++i) {
                const double a = std::fabs(cj[i] / s[i]);
                const double mag = std::floor(a + deadzone);
                if (!(mag < 2147483647.0)) {  // too large for the context arithmetic (or NaN)
                    overflow[j] = 1;
                    return;
                }
                const auto m = static_cast<int32_t>(mag);
                qj[i] = m;
                mx = std::max(mx, m);
                if (m > 0) {
                    const double e = mag - a;
                    ++nnz;
                    e1 += e;
                    e2 += e * e;
                } else {
                    z2 += a * a;
                }
            }
            maxabs[j] = mx;
            ps[j * 4 + 0] = static_cast<double>(nnz);
            ps[j * 4 + 1] = e1;
            ps[j * 4 + 2] = e2;
            ps[j * 4 + 3] = z2;
            plane_neighbours(qj, w, L, nb.data() + j * hw);
        });
        if (std::find(overflow.begin(), overflow.end(), 1) == overflow.end())
            st.fill(absq.data(), nb.data(), k, hw, w, L, groups_per_map, threads);
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
            const double* cj = c + j * hw;
            int64_t* qj = q + j * hw;
            std::vector<double>& ej = excess[j];
            for (int64_t i = 0; i < hw; ++i) {
                const double u = cj[i] / s[i];
                const double a = std::fabs(u);
                const double mag = std::floor(a + deadzone);
                if (pa) pa[j * hw + i] = a;
                qj[i] = static_cast<int64_t>(u > 0 ? mag : (u < 0 ? -mag : 0.0));
                if (mag > 0) ej.push_back(mag - a);
            }
        });
    }
    size_t total = 0;
    for (const auto& e : excess) total += e.size();
    py::array_t<double> ex(static_cast<int64_t>(total));
    double* pe = ex.mutable_data();
    for (const auto& e : excess) pe = std::copy(e.begin(), e.end(), pe);
    return py::make_tuple(sym, ex, want_a ? py::object(a_out) : py::object(py::none()));
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
        std::vector<double> T(rows * width);
        for (int64_t g = 0; g < G; ++g)
            for (int64_t cl : live[g]) {
                const int64_t cell = g * C + cl;
                const double a = n0[cell], b = n[cell] - n0[cell], t = tot[cell];
                double* row = T.data() + row_of[cell] * width;
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
                    const double* row = T.data() + row_of[g * C + cl] * width + pad + off[cl];
                    for (int64_t x = 0; x < m; ++x) out[x] = out[x] + row[x];
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
                    const double* row = T.data() + row_of[g * C + cl] * width + base[g];
                    double* out = cost.data() + cl * span;
                    for (int64_t o = 0; o < span; ++o) out[o] = out[o] + row[o];
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

// Context classes of the coefficient-map layer, scheme "checkerboard" (spec/hsim.md 10.5), for a whole
// set of known symbols: what the encoder's rate search computes for every (step, k) it prices.
// hsicodec/coefmaps.py (activity, checker_classes) is the reference; tests/test_coefmaps.py checks that
// both agree exactly. Integer arithmetic only.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace {

constexpr int64_t kEdges[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
constexpr int kPassClasses = 13;
constexpr int64_t kCap = int64_t(1) << 30;

struct Band {
    int64_t grp, ori, r0, r1, c0, c1;
    int64_t rows() const { return r1 - r0; }
    int64_t cols() const { return c1 - c0; }
};

inline uint8_t fine_class(int64_t t) {
    int c = 0;
    for (int64_t e : kEdges) c += (t >= e);
    return static_cast<uint8_t>(c);
}

// |N| + |S| + |W| + |E| of (r, c) inside band b of plane m (row stride w); 0 outside the band
inline int64_t neighbours(const int32_t* m, int64_t w, const Band& b, int64_t r, int64_t c) {
    int64_t s = 0;
    const int64_t rr = b.r0 + r, cc = b.c0 + c;
    if (r > 0) s += m[(rr - 1) * w + cc];
    if (r + 1 < b.rows()) s += m[(rr + 1) * w + cc];
    if (c > 0) s += m[rr * w + cc - 1];
    if (c + 1 < b.cols()) s += m[rr * w + cc + 1];
    return s;
}

using LayoutIn = std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>;
using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

std::vector<Band> checked_layout(const I32Array& absq, const LayoutIn& bands_in, const std::vector<int64_t>& parents) {
    if (absq.ndim() != 3) throw std::invalid_argument("absq must be (k, H, W)");
    const int64_t h = absq.shape(1), w = absq.shape(2);
    std::vector<Band> bands;
    for (const auto& t : bands_in) {
        Band b{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t), std::get<5>(t)};
        if (b.r0 < 0 || b.r1 > h || b.c0 < 0 || b.c1 > w || b.r0 > b.r1 || b.c0 > b.c1 || b.ori < 0 || b.ori > 3 ||
            b.grp < 0)
            throw std::invalid_argument("subband outside the maps");
        bands.push_back(b);
    }
    if (parents.size() != bands.size()) throw std::invalid_argument("one parent index per subband");
    for (size_t i = 0; i < bands.size(); ++i) {
        if (parents[i] >= static_cast<int64_t>(i)) throw std::invalid_argument("a parent must be an earlier subband");
        if (bands[i].ori >= 2 && static_cast<int64_t>(i) < bands[i].ori - 1)
            throw std::invalid_argument("siblings must be earlier subbands");
    }
    return bands;
}

// nb[i] = |N| + |S| + |W| + |E| of every symbol of plane m inside its own subband (0 outside it)
void neighbour_sums(const int32_t* m, int64_t w, const std::vector<Band>& bands, std::vector<int64_t>& nb) {
    for (const Band& b : bands)
        for (int64_t r = 0; r < b.rows(); ++r)
            for (int64_t c = 0; c < b.cols(); ++c) nb[(b.r0 + r) * w + b.c0 + c] = neighbours(m, w, b, r, c);
}

// Calls sink(map, band, flat index, class) for every symbol, in no particular order.
template <class Sink>
void walk_classes(const int32_t* a, int64_t k, int64_t h, int64_t w, const std::vector<Band>& bands,
                  const std::vector<int64_t>& parents, Sink&& sink) {
    std::vector<int64_t> nb_cur(h * w, 0), nb_prev(h * w, 0);
    for (int64_t j = 0; j < k; ++j) {
        const int32_t* cur = a + j * h * w;
        const int32_t* prev = j > 0 ? a + (j - 1) * h * w : nullptr;
        std::swap(nb_cur, nb_prev);  // the previous map's sums, computed last time round
        neighbour_sums(cur, w, bands, nb_cur);
        for (size_t bi = 0; bi < bands.size(); ++bi) {
            const Band& b = bands[bi];
            const Band* par = parents[bi] >= 0 && bands[parents[bi]].rows() > 0 && bands[parents[bi]].cols() > 0
                                  ? &bands[parents[bi]] : nullptr;
            const Band* sib1 = b.ori >= 2 ? &bands[bi - 1] : nullptr;  // LH: HL; HH: HL and LH
            const Band* sib2 = b.ori == 3 ? &bands[bi - 2] : nullptr;
            if (sib1 && (sib1->rows() == 0 || sib1->cols() == 0)) sib1 = nullptr;
            if (sib2 && (sib2->rows() == 0 || sib2->cols() == 0)) sib2 = nullptr;
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
                    sink(j, b, i, static_cast<int>(fine_class(std::min<int64_t>(t, 64)) + (late ? kPassClasses : 0)));
                }
            }
        }
    }
}

py::array_t<uint8_t> checker_classes_all(const I32Array& absq, const LayoutIn& bands_in,
                                         const std::vector<int64_t>& parents) {
    const auto bands = checked_layout(absq, bands_in, parents);
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2);
    py::array_t<uint8_t> out({k, h, w});
    uint8_t* o = out.mutable_data();
    std::fill(o, o + k * h * w, uint8_t(0));
    const int32_t* a = absq.data();
    {
        py::gil_scoped_release release;
        walk_classes(a, k, h, w, bands, parents, [&](int64_t j, const Band&, int64_t i, int cls) {
            o[j * h * w + i] = static_cast<uint8_t>(cls);
        });
    }
    return out;
}

// Per (map, level group, class) cell: symbol count, zero count and sum of |q| (what fit_codes needs).
py::tuple checker_cell_stats(const I32Array& absq, const LayoutIn& bands_in, const std::vector<int64_t>& parents,
                             int64_t groups_per_map) {
    const auto bands = checked_layout(absq, bands_in, parents);
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2);
    for (const auto& b : bands)
        if (b.grp >= groups_per_map) throw std::invalid_argument("a subband's group is past groups_per_map");
    const int64_t cells = k * groups_per_map * 2 * kPassClasses;
    py::array_t<double> n(cells), n0(cells), tot(cells);
    double *pn = n.mutable_data(), *pn0 = n0.mutable_data(), *pt = tot.mutable_data();
    std::fill(pn, pn + cells, 0.0);
    std::fill(pn0, pn0 + cells, 0.0);
    std::fill(pt, pt + cells, 0.0);
    const int32_t* a = absq.data();
    {
        py::gil_scoped_release release;
        walk_classes(a, k, h, w, bands, parents, [&](int64_t j, const Band& b, int64_t i, int cls) {
            const int64_t cell = (j * groups_per_map + b.grp) * 2 * kPassClasses + cls;
            const int32_t v = a[j * h * w + i];
            pn[cell] += 1.0;
            pn0[cell] += v == 0;
            pt[cell] += v;
        });
    }
    return py::make_tuple(n, n0, tot);
}

}  // namespace

void register_context_classes(py::module_& mod) {
    mod.def("checker_classes_all", &checker_classes_all, py::arg("absq"), py::arg("bands"), py::arg("parents"),
            "Scheme 'checkerboard' context classes (k, H, W) uint8 of known |symbols| absq (k, H, W) int32;\n"
            "bands: (group, orientation, row0, row1, col0, col1) in coding order, parents: parent index or -1.");
    mod.def("checker_cell_stats", &checker_cell_stats, py::arg("absq"), py::arg("bands"), py::arg("parents"),
            py::arg("groups_per_map"),
            "(n, n0, tot) float64 (k * groups_per_map * 26,): per (map, level group, class) cell the symbol\n"
            "count, zero count and sum of |q| of known |symbols| absq (k, H, W) int32 (same layout as\n"
            "checker_classes_all).");
}

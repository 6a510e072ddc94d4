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

py::array_t<uint8_t> checker_classes_all(
        const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& absq,
        const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>& bands_in,
        const std::vector<int64_t>& parents) {
    if (absq.ndim() != 3) throw std::invalid_argument("absq must be (k, H, W)");
    const int64_t k = absq.shape(0), h = absq.shape(1), w = absq.shape(2);
    std::vector<Band> bands;
    for (const auto& t : bands_in) {
        Band b{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t), std::get<5>(t)};
        if (b.r0 < 0 || b.r1 > h || b.c0 < 0 || b.c1 > w || b.r0 > b.r1 || b.c0 > b.c1 || b.ori < 0 || b.ori > 3)
            throw std::invalid_argument("subband outside the maps");
        bands.push_back(b);
    }
    if (parents.size() != bands.size()) throw std::invalid_argument("one parent index per subband");
    for (size_t i = 0; i < bands.size(); ++i) {
        if (parents[i] >= static_cast<int64_t>(bands.size()) || parents[i] >= static_cast<int64_t>(i))
            throw std::invalid_argument("a parent must be an earlier subband");
        if (bands[i].ori >= 2 && static_cast<int64_t>(i) < bands[i].ori - 1)
            throw std::invalid_argument("siblings must be earlier subbands");
    }
    py::array_t<uint8_t> out({k, h, w});
    const int32_t* a = absq.data();
    uint8_t* o = out.mutable_data();
    std::fill(o, o + k * h * w, uint8_t(0));
    {
        py::gil_scoped_release release;
        for (int64_t j = 0; j < k; ++j) {
            const int32_t* cur = a + j * h * w;
            const int32_t* prev = j > 0 ? a + (j - 1) * h * w : nullptr;
            uint8_t* oc = o + j * h * w;
            for (size_t bi = 0; bi < bands.size(); ++bi) {
                const Band& b = bands[bi];
                const Band* par = parents[bi] >= 0 ? &bands[parents[bi]] : nullptr;
                for (int64_t r = 0; r < b.rows(); ++r) {
                    for (int64_t c = 0; c < b.cols(); ++c) {
                        int64_t t = 0;
                        if (prev) t += 2 * int64_t(prev[(b.r0 + r) * w + b.c0 + c]) + neighbours(prev, w, b, r, c) / 4;
                        if (par && par->rows() > 0 && par->cols() > 0) {
                            const int64_t pr = std::min(r / 2, par->rows() - 1), pc = std::min(c / 2, par->cols() - 1);
                            t += cur[(par->r0 + pr) * w + par->c0 + pc] + neighbours(cur, w, *par, pr, pc) / 4;
                        }
                        for (int64_t s = static_cast<int64_t>(bi) - b.ori + 1; b.ori >= 2 && s < static_cast<int64_t>(bi); ++s) {
                            const Band& sb = bands[s];
                            if (sb.rows() == 0 || sb.cols() == 0) continue;
                            t += cur[(sb.r0 + std::min(r, sb.rows() - 1)) * w + sb.c0 + std::min(c, sb.cols() - 1)];
                        }
                        t = std::min(t, kCap);
                        const bool late = (r + c) % 2 == 1;
                        if (late) t += neighbours(cur, w, b, r, c);  // all four are first-pass symbols
                        oc[(b.r0 + r) * w + b.c0 + c] =
                            static_cast<uint8_t>(fine_class(std::min<int64_t>(t, 64)) + (late ? kPassClasses : 0));
                    }
                }
            }
        }
    }
    return out;
}

}  // namespace

void register_context_classes(py::module_& mod) {
    mod.def("checker_classes_all", &checker_classes_all, py::arg("absq"), py::arg("bands"), py::arg("parents"),
            "Scheme 'checkerboard' context classes (k, H, W) uint8 of known |symbols| absq (k, H, W) int32;\n"
            "bands: (group, orientation, row0, row1, col0, col1) in coding order, parents: parent index or -1.");
}

// The offset codes of the coefficient-map layer's trained reconstruction table (rl.rt = 1, spec/hsim.md 10.13):
//   recon_offset_codes(sym, table, bands, parents, threads) -> (k, H, W) uint8
// sym: (k, H, W) int32 (what map_decode gives) or int64 symbols; table: the 24 codes already shifted by the file's
// ro (clip(T + ro - 8, 0, 24)); bands, parents: the subband layout as coding._native_layout gives it. The code of a
// nonzero symbol is table[8 (min(|s|, 3) - 1) + bucket(u)], u = the |s| of its 8 neighbours in its subband + twice
// its parent's + those at the same place in the maps before and after it; zeros get 8 (no offset).
// hsicodec/layers/maps/recon.py (offset_codes_reference) is the reference; tests check both agree exactly.
// Every map's codes are its own (it only reads its neighbours), so maps go to threads and results do not depend
// on the thread count.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "map_layout.h"
#include "parallel.h"

namespace py = pybind11;

namespace {

using namespace hsi_layout;

constexpr int64_t kReconEdges[] = {1, 2, 3, 5, 8, 12, 18};
constexpr int kBuckets = 8;
constexpr int kMagBins = 3;
constexpr int kCells = kMagBins * kBuckets;
constexpr uint8_t kNoOffset = 8;

inline int64_t mag(int64_t v) { return v < 0 ? -v : v; }

template <class Sym>
void plane_codes(const Sym* cur, const Sym* prev, const Sym* next, int64_t w, const Layout& L, const uint8_t* table,
                 uint8_t* out) {
    for (size_t bi = 0; bi < L.bands.size(); ++bi) {
        const Band& b = L.bands[bi];
        const Band* par = L.parent[bi];
        const int64_t rows = b.rows(), cols = b.cols();
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row0 = (b.r0 + r) * w + b.c0;
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t i = row0 + c;
                const int64_t a = mag(cur[i]);
                if (a == 0) {
                    out[i] = kNoOffset;
                    continue;
                }
                int64_t u = 0;
                for (int64_t dr = -1; dr <= 1; ++dr) {
                    const int64_t rr = r + dr;
                    if (rr < 0 || rr >= rows) continue;
                    for (int64_t dc = -1; dc <= 1; ++dc) {
                        const int64_t cc = c + dc;
                        if ((dr == 0 && dc == 0) || cc < 0 || cc >= cols) continue;
                        u += mag(cur[(b.r0 + rr) * w + b.c0 + cc]);
                    }
                }
                if (par) {
                    const int64_t pr = std::min(r / 2, par->rows() - 1), pc = std::min(c / 2, par->cols() - 1);
                    u += 2 * mag(cur[(par->r0 + pr) * w + par->c0 + pc]);
                }
                if (prev) u += mag(prev[i]);
                if (next) u += mag(next[i]);
                int bucket = 0;
                for (int64_t e : kReconEdges) bucket += (u >= e);
                out[i] = table[(std::min<int64_t>(a, kMagBins) - 1) * kBuckets + bucket];
            }
        }
    }
}

template <class Sym>
py::array_t<uint8_t> recon_offset_codes(const py::array_t<Sym, py::array::c_style>& sym,
                                        const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& table,
                                        const LayoutIn& bands_in, const std::vector<int64_t>& parents, int threads) {
    if (sym.ndim() != 3) throw std::invalid_argument("recon_offset_codes: symbols must be (k, H, W)");
    if (table.ndim() != 1 || table.shape(0) != kCells) throw std::invalid_argument("recon_offset_codes: 24 codes");
    const int64_t k = sym.shape(0), h = sym.shape(1), w = sym.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, true);
    py::array_t<uint8_t> out({k, h, w});
    uint8_t* o = out.mutable_data();
    const Sym* s = sym.data();
    uint8_t t[kCells];
    std::copy(table.data(), table.data() + kCells, t);
    {
        py::gil_scoped_release release;
        hsicodec_native::parallel_for(k, threads, [&](int64_t j) {
            const Sym* cur = s + j * hw;
            plane_codes(cur, j > 0 ? cur - hw : nullptr, j + 1 < k ? cur + hw : nullptr, w, L, t, o + j * hw);
        });
    }
    return out;
}

}  // namespace

void register_recon_table(py::module_& mod) {
    const char* doc = "Offset codes (k, H, W) uint8 of the trained reconstruction table (spec/hsim.md 10.13).";
    mod.def("recon_offset_codes", &recon_offset_codes<int32_t>, py::arg("sym").noconvert(), py::arg("table"),
            py::arg("bands"), py::arg("parents"), py::arg("threads") = 0, doc);
    mod.def("recon_offset_codes", &recon_offset_codes<int64_t>, py::arg("sym").noconvert(), py::arg("table"),
            py::arg("bands"), py::arg("parents"), py::arg("threads") = 0, doc);
}

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
#include <initializer_list>
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
void plane_codes(const Sym* cur, const Sym* prev, const Sym* next, int64_t w, int64_t hw, const Layout& L,
                 const uint8_t* table, uint8_t* out) {
    std::fill(out, out + hw, kNoOffset);  // the zeros' code; most symbols are zeros
    for (size_t bi = 0; bi < L.bands.size(); ++bi) {
        const Band& b = L.bands[bi];
        const Band* par = L.parent[bi];
        const int64_t rows = b.rows(), cols = b.cols();
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row0 = (b.r0 + r) * w + b.c0;
            const Sym* row = cur + row0;
            const Sym* up = r > 0 ? row - w : nullptr;
            const Sym* down = r + 1 < rows ? row + w : nullptr;
            const Sym* prow = par ? cur + (par->r0 + std::min(r / 2, par->rows() - 1)) * w + par->c0 : nullptr;
            for (int64_t c = 0; c < cols; ++c) {
                if (c + 4 <= cols && (row[c] | row[c + 1] | row[c + 2] | row[c + 3]) == 0) {  // runs of zeros
                    c += 3;
                    continue;
                }
                const int64_t a = mag(row[c]);
                if (a == 0) continue;
                const bool left = c > 0, right = c + 1 < cols;
                int64_t u = (left ? mag(row[c - 1]) : 0) + (right ? mag(row[c + 1]) : 0);
                for (const Sym* nb : {up, down}) {
                    if (!nb) continue;
                    u += mag(nb[c]) + (left ? mag(nb[c - 1]) : 0) + (right ? mag(nb[c + 1]) : 0);
                }
                if (prow) u += 2 * mag(prow[std::min(c / 2, par->cols() - 1)]);
                if (prev) u += mag(prev[row0 + c]);
                if (next) u += mag(next[row0 + c]);
                int bucket = 0;
                for (int64_t e : kReconEdges) bucket += (u >= e);
                out[row0 + c] = table[(std::min<int64_t>(a, kMagBins) - 1) * kBuckets + bucket];
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
            plane_codes(cur, j > 0 ? cur - hw : nullptr, j + 1 < k ? cur + hw : nullptr, w, hw, L, t, o + j * hw);
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

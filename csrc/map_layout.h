// The subband layout of the coefficient maps and the context classes of scheme "checkerboard" (spec/hsim.md
// 10.5), shared by the encoder's pricing (context_classes.cpp) and the entropy coder (map_coder.cpp): one
// class logic, in one place. Everything here is inline (each translation unit its own copy).

#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <tuple>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define HSI_LAYOUT_AVX2 1
#endif

#include "cpu_features.h"

namespace hsi_layout {

inline constexpr int64_t kEdges[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
inline constexpr int kPassClasses = 13;
inline constexpr int64_t kTop = 64;                 // t at or past the last edge: the last class
inline constexpr int64_t kCap = int64_t(1) << 30;   // activities are capped here (as in the reference)
inline constexpr int64_t kNbCap = int64_t(1) << 30; // neighbour sums saturate here: any t >= kTop has the last class

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
inline const FineLut kFine;

struct Band {
    int64_t grp, ori, r0, r1, c0, c1;
    int64_t rows() const { return r1 - r0; }
    int64_t cols() const { return c1 - c0; }
    bool empty() const { return rows() == 0 || cols() == 0; }
};

// The subbands in coding order, each with its parent and siblings (nullptr: none, or an empty subband). The
// pointers are into `bands`: a Layout is moved, never copied, once made (the decoder's boxed copy re-points
// nothing: its pointers stay into the original's subbands, the same boxes).
struct Layout {
    int64_t h = 0, w = 0, groups = 0;
    std::vector<Band> bands;
    std::vector<const Band*> parent, sib1, sib2;
    std::vector<char> has_parent;  // a parent index, even of an empty subband (the learned model's flag)
};

using LayoutIn = std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>;

// The layout of subbands (grp, ori, r0, r1, c0, c1) of (h, w) maps with their parent indices, checked;
// `whole`: the subbands must also tile the maps and have at most 65 level groups (what a stream declares).
inline Layout make_layout(int64_t h, int64_t w, const LayoutIn& bands_in, const std::vector<int64_t>& parents,
                          bool whole) {
    Layout L;
    L.h = h;
    L.w = w;
    for (const auto& t : bands_in) {
        Band b{std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t), std::get<4>(t), std::get<5>(t)};
        if (b.r0 < 0 || b.r1 > h || b.c0 < 0 || b.c1 > w || b.r0 > b.r1 || b.c0 > b.c1 || b.ori < 0 || b.ori > 3 ||
            b.grp < 0 || (whole && b.grp > 64))
            throw std::invalid_argument("subband outside the maps");
        L.groups = std::max(L.groups, b.grp + 1);
        L.bands.push_back(b);
    }
    if (parents.size() != L.bands.size()) throw std::invalid_argument("one parent index per subband");
    const auto n = static_cast<int64_t>(L.bands.size());
    int64_t covered = 0;
    for (int64_t i = 0; i < n; ++i) {
        const Band& b = L.bands[i];
        covered += b.rows() * b.cols();
        if (parents[i] >= i) throw std::invalid_argument("a parent must be an earlier subband");
        if (b.ori >= 2 && i < b.ori - 1) throw std::invalid_argument("siblings must be earlier subbands");
        const Band* par = parents[i] >= 0 && !L.bands[parents[i]].empty() ? &L.bands[parents[i]] : nullptr;
        const Band* s1 = b.ori >= 2 ? &L.bands[i - 1] : nullptr;  // LH: HL; HH: HL and LH
        const Band* s2 = b.ori == 3 ? &L.bands[i - 2] : nullptr;
        L.parent.push_back(par);
        L.has_parent.push_back(parents[i] >= 0);
        L.sib1.push_back(s1 && !s1->empty() ? s1 : nullptr);
        L.sib2.push_back(s2 && !s2->empty() ? s2 : nullptr);
    }
    if (whole && covered != h * w) throw std::invalid_argument("the subbands must tile the map");
    return L;
}

// nb[i] = |N| + |S| + |W| + |E| of every symbol of plane m inside its own subband (0 outside it), saturated:
// one subband (band_neighbours) or all of them (plane_neighbours)
inline void band_neighbours(const int32_t* m, int64_t w, const Band& b, int32_t* nb) {
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

inline void plane_neighbours(const int32_t* m, int64_t w, const Layout& L, int32_t* nb) {
    for (const Band& b : L.bands) band_neighbours(m, w, b, nb);
}

#ifdef HSI_LAYOUT_AVX2
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // vector values passed between these avx2 functions only (inlined)
__attribute__((target("avx2"))) inline __m256i row8(const int32_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// p[0], p[0], p[1], p[1], .. p[3], p[3]: the parents of 8 columns from an even one
__attribute__((target("avx2"))) inline __m256i parent8(const int32_t* p, __m256i dup) {
    return _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), dup);
}

// Columns [0, n) of row_classes 8 at a time (n a multiple of 8, every read inside its row), in 32-bit lanes: each
// term is saturated at kTop first. All terms are >= 0 and every t >= kTop has the last class, so the saturated sum
// has the class of the exact one; the classes are the reference's, bit for bit. `odd`: row + first column is odd.
__attribute__((target("avx2"))) inline void row_classes_avx2(const int32_t* pv, const int32_t* pnb, const int32_t* nbc,
                                                             const int32_t* pa, const int32_t* pnbr, const int32_t* s1,
                                                             const int32_t* s2, int64_t n, bool odd, uint8_t* out) {
    const __m256i top = _mm256_set1_epi32(static_cast<int>(kTop)), half = _mm256_set1_epi32(static_cast<int>(kTop / 2));
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);  // the parent of columns c.. is at c / 2..
    const __m256i late = odd ? _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0) : _mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1);
    const __m256i pass = _mm256_and_si256(late, _mm256_set1_epi32(kPassClasses));
    for (int64_t c = 0; c < n; c += 8) {
        const __m256i p2 = _mm256_min_epi32(row8(pv + c), half);
        __m256i t = _mm256_add_epi32(p2, p2);
        t = _mm256_add_epi32(t, _mm256_min_epi32(_mm256_srli_epi32(row8(pnb + c), 2), top));
        t = _mm256_add_epi32(t, _mm256_min_epi32(parent8(pa + c / 2, dup), top));
        t = _mm256_add_epi32(t, _mm256_min_epi32(_mm256_srli_epi32(parent8(pnbr + c / 2, dup), 2), top));
        t = _mm256_add_epi32(t, _mm256_min_epi32(row8(s1 + c), top));
        t = _mm256_add_epi32(t, _mm256_min_epi32(row8(s2 + c), top));
        t = _mm256_add_epi32(t, _mm256_and_si256(late, _mm256_min_epi32(row8(nbc + c), top)));
        __m256i cls = pass;
        for (const int64_t e : kEdges)  // class = the edges at or below t: (t > e - 1) is -1 where so
            cls = _mm256_sub_epi32(cls, _mm256_cmpgt_epi32(t, _mm256_set1_epi32(static_cast<int>(e - 1))));
        const __m256i b16 = _mm256_packs_epi32(cls, cls);  // lanes: c0-3 c0-3 | c4-7 c4-7
        const __m256i b8 = _mm256_packus_epi16(b16, b16);
        const int32_t lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b8)), hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(b8, 1));
        std::copy_n(reinterpret_cast<const uint8_t*>(&lo), 4, out + c);
        std::copy_n(reinterpret_cast<const uint8_t*>(&hi), 4, out + c + 4);
    }
}

#pragma GCC diagnostic pop

// hsicodec_native::use_avx2, read once (at the first row).
inline bool row_classes_vector() {
    static const bool on = hsicodec_native::use_avx2();
    return on;
}
#endif

// The classes of row r of band bi of plane `cur` (prev: the previous map or nullptr) into out[0, cols): the
// class logic, in one place. Branch-free over the row (the optional terms read a row of zeros instead, which is
// as wide as any band). The columns whose parent and siblings need no clamping go 8 at a time (AVX2).
inline void row_classes(const int32_t* cur, const int32_t* prev, const int32_t* nb_cur, const int32_t* nb_prev, int64_t w,
                 const Layout& L, size_t bi, int64_t r, const int32_t* zeros, uint8_t* __restrict out) {
    const Band& b = L.bands[bi];
    const Band *par = L.parent[bi], *sib1 = L.sib1[bi], *sib2 = L.sib2[bi];
    const int64_t row = (b.r0 + r) * w + b.c0, cols = b.cols();
    const int32_t* __restrict pv = prev ? prev + row : zeros;
    const int32_t* __restrict pnb = prev ? nb_prev + row : zeros;
    const int32_t* __restrict nbc = nb_cur + row;
    // parent and siblings: their row (clamped like the reference) and last column; none: a row of zeros
    const int32_t* __restrict pa = par ? cur + (par->r0 + std::min(r / 2, par->rows() - 1)) * w + par->c0 : zeros;
    const int32_t* __restrict pnbr = par ? nb_cur + (pa - cur) : zeros;
    const int64_t plast = par ? par->cols() - 1 : 0;
    const int32_t* __restrict s1 = sib1 ? cur + (sib1->r0 + std::min(r, sib1->rows() - 1)) * w + sib1->c0 : zeros;
    const int64_t s1last = sib1 ? sib1->cols() - 1 : 0;
    const int32_t* __restrict s2 = sib2 ? cur + (sib2->r0 + std::min(r, sib2->rows() - 1)) * w + sib2->c0 : zeros;
    const int64_t s2last = sib2 ? sib2->cols() - 1 : 0;
    int64_t c = 0;
#ifdef HSI_LAYOUT_AVX2
    if (row_classes_vector()) {  // columns read unclamped: c / 2 + 3 <= plast, c + 7 <= s1last, s2last
        int64_t lim = cols;
        if (par) lim = std::min(lim, 2 * plast + 2);
        if (sib1) lim = std::min(lim, s1last + 1);
        if (sib2) lim = std::min(lim, s2last + 1);
        c = std::max<int64_t>(lim, 0) / 8 * 8;
        if (c) row_classes_avx2(pv, pnb, nbc, pa, pnbr, s1, s2, c, (r & 1) != 0, out);
    }
#endif
    for (; c < cols; ++c) {
        const int64_t pc = std::min(c >> 1, plast);  // symbols and neighbour sums are >= 0: shifts divide
        int64_t t = 2 * int64_t(pv[c]) + (pnb[c] >> 2);
        t += int64_t(pa[pc]) + (pnbr[pc] >> 2);
        t += int64_t(s1[std::min(c, s1last)]) + int64_t(s2[std::min(c, s2last)]);
        t = std::min(t, kCap);
        const int64_t late = (r + c) & 1;  // all four neighbours are first-pass symbols
        t += late * int64_t(nbc[c]);
        out[c] = static_cast<uint8_t>(kFine.v[std::min(t, kTop)] + late * kPassClasses);
    }
}

// The widest band's columns (the row buffers of row_classes).
inline int64_t widest(const Layout& L) {
    int64_t m = 1;
    for (const Band& b : L.bands) m = std::max(m, b.cols());
    return m;
}

}  // namespace hsi_layout

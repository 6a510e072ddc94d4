// The spectral reconstruction, fused: out = cast(maps x basis + mean) in one pass over the output.
//
//   reconstruct_cast(coeffs, norm, basis, mean, out, threads) -> number of NaN values met
//       the whole reconstruction fused, pixel by pixel: out[r, c, :] = cast((coeffs[r, c, :] * norm) @ basis + mean)
//       with coeffs (h, w, k) float64, basis (k, nb), mean (nb,) float64 and out (h, w, nb) of uint8/int8/
//       uint16/int16/uint32/int32 (rounded half to even, clipped to the dtype's range: hsicodec.io.cast.
//       cast_to_dtype) or float32/float64 (float32: finite values clipped to +-FLT_MAX, infinities kept, then
//       rounded to nearest); out may have any row stride (a window of a larger cube). A NaN (integer targets)
//       is written as 0 and counted: the caller then redoes the call its own way.
//
// The values of one pixel stay in L1: nothing of the size of the cube is formed but the output, and the
// rounding is numpy's (vals + mean, np.rint, np.clip, astype). The dot products run over j = 0..k-1 in
// order, as fused multiply-adds (AVX2 + FMA or AVX-512F, chosen at run time: one sum per lane, so both
// give the same bits) or multiply then add (elsewhere): the same
// values as a BLAS product to the last bit or to one unit in it, so an integer output may differ from the
// numpy reference by one unit where a value sits on a rounding tie (spec/hsim.md, test vectors).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HSI_FUSED_AVX2 1
#endif

#include "cpu_features.h"
#include "parallel.h"

namespace py = pybind11;

namespace {

// x + mean rounded half to even (np.rint), NaN counted and made 0, clipped to [lo, hi], as Wide integers.
// SSE2 (the x86-64 baseline): the compiler does not vectorise these selects by itself (trapping math).
// rint: adding and taking away 2^52 rounds |x| in the default rounding mode, the sign put back after;
// |x| >= 2^52 is whole already.
template <class Wide>
int64_t round_clip_row(const double* v, const double* mean, Wide* out, int64_t nb, double lo, double hi) {
    int64_t nans = 0, b = 0;
#if defined(__SSE2__)
    if constexpr (std::is_same_v<Wide, int32_t>) {
        const __m128d sign = _mm_set1_pd(-0.0), big = _mm_set1_pd(0x1p52);
        const __m128d vlo = _mm_set1_pd(lo), vhi = _mm_set1_pd(hi);
        for (; b + 2 <= nb; b += 2) {
            const __m128d x = _mm_add_pd(_mm_loadu_pd(v + b), _mm_loadu_pd(mean + b));
            const __m128d ax = _mm_andnot_pd(sign, x);
            const __m128d r = _mm_or_pd(_mm_sub_pd(_mm_add_pd(ax, big), big), _mm_and_pd(sign, x));
            const __m128d small = _mm_cmplt_pd(ax, big);  // false for NaN
            __m128d y = _mm_or_pd(_mm_and_pd(small, r), _mm_andnot_pd(small, x));
            const __m128d nan = _mm_cmpunord_pd(x, x);
            nans += __builtin_popcount(_mm_movemask_pd(nan));
            y = _mm_andnot_pd(nan, y);  // NaN -> +0
            y = _mm_min_pd(_mm_max_pd(y, vlo), vhi);
            const __m128i q = _mm_cvttpd_epi32(y);
            out[b] = _mm_cvtsi128_si32(q);
            out[b + 1] = _mm_cvtsi128_si32(_mm_shuffle_epi32(q, 1));
        }
    }
#endif
    for (; b < nb; ++b) {
        const double x = v[b] + mean[b];
        const double ax = std::fabs(x);
        double y = ax < 0x1p52 ? std::copysign((ax + 0x1p52) - 0x1p52, x) : x;
        if (x != x) {
            ++nans;
            y = 0.0;
        }
        y = y < lo ? lo : (y > hi ? hi : y);
        out[b] = static_cast<Wide>(y);
    }
    return nans;
}

// ---------------------------------------------------------------------------
// the fused reconstruction

// v[b] = sum_j s[j] * basis[j, b], j in order: multiply then add (the compiler may contract on its own
// target only with FMA hardware; the baseline x86-64 build has none).
void dot_row_plain(const double* s, int64_t k, const double* basis, int64_t nb, double* v) {
    for (int64_t b = 0; b < nb; ++b) v[b] = 0.0;
    for (int64_t j = 0; j < k; ++j) {
        const double sj = s[j];
        const double* row = basis + j * nb;
        for (int64_t b = 0; b < nb; ++b) v[b] += sj * row[b];
    }
}

#if defined(HSI_FUSED_AVX2)
// The same sums as fused multiply-adds, 16 bands a step (four accumulators), as OpenBLAS's AVX2 kernels
// form a product's entries (an accumulator from zero, one FMA per j, in order).
// (basis: k rows of stride nb; the first n entries of each, n <= nb.)
__attribute__((target("avx2,fma"))) void dot_row_avx2(const double* s, int64_t k, const double* basis, int64_t nb,
                                                       double* v, int64_t n) {
    int64_t b = 0;
    for (; b + 16 <= n; b += 16) {
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t j = 0; j < k; ++j) {
            const __m256d sj = _mm256_broadcast_sd(s + j);
            const double* row = basis + j * nb + b;
            a0 = _mm256_fmadd_pd(sj, _mm256_loadu_pd(row), a0);
            a1 = _mm256_fmadd_pd(sj, _mm256_loadu_pd(row + 4), a1);
            a2 = _mm256_fmadd_pd(sj, _mm256_loadu_pd(row + 8), a2);
            a3 = _mm256_fmadd_pd(sj, _mm256_loadu_pd(row + 12), a3);
        }
        _mm256_storeu_pd(v + b, a0);
        _mm256_storeu_pd(v + b + 4, a1);
        _mm256_storeu_pd(v + b + 8, a2);
        _mm256_storeu_pd(v + b + 12, a3);
    }
    for (; b + 4 <= n; b += 4) {
        __m256d a0 = _mm256_setzero_pd();
        for (int64_t j = 0; j < k; ++j)
            a0 = _mm256_fmadd_pd(_mm256_broadcast_sd(s + j), _mm256_loadu_pd(basis + j * nb + b), a0);
        _mm256_storeu_pd(v + b, a0);
    }
    for (; b < n; ++b) {
        double a = 0.0;
        for (int64_t j = 0; j < k; ++j) a = std::fma(s[j], basis[j * nb + b], a);
        v[b] = a;
    }
}

// dot_row_avx2 of two pixels at once (s0, s1 -> v0, v1): each basis vector is loaded once for both, which
// halves the loads per FMA; every output is the same sum in the same order as dot_row_avx2's.
__attribute__((target("avx2,fma"))) void dot_rows2_avx2(const double* s0, const double* s1, int64_t k,
                                                         const double* basis, int64_t nb, double* v0, double* v1) {
    int64_t b = 0;
    for (; b + 16 <= nb; b += 16) {
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int64_t j = 0; j < k; ++j) {
            const double* row = basis + j * nb + b;
            const __m256d b0 = _mm256_loadu_pd(row), b1 = _mm256_loadu_pd(row + 4);
            const __m256d b2 = _mm256_loadu_pd(row + 8), b3 = _mm256_loadu_pd(row + 12);
            const __m256d x = _mm256_broadcast_sd(s0 + j), y = _mm256_broadcast_sd(s1 + j);
            a0 = _mm256_fmadd_pd(x, b0, a0);
            a1 = _mm256_fmadd_pd(x, b1, a1);
            a2 = _mm256_fmadd_pd(x, b2, a2);
            a3 = _mm256_fmadd_pd(x, b3, a3);
            c0 = _mm256_fmadd_pd(y, b0, c0);
            c1 = _mm256_fmadd_pd(y, b1, c1);
            c2 = _mm256_fmadd_pd(y, b2, c2);
            c3 = _mm256_fmadd_pd(y, b3, c3);
        }
        _mm256_storeu_pd(v0 + b, a0);
        _mm256_storeu_pd(v0 + b + 4, a1);
        _mm256_storeu_pd(v0 + b + 8, a2);
        _mm256_storeu_pd(v0 + b + 12, a3);
        _mm256_storeu_pd(v1 + b, c0);
        _mm256_storeu_pd(v1 + b + 4, c1);
        _mm256_storeu_pd(v1 + b + 8, c2);
        _mm256_storeu_pd(v1 + b + 12, c3);
    }
    if (b < nb) {  // the last bands, one pixel after the other
        dot_row_avx2(s0, k, basis + b, nb, v0 + b, nb - b);
        dot_row_avx2(s1, k, basis + b, nb, v1 + b, nb - b);
    }
}

// GCC 12 warns that the AVX-512 intrinsics' own undefined pass-through operands "may be used uninitialized"
// (a false positive inside avx512fintrin.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// The lanes of an 8-double vector that hold one of the `left` values still to do (all 8, some, or none).
inline __mmask8 lanes8(int64_t left) {
    return left >= 8 ? __mmask8(0xFF) : left <= 0 ? __mmask8(0) : __mmask8((1u << left) - 1u);
}

// dot_row_avx2 of P pixels at once with 512-bit vectors (s: P rows of k values, v: P rows of nb): 32 bands of
// the P pixels a step, each basis vector loaded once for all of them; the last (< 32) bands under masks.
// Each lane holds one output's sum, formed as in dot_row_avx2 (an accumulator from zero, one FMA per j, in
// order), so the outputs are bit for bit those of the AVX2 kernels; masked-off lanes are neither read nor
// written.
template <int P, bool Masked>
__attribute__((target("avx512f,avx2,fma"))) inline void block32_avx512(const double* s, int64_t k,
                                                                 const double* basis, int64_t nb, int64_t b,
                                                                 double* v, const __mmask8* m) {
    __m512d acc[P][4];
    for (int p = 0; p < P; ++p)
        for (int i = 0; i < 4; ++i) acc[p][i] = _mm512_setzero_pd();
    for (int64_t j = 0; j < k; ++j) {
        const double* row = basis + j * nb + b;
        __m512d bv[4];
        for (int i = 0; i < 4; ++i)
            bv[i] = Masked ? _mm512_maskz_loadu_pd(m[i], row + 8 * i) : _mm512_loadu_pd(row + 8 * i);
        for (int p = 0; p < P; ++p) {
            const __m512d x = _mm512_set1_pd(s[p * k + j]);
            for (int i = 0; i < 4; ++i) acc[p][i] = _mm512_fmadd_pd(x, bv[i], acc[p][i]);
        }
    }
    for (int p = 0; p < P; ++p)
        for (int i = 0; i < 4; ++i) {
            if (Masked)
                _mm512_mask_storeu_pd(v + p * nb + b + 8 * i, m[i], acc[p][i]);
            else
                _mm512_storeu_pd(v + p * nb + b + 8 * i, acc[p][i]);
        }
}

template <int P>
__attribute__((target("avx512f,avx2,fma"))) void dot_rows_avx512(const double* s, int64_t k, const double* basis,
                                                          int64_t nb, double* v) {
    int64_t b = 0;
    for (; b + 32 <= nb; b += 32) block32_avx512<P, false>(s, k, basis, nb, b, v, nullptr);
    if (b < nb) {
        const __mmask8 m[4] = {lanes8(nb - b), lanes8(nb - b - 8), lanes8(nb - b - 16), lanes8(nb - b - 24)};
        block32_avx512<P, true>(s, k, basis, nb, b, v, m);
    }
}

// cast(v + mean) for 16-bit integer outputs, four values a step: round half to even, NaN -> 0 (counted),
// clip, pack (the values are in range by then: packing does not saturate).
template <class T>
__attribute__((target("avx2,fma"))) int64_t finish16_avx2(const double* v, const double* mean, T* out, int64_t nb) {
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
    const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
    int64_t nans = 0, b = 0;
    for (; b + 4 <= nb; b += 4) {
        const __m256d x = _mm256_add_pd(_mm256_loadu_pd(v + b), _mm256_loadu_pd(mean + b));
        const __m256d nan = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
        nans += __builtin_popcount(_mm256_movemask_pd(nan));
        __m256d y = _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        y = _mm256_min_pd(_mm256_max_pd(_mm256_andnot_pd(nan, y), vlo), vhi);
        const __m128i q = _mm256_cvttpd_epi32(y);
        const __m128i p = std::is_signed_v<T> ? _mm_packs_epi32(q, q) : _mm_packus_epi32(q, q);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + b), p);
    }
    if (b < nb) {
        int32_t tail[4];
        nans += round_clip_row<int32_t>(v + b, mean + b, tail, nb - b, lo, hi);
        for (int64_t i = 0; i < nb - b; ++i) out[b + i] = static_cast<T>(tail[i]);
    }
    return nans;
}

// finish16_avx512's eight values at b (lanes outside m neither read nor counted), rounded and clipped as int32.
__attribute__((target("avx512f,avx2,fma"))) inline __m256i finish8_avx512(const double* v, const double* mean,
                                                                   __mmask8 m, __m512d vlo, __m512d vhi,
                                                                   int64_t& nans) {
    const __m512d x = _mm512_add_pd(_mm512_maskz_loadu_pd(m, v), _mm512_maskz_loadu_pd(m, mean));
    const __mmask8 nan = _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q);
    nans += __builtin_popcount(static_cast<unsigned>(nan & m));
    __m512d y = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    y = _mm512_min_pd(_mm512_max_pd(_mm512_maskz_mov_pd(static_cast<__mmask8>(~nan), y), vlo), vhi);
    return _mm512_cvttpd_epi32(y);
}

// finish16_avx2 with 512-bit vectors, sixteen values a step, the last ones under masks: the same rounding,
// NaN count and clip, so the same outputs (the values are in T's range when packed: vpmovdw keeps their
// 16 low bits).
template <class T>
__attribute__((target("avx512f,avx2,fma"))) int64_t finish16_avx512(const double* v, const double* mean, T* out,
                                                             int64_t nb) {
    const __m512d vlo = _mm512_set1_pd(static_cast<double>(std::numeric_limits<T>::min()));
    const __m512d vhi = _mm512_set1_pd(static_cast<double>(std::numeric_limits<T>::max()));
    int64_t nans = 0;
    for (int64_t b = 0; b < nb; b += 16) {
        const __mmask8 m0 = lanes8(nb - b), m1 = lanes8(nb - b - 8);
        const __m256i q0 = finish8_avx512(v + b, mean + b, m0, vlo, vhi, nans);
        const __m256i q1 = m1 ? finish8_avx512(v + b + 8, mean + b + 8, m1, vlo, vhi, nans) : _mm256_setzero_si256();
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
        _mm512_mask_cvtepi32_storeu_epi16(out + b, static_cast<__mmask16>(m0 | (unsigned(m1) << 8)), q);
    }
    return nans;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif

// One pixel's output from its values v (nb): cast(v + mean) (integers: round_clip_row, 16 bits under AVX2
// finish16_avx2; floats: float32 clipped to its finite range, infinities and NaN kept).
template <class T, class Wide>
int64_t finish_pixel(const double* v, const double* mean, T* o, int64_t nb, Wide* wide, bool avx2, bool avx512) {
    if constexpr (std::is_integral_v<T>) {
#if defined(HSI_FUSED_AVX2)
        if constexpr (sizeof(T) == 2) {
            if (avx512) return finish16_avx512<T>(v, mean, o, nb);
            if (avx2) return finish16_avx2<T>(v, mean, o, nb);
        }
#endif
        (void)avx2;
        (void)avx512;
        constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
        constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
        const int64_t nans = round_clip_row<Wide>(v, mean, wide, nb, lo, hi);
        for (int64_t b = 0; b < nb; ++b) o[b] = static_cast<T>(wide[b]);
        return nans;
    } else {
        (void)wide;
        (void)avx2;
        (void)avx512;
        for (int64_t b = 0; b < nb; ++b) {
            const double x = v[b] + mean[b];
            if constexpr (sizeof(T) == 4) {
                o[b] = static_cast<T>(std::isinf(x) ? x : std::min(std::max(x, -double(FLT_MAX)), double(FLT_MAX)));
            } else {
                o[b] = x;
            }
        }
        return 0;
    }
}

#if defined(HSI_FUSED_AVX2)
// The widest kernels of this CPU for the fused reconstruction (0 plain, 1 AVX2 + FMA, 2 AVX-512F). A cap in
// HSICODEC_SIMD below "avx512" (as for the SIREN kernels) keeps the AVX2 ones, not the plain ones: those
// give other bits (no FMA), the two vector sets the same. Read on every call, so that a test can compare the
// sets in one process.
int fused_level() {
    static const int cpu = hsicodec_native::cpu_has_avx512() ? 2 : hsicodec_native::cpu_has_avx2() ? 1 : 0;
    const char* env = std::getenv("HSICODEC_SIMD");
    if (!env || !*env || std::string(env) == "avx512") return cpu;
    return std::min(cpu, 1);
}
#endif

template <class T>
int64_t fused_run(const double* coeffs, int64_t h, int64_t w, int64_t k, double norm, const double* basis,
                  const double* mean, char* out, int64_t row_stride, int64_t nb, int threads) {
    using Wide = std::conditional_t<(sizeof(T) < 4) || std::is_same_v<T, int32_t>, int32_t, int64_t>;
#if defined(HSI_FUSED_AVX2)
    const int level = fused_level();
    const bool avx2 = level >= 1, avx512 = level >= 2;
#else
    const bool avx2 = false, avx512 = false;
#endif
    constexpr int64_t kRun = 1024;   // pixels a unit of work
    constexpr int64_t kPixels = 4;   // pixels a step of the AVX-512 kernels (two under AVX2)
    const int64_t n = h * w, units = (n + kRun - 1) / kRun;
    std::atomic<int64_t> nans{0};
    struct Scratch {
        std::vector<double> s, v;
        std::vector<Wide> wide;
    };
    hsicodec_native::parallel_for_state<Scratch>(units, threads, [&](int64_t u, Scratch& sc) {
        if (sc.v.empty()) {
            sc.s.resize(static_cast<size_t>(std::max<int64_t>(kPixels * k, 1)));
            sc.v.resize(static_cast<size_t>(kPixels * nb));
            sc.wide.resize(static_cast<size_t>(nb));
        }
        int64_t count = 0;
        auto finish = [&](int64_t p, const double* v) {
            T* o = reinterpret_cast<T*>(out + (p / w) * row_stride) + (p % w) * nb;
            count += finish_pixel<T, Wide>(v, mean, o, nb, sc.wide.data(), avx2, avx512);
        };
        const int64_t end = std::min(n, (u + 1) * kRun);
        for (int64_t p = u * kRun; p < end;) {
            const double* c = coeffs + p * k;
            for (int64_t j = 0; j < k; ++j) sc.s[j] = c[j] * norm;
#if defined(HSI_FUSED_AVX2)
            const int64_t together = avx512 ? std::min<int64_t>(kPixels, end - p) : avx2 ? std::min<int64_t>(2, end - p) : 1;
            if (together > 1) {  // several pixels at once
                for (int64_t j = k; j < together * k; ++j) sc.s[j] = c[j] * norm;
                if (together == 4)
                    dot_rows_avx512<4>(sc.s.data(), k, basis, nb, sc.v.data());
                else if (avx512)
                    together == 3 ? dot_rows_avx512<3>(sc.s.data(), k, basis, nb, sc.v.data())
                                  : dot_rows_avx512<2>(sc.s.data(), k, basis, nb, sc.v.data());
                else
                    dot_rows2_avx2(sc.s.data(), sc.s.data() + k, k, basis, nb, sc.v.data(), sc.v.data() + nb);
                for (int64_t i = 0; i < together; ++i) finish(p + i, sc.v.data() + i * nb);
                p += together;
                continue;
            }
            if (avx2)
                dot_row_avx2(sc.s.data(), k, basis, nb, sc.v.data(), nb);
            else
#endif
                dot_row_plain(sc.s.data(), k, basis, nb, sc.v.data());
            finish(p, sc.v.data());
            ++p;
        }
        nans += count;
    });
    return nans.load();
}

int64_t reconstruct_cast(py::array_t<double, py::array::c_style> coeffs, double norm,
                         py::array_t<double, py::array::c_style> basis, py::array_t<double, py::array::c_style> mean,
                         py::array out, int threads) {
    auto cb = coeffs.request();
    auto bb = basis.request();
    auto mb = mean.request();
    if (cb.ndim != 3 || bb.ndim != 2 || mb.ndim != 1 || bb.shape[0] != cb.shape[2] || mb.shape[0] != bb.shape[1])
        throw std::invalid_argument("reconstruct_cast: expected coeffs (h, w, k), basis (k, nb) and mean (nb,)");
    const int64_t h = cb.shape[0], w = cb.shape[1], k = cb.shape[2], nb = bb.shape[1];
    const auto size = out.dtype().itemsize();
    if (out.ndim() != 3 || out.shape(0) != h || out.shape(1) != w || out.shape(2) != nb || !out.writeable() ||
        (nb > 1 && out.strides(2) != size) || (w > 1 && out.strides(1) != nb * size) || out.strides(0) < 0)
        throw std::invalid_argument(
            "reconstruct_cast: out must be a writable (h, w, nb) array whose pixels are contiguous (any row stride)");
    const char kind = out.dtype().kind();
    if ((kind != 'u' && kind != 'i' && kind != 'f') || out.dtype().byteorder() == '>')
        throw std::invalid_argument("reconstruct_cast: unsupported output dtype");
    const double* c = static_cast<const double*>(cb.ptr);
    const double* bs = static_cast<const double*>(bb.ptr);
    const double* m = static_cast<const double*>(mb.ptr);
    char* o = static_cast<char*>(out.mutable_data());
    const int64_t rs = out.strides(0);
    py::gil_scoped_release nogil;
    if (kind == 'u' && size == 1) return fused_run<uint8_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'i' && size == 1) return fused_run<int8_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'u' && size == 2) return fused_run<uint16_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'i' && size == 2) return fused_run<int16_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'u' && size == 4) return fused_run<uint32_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'i' && size == 4) return fused_run<int32_t>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'f' && size == 4) return fused_run<float>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    if (kind == 'f' && size == 8) return fused_run<double>(c, h, w, k, norm, bs, m, o, rs, nb, threads);
    throw std::invalid_argument("reconstruct_cast: unsupported output dtype");
}

}  // namespace

void register_spectral_cast(py::module_& mod) {
    mod.def("reconstruct_cast", &reconstruct_cast, py::arg("coeffs"), py::arg("norm"), py::arg("basis"),
            py::arg("mean"), py::arg("out"), py::arg("threads") = 0,
            "out[r, c] = cast((coeffs[r, c] * norm) @ basis + mean), fused pixel by pixel (out: any row stride); "
            "returns the number of NaN values (written as 0 in integer outputs).");
}

// The last step of the spectral reconstruction, fused: out = cast(vals + mean) in one pass.
//
//   add_mean_cast(vals, mean, out, threads) -> number of NaN values met
//       vals (n, nb) float64 (maps x basis), mean (nb,) float64, out (n, nb) of uint8/int8/uint16/int16/
//       uint32/int32 (rounded half to even, clipped to the dtype's range: hsicodec.io.cast.cast_to_dtype) or
//       float32/float64 (float32: finite values clipped to +-FLT_MAX, infinities kept, then rounded to nearest).
//
// The same operations as numpy's vals + mean, np.rint, np.clip, astype, so the result is bit-identical.
// A NaN (integer targets) is written as 0 and counted: the caller then redoes those rows its own way.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

template <class T>
int64_t cast_rows(const double* v, const double* mean, T* out, int64_t r0, int64_t r1, int64_t nb) {
    int64_t nans = 0;
    if constexpr (std::is_integral_v<T>) {
        constexpr double lo = static_cast<double>(std::numeric_limits<T>::min());
        constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());
        using Wide = std::conditional_t<(sizeof(T) < 4) || std::is_same_v<T, int32_t>, int32_t, int64_t>;
        std::vector<Wide> row(static_cast<size_t>(nb));
        for (int64_t r = r0; r < r1; ++r) {
            nans += round_clip_row<Wide>(v + r * nb, mean, row.data(), nb, lo, hi);
            T* o = out + r * nb;
            for (int64_t b = 0; b < nb; ++b) o[b] = static_cast<T>(row[b]);  // in range: exact
        }
    } else {
        for (int64_t r = r0; r < r1; ++r) {
            const double* vr = v + r * nb;
            T* o = out + r * nb;
            for (int64_t b = 0; b < nb; ++b) {
                const double x = vr[b] + mean[b];
                if constexpr (sizeof(T) == 4) {  // float32: finite values clipped to +-FLT_MAX, inf and NaN kept
                    o[b] = static_cast<T>(std::isinf(x) ? x : std::min(std::max(x, -double(FLT_MAX)), double(FLT_MAX)));
                } else {
                    o[b] = x;
                }
            }
        }
    }
    return nans;
}

template <class T>
int64_t run(const double* v, const double* mean, void* out, int64_t n, int64_t nb, int threads) {
    T* o = static_cast<T*>(out);
    int64_t nt = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
    nt = std::max<int64_t>(1, std::min<int64_t>({nt, 64, n / 256 + 1}));  // >= 256 rows a thread
    std::vector<int64_t> nans(static_cast<size_t>(nt), 0);
    auto part = [&](int64_t t) { nans[t] = cast_rows<T>(v, mean, o, n * t / nt, n * (t + 1) / nt, nb); };
    std::vector<std::thread> pool;
    int64_t t = 1;
    for (; t < nt; ++t) {
        try {
            pool.emplace_back(part, t);
        } catch (const std::system_error&) {
            break;
        }
    }
    for (int64_t u = t; u < nt; ++u) part(u);  // threads that could not start: done here
    part(0);
    for (auto& th : pool) th.join();
    int64_t total = 0;
    for (int64_t c : nans) total += c;
    return total;
}

int64_t add_mean_cast(py::array_t<double, py::array::c_style> vals, py::array_t<double, py::array::c_style> mean,
                      py::array out, int threads) {
    auto vb = vals.request();
    auto mb = mean.request();
    if (vb.ndim != 2 || mb.ndim != 1 || mb.shape[0] != vb.shape[1])
        throw std::invalid_argument("add_mean_cast: expected vals (n, nb) and mean (nb,)");
    if (out.ndim() != 2 || out.shape(0) != vb.shape[0] || out.shape(1) != vb.shape[1] ||
        !(out.flags() & py::array::c_style) || !out.writeable())
        throw std::invalid_argument("add_mean_cast: out must be a writable C-contiguous (n, nb) array");
    const int64_t n = vb.shape[0], nb = vb.shape[1];
    const double* v = static_cast<const double*>(vb.ptr);
    const double* m = static_cast<const double*>(mb.ptr);
    void* o = out.mutable_data();
    const char kind = out.dtype().kind();
    const auto size = out.dtype().itemsize();
    if ((kind != 'u' && kind != 'i' && kind != 'f') ||
        out.dtype().byteorder() == '>')
        throw std::invalid_argument("add_mean_cast: unsupported output dtype");
    py::gil_scoped_release nogil;
    if (kind == 'u' && size == 1) return run<uint8_t>(v, m, o, n, nb, threads);
    if (kind == 'i' && size == 1) return run<int8_t>(v, m, o, n, nb, threads);
    if (kind == 'u' && size == 2) return run<uint16_t>(v, m, o, n, nb, threads);
    if (kind == 'i' && size == 2) return run<int16_t>(v, m, o, n, nb, threads);
    if (kind == 'u' && size == 4) return run<uint32_t>(v, m, o, n, nb, threads);
    if (kind == 'i' && size == 4) return run<int32_t>(v, m, o, n, nb, threads);
    if (kind == 'f' && size == 4) return run<float>(v, m, o, n, nb, threads);
    if (kind == 'f' && size == 8) return run<double>(v, m, o, n, nb, threads);
    throw std::invalid_argument("add_mean_cast: unsupported output dtype");
}

}  // namespace

void register_spectral_cast(py::module_& mod) {
    mod.def("add_mean_cast", &add_mean_cast, py::arg("vals"), py::arg("mean"), py::arg("out"), py::arg("threads") = 0,
            "out = cast(vals + mean) (rint + clip for integer dtypes; float32: clipped to the finite range); "
            "returns the number of NaN values (written as 0 in integer outputs).");
}

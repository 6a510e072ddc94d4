// AVX2 + FMA kernels (8 floats per vector, 16 registers), selected at run time.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <new>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "siren_native.h"

#if defined(__x86_64__) || defined(__i386__)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace hsi {
namespace avx2 {
#define HSI_W 8
#define HSI_PMAX 2
#define HSI_R1 12
#define HSI_R2 6
#define HSI_R3 4
#define HSI_R4 3
#define HSI_RL 12
#define HSI_T 96
#define HSI_SIN_BIG 1048576.0f
#define HSI_ANY_GT(a, b) (_mm256_movemask_ps(_mm256_cmp_ps((__m256)(a), _mm256_set1_ps(b), _CMP_GT_OQ)) != 0)
#define HSI_FMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define HSI_NAME "avx2"
#include "siren_kernels.inl"
}  // namespace avx2
}  // namespace hsi
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace hsi {
const KernelSet* kernels_avx2() { return &avx2::kSet; }
}  // namespace hsi
#else
namespace hsi {
const KernelSet* kernels_avx2() { return nullptr; }
}  // namespace hsi
#endif

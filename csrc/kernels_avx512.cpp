// AVX-512F kernels (16 floats per vector, 32 registers), selected at run time.
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
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif
namespace hsi {
namespace avx512 {
#define HSI_W 16
#define HSI_PMAX 4
#define HSI_R1 12
#define HSI_R2 12
#define HSI_R3 8
#define HSI_R4 6
#define HSI_RL 24
#define HSI_T 96
#define HSI_SIN_BIG 1048576.0f
#define HSI_ANY_GT(a, b) (_mm512_cmp_ps_mask((__m512)(a), _mm512_set1_ps(b), _CMP_GT_OQ) != 0)
#define HSI_FMA(a, b, c) ((vf)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define HSI_NAME "avx512"
#include "siren_kernels.inl"
}  // namespace avx512
}  // namespace hsi
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace hsi {
const KernelSet* kernels_avx512() { return &avx512::kSet; }
}  // namespace hsi
#else
namespace hsi {
const KernelSet* kernels_avx512() { return nullptr; }
}  // namespace hsi
#endif

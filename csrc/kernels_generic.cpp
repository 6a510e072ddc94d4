// Portable kernels: 16-byte compiler vectors (SSE2 on x86-64, NEON on AArch64).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <new>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "siren_native.h"

namespace hsi {
namespace generic {
#define HSI_W 4
#define HSI_PMAX 2
#define HSI_R1 12
#define HSI_R2 6
#define HSI_R3 4
#define HSI_R4 3
#define HSI_RL 12
#define HSI_T 96
#define HSI_SIN_BIG 16384.0f
#if defined(__SSE2__)
#define HSI_ANY_GT(a, b) (_mm_movemask_ps(_mm_cmpgt_ps((__m128)(a), _mm_set1_ps(b))) != 0)
#endif
#define HSI_NAME "generic"
#include "siren_kernels.inl"
}  // namespace generic

const KernelSet* kernels_generic() { return &generic::kSet; }
}  // namespace hsi

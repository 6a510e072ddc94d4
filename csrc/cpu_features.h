// Instruction sets of the running CPU, for the kernels chosen at run time (the SIREN kernel sets in
// native_module.cpp, the fused spectral reconstruction in spectral_cast.cpp).
#pragma once

#include <cstdlib>
#include <cstring>

namespace hsicodec_native {

// HSICODEC_SIMD=generic: the plain kernels everywhere (the tests' way to compare them with the vector ones).
inline bool simd_env_generic() {
    const char* env = std::getenv("HSICODEC_SIMD");
    return env != nullptr && std::strcmp(env, "generic") == 0;
}

// AVX2 with FMA (the x86-64 baseline has neither).
inline bool cpu_has_avx2() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// The AVX2 kernels of the integer and table passes (the rate search's quantizer, context classes and code fit)
// are in use: the CPU has AVX2 and HSICODEC_SIMD is not "generic". Their results equal the plain loops'.
inline bool use_avx2() { return cpu_has_avx2() && !simd_env_generic(); }

// AVX-512F on top of AVX2 + FMA.
inline bool cpu_has_avx512() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

}  // namespace hsicodec_native

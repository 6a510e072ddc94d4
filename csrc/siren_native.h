// Shared declarations of the hsicodec native SIREN kernels.
//
// The kernels themselves live in siren_kernels.inl, which is compiled once per
// instruction set (kernels_generic.cpp, kernels_avx2.cpp, kernels_avx512.cpp)
// with a different `#pragma GCC target`; native_module.cpp picks one at run time
// (__builtin_cpu_supports), prepares the padded weight layouts, splits the pixel
// tiles over threads and exposes everything to Python.
//
// Data layout inside a tile: pixel-major rows, channels in SIMD lanes.  Every
// per-pixel vector of width `d` (or C, m, K*d) is padded to a multiple of the SIMD
// width W with zeros in the weights, so padded lanes always hold finite values
// (0 for activations/gradients, 1 for cosines) and never leak into real lanes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hsi {

constexpr int kMaxDepth = 64;

// Weights rearranged for the kernels (all arrays 64-byte aligned, zero padded).
struct Prepared {
    int K = 0, d = 0, n_in = 0, m = 0, C = 0;
    int W = 0;    // SIMD width in floats
    int dp = 0;   // d padded to W
    int Cp = 0;   // C padded to W
    int mp = 0;   // m padded to W
    int KD = 0;   // K * dp
    int T = 0;    // pixels per tile (multiple of every register-block height)
    bool inside = true;
    // forward
    const float* WMt = nullptr;           // [m][KD]   WMt[k][i*dp+j] = W_M[i*d+j][k]
    const float* bM = nullptr;            // [KD]
    const float* Wt[kMaxDepth] = {};      // Wt[i]: [kin][dp]  Wt[i][k][j] = W_i[j][k]
    const float* bh[kMaxDepth] = {};      // [dp]
    const float* bz[kMaxDepth] = {};      // [dp]  bh[i] + bM[i*dp ...]: layer i's whole bias, shift inside
    // bounds on layer i's sine arguments (shift inside): the largest row sum of |W_i|, of |W_M,i| and |bz[i]|
    double arg_w[kMaxDepth] = {}, arg_m[kMaxDepth] = {}, arg_b[kMaxDepth] = {};
    const float* Wot = nullptr;           // [d][Cp]   Wot[k][c] = W_o[c][k]
    const float* bo = nullptr;            // [Cp]
    const float* St = nullptr;            // [m][Cp]   St[k][c] = S[c][k]; null: no linear skip
    // backward (only for loss_grad_phi)
    const float* Wop = nullptr;           // [C][dp]   W_o padded
    const float* Wp[kMaxDepth] = {};      // Wp[i], i >= 1: [d][dp]  W_i padded
    const float* WMp = nullptr;           // [KD][mp]  WMp[i*dp+j][k] = W_M[i*d+j][k]
    const float* cw = nullptr;            // [Cp] channel weights
    const float* Sp = nullptr;            // [C][mp]   S padded; null: no linear skip
};

struct FwdArgs {
    const float* x;    // [N][n_in]
    const float* phi;  // [N][m]
    float* y;          // [N][C]
    int64_t N;
};

struct GradArgs {
    const float* x;       // [N][n_in]
    const float* phi;     // [N][m]
    const float* target;  // [N][C]
    const float* pw;      // [N]
    float* gphi;          // [N][m]
    int64_t N;
};

// Hands out tile indices to the threads working on one call.  next(self, done)
// reports tile `done` as finished (-1: none) and returns the next tile to
// process, or -1 when none is left.  A kernel must not touch its Prepared /
// argument references before next() has given it a tile: a worker that wakes up
// after the call has returned gets -1 straight away.
struct TileSource {
    int64_t (*next)(void* self, int64_t done_tile);
    void* self;
};

struct KernelSet {
    const char* name;
    int W;  // SIMD width (floats)
    int T;  // default tile height (pixels)
    int row_multiple;  // a tile height must be a multiple of this (register-block heights)
    // Process the tiles handed out by `src` (tile t covers pixels [t*T, min((t+1)*T, N))).
    void (*forward)(const Prepared&, const FwdArgs&, const TileSource& src);
    // Same, writing gphi and the loss of tile t (double) to tile_loss[t].
    void (*grad)(const Prepared&, const GradArgs&, const TileSource& src, double* tile_loss);
    // Vector sine / cosine as used by the kernels (any n, for tests).
    void (*sincos)(const float* x, float* s, float* c, int64_t n);
};

// Always available (compiler vectors of 16 bytes; SSE2 on x86-64).
const KernelSet* kernels_generic();
// nullptr when not compiled for this architecture.
const KernelSet* kernels_avx2();
const KernelSet* kernels_avx512();

}  // namespace hsi

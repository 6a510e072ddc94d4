// Fused CUDA forward pass of the shift-modulated SIREN (hsicodec._native_cuda).
//
// One launch does the whole network for every pixel, in fp32:
//
// * A persistent grid of blocks of up to 8 warps.  The weights (re-laid out on the
//   host: transposed, zero-padded to passes of 16 neurons, each pass contiguous)
//   live in shared memory: the whole model when it fits beside the tiles
//   ("resident"), else one group of passes at a time, copied in by the block
//   between __syncthreads ("staged").
// * Each warp works on tiles of 64 pixels (2 per lane): it copies the tile's x and
//   phi rows into its own shared-memory buffer, transposed to [channel][pixel]
//   (coalesced global reads), then every lane evaluates its two pixels through all
//   layers: a lane only ever reads and writes its own two columns of the buffer.
// * A pass is a register-blocked product: 2 pixels x NB neurons of accumulators,
//   per input channel one 8-byte activation load (the lane's two pixels) and NB/4
//   16-byte weight loads at the same address for the whole warp (broadcast), then
//   2*NB FMAs.  The meta network is fused into every hidden layer (its W_M rows are
//   the layer's extra inputs phi) and the skip into the output layer, so beta is
//   never stored.  For d <= 64 a hidden layer is one pass (NB = d rounded up to 16)
//   written back in place; wider layers go by passes of 16 neurons into a second
//   (ping-pong) buffer.  The output layer goes by passes of 16 channels straight to y.
// * The sine is the C++ kernels' one (siren_kernels.inl): Cody-Waite reduction by
//   pi with FMAs and minimax polynomials, ~1e-7 absolute; arguments above 2^20 (or
//   inf) take an exact double-precision path.
//
// The tile code is __host__ __device__: Model::emulate runs the very same code on
// the CPU, one simulated warp at a time, so its indexing is testable without a GPU.

#include "siren_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace hsi_cuda {
namespace {

#define HD __host__ __device__ __forceinline__

constexpr int kTile = 64;       // pixels per warp tile (2 per lane)
constexpr int kStride = 66;     // floats per tile-buffer row: 64 pixels + 2 (spreads the banks of the
                                // transposing stores, keeps 8-byte alignment of each lane's pair)
constexpr int kChunk = 16;      // neurons per pass for the output layer and wide hidden layers
constexpr int kMaxWarps = 8;    // warps per block
constexpr float kSinBig = 1048576.0f;  // 2^20: above, the exact path

constexpr float kInvPi = 0.318309886183790671538f;
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: (q + M) - M == rint(q) for |q| < 2^22
constexpr float kPi1 = 3.140625f;
constexpr float kPi2 = 9.67502593994140625e-4f;
constexpr float kPi3 = 1.509957990978376432e-7f;
constexpr float kS3 = -0.16666657096186982f;
constexpr float kS5 = 0.008333017283979225f;
constexpr float kS7 = -0.00019806614659627887f;
constexpr float kS9 = 2.6000535751921585e-06f;

// Kernel parameters (passed by value).  Weight layout (floats), pass-major so that
// every group of passes of one layer is contiguous:
//   hidden layer i at layer_off(i), NHP / NB passes of NB neurons (NB = nh, or 16 when
//   chunked), pass p: A [kin][NB] (A[k][j] = W_i[p*NB+j][k]), M [m][NB]
//   (M[k][j] = W_M[i*d+p*NB+j][k]), bh [NB], bm [NB];
//   output at offOut, CP / 16 passes of 16 channels, pass p: O [d][16]
//   (O[k][c] = W_o[p*16+c][k]), S [m][16] when skip, bo [16].
// Tile buffer rows (each kStride floats): x rows, hidden rows (H0, and H1 when
// chunked), phi rows.  The network is walked as `groups`: consecutive passes of one
// layer (or of the output) whose weights fit in `cap` floats of shared memory.
struct Params {
    int K, d, n_in, m, C;
    int inside, skip;
    int nh;        // hidden neurons per pass when a layer is one pass (= NHP), 0: chunked
    int NB;        // hidden neurons per pass (nh or kChunk)
    int NHP, CP;   // d and C rounded up to 16
    int rowX, rowH0, rowH1, rowPhi, rows;
    int L0size, Lsize;  // floats of hidden layer 0, of each later one
    int offOut;
    int wfloats;
    int cap;       // floats of weights one group may span
    int g0, g1, go;  // passes per group: layer 0, layers >= 1, output
    int yvec;      // y rows 16-byte aligned and C % 4 == 0: float4 stores
    std::int64_t N;
};

struct Group {
    int layer;   // -1: the output layer
    int first;   // first pass
    int count;   // passes
    int off;     // weight offset of the first pass
    int per;     // floats per pass
};

HD int layer_in(const Params& P, int i) { return i == 0 ? P.n_in : P.d; }
HD int layer_off(const Params& P, int i) { return i == 0 ? 0 : P.L0size + (i - 1) * P.Lsize; }
HD int out_row(const Params& P, int i) { return (i & 1) ? P.rowH1 : P.rowH0; }
HD int in_row(const Params& P, int i) { return i == 0 ? P.rowX : out_row(P, i - 1); }
HD int pass_floats(const Params& P, int i) { return (layer_in(P, i) + P.m + 2) * P.NB; }
HD int out_pass_floats(const Params& P) { return (P.d + (P.skip ? P.m : 0) + 1) * kChunk; }
HD int cdiv(int a, int b) { return (a + b - 1) / b; }
HD int imin(int a, int b) { return a < b ? a : b; }

HD int num_groups(const Params& P) {
    const int np = P.NHP / P.NB;
    return cdiv(np, P.g0) + (P.K - 1) * cdiv(np, P.g1) + cdiv(P.CP / kChunk, P.go);
}

HD Group group_at(const Params& P, int u) {
    const int np = P.NHP / P.NB;
    const int n0 = cdiv(np, P.g0), n1 = cdiv(np, P.g1);
    Group g;
    if (u < n0) {
        g.layer = 0;
        g.per = pass_floats(P, 0);
        g.first = u * P.g0;
        g.count = imin(P.g0, np - g.first);
        g.off = g.first * g.per;
    } else if (u < n0 + (P.K - 1) * n1) {
        const int v = u - n0;
        g.layer = 1 + v / n1;
        g.per = pass_floats(P, 1);
        g.first = (v % n1) * P.g1;
        g.count = imin(P.g1, np - g.first);
        g.off = layer_off(P, g.layer) + g.first * g.per;
    } else {
        const int v = u - n0 - (P.K - 1) * n1;
        g.layer = -1;
        g.per = out_pass_floats(P);
        g.first = v * P.go;
        g.count = imin(P.go, P.CP / kChunk - g.first);
        g.off = P.offOut + g.first * g.per;
    }
    return g;
}

HD float2 ld2(const float* p) {
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const float2*>(p);
#else
    return make_float2(p[0], p[1]);
#endif
}
HD float4 ld4(const float* p) {
#ifdef __CUDA_ARCH__
    return *reinterpret_cast<const float4*>(p);
#else
    return make_float4(p[0], p[1], p[2], p[3]);
#endif
}
HD void st2(float* p, float a, float b) {
#ifdef __CUDA_ARCH__
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
#else
    p[0] = a;
    p[1] = b;
#endif
}
HD void st4(float* p, float a, float b, float c, float d) {
#ifdef __CUDA_ARCH__
    *reinterpret_cast<float4*>(p) = make_float4(a, b, c, d);
#else
    p[0] = a;
    p[1] = b;
    p[2] = c;
    p[3] = d;
#endif
}
HD float ldg(const float* p) {
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

// sin(x) for |x| <= kSinBig: x = k*pi + r, sin(x) = (-1)^k sin(r), |r| <= pi/2.
HD float fast_sin(float x) {
    const float k = (x * kInvPi + kMagic) - kMagic;
    float r = fmaf(-k, kPi1, x);
    r = fmaf(-k, kPi2, r);
    r = fmaf(-k, kPi3, r);
    const float r2 = r * r;
    const float s = fmaf(r * r2, fmaf(r2, fmaf(r2, fmaf(r2, kS9, kS7), kS5), kS3), r);
    const float half = k * 0.5f;
    return half == floorf(half) ? s : -s;
}

__host__ __device__ __noinline__ float exact_sin(float x) { return static_cast<float>(sin(static_cast<double>(x))); }

// acc = sin(acc).  If any argument is beyond the fast reduction (never for a sane
// SIREN), the lane's valid values go through `h` (its own columns of rows it is
// about to overwrite anyway) and the exact sine.
template <int NB>
HD void apply_sine(float (&acc)[2][NB], float* h, int nvalid) {
    bool big = false;
#pragma unroll
    for (int j = 0; j < NB; ++j) big |= (fabsf(acc[0][j]) > kSinBig) | (fabsf(acc[1][j]) > kSinBig);
    if (!big) {
#pragma unroll
        for (int j = 0; j < NB; ++j) {
            acc[0][j] = fast_sin(acc[0][j]);
            acc[1][j] = fast_sin(acc[1][j]);
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < NB; ++j)
        if (j < nvalid) st2(h + j * kStride, acc[0][j], acc[1][j]);
    for (int j = 0; j < nvalid; ++j) {
        h[j * kStride] = exact_sin(h[j * kStride]);
        h[j * kStride + 1] = exact_sin(h[j * kStride + 1]);
    }
#pragma unroll
    for (int j = 0; j < NB; ++j)
        if (j < nvalid) {
            const float2 v = ld2(h + j * kStride);
            acc[0][j] = v.x;
            acc[1][j] = v.y;
        }
}

// acc[q][j] += sum_k buf[row + k][col + q] * w[k * ld + j]   (q = 0, 1; j < NB)
template <int NB>
HD void mac(float (&acc)[2][NB], const float* buf, int row, int nrows, int col, const float* w, int ld) {
    const float* a = buf + row * kStride + col;
#pragma unroll 2
    for (int k = 0; k < nrows; ++k) {
        const float2 v = ld2(a + k * kStride);
        const float* wk = w + k * ld;
#pragma unroll
        for (int j = 0; j < NB; j += 4) {
            const float4 q = ld4(wk + j);
            acc[0][j] = fmaf(v.x, q.x, acc[0][j]);
            acc[0][j + 1] = fmaf(v.x, q.y, acc[0][j + 1]);
            acc[0][j + 2] = fmaf(v.x, q.z, acc[0][j + 2]);
            acc[0][j + 3] = fmaf(v.x, q.w, acc[0][j + 3]);
            acc[1][j] = fmaf(v.y, q.x, acc[1][j]);
            acc[1][j + 1] = fmaf(v.y, q.y, acc[1][j + 1]);
            acc[1][j + 2] = fmaf(v.y, q.z, acc[1][j + 2]);
            acc[1][j + 3] = fmaf(v.y, q.w, acc[1][j + 3]);
        }
    }
}

// Neurons c0 .. c0+NB-1 of hidden layer i (weights: the pass at `w`) for the lane's two
// pixels (columns col, col+1).
template <int NB>
HD void hidden_pass(const Params& P, const float* w, float* buf, int col, int i, int c0) {
    const int kin = layer_in(P, i);
    const float* A = w;
    const float* M = A + kin * NB;
    const float* bh = M + P.m * NB;
    const float* bm = bh + NB;
    float acc[2][NB];
#pragma unroll
    for (int j = 0; j < NB; j += 4) {
        const float4 b = ld4(bh + j);
        float4 e = make_float4(0.f, 0.f, 0.f, 0.f);
        if (P.inside) e = ld4(bm + j);
        acc[0][j] = acc[1][j] = b.x + e.x;
        acc[0][j + 1] = acc[1][j + 1] = b.y + e.y;
        acc[0][j + 2] = acc[1][j + 2] = b.z + e.z;
        acc[0][j + 3] = acc[1][j + 3] = b.w + e.w;
    }
    float* h = buf + (out_row(P, i) + c0) * kStride + col;
    const int nvalid = P.d - c0 < NB ? P.d - c0 : NB;
    if (P.inside) {  // sin(z + beta); beta's small terms first: added to a large z, each would round at z's ulp
        mac<NB>(acc, buf, P.rowPhi, P.m, col, M, NB);
        mac<NB>(acc, buf, in_row(P, i), kin, col, A, NB);
        apply_sine<NB>(acc, h, nvalid);
    } else {  // sin(z) + beta
        mac<NB>(acc, buf, in_row(P, i), kin, col, A, NB);
        apply_sine<NB>(acc, h, nvalid);
#pragma unroll
        for (int j = 0; j < NB; j += 4) {
            const float4 e = ld4(bm + j);
            acc[0][j] += e.x;
            acc[0][j + 1] += e.y;
            acc[0][j + 2] += e.z;
            acc[0][j + 3] += e.w;
            acc[1][j] += e.x;
            acc[1][j + 1] += e.y;
            acc[1][j + 2] += e.z;
            acc[1][j + 3] += e.w;
        }
        mac<NB>(acc, buf, P.rowPhi, P.m, col, M, NB);
    }
#pragma unroll
    for (int j = 0; j < NB; ++j)
        if (j < nvalid) st2(h + j * kStride, acc[0][j], acc[1][j]);
}

// Channels c0 .. c0+15 of y (weights: the output pass at `w`) for the lane's two pixels
// (tile starting at pixel `base`).
HD void output_pass(const Params& P, const float* w, const float* buf, float* y, std::int64_t base, int col,
                    int c0) {
    const float* O = w;
    const float* S = O + P.d * kChunk;
    const float* bo = S + (P.skip ? P.m * kChunk : 0);
    float acc[2][kChunk];
#pragma unroll
    for (int j = 0; j < kChunk; j += 4) {
        const float4 b = ld4(bo + j);
        acc[0][j] = acc[1][j] = b.x;
        acc[0][j + 1] = acc[1][j + 1] = b.y;
        acc[0][j + 2] = acc[1][j + 2] = b.z;
        acc[0][j + 3] = acc[1][j + 3] = b.w;
    }
    if (P.skip) mac<kChunk>(acc, buf, P.rowPhi, P.m, col, S, kChunk);  // small terms first
    mac<kChunk>(acc, buf, out_row(P, P.K - 1), P.d, col, O, kChunk);
#pragma unroll
    for (int q = 0; q < 2; ++q) {
        const std::int64_t p = base + col + q;
        if (p >= P.N) continue;
        float* yr = y + p * P.C + c0;
        if (P.yvec) {
#pragma unroll
            for (int j = 0; j < kChunk; j += 4)
                if (c0 + j < P.C) st4(yr + j, acc[q][j], acc[q][j + 1], acc[q][j + 2], acc[q][j + 3]);
        } else {
#pragma unroll
            for (int j = 0; j < kChunk; ++j)
                if (c0 + j < P.C) yr[j] = acc[q][j];
        }
    }
}

// The passes of group g (weights of its first pass at `w`) for one lane.
template <int NH>
HD void compute_group(const Params& P, const Group& g, const float* w, float* buf, float* y, std::int64_t base,
                      int col) {
    constexpr int NB = NH > 0 ? NH : kChunk;
    for (int q = 0; q < g.count; ++q) {
        if (g.layer >= 0)
            hidden_pass<NB>(P, w + q * g.per, buf, col, g.layer, (g.first + q) * NB);
        else
            output_pass(P, w + q * g.per, buf, y, base, col, (g.first + q) * kChunk);
    }
}

// Warp-cooperative: buf[row + k][p] = g[(base + p) * n + k] for the tile's 64 pixels
// (0 past N).  Lanes read consecutive floats (coalesced), kLoadBatch loads in flight
// per lane before their stores.
constexpr int kLoadBatch = 16;

HD void load_rows(float* buf, int row, const float* g, int n, std::int64_t base, std::int64_t N, int lane) {
    if (n <= 0) return;
    const std::int64_t avail = N - base;
    const int valid = static_cast<int>(avail < kTile ? avail : kTile) * n;
    const int total = kTile * n;
    const float* src = g + base * n;
    int p = lane / n, k = lane - p * n;  // element t = p * n + k, t = lane + 32 * step
    const int dp = 32 / n, dk = 32 - dp * n;
    float* dst = buf + row * kStride;
    for (int t0 = lane; t0 < total; t0 += 32 * kLoadBatch) {
        float v[kLoadBatch];
#pragma unroll
        for (int b = 0; b < kLoadBatch; ++b) {
            const int t = t0 + 32 * b;
            v[b] = t < valid ? ldg(src + t) : 0.f;
        }
#pragma unroll
        for (int b = 0; b < kLoadBatch; ++b) {
            if (t0 + 32 * b >= total) break;
            dst[k * kStride + p] = v[b];
            p += dp;
            k += dk;
            if (k >= n) {
                k -= n;
                ++p;
            }
        }
    }
}

// Block-synchronous loop over tiles (tile t = block tile bt * warps + warp).  STAGED:
// each group's weights are copied into shared memory by the whole block first.
template <int NH, bool STAGED>
__global__ void __launch_bounds__(kMaxWarps * 32, 1)
forward_kernel(const Params P, const float* __restrict__ wg, const float* __restrict__ x,
               const float* __restrict__ phi, float* __restrict__ y) {
    extern __shared__ float4 smem4[];
    float* smem = reinterpret_cast<float*>(smem4);
    const float4* src4 = reinterpret_cast<const float4*>(wg);
    if constexpr (!STAGED) {  // the whole model, once
        for (int i = threadIdx.x; i < P.wfloats / 4; i += blockDim.x) smem4[i] = __ldg(src4 + i);
        __syncthreads();
    }
    const int nw = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float* buf = smem + P.cap + warp * P.rows * kStride;
    const int ngroups = num_groups(P);
    const std::int64_t ntiles = (P.N + kTile - 1) / kTile;
    for (std::int64_t bt = blockIdx.x; bt * nw < ntiles; bt += gridDim.x) {
        const std::int64_t t = bt * nw + warp, base = t * kTile;
        const bool active = t < ntiles;
        __syncwarp();  // every lane is done with the previous tile's columns
        if (active) {
            load_rows(buf, P.rowX, x, P.n_in, base, P.N, lane);
            load_rows(buf, P.rowPhi, phi, P.m, base, P.N, lane);
        }
        __syncwarp();
        const bool run = active && base + 2 * lane < P.N;
        for (int u = 0; u < ngroups; ++u) {
            const Group g = group_at(P, u);
            const float* w = smem + g.off;
            if constexpr (STAGED) {
                __syncthreads();  // every warp is done with the previous group
                const int n4 = g.count * g.per / 4;
                for (int i = threadIdx.x; i < n4; i += blockDim.x) smem4[i] = __ldg(src4 + g.off / 4 + i);
                __syncthreads();
                w = smem;
            }
            if (run) compute_group<NH>(P, g, w, buf, y, base, 2 * lane);
        }
    }
}

// ---------------------------------------------------------------------------
// host side

using KernelFn = void (*)(const Params, const float*, const float*, const float*, float*);

template <bool STAGED>
KernelFn kernel_for(int nh) {
    switch (nh) {
        case 16: return &forward_kernel<16, STAGED>;
        case 32: return &forward_kernel<32, STAGED>;
        case 48: return &forward_kernel<48, STAGED>;
        case 64: return &forward_kernel<64, STAGED>;
        default: return &forward_kernel<0, STAGED>;
    }
}

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear it unless sticky
        throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
    }
}

std::atomic<int> g_variant{0};  // bit 0: chunked, bit 1: staged

int round16(int v) { return (v + 15) / 16 * 16; }

int checked_int(std::int64_t v, const char* what) {
    if (v > std::numeric_limits<int>::max() / 4)
        throw std::invalid_argument(std::string("model too large for the CUDA kernel (") + what + ")");
    return static_cast<int>(v);
}

Params make_params(const Dims& D, bool chunked) {
    Params P{};
    P.K = D.K;
    P.d = D.d;
    P.n_in = D.n_in;
    P.m = D.m;
    P.C = D.C;
    P.inside = D.inside ? 1 : 0;
    P.skip = D.skip ? 1 : 0;
    P.NHP = round16(D.d);
    P.CP = round16(D.C);
    P.nh = (!chunked && P.NHP <= 64) ? P.NHP : 0;
    P.NB = P.nh ? P.nh : kChunk;
    P.rowX = 0;
    P.rowH0 = D.n_in;
    P.rowH1 = P.nh ? P.rowH0 : P.rowH0 + D.d;
    P.rowPhi = P.rowH1 + D.d;
    P.rows = checked_int(static_cast<std::int64_t>(P.rowPhi) + D.m, "tile rows");
    const std::int64_t nhp = P.NHP, cp = P.CP;
    P.L0size = checked_int((static_cast<std::int64_t>(D.n_in) + D.m + 2) * nhp, "layer 0");
    P.Lsize = checked_int((static_cast<std::int64_t>(D.d) + D.m + 2) * nhp, "hidden layer");
    P.offOut = checked_int(P.L0size + static_cast<std::int64_t>(D.K - 1) * P.Lsize, "hidden layers");
    P.wfloats = checked_int(P.offOut + (static_cast<std::int64_t>(D.d) + (D.skip ? D.m : 0) + 1) * cp, "weights");
    return P;
}

// Largest single pass (floats): the least a staged group must hold.
int max_pass(const Params& P) {
    int v = std::max(pass_floats(P, 0), out_pass_floats(P));
    if (P.K > 1) v = std::max(v, pass_floats(P, 1));
    return v;
}

// Group sizes for groups of at most `cap` floats (cap >= max_pass; wfloats: whole layers).
void set_groups(Params& P, int cap) {
    const int np = P.NHP / P.NB, nc = P.CP / kChunk;
    P.cap = cap;
    P.g0 = std::max(1, std::min(np, cap / pass_floats(P, 0)));
    P.g1 = std::max(1, std::min(np, cap / pass_floats(P, 1)));
    P.go = std::max(1, std::min(nc, cap / out_pass_floats(P)));
}

void fill_weights(std::vector<float>& w, const Params& P, const Dims& D, const ModelArrays& A) {
    w.assign(static_cast<std::size_t>(P.wfloats), 0.0f);
    const int d = D.d, m = D.m, NB = P.NB;
    for (int i = 0; i < D.K; ++i) {
        const int kin = i == 0 ? D.n_in : d;
        const float* wi = A.hidden_w[i];
        for (int p = 0; p < P.NHP / NB; ++p) {
            float* a = w.data() + layer_off(P, i) + static_cast<std::size_t>(p) * pass_floats(P, i);
            float* mm = a + static_cast<std::size_t>(kin) * NB;
            float* bh = mm + static_cast<std::size_t>(m) * NB;
            float* bm = bh + NB;
            for (int jj = 0; jj < NB; ++jj) {
                const int j = p * NB + jj;
                if (j >= d) break;
                for (int k = 0; k < kin; ++k) a[static_cast<std::size_t>(k) * NB + jj] = wi[static_cast<std::size_t>(j) * kin + k];
                const float* mrow = A.meta_w + (static_cast<std::size_t>(i) * d + j) * m;
                for (int k = 0; k < m; ++k) mm[static_cast<std::size_t>(k) * NB + jj] = mrow[k];
                bh[jj] = A.hidden_b[i][j];
                bm[jj] = A.meta_b[static_cast<std::size_t>(i) * d + j];
            }
        }
    }
    for (int p = 0; p < P.CP / kChunk; ++p) {
        float* o = w.data() + P.offOut + static_cast<std::size_t>(p) * out_pass_floats(P);
        float* s = o + static_cast<std::size_t>(d) * kChunk;
        float* bo = s + (D.skip ? static_cast<std::size_t>(m) * kChunk : 0);
        for (int cc = 0; cc < kChunk; ++cc) {
            const int c = p * kChunk + cc;
            if (c >= D.C) break;
            for (int k = 0; k < d; ++k) o[static_cast<std::size_t>(k) * kChunk + cc] = A.out_w[static_cast<std::size_t>(c) * d + k];
            if (D.skip)
                for (int k = 0; k < m; ++k) s[static_cast<std::size_t>(k) * kChunk + cc] = A.skip_w[static_cast<std::size_t>(c) * m + k];
            bo[cc] = A.out_b[c];
        }
    }
}

struct Plan {
    KernelFn fn = nullptr;
    Params P{};        // with the group sizes of this plan
    bool staged = false;
    int warps = 0;
    int blocks = 0;
    std::size_t smem = 0;
};

// Resident weights when they leave room for at least min(4, what staging allows) warps,
// else staged groups; warps per block as many as fit (at most 8).
Plan make_plan(const Params& base, bool force_staged, int dev) {
    int optin = 0, sms = 0;
    check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    const std::size_t cap = static_cast<std::size_t>(optin);
    const std::size_t per_warp = static_cast<std::size_t>(base.rows) * kStride * sizeof(float);
    auto warps_beside = [&](std::size_t wbytes) {
        return wbytes + per_warp <= cap ? static_cast<int>(std::min<std::size_t>(kMaxWarps, (cap - wbytes) / per_warp))
                                        : 0;
    };
    const int nw_res = warps_beside(static_cast<std::size_t>(base.wfloats) * sizeof(float));
    const int stage = max_pass(base);
    const int nw_stg = warps_beside(static_cast<std::size_t>(stage) * sizeof(float));
    if (nw_res < 1 && nw_stg < 1)
        throw std::invalid_argument("model too large for the CUDA kernel: a warp's tile (" + std::to_string(per_warp) +
                                    " B) and a pass of weights (" + std::to_string(4 * std::size_t(stage)) +
                                    " B) exceed the device's " + std::to_string(optin) + " B of shared memory");
    Plan pl;
    pl.staged = force_staged || !(nw_res >= 1 && nw_res >= std::min(4, nw_stg));
    if (pl.staged && nw_stg < 1) pl.staged = false;
    pl.P = base;
    set_groups(pl.P, pl.staged ? stage : base.wfloats);
    pl.warps = pl.staged ? nw_stg : nw_res;
    pl.smem = static_cast<std::size_t>(pl.P.cap) * sizeof(float) + static_cast<std::size_t>(pl.warps) * per_warp;
    pl.fn = pl.staged ? kernel_for<true>(base.nh) : kernel_for<false>(base.nh);
    check(cudaFuncSetAttribute(reinterpret_cast<const void*>(pl.fn), cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(pl.smem)),
          "cudaFuncSetAttribute");
    int per_sm = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, reinterpret_cast<const void*>(pl.fn), pl.warps * 32,
                                                        pl.smem),
          "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    if (per_sm < 1) throw std::runtime_error("CUDA kernel cannot be launched with this configuration (occupancy 0)");
    pl.blocks = per_sm * sms;
    return pl;
}

void launch(const Plan& pl, const float* w, const float* x, const float* phi, float* y, std::int64_t N,
            cudaStream_t stream) {
    Params P = pl.P;
    if (N <= 0 || P.C <= 0) return;
    P.N = N;
    P.yvec = (P.C % 4 == 0 && (reinterpret_cast<std::uintptr_t>(y) & 15) == 0) ? 1 : 0;
    const std::int64_t ntiles = (N + kTile - 1) / kTile;
    const std::int64_t want = (ntiles + pl.warps - 1) / pl.warps;
    const unsigned grid = static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>(pl.blocks, want)));
    void* args[] = {&P, &w, &x, &phi, &y};
    check(cudaLaunchKernel(reinterpret_cast<const void*>(pl.fn), dim3(grid), dim3(pl.warps * 32), args, pl.smem,
                           stream),
          "cudaLaunchKernel");
}

// Device buffers of Model::forward (host arrays in and out), shared by all models;
// never freed at exit (no CUDA call may run while the runtime unloads).
struct Workspace {
    std::mutex mu;
    int device = -1;
    float* buf = nullptr;
    std::size_t cap = 0;  // floats
    cudaStream_t stream = nullptr;
};

Workspace& workspace() {
    static Workspace* w = new Workspace();
    return *w;
}

constexpr std::size_t kWorkspaceBytes = std::size_t(512) << 20;  // per chunk of pixels

std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

// ---------------------------------------------------------------------------

struct Model::Impl {
    Dims D;
    Params P;  // without group sizes (set per plan)
    std::vector<float> w;
    bool force_staged = false;
    std::mutex mu;  // device copy of the weights and the plan
    float* dw = nullptr;
    int dev = -1;
    Plan plan;

    // Weights on the current device and the launch plan for it.
    int prepare() {
        int cur = 0;
        check(cudaGetDevice(&cur), "cudaGetDevice");
        std::lock_guard<std::mutex> lk(mu);
        if (dev != cur) {
            Plan pl = make_plan(P, force_staged, cur);
            float* nw = nullptr;
            check(cudaMalloc(&nw, w.size() * sizeof(float)), "cudaMalloc (weights)");
            cudaError_t e = cudaMemcpy(nw, w.data(), w.size() * sizeof(float), cudaMemcpyHostToDevice);
            if (e != cudaSuccess) {
                cudaFree(nw);
                check(e, "cudaMemcpy (weights)");
            }
            if (dw) cudaFree(dw);
            dw = nw;
            dev = cur;
            plan = pl;
        }
        return cur;
    }
};

Model::Model(const Dims& dims, const ModelArrays& arrays) : impl_(new Impl) {
    if (dims.K < 1) throw std::invalid_argument("SIREN needs K >= 1 hidden layers");
    if (dims.d < 1) throw std::invalid_argument("hidden width must be >= 1");
    if (dims.n_in < 0 || dims.m < 0 || dims.C < 0) throw std::invalid_argument("negative dimension");
    const int v = g_variant.load();
    impl_->D = dims;
    impl_->P = make_params(dims, (v & 1) != 0);
    impl_->force_staged = (v & 2) != 0;
    fill_weights(impl_->w, impl_->P, dims, arrays);
}

Model::~Model() {
    if (impl_ && impl_->dw) cudaFree(impl_->dw);  // errors ignored (e.g. runtime unloading)
}

const Dims& Model::dims() const { return impl_->D; }

void Model::forward_device(const float* x, const float* phi, float* y, std::int64_t N, std::uintptr_t stream) {
    if (N <= 0 || impl_->D.C == 0) return;
    impl_->prepare();
    launch(impl_->plan, impl_->dw, x, phi, y, N, reinterpret_cast<cudaStream_t>(stream));
}

void Model::forward(const float* x, const float* phi, float* y, std::int64_t N) {
    const Dims& D = impl_->D;
    if (N <= 0 || D.C == 0) return;
    const int dev = impl_->prepare();
    Workspace& ws = workspace();
    std::lock_guard<std::mutex> lk(ws.mu);
    if (ws.device != dev) {
        if (ws.buf) cudaFree(ws.buf);
        if (ws.stream) cudaStreamDestroy(ws.stream);
        ws.buf = nullptr;
        ws.cap = 0;
        ws.stream = nullptr;
        ws.device = -1;
        check(cudaStreamCreateWithFlags(&ws.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        ws.device = dev;
    }
    const std::size_t per_pixel = static_cast<std::size_t>(D.n_in) + D.m + D.C;
    std::int64_t chunk = static_cast<std::int64_t>(kWorkspaceBytes / (per_pixel * sizeof(float)));
    chunk = std::max<std::int64_t>(kTile, chunk / kTile * kTile);
    chunk = std::min<std::int64_t>(chunk, N);
    const std::size_t nx = align64(static_cast<std::size_t>(chunk) * D.n_in);
    const std::size_t np = align64(static_cast<std::size_t>(chunk) * D.m);
    const std::size_t ny = align64(static_cast<std::size_t>(chunk) * D.C);
    const std::size_t need = nx + np + ny;
    if (ws.cap < need) {
        if (ws.buf) cudaFree(ws.buf);
        ws.buf = nullptr;
        ws.cap = 0;
        check(cudaMalloc(&ws.buf, need * sizeof(float)), "cudaMalloc (workspace)");
        ws.cap = need;
    }
    float* dx = ws.buf;
    float* dphi = dx + nx;
    float* dy = dphi + np;
    for (std::int64_t off = 0; off < N; off += chunk) {
        const std::int64_t n = std::min<std::int64_t>(chunk, N - off);
        if (D.n_in)
            check(cudaMemcpyAsync(dx, x + off * D.n_in, sizeof(float) * n * D.n_in, cudaMemcpyHostToDevice, ws.stream),
                  "cudaMemcpyAsync (x)");
        if (D.m)
            check(cudaMemcpyAsync(dphi, phi + off * D.m, sizeof(float) * n * D.m, cudaMemcpyHostToDevice, ws.stream),
                  "cudaMemcpyAsync (phi)");
        launch(impl_->plan, impl_->dw, dx, dphi, dy, n, ws.stream);
        check(cudaMemcpyAsync(y + off * D.C, dy, sizeof(float) * n * D.C, cudaMemcpyDeviceToHost, ws.stream),
              "cudaMemcpyAsync (y)");
    }
    check(cudaStreamSynchronize(ws.stream), "forward kernel (cudaStreamSynchronize)");
}

namespace {

template <int NH>
void emulate_tiles(const Params& P, const float* W, bool staged, const float* x, const float* phi, float* y) {
    // NaN fill: a read of anything not written before shows in the output
    std::vector<float> buf(static_cast<std::size_t>(P.rows) * kStride, std::nanf(""));
    std::vector<float> stage(static_cast<std::size_t>(P.cap), std::nanf(""));
    const std::int64_t ntiles = (P.N + kTile - 1) / kTile;
    const int ngroups = num_groups(P);
    for (std::int64_t t = 0; t < ntiles; ++t) {
        const std::int64_t base = t * kTile;
        for (int lane = 0; lane < 32; ++lane) {
            load_rows(buf.data(), P.rowX, x, P.n_in, base, P.N, lane);
            load_rows(buf.data(), P.rowPhi, phi, P.m, base, P.N, lane);
        }
        for (int u = 0; u < ngroups; ++u) {
            const Group g = group_at(P, u);
            const float* w = W + g.off;
            if (staged) {
                const std::size_t n = static_cast<std::size_t>(g.count) * g.per;
                if (n > stage.size() || g.off + n > static_cast<std::size_t>(P.wfloats))
                    throw std::logic_error("group outside the stage or the weights");
                std::fill(stage.begin(), stage.end(), std::nanf(""));
                std::memcpy(stage.data(), W + g.off, n * sizeof(float));
                w = stage.data();
            }
            for (int lane = 0; lane < 32; ++lane)
                if (base + 2 * lane < P.N) compute_group<NH>(P, g, w, buf.data(), y, base, 2 * lane);
        }
    }
}

}  // namespace

void Model::emulate(const float* x, const float* phi, float* y, std::int64_t N) const {
    if (N <= 0 || impl_->D.C == 0) return;
    Params P = impl_->P;
    const bool staged = impl_->force_staged;
    set_groups(P, staged ? max_pass(P) : P.wfloats);
    P.N = N;
    P.yvec = 0;
    const float* W = impl_->w.data();
    switch (P.nh) {
        case 16: emulate_tiles<16>(P, W, staged, x, phi, y); break;
        case 32: emulate_tiles<32>(P, W, staged, x, phi, y); break;
        case 48: emulate_tiles<48>(P, W, staged, x, phi, y); break;
        case 64: emulate_tiles<64>(P, W, staged, x, phi, y); break;
        default: emulate_tiles<0>(P, W, staged, x, phi, y); break;
    }
}

KernelInfo Model::info() {
    KernelInfo k;
    k.device = impl_->prepare();
    const Plan& pl = impl_->plan;
    k.hidden_block = pl.P.nh;
    k.staged = pl.staged;
    k.warps_per_block = pl.warps;
    k.blocks = pl.blocks;
    k.shared_bytes = pl.smem;
    k.pixels_per_warp_tile = kTile;
    cudaFuncAttributes attr{};
    check(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(pl.fn)), "cudaFuncGetAttributes");
    k.registers = attr.numRegs;
    k.local_bytes = attr.localSizeBytes;
    return k;
}

int device_count() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string device_name(int i) {
    const int n = device_count();
    if (i < 0 || i >= n)
        throw std::out_of_range("CUDA device " + std::to_string(i) + " does not exist (" + std::to_string(n) +
                                " device(s))");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, i), "cudaGetDeviceProperties");
    return prop.name;
}

void set_variant(const std::string& v) {
    int bits;
    if (v.empty()) bits = 0;
    else if (v == "chunked") bits = 1;
    else if (v == "staged") bits = 2;
    else if (v == "chunked-staged") bits = 3;
    else throw std::invalid_argument("variant must be '', 'chunked', 'staged' or 'chunked-staged', not '" + v + "'");
    g_variant.store(bits);
}

std::string variant() {
    static const char* names[] = {"", "chunked", "staged", "chunked-staged"};
    return names[g_variant.load() & 3];
}

}  // namespace hsi_cuda

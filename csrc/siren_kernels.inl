// Fused, cache-resident SIREN kernels, written once with GCC/Clang vector
// extensions and compiled per instruction set.  Include this file inside a
// namespace (hsi::<isa>) after `#pragma GCC target(...)` (clang: `#pragma clang
// attribute push(... target ...)`), with these macros set:
//
//   HSI_W         SIMD width in floats (4, 8, 16)
//   HSI_PMAX      max number of SIMD vectors per register block (columns)
//   HSI_R1..R4    register-block height (pixels) for 1..4 vectors per block
//   HSI_RL        lcm of the block heights (tile rows are padded to it)
//   HSI_T         pixels per tile (multiple of HSI_RL)
//   HSI_NAME      string for simd_level()
//   HSI_SIN_BIG   |x| above which sin/cos take the exact (scalar libm) path
//   HSI_ANY_GT(a, b)  optional: true when any lane of vf a is > float b
//   HSI_FMA(a, b, c)  optional: fused a*b + c on vf (the range reduction is then
//                 exact far enough for HSI_SIN_BIG = 2^20; without it, <= 2^14)
//
// The includer must have included <cstdlib>, <cstring>, <cstdint>, <new>, <math.h>,
// "siren_native.h" *before* the target pragma: nothing from the standard library
// that is a template is used here, so no instantiation can pick up the target
// attribute and leak into other translation units through ODR merging.
//
// Layout: every tile buffer is pixel-major (row = pixel), channels in SIMD lanes,
// rows padded to a multiple of W with zeros in the weights.  Every matrix product
// has the form   out[r][v-th vector] = epi( sum_k A[r][k] * B[k][v-th vector] ),
// i.e. a broadcast of A times a vector row of B; the register-blocked
// micro-kernel `mk` keeps an R x P block of accumulators in registers and hands
// each finished vector to an epilogue functor (bias, sine, cosine store, loss...).

constexpr int W = HSI_W;
typedef float vf __attribute__((vector_size(HSI_W * 4)));
typedef int vi __attribute__((vector_size(HSI_W * 4)));
typedef double vd __attribute__((vector_size(HSI_W * 8)));

#define HSI_INLINE inline __attribute__((always_inline))

static HSI_INLINE vf vload(const float* p) {
    vf v;
    __builtin_memcpy(&v, p, sizeof(vf));
    return v;
}
static HSI_INLINE void vstore(float* p, vf v) { __builtin_memcpy(p, &v, sizeof(vf)); }
static HSI_INLINE vf vzero() { return vf{}; }
static HSI_INLINE vf vset1(float s) { return s - vf{}; }  // (x - 0) folds to x; (0 + x) would not
static inline vf vload_part(const float* p, int n) {
    vf v = {};
    __builtin_memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
    return v;
}
static inline void vstore_part(float* p, vf v, int n) {
    __builtin_memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
}

// ---------------------------------------------------------------------------
// sine / cosine
//
// x = k*pi + r, k = round(x/pi), |r| <= pi/2, with a three-part Cody-Waite pi
// (parts of 8 and 11 significant bits, then the rest; see reduce_pi);
// sin(x) = (-1)^k sin(r), cos(x) = (-1)^k cos(r); the polynomials are minimax
// fits on [0, pi/2] (approximation error 4.6e-9 for sin, 2.4e-10 for cos), so the
// error is dominated by float rounding: ~1.3e-7 absolute for |x| <= 1000 (and up
// to HSI_SIN_BIG; lanes above it are sent to libm, see sincos_big).

constexpr float kInvPi = 0.318309886183790671538f;
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: (q + M) - M == rint(q) for |q| < 2^22
constexpr float kPi1 = 3.140625f;
constexpr float kPi2 = 9.67502593994140625e-4f;
constexpr float kPi3 = 1.509957990978376432e-7f;
constexpr float kS3 = -0.16666657096186982f;
constexpr float kS5 = 0.008333017283979225f;
constexpr float kS7 = -0.00019806614659627887f;
constexpr float kS9 = 2.6000535751921585e-06f;
constexpr float kC2 = -0.49999999549549384f;
constexpr float kC4 = 0.0416666407276312f;
constexpr float kC6 = -0.0013888403501586184f;
constexpr float kC8 = 2.4761885863724338e-05f;
constexpr float kC10 = -2.6077097901529273e-07f;

#ifndef HSI_FMA
#define HSI_FMA(a, b, c) ((a) * (b) + (c))
#endif

static HSI_INLINE vf reduce_pi(vf x, vi& sign) {
    const vf k = (x * kInvPi + kMagic) - kMagic;
    // Without FMA, k * kPi1 (8-bit constant) and k * kPi2 (11 bits) are exact for
    // |k| < 2^13, i.e. |x| < 2.5e4; with FMA each step is rounded once, whatever k.
    const vf mk = -k;
    vf r = HSI_FMA(mk, vset1(kPi1), x);
    r = HSI_FMA(mk, vset1(kPi2), r);
    r = HSI_FMA(mk, vset1(kPi3), r);
    sign = __builtin_convertvector(k, vi) << 31;
    return r;
}
static HSI_INLINE vf sin_poly(vf r, vf r2) {
    return r + (r * r2) * (kS3 + r2 * (kS5 + r2 * (kS7 + r2 * kS9)));
}
static HSI_INLINE vf cos_poly(vf r2) {
    return 1.0f + r2 * (kC2 + r2 * (kC4 + r2 * (kC6 + r2 * (kC8 + r2 * kC10))));
}
static HSI_INLINE vf flip(vf v, vi sign) { return (vf)((vi)v ^ sign); }

#ifndef HSI_ANY_GT
static HSI_INLINE bool any_gt_loop(vf a, float b) {
    int any = 0;
    for (int i = 0; i < W; ++i) any |= a[i] > b;
    return any != 0;
}
#define HSI_ANY_GT(a, b) any_gt_loop(a, b)
#endif

static HSI_INLINE vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }

// Lanes beyond the range of the fast reduction (|x| > HSI_SIN_BIG, inf): libm in
// double.  Never taken by a sane SIREN; keeps sin/cos bounded and exact anyway.
// (vectors passed and returned by value: nothing in the hot path has its address taken)
__attribute__((noinline, cold)) static vf sin_big(vf x, vf s) {
    for (int i = 0; i < W; ++i)
        if (fabsf(x[i]) > HSI_SIN_BIG) s[i] = static_cast<float>(::sin(static_cast<double>(x[i])));
    return s;
}
__attribute__((noinline, cold)) static vf cos_big(vf x, vf c) {
    for (int i = 0; i < W; ++i)
        if (fabsf(x[i]) > HSI_SIN_BIG) c[i] = static_cast<float>(::cos(static_cast<double>(x[i])));
    return c;
}

// CHECKED = false: the caller has proven |x| <= HSI_SIN_BIG for every lane (see ArgBound), so the
// range check and the libm path are left out; the result is the same as the checked one.
template <bool CHECKED = true>
static HSI_INLINE vf vsin(vf x) {
    vi sign;
    const vf r = reduce_pi(x, sign);
    const vf s = flip(sin_poly(r, r * r), sign);
    if (CHECKED && __builtin_expect(HSI_ANY_GT(vabs(x), HSI_SIN_BIG), 0)) return sin_big(x, s);
    return s;
}
template <bool CHECKED = true>
static HSI_INLINE void vsincos(vf x, vf& s, vf& c) {
    vi sign;
    const vf r = reduce_pi(x, sign);
    const vf r2 = r * r;
    vf sv = flip(sin_poly(r, r2), sign);
    vf cv = flip(cos_poly(r2), sign);
    if (CHECKED && __builtin_expect(HSI_ANY_GT(vabs(x), HSI_SIN_BIG), 0)) {
        sv = sin_big(x, sv);
        cv = cos_big(x, cv);
    }
    s = sv;
    c = cv;
}

// max |p[i]| over n floats, as a double; +inf when any of them is not finite
static double abs_max(const float* p, long n) {
    vf mx = vzero(), bad = vzero();
    long i = 0;
    for (; i + W <= n; i += W) {
        const vf v = vload(p + i);
        const vf a = vabs(v);
        const vi gt = (vi)(a > mx);
        mx = (vf)(((vi)a & gt) | ((vi)mx & ~gt));
        bad += v * 0.0f;  // NaN from an inf or a NaN
    }
    double m = 0.0;
    for (int l = 0; l < W; ++l) {
        if (bad[l] != bad[l]) return HUGE_VAL;
        if (mx[l] > m) m = mx[l];
    }
    for (; i < n; ++i) {
        if (!(fabsf(p[i]) <= 3.4e38f)) return HUGE_VAL;
        if (fabsf(p[i]) > m) m = fabsf(p[i]);
    }
    return m;
}

// ---------------------------------------------------------------------------
// register-blocked micro-kernel and the blocked product driver

template <int P>
struct BlockRows;
template <>
struct BlockRows<1> { static constexpr int value = HSI_R1; };
template <>
struct BlockRows<2> { static constexpr int value = HSI_R2; };
template <>
struct BlockRows<3> { static constexpr int value = HSI_R3; };
template <>
struct BlockRows<4> { static constexpr int value = HSI_R4; };

// The operands of one blocked product  out = A B (+ A2 B2):  A is rows x kdim
// (row stride lda), B is kdim x nv*W (row stride ldb).  The optional second pair
// (kdim2 > 0) is accumulated into the same registers after the first: it fuses a
// small extra product (the linear skip phi S^T forward, 2 wr S backward) into the
// output tile, with no extra pass over it.  kdim2 == 0 leaves the first product's
// code path and results exactly as without it.
struct Operands {
    const float* A;
    long lda;
    const float* B;
    long ldb;
    int kdim;
    const float* A2 = nullptr;
    long lda2 = 0;
    const float* B2 = nullptr;
    long ldb2 = 0;
    int kdim2 = 0;
};

// out[r*P + p] = sum_k A[(r0+r)*lda + k] * B[k*ldb + (v0+p)*W ...]  (+ the same over A2, B2)
// Kept out of line so that the epilogue's constants (sine polynomial...) never
// compete with the R*P accumulators for registers.
template <int R, int P>
__attribute__((noinline)) static void mk(const float* __restrict A, long lda, const float* __restrict B, long ldb,
                                         int kdim, const float* __restrict A2, long lda2,
                                         const float* __restrict B2, long ldb2, int kdim2, int r0, int v0,
                                         vf* __restrict out) {
    vf acc[R][P];
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[r][p] = vzero();
    const float* a = A + static_cast<long>(r0) * lda;
    const float* b = B + static_cast<long>(v0) * W;
    for (int k = 0; k < kdim; ++k) {
        vf bv[P];
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) bv[p] = vload(b + p * W);
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r) {
            const vf ar = vset1(a[r * lda]);
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) acc[r][p] += ar * bv[p];
        }
        a += 1;
        b += ldb;
    }
    if (kdim2 > 0) {
        const float* a2 = A2 + static_cast<long>(r0) * lda2;
        const float* b2 = B2 + static_cast<long>(v0) * W;
        for (int k = 0; k < kdim2; ++k) {
            vf bv[P];
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) bv[p] = vload(b2 + p * W);
#pragma GCC unroll 32
            for (int r = 0; r < R; ++r) {
                const vf ar = vset1(a2[r * lda2]);
#pragma GCC unroll 8
                for (int p = 0; p < P; ++p) acc[r][p] += ar * bv[p];
            }
            a2 += 1;
            b2 += ldb2;
        }
    }
#pragma GCC unroll 32
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) out[r * P + p] = acc[r][p];
}

template <int P, class Epi>
static inline void mk_rows(const Operands& o, int rows, int v0, Epi& epi_ref) {
    constexpr int R = BlockRows<P>::value;
    Epi epi = epi_ref;  // local copy: its fields cannot alias the epilogue's stores
    vf acc[R * P];
    for (int r0 = 0; r0 < rows; r0 += R) {
        mk<R, P>(o.A, o.lda, o.B, o.ldb, o.kdim, o.A2, o.lda2, o.B2, o.ldb2, o.kdim2, r0, v0, acc);
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int p = 0; p < P; ++p) epi(r0 + r, v0 + p, acc[r * P + p]);
    }
    epi_ref = epi;
}

// rows must be a multiple of HSI_RL; nv = number of W-wide column vectors.
template <class Epi>
static void gemm(const Operands& o, int rows, int nv, Epi& epi) {
    int v0 = 0;
    for (; v0 + HSI_PMAX <= nv; v0 += HSI_PMAX) mk_rows<HSI_PMAX>(o, rows, v0, epi);
    switch (nv - v0) {
        case 0:
            break;
        case 1:
            mk_rows<1>(o, rows, v0, epi);
            break;
#if HSI_PMAX > 2
        case 2:
            mk_rows<2>(o, rows, v0, epi);
            break;
#endif
#if HSI_PMAX > 3
        case 3:
            mk_rows<3>(o, rows, v0, epi);
            break;
#endif
        default:
            break;  // unreachable
    }
}

template <class Epi>
static HSI_INLINE void gemm(const float* A, long lda, const float* B, long ldb, int kdim, int rows, int nv,
                            Epi& epi) {
    const Operands o{A, lda, B, ldb, kdim};
    gemm(o, rows, nv, epi);
}

// ---------------------------------------------------------------------------
// epilogues

struct EpiBias {  // out = acc + bias
    float* out;
    long ld;
    const float* bias;
    HSI_INLINE void operator()(int r, int v, vf acc) const {
        vstore(out + r * ld + v * W, acc + vload(bias + v * W));
    }
};

template <bool INSIDE, bool COS>
struct EpiHidden {  // z = acc + b; h = sin(z + beta) | sin(z) + beta; optionally cos(arg) kept
    float* h;
    long ldh;
    const float* bias;
    const float* beta;
    long ldbeta;
    float* cs;
    long ldc;
    HSI_INLINE void operator()(int r, int v, vf acc) const {
        const int c = v * W;
        const vf z = acc + vload(bias + c);
        const vf be = vload(beta + r * ldbeta + c);
        const vf arg = INSIDE ? z + be : z;
        vf s, co;
        if (COS) {
            vsincos(arg, s, co);
            vstore(cs + r * ldc + c, co);
        } else {
            s = vsin(arg);
        }
        vstore(h + r * ldh + c, INSIDE ? s : s + be);
    }
};

template <bool COS, bool CHECKED>
struct EpiHiddenFused {  // shift inside, folded into the product: h = sin(acc + b + b_M); optionally cos kept
    float* h;
    long ldh;
    const float* bias;  // b_i + b_M,i
    float* cs;
    long ldc;
    HSI_INLINE void operator()(int r, int v, vf acc) const {
        const int c = v * W;
        const vf arg = acc + vload(bias + c);
        vf s, co;
        if (COS) {
            vsincos<CHECKED>(arg, s, co);
            vstore(cs + r * ldc + c, co);
        } else {
            s = vsin<CHECKED>(arg);
        }
        vstore(h + r * ldh + c, s);
    }
};

struct EpiOut {  // rows < nvalid: out[r][0:cols] = acc (+ bias)
    float* out;
    int cols;
    const float* bias;  // may be null
    int nvalid;
    HSI_INLINE void operator()(int r, int v, vf acc) const {
        if (r >= nvalid) return;
        const int c = v * W;
        const vf y = bias ? acc + vload(bias + c) : acc;
        float* dst = out + static_cast<long>(r) * cols + c;
        if (c + W <= cols)
            vstore(dst, y);
        else
            vstore_part(dst, y, cols - c);
    }
};

struct EpiLoss {  // y = acc + b; res = y - t; wr = res*cw*pw; loss += wr*res; g = 2 wr
    float* g;
    long ldg;
    const float* bias;
    const float* cw;
    const float* target;
    int C;
    const float* pw;
    int nvalid;
    vd loss;
    HSI_INLINE void operator()(int r, int v, vf acc) {
        const int c = v * W;
        float* gp = g + r * ldg + c;
        if (r >= nvalid) {
            vstore(gp, vzero());
            return;
        }
        const vf y = acc + vload(bias + c);
        const float* tp = target + static_cast<long>(r) * C + c;
        const vf t = (c + W <= C) ? vload(tp) : vload_part(tp, C - c);
        const vf res = y - t;
        const vf wr = (res * vload(cw + c)) * pw[r];
        const vf sq = wr * res;
        loss += __builtin_convertvector(sq, vd);
        vstore(gp, wr + wr);
    }
};

template <bool INSIDE>
struct EpiBack {  // acc = dL/dh_i; g_a = acc * cos(a_i); g_beta_i = g_a | acc
    const float* cs;
    long ldc;
    float* gb;
    long ldgb;
    float* ga;  // outside only
    long ldga;
    HSI_INLINE void operator()(int r, int v, vf acc) const {
        const int c = v * W;
        const vf g = acc * vload(cs + r * ldc + c);
        if (INSIDE) {
            vstore(gb + r * ldgb + c, g);
        } else {
            vstore(gb + r * ldgb + c, acc);
            vstore(ga + r * ldga + c, g);
        }
    }
};

// ---------------------------------------------------------------------------
// per-thread scratch (plain C allocation: no standard templates in this file)

struct Scratch {
    void* blocks[16] = {};
    int n = 0;
    float* alloc(long nfloats) {
        size_t bytes = (static_cast<size_t>(nfloats > 0 ? nfloats : 1) * sizeof(float) + 63) / 64 * 64;
        void* p = aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        memset(p, 0, bytes);
        blocks[n++] = p;
        return static_cast<float*>(p);
    }
    ~Scratch() {
        for (int i = 0; i < n; ++i) free(blocks[i]);
    }
};

static inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

// rows to compute for a tile holding nvalid pixels; copies x/phi when the tile is
// partial so that every computed row reads defined (zero) input.
struct TileInput {
    const float* x;
    const float* phi;
    int rows;
    int nvalid;
};

static HSI_INLINE TileInput tile_input(const Prepared& P, const float* x, const float* phi, int64_t N, int64_t t,
                                       float* xs, float* ps) {
    const int64_t row0 = t * P.T;
    const int64_t left = N - row0;
    TileInput ti;
    ti.nvalid = left < P.T ? static_cast<int>(left) : P.T;
    ti.x = x + row0 * P.n_in;
    ti.phi = phi + row0 * P.m;
    ti.rows = P.T;
    if (ti.nvalid < P.T) {
        ti.rows = round_up(ti.nvalid, HSI_RL);
        memset(xs, 0, sizeof(float) * static_cast<size_t>(ti.rows) * P.n_in);
        memset(ps, 0, sizeof(float) * static_cast<size_t>(ti.rows) * P.m);
        memcpy(xs, ti.x, sizeof(float) * static_cast<size_t>(ti.nvalid) * P.n_in);
        memcpy(ps, ti.phi, sizeof(float) * static_cast<size_t>(ti.nvalid) * P.m);
        ti.x = xs;
        ti.phi = ps;
    }
    return ti;
}

// forward through the hidden layers; leaves the last activations in the returned buffer.
// Shift inside the sine: layer i's shift phi W_M,i^T is accumulated into the same registers as its
// product (the Operands' second pair), so no shift buffer is written or read back; shift outside:
// all shifts first, as one product, then each layer adds its slice after the sine.
template <bool INSIDE, bool COS>
static HSI_INLINE const float* hidden_layers(const Prepared& P, const TileInput& ti, float* beta, float* h0,
                                             float* h1, float* cs) {
    const int dp = P.dp, KD = P.KD, nvh = P.dp / W;
    if constexpr (INSIDE) {
        const float* a = ti.x;
        long lda = P.n_in;
        int kdim = P.n_in;
        // Every argument of layer i is at most |W_i| max|input| + |W_M,i| max|phi| + |b_i + b_M,i| (row sums of
        // absolute values, their largest row; the inputs of layer i >= 1 are sines, at most 1 + 2^-20). When
        // that bound, with room for the float sums' rounding, is below HSI_SIN_BIG for this tile, no lane can
        // take the sine's libm path, and the per-vector range check is left out (7 % of the forward pass).
        const double ax = abs_max(ti.x, static_cast<long>(ti.rows) * P.n_in);
        const double ap = abs_max(ti.phi, static_cast<long>(ti.rows) * P.m);
        for (int i = 0; i < P.K; ++i) {
            float* h = (i & 1) ? h1 : h0;
            // the shift first: it is small, and layer 0's product is large (inputs times ω0), so summing the
            // shift's m terms into that would round each one at the large magnitude
            const Operands o{ti.phi, P.m, P.WMt + i * dp, KD, P.m, a, lda, P.Wt[i], dp, kdim};
            const double bound = P.arg_w[i] * (i == 0 ? ax : 1.000001) + P.arg_m[i] * ap + P.arg_b[i];
            if (bound * 1.001 <= static_cast<double>(HSI_SIN_BIG)) {  // false for NaN / inf too
                EpiHiddenFused<COS, false> e{h, dp, P.bz[i], COS ? cs + i * dp : nullptr, KD};
                gemm(o, ti.rows, nvh, e);
            } else {
                EpiHiddenFused<COS, true> e{h, dp, P.bz[i], COS ? cs + i * dp : nullptr, KD};
                gemm(o, ti.rows, nvh, e);
            }
            a = h;
            lda = dp;
            kdim = P.d;
        }
        return a;
    }
    EpiBias eb{beta, KD, P.bM};
    gemm(ti.phi, P.m, P.WMt, KD, P.m, ti.rows, KD / W, eb);
    const float* a = ti.x;
    long lda = P.n_in;
    int kdim = P.n_in;
    for (int i = 0; i < P.K; ++i) {
        float* h = (i & 1) ? h1 : h0;
        EpiHidden<INSIDE, COS> e{h, dp, P.bh[i], beta + i * dp, KD, COS ? cs + i * dp : nullptr, KD};
        gemm(a, lda, P.Wt[i], dp, kdim, ti.rows, nvh, e);
        a = h;
        lda = dp;
        kdim = P.d;
    }
    return a;
}

template <bool INSIDE>
static void forward_tiles_t(const Prepared& P, const FwdArgs& args, const TileSource& src, int64_t t) {
    const int T = P.T;
    Scratch s;
    float* beta = s.alloc(INSIDE ? 1 : static_cast<long>(T) * P.KD);  // shift inside: folded, no buffer
    float* h0 = s.alloc(static_cast<long>(T) * P.dp);
    float* h1 = s.alloc(static_cast<long>(T) * P.dp);
    float* xs = s.alloc(static_cast<long>(T) * P.n_in);
    float* ps = s.alloc(static_cast<long>(T) * P.m);
    for (; t >= 0; t = src.next(src.self, t)) {
        const TileInput ti = tile_input(P, args.x, args.phi, args.N, t, xs, ps);
        const float* h = hidden_layers<INSIDE, false>(P, ti, beta, h0, h1, nullptr);
        // y = h W_o^T (+ phi S^T) + b_o
        Operands o{h, P.dp, P.Wot, P.Cp, P.d};
        if (P.St) {
            o.A2 = ti.phi;
            o.lda2 = P.m;
            o.B2 = P.St;
            o.ldb2 = P.Cp;
            o.kdim2 = P.m;
        }
        EpiOut eo{args.y + t * T * static_cast<int64_t>(P.C), P.C, P.bo, ti.nvalid};
        gemm(o, ti.rows, P.Cp / W, eo);
    }
}

static void forward_tiles(const Prepared& P, const FwdArgs& args, const TileSource& src) {
    const int64_t t = src.next(src.self, -1);  // claim first: P and args are only valid with a tile
    if (t < 0) return;
    if (P.inside)
        forward_tiles_t<true>(P, args, src, t);
    else
        forward_tiles_t<false>(P, args, src, t);
}

template <bool INSIDE>
static void grad_tiles_t(const Prepared& P, const GradArgs& args, const TileSource& src, int64_t t, double* tile_loss) {
    const int T = P.T, dp = P.dp, KD = P.KD, nvh = P.dp / W;
    Scratch s;
    float* beta = s.alloc(INSIDE ? 1 : static_cast<long>(T) * KD);
    float* cs = s.alloc(static_cast<long>(T) * KD);
    float* gb = s.alloc(static_cast<long>(T) * KD);
    float* h0 = s.alloc(static_cast<long>(T) * dp);
    float* h1 = s.alloc(static_cast<long>(T) * dp);
    float* ga[2] = {s.alloc(static_cast<long>(T) * dp), s.alloc(static_cast<long>(T) * dp)};
    float* gy = s.alloc(static_cast<long>(T) * P.Cp);
    float* xs = s.alloc(static_cast<long>(T) * P.n_in);
    float* ps = s.alloc(static_cast<long>(T) * P.m);
    for (; t >= 0; t = src.next(src.self, t)) {
        const int64_t row0 = t * T;
        const TileInput ti = tile_input(P, args.x, args.phi, args.N, t, xs, ps);
        const float* h = hidden_layers<INSIDE, true>(P, ti, beta, h0, h1, cs);
        // output layer + loss + dL/dy
        // (the skip phi S^T is part of y, hence of the residual)
        Operands oy{h, dp, P.Wot, P.Cp, P.d};
        if (P.St) {
            oy.A2 = ti.phi;
            oy.lda2 = P.m;
            oy.B2 = P.St;
            oy.ldb2 = P.Cp;
            oy.kdim2 = P.m;
        }
        EpiLoss el{gy, P.Cp, P.bo, P.cw, args.target + row0 * P.C, P.C, args.pw + row0, ti.nvalid, vd{}};
        gemm(oy, ti.rows, P.Cp / W, el);
        double l = 0.0;
        for (int i = 0; i < W; ++i) l += el.loss[i];
        tile_loss[t] = l;
        // dL/dh_K = g_y W_o  -> g_a, g_beta of layer K-1
        {
            const int i = P.K - 1;
            EpiBack<INSIDE> e{cs + i * dp, KD, gb + i * dp, KD, ga[i & 1], dp};
            gemm(gy, P.Cp, P.Wop, dp, P.C, ti.rows, nvh, e);
        }
        for (int i = P.K - 1; i >= 1; --i) {
            const float* a = INSIDE ? gb + i * dp : ga[i & 1];
            const long lda = INSIDE ? KD : dp;
            EpiBack<INSIDE> e{cs + (i - 1) * dp, KD, gb + (i - 1) * dp, KD, ga[(i - 1) & 1], dp};
            gemm(a, lda, P.Wp[i], dp, P.d, ti.rows, nvh, e);
        }
        // dL/dphi = g_beta W_M (+ g_y S, g_y = 2 wr: zero in padded channels and rows)
        Operands og{gb, KD, P.WMp, P.mp, KD};
        if (P.Sp) {
            og.A2 = gy;
            og.lda2 = P.Cp;
            og.B2 = P.Sp;
            og.ldb2 = P.mp;
            og.kdim2 = P.C;
        }
        EpiOut eo{args.gphi + row0 * P.m, P.m, nullptr, ti.nvalid};
        gemm(og, ti.rows, P.mp / W, eo);
    }
}

static void grad_tiles(const Prepared& P, const GradArgs& args, const TileSource& src, double* tile_loss) {
    const int64_t t = src.next(src.self, -1);
    if (t < 0) return;
    if (P.inside)
        grad_tiles_t<true>(P, args, src, t, tile_loss);
    else
        grad_tiles_t<false>(P, args, src, t, tile_loss);
}

static void sincos_array(const float* x, float* s, float* c, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) {
        vf sv, cv;
        vsincos(vload(x + i), sv, cv);
        if (s) vstore(s + i, sv);
        if (c) vstore(c + i, cv);
    }
    if (i < n) {
        const int rest = static_cast<int>(n - i);
        vf sv, cv;
        vsincos(vload_part(x + i, rest), sv, cv);
        if (s) vstore_part(s + i, sv, rest);
        if (c) vstore_part(c + i, cv, rest);
    }
}

static const KernelSet kSet = {HSI_NAME, HSI_W, HSI_T, HSI_RL, &forward_tiles, &grad_tiles, &sincos_array};

#undef HSI_INLINE

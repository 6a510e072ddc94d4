// Lossless coder for integer cubes (hsicodec._native.lattice_encode / lattice_decode).
//
// Stream format: spec/predictive.md, section 1.  Reference: hsicodec/layers/predictive/coder.py
// (encode_reference / decode_reference write and read the identical bytes; tests/test_lattice_coder.py).
//
// A cube u (H, W, C), 0 <= u <= max_value, is cut into row blocks of rows_per_block rows; each block is
// coded on its own (predictor and coder state start afresh), band after band.  Every sample is
// predicted CCSDS 123.0-B-2 style ("reduced" mode): the local sum of its causal neighbours in its band
// plus a weighted sum of the central local differences at the same place in up to kPrev earlier bands,
// the weights adapted by normalised sign-error LMS and carried from band to band; at the start of each
// band the encoder sends the change that its training pass over the band (the LMS run once, ahead)
// makes to the weights, so every band starts from weights fitted to it.  The residual is
// mapped to 0..max_value and coded by an LZMA-style binary range coder over an adaptive Golomb-like
// binarisation (unary prefix and top suffix bits adaptive, in activity classes taken from the residual
// magnitudes around the sample in the previous band and before it in this band; the low suffix bits
// raw, in a separate bypass part of the block).  Integer arithmetic only (arithmetic right shifts =
// floor), so every platform and the Python reference agree bit for bit.
//
// Blocks are coded in parallel over threads; the output does not depend on the thread count.
// Speed: branch-free range coder and residual mapping (the bits are data), one instantiation per number
// of earlier bands and for inner samples (no edge tests), int32 predictor state when max_value < 2^26.

#ifndef LATTICE_STANDALONE
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define LATTICE_SSE2 1
#endif

namespace lattice {

// A malformed stream (raised to Python as hsicodec.errors.HsimHeaderError).
struct StreamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// format constants (spec/predictive.md, section 1)

constexpr int kPrev = 6;          // P: earlier bands in the prediction
constexpr int kOmega = 16;        // weight resolution (fractional bits)
constexpr int64_t kOne = int64_t(1) << kOmega;           // weight 1.0
constexpr int64_t kWeightLim = int64_t(1) << (kOmega + 2);  // weights lie in [-kWeightLim, kWeightLim)
constexpr int kStep0 = 7;         // weight step exponent at the start of a band ...
constexpr int kStep1 = 10;        // ... growing by one every 2^kStepLog samples up to kStep1
constexpr int kStepLog = 5;
constexpr int kTrainStep = 5;     // the encoder's training pass: constant step exponent, ...
constexpr int64_t kTrainRows = 2;  // ... over every kTrainRows-th row of the band (half the work, +0.1 % bytes), ...
constexpr int64_t kTrainMin = 128;  // ... run on bands of at least this many samples in the block (else no change)
constexpr int kWeightQ = 10;      // a band's initial weights are multiples of 2^kWeightQ (6 fractional bits)
constexpr int64_t kWeightLimQ = kWeightLim >> kWeightQ;    // initial weights / 2^kWeightQ lie in [-256, 256)
constexpr int kSideExp = 9;       // weight changes: Exp-Golomb exponents 0..8 (|change| <= 511)
constexpr int kEma = 4;           // running mean of the mapped residuals: S += d - S / 2^kEma
constexpr int kProbBits = 12;     // probabilities as coded
constexpr int kProbState = 16;    // ... and as kept (16-bit state, adapted by a shift of kMoveBits)
constexpr int kMoveBits = 7;
constexpr uint32_t kTop = 1u << 24;
constexpr int kCtx = 96;          // activity classes
constexpr int kUnaryCtx = 12;     // unary positions with their own probability
constexpr int kQMax = 24;         // q >= kQMax: escape
constexpr int kEscMax = 31;       // escape exponents 0..31
constexpr int kTreeBits = 2;      // adaptive suffix bits

inline int bitlen(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

// 8 bytes, most significant first
inline void store_be64(uint8_t* p, uint64_t v) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
#endif
}

#if defined(__GNUC__)
#define LATTICE_INLINE inline __attribute__((always_inline))
#define LATTICE_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define LATTICE_INLINE inline
#define LATTICE_ALWAYS_INLINE_LAMBDA
#endif

// An adaptive binary probability: P(bit = 0) = p / 2^16.
struct Prob {
    uint16_t p = 1u << (kProbState - 1);
    uint32_t coded() const { return p >> (kProbState - kProbBits); }
    // b ? p - (p >> kMoveBits) : p + ((2^16 - p) >> kMoveBits), as p + ((t - p) >> kMoveBits) with t = b ? 127 : 2^16
    // (floor shifts: for b = 1 that is p - ceil((p - 127) / 128) = p - floor(p / 128)); branch-free, b is data
    void update(uint32_t b) {
        const int32_t t = (int32_t(1) << kProbState) - static_cast<int32_t>((0u - b) & ((1u << kProbState) - ((1u << kMoveBits) - 1)));
        p = static_cast<uint16_t>(int32_t(p) + ((t - int32_t(p)) >> kMoveBits));
    }
};

// ---------------------------------------------------------------------------------------------
// the binary range coder (LZMA's, without its always-zero first byte)

// A block: u32 A, then A bytes of range-coder output, then the raw (bypass) bits packed most significant
// first (spec/predictive.md 1.6).
class RangeEncoder {
  public:
    explicit RangeEncoder(std::vector<uint8_t>& out) : out_(out) { out_.assign(4, 0); }

    LATTICE_INLINE void bit(Prob& p, uint32_t b) {
        const uint32_t bound = (range_ >> kProbBits) * p.coded();
        const uint32_t m = 0u - b;  // branch-free: b is data
        low_ += bound & m;
        range_ = bound + ((range_ - 2 * bound) & m);  // b ? range - bound : bound (mod 2^32)
        p.update(b);
        while (range_ < kTop) {
            range_ <<= 8;
            shift_low();
        }
    }

    // the n <= 32 bits of v < 2^n, most significant first, to the bypass part
    LATTICE_INLINE void raw(uint32_t v, int n) {
        if (n == 0) return;
        acc_ = (acc_ << n) | v;  // nacc_ + n <= 39 bits pending
        nacc_ += n;
        if (bpos_ + 8 > bypass_.size()) bypass_.resize(bypass_.size() * 2 + 64);
        const uint64_t top = acc_ << (64 - nacc_);  // the pending bits, left-aligned
        store_be64(bypass_.data() + bpos_, top);
        bpos_ += static_cast<size_t>(nacc_ >> 3);
        nacc_ &= 7;
    }

    void finish() {
        for (int i = 0; i < 5; ++i) shift_low();
        const uint64_t a = out_.size() - 4;
        if (a > 0xFFFFFFFFull) throw std::invalid_argument("lattice_encode: a block exceeds 4 GiB; use fewer rows per block");
        for (int i = 0; i < 4; ++i) out_[static_cast<size_t>(i)] = static_cast<uint8_t>(a >> (8 * i));
        const size_t nbytes = bpos_ + (nacc_ > 0 ? 1 : 0);  // raw() already wrote the last, zero-padded byte
        out_.insert(out_.end(), bypass_.begin(), bypass_.begin() + static_cast<std::ptrdiff_t>(nbytes));
    }

  private:
    void shift_low() {
        if (static_cast<uint32_t>(low_) < 0xFF000000u || (low_ >> 32) != 0) {
            const uint8_t carry = static_cast<uint8_t>(low_ >> 32);
            uint8_t temp = cache_;
            do {
                put(static_cast<uint8_t>(temp + carry));
                temp = 0xFF;
            } while (--pending_ != 0);
            cache_ = static_cast<uint8_t>(low_ >> 24);
        }
        ++pending_;
        low_ = (low_ & 0x00FFFFFFu) << 8;
    }
    void put(uint8_t b) {
        if (first_) {  // LZMA's first byte is always 0: not written
            if (b != 0) throw std::logic_error("lattice coder: range coder lead byte is not zero");
            first_ = false;
            return;
        }
        out_.push_back(b);
    }

    std::vector<uint8_t>& out_;
    std::vector<uint8_t> bypass_;
    size_t bpos_ = 0;
    uint64_t low_ = 0;
    uint32_t range_ = 0xFFFFFFFFu;
    uint8_t cache_ = 0;
    uint64_t pending_ = 1;
    bool first_ = true;
    uint64_t acc_ = 0;  // bypass bits not yet written: the low nacc_ < 8 bits
    int nacc_ = 0;
};

class RangeDecoder {
  public:
    RangeDecoder(const uint8_t* p, size_t n) {
        if (n < 4) throw StreamError("truncated (" + std::to_string(n) + " bytes)");
        const size_t a = size_t(p[0]) | size_t(p[1]) << 8 | size_t(p[2]) << 16 | size_t(p[3]) << 24;
        if (a > n - 4) throw StreamError("the range-coder part (" + std::to_string(a) + " bytes) exceeds the block");
        p_ = p + 4;
        end_ = p_ + a;
        bstart_ = end_;
        blen_ = n - 4 - a;
        for (int i = 0; i < 4; ++i) code_ = (code_ << 8) | next();
    }

    LATTICE_INLINE uint32_t bit(Prob& p) {
        const uint32_t bound = (range_ >> kProbBits) * p.coded();
        const uint32_t b = code_ >= bound;
        const uint32_t m = 0u - b;
        code_ -= bound & m;
        range_ = bound + ((range_ - 2 * bound) & m);
        p.update(b);
        while (range_ < kTop) {
            range_ <<= 8;
            code_ = (code_ << 8) | next();
        }
        return b;
    }

    // n <= 32 raw bits from the bypass part (bytes past its end read as 0; overran() tells)
    LATTICE_INLINE uint32_t raw(int n) {
        if (nacc_ < n) {
            while (nacc_ <= 56) {
                acc_ = (acc_ << 8) | (bidx_ < blen_ ? bstart_[bidx_] : 0u);
                ++bidx_;
                nacc_ += 8;
            }
        }
        nacc_ -= n;
        return static_cast<uint32_t>((acc_ >> nacc_) & ((uint64_t(1) << n) - 1));
    }

    bool overran() const { return overrun_ != 0 || bits_used() > 8 * bypass_bytes(); }
    // Both parts consumed exactly: the bypass part up to its last byte, whose unused bits are 0.
    bool at_end() const {
        const uint64_t pending = nacc_ >= 64 ? acc_ : acc_ & ((uint64_t(1) << nacc_) - 1);
        return !overran() && p_ == end_ && 8 * bypass_bytes() - bits_used() < 8 && pending == 0;
    }

  private:
    uint32_t next() {
        if (p_ < end_) return *p_++;
        ++overrun_;
        return 0;
    }
    uint64_t bypass_bytes() const { return blen_; }
    uint64_t bits_used() const { return 8 * bidx_ - static_cast<uint64_t>(nacc_); }

    const uint8_t* p_;
    const uint8_t* end_;
    const uint8_t* bstart_;  // the bypass part: blen_ bytes
    uint64_t blen_ = 0;
    uint64_t bidx_ = 0;      // bytes loaded into acc_, past blen_ as zeros
    uint32_t code_ = 0;
    uint32_t range_ = 0xFFFFFFFFu;
    uint64_t overrun_ = 0;
    uint64_t acc_ = 0;
    int nacc_ = 0;
};

// ---------------------------------------------------------------------------------------------
// the entropy model: a mapped residual d in [0, M] with activity class c and Golomb bucket k

struct Model {
    Prob unary[kCtx][kUnaryCtx];
    Prob tree[kCtx][2][1 << kTreeBits];
    Prob esc[kEscMax + 1];
    Prob side[4][2 + kSideExp + 1];  // weight changes, by min(j, 3): zero, sign, exponent
};

template <class RC, bool kDecode>
LATTICE_INLINE uint64_t code_residual(RC& rc, Model& m, int c, int k, uint64_t d, uint64_t dmax) {
    Prob* un = m.unary[c];
    uint64_t q = d >> k;
    // prefix: q in unary, an Exp-Golomb escape from kQMax on
    if constexpr (kDecode) {
        q = 0;
        while (q < kQMax && rc.bit(un[std::min<uint64_t>(q, kUnaryCtx - 1)])) ++q;
        if (q == kQMax) {
            int n = 0;
            while (rc.bit(m.esc[n]))
                if (++n > kEscMax) throw StreamError("escape code too long");
            q = kQMax + ((uint64_t(1) << n) | rc.raw(n)) - 1;
        }
        if (q > (dmax >> k)) throw StreamError("value past max_value");
    } else {
        const uint64_t qq = std::min<uint64_t>(q, kQMax);
        for (uint64_t i = 0; i < qq; ++i) rc.bit(un[std::min<uint64_t>(i, kUnaryCtx - 1)], 1u);
        if (q < kQMax) {
            rc.bit(un[q < kUnaryCtx ? q : kUnaryCtx - 1], 0);
        } else {
            const uint64_t r = q - kQMax + 1;
            const int n = bitlen(r) - 1;
            for (int i = 0; i < n; ++i) rc.bit(m.esc[i], 1);
            rc.bit(m.esc[n], 0);
            rc.raw(static_cast<uint32_t>(r - (uint64_t(1) << n)), n);
        }
    }
    // suffix: k bits, the top kTreeBits adaptive (a bit tree per class and q == 0 or not), the rest raw
    const int t = std::min(k, kTreeBits);
    Prob* tr = m.tree[c][q ? 1 : 0];
    uint64_t low = kDecode ? 0 : d & ((uint64_t(1) << k) - 1);
    uint32_t node = 1;
    for (int i = k - 1; i >= k - t; --i) {
        uint32_t b;
        if constexpr (kDecode) {
            b = rc.bit(tr[node]);
            low |= uint64_t(b) << i;
        } else {
            b = static_cast<uint32_t>((low >> i) & 1u);
            rc.bit(tr[node], b);
        }
        node = node * 2 + b;
    }
    const int rest = k - t;
    if (rest > 0) {
        if constexpr (kDecode) {
            low |= rc.raw(rest);
        } else {
            rc.raw(static_cast<uint32_t>(low & ((uint64_t(1) << rest) - 1)), rest);
        }
    }
    if constexpr (kDecode) {
        d = (q << k) | low;
        if (d > dmax) throw StreamError("value past max_value");
    }
    return d;
}

// ---------------------------------------------------------------------------------------------
// one block

struct Work {
    std::vector<int32_t> s;         // the block's samples, band-major (bands, R, W)
    std::vector<int64_t> diff;      // central local differences of the last kPrev + 1 bands (a ring of planes) ...
    std::vector<int32_t> diff32;    // ... as int32 when M < 2^26 (the same values)
    std::vector<uint32_t> dprev;    // mapped residuals of the previous band (R * W)
    std::vector<uint32_t> dcur;     // ... and of this one

    template <class T>
    std::vector<T>& diffs() {
        if constexpr (sizeof(T) == 4)
            return diff32;
        else
            return diff;
    }
};

// M below this: local differences, their sums and the weights fit int32 (|D| <= 4M < 2^28, 6 * 2^28 < 2^31).
constexpr int64_t kSmallM = int64_t(1) << 26;

// The coder of one block: the state that lives through its bands, and one band at a time.  T holds the
// local differences and weights: int32_t when M < kSmallM (faster), else int64_t; the results are the same.
template <class RC, bool kDecode, class T>
class BlockCoder {
  public:
    BlockCoder(RC& rc, Work& w, int64_t R, int64_t W, int64_t M) : rc_(rc), w_(w), R_(R), W_(W), M_(M) {}

    // Code bands [0, nb) of the block held band-major in w.s (encoder: read; decoder: written).
    void run(int64_t nb) {
        plane_ = R_ * W_;
        if (plane_ == 0) return;
        w_.template diffs<T>().assign(static_cast<size_t>(std::min<int64_t>(nb, kRing) * plane_), 0);
        w_.dprev.assign(static_cast<size_t>(plane_), 0);
        w_.dcur.assign(static_cast<size_t>(plane_), 0);
        for (int64_t z = 0; z < nb; ++z) {
            switch (std::min<int64_t>(z, kPrev)) {
                case 0: band<0>(z); break;
                case 1: band<1>(z); break;
                case 2: band<2>(z); break;
                case 3: band<3>(z); break;
                case 4: band<4>(z); break;
                case 5: band<5>(z); break;
                default: band<kPrev>(z); break;
            }
        }
    }

  private:
    static constexpr int kRing = kPrev + 1;
    static_assert(kPrev == 6, "run() dispatches on 0..6 earlier bands");

    template <int NP>
    void band(int64_t z) {
        cur_ = w_.s.data() + z * plane_;
        T* diff = w_.template diffs<T>().data();
        dz_ = diff + (z % kRing) * plane_;
        for (int j = 0; j < NP; ++j) dp_[j] = diff + ((z - 1 - j) % kRing) * plane_;
        if constexpr (NP > 0) initial_weights<NP>();
        std::swap(w_.dprev, w_.dcur);
        rp_ = w_.dprev.data();
        rq_ = w_.dcur.data();
        const int64_t R = R_, W = W_;
        for (int64_t y = 0; y < R; ++y) {
            const int32_t* row = cur_ + y * W;
            const int64_t base = y * W;
            if (y == 0) {
                sample<NP, false, true>(0, 0, 0, 0, z);
                for (int64_t x = 1; x < W; ++x) sample<NP, false, false>(0, x, x, 4 * int64_t(row[x - 1]), z);
                continue;
            }
            const int32_t* n = row - W;
            if (W == 1) {
                sample<NP, false, false>(y, 0, base, 4 * int64_t(n[0]), z);
                continue;
            }
            sample<NP, false, false>(y, 0, base, 2 * (int64_t(n[0]) + n[1]), z);
            if (y + 1 < R) {
                for (int64_t x = 1; x + 1 < W; ++x)
                    sample<NP, true, false>(y, x, base + x, int64_t(row[x - 1]) + n[x - 1] + n[x] + n[x + 1], z);
            } else {
                for (int64_t x = 1; x + 1 < W; ++x)
                    sample<NP, false, false>(y, x, base + x, int64_t(row[x - 1]) + n[x - 1] + n[x] + n[x + 1], z);
            }
            sample<NP, false, false>(y, W - 1, base + W - 1, int64_t(row[W - 2]) + n[W - 2] + 2 * int64_t(n[W - 1]), z);
        }
    }

    // The band's initial weights: the encoder trains a copy of the carried weights over the whole band
    // (sign-error LMS, constant step) and sends, per weight, the change of its multiple of 2^kWeightQ;
    // both sides start the band from the carried weights so rounded plus that change.
    template <int NP>
    void initial_weights() {
        int64_t trained[NP];
        if constexpr (!kDecode) {
            if (plane_ >= kTrainMin) {
                train<NP>(trained);
            } else {
                for (int j = 0; j < NP; ++j) trained[j] = weights_[j];
            }
        }
        for (int j = 0; j < NP; ++j) {
            const int64_t base = int64_t(weights_[j]) >> kWeightQ;
            Prob* p = model_.side[std::min(j, 3)];
            int64_t change;
            if constexpr (kDecode) {
                change = 0;
                if (rc_.bit(p[0])) {
                    const bool neg = rc_.bit(p[1]);
                    int n = 0;
                    while (rc_.bit(p[2 + n]))
                        if (++n >= kSideExp) throw StreamError("weight change too large");
                    const int64_t mag = int64_t((uint64_t(1) << n) | rc_.raw(n));
                    change = neg ? -mag : mag;
                }
                if (base + change < -kWeightLimQ || base + change >= kWeightLimQ)
                    throw StreamError("initial weight out of range");
            } else {
                change = (trained[j] >> kWeightQ) - base;
                rc_.bit(p[0], change != 0);
                if (change != 0) {
                    rc_.bit(p[1], change < 0);
                    const uint64_t mag = uint64_t(change < 0 ? -change : change);
                    const int n = bitlen(mag) - 1;
                    for (int q = 0; q < n; ++q) rc_.bit(p[2 + q], 1);
                    rc_.bit(p[2 + n], 0);
                    rc_.raw(static_cast<uint32_t>(mag - (uint64_t(1) << n)), n);
                }
            }
            weights_[j] = static_cast<T>((base + change) * (int64_t(1) << kWeightQ));
        }
    }

    // The encoder's training pass over the band (the samples in coding order, the first one skipped).
    template <int NP>
    void train(int64_t* out) {
        alignas(16) T w[8] = {};
        for (int j = 0; j < NP; ++j) w[j] = weights_[j];
        const int64_t R = R_, W = W_;
        auto step = [&](const int64_t i, const int64_t sigma) LATTICE_ALWAYS_INLINE_LAMBDA {
            T U[NP];
            int64_t dhat = 0;
            for (int j = 0; j < NP; ++j) {
                U[j] = dp_[j][i];
                dhat += int64_t(w[j]) * U[j];
            }
            const int64_t dc = 4 * int64_t(cur_[i]) - sigma;
            adapt<NP>(w, U, kTrainStep, dc * kOne >= dhat);
        };
        for (int64_t y = 0; y < R; y += kTrainRows) {
            const int32_t* row = cur_ + y * W;
            const int64_t base = y * W;
            if (y == 0) {
                for (int64_t x = 1; x < W; ++x) step(x, 4 * int64_t(row[x - 1]));
                continue;
            }
            const int32_t* n = row - W;
            if (W == 1) {
                step(base, 4 * int64_t(n[0]));
                continue;
            }
            step(base, 2 * (int64_t(n[0]) + n[1]));
            for (int64_t x = 1; x + 1 < W; ++x) step(base + x, int64_t(row[x - 1]) + n[x - 1] + n[x] + n[x + 1]);
            step(base + W - 1, int64_t(row[W - 2]) + n[W - 2] + 2 * int64_t(n[W - 1]));
        }
        for (int j = 0; j < NP; ++j) out[j] = w[j];
    }

    // normalised sign-error LMS: with norm = sum |U_j| > 0, w_j += or -= (U_j * 2^Omega) >> (bitlen(norm) + step)
    // (w: 8 lanes, the last 8 - NP zero and left so).
    template <int NP>
    static LATTICE_INLINE void adapt(T* w, const T* U, const int step, const bool up) {
#if defined(LATTICE_SSE2)
        if constexpr (std::is_same_v<T, int32_t> && NP == kPrev) {
            adapt_sse2(w, U, step, up);
            return;
        }
#endif
        T norm = 0;
        for (int j = 0; j < NP; ++j) norm += U[j] < 0 ? -U[j] : U[j];
        if (norm == 0) return;
        const int sh = bitlen(static_cast<uint64_t>(norm)) + step;
        const T neg = up ? 0 : -1;  // add the increments, or subtract them
        T inc[NP];
        if (sh >= kOmega) {
            for (int j = 0; j < NP; ++j) inc[j] = U[j] >> (sh - kOmega);
        } else {  // |U_j| <= norm < 2^(sh - step): the product stays below 2^kOmega
            for (int j = 0; j < NP; ++j) inc[j] = U[j] * (T(1) << (kOmega - sh));
        }
        for (int j = 0; j < NP; ++j) {
            const T wj = w[j] + ((inc[j] ^ neg) - neg);
            w[j] = wj >= -kWeightLim && wj < kWeightLim ? wj : static_cast<T>(std::clamp<int64_t>(wj, -kWeightLim, kWeightLim - 1));
        }
    }

#if defined(LATTICE_SSE2)
    // adapt() for six int32 weights in two SSE2 registers: the same integers (|U_j| < 2^28, so the absolute
    // sum and the shifted increments fit int32 as in the scalar loop).
    static LATTICE_INLINE void adapt_sse2(int32_t* w, const int32_t* U, const int step, const bool up) {
        const __m128i u0 = _mm_set_epi32(U[3], U[2], U[1], U[0]), u1 = _mm_set_epi32(0, 0, U[5], U[4]);
        const __m128i s0 = _mm_srai_epi32(u0, 31), s1 = _mm_srai_epi32(u1, 31);
        __m128i a = _mm_add_epi32(_mm_sub_epi32(_mm_xor_si128(u0, s0), s0), _mm_sub_epi32(_mm_xor_si128(u1, s1), s1));
        a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4E));
        a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xB1));
        const int32_t norm = _mm_cvtsi128_si32(a);
        if (norm == 0) return;
        const int sh = bitlen(static_cast<uint64_t>(norm)) + step;
        __m128i i0, i1;
        if (sh >= kOmega) {
            const __m128i c = _mm_cvtsi32_si128(sh - kOmega);
            i0 = _mm_sra_epi32(u0, c);
            i1 = _mm_sra_epi32(u1, c);
        } else {
            const __m128i c = _mm_cvtsi32_si128(kOmega - sh);
            i0 = _mm_sll_epi32(u0, c);
            i1 = _mm_sll_epi32(u1, c);
        }
        const __m128i neg = _mm_set1_epi32(up ? 0 : -1);
        const __m128i lo = _mm_set1_epi32(static_cast<int32_t>(-kWeightLim));
        const __m128i hi = _mm_set1_epi32(static_cast<int32_t>(kWeightLim - 1));
        auto add = [&](int32_t* wp, __m128i inc) LATTICE_ALWAYS_INLINE_LAMBDA {
            __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(wp));
            v = _mm_add_epi32(v, _mm_sub_epi32(_mm_xor_si128(inc, neg), neg));
            __m128i m = _mm_cmpgt_epi32(v, hi);
            v = _mm_or_si128(_mm_and_si128(m, hi), _mm_andnot_si128(m, v));
            m = _mm_cmplt_epi32(v, lo);
            v = _mm_or_si128(_mm_and_si128(m, lo), _mm_andnot_si128(m, v));
            _mm_store_si128(reinterpret_cast<__m128i*>(wp), v);
        };
        add(w, i0);
        add(w + 4, i1);
    }
#endif

    // One sample: i = y * W + x, sigma its local sum (none for the first); kInner: 0 < x < W-1, 0 < y < R-1.
    template <int NP, bool kInner, bool kFirst>
    LATTICE_INLINE void sample(const int64_t y, const int64_t x, const int64_t i, const int64_t sigma, const int64_t z) {
        const int64_t M = M_;
        int64_t dhat = 0, s2;
        T U[NP > 0 ? NP : 1];
        for (int j = 0; j < NP; ++j) U[j] = dp_[j][i];
        if constexpr (kFirst) {
            s2 = 2 * (z > 0 ? int64_t(cur_[i - plane_]) : (M + 1) >> 1);
        } else {
            for (int j = 0; j < NP; ++j) dhat += int64_t(weights_[j]) * U[j];
            s2 = std::clamp<int64_t>(((dhat + sigma * kOne) >> (kOmega + 1)) + 1, 0, 2 * M + 1);
        }
        const int64_t shat = s2 >> 1;
        const int64_t theta = std::min(shat, M - shat);
        // activity: running mean and the residual magnitudes around (previous band) and before (this band)
        const uint32_t* rp = rp_;
        const int64_t p0 = rp[i];
        int64_t ctx;
        if constexpr (kInner) {
            ctx = 4 * p0 + rp[i - 1] + rp[i + 1] + rp[i - W_] + rp[i + W_] + 2 * int64_t(rq_[i - 1]) + 2 * int64_t(rq_[i - W_]);
        } else {
            const int64_t pl = x > 0 ? rp[i - 1] : p0, pr = x + 1 < W_ ? rp[i + 1] : p0;
            const int64_t pu = y > 0 ? rp[i - W_] : p0, pd = y + 1 < R_ ? rp[i + W_] : p0;
            const int64_t cw = x > 0 ? rq_[i - 1] : p0;
            const int64_t cn = y > 0 ? rq_[i - W_] : cw;
            ctx = 4 * p0 + pl + pr + pu + pd + 2 * cw + 2 * cn;
        }
        const int64_t V = 2 * S_ + (ctx << kEma);
        const int L = bitlen(static_cast<uint64_t>(V));
        const int c = std::min(L >= 2 ? 2 * L + static_cast<int>((V >> (L - 2)) & 1) : L, kCtx - 1);
        const int k = std::max(0, L - 1 - kEma - 3);  // V ~ 14 * 2^kEma * mean: k ~ floor(log2(mean))
        int64_t v, d;
        if constexpr (kDecode) {
            d = static_cast<int64_t>(code_residual<RC, true>(rc_, model_, c, k, 0, static_cast<uint64_t>(M)));
            int64_t delta;
            if (d > 2 * theta) {
                delta = shat == theta ? d - theta : theta - d;
            } else {  // (d + 1) / 2, positive when d and s2 have the same parity
                const int64_t neg = -((d ^ s2) & 1);
                delta = (((d + 1) >> 1) ^ neg) - neg;
            }
            v = shat + delta;
            cur_[i] = static_cast<int32_t>(v);
        } else {
            v = cur_[i];
            const int64_t delta = v - shat;
            const int64_t ad = delta < 0 ? -delta : delta;
            if (ad > theta)
                d = ad + theta;
            else  // 2|delta|, less 1 when delta has the favoured sign (odd s2: positive, even s2: negative)
                d = 2 * ad - (((s2 & 1) & int64_t(delta > 0)) | ((~s2 & 1) & int64_t(delta < 0)));
            code_residual<RC, false>(rc_, model_, c, k, static_cast<uint64_t>(d), static_cast<uint64_t>(M));
        }
        rq_[i] = static_cast<uint32_t>(d);
        S_ += d - (S_ >> kEma);
        if constexpr (kFirst) {
            dz_[i] = 0;
            return;
        } else {
            const int64_t dc = 4 * v - sigma;
            dz_[i] = static_cast<T>(dc);
            if constexpr (NP > 0) {
                const int step = static_cast<int>(std::min<int64_t>(kStep1, kStep0 + (i >> kStepLog)));
                adapt<NP>(weights_, U, step, dc * kOne >= dhat);
            }
        }
    }

    RC& rc_;
    Work& w_;
    const int64_t R_, W_, M_;
    int64_t plane_ = 0;
    Model model_;
    alignas(16) T weights_[8] = {kOne * 7 / 8};  // the others start at 0; 6, 7: SIMD padding, always 0
    int64_t S_ = int64_t(8) << kEma;      // running mean of the mapped residuals, times 2^kEma
    int32_t* cur_ = nullptr;
    T* dz_ = nullptr;
    const T* dp_[kPrev] = {};
    const uint32_t* rp_ = nullptr;
    uint32_t* rq_ = nullptr;
};

template <class RC, bool kDecode>
void code_block(RC& rc, Work& w, int64_t R, int64_t W, int64_t nb, int64_t M) {
    if (M < kSmallM)
        BlockCoder<RC, kDecode, int32_t>(rc, w, R, W, M).run(nb);
    else
        BlockCoder<RC, kDecode, int64_t>(rc, w, R, W, M).run(nb);
}

// ---------------------------------------------------------------------------------------------
// whole cubes

inline int64_t num_blocks(int64_t H, int64_t rpb) { return H == 0 ? 0 : (H + rpb - 1) / rpb; }

void check_dims(int64_t H, int64_t W, int64_t C, int64_t M, int64_t rpb) {
    if (H < 0 || W < 0 || C < 0) throw std::invalid_argument("lattice coder: negative dimension");
    if (M < 0 || M > 0x7FFFFFFF) throw std::invalid_argument("lattice coder: max_value must be in [0, 2^31 - 1]");
    if (rpb <= 0) throw std::invalid_argument("lattice coder: rows_per_block must be positive");
    constexpr int64_t kMaxSamples = int64_t(1) << 40;
    if (W > 0 && C > 0 && (W > kMaxSamples / C || H > kMaxSamples / (W * C)))
        throw std::invalid_argument("lattice coder: cube too large (over 2^40 values)");
}

using hsicodec_native::parallel_for_state;

// u: (H, W, C) C-contiguous, any integer type; the coded values are the lattice indices floor((u - offset) / step),
// which must lie in [0, M] (u - offset >= 0). With sums: the remainders r = u - offset - step * index summed,
// sums[0] = sum r and sums[1] = sum r^2 (what the squared error of the lattice points follows from).
// The block is gathered band-major a strip of kStrip pixels at a time (the planes lie a power-of-two-ish
// distance apart: one pixel at a time, every band's store would fall in the same cache set).
constexpr int64_t kStrip = 16;

using Wide = unsigned __int128;

template <class InT>
std::vector<uint8_t> encode(const InT* u, int64_t H, int64_t W, int64_t C, int64_t M, int64_t rpb, int threads,
                            int64_t offset = 0, int64_t step = 1, Wide* sums = nullptr) {
    check_dims(H, W, C, M, rpb);
    if (step < 1 || step > 0xFFFFFFFFll) throw std::invalid_argument("lattice_encode: step must be in [1, 2^32)");
    const int64_t nblk = num_blocks(H, rpb);
    if (nblk > 0xFFFFFFFFll) throw std::invalid_argument("lattice coder: too many blocks");
    std::vector<std::vector<uint8_t>> out(static_cast<size_t>(nblk));
    std::vector<Wide> bsum(static_cast<size_t>(2 * nblk), 0);
    std::atomic<int> bad{0};
    const double inv = 1.0 / static_cast<double>(step);
    parallel_for_state<Work>(nblk, threads, [&](int64_t b, Work& w) {
        const int64_t y0 = b * rpb, R = std::min(rpb, H - y0), n = R * W;
        w.s.resize(static_cast<size_t>(C * n));
        const InT* src = u + y0 * W * C;
        int32_t* dst = w.s.data();
        bool wrong = false;
        Wide s1 = 0, s2 = 0;
        for (int64_t p0 = 0; p0 < n; p0 += kStrip) {
            const int64_t p1 = std::min(n, p0 + kStrip);
            for (int64_t z = 0; z < C; ++z)
                for (int64_t p = p0; p < p1; ++p) {
                    const int64_t t = int64_t(src[p * C + z]) - offset;
                    int64_t q = t;
                    if (step > 1) {  // floor(t / step) by a reciprocal, corrected by one where rounding missed
                        q = static_cast<int64_t>(static_cast<double>(t) * inv);
                        int64_t r = t - q * step;
                        q += (r >= step) - (r < 0);
                        r = t - q * step;
                        if (sums) {
                            s1 += static_cast<uint64_t>(r);
                            s2 += static_cast<Wide>(static_cast<uint64_t>(r)) * static_cast<uint64_t>(r);
                        }
                    }
                    wrong |= t < 0 || q > M;
                    dst[z * n + p] = static_cast<int32_t>(q);
                }
        }
        bsum[static_cast<size_t>(2 * b)] = s1;
        bsum[static_cast<size_t>(2 * b + 1)] = s2;
        if (wrong) bad.store(1);
        if (bad.load()) throw std::invalid_argument("lattice_encode: values must lie in [0, max_value]");
        RangeEncoder rc(out[static_cast<size_t>(b)]);
        code_block<RangeEncoder, false>(rc, w, R, W, C, M);
        rc.finish();
        if (out[static_cast<size_t>(b)].size() > 0xFFFFFFFFull)
            throw std::invalid_argument("lattice_encode: a block exceeds 4 GiB; use fewer rows per block");
    });
    if (sums) {
        sums[0] = sums[1] = 0;
        for (int64_t b = 0; b < nblk; ++b) {
            sums[0] += bsum[static_cast<size_t>(2 * b)];
            sums[1] += bsum[static_cast<size_t>(2 * b + 1)];
        }
    }
    size_t total = 4 + 4 * static_cast<size_t>(nblk);
    for (const auto& o : out) total += o.size();
    std::vector<uint8_t> res;
    res.reserve(total);
    auto put32 = [&](uint64_t v) {
        for (int i = 0; i < 4; ++i) res.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    put32(static_cast<uint64_t>(nblk));
    for (const auto& o : out) put32(o.size());
    for (const auto& o : out) res.insert(res.end(), o.begin(), o.end());
    return res;
}

// Where decoded values go: rows [r0, r1), columns [c0, c1) and bands [a, band_stop) of the cube land in out
// (r1 - r0, c1 - c0, band_stop - a) as offset + step * u, of out's type (the caller checks that they fit).
template <class OutT>
struct Sink {
    OutT* out;
    int64_t r0, r1, c0, c1, a;
    int64_t offset = 0, step = 1;
};

// Decode blocks [lo, hi) and bands [0, band_stop) into the sink (whose rows lie in those blocks).
template <class OutT>
void decode(const uint8_t* data, size_t size, int64_t H, int64_t W, int64_t C, int64_t M, int64_t rpb, int64_t lo,
            int64_t hi, int64_t band_stop, const Sink<OutT>& sink, int threads) {
    const int64_t nblk = num_blocks(H, rpb);
    auto get32 = [&](size_t off) {
        uint64_t v = 0;
        for (int i = 0; i < 4; ++i) v |= uint64_t(data[off + i]) << (8 * i);
        return v;
    };
    if (size < 4) throw StreamError("lattice stream: truncated block table (" + std::to_string(size) + " bytes)");
    const uint64_t n = get32(0);
    if (n != static_cast<uint64_t>(nblk))
        throw StreamError("lattice stream: " + std::to_string(n) + " blocks, the shape implies " + std::to_string(nblk));
    const size_t table = 4 + 4 * static_cast<size_t>(nblk);
    if (size < table) throw StreamError("lattice stream: truncated block table");
    std::vector<uint64_t> off(static_cast<size_t>(nblk) + 1);
    off[0] = table;
    for (int64_t b = 0; b < nblk; ++b) off[b + 1] = off[b] + get32(4 + 4 * static_cast<size_t>(b));
    if (off[nblk] < size)
        throw StreamError("lattice stream: " + std::to_string(size - off[nblk]) + " trailing bytes after the blocks");
    if (off[nblk] > size)
        throw StreamError("lattice stream: truncated (the block table declares " + std::to_string(off[nblk]) +
                          " bytes, the stream has " + std::to_string(size) + ")");
    const bool all_bands = band_stop == C;
    parallel_for_state<Work>(hi - lo, threads, [&](int64_t i, Work& w) {
        const int64_t b = lo + i;
        const int64_t y0 = b * rpb, R = std::min(rpb, H - y0);
        w.s.assign(static_cast<size_t>(band_stop * R * W), 0);
        try {
            RangeDecoder rc(data + off[b], static_cast<size_t>(off[b + 1] - off[b]));
            code_block<RangeDecoder, true>(rc, w, R, W, band_stop, M);
            if (rc.overran()) throw StreamError("truncated");
            if (all_bands && !rc.at_end()) throw StreamError("trailing bytes");
        } catch (const StreamError& e) {
            throw StreamError("lattice stream: block " + std::to_string(b) + ": " + e.what());
        }
        // rows of the sink in this block, scattered back to (rows, cols, bands) a strip of pixels at a time
        const int64_t ya = std::max(y0, sink.r0), yb = std::min(y0 + R, sink.r1);
        const int64_t nz = band_stop - sink.a, nc = sink.c1 - sink.c0, n = R * W;
        const int32_t* s = w.s.data();
        for (int64_t y = ya; y < yb; ++y) {
            OutT* dst = sink.out + (y - sink.r0) * nc * nz;
            const int64_t pb = (y - y0) * W + sink.c0;
            for (int64_t x0 = 0; x0 < nc; x0 += kStrip) {
                const int64_t x1 = std::min(nc, x0 + kStrip);
                for (int64_t z = sink.a; z < band_stop; ++z) {
                    const int32_t* plane = s + z * n + pb;
                    for (int64_t x = x0; x < x1; ++x)
                        dst[x * nz + (z - sink.a)] = static_cast<OutT>(sink.offset + sink.step * int64_t(plane[x]));
                }
            }
        }
    });
}

}  // namespace lattice

#ifndef LATTICE_STANDALONE
namespace py = pybind11;

namespace {

using I32 = py::array_t<int32_t, py::array::c_style>;

[[noreturn]] void raise_stream_error(const char* msg) {
    py::object cls = py::module_::import("hsicodec.errors").attr("HsimHeaderError");
    PyErr_SetString(cls.ptr(), msg);
    throw py::error_already_set();
}

// f(T{}) for the integer dtype of a (8 to 64 bits, signed or not); anything else raises ValueError.
template <class F>
void with_int_type(const py::array& a, const char* what, F&& f) {
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    if (kind == 'u' && size == 1) return f(uint8_t{});
    if (kind == 'i' && size == 1) return f(int8_t{});
    if (kind == 'u' && size == 2) return f(uint16_t{});
    if (kind == 'i' && size == 2) return f(int16_t{});
    if (kind == 'u' && size == 4) return f(uint32_t{});
    if (kind == 'i' && size == 4) return f(int32_t{});
    if (kind == 'i' && size == 8) return f(int64_t{});
    throw py::value_error(std::string(what) + " must be an integer array of 8 to 32 bits or int64");
}

bool c_contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

// A non-negative 128-bit sum as a Python int.
py::int_ to_pyint(lattice::Wide v) {
    const py::int_ hi(static_cast<uint64_t>(v >> 64)), lo(static_cast<uint64_t>(v));
    return py::int_(hi.attr("__lshift__")(64).attr("__or__")(lo));
}

py::object lattice_encode(const py::array& u, int64_t max_value, int64_t rows_per_block, int threads, int64_t offset,
                          int64_t step, bool sums) {
    if (u.ndim() != 3) throw py::value_error("lattice_encode: u must be (H, W, C)");
    if (!c_contiguous(u)) throw py::value_error("lattice_encode: u must be C-contiguous");
    const int64_t H = u.shape(0), W = u.shape(1), C = u.shape(2);
    lattice::check_dims(H, W, C, max_value, rows_per_block);
    std::vector<uint8_t> res;
    lattice::Wide acc[2] = {0, 0};
    with_int_type(u, "lattice_encode: u", [&](auto t) {
        using T = decltype(t);
        const T* p = static_cast<const T*>(u.data());
        py::gil_scoped_release nogil;
        res = lattice::encode<T>(p, H, W, C, max_value, rows_per_block, threads, offset, step, sums ? acc : nullptr);
    });
    py::bytes data(reinterpret_cast<const char*>(res.data()), res.size());
    if (!sums) return std::move(data);
    return py::make_tuple(data, to_pyint(acc[0]), to_pyint(acc[1]));
}

// The blocks rows [r0, r1) fall in, after the common argument checks.
std::pair<int64_t, int64_t> block_range(int64_t height, int64_t width, int64_t bands, int64_t max_value,
                                        int64_t rows_per_block, int64_t r0, int64_t r1) {
    lattice::check_dims(height, width, bands, max_value, rows_per_block);
    if (r0 < 0 || r0 > r1 || r1 > height) throw py::value_error("lattice_decode: rows outside the cube");
    const int64_t lo = r0 / rows_per_block;
    return {lo, r1 == r0 ? lo : lattice::num_blocks(r1, rows_per_block)};
}

template <class OutT>
void run_decode(const py::buffer& data, int64_t H, int64_t W, int64_t C, int64_t M, int64_t rpb, int64_t lo,
                int64_t hi, int64_t band_stop, const lattice::Sink<OutT>& sink, int threads) {
    const py::buffer_info info = data.request();
    if (info.ndim != 1 || info.itemsize != 1) throw py::value_error("lattice_decode: data must be bytes");
    std::string err;
    {
        py::gil_scoped_release nogil;
        try {
            lattice::decode<OutT>(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size), H, W, C, M,
                                  rpb, lo, hi, band_stop, sink, threads);
        } catch (const lattice::StreamError& e) {
            err = e.what();
        }
    }
    if (!err.empty()) raise_stream_error(err.c_str());
}

I32 lattice_decode(const py::buffer& data, int64_t height, int64_t width, int64_t bands, int64_t max_value,
                   int64_t rows_per_block, int64_t block_lo, int64_t block_hi, int64_t band_stop, int threads) {
    lattice::check_dims(height, width, bands, max_value, rows_per_block);
    const int64_t nblk = lattice::num_blocks(height, rows_per_block);
    if (block_lo < 0 || block_lo > block_hi || block_hi > nblk)
        throw py::value_error("lattice_decode: need 0 <= block_lo <= block_hi <= " + std::to_string(nblk));
    if (band_stop < 0 || band_stop > bands) throw py::value_error("lattice_decode: need 0 <= band_stop <= bands");
    const int64_t r0 = block_lo * rows_per_block, r1 = std::min(height, block_hi * rows_per_block);
    I32 out({static_cast<py::ssize_t>(std::max<int64_t>(r1 - r0, 0)), static_cast<py::ssize_t>(width),
             static_cast<py::ssize_t>(band_stop)});
    const lattice::Sink<int32_t> sink{out.mutable_data(), r0, std::max(r0, r1), 0, width, 0};
    run_decode<int32_t>(data, height, width, bands, max_value, rows_per_block, block_lo, block_hi, band_stop, sink,
                        threads);
    return out;
}

void lattice_decode_into(const py::buffer& data, int64_t height, int64_t width, int64_t bands, int64_t max_value,
                         int64_t rows_per_block, py::array& out, int64_t row0, int64_t col0, int64_t band0,
                         int64_t offset, int64_t step, int threads) {
    if (out.ndim() != 3) throw py::value_error("lattice_decode_into: out must be (rows, cols, bands)");
    if (!c_contiguous(out) || !out.writeable()) throw py::value_error("lattice_decode_into: out must be writable and C-contiguous");
    const int64_t r1 = row0 + out.shape(0), c1 = col0 + out.shape(1), b1 = band0 + out.shape(2);
    if (col0 < 0 || c1 > width || band0 < 0 || b1 > bands)
        throw py::value_error("lattice_decode_into: the window lies outside the cube");
    const auto [lo, hi] = block_range(height, width, bands, max_value, rows_per_block, row0, r1);
    with_int_type(out, "lattice_decode_into: out", [&](auto t) {
        using T = decltype(t);
        const lattice::Sink<T> sink{static_cast<T*>(out.mutable_data()), row0, r1, col0, c1, band0, offset, step};
        run_decode<T>(data, height, width, bands, max_value, rows_per_block, lo, hi, b1, sink, threads);
    });
}

}  // namespace

void register_lattice_coder(py::module_& mod) {
    mod.def("lattice_encode", &lattice_encode, py::arg("u"), py::arg("max_value"), py::arg("rows_per_block"),
            py::arg("threads") = 0, py::arg("offset") = 0, py::arg("step") = 1, py::arg("sums") = false,
            "Lossless stream of the lattice indices floor((u - offset) / step) of an integer cube u (H, W, C), any\n"
            "integer dtype; they must lie in [0, max_value] (spec/predictive.md). threads <= 0: all cores (the\n"
            "bytes do not depend on it). sums: (stream, sum of the remainders, sum of their squares).");
    mod.def("lattice_decode", &lattice_decode, py::arg("data"), py::arg("height"), py::arg("width"),
            py::arg("bands"), py::arg("max_value"), py::arg("rows_per_block"), py::arg("block_lo"),
            py::arg("block_hi"), py::arg("band_stop"), py::arg("threads") = 0,
            "Row blocks [block_lo, block_hi) and bands [0, band_stop) of a lattice stream: int32 (rows, W,\n"
            "band_stop). A malformed stream raises hsicodec.errors.HsimHeaderError.");
    mod.def("lattice_decode_into", &lattice_decode_into, py::arg("data"), py::arg("height"), py::arg("width"),
            py::arg("bands"), py::arg("max_value"), py::arg("rows_per_block"), py::arg("out"), py::arg("row0"),
            py::arg("col0"), py::arg("band0"), py::arg("offset") = 0, py::arg("step") = 1, py::arg("threads") = 0,
            "Decode the window of a lattice stream that out (rows, cols, bands), any integer dtype, covers from\n"
            "(row0, col0, band0) into out as offset + step * u (the caller makes sure every value fits out's\n"
            "dtype). Only the row blocks and bands the window needs are decoded.");
}
#endif

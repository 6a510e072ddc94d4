// The coefficient-map layer's entropy coder, ec = 1 (spec/hsim.md 10.9): one call codes a whole layer stream
// (all maps, subbands and checkerboard passes), computing the context classes itself, GIL released.
//
//   map_encode(sym, base_codes, offsets, bands, parents, substreams, threads) -> bytes
//   map_decode(data, k, h, w, base_codes, offsets, max_abs, bands, parents, threads, stop) -> (k, h, w) int32
//       stop >= 0: only the first `stop` subbands of each map where the stream allows (see map_decode), the
//       (k, rows, cols) box they tile returned (a reduced-resolution read decodes only the coarse levels)
//   map_code_tables() -> bytes (the canonical frequency table, for its sha256)
//
// hsicodec/layers/maps/rans.py is the reference; tests/test_map_coder.py checks both agree bit for bit.
// Classes are those of scheme "checkerboard" (coding.activity), taken a row at a time with the pricing's
// row_classes (map_layout.h): the encoders, which know every symbol, a whole map before coding it; the decoder
// a row before decoding that row's symbols of a pass (a pass-0 symbol's class reads earlier subbands and maps
// only, a pass-1 symbol's also its four pass-0 neighbours).
//
// Threads: the stream is cut into substreams of whole maps (its index says where). A map's classes read the
// previous map's same subband, so the substreams are pipelined: a thread decodes subband b of map j once map
// j - 1 has finished subband b. The bytes and symbols never depend on the thread count.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "map_layout.h"
#include "map_tables.h"

namespace py = pybind11;

namespace {

using namespace hsi_layout;

constexpr uint32_t kL = 1u << 23;  // rANS state lower bound: states lie in [kL, 256 kL)
constexpr int kProbBits = 16;
constexpr int kTokens = 64;
constexpr int kCodes = 256;
constexpr int kEscLenBits = 5;
constexpr int kMaxEscBits = 20;
constexpr int kClasses = 26;
constexpr int64_t kMaxAbs = int64_t(1) << 20;

struct Model {
    uint32_t freq[kTokens];
    uint32_t cum[kTokens + 1];
    uint8_t start[256];  // first token whose range may hold a slot with these top 8 bits
    int r;                // escape token
    int s;                // raw low bits
    // the encoder's division by freq as a multiplication (exact for states below 2^31: F. Giesen's rans_byte):
    // x / f = (x * rcp >> 32) >> rsh, and the new state x + bias + (x / f) (2^16 - f)
    uint32_t rcp[kTokens];
    uint32_t bias[kTokens];
    uint8_t rsh[kTokens];
};

struct Models {
    Model m[kCodes];
    Models() {
        for (int c = 0; c < kCodes; ++c) {
            Model& md = m[c];
            md.r = -1;
            md.cum[0] = 0;
            for (int u = 0; u < kTokens; ++u) {
                md.freq[u] = kMapFreq[c][u];
                if (md.freq[u]) md.r = u;
                md.cum[u + 1] = md.cum[u] + md.freq[u];
            }
            for (int u = 0; u < kTokens; ++u) {
                const uint32_t f = md.freq[u];
                if (f < 2) {  // 1 (0: never coded): x / 1 = (x * (2^32 - 1) >> 32) + 1, folded into the bias
                    md.rcp[u] = ~0u;
                    md.rsh[u] = 0;
                    md.bias[u] = md.cum[u] + (1u << kProbBits) - 1;
                } else {
                    int sh = 0;
                    while (f > (1u << sh)) ++sh;
                    md.rcp[u] = static_cast<uint32_t>(((uint64_t(1) << (sh + 31)) + f - 1) / f);
                    md.rsh[u] = static_cast<uint8_t>(sh - 1);
                    md.bias[u] = md.cum[u];
                }
            }
            md.s = std::max(0, ((c - 128) >> 3) - 2);
            int u = 0;
            for (int hi = 0; hi < 256; ++hi) {
                while (md.cum[u + 1] <= uint32_t(hi) << 8) ++u;
                md.start[hi] = static_cast<uint8_t>(u);
            }
        }
    }
};
const Models& models() {
    static const Models M;
    return M;
}

struct DecodeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// -- rANS -------------------------------------------------------------------------------------------------

struct Enc {
    uint32_t x = kL;
    std::vector<uint8_t> out;  // emitted bytes, last-read first
    // x -> (x / f) 2^bits + x % f + start, for f = 1 (raw bits: no division) and a model's token
    inline void raw(uint32_t v, int bits) {
        if (!bits) return;
        const uint32_t x_max = (kL >> bits) << 8;
        while (x >= x_max) {
            out.push_back(static_cast<uint8_t>(x & 0xFF));
            x >>= 8;
        }
        x = (x << bits) + v;
    }
    inline void token(const Model& md, int64_t u) {
        const uint32_t f = md.freq[u];
        const uint64_t x_max = uint64_t((kL >> kProbBits) << 8) * f;
        while (x >= x_max) {
            out.push_back(static_cast<uint8_t>(x & 0xFF));
            x >>= 8;
        }
        const uint32_t q = static_cast<uint32_t>((uint64_t(x) * md.rcp[u]) >> 32) >> md.rsh[u];
        x = x + md.bias[u] + q * ((1u << kProbBits) - f);
    }
    void symbol(int64_t q, const Model& md) {
        const int64_t m = q < 0 ? -q : q;
        if (m) raw(q < 0, 1);
        int64_t u = m >> md.s;
        if (u < md.r) {
            raw(static_cast<uint32_t>(m & ((int64_t(1) << md.s) - 1)), md.s);
        } else {
            const int64_t xv = m - (int64_t(md.r) << md.s) + (int64_t(1) << md.s);
            int n = 0;
            while ((xv >> (n + 1)) != 0) ++n;
            const int64_t y = xv - (int64_t(1) << n);
            if (n > 16) {
                raw(static_cast<uint32_t>(y & 0xFFFF), 16);
                raw(static_cast<uint32_t>(y >> 16), n - 16);
            } else {
                raw(static_cast<uint32_t>(y), n);
            }
            raw(static_cast<uint32_t>(n - md.s), kEscLenBits);
            u = md.r;
        }
        token(md, u);
    }
    void finish(std::vector<uint8_t>& dst) const {
        for (int i = 0; i < 4; ++i) dst.push_back(static_cast<uint8_t>(x >> (8 * i)));
        dst.insert(dst.end(), out.rbegin(), out.rend());
    }
};

struct Dec {
    const uint8_t* p;
    const uint8_t* end;
    uint32_t x;
    Dec(const uint8_t* b, const uint8_t* e) : p(b + 4), end(e) {
        x = uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
        if (x < kL || x >= (kL << 8)) throw DecodeError("a substream's initial state is out of range");
    }
    inline void advance(uint32_t start, uint32_t freq, int bits) {
        uint32_t v = freq * (x >> bits) + (x & ((1u << bits) - 1)) - start;
        while (v < kL) {
            if (p >= end) throw DecodeError("a substream ends early");
            v = (v << 8) | *p++;
        }
        x = v;
    }
    inline uint32_t raw(int bits) {
        if (!bits) return 0;
        const uint32_t v = x & ((1u << bits) - 1);
        advance(v, 1, bits);
        return v;
    }
    inline int64_t symbol(const Model& md, int64_t max_abs) {
        const uint32_t slot = x & 0xFFFF;
        int u = md.start[slot >> 8];
        while (md.cum[u + 1] <= slot) ++u;
        advance(md.cum[u], md.freq[u], kProbBits);
        int64_t m;
        if (u < md.r) {
            m = (int64_t(u) << md.s) | raw(md.s);
        } else {
            const int n = static_cast<int>(raw(kEscLenBits)) + md.s;
            if (n > kMaxEscBits) throw DecodeError("an escape longer than any symbol needs");
            int64_t y;
            if (n > 16) {
                y = int64_t(raw(n - 16)) << 16;
                y |= raw(16);
            } else {
                y = raw(n);
            }
            m = (int64_t(md.r) << md.s) + (int64_t(1) << n) + y - (int64_t(1) << md.s);
        }
        if (m > max_abs)
            throw DecodeError("a symbol of magnitude " + std::to_string(m) + " past the bound " + std::to_string(max_abs));
        return (m && raw(1)) ? -m : m;
    }
    void finish() const {
        if (p != end || x != kL) throw DecodeError("a substream does not end after its symbols");
    }
};

// -- layout and contexts ----------------------------------------------------------------------------------

// |v| of a symbol (planes hold signed symbols in the decoder, magnitudes in the encoder)
inline int64_t mag(int32_t v) { return v < 0 ? -int64_t(v) : int64_t(v); }

// |N| + |S| + |W| + |E| of plane a at (r, c) of band b (0 outside it)
inline int64_t nb4(const int32_t* a, int64_t w, const Band& b, int64_t r, int64_t c) {
    const int32_t* row = a + (b.r0 + r) * w + b.c0 + c;
    int64_t s = 0;
    if (r > 0) s += mag(row[-w]);
    if (r + 1 < b.rows()) s += mag(row[w]);
    if (c > 0) s += mag(row[-1]);
    if (c + 1 < b.cols()) s += mag(row[1]);
    return s;
}

// codes[(j * groups + g) * 26 + class] = clip(base[j * groups + g] + offsets[class], 0, 255)
std::vector<uint8_t> code_table(const py::bytes& base_in, const std::vector<int64_t>& offsets, int64_t k,
                                int64_t groups) {
    const std::string base = base_in;
    if (static_cast<int64_t>(base.size()) != k * groups) throw std::invalid_argument("one base code per (map, group)");
    if (offsets.size() != kClasses) throw std::invalid_argument("26 class offsets");
    std::vector<uint8_t> out(k * groups * kClasses);
    for (int64_t g = 0; g < k * groups; ++g)
        for (int c = 0; c < kClasses; ++c)
            out[g * kClasses + c] = static_cast<uint8_t>(std::clamp<int64_t>(uint8_t(base[g]) + offsets[c], 0, 255));
    return out;
}

int thread_count(int threads, int64_t jobs) {
    int64_t nt = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt, jobs)));
}

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<uint8_t>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<uint8_t>(v));
}

uint64_t get_varint(const uint8_t* data, size_t size, size_t& pos) {
    uint64_t v = 0;
    for (int i = 0; i < 5; ++i) {
        if (pos >= size) throw DecodeError("its substream index ends early");
        const uint8_t b = data[pos++];
        v |= uint64_t(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0) throw DecodeError("a non-canonical length in its substream index");
            return v;
        }
    }
    throw DecodeError("a length of more than 5 bytes in its substream index");
}

// -- encode -----------------------------------------------------------------------------------------------

py::bytes map_encode(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& sym,
                     const py::bytes& base_codes, const std::vector<int64_t>& offsets, const LayoutIn& bands_in,
                     const std::vector<int64_t>& parents, int64_t substreams, int threads) {
    if (sym.ndim() != 3) throw std::invalid_argument("sym must be (k, H, W)");
    const int64_t k = sym.shape(0), h = sym.shape(1), w = sym.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, true);
    const std::vector<uint8_t> codes = code_table(base_codes, offsets, k, L.groups);
    if (substreams < 1 || substreams > std::max<int64_t>(k, 1)) throw std::invalid_argument("1 <= substreams <= k");
    const int64_t* s = sym.data();
    std::vector<std::vector<uint8_t>> parts(substreams);
    std::string out;
    {
        py::gil_scoped_release release;
        bool any = false;
        for (int64_t i = 0; i < k * hw; ++i) {
            if (s[i] < -kMaxAbs || s[i] > kMaxAbs) throw std::invalid_argument("a symbol past 2^20");
            any |= s[i] != 0;
        }
        if (any) {
            std::vector<int32_t> absq(k * hw);
            for (int64_t i = 0; i < k * hw; ++i) absq[i] = static_cast<int32_t>(s[i] < 0 ? -s[i] : s[i]);
            const Models& M = models();
            std::vector<std::exception_ptr> errors(substreams);
            // a map's classes (the pricing's row_classes over its |symbols| and their neighbour sums), then its
            // symbols coded in reverse coding order: subbands last to first, pass 1 before pass 0, rows and
            // columns backwards (the decoder reads them forwards)
            const int64_t wide = widest(L);
            auto encode_part = [&](int64_t part) noexcept {
                try {
                    Enc enc;
                    std::vector<int32_t> nb_cur(hw), nb_prev(hw), zeros(wide, 0);
                    std::vector<uint8_t> cls(hw);
                    const int64_t j0 = part * k / substreams, j1 = (part + 1) * k / substreams;
                    for (int64_t j = j1 - 1; j >= j0; --j) {
                        const int32_t* cur = absq.data() + j * hw;
                        const int32_t* prev = j > 0 ? cur - hw : nullptr;
                        if (j == j1 - 1) plane_neighbours(cur, w, L, nb_cur.data());
                        else std::swap(nb_cur, nb_prev);  // the map after this one read this one's sums
                        if (prev) plane_neighbours(prev, w, L, nb_prev.data());
                        for (size_t bi = 0; bi < L.bands.size(); ++bi)
                            for (int64_t r = 0; r < L.bands[bi].rows(); ++r)
                                row_classes(cur, prev, nb_cur.data(), nb_prev.data(), w, L, bi, r, zeros.data(),
                                            cls.data() + (L.bands[bi].r0 + r) * w + L.bands[bi].c0);
                        const int64_t* sj = s + j * hw;
                        for (size_t bi = L.bands.size(); bi-- > 0;) {
                            const Band& b = L.bands[bi];
                            const uint8_t* ct = codes.data() + (j * L.groups + b.grp) * kClasses;
                            for (int pass = 1; pass >= 0; --pass)
                                for (int64_t r = b.rows() - 1; r >= 0; --r) {
                                    const int64_t row = (b.r0 + r) * w + b.c0;
                                    const int64_t first = (r + pass) & 1;
                                    if (first >= b.cols()) continue;
                                    for (int64_t c = b.cols() - 1 - ((b.cols() - 1 - first) & 1); c >= first; c -= 2)
                                        enc.symbol(sj[row + c], M.m[ct[cls[row + c]]]);
                                }
                        }
                    }
                    enc.finish(parts[part]);
                } catch (...) {  // (memory): rethrown below, never out of a thread
                    errors[part] = std::current_exception();
                }
            };
            const int nt = thread_count(k * hw < (int64_t(1) << 15) ? 1 : threads, substreams);
            std::vector<std::thread> pool;
            for (int t = 1; t < nt; ++t)
                pool.emplace_back([&, t] {
                    for (int64_t part = t; part < substreams; part += nt) encode_part(part);
                });
            for (int64_t part = 0; part < substreams; part += nt) encode_part(part);
            for (auto& th : pool) th.join();
            for (auto& e : errors)
                if (e) std::rethrow_exception(e);
            std::vector<uint8_t> head;
            put_varint(head, static_cast<uint64_t>(substreams));
            size_t total = 0;
            for (int64_t part = 0; part + 1 < substreams; ++part) put_varint(head, parts[part].size());
            for (const auto& p : parts) total += p.size();
            out.reserve(head.size() + total);
            out.append(head.begin(), head.end());
            for (const auto& p : parts) out.append(p.begin(), p.end());
        }
    }
    return py::bytes(out);
}

// -- decode -----------------------------------------------------------------------------------------------

// The (rows, cols) box the first `stop` subbands tile (from the origin, as the coarse levels of the Mallat
// layout do); invalid_argument when they do not tile one.
std::pair<int64_t, int64_t> leading_box(const Layout& L, int64_t stop) {
    int64_t rows = 0, cols = 0, area = 0;
    for (int64_t i = 0; i < stop; ++i) {
        const Band& b = L.bands[i];
        if (b.empty()) continue;
        rows = std::max(rows, b.r1);
        cols = std::max(cols, b.c1);
        area += b.rows() * b.cols();
    }
    if (area != rows * cols) throw std::invalid_argument("the first `stop` subbands must tile a box at the origin");
    return {rows, cols};
}

// Subbands each map must decode when the caller wants the first `stop` of every map: a map followed by
// another in its substream is decoded whole (the rANS state runs on through it), and a map decodes at least
// as many subbands as the next map reads of it (a map's classes read the previous map's same subband).
std::vector<int64_t> subbands_needed(int64_t k, int64_t count, int64_t nbands, int64_t stop) {
    std::vector<int64_t> need(k, nbands);
    int64_t next = stop;  // what map j + 1 decodes
    for (int64_t j = k - 1; j >= 0; --j) {
        int64_t part = 0;  // the substream of map j: j in [part k / count, (part + 1) k / count)
        while ((part + 1) * k / count <= j) ++part;
        const bool last = j == (part + 1) * k / count - 1;
        need[j] = last ? std::max(stop, next) : nbands;
        next = need[j];
    }
    return need;
}

// The decoder of ec = 1 and ec = 2: code_of(j, bi, cur, r, c, ec1 code) gives a symbol's scale code; stop as
// map_decode's.
template <class CodeOf>
py::array_t<int32_t> decode_stream(const py::bytes& data_in, int64_t k, int64_t h, int64_t w,
                                   const std::vector<uint8_t>& codes, int64_t max_abs, const Layout& L, int threads,
                                   int64_t stop, CodeOf&& code_of) {
    const int64_t hw = h * w;
    const int64_t nbands = static_cast<int64_t>(L.bands.size());
    if (stop < 0 || stop > nbands) stop = nbands;  // negative: every subband
    const auto box = stop < nbands ? leading_box(L, stop) : std::make_pair(h, w);
    std::string_view data;
    char* buf = nullptr;
    Py_ssize_t len = 0;
    if (PyBytes_AsStringAndSize(data_in.ptr(), &buf, &len) != 0) throw py::error_already_set();
    data = std::string_view(buf, static_cast<size_t>(len));
    if (max_abs == 0 && !data.empty()) throw DecodeError("it has bytes but declares every symbol zero");
    // the substream index, checked against the bytes before anything is allocated
    std::vector<std::pair<size_t, size_t>> ranges;
    if (max_abs > 0) {
        const auto* d = reinterpret_cast<const uint8_t*>(data.data());
        size_t pos = 0;
        const uint64_t count = get_varint(d, data.size(), pos);
        if (count < 1 || count > static_cast<uint64_t>(k))
            throw DecodeError(std::to_string(count) + " substreams for " + std::to_string(k) + " maps");
        std::vector<uint64_t> lengths;
        uint64_t sum = 0;
        for (uint64_t i = 0; i + 1 < count; ++i) {
            lengths.push_back(get_varint(d, data.size(), pos));
            sum += lengths.back();
        }
        if (sum > data.size() - pos) throw DecodeError("its substreams overrun the stream");
        lengths.push_back(data.size() - pos - sum);
        for (uint64_t n : lengths) {
            if (n < 4) throw DecodeError("a substream shorter than its 4-byte state");
            ranges.emplace_back(pos, pos + n);
            pos += n;
        }
    }
    py::array_t<int32_t> out({k, box.first, box.second});  // |symbols| <= 2^20
    const int64_t count = static_cast<int64_t>(ranges.size());
    const std::vector<int64_t> need = subbands_needed(k, std::max<int64_t>(count, 1), nbands, stop);
    // A partial decode where no map needs more than the box (one map a substream) works in the box itself:
    // the same subbands laid out in it (their parents and siblings are coarser, inside it too). Otherwise it
    // works in a whole-map buffer (never cleared: only what is decoded is read or copied out; untouched pages
    // are never faulted in) and returns the box.
    Layout in_box;
    const bool boxed = stop < nbands && !need.empty() && *std::max_element(need.begin(), need.end()) <= stop;
    if (boxed) {
        in_box = L;
        in_box.h = box.first;
        in_box.w = box.second;
        for (auto* v : {&in_box.parent, &in_box.sib1, &in_box.sib2}) v->resize(static_cast<size_t>(stop));
        in_box.bands.resize(static_cast<size_t>(stop));
        in_box.has_parent.resize(static_cast<size_t>(stop));
    }
    const Layout& LL = boxed ? in_box : L;  // the pointers it holds are into L's subbands: the same boxes
    const int64_t plane = boxed ? box.first * box.second : hw;
    std::unique_ptr<int32_t[]> work(stop < nbands && !boxed ? new int32_t[static_cast<size_t>(k * hw)] : nullptr);
    int32_t* o = work ? work.get() : out.mutable_data();
    std::string error;
    {
        py::gil_scoped_release release;
        if (ranges.empty()) std::fill(o, o + k * plane, int32_t(0));  // ma = 0: every symbol is zero
        if (!ranges.empty()) {
            // the contexts read the output itself: every symbol is written before it is read (a context reads
            // earlier subbands, maps and passes only), so it needs no clearing first; after an error it is dropped
            std::vector<int64_t> done(k, 0);  // subbands finished per map
            std::mutex mu;
            std::condition_variable cv;
            std::atomic<bool> failed{false};
            std::vector<std::string> errors(count);
            const auto* d = reinterpret_cast<const uint8_t*>(data.data());
            const Models& M = models();
            auto decode_part = [&](int64_t part) {
                try {
                    Dec dec(d + ranges[part].first, d + ranges[part].second);
                    // classes a row at a time (row_classes, as the encoder takes them) from |symbols| and their
                    // neighbour sums: those of this map (the pass-1 sums of a subband once its pass 0 is decoded,
                    // all of them once it is whole) and of the previous map (carried over, or taken from the
                    // output where another substream decoded it)
                    const int64_t ww = LL.w;
                    std::vector<int32_t> a_cur(plane), a_prev(plane), n_cur(plane), n_prev(plane);
                    std::vector<int32_t> zeros(widest(LL), 0);
                    std::vector<uint8_t> cls(zeros.size());
                    const int64_t j0 = part * k / count, j1 = (part + 1) * k / count;
                    for (int64_t j = j0; j < j1; ++j) {
                        int32_t* cur = o + j * plane;
                        const int32_t* prev = j > 0 ? cur - plane : nullptr;
                        if (j > j0) {
                            std::swap(a_cur, a_prev);
                            std::swap(n_cur, n_prev);
                        }
                        for (int64_t bi = 0; bi < need[j]; ++bi) {
                            if (failed.load(std::memory_order_relaxed)) return;  // another substream is bad
                            const Band& b = LL.bands[bi];
                            if (j == j0 && j > 0) {  // the previous map belongs to another substream
                                {
                                    std::unique_lock<std::mutex> lock(mu);
                                    cv.wait(lock, [&] { return done[j - 1] > bi || failed.load(); });
                                    if (failed.load()) return;
                                }
                                for (int64_t r = 0; r < b.rows(); ++r)
                                    for (int64_t i = (b.r0 + r) * ww + b.c0, e = i + b.cols(); i < e; ++i)
                                        a_prev[i] = prev[i] < 0 ? -prev[i] : prev[i];
                                band_neighbours(a_prev.data(), ww, b, n_prev.data());
                            }
                            const uint8_t* ct = codes.data() + (j * L.groups + b.grp) * kClasses;
                            for (int pass = 0; pass < 2; ++pass) {
                                for (int64_t r = 0; r < b.rows(); ++r) {
                                    row_classes(a_cur.data(), prev ? a_prev.data() : nullptr, n_cur.data(),
                                                n_prev.data(), ww, LL, static_cast<size_t>(bi), r, zeros.data(),
                                                cls.data());
                                    const int64_t row = (b.r0 + r) * ww + b.c0;
                                    for (int64_t c = (r + pass) & 1; c < b.cols(); c += 2) {
                                        const int code = code_of(j, bi, cur, r, c, ct[cls[c]]);
                                        const int32_t v = static_cast<int32_t>(dec.symbol(M.m[code], max_abs));
                                        cur[row + c] = v;
                                        a_cur[row + c] = v < 0 ? -v : v;
                                    }
                                }
                                band_neighbours(a_cur.data(), ww, b, n_cur.data());
                            }
                            if (j == j1 - 1 && part + 1 < count) {
                                std::lock_guard<std::mutex> lock(mu);
                                done[j] = bi + 1;
                                cv.notify_all();
                            }
                        }
                    }
                    if (need[j1 - 1] == nbands) dec.finish();  // a substream stopped early has bytes left
                } catch (const std::exception& e) {
                    errors[part] = e.what();
                    std::lock_guard<std::mutex> lock(mu);
                    failed.store(true);
                    cv.notify_all();
                }
            };
            const int nt = thread_count(k * hw < (int64_t(1) << 15) ? 1 : threads, count);
            std::vector<std::thread> pool;
            for (int t = 1; t < nt; ++t)
                pool.emplace_back([&, t] {
                    for (int64_t part = t; part < count; part += nt) decode_part(part);
                });
            for (int64_t part = 0; part < count; part += nt) decode_part(part);
            for (auto& th : pool) th.join();
            for (const auto& e : errors)
                if (!e.empty()) {
                    error = e;
                    break;
                }
        }
    }
    if (!error.empty()) throw DecodeError(error);
    if (work) {  // the box of every map
        int32_t* dst = out.mutable_data();
        for (int64_t j = 0; j < k; ++j)
            for (int64_t r = 0; r < box.first; ++r)
                std::memcpy(dst + (j * box.first + r) * box.second, o + j * hw + r * w, sizeof(int32_t) * box.second);
    }
    return out;
}

py::array_t<int32_t> map_decode(const py::bytes& data_in, int64_t k, int64_t h, int64_t w, const py::bytes& base_codes,
                                const std::vector<int64_t>& offsets, int64_t max_abs, const LayoutIn& bands_in,
                                const std::vector<int64_t>& parents, int threads, int64_t stop) {
    if (k < 1 || h < 1 || w < 1) throw std::invalid_argument("k, h and w must be positive");
    if (max_abs < 0 || max_abs > kMaxAbs) throw std::invalid_argument("max_abs outside 0..2^20");
    const Layout L = make_layout(h, w, bands_in, parents, true);
    const std::vector<uint8_t> codes = code_table(base_codes, offsets, k, L.groups);
    return decode_stream(data_in, k, h, w, codes, max_abs, L, threads, stop,
                         [](int64_t, int64_t, const int32_t*, int64_t, int64_t, int code) { return code; });
}

#include "map_lem.inl"

py::bytes map_code_tables() {
    std::string out;
    for (int c = 0; c < kCodes; ++c)
        for (int u = 0; u < kTokens; ++u) {
            out.push_back(static_cast<char>(kMapFreq[c][u] & 0xFF));
            out.push_back(static_cast<char>(kMapFreq[c][u] >> 8));
        }
    return py::bytes(out);
}

}  // namespace

void register_map_coder(py::module_& mod) {
    py::register_exception<DecodeError>(mod, "MapStreamError", PyExc_ValueError);
    mod.def("map_encode", &map_encode, py::arg("sym"), py::arg("base_codes"), py::arg("offsets"), py::arg("bands"),
            py::arg("parents"), py::arg("substreams"), py::arg("threads") = 0,
            "The coefficient-map stream (ec = 1) of symbols sym (k, H, W) int64: base_codes one byte per (map,\n"
            "level group), offsets the 26 class offsets, bands/parents the layout of checker_classes_all,\n"
            "substreams 1..k. Empty when every symbol is zero. threads <= 0: all cores (bytes do not depend on it).");
    mod.def("map_decode", &map_decode, py::arg("data"), py::arg("k"), py::arg("h"), py::arg("w"), py::arg("base_codes"),
            py::arg("offsets"), py::arg("max_abs"), py::arg("bands"), py::arg("parents"), py::arg("threads") = 0,
            py::arg("stop") = -1,
            "Symbols (k, H, W) int32 of a coefficient-map stream (ec = 1); MapStreamError (a ValueError) on any defect.\n"
            "stop >= 0: the first `stop` subbands of every map only, as (k, rows, cols), the box they tile (a map\n"
            "followed by another in its substream, or read by a map decoded further, is still decoded whole; a\n"
            "substream stopped early is not checked for its end).");
    register_map_lem(mod);
    mod.def("map_code_tables", &map_code_tables, "The coder's frequency tables: 256 x 64 uint16 little-endian.");
}

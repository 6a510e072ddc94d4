// The learned entropy model of the coefficient-map coder, ec = 2 (spec/hsim.md 10.11), included by map_coder.cpp
// inside its anonymous namespace (it shares the layout, the contexts and the rANS coder).
//
//   map_lem_codes(sym, base_codes, offsets, mix, w0, b0, w1, b1, w2, b2, bands, parents, threads) -> (k, H, W) uint8
//   map_encode_codes(sym, codes, bands, parents, substreams, threads) -> bytes
//   map_decode_lem(data, k, h, w, base_codes, offsets, mix, w0, b0, w1, b1, w2, b2, max_abs, bands, parents, threads)
//
// hsicodec/layers/maps/lem.py is the reference (features, integer network, mixing); tests/test_lem.py checks both
// agree bit for bit. Integer arithmetic only: int32 accumulators, whose bounds the Python loader has checked
// (sum |w| * input bound + |b| < 2^30 per output), and arithmetic right shifts.

constexpr int kFeatures = 28;
constexpr int kOne = 16;
constexpr int kSkipCode = 104;
constexpr int kWFrac = 8;
constexpr int kOutShift = kWFrac + 4 - 3;
constexpr int32_t kActMax = (1 << 15) - 1;
constexpr int kMixDen = 4;
constexpr int kFine = 6;
constexpr int64_t kFeatureMax = 1024;
constexpr uint8_t kLgLut[64] = {0,  0,  1,  1,  1,  2,  2,  2,  3,  3,  3,  4,  4,  4,  5,  5,  5,  5,  6,  6,  6,  7,
                                7,  7,  7,  8,  8,  8,  8,  9,  9,  9,  9,  10, 10, 10, 10, 11, 11, 11, 11, 11, 12, 12,
                                12, 12, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 16, 16};

// 16 log2(1 + n), integer: 16 e + LUT[the 6 bits after the leading one], e = floor(log2(n + 1))
inline int32_t lg16(int64_t n) {
    const uint64_t v = static_cast<uint64_t>(n) + 1;
    const int e = 63 - __builtin_clzll(v);
    const uint64_t t = e >= 6 ? v >> (e - 6) : v << (6 - e);
    return kOne * e + kLgLut[t - 64];
}

struct LemNet {
    int64_t hidden = 0;
    std::vector<int32_t> w0, b0, w1, b1, w2, b2;  // (H, F), (H), (H, H), (H), (1, H), (1)
    std::vector<int32_t> w0t, w1t;                // w0 and w1 transposed: input-major, outputs contiguous
    std::vector<uint8_t> mix;                     // per level group, 0..4
    std::vector<uint8_t> base;                    // k * groups base codes
};

using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

std::vector<int32_t> to_vec(const I32& a, int64_t rows, int64_t cols, const char* name) {
    const bool ok = (cols == 0 && a.ndim() == 1 && a.shape(0) == rows) ||
                    (cols > 0 && a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols);
    if (!ok) throw std::invalid_argument(std::string("learned entropy model: ") + name + " has the wrong shape");
    return std::vector<int32_t>(a.data(), a.data() + a.size());
}

LemNet make_net(const I32& w0, const I32& b0, const I32& w1, const I32& b1, const I32& w2, const I32& b2,
                const py::bytes& mix, const py::bytes& base, int64_t k, int64_t groups) {
    LemNet N;
    if (w0.ndim() != 2 || w0.shape(0) < 1 || w0.shape(0) > 1024)
        throw std::invalid_argument("learned entropy model: w0 must be (H, 28), 1 <= H <= 1024");
    N.hidden = w0.shape(0);
    N.w0 = to_vec(w0, N.hidden, kFeatures, "w0");
    N.b0 = to_vec(b0, N.hidden, 0, "b0");
    N.w1 = to_vec(w1, N.hidden, N.hidden, "w1");
    N.b1 = to_vec(b1, N.hidden, 0, "b1");
    N.w2 = to_vec(w2, 1, N.hidden, "w2");
    N.b2 = to_vec(b2, 1, 0, "b2");
    const std::string m = mix, bs = base;
    if (static_cast<int64_t>(m.size()) != groups) throw std::invalid_argument("one mix weight per level group");
    for (char v : m)
        if (uint8_t(v) > kMixDen) throw std::invalid_argument("mix weights lie in 0..4");
    if (static_cast<int64_t>(bs.size()) != k * groups) throw std::invalid_argument("one base code per (map, group)");
    // every accumulator provably inside int32: sum |w| * input bound + |b| < 2^30 per output
    auto check = [&](const std::vector<int32_t>& wt, const std::vector<int32_t>& bias, int64_t n_in, int64_t bound) {
        for (size_t o = 0; o < bias.size(); ++o) {
            int64_t t = std::abs(int64_t(bias[o]));
            for (int64_t f = 0; f < n_in; ++f) t += std::abs(int64_t(wt[o * n_in + f])) * bound;
            if (t >= (int64_t(1) << 30)) throw std::invalid_argument("learned entropy model: an accumulator could overflow");
        }
    };
    check(N.w0, N.b0, kFeatures, kFeatureMax);
    check(N.w1, N.b1, N.hidden, kActMax);
    check(N.w2, N.b2, N.hidden, kActMax);
    N.w0t.resize(N.w0.size());
    N.w1t.resize(N.w1.size());
    for (int64_t o = 0; o < N.hidden; ++o) {
        for (int64_t f = 0; f < kFeatures; ++f) N.w0t[f * N.hidden + o] = N.w0[o * kFeatures + f];
        for (int64_t f = 0; f < N.hidden; ++f) N.w1t[f * N.hidden + o] = N.w1[o * N.hidden + f];
    }
    N.mix.assign(m.begin(), m.end());
    N.base.assign(bs.begin(), bs.end());
    return N;
}

inline int64_t at(const int32_t* a, int64_t w, const Band& b, int64_t r, int64_t c) {
    return (r < 0 || c < 0 || r >= b.rows() || c >= b.cols()) ? 0 : mag(a[(b.r0 + r) * w + b.c0 + c]);
}

// The features of lem.band_features for (r, c) of band bi of map j (planes: map 0's plane; maps < j and the
// causal part of map j are decoded), code = its ec = 1 code.
inline void lem_features(const LemNet& N, const Layout& L, size_t bi, int64_t j, const int32_t* planes, int64_t r,
                         int64_t c, int code, int32_t* x) {
    const Band& b = L.bands[bi];
    const int64_t w = L.w, hw = L.h * L.w, g = b.grp, levels = L.groups - 1;
    const int32_t* cur = planes + j * hw;
    const bool late = (r + c) & 1;
    std::fill(x, x + kFeatures, 0);
    x[0] = lg16(at(cur, w, b, r - 1, c - 1) + at(cur, w, b, r - 1, c + 1));
    x[1] = lg16(at(cur, w, b, r, c - 2) + at(cur, w, b, r - 2, c));
    if (late) {
        const int64_t n[4] = {at(cur, w, b, r - 1, c), at(cur, w, b, r + 1, c), at(cur, w, b, r, c - 1),
                              at(cur, w, b, r, c + 1)};
        x[2] = lg16(n[0] + n[1] + n[2] + n[3]);
        x[3] = lg16(std::max(std::max(n[0], n[1]), std::max(n[2], n[3])));
    }
    const int64_t i = (b.r0 + r) * w + b.c0 + c;
    if (j >= 1) {
        const int32_t* prev = cur - hw;
        x[4] = lg16(mag(prev[i]));
        x[5] = lg16(nb4(prev, w, b, r, c));
        int64_t all = 0;
        for (int64_t jj = 0; jj < j; ++jj) all += mag(planes[jj * hw + i]);
        x[7] = lg16(all);
        x[12] = 2 * (int32_t(N.base[(j - 1) * L.groups + g]) - 128);
        x[17] = kOne;
    }
    if (j >= 2) x[6] = lg16(mag(cur[i - 2 * hw]));
    if (L.has_parent[bi]) {
        if (const Band* par = L.parent[bi]) {
            const int64_t pr = std::min(r / 2, par->rows() - 1), pc = std::min(c / 2, par->cols() - 1);
            x[8] = lg16(mag(cur[(par->r0 + pr) * w + par->c0 + pc]));
            int64_t box = 0;
            for (int64_t dr = -1; dr <= 1; ++dr)
                for (int64_t dc = -1; dc <= 1; ++dc) box += at(cur, w, *par, pr + dr, pc + dc);
            x[9] = lg16(box);
        }
        x[18] = kOne;
    }
    int64_t sib = 0;
    if (const Band* s = L.sib1[bi]) sib += mag(cur[(s->r0 + std::min(r, s->rows() - 1)) * w + s->c0 + std::min(c, s->cols() - 1)]);
    if (const Band* s = L.sib2[bi]) sib += mag(cur[(s->r0 + std::min(r, s->rows() - 1)) * w + s->c0 + std::min(c, s->cols() - 1)]);
    if (b.ori >= 2) x[10] = lg16(sib);
    x[11] = 2 * (int32_t(N.base[j * L.groups + g]) - 128);
    if (g > 0) x[13] = 2 * (int32_t(N.base[j * L.groups + g - 1]) - 128);
    x[14] = 2 * (code - 128);
    x[15] = late ? kOne : 0;
    x[16] = lg16(j);
    if (b.ori) x[18 + b.ori] = kOne;
    x[22 + std::min<int64_t>(g ? levels - g : kFine - 1, kFine - 1)] = kOne;
}

// The final ec = 2 code of a symbol whose ec = 1 code is `code`. Built for AVX2 and for the baseline, chosen
// at load time (integer arithmetic: both give the same codes).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
int lem_code(const LemNet& N, const Layout& L, size_t bi, int64_t j, const int32_t* planes, int64_t r,
                    int64_t c, int code) {
    if (code < kSkipCode) return code;
    const int wmix = N.mix[L.bands[bi].grp];
    if (wmix == 0) return code;
    int32_t x[kFeatures];
    lem_features(N, L, bi, j, planes, r, c, code, x);
    const int64_t H = N.hidden;
    // output-vectorised: each nonzero input adds its weight column to all outputs (the integer sums do not
    // depend on the order; every partial sum is inside the bound the loader checked)
    int32_t h0[1024], h1[1024];
    std::copy(N.b0.begin(), N.b0.end(), h0);
    for (int f = 0; f < kFeatures; ++f) {
        const int32_t xf = x[f];
        if (!xf) continue;
        const int32_t* col = N.w0t.data() + f * H;
        for (int64_t o = 0; o < H; ++o) h0[o] += col[o] * xf;
    }
    for (int64_t o = 0; o < H; ++o) h0[o] = std::clamp<int32_t>((h0[o] + (1 << (kWFrac - 1))) >> kWFrac, 0, kActMax);
    std::copy(N.b1.begin(), N.b1.end(), h1);
    for (int64_t f = 0; f < H; ++f) {
        const int32_t hf = h0[f];
        if (!hf) continue;
        const int32_t* col = N.w1t.data() + f * H;
        for (int64_t o = 0; o < H; ++o) h1[o] += col[o] * hf;
    }
    for (int64_t o = 0; o < H; ++o) h1[o] = std::clamp<int32_t>((h1[o] + (1 << (kWFrac - 1))) >> kWFrac, 0, kActMax);
    int32_t acc = N.b2[0];
    for (int64_t f = 0; f < H; ++f) acc += N.w2[f] * h1[f];
    const int net = std::clamp<int32_t>(code + ((acc + (1 << (kOutShift - 1))) >> kOutShift), 0, 255);
    return (wmix * net + (kMixDen - wmix) * code + kMixDen / 2) >> 2;
}

py::array_t<uint8_t> map_lem_codes(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& sym,
                                   const py::bytes& base_codes, const std::vector<int64_t>& offsets,
                                   const py::bytes& mix, const I32& w0, const I32& b0, const I32& w1, const I32& b1,
                                   const I32& w2, const I32& b2, const LayoutIn& bands_in,
                                   const std::vector<int64_t>& parents, int threads) {
    if (sym.ndim() != 3) throw std::invalid_argument("sym must be (k, H, W)");
    const int64_t k = sym.shape(0), h = sym.shape(1), w = sym.shape(2), hw = h * w;
    const Layout L = make_layout(h, w, bands_in, parents, true);
    const std::vector<uint8_t> codes = code_table(base_codes, offsets, k, L.groups);
    const LemNet N = make_net(w0, b0, w1, b1, w2, b2, mix, base_codes, k, L.groups);
    py::array_t<uint8_t> out({k, h, w});
    uint8_t* o = out.mutable_data();
    const int64_t* s = sym.data();
    {
        py::gil_scoped_release release;
        std::vector<int32_t> absq(k * hw);
        for (int64_t i = 0; i < k * hw; ++i) {
            if (s[i] < -kMaxAbs || s[i] > kMaxAbs) throw std::invalid_argument("a symbol past 2^20");
            absq[i] = static_cast<int32_t>(s[i] < 0 ? -s[i] : s[i]);
        }
        auto one_map = [&](int64_t j) {  // each symbol's code on its own: any order (rows, as map_encode's classes)
            const int32_t* cur = absq.data() + j * hw;
            const int32_t* prev = j > 0 ? cur - hw : nullptr;
            std::vector<int32_t> nb_cur(hw), nb_prev(hw), zeros(widest(L), 0);
            std::vector<uint8_t> cls(zeros.size());
            plane_neighbours(cur, w, L, nb_cur.data());
            if (prev) plane_neighbours(prev, w, L, nb_prev.data());
            for (size_t bi = 0; bi < L.bands.size(); ++bi) {
                const Band& b = L.bands[bi];
                const uint8_t* ct = codes.data() + (j * L.groups + b.grp) * kClasses;
                for (int64_t r = 0; r < b.rows(); ++r) {
                    row_classes(cur, prev, nb_cur.data(), nb_prev.data(), w, L, bi, r, zeros.data(), cls.data());
                    uint8_t* orow = o + j * hw + (b.r0 + r) * w + b.c0;
                    for (int64_t c = 0; c < b.cols(); ++c)
                        orow[c] = static_cast<uint8_t>(lem_code(N, L, bi, j, absq.data(), r, c, ct[cls[c]]));
                }
            }
        };
        const int nt = thread_count(k * hw < (int64_t(1) << 15) ? 1 : threads, k);
        std::vector<std::thread> pool;
        for (int t = 1; t < nt; ++t)
            pool.emplace_back([&, t] {
                for (int64_t j = t; j < k; j += nt) one_map(j);
            });
        for (int64_t j = 0; j < k; j += nt) one_map(j);
        for (auto& th : pool) th.join();
    }
    return out;
}

py::bytes map_encode_codes(const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& sym,
                           const py::array_t<uint8_t, py::array::c_style | py::array::forcecast>& codes_in,
                           const LayoutIn& bands_in, const std::vector<int64_t>& parents, int64_t substreams,
                           int threads) {
    if (sym.ndim() != 3 || codes_in.ndim() != 3) throw std::invalid_argument("sym and codes must be (k, H, W)");
    const int64_t k = sym.shape(0), h = sym.shape(1), w = sym.shape(2), hw = h * w;
    if (codes_in.shape(0) != k || codes_in.shape(1) != h || codes_in.shape(2) != w)
        throw std::invalid_argument("one code per symbol");
    const Layout L = make_layout(h, w, bands_in, parents, true);
    if (substreams < 1 || substreams > std::max<int64_t>(k, 1)) throw std::invalid_argument("1 <= substreams <= k");
    const int64_t* s = sym.data();
    const uint8_t* cd = codes_in.data();
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
            std::vector<int64_t> order;  // one map's flat indices in coding order
            for (size_t bi = 0; bi < L.bands.size(); ++bi) {
                const Band& b = L.bands[bi];
                for (int pass = 0; pass < 2; ++pass)
                    for (int64_t r = 0; r < b.rows(); ++r)
                        for (int64_t c = (r + pass) & 1; c < b.cols(); c += 2) order.push_back((b.r0 + r) * w + b.c0 + c);
            }
            const Models& M = models();
            auto encode_part = [&](int64_t part) {
                Enc enc;
                const int64_t j0 = part * k / substreams, j1 = (part + 1) * k / substreams;
                for (int64_t j = j1 - 1; j >= j0; --j)
                    for (auto it = order.rbegin(); it != order.rend(); ++it)
                        enc.symbol(s[j * hw + *it], M.m[cd[j * hw + *it]]);
                enc.finish(parts[part]);
            };
            const int nt = thread_count(k * hw < (int64_t(1) << 15) ? 1 : threads, substreams);
            std::vector<std::thread> pool;
            for (int t = 1; t < nt; ++t)
                pool.emplace_back([&, t] {
                    for (int64_t part = t; part < substreams; part += nt) encode_part(part);
                });
            for (int64_t part = 0; part < substreams; part += nt) encode_part(part);
            for (auto& th : pool) th.join();
            std::vector<uint8_t> head;
            put_varint(head, static_cast<uint64_t>(substreams));
            for (int64_t part = 0; part + 1 < substreams; ++part) put_varint(head, parts[part].size());
            out.append(head.begin(), head.end());
            for (const auto& p : parts) out.append(p.begin(), p.end());
        }
    }
    return py::bytes(out);
}

py::array_t<int32_t> map_decode_lem(const py::bytes& data_in, int64_t k, int64_t h, int64_t w,
                                    const py::bytes& base_codes, const std::vector<int64_t>& offsets,
                                    const py::bytes& mix, const I32& w0, const I32& b0, const I32& w1, const I32& b1,
                                    const I32& w2, const I32& b2, int64_t max_abs, const LayoutIn& bands_in,
                                    const std::vector<int64_t>& parents, int threads) {
    if (k < 1 || h < 1 || w < 1) throw std::invalid_argument("k, h and w must be positive");
    if (max_abs < 0 || max_abs > kMaxAbs) throw std::invalid_argument("max_abs outside 0..2^20");
    const Layout L = make_layout(h, w, bands_in, parents, true);
    const std::vector<uint8_t> codes = code_table(base_codes, offsets, k, L.groups);
    const LemNet N = make_net(w0, b0, w1, b1, w2, b2, mix, base_codes, k, L.groups);
    const int64_t hw = h * w;
    return decode_stream(data_in, k, h, w, codes, max_abs, L, threads, -1,
                         [&](int64_t j, int64_t bi, const int32_t* cur, int64_t r, int64_t c, int code) {
                             return lem_code(N, L, static_cast<size_t>(bi), j, cur - j * hw, r, c, code);
                         });
}

void register_map_lem(py::module_& mod) {
    mod.def("map_lem_codes", &map_lem_codes, py::arg("sym"), py::arg("base_codes"), py::arg("offsets"), py::arg("mix"),
            py::arg("w0"), py::arg("b0"), py::arg("w1"), py::arg("b1"), py::arg("w2"), py::arg("b2"), py::arg("bands"),
            py::arg("parents"), py::arg("threads") = 0,
            "The ec = 2 scale code (k, H, W) uint8 of every symbol of sym (k, H, W) int64 (the encoder's view).");
    mod.def("map_encode_codes", &map_encode_codes, py::arg("sym"), py::arg("codes"), py::arg("bands"),
            py::arg("parents"), py::arg("substreams"), py::arg("threads") = 0,
            "The rANS stream of symbols sym (k, H, W) int64 under per-symbol scale codes (k, H, W) uint8.");
    mod.def("map_decode_lem", &map_decode_lem, py::arg("data"), py::arg("k"), py::arg("h"), py::arg("w"),
            py::arg("base_codes"), py::arg("offsets"), py::arg("mix"), py::arg("w0"), py::arg("b0"), py::arg("w1"),
            py::arg("b1"), py::arg("w2"), py::arg("b2"), py::arg("max_abs"), py::arg("bands"), py::arg("parents"),
            py::arg("threads") = 0,
            "Symbols (k, H, W) int32 of an ec = 2 stream; MapStreamError (a ValueError) on any defect.");
}

// Python bindings of the native SIREN kernels (hsicodec._native).
//
// Exposes exactly the calls made by hsicodec/siren.py:
//   siren_forward(x, phi, hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, threads,
//                 skip_w=None)
//   siren_loss_grad_phi(x, phi, target, channel_weight, pixel_weight, hidden_w, hidden_b,
//                       out_w, out_b, meta_w, meta_b, shift_inside, threads, skip_w=None) -> (loss, grad_phi)
// skip_w: None or the (C_out, m) linear skip S, y = h_K W_o^T + b_o + phi S^T.
// plus simd_level(), default_threads() and a few test helpers.
//
// This file does the validation, weight re-layout (padding / transposes, once per
// call), instruction-set dispatch and the thread split; the per-tile work is in
// siren_kernels.inl.  Results do not depend on the thread count: tiles are fixed
// (T pixels from pixel 0), every pixel is computed by the same code whatever the
// partition, and the loss is reduced as per-tile doubles summed in tile order.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cpu_features.h"
#include "siren_checks.h"
#include "siren_native.h"

#ifndef _WIN32
#include <unistd.h>
#endif

namespace py = pybind11;
void register_context_classes(py::module_& mod);  // context_classes.cpp
void register_lattice_coder(py::module_& mod);  // lattice_coder.cpp
void register_wavelet97(py::module_& mod);  // wavelet97.cpp
void register_spectral_cast(py::module_& mod);  // spectral_cast.cpp
void register_map_coder(py::module_& mod);  // map_coder.cpp
void register_post_filter(py::module_& mod);  // post_filter.cpp
void register_recon_table(py::module_& mod);  // recon_table.cpp
#ifdef HSICODEC_NUMPY_ALLOC
void register_numpy_alloc(py::module_& mod);  // numpy_alloc.cpp
#endif
using farr = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

// ---------------------------------------------------------------------------
// instruction-set selection (cpu_features.h)

using hsicodec_native::cpu_has_avx2;
using hsicodec_native::cpu_has_avx512;

// Kernel sets this machine can run, slowest first.
std::vector<const hsi::KernelSet*> available_sets() {
    std::vector<const hsi::KernelSet*> v{hsi::kernels_generic()};
    if (hsi::kernels_avx2() && cpu_has_avx2()) v.push_back(hsi::kernels_avx2());
    if (hsi::kernels_avx512() && cpu_has_avx512()) v.push_back(hsi::kernels_avx512());
    return v;
}

// Best set not above `cap` ("" = no cap; "scalar" is accepted for "generic").
const hsi::KernelSet* select_set(std::string cap) {
    if (cap == "scalar") cap = "generic";
    const auto sets = available_sets();
    if (cap.empty()) return sets.back();
    static const char* order[] = {"generic", "avx2", "avx512"};
    int cap_rank = -1;
    for (int i = 0; i < 3; ++i)
        if (cap == order[i]) cap_rank = i;
    if (cap_rank < 0) return sets.back();  // unknown value: ignore
    const hsi::KernelSet* best = sets.front();
    for (const auto* s : sets)
        for (int i = 0; i <= cap_rank; ++i)
            if (std::string(s->name) == order[i]) best = s;
    return best;
}

std::atomic<const hsi::KernelSet*> g_kernels{nullptr};

const hsi::KernelSet* kernels() {
    const hsi::KernelSet* k = g_kernels.load();
    if (!k) {
        const char* env = std::getenv("HSICODEC_SIMD");
        k = select_set(env ? env : "");
        g_kernels.store(k);
    }
    return k;
}

std::atomic<int> g_tile_override{0};  // test / tuning helper; 0 = the kernel set's default

int tile_pixels(const hsi::KernelSet& ks) {
    const int t = g_tile_override.load();
    if (t <= 0) return ks.T;
    return (t + ks.row_multiple - 1) / ks.row_multiple * ks.row_multiple;
}

int hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

// ---------------------------------------------------------------------------
// validation

using hsi_checks::check_inputs;
using hsi_checks::check_skip;
using hsi_checks::fail;
using hsi_checks::need_shape;
using Dims = hsi_checks::SirenShape;

Dims check_model(const std::vector<farr>& hw, const std::vector<farr>& hb, const farr& ow, const farr& ob,
                 const farr& mw, const farr& mb) {
    if (hw.size() > static_cast<size_t>(hsi::kMaxDepth))
        fail("SIREN depth " + std::to_string(hw.size()) + " exceeds the native limit of " + std::to_string(hsi::kMaxDepth));
    return hsi_checks::check_model(hw, hb, ow, ob, mw, mb);
}

// ---------------------------------------------------------------------------
// weight preparation

struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
};

struct PreparedModel {
    hsi::Prepared P;
    std::vector<std::unique_ptr<float, FreeDeleter>> store;

    float* zeros(size_t n) {
        const size_t bytes = ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
        float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, bytes);
        store.emplace_back(p);
        return p;
    }
};

int round_up(int v, int m) { return (v + m - 1) / m * m; }

void prepare(PreparedModel& pm, const hsi::KernelSet& ks, const Dims& D, const std::vector<farr>& hw,
             const std::vector<farr>& hb, const farr& ow, const farr& ob, const farr& mw, const farr& mb,
             bool inside, bool grad, const float* cw, const float* skip) {
    hsi::Prepared& P = pm.P;
    P.K = D.K;
    P.d = D.d;
    P.n_in = D.n_in;
    P.m = D.m;
    P.C = D.C;
    P.W = ks.W;
    P.T = tile_pixels(ks);
    P.dp = round_up(D.d, ks.W);
    P.Cp = round_up(D.C, ks.W);
    P.mp = round_up(std::max(D.m, 1), ks.W);
    P.KD = D.K * P.dp;
    P.inside = inside;
    const int K = D.K, d = D.d, dp = P.dp, m = D.m, C = D.C, Cp = P.Cp, KD = P.KD, mp = P.mp;
    const float* mwp = mw.data();
    const float* mbp = mb.data();
    const float* owp = ow.data();

    float* WMt = pm.zeros(static_cast<size_t>(std::max(m, 1)) * KD);
    float* bM = pm.zeros(KD);
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < d; ++j) {
            bM[i * dp + j] = mbp[i * d + j];
            for (int k = 0; k < m; ++k) WMt[static_cast<size_t>(k) * KD + i * dp + j] = mwp[(static_cast<size_t>(i) * d + j) * m + k];
        }
    P.WMt = WMt;
    P.bM = bM;
    for (int i = 0; i < K; ++i) {
        const int kin = i == 0 ? D.n_in : d;
        const float* w = hw[i].data();
        float* Wt = pm.zeros(static_cast<size_t>(std::max(kin, 1)) * dp);
        float* b = pm.zeros(dp);
        for (int j = 0; j < d; ++j) {
            b[j] = hb[i].data()[j];
            for (int k = 0; k < kin; ++k) Wt[static_cast<size_t>(k) * dp + j] = w[static_cast<size_t>(j) * kin + k];
        }
        P.Wt[i] = Wt;
        P.bh[i] = b;
        float* bz = pm.zeros(dp);
        double aw = 0.0, am = 0.0, ab = 0.0;  // a NaN or inf weight makes a bound NaN or inf: checked sines
        for (int j = 0; j < d; ++j) {
            bz[j] = b[j] + bM[i * dp + j];
            double sw = 0.0, sm = 0.0;
            for (int k = 0; k < kin; ++k) sw += std::fabs(static_cast<double>(w[static_cast<size_t>(j) * kin + k]));
            for (int k = 0; k < m; ++k) sm += std::fabs(static_cast<double>(mwp[(static_cast<size_t>(i) * d + j) * m + k]));
            const double sb = std::fabs(static_cast<double>(bz[j]));
            aw = (sw > aw || sw != sw) ? sw : aw;
            am = (sm > am || sm != sm) ? sm : am;
            ab = (sb > ab || sb != sb) ? sb : ab;
        }
        P.bz[i] = bz;
        P.arg_w[i] = aw;
        P.arg_m[i] = am;
        P.arg_b[i] = ab;
    }
    float* Wot = pm.zeros(static_cast<size_t>(d) * Cp);
    float* bo = pm.zeros(Cp);
    for (int c = 0; c < C; ++c) {
        bo[c] = ob.data()[c];
        for (int k = 0; k < d; ++k) Wot[static_cast<size_t>(k) * Cp + c] = owp[static_cast<size_t>(c) * d + k];
    }
    P.Wot = Wot;
    P.bo = bo;
    if (skip) {  // St[k][c] = S[c][k]
        float* St = pm.zeros(static_cast<size_t>(std::max(m, 1)) * Cp);
        for (int c = 0; c < C; ++c)
            for (int k = 0; k < m; ++k) St[static_cast<size_t>(k) * Cp + c] = skip[static_cast<size_t>(c) * m + k];
        P.St = St;
    }
    if (!grad) return;

    float* Wop = pm.zeros(static_cast<size_t>(C) * dp);
    for (int c = 0; c < C; ++c)
        for (int k = 0; k < d; ++k) Wop[static_cast<size_t>(c) * dp + k] = owp[static_cast<size_t>(c) * d + k];
    P.Wop = Wop;
    for (int i = 1; i < K; ++i) {
        const float* w = hw[i].data();
        float* Wp = pm.zeros(static_cast<size_t>(d) * dp);
        for (int j = 0; j < d; ++j)
            for (int k = 0; k < d; ++k) Wp[static_cast<size_t>(j) * dp + k] = w[static_cast<size_t>(j) * d + k];
        P.Wp[i] = Wp;
    }
    float* WMp = pm.zeros(static_cast<size_t>(KD) * mp);
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < d; ++j)
            for (int k = 0; k < m; ++k)
                WMp[static_cast<size_t>(i * dp + j) * mp + k] = mwp[(static_cast<size_t>(i) * d + j) * m + k];
    P.WMp = WMp;
    float* cwp = pm.zeros(Cp);
    std::memcpy(cwp, cw, sizeof(float) * C);
    P.cw = cwp;
    if (skip) {  // Sp[c][k] = S[c][k], rows padded to mp
        float* Sp = pm.zeros(static_cast<size_t>(std::max(C, 1)) * mp);
        for (int c = 0; c < C; ++c)
            for (int k = 0; k < m; ++k) Sp[static_cast<size_t>(c) * mp + k] = skip[static_cast<size_t>(c) * m + k];
        P.Sp = Sp;
    }
}

// ---------------------------------------------------------------------------
// threads: a small persistent pool; tiles are handed out one at a time
//
// Which thread computes a tile does not change its result (tiles are fixed and
// every pixel goes through the same code), so dynamic hand-out keeps the output
// bit-identical for any thread count while tolerating stragglers (a descheduled
// worker on a busy machine): the caller works on the tiles too and only waits for
// tiles that were actually claimed, never for idle workers to wake up.

struct Job {
    std::mutex mu;
    std::condition_variable cv;
    int64_t next = 0;
    int64_t ntiles = 0;
    int64_t in_flight = 0;
    std::exception_ptr error;
    std::function<void(const hsi::TileSource&)> work;  // runs one kernel worker loop
    hsi::TileSource src{};
};

int64_t job_next(void* self, int64_t done_tile) {
    Job* j = static_cast<Job*>(self);
    std::lock_guard<std::mutex> lk(j->mu);
    if (done_tile >= 0) --j->in_flight;
    if (j->error || j->next >= j->ntiles) {
        if (j->in_flight == 0) j->cv.notify_all();
        return -1;
    }
    ++j->in_flight;
    return j->next++;
}

void job_run(Job& j) {
    try {
        j.work(j.src);
    } catch (...) {  // the tile this thread had claimed is abandoned; stop handing out more
        std::lock_guard<std::mutex> lk(j.mu);
        if (!j.error) j.error = std::current_exception();
        --j.in_flight;
        j.cv.notify_all();
    }
}

class Pool {
  public:
    // Queue `copies` extra workers for the job (threads are created on demand).
    void submit(const std::shared_ptr<Job>& job, int copies) {
        std::lock_guard<std::mutex> lk(mu_);
        try {
            while (nthreads_ < copies) {
                std::thread([this] { worker(); }).detach();
                ++nthreads_;
            }
        } catch (const std::system_error&) {  // cannot create more threads: use the ones we have
        }
        copies = std::min(copies, nthreads_);
        for (int i = 0; i < copies; ++i) queue_.push_back(job);
        cv_.notify_all();
    }

  private:
    void worker() {
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait(lk, [this] { return !queue_.empty(); });
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            job_run(*job);  // a stale job (all tiles taken) returns at once
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    int nthreads_ = 0;
};

Pool& pool() {
    // Never destroyed (workers block forever; the process exit ends them).  After a
    // fork() the child gets a fresh pool: the parent's threads do not exist there.
    static Pool* p = nullptr;
    static long owner = -1;
    static std::mutex mu;
    std::lock_guard<std::mutex> lk(mu);
#ifdef _WIN32
    const long pid = 0;
#else
    const long pid = static_cast<long>(getpid());
#endif
    if (!p || owner != pid) {
        p = new Pool();  // the old one (if any) is leaked on purpose
        owner = pid;
    }
    return *p;
}

constexpr int kMaxThreads = 256;

// Run `work` (a kernel worker loop) on up to `threads` threads over ntiles tiles.
void run_tiles(int64_t ntiles, int threads, std::function<void(const hsi::TileSource&)> work) {
    if (ntiles <= 0) return;
    int64_t nt = threads <= 0 ? hardware_threads() : threads;
    nt = std::min<int64_t>(std::min<int64_t>(nt, kMaxThreads), ntiles);
    auto job = std::make_shared<Job>();
    job->ntiles = ntiles;
    job->work = std::move(work);
    job->src = hsi::TileSource{&job_next, job.get()};
    if (nt > 1) pool().submit(job, static_cast<int>(nt - 1));
    job_run(*job);
    {
        std::unique_lock<std::mutex> lk(job->mu);
        job->cv.wait(lk, [&] { return job->in_flight == 0 && (job->error || job->next >= job->ntiles); });
    }
    if (job->error) std::rethrow_exception(job->error);
}

// ---------------------------------------------------------------------------
// the two entry points

py::array_t<float> siren_forward(const farr& x, const farr& phi, const std::vector<farr>& hidden_w,
                                 const std::vector<farr>& hidden_b, const farr& out_w, const farr& out_b,
                                 const farr& meta_w, const farr& meta_b, bool shift_inside, int threads,
                                 const std::optional<farr>& skip_w) {
    const Dims D = check_model(hidden_w, hidden_b, out_w, out_b, meta_w, meta_b);
    const float* skip = check_skip(skip_w, D);
    const int64_t N = check_inputs(x, phi, D);
    py::array_t<float> y({static_cast<py::ssize_t>(N), static_cast<py::ssize_t>(D.C)});
    if (N == 0 || D.C == 0) return y;
    const hsi::KernelSet& ks = *kernels();
    PreparedModel pm;
    prepare(pm, ks, D, hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, false, nullptr, skip);
    const hsi::FwdArgs args{x.data(), phi.data(), y.mutable_data(), N};
    {
        py::gil_scoped_release nogil;
        const int64_t ntiles = (N + pm.P.T - 1) / pm.P.T;
        const hsi::KernelSet* kp = &ks;
        const hsi::Prepared* P = &pm.P;
        const hsi::FwdArgs* ap = &args;
        // captures pointers only: a late worker gets no tile and never dereferences them
        run_tiles(ntiles, threads, [kp, P, ap](const hsi::TileSource& src) { kp->forward(*P, *ap, src); });
    }
    return y;
}

py::tuple siren_loss_grad_phi(const farr& x, const farr& phi, const farr& target, const farr& channel_weight,
                              const farr& pixel_weight, const std::vector<farr>& hidden_w,
                              const std::vector<farr>& hidden_b, const farr& out_w, const farr& out_b,
                              const farr& meta_w, const farr& meta_b, bool shift_inside, int threads,
                              const std::optional<farr>& skip_w) {
    const Dims D = check_model(hidden_w, hidden_b, out_w, out_b, meta_w, meta_b);
    const float* skip = check_skip(skip_w, D);
    const int64_t N = check_inputs(x, phi, D);
    need_shape(target, "target", {N, D.C});
    need_shape(channel_weight, "channel_weight", {D.C});
    need_shape(pixel_weight, "pixel_weight", {N});
    py::array_t<float> g({static_cast<py::ssize_t>(N), static_cast<py::ssize_t>(D.m)});
    if (N == 0) return py::make_tuple(0.0, g);
    const hsi::KernelSet& ks = *kernels();
    PreparedModel pm;
    prepare(pm, ks, D, hidden_w, hidden_b, out_w, out_b, meta_w, meta_b, shift_inside, true,
            channel_weight.data(), skip);
    const hsi::GradArgs args{x.data(), phi.data(), target.data(), pixel_weight.data(), g.mutable_data(), N};
    double loss = 0.0;
    {
        py::gil_scoped_release nogil;
        const int64_t ntiles = (N + pm.P.T - 1) / pm.P.T;
        std::vector<double> tile_loss(ntiles, 0.0);
        const hsi::KernelSet* kp = &ks;
        const hsi::Prepared* P = &pm.P;
        const hsi::GradArgs* ap = &args;
        double* tl = tile_loss.data();
        run_tiles(ntiles, threads, [kp, P, ap, tl](const hsi::TileSource& src) { kp->grad(*P, *ap, src, tl); });
        for (double v : tile_loss) loss += v;  // fixed order: independent of the thread count
    }
    return py::make_tuple(loss, g);
}

// ---------------------------------------------------------------------------
// test helpers

double sincos_max_error(double lo, double hi, int64_t n, bool cosine) {
    if (n < 1) fail("n must be >= 1");
    std::vector<float> x(n), s(n), c(n);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(n == 1 ? lo : lo + (hi - lo) * double(i) / double(n - 1));
    kernels()->sincos(x.data(), s.data(), c.data(), n);
    double err = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double xd = x[i];
        const double e = cosine ? std::fabs(double(c[i]) - std::cos(xd)) : std::fabs(double(s[i]) - std::sin(xd));
        if (!(e <= err)) err = e;  // NaN propagates
    }
    return err;
}

}  // namespace

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "hsicodec native SIREN kernels (fused, multi-threaded, run-time SIMD dispatch)";
    register_context_classes(mod);
    register_lattice_coder(mod);
    register_wavelet97(mod);
    register_spectral_cast(mod);
    register_map_coder(mod);
    register_post_filter(mod);
    register_recon_table(mod);
#ifdef HSICODEC_NUMPY_ALLOC
    register_numpy_alloc(mod);
#endif
    mod.def("siren_forward", &siren_forward, py::arg("x"), py::arg("phi"), py::arg("hidden_w"), py::arg("hidden_b"),
            py::arg("out_w"), py::arg("out_b"), py::arg("meta_w"), py::arg("meta_b"), py::arg("shift_inside"),
            py::arg("threads") = 0, py::arg("skip_w") = py::none(),
            "SIREN forward pass: x (N, n_in), phi (N, m) float32 -> y (N, C_out) float32. threads <= 0: all.\n"
            "skip_w: None or the (C_out, m) linear skip S (y += phi S^T).");
    mod.def("siren_loss_grad_phi", &siren_loss_grad_phi, py::arg("x"), py::arg("phi"), py::arg("target"),
            py::arg("channel_weight"), py::arg("pixel_weight"), py::arg("hidden_w"), py::arg("hidden_b"),
            py::arg("out_w"), py::arg("out_b"), py::arg("meta_w"), py::arg("meta_b"), py::arg("shift_inside"),
            py::arg("threads") = 0, py::arg("skip_w") = py::none(),
            "Masked squared error L = sum_n p_n sum_c w_c (y_nc - t_nc)^2 and dL/dphi (network frozen).\n"
            "skip_w: None or the (C_out, m) linear skip S (y += phi S^T).");
    mod.def("simd_level", []() { return std::string(kernels()->name); },
            "Instruction set of the kernels in use: 'avx512', 'avx2' or 'generic' (portable 128-bit vectors).");
    mod.def("available_simd_levels", []() {
        std::vector<std::string> v;
        for (const auto* s : available_sets()) v.emplace_back(s->name);
        return v;
    });
    mod.def("_set_simd_level", [](const std::string& cap) {
        g_kernels.store(select_set(cap));
        return std::string(kernels()->name);
    }, py::arg("level"), "Test helper: use the best kernels not above `level` ('' = best). Returns the level used.");
    mod.def("default_threads", &hardware_threads, "Threads used for threads <= 0 (hardware threads).");
    mod.def("tile_pixels", []() { return tile_pixels(*kernels()); }, "Pixels per tile of the kernels in use.");
    mod.def("_set_tile_pixels", [](int t) {
        g_tile_override.store(t > 0 ? std::min(t, 1 << 16) : 0);
        return tile_pixels(*kernels());
    }, py::arg("pixels"), "Tuning / test helper: pixels per tile (rounded up to the register-block multiple; 0 = default).");
    mod.def("vsin_max_error", [](double lo, double hi, int64_t n) { return sincos_max_error(lo, hi, n, false); },
            py::arg("lo"), py::arg("hi"), py::arg("n"),
            "Max |sin_kernel(x) - sin(x)| over n float32 points evenly spaced in [lo, hi].");
    mod.def("vcos_max_error", [](double lo, double hi, int64_t n) { return sincos_max_error(lo, hi, n, true); },
            py::arg("lo"), py::arg("hi"), py::arg("n"));
    mod.def("_sincos", [](const farr& x) {
        py::array_t<float> s(x.size()), c(x.size());
        kernels()->sincos(x.data(), s.mutable_data(), c.mutable_data(), x.size());
        return py::make_tuple(s, c);
    }, py::arg("x"), "Test helper: the kernels' sine and cosine of a float32 array (flattened).");
}

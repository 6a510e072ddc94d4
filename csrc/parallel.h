// A loop over n independent units on up to `threads` threads (<= 0: every core), shared by the native
// coders and transforms. Units are handed out one at a time (dynamic: uneven units balance); the first
// exception stops the hand-out and is rethrown on the calling thread, which works as one of the threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace hsicodec_native {

// f(unit, state): State is each worker's own scratch (a line buffer, say), default-constructed once per
// worker and reused across its units.
template <class State, class F>
void parallel_for_state(int64_t n, int threads, F&& f) {
    if (n <= 0) return;
    int64_t nt = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
    nt = std::min<int64_t>(std::min<int64_t>(nt, 256), n);
    std::atomic<int64_t> next{0};
    std::exception_ptr err;
    std::mutex mu;
    auto worker = [&] {
        State state{};
        for (;;) {
            const int64_t b = next.fetch_add(1);
            if (b >= n) return;
            try {
                f(b, state);
            } catch (...) {
                std::lock_guard<std::mutex> lk(mu);
                if (!err) err = std::current_exception();
                next.store(n);
                return;
            }
        }
    };
    std::vector<std::thread> pool;
    for (int64_t t = 1; t < nt; ++t) {
        try {
            pool.emplace_back(worker);
        } catch (const std::system_error&) {
            break;  // no more threads: the ones running do the work
        }
    }
    worker();
    for (auto& th : pool) th.join();
    if (err) std::rethrow_exception(err);
}

// f(unit)
template <class F>
void parallel_for(int64_t n, int threads, F&& f) {
    struct None {};
    parallel_for_state<None>(n, threads, [&](int64_t b, None&) { f(b); });
}

}  // namespace hsicodec_native

#include "core/threadpool.h"

#include <chrono>
#include <cstdlib>
#include <memory>

#include "core/status.h"

namespace st2v {

namespace {
thread_local bool t_in_worker = false;
thread_local ThreadPool* t_pool = nullptr;
std::mutex g_default_mu;
std::unique_ptr<ThreadPool> g_default;
int g_default_threads = 0;
}  // namespace

int hardware_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int threads) : n_(threads < 1 ? 1 : threads) {
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
}
// Spins until done() or about kSpinMicros have passed; true when done() became true.
constexpr int64_t kSpinMicros = 100;
template <typename F>
bool spin_until(F done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (done()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() >= end) return done();
    }
}
}  // namespace

void ThreadPool::worker(int idx) {
    t_in_worker = true;
    uint64_t seen = 0;
    for (;;) {
        auto ready = [&] {
            return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen;
        };
        if (!spin_until(ready)) {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, ready);
        }
        if (stop_.load(std::memory_order_acquire)) return;
        seen = generation_.load(std::memory_order_acquire);
        // job_ was stored before generation_ was bumped, and stays until every worker has counted itself out below
        (*job_.load(std::memory_order_relaxed))(idx);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> lk(mu_);  // the caller checks pending_ under mu_ before it sleeps
            done_cv_.notify_one();
        }
    }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
    if (n_ == 1 || t_in_worker) {
        for (int i = 0; i < n_; ++i) fn(i);
        return;
    }
    std::lock_guard<std::mutex> submit(submit_mu_);
    // Exceptions thrown on any thread are captured and rethrown on the caller.
    std::exception_ptr err;
    std::mutex err_mu;
    std::function<void(int)> wrapped = [&](int i) {
        try {
            fn(i);
        } catch (...) {
            std::lock_guard<std::mutex> lk(err_mu);
            if (!err) err = std::current_exception();
        }
    };
    {
        std::lock_guard<std::mutex> lk(mu_);
        job_.store(&wrapped, std::memory_order_relaxed);
        pending_.store(n_ - 1, std::memory_order_relaxed);
        generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    bool was = t_in_worker;
    t_in_worker = true;
    wrapped(0);
    t_in_worker = was;
    auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(done)) {
        std::unique_lock<std::mutex> lk(mu_);
        done_cv_.wait(lk, done);
    }
    job_.store(nullptr, std::memory_order_relaxed);
    if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    int use = static_cast<int>(chunks < n_ ? chunks : n_);
    if (use <= 1 || t_in_worker) {
        fn(0, n, 0);
        return;
    }
    run_on_all([&](int i) {
        if (i >= use) return;
        int64_t b = n * i / use, e = n * (i + 1) / use;
        if (b < e) fn(b, e, i);
    });
}

ThreadPool& current_pool() {
    if (t_pool) return *t_pool;
    std::lock_guard<std::mutex> lk(g_default_mu);
    if (!g_default) {
        int n = g_default_threads;
        if (n <= 0) {
            const char* env = std::getenv("ST2V_THREADS");
            n = env ? std::atoi(env) : 0;
        }
        if (n <= 0) n = hardware_threads();
        g_default = std::make_unique<ThreadPool>(n);
    }
    return *g_default;
}

void set_default_threads(int n) {
    std::lock_guard<std::mutex> lk(g_default_mu);
    g_default_threads = n;
    g_default.reset();
}

PoolScope::PoolScope(ThreadPool* p) : prev_(t_pool) { t_pool = p; }
PoolScope::~PoolScope() { t_pool = prev_; }

}  // namespace st2v

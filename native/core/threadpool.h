// ThreadPool: the engine's one pool of compute threads.
//
// parallel_for splits [0, n) into contiguous ranges, runs them on the pool's workers and the calling
// thread, and returns when all are done. Work assignment is static (range i goes to thread i), so a
// reduction written per range gives the same bits on every run with the same thread count: determinism
// is a design rule of the CPU backend. A parallel_for issued from inside a worker runs inline (serially).
// The pool used by ops is the thread's current pool (PoolScope), else the process default, whose size
// is the hardware thread count unless set_default_threads() or ST2V_THREADS says otherwise.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace st2v {

class ThreadPool {
  public:
    explicit ThreadPool(int threads);  // threads >= 1 (the caller counts as one)
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_; }
    // fn(begin, end, thread_index). `grain` = minimum range length worth a thread.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);
    // Runs fn(thread_index) once on each of `size()` threads (for per-thread setup or custom splits).
    void run_on_all(const std::function<void(int)>& fn);

  private:
    void worker(int idx);
    int n_;
    std::vector<std::thread> threads_;
    // A region is published by storing job_, then pending_, then bumping generation_ (release, under mu_); workers
    // spin on generation_ for a short while after each region before they sleep on cv_, and the caller spins on
    // pending_ before it sleeps on done_cv_: back-to-back regions (one per op) then skip the futex sleep and wake,
    // which cost 40-120 us per region on our 2-core VMs.
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::atomic<const std::function<void(int)>*> job_{nullptr};
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex submit_mu_;  // one parallel region at a time per pool
};

ThreadPool& current_pool();
int hardware_threads();
void set_default_threads(int n);  // rebuilds the default pool (not while it is running work)

class PoolScope {
  public:
    explicit PoolScope(ThreadPool* p);
    ~PoolScope();
    PoolScope(const PoolScope&) = delete;
    PoolScope& operator=(const PoolScope&) = delete;

  private:
    ThreadPool* prev_;
};

// Convenience: parallel_for on the current pool.
inline void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1) {
    current_pool().parallel_for(n, fn, grain);
}

}  // namespace st2v

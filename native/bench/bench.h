// Registry of native micro-benchmarks (the `ops` suite of `npm run bench`, and others).
//
// A case is a function that runs one measurement on the current thread pool and returns its figures.
// Cases register themselves with ST2V_BENCH(suite, name) in any file under native/bench/; the addon
// exposes benchList(suite) and benchRun(name) and lib/bench/ turns the results into a table and JSON.
#pragma once
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace st2v::bench {

struct Result {
    std::string name;
    double gflops = 0;       // 0 when not a FLOP-bound case
    double gbps = 0;         // 0 when not a bandwidth case
    double seconds = 0;      // median seconds per repetition
    double flops = 0;        // FLOPs per repetition (or bytes for bandwidth cases)
    std::string note;
    double cpu_seconds = 0;  // median process CPU seconds per repetition (0 = not measured); cpu/threads
                             // vs wall shows how much of the machine the case really had (shared hosts)
    double best_seconds = 0; // fastest repetition's wall seconds (0 = not measured): on a shared host the
                             // repetition that had the most of the cores
    // Further named figures of a case (e.g. the paired GEMM case's per-operand ratios); exported to JS as
    // `extra: {name: value}`.
    std::vector<std::pair<std::string, double>> extra;
};

using BenchFn = Result (*)();

struct Case {
    std::string suite, name;
    BenchFn fn;
};

struct Registrar {
    Registrar(const char* suite, const char* name, BenchFn fn);
};

const std::vector<Case>& cases();
const Case* find_case(const std::string& name);

// CPU seconds used so far by this process (all threads): against wall time it shows how much of the machine
// a case really had on a shared host.
double process_cpu_seconds();

struct Timing {
    double median = 0, cpu_over_wall = 0, cpu_median = 0;  // cpu_median: process CPU seconds per repetition
    double best = 0;                                        // fastest repetition (wall)
};

// Runs fn() `reps` times (at least once) after `warmup` runs: median / fastest wall seconds per repetition,
// median process CPU seconds per repetition, and CPU / wall over all repetitions.
template <typename F>
Timing time_it(int warmup, int reps, F&& fn) {
    for (int i = 0; i < warmup; ++i) fn();
    std::vector<double> t, ct;
    double wall = 0;
    const double c0 = process_cpu_seconds();
    for (int i = 0; i < std::max(1, reps); ++i) {
        const double cs = process_cpu_seconds();
        const auto a = std::chrono::steady_clock::now();
        fn();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
        ct.push_back(process_cpu_seconds() - cs);
        t.push_back(s);
        wall += s;
    }
    const double cpu = process_cpu_seconds() - c0;
    std::sort(t.begin(), t.end());
    std::sort(ct.begin(), ct.end());
    return {t[t.size() / 2], wall > 0 ? cpu / wall : 0, ct[ct.size() / 2], t[0]};
}

// "threads=N isa=X cpu/wall=R cpu_s=S[ extra]": the run conditions every case note starts with.
std::string timing_note(const Timing& t, const std::string& extra = "");

// Runs fn() `reps` times after `warmup` runs and returns the median seconds.
double median_seconds(int warmup, int reps, void (*fn)(void*), void* ctx);

}  // namespace st2v::bench

#define ST2V_BENCH_CAT2(a, b) a##b
#define ST2V_BENCH_CAT(a, b) ST2V_BENCH_CAT2(a, b)
#define ST2V_BENCH(suite, name, fn) \
    static ::st2v::bench::Registrar ST2V_BENCH_CAT(st2v_bench_reg_, __LINE__)(suite, name, fn)

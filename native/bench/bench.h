// Registry of native micro-benchmarks (the `ops` suite of `npm run bench`, and others).
//
// A case is a function that runs one measurement on the current thread pool and returns its figures.
// Cases register themselves with ST2V_BENCH(suite, name) in any file under native/bench/; the addon
// exposes benchList(suite) and benchRun(name) and lib/bench/ turns the results into a table and JSON.
#pragma once
#include <string>
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

// Runs fn() `reps` times after `warmup` runs and returns the median seconds.
double median_seconds(int warmup, int reps, void (*fn)(void*), void* ctx);

}  // namespace st2v::bench

#define ST2V_BENCH_CAT2(a, b) a##b
#define ST2V_BENCH_CAT(a, b) ST2V_BENCH_CAT2(a, b)
#define ST2V_BENCH(suite, name, fn) \
    static ::st2v::bench::Registrar ST2V_BENCH_CAT(st2v_bench_reg_, __LINE__)(suite, name, fn)

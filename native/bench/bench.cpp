#include "bench/bench.h"

#include <time.h>

#include <cstdio>

#include "core/cpu.h"
#include "core/threadpool.h"

namespace st2v::bench {

namespace {
std::vector<Case>& registry() {
    static std::vector<Case> r;
    return r;
}
}  // namespace

Registrar::Registrar(const char* suite, const char* name, BenchFn fn) { registry().push_back({suite, name, fn}); }
const std::vector<Case>& cases() { return registry(); }
const Case* find_case(const std::string& name) {
    for (const Case& c : registry())
        if (c.name == name) return &c;
    return nullptr;
}

double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::string timing_note(const Timing& t, const std::string& extra) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "threads=%d isa=%s cpu/wall=%.2f cpu_s=%.4f%s%s", current_pool().size(),
                  isa_name(active_isa()), t.cpu_over_wall, t.cpu_median, extra.empty() ? "" : " ", extra.c_str());
    return buf;
}

double median_seconds(int warmup, int reps, void (*fn)(void*), void* ctx) {
    return time_it(warmup, reps, [&] { fn(ctx); }).median;
}

}  // namespace st2v::bench

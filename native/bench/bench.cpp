#include "bench/bench.h"

#include <algorithm>
#include <chrono>

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

double median_seconds(int warmup, int reps, void (*fn)(void*), void* ctx) {
    for (int i = 0; i < warmup; ++i) fn(ctx);
    std::vector<double> t;
    for (int i = 0; i < std::max(1, reps); ++i) {
        auto a = std::chrono::steady_clock::now();
        fn(ctx);
        auto b = std::chrono::steady_clock::now();
        t.push_back(std::chrono::duration<double>(b - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace st2v::bench

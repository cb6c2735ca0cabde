// Runs registered bench cases by name and prints their figures without the addon (a quick developer check of
// the `ops` cases, and the CPU half of scripts/gpu-check.sh on a machine with no Node):
//   attn_bench [--threads N] [--json] <case> [<case> ...]
// --json: one JSON object per case ({"name", "gflops", "gbps", "seconds", "best_seconds", "note", "extra"}) after
// a first line {"cpu": {...}} with the ISA the kernels dispatch to on this CPU.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/bench.h"
#include "core/cpu.h"
#include "core/status.h"
#include "core/threadpool.h"

namespace {

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') o += '\\', o += ch;
        else if (static_cast<unsigned char>(ch) < 0x20) o += ' ';
        else o += ch;
    }
    return o + "\"";
}

}  // namespace

int main(int argc, char** argv) {
    bool json = false;
    int i = 1;
    for (; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) st2v::set_default_threads(std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--json")) json = true;
        else break;
    }
    if (i >= argc) {
        std::fprintf(stderr, "usage: attn_bench [--threads N] [--json] <case>...\n");
        return 2;
    }
    if (json) {
        const st2v::CpuFeatures& f = st2v::cpu_features();
        std::printf("{\"cpu\": {\"isa\": \"%s\", \"avx2\": %s, \"fma\": %s, \"avx512f\": %s, \"avx512bf16\": %s, "
                    "\"threads\": %d}}\n",
                    st2v::isa_name(st2v::active_isa()), f.avx2 ? "true" : "false", f.fma ? "true" : "false",
                    f.avx512f ? "true" : "false", f.avx512bf16 ? "true" : "false", st2v::current_pool().size());
        std::fflush(stdout);
    }
    int rc = 0;
    for (; i < argc; ++i) {
        const st2v::bench::Case* c = st2v::bench::find_case(argv[i]);
        if (!c) {
            std::fprintf(stderr, "no bench case '%s'\n", argv[i]);
            rc = 1;
            continue;
        }
        try {
            st2v::bench::Result r = c->fn();
            if (json) {
                std::string extra;
                for (const auto& [k, v] : r.extra)
                    extra += (extra.empty() ? "" : ", ") + json_str(k) + ": " + std::to_string(v);
                std::printf("{\"name\": %s, \"gflops\": %.3f, \"gbps\": %.3f, \"seconds\": %.6f, \"best_seconds\": %.6f, "
                            "\"note\": %s, \"extra\": {%s}}\n",
                            json_str(r.name).c_str(), r.gflops, r.gbps, r.seconds, r.best_seconds,
                            json_str(r.note).c_str(), extra.c_str());
            } else {
                std::printf("%-32s %9.2f GFLOP/s %8.2f GB/s %10.5f s  %s\n", r.name.c_str(), r.gflops, r.gbps,
                            r.seconds, r.note.c_str());
            }
            std::fflush(stdout);
        } catch (const st2v::Error& e) {
            std::fprintf(stderr, "%s: %s\n", argv[i], e.what());
            rc = 1;
        }
    }
    return rc;
}

// Runs registered bench cases by name and prints their figures (a quick developer check of the `ops`
// attention / norm cases without the addon): attn_bench [--threads N] <case> [<case> ...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/bench.h"
#include "core/status.h"
#include "core/threadpool.h"

int main(int argc, char** argv) {
    int i = 1;
    if (argc > 2 && !std::strcmp(argv[1], "--threads")) {
        st2v::set_default_threads(std::atoi(argv[2]));
        i = 3;
    }
    if (i >= argc) {
        std::fprintf(stderr, "usage: attn_bench [--threads N] <case>...\n");
        return 2;
    }
    for (; i < argc; ++i) {
        const st2v::bench::Case* c = st2v::bench::find_case(argv[i]);
        if (!c) {
            std::fprintf(stderr, "no bench case '%s'\n", argv[i]);
            return 1;
        }
        try {
            st2v::bench::Result r = c->fn();
            std::printf("%-32s %9.2f GFLOP/s %8.2f GB/s %10.5f s  %s\n", r.name.c_str(), r.gflops, r.gbps, r.seconds,
                        r.note.c_str());
        } catch (const st2v::Error& e) {
            std::fprintf(stderr, "%s: %s\n", argv[i], e.what());
            return 1;
        }
    }
    return 0;
}

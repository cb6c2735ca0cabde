// Bench suite "enhance": the fused randomized-blending merge (runtime/blend.h) against a plain memcpy of the
// same bytes measured in the same run (same thread pool, same split into jobs), so the ratio is what counts.
// Shape: the enhancer's latents, B = 1, 4 channels, 90x160, three chunks of 24 frames with overlap 8 (L = 56).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench/bench.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "runtime/blend.h"

namespace {

using namespace st2v;

struct BlendCtx {
    runtime::ChunkPlan plan;
    std::vector<Tensor> chunks;
    std::vector<const float*> ptrs;
    std::vector<int64_t> r;
    Tensor out, src;
    int64_t B = 1, Ch = 4, HW = 90 * 160;
    int64_t jobs = 1;
};

BlendCtx& ctx() {
    static BlendCtx c = [] {
        BlendCtx x;
        x.plan = runtime::plan_chunks(56, 24, 8);
        for (int64_t k = 0; k < x.plan.n_chunks; ++k) {
            Tensor t = Tensor::empty(Shape{x.B, x.Ch, x.plan.chunk, 90, 160});
            float* p = t.f32();
            for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>((i + k) % 1000) * 1e-3f;
            x.chunks.push_back(t);
            x.ptrs.push_back(t.f32());
        }
        x.r = {3, 5};
        x.out = Tensor::zeros(Shape{x.B, x.Ch, x.plan.length, 90, 160});
        x.src = Tensor::zeros(x.out.shape());
        // the blend splits into B·Ch·runs jobs (5 runs for 3 chunks); the copy uses the same count
        x.jobs = x.B * x.Ch * (2 * x.plan.n_chunks - 1);
        return x;
    }();
    return c;
}

void run_blend(void*) {
    BlendCtx& c = ctx();
    runtime::randomized_blend(c.ptrs.data(), c.r.data(), c.plan, c.B, c.Ch, c.HW, c.out.f32());
}

void run_copy(void*) {
    BlendCtx& c = ctx();
    const size_t bytes = c.out.nbytes();
    const char* s = static_cast<const char*>(c.src.raw());
    char* d = static_cast<char*>(c.out.raw());
    const int64_t jobs = c.jobs;
    parallel_for(jobs, [&](int64_t lo, int64_t hi, int) {
        for (int64_t j = lo; j < hi; ++j) {
            const size_t a = bytes * static_cast<size_t>(j) / static_cast<size_t>(jobs);
            const size_t b = bytes * static_cast<size_t>(j + 1) / static_cast<size_t>(jobs);
            std::memcpy(d + a, s + a, b - a);
        }
    });
}

bench::Result make(const char* name, double sec, double bytes_moved) {
    bench::Result r;
    r.name = name;
    r.seconds = sec;
    r.flops = bytes_moved;
    r.gbps = sec > 0 ? bytes_moved / sec * 1e-9 : 0;
    return r;
}

bench::Result blend_merge() {
    BlendCtx& c = ctx();
    const double bytes = 2.0 * static_cast<double>(c.out.nbytes());  // each output byte read once, written once
    const double t_copy = bench::median_seconds(3, 15, run_copy, nullptr);
    const double t_blend = bench::median_seconds(3, 15, run_blend, nullptr);
    bench::Result r = make("blend_merge_24f_90x160", t_blend, bytes);
    const double copy_gbps = bytes / t_copy * 1e-9;
    char note[200];
    std::snprintf(note, sizeof note, "memcpy same bytes %.1f GB/s; blend/memcpy %.2f (target >= 0.8); L=56 C=24 O=8 1x4x90x160",
                  copy_gbps, r.gbps / copy_gbps);
    r.note = note;
    return r;
}

bench::Result blend_memcpy() {
    BlendCtx& c = ctx();
    const double bytes = 2.0 * static_cast<double>(c.out.nbytes());
    bench::Result r = make("blend_memcpy_24f_90x160", bench::median_seconds(3, 15, run_copy, nullptr), bytes);
    r.note = "reference: memcpy of the blend's output bytes";
    return r;
}

}  // namespace

ST2V_BENCH("enhance", "blend_merge_24f_90x160", blend_merge);
ST2V_BENCH("enhance", "blend_memcpy_24f_90x160", blend_memcpy);

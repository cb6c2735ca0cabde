// `ops` bench cases for attention and GroupNorm (ops/norm_attn_elementwise.cpp).
//
//   attention_80x1024x1024_d64    spatial self-attention, 16 frames x 5 heads, L = 32x32, d 64 (gflops;
//                                 FLOPs = 4 * B*H * Lq * Lk * d: QK^T and PV, softmax not counted)
//   attention_80x1024x77_d64      cross-attention on the 77 text tokens (gflops)
//   tattn_5120x16x16_d64          temporal self-attention: 1024 pixels x 5 heads, 16 frames, d 64 (gflops,
//                                 and gbps over q, k, v read + o written; the note has the bytes)
//   groupnorm_silu_16x320x32x32   GroupNorm(32 groups, per frame) + fused SiLU (gbps, bytes = read + write)
// Median over the repetitions; the note carries threads, ISA and process-CPU/wall (about the thread count
// when the threads really ran in parallel, lower on a shared machine).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/arena.h"
#include "core/cpu.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/ops.h"

namespace st2v::bench {
namespace {

// Outputs come from an Arena, as in the pipeline (no fresh pages per repetition).
template <typename F>
Timing timed(int warmup, int reps, F&& fn) {
    Arena arena;
    ArenaScope scope(&arena);
    return time_it(warmup, reps, fn);
}

Tensor rand_tensor(const Shape& s, uint32_t seed) {
    Tensor t = Tensor::empty(s);
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(g);
    return t;
}

Result attention_case(const char* name, int64_t B, int64_t Lq, int64_t Lk, int heads, int64_t D, int warmup, int reps,
                      bool bandwidth) {
    const int64_t C = heads * D;
    Tensor q = rand_tensor({B, Lq, C}, 1), k = rand_tensor({B, Lk, C}, 2), v = rand_tensor({B, Lk, C}, 3);
    const float sc = 1.f / std::sqrt(static_cast<float>(D));
    Timing t = timed(warmup, reps, [&] { Tensor o = ops::attention(q, k, v, heads, sc); });
    Result r;
    r.name = name;
    r.seconds = t.median;
    r.cpu_seconds = t.cpu_median;
    r.best_seconds = t.best;
    r.flops = 4.0 * static_cast<double>(B * heads) * static_cast<double>(Lq) * static_cast<double>(Lk) *
              static_cast<double>(D);
    r.gflops = r.flops / t.median * 1e-9;
    const double bytes = 4.0 * static_cast<double>(B) * static_cast<double>(2 * Lq + 2 * Lk) * static_cast<double>(C);
    char extra[160];
    std::snprintf(extra, sizeof extra, "B*H=%lld Lq=%lld Lk=%lld d=%lld bytes=%.0f (q,k,v read + o written)",
                  (long long)(B * heads), (long long)Lq, (long long)Lk, (long long)D, bytes);
    if (bandwidth) r.gbps = bytes / t.median * 1e-9;
    char per_cpu[64];
    std::snprintf(per_cpu, sizeof per_cpu, " gflop_per_cpu_s=%.1f", t.cpu_median > 0 ? r.flops / t.cpu_median * 1e-9 : 0.0);
    r.note = timing_note(t, std::string(extra) + per_cpu);
    return r;
}

Result attention_spatial() { return attention_case("attention_80x1024x1024_d64", 16, 1024, 1024, 5, 64, 1, 3, false); }
Result attention_cross() { return attention_case("attention_80x1024x77_d64", 16, 1024, 77, 5, 64, 1, 5, false); }
Result tattn() { return attention_case("tattn_5120x16x16_d64", 1024, 16, 16, 5, 64, 1, 7, true); }

Result groupnorm_silu() {
    const int64_t N = 16, C = 320, H = 32, W = 32;
    Tensor x = rand_tensor({N, C, H, W}, 4), g = rand_tensor({C}, 5), b = rand_tensor({C}, 6);
    Timing t = timed(1, 7, [&] { Tensor y = ops::group_norm(x, 1, 32, g, b, 1e-6f, true); });
    Result r;
    r.name = "groupnorm_silu_16x320x32x32";
    r.seconds = t.median;
    r.cpu_seconds = t.cpu_median;
    r.best_seconds = t.best;
    r.flops = 2.0 * 4.0 * static_cast<double>(N * C * H * W);  // bytes: read x + write y
    r.gbps = r.flops / t.median * 1e-9;
    r.note = timing_note(t, "32 groups per frame, fused SiLU, bytes = read + write (stats pass re-reads x: +50% traffic)");
    return r;
}

ST2V_BENCH("ops", "attention_80x1024x1024_d64", attention_spatial);
ST2V_BENCH("ops", "attention_80x1024x77_d64", attention_cross);
ST2V_BENCH("ops", "tattn_5120x16x16_d64", tattn);
ST2V_BENCH("ops", "groupnorm_silu_16x320x32x32", groupnorm_silu);

}  // namespace
}  // namespace st2v::bench

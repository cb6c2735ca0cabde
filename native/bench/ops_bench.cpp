// `ops` bench cases: the register-only FMA peak probe (suite "peak") and GEMM / conv cases (suite "ops").
//
// Every case runs on the current thread pool and reports the median over a few repetitions. The note of
// each case carries the process CPU time / wall time ratio over the timed repetitions (about the thread
// count when the threads really ran in parallel; lower when the machine is shared).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "bench/bench.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/ops.h"

namespace st2v::bench {
namespace {

Result flop_result(const char* name, double flops, const Timing& t, const std::string& extra = "") {
    Result r;
    r.name = name;
    r.seconds = t.median;
    r.flops = flops;
    r.gflops = flops / t.median * 1e-9;
    r.cpu_seconds = t.cpu_median;
    r.best_seconds = t.best;
    r.note = timing_note(t, extra);
    return r;
}

// ---- FMA peak: 12 independent accumulator chains per thread, registers only ----------------------------
constexpr int64_t kPeakIters = 16000000;  // ~30 ms per thread per repetition

__attribute__((target("avx2,fma"), noinline)) float peak_chains_avx2(int64_t iters) {
    __m256 a0 = _mm256_set1_ps(0.1f), a1 = _mm256_set1_ps(0.2f), a2 = _mm256_set1_ps(0.3f), a3 = _mm256_set1_ps(0.4f),
           a4 = _mm256_set1_ps(0.5f), a5 = _mm256_set1_ps(0.6f), a6 = _mm256_set1_ps(0.7f), a7 = _mm256_set1_ps(0.8f),
           a8 = _mm256_set1_ps(0.9f), a9 = _mm256_set1_ps(1.0f), a10 = _mm256_set1_ps(1.1f), a11 = _mm256_set1_ps(1.2f);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i) {
        // The asm barrier keeps the 12 chains in registers and stops the compiler from folding the loop.
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
                         "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}

__attribute__((target("avx512f"), noinline)) float peak_chains_avx512(int64_t iters) {
    __m512 a0 = _mm512_set1_ps(0.1f), a1 = _mm512_set1_ps(0.2f), a2 = _mm512_set1_ps(0.3f), a3 = _mm512_set1_ps(0.4f),
           a4 = _mm512_set1_ps(0.5f), a5 = _mm512_set1_ps(0.6f), a6 = _mm512_set1_ps(0.7f), a7 = _mm512_set1_ps(0.8f),
           a8 = _mm512_set1_ps(0.9f), a9 = _mm512_set1_ps(1.0f), a10 = _mm512_set1_ps(1.1f), a11 = _mm512_set1_ps(1.2f);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int64_t i = 0; i < iters; ++i) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8),
                         "+v"(a9), "+v"(a10), "+v"(a11));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

std::atomic<float> g_sink{0.f};

Result peak_case(const char* name, Isa need, float (*chains)(int64_t), int lanes) {
    if (static_cast<int>(max_supported_isa()) < static_cast<int>(need)) {
        Result r;
        r.name = name;
        r.note = std::string("skipped: this CPU lacks ") + isa_name(need);
        return r;
    }
    ThreadPool& pool = current_pool();
    const int T = pool.size();
    Timing t = time_it(1, 7, [&] {
        pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) g_sink.store(chains(kPeakIters), std::memory_order_relaxed);
        }, 1);
    });
    const double flops = static_cast<double>(T) * kPeakIters * 12 * lanes * 2;
    Result r = flop_result(name, flops, t, std::string("chains=12 width=") + std::to_string(lanes * 32));
    return r;
}
Result peak_avx2() { return peak_case("fma_peak_avx2", Isa::kAvx2, peak_chains_avx2, 8); }
Result peak_avx512() { return peak_case("fma_peak_avx512", Isa::kAvx512, peak_chains_avx512, 16); }

// ---- GEMM ----------------------------------------------------------------------------------------------
std::vector<float> rand_f32(size_t n, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

// C[M, N] = A[M, K] * W[N, K]^T with W in dtype dt (the linear-layer layout: weights are [out, in]).
Result gemm_case(const char* name, int64_t S, DType dt, int reps) {
    const int64_t M = S, N = S, K = S;
    std::vector<float> a = rand_f32(static_cast<size_t>(M * K), 1);
    std::vector<float> wf = rand_f32(static_cast<size_t>(N * K), 2);
    std::vector<uint16_t> wh;
    const void* wp = wf.data();
    if (dt != DType::F32) {
        wh.resize(wf.size());
        for (size_t i = 0; i < wf.size(); ++i) wh[i] = dt == DType::F16 ? f32_to_f16(wf[i]) : f32_to_bf16(wf[i]);
        wp = wh.data();
        std::vector<float>().swap(wf);
    }
    std::vector<float> c(static_cast<size_t>(M * N));
    Timing t = time_it(1, reps, [&] {
        ops::gemm(M, N, K, {a.data(), DType::F32, K, 1}, {wp, dt, 1, K}, c.data(), N);
    });
    return flop_result(name, 2.0 * M * N * K, t, std::string("B=") + dtype_name(dt) + " [N,K]");
}
Result gemm_f32_2048() { return gemm_case("gemm_f32_2048", 2048, DType::F32, 5); }
Result gemm_f16_2048() { return gemm_case("gemm_f16_2048", 2048, DType::F16, 5); }
Result gemm_f32_4096() { return gemm_case("gemm_f32_4096", 4096, DType::F32, 3); }
// The same GEMM on a one-thread pool: gemm_f32_2048 / this = the thread scaling, measured in the same run.
Result gemm_f32_2048_1thread() {
    ThreadPool one(1);
    PoolScope scope(&one);
    return gemm_case("gemm_f32_2048_1thread", 2048, DType::F32, 3);
}

// ---- conv3x3 16x320x32x32, 320 -> 320, pad 1 ---------------------------------------------------------
Result conv3x3_case() {
    const int64_t N = 16, C = 320, H = 32, W = 32, O = 320;
    std::vector<float> xv = rand_f32(static_cast<size_t>(N * C * H * W), 3);
    std::vector<float> wv = rand_f32(static_cast<size_t>(O * C * 9), 4);
    std::vector<float> bv = rand_f32(static_cast<size_t>(O), 5);
    Tensor x = Tensor::from_data(xv.data(), {N, C, H, W}, DType::F32);
    Tensor w = Tensor::from_data(wv.data(), {O, C, 3, 3}, DType::F32);
    Tensor b = Tensor::from_data(bv.data(), {O}, DType::F32);
    Timing t = time_it(1, 5, [&] { Tensor y = ops::conv2d(x, w, b, ops::Conv2dParams::same(3)); });
    return flop_result("conv3x3_16x320x32x32", 2.0 * N * O * H * W * C * 9, t, "implicit GEMM, f32 weights");
}

ST2V_BENCH("peak", "fma_peak_avx2", peak_avx2);
ST2V_BENCH("peak", "fma_peak_avx512", peak_avx512);
ST2V_BENCH("ops", "gemm_f32_2048", gemm_f32_2048);
ST2V_BENCH("ops", "gemm_f16_2048", gemm_f16_2048);
ST2V_BENCH("ops", "gemm_f32_4096", gemm_f32_4096);
ST2V_BENCH("ops", "conv3x3_16x320x32x32", conv3x3_case);
ST2V_BENCH("ops", "gemm_f32_2048_1thread", gemm_f32_2048_1thread);

}  // namespace
}  // namespace st2v::bench

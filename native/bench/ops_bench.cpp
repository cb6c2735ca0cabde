// `ops` bench cases: the register-only FMA peak probe (suite "peak") and GEMM / conv cases (suite "ops").
//
// Every case runs on the current thread pool and reports the median over a few repetitions. The note of
// each case carries the process CPU time / wall time ratio over the timed repetitions (about the thread
// count when the threads really ran in parallel; lower when the machine is shared).
#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <random>
#include <vector>

#include "bench/bench.h"
#include "core/arena.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "ops/simd_math_testing.h"

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

// FLOPs of one probe on T threads: each thread runs kPeakIters steps of 12 FMA chains, lanes floats wide.
double probe_flops(int T, int lanes) { return static_cast<double>(T) * kPeakIters * 12 * lanes * 2; }

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
    Result r = flop_result(name, probe_flops(T, lanes), t, std::string("chains=12 width=") + std::to_string(lanes * 32));
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
// 15 repetitions (~0.1 s each): with 5, one burst of another tenant's load over three of them moved the median
// (seen on 2026-11-28: a median of 0.187 s beside a best of 0.097 s at cpu/wall 1.97).
Result gemm_f32_2048() { return gemm_case("gemm_f32_2048", 2048, DType::F32, 15); }
Result gemm_f16_2048() { return gemm_case("gemm_f16_2048", 2048, DType::F16, 15); }
Result gemm_f32_4096() { return gemm_case("gemm_f32_4096", 4096, DType::F32, 3); }
// The same GEMM on a one-thread pool: gemm_f32_2048 / this = the thread scaling, measured in the same run.
Result gemm_f32_2048_1thread() {
    ThreadPool one(1);
    PoolScope scope(&one);
    return gemm_case("gemm_f32_2048_1thread", 2048, DType::F32, 3);
}

// ---- paired GEMM / peak: one interleaved sequence, ratios of neighbours ----------------------------------
// On a shared host the speed of the cores drifts between repetitions (other tenants' load, clocks), and a
// median GEMM over the maximum of separately timed peak probes mixes two moments. This case interleaves
// P G32 P G16 P [OB] P ... (P: the FMA peak probe on the whole pool, G32/G16: gemm 2048 with f32/f16 weights,
// OB: OpenBLAS's cblas_sgemm on the same operands when the system has libopenblas.so.0) and rates every GEMM
// repetition against the mean of the two probes around it; the figures are the median and quartiles of
// those per-repetition ratios. KH (the kernel ceiling): the active microkernel alone on every pool thread, the
// same packed micro-panels and C tile at every call (ops::detail::gemm_kernel_hot_flops: no packing, no driver, no
// cold operands), as long as a GEMM; f32_over_kernel says how much of the kernel's own speed at that moment the
// whole GEMM keeps, which separates the driver's losses from the host's (a kernel that reads well under the
// peak even on hot operands means the cores themselves were slower than the register-only probe). GF: the same f32
// GEMM with the older driver (ops::detail::set_gemm_dynamic(false): each thread a fixed band of C, packing all of
// B itself); f32_over_fixed_bands says what the shared-counter driver buys at the same moments. OpenBLAS (Debian's DYNAMIC_ARCH build, dlopen()ed here only: the engine never
// uses it) is called single-threaded from each pool thread on its own block of columns, the same split our
// driver uses, so the two kernels are compared under the same partition and the same moments of load.
using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                          int);
using set_threads_fn = void (*)(int);
using get_config_fn = char* (*)();
struct OpenBlas {
    sgemm_fn sgemm = nullptr;
    set_threads_fn set_threads = nullptr;
    std::string config;
};
const OpenBlas& openblas() {
    static const OpenBlas ob = [] {
        OpenBlas o;
        for (const char* name : {"libopenblas.so.0", "libopenblas.so"}) {
            void* so = dlopen(name, RTLD_NOW | RTLD_LOCAL);
            if (!so) continue;
            o.sgemm = reinterpret_cast<sgemm_fn>(dlsym(so, "cblas_sgemm"));
            o.set_threads = reinterpret_cast<set_threads_fn>(dlsym(so, "openblas_set_num_threads"));
            auto cfg = reinterpret_cast<get_config_fn>(dlsym(so, "openblas_get_config"));
            if (cfg) o.config = cfg();
            if (!o.sgemm || !o.set_threads) o = OpenBlas{};
            break;
        }
        return o;
    }();
    return ob;
}

double median_of(std::vector<double> v, double q = 0.5) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

// Wall seconds of one call of fn.
template <class F>
double wall_seconds(F&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// One FMA peak probe on every thread of pool (the AVX-512 or AVX2 chains): GFLOP/s of the whole pool.
double probe_gflops(ThreadPool& pool, bool wide) {
    float (*chains)(int64_t) = wide ? peak_chains_avx512 : peak_chains_avx2;
    const int T = pool.size(), lanes = wide ? 16 : 8;
    const double s = wall_seconds([&] {
        pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) g_sink.store(chains(kPeakIters), std::memory_order_relaxed);
        }, 1);
    });
    return probe_flops(T, lanes) / s * 1e-9;
}

Result gemm_2048_paired() {
    const int64_t S = 2048;
    const int rounds = 15;
    ThreadPool& pool = current_pool();
    const int T = pool.size();
    const bool wide = max_supported_isa() == Isa::kAvx512;
    // every probe's wall-clock GFLOP/s and GFLOP per process CPU-second (the references for the ops report's
    // ratio_to_peak_best and ratio_to_peak_cpu, beside the separately timed probes, which can lose their cores)
    std::vector<double> probe_per_cpu;
    auto probe = [&] {
        const double c0 = process_cpu_seconds();
        const double g = probe_gflops(pool, wide);
        const double cpu = process_cpu_seconds() - c0;
        if (cpu > 0) probe_per_cpu.push_back(probe_flops(T, wide ? 16 : 8) * 1e-9 / cpu);
        return g;
    };
    Result r;
    r.name = "gemm_2048_paired";
    if (static_cast<int>(max_supported_isa()) < static_cast<int>(Isa::kAvx2)) {
        r.note = "skipped: no AVX2/FMA peak probe on this CPU";
        return r;
    }
    std::vector<float> a = rand_f32(static_cast<size_t>(S * S), 1);
    std::vector<float> wf = rand_f32(static_cast<size_t>(S * S), 2);
    std::vector<uint16_t> wh(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) wh[i] = f32_to_f16(wf[i]);
    std::vector<float> c(static_cast<size_t>(S * S));
    const OpenBlas& ob = openblas();
    if (ob.sgemm) ob.set_threads(1);

    const double gflop = 2.0 * S * S * S * 1e-9;
    auto ours = [&](const void* w, DType dt) {
        return gflop / wall_seconds([&] { ops::gemm(S, S, S, {a.data(), DType::F32, S, 1}, {w, dt, 1, S}, c.data(), S); });
    };
    auto theirs = [&] {
        const int64_t per = ((S + T - 1) / T + 15) / 16 * 16;
        return gflop / wall_seconds([&] {
            pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
                for (int64_t p = b; p < e; ++p) {
                    const int64_t n0 = p * per, n1 = std::min(S, n0 + per);
                    if (n0 >= n1) continue;
                    // RowMajor (101), A NoTrans (111), B = W[N, K] transposed (112)
                    ob.sgemm(101, 111, 112, static_cast<int>(S), static_cast<int>(n1 - n0), static_cast<int>(S), 1.f,
                             a.data(), static_cast<int>(S), wf.data() + n0 * S, static_cast<int>(S), 0.f, c.data() + n0,
                             static_cast<int>(S));
                }
            }, 1);
        });
    };
    // the kernel ceiling: each pool thread runs the microkernel for about as long as one GEMM repetition
    int64_t hot_calls = 0;
    auto hot = [&] {
        std::atomic<int64_t> flops_done{0};
        const double s = wall_seconds([&] {
            pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
                for (int64_t i = b; i < e; ++i)
                    flops_done.fetch_add(static_cast<int64_t>(ops::detail::gemm_kernel_hot_flops(hot_calls)));
            }, 1);
        });
        return static_cast<double>(flops_done.load()) * 1e-9 / s;
    };
    // warm-up: every kernel once (page faults, scratch allocation, OpenBLAS's buffers)
    probe();
    ours(wf.data(), DType::F32);
    ours(wh.data(), DType::F16);
    if (ob.sgemm) theirs();
    {
        // size the ceiling's repetition like one GEMM: (GEMM FLOPs / T) per thread
        const double per_call = ops::detail::gemm_kernel_hot_flops(1);
        hot_calls = std::max<int64_t>(1, static_cast<int64_t>(gflop * 1e9 / T / per_call));
        hot();
    }

    // One series of the sequence: GFLOP/s per repetition, its ratio to the mean of the two probes around it, and
    // (over_f32) the same round's f32 GEMM over it.
    struct Series {
        std::vector<double> gflops, ratio, over_f32;
    };
    Series s32, s16, sob, skh, sfix;
    double before = probe();
    std::vector<double> peaks{before};
    auto rate = [&](Series& s, double x, double x32) {
        const double after = probe();
        s.gflops.push_back(x);
        s.ratio.push_back(x / (0.5 * (before + after)));
        if (x32 > 0) s.over_f32.push_back(x32 / x);
        before = after;
        peaks.push_back(after);
    };
    const double c0 = process_cpu_seconds();
    const auto w0 = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i) {
        const double x32 = ours(wf.data(), DType::F32);
        rate(s32, x32, 0);
        rate(s16, ours(wh.data(), DType::F16), 0);
        if (ob.sgemm) rate(sob, theirs(), x32);
        rate(skh, hot(), x32);
        {
            const bool was = ops::detail::set_gemm_dynamic(false);
            const double x = ours(wf.data(), DType::F32);
            ops::detail::set_gemm_dynamic(was);
            rate(sfix, x, x32);
        }
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    const double cpu = process_cpu_seconds() - c0;
    r.gflops = median_of(s32.gflops);
    r.flops = gflop * 1e9;
    r.seconds = gflop / r.gflops;
    r.best_seconds = gflop / *std::max_element(s32.gflops.begin(), s32.gflops.end());
    auto add = [&](const std::string& k, double v) { r.extra.emplace_back(k, v); };
    auto add_series = [&](const std::string& k, const Series& s) {
        add(k + "_gflops_median", median_of(s.gflops));
        add(k + "_ratio_median", median_of(s.ratio));
        add(k + "_ratio_q1", median_of(s.ratio, 0.25));
        add(k + "_ratio_q3", median_of(s.ratio, 0.75));
    };
    add("rounds", rounds);
    add("peak_gflops_median", median_of(peaks));
    add("peak_gflops_best", *std::max_element(peaks.begin(), peaks.end()));
    add("peak_gflops_per_cpu_s_median", median_of(probe_per_cpu));
    add_series("f32", s32);
    add_series("f16", s16);
    if (ob.sgemm) {
        add_series("openblas", sob);
        add("f32_over_openblas_median", median_of(sob.over_f32));
    }
    add_series("kernel_hot", skh);
    add("f32_over_kernel_hot_median", median_of(skh.over_f32));
    add_series("f32_fixed_bands", sfix);
    add("f32_over_fixed_bands_median", median_of(sfix.over_f32));
    char buf[160];
    std::snprintf(buf, sizeof buf, "threads=%d isa=%s cpu/wall=%.2f; P G32 P G16 P%s KH P GF P x %d, ratios to the mean of the neighbouring probes",
                  T, isa_name(active_isa()), wall > 0 ? cpu / wall : 0.0, ob.sgemm ? " OB P" : "", rounds);
    r.note = buf;
    if (ob.sgemm) r.note += "; OpenBLAS: " + ob.config + " (1 thread per pool thread, same column split)";
    else r.note += "; OpenBLAS reference: libopenblas.so.0 not found";
    return r;
}

// ---- GEMM blocking sweeps (suite "tuning"; not part of `ops`) ---------------------------------------------------
// A level's GEMM blocking (ops/gemm_internal.h) for gemm 2048 f32, every variant rated like gemm_2048_paired: one
// interleaved sequence P V1 P V2 P ... per round (the order rotates each round), each repetition against the mean
// of its two neighbouring FMA peak probes. Extra figures per variant: <label>_ratio (median), _q1, _q3, _gflops.
// Only on CPUs where that level is the active one (an emulated level has no speed meaning); the level's default
// blocking is restored afterwards.
//   gemm_avx512_sweep: R x 32 kernel, KC, MC, NC, loop order; ST2V_GEMM_SWEEP="rows,KC,MC,NC,a_outer;..."
//   gemm_avx2_sweep:   6 x 16 kernel, KC, MC, NC;             ST2V_GEMM_SWEEP_AVX2="KC,MC,NC;..."
std::vector<std::vector<long long>> sweep_spec(const char* env_name, int fields) {
    std::vector<std::vector<long long>> out;
    const char* env = std::getenv(env_name);
    if (!env) return out;
    std::string spec = env;
    size_t pos = 0;
    while (pos < spec.size()) {
        const size_t end = std::min(spec.find(';', pos), spec.size());
        std::vector<long long> v;
        const std::string item = spec.substr(pos, end - pos);
        size_t q = 0;
        while (q < item.size()) {
            const size_t e = std::min(item.find(',', q), item.size());
            v.push_back(std::atoll(item.substr(q, e - q).c_str()));
            q = e + 1;
        }
        if (static_cast<int>(v.size()) == fields) out.push_back(v);
        pos = end + 1;
    }
    return out;
}

Result sweep_case(const char* name, Isa level, const std::vector<std::string>& labels,
                  const std::function<void(size_t)>& apply, const std::function<void()>& restore) {
    const int64_t S = 2048;
    const char* rounds_env = std::getenv("ST2V_SWEEP_ROUNDS");
    const int rounds = rounds_env ? std::max(1, std::atoi(rounds_env)) : 7;
    ThreadPool& pool = current_pool();
    const int T = pool.size();
    Result r;
    r.name = name;
    if (active_isa() != level || max_supported_isa() != level) {
        r.note = std::string("skipped: the ") + isa_name(level) + " level is not this CPU's widest active level";
        return r;
    }
    auto probe = [&] { return probe_gflops(pool, level == Isa::kAvx512); };
    std::vector<float> a = rand_f32(static_cast<size_t>(S * S), 1);
    std::vector<float> w = rand_f32(static_cast<size_t>(S * S), 2);
    std::vector<float> c(static_cast<size_t>(S * S));
    const double gflop = 2.0 * S * S * S * 1e-9;
    auto ours = [&](size_t v) {
        apply(v);
        return gflop / wall_seconds([&] { ops::gemm(S, S, S, {a.data(), DType::F32, S, 1}, {w.data(), DType::F32, 1, S}, c.data(), S); });
    };
    const size_t n = labels.size();
    std::vector<std::vector<double>> ratio(n), gf(n);
    try {
        probe();
        for (size_t v = 0; v < n; ++v) ours(v);  // warm-up: every variant once
        double before = probe();
        const double c0 = process_cpu_seconds();
        const auto w0 = std::chrono::steady_clock::now();
        for (int round = 0; round < rounds; ++round) {
            for (size_t v = 0; v < n; ++v) {
                const size_t i = (v + static_cast<size_t>(round)) % n;
                const double x = ours(i);
                const double after = probe();
                ratio[i].push_back(x / (0.5 * (before + after)));
                gf[i].push_back(x);
                before = after;
            }
        }
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
        const double cpu = process_cpu_seconds() - c0;
        restore();
        size_t best = 0;
        for (size_t i = 0; i < n; ++i) {
            r.extra.emplace_back(labels[i] + "_ratio", median_of(ratio[i]));
            r.extra.emplace_back(labels[i] + "_q1", median_of(ratio[i], 0.25));
            r.extra.emplace_back(labels[i] + "_q3", median_of(ratio[i], 0.75));
            r.extra.emplace_back(labels[i] + "_gflops", median_of(gf[i]));
            if (median_of(ratio[i]) > median_of(ratio[best])) best = i;
        }
        r.gflops = median_of(gf[best]);
        r.flops = gflop * 1e9;
        r.seconds = gflop / r.gflops;
        char buf[200];
        std::snprintf(buf, sizeof buf, "threads=%d isa=%s cpu/wall=%.2f; %zu variants x %d rounds, P V P V ...; best %s ratio %.3f",
                      T, isa_name(level), wall > 0 ? cpu / wall : 0.0, n, rounds, labels[best].c_str(),
                      median_of(ratio[best]));
        r.note = buf;
    } catch (...) {
        restore();
        throw;
    }
    return r;
}

Result gemm_avx512_sweep() {
    std::vector<ops::detail::GemmWideTuning> vs;
    for (const auto& v : sweep_spec("ST2V_GEMM_SWEEP", 5))
        vs.push_back({static_cast<int>(v[0]), v[1], v[2], v[3], v[4] != 0});
    if (vs.empty())
        vs = {{14, 256, 70, 3072, false},  {6, 256, 144, 3072, false},  {12, 512, 72, 3072, false},
              {14, 512, 70, 3072, false},  {12, 384, 48, 3072, false},  {14, 384, 70, 3072, false},
              {12, 256, 144, 3072, false}, {14, 256, 140, 3072, false}, {6, 512, 48, 3072, false}};
    std::vector<std::string> labels;
    for (const auto& t : vs) {
        char key[96];
        std::snprintf(key, sizeof key, "r%d_kc%lld_mc%lld_nc%lld%s", t.rows, static_cast<long long>(t.KC),
                      static_cast<long long>(t.MC), static_cast<long long>(t.NC), t.a_outer ? "_ao" : "");
        labels.push_back(key);
    }
    const ops::detail::GemmWideTuning saved = ops::detail::gemm_wide_tuning();
    return sweep_case("gemm_avx512_sweep", Isa::kAvx512, labels,
                      [&](size_t i) { ops::detail::set_gemm_wide_tuning(vs[i]); },
                      [&] { ops::detail::set_gemm_wide_tuning(saved); });
}

Result gemm_avx2_sweep() {
    std::vector<ops::detail::GemmAvx2Blocking> vs;
    for (const auto& v : sweep_spec("ST2V_GEMM_SWEEP_AVX2", 3)) vs.push_back({v[0], v[1], v[2]});
    if (vs.empty())
        vs = {{512, 192, 3072}, {256, 144, 3072}, {256, 72, 3072}, {384, 96, 3072}, {512, 96, 3072},
              {512, 48, 3072},  {768, 96, 3072},  {384, 48, 3072}, {1024, 48, 3072}, {512, 72, 3072}};
    std::vector<std::string> labels;
    for (const auto& b : vs) {
        char key[96];
        std::snprintf(key, sizeof key, "kc%lld_mc%lld_nc%lld", static_cast<long long>(b.KC),
                      static_cast<long long>(b.MC), static_cast<long long>(b.NC));
        labels.push_back(key);
    }
    const ops::detail::GemmAvx2Blocking saved = ops::detail::gemm_avx2_blocking();
    return sweep_case("gemm_avx2_sweep", Isa::kAvx2, labels,
                      [&](size_t i) { ops::detail::set_gemm_avx2_blocking(vs[i]); },
                      [&] { ops::detail::set_gemm_avx2_blocking(saved); });
}

// ---- conv3x3 16x320x32x32, 320 -> 320, pad 1 ---------------------------------------------------------
// conv2d 3x3, pad 1, f32 weights, C -> O channels on N images of H x W, stride s (output (H/s) x (W/s)).
Result conv3x3_run(const char* name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int s, const char* note) {
    std::vector<float> xv = rand_f32(static_cast<size_t>(N * C * H * W), 3);
    std::vector<float> wv = rand_f32(static_cast<size_t>(O * C * 9), 4);
    std::vector<float> bv = rand_f32(static_cast<size_t>(O), 5);
    Tensor x = Tensor::from_data(xv.data(), {N, C, H, W}, DType::F32);
    Tensor w = Tensor::from_data(wv.data(), {O, C, 3, 3}, DType::F32);
    Tensor b = Tensor::from_data(bv.data(), {O}, DType::F32);
    Timing t = time_it(1, 5, [&] { Tensor y = ops::conv2d(x, w, b, ops::Conv2dParams::same(3, s)); });
    const int64_t Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    return flop_result(name, 2.0 * N * O * Ho * Wo * C * 9, t, note);
}
// The default path for this shape is Winograd F(2x2, 3x3) (ops/conv_winograd.cpp): its GFLOP/s count the direct
// method's 2 * N * O * H * W * C * 9 FLOPs (an effective rate; it does 1 / 2.25 of the multiply-adds), so the
// ratio to the peak can pass 1. The _im2col case runs the same convolution through the implicit-im2col GEMM in the
// same run; the first over the second is what Winograd buys.
Result conv3x3_case() {
    return conv3x3_run("conv3x3_16x320x32x32", 16, 320, 32, 32, 320, 1,
                       ops::detail::conv3x3_winograd_applies(16, 320, 320, 32, 32)
                           ? "Winograd F(2x2,3x3), effective GFLOP/s (direct-method FLOPs), f32 weights"
                           : "implicit GEMM, f32 weights");
}
Result conv3x3_im2col_case() {
    const ops::detail::WinogradMode was = ops::detail::set_conv_winograd(ops::detail::WinogradMode::kOff);
    Result r = conv3x3_run("conv3x3_16x320x32x32_im2col", 16, 320, 32, 32, 320, 1, "implicit GEMM, f32 weights");
    ops::detail::set_conv_winograd(was);
    return r;
}
// The downsampler shape (stride 2; the im2col panels gather every other column) and CAM's E_cond shape (few
// output channels, so the im2col packing weighs more).
Result conv3x3_s2_case() {
    return conv3x3_run("conv3x3s2_16x320x32x32", 16, 320, 32, 32, 320, 2, "stride 2, implicit GEMM, f32 weights");
}
Result conv3x3_econd_case() {
    return conv3x3_run("conv3x3s2_16x32x128x128_o96", 16, 32, 128, 128, 96, 2,
                       "stride 2, 32 -> 96 channels (CAM E_cond), implicit GEMM, f32 weights");
}

// n f16 weights, uniform in [-0.05, 0.05] (the interleaved convolution cases' weights).
std::vector<uint16_t> rand_weights_f16(size_t n, uint32_t seed) {
    std::vector<float> wf = rand_f32(n, seed);
    std::vector<uint16_t> wh(n);
    for (size_t i = 0; i < n; ++i) wh[i] = f32_to_f16(0.05f * wf[i]);
    return wh;
}

// The row note's entry for one shape of an interleaved A/B case: " <label> <path> <speedup>x".
void note_ab(std::string& note, const char* label, const char* path, double speedup) {
    char buf[128];
    std::snprintf(buf, sizeof buf, " %s %s %.2fx", label, path, speedup);
    note += buf;
}

// One shape of an interleaved A / B comparison: `select(b)` switches to the default path (b = false) or the
// alternative (b = true), and `run()` runs it once (timed); after a warm-up each way, every round times both, in
// alternating order. Adds <label>_default_gflops / _<alt>_gflops (medians), <label>_speedup_median / _q1 / _q3
// (alternative time / default time over the rounds) and <label>_<flag> (whether the default path differs from the
// alternative here), and the note entry " <label> <path> <speedup>x" (path: what the default took). The caller
// restores its switch afterwards.
template <typename Select, typename Run>
void interleaved_ab(Result& r, std::string& note, const std::string& label, const char* path, const char* alt,
                    const char* flag, bool applies, double flops, int rounds, Select select, Run run) {
    auto once = [&](bool alternative) {
        select(alternative);
        return wall_seconds(run);
    };
    once(false);
    once(true);
    std::vector<double> def, other, speedup;
    for (int i = 0; i < rounds; ++i) {
        const bool alt_first = i % 2 == 1;
        const double a = once(alt_first), c = once(!alt_first);
        const double td = alt_first ? c : a, ta = alt_first ? a : c;
        def.push_back(td);
        other.push_back(ta);
        speedup.push_back(ta / td);
    }
    r.extra.emplace_back(label + "_default_gflops", flops / median_of(def) * 1e-9);
    r.extra.emplace_back(label + "_" + alt + "_gflops", flops / median_of(other) * 1e-9);
    r.extra.emplace_back(label + "_speedup_median", median_of(speedup));
    r.extra.emplace_back(label + "_speedup_q1", median_of(speedup, 0.25));
    r.extra.emplace_back(label + "_speedup_q3", median_of(speedup, 0.75));
    r.extra.emplace_back(label + "_" + flag, applies ? 1 : 0);
    if (r.flops == 0) {  // the first shape gives the row's own figures
        r.flops = flops;
        r.seconds = median_of(def);
        r.gflops = flops / r.seconds * 1e-9;
        r.best_seconds = *std::min_element(def.begin(), def.end());
    }
    note_ab(note, label.c_str(), path, median_of(speedup));
}

// The temporal (3,1,1) convolution at the mid config's three attention levels (2 samples x 16 frames, f16 weights:
// 128 channels x 32x32, 256 x 16x16, 512 x 8x8), default path (Winograd F(2,3) over time where it applies) against
// the direct GEMM of depth 3C, interleaved: every round times each shape both ways in alternating order. gflops is
// the default path's effective rate at the first shape (the direct method's 6 NF O C S FLOPs); the extras give per
// shape the median GFLOP/s both ways and the median (q1, q3) over rounds of direct time / default time.
Result conv_temporal_ab() {
    struct Shape3 {
        const char* label;
        int64_t C, S;
    };
    const Shape3 shapes[] = {{"c128_s1024", 128, 1024}, {"c256_s256", 256, 256}, {"c512_s64", 512, 64}};
    const int64_t B = 2, F = 16, NF = B * F;
    const int rounds = 9;
    Result r;
    r.name = "conv_temporal_32x128x32x32";
    std::string note = "f16 weights, 2 x 16 frames; default / direct (depth-3C GEMM), interleaved x 9:";
    for (const Shape3& sh : shapes) {
        std::vector<float> xv = rand_f32(static_cast<size_t>(NF * sh.C * sh.S), 6);
        std::vector<uint16_t> wh = rand_weights_f16(static_cast<size_t>(sh.C * sh.C * 3), 7);
        std::vector<float> bv = rand_f32(static_cast<size_t>(sh.C), 8);
        Tensor x = Tensor::from_data(xv.data(), {NF, sh.C, 1, sh.S}, DType::F32);
        Tensor w = Tensor::from_data(wh.data(), {sh.C, sh.C, 3, 1, 1}, DType::F16);
        Tensor b = Tensor::from_data(bv.data(), {sh.C}, DType::F32);
        const double flops = 6.0 * static_cast<double>(NF * sh.C * sh.C * sh.S);
        const ops::detail::WinogradMode was = ops::detail::set_temporal_winograd(ops::detail::WinogradMode::kAuto);
        const bool wino = ops::detail::temporal_winograd_applies(static_cast<int>(F), sh.C, sh.C, sh.S);
        interleaved_ab(
            r, note, sh.label, wino ? "Winograd" : "direct", "direct", "winograd", wino, flops, rounds,
            [](bool direct) {
                ops::detail::set_temporal_winograd(direct ? ops::detail::WinogradMode::kOff
                                                          : ops::detail::WinogradMode::kAuto);
            },
            [&] { Tensor y = ops::conv_temporal(x, static_cast<int>(F), w, b); });
        ops::detail::set_temporal_winograd(was);
    }
    r.note = note;
    return r;
}

// conv2d over a batch at the mid config's deep im2col / 1x1 shapes (2 samples x 16 frames = 32 images, f16 weights):
// the default path (ops::detail::conv_batch_path: small maps grouped side by side in one GEMM, else whole images per
// thread where that applies) against each image in turn on all threads (set_conv_batching(false)), interleaved;
// extras as conv_temporal_ab's, with the flags `grouped` and `by_image` (which path the default took).
Result conv_batch_ab() {
    struct ConvShape {
        const char* label;
        int64_t C, H, O, k;
        int stride;
    };
    const ConvShape shapes[] = {{"3x3_c512_4x4", 512, 4, 512, 3, 1},
                                {"1x1_c1024_4x4_o512", 1024, 4, 512, 1, 1},
                                {"3x3s2_c512_8x8", 512, 8, 512, 3, 2},
                                {"3x3s2_c256_16x16", 256, 16, 256, 3, 2},
                                {"3x3s2_c128_32x32", 128, 32, 128, 3, 2}};
    const int64_t N = 32;
    const int rounds = 9;
    Result r;
    r.name = "conv_batch_32x512x4x4";
    std::string note = "f16 weights, 32 images; default / per image (all threads on each image), interleaved x 9:";
    const int threads = current_pool().size();
    for (const ConvShape& sh : shapes) {
        std::vector<float> xv = rand_f32(static_cast<size_t>(N * sh.C * sh.H * sh.H), 9);
        std::vector<uint16_t> wh = rand_weights_f16(static_cast<size_t>(sh.O * sh.C * sh.k * sh.k), 10);
        std::vector<float> bv = rand_f32(static_cast<size_t>(sh.O), 11);
        Tensor x = Tensor::from_data(xv.data(), {N, sh.C, sh.H, sh.H}, DType::F32);
        Tensor w = Tensor::from_data(wh.data(), {sh.O, sh.C, sh.k, sh.k}, DType::F16);
        Tensor b = Tensor::from_data(bv.data(), {sh.O}, DType::F32);
        const ops::Conv2dParams p = ops::Conv2dParams::same(static_cast<int>(sh.k), sh.stride);
        const int64_t Ho = (sh.H - 1) / sh.stride + 1;
        const double flops = 2.0 * static_cast<double>(N * sh.O * Ho * Ho * sh.C * sh.k * sh.k);
        const bool was = ops::detail::set_conv_batching(true);
        const ops::detail::ConvBatchPath path = ops::detail::conv_batch_path(N, threads, Ho * Ho, sh.C * sh.k * sh.k);
        const char* name = path == ops::detail::ConvBatchPath::kGrouped  ? "grouped"
                           : path == ops::detail::ConvBatchPath::kByImage ? "by image"
                                                                          : "per image";
        interleaved_ab(
            r, note, sh.label, name, "per_image", "grouped", path == ops::detail::ConvBatchPath::kGrouped, flops,
            rounds, [](bool per_image) { ops::detail::set_conv_batching(!per_image); },
            [&] { Tensor y = ops::conv2d(x, w, b, p); });
        r.extra.emplace_back(std::string(sh.label) + "_by_image", path == ops::detail::ConvBatchPath::kByImage ? 1 : 0);
        ops::detail::set_conv_batching(was);
    }
    r.note = note;
    return r;
}

// The shallow linear layers of the mid config (activations [M, K] f32, weights [N, K] f16): the default path (A read
// in place where ops/gemm.cpp's DirectA rule applies) against A always packed, interleaved; every timing is `inner`
// calls (~4 GFLOP). Per shape: the median (q1, q3) over rounds of packed time / default time, and whether the rule
// applied (shapes outside it time the same path twice).
Result linear_direct_a_ab() {
    struct LinShape {
        const char* label;
        int64_t M, N, K;
    };
    const LinShape shapes[] = {{"32768x128x128", 32768, 128, 128},
                               {"32768x384x128", 32768, 384, 128},
                               {"32768x1024x128", 32768, 1024, 128},
                               {"8192x256x256", 8192, 256, 256},
                               {"8192x768x256", 8192, 768, 256}};
    const int rounds = 9;
    Result r;
    r.name = "linear_direct_a_32768x128x128";
    std::string note = "f16 weights; default / A always packed, interleaved x 9:";
    for (const LinShape& sh : shapes) {
        std::vector<float> av = rand_f32(static_cast<size_t>(sh.M * sh.K), 12);
        std::vector<uint16_t> wh = rand_weights_f16(static_cast<size_t>(sh.N * sh.K), 13);
        std::vector<float> c(static_cast<size_t>(sh.M * sh.N));
        const ops::MatRef A{av.data(), DType::F32, sh.K, 1}, B{wh.data(), DType::F16, 1, sh.K};
        const double one = 2.0 * static_cast<double>(sh.M * sh.N * sh.K);
        const int inner = std::max(1, static_cast<int>(4e9 / one));
        const bool applies = ops::detail::gemm_direct_a_applies(sh.N, sh.K, A);
        const bool was = ops::detail::set_gemm_direct_a(true);
        interleaved_ab(
            r, note, sh.label, applies ? "in place" : "packed", "packed", "direct", applies, one * inner, rounds,
            [](bool packed) { ops::detail::set_gemm_direct_a(!packed); },
            [&] {
                for (int i = 0; i < inner; ++i) ops::gemm(sh.M, sh.N, sh.K, A, B, c.data(), sh.N);
            });
        ops::detail::set_gemm_direct_a(was);
    }
    r.note = note;
    return r;
}

// Temporal attention (L 16, d 64) by the short kernel (queries in the vector lanes, K and V read in place) against the
// tiled kernel, interleaved: the tattn case's shape (1024 pixels x 5 heads, separate q / k / v) and the mid config's
// three attention levels as the model calls them (q, k, v column slices of the [pixels, 16, 3C] output of one GEMM; 2
// samples: 2048 pixels x 2 heads, 512 x 4, 128 x 8). gflops is the default path's at the first shape; the extras give
// per shape the median GFLOP/s both ways and the median (q1, q3) over rounds of tiled time / default time.
Result attention_short_ab() {
    struct AttnShape {
        const char* label;
        int64_t B;
        int H;
        bool qkv;
    };
    const AttnShape shapes[] = {{"b1024_h5", 1024, 5, false},
                                {"b2048_h2_qkv", 2048, 2, true},
                                {"b512_h4_qkv", 512, 4, true},
                                {"b128_h8_qkv", 128, 8, true}};
    const int64_t L = 16, D = 64;
    const int rounds = 9;
    Result r;
    r.name = "tattn_short_5120x16x16_d64";
    std::string note = "L 16, d 64; default / tiled kernel, interleaved x 9:";
    Arena arena;  // outputs from an arena, as in the pipeline
    ArenaScope scope(&arena);
    for (const AttnShape& sh : shapes) {
        const int64_t C = sh.H * D;
        Tensor q, k, v;
        if (sh.qkv) {
            const std::vector<float> x = rand_f32(static_cast<size_t>(sh.B * L * 3 * C), 14);
            const Tensor qkv = Tensor::from_data(x.data(), {sh.B, L, 3 * C}, DType::F32);
            q = qkv.slice(2, 0, C);
            k = qkv.slice(2, C, 2 * C);
            v = qkv.slice(2, 2 * C, 3 * C);
        } else {
            const size_t n = static_cast<size_t>(sh.B * L * C);
            q = Tensor::from_data(rand_f32(n, 15).data(), {sh.B, L, C}, DType::F32);
            k = Tensor::from_data(rand_f32(n, 16).data(), {sh.B, L, C}, DType::F32);
            v = Tensor::from_data(rand_f32(n, 17).data(), {sh.B, L, C}, DType::F32);
        }
        const double one = 4.0 * static_cast<double>(sh.B * sh.H * L * L * D);
        const int inner = std::max(1, static_cast<int>(2e9 / one));
        const bool was = ops::detail::set_attention_short(true);
        const bool applies = ops::detail::attention_short_applies(L, L);
        interleaved_ab(
            r, note, sh.label, applies ? "short" : "tiled", "tiled", "short", applies, one * inner, rounds,
            [](bool tiled) { ops::detail::set_attention_short(!tiled); },
            [&] {
                for (int i = 0; i < inner; ++i) Tensor o = ops::attention(q, k, v, sh.H, 0.125f);
            });
        ops::detail::set_attention_short(was);
    }
    r.note = note;
    return r;
}

// The feed-forward projection with its GEGLU fused (ops::linear_geglu: the GEMM's tiles go through GEGLU as they are
// made, the 8C-wide product is never written) against linear then geglu, interleaved, at the mid config's three
// levels as a whole step calls them (f16 weights [8C, C] and bias; rows = 2 samples x 16 frames x pixels):
// 32768 x 128 -> 512, 8192 x 256 -> 1024, 2048 x 512 -> 2048. Outputs from an arena, as in the pipeline; per shape
// also the arena's peak MiB of one call each way (<label>_peak_mib_default / _two_pass).
Result linear_geglu_ab() {
    struct FfShape {
        const char* label;
        int64_t M, C;
    };
    const FfShape shapes[] = {{"32768x128", 32768, 128}, {"8192x256", 8192, 256}, {"2048x512", 2048, 512}};
    const int rounds = 9;
    Result r;
    r.name = "linear_geglu_32768x128";
    std::string note = "f16 weights; fused / linear then geglu, interleaved x 9:";
    Arena arena;
    ArenaScope scope(&arena);
    for (const FfShape& sh : shapes) {
        const int64_t N2 = 8 * sh.C;
        const std::vector<float> xv = rand_f32(static_cast<size_t>(sh.M * sh.C), 18), bv = rand_f32(static_cast<size_t>(N2), 19);
        const std::vector<uint16_t> wh = rand_weights_f16(static_cast<size_t>(N2 * sh.C), 20);
        const Tensor x = Tensor::from_data(xv.data(), {sh.M, sh.C}, DType::F32);
        const Tensor w = Tensor::from_data(wh.data(), {N2, sh.C}, DType::F16);
        const Tensor b = Tensor::from_data(bv.data(), {N2}, DType::F32);
        bool two_pass = false;
        auto call = [&] { Tensor y = two_pass ? ops::geglu(ops::linear(x, w, b)) : ops::linear_geglu(x, w, b); };
        for (const bool t : {false, true}) {
            two_pass = t;
            call();  // the arena's blocks exist before the peak is read
            arena.reset_peak();
            const size_t base = arena.bytes_in_use();
            call();
            r.extra.emplace_back(std::string(sh.label) + (t ? "_peak_mib_two_pass" : "_peak_mib_default"),
                                 static_cast<double>(arena.peak_bytes() - base) / (1 << 20));
        }
        const double one = 2.0 * static_cast<double>(sh.M * N2 * sh.C);
        const int inner = std::max(1, static_cast<int>(4e9 / one));
        interleaved_ab(
            r, note, sh.label, "fused", "two_pass", "fused", true, one * inner, rounds, [&](bool t) { two_pass = t; },
            [&] {
                for (int i = 0; i < inner; ++i) call();
            });
    }
    r.note = note;
    return r;
}

ST2V_BENCH("peak", "fma_peak_avx2", peak_avx2);
ST2V_BENCH("peak", "fma_peak_avx512", peak_avx512);
ST2V_BENCH("ops", "gemm_f32_2048", gemm_f32_2048);
ST2V_BENCH("ops", "gemm_f16_2048", gemm_f16_2048);
ST2V_BENCH("ops", "gemm_f32_4096", gemm_f32_4096);
ST2V_BENCH("ops", "conv3x3_16x320x32x32", conv3x3_case);
ST2V_BENCH("ops", "conv3x3_16x320x32x32_im2col", conv3x3_im2col_case);
ST2V_BENCH("ops", "conv_temporal_32x128x32x32", conv_temporal_ab);
ST2V_BENCH("ops", "conv_batch_32x512x4x4", conv_batch_ab);
ST2V_BENCH("ops", "linear_direct_a_32768x128x128", linear_direct_a_ab);
ST2V_BENCH("ops", "tattn_short_5120x16x16_d64", attention_short_ab);
ST2V_BENCH("ops", "linear_geglu_32768x128", linear_geglu_ab);
ST2V_BENCH("ops", "conv3x3s2_16x320x32x32", conv3x3_s2_case);
ST2V_BENCH("ops", "conv3x3s2_16x32x128x128_o96", conv3x3_econd_case);
ST2V_BENCH("ops", "gemm_f32_2048_1thread", gemm_f32_2048_1thread);
ST2V_BENCH("ops", "gemm_2048_paired", gemm_2048_paired);
ST2V_BENCH("tuning", "gemm_avx512_sweep", gemm_avx512_sweep);
ST2V_BENCH("tuning", "gemm_avx2_sweep", gemm_avx2_sweep);

}  // namespace
}  // namespace st2v::bench

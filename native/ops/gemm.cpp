// GEMM: BLIS-style packed driver with register-blocked microkernels chosen at run time.
//
//   AVX-512F : 14 x 32 tile (28 zmm accumulators), KC 256, MC 70: on a 2-thread gemm 2048 on Intel Xeon (Sapphire
//              Rapids class, AVX-512 BF16) 0.84 of the FMA peak vs 0.72 for the earlier 6 x 32 / KC 256 / MC 144
//              (scripts/cpu-tune.sh, bench/results/cpu-tune-*.json; 6 / 12 / 14-row kernels stay selectable for tuning)
//   AVX2+FMA : 6 x 16 tile (12 ymm accumulators)
//   portable : gemm_portable (linear_conv.cpp) for plain gemm(); a 4 x 8 C++ tile for the packed driver
//
// Loop nest: jc (NC) -> pc (KC, pack B kc x nc) -> ic (MC, pack A mc x kc) -> jr (NR) -> ir (MR). Accumulators are
// named variables (g++ 12 spills arrays of vector accumulators to the stack). On several threads, per depth block
// the operand shared by all of C's blocks (B when C has more row panels than column panels, else A) is packed once
// by all threads together, then the threads take row blocks / column bands of C from a shared counter
// (gemm_shared_b / gemm_shared_a; set_gemm_dynamic(false) restores the older fixed bands, gemm_block per thread).
// Every element's depth blocks run in order whoever computes them, so the results are the same bits for any thread
// count. The epilogue (alpha, accumulate, bias_row/bias_col, SiLU / erf-GELU) is fused into the tile stores.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/cpu.h"
#include "core/half.h"
#include "core/simd_transpose.h"
#include "core/threadpool.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "ops/simd_simde_x512.h"

namespace st2v::ops {

void gemm_portable(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
                   const GemmEpilogue& ep);

namespace detail {
namespace {

// ---- conversion ------------------------------------------------------------------------------------
__attribute__((target("avx2,f16c"))) void f16_run_f16c(const uint16_t* s, int64_t n, float* d) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    for (; i < n; ++i) d[i] = f16_to_f32(s[i]);
}
void bf16_run(const uint16_t* s, int64_t n, float* d) {
    uint32_t* o = reinterpret_cast<uint32_t*>(d);
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<uint32_t>(s[i]) << 16;
}
inline float load_elem(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        default: return static_cast<const float*>(p)[i];
    }
}
inline const void* offset_ptr(const void* p, DType t, int64_t elems) {
    return static_cast<const char*>(p) + elems * static_cast<int64_t>(dtype_size(t));
}

// Packs R rows that are contiguous along depth (row r at src + r*rstride) into dst[k*R + i], 8 x 8 blocks
// transposed in registers (f16/bf16 widened on load). Rows >= nr are zero. Depth tail handled scalar.
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8_avx2(const void* p, DType dt) {
    if (dt == DType::F32) return _mm256_loadu_ps(static_cast<const float*>(p));
    const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(p));
    if (dt == DType::F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx2,fma,f16c"))) void pack_depth_contig_avx2(const void* data, DType dt, int64_t rstride,
                                                                     int64_t r0, int64_t nr, int64_t k0, int64_t kc,
                                                                     int R, float* dst) {
    const int64_t esz = static_cast<int64_t>(dtype_size(dt));
    const char* base = static_cast<const char*>(data) + (r0 * rstride + k0) * esz;
    const int64_t kfull = kc & ~int64_t(7);
    for (int i0 = 0; i0 < R; i0 += 8) {
        const int lanes = std::min(8, R - i0);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const char* rp[8];
        bool live[8];
        for (int j = 0; j < 8; ++j) {
            live[j] = j < lanes && i0 + j < nr;
            rp[j] = live[j] ? base + (i0 + j) * rstride * esz : nullptr;
        }
        for (int64_t k = 0; k < kfull; k += 8) {
            __m256 v[8];
            for (int j = 0; j < 8; ++j) v[j] = live[j] ? load8_avx2(rp[j] + k * esz, dt) : _mm256_setzero_ps();
            __m256 o[8];
            transpose8x8_ps(v, o);
            float* d = dst + k * R + i0;
            if (lanes == 8) {
                for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * R, o[q]);
            } else if (R < 8) {
                // One block of rows narrower than 8 (the 6-row AVX2 panels): full stores, each spilling into the
                // start of the next depth row, which the next store (or the depth tail) then overwrites; masked
                // stores (slow on AMD) only where the spill would leave the panel.
                for (int q = 0; q < 7; ++q) _mm256_storeu_ps(d + q * R, o[q]);
                if (k + 8 < kc) _mm256_storeu_ps(d + 7 * R, o[7]);
                else _mm256_maskstore_ps(d + 7 * R, mask, o[7]);
            } else {
                for (int q = 0; q < 8; ++q) _mm256_maskstore_ps(d + q * R, mask, o[q]);
            }
        }
        for (int64_t k = kfull; k < kc; ++k)
            for (int j = 0; j < lanes; ++j) {
                float x = 0.f;
                if (live[j]) {
                    const char* e = rp[j] + k * esz;
                    x = dt == DType::F32 ? *reinterpret_cast<const float*>(e)
                        : dt == DType::F16 ? f16_to_f32(*reinterpret_cast<const uint16_t*>(e))
                                           : bf16_to_f32(*reinterpret_cast<const uint16_t*>(e));
                }
                dst[k * R + i0 + j] = x;
            }
    }
}

// ---- scratch -----------------------------------------------------------------------------------------
struct FreeDeleter {
    void operator()(float* p) const { std::free(p); }
};
struct Scratch {
    std::unique_ptr<float, FreeDeleter> p;
    size_t cap = 0;
    float* get(size_t n) {
        if (n > cap) {
            size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
            void* q = std::aligned_alloc(64, bytes);
            ST2V_CHECK(q != nullptr, Code::kOutOfMemory, "gemm: cannot allocate %zu bytes of scratch", bytes);
            p.reset(static_cast<float*>(q));
            cap = n;
        }
        return p.get();
    }
};
thread_local Scratch t_pack_a, t_pack_b, t_tmp;

// ---- epilogue ------------------------------------------------------------------------------------------
// The bias of element (i, j) of a tile, as the microkernels add it: bcol[j] + brow[i] (either may be null).
inline float tile_bias(const float* bcol, const float* brow, int64_t i, int64_t j) {
    return (bcol ? bcol[j] : 0.f) + (brow ? brow[i] : 0.f);
}
// The activation on a finished tile region (the microkernel added the bias with its last store).
void activate_region(float* C, int64_t ldc, int64_t m0, int64_t mr, int64_t n0, int64_t nr, Act act) {
    for (int64_t i = 0; i < mr; ++i) {
        float* r = C + (m0 + i) * ldc + n0;
        for (int64_t j = 0; j < nr; ++j) r[j] = act_apply(r[j], act);
    }
}
// Bias and activation on a whole region (the K = 0 case of gemm_packed).
void finish_region(float* C, int64_t ldc, int64_t m0, int64_t mr, int64_t n0, int64_t nr, const GemmEpilogue& ep) {
    if (!ep.bias_col && !ep.bias_row && ep.act == Act::kNone) return;
    for (int64_t i = 0; i < mr; ++i) {
        float* r = C + (m0 + i) * ldc + n0;
        const float br = ep.bias_row ? ep.bias_row[m0 + i] : 0.f;
        if (ep.bias_col) {
            const float* bc = ep.bias_col + n0;
            for (int64_t j = 0; j < nr; ++j) r[j] += bc[j] + br;
        } else if (br != 0.f) {
            for (int64_t j = 0; j < nr; ++j) r[j] += br;
        }
    }
    if (ep.act != Act::kNone) activate_region(C, ldc, m0, mr, n0, nr, ep.act);
}

// ---- microkernels: c (ldc) = alpha * acc (+ c if add) (+ tile_bias when bcol or brow is non-null) over a full
// MR x NR tile ----------------------------------------------------------------------------------------------------
using KernFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, int add,
                        const float* bcol, const float* brow);
// The same contract with A read in place: row i of the tile at a + i * lda, depth contiguous.
using RowKernFn = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, float alpha,
                           int add, const float* bcol, const float* brow);

#define ST2V_ROW2(i, src)                                  \
    t = _mm256_broadcast_ss(src);                          \
    c##i##0 = _mm256_fmadd_ps(t, b0, c##i##0);             \
    c##i##1 = _mm256_fmadd_ps(t, b1, c##i##1);
#define ST2V_ST2(i)                                                                                        \
    {                                                                                                      \
        float* r = c + i * ldc;                                                                            \
        __m256 v0 = add ? _mm256_fmadd_ps(va, c##i##0, _mm256_loadu_ps(r)) : _mm256_mul_ps(va, c##i##0);     \
        __m256 v1 = add ? _mm256_fmadd_ps(va, c##i##1, _mm256_loadu_ps(r + 8)) : _mm256_mul_ps(va, c##i##1); \
        if (bias) {                                                                                        \
            const __m256 bi = _mm256_set1_ps(brow ? brow[i] : 0.f);                                        \
            v0 = _mm256_add_ps(v0, _mm256_add_ps(bc0, bi));                                                \
            v1 = _mm256_add_ps(v1, _mm256_add_ps(bc1, bi));                                                \
        }                                                                                                  \
        _mm256_storeu_ps(r, v0);                                                                           \
        _mm256_storeu_ps(r + 8, v1);                                                                       \
    }

// The 6 x 16 tile. kRowA = false: A packed (a[k*6 + i]); kRowA = true: A read in place, row i at a + i*lda, depth
// contiguous (a row-major f32 operand: no packing pass; see DirectA). Same FMAs in the same order either way.
template <bool kRowA>
__attribute__((target("avx2,fma"), always_inline)) inline void kern_avx2_6x16_t(
    int64_t kc, const float* __restrict a, int64_t lda, const float* __restrict b, float* c, int64_t ldc, float alpha,
    int add, const float* bcol, const float* brow) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
           c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
           c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
           c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int i = 0; i < 6; ++i) {  // C rows are far apart (ldc): fetch them while the k loop runs
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
    }
    // No software prefetch in the k loop: the B micro-panel is reused by every row panel of the block, and a
    // prefetch of b + 256 per step (one more memory op per 12 FMAs) measured 1.3-5 % slower on 2 threads over
    // the step's linear shapes and GEMM 2048 (alternating, one process; docs/native.md).
    // Unrolled 8 deep, not 4: hot operands, 2 threads, kc 512, paired with the FMA probe, 3 runs: 0.986 / 0.924 / 0.967
    // of the peak vs 0.894 / 0.898 / 0.965 (1 thread 0.98-1.01 vs 0.96); GEMM 2048 f32 u8 / u4 paired over 21-61
    // rounds: 1.021, 1.008, 1.015, 1.003 (2 threads), 1.014 (1 thread); f16 weights 1.004. Same bits (same k order).
    if constexpr (kRowA) {
        const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
#pragma GCC unroll 8
        for (int64_t k = 0; k < kc; ++k) {
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            __m256 t;
            ST2V_ROW2(0, a0 + k) ST2V_ROW2(1, a1 + k) ST2V_ROW2(2, a2 + k)
            ST2V_ROW2(3, a3 + k) ST2V_ROW2(4, a4 + k) ST2V_ROW2(5, a5 + k)
            b += 16;
        }
    } else {
#pragma GCC unroll 8
        for (int64_t k = 0; k < kc; ++k) {
            const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
            __m256 t;
            ST2V_ROW2(0, a + 0) ST2V_ROW2(1, a + 1) ST2V_ROW2(2, a + 2)
            ST2V_ROW2(3, a + 3) ST2V_ROW2(4, a + 4) ST2V_ROW2(5, a + 5)
            a += 6;
            b += 16;
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const bool bias = bcol || brow;
    const __m256 bc0 = bcol ? _mm256_loadu_ps(bcol) : _mm256_setzero_ps(),
                 bc1 = bcol ? _mm256_loadu_ps(bcol + 8) : _mm256_setzero_ps();
    ST2V_ST2(0) ST2V_ST2(1) ST2V_ST2(2) ST2V_ST2(3) ST2V_ST2(4) ST2V_ST2(5)
}
#undef ST2V_ROW2
#undef ST2V_ST2
__attribute__((target("avx2,fma"))) void kern_avx2_6x16(int64_t kc, const float* __restrict a,
                                                        const float* __restrict b, float* c, int64_t ldc,
                                                        float alpha, int add, const float* bcol,
                                                        const float* brow) {
    kern_avx2_6x16_t<false>(kc, a, 0, b, c, ldc, alpha, add, bcol, brow);
}
// A in place: rows at a + i*lda (RowKernFn).
__attribute__((target("avx2,fma"))) void kern_avx2_6x16_rows(int64_t kc, const float* __restrict a, int64_t lda,
                                                             const float* __restrict b, float* c, int64_t ldc,
                                                             float alpha, int add, const float* bcol,
                                                             const float* brow) {
    kern_avx2_6x16_t<true>(kc, a, lda, b, c, ldc, alpha, add, bcol, brow);
}

#define ST2V_KTGT __attribute__((target("avx512f")))
#define ST2V_X(name) _mm512_##name
#define ST2V_XT(name) __##name
#define ST2V_KNAME kern_avx512_6x32
#define ST2V_KROWS 6
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#define ST2V_KNAME kern_avx512_12x32
#define ST2V_KROWS 12
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#define ST2V_KNAME kern_avx512_14x32
#define ST2V_KROWS 14
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#undef ST2V_KTGT
#undef ST2V_X
#undef ST2V_XT

// Portable 4 x 8 tile (plain C++; the compiler vectorises the inner j loops with the baseline ISA).
void kern_portable_4x8(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                       float alpha, int add, const float* bcol, const float* brow) {
    float acc[4][8] = {};
    for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
        a += 4;
        b += 8;
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 8; ++j) {
            float v = alpha * acc[i][j] + (add ? c[i * ldc + j] : 0.f);
            if (bcol || brow) v += tile_bias(bcol, brow, i, j);
            c[i * ldc + j] = v;
        }
}

// Tests only (gemm_internal.h, set_gemm_emulated_wide): the AVX-512 blocking (R x 32 tiles, KC, MC as tuned) on
// CPUs without AVX-512. With SIMDe at build time the kernels are kern_avx512_<R>x32's own text over SIMDe's
// portable intrinsics (ops/simd_simde_x512.h); without it, plain C++ R x 32 kernels with the same contract.
#ifdef ST2V_SIMD_HAVE_SIMDE
#define ST2V_KTGT __attribute__((target("avx2,fma")))
#define ST2V_X(name) st2v_x512_##name
#define ST2V_XT(name) simde__##name
#define ST2V_KNAME kern_emu_6x32
#define ST2V_KROWS 6
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#define ST2V_KNAME kern_emu_12x32
#define ST2V_KROWS 12
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#define ST2V_KNAME kern_emu_14x32
#define ST2V_KROWS 14
#include "ops/gemm_kern_x32.inc"
#undef ST2V_KNAME
#undef ST2V_KROWS
#undef ST2V_KTGT
#undef ST2V_X
#undef ST2V_XT
constexpr const char* kEmuWideKind = "AVX-512 kernel over SIMDe";
#else
template <int R>
__attribute__((target("avx2,fma"))) void kern_emu_rx32(int64_t kc, const float* __restrict a,
                                                       const float* __restrict b, float* c, int64_t ldc,
                                                       float alpha, int add, const float* bcol, const float* brow) {
    float acc[R][32] = {};
    for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < 32; ++j) acc[i][j] += a[i] * b[j];
        a += R;
        b += 32;
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < 32; ++j) {
            float v = alpha * acc[i][j] + (add ? c[i * ldc + j] : 0.f);
            if (bcol || brow) v += tile_bias(bcol, brow, i, j);
            c[i * ldc + j] = v;
        }
}
constexpr KernFn kern_emu_6x32 = kern_emu_rx32<6>, kern_emu_12x32 = kern_emu_rx32<12>,
                 kern_emu_14x32 = kern_emu_rx32<14>;
constexpr const char* kEmuWideKind = "plain C++ R x 32 kernel (SIMDe not found at build time)";
#endif
std::atomic<bool> g_emulated_wide{false};
std::atomic<bool> g_dynamic{true};

// The AVX-512 level's blocking (gemm_internal.h: set_gemm_wide_tuning, for the tests and the tuning bench).
constexpr GemmWideTuning kWideDefault{};
std::atomic<int> g_wide_rows{kWideDefault.rows}, g_wide_a_outer{kWideDefault.a_outer ? 1 : 0};
std::atomic<int64_t> g_wide_kc{kWideDefault.KC}, g_wide_mc{kWideDefault.MC}, g_wide_nc{kWideDefault.NC};

// The AVX2 level's blocking (6 x 16 kernel; gemm_internal.h: set_gemm_avx2_blocking, for the tests and the bench).
// KC 512 / MC 192 measured best on Zen 3 (halves the C read-modify-write passes of KC 256).
std::atomic<int64_t> g_avx2_kc{512}, g_avx2_mc{192}, g_avx2_nc{3072};

struct Config {
    KernFn kern;
    int MR, NR;
    int64_t KC, MC, NC;
    bool a_outer = false;  // ir outside jr: the A micro-panel stays in L1 while B micro-panels stream
    RowKernFn kern_rows = nullptr;  // the kernel reading A in place (DirectA), where the level has one
};
Config wide_config(bool emulated) {
    const int rows = g_wide_rows.load(std::memory_order_relaxed);
    KernFn k = rows == 14 ? (emulated ? kern_emu_14x32 : kern_avx512_14x32)
               : rows == 12 ? (emulated ? kern_emu_12x32 : kern_avx512_12x32)
                            : (emulated ? kern_emu_6x32 : kern_avx512_6x32);
    return {k, rows, 32, g_wide_kc.load(std::memory_order_relaxed), g_wide_mc.load(std::memory_order_relaxed),
            g_wide_nc.load(std::memory_order_relaxed), g_wide_a_outer.load(std::memory_order_relaxed) != 0};
}
Config config_for(Isa isa) {
    if (isa == Isa::kAvx2 && g_emulated_wide.load(std::memory_order_relaxed)) return wide_config(true);
    switch (isa) {
        case Isa::kAvx512: return wide_config(false);
        case Isa::kAvx2:
            return {kern_avx2_6x16, 6, 16, g_avx2_kc.load(std::memory_order_relaxed),
                    g_avx2_mc.load(std::memory_order_relaxed), g_avx2_nc.load(std::memory_order_relaxed), false,
                    kern_avx2_6x16_rows};
        default: return {kern_portable_4x8, 4, 8, 256, 128, 2048};
    }
}

// A row-major f32 operand read in place by the level's kern_rows instead of being packed: A contiguous along depth
// (pack_mat source, f32, dstride 1) in a shallow GEMM of one depth block (K <= 256) whose packed B block fits L2
// (K * N floats <= 512 KB). A tile's six rows are then six runs of K floats lda apart, and macro_block keeps each A
// micro-panel in L1 across the whole B block while it fetches the next panel's rows. Row panels with fewer than MR
// rows are still packed (the kernel reads MR whole rows). At depth 128 the packing pass was ~18 % of the GEMM (rdtsc
// per phase, 32768 x 128 x 128). Packed time / in-place time, 2 threads, f16 weights, alternating, 21 rounds, two
// runs: 32768x128x128 1.28 / 1.26, 32768x384x128 1.04 / 1.15, 32768x1024x128 1.14 / 0.99, 8192x256x256 1.04 / 1.08;
// outside the rule it lost or drew: 512x512x512 0.97 / 0.96, 2048x512x512 0.96 / 1.04, 8192x768x256 1.02 / 0.96,
// 2048x1536x512 0.98 / 0.99 (docs/native.md). Same FMAs in the same order as the packed path: the same bits.
struct DirectA {
    const float* data = nullptr;
    int64_t lda = 0;
};
std::atomic<bool> g_direct_a{winograd_mode_from_env("ST2V_GEMM_DIRECT_A") != WinogradMode::kOff};  // off / 0: always pack
constexpr int64_t kDirectAMaxK = 256, kDirectABlockBytes = 512 * 1024;
DirectA direct_a_of(const Config& cf, PackSrc a, int64_t N, int64_t K) {
    if (!cf.kern_rows || a.fn != pack_mat || K > std::min(cf.KC, kDirectAMaxK) ||
        K * std::min(N, cf.NC) * static_cast<int64_t>(sizeof(float)) > kDirectABlockBytes ||
        !g_direct_a.load(std::memory_order_relaxed))
        return {};
    const MatPack& m = *static_cast<const MatPack*>(a.ctx);
    if (m.dtype != DType::F32 || m.dstride != 1) return {};
    return {static_cast<const float*>(m.data), m.rstride};
}

// The macro-kernel: C rows [ic, ic+mc) x cols [jc, jc+nc) over depth block [pc, pc+kc) from A packed in pa (row
// micro-panels of MR rows, kc deep; with da, only a last panel of fewer than MR rows is in pa and the full panels are
// read in place) and B packed in pb (micro-panels of NR columns).
struct Block {
    int64_t ic, mc, jc, nc, pc, kc;
    bool first, last;
};
void macro_block(const Config& cf, const Block& bk, const float* pa, const float* pb, float* tmp, float* C,
                 int64_t ldc, const GemmEpilogue& ep, const DirectA& da = {}) {
    const int MR = cf.MR, NR = cf.NR;
    const int64_t ic = bk.ic, mc = bk.mc, jc = bk.jc, nc = bk.nc, kc = bk.kc;
    const int add = (!bk.first || ep.accumulate) ? 1 : 0;
    auto tile = [&](int64_t ir, int64_t jr) {
        const int64_t mr = std::min<int64_t>(MR, mc - ir), nr = std::min<int64_t>(NR, nc - jr);
        float* ct = C ? C + (ic + ir) * ldc + jc + jr : nullptr;  // null only with a tile_sink and one depth block
        // the bias goes in with the last depth block's store; an activation after it (activate_region)
        const float* bcol = bk.last && ep.bias_col ? ep.bias_col + jc + jr : nullptr;
        const float* brow = bk.last && ep.bias_row ? ep.bias_row + ic + ir : nullptr;
        const bool direct = da.data && mr == MR;
        const float* ap = direct ? da.data + (ic + ir) * da.lda + bk.pc : pa + ir * kc;
        auto kern = [&](float* dst, int64_t ld, int acc, const float* bc, const float* br) {
            if (direct) cf.kern_rows(kc, ap, da.lda, pb + jr * kc, dst, ld, ep.alpha, acc, bc, br);
            else cf.kern(kc, ap, pb + jr * kc, dst, ld, ep.alpha, acc, bc, br);
        };
        // A partial tile (or one the kernel cannot finish in place): the kernel's product into tmp, then C's partial
        // sum and the bias added in the kernels' order, element by element, into dst (C, or tmp itself for a sink).
        auto finish_scalar = [&](float* dst, int64_t ld) {
            kern(tmp, NR, 0, nullptr, nullptr);
            for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j) {
                    float v = add ? ct[i * ldc + j] + tmp[i * NR + j] : tmp[i * NR + j];
                    if (bcol || brow) v += tile_bias(bcol, brow, i, j);
                    dst[i * ld + j] = v;
                }
        };
        if (bk.last && ep.tile_sink) {
            // the tile's final values into tmp (the same operations, in the same order, as the stores into C below),
            // then to the sink
            if (nr == NR && (mr == MR || !brow)) {  // the kernel reads MR entries of brow
                if (add)
                    for (int64_t i = 0; i < mr; ++i) std::memcpy(tmp + i * NR, ct + i * ldc, sizeof(float) * NR);
                kern(tmp, NR, add, bcol, brow);
            } else {
                finish_scalar(tmp, NR);
            }
            ep.tile_sink(ep.sink_ctx, tmp, NR, ic + ir, mr, jc + jr, nr);
            return;
        }
        if (mr == MR && nr == NR) kern(ct, ldc, add, bcol, brow);
        else finish_scalar(ct, ldc);
        if (bk.last && ep.act != Act::kNone) activate_region(C, ldc, ic + ir, mr, jc + jr, nr, ep.act);
    };
    if (da.data) {
        // A read in place: each A micro-panel stays in L1 across all B micro-panels of the block (the packed B block
        // is at most kDirectABlockBytes, in L2), and the next panel's rows are fetched meanwhile, a share per tile
        // (they come from memory: no packing pass brought them in).
        const int64_t njr = (nc + NR - 1) / NR, row_lines = (kc * static_cast<int64_t>(sizeof(float)) + 63) / 64,
                      lines = MR * row_lines, per = (lines + njr - 1) / njr;
        for (int64_t ir = 0; ir < mc; ir += MR) {
            const float* next = da.data + (ic + ir + MR) * da.lda + bk.pc;  // the next panel's first row
            const bool fetch = ir + 2 * MR <= mc;
            int64_t l = 0;
            for (int64_t jr = 0; jr < nc; jr += NR) {
                if (fetch)
                    for (const int64_t e = std::min(lines, l + per); l < e; ++l)
                        _mm_prefetch(reinterpret_cast<const char*>(next + (l / row_lines) * da.lda) + (l % row_lines) * 64,
                                     _MM_HINT_T0);
                tile(ir, jr);
            }
        }
    } else if (cf.a_outer) {
        for (int64_t ir = 0; ir < mc; ir += MR)
            for (int64_t jr = 0; jr < nc; jr += NR) tile(ir, jr);
    } else {
        for (int64_t jr = 0; jr < nc; jr += NR)
            for (int64_t ir = 0; ir < mc; ir += MR) tile(ir, jr);
    }
}

struct Blocking {
    int64_t KC, MC;
};
Blocking blocking_for(const Config& cf, int64_t K) {
    // whole row panels in MC, so ic stays panel-aligned
    return {std::min<int64_t>(cf.KC, K), std::max<int64_t>(cf.MR, cf.MC / cf.MR * cf.MR)};
}
// A prepacked A (conv weights over a batch) is read in place: its blocks are already in the driver's panel layout.
const PrepackedA* prepacked_of(PackSrc a) {
    return a.fn == pack_prepacked ? static_cast<const PrepackedA*>(a.ctx) : nullptr;
}
void check_prepacked(const PrepackedA* pre, const Config& cf, int64_t KC, int64_t m0) {
    ST2V_CHECK(!pre || (pre->MR == cf.MR && pre->KC == KC && m0 % cf.MR == 0), Code::kInternal,
               "gemm: prepacked A used with another blocking (ISA changed?)");
}
// Rows [ic, ic+mc) of A over depth block [pc, pc+kc), packed: read in place from a PrepackedA, else packed into dst.
// With da (DirectA) only a last row panel of fewer than MR rows is packed (at its place in dst).
const float* a_block(const Config& cf, PackSrc a, const PrepackedA* pre, int64_t ic, int64_t mc, int64_t pc,
                     int64_t kc, float* dst, const DirectA& da = {}) {
    if (pre) return pre->data() + pc * pre->Mpad + ic * kc;
    for (int64_t ir = da.data ? mc / cf.MR * cf.MR : 0; ir < mc; ir += cf.MR)
        a.fn(a.ctx, ic + ir, std::min<int64_t>(cf.MR, mc - ir), pc, kc, cf.MR, dst + ir * kc);
    return dst;
}
void pack_b_panels(const Config& cf, PackSrc b, int64_t jc, int64_t nc, int64_t pc, int64_t kc, int64_t p0,
                   int64_t p1, float* pb) {
    for (int64_t p = p0; p < p1; ++p)
        b.fn(b.ctx, jc + p * cf.NR, std::min<int64_t>(cf.NR, nc - p * cf.NR), pc, kc, cf.NR, pb + p * cf.NR * kc);
}

// One thread's block of C: rows [m0, m1), cols [n0, n1).
void gemm_block(const Config& cf, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, PackSrc a, PackSrc b,
                float* C, int64_t ldc, const GemmEpilogue& ep) {
    const int MR = cf.MR, NR = cf.NR;
    const auto [KC, MC] = blocking_for(cf, K);
    const int64_t ncmax = std::min<int64_t>(cf.NC, ((n1 - n0 + NR - 1) / NR) * NR);
    const int64_t mcmax = std::min<int64_t>(MC, ((m1 - m0 + MR - 1) / MR) * MR);
    const PrepackedA* pre = prepacked_of(a);
    check_prepacked(pre, cf, KC, m0);
    const DirectA da = direct_a_of(cf, a, n1 - n0, K);
    float* pb = t_pack_b.get(static_cast<size_t>(KC * ncmax));
    float* pa_buf = pre ? nullptr : t_pack_a.get(static_cast<size_t>(KC * mcmax));
    float* tmp = t_tmp.get(static_cast<size_t>(MR * NR));
    for (int64_t jc = n0; jc < n1; jc += cf.NC) {
        const int64_t nc = std::min<int64_t>(cf.NC, n1 - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min<int64_t>(KC, K - pc);
            pack_b_panels(cf, b, jc, nc, pc, kc, 0, (nc + NR - 1) / NR, pb);
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = std::min<int64_t>(MC, m1 - ic);
                macro_block(cf, {ic, mc, jc, nc, pc, kc, pc == 0, pc + kc == K},
                            a_block(cf, a, pre, ic, mc, pc, kc, pa_buf, da), pb, tmp, C, ldc, ep, da);
            }
        }
    }
}

// Guided self-scheduling over [0, total): claims [*begin, *begin + *len), a 1/(2 * threads) share of what is left
// rounded up to whole `step`s, at least min_len and at most max_len (both multiples of step), never past total.
// False when nothing is left. Which thread gets which range varies from run to run; what a range computes does not.
bool guided_claim(std::atomic<int64_t>& next, int64_t total, int64_t threads, int64_t step, int64_t min_len,
                  int64_t max_len, int64_t* begin, int64_t* len) {
    int64_t i = next.load(std::memory_order_relaxed);
    for (;;) {
        if (i >= total) return false;
        const int64_t share = (total - i + 2 * threads - 1) / (2 * threads);
        const int64_t want = std::max<int64_t>(min_len, (share + step - 1) / step * step);
        const int64_t n = std::min<int64_t>({want, max_len, total - i});
        if (next.compare_exchange_weak(i, i + n, std::memory_order_relaxed)) {
            *begin = i;
            *len = n;
            return true;
        }
    }
}

// All threads of the pool on one C with more row panels than column panels: per depth block the threads pack B
// once into one shared buffer (each a share of its micro-panels), then take row blocks of C from a shared counter
// (MC rows while much is left, then smaller blocks, so a thread that lost its core for a while leaves the rest to
// the others) and pack their own A for each. Each element's depth blocks still run in order (one region per
// block), so the bits are gemm_block's for any thread count.
void gemm_shared_b(const Config& cf, ThreadPool& pool, int64_t M, int64_t N, int64_t K, PackSrc a, PackSrc b,
                   float* C, int64_t ldc, const GemmEpilogue& ep) {
    const int MR = cf.MR, NR = cf.NR;
    const auto [KC, MC] = blocking_for(cf, K);
    const int64_t ncmax = std::min<int64_t>(cf.NC, ((N + NR - 1) / NR) * NR);
    const int64_t mcmax = std::min<int64_t>(MC, ((M + MR - 1) / MR) * MR);
    const PrepackedA* pre = prepacked_of(a);
    check_prepacked(pre, cf, KC, 0);
    const DirectA da = direct_a_of(cf, a, N, K);
    float* pb = t_pack_b.get(static_cast<size_t>(KC * ncmax));  // the calling thread's, shared for the call
    const int64_t threads = pool.size();
    for (int64_t jc = 0; jc < N; jc += cf.NC) {
        const int64_t nc = std::min<int64_t>(cf.NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min<int64_t>(KC, K - pc);
            pool.parallel_for((nc + NR - 1) / NR,
                              [&](int64_t p0, int64_t p1, int) { pack_b_panels(cf, b, jc, nc, pc, kc, p0, p1, pb); });
            std::atomic<int64_t> next{0};
            pool.run_on_all([&](int) {
                float* pa_buf = pre ? nullptr : t_pack_a.get(static_cast<size_t>(KC * mcmax));
                float* tmp = t_tmp.get(static_cast<size_t>(MR * NR));
                int64_t ic, mc;
                while (guided_claim(next, M, threads, MR, MR, MC, &ic, &mc))
                    macro_block(cf, {ic, mc, jc, nc, pc, kc, pc == 0, pc + kc == K},
                                a_block(cf, a, pre, ic, mc, pc, kc, pa_buf, da), pb, tmp, C, ldc, ep, da);
            });
        }
    }
}

// The same with the roles swapped, for a C with at least as many column panels as row panels (convolutions: the
// output channels are the rows): per depth block the threads pack all rows of A once into one shared buffer (or
// read a PrepackedA in place), then take column bands of C from a shared counter, each packing its own band of B
// and running every row block over it.
void gemm_shared_a(const Config& cf, ThreadPool& pool, int64_t M, int64_t N, int64_t K, PackSrc a, PackSrc b,
                   float* C, int64_t ldc, const GemmEpilogue& ep) {
    const int MR = cf.MR, NR = cf.NR;
    const auto [KC, MC] = blocking_for(cf, K);
    const int64_t Mpad = (M + MR - 1) / MR * MR, ncmax = std::min<int64_t>(cf.NC, (N + NR - 1) / NR * NR);
    const PrepackedA* pre = prepacked_of(a);
    check_prepacked(pre, cf, KC, 0);
    float* pa_all = pre ? nullptr : t_pack_a.get(static_cast<size_t>(KC * Mpad));  // the caller's, shared
    const int64_t threads = pool.size();
    for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min<int64_t>(KC, K - pc);
        const float* pa = pre ? pre->data() + pc * pre->Mpad : pa_all;
        if (!pre)
            pool.parallel_for(Mpad / MR, [&](int64_t p0, int64_t p1, int) {
                a_block(cf, a, nullptr, p0 * MR, std::min<int64_t>(M, p1 * MR) - p0 * MR, pc, kc, pa_all + p0 * MR * kc);
            });
        std::atomic<int64_t> next{0};
        pool.run_on_all([&](int) {
            float* pb = t_pack_b.get(static_cast<size_t>(KC * ncmax));
            float* tmp = t_tmp.get(static_cast<size_t>(MR * NR));
            int64_t jc, nc;
            while (guided_claim(next, N, threads, NR, NR, cf.NC, &jc, &nc)) {
                pack_b_panels(cf, b, jc, nc, pc, kc, 0, (nc + NR - 1) / NR, pb);
                for (int64_t ic = 0; ic < M; ic += MC)
                    macro_block(cf, {ic, std::min<int64_t>(MC, M - ic), jc, nc, pc, kc, pc == 0, pc + kc == K},
                                pa + ic * kc, pb, tmp, C, ldc, ep);
            }
        });
    }
}

}  // namespace

bool set_gemm_emulated_wide(bool on) { return g_emulated_wide.exchange(on); }
bool set_gemm_dynamic(bool on) { return g_dynamic.exchange(on); }
bool set_gemm_direct_a(bool on) { return g_direct_a.exchange(on); }
bool gemm_direct_a_applies(int64_t N, int64_t K, const MatRef& A) {
    if (active_isa() == Isa::kPortable) return false;  // gemm() takes gemm_portable there
    const MatPack pa{A.data, A.dtype, A.rs, A.cs};
    return direct_a_of(config_for(active_isa()), {pack_mat, &pa}, N, K).data != nullptr;
}

GemmAvx2Blocking gemm_avx2_blocking() { return {g_avx2_kc.load(), g_avx2_mc.load(), g_avx2_nc.load()}; }
GemmAvx2Blocking set_gemm_avx2_blocking(const GemmAvx2Blocking& b) {
    ST2V_CHECK_ARG(b.KC >= 1 && b.KC <= 4096 && b.MC >= 6 && b.MC <= 8192 && b.NC >= 16 && b.NC <= 65536,
                   "gemm blocking: KC %lld / MC %lld / NC %lld out of range", static_cast<long long>(b.KC),
                   static_cast<long long>(b.MC), static_cast<long long>(b.NC));
    const GemmAvx2Blocking old = gemm_avx2_blocking();
    g_avx2_kc = b.KC;
    g_avx2_mc = b.MC;
    g_avx2_nc = b.NC;
    return old;
}

GemmWideTuning gemm_wide_tuning() {
    GemmWideTuning t;
    t.rows = g_wide_rows.load();
    t.KC = g_wide_kc.load();
    t.MC = g_wide_mc.load();
    t.NC = g_wide_nc.load();
    t.a_outer = g_wide_a_outer.load() != 0;
    return t;
}
GemmWideTuning set_gemm_wide_tuning(const GemmWideTuning& t) {
    ST2V_CHECK_ARG(t.rows == 6 || t.rows == 12 || t.rows == 14, "gemm tuning: rows must be 6, 12 or 14 (got %d)",
                   t.rows);
    ST2V_CHECK_ARG(t.KC >= 1 && t.KC <= 4096 && t.MC >= t.rows && t.MC <= 8192 && t.NC >= 32 && t.NC <= 65536,
                   "gemm tuning: KC %lld / MC %lld / NC %lld out of range", static_cast<long long>(t.KC),
                   static_cast<long long>(t.MC), static_cast<long long>(t.NC));
    const GemmWideTuning old = gemm_wide_tuning();
    g_wide_rows = t.rows;
    g_wide_kc = t.KC;
    g_wide_mc = t.MC;
    g_wide_nc = t.NC;
    g_wide_a_outer = t.a_outer ? 1 : 0;
    return old;
}
const char* gemm_emulated_wide_kind() { return kEmuWideKind; }

void convert_run(const void* src, DType dt, int64_t n, float* dst) {
    switch (dt) {
        case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
        case DType::F16:
            if (cpu_features().f16c && cpu_features().avx2) f16_run_f16c(static_cast<const uint16_t*>(src), n, dst);
            else for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]);
            return;
        case DType::BF16: bf16_run(static_cast<const uint16_t*>(src), n, dst); return;
        default: ST2V_THROW(Code::kDtype, "gemm: operand dtype %s is not f32/f16/bf16", dtype_name(dt));
    }
}

// dst[k * R + j] = src[k * stride + j] for k < n, j < R (R = 16 or 32): whole rows of an f32 matrix into an R-wide
// panel (the B micro-panels of the AVX2 / AVX-512 levels) in registers, not one memcpy call per row (measured on
// the Winograd convolutions' 16 GEMMs, whose B is row-major: 1.08-1.16x for the whole convolution).
__attribute__((target("avx2"))) void copy_rows_avx2(const float* src, int64_t stride, int64_t n, int R, float* dst) {
    for (int64_t k = 0; k < n; ++k, src += stride, dst += R)
        for (int j = 0; j < R; j += 8) _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
}

void pack_mat(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const MatPack& m = *static_cast<const MatPack*>(ctx);
    if (m.rstride == 1 && m.dtype == DType::F32 && nr == R && (R == 16 || R == 32) && cpu_features().avx2) {
        copy_rows_avx2(static_cast<const float*>(m.data) + k0 * m.dstride + r0, m.dstride, kc, R, dst);
        return;
    }
    if (m.rstride == 1) {
        // contiguous along rows: one run of nr per depth step
        for (int64_t k = 0; k < kc; ++k) {
            float* d = dst + k * R;
            convert_run(offset_ptr(m.data, m.dtype, (k0 + k) * m.dstride + r0), m.dtype, nr, d);
            for (int64_t i = nr; i < R; ++i) d[i] = 0.f;
        }
        return;
    }
    if (m.dstride == 1 && active_isa() != Isa::kPortable) {
        pack_depth_contig_avx2(m.data, m.dtype, m.rstride, r0, nr, k0, kc, R, dst);
        return;
    }
    if (m.dstride == 1) {
        // contiguous along depth: widen each row's run, then scatter it into the panel
        float buf[512];
        for (int64_t i = 0; i < nr; ++i) {
            const void* src = offset_ptr(m.data, m.dtype, (r0 + i) * m.rstride + k0);
            for (int64_t k = 0; k < kc; k += 512) {
                const int64_t n = std::min<int64_t>(512, kc - k);
                convert_run(offset_ptr(src, m.dtype, k), m.dtype, n, buf);
                float* d = dst + k * R + i;
                for (int64_t t = 0; t < n; ++t) d[t * R] = buf[t];
            }
        }
        for (int64_t i = nr; i < R; ++i)
            for (int64_t k = 0; k < kc; ++k) dst[k * R + i] = 0.f;
        return;
    }
    for (int64_t k = 0; k < kc; ++k) {
        float* d = dst + k * R;
        for (int64_t i = 0; i < nr; ++i) d[i] = load_elem(m.data, m.dtype, (r0 + i) * m.rstride + (k0 + k) * m.dstride);
        for (int64_t i = nr; i < R; ++i) d[i] = 0.f;
    }
}

GemmTileBlocking gemm_blocking(int64_t K) {
    const Config cf = config_for(active_isa());
    return {cf.MR, cf.NR, std::min<int64_t>(cf.KC, std::max<int64_t>(K, 1))};
}

void prepack_a(int64_t M, int64_t K, const PackSrc& a, PrepackedA* out) {
    const GemmTileBlocking tb = gemm_blocking(K);
    out->MR = tb.MR;
    out->KC = tb.KC;
    const int MR = out->MR;
    out->Mpad = (M + MR - 1) / MR * MR;
    out->buf = Tensor::empty({out->Mpad * K});  // every element is written below (packers zero rows >= M)
    // (depth block, row panel) pairs over the pool: the buffer comes from the caller's arena, the copies are shared
    const int64_t KC = out->KC, Mpad = out->Mpad, panels = Mpad / MR, blocks = (K + KC - 1) / KC;
    float* buf = out->buf.f32();
    parallel_for(blocks * panels, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
            const int64_t pc = i / panels * KC, r0 = i % panels * MR, kc = std::min<int64_t>(KC, K - pc);
            a.fn(a.ctx, r0, std::min<int64_t>(MR, M - r0), pc, kc, MR, buf + pc * Mpad + r0 * kc);
        }
    });
}

void pack_prepacked(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const PrepackedA& p = *static_cast<const PrepackedA*>(ctx);
    ST2V_CHECK(R == p.MR && r0 % p.MR == 0 && k0 % p.KC == 0, Code::kInternal,
               "gemm: prepacked A used with another blocking (ISA changed?)");
    std::memcpy(dst, p.data() + k0 * p.Mpad + r0 * kc, static_cast<size_t>(kc * R) * sizeof(float));
}

double gemm_kernel_hot_flops(int64_t calls, float* c00) {
    const Config cf = config_for(active_isa());
    const int64_t kc = cf.KC;
    // Separate scratch from the driver's (t_pack_a/b), so a bench run leaves the GEMM's buffers as they were.
    thread_local Scratch hot;
    const int64_t a_len = (kc * cf.MR + 15) / 16 * 16, b_len = (kc * cf.NR + 15) / 16 * 16;  // 64-byte aligned
    float* a = hot.get(static_cast<size_t>(a_len + b_len + cf.MR * cf.NR));
    float* b = a + a_len;
    float* c = b + b_len;
    for (int64_t i = 0; i < kc * cf.MR; ++i) a[i] = 1e-3f * static_cast<float>(i % 7);
    for (int64_t i = 0; i < kc * cf.NR; ++i) b[i] = 1e-3f * static_cast<float>(i % 5);
    std::memset(c, 0, sizeof(float) * static_cast<size_t>(cf.MR * cf.NR));
    for (int64_t i = 0; i < calls; ++i) cf.kern(kc, a, b, c, cf.NR, 1.f, 1, nullptr, nullptr);
    if (c00) *c00 = c[0];
    return 2.0 * cf.MR * cf.NR * static_cast<double>(kc) * static_cast<double>(calls);
}

void gemm_packed(int64_t M, int64_t N, int64_t K, PackSrc a, PackSrc b, float* C, int64_t ldc,
                 const GemmEpilogue& ep) {
    // the sink receives the tiles before any activation (macro_block hands them over instead of storing them)
    ST2V_CHECK_ARG(!ep.tile_sink || ep.act == Act::kNone, "gemm: a tile sink takes no activation");
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        // C = act(alpha * 0 (+ C) + bias)
        for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n)
                if (!ep.accumulate) C[m * ldc + n] = 0.f;
        finish_region(C, ldc, 0, M, 0, N, ep);
        return;
    }
    const Config cf = config_for(active_isa());
    ThreadPool& pool = current_pool();
    const int64_t mt = (M + cf.MR - 1) / cf.MR, nt = (N + cf.NR - 1) / cf.NR;
    int64_t parts = pool.size();
    if (static_cast<double>(M) * N * K < 262144.0) parts = 1;
    const bool split_n = nt >= mt;
    parts = std::max<int64_t>(1, std::min<int64_t>(parts, split_n ? nt : mt));
    const int64_t per = ((split_n ? nt : mt) + parts - 1) / parts;  // tiles per part
    auto run_part = [&](int64_t p) {
        if (split_n) {
            const int64_t n0 = p * per * cf.NR, n1 = std::min<int64_t>(N, (p + 1) * per * cf.NR);
            if (n0 < n1) gemm_block(cf, 0, M, n0, n1, K, a, b, C, ldc, ep);
        } else {
            const int64_t m0 = p * per * cf.MR, m1 = std::min<int64_t>(M, (p + 1) * per * cf.MR);
            if (m0 < m1) gemm_block(cf, m0, m1, 0, N, K, a, b, C, ldc, ep);
        }
    };
    if (parts == 1) {
        run_part(0);
        return;
    }
    if (g_dynamic.load(std::memory_order_relaxed)) {
        if (split_n) gemm_shared_a(cf, pool, M, N, K, a, b, C, ldc, ep);
        else gemm_shared_b(cf, pool, M, N, K, a, b, C, ldc, ep);
        return;
    }
    pool.parallel_for(parts, [&](int64_t p0, int64_t p1, int) {
        for (int64_t p = p0; p < p1; ++p) run_part(p);
    }, 1);
}

}  // namespace detail

void gemm(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
          const GemmEpilogue& ep) {
    ST2V_CHECK_ARG(M >= 0 && N >= 0 && K >= 0, "gemm: negative size");
    ST2V_CHECK_ARG(C != nullptr || M * N == 0, "gemm: null output");
    if (M == 0 || N == 0) return;
    for (const MatRef* r : {&A, &B})
        ST2V_CHECK(r->dtype == DType::F32 || r->dtype == DType::F16 || r->dtype == DType::BF16, Code::kDtype,
                   "gemm: operand dtype %s is not f32/f16/bf16", dtype_name(r->dtype));
    ST2V_CHECK_ARG(K == 0 || (A.data != nullptr && B.data != nullptr), "gemm: null operand");
    if (active_isa() == Isa::kPortable) {
        gemm_portable(M, N, K, A, B, C, ldc, ep);
        return;
    }
    detail::MatPack pa{A.data, A.dtype, A.rs, A.cs};
    detail::MatPack pb{B.data, B.dtype, B.cs, B.rs};  // B's rows are the N axis
    detail::gemm_packed(M, N, K, {detail::pack_mat, &pa}, {detail::pack_mat, &pb}, C, ldc, ep);
}

}  // namespace st2v::ops

// Normalisation, attention and elementwise ops.
//
// Every op has a portable scalar path (the readable reference; attention_portable below is the plain
// softmax(QK^T)V per query row) and SIMD kernels compiled once per ISA level from ops/simd_math_kernels.h
// (AVX2+FMA and AVX-512, per-function target attributes), picked at run time with active_isa().
// Work is split statically over the current pool, so results are bitwise deterministic for a given thread
// count and ISA.
#include <immintrin.h>

// SIMDe (Debian libsimde-dev, header-only, MIT): only for the test-only level 3, which then runs the AVX-512
// wrappers of ops/simd_math.h over SIMDe's portable AVX-512 intrinsics on CPUs without AVX-512.
#include "ops/simd_simde_x512.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "core/profile.h"
#include "core/simd_transpose.h"
#include "core/threadpool.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "ops/simd_math_testing.h"
#include "ops/weight_util.h"

namespace st2v::ops {

using detail::check_float_weight;
using detail::load_w;
using detail::vec_f32;

namespace {
// One attention call: heads read in place from strided [B, L, H*D] views; output [B, Lq, H*Dv] contiguous.
struct AttnArgs {
    const float *q, *k, *v;
    float* o;
    int64_t B, Lq, Lk, H, D, Dv, BQ;
    int64_t qsb, qsl, ksb, ksl, vsb, vsl;  // batch / row strides (elements)
    float scale;
    int64_t BK;  // keys per tile (rounded up to the microkernel width by the kernel)
    bool short_ok;  // the short kernel runs (attention_short_fits: Lq <= 2W, Lk <= kAttnShortLk, switch on)
};
constexpr int64_t kAttnBQ = 48;  // query rows per tile (a multiple of both microkernel heights, 6 and 8)
constexpr int64_t kAttnBK = 128;  // keys per tile (K^T and V blocks of 32 KiB at d 64; 64 / 256 within noise)
constexpr int64_t kAttnShortLk = 32;  // up to this many keys and 2W queries: the short kernel (simd_math_attention.h)
// ST2V_ATTN_SHORT=off (or 0; read by the switches' parser of gemm_internal.h): the tiled kernel for every shape
// (detail::set_attention_short).
std::atomic<bool> g_attn_short{detail::winograd_mode_from_env("ST2V_ATTN_SHORT") != detail::WinogradMode::kOff};
// Zeroed, 64-byte aligned float scratch of one attention call on one thread.
struct AttnBuf {
    float* p = nullptr;
    explicit AttnBuf(int64_t n) {
        const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
        p = static_cast<float*>(std::aligned_alloc(64, bytes));
        ST2V_CHECK(p != nullptr, Code::kOutOfMemory, "attention: cannot allocate %zu bytes of scratch", bytes);
        std::memset(p, 0, bytes);
    }
    ~AttnBuf() { std::free(p); }
    AttnBuf(const AttnBuf&) = delete;
    AttnBuf& operator=(const AttnBuf&) = delete;
};

struct Kernels {
    int lanes;                                        // W of the level (0: portable)
    void (*attn)(const AttnArgs&, int64_t, int64_t);  // null: use attention_portable
    void (*sum_shifted)(const float*, int64_t, float, double*, double*);
    void (*affine_act)(const float*, float*, int64_t, float, float, float, bool);
    void (*ln_row)(const float*, float*, int64_t, const float*, const float*, float);
    void (*silu)(const float*, float*, int64_t);
    void (*gelu)(const float*, float*, int64_t);
    void (*geglu)(const float*, int64_t, float*, int64_t, int64_t, int64_t);  // geglu_rows
    void (*add)(const float*, const float*, float*, int64_t);
    void (*mul)(const float*, const float*, float*, int64_t);
    void (*scale)(const float*, float, float*, int64_t);
    void (*axpby)(const float*, float, const float*, float, float*, int64_t);
    void (*dup2)(const float*, float*, int64_t);
};

namespace k_avx2 {
#define ST2V_SIMD_LEVEL 1
#include "ops/simd_math.h"
#include "ops/simd_math_kernels.h"
#undef ST2V_SIMD_LEVEL
#undef ST2V_TGT
#undef PRIM
}  // namespace k_avx2

// g++ 12's avx512fintrin.h reductions trip -Wmaybe-uninitialized (their internal _mm512_undefined_ps).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace k_avx512 {
#define ST2V_SIMD_LEVEL 2
#include "ops/simd_math.h"
#include "ops/simd_math_kernels.h"
#undef ST2V_SIMD_LEVEL
#undef ST2V_TGT
#undef PRIM
}  // namespace k_avx512
#pragma GCC diagnostic pop

namespace k_emu16 {  // tests only: the AVX-512 geometry on AVX2 (ops/simd_math_testing.h)
#define ST2V_SIMD_LEVEL 3
#include "ops/simd_math.h"
#include "ops/simd_math_kernels.h"
#undef ST2V_SIMD_LEVEL
#undef ST2V_TGT
#undef PRIM
}  // namespace k_emu16

std::atomic<bool> g_emulated_wide{false};

// Portable scalar kernels (same contracts; statistics accumulated in double).
namespace k_portable {
inline float silu1(float v) { return v / (1.f + std::exp(-v)); }
inline float gelu1(float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); }
void sum_shifted(const float* x, int64_t n, float shift, double* s1, double* s2) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(x[i]) - shift;
        a += d;
        b += d * d;
    }
    *s1 += a;
    *s2 += b;
}
void affine_act(const float* x, float* y, int64_t n, float mean, float a, float b, bool silu) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = (x[i] - mean) * a + b;
        y[i] = silu ? silu1(v) : v;
    }
}
void ln_row(const float* x, float* y, int64_t C, const float* g, const float* bt, float eps) {
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += x[c];
    const double mean = sum / static_cast<double>(C);
    double sq = 0;
    for (int64_t c = 0; c < C; ++c) sq += (x[c] - mean) * (x[c] - mean);
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(C) + eps));
    const float m = static_cast<float>(mean);
    for (int64_t c = 0; c < C; ++c) {
        float v = (x[c] - m) * rstd;
        if (g) v *= g[c];
        if (bt) v += bt[c];
        y[c] = v;
    }
}
void silu_n(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = silu1(x[i]); }
void gelu_n(const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = gelu1(x[i]); }
void geglu_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) y[r * ldy + i] = x[r * ldx + i] * gelu1(x[r * ldx + n + i]);
}
void add_n(const float* a, const float* b, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i]; }
void mul_n(const float* a, const float* b, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i]; }
void scale_n(const float* x, float s, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s; }
void axpby_n(const float* x, float a, const float* y0, float b, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = a * x[i] + b * y0[i];
}
void dup2_n(const float* src, float* dst, int64_t n) { for (int64_t i = 0; i < n; ++i) dst[2 * i] = dst[2 * i + 1] = src[i]; }
}  // namespace k_portable

#define ST2V_KTABLE(ns, lanes, attn_fn)                                                              \
    Kernels {                                                                                        \
        lanes, attn_fn, ns::sum_shifted, ns::affine_act, ns::ln_row, ns::silu_n, ns::gelu_n,         \
            ns::geglu_rows, ns::add_n, ns::mul_n, ns::scale_n, ns::axpby_n, ns::dup2_n                \
    }
const Kernels& kernels() {
    static const Kernels portable = ST2V_KTABLE(k_portable, 0, nullptr);
    static const Kernels avx2 = ST2V_KTABLE(k_avx2, k_avx2::W, k_avx2::attn_range);
    static const Kernels avx512 = ST2V_KTABLE(k_avx512, k_avx512::W, k_avx512::attn_range);
    static const Kernels emu16 = ST2V_KTABLE(k_emu16, k_emu16::W, k_emu16::attn_range);
    switch (active_isa()) {
        case Isa::kAvx512: return avx512;
        case Isa::kAvx2: return g_emulated_wide.load(std::memory_order_relaxed) ? emu16 : avx2;
        default: return portable;
    }
}
#undef ST2V_KTABLE

constexpr int64_t kEwGrain = 16384;  // elements worth a thread for elementwise ops

// Whether attention with these lengths takes the short kernel of the level K (the rule of AttnArgs::short_ok):
// Lq <= 2W queries in one query block, Lk <= kAttnShortLk keys, the switch on.
bool attention_short_fits(const Kernels& K, int64_t Lq, int64_t Lk) {
    return g_attn_short.load(std::memory_order_relaxed) && K.lanes > 0 && Lq <= 2 * K.lanes && Lk <= kAttnShortLk &&
           Lq <= kAttnBQ;
}
}  // namespace

namespace detail {
bool set_emulated_wide_kernels(bool on) { return g_emulated_wide.exchange(on); }
bool set_attention_short(bool on) { return g_attn_short.exchange(on); }
bool attention_short_applies(int64_t Lq, int64_t Lk) { return attention_short_fits(kernels(), Lq, Lk); }
GegluRowsFn geglu_rows_kernel() { return kernels().geglu; }
const char* emulated_wide_kind() {
#ifdef ST2V_SIMD_HAVE_SIMDE
    return "AVX-512 wrappers over SIMDe";
#else
    return "AVX2 pairs (SIMDe not found at build time)";
#endif
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------------
Tensor group_norm(const Tensor& x, int frames, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool silu) {
    check_dtype(x, DType::F32, "group_norm", "x");
    ST2V_CHECK(x.ndim() >= 2, Code::kShapeMismatch, "group_norm: input must be at least 2-d, got %s", x.desc().c_str());
    const int64_t NF = x.size(0), C = x.size(1);
    ST2V_CHECK_ARG(groups >= 1 && C % groups == 0, "group_norm: %lld channels not divisible by %d groups", (long long)C,
                   groups);
    ST2V_CHECK_ARG(frames >= 1 && NF % frames == 0, "group_norm: batch %lld not a multiple of frames %d", (long long)NF,
                   frames);
    ST2V_CHECK_ARG(std::isfinite(eps) && eps >= 0.f, "group_norm: eps must be finite and >= 0");
    const int64_t S = (NF && C) ? x.numel() / (NF * C) : 0;
    std::vector<float> g = vec_f32(gamma, C, "group_norm", "weight");
    std::vector<float> bt = vec_f32(beta, C, "group_norm", "bias");
    ProfScope prof(silu ? "group_norm + silu" : "group_norm", 0, 2 * 4.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    if (x.numel() == 0) return y;
    const int64_t B = NF / frames, cpg = C / groups;
    const float* xp = xc.f32();
    float* yp = y.f32();
    const Kernels& K = kernels();
    parallel_for(B * groups, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / groups, gi = i % groups;
            const float shift = xp[(b * frames * C + gi * cpg) * S];
            double s1 = 0, s2 = 0;
            for (int64_t f = 0; f < frames; ++f)
                K.sum_shifted(xp + ((b * frames + f) * C + gi * cpg) * S, cpg * S, shift, &s1, &s2);
            const double n = static_cast<double>(frames * cpg * S);
            const double dm = s1 / n;
            double var = s2 / n - dm * dm;
            if (var < 0) var = 0;
            const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
            const float mean = static_cast<float>(shift + dm);
            for (int64_t f = 0; f < frames; ++f)
                for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c) {
                    const float sc = rstd * (g.empty() ? 1.f : g[static_cast<size_t>(c)]);
                    const float sh = bt.empty() ? 0.f : bt[static_cast<size_t>(c)];
                    const int64_t off = ((b * frames + f) * C + c) * S;
                    K.affine_act(xp + off, yp + off, S, mean, sc, sh, silu);
                }
        }
    });
    return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    check_dtype(x, DType::F32, "layer_norm", "x");
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "layer_norm: input must be at least 1-d");
    ST2V_CHECK_ARG(std::isfinite(eps) && eps >= 0.f, "layer_norm: eps must be finite and >= 0");
    const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
    std::vector<float> g = vec_f32(gamma, C, "layer_norm", "weight");
    std::vector<float> bt = vec_f32(beta, C, "layer_norm", "bias");
    ProfScope prof("layer_norm", 0, 2 * 4.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    if (R == 0) return y;
    const float* xp = xc.f32();
    float* yp = y.f32();
    const float* gp = g.empty() ? nullptr : g.data();
    const float* bp = bt.empty() ? nullptr : bt.data();
    const Kernels& K = kernels();
    parallel_for(R, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) K.ln_row(xp + r * C, yp + r * C, C, gp, bp, eps);
    }, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)));
    return y;
}

// ---------------------------------------------------------------------------------------------------
Tensor attention_portable(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

namespace {
void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    const char* op = "attention";
    check_dtype(q, DType::F32, op, "q");
    check_dtype(k, DType::F32, op, "k");
    check_dtype(v, DType::F32, op, "v");
    check_ndim(q, 3, op, "q");
    check_ndim(k, 3, op, "k");
    check_ndim(v, 3, op, "v");
    const int64_t B = q.size(0), Lk = k.size(1);
    ST2V_CHECK_ARG(heads >= 1, "attention: heads must be >= 1");
    ST2V_CHECK_ARG(std::isfinite(scale), "attention: scale must be finite");
    ST2V_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Lk, Code::kShapeMismatch,
               "attention: q %s, k %s, v %s do not agree", q.desc().c_str(), k.desc().c_str(), v.desc().c_str());
    ST2V_CHECK(q.size(2) == k.size(2) && q.size(2) % heads == 0 && v.size(2) % heads == 0, Code::kShapeMismatch,
               "attention: q %s / k %s widths must match and divide by %d heads", q.desc().c_str(), k.desc().c_str(),
               heads);
    ST2V_CHECK(Lk >= 1 || q.size(1) == 0 || B == 0, Code::kShapeMismatch, "attention: no keys (k %s)",
               k.desc().c_str());
    ST2V_CHECK(q.stride(2) == 1 && k.stride(2) == 1 && v.stride(2) == 1, Code::kInvalidArgument,
               "attention: last dim of q/k/v must be contiguous");
}
}  // namespace

namespace {
// The profile's names for attention by shape: cross-attention (Lq != Lk: pixels to text/image tokens), short
// self-attention (L <= 32: in the UNet the temporal attention over a chunk's frames) and long self-attention (the
// spatial attention over a frame's pixels).
const char* attention_kind(int64_t Lq, int64_t Lk) {
    return Lq != Lk ? "attention cross" : Lq <= 32 ? "attention self, L <= 32" : "attention self, L > 32";
}
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    const Kernels& K = kernels();
    if (!K.attn) return attention_portable(q, k, v, heads, scale);
    check_attention(q, k, v, heads, scale);
    const int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1);
    const int64_t D = q.size(2) / heads, Dv = v.size(2) / heads;
    ProfScope prof(attention_kind(Lq, Lk), 2.0 * static_cast<double>(B * heads * Lq * Lk) * static_cast<double>(D + Dv));
    Tensor o = Tensor::empty({B, Lq, heads * Dv});
    if (B == 0 || Lq == 0 || Dv == 0) return o;
    AttnArgs a{q.f32(), k.f32(), v.f32(), o.f32(), B, Lq, Lk, heads, D, Dv, kAttnBQ,
               q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), scale, kAttnBK,
               attention_short_fits(K, Lq, Lk)};
    const int64_t nqb = (Lq + std::min(kAttnBQ, Lq) - 1) / std::min(kAttnBQ, Lq);
    auto fn = K.attn;
    parallel_for(B * heads * nqb, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); }, 1);
    return o;
}

Tensor attention_portable(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    check_attention(q, k, v, heads, scale);
    const int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1);
    const int64_t D = q.size(2) / heads, Dv = v.size(2) / heads;
    ProfScope prof(attention_kind(Lq, Lk), 2.0 * static_cast<double>(B * heads * Lq * Lk) * static_cast<double>(D + Dv));
    Tensor o = Tensor::empty({B, Lq, heads * Dv});
    const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
    float* op_ = o.f32();
    parallel_for(B * heads, [&](int64_t i0, int64_t i1, int) {
        std::vector<float> s(static_cast<size_t>(Lk));
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / heads, h = i % heads;
            for (int64_t l = 0; l < Lq; ++l) {
                const float* qr = qp + b * q.stride(0) + l * q.stride(1) + h * D;
                float mx = -INFINITY;
                for (int64_t j = 0; j < Lk; ++j) {
                    const float* kr = kp + b * k.stride(0) + j * k.stride(1) + h * D;
                    float acc = 0;
                    for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d];
                    s[static_cast<size_t>(j)] = acc * scale;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                float den = 0;
                for (int64_t j = 0; j < Lk; ++j) { s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx); den += s[static_cast<size_t>(j)]; }
                float* orow = op_ + (b * Lq + l) * heads * Dv + h * Dv;
                for (int64_t d = 0; d < Dv; ++d) orow[d] = 0;
                for (int64_t j = 0; j < Lk; ++j) {
                    const float* vr = vp + b * v.stride(0) + j * v.stride(1) + h * Dv;
                    const float pj = s[static_cast<size_t>(j)] / den;
                    for (int64_t d = 0; d < Dv; ++d) orow[d] += pj * vr[d];
                }
            }
        }
    });
    return o;
}

// ---------------------------------------------------------------------------------------------------
namespace {
using UnaryFn = void (*)(const float*, float*, int64_t);
Tensor unary(const Tensor& x, const char* name, UnaryFn f) {
    check_dtype(x, DType::F32, name, "x");
    ProfScope prof(name, 0, 2 * 4.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    const float* a = xc.f32();
    float* o = y.f32();
    parallel_for(x.numel(), [&](int64_t i0, int64_t i1, int) { f(a + i0, o + i0, i1 - i0); }, kEwGrain);
    return y;
}
// b broadcast over a: b's shape must equal a suffix of a's shape (or be identical).
int64_t broadcast_inner(const Tensor& a, const Tensor& b, const char* op) {
    check_dtype(a, DType::F32, op, "a");
    check_dtype(b, DType::F32, op, "b");
    if (a.shape() == b.shape()) return a.numel();
    ST2V_CHECK(b.ndim() <= a.ndim(), Code::kShapeMismatch, "%s: cannot broadcast %s to %s", op, b.desc().c_str(),
               a.desc().c_str());
    for (int i = 1; i <= b.ndim(); ++i)
        ST2V_CHECK(b.size(-i) == a.size(-i), Code::kShapeMismatch, "%s: cannot broadcast %s to %s", op,
                   b.desc().c_str(), a.desc().c_str());
    return b.numel();
}
// y[i] = f(a[i], b[i % inner]) for i < n, split over the pool.
void binary_bcast(const float* a, const float* b, float* y, int64_t n, int64_t inner,
                  void (*f)(const float*, const float*, float*, int64_t)) {
    if (n == 0 || inner == 0) return;
    parallel_for(n, [&](int64_t i0, int64_t i1, int) {
        int64_t i = i0;
        while (i < i1) {
            const int64_t j = i % inner, len = std::min(i1 - i, inner - j);
            f(a + i, b + j, y + i, len);
            i += len;
        }
    }, kEwGrain);
}
}  // namespace

Tensor silu(const Tensor& x) { return unary(x, "silu", kernels().silu); }
Tensor gelu(const Tensor& x) { return unary(x, "gelu", kernels().gelu); }
Tensor scale(const Tensor& x, float s) {
    check_dtype(x, DType::F32, "scale", "x");
    ProfScope prof("scale", 0, 2 * 4.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    const float* a = xc.f32();
    float* o = y.f32();
    auto f = kernels().scale;
    parallel_for(x.numel(), [&](int64_t i0, int64_t i1, int) { f(a + i0, s, o + i0, i1 - i0); }, kEwGrain);
    return y;
}

Tensor geglu(const Tensor& x) {
    check_dtype(x, DType::F32, "geglu", "x");
    ST2V_CHECK(x.ndim() >= 1 && x.size(-1) % 2 == 0, Code::kShapeMismatch, "geglu: last dim of %s must be even",
               x.desc().c_str());
    const int64_t C2 = x.size(-1), C = C2 / 2, R = C2 ? x.numel() / C2 : 0;
    ProfScope prof("geglu", 0, 1.5 * 4.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    std::vector<int64_t> s = x.shape().vec();
    s.back() = C;
    Tensor y = Tensor::empty(Shape(s));
    if (R == 0 || C == 0) return y;
    const float* a = xc.f32();
    float* o = y.f32();
    auto f = kernels().geglu;
    parallel_for(R, [&](int64_t r0, int64_t r1, int) { f(a + r0 * C2, C2, o + r0 * C, C, r1 - r0, C); },
                 std::max<int64_t>(1, kEwGrain / C));
    return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
    const int64_t inner = broadcast_inner(a, b, "add");
    ProfScope prof("add", 0, 12.0 * static_cast<double>(a.numel()));
    Tensor ac = a.contiguous(), bc = b.contiguous();
    Tensor y = Tensor::empty(a.shape());
    binary_bcast(ac.f32(), bc.f32(), y.f32(), a.numel(), inner, kernels().add);
    return y;
}

void add_(Tensor& a, const Tensor& b) {
    const int64_t inner = broadcast_inner(a, b, "add");
    ST2V_CHECK(a.is_contiguous(), Code::kInvalidArgument, "add_: destination must be contiguous");
    ProfScope prof("add", 0, 12.0 * static_cast<double>(a.numel()));
    Tensor bc = b.contiguous();
    // b may alias a (a += a): the kernels read each element before writing it, so that is safe.
    binary_bcast(a.f32(), bc.f32(), a.f32(), a.numel(), inner, kernels().add);
}

Tensor mul(const Tensor& a, const Tensor& b) {
    const int64_t inner = broadcast_inner(a, b, "mul");
    ProfScope prof("mul", 0, 12.0 * static_cast<double>(a.numel()));
    Tensor ac = a.contiguous(), bc = b.contiguous();
    Tensor y = Tensor::empty(a.shape());
    binary_bcast(ac.f32(), bc.f32(), y.f32(), a.numel(), inner, kernels().mul);
    return y;
}

Tensor axpby(const Tensor& x, float a, const Tensor& y, float b) {
    check_dtype(x, DType::F32, "axpby", "x");
    check_dtype(y, DType::F32, "axpby", "y");
    ST2V_CHECK(x.shape() == y.shape(), Code::kShapeMismatch, "axpby: %s vs %s", x.desc().c_str(), y.desc().c_str());
    ProfScope prof("axpby", 0, 12.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous(), yc = y.contiguous();
    Tensor o = Tensor::empty(x.shape());
    const float *p = xc.f32(), *q = yc.f32();
    float* r = o.f32();
    auto f = kernels().axpby;
    parallel_for(x.numel(), [&](int64_t i0, int64_t i1, int) { f(p + i0, a, q + i0, b, r + i0, i1 - i0); }, kEwGrain);
    return o;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
    ST2V_CHECK_ARG(!xs.empty(), "concat: no tensors");
    const Tensor& x0 = xs[0];
    check_defined(x0, "concat", "input 0");
    if (dim < 0) dim += x0.ndim();
    ST2V_CHECK_ARG(dim >= 0 && dim < x0.ndim(), "concat: bad dim");
    int64_t total = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const Tensor& t = xs[i];
        check_defined(t, "concat", "input");
        ST2V_CHECK(t.ndim() == x0.ndim() && t.dtype() == x0.dtype(), Code::kShapeMismatch,
                   "concat: %s and %s differ in rank or dtype", x0.desc().c_str(), t.desc().c_str());
        for (int d = 0; d < x0.ndim(); ++d)
            ST2V_CHECK(d == dim || t.size(d) == x0.size(d), Code::kShapeMismatch, "concat: %s and %s differ off dim %d",
                       x0.desc().c_str(), t.desc().c_str(), dim);
        total += t.size(dim);
    }
    std::vector<int64_t> s = x0.shape().vec();
    s[static_cast<size_t>(dim)] = total;
    Tensor y = Tensor::empty(Shape(s), x0.dtype());
    ProfScope prof("concat", 0, 2.0 * static_cast<double>(y.numel() * dtype_size(y.dtype())));
    int64_t off = 0;
    for (const Tensor& t : xs) {
        Tensor dst = y.slice(dim, off, off + t.size(dim));
        dst.copy_from(t);
        off += t.size(dim);
    }
    return y;
}

Tensor upsample_nearest2x(const Tensor& x) {
    check_dtype(x, DType::F32, "upsample_nearest2x", "x");
    check_ndim(x, 4, "upsample_nearest2x", "x");
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    ProfScope prof("upsample_nearest2x", 0, 20.0 * static_cast<double>(x.numel()));
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty({N, C, 2 * H, 2 * W});
    if (y.numel() == 0) return y;
    const float* a = xc.f32();
    float* o = y.f32();
    auto f = kernels().dup2;
    parallel_for(N * C * H, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {  // source row i -> output rows 2i, 2i + 1
            float* d = o + 2 * i * 2 * W;
            f(a + i * W, d, W);
            std::memcpy(d + 2 * W, d, static_cast<size_t>(2 * W) * sizeof(float));
        }
    }, std::max<int64_t>(1, 4096 / std::max<int64_t>(W, 1)));
    return y;
}

namespace {
// exp(x) in float32 exactly as PyTorch's CPU kernel computes it (ATen's Vectorized<float>::exp = SLEEF
// expf_u10 with FMA): Cody-Waite reduction by ln 2, degree-6 polynomial, scale by 2^q. Differs from a
// correctly rounded expf in ~1 of 10 arguments by 1 ulp; bit-identical to torch.exp (checked on 10^5 random
// arguments in [-20, 20] against torch 1.13's AVX2 build). The diffusers timestep embedding multiplies these
// frequencies by t up to 999, so a 1-ulp frequency moves sin/cos by up to 6e-5: matching torch matters.
float torch_expf(float d) {
    const float q = std::nearbyint(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    float s = std::fma(q, -0.693145751953125f, d);
    s = std::fma(q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = std::fma(u, s, 0.00139304355252534151077271f);
    u = std::fma(u, s, 0.00833336077630519866943359f);
    u = std::fma(u, s, 0.0416664853692054748535156f);
    u = std::fma(u, s, 0.166666671633720397949219f);
    u = std::fma(u, s, 0.5f);
    u = 1.0f + std::fma(s * s, u, s);
    u = std::ldexp(u, static_cast<int>(q));
    if (d < -104.f) u = 0.f;
    if (d > 104.f) u = std::numeric_limits<float>::infinity();
    return u;
}
}  // namespace

std::vector<float> timestep_frequencies(int dim, float shift, float max_period) {
    const int half = dim / 2;
    // Same float32 operation order as diffusers get_timestep_embedding.
    std::vector<float> freq(static_cast<size_t>(half > 0 ? half : 0));
    for (int i = 0; i < half; ++i) {
        float e = -std::log(max_period) * static_cast<float>(i);
        e = e / (static_cast<float>(half) - shift);
        freq[static_cast<size_t>(i)] = torch_expf(e);
    }
    return freq;
}

Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float shift, float max_period) {
    ST2V_CHECK_ARG(dim >= 2, "timestep_embedding: dim must be >= 2");
    const int half = dim / 2;
    Tensor y = Tensor::zeros({static_cast<int64_t>(t.size()), dim});
    float* o = y.f32();
    const std::vector<float> freq = timestep_frequencies(dim, shift, max_period);
    for (size_t r = 0; r < t.size(); ++r) {
        for (int i = 0; i < half; ++i) {
            float a = t[r] * freq[static_cast<size_t>(i)];
            float s = std::sin(a), c = std::cos(a);
            if (flip_sin_to_cos) { o[r * dim + i] = c; o[r * dim + half + i] = s; }
            else { o[r * dim + i] = s; o[r * dim + half + i] = c; }
        }
    }
    return y;
}

}  // namespace st2v::ops

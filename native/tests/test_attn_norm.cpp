// Attention, GroupNorm/LayerNorm and the elementwise ops against double-precision references, on every
// ISA level this CPU supports (set_isa, restored after; plus the AVX-512 kernels' W 16 / MR 8 code emulated
// on AVX2 where the CPU lacks AVX-512), with odd sizes, Lq != Lk, strided q/k/v views and
// multi-tile problems; 1 and 2 threads (bitwise determinism per thread count); typed errors on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "core/status.h"
#include "core/threadpool.h"
#include "kernel_levels.h"
#include "ops/ops.h"
#include "ops/simd_math_testing.h"

using namespace st2v;
using namespace st2v::ops;

namespace {

// A kernel level under test: an ISA, or (emu) the AVX-512 kernels' generic code (W 16, MR 8) on an AVX2 CPU,
// through the AVX-512 wrappers over SIMDe when the build found it, else on AVX2 pairs
// (ops/simd_math_testing.h), so that the AVX-512 code is checked on CPUs without AVX-512 too.
struct Level : testing_util::Level {
    const char* name() const { return emu ? detail::emulated_wide_kind() : isa_name(isa); }
};
const char* g_level_name = "";
bool use(const Level& l) {
    detail::set_emulated_wide_kernels(l.emu);
    g_level_name = l.name();
    return set_isa(l.isa);
}
struct IsaGuard {
    Isa prev = active_isa();
    ~IsaGuard() {
        set_isa(prev);
        detail::set_emulated_wide_kernels(false);
    }
};
std::vector<Level> levels() {
    std::vector<Level> v;
    for (const testing_util::Level& l : testing_util::kernel_levels()) v.push_back({l});
    return v;
}

using testing_util::randv;
Tensor tens(const std::vector<float>& v, const Shape& s) { return Tensor::from_data(v.data(), s, DType::F32); }

// Element (index i of the contiguous order) of a possibly strided f32 tensor.
std::vector<float> values(const Tensor& t) {
    Tensor c = t.contiguous();
    return std::vector<float>(c.f32(), c.f32() + c.numel());
}

// max |got - ref| <= tol_rel * max(scale_floor, max |ref|)
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double tol_rel, const char* what,
                  double scale_floor = 1e-3) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    double scale = scale_floor, err = 0;
    size_t worst = 0;
    for (double r : ref) scale = std::max(scale, std::fabs(r));
    for (size_t i = 0; i < got.size(); ++i) {
        const double e = std::fabs(static_cast<double>(got[i]) - ref[i]);
        if (!(e <= err)) { err = e; worst = i; }
    }
    EXPECT_LE(err, tol_rel * scale) << what << ": worst at " << worst << " got " << got[worst] << " ref "
                                    << ref[worst] << " (kernels " << g_level_name << ")";
}

template <typename F>
void expect_code(Code c, F&& f) {
    try {
        f();
        ADD_FAILURE() << "expected st2v::Error " << code_name(c);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), c) << e.what();
    }
}

// ---- attention ----------------------------------------------------------------------------------------
std::vector<double> attention_ref(const Tensor& q, const Tensor& k, const Tensor& v, int H, double scale) {
    const int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1), D = q.size(2) / H, Dv = v.size(2) / H;
    std::vector<double> o(static_cast<size_t>(B * Lq * H * Dv));
    const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
    std::vector<double> s(static_cast<size_t>(Lk));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < Lq; ++i) {
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; ++j) {
                    double acc = 0;
                    for (int64_t d = 0; d < D; ++d)
                        acc += static_cast<double>(qp[b * q.stride(0) + i * q.stride(1) + h * D + d]) *
                               kp[b * k.stride(0) + j * k.stride(1) + h * D + d];
                    s[static_cast<size_t>(j)] = acc * scale;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                double den = 0;
                for (double& x : s) den += (x = std::exp(x - mx));
                for (int64_t d = 0; d < Dv; ++d) {
                    double acc = 0;
                    for (int64_t j = 0; j < Lk; ++j)
                        acc += s[static_cast<size_t>(j)] * vp[b * v.stride(0) + j * v.stride(1) + h * Dv + d];
                    o[static_cast<size_t>(((b * Lq + i) * H + h) * Dv + d)] = acc / den;
                }
            }
    return o;
}

struct AttnCase {
    int64_t B, Lq, Lk;
    int H;
    int64_t D, Dv;
    float amp;  // input amplitude (large -> peaky softmax)
};

// q/k/v as views: q and k are column slices of one [B, L, 2*H*D + 5] buffer (row stride != width) when
// Lq == Lk, else of separate padded buffers; v is the transpose of an [L, B, H*Dv] tensor (batch stride <
// row stride).
void run_attention_case(const AttnCase& c, uint32_t seed) {
    const int64_t HD = c.H * c.D, HDv = c.H * c.Dv;
    const int64_t wq = 2 * HD + 5;
    auto qb = randv(static_cast<size_t>(c.B * c.Lq * wq), seed, -c.amp, c.amp);
    auto kb = randv(static_cast<size_t>(c.B * c.Lk * wq), seed + 1, -c.amp, c.amp);
    auto vb = randv(static_cast<size_t>(c.Lk * c.B * HDv), seed + 2);
    Tensor qbuf = tens(qb, {c.B, c.Lq, wq}), kbuf = tens(kb, {c.B, c.Lk, wq});
    Tensor q = qbuf.slice(2, 3, 3 + HD);
    Tensor k = c.Lq == c.Lk ? qbuf.slice(2, 3 + HD, 3 + 2 * HD) : kbuf.slice(2, 1, 1 + HD);
    Tensor v = tens(vb, {c.Lk, c.B, HDv}).transpose(0, 1);
    const float scale = 1.f / std::sqrt(static_cast<float>(c.D));
    const std::vector<double> ref = attention_ref(q, k, v, c.H, scale);
    IsaGuard guard;
    struct ShortGuard {
        bool prev = detail::set_attention_short(true);
        ~ShortGuard() { detail::set_attention_short(prev); }
    } short_guard;
    for (Level isa : levels()) {
        for (bool short_on : {true, false}) {  // the short kernel where it applies, then the tiled one for all
            ASSERT_TRUE(use(isa));
            detail::set_attention_short(short_on);
            ThreadPool p1(1), p2(2);
            std::vector<float> r1, r2;
            {
                PoolScope s(&p1);
                Tensor o = attention(q, k, v, c.H, scale);
                ASSERT_EQ(o.shape(), Shape({c.B, c.Lq, HDv}));
                r1 = values(o);
            }
            {
                PoolScope s(&p2);
                r2 = values(attention(q, k, v, c.H, scale));
                EXPECT_EQ(r2, values(attention(q, k, v, c.H, scale))) << "not deterministic";
            }
            char what[160];
            std::snprintf(what, sizeof what, "attention B%lld Lq%lld Lk%lld H%d D%lld Dv%lld amp%g %s",
                          (long long)c.B, (long long)c.Lq, (long long)c.Lk, c.H, (long long)c.D, (long long)c.Dv,
                          c.amp, detail::attention_short_applies(c.Lq, c.Lk) ? "short kernel" : "tiled kernel");
            expect_close(r1, ref, 1e-5, what);
            expect_close(r2, ref, 1e-5, what);
        }
    }
}

TEST(AttnNorm, AttentionMatchesDoubleReferenceOnOddShapesAndViews) {
    const AttnCase cases[] = {
        {1, 1, 1, 1, 1, 1, 1.f},       {2, 7, 77, 3, 40, 40, 1.f},  // cross-attention, Lk = 77, odd D
        {3, 16, 8, 2, 64, 64, 1.f},    // CAM merger 16 -> 8
        {5, 16, 16, 2, 64, 64, 1.f},   // temporal
        {4, 24, 24, 1, 80, 80, 1.f},   // temporal 24, D = 80
        {2, 93, 300, 2, 32, 32, 1.f},  // several query and key tiles, tails
        {1, 100, 33, 1, 33, 7, 3.f},   // D != Dv, peaky softmax
        {2, 49, 145, 1, 8, 24, 4.f},
        {1, 3, 1, 2, 16, 16, 1.f},
        {1, 50, 1000, 1, 64, 64, 2.f},  // 8 key tiles: running max / rescale across many tiles
        // the short kernel (Lq <= 2W, Lk <= 32; queries in lanes): partial lane vectors, D not a multiple of 8
        // (scalar transpose tails), Dv tails, key groups of 6 with a short last one, its edges (Lk 32 / 33, Lq 16 / 17
        // at W 8, 32 / 33 at W 16), peaky softmax
        {3, 9, 9, 2, 13, 20, 1.f},     {2, 12, 30, 3, 8, 7, 4.f},   {2, 16, 32, 2, 64, 40, 1.f},
        {2, 16, 33, 1, 24, 24, 1.f},   {2, 17, 17, 2, 16, 16, 1.f}, {1, 32, 7, 1, 40, 72, 3.f},
        {1, 33, 5, 1, 8, 8, 1.f},      {4, 8, 8, 5, 3, 3, 2.f},     {2, 1, 20, 2, 64, 64, 1.f},
        {2, 16, 16, 1, 8, 8, 30.f},  // scores up to ~2^3000 before the max is taken off
    };
    uint32_t seed = 10;
    for (const AttnCase& c : cases) run_attention_case(c, seed += 7);
}

// Which shapes the short kernel takes: Lq <= 2W (16 at AVX2, 32 at the AVX-512 geometry) and Lk <= 32, none on the
// portable level or when switched off; the edges of that rule are among the cases above.
TEST(AttnNorm, AttentionShortKernelRule) {
    IsaGuard guard;
    const bool prev = detail::set_attention_short(true);
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        const int64_t w = isa.isa == Isa::kPortable ? 0 : (isa.emu || isa.isa == Isa::kAvx512) ? 16 : 8;
        EXPECT_EQ(detail::attention_short_applies(16, 16), w > 0) << g_level_name;
        EXPECT_EQ(detail::attention_short_applies(1, 32), w > 0) << g_level_name;
        EXPECT_FALSE(detail::attention_short_applies(1, 33)) << g_level_name;
        EXPECT_EQ(detail::attention_short_applies(2 * w, 8), w > 0) << g_level_name;
        EXPECT_FALSE(detail::attention_short_applies(2 * w + 1, 8)) << g_level_name;
        detail::set_attention_short(false);
        EXPECT_FALSE(detail::attention_short_applies(16, 16)) << g_level_name;
        detail::set_attention_short(true);
    }
    detail::set_attention_short(prev);
}

TEST(AttnNorm, AttentionBadInputThrowsTypedErrors) {
    Tensor q = Tensor::zeros({2, 4, 8}), k = Tensor::zeros({2, 5, 8}), v = Tensor::zeros({2, 5, 8});
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        expect_code(Code::kDtype, [&] { attention(q.to(DType::F16), k, v, 2, 1.f); });
        expect_code(Code::kShapeMismatch, [&] { attention(q, Tensor::zeros({2, 5, 6}), v, 2, 1.f); });
        expect_code(Code::kShapeMismatch, [&] { attention(q, k, Tensor::zeros({2, 4, 8}), 2, 1.f); });
        expect_code(Code::kShapeMismatch, [&] { attention(q, k, v, 3, 1.f); });
        expect_code(Code::kShapeMismatch, [&] { attention(q.reshape({8, 8}), k, v, 2, 1.f); });
        expect_code(Code::kInvalidArgument, [&] { attention(q, k, v, 0, 1.f); });
        expect_code(Code::kInvalidArgument, [&] { attention(q, k, v, 2, INFINITY); });
        expect_code(Code::kInvalidArgument,
                    [&] { attention(Tensor::zeros({2, 8, 4}).transpose(1, 2), k, v, 2, 1.f); });
    }
}

// ---- GroupNorm / LayerNorm ------------------------------------------------------------------------------
std::vector<double> group_norm_ref(const std::vector<float>& x, int64_t NF, int64_t C, int64_t S, int frames,
                                   int groups, const std::vector<float>& g, const std::vector<float>& b, double eps,
                                   bool silu) {
    std::vector<double> y(x.size());
    const int64_t B = NF / frames, cpg = C / groups;
    for (int64_t bi = 0; bi < B; ++bi)
        for (int gi = 0; gi < groups; ++gi) {
            double sum = 0, n = static_cast<double>(frames * cpg * S);
            for (int f = 0; f < frames; ++f)
                for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c)
                    for (int64_t s = 0; s < S; ++s) sum += x[static_cast<size_t>(((bi * frames + f) * C + c) * S + s)];
            const double mean = sum / n;
            double sq = 0;
            for (int f = 0; f < frames; ++f)
                for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c)
                    for (int64_t s = 0; s < S; ++s) {
                        const double d = x[static_cast<size_t>(((bi * frames + f) * C + c) * S + s)] - mean;
                        sq += d * d;
                    }
            const double rstd = 1.0 / std::sqrt(sq / n + eps);
            for (int f = 0; f < frames; ++f)
                for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c)
                    for (int64_t s = 0; s < S; ++s) {
                        const size_t i = static_cast<size_t>(((bi * frames + f) * C + c) * S + s);
                        double v = (x[i] - mean) * rstd * g[static_cast<size_t>(c)] + b[static_cast<size_t>(c)];
                        y[i] = silu ? v / (1.0 + std::exp(-v)) : v;
                    }
        }
    return y;
}

TEST(AttnNorm, GroupNormPerFrameAndAcrossFramesWithSilu) {
    struct GnCase { int64_t B; int F; int64_t C, H, W; int groups; float offset; float eps; };
    const GnCase cases[] = {{2, 1, 12, 5, 7, 4, 0.f, 1e-5f}, {1, 3, 6, 3, 3, 3, 50.f, 1e-6f},
                            {2, 4, 8, 1, 33, 2, -20.f, 1e-5f}, {1, 1, 3, 1, 1, 3, 0.f, 1e-6f},
                            {1, 2, 32, 9, 11, 32, 5.f, 1e-6f}};
    IsaGuard guard;
    uint32_t seed = 100;
    for (const GnCase& c : cases) {
        const int64_t NF = c.B * c.F, S = c.H * c.W;
        auto x = randv(static_cast<size_t>(NF * c.C * S), ++seed, c.offset - 1.5f, c.offset + 1.5f);
        auto g = randv(static_cast<size_t>(c.C), ++seed, 0.5f, 1.5f), b = randv(static_cast<size_t>(c.C), ++seed);
        // gamma stored as f16: the reference uses the rounded values
        std::vector<uint16_t> gh(g.size());
        for (size_t i = 0; i < g.size(); ++i) { gh[i] = f32_to_f16(g[i]); g[i] = f16_to_f32(gh[i]); }
        Tensor xt = tens(x, {NF, c.C, c.H, c.W});
        Tensor gt = Tensor::from_data(gh.data(), {c.C}, DType::F16), bt = tens(b, {c.C});
        for (bool silu_on : {false, true}) {
            const auto ref = group_norm_ref(x, NF, c.C, S, c.F, c.groups, g, b, c.eps, silu_on);
            for (Level isa : levels()) {
                ASSERT_TRUE(use(isa));
                Tensor y = group_norm(xt, c.F, c.groups, gt, bt, c.eps, silu_on);
                ASSERT_EQ(y.shape(), xt.shape());
                expect_close(values(y), ref, 1e-5, silu_on ? "group_norm+silu" : "group_norm");
            }
        }
    }
}

TEST(AttnNorm, LayerNormRows) {
    IsaGuard guard;
    uint32_t seed = 200;
    for (int64_t C : {1, 3, 7, 77, 320, 1000}) {
        const int64_t R = 5;
        auto x = randv(static_cast<size_t>(R * C), ++seed, 9.f, 11.f);
        auto g = randv(static_cast<size_t>(C), ++seed), b = randv(static_cast<size_t>(C), ++seed);
        for (bool affine : {false, true}) {
            std::vector<double> ref(x.size());
            for (int64_t r = 0; r < R; ++r) {
                double sum = 0, sq = 0;
                for (int64_t c = 0; c < C; ++c) sum += x[static_cast<size_t>(r * C + c)];
                const double m = sum / C;
                for (int64_t c = 0; c < C; ++c) sq += (x[static_cast<size_t>(r * C + c)] - m) * (x[static_cast<size_t>(r * C + c)] - m);
                const double rs = 1.0 / std::sqrt(sq / C + 1e-5);
                for (int64_t c = 0; c < C; ++c) {
                    double v = (x[static_cast<size_t>(r * C + c)] - m) * rs;
                    if (affine) v = v * g[static_cast<size_t>(c)] + b[static_cast<size_t>(c)];
                    ref[static_cast<size_t>(r * C + c)] = v;
                }
            }
            for (Level isa : levels()) {
                ASSERT_TRUE(use(isa));
                Tensor y = affine ? layer_norm(tens(x, {R, C}), tens(g, {C}), tens(b, {C}), 1e-5f)
                                  : layer_norm(tens(x, {R, C}), Tensor(), Tensor(), 1e-5f);
                expect_close(values(y), ref, 1e-5, "layer_norm");
            }
        }
    }
}

TEST(AttnNorm, NormBadInputThrowsTypedErrors) {
    Tensor x = Tensor::zeros({4, 6, 3, 3});
    expect_code(Code::kInvalidArgument, [&] { group_norm(x, 1, 4, Tensor(), Tensor(), 1e-5f); });
    expect_code(Code::kInvalidArgument, [&] { group_norm(x, 3, 3, Tensor(), Tensor(), 1e-5f); });
    expect_code(Code::kShapeMismatch, [&] { group_norm(x, 1, 3, Tensor::zeros({5}), Tensor(), 1e-5f); });
    expect_code(Code::kDtype, [&] { group_norm(x.to(DType::F16), 1, 3, Tensor(), Tensor(), 1e-5f); });
    expect_code(Code::kShapeMismatch, [&] { group_norm(Tensor::zeros({4}), 1, 1, Tensor(), Tensor(), 1e-5f); });
    expect_code(Code::kShapeMismatch, [&] { layer_norm(Tensor::zeros({2, 5}), Tensor::zeros({4}), Tensor(), 1e-5f); });
    expect_code(Code::kDtype, [&] { layer_norm(Tensor::zeros({2, 5}, DType::I32), Tensor(), Tensor(), 1e-5f); });
    expect_code(Code::kInvalidArgument, [&] { layer_norm(Tensor::zeros({2, 5}), Tensor(), Tensor(), NAN); });
}

// ---- elementwise ----------------------------------------------------------------------------------------
double silu_d(double x) { return x / (1.0 + std::exp(-x)); }
double gelu_d(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

TEST(AttnNorm, ActivationsAndGeglu) {
    IsaGuard guard;
    uint32_t seed = 300;
    for (int64_t n : {1, 3, 7, 33, 77, 93, 1000}) {
        auto x = randv(static_cast<size_t>(n), ++seed, -7.f, 7.f);
        std::vector<double> rs(x.size()), rg(x.size());
        for (size_t i = 0; i < x.size(); ++i) { rs[i] = silu_d(x[i]); rg[i] = gelu_d(x[i]); }
        auto x2 = randv(static_cast<size_t>(3 * 2 * n), ++seed, -5.f, 5.f);
        std::vector<double> rgg(static_cast<size_t>(3 * n));
        for (int64_t r = 0; r < 3; ++r)
            for (int64_t c = 0; c < n; ++c)
                rgg[static_cast<size_t>(r * n + c)] =
                    x2[static_cast<size_t>(r * 2 * n + c)] * gelu_d(x2[static_cast<size_t>(r * 2 * n + n + c)]);
        for (Level isa : levels()) {
            ASSERT_TRUE(use(isa));
            // per element: |err| <= 1e-6 * max(1, |ref|) (the vector erf is accurate to ~1e-7 absolute)
            auto ys = values(silu(tens(x, {n}))), yg = values(gelu(tens(x, {n})));
            for (size_t i = 0; i < x.size(); ++i) {
                EXPECT_NEAR(ys[i], rs[i], 1e-6 * std::max(1.0, std::fabs(rs[i]))) << "silu x=" << x[i] << " " << isa.name();
                EXPECT_NEAR(yg[i], rg[i], 1e-6 * std::max(1.0, std::fabs(rg[i]))) << "gelu x=" << x[i] << " " << isa.name();
            }
            Tensor yy = geglu(tens(x2, {3, 2 * n}));
            ASSERT_EQ(yy.shape(), Shape({3, n}));
            expect_close(values(yy), rgg, 1e-6, "geglu");
        }
    }
}

TEST(AttnNorm, ErfAccuracyOverRange) {
    // gelu(x)/(0.5 x) - 1 = erf(x / sqrt 2): dense sweep of the vector erf through gelu on [-6, 6].
    std::vector<float> x;
    for (int i = -60000; i <= 60000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        auto y = values(gelu(tens(x, {static_cast<int64_t>(x.size())})));
        double worst = 0;
        for (size_t i = 0; i < x.size(); ++i)
            worst = std::max(worst, std::fabs(y[i] - gelu_d(x[i])) / std::max(1.0, std::fabs(static_cast<double>(x[i]))));
        EXPECT_LE(worst, 3e-7) << isa.name();
        std::printf("gelu max abs error / max(1, |x|) (%s): %.3g\n", isa.name(), worst);
    }
}

TEST(AttnNorm, ExpAccuracyThroughSilu) {
    // For x << 0, silu(x) = x e^x / (1 + e^x): its relative error is the vector exp's (plus one division).
    std::vector<float> x;
    for (int i = -870000; i <= 200000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        auto y = values(silu(tens(x, {static_cast<int64_t>(x.size())})));
        double worst = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            const double r = silu_d(x[i]);
            if (r != 0) worst = std::max(worst, std::fabs(y[i] - r) / std::fabs(r));
        }
        EXPECT_LE(worst, 4.5e-7) << isa.name();  // ~4 ulp
        RecordProperty(std::string("silu_max_rel_err_") + isa.name(), std::to_string(worst));
        std::printf("silu max relative error (%s): %.3g\n", isa.name(), worst);
    }
}

TEST(AttnNorm, BinaryOpsBroadcastScaleAxpbyUpsample) {
    IsaGuard guard;
    uint32_t seed = 400;
    for (int64_t inner : {1, 3, 7, 33, 77}) {
        const int64_t outer = 5;
        auto a = randv(static_cast<size_t>(outer * inner), ++seed), b = randv(static_cast<size_t>(inner), ++seed);
        auto full = randv(static_cast<size_t>(outer * inner), ++seed);
        std::vector<double> radd(a.size()), rmul(a.size()), rfull(a.size()), rsc(a.size()), rax(a.size());
        for (size_t i = 0; i < a.size(); ++i) {
            radd[i] = static_cast<double>(a[i]) + b[i % static_cast<size_t>(inner)];
            rmul[i] = static_cast<double>(a[i]) * b[i % static_cast<size_t>(inner)];
            rfull[i] = static_cast<double>(a[i]) + full[i];
            rsc[i] = a[i] * 0.37;
            rax[i] = 1.5 * a[i] - 0.25 * full[i];
        }
        Tensor at = tens(a, {outer, 1, inner}), bt = tens(b, {1, inner}), ft = tens(full, {outer, 1, inner});
        for (Level isa : levels()) {
            ASSERT_TRUE(use(isa));
            expect_close(values(add(at, bt)), radd, 1e-6, "add broadcast");
            expect_close(values(mul(at, bt)), rmul, 1e-6, "mul broadcast");
            expect_close(values(add(at, ft)), rfull, 1e-6, "add same shape");
            Tensor c = at.clone();
            add_(c, bt);
            expect_close(values(c), radd, 1e-6, "add_");
            expect_close(values(scale(at, 0.37f)), rsc, 1e-6, "scale");
            expect_close(values(axpby(at, 1.5f, ft, -0.25f)), rax, 1e-6, "axpby");
            // non-contiguous input
            Tensor tt = tens(a, {inner, outer}).transpose(0, 1);
            std::vector<double> rt(a.size());
            for (int64_t i = 0; i < outer; ++i)
                for (int64_t j = 0; j < inner; ++j) rt[static_cast<size_t>(i * inner + j)] = a[static_cast<size_t>(j * outer + i)] * 2.0;
            expect_close(values(scale(tt, 2.f)), rt, 1e-6, "scale of a view");
        }
    }
    for (int64_t W : {1, 3, 9, 17}) {
        const int64_t N = 2, C = 3, H = 5;
        auto x = randv(static_cast<size_t>(N * C * H * W), ++seed);
        std::vector<double> ref(static_cast<size_t>(N * C * 4 * H * W));
        for (int64_t i = 0; i < N * C; ++i)
            for (int64_t h = 0; h < 2 * H; ++h)
                for (int64_t w = 0; w < 2 * W; ++w)
                    ref[static_cast<size_t>((i * 2 * H + h) * 2 * W + w)] = x[static_cast<size_t>((i * H + h / 2) * W + w / 2)];
        for (Level isa : levels()) {
            ASSERT_TRUE(use(isa));
            Tensor y = upsample_nearest2x(tens(x, {N, C, H, W}));
            ASSERT_EQ(y.shape(), Shape({N, C, 2 * H, 2 * W}));
            expect_close(values(y), ref, 0.0, "upsample_nearest2x");
        }
    }
}

TEST(AttnNorm, ElementwiseBadInputThrowsTypedErrors) {
    Tensor a = Tensor::zeros({2, 3, 4});
    expect_code(Code::kShapeMismatch, [&] { add(a, Tensor::zeros({3})); });
    expect_code(Code::kShapeMismatch, [&] { mul(a, Tensor::zeros({1, 2, 3, 4})); });
    Tensor c = a.clone();
    expect_code(Code::kShapeMismatch, [&] { add_(c, Tensor::zeros({2, 4})); });
    expect_code(Code::kDtype, [&] { add(a, Tensor::zeros({4}, DType::F16)); });
    expect_code(Code::kShapeMismatch, [&] { axpby(a, 1.f, Tensor::zeros({2, 3}), 1.f); });
    expect_code(Code::kShapeMismatch, [&] { geglu(Tensor::zeros({2, 5})); });
    expect_code(Code::kDtype, [&] { silu(Tensor::zeros({3}, DType::F16)); });
    expect_code(Code::kShapeMismatch, [&] { upsample_nearest2x(a); });
    Tensor v = Tensor::zeros({4, 6}).transpose(0, 1);
    expect_code(Code::kInvalidArgument, [&] { add_(v, Tensor::zeros({4})); });
}

}  // namespace

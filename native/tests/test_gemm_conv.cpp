// GEMM, linear and the convolutions against plain double-precision references, on every ISA level this
// CPU supports (set_isa; plus the AVX-512 blocking with a plain kernel on AVX2 CPUs), with odd sizes, strided/transposed operands, f16/bf16 weights (the reference uses
// the rounded weights, so the tolerance is the f32 one), the fused epilogue, and 1 vs 2 threads.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "core/status.h"
#include "core/threadpool.h"
#include "kernel_levels.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"

using namespace st2v;
using namespace st2v::ops;

namespace {

// A kernel level under test: an ISA, or (emu) the AVX-512 blocking (default GemmWideTuning) with the
// AVX-512 microkernels' text over SIMDe (or plain R x 32 kernels without SIMDe) on AVX2 (gemm_internal.h), so
// the AVX-512 driver geometry and kernel are checked on CPUs without AVX-512.
struct Level : testing_util::Level {
    const char* name() const { return emu ? detail::gemm_emulated_wide_kind() : isa_name(isa); }
};
bool use(const Level& l) {
    detail::set_gemm_emulated_wide(l.emu);
    return set_isa(l.isa);
}
struct IsaGuard {
    Isa prev = active_isa();
    ~IsaGuard() {
        set_isa(prev);
        detail::set_gemm_emulated_wide(false);
    }
};
std::vector<Level> levels() {
    std::vector<Level> v;
    for (const testing_util::Level& l : testing_util::kernel_levels()) v.push_back({l});
    return v;
}

using testing_util::randv;
// Stored weights in dtype dt (raw bits) plus their exact f32 values (what the reference must use).
struct Stored {
    std::vector<float> f32;      // rounded values
    std::vector<uint16_t> half;  // bits when dt != F32
    DType dt;
    const void* data() const { return dt == DType::F32 ? static_cast<const void*>(f32.data()) : half.data(); }
};
Stored store(const std::vector<float>& v, DType dt) {
    Stored s{v, {}, dt};
    if (dt == DType::F32) return s;
    s.half.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        s.half[i] = dt == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
        s.f32[i] = dt == DType::F16 ? f16_to_f32(s.half[i]) : bf16_to_f32(s.half[i]);
    }
    return s;
}
Tensor tensor_of(const Stored& s, const Shape& shape) { return Tensor::from_data(s.data(), shape, s.dt); }

double act_ref(double x, Act a) {
    if (a == Act::kSilu) return x / (1.0 + std::exp(-x));
    if (a == Act::kGelu) return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    return x;
}
// The code of the st2v::Error fn throws (kOk when it throws none).
template <class Fn>
Code code_of(Fn fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.code();
    }
    return Code::kOk;
}

// max |got - ref| / max(1, max |ref|)
double rel_err(const float* got, const std::vector<double>& ref) {
    double scale = 1, err = 0;
    for (double r : ref) scale = std::max(scale, std::fabs(r));
    for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(got[i] - ref[i]));
    return err / scale;
}

// The double-precision product of A (row m at a + m * lda, depth contiguous) and weights w stored [N, K]: [M, N].
std::vector<double> ref_xwt(const float* a, int64_t lda, const std::vector<float>& w, int64_t M, int64_t N, int64_t K) {
    std::vector<double> out(static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
                acc += static_cast<double>(a[m * lda + k]) * w[static_cast<size_t>(n * K + k)];
            out[static_cast<size_t>(m * N + n)] = acc;
        }
    return out;
}

}  // namespace

TEST(GemmConv, GemmMatchesDoubleReferenceAllIsasDtypesLayouts) {
    IsaGuard guard;
    const int64_t sizes[][3] = {{1, 1, 1}, {3, 7, 5}, {7, 33, 93}, {33, 77, 1}, {77, 93, 300}, {93, 1, 33},
                                {13, 40, 600}, {150, 70, 17}};
    uint32_t seed = 1;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (auto& s : sizes) {
            const int64_t M = s[0], N = s[1], K = s[2];
            for (DType bdt : {DType::F32, DType::F16, DType::BF16}) {
                for (int layout = 0; layout < 4; ++layout) {
                    const bool at = layout & 1, bt = layout & 2;
                    // A stored with padding (lda > K) to exercise strides; B as [K, N] or transposed [N, K]
                    const int64_t lda = (at ? M : K) + 3, ldb = (bt ? K : N) + 2;
                    std::vector<float> av = randv(static_cast<size_t>((at ? K : M) * lda), seed++);
                    Stored bs = store(randv(static_cast<size_t>((bt ? N : K) * ldb), seed++), bdt);
                    MatRef A{av.data(), DType::F32, at ? 1 : lda, at ? lda : 1};
                    MatRef B{bs.data(), bdt, bt ? 1 : ldb, bt ? ldb : 1};
                    std::vector<float> bias_c = randv(static_cast<size_t>(N), seed++), bias_r = randv(static_cast<size_t>(M), seed++);
                    GemmEpilogue ep;
                    ep.act = static_cast<Act>(layout % 3);
                    ep.alpha = layout == 3 ? 0.5f : 1.f;
                    ep.accumulate = layout == 2;
                    ep.bias_col = layout != 1 ? bias_c.data() : nullptr;
                    ep.bias_row = layout >= 1 ? bias_r.data() : nullptr;
                    const int64_t ldc = N + 1;
                    std::vector<float> c = randv(static_cast<size_t>(M * ldc), seed++);
                    std::vector<double> ref(static_cast<size_t>(M * N));
                    for (int64_t m = 0; m < M; ++m)
                        for (int64_t n = 0; n < N; ++n) {
                            double acc = 0;
                            for (int64_t k = 0; k < K; ++k)
                                acc += static_cast<double>(av[static_cast<size_t>(m * A.rs + k * A.cs)]) *
                                       bs.f32[static_cast<size_t>(k * B.rs + n * B.cs)];
                            double v = ep.alpha * acc;
                            if (ep.accumulate) v += c[static_cast<size_t>(m * ldc + n)];
                            if (ep.bias_col) v += ep.bias_col[n];
                            if (ep.bias_row) v += ep.bias_row[m];
                            ref[static_cast<size_t>(m * N + n)] = act_ref(v, ep.act);
                        }
                    gemm(M, N, K, A, B, c.data(), ldc, ep);
                    std::vector<float> got(static_cast<size_t>(M * N));
                    for (int64_t m = 0; m < M; ++m)
                        for (int64_t n = 0; n < N; ++n) got[static_cast<size_t>(m * N + n)] = c[static_cast<size_t>(m * ldc + n)];
                    const double e = rel_err(got.data(), ref);
                    EXPECT_LE(e, 1e-5) << isa.name() << " M=" << M << " N=" << N << " K=" << K << " B "
                                       << dtype_name(bdt) << " layout " << layout;
                }
            }
        }
    }
}

// The result does not depend on the thread count or on which driver hands out the work: one thread; the fixed bands
// of the older driver; and the shared-counter drivers (gemm_shared_b for tall C, gemm_shared_a for wide C, with a
// PrepackedA in the convolution) on 2 and 3 threads, whose threads take different blocks from run to run.
TEST(GemmConv, GemmSameBitsAnyThreadCountAndDriver) {
    struct DynGuard {
        bool prev = detail::set_gemm_dynamic(true);
        ~DynGuard() { detail::set_gemm_dynamic(prev); }
    } guard;
    // tall (more row panels: shared B), wide (shared A), square-ish, several depth blocks, ragged edges
    const int64_t shapes[][3] = {{61, 200, 517}, {1201, 45, 1100}, {29, 1029, 700}, {300, 300, 2049}, {97, 13, 5}};
    uint32_t seed = 40;
    for (auto& sh : shapes) {
        const int64_t M = sh[0], N = sh[1], K = sh[2];
        std::vector<float> a = randv(static_cast<size_t>(M * K), seed++), b = randv(static_cast<size_t>(K * N), seed++);
        std::vector<float> bias = randv(static_cast<size_t>(N), seed++);
        std::vector<uint16_t> bh(b.size());
        for (size_t i = 0; i < b.size(); ++i) bh[i] = f32_to_f16(b[i]);
        for (bool half : {false, true}) {
            GemmEpilogue ep;
            ep.bias_col = bias.data();
            ep.act = half ? Act::kGelu : Act::kSilu;
            auto run = [&](int threads, bool dynamic) {
                ThreadPool p(threads);
                PoolScope s(&p);
                detail::set_gemm_dynamic(dynamic);
                std::vector<float> c(static_cast<size_t>(M * N));
                const MatRef B = half ? MatRef{bh.data(), DType::F16, N, 1} : MatRef{b.data(), DType::F32, N, 1};
                gemm(M, N, K, {a.data(), DType::F32, K, 1}, B, c.data(), N, ep);
                return c;
            };
            const std::vector<float> one = run(1, true);
            EXPECT_EQ(run(2, false), one) << "fixed bands, 2 threads, M=" << M << " N=" << N << " K=" << K;
            for (int rep = 0; rep < 3; ++rep)
                for (int t : {2, 3})
                    EXPECT_EQ(run(t, true), one) << "shared counter, " << t << " threads, M=" << M << " N=" << N
                                                 << " K=" << K << " f16 " << half;
        }
    }
    // convolution: weights prepacked once per call (A), implicit im2col (B), two images
    const Tensor x = Tensor::from_data(randv(2 * 19 * 23 * 21, 91).data(), {2, 19, 23, 21}, DType::F32);
    const Tensor w = Tensor::from_data(randv(37 * 19 * 9, 92).data(), {37, 19, 3, 3}, DType::F32);
    const Tensor bias = Tensor::from_data(randv(37, 93).data(), {37}, DType::F32);
    auto conv = [&](int threads) {
        ThreadPool p(threads);
        PoolScope s(&p);
        const Tensor y = conv2d(x, w, bias, Conv2dParams::same(3));
        return std::vector<float>(y.f32(), y.f32() + y.numel());
    };
    const std::vector<float> one = conv(1);
    for (int t : {2, 3}) EXPECT_EQ(conv(t), one) << "conv2d, " << t << " threads";
}

// GemmEpilogue::tile_sink: the tiles it receives hold exactly what the GEMM would have stored in C (alpha, the
// accumulated C, bias by column and by row), for full and partial tiles (ragged M and N), one and several depth blocks,
// DirectA's shallow shapes, both drivers, 1 and 3 threads, on every level; C itself is left alone except for the
// partial sums of the depth blocks before the last.
TEST(GemmConv, GemmTileSinkReceivesTheStoredValues) {
    IsaGuard guard;
    struct DynGuard {
        bool prev = detail::set_gemm_dynamic(true);
        ~DynGuard() { detail::set_gemm_dynamic(prev); }
    } dyn;
    struct Sink {
        std::vector<float> d;
        int64_t N;
        static void fn(void* ctx, const float* t, int64_t ld, int64_t m0, int64_t mr, int64_t n0, int64_t nr) {
            auto& s = *static_cast<Sink*>(ctx);
            for (int64_t i = 0; i < mr; ++i)
                for (int64_t j = 0; j < nr; ++j) s.d[static_cast<size_t>((m0 + i) * s.N + n0 + j)] = t[i * ld + j];
        }
    };
    const int64_t shapes[][3] = {{37, 45, 77}, {61, 200, 700}, {29, 301, 33}, {1, 16, 1}, {130, 64, 128}};
    uint32_t seed = 60;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        if (isa.isa == Isa::kPortable) continue;  // gemm() runs gemm_portable there (no packed driver, no sink)
        for (auto& sh : shapes) {
            const int64_t M = sh[0], N = sh[1], K = sh[2];
            const std::vector<float> a = randv(static_cast<size_t>(M * K), seed++), b = randv(static_cast<size_t>(K * N), seed++),
                                     bc = randv(static_cast<size_t>(N), seed++), br = randv(static_cast<size_t>(M), seed++),
                                     c0 = randv(static_cast<size_t>(M * N), seed++);
            for (int variant = 0; variant < 4; ++variant) {
                GemmEpilogue ep;
                ep.alpha = variant == 3 ? 0.75f : 1.f;
                ep.accumulate = variant >= 2;
                ep.bias_col = variant >= 1 ? bc.data() : nullptr;
                ep.bias_row = variant >= 2 ? br.data() : nullptr;
                for (int threads : {1, 3})
                    for (bool dynamic : {true, false}) {
                        ThreadPool p(threads);
                        PoolScope scope(&p);
                        detail::set_gemm_dynamic(dynamic);
                        const std::string what = std::string(isa.name()) + " M " + std::to_string(M) + " N " +
                                                 std::to_string(N) + " K " + std::to_string(K) + " variant " +
                                                 std::to_string(variant) + " threads " + std::to_string(threads);
                        std::vector<float> c = c0;
                        gemm(M, N, K, {a.data(), DType::F32, K, 1}, {b.data(), DType::F32, N, 1}, c.data(), N, ep);
                        Sink sink{std::vector<float>(static_cast<size_t>(M * N), -7.f), N};
                        GemmEpilogue es = ep;
                        es.tile_sink = Sink::fn;
                        es.sink_ctx = &sink;
                        std::vector<float> cs = c0;
                        gemm(M, N, K, {a.data(), DType::F32, K, 1}, {b.data(), DType::F32, N, 1}, cs.data(), N, es);
                        ASSERT_EQ(sink.d, c) << what;
                        if (K <= detail::gemm_blocking(K).KC) EXPECT_EQ(cs, c0) << what << ": C written with one depth block";
                    }
            }
        }
    }
    // the sink takes the tiles before any activation: one asked for with a sink is a typed error (packed driver)
    ASSERT_TRUE(use(levels().back()));  // the widest level (packed) where the CPU has one
    if (active_isa() != Isa::kPortable)
        EXPECT_EQ(code_of([] {
                      std::vector<float> a(6), b(6), c(4);
                      GemmEpilogue ep;
                      ep.act = Act::kSilu;
                      ep.tile_sink = [](void*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t) {};
                      gemm(2, 2, 3, {a.data(), DType::F32, 3, 1}, {b.data(), DType::F32, 2, 1}, c.data(), 2, ep);
                  }),
                  Code::kInvalidArgument);
}

// A read in place (detail::DirectA: shallow GEMMs with a row-major f32 A on the AVX2 level) gives the same bits as the
// packed path, for full and partial row panels, strided A, every epilogue, both drivers and 1-3 threads, and matches
// the double reference; the rule's edges (K 256 / 257, the packed B block at 512 KB) take the path they should.
TEST(GemmConv, GemmDirectASameBitsAsPackedAndMatchesReference) {
    IsaGuard guard;
    struct Guard {
        bool dyn = detail::set_gemm_dynamic(true), direct = detail::set_gemm_direct_a(true);
        ~Guard() {
            detail::set_gemm_dynamic(dyn);
            detail::set_gemm_direct_a(direct);
        }
    } g;
    struct Case {
        int64_t M, N, K, pad;
        bool direct;  // expected on the AVX2 level
    };
    // 61 / 1201 / 37 rows: a last panel of 1 / 1 / 1 rows (packed), the rest in place; 333 columns: a ragged NR edge
    const Case cases[] = {{61, 40, 128, 0, true},   {1201, 100, 93, 5, true}, {200, 333, 256, 0, true},
                          {37, 512, 256, 3, true},  {6, 16, 7, 0, true},      {50, 513, 256, 0, false},
                          {100, 20, 257, 0, false}, {13, 1, 1, 2, true}};
    uint32_t seed = 300;
    int direct_seen = 0;
    for (Level lv : levels()) {
        ASSERT_TRUE(use(lv));
        for (const Case& cs : cases) {
            const int64_t M = cs.M, N = cs.N, K = cs.K, lda = K + cs.pad;
            const std::vector<float> av = randv(static_cast<size_t>(M * lda), seed++);
            const MatRef A{av.data(), DType::F32, lda, 1};
            const bool applies = detail::gemm_direct_a_applies(N, K, A);
            const bool avx2 = lv.isa == Isa::kAvx2 && !lv.emu;
            EXPECT_EQ(applies, avx2 && cs.direct) << lv.name() << " M=" << M << " N=" << N << " K=" << K;
            direct_seen += applies;
            for (DType bdt : {DType::F32, DType::F16}) {
                Stored bs = store(randv(static_cast<size_t>(N * K), seed++), bdt);
                const MatRef B{bs.data(), bdt, 1, K};  // weights [N, K]
                const std::vector<float> bias_c = randv(static_cast<size_t>(N), seed++),
                                         bias_r = randv(static_cast<size_t>(M), seed++),
                                         c0 = randv(static_cast<size_t>(M * N), seed++);
                for (int variant = 0; variant < 3; ++variant) {
                    GemmEpilogue ep;
                    ep.act = variant == 0 ? Act::kSilu : variant == 1 ? Act::kGelu : Act::kNone;
                    ep.bias_col = variant == 0 ? bias_c.data() : nullptr;
                    ep.bias_row = variant == 1 ? bias_r.data() : nullptr;
                    ep.alpha = variant == 2 ? 0.5f : 1.f;
                    ep.accumulate = variant == 2;
                    std::vector<double> ref = ref_xwt(av.data(), lda, bs.f32, M, N, K);
                    for (int64_t m = 0; m < M; ++m)
                        for (int64_t n = 0; n < N; ++n) {
                            double v = ep.alpha * ref[static_cast<size_t>(m * N + n)];
                            if (ep.accumulate) v += c0[static_cast<size_t>(m * N + n)];
                            if (ep.bias_col) v += ep.bias_col[n];
                            if (ep.bias_row) v += ep.bias_row[m];
                            ref[static_cast<size_t>(m * N + n)] = act_ref(v, ep.act);
                        }
                    auto run = [&](bool direct, int threads, bool dynamic) {
                        detail::set_gemm_direct_a(direct);
                        detail::set_gemm_dynamic(dynamic);
                        ThreadPool p(threads);
                        PoolScope s(&p);
                        std::vector<float> c = c0;
                        gemm(M, N, K, A, B, c.data(), N, ep);
                        return c;
                    };
                    const std::vector<float> packed = run(false, 1, true);
                    EXPECT_LE(rel_err(packed.data(), ref), 1e-5) << lv.name() << " packed M=" << M << " K=" << K;
                    for (int threads : {1, 2, 3})
                        for (bool dynamic : {true, false})
                            EXPECT_EQ(run(true, threads, dynamic), packed)
                                << lv.name() << " M=" << M << " N=" << N << " K=" << K << " B " << dtype_name(bdt)
                                << " variant " << variant << " threads " << threads << " dynamic " << dynamic;
                }
            }
        }
    }
    if (max_supported_isa() >= Isa::kAvx2) EXPECT_EQ(direct_seen, 6);  // the six in-rule cases on the AVX2 level
}

// The packers write exactly their panel (R x kc floats, rows >= nr zero) and nothing around it, for operands
// contiguous along depth (the transposing AVX2 path, whose narrow panels use overlapping full stores) and along
// rows, in every dtype and on every level.
TEST(GemmConv, PackersWriteOnlyTheirPanel) {
    IsaGuard guard;
    const float kCanary = -12345.f;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16, DType::BF16})
            for (int R : {4, 6, 8, 14, 16, 32})
                for (int64_t kc : {1, 7, 8, 9, 16, 23, 40})
                    for (bool depth_contig : {true, false}) {
                        const int64_t rows = 40, depth = 64, r0 = 3, k0 = 5;
                        Stored m = store(randv(static_cast<size_t>(rows * depth), static_cast<uint32_t>(R * 100 + kc)), dt);
                        detail::MatPack mp{m.data(), dt, depth_contig ? depth : 1, depth_contig ? 1 : rows};
                        for (int64_t nr : {int64_t(1), int64_t(R) - 1, int64_t(R)}) {
                            if (nr < 1) continue;
                            std::vector<float> buf(static_cast<size_t>(R * kc + 64), kCanary);
                            float* dst = buf.data() + 32;
                            detail::pack_mat(&mp, r0, nr, k0, kc, R, dst);
                            for (int64_t i = 0; i < 32; ++i) ASSERT_EQ(buf[static_cast<size_t>(i)], kCanary) << "before the panel";
                            for (int64_t i = 0; i < 32; ++i)
                                ASSERT_EQ(dst[R * kc + i], kCanary) << isa.name() << " " << dtype_name(dt) << " R=" << R
                                                                    << " kc=" << kc << " nr=" << nr << ": after the panel";
                            for (int64_t k = 0; k < kc; ++k)
                                for (int64_t r = 0; r < R; ++r) {
                                    const size_t at = depth_contig ? static_cast<size_t>((r0 + r) * depth + k0 + k)
                                                                   : static_cast<size_t>((k0 + k) * rows + r0 + r);
                                    const float want = r < nr ? m.f32[at] : 0.f;
                                    ASSERT_EQ(dst[k * R + r], want) << isa.name() << " R=" << R << " kc=" << kc << " k=" << k
                                                                    << " r=" << r << " nr=" << nr;
                                }
                        }
                    }
    }
}

// The ops bench's kernel ceiling really runs the level's microkernel on its panels: element (0, 0) of the tile after
// n calls is n x sum_k a[k*MR] * b[k*NR], and the FLOP count is 2 MR NR KC per call.
TEST(GemmConv, KernelHotCeilingRunsTheMicrokernel) {
    IsaGuard guard;
    for (const Level& l : levels()) {
        if (!use(l)) continue;
        const detail::GemmTileBlocking tb = detail::gemm_blocking(1 << 20);
        const int MR = tb.MR;
        const int64_t KC = tb.KC;
        const int NR = l.isa == Isa::kAvx512 || l.emu ? 32 : l.isa == Isa::kAvx2 ? 16 : 8;
        double dot = 0;
        for (int64_t k = 0; k < KC; ++k)
            dot += 1e-3 * static_cast<double>((k * MR) % 7) * 1e-3 * static_cast<double>((k * NR) % 5);
        float c00 = -1.f;
        const double flops = detail::gemm_kernel_hot_flops(3, &c00);
        EXPECT_EQ(flops, 2.0 * MR * NR * static_cast<double>(KC) * 3) << l.name();
        EXPECT_NEAR(c00, 3 * dot, 1e-5 * std::max(1.0, 3 * dot)) << l.name();
    }
}

TEST(GemmConv, LinearF16Bf16WeightsAndStridedInput) {
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            const int64_t rows = 7, in = 77, out = 33;
            // x is a column slice of a wider tensor: rows strided by in + 5
            Tensor xw = Tensor::from_data(randv(static_cast<size_t>(rows * (in + 5)), 11).data(), {rows, in + 5}, DType::F32);
            Tensor x = xw.slice(1, 2, 2 + in);
            Stored ws = store(randv(static_cast<size_t>(out * in), 12), dt);
            Stored bsd = store(randv(static_cast<size_t>(out), 13), dt);
            Tensor y = linear(x, tensor_of(ws, {out, in}), tensor_of(bsd, {out}), Act::kGelu);
            ASSERT_EQ(y.shape(), Shape({rows, out}));
            std::vector<double> ref(static_cast<size_t>(rows * out));
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t o = 0; o < out; ++o) {
                    double acc = bsd.f32[static_cast<size_t>(o)];
                    for (int64_t k = 0; k < in; ++k)
                        acc += static_cast<double>(x.f32()[r * (in + 5) + k]) * ws.f32[static_cast<size_t>(o * in + k)];
                    ref[static_cast<size_t>(r * out + o)] = act_ref(acc, Act::kGelu);
                }
            EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << isa.name() << " " << dtype_name(dt);
        }
    }
}

// linear_add_: y += x W^T + b in one GEMM (accumulating epilogue) on every level and weight dtype, with and without
// bias, one and several depth blocks (in 600 / 1100), 3-d inputs with odd sizes and a strided (column-slice) x;
// within 1e-5 of a double reference of y0 + x W^T + b, and within a few ulps of add_(y, linear(x, w, b)); a strided
// y takes that two-pass way (bit-equal); a y of the wrong shape is a typed error and stays untouched.
TEST(GemmConv, LinearAddMatchesReferenceAndLinearThenAdd) {
    IsaGuard guard;
    uint32_t seed = 500;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16, DType::BF16})
            for (int64_t in : {77, 600, 1100})
                for (bool with_bias : {true, false}) {
                    const int64_t n0 = 3, n1 = 13, out = 37, rows = n0 * n1;
                    Tensor xw = Tensor::from_data(randv(static_cast<size_t>(rows * (in + 3)), seed++).data(),
                                                  {n0, n1, in + 3}, DType::F32);
                    Tensor x = xw.slice(2, 1, 1 + in);
                    Stored ws = store(randv(static_cast<size_t>(out * in), seed++), dt);
                    Stored bsd = store(randv(static_cast<size_t>(out), seed++), DType::F32);
                    const std::vector<float> y0 = randv(static_cast<size_t>(rows * out), seed++);
                    const Tensor w = tensor_of(ws, {out, in});
                    const Tensor b = with_bias ? tensor_of(bsd, {out}) : Tensor();
                    Tensor y = Tensor::from_data(y0.data(), {n0, n1, out}, DType::F32);
                    linear_add_(y, x, w, b);
                    std::vector<double> ref = ref_xwt(x.f32(), in + 3, ws.f32, rows, out, in);
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t o = 0; o < out; ++o)
                            ref[static_cast<size_t>(r * out + o)] +=
                                y0[static_cast<size_t>(r * out + o)] + (with_bias ? bsd.f32[static_cast<size_t>(o)] : 0.0);
                    EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << isa.name() << " " << dtype_name(dt) << " in=" << in;
                    Tensor two = Tensor::from_data(y0.data(), {n0, n1, out}, DType::F32);
                    add_(two, linear(x, w, b));
                    // the two ways associate the last additions differently: a few roundings of the output scale
                    double worst = 0, scale = 1;
                    for (int64_t i = 0; i < rows * out; ++i) {
                        worst = std::max(worst, std::fabs(static_cast<double>(y.f32()[i]) - two.f32()[i]));
                        scale = std::max(scale, std::fabs(static_cast<double>(two.f32()[i])));
                    }
                    EXPECT_LE(worst, 4 * FLT_EPSILON * scale) << isa.name() << " " << dtype_name(dt) << " in=" << in;
                }
    }
    // a strided y (every other row of a wider tensor) goes the two-pass way: the same bits as add_(y, linear(...))
    const Tensor x = Tensor::from_data(randv(5 * 40, 590).data(), {5, 40}, DType::F32);
    const Tensor w = Tensor::from_data(randv(9 * 40, 591).data(), {9, 40}, DType::F32);
    const Tensor b = Tensor::from_data(randv(9, 592).data(), {9}, DType::F32);
    const std::vector<float> wide0 = randv(10 * 9, 593);
    Tensor wide = Tensor::from_data(wide0.data(), {10, 9}, DType::F32);
    Tensor ys = wide.reshape({5, 2, 9}).select(1, 0);
    ASSERT_FALSE(ys.is_contiguous());
    Tensor expect = ys.clone();  // contiguous copy of the rows linear_add_ must update
    add_(expect, linear(x, w, b));
    linear_add_(ys, x, w, b);
    for (int64_t r = 0; r < 10; ++r)
        for (int64_t o = 0; o < 9; ++o) {
            const float want = r % 2 == 0 ? expect.f32()[r / 2 * 9 + o] : wide0[static_cast<size_t>(r * 9 + o)];
            EXPECT_EQ(wide.f32()[r * 9 + o], want) << "row " << r << " col " << o;  // odd rows untouched
        }
    // the wrong output shape is a typed error and writes nothing
    Tensor bad = Tensor::from_data(wide0.data(), {5, 8}, DType::F32);
    try {
        linear_add_(bad, x, w, b);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kShapeMismatch);
    }
    EXPECT_EQ(std::vector<float>(bad.f32(), bad.f32() + 40), std::vector<float>(wide0.begin(), wide0.begin() + 40));
}

// linear_concat (one GEMM for several weights, e.g. a self-attention's q, k, v): the double reference on every
// level and weight dtype, with strided x, parts of 32 / 64 rows (one GEMM, panels never straddle parts) and a ragged
// last part; the same bits as one linear per weight into its columns; parts not a multiple of 32 (the per-part
// fallback) as well; bad shapes and dtypes are typed errors.
TEST(GemmConv, LinearConcatMatchesReferenceAndSeparateLinears) {
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            for (const std::vector<int64_t>& outs : std::vector<std::vector<int64_t>>{{64, 32, 45}, {33, 7}, {96}}) {
                const int64_t rows = 37, in = 77;
                Tensor xw = Tensor::from_data(randv(static_cast<size_t>(rows * (in + 3)), 21).data(), {rows, in + 3}, DType::F32);
                Tensor x = xw.slice(1, 1, 1 + in);  // rows strided by in + 3
                std::vector<Stored> st;
                std::vector<Tensor> ws;
                int64_t total = 0;
                for (size_t i = 0; i < outs.size(); ++i) {
                    st.push_back(store(randv(static_cast<size_t>(outs[i] * in), 30 + static_cast<uint32_t>(i)), dt));
                    total += outs[i];
                }
                for (size_t i = 0; i < outs.size(); ++i) ws.push_back(tensor_of(st[i], {outs[i], in}));
                Tensor y = linear_concat(x, ws);
                ASSERT_EQ(y.shape(), Shape({rows, total}));
                std::vector<double> ref(static_cast<size_t>(rows * total));
                int64_t off = 0;
                for (size_t i = 0; i < outs.size(); ++i) {
                    Tensor sep = linear(x, ws[i], Tensor());
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t o = 0; o < outs[i]; ++o) {
                            double acc = 0;
                            for (int64_t k = 0; k < in; ++k)
                                acc += static_cast<double>(x.f32()[r * (in + 3) + k]) * st[i].f32[static_cast<size_t>(o * in + k)];
                            ref[static_cast<size_t>(r * total + off + o)] = acc;
                            ASSERT_EQ(y.f32()[r * total + off + o], sep.f32()[r * outs[i] + o])
                                << isa.name() << " " << dtype_name(dt) << " part " << i << " row " << r << " col " << o;
                        }
                    off += outs[i];
                }
                EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << isa.name() << " " << dtype_name(dt) << " parts " << outs.size();
            }
        }
    }
    EXPECT_EQ(code_of([] { linear_concat(Tensor::zeros({2, 3}), {}); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([] { linear_concat(Tensor::zeros({2, 3}), {Tensor::zeros({32, 3}), Tensor::zeros({4, 5})}); }),
              Code::kShapeMismatch);
    EXPECT_EQ(code_of([] { linear_concat(Tensor::zeros({2, 3}), {Tensor::zeros({4, 3}, DType::I32)}); }), Code::kDtype);
    EXPECT_EQ(code_of([] { linear_concat(Tensor::zeros({2, 3}, DType::I32), {Tensor::zeros({4, 3})}); }), Code::kDtype);
}

// linear_geglu: the GEMM's tiles through GEGLU as they are made (weight rows reordered into value / gate panels).
// Against a double reference (1e-5 of the output scale) and bit for bit against geglu(linear(x, w, b)) (on the
// emulated AVX-512 level: with the weight's rows in the panel order, see below) on every level and weight dtype, with
// and without bias, strided x, partial row panels, depths of one and of several depth blocks (600 > KC on AVX2 and
// the AVX-512 blocking), I not a multiple of the half panel (the two-pass fallback), 1 and 3 threads; typed errors
// on bad shapes and dtypes.
TEST(GemmConv, LinearGegluMatchesReferenceAndTwoPasses) {
    IsaGuard guard;
    struct Case {
        int64_t rows, in, I;
        bool bias;
    };
    const Case cases[] = {{37, 77, 64, true}, {6, 128, 32, false}, {93, 600, 48, true}, {5, 33, 12, true},
                          {1, 1, 16, true}, {50, 300, 160, false}};
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            for (const Case& c : cases) {
                const int64_t rows = c.rows, in = c.in, I = c.I;
                const std::string what = std::string(isa.name()) + " " + dtype_name(dt) + " rows " +
                                         std::to_string(rows) + " in " + std::to_string(in) + " I " + std::to_string(I);
                Tensor xw = Tensor::from_data(randv(static_cast<size_t>(rows * (in + 3)), 41).data(), {rows, in + 3},
                                              DType::F32);
                Tensor x = xw.slice(1, 2, 2 + in);  // rows strided by in + 3
                const Stored st = store(randv(static_cast<size_t>(2 * I * in), 42), dt);
                const Tensor w = tensor_of(st, {2 * I, in});
                const std::vector<float> bv = randv(static_cast<size_t>(2 * I), 43);
                const Tensor b = c.bias ? Tensor::from_data(bv.data(), {2 * I}, DType::F32) : Tensor();
                const Tensor y = linear_geglu(x, w, b);
                ASSERT_EQ(y.shape(), Shape({rows, I})) << what;
                const Tensor two = geglu(linear(x, w, b));
                // The same two passes with the weight's rows in the fused path's panel order (each product element
                // then sits at the same lane of the same tile): what the fused GEMM must equal bit for bit even where
                // a kernel's rounding may depend on the lane (the SIMDe emulation built with sanitizers does).
                const int NR = detail::gemm_blocking(in).NR;
                const int64_t H = NR / 2;
                const bool fused = I % H == 0;
                Tensor two_p = two;
                if (fused) {
                    auto src = [&](int64_t n) { return n % NR < H ? n / NR * H + n % NR : I + n / NR * H + n % NR - H; };
                    Stored sp = st;
                    std::vector<float> bp(bv.size());
                    for (int64_t n = 0; n < 2 * I; ++n) {
                        for (int64_t k = 0; k < in; ++k) {
                            sp.f32[static_cast<size_t>(n * in + k)] = st.f32[static_cast<size_t>(src(n) * in + k)];
                            if (dt != DType::F32) sp.half[static_cast<size_t>(n * in + k)] = st.half[static_cast<size_t>(src(n) * in + k)];
                        }
                        bp[static_cast<size_t>(n)] = bv[static_cast<size_t>(src(n))];
                    }
                    const Tensor lp = linear(x, tensor_of(sp, {2 * I, in}),
                                             c.bias ? Tensor::from_data(bp.data(), {2 * I}, DType::F32) : Tensor());
                    Tensor ln = Tensor::empty({rows, 2 * I});
                    for (int64_t r = 0; r < rows; ++r)
                        for (int64_t n = 0; n < 2 * I; ++n) ln.f32()[r * 2 * I + src(n)] = lp.f32()[r * 2 * I + n];
                    two_p = geglu(ln);
                }
                std::vector<double> ref(static_cast<size_t>(rows * I));
                const std::vector<double> z = ref_xwt(xw.f32() + 2, in + 3, st.f32, rows, 2 * I, in);
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t j = 0; j < I; ++j) {
                        const double a = z[static_cast<size_t>(r * 2 * I + j)] + (c.bias ? bv[static_cast<size_t>(j)] : 0.0);
                        const double g = z[static_cast<size_t>(r * 2 * I + I + j)] + (c.bias ? bv[static_cast<size_t>(I + j)] : 0.0);
                        ref[static_cast<size_t>(r * I + j)] = a * act_ref(g, Act::kGelu);
                        ASSERT_EQ(y.f32()[r * I + j], two_p.f32()[r * I + j]) << what << " row " << r << " col " << j;
                        // the kernels themselves (not the emulation) round alike in every lane
                        if (!isa.emu)
                            ASSERT_EQ(y.f32()[r * I + j], two.f32()[r * I + j]) << what << " row " << r << " col " << j;
                    }
                EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << what;
                {
                    ThreadPool three(3);
                    PoolScope scope(&three);
                    const Tensor y3 = linear_geglu(x, w, b);
                    for (int64_t i = 0; i < rows * I; ++i) ASSERT_EQ(y3.f32()[i], y.f32()[i]) << what << " 3 threads, " << i;
                }
            }
        }
    }
    EXPECT_EQ(code_of([] { linear_geglu(Tensor::zeros({2, 3}), Tensor::zeros({5, 3}), Tensor()); }), Code::kShapeMismatch);
    EXPECT_EQ(code_of([] { linear_geglu(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}), Tensor()); }), Code::kShapeMismatch);
    EXPECT_EQ(code_of([] { linear_geglu(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}), Tensor::zeros({3})); }),
              Code::kShapeMismatch);
    EXPECT_EQ(code_of([] { linear_geglu(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}, DType::I32), Tensor()); }),
              Code::kDtype);
    EXPECT_EQ(code_of([] { linear_geglu(Tensor::zeros({2, 3}, DType::I32), Tensor::zeros({4, 3}), Tensor()); }),
              Code::kDtype);
}

namespace {
std::vector<double> conv2d_ref(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                               int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw,
                               const Conv2dParams& p, int64_t* Ho_out, int64_t* Wo_out) {
    const int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
    const int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
    *Ho_out = Ho;
    *Wo_out = Wo;
    std::vector<double> y(static_cast<size_t>(N * O * Ho * Wo));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o)
            for (int64_t oh = 0; oh < Ho; ++oh)
                for (int64_t ow = 0; ow < Wo; ++ow) {
                    double acc = b.empty() ? 0.0 : b[static_cast<size_t>(o)];
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t i = 0; i < kh; ++i)
                            for (int64_t j = 0; j < kw; ++j) {
                                const int64_t ih = oh * p.stride - p.pad_top + i, iw = ow * p.stride - p.pad_left + j;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                acc += static_cast<double>(x[static_cast<size_t>(((n * C + c) * H + ih) * W + iw)]) *
                                       w[static_cast<size_t>(((o * C + c) * kh + i) * kw + j)];
                            }
                    y[static_cast<size_t>(((n * O + o) * Ho + oh) * Wo + ow)] = acc;
                }
    return y;
}
}  // namespace

TEST(GemmConv, Conv2dMatchesDoubleReference) {
    IsaGuard guard;
    struct Case {
        int64_t N, C, H, W, O, k;
        Conv2dParams p;
    };
    Conv2dParams asym;
    asym.pad_top = 0; asym.pad_left = 1; asym.pad_bottom = 1; asym.pad_right = 0; asym.stride = 2;
    const Case cases[] = {
        {1, 3, 7, 9, 5, 3, Conv2dParams::same(3)},     {2, 7, 33, 5, 17, 3, Conv2dParams::same(3)},
        {1, 5, 9, 10, 7, 3, Conv2dParams::same(3, 2)}, {2, 4, 6, 7, 3, 3, asym},
        {2, 33, 5, 7, 9, 1, Conv2dParams::same(1)},    {1, 6, 7, 7, 4, 1, Conv2dParams::same(1, 2)},
        {1, 20, 16, 16, 40, 3, Conv2dParams::same(3)}, {3, 64, 5, 6, 13, 3, Conv2dParams::same(3)},
        {2, 70, 4, 9, 200, 3, Conv2dParams::same(3, 2)},
        {1, 8, 16, 34, 12, 3, Conv2dParams::same(3, 2)},  // stride 2, output rows of 17 (whole 8-column chunks too)
    };
    uint32_t seed = 100;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (const Case& c : cases)
            for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
                std::vector<float> x = randv(static_cast<size_t>(c.N * c.C * c.H * c.W), seed++);
                Stored w = store(randv(static_cast<size_t>(c.O * c.C * c.k * c.k), seed++), dt);
                std::vector<float> b = randv(static_cast<size_t>(c.O), seed++);
                int64_t Ho, Wo;
                std::vector<double> ref = conv2d_ref(x, w.f32, b, c.N, c.C, c.H, c.W, c.O, c.k, c.k, c.p, &Ho, &Wo);
                Tensor y = conv2d(Tensor::from_data(x.data(), {c.N, c.C, c.H, c.W}, DType::F32),
                                  tensor_of(w, {c.O, c.C, c.k, c.k}), Tensor::from_data(b.data(), {c.O}, DType::F32), c.p);
                ASSERT_EQ(y.shape(), Shape({c.N, c.O, Ho, Wo}));
                EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << isa.name() << " " << dtype_name(dt) << " C=" << c.C
                                                       << " H=" << c.H << " k=" << c.k << " s=" << c.p.stride;
            }
    }
}

// conv2d over a batch (detail::conv_batch_path): small maps grouped side by side in one GEMM (several groups, panels
// that straddle two images, 1x1 and stride 2 through the im2col packer), whole images per thread (im2col 3x3 stride 1
// and 2, 1x1), each image in turn on all threads: the bits of one thread and of the per-image path, within 1e-5 of
// the double reference; f32 and f16 weights, 2 and 3 threads, image counts that split evenly and not.
TEST(GemmConv, Conv2dBatchPathsSameBitsAndMatchDoubleReference) {
    using detail::ConvBatchPath;
    struct Guard {
        bool prev = detail::set_conv_batching(true);
        ~Guard() { detail::set_conv_batching(prev); }
    } guard;
    struct Case {
        int64_t N, C, H, W, O, k;
        Conv2dParams p;
        ConvBatchPath on2, on3;  // the path taken on 2 and on 3 threads (AVX2 or wider)
    };
    const ConvBatchPath G = ConvBatchPath::kGrouped, B = ConvBatchPath::kByImage, P = ConvBatchPath::kPerImage;
    const Case cases[] = {
        {4, 64, 5, 7, 70, 3, Conv2dParams::same(3), G, G},        // 35-pixel maps: 16-column panels span two images
        {12, 70, 7, 7, 24, 3, Conv2dParams::same(3), G, G},       // 49 pixels: groups of 10 and 2 images
        {6, 600, 3, 4, 20, 1, Conv2dParams::same(1), G, G},       // 1x1 through the im2col packer
        {9, 60, 9, 8, 33, 3, Conv2dParams::same(3, 2), G, G},     // stride 2, 5x4 outputs
        {4, 64, 8, 9, 20, 3, Conv2dParams::same(3), B, P},        // 72 pixels, Kdim 576: 4 images on 3 threads per image
        {9, 60, 17, 16, 13, 3, Conv2dParams::same(3, 2), B, B},   // stride 2, 9x8 outputs, 9 images (>= 4 per thread)
        {6, 600, 8, 8, 20, 1, Conv2dParams::same(1), B, B},       // 1x1, Kdim 600
        {4, 20, 8, 8, 20, 3, Conv2dParams::same(3), P, P},        // Kdim 180: one depth block
    };
    uint32_t seed = 300;
    for (const Case& c : cases)
        for (DType dt : {DType::F32, DType::F16}) {
            std::vector<float> x = randv(static_cast<size_t>(c.N * c.C * c.H * c.W), seed++);
            Stored w = store(randv(static_cast<size_t>(c.O * c.C * c.k * c.k), seed++), dt);
            std::vector<float> b = randv(static_cast<size_t>(c.O), seed++);
            int64_t Ho, Wo;
            const std::vector<double> ref = conv2d_ref(x, w.f32, b, c.N, c.C, c.H, c.W, c.O, c.k, c.k, c.p, &Ho, &Wo);
            const Tensor xt = Tensor::from_data(x.data(), {c.N, c.C, c.H, c.W}, DType::F32);
            const Tensor wt = tensor_of(w, {c.O, c.C, c.k, c.k});
            const Tensor bt = Tensor::from_data(b.data(), {c.O}, DType::F32);
            auto run = [&](int threads, bool batching) {
                ThreadPool pool(threads);
                PoolScope s(&pool);
                detail::set_conv_batching(batching);
                const Tensor y = conv2d(xt, wt, bt, c.p);
                detail::set_conv_batching(true);
                return std::vector<float>(y.f32(), y.f32() + y.numel());
            };
            const std::vector<float> one = run(1, false);
            EXPECT_LE(rel_err(one.data(), ref), 1e-5) << dtype_name(dt) << " N=" << c.N << " C=" << c.C << " k=" << c.k;
            for (int t : {1, 2, 3}) {
                const ConvBatchPath path = detail::conv_batch_path(c.N, t, Ho * Wo, c.C * c.k * c.k);
                if (active_isa() == Isa::kPortable) EXPECT_EQ(path, P);
                else EXPECT_EQ(path, t == 1 ? (c.on2 == G ? G : P) : t == 2 ? c.on2 : c.on3) << "N=" << c.N << " t=" << t;
                for (int rep = 0; rep < (t == 1 ? 1 : 2); ++rep) {
                    EXPECT_EQ(run(t, true), one) << "batching, " << t << " threads, N=" << c.N << " " << dtype_name(dt);
                    if (t > 1)
                        EXPECT_EQ(run(t, false), one) << "per image, " << t << " threads, N=" << c.N << " " << dtype_name(dt);
                }
            }
        }
    // the rule's edges: one image, one thread, one depth block (Kdim <= KC), kGroupMaxPixels pixels and more not grouped
    const int64_t KC = detail::gemm_blocking(INT64_MAX).KC;
    if (active_isa() != Isa::kPortable) {
        EXPECT_EQ(detail::conv_batch_path(1, 2, 16, 4608), P);
        EXPECT_EQ(detail::conv_batch_path(32, 1, 1024, 4608), P);
        EXPECT_EQ(detail::conv_batch_path(32, 2, 1024, KC), P);
        EXPECT_EQ(detail::conv_batch_path(32, 2, 1024, KC + 1), B);
        EXPECT_EQ(detail::conv_batch_path(32, 2, detail::kGroupMaxPixels - 1, 36), G);
        EXPECT_EQ(detail::conv_batch_path(32, 2, detail::kGroupMaxPixels, 36), P);
        EXPECT_EQ(detail::conv_group_images(32, 16), detail::kGroupColumns / 16);
        EXPECT_EQ(detail::conv_group_images(3, 16), 3);
        EXPECT_EQ(detail::conv_group_images(32, 63), 8);
        detail::set_conv_batching(false);
        EXPECT_EQ(detail::conv_batch_path(32, 2, 16, 4608), P);
        detail::set_conv_batching(true);
    }
}

// 3x3 / stride 1 / pad 1 convolutions through Winograd F(2x2, 3x3) (ops/conv_winograd.cpp, forced on for these
// small shapes), the same cases through the im2col GEMM (kOff) as a control. Odd and even maps (partial tiles at the
// right and bottom), tile rows of 8k, 8k + r and < 8 tiles (the vector and scalar transform paths), 1 x 1 maps,
// many images in one tile group and groups that are bands of tile rows spanning two images, f32 / f16 / bf16
// weights, with and without bias; the same bits
// on 1, 2 and 3 threads; and which shapes the default (kAuto) mode sends to Winograd.
TEST(GemmConv, Conv3x3WinogradMatchesDoubleReference) {
    IsaGuard guard;
    struct WinoGuard {
        detail::WinogradMode prev = detail::set_conv_winograd(detail::WinogradMode::kAlways);
        ~WinoGuard() { detail::set_conv_winograd(prev); }
    } wino;
    struct Case {
        int64_t N, C, H, W, O;
        bool bias;
    };
    const Case cases[] = {{1, 32, 16, 16, 32, true}, {2, 33, 7, 19, 35, true},  {3, 40, 1, 1, 33, false},
                          {1, 48, 33, 34, 40, true}, {5, 32, 9, 4, 64, false},  {2, 64, 2, 35, 32, true},
                          {20, 32, 4, 6, 32, true},   // 20 whole images in one tile group
                          {2, 32, 10, 300, 32, true}};  // groups of 3 tile rows of 150 tiles: bands across images
    uint32_t seed = 700;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (const Case& c : cases)
            for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
                EXPECT_EQ(detail::conv3x3_winograd_applies(c.N, c.C, c.O, c.H, c.W), isa.isa != Isa::kPortable);
                std::vector<float> x = randv(static_cast<size_t>(c.N * c.C * c.H * c.W), seed++);
                Stored w = store(randv(static_cast<size_t>(c.O * c.C * 9), seed++), dt);
                std::vector<float> b = c.bias ? randv(static_cast<size_t>(c.O), seed++) : std::vector<float>{};
                int64_t Ho, Wo;
                const std::vector<double> ref =
                    conv2d_ref(x, w.f32, b, c.N, c.C, c.H, c.W, c.O, 3, 3, Conv2dParams::same(3), &Ho, &Wo);
                const Tensor xt = Tensor::from_data(x.data(), {c.N, c.C, c.H, c.W}, DType::F32);
                const Tensor bt = c.bias ? Tensor::from_data(b.data(), {c.O}, DType::F32) : Tensor();
                for (bool on : {true, false}) {
                    detail::set_conv_winograd(on ? detail::WinogradMode::kAlways : detail::WinogradMode::kOff);
                    Tensor y = conv2d(xt, tensor_of(w, {c.O, c.C, 3, 3}), bt, Conv2dParams::same(3));
                    ASSERT_EQ(y.shape(), Shape({c.N, c.O, Ho, Wo}));
                    EXPECT_LE(rel_err(y.f32(), ref), 1e-5)
                        << isa.name() << (on ? " winograd " : " im2col ") << dtype_name(dt) << " N=" << c.N
                        << " C=" << c.C << " H=" << c.H << " W=" << c.W << " O=" << c.O;
                }
                detail::set_conv_winograd(detail::WinogradMode::kAlways);
                if (dt == DType::F16) {
                    auto run = [&](int threads) {
                        ThreadPool p(threads);
                        PoolScope s(&p);
                        const Tensor y = conv2d(xt, tensor_of(w, {c.O, c.C, 3, 3}), bt, Conv2dParams::same(3));
                        return std::vector<float>(y.f32(), y.f32() + y.numel());
                    };
                    const std::vector<float> one = run(1);
                    EXPECT_EQ(run(2), one) << isa.name() << " 2 threads, C=" << c.C << " H=" << c.H << " W=" << c.W;
                    EXPECT_EQ(run(3), one) << isa.name() << " 3 threads, C=" << c.C << " H=" << c.H << " W=" << c.W;
                }
            }
    }
    // the default mode: the model's deep 3x3 convolutions (CFG batch 2 x 16 frames) yes, shallow or tiny ones no
    ASSERT_TRUE(use(Level{testing_util::Level{max_supported_isa(), false}}));
    detail::set_conv_winograd(detail::WinogradMode::kAuto);
    const bool avx2 = static_cast<int>(max_supported_isa()) >= static_cast<int>(Isa::kAvx2);
    EXPECT_EQ(detail::conv3x3_winograd_applies(32, 128, 128, 32, 32), avx2);
    EXPECT_EQ(detail::conv3x3_winograd_applies(32, 512, 512, 8, 8), avx2);
    EXPECT_FALSE(detail::conv3x3_winograd_applies(32, 512, 512, 4, 4));
    EXPECT_FALSE(detail::conv3x3_winograd_applies(32, 64, 64, 64, 64));
    EXPECT_FALSE(detail::conv3x3_winograd_applies(32, 320, 4, 32, 32));
    detail::set_conv_winograd(detail::WinogradMode::kOff);
    EXPECT_FALSE(detail::conv3x3_winograd_applies(32, 128, 128, 32, 32));
}

TEST(GemmConv, ConvTemporalAndConv1dMatchDoubleReference) {
    IsaGuard guard;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (DType dt : {DType::F32, DType::F16}) {
            // temporal: B=2 samples x F=3 frames, C=7 -> O=5, 3x5 spatial
            const int64_t B = 2, F = 3, C = 190, O = 15, Hh = 3, Ww = 5, S = Hh * Ww;  // C*3 > one K block
            std::vector<float> x = randv(static_cast<size_t>(B * F * C * S), 31);
            Stored w = store(randv(static_cast<size_t>(O * C * 3), 32), dt);
            std::vector<float> b = randv(static_cast<size_t>(O), 33);
            Tensor y = conv_temporal(Tensor::from_data(x.data(), {B * F, C, Hh, Ww}, DType::F32), static_cast<int>(F),
                                     tensor_of(w, {O, C, 3, 1, 1}), Tensor::from_data(b.data(), {O}, DType::F32));
            std::vector<double> ref(static_cast<size_t>(B * F * O * S));
            for (int64_t bb = 0; bb < B; ++bb)
                for (int64_t f = 0; f < F; ++f)
                    for (int64_t o = 0; o < O; ++o)
                        for (int64_t s = 0; s < S; ++s) {
                            double acc = b[static_cast<size_t>(o)];
                            for (int64_t t = 0; t < 3; ++t) {
                                const int64_t src = f + t - 1;
                                if (src < 0 || src >= F) continue;
                                for (int64_t c = 0; c < C; ++c)
                                    acc += static_cast<double>(w.f32[static_cast<size_t>((o * C + c) * 3 + t)]) *
                                           x[static_cast<size_t>(((bb * F + src) * C + c) * S + s)];
                            }
                            ref[static_cast<size_t>(((bb * F + f) * O + o) * S + s)] = acc;
                        }
            EXPECT_LE(rel_err(y.f32(), ref), 1e-5) << "conv_temporal " << isa.name() << " " << dtype_name(dt);

            // conv1d same: N=2, C=5, L=33, O=4, k=5 (and k=1)
            for (int64_t k : {1, 5}) {
                const int64_t N = 2, Cc = 5, L = 33, Oo = 4, pad = k / 2;
                std::vector<float> x1 = randv(static_cast<size_t>(N * Cc * L), 41);
                Stored w1 = store(randv(static_cast<size_t>(Oo * Cc * k), 42), dt);
                std::vector<float> b1 = randv(static_cast<size_t>(Oo), 43);
                Tensor y1 = conv1d_same(Tensor::from_data(x1.data(), {N, Cc, L}, DType::F32), tensor_of(w1, {Oo, Cc, k}),
                                        Tensor::from_data(b1.data(), {Oo}, DType::F32));
                std::vector<double> r1(static_cast<size_t>(N * Oo * L));
                for (int64_t n = 0; n < N; ++n)
                    for (int64_t o = 0; o < Oo; ++o)
                        for (int64_t l = 0; l < L; ++l) {
                            double acc = b1[static_cast<size_t>(o)];
                            for (int64_t c = 0; c < Cc; ++c)
                                for (int64_t j = 0; j < k; ++j) {
                                    const int64_t li = l + j - pad;
                                    if (li < 0 || li >= L) continue;
                                    acc += static_cast<double>(w1.f32[static_cast<size_t>((o * Cc + c) * k + j)]) *
                                           x1[static_cast<size_t>((n * Cc + c) * L + li)];
                                }
                            r1[static_cast<size_t>((n * Oo + o) * L + l)] = acc;
                        }
                ASSERT_EQ(y1.shape(), Shape({N, Oo, L}));
                EXPECT_LE(rel_err(y1.f32(), r1), 1e-5) << "conv1d k=" << k << " " << isa.name() << " " << dtype_name(dt);
            }
        }
    }
}

// The temporal conv's pairs of frames by Winograd F(2,3) over time (kAlways) and the direct GEMM (kOff) against a
// double reference: even and odd frame counts (the last frame of an odd count is direct), one frame, several
// samples, odd pixel counts (panel tails), C beyond one depth block (the accumulating epilogue over several
// blocks), every dtype and kernel level. Also: kAlways takes Winograd wherever it can and kOff never, Winograd and
// direct agree to 2e-6 of the output scale, the same bits on 1 and 3 threads, and the last frame of an odd count is
// bit-equal to the direct path.
TEST(GemmConv, ConvTemporalWinogradMatchesDirectAndDoubleReference) {
    IsaGuard guard;
    struct WGuard {
        detail::WinogradMode prev = detail::set_temporal_winograd(detail::WinogradMode::kAuto);
        ~WGuard() { detail::set_temporal_winograd(prev); }
    } wguard;
    struct Case {
        int64_t B, F, C, O, S;
    };
    const Case cases[] = {{1, 2, 7, 5, 3}, {2, 3, 33, 15, 17}, {1, 4, 600, 17, 33}, {3, 5, 16, 32, 64}, {1, 1, 9, 4, 5},
                          {2, 16, 40, 24, 16}};
    uint32_t seed = 70;
    for (Level isa : levels()) {
        ASSERT_TRUE(use(isa));
        for (const Case& k : cases)
            for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
                const int64_t NF = k.B * k.F;
                std::vector<float> x = randv(static_cast<size_t>(NF * k.C * k.S), seed++);
                Stored w = store(randv(static_cast<size_t>(k.O * k.C * 3), seed++), dt);
                std::vector<float> b = randv(static_cast<size_t>(k.O), seed++);
                std::vector<double> ref(static_cast<size_t>(NF * k.O * k.S));
                for (int64_t bb = 0; bb < k.B; ++bb)
                    for (int64_t f = 0; f < k.F; ++f)
                        for (int64_t o = 0; o < k.O; ++o)
                            for (int64_t s = 0; s < k.S; ++s) {
                                double acc = b[static_cast<size_t>(o)];
                                for (int64_t t = 0; t < 3; ++t) {
                                    const int64_t src = f + t - 1;
                                    if (src < 0 || src >= k.F) continue;
                                    for (int64_t c = 0; c < k.C; ++c)
                                        acc += static_cast<double>(w.f32[static_cast<size_t>((o * k.C + c) * 3 + t)]) *
                                               x[static_cast<size_t>(((bb * k.F + src) * k.C + c) * k.S + s)];
                                }
                                ref[static_cast<size_t>(((bb * k.F + f) * k.O + o) * k.S + s)] = acc;
                            }
                Tensor xt = Tensor::from_data(x.data(), {NF, k.C, 1, k.S}, DType::F32);
                Tensor wt = tensor_of(w, {k.O, k.C, 3, 1, 1}), bt = Tensor::from_data(b.data(), {k.O}, DType::F32);
                Tensor y[3];
                const detail::WinogradMode modes[3] = {detail::WinogradMode::kOff, detail::WinogradMode::kAlways,
                                                       detail::WinogradMode::kAuto};
                for (int m = 0; m < 3; ++m) {
                    detail::set_temporal_winograd(modes[m]);
                    y[m] = conv_temporal(xt, static_cast<int>(k.F), wt, bt);
                    ASSERT_EQ(y[m].shape(), Shape({NF, k.O, 1, k.S}));
                    EXPECT_LE(rel_err(y[m].f32(), ref), 1e-5)
                        << "conv_temporal mode " << m << " " << isa.name() << " " << dtype_name(dt) << " B" << k.B << " F"
                        << k.F << " C" << k.C << " O" << k.O << " S" << k.S;
                }
                // kAlways took Winograd wherever it can (frames >= 2, not the portable level), kOff never
                const bool wino = k.F >= 2 && isa.isa != Isa::kPortable;
                detail::set_temporal_winograd(detail::WinogradMode::kAlways);
                EXPECT_EQ(detail::temporal_winograd_applies(static_cast<int>(k.F), k.C, k.O, k.S), wino);
                detail::set_temporal_winograd(detail::WinogradMode::kOff);
                EXPECT_FALSE(detail::temporal_winograd_applies(static_cast<int>(k.F), k.C, k.O, k.S));
                bool differs = false;  // Winograd rounds differently somewhere
                for (int64_t i = 0; i < y[0].numel() && !differs; ++i) differs = y[0].f32()[i] != y[1].f32()[i];
                EXPECT_EQ(differs, wino) << isa.name() << " F" << k.F << " C" << k.C;
                double diff = 0, scale = 1;
                for (int64_t i = 0; i < y[0].numel(); ++i) {
                    diff = std::max(diff, static_cast<double>(std::fabs(y[0].f32()[i] - y[1].f32()[i])));
                    scale = std::max(scale, static_cast<double>(std::fabs(y[0].f32()[i])));
                }
                EXPECT_LE(diff / scale, 2e-6) << "Winograd vs direct " << isa.name() << " F" << k.F;
                // the same bits on 1 and 3 threads
                detail::set_temporal_winograd(detail::WinogradMode::kAlways);
                for (int threads : {1, 3}) {
                    ThreadPool p(threads);
                    PoolScope scope(&p);
                    Tensor yt = conv_temporal(xt, static_cast<int>(k.F), wt, bt);
                    for (int64_t i = 0; i < yt.numel(); ++i)
                        ASSERT_EQ(yt.f32()[i], y[1].f32()[i]) << threads << " threads, " << isa.name();
                }
                // the last frame of an odd count and single frames go the direct way: bit-equal to kOff
                if (k.F % 2 == 1)
                    for (int64_t bb = 0; bb < k.B; ++bb) {
                        const int64_t off = (bb * k.F + k.F - 1) * k.O * k.S;
                        for (int64_t i = 0; i < k.O * k.S; ++i)
                            ASSERT_EQ(y[0].f32()[off + i], y[1].f32()[off + i]) << "last frame " << isa.name();
                    }
            }
    }
}

TEST(GemmConv, BadShapesAndDtypesThrowTypedErrors) {
    Tensor x = Tensor::zeros({1, 4, 5, 5});
    EXPECT_EQ(code_of([&] { conv2d(x, Tensor::zeros({2, 3, 3, 3}), Tensor(), Conv2dParams::same(3)); }), Code::kShapeMismatch);
    EXPECT_EQ(code_of([&] { conv2d(x, Tensor::zeros({2, 4, 3, 3}, DType::I32), Tensor(), Conv2dParams::same(3)); }), Code::kDtype);
    EXPECT_EQ(code_of([&] { conv2d(x, Tensor::zeros({2, 4, 9, 9}), Tensor(), Conv2dParams()); }), Code::kShapeMismatch);
    EXPECT_EQ(code_of([&] { conv_temporal(x, 3, Tensor::zeros({4, 4, 3, 1, 1}), Tensor()); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([&] { linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}), Tensor()); }), Code::kShapeMismatch);
    std::vector<float> a(4);
    EXPECT_EQ(code_of([&] { gemm(2, 2, 1, {a.data(), DType::I32, 1, 1}, {a.data(), DType::F32, 2, 1}, a.data(), 2); }),
              Code::kDtype);
}

// Every AVX-512 blocking the tuning bench (gemm_avx512_sweep) can choose: 6 / 12 / 14 x 32 microkernels, both
// inner loop orders, depth / row blocks that are not multiples of anything (K tails, MC not a multiple of MR), on
// the real AVX-512 level when the CPU has it and on the emulated-wide level (the kernels' text over SIMDe) when it
// has AVX2; f32 and f16 B, accumulate + bias epilogue; against the double reference.
TEST(GemmConv, WideTuningVariantsMatchDoubleReference) {
    IsaGuard guard;
    struct TuningGuard {
        detail::GemmWideTuning prev = detail::gemm_wide_tuning();
        ~TuningGuard() { detail::set_gemm_wide_tuning(prev); }
    } tguard;
    std::vector<Level> wide;
    for (const Level& l : levels())
        if (l.emu || l.isa == Isa::kAvx512) wide.push_back(l);
    if (wide.empty()) GTEST_SKIP() << "no AVX-512 and no AVX2 (emulated wide) level on this CPU";
    const detail::GemmWideTuning variants[] = {
        {6, 256, 144, 3072, false}, {12, 37, 30, 3072, false}, {14, 64, 50, 96, true}, {12, 256, 144, 3072, true},
        {14, 256, 140, 3072, false}, {6, 17, 13, 64, true}, {12, 384, 96, 3072, false}};
    const int64_t sizes[][3] = {{1, 1, 1}, {13, 40, 600}, {150, 70, 17}, {29, 65, 259}, {31, 130, 400}};
    uint32_t seed = 900;
    for (const Level& l : wide) {
        ASSERT_TRUE(use(l));
        for (const detail::GemmWideTuning& t : variants) {
            detail::set_gemm_wide_tuning(t);
            for (auto& s : sizes) {
                const int64_t M = s[0], N = s[1], K = s[2];
                for (DType bdt : {DType::F32, DType::F16}) {
                    std::vector<float> av = randv(static_cast<size_t>(M * K), seed++);
                    Stored bs = store(randv(static_cast<size_t>(N * K), seed++), bdt);  // B stored [N, K]
                    std::vector<float> bias = randv(static_cast<size_t>(N), seed++);
                    std::vector<float> c = randv(static_cast<size_t>(M * N), seed++);
                    std::vector<double> ref = ref_xwt(av.data(), K, bs.f32, M, N, K);
                    for (int64_t m = 0; m < M; ++m)
                        for (int64_t n = 0; n < N; ++n)
                            ref[static_cast<size_t>(m * N + n)] += c[static_cast<size_t>(m * N + n)] + bias[n];
                    GemmEpilogue ep;
                    ep.accumulate = true;
                    ep.bias_col = bias.data();
                    gemm(M, N, K, {av.data(), DType::F32, K, 1}, {bs.data(), bdt, 1, K}, c.data(), N, ep);
                    EXPECT_LE(rel_err(c.data(), ref), 1e-5)
                        << l.name() << " rows " << t.rows << " KC " << t.KC << " MC " << t.MC << " NC " << t.NC
                        << (t.a_outer ? " a_outer" : "") << " M=" << M << " N=" << N << " K=" << K << " B "
                        << dtype_name(bdt);
                }
            }
        }
    }
    EXPECT_THROW(detail::set_gemm_wide_tuning({7, 256, 144, 3072, false}), Error);
    EXPECT_THROW(detail::set_gemm_wide_tuning({6, 0, 144, 3072, false}), Error);
}

// The AVX2 level's tunable blocking (gemm_avx2_sweep): odd depth / row / column blocks against the double reference.
TEST(GemmConv, Avx2BlockingVariantsMatchDoubleReference) {
    IsaGuard guard;
    if (static_cast<int>(max_supported_isa()) < static_cast<int>(Isa::kAvx2)) GTEST_SKIP() << "no AVX2 on this CPU";
    struct BlockingGuard {
        detail::GemmAvx2Blocking prev = detail::gemm_avx2_blocking();
        ~BlockingGuard() { detail::set_gemm_avx2_blocking(prev); }
    } bguard;
    ASSERT_TRUE(use({{Isa::kAvx2, false}}));
    const detail::GemmAvx2Blocking variants[] = {{512, 192, 3072}, {37, 13, 3072}, {256, 72, 48}, {1024, 48, 16}};
    const int64_t sizes[][3] = {{1, 1, 1}, {13, 40, 600}, {150, 70, 17}, {29, 65, 259}};
    uint32_t seed = 1900;
    for (const detail::GemmAvx2Blocking& b : variants) {
        detail::set_gemm_avx2_blocking(b);
        for (auto& s : sizes) {
            const int64_t M = s[0], N = s[1], K = s[2];
            std::vector<float> av = randv(static_cast<size_t>(M * K), seed++), bv = randv(static_cast<size_t>(K * N), seed++);
            std::vector<float> c(static_cast<size_t>(M * N));
            std::vector<double> ref(c.size());
            for (int64_t m = 0; m < M; ++m)
                for (int64_t n = 0; n < N; ++n) {
                    double acc = 0;
                    for (int64_t k = 0; k < K; ++k)
                        acc += static_cast<double>(av[static_cast<size_t>(m * K + k)]) * bv[static_cast<size_t>(k * N + n)];
                    ref[static_cast<size_t>(m * N + n)] = acc;
                }
            gemm(M, N, K, {av.data(), DType::F32, K, 1}, {bv.data(), DType::F32, N, 1}, c.data(), N);
            EXPECT_LE(rel_err(c.data(), ref), 1e-5) << "KC " << b.KC << " MC " << b.MC << " NC " << b.NC << " M=" << M
                                                    << " N=" << N << " K=" << K;
        }
    }
    EXPECT_THROW(detail::set_gemm_avx2_blocking({0, 192, 3072}), Error);
}

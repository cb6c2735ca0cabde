// cuda_check: runs every op of the CUDA backend against the CPU backend on seeded random data and prints one
// JSON line per case: {"op", "shape", "max_abs", "ref_max_abs", "tol", "pass", "ms"} (ms: median CUDA time of
// one call, synchronised, host clock). The last line is a summary {"summary": true, ...}. Exit code 0 when
// every case passes, 1 when one fails, 2 when the CUDA backend is not available (ERR_NO_CUDA, printed as JSON).
//
//   cuda_check [--quick] [--reps N]
//
// Tolerances: fp32 ops 1e-4 * max(1, max|ref|) (the project's parity bound); the bf16 GEMM 2e-2 * max|ref|.
// Built only with the CUDA part (ST2V_CUDA); run on a GPU machine by scripts/gpu-check.sh.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda_ops.h"
#include "backend/kernel_math.h"
#include "cuda/tests/check_util.h"
#include "core/half.h"
#include "core/tensor.h"
#include "models/t2v/blocks.h"
#include "ops/ops.h"
#include "runtime/blend.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"

using namespace st2v;
using backend::DeviceBuffer;

namespace {

int g_reps = 5;
int g_failed = 0, g_passed = 0;
double g_worst_fp32 = 0;  // worst max_abs / max(1, ref) over fp32 cases

runtime::TorchGenerator g_gen(1234);

Tensor randn(const Shape& s, float scale = 1.f) {
    Tensor t = g_gen.randn(s);
    if (scale != 1.f)
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= scale;
    return t;
}

DeviceBuffer up(const Tensor& t) {
    DeviceBuffer b(std::max<size_t>(t.nbytes(), 4));
    b.upload(t.contiguous().raw(), t.nbytes());
    return b;
}
DeviceBuffer up(const std::vector<float>& v) {
    DeviceBuffer b(std::max<size_t>(v.size() * 4, 4));
    b.upload(v.data(), v.size() * 4);
    return b;
}
std::vector<float> down(const DeviceBuffer& b, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    b.download(v.data(), v.size() * 4);
    return v;
}

// Runs `launch` reps times (after one warm-up), returns the median ms per call.
double time_ms(const std::function<void()>& launch) {
    const st2v_backend_api& api = backend::cuda();
    launch();
    backend::check(api.synchronize(), "synchronize");
    std::vector<double> t;
    for (int i = 0; i < g_reps; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        launch();
        backend::check(api.synchronize(), "synchronize");
        t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void report(const char* op, const std::string& shape, const float* ref, const float* got, int64_t n, double ms,
            bool bf16 = false) {
    double max_abs = 0, ref_max = 0;
    bool finite = true;
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(got[i])) finite = false;
        max_abs = std::max(max_abs, std::fabs(double(got[i]) - double(ref[i])));
        ref_max = std::max(ref_max, std::fabs(double(ref[i])));
    }
    const double tol = bf16 ? 2e-2 * std::max(ref_max, 1e-30) : 1e-4 * std::max(1.0, ref_max);
    const bool pass = finite && max_abs <= tol;
    if (!bf16) g_worst_fp32 = std::max(g_worst_fp32, max_abs / std::max(1.0, ref_max));
    (pass ? g_passed : g_failed)++;
    char ms_text[32] = "null";  // ms < 0: not timed
    if (ms >= 0) std::snprintf(ms_text, sizeof ms_text, "%.4f", ms);
    std::printf("{\"op\": \"%s\", \"shape\": \"%s\", \"dtype\": \"%s\", \"max_abs\": %.3e, \"ref_max_abs\": %.3e, "
                "\"tol\": %.3e, \"pass\": %s, \"ms\": %s}\n",
                op, shape.c_str(), bf16 ? "bf16" : "f32", max_abs, ref_max, tol, pass ? "true" : "false", ms_text);
    std::fflush(stdout);
}

// Each case catches its own errors so one failing op does not hide the others.
void run_case(const char* op, const std::function<void()>& body) {
    try {
        body();
    } catch (const Error& e) {
        ++g_failed;
        std::printf("{\"op\": \"%s\", \"pass\": false, \"error\": \"%s\", \"message\": \"%s\"}\n", op,
                    code_name(e.code()), e.what());
        std::fflush(stdout);
    }
}

std::string shp(std::initializer_list<int64_t> d) {
    std::string s = "[";
    for (int64_t v : d) s += (s.size() > 1 ? "," : "") + std::to_string(v);
    return s + "]";
}

void check_elementwise(int64_t n) {
    const st2v_backend_api& api = backend::cuda();
    run_case("silu", [&] {
        Tensor x = randn({n}, 4.f);
        Tensor ref = ops::silu(x);
        DeviceBuffer dx = up(x), dy(n * 4);
        double ms = time_ms([&] { backend::check(api.silu(dx.f32(), dy.f32(), n), "silu"); });
        report("silu", shp({n}), ref.f32(), down(dy, n).data(), n, ms);
    });
    run_case("gelu", [&] {
        Tensor x = randn({n}, 4.f);
        Tensor ref = ops::gelu(x);
        DeviceBuffer dx = up(x), dy(n * 4);
        double ms = time_ms([&] { backend::check(api.gelu(dx.f32(), dy.f32(), n), "gelu"); });
        report("gelu", shp({n}), ref.f32(), down(dy, n).data(), n, ms);
    });
    run_case("geglu", [&] {
        const int64_t rows = 512, C = 1280;
        Tensor x = randn({rows, 2 * C}, 3.f);
        Tensor ref = ops::geglu(x);
        DeviceBuffer dx = up(x), dy(rows * C * 4);
        double ms = time_ms([&] { backend::check(api.geglu(dx.f32(), dy.f32(), rows, C), "geglu"); });
        report("geglu", shp({rows, 2 * C}), ref.f32(), down(dy, rows * C).data(), rows * C, ms);
    });
    run_case("axpby", [&] {
        Tensor x = randn({n}), y = randn({n});
        Tensor ref = ops::axpby(x, 0.75f, y, -1.25f);
        DeviceBuffer dx = up(x), dy = up(y), dz(n * 4);
        double ms = time_ms([&] { backend::check(api.axpby(dx.f32(), 0.75f, dy.f32(), -1.25f, dz.f32(), n), "axpby"); });
        report("axpby", shp({n}), ref.f32(), down(dz, n).data(), n, ms);
    });
}

void check_norms(bool quick) {
    const st2v_backend_api& api = backend::cuda();
    struct G { int64_t B, F, C, H, W; int frames, groups; bool silu; };
    // (the last: 4 groups of 36 rows of 35 elements, so each group is cut into slices of one row, fewer threads than
    // a block's maximum; the 3-d cases: 64 groups of 16 frames, cut into 8 slices)
    std::vector<G> cases = {{2, 16, 320, 16, 16, 1, 32, true}, {2, 16, 320, 16, 16, 16, 32, true},
                            {2, 16, 640, 8, 8, 16, 32, false}, {1, 3, 48, 5, 7, 3, 4, false}};
    if (quick) cases.erase(cases.begin() + 2);
    for (const G& g : cases) {
        const std::string name = g.frames == 1 ? "group_norm_2d" : "group_norm_3d";
        run_case(name.c_str(), [&] {
            const int64_t NF = g.B * g.F, S = g.H * g.W, n = NF * g.C * S;
            Tensor x = randn({NF, g.C, g.H, g.W}, 2.f);
            for (int64_t i = 0; i < n; ++i) x.f32()[i] += 3.f;  // a mean far from 0: tests the shifted sums
            Tensor gamma = randn({g.C}), beta = randn({g.C});
            Tensor ref = ops::group_norm(x, g.frames, g.groups, gamma, beta, 1e-5f, g.silu);
            DeviceBuffer dx = up(x), dg = up(gamma), db = up(beta), dy(n * 4);
            double ms = time_ms([&] {
                backend::check(api.group_norm(dx.f32(), dy.f32(), NF, g.C, S, g.frames, g.groups, dg.f32(), db.f32(),
                                              1e-5f, g.silu ? 1 : 0),
                               "group_norm");
            });
            report((name + (g.silu ? "_silu" : "")).c_str(), shp({NF, g.C, g.H, g.W}) + " frames " + std::to_string(g.frames),
                   ref.f32(), down(dy, n).data(), n, ms);
        });
    }
    for (int64_t C : {320, 1280}) {
        run_case("layer_norm", [&] {
            const int64_t rows = 2 * 16 * 256;
            Tensor x = randn({rows, C}, 2.f);
            Tensor gamma = randn({C}), beta = randn({C});
            Tensor ref = ops::layer_norm(x, gamma, beta, 1e-5f);
            DeviceBuffer dx = up(x), dg = up(gamma), db = up(beta), dy(rows * C * 4);
            double ms = time_ms([&] {
                backend::check(api.layer_norm(dx.f32(), dy.f32(), rows, C, dg.f32(), db.f32(), 1e-5f), "layer_norm");
            });
            report("layer_norm", shp({rows, C}), ref.f32(), down(dy, rows * C).data(), rows * C, ms);
        });
    }
}

void check_embedding_guidance_samplers(int64_t n) {
    const st2v_backend_api& api = backend::cuda();
    run_case("timestep_embedding", [&] {
        const int dim = 320, half = dim / 2;
        std::vector<float> t = {999.f, 981.f, 500.f, 21.f, 1.f, 0.f};
        Tensor ref = ops::timestep_embedding(t, dim, true, 0.f, 10000.f);
        const std::vector<float> freq = ops::timestep_frequencies(dim, 0.f, 10000.f);  // the CPU op's table
        DeviceBuffer dt = up(t), df = up(freq), dy(t.size() * dim * 4);
        const int64_t rows = static_cast<int64_t>(t.size());
        double ms = time_ms([&] {
            backend::check(api.timestep_embedding(dt.f32(), rows, df.f32(), half, 1, dy.f32()), "timestep_embedding");
        });
        report("timestep_embedding", shp({rows, dim}), ref.f32(), down(dy, rows * dim).data(), rows * dim, ms);
    });
    run_case("cfg_combine", [&] {
        Tensor u = randn({n}), c = randn({n});
        Tensor ref = runtime::cfg_combine(u, c, 7.5f);
        DeviceBuffer du = up(u), dc = up(c), dy(n * 4);
        double ms = time_ms([&] { backend::check(api.cfg_combine(du.f32(), dc.f32(), 7.5f, dy.f32(), n), "cfg"); });
        report("cfg_combine", shp({n}), ref.f32(), down(dy, n).data(), n, ms);
    });
    for (float eta : {0.0f, 1.0f}) {
        run_case("ddim_step", [&] {
            runtime::DdimScheduler sch;
            sch.set_timesteps(50);
            const int64_t t = sch.timesteps()[10], prev = sch.prev_timestep(t);
            Tensor x = randn({n}), eps = randn({n}), z = randn({n});
            Tensor ref = sch.step(eps, t, x, eta, &z);
            const auto& acp = sch.alphas_cumprod();
            const kmath::DdimCoefs k = kmath::ddim_coefs(acp[size_t(t)], prev >= 0 ? acp[size_t(prev)] : acp[0], eta);
            const float c5[5] = {k.sqrt_beta_t, k.sqrt_a_t, k.sqrt_a_prev, k.dir_coef, k.std_dev};
            DeviceBuffer dx = up(x), de = up(eps), dz = up(z), dy(n * 4);
            double ms = time_ms([&] {
                backend::check(api.ddim_step(dx.f32(), de.f32(), eta > 0 ? dz.f32() : nullptr, c5, dy.f32(), n), "ddim");
            });
            report(eta > 0 ? "ddim_step_eta1" : "ddim_step", shp({n}), ref.f32(), down(dy, n).data(), n, ms);
        });
    }
    // DPM-Solver++(2M): the CPU reference is the loop body of runtime::dpmpp_2m_sample (kmath, host).
    for (int order : {1, 2}) {
        run_case("dpmpp_2m_step", [&] {
            Tensor x = randn({n}), eps = randn({n}), prev = randn({n});
            const float sigma = 1.7f, alpha = 0.51f, coef_x = 0.83f, coef_d = -0.37f, inv_r0 = 1.9f;
            std::vector<float> ref_x0(static_cast<size_t>(n)), ref(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) {
                const float d0 = kmath::dpm_x0(x.f32()[i], eps.f32()[i], sigma, alpha);
                ref_x0[size_t(i)] = d0;
                ref[size_t(i)] = order == 1 ? kmath::dpm_first_order(x.f32()[i], d0, coef_x, coef_d)
                                            : kmath::dpm_second_order(x.f32()[i], d0, prev.f32()[i], coef_x, coef_d, inv_r0);
            }
            const float c5[5] = {sigma, alpha, coef_x, coef_d, inv_r0};
            DeviceBuffer dx = up(x), de = up(eps), dp = up(prev), d0(n * 4), dy(n * 4);
            double ms = time_ms([&] {
                backend::check(api.dpmpp_2m_step(dx.f32(), de.f32(), order == 2 ? dp.f32() : nullptr, c5, d0.f32(),
                                                 dy.f32(), n),
                               "dpm");
            });
            report(order == 1 ? "dpmpp_2m_x0" : "dpmpp_2m_x0_o2", shp({n}), ref_x0.data(), down(d0, n).data(), n, ms);
            report(order == 1 ? "dpmpp_2m_step_o1" : "dpmpp_2m_step_o2", shp({n}), ref.data(), down(dy, n).data(), n, ms);
        });
    }
}

void check_blend() {
    const st2v_backend_api& api = backend::cuda();
    run_case("blend_merge", [&] {
        const runtime::ChunkPlan plan = runtime::plan_chunks(80, 24, 8);
        const int64_t B = 1, Ch = 4, HW = 40 * 64;
        runtime::PyRandom rng(33);
        const std::vector<int64_t> seam = runtime::draw_blend_offsets(rng, plan);
        std::vector<Tensor> chunks;
        std::vector<DeviceBuffer> dch;
        std::vector<const float*> hptr, dptr;
        for (int64_t k = 0; k < plan.n_chunks; ++k) {
            chunks.push_back(randn({B, Ch, plan.chunk, HW}));
            hptr.push_back(chunks.back().f32());
            dch.push_back(up(chunks.back()));
            dptr.push_back(dch.back().f32());
        }
        const int64_t n = B * Ch * plan.length * HW;
        Tensor ref = Tensor::empty({n});
        runtime::randomized_blend(hptr.data(), seam.data(), plan, B, Ch, HW, ref.f32());
        std::vector<int64_t> r(size_t(plan.n_chunks), 0);  // r[0] unused
        for (int64_t k = 1; k < plan.n_chunks; ++k) r[size_t(k)] = seam[size_t(k - 1)];
        DeviceBuffer dy(n * 4);
        double ms = time_ms([&] {
            backend::check(api.blend_merge(dptr.data(), plan.n_chunks, B, Ch, plan.length, HW, plan.chunk, plan.overlap,
                                           r.data(), dy.f32()),
                           "blend");
        });
        report("blend_merge", shp({B, Ch, plan.length, HW}), ref.f32(), down(dy, n).data(), n, ms);
    });
}

void check_gemm(bool quick) {
    const st2v_backend_api& api = backend::cuda();
    struct Gc { int64_t M, N, K; ops::Act act; bool bias; bool bf16; };
    std::vector<Gc> cases = {{4096, 320, 320, ops::Act::kNone, true, false},
                             {4096, 2560, 320, ops::Act::kNone, true, false},
                             {1024, 1280, 5120, ops::Act::kGelu, true, false},
                             {333, 77, 129, ops::Act::kSilu, false, false},
                             {4096, 1280, 1280, ops::Act::kNone, true, true}};
    if (quick) cases = {cases[0], cases[3], cases[4]};
    for (const Gc& g : cases) {
        run_case("gemm", [&] {
            // y = x @ w^T + b (nn.Linear): A = x [M, K], B = w [N, K] stored transposed.
            Tensor x = randn({g.M, g.K}), w = randn({g.N, g.K}, 1.f / std::sqrt(float(g.K))), b = randn({g.N});
            std::vector<uint16_t> xb, wb;
            ops::MatRef A{x.f32(), DType::F32, g.K, 1}, Bm{w.f32(), DType::F32, 1, g.K};
            if (g.bf16) {  // the reference computes on the same bf16-rounded operands
                xb.resize(size_t(x.numel()));
                wb.resize(size_t(w.numel()));
                for (int64_t i = 0; i < x.numel(); ++i) xb[size_t(i)] = f32_to_bf16(x.f32()[i]);
                for (int64_t i = 0; i < w.numel(); ++i) wb[size_t(i)] = f32_to_bf16(w.f32()[i]);
                A = {xb.data(), DType::BF16, g.K, 1};
                Bm = {wb.data(), DType::BF16, 1, g.K};
            }
            Tensor ref = Tensor::empty({g.M, g.N});
            ops::GemmEpilogue ep;
            ep.bias_col = g.bias ? b.f32() : nullptr;
            ep.act = g.act;
            ops::gemm(g.M, g.N, g.K, A, Bm, ref.f32(), g.N, ep);
            DeviceBuffer dA(g.M * g.K * (g.bf16 ? 2 : 4)), dB(g.N * g.K * (g.bf16 ? 2 : 4)), db = up(b),
                dc(g.M * g.N * 4);
            if (g.bf16) {
                dA.upload(xb.data(), xb.size() * 2);
                dB.upload(wb.data(), wb.size() * 2);
            } else {
                dA.upload(x.f32(), x.nbytes());
                dB.upload(w.f32(), w.nbytes());
            }
            st2v_gemm_args a{};
            a.M = g.M, a.N = g.N, a.K = g.K;
            a.d_a = dA.get(), a.lda = g.K, a.trans_a = 0, a.a_type = g.bf16 ? ST2V_BF16 : ST2V_F32;
            a.d_b = dB.get(), a.ldb = g.K, a.trans_b = 1, a.b_type = a.a_type;
            a.d_c = dc.f32(), a.ldc = g.N;
            a.d_bias = g.bias ? db.f32() : nullptr;
            a.act = static_cast<int>(g.act);
            a.alpha = 1.f;
            double ms = time_ms([&] { backend::check(api.gemm(&a), "gemm"); });
            const char* act = g.act == ops::Act::kGelu ? "gelu" : g.act == ops::Act::kSilu ? "silu" : "none";
            report(g.bf16 ? "gemm_bf16" : "gemm_f32",
                   shp({g.M, g.N, g.K}) + " bias " + (g.bias ? "yes" : "no") + " act " + act, ref.f32(),
                   down(dc, g.M * g.N).data(), g.M * g.N, ms, g.bf16);
        });
    }
}

// C = act(C + A·B + bias) (GemmEpilogue::accumulate, the residual adds): fp32, A row-major, B = w^T.
void check_gemm_accumulate() {
    const st2v_backend_api& api = backend::cuda();
    run_case("gemm_accumulate", [&] {
        const int64_t M = 256, N = 320, K = 640;
        Tensor x = randn({M, K}), w = randn({N, K}, 1.f / std::sqrt(float(K))), b = randn({N}), c0 = randn({M, N});
        Tensor ref = c0.clone();
        ops::GemmEpilogue ep;
        ep.bias_col = b.f32();
        ep.accumulate = true;
        ep.act = ops::Act::kSilu;
        ops::gemm(M, N, K, {x.f32(), DType::F32, K, 1}, {w.f32(), DType::F32, 1, K}, ref.f32(), N, ep);
        DeviceBuffer dA = up(x), dB = up(w), db = up(b), dc = up(c0);
        st2v_gemm_args a{};
        a.M = M, a.N = N, a.K = K;
        a.d_a = dA.get(), a.lda = K, a.a_type = ST2V_F32;
        a.d_b = dB.get(), a.ldb = K, a.trans_b = 1, a.b_type = ST2V_F32;
        a.d_c = dc.f32(), a.ldc = N, a.d_bias = db.f32(), a.act = ST2V_ACT_SILU, a.accumulate = 1, a.alpha = 1.f;
        backend::check(api.gemm(&a), "gemm");  // once: accumulating twice would change the reference
        report("gemm_f32_accumulate", shp({M, N, K}) + " bias yes act silu", ref.f32(), down(dc, M * N).data(), M * N,
               -1.0);
    });
}

// The row-major -> column-major cuBLASLt mapping of every layout the ABI allows: trans_a / trans_b, leading
// dimensions above the minimum (the padding of C must stay untouched), alpha, accumulate, K = 0. fp32.
void check_gemm_layouts() {
    const st2v_backend_api& api = backend::cuda();
    struct L { int ta, tb, acc; int64_t K; float alpha; ops::Act act; };
    const L cases[] = {{0, 0, 0, 19, 1.f, ops::Act::kNone}, {1, 0, 0, 19, 0.5f, ops::Act::kSilu},
                       {0, 1, 1, 19, 1.f, ops::Act::kNone}, {1, 1, 1, 19, -1.5f, ops::Act::kGelu},
                       {0, 1, 0, 0, 1.f, ops::Act::kSilu}, {1, 0, 1, 0, 1.f, ops::Act::kNone}};
    for (const L& c : cases) {
        run_case("gemm_layouts", [&] {
            const int64_t M = 37, N = 29, K = c.K, lda = (c.ta ? M : K) + 3, ldb = (c.tb ? K : N) + 5, ldc = N + 2;
            Tensor a = randn({std::max<int64_t>(c.ta ? K : M, 1), lda}), b = randn({std::max<int64_t>(c.tb ? N : K, 1), ldb});
            Tensor bias = randn({N}), c0 = randn({M, ldc});
            Tensor ref = c0.clone();
            ops::GemmEpilogue ep;
            ep.bias_col = bias.f32(), ep.act = c.act, ep.accumulate = c.acc != 0, ep.alpha = c.alpha;
            const ops::MatRef A{a.f32(), DType::F32, c.ta ? 1 : lda, c.ta ? lda : 1};
            const ops::MatRef B{b.f32(), DType::F32, c.tb ? 1 : ldb, c.tb ? ldb : 1};
            ops::gemm(M, N, K, A, B, ref.f32(), ldc, ep);
            DeviceBuffer dA = up(a), dB = up(b), dbias = up(bias), dc = up(c0);
            st2v_gemm_args g{};
            g.M = M, g.N = N, g.K = K;
            g.d_a = dA.get(), g.lda = lda, g.trans_a = c.ta, g.a_type = ST2V_F32;
            g.d_b = dB.get(), g.ldb = ldb, g.trans_b = c.tb, g.b_type = ST2V_F32;
            g.d_c = dc.f32(), g.ldc = ldc, g.d_bias = dbias.f32(), g.act = static_cast<int>(c.act);
            g.accumulate = c.acc, g.alpha = c.alpha;
            backend::check(api.gemm(&g), "gemm");
            const char* act = c.act == ops::Act::kGelu ? "gelu" : c.act == ops::Act::kSilu ? "silu" : "none";
            report("gemm_f32_layout",
                   shp({M, N, K}) + " trans_a " + std::to_string(c.ta) + " trans_b " + std::to_string(c.tb) +
                       " ld +3/+5/+2 alpha " + std::to_string(c.alpha).substr(0, 5) + (c.acc ? " accumulate" : "") +
                       " act " + act + " (C padding compared too)",
                   ref.f32(), down(dc, M * ldc).data(), M * ldc, -1.0);
        });
    }
}

using cuda_checks::EnvScope;

void check_attention(bool quick) {
    const st2v_backend_api& api = backend::cuda();
    struct Ac { int64_t B, Lq, Lk; int H, D; const char* what; };
    std::vector<Ac> cases = {{2, 1024, 1024, 5, 64, "spatial self 32x32"},
                             {2, 1024, 77, 5, 64, "cross (77 text tokens)"},
                             {2 * 256, 16, 16, 5, 64, "temporal 16 frames"},
                             {3, 37, 53, 2, 40, "odd sizes"},
                             {1, 64, 300, 1, 160, "wide head"},
                             {3, 261, 259, 2, 37, "odd head width, unaligned head columns"}};
    if (quick) cases = {cases[1], cases[3], cases[5]};
    // Both algorithms on every case: the fused online-softmax kernel and the GEMM path (cuBLASLt S = QK^T, row
    // softmax, PV); op "attention" is the fused one, "attention_gemm" the GEMM path.
    // bf16: the GEMM path on bf16 operands (ST2V_CUDA_ATTN_BF16=1) against the CPU attention of the bf16-rounded q, k,
    // v (what is left is the rounding of the probabilities), at the bf16 bound
    auto run = [&](const char* op, const Ac& c, const char* what, bool views, bool bf16 = false) {
        run_case(op, [&] {
            const int64_t HD = int64_t(c.H) * c.D, rs = views ? 3 * HD : HD;
            // views: q, k, v as column slices of one fused [B, L, 3*H*D] projection (row stride 3*H*D; Lq == Lk)
            Tensor qkv = views ? randn({c.B, c.Lq, 3 * HD}) : Tensor();
            Tensor q = views ? qkv.slice(2, 0, HD) : randn({c.B, c.Lq, HD});
            Tensor k = views ? qkv.slice(2, HD, 2 * HD) : randn({c.B, c.Lk, HD});
            Tensor v = views ? qkv.slice(2, 2 * HD, 3 * HD) : randn({c.B, c.Lk, HD});
            const float scale = 1.f / std::sqrt(float(c.D));
            auto rounded = [&](const Tensor& t) { return bf16 ? t.to(DType::BF16).to(DType::F32) : t; };
            Tensor ref = ops::attention(rounded(q), rounded(k), rounded(v), c.H, scale);
            DeviceBuffer dqkv = views ? up(qkv) : DeviceBuffer(), dq = views ? DeviceBuffer() : up(q),
                         dk = views ? DeviceBuffer() : up(k), dv = views ? DeviceBuffer() : up(v), dout(ref.nbytes());
            st2v_attention_args a{};
            a.B = c.B, a.Lq = c.Lq, a.Lk = c.Lk, a.H = c.H, a.D = c.D, a.Dv = c.D;
            a.d_q = views ? dqkv.f32() : dq.f32(), a.q_rs = rs, a.q_bs = c.Lq * rs;
            a.d_k = views ? dqkv.f32() + HD : dk.f32(), a.k_rs = rs, a.k_bs = c.Lk * rs;
            a.d_v = views ? dqkv.f32() + 2 * HD : dv.f32(), a.v_rs = rs, a.v_bs = c.Lk * rs;
            a.d_o = dout.f32(), a.scale = scale;
            double ms = time_ms([&] { backend::check(api.attention(&a), "attention"); });
            report(op, shp({c.B, c.Lq, c.Lk, c.H, c.D}) + " " + what, ref.f32(), down(dout, ref.numel()).data(),
                   ref.numel(), ms, bf16);
        });
    };
    {
        const EnvScope path("ST2V_CUDA_ATTN", "fused");
        run("attention", {2, 256, 256, 5, 64, ""}, "fused qkv rows", true);
        for (const Ac& c : cases) run("attention", c, c.what, false);
    }
    {
        const EnvScope path("ST2V_CUDA_ATTN", "gemm");
        run("attention_gemm", {2, 256, 256, 5, 64, ""}, "fused qkv rows", true);
        for (const Ac& c : cases) run("attention_gemm", c, c.what, false);
        // scores in bands: a budget of 3 rows of one (sample, head) at a time (ST2V_CUDA_ATTN_SCORE_BYTES)
        const EnvScope budget("ST2V_CUDA_ATTN_SCORE_BYTES", "3108");  // 3 x 259 floats
        run("attention_gemm", {2, 37, 259, 3, 24, ""}, "score bands of 3 query rows", false);
    }
    {
        // the GEMM path on bf16 operands (opt-in, for bf16-weight runs): every case, views, bands
        const EnvScope path("ST2V_CUDA_ATTN", "gemm");
        const EnvScope lowp("ST2V_CUDA_ATTN_BF16", "1");
        run("attention_gemm_bf16", {2, 256, 256, 5, 64, ""}, "fused qkv rows", true, true);
        for (const Ac& c : cases) run("attention_gemm_bf16", c, c.what, false, true);
        const EnvScope budget("ST2V_CUDA_ATTN_SCORE_BYTES", "3108");
        run("attention_gemm_bf16", {2, 37, 259, 3, 24, ""}, "score bands of 3 query rows", false, true);
    }
    {
        // a group of 2 of 3 samples per score buffer
        const EnvScope path("ST2V_CUDA_ATTN", "gemm");
        const EnvScope budget("ST2V_CUDA_ATTN_SCORE_BYTES", "40000");  // 2 x 37 x 131 floats = 38776 bytes
        run("attention_gemm", {3, 37, 131, 2, 24, ""}, "score groups of 2 samples", false);
    }
    {
        // the default choice: a head wider than the fused kernel's 256 (the VAE's single 512-wide head) takes the
        // GEMM path; the fused kernel refuses it by name
        const EnvScope path("ST2V_CUDA_ATTN", nullptr);
        run("attention_default", {1, 64, 64, 1, 512, ""}, "head width 512 (VAE mid-block)", false);
        run("attention_default", {2, 300, 256, 2, 64, ""}, "long sequences: GEMM path", false);
        run("attention_default", {2, 300, 77, 2, 64, ""}, "cross attention: fused kernel", false);
        const EnvScope fused("ST2V_CUDA_ATTN", "fused");
        run_case("attention_width_limit", [&] {
            DeviceBuffer dq(64 * 512 * 4), dout(64 * 512 * 4);
            st2v_attention_args a{};
            a.B = 1, a.Lq = 64, a.Lk = 64, a.H = 1, a.D = 512, a.Dv = 512;
            a.d_q = a.d_k = a.d_v = dq.f32(), a.q_rs = a.k_rs = a.v_rs = 512, a.q_bs = a.k_bs = a.v_bs = 64 * 512;
            a.d_o = dout.f32(), a.scale = 1.f;
            const st2v_status st = api.attention(&a);
            const std::string msg = st == ST2V_OK ? "" : api.last_error();
            const bool pass = st == ST2V_E_UNSUPPORTED && msg.find("head width 512") != std::string::npos;
            (pass ? g_passed : g_failed)++;
            std::printf("{\"op\": \"attention_width_limit\", \"shape\": \"[1,64,64,1,512] fused\", \"pass\": %s, "
                        "\"status\": %d}\n", pass ? "true" : "false", static_cast<int>(st));
            std::fflush(stdout);
        });
    }
}

// The typed layer model code uses (backend/cuda_ops.h) against the CPU ops of the same signature.
void check_typed_ops() {
    namespace co = backend::cuda_ops;
    run_case("typed_linear", [&] {
        Tensor x = randn({2, 300, 320}), w = randn({1280, 320}, 1.f / std::sqrt(320.f)), b = randn({1280});
        Tensor ref = ops::linear(x, w, b, ops::Act::kGelu);
        co::DeviceTensor dx = co::DeviceTensor::from_host(x), dw = co::DeviceTensor::from_host(w),
                         db = co::DeviceTensor::from_host(b);
        co::DeviceTensor y;
        double ms = time_ms([&] { y = co::linear(dx, dw, db, co::Act::kGelu); });
        report("typed_linear_gelu", shp({2, 300, 320, 1280}), ref.f32(), y.to_host().f32(), ref.numel(), ms);
    });
    run_case("typed_linear_bf16", [&] {
        // resident bf16 weights, f32 activations (rounded to bf16 on the device); CPU: f32 x, bf16 w
        Tensor x = randn({2, 256, 640}), w = randn({640, 640}, 1.f / std::sqrt(640.f)), b = randn({640});
        Tensor wb = Tensor::empty({640, 640}, DType::BF16);
        for (int64_t i = 0; i < w.numel(); ++i) wb.data<uint16_t>()[i] = f32_to_bf16(w.f32()[i]);
        Tensor ref = ops::linear(x, wb, b, ops::Act::kNone);
        co::DeviceTensor dx = co::DeviceTensor::from_host(x), dw = co::DeviceTensor::from_host(wb),
                         db = co::DeviceTensor::from_host(b);
        co::DeviceTensor y;
        double ms = time_ms([&] { y = co::linear(dx, dw, db); });
        report("typed_linear_bf16_weights", shp({2, 256, 640, 640}), ref.f32(), y.to_host().f32(), ref.numel(), ms, true);
    });
    run_case("cast", [&] {
        // f32 -> bf16 -> f32 on the device equals core/half.h's rounding on the host (exactly)
        Tensor x = randn({1 << 16}, 3.f);
        Tensor ref = Tensor::empty({1 << 16});
        for (int64_t i = 0; i < x.numel(); ++i) ref.f32()[i] = bf16_to_f32(f32_to_bf16(x.f32()[i]));
        co::DeviceTensor y = co::DeviceTensor::from_host(x).to(DType::BF16).to(DType::F32);
        Tensor got = y.to_host();
        double max_abs = 0;
        for (int64_t i = 0; i < x.numel(); ++i) max_abs = std::max(max_abs, double(std::fabs(got.f32()[i] - ref.f32()[i])));
        (max_abs == 0 ? g_passed : g_failed)++;
        std::printf("{\"op\": \"cast_f32_bf16_f32\", \"shape\": \"[65536]\", \"max_abs\": %.3e, \"tol\": 0, "
                    "\"pass\": %s}\n", max_abs, max_abs == 0 ? "true" : "false");
    });
    run_case("typed_group_norm", [&] {
        Tensor x = randn({2 * 8, 64, 12, 20}), g = randn({64}), b = randn({64});
        Tensor ref = ops::group_norm(x, 8, 32, g, b, 1e-6f, true);
        co::DeviceTensor y = co::group_norm(co::DeviceTensor::from_host(x), 8, 32, co::DeviceTensor::from_host(g),
                                            co::DeviceTensor::from_host(b), 1e-6f, true);
        report("typed_group_norm_3d_silu", shp({16, 64, 12, 20}), ref.f32(), y.to_host().f32(), ref.numel(), -1.0);
    });
    run_case("typed_timestep_embedding", [&] {
        std::vector<float> t = {981.f, 1.f};
        Tensor ref = ops::timestep_embedding(t, 1280, true, 0.f, 10000.f);
        co::DeviceTensor y = co::timestep_embedding(t, 1280);
        report("typed_timestep_embedding", shp({2, 1280}), ref.f32(), y.to_host().f32(), ref.numel(), -1.0);
    });
    run_case("typed_ddim_step", [&] {
        runtime::DdimScheduler sch;
        sch.set_timesteps(25);
        const int64_t t = sch.timesteps()[3], prev = sch.prev_timestep(t);
        Tensor x = randn({1, 4, 16, 32, 32}), eps = randn({1, 4, 16, 32, 32}), z = randn({1, 4, 16, 32, 32});
        Tensor ref = sch.step(eps, t, x, 1.0f, &z);
        const auto& acp = sch.alphas_cumprod();
        co::DeviceTensor dz = co::DeviceTensor::from_host(z);
        co::DeviceTensor y = co::ddim_step(co::DeviceTensor::from_host(eps), co::DeviceTensor::from_host(x),
                                           acp[size_t(t)], prev >= 0 ? acp[size_t(prev)] : acp[0], 1.0f, &dz);
        report("typed_ddim_step_eta1", shp({1, 4, 16, 32, 32}), ref.f32(), y.to_host().f32(), ref.numel(), -1.0);
    });
}

// The UNet3D / CAM / APM layout and convolution ops (ABI 2, cuda/kernels_layout.cu) through backend/cuda_ops.h,
// each against its CPU op (or a host loop where the CPU has none) on the same seeded data. Weights given as
// bf16/f16 are handed to the CPU op in the same dtype: both widen exactly, so the fp32 bound holds.
Tensor round_to(const Tensor& w, DType t) {
    Tensor r = Tensor::empty(w.shape(), t);
    for (int64_t i = 0; i < w.numel(); ++i)
        r.data<uint16_t>()[i] = t == DType::BF16 ? f32_to_bf16(w.f32()[i]) : f32_to_f16(w.f32()[i]);
    return r;
}
const char* dname(DType t) { return t == DType::BF16 ? "bf16" : t == DType::F16 ? "f16" : "f32"; }

void check_layout_ops() {
    namespace co = backend::cuda_ops;
    using co::DeviceTensor;
    auto dev = [](const Tensor& t) { return DeviceTensor::from_host(t); };

    struct Cv { int64_t N, C, O, H, W, kh, kw; int stride, pt, pl, pb, pr; DType wt; bool bias; };
    const std::vector<Cv> convs = {
        {2, 32, 48, 16, 16, 3, 3, 1, 1, 1, 1, 1, DType::F32, true},   // 3x3 stride 1
        {2, 32, 40, 15, 17, 3, 3, 2, 1, 1, 1, 1, DType::F32, true},   // 3x3 stride 2 (Downsample2D), odd sizes
        {2, 24, 24, 16, 16, 3, 3, 2, 0, 0, 1, 1, DType::F32, false},  // asymmetric padding, no bias
        {3, 64, 70, 7, 9, 1, 1, 1, 0, 0, 0, 0, DType::F32, true},     // 1x1 (shortcut / proj)
        {2, 4, 32, 7, 9, 3, 3, 1, 1, 1, 1, 1, DType::F32, true},      // conv_in: C = 4, K = 36 (two K slices + a partial one)
        {2, 32, 64, 7, 9, 3, 3, 1, 1, 1, 1, 1, DType::BF16, true},    // resident bf16 weights
        {1, 16, 24, 8, 8, 3, 3, 1, 1, 1, 1, 1, DType::F16, true},     // resident f16 weights
        {1, 8, 12, 11, 13, 5, 3, 1, 2, 1, 2, 1, DType::F32, true},    // 5x3 kernel
    };
    struct Ct { int64_t B; int F; int64_t C, O, H, W; DType wt; };
    // gemm = false: the direct kernel (cuda_ops::set_conv_gemm(false), whatever ST2V_CUDA_CONV says) on f32
    // activations. gemm = true: the tensor-core GEMM path of bf16-weight convolutions, which rounds the activations to
    // bf16, so the reference gets the same rounded activations; what is left is fp32 summation order, and the fp32
    // bound applies (an unfold / scatter index error would not hide under it).
    auto round_trip = [](const Tensor& x) {
        Tensor r = Tensor::empty(x.shape(), DType::F32);
        for (int64_t i = 0; i < x.numel(); ++i) r.f32()[i] = bf16_to_f32(f32_to_bf16(x.f32()[i]));
        return r;
    };
    auto conv2d_case = [&](const Cv& c, bool gemm) {
        const char* op = gemm ? "conv2d_gemm" : "conv2d";
        run_case(op, [&] {
            Tensor x = randn({c.N, c.C, c.H, c.W}), b = randn({c.O});
            if (gemm) x = round_trip(x);
            Tensor w = randn({c.O, c.C, c.kh, c.kw}, 1.f / std::sqrt(float(c.C * c.kh * c.kw)));
            if (c.wt != DType::F32) w = round_to(w, c.wt);
            ops::Conv2dParams p;
            p.stride = c.stride, p.pad_top = c.pt, p.pad_left = c.pl, p.pad_bottom = c.pb, p.pad_right = c.pr;
            Tensor ref = ops::conv2d(x, w, c.bias ? b : Tensor(), p);
            DeviceTensor dx = dev(x), dw = dev(w), db = c.bias ? dev(b) : DeviceTensor(), y;
            double ms = time_ms([&] { y = co::conv2d(dx, dw, db, p); });
            Tensor got = y.to_host();
            ST2V_CHECK(got.shape() == ref.shape(), Code::kShapeMismatch, "%s: cuda %s vs cpu %s", op,
                       got.shape().str().c_str(), ref.shape().str().c_str());
            char what[160];
            std::snprintf(what, sizeof what, "%s w %lldx%lld %s stride %d pad %d,%d,%d,%d%s%s",
                          shp({c.N, c.C, c.H, c.W}).c_str(), (long long)c.kh, (long long)c.kw, dname(c.wt), c.stride,
                          c.pt, c.pl, c.pb, c.pr, c.bias ? " bias" : "", gemm ? ", tensor-core GEMM path" : "");
            report(gemm ? "conv2d_gemm" : c.kh == 1 && c.kw == 1 ? "conv2d_1x1" : "conv2d",
                   std::string(what) + " -> " + got.shape().str(), ref.f32(), got.f32(), ref.numel(), ms);
        });
    };
    auto temporal_case = [&](const Ct& c, bool gemm) {
        const char* op = gemm ? "conv_temporal_gemm" : "conv_temporal";
        run_case(op, [&] {
            Tensor x = randn({c.B * c.F, c.C, c.H, c.W}), b = randn({c.O});
            if (gemm) x = round_trip(x);
            Tensor w = randn({c.O, c.C, 3, 1, 1}, 1.f / std::sqrt(float(3 * c.C)));
            if (c.wt != DType::F32) w = round_to(w, c.wt);
            Tensor ref = ops::conv_temporal(x, c.F, w, b);
            DeviceTensor dx = dev(x), dw = dev(w), db = dev(b), y;
            double ms = time_ms([&] { y = co::conv_temporal(dx, c.F, dw, db); });
            report(op, shp({c.B * c.F, c.C, c.H, c.W}) + " frames " + std::to_string(c.F) + " O " +
                           std::to_string(c.O) + " w " + dname(c.wt) + (gemm ? ", tensor-core GEMM path" : ""),
                   ref.f32(), y.to_host().f32(), ref.numel(), ms);
        });
    };
    const bool gemm_was = co::conv_gemm();
    // The default path for bf16 weights (the first read of ST2V_CUDA_CONV): the tensor-core GEMM unless the
    // environment says "direct".
    run_case("conv_default", [&] {
        const char* e = std::getenv("ST2V_CUDA_CONV");
        const bool want = !(e && std::strcmp(e, "direct") == 0);
        const bool pass = gemm_was == want;
        (pass ? g_passed : g_failed)++;
        std::printf("{\"op\": \"conv_default\", \"shape\": \"ST2V_CUDA_CONV=%s\", \"dtype\": \"bf16\", "
                    "\"path\": \"%s\", \"want\": \"%s\", \"pass\": %s}\n",
                    e ? e : "(unset)", gemm_was ? "gemm" : "direct", want ? "gemm" : "direct", pass ? "true" : "false");
        std::fflush(stdout);
    });
    co::set_conv_gemm(false);
    for (const Cv& c : convs) conv2d_case(c, false);
    for (const Ct& c : std::vector<Ct>{{2, 1, 32, 32, 5, 7, DType::F32},
                                       {2, 3, 32, 40, 5, 7, DType::F32},
                                       {1, 16, 32, 32, 4, 6, DType::F32},
                                       {1, 16, 24, 24, 3, 5, DType::BF16}})
        temporal_case(c, false);
    co::set_conv_gemm(true);
    for (Cv c : convs)  // every f32-weight shape above, with bf16 weights
        if (c.wt == DType::F32) {
            c.wt = DType::BF16;
            conv2d_case(c, true);
        }
    for (const Ct& c : std::vector<Ct>{{2, 3, 32, 40, 5, 7, DType::BF16}, {1, 16, 24, 24, 3, 5, DType::BF16},
                                       {3, 1, 16, 8, 2, 3, DType::BF16}})
        temporal_case(c, true);
    co::set_conv_gemm(gemm_was);
    run_case("conv1d_same", [&] {
        Tensor x = randn({2, 24, 77}), w = randn({32, 24, 5}, 1.f / std::sqrt(120.f)), b = randn({32});
        Tensor ref = ops::conv1d_same(x, w, b);
        DeviceTensor dx = dev(x), dw = dev(w), db = dev(b), y;
        double ms = time_ms([&] { y = co::conv1d_same(dx, dw, db); });
        report("conv1d_same", "[2,24,77] w [32,24,5]", ref.f32(), y.to_host().f32(), ref.numel(), ms);
    });
    run_case("permute", [&] {
        Tensor x = randn({2, 3, 4, 5, 6});
        const std::vector<std::vector<int>> perms = {{0, 2, 1, 3, 4}, {4, 2, 0, 3, 1}, {0, 3, 4, 1, 2}};
        for (const std::vector<int>& pm : perms) {
            Tensor ref = x.permute({pm[0], pm[1], pm[2], pm[3], pm[4]}).contiguous();
            DeviceTensor dx = dev(x), y;
            double ms = time_ms([&] { y = co::permute(dx, pm); });
            Tensor got = y.to_host();
            ST2V_CHECK(got.shape() == ref.shape(), Code::kShapeMismatch, "permute: shape");
            std::string what = "[2,3,4,5,6] perm (";
            for (int a : pm) what += std::to_string(a);
            report("permute_5d", what + ")", ref.f32(), got.f32(), ref.numel(), ms);
        }
    });
    run_case("concat", [&] {
        Tensor a = randn({2, 5, 7, 9}), b = randn({2, 3, 7, 9}), c = randn({2, 8, 7, 9});
        Tensor ref = ops::concat({a, b, c}, 1);
        DeviceTensor da = dev(a), db = dev(b), dc = dev(c), y;
        double ms = time_ms([&] { y = co::concat({da, db, dc}, 1); });
        report("concat_dim1", "[2,5|3|8,7,9]", ref.f32(), y.to_host().f32(), ref.numel(), ms);
        Tensor ref2 = ops::concat({a.slice(1, 0, 3), b}, -1);
        DeviceTensor y2 = co::concat({dev(a.slice(1, 0, 3).contiguous()), db}, -1);
        report("concat_last", "[2,3,7,9|9]", ref2.f32(), y2.to_host().f32(), ref2.numel(), -1.0);
    });
    for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{14, 18}, {11, 13}, {5, 4}}) {
        run_case("upsample_nearest", [&] {
            Tensor x = randn({2, 8, 7, 9});
            Tensor ref = t2v::upsample_nearest(x, hw.first, hw.second);
            DeviceTensor dx = dev(x), y;
            double ms = time_ms([&] { y = co::upsample_nearest(dx, hw.first, hw.second); });
            report("upsample_nearest", "[2,8,7,9] -> " + std::to_string(hw.first) + "x" + std::to_string(hw.second),
                   ref.f32(), y.to_host().f32(), ref.numel(), ms);
        });
    }
    run_case("slice", [&] {
        Tensor x = randn({2, 10, 7, 9});
        struct Sl { int dim; int64_t s, e; };
        for (const Sl& sl : std::vector<Sl>{{1, 3, 8}, {0, 1, 2}, {-1, 2, 9}, {2, 0, 7}}) {
            Tensor ref = x.slice(sl.dim, sl.s, sl.e).contiguous();
            DeviceTensor dx = dev(x), y;
            double ms = time_ms([&] { y = co::slice(dx, sl.dim, sl.s, sl.e); });
            report("slice", "[2,10,7,9] dim " + std::to_string(sl.dim) + " [" + std::to_string(sl.s) + "," +
                                std::to_string(sl.e) + ")",
                   ref.f32(), y.to_host().f32(), ref.numel(), ms);
        }
    });
    run_case("repeat_interleave", [&] {
        Tensor x = randn({3, 5, 4});
        const int r = 4;
        Tensor ref = Tensor::empty({3 * r, 5, 4});
        for (int64_t b = 0; b < 3; ++b)
            for (int k = 0; k < r; ++k)
                for (int64_t i = 0; i < 20; ++i) ref.f32()[(b * r + k) * 20 + i] = x.f32()[b * 20 + i];
        DeviceTensor dx = dev(x), y;
        double ms = time_ms([&] { y = co::repeat_interleave(dx, r); });
        report("repeat_interleave", "[3,5,4] x4", ref.f32(), y.to_host().f32(), ref.numel(), ms);
    });
    // In-place ops run once (repeating would change the reference).
    for (const Shape& bs : std::vector<Shape>{{2, 16, 7, 9}, {16, 7, 9}, {7, 9}, {9}}) {
        run_case("add_", [&] {
            Tensor a = randn({2, 16, 7, 9}), b = randn(bs);
            Tensor ref = ops::add(a, b);
            DeviceTensor da = dev(a);
            co::add_(da, dev(b));
            report("add_", "[2,16,7,9] += " + bs.str(), ref.f32(), da.to_host().f32(), ref.numel(), -1.0);
        });
    }
    run_case("add_channel_", [&] {
        Tensor x = randn({6, 32, 5, 7}), v = randn({6, 32});
        Tensor ref = x.clone();
        for (int64_t i = 0; i < ref.numel(); ++i) ref.f32()[i] += v.f32()[i / 35];
        DeviceTensor dx = dev(x);
        co::add_channel_(dx, dev(v));
        report("add_channel_", "[6,32,5,7] += [6,32]", ref.f32(), dx.to_host().f32(), ref.numel(), -1.0);
    });
    // Bad arguments are typed errors, not crashes.
    run_case("layout_errors", [&] {
        auto expect = [](const char* what, Code want, const std::function<void()>& f) {
            Code got = Code::kOk;
            try {
                f();
            } catch (const Error& e) {
                got = e.code();
            }
            const bool ok = got == want;
            (ok ? g_passed : g_failed)++;
            std::printf("{\"op\": \"error_%s\", \"expected\": \"%s\", \"got\": \"%s\", \"pass\": %s}\n", what,
                        code_name(want), code_name(got), ok ? "true" : "false");
            std::fflush(stdout);
        };
        DeviceTensor x = DeviceTensor::zeros({1, 4, 5, 5}), w = DeviceTensor::zeros({8, 3, 3, 3});
        expect("conv2d_channels", Code::kShapeMismatch, [&] { co::conv2d(x, w, DeviceTensor(), ops::Conv2dParams{}); });
        expect("conv2d_stride0", Code::kInvalidArgument, [&] {
            ops::Conv2dParams p;
            p.stride = 0;
            co::conv2d(x, DeviceTensor::zeros({8, 4, 3, 3}), DeviceTensor(), p);
        });
        expect("conv2d_x_dtype", Code::kDtype,
               [&] { co::conv2d(x.to(DType::BF16), DeviceTensor::zeros({8, 4, 1, 1}), DeviceTensor(), {}); });
        expect("conv_temporal_frames", Code::kInvalidArgument,
               [&] { co::conv_temporal(x, 3, DeviceTensor::zeros({4, 4, 3, 1, 1}), DeviceTensor()); });
        expect("permute_axes", Code::kInvalidArgument, [&] { co::permute(x, {0, 1, 1, 2}); });
        expect("slice_range", Code::kInvalidArgument, [&] { co::slice(x, 2, 3, 6); });
        expect("concat_shape", Code::kShapeMismatch,
               [&] { co::concat({x, DeviceTensor::zeros({1, 4, 5, 6})}, 1); });
        expect("add_broadcast", Code::kShapeMismatch, [&] {
            DeviceTensor a = x;
            co::add_(a, DeviceTensor::zeros({4, 1}));
        });
        expect("add_channel_shape", Code::kShapeMismatch, [&] {
            DeviceTensor a = x;
            co::add_channel_(a, DeviceTensor::zeros({5}));
        });
        expect("repeat_zero", Code::kInvalidArgument, [&] { co::repeat_interleave(x, 0); });
    });
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = std::max(1, std::atoi(argv[++i]));
    }
    const backend::CudaStatus st = backend::cuda_status();
    if (!st.available) {
        std::printf("{\"summary\": true, \"available\": false, \"error\": \"ERR_NO_CUDA\", \"message\": \"%s\"}\n",
                    st.message.c_str());
        return 2;
    }
    std::printf("{\"device\": \"%s\", \"cc\": \"%d.%d\", \"driver\": %d, \"runtime\": %d, \"cublaslt\": %zu, "
                "\"cublaslt_path\": \"%s\", \"build\": \"%s\"}\n",
                st.info.name, st.info.cc_major, st.info.cc_minor, st.info.driver_version, st.info.runtime_version,
                st.info.cublaslt_version, st.info.cublaslt_path, st.info.build);
    const int64_t n = quick ? (1 << 16) + 17 : (1 << 22) + 17;
    check_elementwise(n);
    check_norms(quick);
    check_embedding_guidance_samplers(n);
    check_blend();
    check_gemm(quick);
    check_gemm_accumulate();
    check_gemm_layouts();
    check_attention(quick);
    check_typed_ops();
    check_layout_ops();
    std::printf("{\"summary\": true, \"available\": true, \"passed\": %d, \"failed\": %d, \"worst_fp32_rel\": %.3e}\n",
                g_passed, g_failed, g_worst_fp32);
    return g_failed == 0 ? 0 : 1;
}

// `st2v verify` group "blend" (issue 9): the randomized-blending cases of golden/st2v/blend, recorded from the
// official GaussianDiffusion_SDEdit model_fn:
//   * blend_offsets: the per-step split indices drawn with Python's random (seeded as the manifest says);
//   * blend_x0_step{s}: the fused merge of the recorded per-chunk x0 predictions (exact: it only moves values);
//   * blend_vp_sigmas, blend_solver_sigmas: the logsnr_cosine_interp schedule and the trailing 30-step VE sigmas;
//   * blend_v_out: the whole blended model_fn (per chunk CFG 7.5 + guide-rescale 0.2, v -> x0, merge) at t = 599
//     on the official toy v-model out = tanh(0.7 x + y) * (1 + t / 1000).
// Every size comes from the dump.
#include <cmath>
#include <string>

#include "models/common/verify_registry.h"
#include "runtime/blend.h"
#include "runtime/enhancer_sampling.h"
#include "runtime/rng.h"

namespace st2v::enhancer {
namespace {

using verify::CaseResult;
using verify::compare;
using verify::Dump;

Tensor as_f32(const std::vector<float>& v) { return Tensor::from_data(v.data(), {static_cast<int64_t>(v.size())}, DType::F32); }

// The official toy v-model of the dump: tanh(a·x + y) · (1 + t/1000), y [B, C, 1, H, W] broadcast over frames.
Tensor toy_v(const Tensor& x, int64_t t, const Tensor& y, float a) {
    const Tensor xc = x.contiguous(), yc = y.to(DType::F32).contiguous();
    const int64_t BC = x.size(0) * x.size(1), F = x.size(2), HW = x.size(3) * x.size(4);
    ST2V_CHECK(yc.numel() == BC * HW, Code::kShapeMismatch, "verify blend: toy conditioning %s does not match x %s",
               yc.desc().c_str(), x.desc().c_str());
    const float m = static_cast<float>(1.0 + static_cast<double>(t) / 1000.0);
    Tensor o = Tensor::empty(x.shape(), DType::F32);
    for (int64_t bc = 0; bc < BC; ++bc)
        for (int64_t f = 0; f < F; ++f)
            for (int64_t p = 0; p < HW; ++p) {
                const int64_t i = (bc * F + f) * HW + p;
                o.f32()[i] = std::tanh(a * xc.f32()[i] + yc.f32()[bc * HW + p]) * m;
            }
    return o;
}

void blend_cases(Dump& d, std::vector<CaseResult>& out) {
    if (!d.has("blend/chunk_preds.npy") || !d.has("blend/blend_offsets.npy")) return;
    const int64_t C = static_cast<int64_t>(d.scalar("blend.chunk_size", 24));
    const int64_t O = static_cast<int64_t>(d.scalar("blend.overlap_size", 8));
    const int64_t L = static_cast<int64_t>(d.scalar("blend.length", 56));
    const runtime::ChunkPlan plan = runtime::plan_chunks(L, C, O);
    const Tensor offs = d.npy("blend/blend_offsets.npy").to(DType::F32);  // [steps, seams]
    const Tensor preds = d.npy("blend/chunk_preds.npy").to(DType::F32);   // [steps, chunks, B, Ch, C, H, W]
    const int64_t steps = offs.size(0), seams = offs.size(1);

    if (d.has_scalar("blend.python_random_seed")) {
        runtime::PyRandom rng(static_cast<int64_t>(d.scalar("blend.python_random_seed", 0)));
        Tensor mine = Tensor::empty(offs.shape(), DType::F32);
        for (int64_t s = 0; s < steps; ++s) {
            const std::vector<int64_t> r = runtime::draw_blend_offsets(rng, plan);
            ST2V_CHECK(static_cast<int64_t>(r.size()) == seams, Code::kShapeMismatch, "verify blend: %zu seams drawn, reference has %lld",
                       r.size(), (long long)seams);
            for (int64_t j = 0; j < seams; ++j) mine.f32()[s * seams + j] = static_cast<float>(r[static_cast<size_t>(j)]);
        }
        out.push_back(compare("blend_offsets", mine, offs, 0.0));
    }
    if (d.has("blend/blend_x0_out.npy")) {
        const Tensor& ref = d.npy("blend/blend_x0_out.npy");  // [steps, B, Ch, L, H, W]
        for (int64_t s = 0; s < steps && s < ref.size(0); ++s) {
            std::vector<int64_t> r(static_cast<size_t>(seams));
            for (int64_t j = 0; j < seams; ++j) r[static_cast<size_t>(j)] = static_cast<int64_t>(offs.f32()[s * seams + j]);
            out.push_back(compare("blend_x0_step" + std::to_string(s), runtime::randomized_blend(preds.select(0, s).contiguous(), r, C, O), ref.select(0, s), 0.0));
        }
    }

    runtime::EnhancerSchedule sch;
    if (d.has("blend/vp_sigmas.npy")) out.push_back(compare("blend_vp_sigmas", as_f32(sch.vp_sigmas()), d.npy("blend/vp_sigmas.npy")));
    const int t = static_cast<int>(d.scalar("blend.v.t", 599));
    if (d.has("blend/v_solver_sigmas.npy")) {
        const int n = static_cast<int>(d.npy("blend/v_solver_sigmas.npy").numel()) - 1;
        out.push_back(compare("blend_solver_sigmas", as_f32(sch.solver_sigmas(n, t, 0)), d.npy("blend/v_solver_sigmas.npy")));
    }
    if (d.has("blend/v_xt.npy") && d.has("blend/v_out.npy") && d.has("blend/v_y_cond.npy") && d.has("blend/v_y_uncond.npy") &&
        d.has_scalar("blend.v.sigma")) {
        const Tensor xt = d.npy("blend/v_xt.npy").to(DType::F32);
        const Tensor yc = d.npy("blend/v_y_cond.npy"), yu = d.npy("blend/v_y_uncond.npy");
        runtime::PyRandom rng(static_cast<int64_t>(d.scalar("blend.v.python_random_seed", 0)));
        runtime::EnhancerGuidance g;
        g.guide_scale = static_cast<float>(d.scalar("blend.v.guide_scale", g.guide_scale));
        g.guide_rescale = static_cast<float>(d.scalar("blend.v.guide_rescale", g.guide_rescale));
        g.chunk = C;
        g.overlap = O;
        Tensor got = runtime::enhancer_model_fn(
            xt, static_cast<float>(d.scalar("blend.v.sigma", 0)), sch,
            [&](const Tensor& x, int64_t tt, bool cond) { return toy_v(x, tt, cond ? yc : yu, 0.7f); }, rng, g);
        out.push_back(compare("blend_v_out", got, d.npy("blend/v_out.npy")));
    }
}

const verify::Registrar kBlend("blend", blend_cases, 320);

}  // namespace
}  // namespace st2v::enhancer

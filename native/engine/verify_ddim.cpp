// `st2v verify` group "ddim" (issue 5): the official stage-2 sampling of golden/st2v/ddim — 4 DDIM steps (leading,
// offset 1, eta 1) with CAM + APM and CFG 7.5 — run through the engine's own extension-chunk sampler
// (engine::sample_extension_chunk, the code generate() runs), twice:
//   * "ddim_recorded_*": from the recorded x_T and per-step variance noise;
//   * "ddim_seed_*":     from the generator seed alone (manifest scalar ddim.generator_seed), through the
//                        PyTorch-compatible CPU generator in the official draw order (x_T, then one
//                        randn(F, 4, h, w) per step).
// Conditioning is the dump's step/ part: text tokens, the resampled image tokens of the anchor / zero image
// (context left in the cache by the "step" group, order 100) and step/cond_frames for CAM.
#include <cstdio>

#include "engine/engine.h"
#include "engine/model.h"
#include "models/common/verify_registry.h"
#include "models/t2v/unet3d.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"

namespace st2v::engine {
namespace {

using verify::CaseResult;
using verify::compare;
using verify::Dump;

// Tolerances. One step from the official previous latent ("ddim_single_step*") is held to the project's 1e-4.
// The free-running 4-step trajectories ("ddim_recorded_*", "ddim_seed_*") compound each step's fp32 rounding
// differences through CFG 7.5 and the DDIM x0 extrapolation of the next steps: measured 1.8e-4 .. 2.0e-4
// max-abs (|ref| up to 26.8) while every single step is <= 6.6e-5, and two builds of OUR code that only
// differ in summation order (ST2V_ISA=avx2 vs portable) end 2.0e-4 apart, and the exact (float64) trajectory is
// itself 1.73e-4 from the official fp32 latents_final (tools/ddim_fp64_reference.py; docs/verification.md). They are checked at 1e-3 x max(1, |ref|) and reported with their figures; issue 5's
// 1e-4 on the trajectory is not met.
constexpr double kTrajectoryTol = 1e-3;

// The stage-2 networks of a dump, behind engine::Model (the calls the extension sampler makes).
class DumpModel : public Model {
  public:
    explicit DumpModel(const io::WeightStore& w) : unet_(w, w.has("base_model.conv_in.weight") ? "base_model." : ""), cam_(w, "unet.") {}
    Tensor eps_extension(const Tensor& x, float t, const Tensor& ctx, const Tensor& cond, double*, double*) override {
        const int Fc = static_cast<int>(cond.size(0) / x.size(0));
        t2v::CamResiduals r = cam_.forward(x, t, ctx, cond, Fc, nullptr, &econd_.get(cam_, cond));
        return unet_.forward(x, t, ctx, &r);
    }
    Tensor encode_text(const std::vector<int32_t>&) override { return unsupported(); }
    Tensor encode_image(const Tensor&) override { return unsupported(); }
    Tensor resample(const Tensor&) override { return unsupported(); }
    Tensor eps_base(const Tensor&, float, const Tensor&) override { return unsupported(); }
    Tensor decode(const Tensor&) override { return unsupported(); }

  private:
    static Tensor unsupported() { ST2V_THROW(Code::kUnsupported, "verify ddim: only the stage-2 UNet + CAM are loaded"); }
    t2v::UNet3D unet_;
    t2v::CamNet cam_;
    t2v::ECondCache econd_;  // steps 2.. of the official trajectory reuse E_cond
};

void run_case(const std::string& tag, DumpModel& m, const Tensor& x_T, const runtime::NoiseFn& noise, const Tensor& ctx,
              const Tensor& cond2, const ExtensionSampling& s, Dump& d, std::vector<CaseResult>& out) {
    std::vector<Tensor> per_step;
    Tensor x = sample_extension_chunk(m, runtime::video_to_frames_first(x_T), ctx, cond2, s, noise, {}, [&](int, int64_t, const Tensor& xs) {
        per_step.push_back(runtime::frames_first_to_video(xs, x_T.size(0)));
        return true;
    });
    if (d.has("ddim/latents_per_step.npy")) {
        const Tensor& ref = d.npy("ddim/latents_per_step.npy");  // [steps, B, C, F, h, w]
        ST2V_CHECK(ref.size(0) == static_cast<int64_t>(per_step.size()), Code::kShapeMismatch,
                   "verify ddim: %zu steps run, reference has %lld", per_step.size(), (long long)ref.size(0));
        for (size_t i = 0; i < per_step.size(); ++i) {
            char n[48];
            std::snprintf(n, sizeof n, "ddim_%s_step%zu", tag.c_str(), i);
            out.push_back(compare(n, per_step[i], ref.select(0, static_cast<int64_t>(i)), kTrajectoryTol));
        }
    }
    out.push_back(compare("ddim_" + tag + "_latents_final", runtime::frames_first_to_video(x, x_T.size(0)),
                          d.npy("ddim/latents_final.npy"), kTrajectoryTol));
}

void ddim_cases(Dump& d, std::vector<CaseResult>& out) {
    if (!d.has("ddim/x_T.npy") || !d.has("ddim/latents_final.npy") || !d.has_weights()) return;
    const io::WeightStore& w = d.weights();
    if (!w.has("unet.conv_in.weight")) return;  // no CAM in this dump
    auto it = d.cache().find("step/ctx");
    ST2V_CHECK(it != d.cache().end(), Code::kNotFound, "verify ddim: the step group left no context (step/ text and image tokens missing?)");
    const Tensor ctx = it->second;
    ST2V_CHECK(d.has("step/cond_frames.npy"), Code::kNotFound, "verify ddim: step/cond_frames.npy is missing");
    const Tensor& cf = d.npy("step/cond_frames.npy");  // [1, Fc, 3, H, W]
    ST2V_CHECK(cf.ndim() == 5 && cf.size(0) == 1, Code::kShapeMismatch, "verify ddim: step/cond_frames.npy must be [1, Fc, 3, H, W], got %s",
               cf.desc().c_str());
    Tensor c1 = cf.to(DType::F32).reshape({cf.size(1), cf.size(2), cf.size(3), cf.size(4)});
    Tensor cond2 = ops::concat({c1, c1}, 0);

    const Tensor x_T = d.npy("ddim/x_T.npy").to(DType::F32);  // [1, 4, F, h, w]
    ST2V_CHECK(x_T.ndim() == 5 && x_T.size(0) == 1, Code::kShapeMismatch, "verify ddim: x_T must be [1, C, F, h, w], got %s",
               x_T.desc().c_str());
    ExtensionSampling s;
    s.eta = static_cast<float>(d.scalar("ddim.eta", 1.0));
    s.guidance = static_cast<float>(d.scalar("ddim.guidance_scale", 7.5));
    const Tensor& ts = d.npy("ddim/timesteps.npy");
    s.steps = static_cast<int>(ts.numel());
    {  // the sampler's timesteps are the official ones
        runtime::DdimScheduler sch;
        sch.set_timesteps(s.steps);
        Tensor mine = Tensor::empty({ts.numel()}, DType::F32), ref = ts.to(DType::F32);
        for (int64_t i = 0; i < ts.numel(); ++i) mine.f32()[i] = static_cast<float>(sch.timesteps()[static_cast<size_t>(i)]);
        out.push_back(compare("ddim_timesteps", mine, ref, 0.0));
    }
    DumpModel m(w);

    if (d.has("ddim/var_noises.npy")) {
        const Tensor noises = d.npy("ddim/var_noises.npy").to(DType::F32);  // [steps, F, 4, h, w]
        run_case("recorded", m, x_T, [&](int i, const Shape&) { return noises.select(0, i).contiguous(); }, ctx, cond2, s, d, out);
    }
    if (d.has("ddim/var_noises.npy") && d.has("ddim/latents_per_step.npy")) {
        // Each step alone from the official previous latent: the error of one step, without the trajectory's
        // amplification of earlier rounding differences.
        const Tensor noises = d.npy("ddim/var_noises.npy").to(DType::F32);
        const Tensor& ref = d.npy("ddim/latents_per_step.npy");
        runtime::DdimScheduler sch;
        sch.set_timesteps(s.steps);
        for (int i = 0; i < s.steps && i < ref.size(0); ++i) {
            const Tensor xin = i == 0 ? x_T : ref.select(0, i - 1).to(DType::F32).contiguous();
            const int64_t t = sch.timesteps()[static_cast<size_t>(i)];
            Tensor X = ops::concat({xin, xin}, 0);
            Tensor eps = runtime::video_to_frames_first(runtime::cfg_combine_batch(m.eps_extension(X, static_cast<float>(t), ctx, cond2, nullptr, nullptr), s.guidance));
            Tensor z = noises.select(0, i).contiguous();
            Tensor x1 = sch.step(eps, t, runtime::video_to_frames_first(xin), s.eta, &z);
            char n[48];
            std::snprintf(n, sizeof n, "ddim_single_step%d", i);
            out.push_back(compare(n, runtime::frames_first_to_video(x1, 1), ref.select(0, i)));
        }
    }
    if (d.has_scalar("ddim.generator_seed")) {
        runtime::TorchGenerator g(static_cast<uint64_t>(d.scalar("ddim.generator_seed", 0)));
        Tensor x_seed = g.randn(x_T.shape());
        out.push_back(compare("ddim_seed_x_T", x_seed, x_T, 0.0));
        run_case("seed", m, x_seed, runtime::torch_noise(g), ctx, cond2, s, d, out);
    }
}

const verify::Registrar kDdim("ddim", ddim_cases, 110);

}  // namespace
}  // namespace st2v::engine

// `st2v verify` cases of the StreamingT2V model (issue 4): APM image tokens, the CAM branch (E_cond, skip and
// mid residuals) and the base UNet with and without CAM, plus classifier-free guidance, on the "step/" part
// of a reference dump. Every size (batch, frames, CAM frames, latent/pixel size, tokens) comes from the dump.
#include <cstdio>

#include "models/common/verify_registry.h"
#include "models/t2v/unet3d.h"
#include "ops/ops.h"

namespace st2v::t2v {
namespace {

using verify::CaseResult;
using verify::compare;
using verify::Dump;

// [n, ...] -> [n * times, ...] by repeating the whole tensor (the CFG batch cat([x, x])).
Tensor repeat_batch(const Tensor& x, int64_t times) {
    std::vector<Tensor> parts(static_cast<size_t>(times), x);
    return times == 1 ? x : ops::concat(parts, 0);
}

void step_cases(Dump& d, std::vector<CaseResult>& out) {
    if (!d.has("step/x_t.npy") || !d.has_weights()) return;
    const io::WeightStore& w = d.weights();
    const std::string base = w.has("base_model.conv_in.weight") ? "base_model." : "";
    UNet3D unet(w, base);
    const bool has_res = w.has("resampler.context_embedding.0.weight");
    const bool has_cam = w.has("unet.conv_in.weight") && unet.config().cam_mergers;

    // APM image tokens.
    Tensor img, img_unc;
    if (has_res) {
        Resampler res(w, "resampler.", unet.config().context_dim);
        if (d.has("step/clip_anchor.npy")) {
            const Tensor& e = d.npy("step/clip_anchor.npy");
            img = res.forward(e.to(DType::F32), 1);
            if (d.has("step/img_tokens.npy")) out.push_back(compare("img_tokens", img, d.npy("step/img_tokens.npy")));
        }
        if (d.has("step/clip_zero.npy")) {
            img_unc = res.forward(d.npy("step/clip_zero.npy").to(DType::F32), 1);
            if (d.has("step/img_tokens_unc.npy"))
                out.push_back(compare("img_tokens_unc", img_unc, d.npy("step/img_tokens_unc.npy")));
        }
    }

    // Context of the CFG batch [uncond, cond]: built from our text + image tokens when the dump has the
    // parts (and checked against its ctx), else the dump's ctx.
    Tensor ctx;
    if (d.has("step/text_neg.npy") && d.has("step/text_pos.npy") && (!has_res || (img.defined() && img_unc.defined()))) {
        Tensor tn = d.npy("step/text_neg.npy").to(DType::F32), tp = d.npy("step/text_pos.npy").to(DType::F32);
        Tensor un = has_res ? ops::concat({tn, img_unc}, 1) : tn;
        Tensor co = has_res ? ops::concat({tp, img}, 1) : tp;
        ctx = ops::concat({un, co}, 0);
        if (d.has("step/ctx.npy")) out.push_back(compare("ctx", ctx, d.npy("step/ctx.npy")));
    } else {
        ctx = d.npy("step/ctx.npy").to(DType::F32);
    }
    d.cache()["step/ctx"] = ctx;  // reused by the "ddim" group
    const int64_t B = ctx.size(0);
    const Tensor& xt = d.npy("step/x_t.npy");
    ST2V_CHECK(xt.ndim() == 5, Code::kShapeMismatch, "verify: step/x_t.npy must be [B, C, F, h, w], got %s", xt.desc().c_str());
    ST2V_CHECK(B % xt.size(0) == 0, Code::kShapeMismatch, "verify: ctx batch %lld is not a multiple of x_t's %lld", (long long)B,
               (long long)xt.size(0));
    Tensor X = repeat_batch(xt.to(DType::F32), B / xt.size(0));  // [B, 4, F, h, w]
    ST2V_CHECK(d.has_scalar("step.t"), Code::kFormat, "verify: manifest scalars lack 'step.t'");
    const float t = static_cast<float>(d.scalar("step.t", 0));

    // CAM.
    CamResiduals r;
    if (has_cam && d.has("step/cond_frames.npy")) {
        CamNet cam(w, "unet.");
        const Tensor& cf = d.npy("step/cond_frames.npy");  // [b, Fc, 3, Hp, Wp] in [-1, 1]
        ST2V_CHECK(cf.ndim() == 5, Code::kShapeMismatch, "verify: step/cond_frames.npy must be [b, Fc, 3, H, W], got %s",
                   cf.desc().c_str());
        const int Fc = static_cast<int>(cf.size(1));
        Tensor c1 = cf.to(DType::F32).reshape({cf.size(0) * Fc, cf.size(2), cf.size(3), cf.size(4)});
        Tensor cond = repeat_batch(c1, B / cf.size(0));  // [B*Fc, 3, Hp, Wp]
        Tensor e_cond;
        r = cam.forward(X, t, ctx, cond, Fc, &e_cond);
        if (d.has("step/e_cond.npy")) out.push_back(compare("e_cond", e_cond, d.npy("step/e_cond.npy")));
        for (size_t i = 0; i < r.down.size(); ++i) {
            char n[32];
            std::snprintf(n, sizeof n, "cam_down_%02zu", i);
            const std::string f = std::string("step/") + n + ".npy";
            if (d.has(f)) out.push_back(compare(n, r.down[i], d.npy(f)));
        }
        if (d.has("step/cam_mid.npy")) out.push_back(compare("cam_mid", r.mid, d.npy("step/cam_mid.npy")));
    }

    if (d.has("step/eps_nocam.npy") || !has_cam) {
        Tensor e = unet.forward(X, t, ctx, nullptr);
        if (d.has("step/eps_nocam.npy")) out.push_back(compare("eps_nocam", e, d.npy("step/eps_nocam.npy")));
        if (!has_cam) d.cache()["step/eps"] = e;
    }
    if (has_cam && !r.down.empty()) d.cache()["step/eps"] = unet.forward(X, t, ctx, &r);
    auto it = d.cache().find("step/eps");
    if (it == d.cache().end()) return;
    const Tensor& eps = it->second;
    if (d.has("step/eps.npy")) out.push_back(compare("eps", eps, d.npy("step/eps.npy")));
    if (B == 2 * xt.size(0)) {
        const float g = static_cast<float>(d.scalar("step.guidance_scale", 7.5));
        const int64_t b = xt.size(0);
        Tensor u = eps.slice(0, 0, b).contiguous(), c = eps.slice(0, b, 2 * b).contiguous();
        Tensor cfg = Tensor::empty(u.shape(), DType::F32);
        for (int64_t i = 0; i < u.numel(); ++i) cfg.f32()[i] = u.f32()[i] + g * (c.f32()[i] - u.f32()[i]);
        d.cache()["step/eps_cfg"] = cfg;
        if (d.has("step/eps_cfg.npy")) out.push_back(compare("eps_cfg", cfg, d.npy("step/eps_cfg.npy")));
    }
}

const verify::Registrar kStep("step", step_cases, 100);

}  // namespace
}  // namespace st2v::t2v

// The UNet3D / CAM forward written once for both backends: unet3d.cpp runs it on the CPU modules (ops::),
// device_unet3d.cpp on their device copies (backend::cuda_ops::), so the two cannot drift apart. Internal to
// models/t2v. The modules themselves (blocks.h / device_unet3d.h) have the same members on both sides; what differs
// is behind a backend adapter O (graph_ops.h: CpuGraphOps, device_graph_ops.h: DeviceGraphOps):
//   O::Tensor (default-constructible; size(i)); concat(tensors, dim); upsample_nearest(x, H, W) (to an explicit
//   size); group_norm(x, frames, groups, gamma, beta, eps, silu); add_(a, b); silu(x); slice(x, dim, begin, end);
//   video_to_frames(x) ([B, C, F, H, W] -> [B*F, C, H, W]); frames_to_video(x, F); same_samples(x) (every sample of
//   x [B, ...] the same bytes: detail::samples_identical); spatial(m, h, ctx, F) (a SpatialTransformer: the CPU's
//   takes the context as the caller prepared it, the device's a per-sample context and the frame count).
#pragma once
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "models/t2v/unet3d.h"

namespace st2v::t2v::detail {

template <class O>
struct UNetGraph {
    using T = typename O::Tensor;

    // Encoder::stem: conv_in + transformer_in of x [B, C, F, h, w] -> [B*F, C0, h, w], once for all samples when
    // they are the same bytes and shared_stem() is on (nothing before the first cross-attention sees the context,
    // so each sample's result is the same bits either way).
    template <class E>
    static T stem(const E& e, const T& x) {
        const int64_t B = x.size(0);
        const int F = static_cast<int>(x.size(2));
        const bool shared = B > 1 && shared_stem() && O::same_samples(x);
        T h = e.conv_in(O::video_to_frames(shared ? O::slice(x, 0, 0, 1) : x));  // [B*F or F, C0, h, w]
        if (F > 1) h = e.transformer_in(h, F);
        if (!shared) return h;
        return O::concat(std::vector<T>(static_cast<size_t>(B), h), 0);  // the first sample's result per sample
    }

    // One level's resnet -> temporal conv [-> spatial -> temporal transformer] for layer j.
    template <class L>
    static T layer(const L& l, size_t j, T h, const T& temb, const T& ctx, int F) {
        h = l.resnets[j](h, temb);
        if (F > 1) h = l.temp_convs[j](h, F);
        if (!l.attentions.empty()) {
            h = O::spatial(l.attentions[j], h, ctx, F);
            if (F > 1) h = l.temp_attentions[j](h, F);
        }
        return h;
    }

    // Encoder::run_down: the down path from h (the stem [+ E_cond]); returns the skips, h first.
    template <class E>
    static std::vector<T> down(const E& e, T h, const T& temb, const T& ctx, int F) {
        std::vector<T> skips{h};
        for (const auto& d : e.down) {
            for (size_t j = 0; j < d.resnets.size(); ++j) {
                h = layer(d, j, h, temb, ctx, F);
                skips.push_back(h);
            }
            if (d.has_down) {
                h = d.down(h);
                skips.push_back(h);
            }
        }
        return skips;
    }

    template <class E>
    static T mid(const E& e, T h, const T& temb, const T& ctx, int F) {
        h = e.mid_res[0](h, temb);
        if (F > 1) h = e.mid_tc[0](h, F);
        h = O::spatial(e.mid_attn, h, ctx, F);
        if (F > 1) h = e.mid_tattn(h, F);
        h = e.mid_res[1](h, temb);
        if (F > 1) h = e.mid_tc[1](h, F);
        return h;
    }

    // UNet3D::forward after its checks: x [B, 4, F, h, w], temb [B*F, E], ctx as the modules take it, cam (null for
    // none) the CAM branch's residuals, merged into every skip and the mid block's output -> [B, 4, F, h, w].
    template <class E, class Up, class M, class N, class C, class Cam>
    static T unet(const E& e, const std::vector<Up>& up, const std::vector<M>& mergers, const M& merger_mid,
                  const N& norm_out, const C& conv_out, const T& x, const T& temb, const T& ctx, const Cam* cam) {
        const int64_t B = x.size(0);
        const int F = static_cast<int>(x.size(2));
        std::vector<T> skips = down(e, stem(e, x), temb, ctx, F);
        T mid_in = skips.back();
        if (cam) {
            ST2V_CHECK(!mergers.empty(), Code::kUnsupported, "UNet3D: CAM residuals given but the model has no CAM mergers");
            ST2V_CHECK(cam->down.size() == skips.size(), Code::kShapeMismatch, "UNet3D: %zu CAM residuals for %zu skips",
                       cam->down.size(), skips.size());
            const int Fc = static_cast<int>(cam->down[0].size(0) / B);
            for (size_t i = 0; i < skips.size(); ++i) skips[i] = mergers[i](skips[i], cam->down[i], F, Fc);
        }
        T h = mid(e, mid_in, temb, ctx, F);
        if (cam) h = merger_mid(h, cam->mid, F, static_cast<int>(cam->mid.size(0) / B));
        for (const Up& u : up) {
            for (size_t j = 0; j < u.resnets.size(); ++j) {
                T skip = skips.back();
                skips.pop_back();
                h = layer(u, j, O::concat({h, skip}, 1), temb, ctx, F);
            }
            if (u.has_down) {
                // Nearest x2, or to the size of the next skip when the latent is not a multiple of 2^levels.
                const T& next = skips.back();
                h = u.down(O::upsample_nearest(h, next.size(2), next.size(3)));
            }
        }
        h = O::group_norm(h, 1, 32, norm_out.w, norm_out.b, 1e-5f, true);
        h = conv_out(h);                      // [B*F, 4, h, w]
        return O::frames_to_video(h, F);      // [B, 4, F, h, w]
    }

    // CamNet::forward after its checks: the stem of x's first Fc frames plus E_cond e_cond ([B*Fc, C0, h, w]), then
    // the encoder's down and mid paths with ctx (the text tokens, as the modules take them).
    template <class E, class R>
    static R cam(const E& e, const T& x, const T& temb, const T& ctx, const T& e_cond, int Fc) {
        T h = stem(e, O::slice(x, 2, 0, Fc));  // [B*Fc, C0, h, w]
        ST2V_CHECK(e_cond.shape() == h.shape(), Code::kShapeMismatch,
                   "CAM: E_cond output %s does not match the latent features %s (conditioning frames must be 8x the "
                   "latent size)", e_cond.shape().str().c_str(), h.shape().str().c_str());
        O::add_(h, e_cond);
        R r;
        r.down = down(e, h, temb, ctx, Fc);
        r.mid = mid(e, r.down.back(), temb, ctx, Fc);
        return r;
    }

    // CamNet::encode_cond: E_cond on conditioning frames [N, 3, Hp, Wp] -> [N, C0, h, w].
    template <class Conv>
    static T encode_cond(const Conv& in, const std::vector<Conv>& blocks, const Conv& out, const T& frames) {
        T h = O::silu(in(frames));
        for (const Conv& b : blocks) h = O::silu(b(h));
        return out(h);
    }
};

}  // namespace st2v::t2v::detail

// The enhancer denoiser's (Vid2VidUNet) forward written once for both backends: vid2vid_unet.cpp runs it on the CPU
// modules, device_vid2vid.cpp on their device copies, so the two cannot drift apart. Internal to models/enhancer.
// O: a backend adapter of models/t2v (graph_ops.h / device_graph_ops.h). A block type B has `name` and `mods`, each
// module a `kind` (enhancer::Module::Kind) and the members res, tconv, spatial, temporal, conv of that backend.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/enhancer/vid2vid_unet.h"

namespace st2v::enhancer::detail {

template <class O>
struct Vid2VidGraph {
    using T = typename O::Tensor;
    // Receives each block's output under its golden file name (the CPU's Vid2VidUNet::Tap).
    using Tap = std::function<void(const std::string& name, const T& out)>;

    // One input / middle / output block's modules in order; h [B*F, C, H, W].
    template <class B>
    static T block(const B& b, T h, const T& temb_silu, const T& ctx, int F) {
        for (const auto& m : b.mods) {
            switch (m.kind) {
                case Module::kRes:
                    h = m.res(h, temb_silu);
                    h = m.tconv(h, F);
                    break;
                case Module::kSpatial: h = O::spatial(m.spatial, h, ctx, F); break;
                case Module::kTemporal: h = m.temporal(h, F); break;
                case Module::kConv:
                case Module::kDown: h = m.conv(h); break;
                case Module::kUp: h = m.conv(O::upsample2x_crop_rows(h)); break;  // Upsample: nearest x2, [..., 1:-1, :]
            }
        }
        return h;
    }

    // Vid2VidUNet::forward after the timestep embedding: x [B, C, F, H, W], temb_silu [B*F, E], ctx as the modules
    // take it -> [B, out, F, H, W]. `who` names the model in the skip check's message.
    template <class B, class N, class C>
    static T forward(const std::vector<B>& input, const B& middle, const std::vector<B>& output, const N& out_norm,
                     const C& out_conv, const T& x, const T& temb_silu, const T& ctx, int F, const char* who,
                     const Tap& tap) {
        T h = O::video_to_frames(x);  // [B*F, C, H, W]
        std::vector<T> skips;
        for (const B& b : input) {
            h = block(b, h, temb_silu, ctx, F);
            if (tap) tap(b.name, h);
            skips.push_back(h);
        }
        h = block(middle, h, temb_silu, ctx, F);
        if (tap) tap(middle.name, h);
        for (const B& b : output) {
            T s = skips.back();
            skips.pop_back();
            ST2V_CHECK(s.size(2) == h.size(2) && s.size(3) == h.size(3), Code::kShapeMismatch,
                       "%s: %s: features %s do not match the skip %s", who, b.name.c_str(), h.shape().str().c_str(),
                       s.shape().str().c_str());
            h = block(b, O::concat({h, s}, 1), temb_silu, ctx, F);
            if (tap) tap(b.name, h);
        }
        h = out_conv(O::group_norm(h, 1, 32, out_norm.w, out_norm.b, 1e-5f, /*silu=*/true));
        return O::frames_to_video(h, F);  // [B, out, F, H, W]
    }
};

}  // namespace st2v::enhancer::detail

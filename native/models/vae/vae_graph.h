// The AutoencoderKL forward written once for any backend: vae.cpp runs it on the CPU (ops::), device_vae.cpp on the
// CUDA backend (backend::cuda_ops::), so the two cannot drift apart. Internal to models/vae.
//
// A backend B provides: B::Tensor (default-constructible, ndim() / size(i)); the weights W(name) (throws when
// missing) and F(name) (nullptr when missing), names relative to the VAE ("decoder.conv_in.weight"); and the ops
// conv2d(x, w, b, Conv2dParams), group_norm(x, groups, gamma, beta, eps, silu) (per frame), add_(a, b),
// linear(x, w, b), attention(q, k, v, heads, scale), to_tokens([N, C, H, W]) -> [N, H*W, C] (contiguous),
// from_tokens([N, H*W, C], N, C, H, W) -> [N, C, H, W], upsample2x (nearest).
#pragma once
#include <cmath>
#include <functional>
#include <string>

#include "core/status.h"
#include "models/vae/vae.h"
#include "ops/ops.h"

namespace st2v::vae::detail {

template <class B>
struct VaeGraph {
    using T = typename B::Tensor;
    // Receives named intermediates (enc_down_block_i, enc_mid_block, dec_mid_block, dec_up_block_i).
    using Inter = std::function<void(const std::string&, const T&)>;

    B b;  // a backend adapter: a reference to its model, copied freely
    const Config& cfg;

    T conv(const T& x, const std::string& name, int k, int stride = 1, bool asym = false) const {
        ops::Conv2dParams p;
        if (asym) {  // Downsample2D: pad (0, 1, 0, 1), stride 2
            p.stride = 2;
            p.pad_top = p.pad_left = 0;
            p.pad_bottom = p.pad_right = 1;
        } else {
            p = ops::Conv2dParams::same(k, stride);
        }
        const T* bias = b.F(name + ".bias");
        return b.conv2d(x, b.W(name + ".weight"), bias ? *bias : T(), p);
    }
    T gn(const T& x, const std::string& name, bool silu) const {
        return b.group_norm(x, cfg.groups, b.W(name + ".weight"), b.W(name + ".bias"), cfg.eps, silu);
    }
    T resnet(const T& x, const std::string& p) const {
        T h = gn(x, p + ".norm1", true);
        h = conv(h, p + ".conv1", 3);
        h = gn(h, p + ".norm2", true);
        h = conv(h, p + ".conv2", 3);
        T sc = b.F(p + ".conv_shortcut.weight") ? conv(x, p + ".conv_shortcut", 1) : x;
        b.add_(h, sc);
        return h;
    }
    // The mid-block's attention: one head as wide as the channels, over all H*W positions; residual added.
    T attn(const T& x, const std::string& p) const {
        const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
        T tok = b.to_tokens(gn(x, p + ".group_norm", false));  // [N, HW, C]
        T q = b.linear(tok, b.W(p + ".to_q.weight"), b.W(p + ".to_q.bias"));
        T k = b.linear(tok, b.W(p + ".to_k.weight"), b.W(p + ".to_k.bias"));
        T v = b.linear(tok, b.W(p + ".to_v.weight"), b.W(p + ".to_v.bias"));
        tok = T();
        T o = b.attention(q, k, v, 1, 1.f / std::sqrt(static_cast<float>(C)));
        q = k = v = T();
        o = b.linear(o, b.W(p + ".to_out.0.weight"), b.W(p + ".to_out.0.bias"));
        T out = b.from_tokens(o, N, C, H, W);
        b.add_(out, x);
        return out;
    }
    T mid(const T& x, const std::string& p) const {
        T h = resnet(x, p + ".resnets.0");
        h = attn(h, p + ".attentions.0");
        return resnet(h, p + ".resnets.1");
    }

    void check_image(const T& x) const {
        ST2V_CHECK(x.ndim() == 4, Code::kShapeMismatch, "vae.encode: x must be 4-d [N, C, H, W], got %d dims", x.ndim());
        ST2V_CHECK(x.size(1) == cfg.in_channels, Code::kShapeMismatch, "vae.encode: x has %lld channels, want %lld",
                   (long long)x.size(1), (long long)cfg.in_channels);
        const int64_t f = cfg.factor();
        ST2V_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, Code::kShapeMismatch,
                   "vae.encode: H and W (%lld x %lld) must be multiples of %lld", (long long)x.size(2),
                   (long long)x.size(3), (long long)f);
    }
    void check_latent(const T& z) const {
        ST2V_CHECK(z.ndim() == 4, Code::kShapeMismatch, "vae.decode: z must be 4-d [N, C, h, w], got %d dims", z.ndim());
        ST2V_CHECK(z.size(1) == cfg.latent_channels, Code::kShapeMismatch, "vae.decode: z has %lld channels, want %lld",
                   (long long)z.size(1), (long long)cfg.latent_channels);
    }

    // x [N, 3, H, W] (checked, contiguous f32) -> encoder output before quant_conv [N, 2*latent, H/f, W/f].
    T encoder(const T& x, const Inter* inter = nullptr) const {
        T h = conv(x, "encoder.conv_in", 3);
        const size_t nb = cfg.block_out.size();
        for (size_t i = 0; i < nb; ++i) {
            const std::string p = "encoder.down_blocks." + std::to_string(i);
            for (int j = 0; j < cfg.layers_per_block; ++j) h = resnet(h, p + ".resnets." + std::to_string(j));
            if (i + 1 < nb) h = conv(h, p + ".downsamplers.0.conv", 3, 2, true);
            if (inter) (*inter)("enc_down_block_" + std::to_string(i), h);
        }
        h = mid(h, "encoder.mid_block");
        if (inter) (*inter)("enc_mid_block", h);
        h = gn(h, "encoder.conv_norm_out", true);
        return conv(h, "encoder.conv_out", 3);
    }
    // z [N, latent, h, w] (checked, contiguous f32, unscaled) -> image [N, 3, h*f, w*f] (no clamp).
    T decode(const T& z, const Inter* inter = nullptr) const {
        T h = conv(z, "post_quant_conv", 1);
        h = conv(h, "decoder.conv_in", 3);
        h = mid(h, "decoder.mid_block");
        if (inter) (*inter)("dec_mid_block", h);
        const size_t nb = cfg.block_out.size();
        for (size_t i = 0; i < nb; ++i) {
            const std::string p = "decoder.up_blocks." + std::to_string(i);
            for (int j = 0; j <= cfg.layers_per_block; ++j) h = resnet(h, p + ".resnets." + std::to_string(j));
            if (i + 1 < nb) {
                h = b.upsample2x(h);
                h = conv(h, p + ".upsamplers.0.conv", 3);
            }
            if (inter) (*inter)("dec_up_block_" + std::to_string(i), h);
        }
        h = gn(h, "decoder.conv_norm_out", true);
        return conv(h, "decoder.conv_out", 3);
    }
};

}  // namespace st2v::vae::detail

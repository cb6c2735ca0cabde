// The embedded default model: a tiny StreamingT2V of the real architecture (same module tree and key names,
// small widths) with deterministic seeded random weights. It is written once as a model folder
// (safetensors + model.json + a byte-level tokenizer vocabulary) into a cache directory and then loaded
// through the same code as a converted real model, so the default path also exercises the real loader.
// Its weights are untrained: the output is structured noise, not a picture of the prompt.
#include "engine/default_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "runtime/rng.h"

namespace st2v::engine {

namespace {
struct KeyList {
    std::vector<std::pair<std::string, Shape>> keys;
    void add(const std::string& n, Shape s) { keys.emplace_back(n, s); }
    void linear(const std::string& p, int64_t out, int64_t in, bool bias = true) {
        add(p + ".weight", {out, in});
        if (bias) add(p + ".bias", {out});
    }
    void conv(const std::string& p, int64_t out, int64_t in, int64_t k) {
        add(p + ".weight", {out, in, k, k});
        add(p + ".bias", {out});
    }
    void norm(const std::string& p, int64_t c) {
        add(p + ".weight", {c});
        add(p + ".bias", {c});
    }
    void attention(const std::string& p, int64_t q, int64_t kv, int64_t inner) {
        linear(p + ".to_q", inner, q, false);
        linear(p + ".to_k", inner, kv, false);
        linear(p + ".to_v", inner, kv, false);
        linear(p + ".to_out.0", q, inner);
    }
    void block(const std::string& p, int64_t c, int64_t ctx, bool apm) {  // BasicTransformerBlock
        norm(p + ".norm1", c);
        norm(p + ".norm2", c);
        norm(p + ".norm3", c);
        attention(p + ".attn1", c, c, c);
        attention(p + ".attn2", c, ctx, c);
        if (apm) {
            add(p + ".attn2.alpha", {1});
            add(p + ".attn2.conv.weight", {77, 93, 3});
            add(p + ".attn2.conv.bias", {77});
            norm(p + ".attn2.conv_ln", ctx);
        }
        linear(p + ".ff.net.0.proj", 8 * c, c);
        linear(p + ".ff.net.2", c, 4 * c);
    }
    void spatial(const std::string& p, int64_t c, int64_t ctx, bool apm) {
        norm(p + ".norm", c);
        linear(p + ".proj_in", c, c);
        block(p + ".transformer_blocks.0", c, ctx, apm);
        linear(p + ".proj_out", c, c);
    }
    void temporal(const std::string& p, int64_t c, int64_t inner) {
        norm(p + ".norm", c);
        linear(p + ".proj_in", inner, c);
        block(p + ".transformer_blocks.0", inner, inner, false);
        linear(p + ".proj_out", c, inner);
    }
    void temp_conv(const std::string& p, int64_t c) {
        for (int i = 1; i <= 4; ++i) {
            norm(p + ".conv" + std::to_string(i) + ".0", c);
            std::string ci = p + ".conv" + std::to_string(i) + (i == 1 ? ".2" : ".3");
            add(ci + ".weight", {c, c, 3, 1, 1});
            add(ci + ".bias", {c});
        }
    }
    void resnet(const std::string& p, int64_t in, int64_t out, int64_t temb) {
        norm(p + ".norm1", in);
        conv(p + ".conv1", out, in, 3);
        linear(p + ".time_emb_proj", out, temb);
        norm(p + ".norm2", out);
        conv(p + ".conv2", out, out, 3);
        if (in != out) conv(p + ".conv_shortcut", out, in, 1);
    }
};

std::string L(const std::string& b, int i) { return b + "." + std::to_string(i); }

// UNet3D encoder half (shared by base_model. and unet.), optionally with the decoder, APM and mergers.
void unet_keys(KeyList& k, const std::string& p, const TinyConfig& c, bool full, bool apm, bool mergers) {
    const auto& ch = c.channels;
    const int64_t temb = ch[0] * 4, ctx = c.context_dim, hd = c.head_dim;
    const int n = static_cast<int>(ch.size());
    k.conv(p + "conv_in", ch[0], 4, 3);
    k.linear(p + "time_embedding.linear_1", temb, ch[0]);
    k.linear(p + "time_embedding.linear_2", temb, temb);
    k.temporal(p + "transformer_in", ch[0], 8 * hd);
    int64_t out = ch[0];
    for (int i = 0; i < n; ++i) {
        const int64_t in = out;
        out = ch[static_cast<size_t>(i)];
        const bool attn = i < n - 1;
        const std::string b = p + L("down_blocks", i);
        for (int j = 0; j < 2; ++j) {
            k.resnet(L(b + ".resnets", j), j == 0 ? in : out, out, temb);
            k.temp_conv(L(b + ".temp_convs", j), out);
            if (attn) {
                k.spatial(L(b + ".attentions", j), out, ctx, apm);
                k.temporal(L(b + ".temp_attentions", j), out, out);
            }
        }
        if (i < n - 1) k.conv(b + ".downsamplers.0.conv", out, out, 3);
        if (mergers)
            for (int m = 0; m < 3; ++m) {
                const std::string q = p + L("cross_attention_merger_down_blocks", 3 * i + m) + ".temporal_transformer";
                const int64_t cc = m == 0 ? in : out;
                k.norm(q + ".norm", cc);
                k.linear(q + ".proj_in", cc, cc);
                k.attention(q + ".attention", cc, cc, cc);
                k.linear(q + ".proj_out", cc, cc);
            }
    }
    const int64_t cm = ch.back();
    const std::string m = p + "mid_block";
    for (int j = 0; j < 2; ++j) {
        k.resnet(L(m + ".resnets", j), cm, cm, temb);
        k.temp_conv(L(m + ".temp_convs", j), cm);
    }
    k.spatial(m + ".attentions.0", cm, ctx, apm);
    k.temporal(m + ".temp_attentions.0", cm, cm);
    if (mergers) {
        const std::string q = p + "cross_attention_merger_mid_block.temporal_transformer";
        k.norm(q + ".norm", cm);
        k.linear(q + ".proj_in", cm, cm);
        k.attention(q + ".attention", cm, cm, cm);
        k.linear(q + ".proj_out", cm, cm);
    }
    if (!full) return;
    std::vector<int64_t> rev(ch.rbegin(), ch.rend());
    int64_t prev = rev[0];
    for (int i = 0; i < n; ++i) {
        const int64_t o = rev[static_cast<size_t>(i)];
        const int64_t in = rev[static_cast<size_t>(std::min(i + 1, n - 1))];
        const bool attn = i > 0;
        const std::string b = p + L("up_blocks", i);
        for (int j = 0; j < 3; ++j) {
            const int64_t skip = j == 2 ? in : o;
            const int64_t rin = j == 0 ? prev : o;
            k.resnet(L(b + ".resnets", j), rin + skip, o, temb);
            k.temp_conv(L(b + ".temp_convs", j), o);
            if (attn) {
                k.spatial(L(b + ".attentions", j), o, ctx, apm);
                k.temporal(L(b + ".temp_attentions", j), o, o);
            }
        }
        if (i < n - 1) k.conv(b + ".upsamplers.0.conv", o, o, 3);
        prev = o;
    }
    k.norm(p + "conv_norm_out", ch[0]);
    k.conv(p + "conv_out", 4, ch[0], 3);
}
}  // namespace

std::vector<std::pair<std::string, Shape>> tiny_unet_keys(const TinyConfig& c) {
    KeyList k;
    unet_keys(k, "base_model.", c, true, true, true);
    unet_keys(k, "unet.", c, false, false, false);
    const std::string ce = "unet.controlnet_cond_embedding";
    const auto& e = c.cond_channels;
    k.conv(ce + ".conv_in", e[0], 3, 3);
    for (size_t i = 0; i + 1 < e.size(); ++i) {
        k.conv(L(ce + ".blocks", static_cast<int>(2 * i)), e[i], e[i], 3);
        k.conv(L(ce + ".blocks", static_cast<int>(2 * i + 1)), e[i + 1], e[i], 3);
    }
    k.conv(ce + ".conv_out", c.channels[0], e.back(), 3);
    k.linear("resampler.context_embedding.0", c.resampler_inner, c.image_dim);
    k.linear("resampler.context_embedding.2", 16 * c.context_dim, c.resampler_inner);
    return k.keys;
}

std::vector<std::pair<std::string, Shape>> tiny_encoder_keys(const TinyConfig& c) {
    KeyList k;
    // HF CLIPTextModel (text_encoder.text_model.*)
    const std::string T = "text_encoder.text_model.";
    const int64_t D = c.context_dim;
    k.add(T + "embeddings.token_embedding.weight", {c.vocab_size, D});
    k.add(T + "embeddings.position_embedding.weight", {77, D});
    for (int i = 0; i < c.text_layers; ++i) {
        const std::string l = T + L("encoder.layers", i);
        for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) k.linear(l + ".self_attn." + n, D, D);
        k.norm(l + ".layer_norm1", D);
        k.linear(l + ".mlp.fc1", 4 * D, D);
        k.linear(l + ".mlp.fc2", D, 4 * D);
        k.norm(l + ".layer_norm2", D);
    }
    k.norm(T + "final_layer_norm", D);
    // OpenCLIP visual tower (image_encoder.model.visual.*)
    const std::string V = "image_encoder.model.visual.";
    const int64_t W = c.vision_width, P = 14, G = 224 / P;
    k.add(V + "conv1.weight", {W, 3, P, P});
    k.add(V + "class_embedding", {W});
    k.add(V + "positional_embedding", {G * G + 1, W});
    k.norm(V + "ln_pre", W);
    for (int i = 0; i < c.vision_layers; ++i) {
        const std::string r = V + L("transformer.resblocks", i);
        k.norm(r + ".ln_1", W);
        k.add(r + ".attn.in_proj_weight", {3 * W, W});
        k.add(r + ".attn.in_proj_bias", {3 * W});
        k.linear(r + ".attn.out_proj", W, W);
        k.norm(r + ".ln_2", W);
        k.linear(r + ".mlp.c_fc", 4 * W, W);
        k.linear(r + ".mlp.c_proj", W, 4 * W);
    }
    k.norm(V + "ln_post", W);
    k.add(V + "proj", {W, c.image_dim});
    // AutoencoderKL (vae.*, diffusers names), 4 levels (factor 8), 1 resnet per down level
    const std::string A = "vae.";
    const int64_t vc = c.vae_channels;
    auto vres = [&](const std::string& p, int64_t in, int64_t out) {
        k.norm(p + ".norm1", in);
        k.conv(p + ".conv1", out, in, 3);
        k.norm(p + ".norm2", out);
        k.conv(p + ".conv2", out, out, 3);
        if (in != out) k.conv(p + ".conv_shortcut", out, in, 1);
    };
    auto vmid = [&](const std::string& p, int64_t ch) {
        vres(p + ".resnets.0", ch, ch);
        vres(p + ".resnets.1", ch, ch);
        k.norm(p + ".attentions.0.group_norm", ch);
        for (const char* n : {"to_q", "to_k", "to_v", "to_out.0"}) k.linear(p + ".attentions.0." + n, ch, ch);
    };
    k.conv(A + "encoder.conv_in", vc, 3, 3);
    for (int i = 0; i < 4; ++i) {
        vres(A + L("encoder.down_blocks", i) + ".resnets.0", vc, vc);
        if (i < 3) k.conv(A + L("encoder.down_blocks", i) + ".downsamplers.0.conv", vc, vc, 3);
    }
    vmid(A + "encoder.mid_block", vc);
    k.norm(A + "encoder.conv_norm_out", vc);
    k.conv(A + "encoder.conv_out", 8, vc, 3);
    k.conv(A + "quant_conv", 8, 8, 1);
    k.conv(A + "post_quant_conv", 4, 4, 1);
    k.conv(A + "decoder.conv_in", vc, 4, 3);
    vmid(A + "decoder.mid_block", vc);
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 2; ++j) vres(A + L("decoder.up_blocks", i) + L(".resnets", j), vc, vc);
        if (i < 3) k.conv(A + L("decoder.up_blocks", i) + ".upsamplers.0.conv", vc, vc, 3);
    }
    k.norm(A + "decoder.conv_norm_out", vc);
    k.conv(A + "decoder.conv_out", 3, vc, 3);
    return k.keys;
}

io::WeightStore make_tiny_weights(const TinyConfig& c) {
    io::WeightStore w;
    runtime::TorchGenerator gen(c.seed);
    auto fill = [&](const std::string& name, const Shape& s) {
        Tensor t = gen.randn(s);
        float* p = t.f32();
        const int64_t n = t.numel();
        const bool is_norm_w = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos;
        if (s.ndim() == 1 || name.find("embedding") != std::string::npos) {
            // norms: weight ~ 1 + 0.1 N, biases and embeddings ~ 0.05 N (as the golden randomisation)
            const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
            for (int64_t i = 0; i < n; ++i) p[i] = (is_norm_w && weight && s.ndim() == 1) ? 1.f + 0.1f * p[i] : 0.05f * p[i];
            if (name.find("token_embedding") != std::string::npos || name.find("position_embedding") != std::string::npos)
                for (int64_t i = 0; i < n; ++i) p[i] *= 20.f;  // ~N(0, 1) token embeddings
        } else {
            int64_t fan_in = n / s[0];
            if (name.find("proj") != std::string::npos && s.ndim() == 2 && name.find("visual.proj") != std::string::npos)
                fan_in = s[0];
            const float sc = 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(1, fan_in)));
            for (int64_t i = 0; i < n; ++i) p[i] *= sc;
        }
        if (name.size() >= 6 && name.compare(name.size() - 6, 6, ".alpha") == 0) p[0] = 0.5f;  // APM mixing on
        w.add(name, t);
    };
    for (auto& kv : tiny_unet_keys(c)) fill(kv.first, kv.second);
    for (auto& kv : tiny_encoder_keys(c)) fill(kv.first, kv.second);
    return w;
}

}  // namespace st2v::engine

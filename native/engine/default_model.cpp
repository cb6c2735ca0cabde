// The embedded default model: a tiny StreamingT2V of the real architecture (same module tree and key names,
// small widths) with deterministic seeded random weights, made in memory on load (about a second) and run
// through the same model code as a converted real model. The UNet / CAM / resampler key list is the one of
// models/streamingt2v (t2v::expected_weights), so the default model has exactly the official layout.
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
};

std::string L(const std::string& b, int i) { return b + "." + std::to_string(i); }

}  // namespace

t2v::St2vConfig tiny_st2v_config(const TinyConfig& c) {
    t2v::St2vConfig s = t2v::St2vConfig::tiny();  // the golden tiny layout: 2 levels, CAM, APM, resampler
    s.unet.block_out_channels = c.channels;
    s.unet.down_has_attn.assign(c.channels.size(), true);
    s.unet.down_has_attn.back() = false;  // CrossAttnDownBlock3D ... DownBlock3D
    s.unet.head_dim = static_cast<int>(c.head_dim);
    s.unet.context_dim = c.context_dim;
    s.unet.time_embed_dim = 4 * c.channels.front();
    s.cond_channels = c.cond_channels;
    s.resampler_inner = c.resampler_inner;
    s.image_embed_dim = c.image_dim;
    return s;
}

std::vector<std::pair<std::string, Shape>> tiny_unet_keys(const TinyConfig& c) {
    std::vector<std::pair<std::string, Shape>> keys;
    for (const io::Expected& e : t2v::expected_weights(tiny_st2v_config(c))) keys.emplace_back(e.name, e.shape);
    return keys;
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

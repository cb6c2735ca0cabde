// The embedded default model: a tiny StreamingT2V of the real architecture (same module tree and key names,
// small widths) with deterministic seeded random weights. It is written once as a model folder
// (safetensors + model.json + a byte-level tokenizer vocabulary) into a cache directory and then loaded
// through the same code as a converted real model, so the default path also exercises the real loader.
// Its weights are untrained: the output is structured noise, not a picture of the prompt.
#include "engine/default_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
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

}  // namespace st2v::engine

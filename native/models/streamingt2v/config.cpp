#include "models/streamingt2v/config.h"

#include <cmath>

#include "core/status.h"

namespace st2v::t2v {

namespace {
std::string ix(const std::string& base, int i) { return base + "." + std::to_string(i) + "."; }

struct Emit {
    std::vector<io::Expected>& out;
    void t(const std::string& name, std::vector<int64_t> shape) { out.push_back({name, Shape(shape)}); }
    void linear(const std::string& p, int64_t out_f, int64_t in_f, bool bias = true) {
        t(p + "weight", {out_f, in_f});
        if (bias) t(p + "bias", {out_f});
    }
    void norm(const std::string& p, int64_t c) {
        t(p + "weight", {c});
        t(p + "bias", {c});
    }
    void conv(const std::string& p, int64_t out_c, int64_t in_c, int64_t k) {
        t(p + "weight", {out_c, in_c, k, k});
        t(p + "bias", {out_c});
    }
    void attention(const std::string& p, int64_t inner, int64_t q_dim, int64_t kv_dim) {
        linear(p + "to_q.", inner, q_dim, false);
        linear(p + "to_k.", inner, kv_dim, false);
        linear(p + "to_v.", inner, kv_dim, false);
        linear(p + "to_out.0.", q_dim, inner);
    }
    // BasicTransformerBlock of width d; attn2 cross-attends to ctx_dim (self when ctx_dim == 0), with APM extras.
    void block(const std::string& p, int64_t d, int64_t ctx_dim, const St2vConfig* apm) {
        norm(p + "norm1.", d);
        attention(p + "attn1.", d, d, d);
        norm(p + "norm2.", d);
        attention(p + "attn2.", d, d, ctx_dim ? ctx_dim : d);
        if (apm) {
            t(p + "attn2.conv.weight", {apm->text_tokens, apm->text_tokens + apm->image_tokens, 3});
            t(p + "attn2.conv.bias", {apm->text_tokens});
            norm(p + "attn2.conv_ln.", ctx_dim);
            t(p + "attn2.alpha", apm->alpha_scalar ? std::vector<int64_t>{} : std::vector<int64_t>{1});
        }
        norm(p + "norm3.", d);
        linear(p + "ff.net.0.proj.", 8 * d, d);
        linear(p + "ff.net.2.", d, 4 * d);
    }
    void spatial(const std::string& p, int64_t c, int64_t ctx_dim, const St2vConfig* apm) {
        norm(p + "norm.", c);
        linear(p + "proj_in.", c, c);
        block(p + "transformer_blocks.0.", c, ctx_dim, apm);
        linear(p + "proj_out.", c, c);
    }
    void temporal(const std::string& p, int64_t c, int64_t inner) {
        norm(p + "norm.", c);
        linear(p + "proj_in.", inner, c);
        block(p + "transformer_blocks.0.", inner, 0, nullptr);
        linear(p + "proj_out.", c, inner);
    }
    void resnet(const std::string& p, int64_t in_c, int64_t out_c, int64_t temb) {
        norm(p + "norm1.", in_c);
        conv(p + "conv1.", out_c, in_c, 3);
        linear(p + "time_emb_proj.", out_c, temb);
        norm(p + "norm2.", out_c);
        conv(p + "conv2.", out_c, out_c, 3);
        if (in_c != out_c) conv(p + "conv_shortcut.", out_c, in_c, 1);
    }
    void temp_conv(const std::string& p, int64_t c) {
        for (int k = 1; k <= 4; ++k) {
            const std::string q = p + "conv" + std::to_string(k) + ".";
            norm(q + "0.", c);
            const std::string cv = q + (k == 1 ? "2." : "3.");
            t(cv + "weight", {c, c, 3, 1, 1});
            t(cv + "bias", {c});
        }
    }
    void merger(const std::string& p, int64_t c) {
        const std::string q = p + "temporal_transformer.";
        norm(q + "norm.", c);
        linear(q + "proj_in.", c, c);
        attention(q + "attention.", c, c, c);
        linear(q + "proj_out.", c, c);
    }
    // conv_in, time embedding, transformer_in, down blocks and the mid block (shared by base and CAM).
    void encoder(const std::string& p, const UNetConfig& u, const St2vConfig* apm) {
        const int64_t c0 = u.block_out_channels[0], E = u.time_embed_dim;
        conv(p + "conv_in.", c0, u.in_channels, 3);
        linear(p + "time_embedding.linear_1.", E, c0);
        linear(p + "time_embedding.linear_2.", E, E);
        temporal(p + "transformer_in.", c0, 8LL * u.head_dim);
        const int L = static_cast<int>(u.block_out_channels.size());
        int64_t in_c = c0;
        for (int i = 0; i < L; ++i) {
            const int64_t oc = u.block_out_channels[static_cast<size_t>(i)];
            const std::string b = ix(p + "down_blocks", i);
            for (int j = 0; j < u.layers_per_block; ++j) {
                resnet(ix(b + "resnets", j), j == 0 ? in_c : oc, oc, E);
                temp_conv(ix(b + "temp_convs", j), oc);
                if (u.down_has_attn[static_cast<size_t>(i)]) {
                    spatial(ix(b + "attentions", j), oc, u.context_dim, apm);
                    temporal(ix(b + "temp_attentions", j), oc, oc);
                }
            }
            if (i + 1 < L) conv(b + "downsamplers.0.conv.", oc, oc, 3);
            in_c = oc;
        }
        const int64_t cm = u.block_out_channels.back();
        const std::string m = p + "mid_block.";
        for (int j = 0; j < 2; ++j) {
            resnet(ix(m + "resnets", j), cm, cm, E);
            temp_conv(ix(m + "temp_convs", j), cm);
        }
        spatial(m + "attentions.0.", cm, u.context_dim, apm);
        temporal(m + "temp_attentions.0.", cm, cm);
    }
};
}  // namespace

std::string St2vConfig::str() const {
    std::string s = "base{" + unet.str() + "}";
    if (unet.apm) s += " apm(text " + std::to_string(text_tokens) + ", image " + std::to_string(image_tokens) + ")";
    if (cam) {
        s += " cam(E_cond";
        for (int64_t c : cond_channels) s += " " + std::to_string(c);
        s += ")";
    }
    if (resampler) s += " resampler(" + std::to_string(image_embed_dim) + "->" + std::to_string(resampler_inner) + ")";
    return s;
}

St2vConfig St2vConfig::detect(const io::WeightStore& w) {
    St2vConfig c;
    c.base_prefix = w.has("base_model.conv_in.weight") ? "base_model." : "";
    c.unet = UNetConfig::detect(w, c.base_prefix);
    if (c.unet.apm) {
        const Tensor& cw = w.get(c.base_prefix + "mid_block.attentions.0.transformer_blocks.0.attn2.conv.weight");
        ST2V_CHECK(cw.ndim() == 3 && cw.size(1) > cw.size(0), Code::kShapeMismatch, "APM conv weight has shape %s",
                   cw.shape().str().c_str());
        c.text_tokens = cw.size(0);
        c.image_tokens = cw.size(1) - cw.size(0);
        c.alpha_scalar = w.get(c.base_prefix + "mid_block.attentions.0.transformer_blocks.0.attn2.alpha").ndim() == 0;
    }
    c.cam = w.has("unet.conv_in.weight");
    if (c.cam) {
        c.cond_channels.push_back(w.get("unet.controlnet_cond_embedding.conv_in.weight").size(0));
        for (int i = 1; w.has("unet.controlnet_cond_embedding.blocks." + std::to_string(i) + ".weight"); i += 2)
            c.cond_channels.push_back(w.get("unet.controlnet_cond_embedding.blocks." + std::to_string(i) + ".weight").size(0));
    }
    c.resampler = w.has("resampler.context_embedding.0.weight");
    if (c.resampler) {
        const Tensor& l1 = w.get("resampler.context_embedding.0.weight");
        c.resampler_inner = l1.size(0);
        c.image_embed_dim = l1.size(1);
    }
    return c;
}

St2vConfig St2vConfig::tiny() {
    St2vConfig c;
    c.unet.block_out_channels = {64, 128};
    c.unet.down_has_attn = {true, false};
    c.unet.layers_per_block = 2;
    c.unet.head_dim = 32;
    c.unet.context_dim = 1024;
    c.unet.time_embed_dim = 256;
    c.unet.apm = c.unet.cam_mergers = true;
    c.alpha_scalar = false;  // the golden tiny checkpoint stores alpha as [1]
    c.cam = true;
    c.cond_channels = {16, 16, 32, 32};
    c.resampler = true;
    c.resampler_inner = 64;
    return c;
}

St2vConfig St2vConfig::mid() {
    St2vConfig c = full();
    c.unet.block_out_channels = {128, 256, 512, 512};
    c.unet.time_embed_dim = 512;
    return c;
}

St2vConfig St2vConfig::full() {
    St2vConfig c;
    c.unet.block_out_channels = {320, 640, 1280, 1280};
    c.unet.down_has_attn = {true, true, true, false};
    c.unet.layers_per_block = 2;
    c.unet.head_dim = 64;
    c.unet.context_dim = 1024;
    c.unet.time_embed_dim = 1280;
    c.unet.apm = c.unet.cam_mergers = true;
    c.alpha_scalar = true;
    c.cam = true;
    c.cond_channels = {32, 96, 256, 512};  // as in the official checkpoint's controlnet_cond_embedding
    c.resampler = true;
    c.resampler_inner = 1280;
    return c;
}

std::vector<io::Expected> expected_weights(const St2vConfig& c) {
    std::vector<io::Expected> out;
    Emit e{out};
    const UNetConfig& u = c.unet;
    ST2V_CHECK(!u.block_out_channels.empty() && u.down_has_attn.size() == u.block_out_channels.size(), Code::kInvalidArgument,
               "St2vConfig: block_out_channels and down_has_attn must be non-empty and of equal length");
    const std::string p = c.base_prefix;
    const St2vConfig* apm = u.apm ? &c : nullptr;
    e.encoder(p, u, apm);
    // Up blocks (diffusers UNet3DConditionModel): reversed channels, layers + 1 resnets, skip concatenation.
    const int L = static_cast<int>(u.block_out_channels.size());
    std::vector<int64_t> rev(u.block_out_channels.rbegin(), u.block_out_channels.rend());
    std::vector<bool> rattn(u.down_has_attn.rbegin(), u.down_has_attn.rend());
    int64_t out_c = rev[0];
    for (int i = 0; i < L; ++i) {
        const int64_t prev = out_c;
        out_c = rev[static_cast<size_t>(i)];
        const int64_t in_c = rev[static_cast<size_t>(std::min(i + 1, L - 1))];
        const std::string b = ix(p + "up_blocks", i);
        for (int j = 0; j <= u.layers_per_block; ++j) {
            const int64_t skip = j == u.layers_per_block ? in_c : out_c;
            const int64_t rin = j == 0 ? prev : out_c;
            e.resnet(ix(b + "resnets", j), rin + skip, out_c, u.time_embed_dim);
            e.temp_conv(ix(b + "temp_convs", j), out_c);
            if (rattn[static_cast<size_t>(i)]) {
                e.spatial(ix(b + "attentions", j), out_c, u.context_dim, apm);
                e.temporal(ix(b + "temp_attentions", j), out_c, out_c);
            }
        }
        if (i + 1 < L) e.conv(b + "upsamplers.0.conv.", out_c, out_c, 3);
    }
    const int64_t c0 = u.block_out_channels[0];
    e.norm(p + "conv_norm_out.", c0);
    e.conv(p + "conv_out.", u.out_channels, c0, 3);
    if (u.cam_mergers) {
        // One merger per skip: conv_in output, then per level `layers` resnet outputs and the downsampler.
        std::vector<int64_t> skips{c0};
        for (int i = 0; i < L; ++i) {
            for (int j = 0; j < u.layers_per_block; ++j) skips.push_back(u.block_out_channels[static_cast<size_t>(i)]);
            if (i + 1 < L) skips.push_back(u.block_out_channels[static_cast<size_t>(i)]);
        }
        for (size_t i = 0; i < skips.size(); ++i) e.merger(ix(p + "cross_attention_merger_down_blocks", static_cast<int>(i)), skips[i]);
        e.merger(p + "cross_attention_merger_mid_block.", u.block_out_channels.back());
    }
    if (c.cam) {
        UNetConfig cu = u;
        cu.apm = cu.cam_mergers = false;
        e.encoder("unet.", cu, nullptr);
        ST2V_CHECK(c.cond_channels.size() >= 1, Code::kInvalidArgument, "St2vConfig: cam needs cond_channels");
        const std::string q = "unet.controlnet_cond_embedding.";
        e.conv(q + "conv_in.", c.cond_channels[0], 3, 3);
        int blk = 0;
        for (size_t i = 0; i + 1 < c.cond_channels.size(); ++i) {
            e.conv(q + "blocks." + std::to_string(blk++) + ".", c.cond_channels[i], c.cond_channels[i], 3);
            e.conv(q + "blocks." + std::to_string(blk++) + ".", c.cond_channels[i + 1], c.cond_channels[i], 3);
        }
        e.conv(q + "conv_out.", c0, c.cond_channels.back(), 3);
    }
    if (c.resampler) {
        e.linear("resampler.context_embedding.0.", c.resampler_inner, c.image_embed_dim);
        e.linear("resampler.context_embedding.2.", c.image_tokens * u.context_dim, c.resampler_inner);
    }
    return out;
}

namespace {
struct Rng {  // splitmix64 + Box-Muller: fast, seeded, platform-independent
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    void normals(float* out, int64_t n, float mean, float std) {
        for (int64_t i = 0; i < n; i += 2) {
            const double r = std::sqrt(-2.0 * std::log(uniform())), th = 6.283185307179586 * uniform();
            out[i] = mean + std * static_cast<float>(r * std::cos(th));
            if (i + 1 < n) out[i + 1] = mean + std * static_cast<float>(r * std::sin(th));
        }
    }
};
bool ends_with(const std::string& s, const std::string& e) { return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0; }
}  // namespace

io::WeightStore make_random_weights(const St2vConfig& c, uint64_t seed, DType dtype) {
    ST2V_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, Code::kDtype,
               "make_random_weights: dtype must be f32, f16 or bf16");
    io::WeightStore w;
    Rng rng{seed * 0x2545F4914F6CDD1Dull + 1};
    for (const io::Expected& e : expected_weights(c)) {
        Tensor t = Tensor::empty(e.shape, DType::F32);
        float* d = t.f32();
        const int64_t n = t.numel();
        if (ends_with(e.name, ".alpha")) {
            for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(0.5 + 0.5 * rng.uniform());
        } else if (e.shape.ndim() >= 2) {
            const int64_t fan_in = n / e.shape[0];
            rng.normals(d, n, 0.f, static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in))));
        } else if (ends_with(e.name, ".weight")) {
            rng.normals(d, n, 1.f, 0.1f);  // norm scales
        } else {
            rng.normals(d, n, 0.f, 0.05f);
        }
        w.add(e.name, dtype == DType::F32 ? t : t.to(dtype));
    }
    return w;
}

namespace {
// FLOPs per frame-image of size S = H*W for each block kind (see step_flops).
struct Flops {
    double D, T;  // context width, context tokens (per image: k/v projections)
    // the share of the context's own work (APM mix, K / V projections) each frame-image pays: 1 / frames with the
    // context per sample (t2v::detail::context_per_sample(), the default), 1 with the context repeated per frame
    double ctx_share = 1;
    double conv(double o, double i, double k, double S) const { return 2 * o * i * k * k * S; }
    double resnet(double i, double o, double S) const { return conv(o, i, 3, S) + conv(o, o, 3, S) + (i != o ? conv(o, i, 1, S) : 0); }
    double temp_conv(double C, double S) const { return 4 * 2 * C * C * 3 * S; }  // 4 Conv3d (3,1,1)
    double ff(double d, double S) const { return 2 * 8 * d * d * S + 2 * 4 * d * d * S; }
    double spatial(double C, double S, bool apm, double text) const {
        double f = 2 * 2 * C * C * S;                       // proj_in, proj_out
        f += 4 * 2 * C * C * S + 2 * 2 * S * S * C;          // attn1
        f += 2 * 2 * C * C * S + 2 * 2 * C * D * T * ctx_share;  // attn2 q/out, k/v
        f += 2 * 2 * S * (apm ? text : T) * C;                   // attn2 products
        if (apm) f += 2 * text * T * 3 * D * ctx_share;          // APM Conv1d
        return f + ff(C, S);
    }
    double temporal(double C, double inner, double F, double S) const {  // per frame
        return 2 * 2 * C * inner * S + 2 * (4 * 2 * inner * inner * S + 2 * 2 * F * inner * S) + ff(inner, S);
    }
    double merger(double C, double F, double Fc, double S) const {  // per base frame
        return 2 * 2 * C * C * S + 2 * 2 * C * C * S + 2 * 2 * C * C * S * Fc / F + 2 * 2 * Fc * C * S;
    }
};
}  // namespace

double step_flops(const St2vConfig& c, int64_t B, int64_t F, int64_t Fc, int64_t h, int64_t w, int64_t ctx_tokens) {
    const UNetConfig& u = c.unet;
    const int L = static_cast<int>(u.block_out_channels.size());
    // Encoder (conv_in .. mid) per frame; returns the total for n frames of which temporal layers see n_t.
    const bool per_sample = detail::context_per_sample();
    // The stem (conv_in + transformer_in) per frame: with the CFG step's samples sharing their latents it runs for one
    // sample (Encoder::stem, detail::shared_stem()), so each frame-image pays 1 / B of it.
    const double stem_share = detail::shared_stem() && B > 1 ? 1.0 / static_cast<double>(B) : 1.0;
    auto encoder = [&](double n, bool apm, double T) {
        Flops fl{static_cast<double>(u.context_dim), T, per_sample ? 1.0 / n : 1.0};
        const double text = static_cast<double>(c.text_tokens);
        double S = static_cast<double>(h * w), f = 0;
        const double c0 = static_cast<double>(u.block_out_channels[0]);
        f += (fl.conv(c0, u.in_channels, 3, S) + fl.temporal(c0, 8.0 * u.head_dim, n, S)) * stem_share;
        double in_c = c0;
        for (int i = 0; i < L; ++i) {
            const double oc = static_cast<double>(u.block_out_channels[static_cast<size_t>(i)]);
            for (int j = 0; j < u.layers_per_block; ++j) {
                f += fl.resnet(j == 0 ? in_c : oc, oc, S) + fl.temp_conv(oc, S);
                if (u.down_has_attn[static_cast<size_t>(i)]) f += fl.spatial(oc, S, apm, text) + fl.temporal(oc, oc, n, S);
            }
            if (i + 1 < L) {
                S /= 4;
                f += fl.conv(oc, oc, 3, S);
            }
            in_c = oc;
        }
        const double cm = static_cast<double>(u.block_out_channels.back());
        f += 2 * (fl.resnet(cm, cm, S) + fl.temp_conv(cm, S)) + fl.spatial(cm, S, apm, text) + fl.temporal(cm, cm, n, S);
        return f;
    };
    const double T = static_cast<double>(ctx_tokens);
    double total = static_cast<double>(B * F) * encoder(static_cast<double>(F), u.apm, T);
    // Up path of the base model.
    {
        Flops fl{static_cast<double>(u.context_dim), T, per_sample ? 1.0 / static_cast<double>(F) : 1.0};
        std::vector<double> rev;
        for (int i = L - 1; i >= 0; --i) rev.push_back(static_cast<double>(u.block_out_channels[static_cast<size_t>(i)]));
        double S = static_cast<double>(h * w) / std::pow(4.0, L - 1), f = 0, out_c = rev[0];
        for (int i = 0; i < L; ++i) {
            const double prev = out_c;
            out_c = rev[static_cast<size_t>(i)];
            const double in_c = rev[static_cast<size_t>(std::min(i + 1, L - 1))];
            for (int j = 0; j <= u.layers_per_block; ++j) {
                const double skip = j == u.layers_per_block ? in_c : out_c;
                f += fl.resnet((j == 0 ? prev : out_c) + skip, out_c, S) + fl.temp_conv(out_c, S);
                if (u.down_has_attn[static_cast<size_t>(L - 1 - i)])
                    f += fl.spatial(out_c, S, u.apm, static_cast<double>(c.text_tokens)) + fl.temporal(out_c, out_c, static_cast<double>(F), S);
            }
            if (i + 1 < L) {
                S *= 4;
                f += fl.conv(out_c, out_c, 3, S);
            }
        }
        f += fl.conv(u.out_channels, static_cast<double>(u.block_out_channels[0]), 3, S);
        total += static_cast<double>(B * F) * f;
    }
    if (c.cam && Fc > 0) {
        total += static_cast<double>(B * Fc) * encoder(static_cast<double>(Fc), false, std::min<double>(T, static_cast<double>(c.text_tokens)));
        // E_cond at 8x the latent size, halving at each odd block.
        Flops fl{0, 0};
        double S = static_cast<double>(h * w) * 64, f = fl.conv(c.cond_channels[0], 3, 3, S);
        for (size_t i = 0; i + 1 < c.cond_channels.size(); ++i) {
            f += fl.conv(c.cond_channels[i], c.cond_channels[i], 3, S);
            S /= 4;
            f += fl.conv(c.cond_channels[i + 1], c.cond_channels[i], 3, S);
        }
        f += fl.conv(static_cast<double>(u.block_out_channels[0]), c.cond_channels.back(), 3, S);
        total += static_cast<double>(B * Fc) * f;
        // Mergers on every skip and the mid output.
        double mf = 0, S2 = static_cast<double>(h * w);
        const double c0 = static_cast<double>(u.block_out_channels[0]);
        mf += fl.merger(c0, static_cast<double>(F), static_cast<double>(Fc), S2);
        for (int i = 0; i < L; ++i) {
            const double oc = static_cast<double>(u.block_out_channels[static_cast<size_t>(i)]);
            for (int j = 0; j < u.layers_per_block; ++j) mf += fl.merger(oc, static_cast<double>(F), static_cast<double>(Fc), S2);
            if (i + 1 < L) {
                S2 /= 4;
                mf += fl.merger(oc, static_cast<double>(F), static_cast<double>(Fc), S2);
            }
        }
        mf += fl.merger(static_cast<double>(u.block_out_channels.back()), static_cast<double>(F), static_cast<double>(Fc), S2);
        total += static_cast<double>(B * F) * mf;
    }
    return total;
}

io::BindResult bind_st2v_strict(const io::WeightStore& w, const St2vConfig& c, bool log_unexpected) {
    io::BindOptions o;
    o.log_unexpected = log_unexpected;
    o.context = "streamingt2v";
    return io::bind_strict(expected_weights(c), w, o);
}

}  // namespace st2v::t2v

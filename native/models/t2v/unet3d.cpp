#include "models/t2v/unet3d.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/threadpool.h"
#include "models/t2v/graph_ops.h"
#include "models/t2v/unet_graph.h"

namespace st2v::t2v {

namespace {
std::string lvl(const std::string& base, int i) { return base + "." + std::to_string(i); }

}  // namespace

bool detail::samples_identical(const Tensor& x) {
    const int64_t B = x.ndim() >= 1 ? x.size(0) : 0;
    if (B < 2 || x.numel() == 0) return false;
    const Tensor xc = x.contiguous();
    const size_t row = xc.nbytes() / static_cast<size_t>(B);
    const char* p = static_cast<const char*>(xc.raw());
    for (int64_t b = 1; b < B; ++b)
        if (std::memcmp(p, p + static_cast<size_t>(b) * row, row) != 0) return false;
    return true;
}

namespace {
std::atomic<bool> g_shared_stem{detail::switch_from_env("ST2V_SHARED_STEM")};

using Graph = detail::UNetGraph<detail::CpuGraphOps>;  // the forward, shared with the device networks
}  // namespace

std::string UNetConfig::str() const {
    std::string s = "in=" + std::to_string(in_channels) + " out=" + std::to_string(out_channels) + " channels=[";
    for (size_t i = 0; i < block_out_channels.size(); ++i)
        s += (i ? "," : "") + std::to_string(block_out_channels[i]) + (down_has_attn[i] ? "A" : "");
    s += "] layers=" + std::to_string(layers_per_block) + " head_dim=" + std::to_string(head_dim) +
         " ctx=" + std::to_string(context_dim) + (apm ? " apm" : "") + (cam_mergers ? " cam-mergers" : "");
    return s;
}

UNetConfig UNetConfig::detect(const io::WeightStore& w, const std::string& p) {
    UNetConfig c;
    const Tensor* ci = w.find(p + "conv_in.weight");
    ST2V_CHECK(ci != nullptr, Code::kWeightsMissing, "UNet3D: missing weight '%sconv_in.weight'", p.c_str());
    c.in_channels = static_cast<int>(ci->size(1));
    if (const Tensor* co = w.find(p + "conv_out.weight")) c.out_channels = static_cast<int>(co->size(0));
    for (int i = 0;; ++i) {
        const Tensor* r = w.find(p + "down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight");
        if (!r) break;
        c.block_out_channels.push_back(r->size(0));
        c.down_has_attn.push_back(w.has(p + "down_blocks." + std::to_string(i) + ".attentions.0.proj_in.weight"));
    }
    ST2V_CHECK(!c.block_out_channels.empty(), Code::kWeightsMissing, "UNet3D: no down blocks under '%s'", p.c_str());
    c.layers_per_block = 0;
    while (w.has(p + "down_blocks.0.resnets." + std::to_string(c.layers_per_block) + ".conv1.weight")) ++c.layers_per_block;
    const Tensor* tin = w.find(p + "transformer_in.proj_in.weight");
    ST2V_CHECK(tin != nullptr, Code::kWeightsMissing, "UNet3D: missing weight '%stransformer_in.proj_in.weight'", p.c_str());
    ST2V_CHECK(tin->size(0) % 8 == 0, Code::kShapeMismatch, "UNet3D: transformer_in width %lld is not 8 heads",
               (long long)tin->size(0));
    c.head_dim = static_cast<int>(tin->size(0) / 8);  // transformer_in has 8 heads of attention_head_dim
    for (int i = 0; i < static_cast<int>(c.down_has_attn.size()); ++i) {
        if (!c.down_has_attn[static_cast<size_t>(i)]) continue;
        const Tensor* k = w.find(p + "down_blocks." + std::to_string(i) + ".attentions.0.transformer_blocks.0.attn2.to_k.weight");
        if (k) c.context_dim = k->size(1);
        break;
    }
    if (const Tensor* te = w.find(p + "time_embedding.linear_1.weight")) c.time_embed_dim = te->size(0);
    c.apm = w.has(p + "mid_block.attentions.0.transformer_blocks.0.attn2.conv.weight");
    c.cam_mergers = w.has(p + "cross_attention_merger_mid_block.temporal_transformer.proj_in.weight");
    return c;
}

// ---------------------------------------------------------------------------------------------------
void Merger::bind(const Binder& p) {
    Binder q = p.child("temporal_transformer");
    norm.bind(q.child("norm"));
    proj_in.bind(q.child("proj_in"));
    proj_out.bind(q.child("proj_out"));
    const int64_t C = proj_in.out();
    ST2V_CHECK(C % 64 == 0, Code::kShapeMismatch, "%s: CAM merger width %lld is not a multiple of 64", p.prefix().c_str(),
               (long long)C);
    attn.bind(q.child("attention"), static_cast<int>(C / 64));  // heads = C / 64, head size 64 (official default)
}

Tensor Merger::operator()(const Tensor& h, const Tensor& r, int frames, int cond_frames) const {
    const int64_t H = h.size(2), W = h.size(3);
    Tensor q = ops::group_norm(h, frames, 32, norm.w, norm.b, 1e-6f);  // GN over all F frames
    q = proj_in(frames_to_tokens(q, frames));                          // [B*H*W, F, C]
    Tensor kv = frames_to_tokens(r, cond_frames);                      // [B*H*W, Fc, C] raw CAM features
    Tensor a = attn(q, kv);                                            // [B*H*W, F, C]
    Tensor out = tokens_to_frames(proj_out(a), frames, H, W);          // [B*F, C, H, W]
    ops::add_(out, h);
    return out;
}

void TimeEmbedding::bind(const Binder& p) {
    l1.bind(p.child("linear_1"));
    l2.bind(p.child("linear_2"));
    dim = static_cast<int>(l1.in());
}

Tensor TimeEmbedding::silu_emb(float t, int64_t batch, int frames) const {
    Tensor e = ops::timestep_embedding(std::vector<float>(1, t), dim, true, 0.f);  // [1, 320], cos first
    e = l2(l1(e, ops::Act::kSilu));                                              // [1, E]
    e = ops::silu(e);  // every consumer (resnet time_emb_proj) applies SiLU first
    return repeat_interleave(repeat_interleave(e, static_cast<int>(batch)), frames);  // [B*F, E]
}

namespace detail {
bool set_shared_stem(bool on) { return g_shared_stem.exchange(on); }
bool shared_stem() { return g_shared_stem.load(std::memory_order_relaxed); }
}  // namespace detail

Tensor Encoder::stem(const Tensor& x) const {
    check_ndim(x, 5, "UNet3D", "sample");
    return Graph::stem(*this, x);
}

// ---------------------------------------------------------------------------------------------------
void Encoder::bind(const Binder& p, const UNetConfig& c) {
    cfg = c;
    conv_in.bind(p.child("conv_in"));
    time.bind(p.child("time_embedding"));
    transformer_in.bind(p.child("transformer_in"), c.head_dim, 8);
    const int L = static_cast<int>(c.block_out_channels.size());
    down.resize(static_cast<size_t>(L));
    for (int i = 0; i < L; ++i) {
        Binder b = p.child(lvl("down_blocks", i));
        DownLevel& d = down[static_cast<size_t>(i)];
        for (int j = 0; j < c.layers_per_block; ++j) {
            d.resnets.emplace_back();
            d.resnets.back().bind(b.child(lvl("resnets", j)));
            d.temp_convs.emplace_back();
            d.temp_convs.back().bind(b.child(lvl("temp_convs", j)));
            if (c.down_has_attn[static_cast<size_t>(i)]) {
                d.attentions.emplace_back();
                d.attentions.back().bind(b.child(lvl("attentions", j)), c.head_dim);
                d.temp_attentions.emplace_back();
                d.temp_attentions.back().bind(b.child(lvl("temp_attentions", j)), c.head_dim);
            }
        }
        d.has_down = b.has("downsamplers.0.conv.weight");
        if (d.has_down) d.down.bind(b.child("downsamplers.0.conv"), 2);
    }
    Binder m = p.child("mid_block");
    for (int j = 0; j < 2; ++j) {
        mid_res[j].bind(m.child(lvl("resnets", j)));
        mid_tc[j].bind(m.child(lvl("temp_convs", j)));
    }
    mid_attn.bind(m.child("attentions.0"), c.head_dim);
    mid_tattn.bind(m.child("temp_attentions.0"), c.head_dim);
}

std::vector<Tensor> Encoder::run_down(Tensor h, const Tensor& temb, const Tensor& ctx, int F) const {
    return Graph::down(*this, std::move(h), temb, ctx, F);
}

Tensor Encoder::run_mid(Tensor h, const Tensor& temb, const Tensor& ctx, int F) const {
    return Graph::mid(*this, std::move(h), temb, ctx, F);
}

// ---------------------------------------------------------------------------------------------------
UNet3D::UNet3D(const io::WeightStore& w, const std::string& prefix) {
    UNetConfig c = UNetConfig::detect(w, prefix);
    Binder p(w, prefix);
    enc_.bind(p, c);
    const int L = static_cast<int>(c.block_out_channels.size());
    up_.resize(static_cast<size_t>(L));
    for (int i = 0; i < L; ++i) {
        Binder b = p.child(lvl("up_blocks", i));
        UpLevel& u = up_[static_cast<size_t>(i)];
        const bool attn = b.has("attentions.0.proj_in.weight");
        for (int j = 0; j < c.layers_per_block + 1; ++j) {
            u.resnets.emplace_back();
            u.resnets.back().bind(b.child(lvl("resnets", j)));
            u.temp_convs.emplace_back();
            u.temp_convs.back().bind(b.child(lvl("temp_convs", j)));
            if (attn) {
                u.attentions.emplace_back();
                u.attentions.back().bind(b.child(lvl("attentions", j)), c.head_dim);
                u.temp_attentions.emplace_back();
                u.temp_attentions.back().bind(b.child(lvl("temp_attentions", j)), c.head_dim);
            }
        }
        u.has_down = b.has("upsamplers.0.conv.weight");
        if (u.has_down) u.down.bind(b.child("upsamplers.0.conv"));
    }
    if (c.cam_mergers) {
        const int n = L * (c.layers_per_block + 1);
        for (int i = 0; i < n; ++i) {
            mergers_.emplace_back();
            mergers_.back().bind(p.child(lvl("cross_attention_merger_down_blocks", i)));
        }
        merger_mid_.bind(p.child("cross_attention_merger_mid_block"));
    }
    norm_out_.bind(p.child("conv_norm_out"));
    conv_out_.bind(p.child("conv_out"));
    keys_ = p.keys();
}

Tensor UNet3D::forward(const Tensor& x, float t, const Tensor& ctx, const CamResiduals* cam) const {
    const UNetConfig& c = enc_.cfg;
    check_ndim(x, 5, "UNet3D", "sample");
    ST2V_CHECK(x.size(1) == c.in_channels, Code::kShapeMismatch, "UNet3D: expected latents [B, %d, F, h, w], got %s",
               c.in_channels, x.desc().c_str());
    check_ndim(ctx, 3, "UNet3D", "context");
    ST2V_CHECK(ctx.size(0) == x.size(0) && ctx.size(2) == c.context_dim, Code::kShapeMismatch,
               "UNet3D: context %s does not fit batch %lld / width %lld", ctx.desc().c_str(), (long long)x.size(0),
               (long long)c.context_dim);
    const int64_t B = x.size(0);
    const int F = static_cast<int>(x.size(2));
    Tensor temb = enc_.time.silu_emb(t, B, F);                 // [B*F, E]
    // per sample [B, T, D] (Attention repeats its K / V per frame), or [B*F, T, D] as the reference holds it
    Tensor ctxF = detail::context_per_sample() ? ctx : repeat_interleave(ctx, F);
    return Graph::unet(enc_, up_, mergers_, merger_mid_, norm_out_, conv_out_, x, temb, ctxF, cam);
}

// ---------------------------------------------------------------------------------------------------
CamNet::CamNet(const io::WeightStore& w, const std::string& prefix) {
    UNetConfig c = UNetConfig::detect(w, prefix);
    Binder p(w, prefix);
    enc_.bind(p, c);
    Binder ce = p.child("controlnet_cond_embedding");
    ce_in_.bind(ce.child("conv_in"));
    for (int i = 0; ce.has(lvl("blocks", i) + ".weight"); ++i) {
        ce_blocks_.emplace_back();
        ce_blocks_.back().bind(ce.child(lvl("blocks", i)), i % 2 == 1 ? 2 : 1);  // (C->C), (C->C', stride 2) pairs
    }
    ce_out_.bind(ce.child("conv_out"));
    keys_ = p.keys();
}

Tensor CamNet::encode_cond(const Tensor& frames) const {
    return Graph::encode_cond(ce_in_, ce_blocks_, ce_out_, frames);
}

CamResiduals CamNet::forward(const Tensor& x, float t, const Tensor& ctx, const Tensor& cond, int Fc, Tensor* e_cond_out,
                             const Tensor* e_cond_in) const {
    check_ndim(x, 5, "CAM", "sample");
    const int64_t B = x.size(0);
    ST2V_CHECK(Fc >= 1 && Fc <= x.size(2), Code::kShapeMismatch, "CAM: %d conditioning frames for a %lld-frame chunk", Fc,
               (long long)x.size(2));
    ST2V_CHECK(cond.ndim() == 4 && cond.size(0) == B * Fc, Code::kShapeMismatch,
               "CAM: conditioning frames must be [%lld, 3, H, W], got %s", (long long)(B * Fc), cond.desc().c_str());
    Tensor temb = enc_.time.silu_emb(t, B, Fc);
    Tensor text = ctx.slice(1, 0, std::min<int64_t>(77, ctx.size(1))).contiguous();  // text tokens only
    Tensor ctxF = detail::context_per_sample() ? text : repeat_interleave(text, Fc);  // as in UNet3D::forward
    Tensor e = e_cond_in && e_cond_in->defined() ? *e_cond_in : encode_cond(cond);  // [B*Fc, C0, h, w]
    CamResiduals r = Graph::cam<Encoder, CamResiduals>(enc_, x, temb, ctxF, e, Fc);  // checks E_cond's shape
    if (e_cond_out) *e_cond_out = e;
    return r;
}

// ---------------------------------------------------------------------------------------------------
Resampler::Resampler(const io::WeightStore& w, const std::string& prefix, int64_t context_dim) : ctx_dim_(context_dim) {
    Binder p(w, prefix);
    l1_.bind(p.child("context_embedding.0"));
    l2_.bind(p.child("context_embedding.2"));
    ST2V_CHECK(l2_.out() % ctx_dim_ == 0, Code::kShapeMismatch, "resampler: output %lld is not a multiple of the context width %lld",
               (long long)l2_.out(), (long long)ctx_dim_);
    keys_ = p.keys();
}

Tensor Resampler::forward(const Tensor& emb, int frames) const {
    check_ndim(emb, 2, "resampler", "image embedding");
    const int64_t N = emb.size(0), E = emb.size(1), B = N / frames;
    Tensor m = emb;
    if (frames > 1) {  // mean over frames
        m = Tensor::zeros({B, E});
        const float* a = emb.contiguous().f32();
        for (int64_t b = 0; b < B; ++b)
            for (int f = 0; f < frames; ++f)
                for (int64_t e = 0; e < E; ++e) m.f32()[b * E + e] += a[(b * frames + f) * E + e] / frames;
    }
    Tensor y = l2_(l1_(m, ops::Act::kSilu));  // [B, tokens * D]
    return y.reshape({B, tokens(), ctx_dim_});
}

}  // namespace st2v::t2v

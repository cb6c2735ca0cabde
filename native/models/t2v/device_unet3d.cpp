// Device forward of the StreamingT2V stage-2 networks. The blocks read side by side with blocks.cpp: the same
// functions in the same order, ops::X -> co::X, Tensor -> DeviceTensor; the networks' forward is unet_graph.h's,
// shared with unet3d.cpp (its device backend: device_graph_ops.h). Binding is the CPU code's (each module binds its
// CPU counterpart and uploads what it bound).
#include "models/t2v/device_unet3d.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "backend/backend.h"
#include "models/t2v/device_graph_ops.h"
#include "models/t2v/unet_graph.h"

namespace st2v::t2v {

namespace co = backend::cuda_ops;
using co::DeviceTensor;

namespace {
// Bytes uploaded by the constructor running on this thread (weight_bytes()).
thread_local size_t* t_uploaded = nullptr;

DeviceTensor upload_as(const Tensor& t, DType dt) {
    if (!t.defined()) return DeviceTensor();
    DeviceTensor d = DeviceTensor::from_host(t.to(dt));
    if (t_uploaded) *t_uploaded += d.nbytes();
    return d;
}
DeviceTensor up_weight(const Tensor& t, DType wdt) { return upload_as(t, wdt); }   // GEMM / conv weights
DeviceTensor up_f32(const Tensor& t) { return upload_as(t, DType::F32); }           // norms, biases

struct UploadCounter {
    explicit UploadCounter(size_t* c) : prev(t_uploaded) { t_uploaded = c; }
    ~UploadCounter() { t_uploaded = prev; }
    size_t* prev;
};

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void sync() { backend::check(backend::cuda().synchronize(), "synchronize"); }

void check_wdt(DType wdt, const char* who) {
    ST2V_CHECK(wdt == DType::F32 || wdt == DType::BF16 || wdt == DType::F16, Code::kDtype,
               "%s: resident weight dtype must be f32, bf16 or f16, got %s", who, dtype_name(wdt));
}

}  // namespace

namespace device {

// [B, C, F, H, W] -> [B*F, C, H, W]
DeviceTensor video_to_frames(const DeviceTensor& x) {
    const int64_t B = x.size(0), C = x.size(1), F = x.size(2), H = x.size(3), W = x.size(4);
    return co::permute(x, {0, 2, 1, 3, 4}).reshape({B * F, C, H, W});
}
DeviceTensor frames_to_video(const DeviceTensor& x, int64_t frames) {
    const int64_t BF = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    return co::permute(x.reshape({BF / frames, frames, C, H, W}), {0, 2, 1, 3, 4});
}

// ---------------------------------------------------------------------------------------------------
// blocks.cpp
void Linear::upload(const t2v::Linear& l, DType wdt) {
    w = up_weight(l.w, wdt);
    b = up_f32(l.b);
}
DeviceTensor Linear::operator()(const DeviceTensor& x, co::Act act) const { return co::linear(x, w, b, act); }

void Conv2d::upload(const t2v::Conv2d& c, DType wdt) {
    w = up_weight(c.w, wdt);
    b = up_f32(c.b);
    p = c.p;
}
DeviceTensor Conv2d::operator()(const DeviceTensor& x) const { return co::conv2d(x, w, b, p); }

void Norm::upload(const t2v::Norm& n) {
    w = up_f32(n.w);
    b = up_f32(n.b);
}

void Attention::upload(const t2v::Attention& a, DType wdt) {
    to_q.upload(a.to_q, wdt);
    to_k.upload(a.to_k, wdt);
    to_v.upload(a.to_v, wdt);
    to_out.upload(a.to_out, wdt);
    heads = a.heads;
    apm = a.apm;
    if (apm) {
        conv_w = up_weight(a.conv_w, wdt);
        conv_b = up_f32(a.conv_b);
        conv_ln.upload(a.conv_ln);
        silu_alpha = a.silu_alpha;
        apm_tokens = a.conv_w.size(0);
        ST2V_CHECK(a.conv_w.ndim() == 3, Code::kShapeMismatch, "APM: conv weight %s is not [T, N, k]",
                   a.conv_w.shape().str().c_str());
    }
}

DeviceTensor Attention::operator()(const DeviceTensor& x, const DeviceTensor& ctx_in, int ctx_frames) const {
    DeviceTensor ctx = ctx_in.defined() ? ctx_in : x;
    if (apm && ctx_in.defined()) {
        // ctx [N, 93, D]: tokens are the Conv1d channels, the D features its length.
        const int64_t T = apm_tokens;
        ST2V_CHECK(ctx.ndim() == 3 && ctx.size(1) == conv_w.size(1), Code::kShapeMismatch,
                   "APM: context has %lld tokens, the mixer expects %lld", (long long)ctx.size(1),
                   (long long)conv_w.size(1));
        DeviceTensor mixed = co::layer_norm(co::conv1d_same(ctx, conv_w, conv_b), conv_ln.w, conv_ln.b, 1e-5f);  // [N, T, D]
        DeviceTensor text = co::slice(ctx, 1, 0, T);
        ctx = co::axpby(mixed, silu_alpha, text, 1.f);  // text + SiLU(alpha) * mixed
    }
    DeviceTensor q = to_q(x);    // [N, L, inner]
    DeviceTensor k = to_k(ctx);  // [N, Lk, inner]
    DeviceTensor v = to_v(ctx);
    if (ctx_in.defined() && ctx_frames > 1) {  // per-sample context: the rows of each frame are the same
        k = co::repeat_interleave(k, ctx_frames);
        v = co::repeat_interleave(v, ctx_frames);
    }
    const int64_t d = q.size(2) / heads;
    DeviceTensor o = co::attention(q, k, v, heads, 1.f / std::sqrt(static_cast<float>(d)));  // [N, L, inner]
    return to_out(o);
}

void TransformerBlock::upload(const t2v::TransformerBlock& b, DType wdt) {
    norm1.upload(b.norm1);
    norm2.upload(b.norm2);
    norm3.upload(b.norm3);
    attn1.upload(b.attn1, wdt);
    attn2.upload(b.attn2, wdt);
    ff_proj.upload(b.ff_proj, wdt);
    ff_out.upload(b.ff_out, wdt);
}

// The feed-forward's 8C-wide GEGLU projection exists for at most this many bytes of tokens at a time (the enhancer's
// level 0 at 720p is 345,600 tokens: 3.5 GB of it in one piece, 5.7 GB in the 512-wide first temporal transformer).
// Rows are independent, so the slices give the whole result; ST2V_CUDA_FF_CHUNK_BYTES overrides (read per call).
static int64_t ff_chunk_bytes() {
    if (const char* e = std::getenv("ST2V_CUDA_FF_CHUNK_BYTES"); e && *e) {
        const long long v = std::atoll(e);
        if (v > 0) return v;
    }
    return int64_t(256) << 20;
}

DeviceTensor TransformerBlock::operator()(DeviceTensor h, const DeviceTensor& ctx, int ctx_frames) const {
    co::add_(h, attn1(co::layer_norm(h, norm1.w, norm1.b, 1e-5f), DeviceTensor()));
    co::add_(h, attn2(co::layer_norm(h, norm2.w, norm2.b, 1e-5f), ctx, ctx_frames));
    DeviceTensor x3 = co::layer_norm(h, norm3.w, norm3.b, 1e-5f);
    const int64_t C = x3.size(x3.ndim() - 1), rows = x3.numel() / std::max<int64_t>(1, C);
    const int64_t per = std::max<int64_t>(1, ff_chunk_bytes() / (4 * std::max<int64_t>(1, ff_proj.out())));
    if (rows <= per) {
        co::add_(h, ff_out(co::geglu(ff_proj(x3))));
        return h;
    }
    // token slices (the CPU's ff_token_chunk does the same on the host)
    const DeviceTensor x2 = x3.reshape({rows, C});
    x3 = DeviceTensor();
    std::vector<DeviceTensor> parts;
    for (int64_t r0 = 0; r0 < rows; r0 += per)
        parts.push_back(ff_out(co::geglu(ff_proj(co::slice(x2, 0, r0, std::min(rows, r0 + per))))));
    co::add_(h, co::concat(parts, 0).reshape(h.shape()));
    return h;
}

void SpatialTransformer::upload(const t2v::SpatialTransformer& s, DType wdt) {
    norm.upload(s.norm);
    proj_in.upload(s.proj_in, wdt);
    proj_out.upload(s.proj_out, wdt);
    block.upload(s.block, wdt);
}

DeviceTensor SpatialTransformer::operator()(const DeviceTensor& x, const DeviceTensor& ctx, int ctx_frames) const {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    DeviceTensor h = co::group_norm(x, 1, 32, norm.w, norm.b, 1e-6f);             // [N, C, H, W]
    h = co::permute(h.reshape({N, C, H * W}), {0, 2, 1});                          // [N, HW, C]
    h = proj_in(h);                                                                // [N, HW, inner]
    h = block(h, ctx, ctx_frames);
    h = proj_out(h);                                                               // [N, HW, C]
    DeviceTensor out = co::permute(h, {0, 2, 1}).reshape({N, C, H, W});            // [N, C, H, W]
    co::add_(out, x);
    return out;
}

void TemporalTransformer::upload(const t2v::TemporalTransformer& s, DType wdt) {
    norm.upload(s.norm);
    proj_in.upload(s.proj_in, wdt);
    proj_out.upload(s.proj_out, wdt);
    block.upload(s.block, wdt);
}

DeviceTensor frames_to_tokens(const DeviceTensor& x, int frames) {
    const int64_t BF = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), B = BF / frames;
    // [B, F, C, H, W] -> [B, H, W, F, C]
    return co::permute(x.reshape({B, frames, C, H, W}), {0, 3, 4, 1, 2}).reshape({B * H * W, frames, C});
}

DeviceTensor tokens_to_frames(const DeviceTensor& t, int frames, int64_t H, int64_t W) {
    const int64_t C = t.size(2), B = t.size(0) / (H * W);
    // [B, H, W, F, C] -> [B, F, C, H, W]
    return co::permute(t.reshape({B, H, W, frames, C}), {0, 3, 4, 1, 2}).reshape({B * frames, C, H, W});
}

DeviceTensor TemporalTransformer::operator()(const DeviceTensor& x, int frames) const {
    const int64_t H = x.size(2), W = x.size(3);
    DeviceTensor h = co::group_norm(x, frames, 32, norm.w, norm.b, 1e-6f);  // GN over all frames of a sample
    DeviceTensor tok = frames_to_tokens(h, frames);                         // [B*H*W, F, C]
    h = proj_out(block(proj_in(tok), DeviceTensor()));  // [B*H*W, F, inner] inside, [B*H*W, F, C] out (CPU tiling: same)
    DeviceTensor out = tokens_to_frames(h, frames, H, W);                   // [B*F, C, H, W]
    co::add_(out, x);
    return out;
}

void TemporalConv::upload(const t2v::TemporalConv& c, DType wdt) {
    for (int i = 0; i < 4; ++i) {
        norm[i].upload(c.norm[i]);
        w[i] = up_weight(c.w[i], wdt);
        b[i] = up_f32(c.b[i]);
    }
}

DeviceTensor TemporalConv::operator()(const DeviceTensor& x, int frames) const {
    DeviceTensor h = x;
    for (int i = 0; i < 4; ++i) {
        h = co::group_norm(h, frames, 32, norm[i].w, norm[i].b, 1e-5f, /*silu=*/true);
        h = co::conv_temporal(h, frames, w[i], b[i]);
    }
    co::add_(h, x);
    return h;
}

void ResnetBlock::upload(const t2v::ResnetBlock& r, DType wdt) {
    norm1.upload(r.norm1);
    norm2.upload(r.norm2);
    conv1.upload(r.conv1, wdt);
    conv2.upload(r.conv2, wdt);
    temb_proj.upload(r.temb_proj, wdt);
    has_shortcut = r.has_shortcut;
    if (has_shortcut) shortcut.upload(r.shortcut, wdt);
}

DeviceTensor ResnetBlock::operator()(const DeviceTensor& x, const DeviceTensor& temb_silu) const {
    DeviceTensor h = conv1(co::group_norm(x, 1, 32, norm1.w, norm1.b, 1e-5f, true));  // [N, Co, H, W]
    DeviceTensor t = temb_proj(temb_silu);                                             // [N, Co]
    co::add_channel_(h, t);
    h = conv2(co::group_norm(h, 1, 32, norm2.w, norm2.b, 1e-5f, true));
    if (has_shortcut) co::add_(h, shortcut(x));
    else co::add_(h, x);
    return h;
}

// ---------------------------------------------------------------------------------------------------
// unet3d.cpp
void Level::upload(const t2v::DownLevel& l, DType wdt) {
    resnets.resize(l.resnets.size());
    for (size_t i = 0; i < l.resnets.size(); ++i) resnets[i].upload(l.resnets[i], wdt);
    temp_convs.resize(l.temp_convs.size());
    for (size_t i = 0; i < l.temp_convs.size(); ++i) temp_convs[i].upload(l.temp_convs[i], wdt);
    attentions.resize(l.attentions.size());
    for (size_t i = 0; i < l.attentions.size(); ++i) attentions[i].upload(l.attentions[i], wdt);
    temp_attentions.resize(l.temp_attentions.size());
    for (size_t i = 0; i < l.temp_attentions.size(); ++i) temp_attentions[i].upload(l.temp_attentions[i], wdt);
    has_down = l.has_down;
    if (has_down) down.upload(l.down, wdt);
}

void Merger::upload(const t2v::Merger& m, DType wdt) {
    norm.upload(m.norm);
    proj_in.upload(m.proj_in, wdt);
    proj_out.upload(m.proj_out, wdt);
    attn.upload(m.attn, wdt);
}

DeviceTensor Merger::operator()(const DeviceTensor& h, const DeviceTensor& r, int frames, int cond_frames) const {
    const int64_t H = h.size(2), W = h.size(3);
    DeviceTensor q = co::group_norm(h, frames, 32, norm.w, norm.b, 1e-6f);  // GN over all F frames
    q = proj_in(frames_to_tokens(q, frames));                               // [B*H*W, F, C]
    DeviceTensor kv = frames_to_tokens(r, cond_frames);                     // [B*H*W, Fc, C] raw CAM features
    DeviceTensor a = attn(q, kv);                                           // [B*H*W, F, C]
    DeviceTensor out = tokens_to_frames(proj_out(a), frames, H, W);         // [B*F, C, H, W]
    co::add_(out, h);
    return out;
}

void TimeEmbedding::upload(const t2v::TimeEmbedding& t, DType wdt) {
    l1.upload(t.l1, wdt);
    l2.upload(t.l2, wdt);
    dim = t.dim;
}

DeviceTensor TimeEmbedding::silu_emb(float t, int64_t batch, int frames) const {
    DeviceTensor e = co::timestep_embedding(std::vector<float>(1, t), dim, true, 0.f);  // [1, 320], cos first
    e = l2(l1(e, co::Act::kSilu));                                                     // [1, E]
    e = co::silu(e);  // every consumer (resnet time_emb_proj) applies SiLU first
    return co::repeat_interleave(co::repeat_interleave(e, static_cast<int>(batch)), frames);  // [B*F, E]
}

void Encoder::upload(const t2v::Encoder& e, DType wdt) {
    cfg = e.cfg;
    conv_in.upload(e.conv_in, wdt);
    time.upload(e.time, wdt);
    transformer_in.upload(e.transformer_in, wdt);
    down.resize(e.down.size());
    for (size_t i = 0; i < e.down.size(); ++i) down[i].upload(e.down[i], wdt);
    for (int j = 0; j < 2; ++j) {
        mid_res[j].upload(e.mid_res[j], wdt);
        mid_tc[j].upload(e.mid_tc[j], wdt);
    }
    mid_attn.upload(e.mid_attn, wdt);
    mid_tattn.upload(e.mid_tattn, wdt);
}

using Graph = t2v::detail::UNetGraph<t2v::detail::DeviceGraphOps>;  // the forward, shared with the CPU networks

std::vector<DeviceTensor> Encoder::run_down(DeviceTensor h, const DeviceTensor& temb, const DeviceTensor& ctx, int F) const {
    return Graph::down(*this, std::move(h), temb, ctx, F);
}

DeviceTensor Encoder::stem(const DeviceTensor& x) const { return Graph::stem(*this, x); }

DeviceTensor Encoder::run_mid(DeviceTensor h, const DeviceTensor& temb, const DeviceTensor& ctx, int F) const {
    return Graph::mid(*this, std::move(h), temb, ctx, F);
}

}  // namespace device

// ---------------------------------------------------------------------------------------------------
DeviceUNet3D::DeviceUNet3D(const io::WeightStore& w, const std::string& prefix, DType wdt) : wdt_(wdt) {
    check_wdt(wdt, "DeviceUNet3D");
    (void)backend::cuda();  // ERR_NO_CUDA (naming what is missing) before any work
    // Binding: UNet3D::UNet3D's, on the CPU modules (views into the store), then one upload per weight.
    UNetConfig c = UNetConfig::detect(w, prefix);
    Binder p(w, prefix);
    Encoder enc;
    enc.bind(p, c);
    const int L = static_cast<int>(c.block_out_channels.size());
    std::vector<UpLevel> up(static_cast<size_t>(L));
    for (int i = 0; i < L; ++i) {
        Binder b = p.child("up_blocks." + std::to_string(i));
        UpLevel& u = up[static_cast<size_t>(i)];
        const bool attn = b.has("attentions.0.proj_in.weight");
        for (int j = 0; j < c.layers_per_block + 1; ++j) {
            const std::string n = "." + std::to_string(j);
            u.resnets.emplace_back();
            u.resnets.back().bind(b.child("resnets" + n));
            u.temp_convs.emplace_back();
            u.temp_convs.back().bind(b.child("temp_convs" + n));
            if (attn) {
                u.attentions.emplace_back();
                u.attentions.back().bind(b.child("attentions" + n), c.head_dim);
                u.temp_attentions.emplace_back();
                u.temp_attentions.back().bind(b.child("temp_attentions" + n), c.head_dim);
            }
        }
        u.has_down = b.has("upsamplers.0.conv.weight");
        if (u.has_down) u.down.bind(b.child("upsamplers.0.conv"));
    }
    std::vector<Merger> mergers;
    Merger merger_mid;
    if (c.cam_mergers) {
        const int n = L * (c.layers_per_block + 1);
        for (int i = 0; i < n; ++i) {
            mergers.emplace_back();
            mergers.back().bind(p.child("cross_attention_merger_down_blocks." + std::to_string(i)));
        }
        merger_mid.bind(p.child("cross_attention_merger_mid_block"));
    }
    Norm norm_out;
    norm_out.bind(p.child("conv_norm_out"));
    Conv2d conv_out;
    conv_out.bind(p.child("conv_out"));
    keys_ = p.keys();

    UploadCounter uc(&weight_bytes_);
    enc_.upload(enc, wdt);
    up_.resize(up.size());
    for (size_t i = 0; i < up.size(); ++i) up_[i].upload(up[i], wdt);
    mergers_.resize(mergers.size());
    for (size_t i = 0; i < mergers.size(); ++i) mergers_[i].upload(mergers[i], wdt);
    if (c.cam_mergers) merger_mid_.upload(merger_mid, wdt);
    norm_out_.upload(norm_out);
    conv_out_.upload(conv_out, wdt);
}

DeviceTensor DeviceUNet3D::forward(const DeviceTensor& x, float t, const DeviceTensor& ctx, const DeviceCamResiduals* cam) const {
    const UNetConfig& c = enc_.cfg;
    ST2V_CHECK(x.defined() && x.ndim() == 5 && x.dtype() == DType::F32, Code::kShapeMismatch,
               "UNet3D (cuda): sample must be an f32 [B, C, F, h, w] tensor");
    ST2V_CHECK(x.size(1) == c.in_channels, Code::kShapeMismatch, "UNet3D (cuda): expected latents [B, %d, F, h, w], got %s",
               c.in_channels, x.shape().str().c_str());
    ST2V_CHECK(ctx.defined() && ctx.ndim() == 3, Code::kShapeMismatch, "UNet3D (cuda): context must be [B, T, D]");
    ST2V_CHECK(ctx.size(0) == x.size(0) && ctx.size(2) == c.context_dim, Code::kShapeMismatch,
               "UNet3D (cuda): context %s does not fit batch %lld / width %lld", ctx.shape().str().c_str(),
               (long long)x.size(0), (long long)c.context_dim);
    const int64_t B = x.size(0);
    const int F = static_cast<int>(x.size(2));
    DeviceTensor temb = enc_.time.silu_emb(t, B, F);              // [B*F, E]
    // the CPU's ctxF = repeat_interleave(ctx, F) [B*F, T, D]: here ctx stays per sample (see Attention)
    return device::Graph::unet(enc_, up_, mergers_, merger_mid_, norm_out_, conv_out_, x, temb, ctx, cam);
}

// ---------------------------------------------------------------------------------------------------
DeviceCamNet::DeviceCamNet(const io::WeightStore& w, const std::string& prefix, DType wdt) {
    check_wdt(wdt, "DeviceCamNet");
    (void)backend::cuda();  // ERR_NO_CUDA before any work
    // Binding: CamNet::CamNet's.
    UNetConfig c = UNetConfig::detect(w, prefix);
    Binder p(w, prefix);
    Encoder enc;
    enc.bind(p, c);
    Binder ce = p.child("controlnet_cond_embedding");
    Conv2d ce_in, ce_out;
    std::vector<Conv2d> ce_blocks;
    ce_in.bind(ce.child("conv_in"));
    for (int i = 0; ce.has("blocks." + std::to_string(i) + ".weight"); ++i) {
        ce_blocks.emplace_back();
        ce_blocks.back().bind(ce.child("blocks." + std::to_string(i)), i % 2 == 1 ? 2 : 1);  // (C->C), (C->C', stride 2)
    }
    ce_out.bind(ce.child("conv_out"));
    keys_ = p.keys();

    UploadCounter uc(&weight_bytes_);
    enc_.upload(enc, wdt);
    ce_in_.upload(ce_in, wdt);
    ce_blocks_.resize(ce_blocks.size());
    for (size_t i = 0; i < ce_blocks.size(); ++i) ce_blocks_[i].upload(ce_blocks[i], wdt);
    ce_out_.upload(ce_out, wdt);
}

DeviceTensor DeviceCamNet::encode_cond(const DeviceTensor& frames) const {
    return device::Graph::encode_cond(ce_in_, ce_blocks_, ce_out_, frames);
}

DeviceCamResiduals DeviceCamNet::forward(const DeviceTensor& x, float t, const DeviceTensor& ctx, const DeviceTensor& cond,
                                         int Fc, const DeviceTensor* e_cond_in) const {
    ST2V_CHECK(x.defined() && x.ndim() == 5 && x.dtype() == DType::F32, Code::kShapeMismatch,
               "CAM (cuda): sample must be an f32 [B, C, F, h, w] tensor");
    const int64_t B = x.size(0);
    ST2V_CHECK(Fc >= 1 && Fc <= x.size(2), Code::kShapeMismatch, "CAM: %d conditioning frames for a %lld-frame chunk", Fc,
               (long long)x.size(2));
    const bool cached = e_cond_in && e_cond_in->defined();
    const DeviceTensor& cf = cached ? *e_cond_in : cond;  // what the batch check applies to
    ST2V_CHECK(cf.defined() && cf.ndim() == 4 && cf.size(0) == B * Fc, Code::kShapeMismatch,
               "CAM: conditioning frames%s must be [%lld, C, H, W], got %s", cached ? " (their E_cond)" : "",
               (long long)(B * Fc), cf.defined() ? cf.shape().str().c_str() : "undefined");
    ST2V_CHECK(ctx.defined() && ctx.ndim() == 3 && ctx.size(0) == B, Code::kShapeMismatch,
               "CAM (cuda): context must be [%lld, T, D]", (long long)B);
    DeviceTensor temb = enc_.time.silu_emb(t, B, Fc);
    DeviceTensor text = co::slice(ctx, 1, 0, std::min<int64_t>(77, ctx.size(1)));    // text tokens only
    // the CPU's ctxF = repeat_interleave(text, Fc): per sample here (see Attention)
    DeviceTensor e = cached ? *e_cond_in : encode_cond(cond);                        // [B*Fc, C0, h, w]
    return device::Graph::cam<device::Encoder, DeviceCamResiduals>(enc_, x, temb, text, e, Fc);
}

// ---------------------------------------------------------------------------------------------------
DeviceTensor device_eps_extension(const DeviceUNet3D& unet, const DeviceCamNet& cam, const DeviceTensor& X, float t,
                                  const DeviceTensor& ctx, const DeviceTensor& cond, double* ms_cam, double* ms_unet,
                                  DeviceCamResiduals* cam_out, const DeviceTensor* e_cond) {
    // engine::Model::eps_extension (model.cpp)
    const bool timed = ms_cam || ms_unet;
    if (timed) sync();
    const double a = timed ? now_ms() : 0;
    const bool cached = e_cond && e_cond->defined();
    ST2V_CHECK_ARG(X.defined() && X.ndim() == 5 && X.size(0) >= 1, "eps_extension (cuda): sample must be [B, C, F, h, w]");
    ST2V_CHECK_ARG(cached || (cond.defined() && cond.ndim() == 4),
                   "eps_extension (cuda): conditioning frames [B*Fc, 3, H, W] or their E_cond required");
    const int Fc = static_cast<int>((cached ? e_cond->size(0) : cond.size(0)) / X.size(0));
    DeviceCamResiduals r = cam.forward(X, t, ctx, cond, Fc, e_cond);
    if (timed) sync();
    const double b = timed ? now_ms() : 0;
    DeviceTensor eps = unet.forward(X, t, ctx, &r);
    if (timed) sync();
    if (ms_cam) *ms_cam += b - a;
    if (ms_unet) *ms_unet += now_ms() - b;
    if (cam_out) *cam_out = std::move(r);
    return eps;
}

DeviceTensor device_stage2_step(const DeviceUNet3D& unet, const DeviceCamNet& cam, const runtime::DdimScheduler& sch,
                                const DeviceTensor& x, int64_t t, const DeviceTensor& ctx, const DeviceTensor& cond2,
                                float guidance, float eta, const DeviceTensor* noise, double* ms_cam, double* ms_unet,
                                DeviceCamResiduals* cam_out, DeviceTensor* eps_out, const DeviceTensor* e_cond) {
    ST2V_CHECK_ARG(x.defined() && x.ndim() == 4, "device_stage2_step: x must be [F, C, h, w]");
    ST2V_CHECK_ARG(ctx.defined() && ctx.ndim() == 3 && ctx.size(0) == 2,
                   "device_stage2_step: ctx must be [2, L, D] ([uncond, cond])");
    const DeviceTensor& cf = e_cond && e_cond->defined() ? *e_cond : cond2;
    ST2V_CHECK_ARG(cf.defined() && cf.ndim() == 4 && cf.size(0) % 2 == 0,
                   "device_stage2_step: cond frames (or their E_cond) must be [2 * Fc, C, H, W]");
    const std::vector<float>& acp = sch.alphas_cumprod();
    ST2V_CHECK_ARG(t >= 0 && t < static_cast<int64_t>(acp.size()), "device_stage2_step: timestep %lld out of range",
                   (long long)t);
    const int64_t F = x.size(0);
    // engine::sample_extension_chunk: X = repeat_batch(to_bcfhw(x), 2) -> eps -> cfg_combine_batch -> to_bfchw
    DeviceTensor xv = co::permute(x.reshape({1, F, x.size(1), x.size(2), x.size(3)}), {0, 2, 1, 3, 4});  // [1, 4, F, h, w]
    DeviceTensor X = co::concat({xv, xv}, 0);                                                              // [2, 4, F, h, w]
    DeviceTensor eps2 = device_eps_extension(unet, cam, X, static_cast<float>(t), ctx, cond2, ms_cam, ms_unet, cam_out,
                                             e_cond);
    if (eps_out) *eps_out = eps2;
    DeviceTensor eps = co::cfg_combine(co::slice(eps2, 0, 0, 1), co::slice(eps2, 0, 1, 2), guidance);       // [1, 4, F, h, w]
    eps = co::permute(eps, {0, 2, 1, 3, 4}).reshape(x.shape());                                            // [F, 4, h, w]
    // runtime::DdimScheduler::step's scalars (set_alpha_to_one = false)
    const int64_t prev = sch.prev_timestep(t);
    const float a_t = acp[static_cast<size_t>(t)];
    const float a_prev = prev >= 0 ? acp[static_cast<size_t>(prev)] : acp[0];
    return co::ddim_step(eps, x, a_t, a_prev, eta, eta > 0.0f ? noise : nullptr);
}

}  // namespace st2v::t2v

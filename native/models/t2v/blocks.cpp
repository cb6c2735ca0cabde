#include "models/t2v/blocks.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/threadpool.h"

namespace st2v::t2v {

const Tensor& Binder::get(const std::string& name) const {
    const std::string full = prefix_ + name;
    const Tensor* t = store_.find(full);
    ST2V_CHECK(t != nullptr, Code::kWeightsMissing, "missing weight '%s'", full.c_str());
    keys_->push_back(full);
    return *t;
}

Tensor repeat_interleave(const Tensor& x, int frames) {
    ST2V_CHECK_ARG(frames >= 1, "repeat_interleave: frames must be >= 1, got %d", frames);
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "repeat_interleave: input must be at least 1-d");
    if (frames == 1) return x.contiguous();
    const int64_t B = x.size(0);
    std::vector<int64_t> s = x.shape().vec();
    s[0] = B * frames;
    Tensor y = Tensor::empty(Shape(s), x.dtype());
    if (B == 0) return y;
    const Tensor xc = x.contiguous();
    const size_t row = xc.nbytes() / static_cast<size_t>(B);
    for (int64_t b = 0; b < B; ++b)
        for (int f = 0; f < frames; ++f)
            std::memcpy(static_cast<char*>(y.raw()) + static_cast<size_t>(b * frames + f) * row,
                        static_cast<const char*>(xc.raw()) + static_cast<size_t>(b) * row, row);
    return y;
}

namespace detail {
bool switch_from_env(const char* name) {
    const char* e = std::getenv(name);
    return !(e && (std::strcmp(e, "off") == 0 || std::strcmp(e, "0") == 0));
}
namespace {
std::atomic<bool> g_ctx_per_sample{switch_from_env("ST2V_CTX_PER_SAMPLE")};
}  // namespace
bool set_context_per_sample(bool on) { return g_ctx_per_sample.exchange(on); }
bool context_per_sample() { return g_ctx_per_sample.load(std::memory_order_relaxed); }
}  // namespace detail

namespace {
void expect_ndim(const Tensor& t, int nd, const Binder& p, const char* name) {
    ST2V_CHECK(t.ndim() == nd, Code::kShapeMismatch, "weight '%s%s' has shape %s, expected %d dims", p.prefix().c_str(),
               name, t.shape().str().c_str(), nd);
}
}  // namespace

void Linear::bind(const Binder& p, bool bias) {
    w = p.get("weight");
    expect_ndim(w, 2, p, "weight");
    if (bias) {
        b = p.get("bias");
        ST2V_CHECK(b.ndim() == 1 && b.size(0) == w.size(0), Code::kShapeMismatch, "weight '%sbias' has shape %s, expected [%lld]",
                   p.prefix().c_str(), b.shape().str().c_str(), (long long)w.size(0));
    }
}

void Conv2d::bind(const Binder& p, int stride, bool bias) {
    w = p.get("weight");
    expect_ndim(w, 4, p, "weight");
    if (bias) b = p.get("bias");
    this->p = ops::Conv2dParams::same(static_cast<int>(w.size(2)), stride);
}

void Norm::bind(const Binder& p) {
    w = p.get("weight");
    b = p.get("bias");
}

void Attention::bind(const Binder& p, int h) {
    heads = h;
    to_q.bind(p.child("to_q"), false);
    to_k.bind(p.child("to_k"), false);
    to_v.bind(p.child("to_v"), false);
    to_out.bind(p.child("to_out.0"));
    ST2V_CHECK(heads >= 1 && to_q.out() % heads == 0, Code::kShapeMismatch, "%s: inner width %lld not divisible by %d heads",
               p.prefix().c_str(), (long long)to_q.out(), heads);
    apm = p.has("conv.weight");
    if (apm) {
        conv_w = p.get("conv.weight");
        conv_b = p.get("conv.bias");
        conv_ln.bind(p.child("conv_ln"));
        Tensor a = p.get("alpha").to(DType::F32);
        float alpha = a.f32()[0];
        silu_alpha = alpha / (1.f + std::exp(-alpha));
    }
}

Tensor Attention::heads_out(const Tensor& x, const Tensor& ctx_in) const {
    const int64_t N = x.size(0);
    Tensor ctx = ctx_in.defined() ? ctx_in : x;
    int64_t per = 1;  // entries of x per context entry
    if (ctx_in.defined() && ctx_in.ndim() >= 1 && ctx_in.size(0) != N) {
        const int64_t Bc = ctx_in.size(0);
        ST2V_CHECK(Bc >= 1 && N % Bc == 0, Code::kShapeMismatch,
                   "attention: context %s is neither one per input entry nor one per group of them (input batch %lld)",
                   ctx_in.desc().c_str(), (long long)N);
        per = N / Bc;
    }
    if (apm && ctx_in.defined()) {
        // ctx [N or N / F, 93, D]: tokens are the Conv1d channels, the D features its length.
        const int64_t T = conv_w.size(0);
        ST2V_CHECK(ctx.size(1) == conv_w.size(1), Code::kShapeMismatch,
                   "APM: context has %lld tokens, the mixer expects %lld", (long long)ctx.size(1), (long long)conv_w.size(1));
        Tensor mixed = ops::layer_norm(ops::conv1d_same(ctx, conv_w, conv_b), conv_ln.w, conv_ln.b, 1e-5f);  // [N, T, D]
        Tensor text = ctx.slice(1, 0, T).contiguous();
        ctx = ops::axpby(mixed, silu_alpha, text, 1.f);  // text + SiLU(alpha) * mixed
    }
    Tensor q, k, v;  // [N, L, inner], [N, Lk, inner] x 2
    if (!ctx_in.defined() && to_k.out() == to_q.out() && to_v.out() == to_q.out()) {
        // self-attention: q, k, v from one GEMM over x (the same values as three linears), as views of its output
        const int64_t inner = to_q.out();
        const Tensor qkv = ops::linear_concat(x, {to_q.w, to_k.w, to_v.w});  // [N, L, 3 inner]
        q = qkv.slice(2, 0, inner);
        k = qkv.slice(2, inner, 2 * inner);
        v = qkv.slice(2, 2 * inner, 3 * inner);
    } else {
        q = to_q(x);
        k = to_k(ctx);
        v = to_v(ctx);
        if (per > 1) {  // a per-sample context: its K, V rows for each of the sample's entries
            k = repeat_interleave(k, static_cast<int>(per));
            v = repeat_interleave(v, static_cast<int>(per));
        }
    }
    const int64_t d = q.size(2) / heads;
    return ops::attention(q, k, v, heads, 1.f / std::sqrt(static_cast<float>(d)));  // [N, L, inner]
}

void Attention::add_into(Tensor& h, const Tensor& x, const Tensor& ctx) const {
    ops::linear_add_(h, heads_out(x, ctx), to_out.w, to_out.b);
}

void TransformerBlock::bind(const Binder& p, int heads) {
    norm1.bind(p.child("norm1"));
    norm2.bind(p.child("norm2"));
    norm3.bind(p.child("norm3"));
    attn1.bind(p.child("attn1"), heads);
    attn2.bind(p.child("attn2"), heads);
    ff_proj.bind(p.child("ff.net.0.proj"));
    ff_out.bind(p.child("ff.net.2"));
}

Tensor TransformerBlock::operator()(Tensor h, const Tensor& ctx) const {
    attn1.add_into(h, ops::layer_norm(h, norm1.w, norm1.b, 1e-5f), Tensor());
    attn2.add_into(h, ops::layer_norm(h, norm2.w, norm2.b, 1e-5f), ctx);
    Tensor x3 = ops::layer_norm(h, norm3.w, norm3.b, 1e-5f);
    const int64_t C = h.size(-1), rows = C > 0 ? h.numel() / C : 0;
    if (ff_token_chunk <= 0 || rows <= ff_token_chunk || !h.is_contiguous() || !x3.is_contiguous()) {
        ops::linear_add_(h, ops::linear_geglu(x3, ff_proj.w, ff_proj.b), ff_out.w, ff_out.b);
        return h;
    }
    // token-tiled FF: each slice of rows goes through proj + GEGLU (one fused GEMM) -> out and is added into its rows of h
    const Tensor flat = x3.reshape({rows, C});
    for (int64_t r0 = 0; r0 < rows; r0 += ff_token_chunk) {
        const int64_t r1 = std::min(rows, r0 + ff_token_chunk);
        Tensor hv = Tensor::borrow(h.f32() + r0 * C, Shape({r1 - r0, C}), DType::F32, h.storage()->owner);
        ops::linear_add_(hv, ops::linear_geglu(flat.slice(0, r0, r1), ff_proj.w, ff_proj.b), ff_out.w, ff_out.b);
    }
    return h;
}

void SpatialTransformer::bind(const Binder& p, int head_dim) {
    norm.bind(p.child("norm"));
    proj_in.bind(p.child("proj_in"));
    proj_out.bind(p.child("proj_out"));
    const int64_t inner = proj_in.out();
    ST2V_CHECK(inner % head_dim == 0, Code::kShapeMismatch, "%s: width %lld not divisible by head size %d", p.prefix().c_str(),
               (long long)inner, head_dim);
    block.bind(p.child("transformer_blocks.0"), static_cast<int>(inner / head_dim));
}

Tensor SpatialTransformer::operator()(const Tensor& x, const Tensor& ctx) const {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    Tensor h = ops::group_norm(x, 1, 32, norm.w, norm.b, 1e-6f);                // [N, C, H, W]
    h = h.reshape({N, C, H * W}).permute({0, 2, 1});                            // [N, HW, C] (view)
    h = proj_in(h.contiguous());                                                // [N, HW, inner]
    h = block(h, ctx);
    h = proj_out(h);                                                            // [N, HW, C]
    Tensor out = h.permute({0, 2, 1}).contiguous().reshape({N, C, H, W});       // [N, C, H, W]
    ops::add_(out, x);
    return out;
}

void TemporalTransformer::bind(const Binder& p, int head_dim, int fixed_heads) {
    norm.bind(p.child("norm"));
    proj_in.bind(p.child("proj_in"));
    proj_out.bind(p.child("proj_out"));
    const int64_t inner = proj_in.out();
    int heads = fixed_heads > 0 ? fixed_heads : static_cast<int>(inner / head_dim);
    ST2V_CHECK(heads >= 1 && inner % heads == 0, Code::kShapeMismatch, "%s: width %lld does not split into heads",
               p.prefix().c_str(), (long long)inner);
    block.bind(p.child("transformer_blocks.0"), heads);
}

Tensor frames_to_tokens(const Tensor& x, int frames) {
    const int64_t BF = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), B = BF / frames;
    // [B, F, C, H, W] -> [B, H, W, F, C]
    return x.reshape({B, frames, C, H, W}).permute({0, 3, 4, 1, 2}).contiguous().reshape({B * H * W, frames, C});
}

Tensor tokens_to_frames(const Tensor& t, int frames, int64_t H, int64_t W) {
    const int64_t C = t.size(2), B = t.size(0) / (H * W);
    // [B, H, W, F, C] -> [B, F, C, H, W]
    return t.reshape({B, H, W, frames, C}).permute({0, 3, 4, 1, 2}).contiguous().reshape({B * frames, C, H, W});
}

Tensor TemporalTransformer::operator()(const Tensor& x, int frames) const {
    const int64_t H = x.size(2), W = x.size(3);
    Tensor h = ops::group_norm(x, frames, 32, norm.w, norm.b, 1e-6f);  // GN over all frames of a sample
    Tensor tok = frames_to_tokens(h, frames);                          // [B*H*W, F, C]
    const int64_t S = tok.size(0);
    const int64_t per = token_chunk > 0 ? std::max<int64_t>(1, token_chunk / std::max(frames, 1)) : S;
    if (per >= S) {
        h = proj_out(block(proj_in(tok), Tensor()));  // [B*H*W, F, inner] inside, [B*H*W, F, C] out
    } else {
        // tiles of whole per-pixel sequences: every op below acts within one sequence (module comment in blocks.h)
        h = Tensor::empty({S, frames, proj_out.out()});
        const int64_t row = static_cast<int64_t>(frames) * proj_out.out();
        for (int64_t s0 = 0; s0 < S; s0 += per) {
            const int64_t s1 = std::min(S, s0 + per);
            Tensor o = proj_out(block(proj_in(tok.slice(0, s0, s1)), Tensor())).contiguous();
            std::memcpy(h.f32() + s0 * row, o.f32(), static_cast<size_t>((s1 - s0) * row) * sizeof(float));
        }
    }
    Tensor out = tokens_to_frames(h, frames, H, W);                    // [B*F, C, H, W]
    ops::add_(out, x);
    return out;
}

void TemporalConv::bind(const Binder& p) {
    for (int i = 0; i < 4; ++i) {
        const std::string n = "conv" + std::to_string(i + 1);
        norm[i].bind(p.child(n + ".0"));
        const std::string ci = n + (i == 0 ? ".2" : ".3");  // conv1 has no Dropout before the Conv3d
        w[i] = p.get(ci + ".weight");
        b[i] = p.get(ci + ".bias");
        ST2V_CHECK(w[i].ndim() == 5 && w[i].size(2) == 3, Code::kShapeMismatch, "weight '%s%s.weight' has shape %s, expected [C, C, 3, 1, 1]",
                   p.prefix().c_str(), ci.c_str(), w[i].shape().str().c_str());
    }
}

Tensor TemporalConv::operator()(const Tensor& x, int frames) const {
    Tensor h = x;
    for (int i = 0; i < 4; ++i) {
        h = ops::group_norm(h, frames, 32, norm[i].w, norm[i].b, 1e-5f, /*silu=*/true);
        h = ops::conv_temporal(h, frames, w[i], b[i]);
    }
    ops::add_(h, x);
    return h;
}

void ResnetBlock::bind(const Binder& p) {
    norm1.bind(p.child("norm1"));
    norm2.bind(p.child("norm2"));
    conv1.bind(p.child("conv1"));
    conv2.bind(p.child("conv2"));
    temb_proj.bind(p.child("time_emb_proj"));
    has_shortcut = p.has("conv_shortcut.weight");
    if (has_shortcut) shortcut.bind(p.child("conv_shortcut"));
}

Tensor ResnetBlock::operator()(const Tensor& x, const Tensor& temb_silu) const {
    const int64_t N = x.size(0);
    Tensor h = conv1(ops::group_norm(x, 1, 32, norm1.w, norm1.b, 1e-5f, true));  // [N, Co, H, W]
    Tensor t = temb_proj(temb_silu);                                              // [N, Co]
    {
        float* hp = h.f32();
        const float* tp = t.f32();
        const int64_t C = h.size(1), S = h.size(2) * h.size(3);
        parallel_for(N * C, [&](int64_t a, int64_t e, int) {
            for (int64_t i = a; i < e; ++i) {
                const float v = tp[i];
                float* r = hp + i * S;
                for (int64_t s = 0; s < S; ++s) r[s] += v;
            }
        });
    }
    h = conv2(ops::group_norm(h, 1, 32, norm2.w, norm2.b, 1e-5f, true));
    if (has_shortcut) ops::add_(h, shortcut(x));
    else ops::add_(h, x);
    return h;
}

Tensor upsample_nearest(const Tensor& x, int64_t oh, int64_t ow) {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    if (oh == 2 * H && ow == 2 * W) return ops::upsample_nearest2x(x);
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty({N, C, oh, ow});
    const float* a = xc.f32();
    float* o = y.f32();
    const float sh = static_cast<float>(H) / static_cast<float>(oh), sw = static_cast<float>(W) / static_cast<float>(ow);
    parallel_for(N * C, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t r = 0; r < oh; ++r) {
                int64_t sr = std::min<int64_t>(static_cast<int64_t>(std::floor(r * sh)), H - 1);
                for (int64_t c = 0; c < ow; ++c) {
                    int64_t sc = std::min<int64_t>(static_cast<int64_t>(std::floor(c * sw)), W - 1);
                    o[(i * oh + r) * ow + c] = a[(i * H + sr) * W + sc];
                }
            }
    });
    return y;
}

}  // namespace st2v::t2v

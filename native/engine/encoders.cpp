#include "engine/encoders.h"

#include <algorithm>
#include <cmath>

#include "core/threadpool.h"
#include "ops/ops.h"

namespace st2v::engine {

namespace {
std::string L(const std::string& b, int i) { return b + "." + std::to_string(i); }

// softmax(QK^T/sqrt(d))V on [N, L, heads*d] with an optional causal mask (small L: plain loops).
Tensor masked_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, bool causal) {
    if (!causal) {
        const int64_t d = q.size(2) / heads;
        return ops::attention(q, k, v, heads, 1.f / std::sqrt(static_cast<float>(d)));
    }
    const int64_t N = q.size(0), Lq = q.size(1), C = q.size(2), d = C / heads;
    Tensor o = Tensor::zeros({N, Lq, C});
    const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
    float* op = o.f32();
    const float sc = 1.f / std::sqrt(static_cast<float>(d));
    parallel_for(N * heads, [&](int64_t a, int64_t b, int) {
        std::vector<float> s(static_cast<size_t>(Lq));
        for (int64_t nh = a; nh < b; ++nh) {
            const int64_t n = nh / heads, h = nh % heads;
            for (int64_t i = 0; i < Lq; ++i) {
                float mx = -INFINITY;
                for (int64_t j = 0; j <= i; ++j) {
                    float acc = 0;
                    for (int64_t c = 0; c < d; ++c) acc += qp[(n * Lq + i) * C + h * d + c] * kp[(n * Lq + j) * C + h * d + c];
                    s[static_cast<size_t>(j)] = acc * sc;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                float den = 0;
                for (int64_t j = 0; j <= i; ++j) den += (s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx));
                float* orow = op + (n * Lq + i) * C + h * d;
                for (int64_t j = 0; j <= i; ++j) {
                    const float pj = s[static_cast<size_t>(j)] / den;
                    for (int64_t c = 0; c < d; ++c) orow[c] += pj * vp[(n * Lq + j) * C + h * d + c];
                }
            }
        }
    });
    return o;
}
}  // namespace

TextEncoder::TextEncoder(const io::WeightStore& w, const std::string& p) : w_(w), p_(p) {
    const Tensor& te = w.get(p + "embeddings.token_embedding.weight");
    V_ = te.size(0);
    D_ = te.size(1);
    while (w.has(p + L("encoder.layers", layers_) + ".self_attn.q_proj.weight")) ++layers_;
    heads_ = static_cast<int>(std::max<int64_t>(1, D_ / 64));  // CLIP text: head size 64
}

Tensor TextEncoder::forward(const std::vector<int32_t>& ids) const {
    const int64_t Lt = static_cast<int64_t>(ids.size());
    const Tensor te = w_.get(p_ + "embeddings.token_embedding.weight").to(DType::F32);
    const Tensor pe = w_.get(p_ + "embeddings.position_embedding.weight").to(DType::F32);
    ST2V_CHECK(Lt >= 1 && Lt <= pe.size(0), Code::kInvalidArgument, "text encoder: %lld tokens (max %lld)", (long long)Lt,
               (long long)pe.size(0));
    Tensor x = Tensor::empty({1, Lt, D_});
    for (int64_t i = 0; i < Lt; ++i) {
        const int32_t id = ids[static_cast<size_t>(i)];
        ST2V_CHECK(id >= 0 && id < V_, Code::kInvalidArgument, "text encoder: token id %d outside the vocabulary (%lld)", id,
                   (long long)V_);
        for (int64_t c = 0; c < D_; ++c) x.f32()[i * D_ + c] = te.f32()[id * D_ + c] + pe.f32()[i * D_ + c];
    }
    auto g = [&](const std::string& n) -> const Tensor& { return w_.get(p_ + n); };
    for (int l = 0; l < layers_; ++l) {
        const std::string b = L("encoder.layers", l) + ".";
        Tensor h = ops::layer_norm(x, g(b + "layer_norm1.weight"), g(b + "layer_norm1.bias"), 1e-5f);
        Tensor q = ops::linear(h, g(b + "self_attn.q_proj.weight"), g(b + "self_attn.q_proj.bias"));
        Tensor k = ops::linear(h, g(b + "self_attn.k_proj.weight"), g(b + "self_attn.k_proj.bias"));
        Tensor v = ops::linear(h, g(b + "self_attn.v_proj.weight"), g(b + "self_attn.v_proj.bias"));
        Tensor a = ops::linear(masked_attention(q, k, v, heads_, true), g(b + "self_attn.out_proj.weight"),
                               g(b + "self_attn.out_proj.bias"));
        ops::add_(x, a);
        h = ops::layer_norm(x, g(b + "layer_norm2.weight"), g(b + "layer_norm2.bias"), 1e-5f);
        h = ops::linear(h, g(b + "mlp.fc1.weight"), g(b + "mlp.fc1.bias"), ops::Act::kGelu);
        ops::add_(x, ops::linear(h, g(b + "mlp.fc2.weight"), g(b + "mlp.fc2.bias")));
    }
    return ops::layer_norm(x, g("final_layer_norm.weight"), g("final_layer_norm.bias"), 1e-5f);
}

ImageEncoder::ImageEncoder(const io::WeightStore& w, const std::string& p) : w_(w), p_(p) {
    const Tensor& c1 = w.get(p + "conv1.weight");
    W_ = c1.size(0);
    P_ = c1.size(2);
    const int64_t tokens = w.get(p + "positional_embedding").size(0) - 1;
    G_ = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(tokens))));
    while (w.has(p + L("transformer.resblocks", layers_) + ".ln_1.weight")) ++layers_;
    heads_ = static_cast<int>(W_ % 80 == 0 ? W_ / 80 : std::max<int64_t>(1, W_ / 64));  // ViT-H/14: 1280 = 16 x 80
}

Tensor ImageEncoder::forward(const Tensor& frame) const {
    auto g = [&](const std::string& n) -> const Tensor& { return w_.get(p_ + n); };
    const int64_t S = G_ * P_;
    // Resize to S x S (bicubic, align_corners = True; the official kornia resize also pre-blurs when
    // downscaling), then (x + 1) / 2 and the CLIP mean/std.
    const int64_t H = frame.size(2), Wd = frame.size(3);
    Tensor img = Tensor::empty({1, 3, S, S});
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    auto cubic = [](float t, int i) {
        const float A = -0.75f;
        float x = std::fabs(t - static_cast<float>(i));
        if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
        if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
        return 0.f;
    };
    const float* src = frame.f32();
    for (int c = 0; c < 3; ++c)
        for (int64_t y = 0; y < S; ++y)
            for (int64_t x = 0; x < S; ++x) {
                const float sy = S > 1 ? static_cast<float>(y) * static_cast<float>(H - 1) / static_cast<float>(S - 1) : 0.f;
                const float sx = S > 1 ? static_cast<float>(x) * static_cast<float>(Wd - 1) / static_cast<float>(S - 1) : 0.f;
                const int64_t iy = static_cast<int64_t>(std::floor(sy)), ix = static_cast<int64_t>(std::floor(sx));
                float acc = 0;
                for (int dy = -1; dy <= 2; ++dy)
                    for (int dx = -1; dx <= 2; ++dx) {
                        const int64_t yy = std::clamp<int64_t>(iy + dy, 0, H - 1), xx = std::clamp<int64_t>(ix + dx, 0, Wd - 1);
                        acc += cubic(sy - static_cast<float>(iy), dy) * cubic(sx - static_cast<float>(ix), dx) *
                               src[(c * H + yy) * Wd + xx];
                    }
                img.f32()[(c * S + y) * S + x] = ((acc + 1.f) * 0.5f - mean[c]) / stdv[c];
            }
    ops::Conv2dParams cp;
    cp.stride = static_cast<int>(P_);
    Tensor pt = ops::conv2d(img, g("conv1.weight"), Tensor(), cp);           // [1, W, G, G]
    Tensor tok = pt.reshape({1, W_, G_ * G_}).permute({0, 2, 1}).contiguous();  // [1, G*G, W]
    Tensor x = ops::concat({g("class_embedding").to(DType::F32).reshape({1, 1, W_}), tok}, 1);
    ops::add_(x, g("positional_embedding").to(DType::F32).reshape({1, G_ * G_ + 1, W_}));
    x = ops::layer_norm(x, g("ln_pre.weight"), g("ln_pre.bias"), 1e-5f);
    for (int l = 0; l < layers_; ++l) {
        const std::string b = L("transformer.resblocks", l) + ".";
        Tensor h = ops::layer_norm(x, g(b + "ln_1.weight"), g(b + "ln_1.bias"), 1e-5f);
        Tensor qkv = ops::linear(h, g(b + "attn.in_proj_weight"), g(b + "attn.in_proj_bias"));  // [1, T, 3W]
        Tensor q = qkv.slice(2, 0, W_), k = qkv.slice(2, W_, 2 * W_), v = qkv.slice(2, 2 * W_, 3 * W_);
        Tensor a = masked_attention(q, k, v, heads_, false);
        ops::add_(x, ops::linear(a, g(b + "attn.out_proj.weight"), g(b + "attn.out_proj.bias")));
        h = ops::layer_norm(x, g(b + "ln_2.weight"), g(b + "ln_2.bias"), 1e-5f);
        h = ops::linear(h, g(b + "mlp.c_fc.weight"), g(b + "mlp.c_fc.bias"), ops::Act::kGelu);
        ops::add_(x, ops::linear(h, g(b + "mlp.c_proj.weight"), g(b + "mlp.c_proj.bias")));
    }
    Tensor cls = ops::layer_norm(x.slice(1, 0, 1).contiguous().reshape({1, W_}), g("ln_post.weight"), g("ln_post.bias"), 1e-5f);
    // pooled = cls @ proj ([W, E])
    const Tensor proj = g("proj");
    Tensor out = Tensor::empty({1, proj.size(1)});
    ops::MatRef A{cls.f32(), DType::F32, W_, 1};
    ops::MatRef B{proj.contiguous().raw(), proj.dtype(), proj.size(1), 1};
    ops::gemm(1, proj.size(1), W_, A, B, out.f32(), proj.size(1));
    return out;
}

}  // namespace st2v::engine

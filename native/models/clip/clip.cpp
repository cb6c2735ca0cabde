#include "models/clip/clip.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/ops.h"

namespace st2v::enc {

namespace {
std::string S(int64_t i) { return std::to_string(i); }

int heads_by_convention(int64_t width, bool vision) {
    if (width < 256) return static_cast<int>(std::max<int64_t>(1, width / 16));
    if (vision && width == 1280) return 16;
    return static_cast<int>(width / 64);
}

// q, k, v: [B, L, width] views (last dim contiguous). Causal masked softmax attention, fp32, per head.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    const int64_t B = q.size(0), L = q.size(1), C = q.size(2), D = C / heads;
    Tensor out = Tensor::empty(Shape({B, L, C}));
    std::vector<float> s(static_cast<size_t>(L));
    for (int64_t b = 0; b < B; ++b)
        for (int h = 0; h < heads; ++h)
            for (int64_t i = 0; i < L; ++i) {
                const float* qi = q.f32() + b * q.stride(0) + i * q.stride(1) + h * D;
                float mx = -std::numeric_limits<float>::infinity();
                for (int64_t j = 0; j <= i; ++j) {
                    const float* kj = k.f32() + b * k.stride(0) + j * k.stride(1) + h * D;
                    float acc = 0;
                    for (int64_t d = 0; d < D; ++d) acc += qi[d] * kj[d];
                    s[static_cast<size_t>(j)] = acc * scale;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                float sum = 0;
                for (int64_t j = 0; j <= i; ++j) sum += (s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx));
                float* o = out.f32() + (b * L + i) * C + h * D;
                std::fill(o, o + D, 0.f);
                for (int64_t j = 0; j <= i; ++j) {
                    const float p = s[static_cast<size_t>(j)] / sum;
                    const float* vj = v.f32() + b * v.stride(0) + j * v.stride(1) + h * D;
                    for (int64_t d = 0; d < D; ++d) o[d] += p * vj[d];
                }
            }
    return out;
}
}  // namespace

// ---- text -------------------------------------------------------------------------------------------------
ClipTextModel::ClipTextModel(const io::WeightStore& w, const std::string& prefix, int heads, const std::string& last_block)
    : w_(w), prefix_(prefix) {
    const Tensor& tok = W("embeddings.token_embedding.weight");
    const Tensor& pos = W("embeddings.position_embedding.weight");
    check_ndim(tok, 2, "clip_text", "token_embedding");
    check_ndim(pos, 2, "clip_text", "position_embedding");
    vocab_ = tok.size(0);
    width_ = tok.size(1);
    positions_ = pos.size(0);
    ST2V_CHECK(pos.size(1) == width_, Code::kShapeMismatch, "clip_text: position_embedding %s vs width %lld",
               pos.shape().str().c_str(), (long long)width_);
    while (w_.has(prefix_ + "encoder.layers." + S(layers_) + ".layer_norm1.weight"))
        block_prefixes_.push_back(prefix_ + "encoder.layers." + S(layers_++) + ".");
    ST2V_CHECK(layers_ > 0, Code::kWeightsMissing, "clip_text: no encoder.layers under '%s'", prefix.c_str());
    if (!last_block.empty()) {
        for (const char* n : {"layer_norm1.weight", "self_attn.q_proj.weight", "self_attn.out_proj.weight",
                              "layer_norm2.weight", "mlp.fc1.weight", "mlp.fc2.weight"})
            ST2V_CHECK(w_.has(last_block + n), Code::kWeightsMissing,
                       "clip_text: the last text block '%s*' is missing (no '%s%s'); the full OpenCLIP text tower "
                       "comes from open_clip weights converted with st2v convert (component text_last_block)",
                       last_block.c_str(), last_block.c_str(), n);
        const Tensor& ln = w_.get(last_block + "layer_norm1.weight");
        ST2V_CHECK(ln.numel() == width_, Code::kShapeMismatch, "clip_text: %slayer_norm1.weight %s vs width %lld",
                   last_block.c_str(), ln.shape().str().c_str(), (long long)width_);
        block_prefixes_.push_back(last_block);
        ++layers_;
    }
    heads_ = heads > 0 ? heads : heads_by_convention(width_, false);
    ST2V_CHECK_ARG(width_ % heads_ == 0, "clip_text: width %lld not divisible by %d heads", (long long)width_, heads_);
}

Tensor ClipTextModel::forward(const Tensor& ids_in) const {
    check_ndim(ids_in, 2, "clip_text", "ids");
    const int64_t B = ids_in.size(0), L = ids_in.size(1);
    ST2V_CHECK(L >= 1 && L <= positions_, Code::kShapeMismatch, "clip_text: %lld tokens, at most %lld", (long long)L,
               (long long)positions_);
    Tensor ids = ids_in.contiguous();
    Tensor tokf = W("embeddings.token_embedding.weight");
    Tensor posf = W("embeddings.position_embedding.weight").to(DType::F32);
    Tensor x = Tensor::empty(Shape({B, L, width_}));
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < L; ++i) {
            int64_t id = ids.dtype() == DType::I64 ? ids.data<int64_t>()[b * L + i]
                         : ids.dtype() == DType::I32 ? ids.data<int32_t>()[b * L + i]
                                                     : -1;
            ST2V_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32, Code::kDtype, "clip_text: ids must be i64/i32");
            ST2V_CHECK(id >= 0 && id < vocab_, Code::kInvalidArgument, "clip_text: token id %lld outside [0, %lld)",
                       (long long)id, (long long)vocab_);
            Tensor row = tokf.select(0, id).to(DType::F32);
            float* o = x.f32() + (b * L + i) * width_;
            const float* r = row.f32();
            const float* p = posf.f32() + i * width_;
            for (int64_t c = 0; c < width_; ++c) o[c] = r[c] + p[c];
        }
    const float eps = 1e-5f;
    const int64_t D = width_ / heads_;
    const float scale = 1.f / std::sqrt(static_cast<float>(D));
    for (const std::string& p : block_prefixes_) {
        auto B = [&](const char* n) -> const Tensor& { return w_.get(p + n); };
        Tensor h = ops::layer_norm(x, B("layer_norm1.weight"), B("layer_norm1.bias"), eps);
        Tensor q = ops::linear(h, B("self_attn.q_proj.weight"), B("self_attn.q_proj.bias"));
        Tensor k = ops::linear(h, B("self_attn.k_proj.weight"), B("self_attn.k_proj.bias"));
        Tensor v = ops::linear(h, B("self_attn.v_proj.weight"), B("self_attn.v_proj.bias"));
        Tensor a = causal_attention(q, k, v, heads_, scale);
        ops::add_(x, ops::linear(a, B("self_attn.out_proj.weight"), B("self_attn.out_proj.bias")));
        h = ops::layer_norm(x, B("layer_norm2.weight"), B("layer_norm2.bias"), eps);
        h = ops::linear(h, B("mlp.fc1.weight"), B("mlp.fc1.bias"), ops::Act::kGelu);
        ops::add_(x, ops::linear(h, B("mlp.fc2.weight"), B("mlp.fc2.bias")));
    }
    return ops::layer_norm(x, W("final_layer_norm.weight"), W("final_layer_norm.bias"), eps);
}

// ---- preprocessing ----------------------------------------------------------------------------------------
namespace {
inline float cc1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
inline float cc2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }
inline int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}
std::vector<float> gauss1d(int ks, float sigma) {
    std::vector<float> g(static_cast<size_t>(ks));
    float sum = 0;
    for (int i = 0; i < ks; ++i) {
        const float x = static_cast<float>(i - ks / 2);
        g[static_cast<size_t>(i)] = std::exp(-(x * x) / (2.f * sigma * sigma));
        sum += g[static_cast<size_t>(i)];
    }
    for (auto& v : g) v /= sum;
    return g;
}
}  // namespace

Tensor kornia_resize_bicubic_aa(const Tensor& x_in, int64_t OH, int64_t OW) {
    check_ndim(x_in, 4, "kornia_resize", "x");
    ST2V_CHECK_ARG(OH >= 2 && OW >= 2, "kornia_resize: output %lld x %lld too small", (long long)OH, (long long)OW);
    Tensor x = x_in.contiguous().to(DType::F32);
    const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
    // Anti-alias blur (kornia: only when downscaling on some axis).
    const float fh = static_cast<float>(H) / static_cast<float>(OH), fw = static_cast<float>(W) / static_cast<float>(OW);
    if (fh > 1.f || fw > 1.f) {
        const float sh = std::max((fh - 1.f) / 2.f, 0.001f), sw = std::max((fw - 1.f) / 2.f, 0.001f);
        int kh = static_cast<int>(std::max(2.f * 2.f * sh, 3.f)), kw = static_cast<int>(std::max(2.f * 2.f * sw, 3.f));
        if (kh % 2 == 0) ++kh;
        if (kw % 2 == 0) ++kw;
        const std::vector<float> gh = gauss1d(kh, sh), gw = gauss1d(kw, sw);
        Tensor y = Tensor::empty(x.shape());
        const float* s = x.f32();
        float* d = y.f32();
        for (int64_t c = 0; c < NC; ++c)
            for (int64_t i = 0; i < H; ++i)
                for (int64_t j = 0; j < W; ++j) {
                    float acc = 0;
                    for (int a = 0; a < kh; ++a) {
                        const float* row = s + (c * H + reflect(i + a - kh / 2, H)) * W;
                        for (int b = 0; b < kw; ++b)
                            acc += gh[static_cast<size_t>(a)] * gw[static_cast<size_t>(b)] * row[reflect(j + b - kw / 2, W)];
                    }
                    d[(c * H + i) * W + j] = acc;
                }
        x = y;
    }
    // Bicubic, align_corners=True.
    const float A = -0.75f;
    const float rh = static_cast<float>(H - 1) / static_cast<float>(OH - 1);
    const float rw = static_cast<float>(W - 1) / static_cast<float>(OW - 1);
    Tensor out = Tensor::empty(Shape({x.size(0), x.size(1), OH, OW}));
    const float* s = x.f32();
    float* d = out.f32();
    for (int64_t oy = 0; oy < OH; ++oy) {
        const float ry = rh * static_cast<float>(oy);
        const int64_t iy = static_cast<int64_t>(std::floor(ry));
        const float ty = ry - static_cast<float>(iy);
        const float wy[4] = {cc2(ty + 1.f, A), cc1(ty, A), cc1(1.f - ty, A), cc2(2.f - ty, A)};
        for (int64_t ox = 0; ox < OW; ++ox) {
            const float rx = rw * static_cast<float>(ox);
            const int64_t ix = static_cast<int64_t>(std::floor(rx));
            const float tx = rx - static_cast<float>(ix);
            const float wx[4] = {cc2(tx + 1.f, A), cc1(tx, A), cc1(1.f - tx, A), cc2(2.f - tx, A)};
            for (int64_t c = 0; c < NC; ++c) {
                const float* img = s + c * H * W;
                float acc = 0;
                for (int a = 0; a < 4; ++a) {
                    const int64_t yy = std::min(std::max<int64_t>(iy - 1 + a, 0), H - 1);
                    float r = 0;
                    for (int b = 0; b < 4; ++b) {
                        const int64_t xx = std::min(std::max<int64_t>(ix - 1 + b, 0), W - 1);
                        r += wx[b] * img[yy * W + xx];
                    }
                    acc += wy[a] * r;
                }
                d[(c * OH + oy) * OW + ox] = acc;
            }
        }
    }
    return out;
}

Tensor clip_normalize_from_pm1(const Tensor& x_in) {
    check_ndim(x_in, 4, "clip_normalize", "x");
    ST2V_CHECK(x_in.size(1) == 3, Code::kShapeMismatch, "clip_normalize: want 3 channels, got %s", x_in.desc().c_str());
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    Tensor x = x_in.contiguous().to(DType::F32);
    Tensor out = Tensor::empty(x.shape());
    const int64_t HW = x.size(2) * x.size(3);
    for (int64_t n = 0; n < x.size(0); ++n)
        for (int c = 0; c < 3; ++c) {
            const float* s = x.f32() + (n * 3 + c) * HW;
            float* d = out.f32() + (n * 3 + c) * HW;
            for (int64_t i = 0; i < HW; ++i) d[i] = ((s[i] + 1.f) / 2.f - mean[c]) / stdv[c];
        }
    return out;
}

// ---- image tower ------------------------------------------------------------------------------------------
OpenClipImageTower::OpenClipImageTower(const io::WeightStore& w, const std::string& prefix, int heads)
    : w_(w), prefix_(prefix) {
    const Tensor& c1 = W("conv1.weight");
    check_ndim(c1, 4, "openclip_visual", "conv1.weight");
    width_ = c1.size(0);
    patch_ = c1.size(2);
    ST2V_CHECK(c1.size(1) == 3 && c1.size(3) == patch_, Code::kShapeMismatch, "openclip_visual: conv1.weight %s",
               c1.shape().str().c_str());
    const Tensor& pos = W("positional_embedding");
    const int64_t tokens = pos.size(0) - 1;
    grid_ = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
    ST2V_CHECK(grid_ * grid_ == tokens, Code::kShapeMismatch, "openclip_visual: %lld positions is not 1 + a square",
               (long long)pos.size(0));
    image_ = grid_ * patch_;
    while (w_.has(prefix_ + "transformer.resblocks." + S(layers_) + ".ln_1.weight")) ++layers_;
    heads_ = heads > 0 ? heads : heads_by_convention(width_, true);
    ST2V_CHECK_ARG(width_ % heads_ == 0, "openclip_visual: width %lld not divisible by %d heads", (long long)width_, heads_);
}

Tensor OpenClipImageTower::forward(const Tensor& x, ImageTowerTrace* tr) const {
    check_ndim(x, 4, "openclip_visual", "x");
    Tensor r = kornia_resize_bicubic_aa(x, image_, image_);
    Tensor pre = clip_normalize_from_pm1(r);
    if (tr) { tr->resized = r; tr->preprocessed = pre; }
    return forward_preprocessed(pre, tr);
}

Tensor OpenClipImageTower::forward_preprocessed(const Tensor& pre_in, ImageTowerTrace* tr) const {
    check_ndim(pre_in, 4, "openclip_visual", "pixels");
    ST2V_CHECK(pre_in.size(1) == 3 && pre_in.size(2) == image_ && pre_in.size(3) == image_, Code::kShapeMismatch,
               "openclip_visual: pixels %s, want [N, 3, %lld, %lld]", pre_in.desc().c_str(), (long long)image_,
               (long long)image_);
    Tensor pre = pre_in.contiguous().to(DType::F32);
    const int64_t N = pre.size(0);
    // Patch embedding (conv, stride = kernel = patch, no bias) as im2col + GEMM.
    const int64_t P = patch_, G = grid_, K = 3 * P * P;
    Tensor cols = Tensor::empty(Shape({N, G * G, K}));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t gy = 0; gy < G; ++gy)
            for (int64_t gx = 0; gx < G; ++gx) {
                float* d = cols.f32() + ((n * G + gy) * G + gx) * K;
                for (int64_t c = 0; c < 3; ++c)
                    for (int64_t py = 0; py < P; ++py) {
                        const float* s = pre.f32() + ((n * 3 + c) * image_ + gy * P + py) * image_ + gx * P;
                        std::copy(s, s + P, d + (c * P + py) * P);
                    }
            }
    Tensor pe = ops::linear(cols, W("conv1.weight").contiguous().reshape(Shape({width_, K})), Tensor());  // [N, G*G, width]
    cols = Tensor();
    if (tr) tr->patch_embed = pe.transpose(1, 2).contiguous().reshape(Shape({N, width_, G, G}));
    const int64_t T = G * G + 1;
    Tensor cls = W("class_embedding").to(DType::F32), pos = W("positional_embedding").to(DType::F32);
    Tensor h = Tensor::empty(Shape({N, T, width_}));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < T; ++t) {
            const float* s = t == 0 ? cls.f32() : pe.f32() + (n * G * G + t - 1) * width_;
            const float* p = pos.f32() + t * width_;
            float* d = h.f32() + (n * T + t) * width_;
            for (int64_t c = 0; c < width_; ++c) d[c] = s[c] + p[c];
        }
    if (tr) tr->tokens_in = h.clone();
    const float eps = 1e-5f;
    h = ops::layer_norm(h, W("ln_pre.weight"), W("ln_pre.bias"), eps);
    if (tr) tr->ln_pre_out = h;
    const int64_t D = width_ / heads_;
    for (int l = 0; l < layers_; ++l) {
        const std::string p = "transformer.resblocks." + S(l) + ".";
        Tensor a = ops::layer_norm(h, W(p + "ln_1.weight"), W(p + "ln_1.bias"), eps);
        Tensor qkv = ops::linear(a, W(p + "attn.in_proj_weight"), W(p + "attn.in_proj_bias"));
        Tensor o = ops::attention(qkv.slice(2, 0, width_), qkv.slice(2, width_, 2 * width_),
                                  qkv.slice(2, 2 * width_, 3 * width_), heads_, 1.f / std::sqrt(static_cast<float>(D)));
        qkv = Tensor();
        h = ops::add(h, ops::linear(o, W(p + "attn.out_proj.weight"), W(p + "attn.out_proj.bias")));
        a = ops::layer_norm(h, W(p + "ln_2.weight"), W(p + "ln_2.bias"), eps);
        a = ops::linear(a, W(p + "mlp.c_fc.weight"), W(p + "mlp.c_fc.bias"), ops::Act::kGelu);
        ops::add_(h, ops::linear(a, W(p + "mlp.c_proj.weight"), W(p + "mlp.c_proj.bias")));
    }
    if (tr) tr->transformer_out = h;
    Tensor ln = ops::layer_norm(h, W("ln_post.weight"), W("ln_post.bias"), eps);
    if (tr) tr->ln_post_out = ln;
    // pooled = ln[:, 0] @ proj  (proj [width, embed]) -> linear with w = proj^T.
    Tensor tok0 = ln.select(1, 0);
    Tensor projT = W("proj").to(DType::F32).transpose(0, 1).contiguous();
    return ops::linear(tok0.contiguous(), projT, Tensor());
}

}  // namespace st2v::enc

// Building blocks of the ModelScope / StreamingT2V UNet3D (diffusers 0.27.2 + StreamingT2V's CN/ modules),
// bound by the official checkpoint names. Activations are [B*F, C, H, W] (frames folded into the batch,
// frame-major), as the reference holds them between blocks; shape comments use that order.
//
// Each block keeps references to its weights (views into the WeightStore, f32/f16/bf16) and exposes
// forward(). `expected()` lists the keys and shapes the block binds, for strict binding.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"
#include "ops/ops.h"

namespace st2v::t2v {

// Collects the (name, shape) pairs a module tree binds; weights are looked up by full name.
class Binder {
  public:
    Binder(const io::WeightStore& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
    Binder child(const std::string& name) const { return Binder(store_, prefix_ + name + ".", keys_); }
    bool has(const std::string& name) const { return store_.has(prefix_ + name); }
    const Tensor& get(const std::string& name) const;  // throws ERR_WEIGHTS_MISSING with the full name
    const std::string& prefix() const { return prefix_; }
    const io::WeightStore& store() const { return store_; }
    std::vector<std::string>& keys() const { return *keys_; }

  private:
    Binder(const io::WeightStore& s, std::string p, std::shared_ptr<std::vector<std::string>> k)
        : store_(s), prefix_(std::move(p)), keys_(std::move(k)) {}
    const io::WeightStore& store_;
    std::string prefix_;
    std::shared_ptr<std::vector<std::string>> keys_ = std::make_shared<std::vector<std::string>>();
};

// repeat_interleave along dim 0: [B, ...] -> [B*F, ...], each entry F times in a row (a contiguous copy).
Tensor repeat_interleave(const Tensor& x, int frames);

namespace detail {
// A model switch's starting state from the environment: on unless `name` is "off" or "0".
bool switch_from_env(const char* name);
// Tests and the bench: whether the UNets (UNet3D, the CAM, the enhancer's) hand their blocks the context per
// sample (the default) or repeated for every frame first, as the reference does (Attention takes both; the values
// are the same). ST2V_CTX_PER_SAMPLE=off sets it off at start. Process-wide; returns the old value.
bool set_context_per_sample(bool on);
bool context_per_sample();
// Sets a model switch (set_context_per_sample, set_shared_stem in unet3d.h) for a scope and puts the old value back
// on exit, exceptions included; set() flips it within the scope.
class SwitchScope {
  public:
    SwitchScope(bool (*setter)(bool), bool on) : set_(setter), old_(setter(on)) {}
    ~SwitchScope() { set_(old_); }
    SwitchScope(const SwitchScope&) = delete;
    SwitchScope& operator=(const SwitchScope&) = delete;
    void set(bool on) const { set_(on); }

  private:
    bool (*set_)(bool);
    bool old_;
};
}  // namespace detail

struct Linear {
    Tensor w, b;  // [out, in], [out] (b may be undefined)
    void bind(const Binder& p, bool bias = true);
    Tensor operator()(const Tensor& x, ops::Act act = ops::Act::kNone) const { return ops::linear(x, w, b, act); }
    int64_t out() const { return w.size(0); }
    int64_t in() const { return w.size(1); }
};

struct Conv2d {
    Tensor w, b;
    ops::Conv2dParams p;
    void bind(const Binder& p, int stride = 1, bool bias = true);
    Tensor operator()(const Tensor& x) const { return ops::conv2d(x, w, b, p); }
};

struct Norm {  // GroupNorm or LayerNorm affine parameters
    Tensor w, b;
    void bind(const Binder& p);
};

// diffusers Attention (+ StreamingT2V's XFormersAttnProcessor): to_q/to_k/to_v without bias, to_out.0 with
// bias, softmax(QK^T / sqrt(d)) V. With APM weights (conv, conv_ln, alpha) present, the context of a
// cross-attention is mixed: ctx' = ctx[:, :T] + SiLU(alpha) * LayerNorm(Conv1d(N->T, k=3, same)(ctx)).
struct Attention {
    Linear to_q, to_k, to_v, to_out;
    int heads = 1;
    bool apm = false;
    Tensor conv_w, conv_b;  // [T, N, 3]
    Norm conv_ln;
    float silu_alpha = 0;
    void bind(const Binder& p, int heads);
    // x [N, L, C]; ctx undefined for self-attention, else [N, Lk, Cctx] or [N / F, Lk, Cctx]: one context per F
    // consecutive entries of x (the frames of a sample, whose contexts the reference repeats with
    // repeat_interleave). A per-sample context gets its APM mix and K / V projections once and K, V repeated for
    // its F entries: the same values as with the context repeated, without F copies of that work.
    Tensor operator()(const Tensor& x, const Tensor& ctx) const { return to_out(heads_out(x, ctx)); }
    // h += attention(x, ctx), the residual add fused into to_out's GEMM (ops::linear_add_).
    void add_into(Tensor& h, const Tensor& x, const Tensor& ctx) const;
    // softmax(QK^T / sqrt(d)) V over the heads, before to_out: [N, L, inner].
    Tensor heads_out(const Tensor& x, const Tensor& ctx) const;
};

// BasicTransformerBlock: h += attn1(LN1 h); h += attn2(LN2 h, ctx); h += FF(LN3 h) with GEGLU.
struct TransformerBlock {
    Norm norm1, norm2, norm3;
    Attention attn1, attn2;
    Linear ff_proj, ff_out;  // ff.net.0.proj (C -> 8C), ff.net.2 (4C -> C)
    // Feed-forward over slices of at most this many tokens (rows of the [N*L, C] activations); 0 = all at once.
    // The FF is row-wise, so the result is the same; the 8C-wide GEGLU intermediate is bounded by the slice
    // (at 90x160 latents x 24 frames it is ~5.6 GB whole). Set by models that need it (the enhancer).
    int64_t ff_token_chunk = 0;
    void bind(const Binder& p, int heads);
    Tensor operator()(Tensor h, const Tensor& ctx) const;  // ctx undefined: attn2 is self-attention
};

// Spatial Transformer2DModel (use_linear_projection): GN(32, eps 1e-6) per frame -> proj_in -> block -> proj_out -> +x.
struct SpatialTransformer {
    Norm norm;
    Linear proj_in, proj_out;
    TransformerBlock block;
    void bind(const Binder& p, int head_dim);
    Tensor operator()(const Tensor& x, const Tensor& ctx) const;  // x [N, C, H, W], ctx [N or N / F, T, D]
};

// TransformerTemporalModel: GN(32, eps 1e-6) over all frames -> tokens [B*H*W, F, C] -> proj_in -> block
// (attn1 and attn2 both temporal self-attention) -> proj_out -> +x.
struct TemporalTransformer {
    Norm norm;
    Linear proj_in, proj_out;
    TransformerBlock block;
    // proj_in -> block -> proj_out over tiles of at most this many tokens (whole per-pixel frame sequences,
    // token_chunk / frames of them, at least one); 0 = all at once. Every op after the GroupNorm acts within one
    // pixel's sequence, so the result is the same bit for bit; the inner-width intermediates (q, k, v, the
    // attention output, the LayerNorm copies: ~7 x [B*H*W*F, inner]) are bounded by the tile. The enhancer's
    // first temporal transformer is 512 wide on 64 channels: whole, at 90x160 latents x 24 frames, 5 GB.
    int64_t token_chunk = 0;
    void bind(const Binder& p, int head_dim, int fixed_heads = 0);
    Tensor operator()(const Tensor& x, int frames) const;
};

// TemporalConvLayer: 4 x [GN(32, eps 1e-5) over all frames -> SiLU -> Conv3d (3,1,1)], + x.
struct TemporalConv {
    Norm norm[4];
    Tensor w[4], b[4];
    void bind(const Binder& p);
    Tensor operator()(const Tensor& x, int frames) const;
};

// ResnetBlock2D: conv1(SiLU(GN1 x)) + Linear(SiLU(temb)); conv2(SiLU(GN2 h)); + shortcut(x). GN eps 1e-5 per frame.
struct ResnetBlock {
    Norm norm1, norm2;
    Conv2d conv1, conv2, shortcut;
    Linear temb_proj;
    bool has_shortcut = false;
    void bind(const Binder& p);
    Tensor operator()(const Tensor& x, const Tensor& temb_silu) const;  // temb_silu = SiLU(temb) [N, E]
    int64_t out_channels() const { return conv1.w.size(0); }
};

// Nearest-neighbour upsampling to an explicit size (PyTorch 'nearest': src = floor(dst * in / out)).
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);

// [B*F, C, H, W] <-> tokens [B*H*W, F, C] for temporal layers.
Tensor frames_to_tokens(const Tensor& x, int frames);
Tensor tokens_to_frames(const Tensor& t, int frames, int64_t H, int64_t W);

}  // namespace st2v::t2v

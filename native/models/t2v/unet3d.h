// The StreamingT2V networks: UNet3DConditionModel (base_model., with APM mixing and the CAM mergers),
// the CAM ControlNet branch (unet.), and the APM resampler (resampler.). Mirrors the official module tree
// (t2v_enhanced/model/diffusers_conditional/models/controlnet/ on branch StreamingModelscope) and binds the
// official checkpoint names. Configs are detected from weight shapes only.
#pragma once
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "models/t2v/blocks.h"

namespace st2v::t2v {

struct UNetConfig {
    int in_channels = 4, out_channels = 4;
    std::vector<int64_t> block_out_channels;  // e.g. 320, 640, 1280, 1280
    std::vector<bool> down_has_attn;          // CrossAttnDownBlock3D or DownBlock3D per level
    int layers_per_block = 2;
    int head_dim = 64;                        // attention_head_dim: head SIZE of spatial/temporal transformers
    int64_t context_dim = 1024;
    int64_t time_embed_dim = 1280;
    bool apm = false;                         // attn2.conv / conv_ln / alpha present
    bool cam_mergers = false;                 // cross_attention_merger_* present
    std::string str() const;
    // Reads the config of the UNet3D under `prefix` (e.g. "base_model." or "unet.") from shapes.
    static UNetConfig detect(const io::WeightStore& w, const std::string& prefix);
};

struct DownLevel {
    std::vector<ResnetBlock> resnets;
    std::vector<TemporalConv> temp_convs;
    std::vector<SpatialTransformer> attentions;
    std::vector<TemporalTransformer> temp_attentions;
    bool has_down = false;
    Conv2d down;
};
using UpLevel = DownLevel;  // same members; `down` is the upsampler conv

// CAM merger (CN/conditioning.py CrossAttention): h + proj_out(attn(proj_in(GN(h)), cam)).
struct Merger {
    Norm norm;
    Linear proj_in, proj_out;
    Attention attn;
    void bind(const Binder& p);
    // h [B*F, C, H, W], r [B*Fc, C, H, W]
    Tensor operator()(const Tensor& h, const Tensor& r, int frames, int cond_frames) const;
};

struct TimeEmbedding {
    Linear l1, l2;
    int dim = 320;
    void bind(const Binder& p);
    // t -> SiLU(emb) repeated per frame: [B*F, E] (the only way the blocks use it).
    Tensor silu_emb(float t, int64_t batch, int frames) const;
};

// The encoder half shared by the base UNet and the CAM branch.
struct Encoder {
    UNetConfig cfg;
    Conv2d conv_in;
    TemporalTransformer transformer_in;
    TimeEmbedding time;
    std::vector<DownLevel> down;
    // mid
    ResnetBlock mid_res[2];
    TemporalConv mid_tc[2];
    SpatialTransformer mid_attn;
    TemporalTransformer mid_tattn;
    void bind(const Binder& p, const UNetConfig& cfg);
    // conv_in + transformer_in of x [B, C, F, h, w] -> [B*F, C0, h, w]. When every sample of x holds the same bytes
    // (the CFG step's [uncond, cond] pair shares its latents) and detail::shared_stem() is on, they run on the first
    // sample and the result is repeated: nothing before the first cross-attention sees the context, so the samples'
    // results are the same bits either way.
    Tensor stem(const Tensor& x) const;
    // Runs the down path from `h` (already the stem [+ cond]); returns the 3*L skips (incl. h).
    std::vector<Tensor> run_down(Tensor h, const Tensor& temb, const Tensor& ctx, int frames) const;
    Tensor run_mid(Tensor h, const Tensor& temb, const Tensor& ctx, int frames) const;
};

namespace detail {
// Tests and the bench: Encoder::stem's sharing between identical samples (on by default; ST2V_SHARED_STEM=off sets
// it off at start). Process-wide; returns the old value.
bool set_shared_stem(bool on);
bool shared_stem();
// Whether every sample of x [B, ...] (B >= 2) holds the same bytes as the first (Encoder::stem's test; the device
// networks run it on a host copy).
bool samples_identical(const Tensor& x);
}  // namespace detail

struct CamResiduals {
    std::vector<Tensor> down;  // one per skip, [B*Fc, C, H, W]
    Tensor mid;
};

class UNet3D {
  public:
    UNet3D(const io::WeightStore& w, const std::string& prefix);  // prefix "base_model." (or "" for a plain UNet)
    const UNetConfig& config() const { return enc_.cfg; }
    // x [B, 4, F, h, w]; ctx [B, T, D] (T = 77, or 77 + 16 with APM); cam = null for no CAM.
    Tensor forward(const Tensor& x, float t, const Tensor& ctx, const CamResiduals* cam) const;
    const std::vector<std::string>& bound_keys() const { return keys_; }

  private:
    Encoder enc_;
    std::vector<UpLevel> up_;
    std::vector<Merger> mergers_;
    Merger merger_mid_;
    Norm norm_out_;
    Conv2d conv_out_;
    std::vector<std::string> keys_;
};

// CAM: ControlNet branch incl. E_cond (controlnet_cond_embedding).
class CamNet {
  public:
    CamNet(const io::WeightStore& w, const std::string& prefix);  // "unet."
    const UNetConfig& config() const { return enc_.cfg; }
    // E_cond on conditioning frames [N, 3, Hp, Wp] in [-1, 1] -> [N, C0, h, w].
    Tensor encode_cond(const Tensor& frames) const;
    // x [B, 4, F, h, w] (only its first Fc frames are used); ctx [B, >=77, D] (text part used);
    // cond [B*Fc, 3, Hp, Wp]. Returns the skip residuals and the mid residual.
    // e_cond_in: E_cond(cond) computed before (ECondCache), used instead of computing it again.
    CamResiduals forward(const Tensor& x, float t, const Tensor& ctx, const Tensor& cond, int cond_frames,
                         Tensor* e_cond_out = nullptr, const Tensor* e_cond_in = nullptr) const;
    const std::vector<std::string>& bound_keys() const { return keys_; }

  private:
    Encoder enc_;
    Conv2d ce_in_, ce_out_;
    std::vector<Conv2d> ce_blocks_;
    std::vector<std::string> keys_;
};

// A value computed from conditioning frames, kept with a copy of those frames and handed back while the frames of
// the next call are equal byte for byte (changed frames, even in reused memory, are computed again; the old value
// is released first). V: a host Tensor (ECondCache) or a device tensor (DeviceECondCache).
template <class V>
class FramesKeyed {
  public:
    template <class Compute>  // V compute(const Tensor& contiguous_frames)
    const V& get(const Tensor& cond, Compute&& compute) {
        Tensor c = cond.contiguous();
        if (kept_ && frames_.shape() == c.shape() && frames_.dtype() == c.dtype() &&
            std::memcmp(frames_.raw(), c.raw(), c.nbytes()) == 0) {
            ++hits_;
            return v_;
        }
        ++misses_;
        kept_ = false;
        v_ = V();
        frames_ = c.clone();
        v_ = compute(c);
        kept_ = true;
        return v_;
    }
    int64_t hits() const { return hits_; }
    int64_t misses() const { return misses_; }

  private:
    Tensor frames_;
    V v_{};
    bool kept_ = false;
    int64_t hits_ = 0, misses_ = 0;
};

// E_cond depends only on the conditioning frames, which stay the same for every denoising step of a chunk: computed
// once per chunk. Memory: one chunk's frames and features.
class ECondCache : public FramesKeyed<Tensor> {
  public:
    const Tensor& get(const CamNet& cam, const Tensor& cond) {
        return FramesKeyed<Tensor>::get(cond, [&](const Tensor& c) { return cam.encode_cond(c); });
    }
};

// APM resampler: [N, E] image embeddings (N = B * frames) -> [B, 16, D].
class Resampler {
  public:
    Resampler(const io::WeightStore& w, const std::string& prefix, int64_t context_dim = 1024);  // "resampler."
    Tensor forward(const Tensor& emb, int frames = 1) const;
    int64_t tokens() const { return l2_.out() / ctx_dim_; }
    const std::vector<std::string>& bound_keys() const { return keys_; }

  private:
    Linear l1_, l2_;
    int64_t ctx_dim_ = 1024;
    std::vector<std::string> keys_;
};

}  // namespace st2v::t2v

// MS-Vid2Vid-XL enhancer denoiser `Vid2VidSDUNet` (StreamingT2V stage 3), see shared/docs/enhancer.md.
//
// Bound by the official checkpoint names of non_ema_0035000.pth (input_blocks.* / middle_block.* /
// output_blocks.* / time_embed.* / out.*, `temopral_conv` spelling included, no prefix; a prefix such as the
// canonical "enhancer." of io/name_map can be given). The layers are the UNet3D blocks of models/t2v/blocks.h
// (ResnetBlock, TemporalConv, SpatialTransformer, TemporalTransformer): the enhancer's key naming is mapped onto
// their diffusers naming when binding, so there is one implementation of each block. The enhancer-specific
// parts live here: its module order (ResBlock = ResnetBlock + TemporalConv), the two geometry differences
// (Downsample padding (2, 1); Upsample = nearest x2, crop one row top and bottom, conv) and the float32-pow
// timestep embedding. Output is the v-prediction.
//
// Config is detected from weight shapes, except the attention head size (`head_dim`), which no shape holds:
// default min(64, base width) (64 for the real checkpoint, 32 for the tiny golden model), overridable.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"
#include "models/t2v/blocks.h"

namespace st2v::enhancer {

struct Vid2VidConfig {
    int in_dim = 4, out_dim = 4;
    int64_t dim = 320;            // base width (input_blocks.0.0 outputs)
    int64_t embed_dim = 1280;     // time_embed width
    int64_t context_dim = 1024;   // attn2 to_k input width of the spatial transformers
    int head_dim = 64;            // attention head size (not detectable from shapes)
    std::vector<int64_t> level_channels;  // per down level, e.g. 320, 640, 1280, 1280
    std::vector<bool> level_attn;         // spatial+temporal transformers at that level
    int num_res_blocks = 2;
    std::string str() const;
    // ERR_SHAPE_MISMATCH (message prefixed by `who`) unless an H x W latent fits the geometry: H even and W even at
    // every level with a Downsample, so the cropped Upsample comes back to each skip's size.
    void check_latent(int64_t H, int64_t W, const char* who) const;
    // The forward's input checks, messages prefixed by `who` (the CPU and the device forward): x [B, in_dim, F, H, W]
    // with a latent that fits (check_latent), y [B, T, context_dim], one timestep for all samples or one per sample.
    // Returns the timestep of each sample.
    std::vector<float> check_forward(const Shape& x, const Shape& y, const std::vector<float>& t, const char* who) const;
    // head_dim <= 0: default min(64, dim).
    static Vid2VidConfig detect(const io::WeightStore& w, const std::string& prefix = "", int head_dim = 0);
};

// One sub-module of an input/middle/output block, in execution order.
struct Module {
    enum Kind { kRes, kSpatial, kTemporal, kConv, kDown, kUp } kind = kRes;
    t2v::ResnetBlock res;
    t2v::TemporalConv tconv;  // the ResBlock's temopral_conv
    t2v::SpatialTransformer spatial;
    t2v::TemporalTransformer temporal;
    t2v::Conv2d conv;         // conv_in (kConv), Downsample (stride 2, padding rows 2 / cols 1) or Upsample conv
};
struct Block {
    std::string name;         // "input_block_00", "middle_block", "output_block_03" (golden file names)
    std::vector<Module> mods;
};

class Vid2VidUNet {
  public:
    // prefix: "" for the official checkpoint layout, "enhancer." for canonical converted weights.
    // Strict: every tensor under the prefix must be bound (ERR_WEIGHTS_MISSING / ERR_SHAPE_MISMATCH otherwise).
    explicit Vid2VidUNet(const io::WeightStore& w, const std::string& prefix = "", int head_dim = 0);
    const Vid2VidConfig& config() const { return cfg_; }

    // Called with every block's output ([B*F, C, H, W]) when given.
    using Tap = std::function<void(const std::string& name, const Tensor& out)>;
    // x [B, in_dim, F, H, W] (f32); t: one timestep per batch sample (or one for all); y [B, T, context_dim].
    // Returns the v-prediction [B, out_dim, F, H, W]. H must be even at every level with a Downsample and W
    // divisible by 2^levels (the official geometry only comes back to H under that rule).
    Tensor forward(const Tensor& x, const std::vector<float>& t, const Tensor& y, const Tap& tap = {}) const;

    size_t bound_tensors() const { return n_bound_; }
    // The bound modules, for a device copy (DeviceVid2VidUNet uploads them).
    const t2v::Linear& time_embed1() const { return te1_; }
    const t2v::Linear& time_embed2() const { return te2_; }
    const std::vector<Block>& input_blocks() const { return input_; }
    const Block& middle_block() const { return middle_; }
    const std::vector<Block>& output_blocks() const { return output_; }
    const t2v::Norm& out_norm() const { return out_norm_; }
    const t2v::Conv2d& out_conv() const { return out_conv_; }
    // Token tiling, 0 = untiled: the feed-forward of every transformer block in slices of at most n tokens
    // (t2v::TransformerBlock::ff_token_chunk: bounds the 8C-wide GEGLU intermediate), and every temporal
    // transformer in tiles of at most n tokens of whole frame sequences (t2v::TemporalTransformer::token_chunk:
    // bounds its inner-width q/k/v/attention intermediates). Same result.
    void set_ff_token_chunk(int64_t n) { set_token_chunks(n, n); }
    // The two tilings separately (ff: TransformerBlock::ff_token_chunk, temporal: TemporalTransformer::token_chunk).
    void set_token_chunks(int64_t ff, int64_t temporal);

  private:
    Vid2VidConfig cfg_;
    t2v::Linear te1_, te2_;
    std::vector<Block> input_, output_;
    Block middle_;
    t2v::Norm out_norm_;
    t2v::Conv2d out_conv_;
    size_t n_bound_ = 0;
};

// sinusoidal_embedding of unet_v2v.py: half = dim/2, freq_i = pow(10000, -i/half) in float32,
// emb = [cos(t·freq), sin(t·freq)]. t [B] -> [B, dim].
Tensor sinusoidal_embedding(const std::vector<float>& t, int dim);

// A random-weights enhancer with the official key names (for benches and tests): widths dim·mult,
// attention at the first `attn_levels` levels, 2 res blocks per level, the first temporal transformer with
// `num_heads` heads of head_dim. Weights ~ N(0, 1/fan_in)-ish from a fixed seed, stored as `dtype`.
io::WeightStore random_vid2vid_weights(int64_t dim, const std::vector<int>& mult, int attn_levels, int head_dim,
                                       int num_heads, int64_t context_dim, uint64_t seed, DType dtype = DType::F32);

}  // namespace st2v::enhancer

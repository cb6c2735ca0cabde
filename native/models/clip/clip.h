// CLIP encoders: the HF CLIPTextModel used by text-to-video-ms-1.7b (and, through the name map, the OpenCLIP
// ViT-H text tower of the enhancer: its first L-1 resblocks + ln_final are exactly a CLIPTextModel with L-1
// layers), and the OpenCLIP ViT image tower used for the APM anchor frame.
//
// Weights are canonical names (io/name_map.h): text "text_encoder.text_model.*" (HF names), image
// "image_encoder.model.visual.*" (open_clip names). Load any supported naming with enc::load_canonical().
// Widths and layer counts come from the weight shapes; the head count is not visible in the weights and follows
// the convention of the models we support: head width 64 (CLIP/OpenCLIP text towers, ViT-L/B), 80 for the
// ViT-H image tower (width 1280), and 16 for tiny test widths (< 256). Pass heads > 0 to override.
#pragma once
#include <string>
#include <vector>

#include "io/weights.h"

namespace st2v::enc {

// Exact-erf GELU MLPs, LayerNorm eps 1e-5, pre-LN blocks, causal self-attention, 77 positions.
// `last_block`: prefix of one more block in the same HF layer names (e.g. "text_last_block.", see io/name_map.h),
// run after encoder.layers.* and before final_layer_norm: with the OpenCLIP text tower that makes the FULL tower of
// open_clip's encode_text (all L blocks + ln_final) instead of the penultimate-layer one. Missing -> ERR_WEIGHTS_MISSING.
class ClipTextModel {
  public:
    ClipTextModel(const io::WeightStore& w, const std::string& prefix = "text_encoder.text_model.", int heads = 0,
                  const std::string& last_block = "");
    // ids [B, L] (i64 or i32, L <= positions) -> last_hidden_state [B, L, width] (after final_layer_norm).
    Tensor forward(const Tensor& ids) const;
    int64_t width() const { return width_; }
    int layers() const { return layers_; }  // blocks run, including `last_block`
    int heads() const { return heads_; }

  private:
    const Tensor& W(const std::string& n) const { return w_.get(prefix_ + n); }
    io::WeightStore w_;
    std::string prefix_;
    std::vector<std::string> block_prefixes_;  // full prefix of each block, in order
    int64_t width_ = 0, positions_ = 0, vocab_ = 0;
    int layers_ = 0, heads_ = 0;
};

struct ImageTowerTrace {  // intermediates, for verification
    Tensor resized, preprocessed, patch_embed, tokens_in, ln_pre_out, transformer_out, ln_post_out;
};

// FrozenOpenCLIPImageEmbedder: x [N, 3, H, W] in [-1, 1] -> pooled [N, embed] (ln_post(token 0) @ proj).
class OpenClipImageTower {
  public:
    OpenClipImageTower(const io::WeightStore& w, const std::string& prefix = "image_encoder.model.visual.", int heads = 0);
    Tensor forward(const Tensor& x, ImageTowerTrace* trace = nullptr) const;
    // The tower on already preprocessed pixels [N, 3, image_size, image_size] (normalised with CLIP mean/std),
    // e.g. open_clip's own image transform (models/clip/clip_score.h) -> pooled [N, embed].
    Tensor forward_preprocessed(const Tensor& pre, ImageTowerTrace* trace = nullptr) const;
    int64_t width() const { return width_; }
    int layers() const { return layers_; }
    int heads() const { return heads_; }
    int64_t image_size() const { return image_; }

  private:
    const Tensor& W(const std::string& n) const { return w_.get(prefix_ + n); }
    io::WeightStore w_;
    std::string prefix_;
    int64_t width_ = 0, patch_ = 0, image_ = 0, grid_ = 0;
    int layers_ = 0, heads_ = 0;
};

// kornia.geometry.resize(x, (size, size), 'bicubic', align_corners=True, antialias=True) as kornia 0.7.2:
// gaussian_blur2d (ks, sigma from the scale factor, reflect border) when downscaling, then torch bicubic
// (A = -0.75, align_corners=True, clamped borders). x [N, C, H, W] f32.
Tensor kornia_resize_bicubic_aa(const Tensor& x, int64_t out_h, int64_t out_w);
// (x + 1) / 2 then (x - CLIP mean) / CLIP std per channel.
Tensor clip_normalize_from_pm1(const Tensor& x);

}  // namespace st2v::enc

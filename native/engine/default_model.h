// The embedded default model (see default_model.cpp).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"
#include "models/streamingt2v/config.h"

namespace st2v::engine {

struct TinyConfig {
    std::vector<int64_t> channels{64, 128};         // UNet block_out_channels
    int64_t head_dim = 32;                          // attention_head_dim (head size)
    int64_t context_dim = 64;                       // text width = cross-attention width
    std::vector<int64_t> cond_channels{16, 16, 32, 32};  // E_cond widths (3 stride-2 steps: pixels / 8)
    int64_t resampler_inner = 64;
    int64_t image_dim = 64;                         // pooled image embedding width
    int64_t vocab_size = 514;                       // byte-level BPE vocabulary without merges (see tokenizer files)
    int text_layers = 2;
    int64_t vision_width = 64;
    int vision_layers = 2;
    int64_t vae_channels = 32;
    uint64_t seed = 20240406;
};

// The StreamingT2V config of these widths (models/streamingt2v/config.h), and (name, shape) of every UNet /
// CAM / resampler tensor it has, official key names, in module order.
t2v::St2vConfig tiny_st2v_config(const TinyConfig& c);
std::vector<std::pair<std::string, Shape>> tiny_unet_keys(const TinyConfig& c);
// (name, shape) of the text encoder (HF CLIPTextModel), image encoder (OpenCLIP visual) and VAE (diffusers).
std::vector<std::pair<std::string, Shape>> tiny_encoder_keys(const TinyConfig& c);
// All weights, seeded (torch-compatible generator): norms 1 + 0.1 N, biases 0.05 N, matrices N(0, 1/fan_in).
io::WeightStore make_tiny_weights(const TinyConfig& c);

}  // namespace st2v::engine
